#!/usr/bin/env bash
# A client that stops reading never stalls the daemon: with `esw-dpctl monitor | sleep`
# subscribed in controller mode while misses arrive, other clients are still served at
# once, a monitor that reads keeps getting its upcalls, the stuck one loses upcalls
# (counted as lost in `show`), and a client that leaves its replies unread is
# disconnected.
. "$(dirname "$0")/lib.sh"

t_topology 2 --mode switchdev --miss controller
dpctl add-if pf0vf0
dpctl add-if pf0vf1

# The stuck subscriber (as `esw-dpctl monitor | sleep 60`): its output goes to a FIFO
# this shell holds open and never reads, so it blocks once the FIFO is full.
mkfifo "$T_DIR/stuck"
exec 9<>"$T_DIR/stuck"
"$ESW_BIN/esw-dpctl" monitor >"$T_DIR/stuck" &
T_PIDS+=("$!")
# A subscriber that reads.
"$ESW_BIN/esw-dpctl" monitor >"$T_DIR/monitor.out" 2>&1 &
T_PIDS+=("$!")
sleep 0.5

# Misses (no flows, controller mode): each one an upcall to both subscribers. A static
# neighbour lets the pings go out without ARP answers (nothing forwards here).
ip -n "${T_PREFIX}vm0" neigh replace 198.19.0.2 lladdr 02:00:00:00:00:99 dev esw0v0 nud permanent
t_in vm0 ping -c 3000 -i 0.001 -W 1 -q 198.19.0.2 >/dev/null 2>&1 &
PING=$!
T_PIDS+=("$PING")
slow=0
# During the misses and after them (the stuck client's socket fills on the way).
for i in $(seq 10); do
    timeout 2 "$ESW_BIN/esw-dpctl" show >/dev/null 2>&1 || slow=$((slow + 1))
    sleep 0.4
done
wait "$PING"
check_eq "show answers within 2 s while a subscriber is stuck (10 tries)" 0 "$slow"
lost=$(dpctl show | sed -n 's/.*lost:\([0-9]*\).*/\1/p')
check_ge "upcalls the stuck monitor did not read are counted as lost" 1 "$lost"
check_match "and logged" 'does not read its upcalls' "$(cat "$T_DIR/eswd.log")"
check_ge "the monitor that reads got its upcalls" 2900 "$(grep -c '^miss:' "$T_DIR/monitor.out")"
ip -n "${T_PREFIX}host" link set pf0vf1 mtu 1400
check "representors still follow MTU changes (the VF gets the representor's MTU)" \
    t_wait "esw0v1 at mtu 1400" 3 bash -c "ip -n ${T_PREFIX}vm1 link show esw0v1 | grep -q 'mtu 1400'"

# A client that sends a request and never reads the (large) reply is disconnected.
for i in $(seq 0 199); do echo "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.8.$((i % 250)),dst=198.18.7.$((i / 250)),frag=no) drop"; done >"$T_DIR/flows"
dpctl add-flows "$T_DIR/flows"
/usr/bin/python3 - "$ESW_CONTROL" "$T_DIR/disconnected" "$T_DIR/laggard.out" <<'PY' &
import os, socket, struct, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
# 200 flow dumps (family 0x22, GET, REQUEST|DUMP) in one datagram, never read.
one = struct.pack("=IHHII", 24, 0x22, 1 | 0x300, 1, 0) + struct.pack("=BBHi", 3, 1, 0, 0)
s.send(one * 200)
# Once the daemon says it disconnected this client: what was queued, then the end.
while not os.path.exists(sys.argv[2]):
    time.sleep(0.1)
s.settimeout(3)
try:
    while s.recv(1 << 16):
        pass
    end = "closed"
except socket.timeout:
    end = "still open"
except OSError as e:
    end = "closed" if e.errno == 104 else f"error {e}"
open(sys.argv[3], "w").write(end + "\n")
PY
LAGGARD=$!
T_PIDS+=("$LAGGARD")
t_wait "the client that does not read its replies is disconnected" 12 grep -q 'control client disconnected: replies unread' "$T_DIR/eswd.log"
check_match "disconnected for unread replies, logged" 'control client disconnected: replies unread' "$(cat "$T_DIR/eswd.log")"
# (Its dump's producer held the client: the socket stayed open, the client never knew.)
touch "$T_DIR/disconnected"
wait "$LAGGARD"
check_eq "the disconnected client's socket is closed (it reads to the end)" "closed" "$(cat "$T_DIR/laggard.out" 2>/dev/null)"
check "daemon serves after all" timeout 2 "$ESW_BIN/esw-dpctl" show
