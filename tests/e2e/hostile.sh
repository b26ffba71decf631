# shellcheck shell=bash
# The hostile-guest suite (issue 6): guest programs that try, as an attacker would, to reach km's
# memory, fds, threads, signals or files outside the guest's view, and check that each attempt got
# an errno (or was ended cleanly with one `km:` line) and that km is intact. Sourced by run.sh
# after its helpers (want, begin, bad, note, end, run, km_only, status_text, show_file); defines
# run_hostile.
#
# Convention: every tests/guests/hostile_*.c is one such program. run.sh's plain guest runs skip
# them (natively most of these escapes succeed, which is the point). Here each runs under km only,
# built with glibc and musl, as `km [KM_ARGS] GUEST km TMPDIR`; it must exit 0 with its last line
# "PASSED ..." and no "FAIL" line (tests/guests/check.h), and km's stderr must hold no line but
# the ones the guest's source declares with "// HOSTILE-STDERR: REGEX" (bash regex, one per line).
# A source may give km options with "// HOSTILE-KM-ARGS: ARGS" (shell words; "@TMP" = the temp dir)
# and an accomplice with "// HOSTILE-HELPER: CMD ARGS" (shell words; "@TMP", and "@TOOLS" = the
# tests' tools directory): started before km, it must exit 0 by the time km has ended.

HOSTILE_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $HOSTILE_TOOLS in /*) ;; *) HOSTILE_TOOLS=$PWD/$HOSTILE_TOOLS ;; esac

run_hostile() {
	local flavour src name test d tmp line rc
	for flavour in gcc musl; do
		for src in "$ROOT"/tests/guests/hostile_*.c; do
			name=$(basename "$src" .c)
			test="hostile/$flavour/${name#hostile_}"
			want "$test" && km_only "$test" || continue
			begin "$test"
			d=$WORK/hostile/$flavour/$name
			tmp=$d/tmp
			rm -rf "$d" && mkdir -p "$d/cwd" "$tmp"
			local -a kmargs=() allowed=() helper=()
			while IFS= read -r line; do
				if [[ $line =~ ^//\ HOSTILE-KM-ARGS:\ +(.*)$ ]]; then
					eval "kmargs=(${BASH_REMATCH[1]})" # trusted: our own test sources
				elif [[ $line =~ ^//\ HOSTILE-HELPER:\ +(.*)$ ]]; then
					eval "helper=(${BASH_REMATCH[1]})"
				elif [[ $line =~ ^//\ HOSTILE-STDERR:\ +(.*)$ ]]; then
					allowed+=("${BASH_REMATCH[1]}")
				fi
			done <"$src"
			kmargs=("${kmargs[@]//@TMP/$tmp}")
			local hpid=""
			if [ ${#helper[@]} -gt 0 ]; then
				helper=("${helper[@]//@TMP/$tmp}")
				helper=("${helper[@]//@TOOLS/$HOSTILE_TOOLS}")
				"${helper[@]}" >"$d/helper.out" 2>&1 &
				hpid=$!
			fi
			run "$d" "$d/cwd" /dev/null "TMPDIR=$tmp" -- "$KM" "${kmargs[@]}" "$GUESTS/$flavour/$name" km "$tmp"
			rc=$RC
			if [ -n "$hpid" ]; then
				local hrc=0 i
				for i in $(seq 50); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.1; done
				kill "$hpid" 2>/dev/null
				wait "$hpid" || hrc=$?
				[ "$hrc" = 0 ] || bad "the accomplice ${helper[0]##*/} failed ($(status_text "$hrc")): $(head -c 300 "$d/helper.out")"
			fi
			[ "$rc" = 0 ] || bad "exit status $(status_text "$rc"), expected 0"
			grep -q '^PASSED' "$d/out" || bad "no PASSED line: the guest did not finish its checks"
			if grep -q '^FAIL' "$d/out"; then
				bad "escapes that worked or checks that failed: $(grep -m5 '^FAIL' "$d/out" | tr '\n' ' ')"
			fi
			local l a ok
			while IFS= read -r l; do
				ok=0
				for a in "${allowed[@]}"; do [[ $l =~ $a ]] && ok=1 && break; done
				[ $ok = 1 ] || bad "unexpected line on km's stderr: $l"
			done <"$d/err"
			if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
				note "    command: $CMDLINE"
				show_file stdout "$d/out"
				show_file stderr "$d/err"
			fi
			end
		done
	done
}
