# shellcheck shell=bash
# Real servers keep serving across snapshots (issue 9): a client holds an established connection
# mid-conversation while the server is snapshotted over the management socket; after a mode=stop
# snapshot and `km SNAP`, or across 25 mode=continue snapshots, the same connection goes on with
# no reset and no lost or duplicated byte. Sourced by run.sh after its helpers (want, begin, bad,
# note, end, km_only, show_file) and busybox.sh's BUSYBOX; defines run_fd_servers. Needs root
# (TCP_REPAIR needs CAP_NET_ADMIN) and the loopback interface (IPv6 too: busybox nc listens on ::).
#
#   fd_servers/nc/stop-resume      `busybox nc -l -p PORT` (one process, no fork: it accepts one
#                                  connection, closes its listener and relays the connection to
#                                  its stdin and stdout); resumed with new stdin and stdout (fds
#                                  0-2 are the resuming km's), the client's connection carries on
#   fd_servers/nc/keep-25          the same nc across 25 keep-running snapshots, every other one
#                                  requested right after bytes were sent both ways, without
#                                  waiting for them to arrive
#   fd_servers/http/FLAVOUR/stop-resume   tests/guests/http_keepalive.c (poll, keep-alive) with
#                                  three held connections, two of them halfway through a request;
#                                  after the resume they finish with the right responses (checked
#                                  against the files by tests/tools/http-convo) and new clients
#                                  connect; the server's per-connection and total counts go on
#   fd_servers/http/FLAVOUR/keep-25  25 keep-running snapshots, each with three held connections
#                                  mid-request or between requests and a new client's 200 KB
#                                  download started just before it
#
# The gap (docs/snapshot-files.md, "Kind 8"): between a mode=stop snapshot and the resume no
# socket owns a saved connection, so clients owe the server nothing then (every byte they sent is
# acknowledged, every byte they got acknowledged at once) and send nothing: each waits for a
# go-ahead file the test creates once the resumed km answers on its management socket (it opens
# it after the fd table is rebuilt).

SRV_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $SRV_TOOLS in /*) ;; *) SRV_TOOLS=$PWD/$SRV_TOOLS ;; esac
SRV_MGMT=$SRV_TOOLS/km-mgmt
SRV_TCP=$SRV_TOOLS/tcp-convo
SRV_HTTP=$SRV_TOOLS/http-convo
# Below the ephemeral range (32768-), apart from fd_inet.sh's ports within one run.
SRV_PORT=$((10000 + $$ % 22000))

# srv_bg OUT IN CMD...: runs CMD in the background with only fds 0-2 (stdin from IN; stdout and
# stderr to OUT.out and OUT.err); BG_PID.
srv_bg() {
	local out=$1 in=$2
	shift 2
	{ (
		for f in "/proc/$BASHPID"/fd/*; do
			f=${f##*/}
			[ "$f" -gt 2 ] && eval "exec $f>&-"
		done
		exec timeout -k 5 "$TIMEOUT" "$@" <"$in"
	) >"$out.out" 2>"$out.err" </dev/null & } 2>/dev/null
	BG_PID=$!
}

# srv_wait FILE REGEX: waits (up to 20 s) until FILE has a line matching REGEX (grep -E).
srv_wait() {
	local i
	for ((i = 0; i < 400; i++)); do
		grep -Eq -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	bad "timed out waiting for '$2' in $1"
	return 1
}

# srv_listening PORT: waits (up to 20 s) until a TCP socket listens on PORT (seen in /proc/net,
# since a probing connection would be the one a single-connection server accepts).
srv_listening() {
	local hex i
	hex=$(printf ':%04X$' "$1")
	for ((i = 0; i < 400; i++)); do
		awk -v p="$hex" '$4 == "0A" && $2 ~ p { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 && return 0
		sleep 0.05
	done
	bad "nothing listens on port $1 after 20 s"
	return 1
}

# srv_expect FILE LINES: FILE is exactly LINES.
srv_expect() {
	if [ "$(cat "$1")" != "$2" ]; then
		bad "$(basename "$1") is not what it must be"
		note "      expected:"
		note "$(printf '%s\n' "$2" | sed 's/^/      | /')"
		show_file "$(basename "$1")" "$1"
	fi
}

# srv_rc PID WHAT: the process PID must exit 0.
srv_rc() {
	local rc
	wait "$1"
	rc=$?
	[ $rc = 0 ] || bad "$2 exited with $rc"
}

srv_show() {
	local f
	for f in "$@"; do show_file "$(basename "$f")" "$f"; done
}

# (1) busybox nc, mode=stop, resumed with `km SNAP` on a new stdin and stdout.
srv_nc_stop() {
	local test=fd_servers/nc/stop-resume
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_servers/nc/stop port=$((SRV_PORT + 1)) w1 w2
	mkdir -p "$d"
	mkfifo "$d/in1" "$d/in2"
	exec {w1}<>"$d/in1" {w2}<>"$d/in2"
	srv_bg "$d/s1" "$d/in1" "$KM" --mgmt="$d/s1.sock" "$BUSYBOX" nc -l -p "$port"
	local s1=$BG_PID
	srv_listening "$port" || { exec {w1}>&- {w2}>&-; end; return; }
	srv_bg "$d/a" /dev/null "$SRV_TCP" 127.0.0.1 "$port" send:c1 read send:c2 read "wait:$d/go" \
		send:c3 read send:c4 read end
	local a=$BG_PID
	srv_wait "$d/s1.out" '^c1$' && echo s1 >&"$w1"
	srv_wait "$d/s1.out" '^c2$' && echo s2 >&"$w1"
	srv_wait "$d/a.out" '^waiting'
	"$SRV_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop >"$d/mgmt.out" 2>&1 || bad "snapshot: $(cat "$d/mgmt.out")"
	srv_rc "$s1" "the snapshotted km"
	exec {w1}>&-
	"$KM" --inspect "$d/snap" >"$d/inspect.out" 2>&1
	grep -Eq "inet rw tcp6 \[::ffff:127\.0\.0\.1\]:$port -> \[::ffff:127\.0\.0\.1\]:[0-9]+ established, 0 bytes unsent, 0 bytes unacknowledged, 0 bytes unread(, locked by nft table inet km_lock_[0-9]+ .*)?$" "$d/inspect.out" ||
		bad "--inspect does not show nc's connection as established with nothing queued"
	srv_bg "$d/s2" "$d/in2" "$KM" --mgmt="$d/s2.sock" "$d/snap"
	local s2=$BG_PID
	"$SRV_MGMT" --wait-socket 20 "$d/s2.sock" status >/dev/null 2>&1 || bad "the resumed km never answered"
	touch "$d/go"
	srv_wait "$d/s2.out" '^c3$' && echo s3 >&"$w2"
	srv_wait "$d/s2.out" '^c4$' && echo s4 >&"$w2"
	srv_wait "$d/a.out" '^reply: s4$'
	# nc's stdin ends: it shuts its side of the connection, the client sees EOF and closes, nc ends.
	exec {w2}>&-
	srv_rc "$a" "the client"
	srv_rc "$s2" "the resumed km"
	srv_expect "$d/a.out" "connected
reply: s1
reply: s2
waiting $d/go
reply: s3
reply: s4
end: eof
done"
	srv_expect "$d/s1.out" $'c1\nc2'
	srv_expect "$d/s2.out" $'c3\nc4'
	[ -s "$d/s1.err" ] && bad "the snapshotted km wrote to stderr"
	[ -s "$d/s2.err" ] && bad "the resumed km wrote to stderr"
	[ -n "$T_DIAG" ] && srv_show "$d/mgmt.out" "$d/s1.err" "$d/s2.err" "$d/a.err" "$d/inspect.out"
	end
}

# (2) busybox nc across 25 keep-running snapshots. Odd cycles: both sides quiet. Even cycles: the
# snapshot is requested as soon as the client's line and the server's reply are sent (client ->
# nc -> stdout, FIFO -> nc -> client), without waiting for them to arrive.
srv_nc_keep() {
	local test=fd_servers/nc/keep-25
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_servers/nc/keep port=$((SRV_PORT + 2)) w i
	local -a steps=()
	mkdir -p "$d"
	mkfifo "$d/in"
	exec {w}<>"$d/in"
	for i in $(seq 1 25); do
		if ((i % 2)); then
			steps+=("send:c$i" read "wait:$d/go$i")
		else
			steps+=("send:c$i" "wait:$d/go$i" read)
		fi
	done
	srv_bg "$d/s" "$d/in" "$KM" --mgmt="$d/s.sock" "$BUSYBOX" nc -l -p "$port"
	local s=$BG_PID
	srv_listening "$port" || { exec {w}>&-; end; return; }
	srv_bg "$d/a" /dev/null "$SRV_TCP" 127.0.0.1 "$port" "${steps[@]}" send:last read end
	local a=$BG_PID
	for i in $(seq 1 25); do
		if ((i % 2)); then
			srv_wait "$d/s.out" "^c$i\$" || break
			echo "s$i" >&"$w"
			srv_wait "$d/a.out" "^waiting $d/go$i\$" || break
		else
			srv_wait "$d/a.out" "^waiting $d/go$i\$" || break
			echo "s$i" >&"$w"
		fi
		"$SRV_MGMT" "$d/s.sock" snapshot path="$d/snap" mode=continue >"$d/mgmt.out" 2>&1 ||
			{ bad "snapshot $i: $(cat "$d/mgmt.out")"; break; }
		touch "$d/go$i"
	done
	srv_wait "$d/s.out" '^last$' && echo slast >&"$w"
	srv_wait "$d/a.out" '^reply: slast$'
	exec {w}>&-
	srv_rc "$a" "the client"
	srv_rc "$s" "km"
	local want_a=connected want_s=""
	for i in $(seq 1 25); do
		if ((i % 2)); then
			want_a+=$'\n'"reply: s$i"$'\n'"waiting $d/go$i"
		else
			want_a+=$'\n'"waiting $d/go$i"$'\n'"reply: s$i"
		fi
		want_s+="c$i"$'\n'
	done
	srv_expect "$d/a.out" "$want_a"$'\nreply: slast\nend: eof\ndone'
	srv_expect "$d/s.out" "${want_s}last"
	[ -s "$d/s.err" ] && bad "km wrote to stderr"
	[ -n "$T_DIAG" ] && srv_show "$d/mgmt.out" "$d/s.err" "$d/a.err"
	end
}

# srv_docroot DIR: the files http_keepalive serves in the tests.
srv_docroot() {
	mkdir -p "$1"
	printf 'the index\n' >"$1/index.html"
	printf 'alpha\n' >"$1/a.txt"
	seq 1 2000 >"$1/b.txt"
	head -c 200000 /dev/urandom >"$1/big.bin"
	printf 'bye\n' >"$1/quit" # what /quit answers (http-convo checks 200 bodies against files)
}

# (3) http_keepalive, mode=stop, three held connections: A sent only a request line, B a request
# line and half a header, C is idle between requests. They finish after the resume (X-Request
# counts on from the requests before), then new clients come.
srv_http_stop() {
	local fl=$1 test="fd_servers/http/$1/stop-resume"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_servers/http/$fl/stop port=$((SRV_PORT + 3))
	srv_docroot "$d/www"
	srv_bg "$d/s1" /dev/null "$KM" --mgmt="$d/s1.sock" "$GUESTS/$fl/http_keepalive" "$port" "$d/www"
	local s1=$BG_PID
	srv_wait "$d/s1.out" '^listening' || { end; return; }
	srv_bg "$d/a" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/a.txt req:/b.txt "wait:$d/go" \
		hdr:Host:localhost end get:/big.bin
	local a=$BG_PID
	srv_bg "$d/b" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/ get:/big.bin req:/a.txt \
		hdr:Host:localhost part:X-Cut "wait:$d/go" "hdr:: here" end
	local b=$BG_PID
	srv_bg "$d/c" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/a.txt "wait:$d/go" get:/b.txt
	local c=$BG_PID
	srv_wait "$d/a.out" '^waiting' && srv_wait "$d/b.out" '^waiting' && srv_wait "$d/c.out" '^waiting'
	"$SRV_MGMT" "$d/s1.sock" snapshot path="$d/snap" mode=stop >"$d/mgmt.out" 2>&1 || bad "snapshot: $(cat "$d/mgmt.out")"
	srv_rc "$s1" "the snapshotted km"
	"$KM" --inspect "$d/snap" >"$d/inspect.out" 2>&1
	grep -q "inet rw,nonblock tcp 127.0.0.1:$port listening backlog 16$" "$d/inspect.out" || bad "--inspect does not show the listener"
	[ "$(grep -c "tcp 127.0.0.1:$port -> 127.0.0.1:[0-9]* established, 0 bytes unsent, 0 bytes unacknowledged" "$d/inspect.out")" = 3 ] ||
		bad "--inspect does not show three established connections with nothing to send"
	srv_bg "$d/s2" /dev/null "$KM" --mgmt="$d/s2.sock" "$d/snap"
	local s2=$BG_PID
	"$SRV_MGMT" --wait-socket 20 "$d/s2.sock" status >/dev/null 2>&1 || bad "the resumed km never answered"
	touch "$d/go"
	srv_rc "$a" "client A"
	srv_rc "$b" "client B"
	srv_rc "$c" "client C"
	"$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/b.txt get:/big.bin get:/nothing-here >"$d/e.out" 2>&1
	"$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/quit eof >"$d/q.out" 2>&1
	srv_rc "$s2" "the resumed km"
	srv_expect "$d/a.out" "connected
/a.txt: 200 request 1, 6 bytes
waiting $d/go
/b.txt: 200 request 2, 8893 bytes
/big.bin: 200 request 3, 200000 bytes
done"
	srv_expect "$d/b.out" "connected
/: 200 request 1, 10 bytes
/big.bin: 200 request 2, 200000 bytes
waiting $d/go
/a.txt: 200 request 3, 6 bytes
done"
	srv_expect "$d/c.out" "connected
/a.txt: 200 request 1, 6 bytes
waiting $d/go
/b.txt: 200 request 2, 8893 bytes
done"
	srv_expect "$d/e.out" "connected
/b.txt: 200 request 1, 8893 bytes
/big.bin: 200 request 2, 200000 bytes
/nothing-here: 404 request 3, 0 bytes
done"
	srv_expect "$d/q.out" $'connected\n/quit: 200 request 1, 4 bytes\neof\ndone'
	srv_expect "$d/s1.out" "listening $port"
	srv_expect "$d/s2.out" "served 12 requests on 5 connections"
	[ -s "$d/s1.err" ] && bad "the snapshotted km wrote to stderr"
	[ -s "$d/s2.err" ] && bad "the resumed km wrote to stderr"
	[ -n "$T_DIAG" ] && srv_show "$d/mgmt.out" "$d/s1.err" "$d/s2.err" "$d/a.err" "$d/b.err" "$d/c.err" "$d/inspect.out"
	end
}

# (4) http_keepalive across 25 keep-running snapshots: A is mid-request (request line sent), B
# between requests, C halfway through a header, and a new client's download starts just before each.
srv_http_keep() {
	local fl=$1 test="fd_servers/http/$1/keep-25"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/fd_servers/http/$fl/keep port=$((SRV_PORT + 4)) i n
	local -a sa=() sb=() sc=()
	srv_docroot "$d/www"
	for i in $(seq 1 25); do
		sa+=(req:/a.txt "wait:$d/goa$i" hdr:Host:localhost end)
		sb+=(get:/b.txt "wait:$d/gob$i")
		sc+=(req:/index.html part:Hos "wait:$d/goc$i" hdr:t:localhost end)
	done
	srv_bg "$d/s" /dev/null "$KM" --mgmt="$d/s.sock" "$GUESTS/$fl/http_keepalive" "$port" "$d/www"
	local s=$BG_PID
	srv_wait "$d/s.out" '^listening' || { end; return; }
	srv_bg "$d/a" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" "${sa[@]}"
	local a=$BG_PID
	srv_bg "$d/b" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" "${sb[@]}"
	local b=$BG_PID
	srv_bg "$d/c" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" "${sc[@]}"
	local c=$BG_PID
	for i in $(seq 1 25); do
		if ! { srv_wait "$d/a.out" "^waiting $d/goa$i\$" && srv_wait "$d/b.out" "^waiting $d/gob$i\$" &&
			srv_wait "$d/c.out" "^waiting $d/goc$i\$"; }; then
			break
		fi
		srv_bg "$d/n$i" /dev/null "$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/big.bin get:/a.txt
		n=$BG_PID
		"$SRV_MGMT" "$d/s.sock" snapshot path="$d/snap" mode=continue >"$d/mgmt.out" 2>&1 ||
			{ bad "snapshot $i: $(cat "$d/mgmt.out")"; break; }
		touch "$d/goa$i" "$d/gob$i" "$d/goc$i"
		srv_rc "$n" "new client $i"
		srv_expect "$d/n$i.out" $'connected\n/big.bin: 200 request 1, 200000 bytes\n/a.txt: 200 request 2, 6 bytes\ndone'
	done
	srv_rc "$a" "client A"
	srv_rc "$b" "client B"
	srv_rc "$c" "client C"
	"$SRV_HTTP" 127.0.0.1 "$port" "$d/www" get:/quit eof >"$d/q.out" 2>&1
	srv_rc "$s" "km"
	local want_a=connected want_b=connected want_c=connected
	for i in $(seq 1 25); do
		want_a+=$'\n'"waiting $d/goa$i"$'\n'"/a.txt: 200 request $i, 6 bytes"
		want_b+=$'\n'"/b.txt: 200 request $i, 8893 bytes"$'\n'"waiting $d/gob$i"
		want_c+=$'\n'"waiting $d/goc$i"$'\n'"/index.html: 200 request $i, 10 bytes"
	done
	srv_expect "$d/a.out" "$want_a"$'\ndone'
	srv_expect "$d/b.out" "$want_b"$'\ndone'
	srv_expect "$d/c.out" "$want_c"$'\ndone'
	srv_expect "$d/q.out" $'connected\n/quit: 200 request 1, 4 bytes\neof\ndone'
	srv_expect "$d/s.out" $'listening '"$port"$'\nserved 126 requests on 29 connections'
	[ -s "$d/s.err" ] && bad "km wrote to stderr"
	[ -n "$T_DIAG" ] && srv_show "$d/mgmt.out" "$d/s.err" "$d/a.err" "$d/b.err" "$d/c.err"
	end
}

run_fd_servers() {
	srv_nc_stop
	srv_nc_keep
	local fl
	for fl in gcc musl; do
		srv_http_stop "$fl"
		srv_http_keep "$fl"
	done
}
