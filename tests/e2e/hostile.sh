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
# "// HOSTILE-STDIN: km-tids" (with --mgmt=@TMP/mgmt.sock among the km options) writes one line on
# the guest's stdin: the tids of every thread of km's process, read from outside once km answers
# `status` (the guest cannot see km's threads itself).

HOSTILE_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $HOSTILE_TOOLS in /*) ;; *) HOSTILE_TOOLS=$PWD/$HOSTILE_TOOLS ;; esac

# hostile_feed_tids FIFO SOCKET: opens FIFO for writing (km's stdin), asks km's management socket
# for km's pid, and writes the tids of km's threads as one line.
hostile_feed_tids() {
	exec 3>"$1"
	local reply pid
	reply=$("$HOSTILE_TOOLS/km-mgmt" --wait-socket 20 --timeout 20 "$2" status) || {
		echo "no status from $2: $reply"
		return 1
	}
	pid=$(sed -n 's/.* pid=\([0-9]*\).*/\1/p' <<<"$reply")
	[ -n "$pid" ] && [ -d "/proc/$pid/task" ] || {
		echo "no pid in '$reply'"
		return 1
	}
	ls "/proc/$pid/task" | tr '\n' ' ' >&3
	echo >&3
	exec 3>&-
}

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
			local feed=""
			while IFS= read -r line; do
				if [[ $line =~ ^//\ HOSTILE-KM-ARGS:\ +(.*)$ ]]; then
					eval "kmargs=(${BASH_REMATCH[1]})" # trusted: our own test sources
				elif [[ $line =~ ^//\ HOSTILE-STDIN:\ +km-tids$ ]]; then
					feed=km-tids
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
			local stdin=/dev/null fpid=""
			if [ "$feed" = km-tids ]; then
				stdin=$d/feed
				mkfifo "$stdin"
				hostile_feed_tids "$stdin" "$tmp/mgmt.sock" >"$d/feed.log" 2>&1 &
				fpid=$!
			fi
			run "$d" "$d/cwd" "$stdin" "TMPDIR=$tmp" -- "$KM" "${kmargs[@]}" "$GUESTS/$flavour/$name" km "$tmp"
			rc=$RC
			if [ -n "$fpid" ]; then
				wait "$fpid" || bad "could not name km's threads to the guest: $(head -c 300 "$d/feed.log")"
			fi
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
