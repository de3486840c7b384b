# scripts/deps.sh — sourced by test.sh, lab.sh and bench.sh: installs the Debian
# packages esw needs, only those missing, and puts a Swift toolchain on PATH.
#
# What each is for: libmnl-dev, libbpf-dev, linux-libc-dev, pkg-config (the build); iproute2 (ip, ss),
# iputils-ping, iperf3, tcpdump, python3, python3-scapy (tests, lab, bench);
# openvswitch-switch (the OVS 3.1 reference: conformance tests and bench); ethtool
# (bench: the no-TSO OVS row turns tx checksumming off); python3-matplotlib (bench's
# plot); procps, psmisc (process handling in the scripts); libxdp-dev (bench placement:
# the AF_XDP placement's xsk API); bpftool (tests and bench: program ids, run times);
# bench hinting installs valgrind itself (instruction counts on a VM without a PMU).
ESW_PACKAGES=(libmnl-dev libbpf-dev linux-libc-dev bpftool pkg-config iproute2 iperf3 tcpdump iputils-ping python3 python3-scapy
              openvswitch-switch ethtool python3-matplotlib procps psmisc libxdp-dev)

# esw_install_packages [EXTRA...]: apt-get install whatever of ESW_PACKAGES (and EXTRA) is missing.
esw_install_packages() {
    local need=() p
    for p in "${ESW_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
    done
    if [ ${#need[@]} -gt 0 ]; then
        echo "== installing: ${need[*]}"
        export DEBIAN_FRONTEND=noninteractive
        { apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
          { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; } || {
            echo "apt-get install ${need[*]} failed" >&2; return 1; }
    fi
}

# esw_install_deps [EXTRA...]: the packages, then a Swift toolchain on PATH (fails without one).
esw_install_deps() {
    local p
    esw_install_packages "$@" || return 1
    if ! command -v swift >/dev/null; then
        for p in /opt/swift/usr/bin /usr/share/swift/usr/bin; do [ -x "$p/swift" ] && export PATH="$p:$PATH"; done
    fi
    command -v swift >/dev/null || { echo "no Swift toolchain on PATH" >&2; return 1; }
}
