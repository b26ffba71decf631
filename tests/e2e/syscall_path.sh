# shellcheck shell=bash
# km's two syscall paths (--syscall-path=exit|poll, docs/architecture.md "Syscall paths"): the
# option's errors, and each tests/guests/syscall_path.c mode under both paths, with the same
# output and status; under poll, KM_TIMING=1's counters must show that a server answered calls
# (syscalls_served > 0) and under exit that none did. Sourced by run.sh after its helpers (want,
# begin, bad, note, end, run, km_only, km_rejects, status_text, show_file); defines
# run_syscall_path.
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
	sp_trace
}
