# shellcheck shell=bash
# The guest-syscall fuzzer in make check (issue 6): tests/guests/sysfuzz.c, built with glibc and
# musl, makes SYSFUZZ_COUNT (2000) random system calls for each seed of SYSFUZZ_SEEDS ("1 2 3 4")
# under km, as `km sysfuzz SEED COUNT TMPDIR`. km must never die of a signal itself nor print a
# sanitizer report (under make asan KM is the ASan build), and a run ends with the guest's own
# "sysfuzz: done" line and exit status 0 with nothing on km's stderr, or, if the guest killed
# itself by a fault it caused, exactly one "km: ... killed by SIG..." line. A hang is a failure.
# Then the regressions: runs that once found a defect, each replayed up to just past its call.
# Sourced by run.sh after its helpers (want, begin, bad, note, end, run, km_only, status_text,
# show_file); defines run_sysfuzz. tests/fuzz/sysfuzz.sh (long runs) sources it for
# sysfuzz_verdict.

# sysfuzz_verdict DIR RC SEED COUNT: one line per problem with a sysfuzz run whose stdout and
# stderr are DIR/out and DIR/err and whose temp dir is DIR/tmp; nothing if the run was fine.
sysfuzz_verdict() {
	local d=$1 rc=$2 seed=$3 count=$4 last msgs
	last=$(grep -a '^#' "$d/tmp/sysfuzz.log" 2>/dev/null | tail -n 1)
	last="last call: ${last:-none} (#INDEX NR ARGS...; replay: sysfuzz -v $seed INDEX+1 DIR)"
	# The guest's fd 2 is km's, where km reports: sysfuzz never names it in a call.
	msgs=$(cat "$d/err")
	if grep -aqE 'Sanitizer|runtime error:' <<<"$msgs"; then
		echo "sanitizer report: $(grep -a -m1 -E 'Sanitizer|runtime error:' <<<"$msgs" | cut -c1-300); $last"
	fi
	if grep -aqx "sysfuzz: done $seed $count" "$d/out"; then
		[ "$rc" = 0 ] || echo "the guest finished but km exited with status $rc"
		[ -z "$msgs" ] || echo "km wrote to stderr although the guest finished: $(head -c 300 <<<"$msgs")"
	elif [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		echo "timed out: km or the guest hung; $last"
	elif [ "$rc" != 0 ] && [ "$(wc -l <<<"$msgs")" = 1 ] && grep -aq '^km: .*killed by SIG' <<<"$msgs"; then
		: # the guest ended by a fault it caused itself, reported in one line
	else
		echo "km ended with status $rc before the guest finished, saying: $(head -c 300 <<<"$msgs" | tr '\n' ' '); $last"
	fi
}

# Runs that once found a defect: "FLAVOUR SEED COUNT  what (where fixed)". A seed stands for the
# calls sysfuzz.c draws from it: a change to its generators makes these stale (re-find them).
SYSFUZZ_REGRESSIONS=(
	"gcc 1000 60  mmap(MAP_SHARED_VALIDATE) flags check shifted into an int's sign bit: UBSan abort in km_sys_mem.c (fixed on branch guestmem, 5a846b5)"
	"musl 1796034921 4366  fcntl(F_NOTIFY) on a directory, then an rmdir in it: the kernel's SIGIO went to km's own process and killed it silently (status 157; fixed: fcntl refuses F_NOTIFY, F_SETLEASE and O_ASYNC)"
)

# sysfuzz_case FLAVOUR SEED COUNT TEST: one run of sysfuzz under km, judged by sysfuzz_verdict.
sysfuzz_case() {
	local flavour=$1 seed=$2 count=$3 test=$4 d line
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/sysfuzz/$flavour/$seed-$count
	rm -rf "$d" && mkdir -p "$d/cwd" "$d/tmp"
	run "$d" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/sysfuzz" "$seed" "$count" "$d/tmp"
	while IFS= read -r line; do
		bad "$line"
	done < <(sysfuzz_verdict "$d" "$RC" "$seed" "$count")
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		note "    command: $CMDLINE"
		show_file stdout "$d/out"
		show_file stderr "$d/err"
		note "    the log's last lines:"
		note "$(tail -n 6 "$d/tmp/sysfuzz.log" 2>/dev/null | sed 's/^/      | /')"
	fi
	chmod -R u+rwX "$d" 2>/dev/null # the fuzzer chmods its files at random
	end
}

run_sysfuzz() {
	local flavour seed r
	local -a f
	for flavour in gcc musl; do
		for seed in ${SYSFUZZ_SEEDS:-1 2 3 4}; do
			sysfuzz_case "$flavour" "$seed" "${SYSFUZZ_COUNT:-2000}" "sysfuzz/$flavour/seed-$seed"
		done
	done
	for r in "${SYSFUZZ_REGRESSIONS[@]}"; do
		read -r -a f <<<"$r"
		sysfuzz_case "${f[0]}" "${f[1]}" "${f[2]}" "sysfuzz/${f[0]}/regression-${f[1]}"
	done
}
