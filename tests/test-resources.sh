#!/usr/bin/env bash
# Hardware tables run out the way real ones do: a masked table of 10 entries, ENOSPC
# under skip_sw (batches all-or-nothing), software fallback under none, resize +
# reload (refused when occupancy does not fit), and fault injection of exactly N.
. "$(dirname "$0")/lib.sh"

cat >"$T_DIR/profile" <<'EOF'
# a small NIC
masked = 10
encap = 16
EOF
t_topology 2 --mode switchdev --profile "$T_DIR/profile"
dpctl add-if pf0vf0
dpctl add-if pf0vf1

masked() { devlink resource show -j | /usr/bin/python3 -c '
import json, sys
r = [r for r in json.load(sys.stdin)["resources"]["esw0"] if r["name"] == "masked"][0]
print(r["size"], r["occ"])'; }
filler() { # N flows that never match VF traffic: IPv4 sources 198.18.9.<i>
    local i
    for ((i = $1; i < $2; i++)); do echo "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.$i,frag=no) drop"; done
}

check_eq "profile size in resource show" "10 0" "$(masked)"
check_match "resource show prints devlink's fields" 'name masked size 10 occ 0 unit entry size_min 0 size_max [0-9]+ size_gran 1' "$(devlink resource show)"

# none: ten in hardware, the rest in software, still forwarding.
filler 0 8 >"$T_DIR/fill8"
dpctl add-flows "$T_DIR/fill8"
topo_vf_flows "$T_DIR/vf"
check "add VF flows under none" dpctl add-flows "$T_DIR/vf"
check_eq "table full: 10 of 10" "10 10" "$(masked)"
check_eq "two flows fell back to software" 2 "$(dpctl dump-flows -m | grep -c 'dp:ovs')"
check_match "with the reason" 'not offloaded: no space in masked table' "$(dpctl dump-flows -m)"
check "the 11th and 12th flows still forward (software path)" t_ping vm0 198.19.0.2 3
# A file that fails leaves the table as it found it: a del-flows FILE whose last line
# does not parse puts back every flow it deleted, in its place in the dump's order and
# with the same ten in hardware. (Restored newest first and offloaded again, the flows
# left to software took the room of those restored after them, and the order reversed.)
# (Counts aside: the dump shows what the last poll read, the delete reads the rule.)
uncounted() { dpctl dump-flows -m | sed 's/packets:[0-9]*, bytes:[0-9]*, //; s/used:[^,]*, //'; }
before=$(uncounted)
{ awk '{print $1}' "$T_DIR/fill8" "$T_DIR/vf"; echo 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.99,frag=maybe)'; } >"$T_DIR/delbad"
check_fails "del-flows of every flow with a bad last line is refused" dpctl del-flows "$T_DIR/delbad"
check_eq "... and the dump is as before, in order, the same flows in hardware" "$before" "$(uncounted)"
check_match "... the flows keep their counts (the ping's, in hardware)" \
    'in_port\(pf0vf0\),.*eth_type\(0x0800\),ipv4\(src=0\.0\.0\.0/.*packets:3, bytes:294, (used:[^,]*, )?offloaded:yes' "$(dpctl dump-flows -m)"
check_eq "... the table still full: 10 of 10" "10 10" "$(masked)"

# skip_sw: a flow the hardware cannot take fails synchronously; a batch is all-or-nothing.
dpctl del-flows
dpctl set-policy skip_sw
filler 0 10 >"$T_DIR/fill10"
check "ten flows fit under skip_sw" dpctl add-flows "$T_DIR/fill10"
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.200,frag=no)' drop 2>&1)
check_match "11th flow: ENOSPC with a message" 'No space left on device' "$out"
check_match "message names the table" 'no space in masked table' "$out"
filler 10 13 >"$T_DIR/batch"
check_fails "batch that does not fit is refused" dpctl add-flows "$T_DIR/batch"
check_eq "the refused batch left nothing behind" 10 "$(dpctl dump-flows | wc -l)"
check_eq "hardware occupancy unchanged" "10 10" "$(masked)"
# The last line refused: nothing is cancelled after it, yet the lines before it were
# undone too, and the CLI must say so (it said "the other flow was applied").
last9='in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.9,frag=no)'
dpctl del-flow "$last9"
filler 30 32 >"$T_DIR/lastfails"
out=$(dpctl add-flows "$T_DIR/lastfails" 2>&1)
check_match "a batch whose last line is refused: the file was undone" 'line 2 was refused; under skip_sw the file was undone: the flow before it was undone' "$out"
check_no_match "nothing is said to be applied" 'applied' "$out"
check_eq "the line before it is not installed" 9 "$(dpctl dump-flows | wc -l)"
dpctl add-flow "$last9" drop
# All or nothing also for changes to flows that were there: a failed batch that
# modified one flow and deleted another leaves both exactly as they were.
flow0='in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.0,frag=no)'
flow1='in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.1,frag=no)'
before=$(dpctl dump-flows -m | sed 's/used:[^,]*, //' | sort)
flowX='in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.30,frag=no)'
{ echo "modify $flow0 2"; echo "modify $flow0 1"; echo "delete $flow1"; echo "add $flowX drop"; echo "modify $flowX 2"
  filler 20 22 | sed 's/^/add /'; } >"$T_DIR/modbatch"
check_fails "batch that modifies (twice), deletes, adds and modifies, then runs out of room is refused" \
    dpctl add-flows "$T_DIR/modbatch"
after=$(dpctl dump-flows -m | sed 's/used:[^,]*, //' | sort)
check_eq "the table is exactly as before the batch (flows, actions, offload state)" "$before" "$after"
check_match "the modified flow has its old actions, in hardware" 'src=198.18.9.0,.*offloaded:yes, dp:esw, actions:drop' "$after"
check_match "the deleted flow is back, in hardware" 'src=198.18.9.1,.*offloaded:yes, dp:esw, actions:drop' "$after"
check_eq "hardware occupancy as before" "10 10" "$(masked)"
# Batches that never end (300 ids, each put refused for want of room) are not all kept.
/usr/bin/python3 - "$ESW_CONTROL" <<'PY'
import socket, struct, sys
def attr(t, p):
    a = struct.pack("=HH", 4 + len(p), t) + p
    return a + b"\0" * ((4 - len(a) % 4) % 4)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
for i in range(300):
    key = attr(3, struct.pack("=I", 1)) + attr(4, bytes(12)) + attr(6, struct.pack(">H", 0x1234 + i))
    body = struct.pack("=BBHi", 1, 1, 0, 0) + attr(1, key) + attr(2, b"") + attr(102, struct.pack("=I", 1000 + i))
    s.send(struct.pack("=IHHII", 16 + len(body), 0x22, 1 | 4 | 0x400 | 0x200, i + 1, 0) + body)
    s.recv(65536)
PY
check_match "open batches are bounded (oldest dropped, logged)" 'too many open flow batches' "$(cat "$T_DIR/eswd.log")"

# Resize: pending size shown, applied by reload; a size below occupancy is refused.
check "resource set to 5" devlink resource set esw0 path /masked size 5
check_match "pending size shown, valid (sizes fit together; entries in use are reload's check)" 'name masked size 10 size_new 5 size_valid true' "$(devlink resource show)"
out=$(devlink dev reload esw0 2>&1)
check_match "reload refused: occupancy does not fit" '10 entries in use do not fit in size 5' "$out"
check_match "... with ENOSPC" 'No space left on device' "$out"
check_eq "size unchanged after refused reload" "10 10" "$(masked)"
check "resource set to 20" devlink resource set esw0 path /masked size 20
check "reload applies it" devlink dev reload esw0
check_eq "table is 20 entries, 10 in use" "20 10" "$(masked)"
# A child's new size beyond its parent's cannot be applied: size_valid false, and reload
# refuses it as devlink refuses sizes that do not fit (EINVAL), with nothing changed.
exact=$(devlink resource show | grep -oE 'name exact size [0-9]+' | awk '{print $4}')
check "resource set /exact/flows beyond /exact" devlink resource set esw0 path /exact/flows size $((exact + 7232))
check_match "size_valid false" "name flows size $exact size_new $((exact + 7232)) size_valid false" "$(devlink resource show)"
out=$(devlink dev reload esw0 2>&1)
check_match "reload refused with EINVAL" 'smaller than child .*Invalid argument' "$out"
check "resource set /exact/flows back" devlink resource set esw0 path /exact/flows size "$exact"
check_no_match "nothing pending" 'size_new' "$(devlink resource show)"
check "now the batch fits" dpctl add-flows "$T_DIR/batch"
check_eq "13 in hardware" "20 13" "$(masked)"

# Fault injection: exactly N offloads fail (netdevsim-style knob).
dpctl del-flows
dpctl set-policy none
check "fail_next_offloads 3" devlink dev param set esw0 name fail_next_offloads value 3
filler 0 5 >"$T_DIR/fill5"
dpctl add-flows "$T_DIR/fill5"
check_eq "exactly 3 offloads failed" 3 "$(dpctl dump-flows -m | grep -c 'not offloaded: injected fault')"
check_eq "the others offloaded" 2 "$(dpctl dump-flows -m | grep -c 'offloaded:yes')"
check_match "knob counted down to 0" 'value 0' "$(devlink dev param show esw0 name fail_next_offloads)"
dpctl del-flows
dpctl set-policy skip_sw
devlink dev param set esw0 name fail_next_offloads value 1
out=$(dpctl add-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.1,frag=no)' drop 2>&1)
check_match "injected fault under skip_sw: EIO" 'injected fault.*Input/output error' "$out"
check_eq "nothing installed" 0 "$(dpctl dump-flows | wc -l)"
check_fails "unknown parameter refused" devlink dev param set esw0 name nosuch value 1
check_fails "bad value refused" devlink dev param set esw0 name hw_latency_us value -5
# A negative value reaches the daemon's range check (it was taken for an option).
check_no_match "a negative value is a value, not an option" 'Unknown option' \
    "$(devlink dev param set esw0 name hw_latency_us value -5 2>&1)"
# A u64 size beyond Int's range is refused naming the size given (it said 9223372036854775807).
check_match "a size of 2^64-1 refused as given" 'size 18446744073709551615 outside 0\.\.\.[0-9]+ \(Invalid argument\)' \
    "$(devlink resource set esw0 path /masked size 18446744073709551615 2>&1)"
# devlink's resource paths: the device itself is no resource, an unknown path is EINVAL.
for p in / "" /nosuch; do
    check_match "resource set path '$p' refused with EINVAL" 'no resource.*Invalid argument' \
        "$(devlink resource set esw0 path "$p" size 5 2>&1)"
done
# devlink's reload syntax: driver_reinit is what esw's reload is; fw_activate and limits
# are refused as the kernel refuses them for a driver without them.
check "reload action driver_reinit" devlink dev reload esw0 action driver_reinit
check_match "reload action fw_activate refused" 'not supported by the driver.*Operation not supported' \
    "$(devlink dev reload esw0 action fw_activate 2>&1)"
check_match "reload limit no_reset refused" 'limit is not supported' "$(devlink dev reload esw0 limit no_reset 2>&1)"

# A batch undone after another client's changes leaves them: its client modifies a flow
# (uncommitted), another client flushes, the batch's client goes. The flow stays deleted
# (the undo used to restore it with its old actions).
dpctl set-policy none
dpctl del-flows
/usr/bin/python3 - "$ESW_CONTROL" "$ESW_BIN/esw-dpctl" <<'PY'
import socket, struct, subprocess, sys
def attr(t, p):
    a = struct.pack("=HH", 4 + len(p), t) + p
    return a + b"\0" * ((4 - len(a) % 4) % 4)
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
key = attr(3, struct.pack("=I", 1)) + attr(4, bytes(12)) + attr(6, struct.pack(">H", 0x1234))
def request(cmd, flags, seq, actions, batch=None):
    body = struct.pack("=BBHi", cmd, 1, 0, 0) + attr(1, key) + attr(2, actions)
    if batch is not None:
        body += attr(102, struct.pack("=I", batch))
    s.send(struct.pack("=IHHII", 16 + len(body), 0x22, flags, seq, 0) + body)
    error = struct.unpack("=i", s.recv(65536)[16:20])[0]
    if error != 0:
        sys.exit(f"request {seq}: error {error}")
request(1, 1 | 4 | 0x400 | 0x200, 1, attr(1, struct.pack("=I", 2)))   # the flow, output to port 2
request(4, 1 | 4, 2, b"", batch=4242)                                    # the batch: set it to drop
subprocess.run([sys.argv[2], "del-flows"], check=True)                   # another client flushes
s.close()                                                                # the batch's client goes
PY
sleep 0.3   # the daemon sees the hang-up and undoes the batch
check_eq "a flush after another client's uncommitted change stands" 0 "$(dpctl dump-flows | wc -l)"

# The data plane is eBPF in the kernel: no packet thread in the daemon, and no knob for one.
check_fails "fastpath_nice is gone" devlink dev param set esw0 name fastpath_nice value 3
check_eq "no packet threads in eswd" "" "$(for t in /proc/$ESWD_PID/task/*; do grep -E '^esw-fp' "$t/comm"; done)"
