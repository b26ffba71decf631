# shellcheck shell=bash
# The network lock (km/fd/km_netlock.c; docs/snapshot-files.md, "Kind 8"): after a mode=stop
# snapshot no socket owns a saved TCP connection until the resume rebuilds it, and km's nf_tables
# table km_lock_<pid> drops the peer's segments meanwhile, so that the peer retransmits instead
# of being reset. Sourced by run.sh after fd_inet.sh and fd_servers.sh, whose helpers it uses
# (inet_bg, inet_wait, inet_server, inet_expect, inet_show; srv_bg, srv_wait, srv_rc; busybox.sh's
# BUSYBOX); defines run_fd_netlock. Needs root, nf_tables and IPv6 on the loopback interface.

NETLOCK_PORT=$((INET_PORT + 10))
NETLOCK_FDREC=$INET_TOOLS/snap-fdrec
NETLOCK_SEAL=$INET_TOOLS/km-snapseal

# netlock_name SNAP: the lock table --inspect names for SNAP's established connection.
netlock_name() {
	"$KM" --inspect "$1" 2>/dev/null | sed -n 's/.*locked by nft table inet \(km_lock_[0-9]*\) .*/\1/p' | head -n 1
}

netlock_exists() {
	nft list tables 2>/dev/null | grep -qx "table inet $1"
}

# netlock_snapshot DIR PORT: echo_epoll under km with a client (DIR/a) that says "one", waits for
# DIR/go, then says "two" and "three"; snapshotted with mode=stop once the client waits. Sets
# LOCK (the table's name) and CLIENT (the client's pid); the lock must exist once km is gone.
netlock_snapshot() {
	local d=$1 port=$2 rc
	inet_server "$d" s1 "$GUESTS/gcc/echo_epoll" "$port"
	inet_wait "$d/s1.out" "listening" || return 1
	inet_bg "$d/a" "$INET_CONVO" 127.0.0.1 "$port" say:one "wait:$d/go" say:two say:three
	CLIENT=$BG_PID
	inet_wait "$d/a.out" "waiting" || return 1
	"$INET_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop >"$d/mgmt.out" 2>&1 || bad "snapshot: $(cat "$d/mgmt.out")"
	wait "$SRV_PID"
	rc=$?
	[ $rc = 0 ] || bad "the snapshotted km exited with $rc"
	[ -s "$d/s1.err" ] && bad "the snapshotted km wrote to stderr: $(head -c 300 "$d/s1.err")"
	LOCK=$(netlock_name "$d/snap")
	[ -n "$LOCK" ] || { bad "--inspect names no lock table"; return 1; }
	netlock_exists "$LOCK" || bad "no table inet $LOCK after the snapshot"
	return 0
}

# (1) The client sends while no km owns its connection (its segment is dropped, then
# retransmitted); the resumed server answers it: every reply once, in order, no reset.
netlock_send_in_gap() {
	local test="fd_netlock/send-in-gap"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_netlock/gap port=$((NETLOCK_PORT + 1)) rc
	rm -rf "$d"
	mkdir -p "$d"
	if netlock_snapshot "$d" "$port"; then
		touch "$d/go" # the client sends "two" now: no socket owns the connection
		sleep 1
		inet_server "$d" s2 "$d/snap"
		"$INET_MGMT" --wait-socket 20 "$d/s2.sock" status >/dev/null 2>&1 || bad "the resumed km never answered"
		wait "$CLIENT"
		inet_expect "$d/a.out" "connected
reply: 1 one
waiting $d/go
reply: 2 two
reply: 3 three
done"
		netlock_exists "$LOCK" && bad "table inet $LOCK is left after the resume"
		"$INET_CONVO" 127.0.0.1 "$port" say:quit >"$d/q.out" 2>&1
		wait "$SRV_PID"
		rc=$?
		[ $rc = 0 ] || bad "the resumed km exited with $rc"
		[ -s "$d/s2.err" ] && bad "the resumed km wrote to stderr"
	fi
	[ -n "$LOCK" ] && nft delete table inet "$LOCK" 2>/dev/null
	[ -n "$T_DIAG" ] && inet_show "$d/mgmt.out" "$d/s1.err" "$d/s2.err" "$d/a.out" "$d/a.err"
	end
}

# (2) A resume that fails (the connection's record is corrupt) removes the lock too: the
# connection is gone, and its peer is told so by a reset rather than left waiting.
netlock_failed_resume() {
	local test="fd_netlock/failed-resume"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_netlock/failed port=$((NETLOCK_PORT + 2)) rc
	rm -rf "$d"
	mkdir -p "$d"
	if netlock_snapshot "$d" "$port"; then
		# inet record 1 is the connection (0 the listener); byte 56 its backlog, 0 unless listening
		"$NETLOCK_FDREC" "$d/snap" 8 1 56 4 7 >"$d/edit.out" 2>&1 || bad "snap-fdrec: $(cat "$d/edit.out")"
		"$NETLOCK_SEAL" "$d/snap" >/dev/null 2>&1 || bad "km-snapseal failed"
		"$KM" "$d/snap" >"$d/r.out" 2>"$d/r.err"
		rc=$?
		[ $rc = 1 ] || bad "the resume of a corrupt record exited with $rc, expected 1"
		grep -q "^km: .*(inet) .*corrupt record: backlog 7" "$d/r.err" || bad "the failed resume does not say why: $(cat "$d/r.err")"
		netlock_exists "$LOCK" && bad "table inet $LOCK is left after a failed resume"
		touch "$d/go"
		wait "$CLIENT"
		grep -q "^error: .*: Connection reset by peer$" "$d/a.out" ||
			bad "the client was not reset once the lock went: $(tail -n 1 "$d/a.out")"
	fi
	[ -n "$LOCK" ] && nft delete table inet "$LOCK" 2>/dev/null
	[ -n "$T_DIAG" ] && inet_show "$d/mgmt.out" "$d/r.err" "$d/a.out"
	end
}

# (3) A lock km cannot install (here a table of its name already there, whose chain "input"
# hooks output: nf_tables refuses the transaction) leaves the snapshot good, with one warning
# line, and a record that names no lock; the resume still works (the client waits for it) and
# leaves that table alone: km deletes only what it made.
netlock_cannot_lock() {
	local test="fd_netlock/cannot-lock"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_netlock/cannot port=$((NETLOCK_PORT + 3)) rc kmpid
	rm -rf "$d"
	mkdir -p "$d"
	inet_server "$d" s1 "$GUESTS/gcc/echo_epoll" "$port"
	if inet_wait "$d/s1.out" "listening"; then
		kmpid=$(pgrep -P "$SRV_PID" | head -n 1)
		LOCK=km_lock_$kmpid
		nft add table inet "$LOCK" && nft add chain inet "$LOCK" input '{ type filter hook output priority 0; }' ||
			bad "could not make table inet $LOCK"
		inet_bg "$d/a" "$INET_CONVO" 127.0.0.1 "$port" say:one "wait:$d/go" say:two
		CLIENT=$BG_PID
		inet_wait "$d/a.out" "waiting"
		"$INET_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop >"$d/mgmt.out" 2>&1 || bad "snapshot: $(cat "$d/mgmt.out")"
		wait "$SRV_PID"
		rc=$?
		[ $rc = 0 ] || bad "the snapshotted km exited with $rc"
		[ "$(wc -l <"$d/s1.err")" = 1 ] && grep -q "^km: warning: the snapshot's 1 established TCP connections are not locked until the resume (creating nf_tables table inet $LOCK: " "$d/s1.err" ||
			bad "no one warning line: $(cat "$d/s1.err")"
		inet_server "$d" s2 "$d/snap"
		"$INET_MGMT" --wait-socket 20 "$d/s2.sock" status >/dev/null 2>&1 || bad "the resumed km never answered"
		touch "$d/go"
		wait "$CLIENT"
		inet_expect "$d/a.out" "connected
reply: 1 one
waiting $d/go
reply: 2 two
done"
		# the snapshot installed no lock: the resume must not touch the table someone else made
		netlock_exists "$LOCK" || bad "the resume deleted table inet $LOCK, which km had not made"
		grep -q "locked by nft table" <("$KM" --inspect "$d/snap") && bad "--inspect names a lock km did not install"
		"$INET_CONVO" 127.0.0.1 "$port" say:quit >"$d/q.out" 2>&1
		wait "$SRV_PID"
	fi
	[ -n "$LOCK" ] && nft delete table inet "$LOCK" 2>/dev/null
	[ -n "$T_DIAG" ] && inet_show "$d/mgmt.out" "$d/s1.err" "$d/s2.err" "$d/a.out"
	end
}

# (4) IPv6: busybox nc (listening on ::) with a client of ::1 that sends while no km owns the
# connection; the rule matches ip6 addresses, and the resumed nc prints what was sent.
netlock_ipv6() {
	local test="fd_netlock/ipv6-send-in-gap"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_netlock/ipv6 port=$((NETLOCK_PORT + 4)) w1 w2 s1 s2 a
	rm -rf "$d"
	mkdir -p "$d"
	mkfifo "$d/in1" "$d/in2"
	exec {w1}<>"$d/in1" {w2}<>"$d/in2"
	srv_bg "$d/s1" "$d/in1" "$KM" --mgmt="$d/s1.sock" "$BUSYBOX" nc -l -p "$port"
	s1=$BG_PID
	if srv_listening "$port"; then
		srv_bg "$d/a" /dev/null "$INET_CONVO" ::1 "$port" send:c1 "wait:$d/go" send:c2
		a=$BG_PID
		srv_wait "$d/s1.out" '^c1$'
		srv_wait "$d/a.out" '^waiting'
		"$INET_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop >"$d/mgmt.out" 2>&1 || bad "snapshot: $(cat "$d/mgmt.out")"
		srv_rc "$s1" "the snapshotted km"
		LOCK=$(netlock_name "$d/snap")
		nft list table inet "$LOCK" >"$d/table.out" 2>&1
		grep -Eq "ip6 saddr ::1 ip6 daddr ::1 tcp sport [0-9]+ tcp dport $port drop" "$d/table.out" ||
			bad "table inet '$LOCK' has no rule for the IPv6 connection"
		touch "$d/go"
		sleep 1
		srv_bg "$d/s2" "$d/in2" "$KM" --mgmt="$d/s2.sock" "$d/snap"
		s2=$BG_PID
		srv_wait "$d/s2.out" '^c2$' || bad "the resumed nc did not get what the client sent in the gap"
		srv_rc "$a" "the client"
		srv_rc "$s2" "the resumed km"
		inet_expect "$d/a.out" "connected
waiting $d/go
done"
		netlock_exists "$LOCK" && bad "table inet $LOCK is left after the resume"
		[ -s "$d/s2.err" ] && bad "the resumed km wrote to stderr"
	fi
	exec {w1}>&- {w2}>&-
	[ -n "$LOCK" ] && nft delete table inet "$LOCK" 2>/dev/null
	[ -n "$T_DIAG" ] && inet_show "$d/mgmt.out" "$d/s1.err" "$d/s2.out" "$d/s2.err" "$d/a.out" "$d/table.out"
	end
}

# (5) A client streaming without pause through a mode=stop snapshot: bytes arrive while km writes
# the file (the lock goes on before repair mode reads the queues: the host would acknowledge
# them, then lose them with the socket), while no km owns the connection, and during the resume.
netlock_stream() {
	local test="fd_netlock/stream-through-stop"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_netlock/stream port=$((NETLOCK_PORT + 5))
	rm -rf "$d"
	mkdir -p "$d"
	inet_server "$d" s1 "$GUESTS/gcc/echo_epoll" "$port"
	if inet_wait "$d/s1.out" "listening"; then
		python3 "$ROOT/tests/tools/tcp-stream.py" "$port" "$KM" "$INET_MGMT" "$d/s1.sock" "$d/snap" "$d/s2.sock" \
			>"$d/client.out" 2>&1 || bad "the streaming client: $(head -c 400 "$d/client.out")"
		grep -q "in order" "$d/client.out" || bad "no 'in order' line from the client: $(head -c 300 "$d/client.out")"
	fi
	wait "$SRV_PID" 2>/dev/null
	LOCK=$(netlock_name "$d/snap")
	[ -n "$LOCK" ] && netlock_exists "$LOCK" && bad "table inet $LOCK left after the resume"
	end
}

run_fd_netlock() {
	LOCK=""
	netlock_send_in_gap
	LOCK=""
	netlock_failed_resume
	LOCK=""
	netlock_cannot_lock
	LOCK=""
	netlock_ipv6
	LOCK=""
	netlock_stream
}
