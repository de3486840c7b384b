#!/usr/bin/env bash
# CLI habits (issue 12): options before the subcommand print the same bytes as after
# it, for every show/dump command of esw-devlink and esw-dpctl; a client that is not
# root is told the control socket is root-only; devlink commands without a device work
# for a device not called esw0; scripts/install.sh installs binaries, completion
# scripts and man pages (ESW_TEST_INSTALL=0 skips that part, it builds release).
. "$(dirname "$0")/lib.sh"

t_topology 2
t_vxlan_remote
# No IPv6 chatter (router solicitations, MLD) moving counters between two runs.
t_ipv6_off host remote vm0 vm1

# Something to show: the overlay flows (offloaded once the neighbour resolves) and one
# software-only flow.
check "add the VF's representor" dpctl add-if pf0vf0
check "add the vxlan port" dpctl add-if vxlan_sys_4789,type=vxlan
t_vxlan_flows "$T_DIR/flows"
check "add the overlay flows" dpctl add-flows "$T_DIR/flows"
# From the internal port (not a representor): software only.
check "add a software-only flow" dpctl add-flow 'in_port(0),eth(),eth_type(0x86dd),ipv6()' drop
check "the overlay flows go to hardware" t_wait "four flows offloaded" 10 \
    bash -c "[ \$(dpctl dump-flows -m | grep -c 'offloaded:yes') -eq 4 ]"
ufid=$(dpctl dump-flows -m | sed -n 's/^ufid:\([^,]*\),.*eth_type(0x86dd).*/\1/p')

# same_both_ways TOOL OPTIONS WORDS...: "TOOL WORDS... OPTIONS" must succeed and print
# something; "TOOL OPTIONS WORDS..." (and, for devlink, with the options among the
# subcommand words) must print the same bytes on stdout and stderr and exit the same.
# Live counters may tick between two runs, so a mismatch is retried twice.
same_both_ways() {
    local tool=$1 opts=$2; shift 2
    local -a o w=("$@")
    read -ra o <<<"$opts"
    local desc="$tool ${o[*]} ${w[*]}" try
    # Options among the subcommand words (esw-devlink -j dev -p show) when the first
    # option is a flag.
    local middle=0
    [ "$tool" = esw-devlink ] && [ ${#w[@]} -ge 2 ] && [ "${o[0]}" != --control ] && middle=1
    rm -f "$T_DIR/middle"
    for try in 1 2 3; do
        "$ESW_BIN/$tool" "${w[@]}" "${o[@]}" >"$T_DIR/after" 2>&1
        echo "exit $?" >>"$T_DIR/after"
        if ! grep -qx "exit 0" "$T_DIR/after" || [ "$(wc -l <"$T_DIR/after")" -lt 2 ]; then
            t_fail "$desc: options after the command fail or print nothing"
            sed 's/^/    | /' "$T_DIR/after" | head -10
            return
        fi
        local same=1
        "$ESW_BIN/$tool" "${o[@]}" "${w[@]}" >"$T_DIR/before" 2>&1
        echo "exit $?" >>"$T_DIR/before"
        cmp -s "$T_DIR/after" "$T_DIR/before" || same=0
        if [ "$middle" = 1 ]; then
            "$ESW_BIN/$tool" "${o[0]}" "${w[0]}" "${o[@]:1}" "${w[@]:1}" >"$T_DIR/middle" 2>&1
            echo "exit $?" >>"$T_DIR/middle"
            cmp -s "$T_DIR/after" "$T_DIR/middle" || same=0
        fi
        if [ "$same" = 1 ]; then t_pass "same bytes both orders: $desc"; return; fi
        sleep 0.2
    done
    t_fail "same bytes both orders: $desc"
    diff "$T_DIR/after" "$T_DIR/before" | sed 's/^/    | /' | head -10
    [ -f "$T_DIR/middle" ] && diff "$T_DIR/after" "$T_DIR/middle" | sed 's/^/    | /' | head -10
}

t_log "esw-devlink: every show command, options first and last"
for o in "-j" "-j -p" "-p -j" "--control $ESW_CONTROL" "--control=$ESW_CONTROL -j"; do
    same_both_ways esw-devlink "$o" dev show
    same_both_ways esw-devlink "$o" dev show esw0
    same_both_ways esw-devlink "$o" dev eswitch show
    same_both_ways esw-devlink "$o" dev eswitch show esw0
    same_both_ways esw-devlink "$o" dev param show
    same_both_ways esw-devlink "$o" dev param show esw0 name hw_latency_us
    same_both_ways esw-devlink "$o" port show
    same_both_ways esw-devlink "$o" port show esw0/1
    same_both_ways esw-devlink "$o" port show pf0vf1
    same_both_ways esw-devlink "$o" resource show
    same_both_ways esw-devlink "$o" resource show esw0
done
for o in "-s" "-s -j" "-j -s -p" "--statistics"; do
    same_both_ways esw-devlink "$o" dev show
    same_both_ways esw-devlink "$o" port show
    same_both_ways esw-devlink "$o" port show p0
done

t_log "esw-dpctl: every show/dump command, options first and last"
for o in "-s" "-j" "-s -j" "--statistics" "--control $ESW_CONTROL"; do
    same_both_ways esw-dpctl "$o" show
    same_both_ways esw-dpctl "$o" show esw@esw0
    same_both_ways esw-dpctl "$o" dump-tunnels
done
for o in "-m" "-j" "--more" "--names" "-m --no-names" "--control $ESW_CONTROL"; do
    same_both_ways esw-dpctl "$o" dump-flows
    same_both_ways esw-dpctl "$o" dump-flows type=offloaded
    same_both_ways esw-dpctl "$o" dump-flows esw@esw0 type=ovs
done
same_both_ways esw-dpctl "--control $ESW_CONTROL" dump-dps
same_both_ways esw-dpctl "-m" get-flow "ufid:$ufid"
same_both_ways esw-dpctl "--more" get-flow "ufid:$ufid"
same_both_ways esw-dpctl "-m" parse-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2
# Commands that need no daemon take the shared options anyway (ignored), anywhere.
for o in "--control $ESW_CONTROL" "--control /nonexistent/esw.sock" "--control=/nonexistent/esw.sock"; do
    same_both_ways esw-dpctl "$o" parse-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2
done
same_both_ways esw-dpctl "-m --control /nonexistent/esw.sock" parse-flow 'in_port(1),eth(),eth_type(0x0800),ipv4(frag=no)' 2

t_log "a datapath that is not the daemon's, and arguments dump-flows cannot honour, are refused as OVS refuses them"
# expect_refusal DESC MESSAGE-REGEX COMMAND...: exit 1, the message, nothing on stdout.
expect_refusal() {
    local desc=$1 re=$2; shift 2
    "$@" >"$T_DIR/refusal.out" 2>"$T_DIR/refusal.err"
    local rc=$?
    check_eq "$desc: exit status" 1 "$rc"
    check_match "$desc: message" "$re" "$(cat "$T_DIR/refusal.err")"
    check_eq "$desc: prints no flow or port" 0 "$(wc -l <"$T_DIR/refusal.out")"
}
expect_refusal "show bogus" '^esw-dpctl: opening datapath bogus failed \(No such device\)$' dpctl show bogus
expect_refusal "dump-flows esw@nosuch" '^esw-dpctl: datapath not found \(Invalid argument\)$' dpctl dump-flows esw@nosuch
expect_refusal "dump-flows esw@nosuch type=all" 'datapath not found' dpctl dump-flows esw@nosuch type=all
expect_refusal "get-flow esw@nosuch ufid" 'datapath not found' dpctl get-flow esw@nosuch "ufid:$ufid"
expect_refusal "dump-conntrack esw@nosuch" 'datapath not found' dpctl dump-conntrack esw@nosuch
expect_refusal "del-if esw@nosuch" '^esw-dpctl: opening datapath \(No such device\)$' dpctl del-if esw@nosuch pf0vf0
expect_refusal "dump-flows filter= with an unmet prerequisite" \
    '^esw-dpctl: Failed to parse filter \(udp,tp_dst=53: prerequisites not met for setting tp_dst\)$' \
    dpctl dump-flows filter=udp,tp_dst=53
expect_refusal "dump-flows filter= with an unknown port" \
    '^esw-dpctl: Failed to parse filter \(in_port=nosuch: bad value for in_port \(nosuch: invalid or unknown port for in_port\)\)$' \
    dpctl dump-flows filter=in_port=nosuch
expect_refusal "dump-flows filter= with an unknown field" 'Failed to parse filter \(bogus=1: unknown field bogus\)' \
    dpctl dump-flows type=all filter=bogus=1
expect_refusal "dump-flows with two datapaths" 'usage: dump-flows' dpctl dump-flows esw@esw0 esw@esw0
expect_refusal "dump-flows type=bogus" '^esw-dpctl: Failed to parse type \(bogus\) \(Invalid argument\)$' dpctl dump-flows type=bogus
t_log "dump-flows filter=: OVS's exact-flow filter, applied under each flow's own mask"
# 198.18.7.1: udp dst 53; .2: udp ports wildcarded (passes any tp_dst filter); .3: udp
# dst 54; .4: tcp dst 53; .5: udp dst 53 from the internal port.
cat >"$T_DIR/filter-flows" <<'EOF2'
in_port(pf0vf0),eth(),eth_type(0x0800),ipv4(src=198.18.7.1,proto=17,frag=no),udp(src=0/0,dst=53) drop
in_port(pf0vf0),eth(),eth_type(0x0800),ipv4(src=198.18.7.2,proto=17,frag=no),udp(src=0/0,dst=0/0) drop
in_port(pf0vf0),eth(),eth_type(0x0800),ipv4(src=198.18.7.3,proto=17,frag=no),udp(src=0/0,dst=54) drop
in_port(pf0vf0),eth(),eth_type(0x0800),ipv4(src=198.18.7.4,proto=6,frag=no),tcp(src=0/0,dst=53) drop
in_port(0),eth(),eth_type(0x0800),ipv4(src=198.18.7.5,proto=17,frag=no),udp(src=0/0,dst=53) drop
EOF2
check "filter: add five flows" dpctl add-flows "$T_DIR/filter-flows"
# selected ARGS...: the 198.18.7.x sources dump-flows ARGS lists (other flows of this
# test may pass a filter too: they are not counted).
selected() { dpctl dump-flows "$@" | grep -o 'src=198\.18\.7\.[0-9]' | sort | tr '\n' ' '; }
check_eq "filter=in_port=pf0vf0,udp,udp_dst=53 (a port name; .2 wildcards udp_dst)" \
    "src=198.18.7.1 src=198.18.7.2 " "$(selected filter=in_port=pf0vf0,udp,udp_dst=53)"
check_eq "filter=udp,udp_dst=53: every port" \
    "src=198.18.7.1 src=198.18.7.2 src=198.18.7.5 " "$(selected filter=udp,udp_dst=53)"
check_eq "filter=tcp,tcp_dst=53" "src=198.18.7.4 " "$(selected filter=tcp,tcp_dst=53)"
check_eq "filter=ip,nw_src=198.18.7.5 with -m, --names, a DP and type=all, either order" \
    "src=198.18.7.5 src=198.18.7.5 " \
    "$(selected -m --names type=all 'filter=ip,nw_src=198.18.7.5'; selected esw@esw0 'filter=ip nw_src(198.18.7.5)' type=all)"
check_match "filter with --names: ports still print by name" 'in_port\(pf0vf0\).*src=198\.18\.7\.4' \
    "$(dpctl dump-flows --names filter=tcp)"
check_eq "filter with -j" 2 "$(dpctl dump-flows -j filter=in_port=pf0vf0,udp,udp_dst=53 | grep -c 'src=198\.18\.7\.')"
check_eq "filter=udp,nw_src=198.18.7.5 with type=non-offloaded: the software-only .5" \
    "src=198.18.7.5 " "$(selected type=non-offloaded filter=udp,nw_src=198.18.7.5)"
# parse_ofp_exact_flow makes in_port 0 OFPP_NONE (0xffff): port 0 (esw0, the local
# port), by number or name, selects no flow, as in OVS.
check_eq "filter=in_port=0 and in_port=esw0 select nothing (as OVS)" "" "$(selected filter=in_port=0; selected filter=in_port=esw0)"
check "filter: remove the five flows" dpctl del-flows "$T_DIR/filter-flows"

printf '%s\n' 'in_port(0),eth(),eth_type(0x0800),ipv4(src=198.18.9.1,frag=no) drop' \
    'in_port(0),eth(),eth_type(0x86dd),ipv6() drop' \
    'in_port(0),eth(),eth_type(0x0800),ipv4(src=198.18.9.2,frag=no) drop' >"$T_DIR/refused-flows"
dpctl add-flows "$T_DIR/refused-flows" >"$T_DIR/refused.out" 2>&1
check_eq "add-flows with a refused flow: exit status" 1 "$?"
check_match "add-flows: the refused line and why" "refused-flows:2: .*File exists" "$(cat "$T_DIR/refused.out")"
check_match "add-flows: says the others were applied" '1 of 3 flows failed; the other 2 were applied' "$(cat "$T_DIR/refused.out")"
check_eq "add-flows: the other two flows stay" 2 "$(dpctl dump-flows | grep -c 'src=198.18.9.[12]')"
check "add-flows: remove them" dpctl del-flows - <<<"$(printf '%s\n' 'in_port(0),eth(),eth_type(0x0800),ipv4(src=198.18.9.1,frag=no)' 'in_port(0),eth(),eth_type(0x0800),ipv4(src=198.18.9.2,frag=no)')"
check "show esw@esw0 (the daemon's datapath by name)" dpctl show esw@esw0
check "show esw0 (by its local port's name)" dpctl show esw0
check_eq "the refused commands changed nothing" 1 "$(dpctl dump-flows | grep -c 'eth_type(0x86dd)')"

# Under skip_sw one refusal undoes the file: the summary says which line was refused,
# how many flows before it were undone and how many after it were cancelled.
dpctl set-policy skip_sw
{ for i in 1 2 3; do echo "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.$((30 + i)),frag=no) drop"; done
  echo 'in_port(0),eth(),eth_type(0x0800),ipv4(src=198.18.9.40,frag=no) drop'
  for i in 1 2; do echo "in_port(1),eth(),eth_type(0x0800),ipv4(src=198.18.9.$((50 + i)),frag=no) drop"; done; } >"$T_DIR/skipsw-flows"
dpctl add-flows "$T_DIR/skipsw-flows" >"$T_DIR/skipsw.out" 2>&1
check_eq "skip_sw add-flows with a refusal: exit status" 1 "$?"
check_match "skip_sw add-flows: the refused line and why" 'skipsw-flows:4: .*not a representor.*Operation not supported' "$(cat "$T_DIR/skipsw.out")"
check_match "skip_sw add-flows: what was undone and cancelled" \
    'line 4 was refused; under skip_sw the file was undone: the 3 flows before it were undone and the 2 after it cancelled' \
    "$(cat "$T_DIR/skipsw.out")"
check_no_match "skip_sw add-flows: no line per cancelled flow" 'Operation canceled' "$(cat "$T_DIR/skipsw.out")"
check_eq "skip_sw add-flows: nothing stays" 0 "$(dpctl dump-flows | grep -c 'src=198.18.9.[345]')"
dpctl set-policy none

check_eq "an option a command does not have fails in either order" \
    "$(dpctl dump-tunnels -m 2>&1)" "$(dpctl -m dump-tunnels 2>&1)"
check_fails "esw-dpctl -m dump-tunnels still fails" dpctl -m dump-tunnels

t_log "help is the command's own, whatever the order of the options"
# same_help USAGE REFERENCE-WORDS -- OTHER ORDERS (each one quoted string): every order
# prints the reference's bytes and exits 0, and the reference is the command's help.
same_help() {
    local usage=$1 reference=$2; shift 2
    local -a w
    read -ra w <<<"$reference"
    "$ESW_BIN/${w[0]}" "${w[@]:1}" >"$T_DIR/help-ref" 2>&1
    check_match "$reference: the command's own help" "USAGE: $usage" "$(cat "$T_DIR/help-ref")"
    local order
    for order in "$@"; do
        read -ra w <<<"$order"
        "$ESW_BIN/${w[0]}" "${w[@]:1}" >"$T_DIR/help-other" 2>&1
        echo "exit $?" >>"$T_DIR/help-other"
        echo "exit 0" >>"$T_DIR/help-ref"
        if cmp -s "$T_DIR/help-ref" "$T_DIR/help-other"; then t_pass "help as $reference: $order"; else
            t_fail "help as $reference: $order"
            diff "$T_DIR/help-ref" "$T_DIR/help-other" | sed 's/^/    | /' | head -6
        fi
        sed -i '$d' "$T_DIR/help-ref"
    done
}
same_help "esw-devlink port function set" "esw-devlink port function set --help" \
    "esw-devlink --control $ESW_CONTROL port function set --help" \
    "esw-devlink port function set --control $ESW_CONTROL --help" \
    "esw-devlink -j port -p function set --help" \
    "esw-devlink --help port function set" \
    "esw-devlink help port function set" \
    "esw-devlink --control $ESW_CONTROL help port function set"
same_help "esw-dpctl mod-flow" "esw-dpctl mod-flow --help" \
    "esw-dpctl --control $ESW_CONTROL mod-flow --help" \
    "esw-dpctl -m mod-flow -h" \
    "esw-dpctl help mod-flow" \
    "esw-dpctl --control $ESW_CONTROL help mod-flow" \
    "esw-dpctl help --control $ESW_CONTROL mod-flow"
same_help "esw-dpctl <subcommand>" "esw-dpctl --help" "esw-dpctl --control $ESW_CONTROL --help" "esw-dpctl -m help"

t_log "a client that is not root"
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
out=$(as_nobody "$ESW_BIN/esw-devlink" dev show 2>&1)
check_match "devlink as nobody: the socket is root-only, named" "$ESW_CONTROL is root-only" "$out"
check_no_match "devlink as nobody: not a bare send error" "^esw-devlink: send \(Broken pipe\)$" "$out"
out=$(as_nobody "$ESW_BIN/esw-dpctl" show 2>&1)
check_match "dpctl as nobody: the socket is root-only, named" "$ESW_CONTROL is root-only" "$out"
# A socket someone opened up (mode 0666, directory searchable): connect works, and eswd,
# checking the peer's credentials, closes the connection. The client says why.
chmod 0711 "$T_DIR"
chmod 0666 "$ESW_CONTROL"
out=$(as_nobody "$ESW_BIN/esw-devlink" port show 2>&1)
check_match "devlink as nobody through an open socket: root-only, named" "$ESW_CONTROL is root-only" "$out"
out=$(as_nobody "$ESW_BIN/esw-dpctl" dump-flows 2>&1)
check_match "dpctl as nobody through an open socket: root-only, named" "$ESW_CONTROL is root-only" "$out"
check_match "eswd refused uid 65534" "refused control connection from uid 65534" "$(cat "$T_DIR/eswd.log")"
chmod 0600 "$ESW_CONTROL"
chmod 0700 "$T_DIR"
check "root still gets answers" devlink dev show
out=$(ESW_CONTROL=$T_DIR/nothing.sock devlink dev show 2>&1)
check_match "no daemon: still 'is eswd running?'" "cannot connect to $T_DIR/nothing.sock \(is eswd running\?\)" "$out"

t_log "a device called rp0"
t_ns rp rpwire
t_veth rp up1 rpwire wire1
RP_CONTROL=$T_DIR/rp0.sock
t_in rp "$ESW_BIN/eswd" --name rp0 --vfs 2 --uplink up1 --control "$RP_CONTROL" >>"$T_DIR/eswd-rp0.log" 2>&1 &
T_PIDS+=("$!")
t_wait "eswd rp0 answers" 10 "$ESW_BIN/esw-devlink" --control "$RP_CONTROL" dev show || cat "$T_DIR/eswd-rp0.log"
rp() { ESW_CONTROL=$RP_CONTROL "$ESW_BIN/esw-devlink" "$@"; }
out=$(rp port show 2>&1)
check_match "port show lists rp0's uplink" "^rp0/0: type eth netdev p0 flavour physical" "$out"
check_match "port show lists rp0's VF ports" "^rp0/2: type eth netdev pf0vf1 flavour pcivf pfnum 0 vfnum 1" "$out"
check_eq "port show lists every port of rp0" 3 "$(printf '%s\n' "$out" | grep -c '^rp0/')"
check_eq "port show rp0 lists the same" "$out" "$(rp port show rp0 2>&1)"
check_eq "--control first, port show" "$out" "$("$ESW_BIN/esw-devlink" --control "$RP_CONTROL" port show 2>&1)"
check_match "port show NETDEV finds rp0's port" "^rp0/1: type eth netdev pf0vf0" "$(rp port show pf0vf0 2>&1)"
check "port function set NETDEV on rp0" rp port function set pf0vf1 hw_addr 02:00:00:00:42:01
check_match "the MAC is set on rp0/2" "hw_addr 02:00:00:00:42:01" "$(rp port show rp0/2 2>&1)"
check_eq "the VF netdev has it" "02:00:00:00:42:01" "$(t_in rp cat /sys/class/net/rp0v1/address)"
check_eq "dev show without a device" "rp0" "$(rp dev show 2>&1)"
check_match "dev eswitch show without a device" "^rp0: mode switchdev" "$(rp dev eswitch show 2>&1)"
check_match "dev param show without a device" "^rp0:$" "$(rp dev param show 2>&1)"
check_match "resource show without a device" "^rp0:$" "$(rp resource show 2>&1)"
check_match "-j resource show without a device: devlink's \"resources\" section" '^\{"resources":\{"rp0":' "$(rp -j resource show 2>&1)"
check_match "a device the socket does not serve is still refused" "no device esw0 \(this is rp0\)" "$(rp port show esw0/1 2>&1)"
check_match "an unknown port word says so" "nosuch: no such device or port" "$(rp port show nosuch 2>&1)"

if [ "${ESW_TEST_INSTALL:-1}" != 0 ]; then
    t_log "scripts/install.sh into a temporary prefix (release build)"
    prefix=$T_DIR/prefix
    if "$T_ROOT/scripts/install.sh" "$prefix" >"$T_DIR/install.log" 2>&1; then t_pass "install.sh $prefix"; else
        t_fail "install.sh $prefix"; tail -20 "$T_DIR/install.log" | sed 's/^/    | /'
    fi
    for tool in eswd esw-dpctl esw-devlink; do
        check "$tool installed and runs" "$prefix/bin/$tool" --help
        check "man page for $tool" test -s "$prefix/share/man/man1/$tool.1"
        for f in "share/bash-completion/completions/$tool" "share/zsh/site-functions/_$tool" \
                 "share/fish/vendor_completions.d/$tool.fish"; do
            check "$f is not empty" test -s "$prefix/$f"
        done
    done
    # Completion scripts and man pages know the subcommands, nested ones included.
    for tool in esw-dpctl esw-devlink; do
        words="dump-flows dump-tunnels add-flows set-policy"
        [ "$tool" = esw-devlink ] && words="eswitch param resource function"
        for f in "share/bash-completion/completions/$tool" "share/zsh/site-functions/_$tool" \
                 "share/fish/vendor_completions.d/$tool.fish" "share/man/man1/$tool.1"; do
            for w in $words; do check "$f names $w" grep -q -- "$w" "$prefix/$f"; done
        done
    done
    check "eswd's bash completion offers --uplink" grep -q -- "--uplink" "$prefix/share/bash-completion/completions/eswd"
    check_match "the man page renders" "dump-flows" "$(MANWIDTH=80 man -l "$prefix/share/man/man1/esw-dpctl.1" 2>/dev/null)"
    check_match "the installed esw-devlink talks to eswd" '"rp0"' "$("$prefix/bin/esw-devlink" -j --control "$RP_CONTROL" dev show 2>&1)"
fi
