#!/usr/bin/env bash
# What a user sees of the asynchronous offload models: a flow the firmware has not
# written yet is `offloaded:pending` (never `yes`), counted by `show`, its units shown
# as reserved by `resource show`; its packets take the software path under `none` and
# are lost under skip_sw; under `async` a rule the hardware refuses later is
# `offloaded:failed` with the reason, although the add succeeded.
. "$(dirname "$0")/lib.sh"
t_require_root

cat >"$T_DIR/profile" <<'EOF2'
masked = 8
EOF2
t_topology 2 --mode switchdev --profile "$T_DIR/profile"
dpctl add-if pf0vf0
dpctl add-if pf0vf1
param() { devlink dev param set esw0 name "$1" value "$2"; }
masked() { devlink resource show -j | /usr/bin/python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"] == "masked"][0]
print(r["occ_programmed"], r["occ_reserved"])'; }
topo_vf_flows "$T_DIR/vf"

# none + credit with a slow firmware (one access: 3 s, so that the checks below run while
# the rules wait even on a slow machine): pending, and software forwards.
param offload_model credit
param hw_latency_us 3000000
check "add the VF flows" dpctl add-flows "$T_DIR/vf"
dump=$(dpctl dump-flows -m)
check_eq "all four pending" 4 "$(grep -c 'offloaded:pending' <<<"$dump")"
check_no_match "none reported offloaded:yes yet" 'offloaded:yes' "$dump"
# Their packets run in software (as OVS shows a tc flow that is not in hardware).
check_eq "pending flows are dp:ovs" 4 "$(grep -c 'offloaded:pending, dp:ovs' <<<"$dump")"
check_eq "dump-flows type=ovs includes them" 4 "$(dpctl dump-flows type=ovs | wc -l)"
check_match "show counts them" 'offload pending: 4 failed: 0 ' "$(dpctl show)"
read -r programmed reserved <<<"$(masked)"
check_eq "resource show: nothing programmed yet" 0 "$programmed"
check_ge "resource show: the four reserved (and the driver's credits)" 4 "$reserved"
check "pending under none: the software path forwards" t_ping vm0 198.19.0.2 2
check "then every flow is in hardware" t_wait "offloaded:yes x4" 10 bash -c '[ "$(dpctl dump-flows -m | grep -c offloaded:yes)" -eq 4 ]'
read -r programmed reserved <<<"$(masked)"
check_eq "resource show: four programmed" 4 "$programmed"
check_match "the driver reports the batch's two latencies" 'last_batch_caller_us [0-9]+ last_batch_coherent_us [0-9]+' "$(devlink -s dev show)"

# skip_sw: a pending flow's packets are lost (no software fallback).
dpctl del-flows
dpctl set-policy skip_sw
check "add the VF flows under skip_sw" dpctl add-flows "$T_DIR/vf"
check_fails "pending under skip_sw: nothing forwards" t_in vm0 ping -c 2 -i 0.2 -W 1 -q 198.19.0.2
check_match "the software path dropped them as hardware-only" 'hw-only drops: [1-9]' "$(dpctl show)"
check "once programmed, the hardware forwards" t_wait "ping" 10 t_in vm0 ping -c 1 -W 1 -q 198.19.0.2

# async: success at once, the refusal comes later and is shown per flow.
dpctl del-flows
param offload_model async
param hw_latency_us 0
for i in 0 1 2 3 4 5 6 7 8 9; do echo "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.$i,frag=no) drop"; done >"$T_DIR/ten"
check "async: ten flows into eight entries: the add succeeds" dpctl add-flows "$T_DIR/ten"
check "async: the firmware is done" t_wait "no pending" 5 bash -c '! dpctl dump-flows -m | grep -q offloaded:pending'
dump=$(dpctl dump-flows -m)
check_eq "async: ten flows installed" 10 "$(wc -l <<<"$dump")"
check_eq "async: two refused later" 2 "$(grep -c 'offloaded:failed' <<<"$dump")"
check_match "async: with the reason" 'hardware refused it after the add: no space in masked table' "$dump"
check_eq "async: failed flows are dp:ovs" 2 "$(grep -c 'offloaded:failed, dp:ovs' <<<"$dump")"
check_eq "async: type=ovs and type=non-offloaded select them" "2 2" \
    "$(dpctl dump-flows type=ovs | wc -l) $(dpctl dump-flows type=non-offloaded | wc -l)"
check_match "async: counted" 'late_failures 2' "$(devlink -s dev show)"
check_match "async under skip_sw: nothing handles them (blackholed)" 'failed: 2 \(in software: 0, blackholed: 2\)' "$(dpctl show)"

# lockstep, a modify the hardware refuses (an injected fault): the refusal is the
# answer, not hidden by a retry. Under none the flow runs in software with its new
# actions; under skip_sw the modify fails with EIO and the flow stays as it was.
dpctl del-flows
dpctl set-policy none
param offload_model lockstep
F="in_port(3),eth(),eth_type(0x0800),ipv4(src=198.18.4.1,frag=no)"
dpctl add-if p0
check_match "lockstep: the flow is offloaded" 'offloaded' "$(dpctl add-flow -v "$F" 1 2>&1)"
param fail_next_offloads 1
out=$(dpctl mod-flow -v "$F" 2 2>&1)
check_match "mod-flow refused by the hardware: not offloaded, with the reason" 'not offloaded: injected fault' "$out"
check_match "... the new actions run in software" 'dp:ovs, actions:pf0vf1, dp-extra-info:not offloaded: injected fault' "$(dpctl dump-flows -m)"
dpctl del-flows
dpctl set-policy skip_sw
dpctl add-flow "$F" 1
param fail_next_offloads 1
out=$(dpctl mod-flow "$F" 2 2>&1)
check_eq "skip_sw: mod-flow refused by the hardware fails" 1 "$?"
check_match "... with the injected errno" 'injected fault.*Input/output error' "$out"
check_match "... and the flow is as it was, in hardware" 'offloaded:yes, dp:esw, actions:pf0vf0' "$(dpctl dump-flows -m)"
dpctl del-flows
dpctl set-policy none

# Two flows that differ only where the hardware key does not look (ct_state at
# recirc_id 0, which the silicon sees untracked): one hardware match. The second is
# refused as a duplicate of it (a match, not an action, and EEXIST under skip_sw, as
# mlx5 answers a duplicate entry).
A="recirc_id(0),in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"
B="recirc_id(0),in_port(1),ct_state(-trk),eth(),eth_type(0x0800),ipv4(frag=no)"
check_match "a flow in hardware" 'offloaded' "$(dpctl add-flow -v "$A" 2 2>&1)"
check_match "one with the same hardware match stays in software, said so" \
    'not offloaded: unsupported match: another rule has the same hardware match' "$(dpctl add-flow -v "$B" drop 2>&1)"
dpctl del-flow "$B"
dpctl set-policy skip_sw
check_match "under skip_sw it is refused with EEXIST" 'File exists' "$(dpctl add-flow "$B" drop 2>&1)"
dpctl del-flows
dpctl set-policy none

# async, a change of actions the firmware has not written yet: the rule it replaces is
# still in the silicon and packets meet it, so the flow is in hardware (as dpif-netdev
# shows a flow whose change its offload thread has not made yet), not pending in
# software; once written, the new actions apply.
param offload_model async
param hw_latency_us 0
check "async: add the VF flows" dpctl add-flows "$T_DIR/vf"
check "async: written" t_wait "offloaded:yes x4" 10 bash -c '[ "$(dpctl dump-flows -m | grep -c offloaded:yes)" -eq 4 ]'
param hw_latency_us 3000000
V="in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)"
check "async, 3 s accesses: mod-flow to drop" dpctl mod-flow "$V" drop
check_match "the flow is in hardware while its change waits" 'offloaded:yes, dp:esw, actions:drop' "$(dpctl get-flow -m "$V")"
check_eq "show counts it offloaded" 4 "$(dpctl show | awk '/offloaded flows:/{print $3}')"
check_no_match "... and nothing pending" 'offload pending: [1-9]' "$(dpctl show)"
mac0=$(t_in vm0 cat /sys/class/net/esw0v0/address)
mac1=$(t_in vm1 cat /sys/class/net/esw0v1/address)
trace=$(dpctl trace pf0vf0 "eth(src=$mac0,dst=$mac1),eth_type(0x0800),ipv4(src=198.19.0.1,dst=198.19.0.2,proto=1,ttl=64),icmp(type=8,code=0)")
check_match "trace: the previous rule's hit, naming the flow and why" \
    "flow: ufid:.*the flow's change of actions waits for the firmware" "$(tr '\n' ' ' <<<"$trace")"
check "the previous rule still forwards" t_ping vm0 198.19.0.2 1
dropped() { ! t_in vm0 ping -c 1 -W 1 -q 198.19.0.2; }
check "then the new rule drops" t_wait "ping dropped" 10 dropped
dpctl del-flows
param hw_latency_us 0

# A flush during a long access throws the access's writes away: nothing is pending,
# for devlink as for dpctl.
param offload_model async
param program_batch 1
param hw_latency_us 1000000
check "async, 1 s accesses: add the VF flows" dpctl add-flows "$T_DIR/vf"
sleep 0.2
check "... and flush them while the first access runs" dpctl del-flows
check_match "dpctl: nothing pending" 'offload pending: 0 ' "$(dpctl show)"
check_match "devlink: nothing pending" ' pending 0 ' "$(devlink -s dev show)"
param hw_latency_us 0
