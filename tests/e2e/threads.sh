# shellcheck shell=bash
# Threads and signals (issue 7) beyond what run_guests covers (it runs the thr_* and sig_* guests
# natively and under km and compares them): signals sent from outside with `kill`, the clone km
# refuses, and snapshots of threaded programs taken from outside through the management socket.
# Sourced by run.sh after snapshot.sh, whose helpers it uses (snap_start, snap_wait_line,
# snap_show, snap_expect_snapshot, SNAP_MGMT, SNAP_FLAVOURS); defines run_threads.
#
# Knobs: THR_SNAP_WORK=250 (thr_snapshot compute's work per round: about 2 s natively here; it
# must outlast the 0.3 s before the snapshot request), THR_SNAP_CYCLES=50 (snapshot/resume
# cycles in a row), THR_SNAP_CYCLE_WORK=600 (the cycled computation must outlast them all: each
# cycle lets it run only from the resume to the stop-all, and it reports when it did not).

THR_SNAP_WORK=${THR_SNAP_WORK:-250}
THR_SNAP_CYCLES=${THR_SNAP_CYCLES:-50}
THR_SNAP_CYCLE_WORK=${THR_SNAP_CYCLE_WORK:-600}

# mgmt.sh's helpers serve here too: mgmt_sock (a socket path short enough for sun_path) and
# mgmt_km_pid (the process under snap_start's `timeout`: the guest run natively, or km).

# --- signals from outside --------------------------------------------------------------------

# thr_ext_run DIR MODE SIGNALS...: starts sig_external MODE (natively if DIR ends in /native,
# else under km), waits for "ready", sends each signal in turn (a signal named SIG+LINE waits
# for LINE on stdout first), waits for the end; RC is its exit status.
thr_ext_run() {
	local dir=$1 mode=$2 bin=$3 sig pid cpid want
	shift 3
	mkdir -p "$dir/cwd"
	if [[ $dir == */native ]]; then
		snap_start "$dir" "$dir/cwd" /dev/null -- "$bin" "$mode"
	else
		km_cmd "$bin" "$mode"
		snap_start "$dir" "$dir/cwd" /dev/null -- "${KMCMD[@]}"
	fi
	pid=$BG_PID
	RC=""
	if ! snap_wait_line "$dir/out" ready 10 || ! cpid=$(mgmt_km_pid "$pid"); then
		bad "$(basename "$dir") run: no 'ready' line within 10 s"
	else
		for sig in "$@"; do
			want=""
			[[ $sig == *+* ]] && want=${sig#*+} && sig=${sig%%+*}
			kill -s "$sig" "$cpid" 2>/dev/null || bad "$(basename "$dir") run: kill -s $sig failed (the process is gone)"
			if [ -n "$want" ] && ! snap_wait_line "$dir/out" "$want" 10; then
				bad "$(basename "$dir") run: no '$want' line within 10 s after $sig"
			fi
		done
	fi
	# Whatever happened, the process must end: after 10 s it is killed (status 137).
	local i
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$pid" 2>/dev/null && kill -s KILL "$cpid" 2>/dev/null
	wait "$pid"
	RC=$?
}

# thr_external FLAVOUR NAME MODE EXPECT SIGNALS...: sig_external MODE natively and under km with
# the same signals from outside; same stdout, same exit status EXPECT.
thr_external() {
	local flavour=$1 name=$2 mode=$3 expect=$4
	shift 4
	local test="threads/external/$flavour/$name"
	want "$test" || return 0
	begin "$test"
	local d=$WORK/threads/external/$flavour/$name bin=$GUESTS/$flavour/sig_external nrc krc
	# The braces with 2>/dev/null keep bash's reports of jobs killed by signals out of our output.
	{ thr_ext_run "$d/native" "$mode" "$bin" "$@"; } 2>/dev/null
	nrc=$RC
	N_CMDLINE=$(cat "$d/native/cmd")
	{ thr_ext_run "$d/km" "$mode" "$bin" "$@"; } 2>/dev/null
	krc=$RC
	K_CMDLINE=$(cat "$d/km/cmd")
	COMPARE_STDERR=0 compare_runs "$d/native" "$nrc" "$d/km" "$krc" "$(want_rc "$expect")"
	[ -s "$d/native/err" ] && bad "native run wrote to stderr"
	if [ "$expect" = 0 ] && [ -s "$d/km/err" ]; then
		bad "km wrote to stderr, though the program handled the signal and exited 0"
	fi
	[ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ] && show_runs "$d/native" "$d/km"
	end
}

thr_external_tests() {
	local flavour sig
	for flavour in gcc musl; do
		thr_external "$flavour" handlers handlers 0 USR1+usr1 TERM
		# Signals ignored by default change nothing; the last one ends the program as natively.
		for sig in TERM INT HUP QUIT USR2 ALRM; do
			thr_external "$flavour" "default-$sig" default "SIG$sig" WINCH CHLD URG CONT "$sig"
		done
	done
}

# --- clone flags km refuses ------------------------------------------------------------------

# clone of a new process sharing memory (CLONE_VM without CLONE_THREAD or CLONE_VFORK) is refused
# (fork and vfork are tests/e2e/procs_fork.sh's): an errno, never a hang, and a --trace line.
thr_clone_refused() {
	local flavour test d
	for flavour in gcc musl; do
		test="threads/clone-refused/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/threads/clone-refused/$flavour
		mkdir -p "$d/cwd"
		run "$d" "$d/cwd" /dev/null -- "$KM" --trace "$GUESTS/$flavour/thr_lifecycle" novm
		[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
		[ "$(cat "$d/out")" = "clone of a process sharing memory: refused" ] ||
			bad "stdout is '$(head -c 200 "$d/out")', expected 'clone of a process sharing memory: refused'"
		grep -qE '(^|[] [])clone3?\(.*\) += *-(1 )?E[A-Z]+' "$d/err" ||
			bad "no trace line like 'clone(...) = -1 EINVAL ...' for the refused clone"
		if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
			note "    command: $CMDLINE"
			show_file stdout "$d/out"
			show_file stderr "$d/err"
		fi
		end
	done
}

# --- snapshots of threads from outside -------------------------------------------------------

# thr_native_result DIR BIN ARGS...: the result line of an uninterrupted native run (THR_RESULT),
# computed once per DIR.
thr_native_result() {
	local dir=$1
	shift
	if [ ! -s "$dir/out" ]; then
		mkdir -p "$dir/cwd"
		srun "$dir" "$dir/cwd" /dev/null -- "$@"
		echo "$RC" >"$dir/rc"
	fi
	THR_RESULT=$(grep '^result: ' "$dir/out")
	if [ "$(cat "$dir/rc")" != 0 ] || [ -z "$THR_RESULT" ]; then
		bad "native run: exit status $(cat "$dir/rc"), no result line"
		return 1
	fi
}

# thr_snap_mgmt DIR SOCKET FILE: a mode=stop snapshot request; false (and bad) if it failed.
thr_snap_mgmt() {
	"$SNAP_MGMT" --wait-socket 10 --timeout 20 "$2" snapshot "path=$3" mode=stop >"$1/mgmt.out" 2>"$1/mgmt.err"
	local rc=$?
	if [ $rc != 0 ] || ! grep -q '^ok ' "$1/mgmt.out"; then
		bad "km-mgmt snapshot: exit status $rc, reply '$(head -c 300 "$1/mgmt.out")' $(head -c 300 "$1/mgmt.err")"
		return 1
	fi
}

# thr_snap_once FLAVOUR NAME ARGS...: thr_snapshot ARGS under km, snapshotted (mode=stop) 0.3 s
# after "ready", resumed: the resumed copy prints the native run's result.
thr_snap_once() {
	local flavour=$1 name=$2
	shift 2
	local test="threads/snapshot/$flavour/$name"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/threads/snap/$flavour/$name bin=$GUESTS/$flavour/thr_snapshot
	thr_native_result "$d/native" "$bin" "$@" && thr_snap_stop_resume "$d" "$THR_RESULT" "" "$bin" "$@"
	snap_verbose && snap_show "$d/native" "$d/stop" "$d/resume"
	end
}

# thr_snap_stop_resume DIR RESULT CHECK PROGRAM ARGS...: runs km --mgmt PROGRAM ARGS, snapshots
# it (mode=stop) 0.3 s after it prints "ready" into DIR/t.snap, runs CHECK DIR FILE on the file
# (a function name, or "" for none) and resumes it: the resumed copy must print RESULT and exit 0.
thr_snap_stop_resume() {
	local d=$1 result=$2 check=$3 sock pid
	shift 3
	sock=$(mgmt_sock "$d")
	mkdir -p "$d/cwd"
	rm -f "$sock" "$d/t.snap"
	snap_start "$d/stop" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$@"
	pid=$BG_PID
	if snap_wait_line "$d/stop/out" ready 10; then
		sleep 0.3
		thr_snap_mgmt "$d/stop" "$sock" "$d/t.snap"
	else
		bad "the guest did not print 'ready' within 10 s"
	fi
	wait "$pid"
	RC=$?
	snap_expect_run "$d/stop" "stopped run" 0 "ready"
	if snap_expect_snapshot "$d/t.snap"; then
		[ -z "$check" ] || "$check" "$d" "$d/t.snap"
		srun "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/t.snap"
		snap_expect_run "$d/resume" "resumed run" 0 "$result"
	fi
	rm -f "$sock"
}

# thr_snap_cycles FLAVOUR: the 4-thread computation snapshotted (mode=stop) as soon as km
# listens, resumed and snapshotted again THR_SNAP_CYCLES times; the last copy finishes with the
# native run's result. Each cycle is a km start, a snapshot and an exit.
thr_snap_cycles() {
	local flavour=$1
	local test="threads/snapshot-cycles/$flavour"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/threads/cycles/$flavour bin=$GUESTS/$flavour/thr_snapshot sock pid i snap prev
	sock=$(mgmt_sock "$d")
	if thr_native_result "$d/native" "$bin" compute "$THR_SNAP_CYCLE_WORK"; then
		mkdir -p "$d/cwd"
		rm -f "$sock"
		snap_start "$d/c0" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$bin" compute "$THR_SNAP_CYCLE_WORK"
		pid=$BG_PID
		snap_wait_line "$d/c0/out" ready 10 || bad "the guest did not print 'ready' within 10 s"
		prev=$d/s0.snap
		thr_snap_mgmt "$d/c0" "$sock" "$prev"
		wait "$pid"
		RC=$?
		snap_expect_run "$d/c0" "first run" 0 "ready"
		local start=$SECONDS
		for ((i = 1; i <= THR_SNAP_CYCLES && ${#T_DIAG} == 0; i++)); do
			snap=$d/s$i.snap
			rm -f "$sock"
			snap_start "$d/c$i" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$prev"
			pid=$BG_PID
			thr_snap_mgmt "$d/c$i" "$sock" "$snap"
			wait "$pid"
			RC=$?
			snap_expect_run "$d/c$i" "resume $i (snapshotted again)" 0 ""
			grep -q '^result' "$d/c$i/out" &&
				bad "the computation finished in cycle $i: raise THR_SNAP_CYCLE_WORK"
			snap_expect_snapshot "$snap" || break
			[ "$VERBOSE" = 1 ] || rm -f "$prev" # keep the disk use small
			prev=$snap
		done
		if [ -z "$T_DIAG" ]; then
			srun "$d/last" "$d/cwd" /dev/null -- "$KM" "$prev"
			snap_expect_run "$d/last" "last resumed run" 0 "$THR_RESULT"
		fi
		note "    $((i - 1)) cycles took $((SECONDS - start)) s"
		rm -f "$sock"
	fi
	snap_verbose && snap_show "$d/native" "$d/c0" "$d/c$((i - 1))" "$d/last"
	end
}

thr_snapshot_tests() {
	local flavour test
	if [ ! -x "$SNAP_MGMT" ]; then
		for flavour in "${SNAP_FLAVOURS[@]}"; do
			test="threads/snapshot/$flavour"
			want "$test" && km_only "$test" || continue
			begin "$test"
			bad "the management socket client $SNAP_MGMT is missing (make tools)"
			end
		done
		return
	fi
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		thr_snap_once "$flavour" compute compute "$THR_SNAP_WORK"
		thr_snap_once "$flavour" condwait condwait $((THR_SNAP_WORK * 400000))
		thr_snap_once "$flavour" nanosleep nanosleep 1500
		thr_snap_once "$flavour" churn churn 1000
		thr_snap_cycles "$flavour"
	done
}

# thr_snap_signals: snap_signals snapshots itself with signals pending (for the process and a
# thread, standard and real-time with values), an interval and a POSIX timer armed and a thread
# in sigwaitinfo; the resumed copy must print what an uninterrupted run prints.
thr_snap_signals() {
	local flavour test d
	for flavour in gcc musl; do
		test="threads/snapshot-signals/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/threads/snapshot-signals/$flavour
		mkdir -p "$d/cwd"
		run "$d/native" "$d/cwd" /dev/null -- "$GUESTS/$flavour/snap_signals" run
		local want_out
		want_out=$(cat "$d/native/out")
		run "$d/snap" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/s.snap" "$GUESTS/$flavour/snap_signals" snap
		[ "$RC" = 0 ] || bad "snapshot run: exit status $(status_text "$RC"), expected 0 ($(head -c 200 "$d/snap/err"))"
		run "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
		[ "$RC" = 0 ] || bad "resumed run: exit status $(status_text "$RC"), expected 0"
		# The resumed copy prints the lines after the snapshot: the native run's tail.
		local got
		got=$(cat "$d/resume/out")
		[ -n "$got" ] && [ "${want_out%"$got"}" != "$want_out" ] ||
			bad "resumed run printed what the native run does not end with"
		grep -q '^PASSED' "$d/resume/out" || bad "resumed run did not pass its checks"
		if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
			show_file "native stdout" "$d/native/out"
			show_file "resumed stdout" "$d/resume/out"
			show_file "resumed stderr" "$d/resume/err"
		fi
		end
	done
}

# thr_sig_storm: 10^5 SIGUSR1 and 1000 real-time signals from outside while four threads
# compute; then SIGTERM. The sum must be what the program computes undisturbed (natively and
# under km), both handlers must have run, and km must end with the program, status 0.
THR_STORM=${THR_STORM:-100000}
thr_sig_storm() {
	local flavour test d pid rtsig
	local storm=${TOOLS:-$ROOT/build/tests/tools}/km-sigstorm
	for flavour in gcc musl; do
		test="threads/signal-storm/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/threads/storm/$flavour
		mkdir -p "$d"
		local want_sum
		want_sum=$("$GUESTS/$flavour/sig_storm" 30000 q | grep '^sum')
		"$KM" "$GUESTS/$flavour/sig_storm" 30000 >"$d/out" 2>"$d/err" &
		pid=$!
		local i
		for ((i = 0; i < 100; i++)); do
			grep -q '^ready' "$d/out" 2>/dev/null && break
			sleep 0.05
		done
		rtsig=$(sed -n 's/^ready //p' "$d/out")
		if [ -z "$rtsig" ]; then
			bad "the program did not print 'ready'"
		else
			"$storm" "$pid" 10 "$THR_STORM" >"$d/storm.out" 2>&1 || bad "storm: $(cat "$d/storm.out")"
			"$storm" "$pid" "$rtsig" 1000 >>"$d/storm.out" 2>&1 || bad "rt storm: $(cat "$d/storm.out")"
		fi
		kill -TERM "$pid" 2>/dev/null
		wait "$pid"
		local rc=$?
		[ "$rc" = 0 ] || bad "km exit status $(status_text "$rc"), expected 0 ($(head -c 300 "$d/err"))"
		grep -qx "$want_sum" "$d/out" || bad "sum '$(grep '^sum' "$d/out")', undisturbed '$want_sum'"
		grep -qx 'usr1 seen, rt seen' "$d/out" || bad "handlers: '$(tail -1 "$d/out")'"
		if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
			show_file stdout "$d/out"
			show_file stderr "$d/err"
		fi
		end
	done
}

run_threads() {
	thr_external_tests
	thr_clone_refused
	thr_snapshot_tests
	thr_snap_signals
	thr_sig_storm
}
