# shellcheck shell=bash
# Pipes, FIFOs and unix sockets across a snapshot (issue 9; km/fd/km_fd_pipe.c, km_fd_unix.c).
# The guest tests/guests/fd_pipes.c builds them, snapshots itself, and the copy resumed with
# `km SNAPSHOT` checks every buffered byte, boundary, flag and option; then a native client
# (tests/tools/unix-peer) connects to its listening socket. Peers outside the program (fd 3: a
# pipe whose writer is a shell process, fd 4: a pipe whose reader is one, and a connection to a
# unix-peer server) are gone after resume: end of file and EPIPE. With keep-running the original
# checks that the snapshot took none of its bytes. A socket with an fd in flight fails the
# snapshot; records edited to hostile sizes and counts (tests/tools/snap-fdrec) fail the resume
# with one line; a live socket at the listening socket's path fails it as "address in use".
# Sourced by run.sh after snapshot.sh (snap_wait_line, snap_seal, snap_show, snap_verbose);
# defines run_fd_pipes.

FP_PEER=${TOOLS:-$ROOT/build/tests/tools}/unix-peer
FP_FDREC=${TOOLS:-$ROOT/build/tests/tools}/snap-fdrec
case $FP_PEER in /*) ;; *) FP_PEER=$PWD/$FP_PEER FP_FDREC=$PWD/$FP_FDREC ;; esac

# fp_run DIR CWD KEEPFDS -- CMD...: runs CMD in CWD with stdin /dev/null, stdout and stderr in
# DIR/out and DIR/err, and no fd above 2 but KEEPFDS (whatever the caller of the tests leaked:
# the fd table saves every fd the program has). Sets RC. In the background with FP_BG=1 (BG_PID).
fp_run() {
	local dir=$1 cwd=$2 keep=$3
	shift 4
	mkdir -p "$dir"
	echo "(cd $(quote "$cwd") && $(quote "$@"))" >"$dir/cmd"
	local body='cd "$1" || exit 125; keep=" 0 1 2 $2 "; shift 2
		for f in /proc/$BASHPID/fd/*; do f=${f##*/}; [[ $keep == *" $f "* ]] || eval "exec $f>&-"; done
		exec "$@"'
	if [ "${FP_BG:-0}" = 1 ]; then
		{ bash -c "$body" fp "$cwd" "$keep" timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "$@" \
			>"$dir/out" 2>"$dir/err" </dev/null & } 2>/dev/null
		BG_PID=$!
	else
		{ bash -c "$body" fp "$cwd" "$keep" timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "$@" \
			>"$dir/out" 2>"$dir/err" </dev/null; } 2>/dev/null
		RC=$?
	fi
}

# fp_expect_ok DIR WHAT LINE: exit 0, empty stderr, no FAIL, a PASSED line and LINE in stdout.
fp_expect_ok() {
	[ "$RC" = 0 ] || bad "$2: exit status $(status_text "$RC"), expected 0"
	[ -s "$1/err" ] && bad "$2: stderr is not empty: $(head -c 300 "$1/err" | tr '\n' ' ')"
	grep -q '^FAIL' "$1/out" && bad "$2: the guest's checks failed: $(grep -m5 '^FAIL' "$1/out" | cut -c1-300 | tr '\n' ' ')"
	grep -q '^PASSED all' "$1/out" || bad "$2: no PASSED line"
	[ -z "$3" ] || grep -qxF "$3" "$1/out" || bad "$2: no line '$3'"
}

# fp_take DIR FLAVOUR MODE: the original run with the outside peers (fds 3 and 4, a server).
fp_take() {
	local d=$1 bin=$GUESTS/$2/fd_pipes mode=$3 srv writer
	FP_BG=1 fp_run "$d/server" "$d" "" -- "$FP_PEER" serve "$d/srv.sock" "from server"
	srv=$BG_PID
	snap_wait_line "$d/server/out" ready 10 || bad "the outside server did not start"
	exec 7< <(printf 'from outside'; exec sleep 60)
	writer=$!
	exec 8> >(exec cat >/dev/null)
	fp_run "$d/take" "$d" "3 4" -- "$KM" "$bin" "$mode" "$d" "$d/srv.sock" 3<&7 4>&8
	exec 7<&- 8>&-
	kill "$writer" 2>/dev/null
	wait "$srv" 2>/dev/null
	grep -qx "peer closed" "$d/server/out" || bad "the outside server did not see the original end"
}

fp_inspect() {
	local d=$1 out line
	out=$("$KM" --inspect "$d/fd_pipes.snap" 2>&1)
	for line in "pipe r pipe:\[[0-9]*\] read 10 bytes buffered" "read 204803 bytes buffered capacity 262144" \
		"fifo $d/f.fifo read 10 bytes buffered" "unix stream connected peer=fd [0-9]* 11 bytes queued" \
		"unix dgram connected peer=fd [0-9]* 3 messages (19 bytes) queued" \
		"unix stream listening $d/listen.sock backlog 16" "unix stream connected peer outside the program"; do
		grep -q -- "$line" <<<"$out" || bad "km --inspect does not show '$line'"
	done
	snap_verbose && note "$out"
}

fp_snap() {
	local flavour=$1 test=fd_pipes/snap/$1 d
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/fd_pipes/snap/$flavour
	rm -rf "$d" && mkdir -p "$d/cwd2"
	fp_take "$d" "$flavour" snap
	[ "$RC" = 0 ] || bad "snapshot run: exit status $(status_text "$RC")"
	grep -q '^FAIL' "$d/take/out" && bad "checks before the snapshot failed"
	if [ -f "$d/fd_pipes.snap" ]; then
		fp_inspect "$d"
		FP_BG=1 fp_run "$d/resume" "$d/cwd2" "" -- "$KM" "$d/fd_pipes.snap"
		local pid=$BG_PID reply
		if snap_wait_line "$d/resume/out" "listening ready" 20; then
			reply=$("$FP_PEER" connect "$d/listen.sock" hello 2>&1)
			[ "$reply" = "hi hello" ] || bad "a new client after resume got '$reply', expected 'hi hello'"
		else
			bad "the resumed program never listened"
		fi
		wait "$pid"
		RC=$?
		fp_expect_ok "$d/resume" resume RESUMED
	else
		bad "no snapshot written"
	fi
	snap_verbose && snap_show "$d/take" "$d/resume"
	end
}

fp_keep() {
	local flavour=$1 test=fd_pipes/keep/$1 d
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/fd_pipes/keep/$flavour
	rm -rf "$d" && mkdir -p "$d/cwd2"
	fp_take "$d" "$flavour" keep
	fp_expect_ok "$d/take" "original" ORIGINAL
	if [ -f "$d/fd_pipes.snap" ]; then
		fp_run "$d/resume" "$d/cwd2" "" -- "$KM" "$d/fd_pipes.snap"
		fp_expect_ok "$d/resume" resume RESUMED
		# something alive at the listening socket's path: the resume fails, naming it
		FP_BG=1 fp_run "$d/squatter" "$d" "" -- "$FP_PEER" serve "$d/listen.sock" x
		local sq=$BG_PID
		snap_wait_line "$d/squatter/out" ready 10 || bad "the squatting server did not start"
		fp_run "$d/inuse" "$d/cwd2" "" -- "$KM" "$d/fd_pipes.snap"
		[ "$RC" = 1 ] || bad "resume with the address in use: exit status $(status_text "$RC"), expected 1"
		grep -q "fd [0-9]* (unix) cannot be restored: binding $d/listen.sock: Address already in use" "$d/inuse/err" ||
			bad "resume with the address in use: stderr does not say so: $(head -c 300 "$d/inuse/err")"
		[ -s "$d/inuse/out" ] && bad "resume with the address in use: the program ran"
		kill "$sq" 2>/dev/null
		wait "$sq" 2>/dev/null
	else
		bad "no snapshot written"
	fi
	snap_verbose && snap_show "$d/take" "$d/resume" "$d/inuse"
	end
}

fp_scm() {
	local test=fd_pipes/scm-rights d
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/fd_pipes/scm
	rm -rf "$d" && mkdir -p "$d"
	fp_run "$d/run" "$d" "" -- "$KM" "$GUESTS/musl/fd_pipes" scm "$d"
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$d/run/out" && bad "the guest's checks failed: $(grep -m5 '^FAIL' "$d/run/out" | tr '\n' ' ')"
	grep -q "unix).*carries open fds (SCM_RIGHTS)" "$d/run/err" || bad "stderr does not give the reason (SCM_RIGHTS)"
	snap_verbose && snap_show "$d/run"
	end
}

# fp_hostile NAME KIND NTH OFF SIZE VALUE WHY: a copy of the snapshot with one record field set
# to VALUE fails the resume with one line saying WHY (a regex), and the program never runs.
fp_hostile_case() {
	local src=$1 name=$2 d=$WORK/fd_pipes/hostile/$2 out
	shift 2
	mkdir -p "$d"
	cp "$src" "$d/h.snap"
	out=$("$FP_FDREC" "$d/h.snap" "$1" "$2" "$3" "$4" "$5")
	[ "$out" = patched ] || { bad "$name: snap-fdrec: $out"; return; }
	snap_seal "$d/h.snap"
	fp_run "$d/run" "$d" "" -- "$KM" "$d/h.snap"
	[ "$RC" = 1 ] || bad "$name: exit status $(status_text "$RC"), expected 1"
	[ "$(wc -l <"$d/run/err")" = 1 ] && grep -q -- "$6" "$d/run/err" ||
		bad "$name: stderr is not one line matching '$6': $(head -c 300 "$d/run/err")"
	[ -s "$d/run/out" ] && bad "$name: the program ran"
}

fp_hostile() {
	local test=fd_pipes/hostile d
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/fd_pipes/hostile
	rm -rf "$d" && mkdir -p "$d"
	fp_run "$d/take" "$d" "" -- "$KM" "$GUESTS/musl/fd_pipes" snap "$d"
	if [ -f "$d/fd_pipes.snap" ]; then
		# pipe record: u32 type, u64 ino, u64 dev, str path (""), u32 has_state @25, u32 cap @29,
		# u64 nbytes @33, u64 blob @41
		fp_hostile_case "$d/fd_pipes.snap" pipe-capacity 6 0 29 4 0xffffffff "(pipe) cannot be restored: corrupt record: a pipe of 4294967295 bytes"
		fp_hostile_case "$d/fd_pipes.snap" pipe-bytes 6 0 33 8 0x10000000000 "(pipe) cannot be restored: corrupt record: a pipe of 65536 bytes holding"
		fp_hostile_case "$d/fd_pipes.snap" pipe-blob 6 0 41 8 0xffffffff "(pipe) cannot be restored: corrupt snapshot: data 4294967295 does not exist"
		# unix record of a pair end (no names): ... u32 length of the message lengths @60, the
		# first length @64; description 1 is a stream end with 11 bytes, 3 a dgram end with 3
		fp_hostile_case "$d/fd_pipes.snap" unix-count 7 3 60 4 0x10000000 "(unix) cannot be restored: corrupt record$"
		fp_hostile_case "$d/fd_pipes.snap" unix-msglen 7 3 64 4 0xffffffff "(unix) cannot be restored: corrupt record: [0-9]* queued bytes, more than a socket holds"
		fp_hostile_case "$d/fd_pipes.snap" unix-streamlen 7 1 64 4 0x7fffffff "(unix) cannot be restored: corrupt record: [0-9]* queued bytes"
		fp_hostile_case "$d/fd_pipes.snap" unix-state 7 0 4 4 9 "(unix) cannot be restored: corrupt record: state 9"
		fp_hostile_case "$d/fd_pipes.snap" unix-type 7 0 0 4 77 "(unix) cannot be restored: corrupt record: socket type 77"
	else
		bad "no snapshot written"
	fi
	snap_verbose && snap_show "$d/take"
	end
}

run_fd_pipes() {
	local flavour
	for flavour in gcc musl; do
		fp_snap "$flavour"
		fp_keep "$flavour"
	done
	fp_scm
	fp_hostile
}
