# shellcheck shell=bash
# TCP and UDP sockets across snapshots (issue 9, the inet kind): an epoll echo server
# (tests/guests/echo_epoll.c) snapshotted over the management socket while clients
# (tests/tools/tcp-convo) hold connections mid-conversation. Sourced by run.sh after its helpers
# (want, begin, bad, note, end, km_only, show_file); defines run_fd_inet. Needs root (TCP_REPAIR
# needs CAP_NET_ADMIN) and the loopback interface.
#
# Between a mode=stop snapshot and the resume no socket owns a saved connection; km's network
# lock (docs/snapshot-files.md, "Kind 8") drops the peer's segments meanwhile, and
# tests/e2e/fd_netlock.sh has a client send then. Here each client still waits for a go-ahead file
# that the test creates only once the resumed km answers on its management socket (which it opens
# after the fd table is rebuilt), so that these tests do not depend on nf_tables.

INET_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $INET_TOOLS in /*) ;; *) INET_TOOLS=$PWD/$INET_TOOLS ;; esac
INET_CONVO=$INET_TOOLS/tcp-convo
INET_MGMT=$INET_TOOLS/km-mgmt
INET_PORT=$((20000 + $$ % 20000))

# inet_bg OUT CMD...: runs CMD in the background with only fds 0-2 (stdin /dev/null; stdout and
# stderr to OUT.out and OUT.err); BG_PID.
inet_bg() {
	local out=$1
	shift
	{ (
		for f in /proc/$BASHPID/fd/*; do
			f=${f##*/}
			[ "$f" -gt 2 ] && eval "exec $f>&-"
		done
		exec timeout -k 5 "$TIMEOUT" "$@"
	) >"$out.out" 2>"$out.err" </dev/null & } 2>/dev/null
	BG_PID=$!
}

# inet_wait FILE TEXT: waits (up to 20 s) until FILE has a line that starts with TEXT.
inet_wait() {
	local i
	for ((i = 0; i < 400; i++)); do
		grep -q -- "^$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	bad "timed out waiting for '$2' in $1"
	return 1
}

# inet_server DIR NAME KMARGS...: echo_epoll under km with --mgmt=DIR/NAME.sock; SRV_PID.
inet_server() {
	local d=$1 name=$2
	shift 2
	inet_bg "$d/$name" "$KM" --mgmt="$d/$name.sock" "$@"
	SRV_PID=$BG_PID
}

inet_show() {
	local f
	for f in "$@"; do show_file "$(basename "$f")" "$f"; done
}

# inet_expect FILE LINES: FILE is exactly LINES.
inet_expect() {
	if [ "$(cat "$1")" != "$2" ]; then
		bad "$(basename "$1") is not what it must be"
		note "      expected:"
		note "$(printf '%s\n' "$2" | sed 's/^/      | /')"
	fi
}

# (1) mode=stop, resume with `km SNAP`: the held connection goes on, listener and UDP too.
inet_stop_resume() {
	local fl=$1 test="fd_inet/$1/stop-resume"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_inet/$fl/stop port=$((INET_PORT + 1)) uport=$((INET_PORT + 2)) rc opts
	mkdir -p "$d"
	inet_server "$d" s1 "$GUESTS/$fl/echo_epoll" "$port" "$uport"
	inet_wait "$d/s1.out" "listening" || { end; return; }
	inet_bg "$d/a" "$INET_CONVO" 127.0.0.1 "$port" say:one say:opts "wait:$d/go" say:two say:opts
	local a=$BG_PID
	inet_wait "$d/a.out" "waiting"
	"$INET_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop >"$d/mgmt.out" 2>&1 || bad "snapshot: $(cat "$d/mgmt.out")"
	wait "$SRV_PID"
	rc=$?
	[ $rc = 0 ] || bad "the snapshotted km exited with $rc"
	"$KM" --inspect "$d/snap" >"$d/inspect.out" 2>&1
	grep -q "inet rw,nonblock tcp 127.0.0.1:$port listening backlog 37$" "$d/inspect.out" || bad "--inspect does not show the listener"
	grep -q "inet rw udp 127.0.0.1:$uport bound$" "$d/inspect.out" || bad "--inspect does not show the UDP socket"
	grep -q "tcp 127.0.0.1:$port -> 127.0.0.1:[0-9]* established, 0 bytes unsent" "$d/inspect.out" ||
		bad "--inspect does not show the established connection"
	inet_server "$d" s2 "$d/snap"
	"$INET_MGMT" --wait-socket 20 "$d/s2.sock" status >/dev/null 2>&1 || bad "the resumed km never answered"
	touch "$d/go"
	wait "$a"
	opts=$(sed -n 's/^reply: 2 //p' "$d/a.out")
	[[ $opts == *"rcvbuf=200000"* && $opts == *"keepidle=77"* && $opts == *"nonblock=1"* ]] || bad "options before the snapshot: '$opts'"
	inet_expect "$d/a.out" "connected
reply: 1 one
reply: 2 $opts
waiting $d/go
reply: 3 two
reply: 4 $opts
done"
	# the UDP socket still receives (and answers)
	local u reply=""
	exec {u}<>"/dev/udp/127.0.0.1/$uport"
	printf ping >&"$u"
	read -r -t 20 -N 8 reply <&"$u"
	exec {u}>&-
	[ "$reply" = "udp ping" ] || bad "UDP after resume answered '$reply'"
	"$INET_CONVO" 127.0.0.1 "$port" say:new say:quit >"$d/b.out" 2>&1
	inet_expect "$d/b.out" "connected
reply: 1 new
reply: 2 bye
done"
	wait "$SRV_PID"
	rc=$?
	[ $rc = 0 ] || bad "the resumed km exited with $rc"
	[ -s "$d/s2.err" ] && bad "the resumed km wrote to stderr"
	[ -n "$T_DIAG" ] && inet_show "$d/mgmt.out" "$d/s1.err" "$d/s2.out" "$d/s2.err" "$d/a.out" "$d/a.err" "$d/inspect.out"
	end
}

# (2) 25 keep-running snapshots, each between two requests on two held connections.
inet_keep_cycles() {
	local fl=$1 test="fd_inet/$1/keep-25"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_inet/$fl/keep port=$((INET_PORT + 3)) i rc
	local -a sa=() sb=()
	mkdir -p "$d"
	for i in $(seq 1 25); do
		sa+=("say:a$i" "wait:$d/goa$i")
		sb+=("say:b$i" "wait:$d/gob$i")
	done
	inet_server "$d" s "$GUESTS/$fl/echo_epoll" "$port"
	inet_wait "$d/s.out" "listening" || { end; return; }
	inet_bg "$d/a" "$INET_CONVO" 127.0.0.1 "$port" "${sa[@]}" say:last
	local a=$BG_PID
	inet_bg "$d/b" "$INET_CONVO" 127.0.0.1 "$port" "${sb[@]}" say:last
	local b=$BG_PID
	for i in $(seq 1 25); do
		inet_wait "$d/a.out" "waiting $d/goa$i$" && inet_wait "$d/b.out" "waiting $d/gob$i$" || break
		"$INET_MGMT" "$d/s.sock" snapshot path="$d/snap" mode=continue >"$d/mgmt.out" 2>&1 ||
			{ bad "snapshot $i: $(cat "$d/mgmt.out")"; break; }
		touch "$d/goa$i" "$d/gob$i"
	done
	wait "$a" "$b"
	local want_a="connected" want_b="connected"
	for i in $(seq 1 25); do
		want_a+=$'\n'"reply: $i a$i"$'\n'"waiting $d/goa$i"
		want_b+=$'\n'"reply: $i b$i"$'\n'"waiting $d/gob$i"
	done
	inet_expect "$d/a.out" "$want_a"$'\n'"reply: 26 last"$'\n'"done"
	inet_expect "$d/b.out" "$want_b"$'\n'"reply: 26 last"$'\n'"done"
	"$INET_CONVO" 127.0.0.1 "$port" say:quit >"$d/q.out" 2>&1
	wait "$SRV_PID"
	rc=$?
	[ $rc = 0 ] || bad "km exited with $rc"
	[ -n "$T_DIAG" ] && inet_show "$d/s.out" "$d/s.err" "$d/a.err" "$d/b.err"
	end
}

# (5) refuse fails the snapshot naming the connection and the program goes on; close resumes
# the connection as reset by the peer: the program's read fails with ECONNRESET, not EBADF.
inet_refuse_close() {
	local fl=$1 test="fd_inet/$1/refuse-close"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_inet/$fl/refuse port=$((INET_PORT + 4)) rc
	mkdir -p "$d"
	inet_server "$d" s1 --tcp-established=refuse "$GUESTS/$fl/echo_epoll" "$port"
	inet_wait "$d/s1.out" "listening" || { end; return; }
	inet_bg "$d/a" "$INET_CONVO" 127.0.0.1 "$port" say:one "wait:$d/go" say:two end
	local a=$BG_PID
	inet_wait "$d/a.out" "waiting"
	if "$INET_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=continue >"$d/mgmt.out" 2>&1; then
		bad "the snapshot of an established connection succeeded with --tcp-established=refuse"
	else
		grep -q "error snapshot-failed .*fd [0-9]* (inet): tcp 127.0.0.1:$port -> 127.0.0.1:[0-9]* is a TCP connection (established); pass --tcp-established=repair" "$d/mgmt.out" ||
			bad "the refusal does not name the fd and the connection: $(cat "$d/mgmt.out")"
	fi
	touch "$d/go"
	inet_wait "$d/a.out" "reply: 2 two"
	"$INET_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop tcp=close >"$d/mgmt2.out" 2>&1 ||
		bad "snapshot tcp=close: $(cat "$d/mgmt2.out")"
	wait "$SRV_PID" "$a"
	"$KM" --inspect "$d/snap" | grep -q "reset (resumes as reset by the peer)" || bad "--inspect does not show the connection as reset"
	inet_server "$d" s2 "$d/snap"
	"$INET_MGMT" --wait-socket 20 "$d/s2.sock" status >/dev/null 2>&1 || bad "the resumed km never answered"
	inet_wait "$d/s2.out" "read error: "
	grep -qx "read error: Connection reset by peer" "$d/s2.out" || bad "the resumed program's read did not fail with ECONNRESET"
	"$INET_CONVO" 127.0.0.1 "$port" say:quit >"$d/q.out" 2>&1
	wait "$SRV_PID"
	rc=$?
	[ $rc = 0 ] || bad "the resumed km exited with $rc"
	inet_expect "$d/a.out" "connected
reply: 1 one
waiting $d/go
reply: 2 two
end: eof
done"
	[ -n "$T_DIAG" ] && inet_show "$d/mgmt.out" "$d/mgmt2.out" "$d/s1.err" "$d/s2.out" "$d/s2.err" "$d/a.err"
	end
}

run_fd_inet() {
	local fl
	for fl in gcc musl; do
		inet_stop_resume "$fl"
		inet_keep_cycles "$fl"
		inet_refuse_close "$fl"
	done
}
