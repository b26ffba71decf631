# shellcheck shell=bash
# Go (issue 7): tests/guests-go/goroutines.go, a static Go program (CGO_ENABLED=0), natively and
# under km. Go's runtime is a demanding client of threads and signals: clone'd threads parked in
# futexes, SIGURG sent with tgkill to preempt a running thread (handlers on sigaltstack), os/signal,
# timers through the netpoller (epoll and a pipe), the GC's madvise. Sourced by run.sh after
# threads.sh, whose helpers it uses (thr_snap_stop_resume, thr_snap_mgmt; mgmt.sh's mgmt_sock; and snapshot.sh's srun, snap_start,
# snap_wait_line, snap_expect_run, snap_expect_snapshot, snap_show, snap_verbose, SNAP_MGMT);
# defines run_golang.
#
# Knobs: GO_GUESTS=build/tests/guests-go (next to GUESTS by default), GO_SNAP_ROUNDS=20000 (the
# snapshotted computation: about 2.5 s natively here; it must outlast 0.3 s before the snapshot
# and GO_SNAP_CYCLES resumes), GO_SNAP_CYCLES=10, GO_SNAP_NETPOLL=1 (0: skip
# golang/snapshot/sleep, a Go program sleeping in its netpoller: its epoll fd and wakeup pipe
# must come back with the resume, issue 9).

GO_GUESTS=${GO_GUESTS:-$(dirname "$GUESTS")/guests-go}
case $GO_GUESTS in /*) ;; *) GO_GUESTS=$PWD/$GO_GUESTS ;; esac
GO_SNAP_ROUNDS=${GO_SNAP_ROUNDS:-20000}
GO_SNAP_CYCLES=${GO_SNAP_CYCLES:-10}
GO_SNAP_NETPOLL=${GO_SNAP_NETPOLL:-1}
GO_PROG=$GO_GUESTS/goroutines

# go_have_guest: true if the Go guest is built, else the current test fails saying so.
go_have_guest() {
	[ -x "$GO_PROG" ] && return 0
	bad "Go guest $GO_PROG is missing (make guests; scripts/deps.sh installs golang-go)"
	return 1
}

# go_run: every part of the program natively and under km: same stdout, empty stderr, exit 0.
go_run() {
	local test=golang/run
	want "$test" || return 0
	begin "$test"
	local d=$WORK/golang/run
	if go_have_guest; then
		mkdir -p "$d/cwd"
		run "$d/native" "$d/cwd" /dev/null -- "$GO_PROG"
		local nrc=$RC
		N_CMDLINE=$CMDLINE
		km_cmd "$GO_PROG"
		run "$d/km" "$d/cwd" /dev/null -- "${KMCMD[@]}"
		local krc=$RC
		K_CMDLINE=$CMDLINE
		compare_runs "$d/native" "$nrc" "$d/km" "$krc" 0
		[ "$(tail -n 1 "$d/native/out")" = done ] || bad "native run did not print 'done' last"
		[ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ] && show_runs "$d/native" "$d/km"
	fi
	end
}

# go_trace: under km --trace the runtime's preemption really went through km: tgkill with
# SIGURG (23) to its own threads, each handler ending in rt_sigreturn; the program's output is
# the native one.
go_trace() {
	local test=golang/trace-preemption
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/golang/trace
	if go_have_guest; then
		mkdir -p "$d/cwd"
		run "$d/native" "$d/cwd" /dev/null -- "$GO_PROG"
		local nrc=$RC
		N_CMDLINE=$CMDLINE
		run "$d/km" "$d/cwd" /dev/null -- "$KM" --trace "$GO_PROG"
		local krc=$RC
		K_CMDLINE=$CMDLINE
		COMPARE_STDERR=0 compare_runs "$d/native" "$nrc" "$d/km" "$krc" 0
		local urg
		urg=$(grep -cE '\] tgkill\([0-9]+, [0-9]+, 23\) = 0$' "$d/km/err")
		[ "$urg" -gt 0 ] || bad "no 'tgkill(PID, TID, 23) = 0' line: the runtime never preempted a thread with SIGURG under km"
		grep -qE '\] rt_sigreturn\(\)' "$d/km/err" || bad "no rt_sigreturn line: no signal handler returned"
		grep -qE '\] kill\([0-9]+, 10\) = 0$' "$d/km/err" || bad "no 'kill(PID, 10) = 0' line for the SIGUSR1 the program sends itself"
		note "    $urg SIGURG tgkills"
		[ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ] && show_runs "$d/native" "$d/km"
	fi
	end
}

# go_external NAME MODE EXPECT SIGNALS...: the program in MODE (handlers or busy) natively and
# under km, with the same signals sent from outside (threads.sh's thr_ext_run: SIG+LINE waits for
# LINE after sending SIG); same stdout, same exit status EXPECT. Stderr is not compared: km reports
# a death by signal in a line, and Go's SIGQUIT dump names the thread (m=N) that took the signal.
go_external() {
	local name=$1 mode=$2 expect=$3
	shift 3
	local test="golang/external/$name"
	want "$test" || return 0
	begin "$test"
	local d=$WORK/golang/external/$name nrc krc
	if go_have_guest; then
		# The braces with 2>/dev/null keep bash's reports of jobs killed by signals out of our output.
		{ thr_ext_run "$d/native" "$mode" "$GO_PROG" "$@"; } 2>/dev/null
		nrc=$RC
		N_CMDLINE=$(cat "$d/native/cmd")
		{ thr_ext_run "$d/km" "$mode" "$GO_PROG" "$@"; } 2>/dev/null
		krc=$RC
		K_CMDLINE=$(cat "$d/km/cmd")
		COMPARE_STDERR=0 compare_runs "$d/native" "$nrc" "$d/km" "$krc" "$(want_rc "$expect")"
		if [ "$expect" = 0 ] && [ -s "$d/km/err" ]; then
			bad "km wrote to stderr, though the program handled the signals and exited 0"
		fi
		[ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ] && show_runs "$d/native" "$d/km"
	fi
	end
}

go_external_tests() {
	go_external handlers handlers 0 USR1+usr1 USR1+usr1 TERM
	# Go installs a handler for every signal: those it ignores change nothing (URG is its own
	# preemption signal); TERM and HUP then end it as the default action would, QUIT with its
	# goroutine dump and exit status 2.
	go_external default-TERM busy SIGTERM WINCH CHLD URG CONT USR2 TERM
	go_external default-HUP busy SIGHUP HUP
	go_external quit busy 2 QUIT
}

# go_native_result DIR MODE: the workers line of an uninterrupted native run of MODE
# $GO_SNAP_ROUNDS (GO_RESULT), computed once per DIR.
go_native_result() {
	local dir=$1
	if [ ! -s "$dir/out" ]; then
		mkdir -p "$dir/cwd"
		srun "$dir" "$dir/cwd" /dev/null -- "$GO_PROG" "$2" "$GO_SNAP_ROUNDS"
		echo "$RC" >"$dir/rc"
	fi
	GO_RESULT=$(grep '^workers: ' "$dir/out")
	if [ "$(cat "$dir/rc")" != 0 ] || [ -z "$GO_RESULT" ] || [ "$(head -n 1 "$dir/out")" != ready ]; then
		bad "native run: exit status $(cat "$dir/rc"), stdout not 'ready' and a workers line"
		return 1
	fi
}

# go_gdb_threads DIR SNAPSHOT: gdb reads the snapshot as a core file of the Go program and lists
# at least two threads (Go always has the main thread and sysmon besides its workers).
go_gdb_threads() {
	local n
	timeout 60 gdb -q -batch -nx -ex 'info threads' "$GO_PROG" "$2" >"$1/gdb.out" 2>&1
	n=$(grep -cE '^[* ] +[0-9]+ +LWP [0-9]+' "$1/gdb.out")
	[ "$n" -ge 2 ] || bad "gdb lists $n threads in the snapshot, expected at least 2: $(head -c 400 "$1/gdb.out")"
}

# go_snap_once MODE: the program in MODE under km, snapshotted (mode=stop) 0.3 s after "ready",
# resumed: the resumed copy prints the native run's workers line and exits 0.
go_snap_once() {
	local mode=$1
	local test="golang/snapshot/$mode"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/golang/snap/$mode
	go_have_guest && go_native_result "$d/native" "$mode" &&
		thr_snap_stop_resume "$d" "$GO_RESULT" go_gdb_threads "$GO_PROG" "$mode" "$GO_SNAP_ROUNDS"
	snap_verbose && snap_show "$d/native" "$d/stop" "$d/resume"
	end
}

# go_snap_cycles: the computation snapshotted as soon as km listens, resumed and snapshotted again
# GO_SNAP_CYCLES times; the last copy finishes with the native run's workers line.
go_snap_cycles() {
	local test=golang/snapshot-cycles/compute
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/golang/cycles sock pid i snap prev
	sock=$(mgmt_sock "$d")
	if go_have_guest && go_native_result "$d/native" compute; then
		mkdir -p "$d/cwd"
		rm -f "$sock"
		snap_start "$d/c0" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$GO_PROG" compute "$GO_SNAP_ROUNDS"
		pid=$BG_PID
		snap_wait_line "$d/c0/out" ready 10 || bad "the guest did not print 'ready' within 10 s"
		prev=$d/s0.snap
		thr_snap_mgmt "$d/c0" "$sock" "$prev"
		wait "$pid"
		RC=$?
		snap_expect_run "$d/c0" "first run" 0 "ready"
		for ((i = 1; i <= GO_SNAP_CYCLES && ${#T_DIAG} == 0; i++)); do
			snap=$d/s$i.snap
			rm -f "$sock"
			snap_start "$d/c$i" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$prev"
			pid=$BG_PID
			thr_snap_mgmt "$d/c$i" "$sock" "$snap"
			wait "$pid"
			RC=$?
			snap_expect_run "$d/c$i" "resume $i (snapshotted again)" 0 ""
			grep -q '^workers' "$d/c$i/out" &&
				bad "the computation finished in cycle $i: raise GO_SNAP_ROUNDS"
			snap_expect_snapshot "$snap" || break
			[ "$VERBOSE" = 1 ] || rm -f "$prev"
			prev=$snap
		done
		if [ -z "$T_DIAG" ]; then
			srun "$d/last" "$d/cwd" /dev/null -- "$KM" "$prev"
			snap_expect_run "$d/last" "last resumed run" 0 "$GO_RESULT"
		fi
		rm -f "$sock"
	fi
	snap_verbose && snap_show "$d/native" "$d/c0" "$d/c$((i - 1))" "$d/last"
	end
}

run_golang() {
	go_run
	go_trace
	go_external_tests
	if [ -x "$SNAP_MGMT" ]; then
		go_snap_once compute
		go_snap_cycles
		if [ "$GO_SNAP_NETPOLL" = 1 ]; then
			go_snap_once sleep
		elif want golang/snapshot/sleep && [ $NATIVE = 0 ]; then
			echo "note: golang/snapshot/sleep not run (GO_SNAP_NETPOLL=0)"
		fi
	elif want golang/snapshot && km_only golang/snapshot; then
		begin golang/snapshot
		bad "the management socket client $SNAP_MGMT is missing (make tools)"
		end
	fi
}
