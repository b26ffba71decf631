# shellcheck shell=bash
# km's two syscall paths (--syscall-path=exit|poll, docs/architecture.md "Syscall paths"): the
# option's errors, and each tests/guests/syscall_path.c mode under both paths, with the same
# output and status; under poll, KM_TIMING=1's counters must show that a server answered calls
# (syscalls_served > 0) and under exit that none did. Sourced by run.sh after its helpers (want,
# begin, bad, note, end, run, km_only, km_rejects, status_text, show_file) and snapshot.sh's and
# mgmt.sh's; defines run_syscall_path. A snapshot while a server blocks in the program's read:
# sp_snapshot.
#
# The poll runs take --test-poll-spin (a test-only option: every spin bound that long): with
# km's own bounds (tens of microseconds) a loaded machine's servers often get no CPU in time
# and the calls fall back to the exit path, which proves nothing about the served one.

SP_SPIN=${SP_SPIN:-200000}

# sp_case NAME EXPECT_STATUS ARGS...: syscall_path ARGS under each path, each flavour.
sp_case() {
	local name=$1 expect=$2 flavour path test d served
	shift 2
	for flavour in gcc musl; do
		for path in exit poll; do
			test="syscall_path/$path/$flavour/$name"
			want "$test" || continue
			km_only "$test" || continue
			begin "$test"
			d=$WORK/syscall_path/$path/$flavour/$name
			mkdir -p "$d/cwd"
			local -a extra=()
			[ "$path" = poll ] && extra=(--test-poll-spin="$SP_SPIN")
			run "$d" "$d/cwd" /dev/null KM_TIMING=1 -- "$KM" --syscall-path="$path" "${extra[@]}" \
				"$GUESTS/$flavour/syscall_path" "$@"
			[ "$RC" = "$expect" ] || bad "exit status $(status_text "$RC"), expected $expect"
			grep -q '^FAIL' "$d/out" && bad "the guest's checks failed: $(grep -m3 '^FAIL' "$d/out" | tr '\n' ' ')"
			if [ "$expect" = 0 ] && ! grep -q '^PASSED' "$d/out"; then
				bad "no PASSED line"
			fi
			served=$(sed -n 's/^km-timing: syscalls_served=\([0-9]*\) .*/\1/p' "$d/err")
			if [ -z "$served" ]; then
				bad "no km-timing counters on stderr"
			elif [ "$path" = poll ] && [ "$served" -eq 0 ]; then
				bad "poll: no syscall was served by a server"
			elif [ "$path" = exit ] && [ "$served" -ne 0 ]; then
				bad "exit: $served syscalls were served by a server"
			fi
			if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
				note "    command: $CMDLINE"
				show_file stdout "$d/out"
				show_file stderr "$d/err"
			fi
			end
		done
	done
}

# The served path and the exit path print the same --trace lines for the same calls.
sp_trace() {
	local test=syscall_path/trace d path
	want "$test" || return 0
	km_only "$test" || return 0
	begin "$test"
	d=$WORK/syscall_path/trace
	for path in exit poll; do
		mkdir -p "$d/$path/cwd"
		local -a extra=()
		[ "$path" = poll ] && extra=(--test-poll-spin="$SP_SPIN")
		run "$d/$path" "$d/$path/cwd" /dev/null -- "$KM" --trace --syscall-path="$path" "${extra[@]}" \
			"$GUESTS/gcc/syscall_path" getppid 50
		[ "$RC" = 0 ] || bad "$path: exit status $(status_text "$RC")"
		# The parent's pid is the run's own (each run has its `timeout`): the rest must match.
		grep -E '^(getppid|write)\(' "$d/$path/err" | sed 's/^getppid() = [0-9]*$/getppid() = PPID/' >"$d/$path/calls"
	done
	[ "$(grep -c '^getppid()' "$d/poll/calls")" -ge 51 ] || bad "poll: fewer than 51 getppid lines in --trace"
	cmp -s "$d/exit/calls" "$d/poll/calls" || bad "--trace lines differ: $(diff "$d/exit/calls" "$d/poll/calls" | head -5 | tr '\n' ' ')"
	end
}

# `auto` counts the CPUs km may run on, not the host's: confined to one (taskset, a container's
# cpuset) it takes the exit path, since a server would spin on the CPU its vCPU needs (a call
# then costs about twice as much). Seen from outside: while snap_stdin waits for its line, km
# has as many threads under `auto` as under `exit` (no server).
sp_affinity() {
	local test=syscall_path/auto/one-cpu d cpu path kmpid
	local -A nthreads=()
	want "$test" || return 0
	km_only "$test" || return 0
	begin "$test"
	cpu=$(awk '/^Cpus_allowed_list/ {print $2}' /proc/self/status | cut -d, -f1 | cut -d- -f1)
	if ! command -v taskset >/dev/null; then
		note "    taskset is missing: not run"
		end
		return 0
	fi
	for path in exit auto; do
		d=$WORK/syscall_path/one-cpu/$path
		mkdir -p "$d/cwd"
		rm -f "$d/in.fifo"
		mkfifo "$d/in.fifo"
		snap_start "$d/run" "$d/cwd" "$d/in.fifo" -- taskset -c "$cpu" "$KM" --syscall-path="$path" \
			"$GUESTS/gcc/snap_stdin"
		if snap_wait_line "$d/run/out" "waiting for a line on stdin" 10; then
			kmpid=$(awk '{print $1}' "/proc/$BG_PID/task/$BG_PID/children" 2>/dev/null)
			nthreads[$path]=$(ls "/proc/$kmpid/task" 2>/dev/null | wc -l)
			timeout 5 bash -c 'echo "a line" >"$1"' _ "$d/in.fifo"
		else
			bad "$path: the guest did not print 'waiting for a line on stdin' within 10 s"
			kill "$BG_PID" 2>/dev/null
		fi
		wait "$BG_PID"
		RC=$?
		[ "$RC" = 0 ] || bad "$path: exit status $(status_text "$RC")"
		rm -f "$d/in.fifo"
	done
	[ -n "${nthreads[exit]}" ] && [ "${nthreads[exit]}" = "${nthreads[auto]}" ] ||
		bad "confined to CPU $cpu: km has ${nthreads[auto]:-?} threads under auto, ${nthreads[exit]:-?} under exit (a server was made)"
	end
}

# A snapshot (--mgmt, stop and continue) while snap_stdin's read of stdin is in a server's hands
# (poll, spin bounds long enough that the server has it): the server's host call is kicked, the
# call handed back and rewound, and the read completes exactly once, in the original (continue)
# and in the resumed copy. Uses snapshot.sh's helpers (snap_start, snap_wait_line, snap_mgmt,
# snap_expect_run, snap_expect_snapshot, srun, mgmt_sock).
sp_snapshot() {
	local flavour mode test d sock pid snap
	for flavour in gcc musl; do
		for mode in stop continue; do
			test=syscall_path/poll/$flavour/snapshot-$mode
			want "$test" || continue
			km_only "$test" || continue
			begin "$test"
			if [ ! -x "$SNAP_MGMT" ]; then
				bad "the management socket client $SNAP_MGMT is missing (make tools)"
				end
				continue
			fi
			d=$WORK/syscall_path/snap/$flavour/$mode
			mkdir -p "$d/cwd"
			sock=$(mgmt_sock "$d")
			snap=$d/s.snap
			rm -f "$d/in.fifo" "$sock"
			mkfifo "$d/in.fifo"
			snap_start "$d/run" "$d/cwd" "$d/in.fifo" -- "$KM" --syscall-path=poll --test-poll-spin="$SP_SPIN" \
				--mgmt="$sock" "$GUESTS/$flavour/snap_stdin"
			pid=$BG_PID
			if snap_wait_line "$d/run/out" "waiting for a line on stdin" 10; then
				sleep 0.1 # the read is posted and taken: the server blocks in it
				snap_mgmt "$d/run" "$sock" "$mode" "$snap"
				if [ "$mode" = continue ]; then
					sleep 0.1
					timeout 5 bash -c 'echo "a line for the original" >"$1"' _ "$d/in.fifo"
				elif [ "$MGMT_RC" != 0 ]; then
					kill "$pid" 2>/dev/null
				fi
			else
				bad "the guest did not print 'waiting for a line on stdin' within 10 s"
				kill "$pid" 2>/dev/null
			fi
			wait "$pid"
			RC=$?
			if [ "$mode" = continue ]; then
				snap_expect_run "$d/run" "original run" 0 $'waiting for a line on stdin\ngot: a line for the original'
			else
				snap_expect_run "$d/run" "stopped run" 0 "waiting for a line on stdin"
			fi
			if snap_expect_snapshot "$snap"; then
				echo "a line for the copy" >"$d/line"
				srun "$d/resume" "$d/cwd" "$d/line" -- "$KM" --syscall-path=poll --test-poll-spin="$SP_SPIN" "$snap"
				snap_expect_run "$d/resume" "resumed copy" 0 "got: a line for the copy"
			fi
			rm -f "$d/in.fifo" "$sock"
			end
		done
	done
}

run_syscall_path() {
	if want "km/bad-input/syscall-path" && [ "$NATIVE" = 0 ]; then
		local d=$WORK/syscall_path/bad
		mkdir -p "$d"
		: >"$d/prog"
		km_rejects syscall-path-bogus "--syscall-path: 'fast' is not auto, exit or poll" --syscall-path=fast "$d/prog"
		km_rejects syscall-path-empty "--syscall-path: '' is not auto, exit or poll" --syscall-path= "$d/prog"
		km_rejects syscall-path-missing "option '--syscall-path' needs a value" --syscall-path
	fi
	sp_case getppid 0 getppid 2000
	sp_case pingpong 0 pingpong 300
	sp_case sigread-restart 0 sigread-restart
	sp_case sigread-intr 0 sigread-intr
	sp_case exitgroup 7 exitgroup
	sp_case singlestep 0 singlestep 20
	sp_trace
	sp_affinity
	sp_snapshot
}
