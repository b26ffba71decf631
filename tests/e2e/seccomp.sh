# shellcheck shell=bash
# km's seccomp allow-list (issue 6, km/km_seccomp.c): a forbidden host syscall made by km itself
# (the test-only hook KM_TEST_SECCOMP_PROBE=NAME) ends km with exactly one line and status 159,
# in run mode, in resume mode and with --mgmt; --no-seccomp really turns the filter off; and the
# filter is on, in every km thread, while a guest runs (seen from outside in /proc/PID/status).
# Every other e2e test runs with the filter on too. Sourced by run.sh after its helpers (want,
# begin, bad, note, end, run, km_only, show_file, snap_wait_line, BUSYBOX); defines run_seccomp.

# probe name -> the syscall km reports for it
declare -A SECCOMP_PROBES=(
	[ptrace]="ptrace (101)"
	[execve]="execve (59)"
	[process_vm_readv]="process_vm_readv (310)"
	[mprotect-exec]="mprotect (10)"
	[mmap-exec]="mmap (9)"
	[thread-ptrace]="ptrace (101)"
)

# seccomp_expect_kill DIR WHAT SYSCALL: the run in DIR ended with 159, its stderr is exactly the
# one line naming SYSCALL, and the guest printed nothing (it never ran).
seccomp_expect_kill() {
	local want="km: seccomp: km made host syscall $3, which its filter forbids; stopping"
	[ "$RC" = 159 ] || bad "$2: exit status $(status_text "$RC"), expected 159"
	[ "$(cat "$1/err")" = "$want" ] || bad "$2: stderr is not exactly the line '$want'"
	[ -s "$1/out" ] && bad "$2: the guest ran (stdout: $(head -c 200 "$1/out" | tr '\n' ' '))"
	[ -n "$T_DIAG" ] && show_file stderr "$1/err"
}

# seccomp_expect_ok DIR WHAT OUT: the run in DIR exited 0 with stdout OUT and nothing on stderr.
seccomp_expect_ok() {
	[ "$RC" = 0 ] || bad "$2: exit status $(status_text "$RC"), expected 0"
	[ -s "$1/err" ] && bad "$2: stderr: $(head -c 300 "$1/err" | tr '\n' ' ')"
	[ "$(cat "$1/out")" = "$3" ] || bad "$2: stdout is '$(head -c 200 "$1/out")', expected '$3'"
}

seccomp_probes_run() {
	local test d p hello=$GUESTS/gcc/hello
	for p in "${!SECCOMP_PROBES[@]}"; do
		test="seccomp/run/$p"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/seccomp/run/$p
		run "$d/on" "$WORK" /dev/null "KM_TEST_SECCOMP_PROBE=$p" -- "$KM" "$hello"
		seccomp_expect_kill "$d/on" "with the filter" "${SECCOMP_PROBES[$p]}"
		# The same call without the filter is harmless: the guest runs as usual.
		run "$d/off" "$WORK" /dev/null "KM_TEST_SECCOMP_PROBE=$p" -- "$KM" --no-seccomp "$hello"
		seccomp_expect_ok "$d/off" "--no-seccomp" "hello, world"
		end
	done
	test="seccomp/run/unknown-probe"
	if want "$test" && km_only "$test"; then
		begin "$test"
		d=$WORK/seccomp/run/unknown
		run "$d" "$WORK" /dev/null "KM_TEST_SECCOMP_PROBE=nosuch" -- "$KM" "$hello"
		[ "$RC" = 1 ] || bad "exit status $(status_text "$RC"), expected 1"
		grep -qx "km: KM_TEST_SECCOMP_PROBE: unknown probe 'nosuch' (.*)" "$d/err" ||
			bad "stderr is not the one 'unknown probe' line"
		end
	fi
}

seccomp_probe_resume() {
	local test=seccomp/resume d
	want "$test" && km_only "$test" || return
	begin "$test"
	d=$WORK/seccomp/resume
	mkdir -p "$d/cwd"
	# Taken under the filter: the snapshot writer needs nothing it forbids.
	run "$d/take" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/once.snap" "$GUESTS/gcc/snap_modes" once
	if [ "$RC" != 0 ] || [ ! -s "$d/once.snap" ]; then
		bad "taking the snapshot: exit status $(status_text "$RC"), file $(ls -l "$d/once.snap" 2>&1)"
		show_file stderr "$d/take/err"
	else
		run "$d/on" "$d/cwd" /dev/null KM_TEST_SECCOMP_PROBE=ptrace -- "$KM" "$d/once.snap"
		seccomp_expect_kill "$d/on" "resumed with the filter" "ptrace (101)"
		run "$d/off" "$d/cwd" /dev/null KM_TEST_SECCOMP_PROBE=ptrace -- "$KM" --no-seccomp "$d/once.snap"
		[ "$RC" = 0 ] || bad "resumed with --no-seccomp: exit status $(status_text "$RC"), expected 0"
		grep -q '^PASSED' "$d/off/out" || bad "resumed with --no-seccomp: no PASSED line"
		# --inspect reads a file that may be hostile: under the filter too.
		run "$d/inspect" "$d/cwd" /dev/null KM_TEST_SECCOMP_PROBE=ptrace -- "$KM" --inspect "$d/once.snap"
		seccomp_expect_kill "$d/inspect" "--inspect with the filter" "ptrace (101)"
		run "$d/inspect2" "$d/cwd" /dev/null -- "$KM" --inspect "$d/once.snap"
		[ "$RC" = 0 ] && [ -s "$d/inspect2/out" ] && [ ! -s "$d/inspect2/err" ] ||
			bad "--inspect under the filter: exit status $(status_text "$RC"), $(head -c 300 "$d/inspect2/err")"
		run "$d/plain" "$d/cwd" /dev/null -- "$KM" "$d/once.snap"
		[ "$RC" = 0 ] && grep -q '^PASSED' "$d/plain/out" && [ ! -s "$d/plain/err" ] ||
			bad "resumed with the filter and no probe: exit status $(status_text "$RC"), $(head -c 300 "$d/plain/err")"
	fi
	end
}

seccomp_probe_mgmt() {
	local test=seccomp/mgmt d sock
	want "$test" && km_only "$test" || return
	begin "$test"
	d=$WORK/seccomp/mgmt
	mkdir -p "$d"
	sock=$d/km.sock
	[ ${#sock} -lt 100 ] || sock=$(mktemp -u /tmp/km-seccomp.XXXXXX).sock
	run "$d/on" "$d" /dev/null KM_TEST_SECCOMP_PROBE=execve -- "$KM" --mgmt="$sock" "$GUESTS/gcc/hello"
	seccomp_expect_kill "$d/on" "with --mgmt" "execve (59)"
	rm -f "$sock"
	run "$d/off" "$d" /dev/null KM_TEST_SECCOMP_PROBE=execve -- "$KM" --no-seccomp --mgmt="$sock" "$GUESTS/gcc/hello"
	seccomp_expect_ok "$d/off" "--no-seccomp --mgmt" "hello, world"
	rm -f "$sock"
	end
}

# seccomp_status DIR KMARGS...: runs `km KMARGS... busybox cat` with stdin a fifo, waits until the
# guest has echoed a line (so it runs), and puts each km thread's "Seccomp:" field, as
# "TID:VALUE" words, into SECCOMP_SEEN; with SECCOMP_POKE=1 sends km a SIGSYS and checks the
# guest goes on; then ends km.
seccomp_status() {
	local d=$1 pid t
	shift
	mkdir -p "$d"
	rm -f "$d/in"
	mkfifo "$d/in"
	"$KM" "$@" "$BUSYBOX" cat <>"$d/in" >"$d/out" 2>"$d/err" &
	pid=$!
	echo ready >"$d/in"
	SECCOMP_SEEN=""
	if snap_wait_line "$d/out" ready 10; then
		for t in /proc/"$pid"/task/*; do
			SECCOMP_SEEN+="${t##*/}:$(awk '$1 == "Seccomp:" { print $2 }' "$t/status" 2>/dev/null) "
		done
		if [ "${SECCOMP_POKE:-0}" = 1 ]; then
			# A SIGSYS someone sends is not a violation: km neither reports nor stops.
			kill -s SYS "$pid"
			echo again >"$d/in"
			snap_wait_line "$d/out" again 10 || bad "km $*: the guest did not go on after a SIGSYS from outside"
			[ -s "$d/err" ] && bad "km $*: stderr after a SIGSYS from outside: $(head -c 300 "$d/err")"
		fi
	else
		bad "km $*: the guest did not echo its first line within 10 s"
	fi
	kill "$pid" 2>/dev/null # cat reads a fifo it holds open itself: it would never see EOF
	wait "$pid" 2>/dev/null
	SECCOMP_SEEN=${SECCOMP_SEEN% }
}

# seccomp_expect_all WHAT VALUE MIN: SECCOMP_SEEN has at least MIN threads (their number goes
# to SECCOMP_N), each with VALUE.
seccomp_expect_all() {
	local w
	SECCOMP_N=0
	for w in $SECCOMP_SEEN; do
		SECCOMP_N=$((SECCOMP_N + 1))
		[ "${w#*:}" = "$2" ] || bad "$1: thread ${w%%:*} has Seccomp '${w#*:}', expected $2"
	done
	[ $SECCOMP_N -ge "$3" ] || bad "$1: expected at least $3 threads, got '$SECCOMP_SEEN'"
}

seccomp_active() {
	local test=seccomp/active d sock
	want "$test" && km_only "$test" || return
	begin "$test"
	d=$WORK/seccomp/active
	sock=$d/km.sock
	[ ${#sock} -lt 100 ] || sock=$(mktemp -u /tmp/km-seccomp.XXXXXX).sock
	# 2 = SECCOMP_MODE_FILTER, in every thread: the vCPU and, with --mgmt, the listener (TSYNC).
	# (KVM's own worker, kvm-nx-lpage-recovery, is listed among km's threads too.)
	seccomp_status "$d/run"
	seccomp_expect_all km 2 1
	SECCOMP_POKE=1 seccomp_status "$d/mgmt" --mgmt="$sock"
	seccomp_expect_all "km --mgmt" 2 $((SECCOMP_N + 1)) # one more: the listener
	rm -f "$sock"
	seccomp_status "$d/off" --no-seccomp
	seccomp_expect_all "km --no-seccomp" 0 1
	end
}

# seccomp/stop-continue: km stopped (SIGSTOP, as Ctrl-Z) and continued while its guest waits on
# stdin goes on: the kernel resumes km's threads' timed waits through restart_syscall, which the
# filter once forbade (km died of SIGSYS, status 159, without a line).
seccomp_stop_continue() {
	local test="seccomp/stop-continue"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/seccomp/stop-continue
	mkdir -p "$d"
	coproc SC { exec timeout -k 5 "$TIMEOUT" "$KM" "$BUSYBOX" sh -c 'echo ready; read x; echo "got $x"' 2>"$d/err"; }
	local sc_pid=${SC_PID:-} sc_in=${SC[1]:-} sc_out=${SC[0]:-}
	coproc_gone "$sc_pid" "$sc_in" "$sc_out" "$d/err" && return
	local line="" km_pid
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$sc_out"
	[ "$line" = ready ] || bad "the guest did not start: '$line'"
	km_pid=$(pgrep -P "$sc_pid" | head -1)
	# Every thread of km is then asleep in a wait; stop it there for a while, then continue.
	sleep 0.3
	kill -STOP "$km_pid" 2>/dev/null
	sleep 0.3
	kill -CONT "$km_pid" 2>/dev/null
	sleep 0.3
	coproc_send "$sc_in" hello
	line=""
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$sc_out"
	[ "$line" = "got hello" ] || bad "after SIGSTOP and SIGCONT: '$line', expected 'got hello'"
	exec {sc_in}>&- 2>/dev/null
	wait "$sc_pid"
	local rc=$?
	[ "$rc" = 0 ] || bad "exit status $(status_text "$rc")"
	[ -s "$d/err" ] && show_file stderr "$d/err" && bad "km wrote to stderr"
	end
}

run_seccomp() {
	seccomp_stop_continue
	seccomp_probes_run
	seccomp_probe_resume
	seccomp_probe_mgmt
	seccomp_active
}
