# shellcheck shell=bash
# Signal deliveries that cannot work (issue 7, "Bad input"): a handler or restorer outside the
# guest's memory or in km's runtime region, a stack or alternate stack where no frame can be
# written. tests/guests/hostile_sigframe.c MODE sets one up; natively and under km the program
# dies of SIGSEGV, and km says so in one `km:` line (km itself intact: no sanitizer report).
# Sourced by run.sh; defines run_sigframe.

run_sigframe() {
	local flavour mode test d
	for flavour in gcc musl; do
		for mode in handler-unmapped handler-runtime restorer-runtime stack-unmapped stack-readonly \
			altstack-runtime altstack-unmapped; do
			test="sigframe/$flavour/$mode"
			want "$test" && km_only "$test" || continue
			begin "$test"
			d=$WORK/sigframe/$flavour/$mode
			mkdir -p "$d/cwd"
			run "$d/native" "$d/cwd" /dev/null -- "$GUESTS/$flavour/hostile_sigframe" "$mode"
			[ "$RC" = 139 ] || bad "native run: exit status $(status_text "$RC"), expected 139 (the guest does not test what it says)"
			run "$d/km" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/hostile_sigframe" "$mode"
			[ "$RC" = 139 ] || bad "km run: exit status $(status_text "$RC"), expected 139 (SIGSEGV)"
			[ "$(cat "$d/km/out")" = "mode $mode" ] || bad "km run's stdout: '$(head -c 200 "$d/km/out")'"
			[ "$(wc -l <"$d/km/err")" = 1 ] && grep -q '^km: .*killed by SIGSEGV' "$d/km/err" ||
				bad "km's stderr is not one 'km: ... killed by SIGSEGV' line"
			if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
				note "    command: $CMDLINE"
				show_file "km stdout" "$d/km/out"
				show_file "km stderr" "$d/km/err"
			fi
			end
		done
	done
}
