# shellcheck shell=bash
# Which pages changed since the last collect (issue 11: the tracker behind incremental snapshots,
# km/mm/km_dirty.h): tests/guests/dirty_pages.c changes known pages of its own regions every way
# km must notice and checks each collect, through the test-only hypercall that km answers only
# with --test-dirty-probe, also in a program resumed from a snapshot (its memory mapped from the
# file). Also: without the option the hypercall is refused. Sourced by run.sh
# after its helpers (want, begin, bad, note, end, run, km_only, status_text, show_file); defines
# run_dirty.

run_dirty() {
	local flavour test d bin
	for flavour in gcc musl; do
		bin=$GUESTS/$flavour/dirty_pages

		test="dirty/pages/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/dirty/pages/$flavour
			mkdir -p "$d/cwd"
			run "$d/run" "$d/cwd" /dev/null -- "$KM" --test-dirty-probe "$bin"
			[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
			grep -q '^FAIL' "$d/run/out" && bad "$(grep '^FAIL' "$d/run/out" | head -5 | tr '\n' ' ')"
			grep -q '^PASSED' "$d/run/out" || bad "the guest did not finish its checks"
			grep -q 'not available' "$d/run/out" && bad "the probe was not available with --test-dirty-probe"
			[ -n "$T_DIAG" ] && show_file "stdout" "$d/run/out" && show_file "stderr" "$d/run/err"
			end
		fi

		test="dirty/resumed/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/dirty/resumed/$flavour
			mkdir -p "$d/cwd"
			run "$d/take" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/s.snap" "$bin" snap
			[ "$RC" = 0 ] || bad "snapshot run: exit status $(status_text "$RC"), expected 0"
			run "$d/resume" "$d/cwd" /dev/null -- "$KM" --test-dirty-probe "$d/s.snap"
			[ "$RC" = 0 ] || bad "resume: exit status $(status_text "$RC"), expected 0"
			grep -q '^FAIL' "$d/resume/out" && bad "$(grep '^FAIL' "$d/resume/out" | head -5 | tr '\n' ' ')"
			grep -q '^PASSED' "$d/resume/out" || bad "the resumed guest did not finish its checks"
			[ -n "$T_DIAG" ] && show_file "snapshot stderr" "$d/take/err" && show_file "stdout" "$d/resume/out" &&
				show_file "stderr" "$d/resume/err"
			end
		fi

		test="dirty/probe-off/$flavour"
		if want "$test" && km_only "$test"; then
			begin "$test"
			d=$WORK/dirty/probe-off/$flavour
			mkdir -p "$d/cwd"
			run "$d/run" "$d/cwd" /dev/null -- "$KM" "$bin"
			[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
			grep -qx 'dirty probe not available' "$d/run/out" ||
				bad "the test-only hypercall answered without --test-dirty-probe"
			[ -n "$T_DIAG" ] && show_file "stdout" "$d/run/out" && show_file "stderr" "$d/run/err"
			end
		fi
	done
}
