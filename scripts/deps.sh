# scripts/deps.sh — sourced by test.sh, lab.sh and bench.sh: installs the Debian
# packages esw needs, only those missing, and puts a Swift toolchain on PATH.
esw_install_deps() {
    local need=() p
    for p in libmnl-dev libbpf-dev linux-libc-dev pkg-config iproute2 iperf3 tcpdump iputils-ping python3 python3-scapy \
             openvswitch-switch procps psmisc "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null || {
            echo "apt-get install ${need[*]} failed" >&2; return 1; }
    fi
    if ! command -v swift >/dev/null; then
        for p in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$p/swift" ] && export PATH="$p:$PATH"; done
    fi
    command -v swift >/dev/null || { echo "no Swift toolchain on PATH" >&2; return 1; }
}
