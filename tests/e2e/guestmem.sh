# shellcheck shell=bash
# Guest memory the host cannot provide (issue 6, defect 4): a snapshot and a core of a program
# whose file mappings were truncated under them (tests/guests/snap_sigbus.c). km must write both
# without dying; the private page it could not read is a hole, zero after a resume. The syscall
# side (every family of copy) is the plain guest run of tests/guests/efault_sigbus.c.
# Sourced by run.sh after snapshot.sh (uses srun, snap_expect_run, snap_expect_snapshot,
# snap_show, snap_verbose); defines run_guestmem.

run_guestmem() {
	local flavour test d bin
	for flavour in gcc musl; do
		bin=$GUESTS/$flavour/snap_sigbus

		test="guestmem/snapshot/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/guestmem/snapshot/$flavour
			mkdir -p "$d/cwd" "$d/cwd2"
			srun "$d/take" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/s.snap" "$bin" snap
			snap_expect_run "$d/take" "snapshot run" 0 "taking the snapshot"
			if snap_expect_snapshot "$d/s.snap"; then
				srun "$d/resume" "$d/cwd2" /dev/null -- "$KM" "$d/s.snap"
				snap_expect_run "$d/resume" "resume" 0 "resumed from the snapshot+PASSED"
			fi
			snap_verbose && snap_show "$d/take" "$d/resume"
			end
		fi

		test="guestmem/core/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/guestmem/core/$flavour
			mkdir -p "$d/cwd"
			srun "$d/run" "$d/cwd" /dev/null -- "$KM" --coredump=sigbus.core "$bin" crash
			[ "$RC" = 139 ] || bad "exit status $(status_text "$RC"), expected 139 (SIGSEGV)"
			[ "$(wc -l <"$d/run/err")" = 1 ] && grep -q SIGSEGV "$d/run/err" ||
				bad "stderr is not km's one line naming SIGSEGV: $(head -c 300 "$d/run/err" | tr '\n' ' ')"
			grep -q '^FAIL' "$d/run/out" && bad "the guest's checks failed: $(grep -m3 '^FAIL' "$d/run/out" | tr '\n' ' ')"
			snap_expect_snapshot "$d/cwd/sigbus.core"
			snap_verbose && snap_show "$d/run"
			end
		fi
	done
}
