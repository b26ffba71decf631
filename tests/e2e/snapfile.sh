# shellcheck shell=bash
# The snapshot file itself (issue 6, defects 3 and 6, integrity): what may stand at the
# snapshot's name, a full filesystem, checksums, and (opt-in) more than 2 GiB of contiguous
# memory. Sourced by run.sh after snapshot.sh, whose helpers it uses (srun, snap_start,
# snap_wait_line, snap_parse, snap_get, snap_put, snap_show, snap_files, SNAP_MGMT); defines
# run_snapfile. Every test needs the real km.
#
# Knobs: SNAPFILE_BIG=1 runs snapfile/big-2g (a guest touching 2200 MiB in one mapping is
# snapshotted and resumed: about 45 s and 2.2 GB of disk here, so not in make check; the
# write loop's short writes are unit-tested in tests/unit/test_snapshot_io.c).

SNAPFILE_MIB=${SNAPFILE_MIB:-2200}

# sf_kind PATH: what is there, as stat says it ("symbolic link -> TARGET" for links), or "none".
sf_kind() {
	if [ -L "$1" ]; then
		echo "symbolic link -> $(readlink "$1")"
	elif [ -e "$1" ]; then
		stat -c %F "$1"
	else
		echo none
	fi
}

# sf_make_targets DIR: one of each thing a snapshot must not replace, in DIR (empty). Sets
# SF_TARGETS (names) and SF_REG (a regular file a link points at). A device node needs mknod
# (root); without it the device cases are left out with a note.
sf_make_targets() {
	local d=$1
	SF_TARGETS=(fifo dir link-to-regular)
	mkfifo "$d/fifo"
	mkdir "$d/dir"
	echo "a regular file" >"$d/regular"
	ln -s regular "$d/link-to-regular"
	if mknod "$d/null" c 1 3 2>/dev/null; then
		ln -s null "$d/link-to-device"
		SF_TARGETS+=(null link-to-device)
	else
		note "    mknod failed (not root?): the character device cases are not run"
	fi
}

# sf_expect_unchanged DIR BEFORE: DIR's names and what each is are as BEFORE (sf_describe).
sf_describe() {
	local f
	for f in $(cd "$1" && LC_ALL=C ls -A); do
		printf '%s: %s; ' "$f" "$(sf_kind "$1/$f")"
	done
	printf 'regular holds: %s' "$(cat "$1/regular" 2>/dev/null)"
}

# --- defect 6: only a regular file (or nothing) is replaced -----------------------------------

# From the program's own hypercall: snap_modes file NAME, km with --mgmt on a socket in the same
# directory; every target, and the management socket itself, is refused with one line, the
# program gets the error (exit 4) and nothing in the directory changes.
sf_targets_hcall() {
	local flavour=musl t test d before sock
	for t in mgmt-socket fifo dir link-to-regular null link-to-device; do
		test="snapfile/target/hcall/$t"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/snapfile/hcall-$t
		rm -rf "$d" && mkdir -p "$d/cwd" "$d/t"
		sf_make_targets "$d/t"
		sock=$d/t/km.sock
		if [ "$t" != mgmt-socket ] && [[ " ${SF_TARGETS[*]} " != *" $t "* ]]; then
			note "    not run: no $t here"
			end
			continue
		fi
		local target=$d/t/$t
		[ "$t" = mgmt-socket ] && target=$sock
		rm -f "$sock"
		snap_start "$d/run" "$d/cwd" /dev/null -- "$KM" --mgmt="$sock" "$GUESTS/$flavour/snap_modes" file "$target"
		local pid=$BG_PID
		snap_wait_line "$d/run/out" "before the snapshot" 10 || true
		wait "$pid"
		RC=$?
		before=$(sf_describe "$d/t")
		[ "$RC" = 4 ] || bad "exit status $(status_text "$RC"), expected 4 (the program gets the error and goes on)"
		grep -q '^snapshot failed: ' "$d/run/out" || bad "the program did not see the snapshot fail"
		[ "$(wc -l <"$d/run/err")" = 1 ] || bad "stderr has $(wc -l <"$d/run/err") lines, expected one"
		grep -q "^km: snapshot failed: $target: .*a snapshot replaces only a regular file" "$d/run/err" ||
			bad "stderr does not say that only a regular file is replaced"
		[ "$(sf_kind "$target")" != "regular file" ] || bad "$target became a regular file"
		case $t in
		mgmt-socket) [ "$(sf_kind "$target")" = "socket" ] || [ "$(sf_kind "$target")" = none ] ||
			bad "km's socket is now: $(sf_kind "$target")" ;;
		esac
		[ "$(cat "$d/t/regular")" = "a regular file" ] || bad "the file a link points at changed"
		[ -z "$(ls -A "$d/cwd")" ] || bad "files left in the working directory: $(snap_files "$d/cwd")"
		ls -A "$d/t" | grep -q '^\.kmsnap' && bad "temporary files left: $(snap_files "$d/t")"
		{ [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; } && snap_show "$d/run"
		end
	done
}

# From the management socket: one guest blocked on stdin, a request per target (and one for the
# socket km listens on); each gets an error reply naming the problem, the target is unchanged,
# km still answers (status), and the guest then finishes normally.
sf_targets_mgmt() {
	local test=snapfile/target/mgmt d sock pid t target before after
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if [ ! -x "$SNAP_MGMT" ]; then
		bad "the management socket client $SNAP_MGMT is missing (make tools)"
		end
		return
	fi
	d=$WORK/snapfile/mgmt
	rm -rf "$d" && mkdir -p "$d/cwd" "$d/t"
	sf_make_targets "$d/t"
	sock=$d/t/km.sock
	mkfifo "$d/in.fifo"
	snap_start "$d/run" "$d/cwd" "$d/in.fifo" -- "$KM" --mgmt="$sock" "$GUESTS/musl/snap_stdin"
	pid=$BG_PID
	if snap_wait_line "$d/run/out" "waiting for a line on stdin" 10; then
		before=$(sf_describe "$d/t")
		for t in km.sock "${SF_TARGETS[@]}"; do
			target=$d/t/$t
			"$SNAP_MGMT" --wait-socket 5 --timeout 20 "$sock" snapshot "path=$target" mode=continue \
				>"$d/$t.reply" 2>&1
			local mrc=$?
			[ "$mrc" = 1 ] || bad "$t: km-mgmt exit status $mrc, expected 1 (an error reply): $(head -c 300 "$d/$t.reply")"
			grep -q "^error .*a snapshot replaces only a regular file" "$d/$t.reply" ||
				bad "$t: the reply does not say that only a regular file is replaced: $(head -c 300 "$d/$t.reply")"
		done
		after=$(sf_describe "$d/t")
		[ "$before" = "$after" ] || bad "the targets changed: before '$before', after '$after'"
		"$SNAP_MGMT" --timeout 10 "$sock" status >"$d/status.reply" 2>&1 ||
			bad "km no longer answers on its socket: $(head -c 200 "$d/status.reply")"
	else
		bad "the guest did not print 'waiting for a line on stdin' within 10 s"
	fi
	echo "hello" >"$d/in.fifo"
	wait "$pid"
	RC=$?
	[ "$RC" = 0 ] || bad "the guest: exit status $(status_text "$RC"), expected 0"
	grep -qx "got: hello" "$d/run/out" || bad "the guest did not go on reading its line"
	[ -s "$d/run/err" ] && bad "stderr is not empty: $(head -c 300 "$d/run/err")"
	ls -A "$d/t" | grep -q '^\.kmsnap' && bad "temporary files left: $(snap_files "$d/t")"
	{ [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; } && snap_show "$d/run"
	end
}

# A regular file at the name is still replaced, and a symlink's target is never written.
sf_regular_replaced() {
	local test=snapfile/target/regular-replaced d
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/snapfile/regular
	rm -rf "$d" && mkdir -p "$d/cwd"
	echo old >"$d/s.snap"
	srun "$d/run" "$d/cwd" /dev/null -- "$KM" "$GUESTS/musl/snap_modes" file "$d/s.snap"
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
	[ -s "$d/run/err" ] && bad "stderr: $(head -c 300 "$d/run/err")"
	snap_expect_snapshot "$d/s.snap"
	[ "$(snap_files "$d")" = "cwd run s.snap" ] || bad "$d holds $(snap_files "$d")"
	end
}

# --- defect 3: a full filesystem ----------------------------------------------------------------

# 32 MiB of data to an 8 MiB tmpfs: one line saying "No space left on device" (before: a stale
# errno such as "No such file or directory"), the program gets ENOSPC and goes on (exit 4 after
# printing it), and nothing is left on the filesystem.
sf_enospc() {
	local test=snapfile/enospc d
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/snapfile/enospc
	mkdir -p "$d/cwd" "$d/full"
	if ! mount -t tmpfs -o size=8m tmpfs "$d/full" 2>"$d/mount.err"; then
		note "    cannot mount a small tmpfs ($(head -c 200 "$d/mount.err")): not run; tests/unit/test_snapshot_io.c checks ENOSPC with /dev/full"
		end
		return
	fi
	srun "$d/run" "$d/cwd" /dev/null -- "$KM" "$GUESTS/musl/snap_big" 32 "$d/full/big.snap"
	[ "$RC" = 4 ] || bad "exit status $(status_text "$RC"), expected 4 (the program gets ENOSPC and goes on)"
	grep -qx "snapshot failed: No space left on device" "$d/run/out" || bad "the program did not get ENOSPC"
	[ "$(wc -l <"$d/run/err")" = 1 ] || bad "stderr has $(wc -l <"$d/run/err") lines, expected one"
	grep -q "^km: snapshot failed: $d/full/big.snap: .*: No space left on device$" "$d/run/err" ||
		bad "stderr does not end in 'No space left on device'"
	[ -z "$(ls -A "$d/full")" ] && [ "$(df --output=used -k "$d/full" | tail -1 | tr -d ' ')" -lt 1024 ] ||
		bad "left on the full filesystem: $(snap_files "$d/full") ($(df --output=used -k "$d/full" | tail -1) KiB used)"
	umount "$d/full" || bad "cannot unmount $d/full"
	{ [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; } && snap_show "$d/run"
	end
}

# --- integrity ---------------------------------------------------------------------------------

# sf_flip FILE OFFSET: flips the lowest bit of the byte at OFFSET.
sf_flip() {
	snap_put "$1" "$2" 1 $(($(snap_get "$1" "$2" 1) ^ 1))
}

# sf_refused NAME FILE WANT ARGS...: km ARGS exits 1 with one stderr line naming FILE and
# containing WANT.
sf_refused() {
	local name=$1 file=$2 want=$3
	shift 3
	srun "$SF_DIR/$name" "$SF_DIR/cwd" /dev/null -- "$KM" "$@"
	[ "$RC" = 1 ] || bad "$name: exit status $(status_text "$RC"), expected 1"
	[ "$(wc -l <"$SF_DIR/$name/err")" = 1 ] || bad "$name: stderr has $(wc -l <"$SF_DIR/$name/err") lines, expected one"
	grep -qF -- "km: $file: " "$SF_DIR/$name/err" || bad "$name: stderr does not name $file"
	grep -qF -- "$want" "$SF_DIR/$name/err" || bad "$name: stderr does not say '$want': $(head -c 300 "$SF_DIR/$name/err")"
	[ -s "$SF_DIR/$name/out" ] && [ "$1" != --inspect ] && bad "$name: stdout is not empty (the program ran)"
	{ [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; } && snap_show "$SF_DIR/$name"
}

# One snapshot (snap_modes once); it resumes and verifies as written. Then a copy with one bit
# changed in the ELF header (e_flags), a program header (a PT_LOAD's p_align), a note (a byte
# of NT_PRPSINFO's arguments) is refused at resume and by --inspect; one with a bit changed in
# memory data resumes (memory is not read at resume) but --inspect --verify finds it and names
# the segment and its address.
sf_integrity() {
	local test=snapfile/integrity base f i load="" psinfo
	want "$test" && km_only "$test" || return 0
	begin "$test"
	SF_DIR=$WORK/snapfile/integrity
	mkdir -p "$SF_DIR/cwd"
	base=$SF_DIR/base.snap
	srun "$SF_DIR/take" "$SF_DIR/cwd" /dev/null -- "$KM" --snapshot="$base" "$GUESTS/musl/snap_modes" once
	if [ "$RC" != 0 ] || ! snap_parse "$base"; then
		bad "could not take or read the snapshot (exit status $(status_text "$RC"))"
		snap_show "$SF_DIR/take"
		end
		return
	fi
	cp --sparse=always "$base" "$SF_DIR/copy.snap"
	srun "$SF_DIR/resume" "$SF_DIR/cwd" /dev/null -- "$KM" "$SF_DIR/copy.snap"
	[ "$RC" = 0 ] && grep -q '^PASSED' "$SF_DIR/resume/out" || bad "the untouched snapshot does not resume: $(status_text "$RC")"
	srun "$SF_DIR/verify" "$SF_DIR/cwd" /dev/null -- "$KM" --inspect --verify "$base"
	[ "$RC" = 0 ] && grep -q '^verified: ' "$SF_DIR/verify/out" || bad "--verify of the untouched snapshot: exit status $(status_text "$RC"): $(head -c 300 "$SF_DIR/verify/err")"

	for i in "${!PH_TYPE[@]}"; do
		[ "${PH_TYPE[$i]}" = 1 ] && [ "${PH_FILESZ[$i]}" -gt 0 ] && [ -z "$load" ] && load=$i
	done
	psinfo=$(snap_note_index CORE 3)
	f=$SF_DIR/ehdr.snap && cp --sparse=always "$base" "$f" && sf_flip "$f" 48
	sf_refused ehdr "$f" "changed since it was written" "$f"
	f=$SF_DIR/phdr.snap && cp --sparse=always "$base" "$f" && sf_flip "$f" $((PH_ADDR[load] + 49))
	sf_refused phdr "$f" "changed since it was written" "$f"
	f=$SF_DIR/note.snap && cp --sparse=always "$base" "$f" && sf_flip "$f" $((NT_DESC[psinfo] + 60))
	sf_refused note "$f" "changed since it was written" "$f"
	sf_refused note-inspect "$f" "changed since it was written" --inspect "$f"

	f=$SF_DIR/memory.snap && cp --sparse=always "$base" "$f" && sf_flip "$f" $((PH_OFF[load] + 100))
	srun "$SF_DIR/memory-inspect" "$SF_DIR/cwd" /dev/null -- "$KM" --inspect "$f"
	[ "$RC" = 0 ] || bad "--inspect without --verify reads no memory, but exited $(status_text "$RC")"
	sf_refused memory-verify "$f" "$(printf 'segment %d (%#x-' "$load" "${PH_VADDR[load]}")" --inspect --verify "$f"
	[ -z "$(ls -A "$SF_DIR/cwd")" ] || bad "files left in the working directory: $(snap_files "$SF_DIR/cwd")"
	end
}

# --verify without --inspect is a usage error, not a resume.
sf_verify_usage() {
	[ -f "$WORK/snapfile/integrity/base.snap" ] || return 0
	km_rejects snapshot-verify-without-inspect "--verify goes with --inspect" --verify "$WORK/snapfile/integrity/base.snap"
}

# --- defect 3: more than 2 GiB in one run of pages (opt-in) -------------------------------------

sf_big() {
	local test=snapfile/big-2g d t0 t1 avail TIMEOUT=300 # the run's limit (run.sh), 30 s elsewhere
	want "$test" && km_only "$test" || return 0
	if [ "${SNAPFILE_BIG:-0}" != 1 ]; then
		echo "note: $test not run (opt-in: SNAPFILE_BIG=1; about 45 s and 2.3 GB of disk)"
		return 0
	fi
	begin "$test"
	d=$WORK/snapfile/big
	mkdir -p "$d/cwd"
	avail=$(df --output=avail -k "$d" | tail -1 | tr -d ' ')
	if [ "$avail" -lt $(((SNAPFILE_MIB + 512) * 1024)) ]; then
		bad "not enough disk in $d for a $SNAPFILE_MIB MiB snapshot ($avail KiB free)"
		end
		return
	fi
	t0=$(date +%s)
	srun "$d/take" "$d/cwd" /dev/null -- "$KM" "$GUESTS/musl/snap_big" "$SNAPFILE_MIB" "$d/big.snap"
	t1=$(date +%s)
	[ "$RC" = 0 ] && grep -qx taken "$d/take/out" && grep -q '^PASSED' "$d/take/out" ||
		bad "snapshot of $SNAPFILE_MIB MiB: exit status $(status_text "$RC"): $(head -c 300 "$d/take/err") $(grep -m1 -e FAIL -e failed "$d/take/out")"
	if [ -f "$d/big.snap" ]; then
		srun "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/big.snap"
		[ "$RC" = 0 ] && grep -qx resumed "$d/resume/out" && grep -q '^PASSED' "$d/resume/out" ||
			bad "resume: exit status $(status_text "$RC"): $(grep -m1 FAIL "$d/resume/out")"
	fi
	note "    $SNAPFILE_MIB MiB: run and snapshot $((t1 - t0)) s, resumed and checked in $(($(date +%s) - t1)) s"
	rm -f "$d/big.snap"
	end
}

run_snapfile() {
	sf_targets_hcall
	sf_targets_mgmt
	sf_regular_replaced
	sf_enospc
	sf_integrity
	sf_verify_usage
	sf_big
}
