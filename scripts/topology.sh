# scripts/topology.sh — the lab topology, written once. Sourced by tests/lib.sh,
# scripts/lab.sh, scripts/bench.sh and scripts/bench-neigh.sh (after scripts/netns.sh).
#
#   <P>vm<i>    esw0v<i>  198.19.0.<i+1>/24            VF netdev i (made by eswd, moved here)
#   <P>host     eswd; representors pf0vf<i>, p0 198.18.0.1/24 (the VTEP); uplink <L>up0
#   <P>remote   <L>wire0  198.18.0.2/24 (the far end of the wire <L>up0 <-> <L>wire0)
#               <L>vx42   kernel vxlan VNI 42, remote 198.18.0.1, dstport 4789,
#                         overlay 198.19.0.3/24
#
# <P> is the namespace prefix and <L> a link-name prefix (empty for the tests and the
# bench; the lab uses its namespace prefix so that a leaked link is easy to spot), both
# given to topo_init. Every namespace is <P><node>; no link or route is made in the root
# namespace; addresses come from 198.18.0.0/15 only.
#
# The VF contract: eswd creates one netdev per VF named esw0v<i> in the namespace it runs
# in; these scripts wait for it, move it into <P>vm<i>, address it and bring it up. They
# use only `ip link`/`ip addr`, so a VF may be a TAP or one end of a veth pair.
#
# Datapath port numbers the flow sets below assume: pf0vf<i> = i+1 (added in order),
# vxlan_sys_4789 = VFS+1.
#
# Functions return non-zero on failure; the caller decides whether to die. Every
# namespace is recorded in TOPO_NAMESPACES before it is created, for the caller's
# teardown (esw_del_netns "${TOPO_NAMESPACES[@]}").

TOPO_DEV=esw0                   # the devlink device; VF netdevs are ${TOPO_DEV}v<i>
TOPO_VNI=42
TOPO_VXLAN_PORT=4789
TOPO_VTEP_HOST=198.18.0.1       # on p0 in host
TOPO_VTEP_REMOTE=198.18.0.2     # on <L>wire0 in remote
TOPO_UNDERLAY_PLEN=24
TOPO_OVERLAY_REMOTE=198.19.0.3  # on <L>vx42 in remote
TOPO_OVERLAY_PLEN=24
TOPO_NAMESPACES=()

# topo_init NS_PREFIX [LINK_PREFIX]: sets the names (TOPO_PREFIX, TOPO_UP, TOPO_WIRE, TOPO_VX).
topo_init() {
    TOPO_PREFIX=$1
    local l=${2:-}
    TOPO_UP=${l}up0 TOPO_WIRE=${l}wire0 TOPO_VX=${l}vx${TOPO_VNI}
    if [ ${#TOPO_WIRE} -gt 15 ]; then
        echo "topology: link prefix '$l' too long ($TOPO_WIRE is over 15 characters)" >&2
        return 1
    fi
}

# topo_vf_name I: the netdev name of VF I.
topo_vf_name() { echo "${TOPO_DEV}v$1"; }

# topo_vf_switch_side I: the switch-side end of VF I's veth pair, in the host namespace
# (eswd names it so: Representors/Naming.swift vfSwitchSide).
topo_vf_switch_side() { echo "${TOPO_DEV}sw$1"; }

# topo_vm_addr I: VF I's address (no prefix length).
topo_vm_addr() { echo "198.19.0.$(($1 + 1))"; }

# topo_ns NODE...: create namespaces <P><NODE> with lo up (an old one of that name goes first).
topo_ns() {
    local n
    for n in "$@"; do
        TOPO_NAMESPACES+=("$TOPO_PREFIX$n")
        ip netns del "$TOPO_PREFIX$n" 2>/dev/null
        ip netns add "$TOPO_PREFIX$n" || { echo "topology: cannot create namespace $TOPO_PREFIX$n" >&2; return 1; }
        ip -n "$TOPO_PREFIX$n" link set lo up || return 1
    done
}

# topo_in NODE CMD...: run CMD in namespace <P><NODE>.
topo_in() { local n=$1; shift; ip netns exec "$TOPO_PREFIX$n" "$@"; }

# topo_veth NODE1 IF1 NODE2 IF2: a veth pair between two of our namespaces, both ends up.
topo_veth() {
    ip -n "$TOPO_PREFIX$1" link add "$2" type veth peer name "$4" netns "$TOPO_PREFIX$3" || return 1
    ip -n "$TOPO_PREFIX$1" link set "$2" up && ip -n "$TOPO_PREFIX$3" link set "$4" up
}

# topo_wait SECONDS CMD...: retry CMD every 0.1 s until it succeeds.
topo_wait() {
    local end=$(( $(date +%s%N) + $1 * 1000000000 )); shift
    while [ "$(date +%s%N)" -lt "$end" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

# topo_vf_to_vm I: wait for VF netdev I in host, move it into vm<I>, address it, bring it up.
topo_vf_to_vm() {
    local i=$1 vf
    vf=$(topo_vf_name "$i")
    topo_wait 5 ip -n "${TOPO_PREFIX}host" link show dev "$vf" ||
        { echo "topology: no VF netdev $vf in ${TOPO_PREFIX}host" >&2; return 1; }
    ip -n "${TOPO_PREFIX}host" link set dev "$vf" netns "${TOPO_PREFIX}vm$i" || return 1
    ip -n "${TOPO_PREFIX}vm$i" addr add "$(topo_vm_addr "$i")/24" dev "$vf" || return 1
    ip -n "${TOPO_PREFIX}vm$i" link set dev "$vf" up
}

# topo_esw VFS START [ARGS...]: the namespaces host, remote, vm0..vm<VFS-1>, the wire
# <L>up0 (host) <-> <L>wire0 (remote), then `START --vfs VFS --uplink <L>up0 ARGS...`,
# which must start eswd in host and return once it answers; then each VF goes to its VM.
topo_esw() {
    local vfs=$1 start=$2 i names=(host remote); shift 2
    for ((i = 0; i < vfs; i++)); do names+=("vm$i"); done
    topo_ns "${names[@]}" || return 1
    topo_veth host "$TOPO_UP" remote "$TOPO_WIRE" || return 1
    "$start" --vfs "$vfs" --uplink "$TOPO_UP" "$@" || return 1
    for ((i = 0; i < vfs; i++)); do topo_vf_to_vm "$i" || return 1; done
}

# topo_underlay: the wire's addresses: <L>wire0 198.18.0.2/24 in remote, p0 198.18.0.1/24
# (the representor of the uplink, the host's VTEP) in host.
topo_underlay() {
    ip -n "${TOPO_PREFIX}remote" addr add "$TOPO_VTEP_REMOTE/$TOPO_UNDERLAY_PLEN" dev "$TOPO_WIRE" || return 1
    ip -n "${TOPO_PREFIX}host" addr add "$TOPO_VTEP_HOST/$TOPO_UNDERLAY_PLEN" dev p0 || return 1
    ip -n "${TOPO_PREFIX}host" link set p0 up
}

# topo_vxlan_remote: the underlay plus the far VTEP as the kernel's own vxlan device
# <L>vx42 in remote (VNI 42, remote 198.18.0.1) holding overlay 198.19.0.3/24.
topo_vxlan_remote() {
    topo_underlay || return 1
    ip -n "${TOPO_PREFIX}remote" link add "$TOPO_VX" type vxlan id "$TOPO_VNI" remote "$TOPO_VTEP_HOST" \
        local "$TOPO_VTEP_REMOTE" dstport "$TOPO_VXLAN_PORT" dev "$TOPO_WIRE" || return 1
    ip -n "${TOPO_PREFIX}remote" addr add "$TOPO_OVERLAY_REMOTE/$TOPO_OVERLAY_PLEN" dev "$TOPO_VX" || return 1
    ip -n "${TOPO_PREFIX}remote" link set "$TOPO_VX" up
}

# topo_vxlan_flows FILE [VF_PORT VXLAN_PORT]: the VF <-> remote overlay flow set (defaults:
# pf0vf0 = 1, vxlan_sys_4789 = 2): IPv4 and ARP from the VF encapsulated towards
# 198.18.0.2 with VNI 42, and decapsulated from it to the VF. One flow per line, for
# `esw-dpctl add-flows`.
topo_vxlan_flows() {
    local vf=${2:-1} vx=${3:-2} tun dec
    tun="set(tunnel(tun_id=$(printf '%#x' "$TOPO_VNI"),dst=$TOPO_VTEP_REMOTE,ttl=64,tp_dst=$TOPO_VXLAN_PORT,flags(df|key))),$vx"
    dec="tunnel(tun_id=$(printf '%#x' "$TOPO_VNI"),src=$TOPO_VTEP_REMOTE,dst=$TOPO_VTEP_HOST,ttl=64,flags(+key)),in_port($vx),eth()"
    printf '%s\n' "in_port($vf),eth(),eth_type(0x0800),ipv4(frag=no) $tun" \
        "in_port($vf),eth(),eth_type(0x0806),arp() $tun" \
        "$dec,eth_type(0x0800),ipv4(frag=no) $vf" \
        "$dec,eth_type(0x0806),arp() $vf" >"$1"
}

# topo_vf_flows FILE: VF0 (port 1) <-> VF1 (port 2), IPv4 and ARP each way.
topo_vf_flows() {
    printf '%s\n' "in_port(1),eth(),eth_type(0x0800),ipv4(frag=no) 2" \
        "in_port(1),eth(),eth_type(0x0806),arp() 2" \
        "in_port(2),eth(),eth_type(0x0800),ipv4(frag=no) 1" \
        "in_port(2),eth(),eth_type(0x0806),arp() 1" >"$1"
}

# topo_wire_flows MAC0 MAC1 FILE: IPv4 and ARP between the wire (datapath port 3, p0)
# and the VFs (ports 1 and 2), the wire reaching each VF by its MAC and broadcast ARP
# both; the VFs reach the wire.
topo_wire_flows() {
    local t
    {
        for t in "eth_type(0x0800),ipv4(frag=no)" "eth_type(0x0806),arp()"; do
            echo "in_port(3),eth(dst=$1),$t 1"
            echo "in_port(3),eth(dst=$2),$t 2"
            echo "in_port(1),eth(),$t 3"
            echo "in_port(2),eth(),$t 3"
        done
        echo "in_port(3),eth(dst=ff:ff:ff:ff:ff:ff),eth_type(0x0806),arp() 1,2"
    } >"$3"
}

# topo_ct_acl_flows FILE: an OVN-like stateful ACL between VF0 (port 1) and VF1 (port 2)
# in conntrack zone 1: new TCP to port 80 and UDP to port 53 from VF0 are committed
# (TCP with ct_mark 5), established traffic passes both ways, related traffic (ICMP
# errors) back to VF0; anything else new has no flow. ARP passes. IPv4 from VF0 only
# to 198.19.0.0/24 (other destinations are left to other flows, e.g. SNAT to the uplink).
topo_ct_acl_flows() {
    local ip4='eth(),eth_type(0x0800)'
    printf '%s\n' \
        "recirc_id(0),in_port(1),eth(),eth_type(0x0806),arp() 2" \
        "recirc_id(0),in_port(2),eth(),eth_type(0x0806),arp() 1" \
        "recirc_id(0),in_port(1),$ip4,ipv4(dst=198.19.0.0/255.255.255.0,frag=no) ct(zone=1),recirc(1)" \
        "recirc_id(0),in_port(2),$ip4,ipv4(frag=no) ct(zone=1),recirc(2)" \
        "recirc_id(1),ct_state(+new+trk),in_port(1),$ip4,ipv4(proto=6,frag=no),tcp(dst=80) ct(commit,zone=1,mark=0x5/0xff),2" \
        "recirc_id(1),ct_state(+new+trk),in_port(1),$ip4,ipv4(proto=17,frag=no),udp(dst=53) ct(commit,zone=1),2" \
        "recirc_id(1),ct_state(-new+est-inv+trk),in_port(1),$ip4,ipv4(frag=no) 2" \
        "recirc_id(2),ct_state(-new+est-inv+trk),in_port(2),$ip4,ipv4(frag=no) 1" \
        "recirc_id(2),ct_state(-new-est+rel-inv+trk),in_port(2),$ip4,ipv4(frag=no) 1" >"$1"
}
