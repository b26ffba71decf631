# shellcheck shell=bash
# The management socket under stress (issue 6): requests at every moment of km's life, the pid a
# supervisor is told to signal, and clients that misbehave (idle, too many, endless lines).
# Sourced by run.sh after snapshot.sh, whose helpers it uses (snap_start, snap_wait_line,
# snap_show, SNAP_MGMT); defines run_mgmt.
#
# Knobs: MGMT_RACE_RUNS=40 (km runs with a request arriving as km starts; a quarter as many
# resumes, and runs racing with the program's end).

MGMT_RACE_RUNS=${MGMT_RACE_RUNS:-40}
MGMT_FLOOD=${KM_MGMT_FLOOD:-$(dirname "$SNAP_MGMT")/km-mgmt-flood}

# mgmt_sock DIR: a socket path in DIR, or in /tmp if DIR is too long for sun_path.
mgmt_sock() {
	local s=$1/km.sock
	[ ${#s} -lt 100 ] || s=$(mktemp -u /tmp/km-mgmt.XXXXXX).sock
	echo "$s"
}

# mgmt_km_pid BGPID: the process under snap_start's `timeout` (its only child): km, or a program
# run natively (threads.sh).
mgmt_km_pid() {
	local i p
	for ((i = 0; i < 100; i++)); do
		p=$(pgrep -P "$1" | head -1)
		[ -n "$p" ] && echo "$p" && return 0
		sleep 0.05
	done
	return 1
}

# mgmt_race_one DIR I MODE KM-ARGS...: runs km --mgmt KM-ARGS (a program that waits for a line
# on stdin, or its snapshot) with a snapshot request sent the moment the socket exists (the
# client spins on connect from before km starts). The line comes only once the request is
# answered. Sets MR_KRC (km's exit status), MR_CRC (the client's), MR_SNAP (the file asked for).
mgmt_race_one() {
	local d=$1 i=$2 mode=$3 cpid sock
	shift 3
	sock=$(mgmt_sock "$d")
	rm -f "$sock" "$d/in"
	mkfifo "$d/in"
	MR_SNAP=$d/s$i.snap
	"$SNAP_MGMT" --spin --wait-socket 20 --timeout 20 "$sock" snapshot "path=$MR_SNAP" "mode=$mode" \
		>"$d/c$i.out" 2>"$d/c$i.err" &
	cpid=$!
	snap_start "$d/k$i" "$d/cwd" "$d/in" -- "$KM" --mgmt="$sock" "$@"
	local kpid=$BG_PID
	wait "$cpid"
	MR_CRC=$?
	if [ "$mode" = continue ] || [ "$MR_CRC" != 0 ]; then
		timeout 5 bash -c 'echo "line $2" >"$1"' _ "$d/in" "$i" # a stopped km is gone: nobody reads
	fi
	wait "$kpid"
	MR_KRC=$?
	rm -f "$sock" "$d/in"
}

# mgmt_race_check DIR I MODE: km lived, the request was answered ok, the original (continue) got
# its line, the snapshot resumes and reads a line of its own.
mgmt_race_check() {
	local d=$1 i=$2 mode=$3
	if [ "$MR_KRC" -ge 128 ]; then
		bad "run $i: km died of a signal ($(status_text "$MR_KRC")) with a request arriving as it started"
		return
	fi
	[ "$MR_KRC" = 0 ] || bad "run $i: km exit status $(status_text "$MR_KRC"), expected 0: $(head -c 200 "$d/k$i/err")"
	[ -s "$d/k$i/err" ] && bad "run $i: km wrote to stderr: $(head -c 200 "$d/k$i/err")"
	if [ "$MR_CRC" != 0 ]; then
		bad "run $i: no ok reply: status $MR_CRC, '$(head -c 200 "$d/c$i.out")' $(head -c 200 "$d/c$i.err")"
		return
	fi
	if [ "$mode" = continue ]; then
		grep -qx "got: line $i" "$d/k$i/out" || bad "run $i: the original printed '$(tr '\n' '|' <"$d/k$i/out")'"
	else
		grep -q '^got:' "$d/k$i/out" && bad "run $i: the stopped original read a line"
	fi
	echo "resumed $i" >"$d/line$i"
	run "$d/r$i" "$d/cwd" "$d/line$i" -- "$KM" "$MR_SNAP"
	[ "$RC" = 0 ] && grep -qx "got: resumed $i" "$d/r$i/out" ||
		bad "run $i: $MR_SNAP resumed with status $(status_text "$RC"), stdout '$(tr '\n' '|' <"$d/r$i/out")' $(head -c 200 "$d/r$i/err")"
}

# Requests that arrive as km starts (before the vCPU's thread runs, as it resumes a snapshot),
# while the program runs or waits in read(): km never dies, each is answered, each snapshot
# resumes (defect 2). Then requests racing with the program's end: answered ok or `ended`.
mgmt_startup_race() {
	local test=mgmt/startup-race d=$WORK/mgmt/race i flavour mode
	want "$test" && km_only "$test" || return 0
	begin "$test"
	mkdir -p "$d/cwd"
	local base=""
	for ((i = 0; i < MGMT_RACE_RUNS; i++)); do
		flavour=gcc && ((i % 2)) && flavour=musl
		mode=continue && ((i / 2 % 2)) && mode=stop
		mgmt_race_one "$d" "$i" "$mode" "$GUESTS/$flavour/snap_stdin"
		mgmt_race_check "$d" "$i" "$mode"
		[ -z "$base" ] && [ "$MR_CRC" = 0 ] && [ -f "$MR_SNAP" ] && base=$d/base.snap && cp "$MR_SNAP" "$base"
	done
	if [ -n "$base" ]; then
		for ((i = 100; i < 100 + MGMT_RACE_RUNS / 4; i++)); do
			mode=continue && ((i % 2)) && mode=stop
			mgmt_race_one "$d" "$i" "$mode" "$base"
			mgmt_race_check "$d" "$i" "$mode"
		done
	else
		bad "no snapshot was made to resume"
	fi
	mgmt_exit_race "$d"
	end
}

# mgmt_exit_race DIR: hello ends within milliseconds while clients spin to ask for snapshots:
# each client that got in is answered ok (and its file resumes) or `error ended`.
mgmt_exit_race() {
	local d=$1 i k sock rc
	for ((i = 200; i < 200 + MGMT_RACE_RUNS / 4; i++)); do
		sock=$(mgmt_sock "$d")
		rm -f "$sock"
		local -a pids=()
		for k in 0 1; do
			"$SNAP_MGMT" --spin --wait-socket 1 --timeout 20 "$sock" snapshot "path=$d/e$i-$k.snap" mode=continue \
				>"$d/e$i-$k.out" 2>"$d/e$i-$k.err" &
			pids+=($!)
		done
		run "$d/e$i" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$GUESTS/gcc/hello"
		[ "$RC" = 0 ] && [ "$(cat "$d/e$i/out")" = "hello, world" ] && [ ! -s "$d/e$i/err" ] ||
			bad "exit race $i: km exit status $(status_text "$RC"), stdout '$(cat "$d/e$i/out")', stderr '$(head -c 200 "$d/e$i/err")'"
		for k in 0 1; do
			wait "${pids[$k]}"
			rc=$?
			if [ $rc = 0 ]; then
				run "$d/er$i-$k" "$d/cwd" /dev/null -- "$KM" "$d/e$i-$k.snap"
				[ "$RC" = 0 ] || bad "exit race $i: e$i-$k.snap resumed with status $(status_text "$RC")"
			elif [ $rc = 1 ]; then
				grep -q '^error ended ' "$d/e$i-$k.out" || bad "exit race $i: reply '$(cat "$d/e$i-$k.out")'"
			elif ! grep -qE 'No such file|Connection refused|closed before a complete reply' "$d/e$i-$k.err"; then
				bad "exit race $i: client $k: $(head -c 200 "$d/e$i-$k.err")" # (never connected: hello was gone)
			fi
		done
	done
	rm -f "$sock"
}

# After a resume, status names the live km as the process to signal, and the guest's own pid
# (kept from the snapshot) separately (defect 8).
mgmt_status_pid() {
	local test=mgmt/status-pid d=$WORK/mgmt/pid bin=$GUESTS/gcc/snap_stdin sock p1 p2 reply
	want "$test" && km_only "$test" || return 0
	begin "$test"
	mkdir -p "$d/cwd"
	sock=$(mgmt_sock "$d")
	rm -f "$sock" "$d/in1" "$d/in2"
	mkfifo "$d/in1" "$d/in2"
	snap_start "$d/orig" "$d/cwd" "$d/in1" -- "$KM" --mgmt="$sock" "$bin"
	local bg=$BG_PID
	if snap_wait_line "$d/orig/out" "waiting for a line on stdin" 10 && p1=$(mgmt_km_pid "$bg"); then
		reply=$("$SNAP_MGMT" --timeout 10 "$sock" status 2>&1)
		[ "$reply" = "ok state=running pid=$p1 guest-pid=$p1" ] ||
			bad "first km (pid $p1): status said '$reply', expected 'ok state=running pid=$p1 guest-pid=$p1'"
		"$SNAP_MGMT" --timeout 10 "$sock" snapshot "path=$d/s.snap" mode=stop >"$d/snap.out" 2>&1 ||
			bad "snapshot: $(cat "$d/snap.out")"
	else
		bad "the guest did not start waiting on stdin within 10 s"
		kill "$bg" 2>/dev/null
	fi
	wait "$bg"
	if [ -f "$d/s.snap" ]; then
		snap_start "$d/res" "$d/cwd" "$d/in2" -- "$KM" --mgmt="$sock" "$d/s.snap"
		bg=$BG_PID
		if "$SNAP_MGMT" --wait-socket 10 --timeout 10 "$sock" status >"$d/status2" 2>&1 && p2=$(mgmt_km_pid "$bg"); then
			reply=$(cat "$d/status2")
			[ "$p2" != "$p1" ] || note "    (the resumed km got the first one's pid again: the check is weaker)"
			[ "$reply" = "ok state=running pid=$p2 guest-pid=$p1" ] ||
				bad "resumed km (pid $p2): status said '$reply', expected 'ok state=running pid=$p2 guest-pid=$p1'"
			timeout 5 bash -c 'echo "after resume" >"$1"' _ "$d/in2"
		else
			bad "no status from the resumed km: $(cat "$d/status2")"
			kill "$bg" 2>/dev/null
		fi
		wait "$bg"
		RC=$?
		[ "$RC" = 0 ] && grep -qx "got: after resume" "$d/res/out" ||
			bad "resumed run: exit status $(status_text "$RC"), stdout '$(tr '\n' '|' <"$d/res/out")'"
	fi
	rm -f "$d/in1" "$d/in2" "$sock"
	snap_verbose && snap_show "$d/orig" "$d/res"
	end
}

# mgmt_expect_ok DIR NAME SOCK REQUEST...: km-mgmt answers ok within 10 s (the old listener,
# one connection at a time, kept a request waiting 30 s behind each idle client).
mgmt_expect_ok() {
	local d=$1 name=$2 sock=$3
	shift 3
	if ! "$SNAP_MGMT" --timeout 10 "$sock" "$@" >"$d/$name.out" 2>&1; then
		bad "$name: '$*' got no ok: $(head -c 300 "$d/$name.out")"
		return 1
	fi
}

# mgmt_fd_tables KMPID: the largest fd table among km's threads.
mgmt_fd_tables() {
	local t n max=0
	for t in /proc/"$1"/task/*; do
		n=$(ls "$t/fd" 2>/dev/null | wc -l)
		[ "$n" -gt "$max" ] && max=$n
	done
	echo "$max"
}

# Misbehaving clients beside a real one: idle connections, more connections than km serves, a
# line that never ends. One km (snap_stdin waiting on a fifo) serves all three tests.
mgmt_clients() {
	local d=$WORK/mgmt/clients bin=$GUESTS/gcc/snap_stdin sock bg kmpid hold test
	local -a tests=(mgmt/idle-clients mgmt/connection-flood mgmt/endless-line)
	local any=0
	for test in "${tests[@]}"; do want "$test" && km_only "$test" && any=1; done
	[ $any = 1 ] || return 0
	mkdir -p "$d/cwd"
	sock=$(mgmt_sock "$d")
	rm -f "$sock" "$d/in"
	mkfifo "$d/in"
	snap_start "$d/km" "$d/cwd" "$d/in" -- "$KM" --mgmt="$sock" "$bin"
	bg=$BG_PID
	snap_wait_line "$d/km/out" "waiting for a line on stdin" 10
	kmpid=$(mgmt_km_pid "$bg")

	test=mgmt/idle-clients
	if want "$test" && km_only "$test"; then
		begin "$test"
		[ -x "$MGMT_FLOOD" ] || bad "$MGMT_FLOOD is missing (make tools)"
		"$MGMT_FLOOD" hold 3 60 "$sock" >"$d/idle.out" 2>&1 &
		hold=$!
		if snap_wait_line "$d/idle.out" "connected 3" 10; then
			mgmt_expect_ok "$d" status "$sock" status
			mgmt_expect_ok "$d" snap1 "$sock" snapshot "path=$d/one.snap" mode=continue
			# Two clients at once: served one after the other, both answered.
			"$SNAP_MGMT" --timeout 20 "$sock" snapshot "path=$d/a.snap" mode=continue >"$d/a.out" 2>&1 &
			local ca=$!
			"$SNAP_MGMT" --timeout 20 "$sock" snapshot "path=$d/b.snap" mode=continue >"$d/b.out" 2>&1 &
			local cb=$!
			wait "$ca" || bad "first of two simultaneous snapshots: $(cat "$d/a.out")"
			wait "$cb" || bad "second of two simultaneous snapshots: $(cat "$d/b.out")"
			local s
			for s in one a b; do
				[ -f "$d/$s.snap" ] || continue
				echo "line for $s" >"$d/line-$s"
				run "$d/res-$s" "$d/cwd" "$d/line-$s" -- "$KM" "$d/$s.snap"
				[ "$RC" = 0 ] && grep -qx "got: line for $s" "$d/res-$s/out" ||
					bad "$s.snap resumed with status $(status_text "$RC"), stdout '$(tr '\n' '|' <"$d/res-$s/out")'"
			done
		else
			bad "3 idle clients could not connect: $(cat "$d/idle.out")"
		fi
		kill "$hold" 2>/dev/null
		wait "$hold" 2>/dev/null
		end
	fi

	test=mgmt/connection-flood
	if want "$test" && km_only "$test"; then
		begin "$test"
		"$MGMT_FLOOD" hold 200 60 "$sock" >"$d/flood.out" 2>&1 &
		hold=$!
		if snap_wait_line "$d/flood.out" "connected 200" 20; then
			mgmt_expect_ok "$d" flood-status "$sock" status
			local most
			most=$(mgmt_fd_tables "$kmpid")
			[ "$most" -lt 40 ] || bad "with 200 clients connected a km thread holds $most fds (connections must be capped)"
		else
			bad "200 clients could not connect: $(cat "$d/flood.out")"
		fi
		kill "$hold" 2>/dev/null
		wait "$hold" 2>/dev/null
		mgmt_expect_ok "$d" after-flood "$sock" status
		end
	fi

	test=mgmt/endless-line
	if want "$test" && km_only "$test"; then
		begin "$test"
		"$MGMT_FLOOD" endless "$sock" >"$d/endless.out" 2>"$d/endless.err"
		local rc=$?
		[ "$rc" = 0 ] || bad "the endless line was not answered and closed: status $rc, $(head -c 300 "$d/endless.err")"
		grep -q '^error too-long ' "$d/endless.out" || bad "reply '$(head -c 300 "$d/endless.out")', expected 'error too-long ...'"
		mgmt_expect_ok "$d" after-endless "$sock" status
		end
	fi

	timeout 5 bash -c 'echo "the end" >"$1"' _ "$d/in"
	wait "$bg"
	local krc=$?
	if [ "$krc" != 0 ] || ! grep -qx "got: the end" "$d/km/out" || [ -s "$d/km/err" ]; then
		begin mgmt/clients-km-intact
		bad "km after the misbehaving clients: exit status $(status_text "$krc"), stdout '$(tr '\n' '|' <"$d/km/out")', stderr '$(head -c 300 "$d/km/err")'"
		end
	fi
	rm -f "$d/in" "$sock"
}

# mgmt_dir_ok DIR NAME SNAPDIR SOCK REQUEST...: as mgmt_expect_ok, with SNAPDIR passed along
# (km-mgmt --dir).
mgmt_dir_ok() {
	local d=$1 name=$2 dir=$3 sock=$4
	shift 4
	if ! "$SNAP_MGMT" --timeout 10 --dir "$dir" "$sock" "$@" >"$d/$name.out" 2>&1; then
		bad "$name: '$*' with --dir got no ok: $(head -c 300 "$d/$name.out")"
		return 1
	fi
}

# mgmt_fds_total KMPID: fds open across km's threads' tables (the listener has its own).
mgmt_fds_total() {
	local t n=0
	for t in /proc/"$1"/task/*; do
		n=$((n + $(ls "$t/fd" 2>/dev/null | wc -l)))
	done
	echo "$n"
}

# mgmt_ticks FILE: the last "tick N" number in FILE.
mgmt_ticks() {
	sed -n 's/^tick \([0-9]*\)$/\1/p' "$1" | tail -1
}

# mgmt_resume_done DIR SNAP NAME: resumes SNAP with stdin ready (the ticker's stop), prints the
# N of its "done N" line (empty if none).
mgmt_resume_done() {
	echo stop >"$1/stop"
	run "$1/$3" "$1/cwd" "$1/stop" -- "$KM" "$2"
	[ "$RC" = 0 ] || bad "$3: resuming $2: exit status $(status_text "$RC"): $(head -c 300 "$1/$3/err")"
	sed -n 's/^done \([0-9]*\)$/\1/p' "$1/$3/out"
}

# Protocol 2: pause holds every thread until resume (no tick while paused, whoever disconnects),
# snapshots taken while paused (by path and into a directory passed as an fd) hold the same
# count and leave the program paused, resume lets it go on, a stop-mode snapshot of a paused
# program ends it; bad names and a missing dir fd are refused, and fds sent with requests that
# do not ask for one are closed (km's fd count does not grow).
mgmt_pause() {
	local test=mgmt/pause-resume d=$WORK/mgmt/pause bin=$GUESTS/gcc/mgmt_ticker sock bg kmpid t1 t2 n a b
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d/cwd" "$d/snaps"
	sock=$(mgmt_sock "$d")
	rm -f "$sock"
	mkfifo "$d/in"
	snap_start "$d/orig" "$d/cwd" "$d/in" -- "$KM" --mgmt="$sock" "$bin"
	bg=$BG_PID
	if ! snap_wait_line "$d/orig/out" "tick 3" 10 || ! kmpid=$(mgmt_km_pid "$bg"); then
		bad "the ticker did not start within 10 s"
		kill "$bg" 2>/dev/null
		wait "$bg"
		end
		return
	fi
	mgmt_expect_ok "$d" pause "$sock" pause && [ "$(cat "$d/pause.out")" = "ok paused" ] ||
		bad "pause replied '$(cat "$d/pause.out")'"
	mgmt_expect_ok "$d" status "$sock" status
	grep -q '^ok state=paused ' "$d/status.out" || bad "status while paused: '$(cat "$d/status.out")'"
	t1=$(mgmt_ticks "$d/orig/out")
	mgmt_dir_ok "$d" snap-a "$d/snaps" "$sock" snapshot dir=fd name=a.snap mode=continue
	grep -q '^ok name=a.snap size=' "$d/snap-a.out" || bad "dir=fd snapshot replied '$(cat "$d/snap-a.out")'"
	sleep 0.5 # a running ticker prints hundreds of lines meanwhile
	mgmt_expect_ok "$d" snap-b "$sock" snapshot "path=$d/snaps/b.snap" mode=continue
	t2=$(mgmt_ticks "$d/orig/out")
	[ "$t1" = "$t2" ] || bad "ticks went on while paused: $t1, then $t2"
	# refused requests and fds km must not keep
	n=$(mgmt_fds_total "$kmpid")
	local req
	for req in "name=.." "name=." "name=a/b" "name=%2Fetc%2Fx"; do
		"$SNAP_MGMT" --raw --timeout 10 --dir "$d/snaps" "$sock" snapshot dir=fd "$req" mode=continue >"$d/badname.out" 2>&1
		grep -q '^error bad-request ' "$d/badname.out" || bad "$req: '$(cat "$d/badname.out")', expected error bad-request"
	done
	"$SNAP_MGMT" --timeout 10 "$sock" snapshot dir=fd name=c.snap mode=continue >"$d/nofd.out" 2>&1
	grep -q '^error bad-request dir=fd, but no fd came' "$d/nofd.out" || bad "dir=fd without an fd: '$(cat "$d/nofd.out")'"
	"$SNAP_MGMT" --timeout 10 --dir "$d/snaps" "$sock" snapshot dir=fd name=c.snap "path=$d/c" mode=continue >"$d/both.out" 2>&1
	grep -q '^error bad-request ' "$d/both.out" || bad "path and dir=fd together: '$(cat "$d/both.out")'"
	"$SNAP_MGMT" --timeout 10 --send-fd "$d/snaps" "$sock" snapshot dir=fd name=f mode=continue >"$d/notdir.out" 2>&1 ||
		true # a directory opened O_RDONLY is accepted: that is a directory fd
	for ((a = 0; a < 10; a++)); do
		"$SNAP_MGMT" --timeout 10 --send-fd /dev/null "$sock" status >"$d/sendfd.out" 2>&1 ||
			bad "status with an fd: $(cat "$d/sendfd.out")"
	done
	[ "$(mgmt_fds_total "$kmpid")" = "$n" ] || bad "km's fds grew from $n to $(mgmt_fds_total "$kmpid") with fds sent along"
	ls "$d/snaps" | grep -q '^\.kmsnap' && bad "temporary files left in the directory: $(ls -a "$d/snaps")"
	[ -e "$d/snaps/c.snap" ] && bad "a refused request wrote c.snap"
	mgmt_expect_ok "$d" resume "$sock" resume && [ "$(cat "$d/resume.out")" = "ok running" ] ||
		bad "resume replied '$(cat "$d/resume.out")'"
	snap_wait_line "$d/orig/out" "tick $((t1 + 3))" 10 || bad "no tick after resume (last: $(mgmt_ticks "$d/orig/out"))"
	mgmt_expect_ok "$d" status2 "$sock" status
	grep -q '^ok state=running ' "$d/status2.out" || bad "status after resume: '$(cat "$d/status2.out")'"
	# paused again, and ended by a stop-mode snapshot: km exits 0
	mgmt_expect_ok "$d" pause2 "$sock" pause
	t2=$(mgmt_ticks "$d/orig/out")
	mgmt_dir_ok "$d" snap-stop "$d/snaps" "$sock" snapshot dir=fd name=s.snap mode=stop
	wait "$bg"
	RC=$?
	[ "$RC" = 0 ] || bad "km after a stop-mode snapshot of a paused program: exit status $(status_text "$RC")"
	grep -q '^done' "$d/orig/out" && bad "the stopped original finished by itself"
	a=$(mgmt_resume_done "$d" "$d/snaps/a.snap" res-a)
	b=$(mgmt_resume_done "$d" "$d/snaps/b.snap" res-b)
	[ -n "$a" ] && [ "$a" = "$b" ] || bad "snapshots a and b taken while paused resume to 'done $a' and 'done $b'"
	[ -n "$a" ] && { [ "$a" = "$t1" ] || [ "$a" = "$((t1 + 1))" ]; } || bad "a resumes to 'done $a', paused at tick $t1"
	n=$(mgmt_resume_done "$d" "$d/snaps/s.snap" res-s)
	[ -n "$n" ] && { [ "$n" = "$t2" ] || [ "$n" = "$((t2 + 1))" ]; } || bad "s resumes to 'done $n', paused at tick $t2"
	rm -f "$d/in" "$sock"
	snap_verbose && snap_show "$d/orig" "$d/res-a" "$d/res-b" "$d/res-s"
	end
}

run_mgmt() {
	mgmt_startup_race
	mgmt_status_pid
	mgmt_clients
	mgmt_pause
}
