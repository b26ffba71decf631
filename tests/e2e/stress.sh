# shellcheck shell=bash
# The syscall paths under stress (issue 12). Sourced by run.sh after snapshot.sh, mgmt.sh and
# shim.sh, whose helpers it uses (snap_start, snap_wait_line, srun, snap_show, mgmt_sock,
# SNAP_MGMT, shim_bundle, shim_pid); defines run_stress. run.sh runs the whole suite once per
# syscall path (SYSCALL_PATHS), so each test here runs under each path.
#   stress/path-used/*      only when run.sh runs on a path (SYSCALL_PATH): KM_TIMING's counters
#                           show the path really served a getppid loop (poll: syscalls_served > 0;
#                           exit: = 0), also after the program exec'd (km re-executes itself)
#                           and for the km km-shim starts in a container (its command line)
#   stress/run/FLAVOUR      tests/guests/stress_syscalls.c: 8 threads checking every syscall
#                           result while SIGUSR1 arrives every ~100 us, with SA_RESTART and
#                           without, under km: every count exact
#   stress/snapshots/FLAVOUR  the same run (its shared file a memfd, which snapshots hold)
#                           snapshotted from outside through --mgmt: a live snapshot
#                           (mode=continue) and a stop snapshot, the stop one resumed (with
#                           --mgmt), snapshotted live and stopped again; the last stop snapshot
#                           and both live ones resumed to the end: every check passes and every
#                           sequence is exact (no pipe record, file write or token lost or
#                           doubled); the live snapshots also pass km --inspect --verify. The
#                           resumed runs' syscalls take the path too (KM_TIMING).
# Knobs: STRESS_ROUNDS=160 (rounds per phase: the plain run), STRESS_SNAP_ROUNDS=200 (the
# snapshotted run; the snapshots do not depend on it to find the program running: it cannot end
# before the test's last line on its stdin).

STRESS_ROUNDS=${STRESS_ROUNDS:-160}
STRESS_SNAP_ROUNDS=${STRESS_SNAP_ROUNDS:-200}

# stress_timing FILE: syscalls_served of the last km-timing line in FILE (empty if none).
stress_served() {
	sed -n 's/^km-timing: .*syscalls_served=\([0-9][0-9]*\).*/\1/p' "$1" | tail -n 1
}

# stress_expect_served WHAT FILE: FILE's served count is as SYSCALL_PATH must make it.
stress_expect_served() {
	local n
	n=$(stress_served "$2")
	if [ -z "$n" ]; then
		bad "$1: no 'km-timing: ... syscalls_served=N' line on stderr: $(head -c 300 "$2")"
	elif [ "$SYSCALL_PATH" = poll ] && [ "$n" -eq 0 ]; then
		bad "$1: syscalls_served=0 under --syscall-path=poll: no syscall took the poll path"
	elif [ "$SYSCALL_PATH" = exit ] && [ "$n" -ne 0 ]; then
		bad "$1: syscalls_served=$n under --syscall-path=exit: a syscall took the poll path"
	fi
}

# stress_path_used: under SYSCALL_PATH only.
stress_path_used() {
	local test d bin
	[ -n "$SYSCALL_PATH" ] || return 0
	for bin in getppid exec; do
		test="stress/path-used/$SYSCALL_PATH/$bin"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/stress/path-used/$bin
		mkdir -p "$d/cwd"
		if [ $bin = getppid ]; then
			run "$d" "$d/cwd" /dev/null KM_TIMING=1 -- "$KM" "$GUESTS/gcc/stress_syscalls" getppid 20000
		else
			run "$d" "$d/cwd" /dev/null KM_TIMING=1 -- "$KM" "$BUSYBOX" sh -c \
				"exec $(quote "$GUESTS/musl/stress_syscalls") getppid 20000"
		fi
		[ "$RC" = 0 ] && [ "$(cat "$d/out")" = "getppid ok" ] ||
			bad "exit status $(status_text "$RC"), stdout '$(head -c 200 "$d/out")', expected 'getppid ok'"
		stress_expect_served "getppid loop" "$d/err"
		[ -n "$T_DIAG" ] && { note "    command: $CMDLINE"; show_file stderr "$d/err"; }
		end
	done
	stress_path_container
}

# The km km-shim starts in a container gets the path on its command line (KM_SHIM_SYSCALL_PATH,
# set by run.sh's km-shim wrapper).
stress_path_container() {
	local test="stress/path-used/$SYSCALL_PATH/container" d=$WORK/stress/path-used/ctr pid
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if [ "$(id -u)" != 0 ] || [ ! -x "$KM_SHIM" ]; then
		bad "needs root and km-shim ($KM_SHIM)"
		end
		return
	fi
	local SHIM_ROOT=$d/root
	mkdir -p "$d"
	shim_bundle "$d/b" /shim_count 1000000 50
	timeout -k 5 "$TIMEOUT" "$KM_SHIM" --root "$SHIM_ROOT" create --bundle "$d/b" stresspath >"$d/out" 2>&1 </dev/null
	RC=$?
	if [ "$RC" != 0 ]; then
		bad "km-shim create: exit status $(status_text "$RC"): $(head -c 300 "$d/out")"
	else
		pid=$(shim_pid stresspath)
		tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--syscall-path=$SYSCALL_PATH " ||
			bad "km's command line in the container lacks --syscall-path=$SYSCALL_PATH: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
	fi
	"$KM_SHIM" --root "$SHIM_ROOT" delete --force stresspath >/dev/null 2>&1
	end
}

# stress_lines ROUNDS: what a finished run prints (without ok/PASSED lines and the parent line).
stress_lines() {
	local i r=$((2 * $1))
	for i in 0 1 2 3 4 5 6 7; do
		echo "thread $i: rounds $r, file writes $r, tokens $((r / 16)), signalled in both phases"
	done
	echo done
}

# stress_expect_end DIR WHAT ROUNDS RESUMES: a run that must have finished with every check
# passed. Its stderr may hold km-timing lines only (they are checked when on a path).
stress_expect_end() {
	local d=$1 what=$2
	[ "$RC" = 0 ] || bad "$what: exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$d/out" && bad "$what: the guest's checks failed: $(grep -m5 '^FAIL' "$d/out" | cut -c1-300 | tr '\n' '|')"
	grep -q '^PASSED' "$d/out" || bad "$what: no PASSED line"
	[ "$(grep -v -e '^ok ' -e '^PASSED' -e '^ready$' -e '^parent changed ' "$d/out")" = "$(stress_lines "$3")" ] ||
		bad "$what: the counts are not exact: $(grep -v -e '^ok ' -e '^PASSED' "$d/out" | head -n 12 | tr '\n' '|')"
	# Each resume gives the program a new parent; one it made no call in (a snapshot taken while
	# it waited for its last line, then snapshotted again) is seen together with the next.
	local changes
	changes=$(sed -n 's/^parent changed \([0-9]*\) times (resumed from snapshots)$/\1/p' "$d/out")
	if [ "$4" = 0 ]; then
		[ "$changes" = 0 ] || bad "$what: parent changed '$changes' times, expected 0"
	else
		[ -n "$changes" ] && [ "$changes" -ge 1 ] && [ "$changes" -le "$4" ] ||
			bad "$what: parent changed '$changes' times, expected 1 to $4 (resumed $4 times)"
	fi
	grep -qv '^km-timing: ' "$d/err" && bad "$what: stderr: $(grep -v '^km-timing: ' "$d/err" | head -c 300)"
	[ -n "$SYSCALL_PATH" ] && stress_expect_served "$what" "$d/err"
}

stress_run() {
	local flavour=$1 test="stress/run/$1" d=$WORK/stress/run/$1
	want "$test" && km_only "$test" || return 0
	begin "$test"
	mkdir -p "$d/cwd"
	srun "$d/km" "$d/cwd" /dev/null KM_TIMING=1 -- "$KM" "$GUESTS/$flavour/stress_syscalls" run "$d/data" "$STRESS_ROUNDS"
	stress_expect_end "$d/km" "the run under km" "$STRESS_ROUNDS" 0
	snap_verbose && snap_show "$d/km"
	end
}

# stress_snap DIR SOCK FILE MODE: one snapshot request; false (and bad) unless it said ok.
stress_snap() {
	"$SNAP_MGMT" --wait-socket 20 --timeout 60 "$2" snapshot "path=$3" "mode=$4" >"$1/mgmt-$(basename "$3").out" 2>&1
	local rc=$?
	[ $rc = 0 ] && grep -q '^ok ' "$1/mgmt-$(basename "$3").out" && return 0
	bad "snapshot $(basename "$3") mode=$4: status $rc, reply '$(head -c 300 "$1/mgmt-$(basename "$3").out")'"
	return 1
}

# stress_two_snaps DIR SOCK N: while the program runs, a live snapshot DIR/liveN.snap, then a stop
# snapshot DIR/stopN.snap; false if either failed.
stress_two_snaps() {
	sleep 0.3
	stress_snap "$1" "$2" "$1/live$3.snap" continue || return 1
	sleep 0.3
	stress_snap "$1" "$2" "$1/stop$3.snap" stop
}

stress_snapshots() {
	local flavour=$1 test="stress/snapshots/$1" d=$WORK/stress/snap/$1 s1 s2 pid n
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d/cwd" "$d/1" "$d/2"
	mkfifo "$d/in1" "$d/in2"
	echo go >"$d/go"
	s1=$(mgmt_sock "$d/1")
	s2=$(mgmt_sock "$d/2")
	rm -f "$s1" "$s2"
	snap_start "$d/run1" "$d/cwd" "$d/in1" -- "$KM" --mgmt="$s1" "$GUESTS/$flavour/stress_syscalls" run memfd \
		"$STRESS_SNAP_ROUNDS"
	pid=$BG_PID
	local ok=0
	if snap_wait_line "$d/run1/out" ready 20; then
		stress_two_snaps "$d" "$s1" 1 && ok=1
	else
		bad "the program never printed 'ready'"
	fi
	[ $ok = 1 ] || kill -KILL "$(mgmt_km_pid "$pid")" 2>/dev/null
	wait "$pid"
	RC=$?
	[ $ok = 1 ] && [ "$RC" != 0 ] && bad "the first run: exit status $(status_text "$RC") after its stop snapshot, expected 0"
	grep -q '^FAIL' "$d/run1/out" && bad "the first run: $(grep -m5 '^FAIL' "$d/run1/out" | tr '\n' '|')"
	if [ $ok = 1 ]; then
		ok=0
		snap_start "$d/run2" "$d/cwd" "$d/in2" -- "$KM" --mgmt="$s2" "$d/stop1.snap"
		pid=$BG_PID
		stress_two_snaps "$d" "$s2" 2 && ok=1
		[ $ok = 1 ] || kill -KILL "$(mgmt_km_pid "$pid")" 2>/dev/null
		wait "$pid"
		RC=$?
		[ $ok = 1 ] && [ "$RC" != 0 ] && bad "the resumed run: exit status $(status_text "$RC") after its stop snapshot, expected 0"
		grep -q '^FAIL' "$d/run2/out" && bad "the resumed run: $(grep -m5 '^FAIL' "$d/run2/out" | tr '\n' '|')"
	fi
	if [ $ok = 1 ]; then
		srun "$d/run3" "$d/cwd" "$d/go" KM_TIMING=1 -- "$KM" "$d/stop2.snap"
		stress_expect_end "$d/run3" "the run resumed from the second stop snapshot" "$STRESS_SNAP_ROUNDS" 2
	fi
	# The live snapshots hold the memory and the memfd of their pause: each resumes to the end.
	for n in 1 2; do
		[ -f "$d/live$n.snap" ] || continue
		"$KM" --inspect --verify "$d/live$n.snap" >"$d/inspect$n" 2>&1 ||
			bad "live$n.snap: km --inspect --verify: $(tail -n 1 "$d/inspect$n")"
		srun "$d/live$n" "$d/cwd" "$d/go" KM_TIMING=1 -- "$KM" "$d/live$n.snap"
		stress_expect_end "$d/live$n" "the run resumed from live$n.snap" "$STRESS_SNAP_ROUNDS" "$n"
	done
	rm -f "$s1" "$s2"
	snap_verbose && snap_show "$d/run1" "$d/run2" "$d/run3" "$d/live1" "$d/live2"
	end
}

run_stress() {
	local flavour
	stress_path_used
	for flavour in gcc musl; do
		stress_run "$flavour"
		stress_snapshots "$flavour"
	done
}
