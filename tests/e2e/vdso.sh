# shellcheck shell=bash
# The vDSO (issue 10; runtime/vdso/, km/vm/km_vdso.c). tests/guests/vdso_clocks.c's own checks run
# natively and under km with every other guest (run_guests); here, under km only:
#   vdso/trace/FLAVOUR    a loop of clock_gettime, gettimeofday and time makes none of them a
#                         syscall (`km --trace` shows none): the vDSO answers without an exit
#   vdso/syscall/FLAVOUR  the same checks with the vDSO making the real syscall for every read, as
#                         on a host whose TSC km cannot use (KM_TEST_VDSO_SYSCALL, test-only)
#   vdso/resume/FLAVOUR   the guest snapshots itself; resumed, no monotonic clock went back, also
#                         when the snapshot's clocks are a day ahead of the resuming host's (its
#                         original ran with KM_TEST_CLOCK_AHEAD, a test-only knob: as if taken on
#                         a host up a day longer), and absolute MONOTONIC deadlines
#                         (clock_nanosleep, FUTEX_WAIT_BITSET) still end when due
#   vdso/inside           a snapshot from outside (the management socket) of a thread inside the
#                         vDSO's code (CLOCK_TAI is a syscall from there) records which image it
#                         ran; it resumes there with the same km, and a file naming another
#                         image is refused, one line
#   vdso/layout           a snapshot whose program has another vDSO layout is refused, one line
#   vdso/old-format       a 2.4 snapshot (before the vDSO) still resumes
# Sourced by run.sh after its helpers and snapshot.sh (srun, snap_start, snap_wait_line,
# snap_mgmt); defines run_vdso.

VDSO_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $VDSO_TOOLS in /*) ;; *) VDSO_TOOLS=$PWD/$VDSO_TOOLS ;; esac

# vdso_passed DIR WHAT: the run in DIR ended 0 with the guest's checks all passed, stderr empty.
vdso_passed() {
	[ "$RC" = 0 ] || bad "$2: exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$1/out" && bad "$2: $(grep -m4 -A1 '^FAIL' "$1/out" | tr '\n' ' ')"
	grep -q '^PASSED all' "$1/out" || bad "$2: the guest did not finish its checks"
	[ -s "$1/err" ] && bad "$2: stderr: $(head -c 300 "$1/err")"
	return 0
}

vdso_show() {
	local r
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		for r in "$@"; do
			[ -f "$r/cmd" ] && note "    command: $(cat "$r/cmd")"
			show_file stdout "$r/out"
			show_file stderr "$r/err"
		done
	fi
}

vdso_trace() {
	local flavour=$1 d=$WORK/vdso/trace/$1 n
	begin "vdso/trace/$flavour"
	mkdir -p "$d"
	srun "$d" "$d" /dev/null -- "$KM" --trace "$GUESTS/$flavour/vdso_clocks" loop 2000
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
	grep -qx 'loop done (2000)' "$d/out" || bad "the loop did not finish"
	n=$(grep -cE '^(clock_gettime|gettimeofday|time)\(' "$d/err")
	[ "$n" = 0 ] && grep -q '^exit_group(0)' "$d/err" ||
		bad "$n clock syscalls left the VM, expected none: $(grep -m3 -E '^(clock_gettime|gettimeofday|time)\(' "$d/err" | tr '\n' ' ')"
	[ -n "$T_DIAG" ] && show_file "stderr (--trace)" "$d/err"
	end
}

vdso_syscall() {
	local flavour=$1 d=$WORK/vdso/syscall/$1
	begin "vdso/syscall/$flavour"
	mkdir -p "$d"
	srun "$d/run" "$d" /dev/null KM_TEST_VDSO_SYSCALL=1 -- "$KM" "$GUESTS/$flavour/vdso_clocks"
	vdso_passed "$d/run" "checks"
	srun "$d/trace" "$d" /dev/null KM_TEST_VDSO_SYSCALL=1 -- "$KM" --trace "$GUESTS/$flavour/vdso_clocks" loop 10
	# musl's gettimeofday and time are its clock_gettime: at least 3 syscalls a round either way.
	[ "$(grep -cE '^(clock_gettime|gettimeofday|time)\(' "$d/trace/err")" -ge 30 ] ||
		bad "the vDSO did not make the syscalls"
	vdso_show "$d/run"
	end
}

vdso_resume() {
	local flavour=$1 d=$WORK/vdso/resume/$1
	begin "vdso/resume/$flavour"
	rm -rf "$d" && mkdir -p "$d"
	# --self-contained: vdso/old-format marks a copy 2.4, which has no NT_KM_LAYERS to name what
	# lies below its pages
	srun "$d/orig" "$d" /dev/null -- "$KM" --self-contained "$GUESTS/$flavour/vdso_clocks" snap "$d/v.snap"
	[ "$RC" = 0 ] || bad "original run: exit status $(status_text "$RC"), expected 0"
	# A day ahead: the snapshot's clocks are far ahead of the resuming host's.
	srun "$d/orig-ahead" "$d" /dev/null KM_TEST_CLOCK_AHEAD=86400 -- \
		"$KM" "$GUESTS/$flavour/vdso_clocks" snap "$d/ahead.snap"
	[ "$RC" = 0 ] || bad "original run a day ahead: exit status $(status_text "$RC"), expected 0"
	if [ -f "$d/v.snap" ] && [ -f "$d/ahead.snap" ]; then
		cp "$d/v.snap" "$d/old.snap"
		srun "$d/resumed" "$d" /dev/null -- "$KM" "$d/v.snap"
		vdso_passed "$d/resumed" "resumed"
		srun "$d/behind" "$d" /dev/null -- "$KM" "$d/ahead.snap"
		vdso_passed "$d/behind" "resumed on a host a day behind"
		vdso_show "$d/orig" "$d/orig-ahead" "$d/resumed" "$d/behind"
	else
		bad "no snapshot $d/v.snap or $d/ahead.snap"
		vdso_show "$d/orig" "$d/orig-ahead"
	fi
	end
}

# A thread stops inside the vDSO's code almost always here (each CLOCK_TAI read is a 30 us
# syscall from there against some ns outside it); up to 5 snapshots until one caught it there.
vdso_inside() {
	local d=$WORK/vdso/inside n code="" out pid
	begin vdso/inside
	rm -rf "$d" && mkdir -p "$d"
	mkfifo "$d/in" "$d/in2"
	snap_start "$d/orig" "$d" "$d/in" -- "$KM" --mgmt="$d/sock" "$GUESTS/gcc/vdso_clocks" tai
	pid=$BG_PID
	if snap_wait_line "$d/orig/out" "tai ready" "$TIMEOUT"; then
		for n in 1 2 3 4 5; do
			snap_mgmt "$d" "$d/sock" continue "$d/tai.snap"
			out=$("$VDSO_TOOLS/snap-vdso-edit" "$d/tai.snap" code 2>&1)
			code=${out#code }
			[ "$code" != 0 ] && break
		done
	else
		bad "the guest never said 'tai ready'"
	fi
	echo go >"$d/in"
	wait "$pid"
	[ $? = 0 ] && grep -qx 'tai done' "$d/orig/out" || bad "the original did not finish"
	if [ -z "$code" ] || [ "$code" = 0 ]; then
		bad "no snapshot recorded its thread inside the vDSO's code ($out)"
	else
		# The resumed thread goes on from inside the vDSO, and ends when told to.
		cp "$d/tai.snap" "$d/other.snap"
		snap_start "$d/resumed" "$d" "$d/in2" -- "$KM" "$d/tai.snap"
		pid=$BG_PID
		echo go >"$d/in2"
		wait "$pid"
		RC=$?
		vdso_passed "$d/resumed" "resumed inside the vDSO"
		grep -qx 'tai done' "$d/resumed/out" || bad "the resumed copy did not finish"
		out=$("$VDSO_TOOLS/snap-vdso-edit" "$d/other.snap" code 0x5eed 2>&1) || bad "snap-vdso-edit: $out"
		srun "$d/other" "$d" /dev/null -- "$KM" "$d/other.snap"
		[ "$RC" = 1 ] || bad "another image: exit status $(status_text "$RC"), expected 1"
		[ "$(wc -l <"$d/other/err")" = 1 ] || bad "another image: stderr has $(wc -l <"$d/other/err") lines, expected one"
		grep -qE '^km: .*other.snap: thread [0-9]+ stood inside the vDSO of another km build \(image 0x5eed\): resume it with the km that wrote it$' \
			"$d/other/err" || bad "another image: stderr does not say so"
	fi
	vdso_show "$d/orig" "$d/resumed" "$d/other"
	end
}

vdso_layout() {
	local d=$WORK/vdso/resume/gcc out
	if want vdso/layout; then
		begin vdso/layout
		cp "$d/old.snap" "$d/layout.snap" 2>/dev/null || bad "no snapshot from vdso/resume/gcc"
		out=$("$VDSO_TOOLS/snap-vdso-edit" "$d/layout.snap" layout 2 2>&1) || bad "snap-vdso-edit: $out"
		srun "$d/layout" "$d" /dev/null -- "$KM" "$d/layout.snap"
		[ "$RC" = 1 ] || bad "exit status $(status_text "$RC"), expected 1"
		[ "$(wc -l <"$d/layout/err")" = 1 ] || bad "stderr has $(wc -l <"$d/layout/err") lines, expected one"
		grep -qE '^km: .*layout.snap: its program uses vDSO layout 2 at 0x[0-9a-f]+, this km gives layout 1 at' \
			"$d/layout/err" || bad "stderr does not name the layouts"
		[ -s "$d/layout/out" ] && bad "the program ran"
		vdso_show "$d/layout"
		end
	fi
	if want vdso/old-format; then
		begin vdso/old-format
		cp "$d/old.snap" "$d/23.snap" 2>/dev/null || bad "no snapshot from vdso/resume/gcc"
		out=$("$VDSO_TOOLS/snap-vdso-edit" "$d/23.snap" old 2>&1) || bad "snap-vdso-edit: $out"
		srun "$d/23" "$d" /dev/null -- "$KM" --inspect "$d/23.snap"
		grep -q 'km snapshot format 2.4' "$d/23/out" || bad "--inspect does not say 2.4"
		srun "$d/23" "$d" /dev/null -- "$KM" "$d/23.snap"
		vdso_passed "$d/23" "a 2.4 file resumed"
		vdso_show "$d/23"
		end
	fi
}

run_vdso() {
	local flavour
	for flavour in gcc musl; do
		want "vdso/trace/$flavour" && km_only "vdso/trace/$flavour" && vdso_trace "$flavour"
		want "vdso/syscall/$flavour" && km_only "vdso/syscall/$flavour" && vdso_syscall "$flavour"
		if { want "vdso/resume/$flavour" || { [ $flavour = gcc ] && want 'vdso/(layout|old-format)'; }; } &&
			km_only "vdso/resume/$flavour"; then
			vdso_resume "$flavour"
		fi
	done
	want vdso/inside && km_only vdso/inside && vdso_inside
	km_only vdso/layout && vdso_layout
}
