# shellcheck shell=bash
# A resumed program's memory must not change under it (issue 6, defect 5): its memory is the
# snapshot file until it writes each page, so km leases the file and detaches the memory when
# another process opens it for writing or truncates it (km/snapshot/km_snapshot_lease.h). Each test
# resumes a snapshot of tests/guests/snap_lease.c (a pattern in data, bss, heap, anonymous and
# read-only memory), changes the file from outside with tests/tools/snap-scribble.c, and has
# the guest check its memory and go on. Sourced by run.sh after snapshot.sh, whose helpers
# (snap_start, snap_wait_line, srun, snap_show, snap_verbose, SNAP_FLAVOURS) it uses; defines
# run_snaplease. The writers' measured waits are printed as notes (VERBOSE=1); nothing is timed.

SNAPLEASE_SCRIBBLE=${TOOLS:-$ROOT/build/tests/tools}/snap-scribble
# Passes over the guest's memory in snaplease/truncate-running (about 1 s here: it must outlast
# the 0.3 s before the truncation).
SNAPLEASE_SPIN=${SNAPLEASE_SPIN:-100}

# lease_readies FILE: how many "ready" lines the guest printed.
lease_readies() {
	grep -cxF ready "$1" 2>/dev/null
}

# lease_send LINE: sends LINE to the running guest (LEASE_FD, LEASE_DIR, LEASE_PID) and waits for
# its next "ready" (10 s at most, less if km ends).
lease_send() {
	local before i
	before=$(lease_readies "$LEASE_DIR/out")
	echo "$1" >&"$LEASE_FD"
	for ((i = 0; i < 200; i++)); do
		[ "$(lease_readies "$LEASE_DIR/out")" -gt "$before" ] && return 0
		kill -0 "$LEASE_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	bad "the guest did not answer '$1' within 10 s"
	return 1
}

# lease_wait_line TEXT: waits for a line TEXT from the running guest (30 s at most, less if km
# ends).
lease_wait_line() {
	local i
	for ((i = 0; i < 600; i++)); do
		grep -qxF -- "$1" "$LEASE_DIR/out" 2>/dev/null && return 0
		kill -0 "$LEASE_PID" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# lease_scribble MODE FILE [OFFSET LEN]: changes FILE from outside; the wait becomes a note.
lease_scribble() {
	local out
	out=$("$SNAPLEASE_SCRIBBLE" "$@" 2>&1) || bad "snap-scribble $1 failed: $out"
	note "    snap-scribble $1: $out"
}

# lease_biggest_load FILE: "OFFSET FILESZ" of the largest PT_LOAD (snap_lease's anonymous
# mapping): overwriting only that leaves the program's code alone, so that without the lease
# the guest lives to report its changed memory.
lease_biggest_load() {
	local type off filesz rest best=0 at=""
	while read -r type off _ _ filesz rest; do
		[ "$type" = LOAD ] && [ $((filesz)) -gt $best ] && best=$((filesz)) at=$((off))
	done < <(readelf -lW "$1")
	[ -n "$at" ] && echo "$at $best"
}

# lease_resume DIR SNAP [FD_HELD]: resumes SNAP in the background with a fifo as stdin
# (LEASE_FD writes to it) and waits for the guest's first "ready".
lease_resume() {
	LEASE_DIR=$1
	mkdir -p "$LEASE_DIR/cwd"
	rm -f "$LEASE_DIR/in.fifo"
	mkfifo "$LEASE_DIR/in.fifo"
	exec {LEASE_FD}<>"$LEASE_DIR/in.fifo"
	snap_start "$LEASE_DIR/run" "$LEASE_DIR/cwd" "$LEASE_DIR/in.fifo" KM_TIMING=1 -- "$KM" "$2"
	LEASE_PID=$BG_PID
	LEASE_DIR=$LEASE_DIR/run
	snap_wait_line "$LEASE_DIR/out" ready 10 || bad "the resumed guest did not print 'ready' within 10 s"
}

# lease_finish EXPECTED_STDOUT: ends the guest ("quit"), then checks it exited 0 with exactly
# that stdout and no km line on stderr other than KM_TIMING's (the detach time becomes a note).
lease_finish() {
	echo quit >&"$LEASE_FD"
	wait "$LEASE_PID"
	RC=$?
	exec {LEASE_FD}>&-
	[ "$RC" = 0 ] || bad "resumed guest: exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$LEASE_DIR/out" && bad "the guest's memory changed: $(grep -m3 '^FAIL' "$LEASE_DIR/out" | tr '\n' ' ')"
	[ "$(cat "$LEASE_DIR/out")" = "$1" ] || bad "resumed guest: stdout is not what it must be"
	grep -v '^km-timing: ' "$LEASE_DIR/err" | grep -q . && bad "stderr: $(head -c 300 "$LEASE_DIR/err" | tr '\n' ' ')"
	note "    $(grep -h 'detach_ns' "$LEASE_DIR/err" | tr '\n' ' ')"
	snap_verbose && snap_show "$LEASE_DIR"
}

# lease_make FLAVOUR DIR: snapshots snap_lease into DIR/lease.snap (false if that failed).
lease_make() {
	mkdir -p "$2/cwd"
	srun "$2/make" "$2/cwd" /dev/null -- "$KM" "$(snap_bin "$1" snap_lease)" snap "$2/lease.snap"
	[ "$RC" = 0 ] && [ -f "$2/lease.snap" ] && return 0
	bad "taking the snapshot: exit status $(status_text "$RC")"
	snap_show "$2/make"
	return 1
}

R1=$'resumed\nready\ncheck 1: ok\nready'

run_snaplease() {
	local flavour d test
	for flavour in "${SNAP_FLAVOURS[@]}"; do
		# Overwritten in place with pwrite after the guest read its memory (the pages are the
		# page cache's then); a snapshot taken after the detach resumes with the same memory.
		test="snaplease/pwrite/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/pwrite
			if lease_make "$flavour" "$d"; then
				lease_resume "$d/r" "$d/lease.snap"
				lease_send check
				lease_scribble pwrite "$d/lease.snap"
				lease_send check
				lease_send "snap $d/after.snap"
				lease_finish "$R1"$'\ncheck 2: ok\nready\nsnapshot taken\nready'
				lease_resume "$d/r2" "$d/after.snap"
				lease_send check
				lease_finish $'resumed\nready\ncheck 3: ok\nready' # the count is in memory too
			fi
			end
		fi

		# Only the anonymous mapping's bytes overwritten (before the guest touched them): the
		# guest must still see its own.
		test="snaplease/pwrite-data/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/pwrite-data
			if lease_make "$flavour" "$d"; then
				local load
				load=$(lease_biggest_load "$d/lease.snap") || bad "no PT_LOAD in the snapshot (readelf)"
				note "    largest PT_LOAD (offset, bytes): $load"
				lease_resume "$d/r" "$d/lease.snap"
				# shellcheck disable=SC2086 # two words
				lease_scribble pwrite "$d/lease.snap" $load
				lease_send check
				lease_finish "$R1"
			fi
			end
		fi

		# Through a MAP_SHARED mapping, after the guest wrote every other page (those are its
		# own copies already; the rest are still the file's).
		test="snaplease/mmap/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/mmap
			if lease_make "$flavour" "$d"; then
				lease_resume "$d/r" "$d/lease.snap"
				lease_send touch
				lease_scribble mmap "$d/lease.snap"
				lease_send check
				lease_finish $'resumed\nready\ntouched\nready\ncheck 1: ok\nready'
			fi
			end
		fi

		# Truncated to zero before the guest touched anything (without the lease: SIGBUS).
		test="snaplease/truncate/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/truncate
			if lease_make "$flavour" "$d"; then
				lease_resume "$d/r" "$d/lease.snap"
				lease_scribble truncate "$d/lease.snap"
				lease_send check
				lease_finish "$R1"
			fi
			end
		fi

		# Truncated while the guest computes (no syscall: km has to take the vCPU out of the
		# guest to detach its memory).
		test="snaplease/truncate-running/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/truncate-running
			if lease_make "$flavour" "$d"; then
				lease_resume "$d/r" "$d/lease.snap"
				echo "spin $SNAPLEASE_SPIN" >&"$LEASE_FD"
				sleep 0.3
				lease_scribble truncate "$d/lease.snap"
				lease_wait_line "spin: ok" || bad "the guest did not print 'spin: ok'"
				lease_finish $'resumed\nready\nspin: ok\nready'
			fi
			end
		fi

		# The program itself opens its snapshot for writing: its own open() waits for km, on
		# the very thread that has to detach the memory.
		test="snaplease/self-overwrite/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/self
			if lease_make "$flavour" "$d"; then
				lease_resume "$d/r" "$d/lease.snap"
				lease_send check
				lease_send "overwrite $d/lease.snap"
				lease_send check
				lease_finish "$R1"$'\noverwritten\nready\ncheck 2: ok\nready'
			fi
			end
		fi

		# Snapshotted again to the same name: the rename replaces the name, the old file (here
		# still reachable through a hard link) stays leased. Both survive a truncation of it.
		test="snaplease/resnap-same-path/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/resnap
			if lease_make "$flavour" "$d"; then
				ln "$d/lease.snap" "$d/old.snap"
				lease_resume "$d/r" "$d/lease.snap"
				lease_send check
				lease_send "snap $d/lease.snap"
				lease_scribble truncate "$d/old.snap"
				lease_send check
				lease_finish "$R1"$'\nsnapshot taken\nready\ncheck 2: ok\nready'
				lease_resume "$d/r2" "$d/lease.snap"
				lease_send check
				lease_finish $'resumed\nready\ncheck 2: ok\nready'
			fi
			end
		fi

		# No lease possible (the file is open for writing elsewhere): km copies the memory at
		# resume, and later writes cannot reach it.
		test="snaplease/no-lease/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/snaplease/$flavour/nolease
			if lease_make "$flavour" "$d"; then
				local held
				exec {held}<>"$d/lease.snap"
				lease_resume "$d/r" "$d/lease.snap"
				lease_scribble pwrite "$d/lease.snap"
				lease_send check
				exec {held}>&-
				lease_finish "$R1"
				grep -q 'detach_ns' "$LEASE_DIR/err" || bad "km did not detach the memory at resume"
			fi
			end
		fi
	done
}
