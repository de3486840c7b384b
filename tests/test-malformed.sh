#!/usr/bin/env bash
# Bad input gets a clear error and loses nothing: malformed control messages get an
# errno, malformed flow strings name the position and the problem, the daemon keeps
# serving and keeps its flows.
. "$(dirname "$0")/lib.sh"

t_topology 1 --mode switchdev
dpctl add-if pf0vf0
dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' drop
out=$(/usr/bin/python3 "$T_ROOT/tests/tools/control-fuzz.py" "$ESW_CONTROL" 2>&1)
status=$?
echo "$out" | sed 's/^/    /' | head -60 >"$T_DIR/fuzz.out"
check_eq "every malformed message answered, daemon alive (see fuzz.out)" 0 "$status"
check_match "garbage gets EINVAL" 'ok three bytes of garbage: errno 22' "$out"
check_match "unknown family gets EOPNOTSUPP" 'ok unknown family: errno 95' "$out"
check_match "NLMSG_NOOP with NLM_F_ACK is acknowledged, as the kernel does" 'ok NLMSG_NOOP with ACK: errno 0' "$out"
check_match "a control message type with NLM_F_ACK is acknowledged" 'ok NLMSG_DONE as a request with ACK: errno 0' "$out"
check_match "a port function state of the wrong length gets EINVAL, not an ACK" \
    'ok port function state of 4 bytes: errno 22 .*attribute 20 has length 4, expected 1' "$out"
check_match "12000 nested clone() in a flow: EINVAL, not a crash" 'ok actions nested 12000 deep in a flow: errno 22 .*nested more than 16 deep' "$out"
check_match "12000 nested clone() in an execute: EINVAL" 'ok actions nested 12000 deep in an execute: errno 22 .*nested more than 16 deep' "$out"
check_match "17 nested clone(): EINVAL as in the kernel" 'ok actions nested 17 deep in an execute: errno 22 .*nested more than 16 deep' "$out"
check_match "64000 bytes of actions in a flow: EMSGSIZE (32 KiB at most, as the kernel)" \
    'ok 64000 bytes of actions in a flow: errno 90 .*the actions are too long: 64000 bytes, at most 32768' "$out"
check_match "32776 bytes of actions in an execute: EMSGSIZE" \
    'ok 32776 bytes of actions in an execute: errno 90 .*the actions are too long: 32776 bytes, at most 32768' "$out"
check_match "datagrams sent together, one unframed: each answered in its place" \
    'ok three datagrams at once, the middle one unframed: answered in order \(201:0 0:22 203:0\)' "$out"
check "daemon still serves" dpctl show
check_eq "and still has its flow" 1 "$(dpctl dump-flows | wc -l)"

# Actions longer than one netlink attribute: the client refuses them and sends nothing
# (the 16-bit length once wrapped and the daemon read garbage).
long=$(for i in $(seq 1 2100); do printf 'set(ipv4(ttl=%d)),' $((i % 256)); done)
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.9,frag=no)' "${long%,}" 2>&1); rc=$?
check_eq "actions too long for netlink: exit status 1" 1 "$rc"
check_match "the client names the problem" '^esw-dpctl: actions: the actions are too long: [0-9]+ bytes, at most 65531$' "$out"
check_no_match "not a malformed message" 'malformed' "$out"
check_eq "nothing installed" 1 "$(dpctl dump-flows | wc -l)"
# 44,800 bytes of set() (set_masked: 32 bytes each): fits netlink, over the datapath's 32 KiB.
long=$(for i in $(seq 1 1400); do printf 'set(ipv4(ttl=%d)),' $((i % 256)); done)
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.0.9,frag=no)' "${long%,}" 2>&1)
check_match "over 32 KiB: the daemon's EMSGSIZE" 'the actions are too long: [0-9]+ bytes, at most 32768.*Message too long' "$out"

out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=maybe)' drop 2>&1); rc=$?
check_eq "bad flow string: exit status 1" 1 "$rc"
check_match "names the position and the problem" 'esw-dpctl: .*at column [0-9]+: .+' "$out"
out=$(dpctl add-flow 'in_port(1),eth(' drop 2>&1)
check_match "truncated flow string" 'esw-dpctl: ' "$out"
out=$(dpctl add-flow 'in_port(1),eth()' 'output(1' 2>&1); rc=$?
check_eq "bad actions: exit status 1" 1 "$rc"
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 'ct(commit,helper=ftp),1' 2>&1)
check_match "a ct() helper refused at install with EOPNOTSUPP" 'Operation not supported' "$out"
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 'ct(mark=0x1/0xff),1' 2>&1)
check_match "ct(mark) without commit refused with EINVAL, as the kernel" 'Invalid argument' "$out"
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' '70000' 2>&1)
check_match "output port out of range" 'Invalid argument|out of range' "$out"
printf 'in_port(1),eth(),eth_type(0x0806),arp() drop\nin_port(1),eth(),eth_type(0x0800),ipv4(src=1.2.3.4.5) drop\n' >"$T_DIR/bad"
out=$(dpctl add-flows "$T_DIR/bad" 2>&1); rc=$?
check_eq "add-flows with a bad line fails" 1 "$rc"
check_match "and names the line" "$T_DIR/bad:2" "$out"
check "daemon alive at the end" dpctl show
check_eq "no malformed packet or message crashed it" 1 "$(pgrep -c -f "eswd --control $ESW_CONTROL")"

# Malformed frames on the wire are counted and dropped, never crash the fast path.
t_in host /usr/bin/python3 -c '
from scapy.all import Ether, Raw, sendp
bad = [b"\x45\x00\x00\x08", b"\x4f" + b"\x00" * 30, b"\x60" + b"\x00" * 10, b"\x45" + b"\xff" * 60]
for b in bad:
    sendp(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x0800)/Raw(b), iface="p0", verbose=False)
    sendp(Ether(dst="ff:ff:ff:ff:ff:ff", type=0x86dd)/Raw(b), iface="p0", verbose=False)
' 2>/dev/null
check "daemon alive after malformed frames" dpctl show
