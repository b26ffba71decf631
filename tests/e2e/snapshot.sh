# shellcheck shell=bash
# Snapshot tests (issue 3): programs snapshotted from inside (HC_snapshot) and from outside (the
# management socket), resumed with `km SNAPSHOT` and checked bit for bit; the file as binutils and
# gdb see it; core files; snapshot-like bad input. Sourced by run.sh after its helpers (want,
# begin, bad, note, end, run, km_only, status_text, show_file, km_rejects, quote, BASE_ENV);
# defines run_snapshot.
#
# Guests: tests/guests/snap_*.c (snap_common.h). In a snapshot mode run natively they print
# "snapshot hypercall returned ENOSYS: not running under km" and exit 77 (snapshot/native/*,
# which also run with KM=native); everything else needs the real km.
#
# Knobs: SNAP_CYCLES=50 (snapshot/resume cycles in a row), SNAP_CPU_ITERATIONS=250000000 (about
# 2 s of snap_cpu here; it must outlast the 0.3 s before the snapshot request),
# KM_MGMT=$TOOLS/km-mgmt (the management socket's client; TOOLS defaults to build/tests/tools).

SNAP_CYCLES=${SNAP_CYCLES:-50}
SNAP_CPU_ITERATIONS=${SNAP_CPU_ITERATIONS:-250000000}
SNAP_MGMT=${KM_MGMT:-${TOOLS:-$ROOT/build/tests/tools}/km-mgmt}
case $SNAP_MGMT in /*) ;; *) SNAP_MGMT=$PWD/$SNAP_MGMT ;; esac
SNAP_FLAVOURS=(gcc musl)
SNAP_NOT_KM_LINE="snapshot hypercall returned ENOSYS: not running under km"

# --- helpers -------------------------------------------------------------------------------

# snap_bin FLAVOUR NAME: a guest binary; flavour "pie" is snap_state built with gcc -static-pie
# at test time (snap_build_pie).
snap_bin() {
	if [ "$1" = pie ]; then
		echo "$WORK/snap/pie/$2"
	else
		echo "$GUESTS/$1/$2"
	fi
}

snap_build_pie() {
	[ -n "${SNAP_PIE_TRIED:-}" ] && return "$SNAP_PIE_RC"
	SNAP_PIE_TRIED=1
	mkdir -p "$WORK/snap/pie"
	(cd "$ROOT" && gcc -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -Iruntime/include -static-pie \
		-o "$WORK/snap/pie/snap_state" tests/guests/snap_state.c -lm) >"$WORK/snap/pie/build.log" 2>&1
	SNAP_PIE_RC=$?
	return "$SNAP_PIE_RC"
}

# srun DIR CWD STDIN VAR=VALUE... -- CMD...: run (run.sh), and keeps the command line in DIR/cmd.
srun() {
	run "$@"
	echo "$CMDLINE" >"$1/cmd"
}

# snap_start DIR CWD STDIN VAR=VALUE... -- CMD...: like srun, in the background (BG_PID). A fifo
# as STDIN is opened read-write, so that neither side blocks opening it.
snap_start() {
	local dir=$1 cwd=$2 stdin=$3
	shift 3
	split_run_args "$@"
	mkdir -p "$dir"
	echo "(cd $(quote "$cwd") && $(quote "${RUN_CMD[@]}") < $(quote "$stdin")) &" >"$dir/cmd"
	if [ -p "$stdin" ]; then
		{ (cd "$cwd" && exec timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "${RUN_EXTRA[@]}" "${RUN_CMD[@]}") \
			>"$dir/out" 2>"$dir/err" 0<>"$stdin" & } 2>/dev/null
	else
		{ (cd "$cwd" && exec timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "${RUN_EXTRA[@]}" "${RUN_CMD[@]}") \
			>"$dir/out" 2>"$dir/err" <"$stdin" & } 2>/dev/null
	fi
	BG_PID=$!
}

# snap_wait_line FILE TEXT SECONDS: waits until FILE has a line TEXT; false on timeout.
snap_wait_line() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -qxF -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# snap_verbose: true if the current test failed so far, or VERBOSE=1: then show its runs.
snap_verbose() {
	[ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]
}

# snap_show DIR...: command, stdout and stderr of runs, into the diagnostics.
snap_show() {
	local dir
	for dir in "$@"; do
		[ -d "$dir" ] || continue
		note "    command: $(cat "$dir/cmd" 2>/dev/null)"
		show_file stdout "$dir/out"
		show_file stderr "$dir/err"
	done
}

# snap_lines FILE: stdout without the guests' "ok ..." lines and the "PASSED all N checks" line.
snap_lines() {
	grep -v -e '^ok ' -e '^PASSED all [0-9]* checks$' "$1"
}

# snap_expect_run DIR WHAT RC LINES: the run in DIR exited with RC, wrote nothing on stderr, no
# FAIL line, and its stdout (without "ok" and "PASSED" lines) is exactly LINES. A LINES ending
# in "+PASSED" means: ... and the guest's PASSED line must be there.
snap_expect_run() {
	local dir=$1 what=$2 want=$3 lines=$4 passed=0
	if [[ $lines == *+PASSED ]]; then
		passed=1
		lines=${lines%+PASSED}
	fi
	[ "$RC" = "$want" ] || bad "$what: exit status $(status_text "$RC"), expected $want"
	[ -s "$dir/err" ] && bad "$what: stderr is not empty: $(head -c 300 "$dir/err" | tr '\n' ' ')"
	grep -q '^FAIL' "$dir/out" && bad "$what: the guest's checks failed: $(grep -m3 '^FAIL' "$dir/out" | cut -c1-300 | tr '\n' ' ')"
	if [ "$(snap_lines "$dir/out")" != "$lines" ]; then
		bad "$what: stdout is not what it must be"
		note "      expected (without ok/PASSED lines):"
		note "$(printf '%s\n' "$lines" | sed 's/^/      | /')"
	fi
	[ $passed = 1 ] && ! grep -q '^PASSED all' "$dir/out" && bad "$what: no PASSED line"
}

# snap_files DIR: the names in DIR, sorted, space-separated.
snap_files() {
	(cd "$1" && LC_ALL=C ls -A | tr '\n' ' ' | sed 's/ $//')
}

# snap_expect_files DIR "NAMES": DIR holds exactly these names (no temporary files left).
snap_expect_files() {
	local have
	have=$(snap_files "$1")
	[ "$have" = "$2" ] || bad "$1 holds '$have', expected '$2' (temporary or misplaced files?)"
}

# snap_expect_snapshot FILE: exists, is a regular file with mode 0600, and is an ELF core file.
snap_expect_snapshot() {
	if [ ! -f "$1" ]; then
		bad "no snapshot file $1"
		return 1
	fi
	local mode
	mode=$(stat -c %a "$1")
	[ "$mode" = 600 ] || bad "$1 has mode $mode, expected 600"
	[ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ] || bad "$1 is not an ELF file"
	[ "$(od -An -t u2 -j 16 -N 2 "$1" | tr -d ' ')" = 4 ] || bad "$1 is not ET_CORE"
	return 0
}

# Little-endian integers in files.
snap_get() { # FILE OFFSET SIZE
	od -An -t "u$3" -j "$2" -N "$3" "$1" | tr -d ' '
}
snap_put() { # FILE OFFSET SIZE VALUE
	local hex="" i
	for ((i = 0; i < $3; i++)); do
		hex+=$(printf '\\x%02x' $((($4 >> (8 * i)) & 255)))
	done
	printf "$hex" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# snap_seal FILE: recomputes the header checksum (NT_KM_CHECKSUM) of a snapshot a test damaged
# on purpose, so that km's check for that damage sees it rather than the checksum
# (tests/tools/km-snapseal). Files it cannot seal (no checksum note left) stay as they are.
SNAP_SEAL=${TOOLS:-$ROOT/build/tests/tools}/km-snapseal
case $SNAP_SEAL in /*) ;; *) SNAP_SEAL=$PWD/$SNAP_SEAL ;; esac
snap_seal() {
	"$SNAP_SEAL" "$1" 2>/dev/null || true
}

# snap_parse FILE: reads the ELF program headers and the notes of a snapshot into
# PH_TYPE/PH_OFF/PH_VADDR/PH_FILESZ/PH_ADDR (header offset) and NT_OFF (note header offset)/
# NT_NAME/NT_TYPE/NT_DESC (descriptor offset)/NT_DESCSZ. False if it is not a well-formed file.
snap_parse() {
	local f=$1 phoff phnum i o nameoff namesz end align
	PH_TYPE=() PH_OFF=() PH_VADDR=() PH_FILESZ=() PH_ADDR=()
	NT_OFF=() NT_NAME=() NT_TYPE=() NT_DESC=() NT_DESCSZ=()
	phoff=$(snap_get "$f" 32 8)
	phnum=$(snap_get "$f" 56 2)
	[ -n "$phoff" ] && [ -n "$phnum" ] || return 1
	for ((i = 0; i < phnum; i++)); do
		o=$((phoff + i * 56))
		PH_ADDR+=("$o")
		PH_TYPE+=("$(snap_get "$f" "$o" 4)")
		PH_OFF+=("$(snap_get "$f" $((o + 8)) 8)")
		PH_VADDR+=("$(snap_get "$f" $((o + 16)) 8)")
		PH_FILESZ+=("$(snap_get "$f" $((o + 32)) 8)")
	done
	[ "${PH_TYPE[0]:-}" = 4 ] || return 1 # PT_NOTE first
	align=$(snap_get "$f" $((PH_ADDR[0] + 48)) 8)
	[ "$align" = 8 ] || align=4
	o=${PH_OFF[0]}
	end=$((o + PH_FILESZ[0]))
	while [ $((o + 12)) -le $end ]; do
		namesz=$(snap_get "$f" "$o" 4)
		nameoff=$((o + 12))
		NT_OFF+=("$o")
		NT_DESCSZ+=("$(snap_get "$f" $((o + 4)) 4)")
		NT_TYPE+=("$(snap_get "$f" $((o + 8)) 4)")
		NT_NAME+=("$(dd if="$f" iflag=skip_bytes,count_bytes skip=$nameoff count=$((namesz > 0 ? namesz - 1 : 0)) status=none)")
		NT_DESC+=($((nameoff + (namesz + align - 1) / align * align)))
		o=$((NT_DESC[-1] + (NT_DESCSZ[-1] + align - 1) / align * align))
	done
	return 0
}

# snap_note_index NAME TYPE: index in NT_* of the first note with this owner and type, or "".
snap_note_index() {
	local i
	for i in "${!NT_TYPE[@]}"; do
		if [ "${NT_NAME[$i]}" = "$1" ] && [ "${NT_TYPE[$i]}" = "$2" ]; then
			echo "$i"
			return
		fi
	done
}

# --- native paths: the hypercall is ENOSYS, the guests say so --------------------------------

snap_native() {
	local flavour name test d
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		for name in snap_state-snap snap_modes-keep snap_modes-once snap_modes-file snap_cycle-cycle; do
			test="snapshot/native/$flavour/$name"
			want "$test" || continue
			begin "$test"
			d=$WORK/snap/native/$flavour/$name
			mkdir -p "$d/cwd" "$d/tmp"
			local -a cmd=("$(snap_bin "$flavour" "${name%%-*}")" "${name#*-}")
			case $name in
			snap_state-snap) cmd+=("$d/tmp" 'two words' $'tab\there' '') ;;
			snap_modes-file) cmd+=(x.snap) ;;
			snap_cycle-cycle) cmd+=(3) ;;
			esac
			srun "$d/run" "$d/cwd" /dev/null -- "${cmd[@]}"
			[ "$RC" = 77 ] || bad "exit status $(status_text "$RC"), expected 77 (not under km)"
			grep -qxF "$SNAP_NOT_KM_LINE" "$d/run/out" || bad "no line '$SNAP_NOT_KM_LINE'"
			grep -q '^FAIL' "$d/run/out" && bad "FAIL lines before the hypercall"
			[ -s "$d/run/err" ] && bad "stderr is not empty"
			snap_expect_files "$d/cwd" ""
			snap_verbose && snap_show "$d/run"
			end
		done
	done
}

# --- round trip of snap_state --------------------------------------------------------------

# snap_make_state FLAVOUR: once per run, snap_state snapshots itself into
# $WORK/snap/state/FLAVOUR/state.snap (SS_DIR); the assertions about that run go to the
# current test. Returns 1 if there is no usable snapshot.
snap_make_state() {
	local flavour=$1 bin
	SS_DIR=$WORK/snap/state/$flavour
	if [ -f "$SS_DIR/made" ]; then
		[ "$(cat "$SS_DIR/made")" = ok ] && return 0
		bad "the snapshot of snap_state ($flavour) could not be made (see the first snapshot test of $flavour)"
		return 1
	fi
	mkdir -p "$SS_DIR/tmp" "$SS_DIR/cwd1" "$SS_DIR/cwd2"
	if [ "$flavour" = pie ] && ! snap_build_pie; then
		bad "gcc -static-pie failed: $(head -c 300 "$WORK/snap/pie/build.log")"
		echo failed >"$SS_DIR/made"
		return 1
	fi
	bin=$(snap_bin "$flavour" snap_state)
	local before=$T_DIAG
	srun "$SS_DIR/take" "$SS_DIR/cwd1" /dev/null "KM_E2E_SNAPENV=snapshot-time value" -- \
		"$KM" --snapshot="$SS_DIR/state.snap" "$bin" snap "$SS_DIR/tmp" 'two words' $'tab\there' ''
	snap_expect_run "$SS_DIR/take" "snapshot run" 0 $'state built\ntaking the snapshot'
	snap_expect_snapshot "$SS_DIR/state.snap"
	snap_expect_files "$SS_DIR" "cwd1 cwd2 state.snap take tmp"
	snap_expect_files "$SS_DIR/cwd1" ""
	if [ "$T_DIAG" != "$before" ]; then
		snap_show "$SS_DIR/take"
		echo failed >"$SS_DIR/made"
		return 1
	fi
	echo ok >"$SS_DIR/made"
	return 0
}

snap_roundtrip() {
	local flavour test d
	for flavour in "${SNAP_FLAVOURS[@]}" pie; do
		test="snapshot/roundtrip/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		if snap_make_state "$flavour"; then
			d=$SS_DIR
			mkdir -p "$d/ref"
			cp --sparse=always "$d/state.snap" "$d/ref/state.snap"
			cp "$d/tmp/private.dat" "$d/ref/private.dat"
			# Changed from outside between snapshot and resume: the resumed shared mapping shows it.
			printf 'CHANGED-BY-TEST' | dd of="$d/tmp/shared.dat" bs=1 seek=4196 conv=notrunc status=none
			# Resumed elsewhere, with another environment: the program's own cwd and environment.
			srun "$d/resume1" "$d/cwd2" /dev/null "KM_E2E_SNAPENV=a different value" KM_E2E_RESUME_ONLY=1 -- \
				"$KM" "$d/state.snap"
			snap_expect_run "$d/resume1" "first resume" 0 "resumed from the snapshot+PASSED"
			snap_expect_files "$d/cwd2" ""
			# Again from the same file, by a relative path: the file is not used up or changed.
			srun "$d/resume2" "$d" /dev/null -- "$KM" state.snap
			snap_expect_run "$d/resume2" "second resume (same file)" 0 "resumed from the snapshot+PASSED"
			cmp -s "$d/state.snap" "$d/ref/state.snap" || bad "resuming changed the snapshot file"
			cmp -s "$d/tmp/private.dat" "$d/ref/private.dat" || bad "private.dat changed on disk (a MAP_PRIVATE mapping of it was written)"
			snap_verbose && snap_show "$d/take" "$d/resume1" "$d/resume2"
		fi
		end
	done
}

# --- resuming refused: what the snapshot refers to outside itself is gone ----------------------

# A shared file mapping is mapped again from its file, which must be the same file (dev/ino); the
# working directory must still exist. Otherwise: exit 1, one line naming what is missing, and
# no guest output.
snap_refused() {
	local what test d
	for what in shared-file-replaced cwd-removed; do
		test="snapshot/resume-refused/$what"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/snap/refused/$what
		mkdir -p "$d/tmp" "$d/cwd"
		srun "$d/take" "$d/cwd" /dev/null "KM_E2E_SNAPENV=snapshot-time value" -- \
			"$KM" --snapshot="$d/s.snap" "$GUESTS/musl/snap_state" snap "$d/tmp" 'two words' $'tab\there' ''
		snap_expect_run "$d/take" "snapshot run" 0 $'state built\ntaking the snapshot'
		local mention
		if [ "$what" = shared-file-replaced ]; then
			cp "$d/tmp/shared.dat" "$d/tmp/new" && mv "$d/tmp/new" "$d/tmp/shared.dat"
			mention=shared.dat
		else
			mv "$d/tmp/cwd dir" "$d/tmp/moved"
			mention="cwd dir"
		fi
		srun "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
		[ "$RC" = 1 ] || bad "resume: exit status $(status_text "$RC"), expected 1"
		[ "$(wc -l <"$d/resume/err")" = 1 ] || bad "resume: stderr has $(wc -l <"$d/resume/err") lines, expected one"
		grep -qF "$mention" "$d/resume/err" || bad "resume: stderr does not mention '$mention'"
		[ -s "$d/resume/out" ] && bad "resume: the guest ran (stdout is not empty)"
		snap_expect_files "$d/cwd" ""
		snap_verbose && snap_show "$d/take" "$d/resume"
		end
	done
}

# --- keep running; two snapshots, the second named by the hypercall; --inspect ----------------

snap_keep() {
	local flavour test d bin
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		test="snapshot/keep-running/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/snap/keep/$flavour
		bin=$(snap_bin "$flavour" snap_modes)
		mkdir -p "$d/cwd"
		srun "$d/run" "$d/cwd" /dev/null -- "$KM" --snapshot=keep.snap "$bin" keep
		snap_expect_run "$d/run" "original run" 0 $'before the snapshots\nsnapshot 1 taken, still running\nsnapshot 2 taken, still running\noriginal run finished+PASSED'
		snap_expect_snapshot "$d/cwd/keep.snap"
		snap_expect_snapshot "$d/cwd/second.snap"
		snap_expect_files "$d/cwd" "keep.snap second.snap"
		srun "$d/resume1" "$d/cwd" /dev/null -- "$KM" keep.snap
		snap_expect_run "$d/resume1" "resumed from keep.snap" 0 "resumed from snapshot 1+PASSED"
		srun "$d/resume2" "$d/cwd" /dev/null -- "$KM" second.snap
		snap_expect_run "$d/resume2" "resumed from second.snap" 0 "resumed from snapshot 2+PASSED"
		snap_expect_files "$d/cwd" "keep.snap second.snap"
		snap_verbose && snap_show "$d/run" "$d/resume1" "$d/resume2"
		end

		test="snapshot/inspect/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		if [ -f "$d/cwd/keep.snap" ]; then
			cp --sparse=always "$d/cwd/keep.snap" "$d/keep.ref"
			srun "$d/inspect" "$d/cwd" /dev/null -- "$KM" --inspect keep.snap
			[ "$RC" = 0 ] || bad "km --inspect: exit status $(status_text "$RC"), expected 0"
			[ -s "$d/inspect/err" ] && bad "km --inspect wrote to stderr"
			grep -qF "$bin" "$d/inspect/out" || bad "the output does not name the program $bin"
			grep -qw keep "$d/inspect/out" || bad "the output does not show the argument 'keep'"
			grep -qw first "$d/inspect/out" || bad "the output does not show the label 'first'"
			cmp -s "$d/cwd/keep.snap" "$d/keep.ref" || bad "km --inspect changed the file"
			snap_verbose && snap_show "$d/inspect"
		else
			bad "no keep.snap from snapshot/keep-running/$flavour"
		fi
		end
	done
}

# --- file names: --snapshot, the default kmsnap, the hypercall's name, mode, replacing --------

snap_naming() {
	local test d bin=$GUESTS/musl/snap_modes
	# snap_naming_case NAME: begins test snapshot/naming/NAME in a fresh $d (with $d/cwd).
	snap_naming_case() {
		test="snapshot/naming/$1"
		want "$test" && km_only "$test" || return 1
		begin "$test"
		d=$WORK/snap/naming/$1
		mkdir -p "$d/cwd"
		return 0
	}
	snap_resume_ok() { # DIR FILE: `km FILE` resumes the "once" program
		srun "$1" "$d/cwd" /dev/null -- "$KM" "$2"
		snap_expect_run "$1" "resume of $2" 0 "resumed+PASSED"
	}

	if snap_naming_case default-kmsnap; then
		srun "$d/run" "$d/cwd" /dev/null -- "$KM" "$bin" once
		snap_expect_run "$d/run" "snapshot run" 0 "before the snapshot"
		snap_expect_snapshot "$d/cwd/kmsnap"
		snap_expect_files "$d/cwd" "kmsnap"
		snap_resume_ok "$d/resume" kmsnap
		snap_expect_files "$d/cwd" "kmsnap"
		snap_verbose && snap_show "$d/run" "$d/resume"
		end
	fi

	if snap_naming_case relative; then
		mkdir -p "$d/cwd/sub"
		srun "$d/run" "$d/cwd" /dev/null -- "$KM" --snapshot=sub/my.snap "$bin" once
		snap_expect_run "$d/run" "snapshot run" 0 "before the snapshot"
		snap_expect_snapshot "$d/cwd/sub/my.snap"
		snap_expect_files "$d/cwd" "sub"
		snap_expect_files "$d/cwd/sub" "my.snap"
		snap_resume_ok "$d/resume" sub/my.snap
		snap_verbose && snap_show "$d/run" "$d/resume"
		end
	fi

	if snap_naming_case absolute-umask-0; then
		# Mode 0600 whatever the umask: a snapshot holds the program's secrets.
		mkdir -p "$d/other"
		srun "$d/run" "$d/cwd" /dev/null -- sh -c 'umask 0; exec "$@"' sh "$KM" --snapshot="$d/other/abs.snap" "$bin" once
		snap_expect_run "$d/run" "snapshot run" 0 "before the snapshot"
		snap_expect_snapshot "$d/other/abs.snap"
		snap_expect_files "$d/other" "abs.snap"
		snap_expect_files "$d/cwd" ""
		snap_resume_ok "$d/resume" "$d/other/abs.snap"
		snap_verbose && snap_show "$d/run" "$d/resume"
		end
	fi

	if snap_naming_case replaces-older; then
		# An older file of the same name is replaced by a rename, never written in place: a
		# hard link to it keeps the old contents.
		echo "an older file" >"$d/cwd/old.snap"
		ln "$d/cwd/old.snap" "$d/cwd/old.link"
		srun "$d/run" "$d/cwd" /dev/null -- "$KM" --snapshot=old.snap "$bin" once
		snap_expect_run "$d/run" "snapshot run" 0 "before the snapshot"
		snap_expect_snapshot "$d/cwd/old.snap"
		[ "$(cat "$d/cwd/old.link")" = "an older file" ] || bad "the older file was overwritten in place"
		snap_expect_files "$d/cwd" "old.link old.snap"
		snap_resume_ok "$d/resume" old.snap
		snap_verbose && snap_show "$d/run" "$d/resume"
		end
	fi

	if snap_naming_case hypercall-file; then
		# The hypercall's own file name wins over --snapshot.
		srun "$d/run" "$d/cwd" /dev/null -- "$KM" --snapshot=not-this.snap "$bin" file named.snap
		snap_expect_run "$d/run" "snapshot run" 0 "before the snapshot"
		snap_expect_snapshot "$d/cwd/named.snap"
		snap_expect_files "$d/cwd" "named.snap"
		snap_resume_ok "$d/resume" named.snap
		snap_verbose && snap_show "$d/run" "$d/resume"
		end
	fi

	if snap_naming_case unwritable; then
		# The directory does not exist: the hypercall fails with -errno and the program goes on.
		srun "$d/run" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/no-such-dir/x.snap" "$bin" once
		[ "$RC" = 4 ] || bad "exit status $(status_text "$RC"), expected 4 (the guest saw the hypercall fail)"
		grep -q '^snapshot failed: ' "$d/run/out" || bad "the guest did not print 'snapshot failed: ...'"
		[ -e "$d/no-such-dir" ] && bad "$d/no-such-dir was created"
		snap_expect_files "$d" "cwd run"
		snap_expect_files "$d/cwd" ""
		snap_verbose && snap_show "$d/run"
		end
	fi
}

# --- many cycles ---------------------------------------------------------------------------

snap_cycles() {
	local flavour test d bin i want_out
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		test="snapshot/cycles/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/snap/cycles/$flavour
		bin=$(snap_bin "$flavour" snap_cycle)
		mkdir -p "$d/cwd"
		srun "$d/take" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/cwd/cycle.snap" "$bin" cycle "$SNAP_CYCLES"
		snap_expect_run "$d/take" "first run" 0 "cycles: $SNAP_CYCLES"
		snap_expect_snapshot "$d/cwd/cycle.snap"
		for ((i = 1; i <= SNAP_CYCLES && ${#T_DIAG} == 0; i++)); do
			# Resumed from the file it then replaces with its next snapshot.
			srun "$d/resume" "$d/cwd" /dev/null -- "$KM" --snapshot=cycle.snap cycle.snap
			want_out="resume $i: state ok"
			[ "$i" = "$SNAP_CYCLES" ] && want_out+=$'\n'"all $SNAP_CYCLES resumes ok"
			snap_expect_run "$d/resume" "resume $i of $SNAP_CYCLES" 0 "$want_out"
			snap_expect_files "$d/cwd" "cycle.snap"
			[ "$(stat -c %a "$d/cwd/cycle.snap" 2>/dev/null)" = 600 ] || bad "after resume $i: cycle.snap is missing or not mode 600"
		done
		snap_verbose && snap_show "$d/take" "$d/resume"
		end
	done
}

# --- the file as binutils and gdb see it -----------------------------------------------------

snap_readelf() {
	local flavour test d f n nload nprs name hex want_n got
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		test="snapshot/readelf/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		if snap_make_state "$flavour"; then
			f=$SS_DIR/state.snap
			d=$WORK/snap/readelf/$flavour
			mkdir -p "$d"
			readelf -h -l -n -W "$f" >"$d/out" 2>"$d/err"
			[ $? = 0 ] || bad "readelf failed"
			[ -s "$d/err" ] && bad "readelf complained: $(head -c 300 "$d/err" | tr '\n' ' ')"
			grep -qE '^ +Class: +ELF64$' "$d/out" || bad "not ELF64"
			grep -qE '^ +Type: +CORE \(Core file\)$' "$d/out" || bad "Type is not 'CORE (Core file)'"
			grep -qE '^ +Machine: +Advanced Micro Devices X86-64$' "$d/out" || bad "Machine is not x86-64"
			# Program headers: PT_NOTE first, then PT_LOADs in address order, page-aligned offsets.
			local -a ph
			mapfile -t ph < <(sed -n '/^Program Headers:/,/^$/p' "$d/out" | grep -E '^ +[A-Z_]+ +0x')
			[[ ${ph[0]:-} =~ ^\ +NOTE\  ]] || bad "the first program header is not NOTE: '${ph[0]:-none}'"
			nload=0
			local prev_end=0 line typ off vaddr filesz memsz
			for line in "${ph[@]:1}"; do
				read -r typ off vaddr _ filesz memsz _ <<<"$line"
				if [ "$typ" != LOAD ]; then
					bad "program header '$typ' after the NOTE (only LOADs expected)"
					continue
				fi
				nload=$((nload + 1))
				((off % 4096 == 0)) || bad "LOAD at $vaddr has file offset $off, not page-aligned"
				((vaddr % 4096 == 0 && memsz % 4096 == 0)) || bad "LOAD at $vaddr size $memsz is not page-aligned"
				((vaddr >= prev_end)) || bad "LOAD at $vaddr is below the end of the one before (not in order, or overlapping)"
				((filesz <= memsz)) || bad "LOAD at $vaddr has FileSiz > MemSiz"
				prev_end=$((vaddr + memsz))
			done
			# snap_state has text, data, bss, heap, stack, 2 file mappings, guards, ...
			[ "$nload" -ge 10 ] || bad "only $nload LOAD segments, expected one per mapping (10 or more)"
			# Notes, by owner and type.
			snap_count() { grep -cE "^ +$1 +0x[0-9a-f]+[[:space:]]+$2" "$d/out"; }
			nprs=$(snap_count CORE 'NT_PRSTATUS ')
			[ "$nprs" = 1 ] || bad "$nprs NT_PRSTATUS notes, expected 1 (one thread)"
			for name in NT_PRPSINFO NT_AUXV NT_FILE NT_FPREGSET; do
				n=$(snap_count CORE "$name ")
				[ "$n" = 1 ] || bad "$n $name notes (owner CORE), expected 1"
			done
			n=$(snap_count LINUX 'NT_X86_XSTATE ')
			[ "$n" = 1 ] || bad "$n NT_X86_XSTATE notes (owner LINUX), expected 1"
			# km's notes: every type km_coredump.h defines, by number.
			got=0
			while read -r name hex; do
				got=$((got + 1))
				n=$(snap_count KM "Unknown note type: \\($hex\\)")
				case $name in
				NT_KM_VMA) want_n=$nload ;;
				NT_KM_CPU) want_n=$nprs ;;
				NT_KM_SECCOMP) want_n=0 ;; # written only for a program with a seccomp filter (guest_seccomp.sh)
				*) want_n=1 ;;
				esac
				[ "$n" = "$want_n" ] || bad "$n $name ($hex) notes of owner KM, expected $want_n"
			done < <(sed -nE 's/^#define (NT_KM_[A-Z_]+) +(0x[0-9a-fA-F]+).*/\1 \2/p' "$ROOT/km/snapshot/km_coredump.h" |
				awk '{ print $1, tolower($2) }')
			[ "$got" -ge 5 ] || bad "km/snapshot/km_coredump.h defines only $got NT_KM_* types (expected NT_KM_PROC..NT_KM_VMA at least)"
			# NT_KM_DYNLINKER (2.4) names no interpreter for a static program (it still records
			# the program's own file, which a resume checks).
			"$KM" --inspect "$f" 2>&1 | grep -qE '^interpreter: +none \(statically linked\)$' ||
				bad "km --inspect does not say the static program has no interpreter (NT_KM_DYNLINKER)"
			if [ -n "$T_DIAG" ]; then
				note "    readelf -h -l -n -W $f:"
				note "$(grep -v 'description data' "$d/out" | head -80 | cut -c1-160 | sed 's/^/      | /')"
			fi
		fi
		end
	done
}

snap_gdb() {
	local flavour test d bin
	for flavour in "${SNAP_FLAVOURS[@]}" pie; do
		test="snapshot/gdb/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		if snap_make_state "$flavour"; then
			d=$WORK/snap/gdb/$flavour
			bin=$(snap_bin "$flavour" snap_state)
			mkdir -p "$d"
			srun "$d/run" "$d" /dev/null -- gdb -nx -batch -ex 'info registers rip' -ex bt \
				-ex 'info proc mappings' "$bin" "$SS_DIR/state.snap"
			[ "$RC" = 0 ] || bad "gdb: exit status $(status_text "$RC")"
			grep -qiE 'not a core dump|not in executable format|Cannot access memory' "$d/run/out" "$d/run/err" &&
				bad "gdb could not read the snapshot: $(grep -hiE 'not a core dump|not in executable format|Cannot access memory' "$d/run/out" "$d/run/err" | head -3 | tr '\n' ' ')"
			# NT_PRPSINFO's pr_psargs: the command line, cut to 79 bytes.
			local psargs="$bin snap $SS_DIR/tmp two words"
			psargs=${psargs:0:79}
			[[ "$(grep -m1 '^Core was generated by' "$d/run/out")" == "Core was generated by \`$psargs"* ]] ||
				bad "no 'Core was generated by \`$psargs...' (NT_PRPSINFO)"
			grep -qE '^rip +0x[0-9a-f]+ +0x[0-9a-f]+ <snap_fence_(sse|avx|avx512)\+[0-9]+>' "$d/run/out" ||
				bad "'info registers rip' does not point into snap_fence_* (where the hypercall is)"
			grep -qE '^#0 .* in snap_fence_(sse|avx|avx512) ' "$d/run/out" || bad "backtrace frame #0 is not snap_fence_*"
			grep -qE '^#[0-9]+ .* in recurse \(depth=(depth@entry=)?0,' "$d/run/out" || bad "backtrace has no recurse (depth=0, ...)"
			grep -qE '^#[0-9]+ .* in recurse \(depth=(depth@entry=)?100,' "$d/run/out" || bad "backtrace has no recurse (depth=100, ...): the stack is cut"
			grep -qE '^#[0-9]+ .* in main \(' "$d/run/out" || bad "backtrace does not reach main"
			# NT_FILE, as gdb reads it: the program and both file mappings.
			grep -q -- " $SS_DIR/tmp/shared.dat\$" "$d/run/out" || bad "'info proc mappings' (NT_FILE) lacks shared.dat"
			grep -q -- " $SS_DIR/tmp/private.dat\$" "$d/run/out" || bad "'info proc mappings' (NT_FILE) lacks private.dat"
			grep -q -- " $bin\$" "$d/run/out" || bad "'info proc mappings' (NT_FILE) lacks the program"
			if [ -n "$T_DIAG" ]; then
				note "    command: $(cat "$d/run/cmd")"
				note "$(grep -v '^#\([4-9]\|[1-9][0-9]\) .* in recurse' "$d/run/out" | head -40 | cut -c1-200 | sed 's/^/      | /')"
				show_file "gdb stderr" "$d/run/err"
			fi
		fi
		end
	done
}

# --- core files ----------------------------------------------------------------------------

# snap_check_core FILE BIN OUT: the core file of snap_segv as gdb sees it (its output in OUT).
snap_check_core() {
	local core=$1 bin=$2 out=$3
	snap_expect_snapshot "$core" || return
	gdb -nx -batch -ex bt "$bin" "$core" >"$out" 2>&1
	grep -q 'Program terminated with signal SIGSEGV' "$out" || bad "gdb: no 'Program terminated with signal SIGSEGV'"
	grep -qE '^#0 .* in crash_here \(' "$out" || bad "gdb: frame #0 is not crash_here"
	grep -qE '^#1 .* in level_two \(' "$out" || bad "gdb: frame #1 is not level_two"
	grep -qE '^#2 .* in level_one \(' "$out" || bad "gdb: frame #2 is not level_one"
	grep -qE '^#3 .* in main \(' "$out" || bad "gdb: frame #3 is not main"
	[ -n "$T_DIAG" ] && show_file "gdb -batch -ex bt" "$out"
}

# snap_crash_run DIR: km's crash report: exit 139, one stderr line naming SIGSEGV, the guest's line.
snap_crash_run() {
	[ "$RC" = 139 ] || bad "exit status $(status_text "$RC"), expected 139 (SIGSEGV)"
	local nl
	nl=$(wc -l <"$1/err")
	[ "$nl" = 1 ] || bad "stderr has $nl lines, expected km's one-line report"
	grep -q SIGSEGV "$1/err" || bad "stderr does not name SIGSEGV"
	[ "$(cat "$1/out")" = "about to write through a bad pointer in crash_here" ] || bad "stdout is not the guest's one line"
}

snap_cores() {
	local flavour test d bin can_core
	can_core=0
	(ulimit -S -c unlimited) 2>/dev/null && can_core=1
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		bin=$(snap_bin "$flavour" snap_segv)

		# --coredump=FILE: written whatever RLIMIT_CORE says, because it was asked for by name.
		test="snapshot/core/named/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snap/core/named/$flavour
			mkdir -p "$d/cwd/cores"
			srun "$d/run" "$d/cwd" /dev/null -- "$KM" --coredump=cores/segv.core "$bin"
			snap_crash_run "$d/run"
			snap_check_core "$d/cwd/cores/segv.core" "$bin" "$d/gdb.out"
			snap_expect_files "$d/cwd" "cores"
			snap_expect_files "$d/cwd/cores" "segv.core"
			snap_verbose && snap_show "$d/run"
			end
		fi

		# Default name kmcore in km's cwd, when RLIMIT_CORE allows (as the kernel does).
		test="snapshot/core/default/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snap/core/default/$flavour
			mkdir -p "$d/cwd" "$d/cwd0"
			if [ $can_core = 1 ]; then
				srun "$d/run" "$d/cwd" /dev/null -- bash -c 'ulimit -S -c unlimited && exec "$@"' core "$KM" "$bin"
				snap_crash_run "$d/run"
				snap_check_core "$d/cwd/kmcore" "$bin" "$d/gdb.out"
				snap_expect_files "$d/cwd" "kmcore"
			else
				note "    (RLIMIT_CORE's hard limit is 0 here, so only 'no kmcore with RLIMIT_CORE 0' is checked)"
			fi
			srun "$d/run0" "$d/cwd0" /dev/null -- bash -c 'ulimit -S -c 0 && exec "$@"' core "$KM" "$bin"
			snap_crash_run "$d/run0"
			snap_expect_files "$d/cwd0" ""
			snap_verbose && snap_show "$d/run" "$d/run0"
			end
		fi
	done
}

# --- snapshots from outside: the management socket -------------------------------------------

# snap_mgmt DIR SOCKET MODE FILE: asks km for a snapshot; MGMT_RC, reply in DIR/mgmt.out.
snap_mgmt() {
	"$SNAP_MGMT" --wait-socket 5 --timeout 20 "$2" snapshot "path=$4" "mode=$3" >"$1/mgmt.out" 2>"$1/mgmt.err"
	MGMT_RC=$?
	if [ "$MGMT_RC" != 0 ]; then
		bad "km-mgmt snapshot mode=$3: exit status $MGMT_RC, reply '$(head -c 300 "$1/mgmt.out")' $(head -c 300 "$1/mgmt.err")"
	elif ! grep -qE "^ok .*path=[^ ]*$(basename "$4")( |\$)" "$1/mgmt.out"; then
		bad "km-mgmt reply '$(head -c 300 "$1/mgmt.out")' is not 'ok path=...$(basename "$4") ...'"
	fi
}

snap_mgmt_tests() {
	local flavour test d bin sock pid rpid result
	if [ ! -x "$SNAP_MGMT" ]; then
		for test in snapshot/mgmt/cpu-stop snapshot/mgmt/cpu-continue snapshot/mgmt/stdin-stop snapshot/mgmt/stdin-continue; do
			want "$test" && km_only "$test" || continue
			begin "$test"
			bad "the management socket client $SNAP_MGMT is missing (make tools)"
			end
		done
		return
	fi
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		bin=$(snap_bin "$flavour" snap_cpu)
		[ -n "${sock:-}" ] && rm -f "$sock"
		d=$WORK/snap/mgmt/$flavour
		sock=$d/km.sock
		[ ${#sock} -lt 100 ] || sock=$(mktemp -u /tmp/km-snap.XXXXXX).sock # sun_path holds 108 bytes

		# A CPU-bound loop stopped from outside mid-computation; the resumed copy finishes it.
		test="snapshot/mgmt/cpu-stop/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			mkdir -p "$d/cwd"
			srun "$d/native" "$d/cwd" /dev/null -- "$bin" "$SNAP_CPU_ITERATIONS"
			result=$(grep '^result: ' "$d/native/out")
			[ "$RC" = 0 ] && [ -n "$result" ] || bad "native run: exit status $(status_text "$RC"), no result line"
			rm -f "$sock"
			snap_start "$d/stop" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$bin" "$SNAP_CPU_ITERATIONS"
			pid=$BG_PID
			if snap_wait_line "$d/stop/out" started 10; then
				sleep 0.3
				snap_mgmt "$d/stop" "$sock" stop "$d/cpu-stop.snap"
			else
				bad "the guest did not print 'started' within 10 s"
			fi
			wait "$pid"
			RC=$?
			snap_expect_run "$d/stop" "stopped run" 0 "started"
			grep -q '^result' "$d/stop/out" && bad "the loop finished before the snapshot request: raise SNAP_CPU_ITERATIONS"
			if snap_expect_snapshot "$d/cpu-stop.snap"; then
				srun "$d/stop-resume" "$d/cwd" /dev/null -- "$KM" "$d/cpu-stop.snap"
				snap_expect_run "$d/stop-resume" "resumed run" 0 "$result"
			fi
			snap_expect_files "$d/cwd" ""
			snap_verbose && snap_show "$d/native" "$d/stop" "$d/stop-resume"
			end
		fi

		# mode=continue: the original finishes, and so does a copy resumed while it still runs.
		test="snapshot/mgmt/cpu-continue/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			mkdir -p "$d/cwd"
			if [ ! -s "$d/native/out" ]; then
				srun "$d/native" "$d/cwd" /dev/null -- "$bin" "$SNAP_CPU_ITERATIONS"
			fi
			result=$(grep '^result: ' "$d/native/out")
			rm -f "$sock"
			snap_start "$d/cont" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$bin" "$SNAP_CPU_ITERATIONS"
			pid=$BG_PID
			rpid=""
			if snap_wait_line "$d/cont/out" started 10; then
				sleep 0.3
				snap_mgmt "$d/cont" "$sock" continue "$d/cpu-cont.snap"
				if [ "$MGMT_RC" = 0 ] && snap_expect_snapshot "$d/cpu-cont.snap"; then
					snap_start "$d/cont-resume" "$d/cwd" /dev/null -- "$KM" "$d/cpu-cont.snap"
					rpid=$BG_PID
				fi
			else
				bad "the guest did not print 'started' within 10 s"
			fi
			wait "$pid"
			RC=$?
			snap_expect_run "$d/cont" "original run (mode=continue)" 0 "started"$'\n'"$result"
			if [ -n "$rpid" ]; then
				wait "$rpid"
				RC=$?
				snap_expect_run "$d/cont-resume" "resumed copy" 0 "$result"
			fi
			snap_expect_files "$d/cwd" ""
			snap_verbose && snap_show "$d/native" "$d/cont" "$d/cont-resume"
			end
		fi

		# Blocked in read() on stdin: the read is restarted after resume, on the new stdin.
		bin=$(snap_bin "$flavour" snap_stdin)
		test="snapshot/mgmt/stdin-stop/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			mkdir -p "$d/cwd"
			rm -f "$d/in.fifo" "$sock"
			mkfifo "$d/in.fifo"
			snap_start "$d/rstop" "$d/cwd" "$d/in.fifo" -- "$KM" --mgmt="$sock" "$bin"
			pid=$BG_PID
			if snap_wait_line "$d/rstop/out" "waiting for a line on stdin" 10; then
				sleep 0.3
				snap_mgmt "$d/rstop" "$sock" stop "$d/stdin-stop.snap"
				[ "$MGMT_RC" = 0 ] || kill "$pid" 2>/dev/null # else it waits for input until TIMEOUT
			else
				bad "the guest did not print 'waiting for a line on stdin' within 10 s"
				kill "$pid" 2>/dev/null
			fi
			wait "$pid"
			RC=$?
			snap_expect_run "$d/rstop" "stopped run" 0 "waiting for a line on stdin"
			if snap_expect_snapshot "$d/stdin-stop.snap"; then
				echo "hello from the resumed run" >"$d/line1"
				srun "$d/rstop-resume" "$d/cwd" "$d/line1" -- "$KM" "$d/stdin-stop.snap"
				snap_expect_run "$d/rstop-resume" "resumed run" 0 "got: hello from the resumed run"
			fi
			rm -f "$d/in.fifo"
			snap_verbose && snap_show "$d/rstop" "$d/rstop-resume"
			end
		fi

		test="snapshot/mgmt/stdin-continue/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			mkdir -p "$d/cwd"
			rm -f "$d/in.fifo" "$sock"
			mkfifo "$d/in.fifo"
			snap_start "$d/rcont" "$d/cwd" "$d/in.fifo" -- "$KM" --mgmt="$sock" "$bin"
			pid=$BG_PID
			if snap_wait_line "$d/rcont/out" "waiting for a line on stdin" 10; then
				sleep 0.3
				snap_mgmt "$d/rcont" "$sock" continue "$d/stdin-cont.snap"
				sleep 0.1
				# The original, interrupted in read() for the snapshot, still gets its line.
				timeout 5 bash -c 'echo "a line for the original" >"$1"' _ "$d/in.fifo"
			else
				bad "the guest did not print 'waiting for a line on stdin' within 10 s"
				kill "$pid" 2>/dev/null
			fi
			wait "$pid"
			RC=$?
			snap_expect_run "$d/rcont" "original run (mode=continue)" 0 $'waiting for a line on stdin\ngot: a line for the original'
			if snap_expect_snapshot "$d/stdin-cont.snap"; then
				echo "a line for the copy" >"$d/line2"
				srun "$d/rcont-resume" "$d/cwd" "$d/line2" -- "$KM" "$d/stdin-cont.snap"
				snap_expect_run "$d/rcont-resume" "resumed copy" 0 "got: a line for the copy"
			fi
			rm -f "$d/in.fifo"
			snap_verbose && snap_show "$d/rcont" "$d/rcont-resume"
			end
		fi
	done
	rm -f "$sock"
}

# --- bad input -----------------------------------------------------------------------------

# snap_bad NAME: true if km/bad-input/snapshot-NAME is selected and the base snapshot (a small
# one: snap_modes once, musl) exists; makes it on first use and parses it (snap_parse), and
# leaves a sparse copy of it in SB_FILE to be damaged.
snap_bad() {
	want "km/bad-input/snapshot-$1" || return 1
	km_only "km/bad-input/snapshot-$1" || return 1
	snap_bad_copy "$1"
}

# snap_bad_copy NAME: snap_bad without the test selection.
snap_bad_copy() {
	SB_DIR=$WORK/snap/bad
	if [ -z "${SB_STATE:-}" ]; then
		SB_STATE=failed
		mkdir -p "$SB_DIR/cwd"
		# --self-contained: every page in the file, so that marking it an older minor (which
		# has no NT_KM_LAYERS) still describes all of its memory
		srun "$SB_DIR/take" "$SB_DIR/cwd" /dev/null -- "$KM" --self-contained --snapshot="$SB_DIR/base.snap" "$GUESTS/musl/snap_modes" once
		begin km/bad-input/snapshot-base
		if [ "$RC" != 0 ] || [ ! -f "$SB_DIR/base.snap" ] || ! snap_parse "$SB_DIR/base.snap"; then
			bad "could not make or read the base snapshot (exit status $(status_text "$RC"))"
			snap_show "$SB_DIR/take"
		else
			SB_SIZE=$(stat -c %s "$SB_DIR/base.snap")
			SB_PROC=$(snap_note_index KM $((0x4b4d0001)))
			SB_LOADS=()
			local i
			for i in "${!PH_TYPE[@]}"; do
				[ "${PH_TYPE[$i]}" = 1 ] && SB_LOADS+=("$i")
			done
			if [ -z "$SB_PROC" ] || [ ${#SB_LOADS[@]} -lt 2 ]; then
				bad "the base snapshot has no NT_KM_PROC note or fewer than 2 PT_LOADs"
			else
				SB_STATE=ok
			fi
		fi
		end
	fi
	[ "$SB_STATE" = ok ] || return 1
	SB_FILE=$SB_DIR/$1.snap
	cp --sparse=always "$SB_DIR/base.snap" "$SB_FILE"
}

snap_bad_input() {
	local i off core last=-1 first_load second_load
	if [ $NATIVE = 1 ]; then
		km_only "km/bad-input/snapshot-*"
		return
	fi
	# Truncated: in the ELF header, in the program headers, in the notes, in the last segment,
	# by one byte.
	for off in header phdrs notes last-segment last-byte; do
		snap_bad "truncated-in-$off" || continue
		last=$((${#PH_TYPE[@]} - 1))
		case $off in
		header) truncate -s 40 "$SB_FILE" ;;
		phdrs) truncate -s $((PH_ADDR[1] + 20)) "$SB_FILE" ;;
		notes) truncate -s $((PH_OFF[0] + PH_FILESZ[0] / 2)) "$SB_FILE" ;;
		last-segment) truncate -s $((PH_OFF[last] + PH_FILESZ[last] / 2)) "$SB_FILE" ;;
		last-byte) truncate -s $((SB_SIZE - 1)) "$SB_FILE" ;;
		esac
		km_rejects "snapshot-truncated-in-$off" "$SB_FILE" "$SB_FILE"
	done
	if snap_bad inspect-truncated; then
		truncate -s $((PH_OFF[0] + PH_FILESZ[0] / 2)) "$SB_FILE"
		km_rejects snapshot-inspect-truncated "$SB_FILE" --inspect "$SB_FILE"
	fi

	# Corrupted notes and headers.
	if snap_bad note-descsz-huge; then
		snap_put "$SB_FILE" $((NT_OFF[SB_PROC] + 4)) 4 $((0x7ffffff0))
		snap_seal "$SB_FILE"
		km_rejects snapshot-note-descsz-huge "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad note-namesz-huge; then
		snap_put "$SB_FILE" "${NT_OFF[0]}" 4 $((0xfffffff0))
		snap_seal "$SB_FILE"
		km_rejects snapshot-note-namesz-huge "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad note-segment-past-eof; then
		snap_put "$SB_FILE" $((PH_ADDR[0] + 32)) 8 $((SB_SIZE + 65536))
		snap_seal "$SB_FILE"
		km_rejects snapshot-note-segment-past-eof "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad no-proc-note; then
		snap_put "$SB_FILE" $((NT_OFF[SB_PROC] + 8)) 4 $((0x4b4d00ff))
		snap_seal "$SB_FILE"
		km_rejects snapshot-no-proc-note "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad nvcpus-mismatch; then
		snap_put "$SB_FILE" $((NT_DESC[SB_PROC] + 8)) 4 7
		snap_seal "$SB_FILE"
		km_rejects snapshot-nvcpus-mismatch "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad phoff-past-eof; then
		snap_put "$SB_FILE" 32 8 $((SB_SIZE + 4096))
		snap_seal "$SB_FILE"
		km_rejects snapshot-phoff-past-eof "$SB_FILE" "$SB_FILE"
	fi

	# Format versions of another major (the first 4 bytes of NT_KM_PROC's descriptor: major in
	# the low 16 bits, minor in the high 16): one line naming the file's version.
	local major v
	major=$(sed -nE 's/^#define KM_SNAPSHOT_MAJOR ([0-9]+).*/\1/p' "$ROOT/km/snapshot/km_coredump.h")
	for v in 0.0 $((major - 1)).0 $((major + 1)).0 $((major + 1)).3 9999.0; do
		snap_bad "version-$v" || continue
		snap_put "$SB_FILE" "${NT_DESC[SB_PROC]}" 4 $((${v%.*} | ${v#*.} << 16))
		snap_seal "$SB_FILE"
		km_rejects "snapshot-version-$v" "snapshot format $v is $([ "${v%.*}" -gt "$major" ] && echo newer || echo older) than this km reads ($major.x)" "$SB_FILE"
	done
	if snap_bad inspect-version-9999.0; then
		snap_put "$SB_FILE" "${NT_DESC[SB_PROC]}" 4 9999
		snap_seal "$SB_FILE"
		km_rejects snapshot-inspect-version-9999.0 "$SB_FILE: snapshot format 9999.0 is newer" --inspect "$SB_FILE"
	fi

	# Segments: overlapping, outside the program's address space, data past the end of file.
	if snap_bad overlapping-loads; then
		first_load=${SB_LOADS[0]} second_load=${SB_LOADS[1]}
		snap_put "$SB_FILE" $((PH_ADDR[second_load] + 16)) 8 "${PH_VADDR[first_load]}"
		snap_seal "$SB_FILE"
		km_rejects snapshot-overlapping-loads "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad load-at-kernel-address; then
		last=${SB_LOADS[-1]}
		snap_put "$SB_FILE" $((PH_ADDR[last] + 16)) 8 $((0xffff800000000000))
		snap_seal "$SB_FILE"
		km_rejects snapshot-load-at-kernel-address "$SB_FILE" "$SB_FILE"
	fi
	# The same two, with km's own record of the mappings (NT_KM_VMA, one per PT_LOAD in the same
	# order: start, end) changed to agree, so that only the overlap and range checks can catch them.
	local -a vmas=()
	for i in "${!NT_TYPE[@]}"; do
		[ "${NT_NAME[$i]}" = KM ] && [ "${NT_TYPE[$i]}" = $((0x4b4d0005)) ] && vmas+=("$i")
	done
	if snap_bad overlapping-mappings; then
		if [ ${#vmas[@]} != ${#SB_LOADS[@]} ]; then
			begin km/bad-input/snapshot-overlapping-mappings
			bad "the base snapshot has ${#vmas[@]} NT_KM_VMA notes for ${#SB_LOADS[@]} PT_LOADs"
			end
		else
			local start size
			first_load=${SB_LOADS[0]} second_load=${SB_LOADS[1]}
			start=$(snap_get "$SB_FILE" "${NT_DESC[vmas[1]]}" 8)
			size=$(($(snap_get "$SB_FILE" $((NT_DESC[vmas[1]] + 8)) 8) - start))
			snap_put "$SB_FILE" $((PH_ADDR[second_load] + 16)) 8 "${PH_VADDR[first_load]}"
			snap_put "$SB_FILE" "${NT_DESC[vmas[1]]}" 8 "${PH_VADDR[first_load]}"
			snap_put "$SB_FILE" $((NT_DESC[vmas[1]] + 8)) 8 $((PH_VADDR[first_load] + size))
			snap_seal "$SB_FILE"
			km_rejects snapshot-overlapping-mappings "$SB_FILE" "$SB_FILE"
		fi
	fi
	if snap_bad mapping-at-kernel-address && [ ${#vmas[@]} = ${#SB_LOADS[@]} ]; then
		local start size
		last=${SB_LOADS[-1]}
		start=$(snap_get "$SB_FILE" "${NT_DESC[vmas[-1]]}" 8)
		size=$(($(snap_get "$SB_FILE" $((NT_DESC[vmas[-1]] + 8)) 8) - start))
		snap_put "$SB_FILE" $((PH_ADDR[last] + 16)) 8 $((0xffff800000000000))
		snap_put "$SB_FILE" "${NT_DESC[vmas[-1]]}" 8 $((0xffff800000000000))
		snap_put "$SB_FILE" $((NT_DESC[vmas[-1]] + 8)) 8 $((0xffff800000000000 + size))
		snap_seal "$SB_FILE"
		km_rejects snapshot-mapping-at-kernel-address "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad load-data-past-eof; then
		last=${SB_LOADS[-1]}
		snap_put "$SB_FILE" $((PH_ADDR[last] + 8)) 8 $((SB_SIZE + 4096))
		snap_seal "$SB_FILE"
		km_rejects snapshot-load-data-past-eof "$SB_FILE" "$SB_FILE"
	fi

	# More memory than --memory allows (snap_state's snapshot maps about 90 MiB).
	local test=km/bad-input/snapshot-exceeds-memory-limit
	if want "$test" && km_only "$test"; then
		if [ ! -f "$WORK/snap/state/gcc/made" ]; then
			begin snapshot/make-state/gcc
			snap_make_state gcc
			end
		fi
		if [ "$(cat "$WORK/snap/state/gcc/made")" = ok ]; then
			km_rejects snapshot-exceeds-memory-limit "$WORK/snap/state/gcc/state.snap" --memory=16M "$WORK/snap/state/gcc/state.snap"
		else
			begin "$test"
			bad "no snapshot of snap_state to test with"
			end
		fi
	fi

	# A core file km did not write: km's notes renamed ("KM" -> "XX"), and a real Linux core.
	if snap_bad core-without-km-notes; then
		for i in "${!NT_NAME[@]}"; do
			[ "${NT_NAME[$i]}" = KM ] && printf XX | dd of="$SB_FILE" bs=1 seek=$((NT_OFF[i] + 12)) conv=notrunc status=none
		done
		snap_seal "$SB_FILE"
		km_rejects snapshot-core-without-km-notes "$SB_FILE" "$SB_FILE"
	fi
	if snap_bad linux-core; then
		mkdir -p "$SB_DIR/native-core"
		# (the braces with 2>/dev/null keep bash's "Segmentation fault" report quiet)
		{ (cd "$SB_DIR/native-core" && ulimit -S -c unlimited 2>/dev/null && exec "$GUESTS/gcc/snap_segv") >/dev/null 2>&1; } 2>/dev/null
		core=$(find "$SB_DIR/native-core" -maxdepth 1 -name 'core*' -type f | head -1)
		if [ -n "$core" ]; then
			mv "$core" "$SB_DIR/linux.core"
			km_rejects snapshot-linux-core "$SB_DIR/linux.core" "$SB_DIR/linux.core"
		else
			echo "note: no Linux core file here (core_pattern '$(cat /proc/sys/kernel/core_pattern 2>/dev/null)', RLIMIT_CORE hard limit $(ulimit -H -c)); km/bad-input/snapshot-core-without-km-notes stands in for it"
		fi
	fi
}

# --- format versions -------------------------------------------------------------------------

# A file of km's own major resumes whatever its minor: the bad-input base snapshot marked as
# MAJOR.0 (what every file km wrote before minors reads as: a plain MAJOR) and as MAJOR.7 (a newer
# km of this major); --inspect names the version.
snap_versions() {
	local major minor test d
	major=$(sed -nE 's/^#define KM_SNAPSHOT_MAJOR ([0-9]+).*/\1/p' "$ROOT/km/snapshot/km_coredump.h")
	for minor in 0 7; do
		test=snapshot/version/$major.$minor
		want "$test" && km_only "$test" || continue
		if ! snap_bad_copy "version-$major.$minor"; then
			begin "$test"
			bad "no base snapshot to test with"
			end
			continue
		fi
		begin "$test"
		d=$SB_DIR/version-$major.$minor
		mkdir -p "$d/cwd"
		snap_put "$SB_FILE" "${NT_DESC[SB_PROC]}" 4 $((major | minor << 16))
		snap_seal "$SB_FILE"
		srun "$d/inspect" "$d/cwd" /dev/null -- "$KM" --inspect "$SB_FILE"
		[ "$RC" = 0 ] || bad "--inspect: exit status $(status_text "$RC"): $(head -c 300 "$d/inspect/err")"
		grep -q "^format: *km snapshot format $major\.$minor," "$d/inspect/out" ||
			bad "--inspect does not say 'km snapshot format $major.$minor': $(grep -m1 '^format' "$d/inspect/out")"
		srun "$d/resume" "$d/cwd" /dev/null -- "$KM" "$SB_FILE"
		snap_expect_run "$d/resume" "resume" 0 "resumed+PASSED"
		snap_verbose && snap_show "$d/inspect" "$d/resume"
		end
	done
}

# --- all -----------------------------------------------------------------------------------

run_snapshot() {
	snap_native
	snap_roundtrip
	snap_refused
	snap_keep
	snap_naming
	snap_cycles
	snap_readelf
	snap_gdb
	snap_cores
	snap_mgmt_tests
	snap_bad_input
	snap_versions
}
