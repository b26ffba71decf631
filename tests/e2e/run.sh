#!/usr/bin/env bash
# End-to-end tests: runs every test guest, km's bad-input and --trace checks, and busybox applets,
# each natively and under km, and compares them. Ends with one line "N passed, N failed" and
# exits non-zero if anything failed (or nothing ran).
#
# Usage: [KM=path/to/km] [GUESTS=build/tests/guests] tests/e2e/run.sh [PATTERN]
#   PATTERN       only run tests whose name matches this (bash extended regex, e.g. "musl/mmap",
#                 "^busybox/", "crash_"); names are printed as they run.
#   KM=native     harness self-check: runs every "km" command natively instead, to check the
#                 guests and the harness without km. Tests of km itself (bad input, --trace, the
#                 one-line crash report) cannot run then and are counted and listed as not run.
#   TIMEOUT=30    seconds each single run may take.
#   VERBOSE=1     also print the output of passing tests' runs.
#   SYSCALL_PATHS="exit poll"  the whole suite once per km syscall path (`make e2e` does this),
#                 each run as SYSCALL_PATH=P; a total line ends it.
#   SYSCALL_PATH=P  every km the tests start gets --syscall-path=P: $KM and $KM_TEST become
#                 tests/tools/km-with-args copies, $KM_SHIM a wrapper that sets
#                 KM_SHIM_SYSCALL_PATH (km-shim passes it on to the km in the container), so
#                 snapshots resumed, containers, dynamic and Go programs all run on path P.
set -u
shopt -s nullglob

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KM=${KM:-$ROOT/build/bin/km}
GUESTS=${GUESTS:-$ROOT/build/tests/guests}
TIMEOUT=${TIMEOUT:-30}
VERBOSE=${VERBOSE:-0}
PATTERN=${1:-}
SYSCALL_PATHS=${SYSCALL_PATHS:-}
SYSCALL_PATH=${SYSCALL_PATH:-}

# The suite once per path, each in a run.sh of its own (its own WORK, counters and summary).
if [ -n "$SYSCALL_PATHS" ] && [ -z "$SYSCALL_PATH" ] && [ "$KM" != native ]; then
	ALL_P=0 ALL_F=0 ALL_RC=0 ALL_START=$SECONDS
	SUMMARY=()
	for P in $SYSCALL_PATHS; do
		echo "e2e: ===== the whole suite with km --syscall-path=$P ====="
		P_OUT=$(mktemp "${TMPDIR:-/tmp}/km-e2e-path.XXXXXX")
		P_START=$SECONDS
		SYSCALL_PATHS="" SYSCALL_PATH=$P "${BASH_SOURCE[0]}" "$@" | tee "$P_OUT"
		P_RC=${PIPESTATUS[0]}
		[ "$P_RC" = 0 ] || ALL_RC=1
		P_LAST=$(tail -n 1 "$P_OUT")
		if [[ $P_LAST =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
			ALL_P=$((ALL_P + BASH_REMATCH[1]))
			ALL_F=$((ALL_F + BASH_REMATCH[2]))
		else
			ALL_F=$((ALL_F + 1))
		fi
		SUMMARY+=("--syscall-path=$P: $P_LAST ($((SECONDS - P_START))s)")
		while IFS= read -r P_LINE; do
			SUMMARY+=("  [$P] $P_LINE")
		done < <(sed -n '/^failed tests:$/,/^[^ ]/p' "$P_OUT" | sed -n 's/^  //p')
		rm -f "$P_OUT"
	done
	echo
	echo "e2e: per syscall path:"
	printf '  %s\n' "${SUMMARY[@]}"
	echo "e2e: all paths took $((SECONDS - ALL_START))s"
	echo "$ALL_P passed, $ALL_F failed"
	[ "$ALL_F" = 0 ] && exit "$ALL_RC"
	exit 1
fi

die() {
	echo "e2e: $*" >&2
	echo "0 passed, 1 failed"
	exit 1
}

NATIVE=0
if [ "$KM" = native ]; then
	NATIVE=1
else
	case $KM in /*) ;; *) KM=$PWD/$KM ;; esac
	[ -x "$KM" ] || die "km binary '$KM' not found or not executable (build it with 'make km', or KM=native for a harness self-check)"
	# Never skip silently: without a usable /dev/kvm every km test would fail obscurely.
	[ -e /dev/kvm ] || die "/dev/kvm does not exist: KVM is not available on this machine (kvm module not loaded, or no nested virtualisation); km cannot run"
	if ! { exec 9<>/dev/kvm; } 2>/dev/null; then
		die "/dev/kvm exists but cannot be opened for read/write by uid $(id -u) ($(ls -l /dev/kvm)); add the user to the kvm group or fix its permissions"
	fi
	exec 9>&-
fi
case $GUESTS in /*) ;; *) GUESTS=$PWD/$GUESTS ;; esac
if [ ! -d "$GUESTS/gcc" ] || [ ! -d "$GUESTS/musl" ]; then
	die "no test guests in '$GUESTS' (build them with 'make guests')"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/km-e2e.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$WORK"' EXIT

# with_args_km DIR KM OPTION: a km-with-args copy in DIR that runs KM with OPTION first; its
# path in WITH_ARGS_KM.
with_args_km() {
	local dir=$1 real=$2 tool=${TOOLS:-$ROOT/build/tests/tools}/km-with-args
	case $tool in /*) ;; *) tool=$PWD/$tool ;; esac
	[ -x "$tool" ] || die "$tool is missing (make tools): SYSCALL_PATH needs it"
	mkdir -p "$dir" && cp "$tool" "$dir/km" && ln -s "$real" "$dir/km.real" && printf '%s\n' "$3" >"$dir/km.args" ||
		die "cannot make $dir/km"
	WITH_ARGS_KM=$dir/km
}

if [ -n "$SYSCALL_PATH" ] && [ $NATIVE = 0 ]; then
	case $SYSCALL_PATH in exit | poll | auto) ;; *) die "SYSCALL_PATH='$SYSCALL_PATH' is not exit, poll or auto" ;; esac
	# km-shim runs its km inside the container (a static km; no wrapper can reach it from
	# there): the real km, told the path through km-shim's environment. Clients such as
	# containerd and podman pass km-shim no environment, so KM_SHIM is a wrapper that sets it.
	export KM_SHIM_KM=${KM_SHIM_KM:-$KM}
	export KM_SHIM_SYSCALL_PATH=$SYSCALL_PATH
	# A km without the option would fail every test one by one: say it once.
	"$KM" --syscall-path="$SYSCALL_PATH" --version >/dev/null 2>"$WORK/path-check" ||
		die "$KM does not take --syscall-path=$SYSCALL_PATH: $(head -c 200 "$WORK/path-check")"
	REAL_KM=$KM
	with_args_km "$WORK/path-km" "$REAL_KM" "--syscall-path=$SYSCALL_PATH"
	KM=$WITH_ARGS_KM
	KM_TEST=${KM_TEST:-$ROOT/build/test-km/bin/km}
	case $KM_TEST in /*) ;; *) KM_TEST=$PWD/$KM_TEST ;; esac
	if [ -x "$KM_TEST" ]; then
		with_args_km "$WORK/path-km-test" "$KM_TEST" "--syscall-path=$SYSCALL_PATH"
		KM_TEST=$WITH_ARGS_KM
	fi
	REAL_KM_SHIM=${KM_SHIM:-$ROOT/build/bin/km-shim}
	case $REAL_KM_SHIM in /*) ;; *) REAL_KM_SHIM=$PWD/$REAL_KM_SHIM ;; esac
	KM_SHIM=$WORK/path-km-shim/km-shim
	mkdir -p "$WORK/path-km-shim"
	printf '#!/bin/sh\nKM_SHIM_SYSCALL_PATH=%s exec %s "$@"\n' "$SYSCALL_PATH" "$(printf '%q' "$REAL_KM_SHIM")" >"$KM_SHIM"
	chmod 755 "$KM_SHIM"
fi
trap 'exit 130' INT TERM
ulimit -S -c 0 # crash tests must not litter core files (soft only: root here cannot raise a hard limit again)
# Native stack overflow needs a finite stack limit to end in SIGSEGV rather than eat memory.
if [ "$(ulimit -s)" = unlimited ] || [ "$(ulimit -s)" -gt 65536 ]; then
	ulimit -s 8192
fi

# Every run, native or under km, gets the same small, fixed environment.
BASE_ENV=(env -i PATH=/usr/bin:/bin HOME=/ LC_ALL=C LANG=C TZ=UTC
	"KM_E2E_GREETING=hello from the environment")

PASSED=0
FAILED=0
FAILED_NAMES=()
NOT_RUN=()
MATCHED=0

# --- test bookkeeping ------------------------------------------------------------------------

# want NAME: true if the test called NAME is selected by PATTERN.
want() {
	[ -z "$PATTERN" ] || [[ $1 =~ $PATTERN ]]
}

# begin NAME: starts a test (call only if `want NAME`).
begin() {
	T_NAME=$1
	T_DIAG=""
	MATCHED=$((MATCHED + 1))
}

# bad MESSAGE...: records a failed assertion of the current test (the test goes on to collect more).
bad() {
	T_DIAG+="  - $*"$'\n'
}

# note TEXT: adds diagnostic text (printed only if the test fails).
note() {
	T_DIAG+="$*"$'\n'
}

# coproc_gone PID IN OUT ERRFILE: for a test that runs km as a bash coproc. True, with the test
# failed and ended, when km ended before the caller could take the coproc's pid and fds: bash
# unsets NAME and NAME_PID once a coproc has ended, maybe before the caller's next line, and
# `set -u` would then abort the whole run.
coproc_gone() {
	[ -n "$1" ] && [ -n "$2" ] && [ -n "$3" ] && return 1
	[ -n "$1" ] && wait "$1"
	bad "km ended at once: $(head -c 300 "$4" 2>/dev/null)"
	end
	return 0
}

# coproc_send FD LINE: LINE to a coproc's stdin; one that has died fails its test, not the run (an
# EPIPE instead of the shell's death by SIGPIPE; a subshell cannot write: bash closes coproc fds
# in subshells).
coproc_send() {
	trap '' PIPE
	echo "$2" 2>/dev/null >&"$1"
	trap - PIPE
}

# km_only NAME: a test that needs the real km; in KM=native mode it is listed as not run.
km_only() {
	if [ $NATIVE = 1 ]; then
		NOT_RUN+=("$1")
		return 1
	fi
	return 0
}

end() {
	if [ -z "$T_DIAG" ] || ! grep -q '^  - ' <<<"$T_DIAG"; then
		PASSED=$((PASSED + 1))
		echo "PASS $T_NAME"
		[ "$VERBOSE" = 1 ] && [ -n "$T_DIAG" ] && printf '%s' "$T_DIAG"
	else
		FAILED=$((FAILED + 1))
		FAILED_NAMES+=("$T_NAME")
		echo "FAIL $T_NAME"
		printf '%s' "$T_DIAG"
	fi
}

# --- running things --------------------------------------------------------------------------

quote() {
	local s="" a
	for a in "$@"; do s+="$(printf '%q' "$a") "; done
	printf '%s' "${s% }"
}

# run DIR CWD STDIN VAR=VALUE... -- CMD ARGS...
# Runs CMD with the fixed environment (plus the VAR=VALUEs) in CWD, stdin from STDIN, stdout and
# stderr to DIR/out and DIR/err; sets RC (128+n when killed by signal n) and CMDLINE.
# split_run_args VAR=VALUE... -- CMD ARGS...: the environment additions into RUN_EXTRA, the
# command into RUN_CMD (what run and snapshot.sh's snap_start take after DIR CWD STDIN).
split_run_args() {
	RUN_EXTRA=()
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		RUN_EXTRA+=("$1")
		shift
	done
	shift
	RUN_CMD=("$@")
}

run() {
	local dir=$1 cwd=$2 stdin=$3
	shift 3
	split_run_args "$@"
	mkdir -p "$dir"
	CMDLINE="(cd $(quote "$cwd") && $(quote "${RUN_CMD[@]}") < $(quote "$stdin"))"
	# The braces with 2>/dev/null keep bash's own "Segmentation fault" report out of our output.
	{ (cd "$cwd" && exec timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "${RUN_EXTRA[@]}" "${RUN_CMD[@]}") \
		>"$dir/out" 2>"$dir/err" <"$stdin"; } 2>/dev/null
	RC=$?
}

# km_cmd ARGS...: the command line that runs ARGS under km (or natively in KM=native mode).
km_cmd() {
	if [ $NATIVE = 1 ]; then
		KMCMD=("$@")
	else
		KMCMD=("$KM" "$@")
	fi
}

# status_text RC: human-readable exit status.
status_text() {
	local rc=$1
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "$rc (timed out after ${TIMEOUT}s, or SIGKILL)"
	elif [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
		echo "$rc (killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo "?"))"
	else
		echo "$rc"
	fi
}

# show_file LABEL FILE: prints (part of) a file into the diagnostics.
show_file() {
	local label=$1 file=$2 lines
	if [ ! -s "$file" ]; then
		note "    $label: (empty)"
		return
	fi
	lines=$(wc -l <"$file")
	note "    $label ($(wc -c <"$file") bytes, $lines lines):"
	note "$(head -n 40 "$file" | cut -c1-300 | sed 's/^/      | /')"
	[ "$lines" -gt 40 ] && note "      | ... ($((lines - 40)) more lines)"
}

# show_diff A B: unified diff of two output files into the diagnostics.
show_diff() {
	note "    diff native (-) vs km (+) stdout:"
	note "$(diff -a -u --label native --label km "$1" "$2" | head -n 60 | cut -c1-300 | cat -v | sed 's/^/      /')"
}

# want_rc EXPECT: the exit status for EXPECT, a number or a signal name (SIGSEGV -> 139).
want_rc() {
	case $1 in
	SIG*) echo $((128 + $(kill -l "${1#SIG}"))) ;;
	*) echo "$1" ;;
	esac
}

# compare_runs NDIR NRC KDIR KRC WANTRC: the common assertions for a native run vs a km run.
# Compares exit status against WANTRC and stdout byte for byte; stderr too unless COMPARE_STDERR=0.
compare_runs() {
	local nd=$1 nrc=$2 kd=$3 krc=$4 want=$5
	if [ "$nrc" != "$want" ]; then
		bad "native run: exit status $(status_text "$nrc"), expected $(status_text "$want") (a broken guest or harness?)"
	fi
	if [ "$krc" != "$want" ]; then
		bad "km run: exit status $(status_text "$krc"), expected $(status_text "$want")"
	fi
	if ! cmp -s "$nd/out" "$kd/out"; then
		bad "stdout differs between the native run and the km run"
		show_diff "$nd/out" "$kd/out"
	fi
	if [ "${COMPARE_STDERR:-1}" = 1 ] && ! cmp -s "$nd/err" "$kd/err"; then
		bad "stderr differs between the native run and the km run"
	fi
}

# show_runs NDIR KDIR: the commands and outputs of both runs, for diagnostics.
show_runs() {
	note "    native command: $N_CMDLINE"
	note "    km command:     $K_CMDLINE"
	show_file "native stdout" "$1/out"
	show_file "native stderr" "$1/err"
	show_file "km stdout" "$2/out"
	show_file "km stderr" "$2/err"
}

# --- test guests -----------------------------------------------------------------------------

# guest_case FLAVOUR NAME CASE EXPECT CWD ARGS...: one guest run natively and under km.
# "@TMP" in ARGS is replaced by a fresh temporary directory (the same path for both runs, and
# also given as $TMPDIR).
guest_case() {
	local flavour=$1 name=$2 case=$3 expect=$4 cwd=$5
	shift 5
	local test="guest/$flavour/$name/$case"
	want "$test" || return 0
	begin "$test"
	local bin=$GUESTS/$flavour/$name d=$WORK/guest/$flavour/$name/$case
	local tmp=$d/tmp want a
	local -a args=()
	for a in "$@"; do args+=("${a//@TMP/$tmp}"); done
	[ "$cwd" = @CWD ] && cwd=$d/cwd
	want=$(want_rc "$expect")
	if [ ! -x "$bin" ]; then
		bad "guest binary $bin is missing (make guests)"
		end
		return
	fi
	[ "$cwd" = "$d/cwd" ] && mkdir -p "$cwd"
	local exe=$bin
	[ "$cwd" != "$d/cwd" ] && exe=./$name # the relative-path case runs from the guest's own dir

	rm -rf "$tmp" && mkdir -p "$tmp"
	run "$d/native" "$cwd" /dev/null "TMPDIR=$tmp" -- "$exe" "${args[@]}"
	local nrc=$RC
	N_CMDLINE=$CMDLINE
	rm -rf "$tmp" && mkdir -p "$tmp"
	km_cmd "$exe" "${args[@]}"
	run "$d/km" "$cwd" /dev/null "TMPDIR=$tmp" -- "${KMCMD[@]}"
	local krc=$RC
	K_CMDLINE=$CMDLINE

	case $expect in
	SIG*)
		COMPARE_STDERR=0 compare_runs "$d/native" "$nrc" "$d/km" "$krc" "$want"
		if [ -s "$d/native/err" ]; then
			bad "native run of a crash guest wrote to stderr (the km check expects nothing but km's own line)"
		fi
		if [ $NATIVE = 0 ]; then
			local nl
			nl=$(wc -l <"$d/km/err")
			if [ "$nl" -ne 1 ]; then
				bad "km stderr has $nl lines, expected exactly one line reporting $expect"
			elif ! grep -q "$expect" "$d/km/err"; then
				bad "km stderr does not mention $expect"
			fi
		fi
		;;
	*)
		compare_runs "$d/native" "$nrc" "$d/km" "$krc" "$want"
		;;
	esac
	if grep -q '^FAIL' "$d/native/out"; then
		bad "the guest's own checks failed natively: $(grep -m3 '^FAIL' "$d/native/out" | tr '\n' ' ')"
	fi
	if grep -q '^FAIL' "$d/km/out"; then
		bad "the guest's own checks failed under km: $(grep -m3 '^FAIL' "$d/km/out" | tr '\n' ' ')"
	fi
	if [ -n "$(ls -A "$tmp")" ]; then
		note "    (the km run left files behind in its temp dir: $(ls -A "$tmp" | head -5 | tr '\n' ' '))"
	fi
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_runs "$d/native" "$d/km"
	fi
	end
}

# Each guest source may declare its runs with lines "// E2E: CASE EXPECT [ARGS...]": EXPECT is an
# exit status or a signal name; ARGS are shell words ("@TMP" = a fresh temp dir). A guest without
# such lines gets one case: "run 0" with no arguments.
run_guests() {
	local src name flavour line case expect argstr found
	for flavour in gcc musl; do
		for src in "$ROOT"/tests/guests/*.c; do
			name=$(basename "$src" .c)
			[[ $name == hostile_* ]] && continue # km-only: tests/e2e/hostile.sh
			[[ $name == sysfuzz ]] && continue   # km-only: tests/e2e/sysfuzz.sh
			found=0
			while IFS= read -r line; do
				[[ $line =~ ^//\ E2E:\ +([A-Za-z0-9_.-]+)\ +([A-Z0-9]+)(\ +(.*))?$ ]] || continue
				found=1
				case=${BASH_REMATCH[1]}
				expect=${BASH_REMATCH[2]}
				argstr=${BASH_REMATCH[4]}
				local -a args=()
				eval "args=($argstr)" # trusted: our own test sources
				guest_case "$flavour" "$name" "$case" "$expect" @CWD "${args[@]}"
			done <"$src"
			[ $found = 1 ] || guest_case "$flavour" "$name" run 0 @CWD
		done
		# The program started through a relative path: argv[0] and /proc/self/exe must still work.
		if [ -f "$ROOT/tests/guests/misc.c" ]; then
			guest_case "$flavour" misc relative-path 0 "$GUESTS/$flavour" @TMP
		fi
	done
}

# --- km's own behaviour: bad input -----------------------------------------------------------

# km_rejects NAME MUST_MENTION KM_ARGS...: km must exit 1 with exactly one line on stderr that
# contains MUST_MENTION, nothing on stdout, and no sanitizer report or core file.
km_rejects() {
	local name=$1 mention=$2
	shift 2
	local test="km/bad-input/$name"
	want "$test" || return 0
	km_only "$test" || return 0
	begin "$test"
	local d=$WORK/km-bad/$name
	mkdir -p "$d/cwd"
	run "$d" "$d/cwd" /dev/null -- "$KM" "$@"
	local nl
	nl=$(wc -l <"$d/err")
	[ "$RC" = 1 ] || bad "exit status $(status_text "$RC"), expected 1"
	[ "$nl" -eq 1 ] || bad "stderr has $nl lines, expected exactly one"
	grep -qF -- "$mention" "$d/err" || bad "stderr does not mention '$mention'"
	[ -s "$d/out" ] && bad "stdout is not empty"
	grep -qiE 'sanitizer|runtime error:|leak' "$d/err" && bad "stderr has a sanitizer report"
	[ -n "$(ls -A "$d/cwd")" ] && bad "km left files in its working directory: $(ls -A "$d/cwd" | tr '\n' ' ')"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		note "    command: $CMDLINE"
		show_file stdout "$d/out"
		show_file stderr "$d/err"
	fi
	end
}

run_bad_input() {
	local d=$WORK/inputs hello=$GUESTS/gcc/hello
	mkdir -p "$d"
	km_rejects missing-file "$d/no-such-program" "$d/no-such-program"

	cp "$ROOT/tests/fixtures/not-elf.txt" "$d/not-elf.txt" && chmod +x "$d/not-elf.txt"
	km_rejects not-elf "$d/not-elf.txt" "$d/not-elf.txt"

	: >"$d/empty" && chmod +x "$d/empty"
	km_rejects empty-file "$d/empty" "$d/empty"

	km_rejects directory "$d" "$d"

	head -c 100 "$hello" >"$d/truncated" && chmod +x "$d/truncated"
	km_rejects truncated-elf "$d/truncated" "$d/truncated"

	# Keep the program headers but cut the file before its segments' data.
	head -c 3000 "$hello" >"$d/truncated-segments" && chmod +x "$d/truncated-segments"
	km_rejects truncated-segments "$d/truncated-segments" "$d/truncated-segments"

	# A real 32-bit program if the toolchain can make one, else a 64-bit one marked ELFCLASS32.
	if ! gcc -m32 -nostdlib -static -o "$d/elf32" "$ROOT/tests/fixtures/elf32_exit.S" 2>"$d/elf32.log"; then
		echo "note: gcc -m32 cannot link here; km/bad-input/elf32 uses a copy of hello with e_ident[EI_CLASS] patched to ELFCLASS32"
		cp "$hello" "$d/elf32"
		printf '\x01' | dd of="$d/elf32" bs=1 seek=4 conv=notrunc status=none
	fi
	km_rejects elf32 "$d/elf32" "$d/elf32"

	# e_machine (offset 18, little-endian u16) = 183, EM_AARCH64.
	cp "$hello" "$d/aarch64" && printf '\xb7\x00' | dd of="$d/aarch64" bs=1 seek=18 conv=notrunc status=none
	km_rejects non-x86-machine "$d/aarch64" "$d/aarch64"

	# A dynamically linked program whose interpreter is missing: one line naming both files.
	km_rejects missing-interpreter "/lib/ld.so" "$ROOT/tests/fuzz/elf-corpus/tiny-interp"

	km_rejects bad-option "--no-such-option" --no-such-option "$hello"
	km_rejects missing-kvm-device "/nonexistent/kvm-e2e" --kvm-device=/nonexistent/kvm-e2e "$hello"

	# No program at all: a usage message (any length) and exit status 1.
	local test=km/bad-input/no-program
	if want "$test" && km_only "$test"; then
		begin "$test"
		run "$WORK/km-bad/no-program" "$WORK" /dev/null -- "$KM"
		[ "$RC" = 1 ] || bad "exit status $(status_text "$RC"), expected 1"
		[ -s "$WORK/km-bad/no-program/err" ] || bad "nothing on stderr, expected a usage message"
		[ -n "$T_DIAG" ] && note "    command: $CMDLINE" && show_file stderr "$WORK/km-bad/no-program/err"
		end
	fi
}

# --- km's own behaviour: --trace -------------------------------------------------------------

# Trace lines look like strace's: "name(args) = result", failures "= -1 ENAME ...".
# A prefix before the name is allowed (e.g. "[km] ") as long as it ends in a space or ']';
# spaces before "=" may be padded (strace aligns results in a column).
trace_line() { # REGEX-FOR-NAME-AND-ARGS REGEX-FOR-RESULT FILE
	grep -qE "(^|[] [])$1 +=  *$2" "$3"
}

run_trace() {
	local flavour test d
	for flavour in gcc musl; do
		test="km/trace/$flavour/hello"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/trace/$flavour/hello
			mkdir -p "$d/cwd"
			run "$d" "$d/cwd" /dev/null -- "$KM" --trace "$GUESTS/$flavour/hello"
			[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
			[ "$(cat "$d/out")" = "hello, world" ] || bad "stdout is not exactly 'hello, world' (trace must go to stderr)"
			trace_line 'writev?\(1, .*\)' '13$' "$d/err" ||
				bad "no trace line like 'write(1, ..., 13) = 13' (or writev, as musl does)"
			trace_line 'open(at)?\(.*"/nonexistent-km-e2e/file".*\)' '-(1 )?ENOENT' "$d/err" ||
				bad "no trace line like 'openat(..., \"/nonexistent-km-e2e/file\", ...) = -1 ENOENT ...'"
			grep -qE '(^|[] [])exit_group\(0\)' "$d/err" || bad "no trace line for exit_group(0)"
			if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
				note "    command: $CMDLINE"
				show_file stdout "$d/out"
				show_file stderr "$d/err"
			fi
			end
		fi

		# Every byte the guest writes to stdout shows up in the results of its traced writes.
		test="km/trace/$flavour/fileio"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/trace/$flavour/fileio
			mkdir -p "$d/cwd" "$d/tmp"
			run "$d/native" "$d/cwd" /dev/null -- "$GUESTS/$flavour/fileio" "$d/tmp"
			local nrc=$RC
			N_CMDLINE=$CMDLINE
			rm -rf "$d/tmp" && mkdir -p "$d/tmp"
			run "$d/km" "$d/cwd" /dev/null -- "$KM" --trace "$GUESTS/$flavour/fileio" "$d/tmp"
			K_CMDLINE=$CMDLINE
			COMPARE_STDERR=0 compare_runs "$d/native" "$nrc" "$d/km" "$RC" 0
			local traced
			traced=$(grep -E '(^|[] [])writev?\(1, .*\) +=  *[0-9]+$' "$d/km/err" | sed -E 's/.*= *([0-9]+)$/\1/' |
				awk '{ s += $1 } END { print s + 0 }')
			[ "$traced" = "$(wc -c <"$d/km/out")" ] ||
				bad "traced write(1, ...) results add up to $traced bytes, but stdout has $(wc -c <"$d/km/out")"
			[ -n "$T_DIAG" ] && show_runs "$d/native" "$d/km"
			end
		fi

		# Tracing bad pointers (strings, buffers) must not upset km: same output as untraced.
		test="km/trace/$flavour/efault"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/trace/$flavour/efault
			mkdir -p "$d/cwd"
			run "$d/native" "$d/cwd" /dev/null -- "$GUESTS/$flavour/efault"
			local nrc=$RC
			N_CMDLINE=$CMDLINE
			run "$d/km" "$d/cwd" /dev/null -- "$KM" --trace "$GUESTS/$flavour/efault"
			K_CMDLINE=$CMDLINE
			COMPARE_STDERR=0 compare_runs "$d/native" "$nrc" "$d/km" "$RC" 0
			trace_line 'write\(1, .*\)' '-(1 )?EFAULT' "$d/km/err" ||
				bad "no trace line like 'write(1, 0x1, 10) = -1 EFAULT ...'"
			trace_line 'open\(.*\)' '-(1 )?EFAULT' "$d/km/err" ||
				bad "no trace line like 'open(0x1, ...) = -1 EFAULT ...' (a bad string pointer traced as a pointer)"
			grep -qiE 'sanitizer|runtime error:' "$d/km/err" && bad "sanitizer report in km's stderr"
			[ -n "$T_DIAG" ] && show_runs "$d/native" "$d/km"
			end
		fi
	done
}


# --- signals km raises for the guest ---------------------------------------------------------

# A write to a pipe whose reader is gone: SIGPIPE kills the writer (141), unless the guest
# inherited SIGPIPE as ignored, when it sees EPIPE; both exactly as natively.
run_signals() {
	local test d mode
	for mode in default ignored; do
		test="km/sigpipe/$mode"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/sigpipe/$mode
		mkdir -p "$d"
		local trap_cmd=""
		[ $mode = ignored ] && trap_cmd="trap '' PIPE;"
		local nrc krc
		nrc=$(bash -c "$trap_cmd $(quote "$BUSYBOX") seq 1 1000000 2>$(quote "$d/native.err") | head -1 >/dev/null; echo \${PIPESTATUS[0]}")
		krc=$(bash -c "$trap_cmd $(quote "$KM") $(quote "$BUSYBOX") seq 1 1000000 2>$(quote "$d/km.err") | head -1 >/dev/null; echo \${PIPESTATUS[0]}")
		[ "$krc" = "$nrc" ] || bad "km's exit status $krc, natively $nrc"
		[ $mode = default ] && [ "$nrc" != 141 ] && bad "natively the writer was not killed by SIGPIPE ($nrc)"
		cmp -s "$d/native.err" "$d/km.err" || bad "stderr differs: native '$(cat "$d/native.err")', km '$(cat "$d/km.err")'"
		end
	done
}

# --- km's own options and robustness ---------------------------------------------------------

run_km_options() {
	local flavour test d
	for flavour in gcc musl; do
		# --memory: the guest runs out of memory as ENOMEM, below the limit, and lives on.
		test="km/memory-limit/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/memlimit/$flavour
			mkdir -p "$d/cwd"
			run "$d" "$d/cwd" /dev/null -- "$KM" --memory=64M "$GUESTS/$flavour/memlimit" exhaust 256
			[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
			local mib
			mib=$(sed -nE 's/^mmap stopped after ([0-9]+) MiB: ENOMEM$/\1/p' "$d/out")
			if [ -z "$mib" ]; then
				bad "no 'mmap stopped after N MiB: ENOMEM' line"
			elif [ "$mib" -ge 64 ] || [ "$mib" -lt 32 ]; then
				bad "mmap stopped after $mib MiB with --memory=64M (expected 32..63)"
			fi
			grep -q '^malloc stopped after [0-9]* MiB: ENOMEM$' "$d/out" ||
				bad "malloc did not end with ENOMEM"
			[ -s "$d/err" ] && bad "km wrote to stderr"
			[ -n "$T_DIAG" ] && { note "    command: $CMDLINE"; show_file stdout "$d/out"; show_file stderr "$d/err"; }
			end
		fi

		# Garbage in every argument of every syscall: errno values, never a crashed km.
		for mode in plain trace; do
			test="km/garbage-syscalls/$flavour/$mode"
			want "$test" && km_only "$test" || continue
			begin "$test"
			d=$WORK/garbage/$flavour/$mode
			mkdir -p "$d/cwd"
			local -a opt=()
			[ $mode = trace ] && opt=(--trace)
			run "$d" "$d/cwd" /dev/null -- "$KM" "${opt[@]}" "$GUESTS/$flavour/garbage" sweep
			[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
			grep -q '^survived [0-9]* garbage syscalls$' "$d/out" || bad "the guest did not finish its sweep"
			grep -q '^PASSED' "$d/out" || bad "the guest's memory or output broke"
			[ -z "$(ls -A "$d/cwd")" ] || bad "the sweep left files behind: $(ls -A "$d/cwd")"
			[ $mode = trace ] && ! grep -q '= -1 EFAULT' "$d/err" && bad "no EFAULT in the trace"
			[ -n "$T_DIAG" ] && { note "    command: $CMDLINE"; show_file stdout "$d/out"; }
			end
		done
	done

	# /proc/self/mem is km's memory: the guest must not open it.
	for flavour in gcc musl; do
		test="km/proc-self-mem/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/procmem/$flavour
		mkdir -p "$d/cwd"
		run "$d" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/procmem" denied
		[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
		grep -q '^PASSED' "$d/out" || bad "the guest opened km's memory"
		[ -n "$T_DIAG" ] && { note "    command: $CMDLINE"; show_file stdout "$d/out"; }
		end
	done

	# --env / --clear-env shape the guest's environment; the program's own arguments are untouched.
	test="km/env-options"
	if want "$test" && km_only "$test"; then
		begin "$test"
		d=$WORK/env-options
		mkdir -p "$d/cwd"
		run "$d" "$d/cwd" /dev/null -- "$KM" --clear-env --env=A=1 --env=B=two --env=A=3 \
			"$BUSYBOX" env
		[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
		[ "$(cat "$d/out")" = $'A=3\nB=two' ] || bad "environment is '$(tr '\n' ' ' <"$d/out")', expected 'A=3 B=two'"
		run "$d/2" "$d/cwd" /dev/null KM_E2E_EXTRA=x -- "$KM" --env=KM_E2E_EXTRA=y "$BUSYBOX" env
		[ "$(grep -c '^KM_E2E_EXTRA=' "$d/2/out")" = 1 ] && grep -qx 'KM_E2E_EXTRA=y' "$d/2/out" ||
			bad "--env did not replace the inherited KM_E2E_EXTRA=x: $(grep KM_E2E_EXTRA "$d/2/out" | tr '\n' ' ')"
		run "$d/3" "$d/cwd" /dev/null -- "$KM" "$BUSYBOX" echo --trace --memory=1
		[ "$(cat "$d/3/out")" = "--trace --memory=1" ] || bad "options after the program were not passed to it"
		end
	fi
}

# --- main ------------------------------------------------------------------------------------

echo "e2e: km=$([ $NATIVE = 1 ] && echo "native (harness self-check)" || echo "${REAL_KM:-$KM}") syscall-path=$([ -n "$SYSCALL_PATH" ] && [ $NATIVE = 0 ] && echo "$SYSCALL_PATH (every km started with --syscall-path=$SYSCALL_PATH)" || echo "km's default") guests=$GUESTS${PATTERN:+ pattern=$PATTERN}"
START=$SECONDS
run_guests
run_bad_input
run_trace
# shellcheck source=busybox.sh
. "$ROOT/tests/e2e/busybox.sh"
[ -n "${BUSYBOX:-}" ] || find_busybox || die "busybox-static is not installed (scripts/deps.sh installs it)"
run_signals
run_km_options
. "$ROOT/tests/e2e/snapshot.sh"
run_snapshot
run_busybox
. "$ROOT/tests/e2e/guestmem.sh"
run_guestmem
. "$ROOT/tests/e2e/snapfile.sh"
run_snapfile
. "$ROOT/tests/e2e/seccomp.sh"
run_seccomp
. "$ROOT/tests/e2e/mgmt.sh"
run_mgmt
. "$ROOT/tests/e2e/snaplease.sh"
run_snaplease
. "$ROOT/tests/e2e/sysfuzz.sh"
run_sysfuzz
. "$ROOT/tests/e2e/threads.sh"
run_threads
. "$ROOT/tests/e2e/sigframe.sh"
run_sigframe
. "$ROOT/tests/e2e/golang.sh"
run_golang
. "$ROOT/tests/e2e/container_km.sh"
run_container_km
. "$ROOT/tests/e2e/shim.sh"
run_shim
. "$ROOT/tests/e2e/shim_ctr.sh"
run_shim_ctr
. "$ROOT/tests/e2e/guest_seccomp.sh"
run_guest_seccomp
. "$ROOT/tests/e2e/clients.sh"
run_clients
. "$ROOT/tests/e2e/cri.sh"
run_cri
. "$ROOT/tests/e2e/fds.sh"
run_fds
. "$ROOT/tests/e2e/fd_files.sh"
run_fd_files
. "$ROOT/tests/e2e/fd_pipes.sh"
run_fd_pipes
. "$ROOT/tests/e2e/fd_inet.sh"
run_fd_inet
. "$ROOT/tests/e2e/fd_servers.sh"
run_fd_servers
. "$ROOT/tests/e2e/fd_events.sh"
run_fd_events
. "$ROOT/tests/e2e/fd_netlock.sh"
run_fd_netlock
. "$ROOT/tests/e2e/procs_fork.sh"
run_procs_fork
. "$ROOT/tests/e2e/dynlink.sh"
run_dynlink
. "$ROOT/tests/e2e/vdso.sh"
run_vdso
. "$ROOT/tests/e2e/procs_exec.sh"
run_procs_exec
. "$ROOT/tests/e2e/procs.sh"
run_procs
. "$ROOT/tests/e2e/dirty.sh"
run_dirty
. "$ROOT/tests/e2e/copies.sh"
run_copies
. "$ROOT/tests/e2e/live.sh"
run_live
. "$ROOT/tests/e2e/incremental.sh"
run_incremental
. "$ROOT/tests/e2e/livechain.sh"
run_livechain
. "$ROOT/tests/e2e/startup.sh"
run_startup
. "$ROOT/tests/e2e/syscall_path.sh"
run_syscall_path
. "$ROOT/tests/e2e/stress.sh"
run_stress
. "$ROOT/tests/e2e/hostile.sh"
run_hostile

echo
if [ ${#FAILED_NAMES[@]} -gt 0 ]; then
	echo "failed tests:"
	printf '  %s\n' "${FAILED_NAMES[@]}"
fi
if [ ${#NOT_RUN[@]} -gt 0 ]; then
	echo "not run in KM=native mode (they test km itself): ${#NOT_RUN[@]} tests: ${NOT_RUN[*]}"
fi
if [ "$MATCHED" -eq 0 ]; then
	echo "e2e: no test name matches '$PATTERN'"
	echo "0 passed, 1 failed"
	exit 1
fi
echo "e2e: took $((SECONDS - START))s"
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
