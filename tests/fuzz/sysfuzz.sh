#!/usr/bin/env bash
# Long runs of the guest-syscall fuzzer (tests/guests/sysfuzz.c) under km, normally the ASan
# build (make fuzz-syscalls FUZZ_SECONDS=N builds it and runs this):
#   tests/fuzz/sysfuzz.sh KM [SECONDS=300] [FIRST_SEED=epoch seconds]
# Runs seeds FIRST_SEED, FIRST_SEED+1, ... with glibc and musl, SYSFUZZ_COUNT (5000) calls each,
# until SECONDS have passed, judging each run as make check does (sysfuzz_verdict in
# tests/e2e/sysfuzz.sh). A run with a problem is kept in build/fuzz/sysfuzz/findings/FLAVOUR-SEED
# (out, err, tmp/sysfuzz.log) and named on stdout; replay it with
#   KM sysfuzz -v SEED INDEX+1 DIR
# (INDEX from the log's last "#INDEX" line; the calls are a function of SEED alone).
# Exits 0 if nothing was found. Needs the guests (make guests) and /dev/kvm.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KM=${1:?usage: tests/fuzz/sysfuzz.sh KM [SECONDS] [FIRST_SEED]}
BUDGET=${2:-300}
SEED=${3:-$(date +%s)}
COUNT=${SYSFUZZ_COUNT:-5000}
GUESTS=$ROOT/build/tests/guests
OUT=$ROOT/build/fuzz/sysfuzz
case $KM in /*) ;; *) KM=$PWD/$KM ;; esac
[ -x "$KM" ] || { echo "sysfuzz: no km at $KM" >&2; exit 2; }
[ -x "$GUESTS/musl/sysfuzz" ] || { echo "sysfuzz: no guests in $GUESTS (make guests)" >&2; exit 2; }
# shellcheck source=../e2e/sysfuzz.sh
. "$ROOT/tests/e2e/sysfuzz.sh"
mkdir -p "$OUT/findings"
ulimit -S -c 0
first=$SEED runs=0 found=0 end=$((SECONDS + BUDGET))
while [ $SECONDS -lt $end ]; do
	for flavour in gcc musl; do
		d=$(mktemp -d "${TMPDIR:-/tmp}/km-sysfuzz.XXXXXX")
		mkdir -p "$d/cwd" "$d/tmp"
		{ (cd "$d/cwd" && exec timeout -k 5 60 env -i PATH=/usr/bin:/bin "$KM" \
			"$GUESTS/$flavour/sysfuzz" "$SEED" "$COUNT" "$d/tmp") >"$d/out" 2>"$d/err" </dev/null; } 2>/dev/null
		rc=$?
		problems=$(sysfuzz_verdict "$d" "$rc" "$SEED" "$COUNT")
		chmod -R u+rwX "$d" 2>/dev/null
		if [ -n "$problems" ]; then
			found=$((found + 1))
			rm -rf "$OUT/findings/$flavour-$SEED"
			mv "$d" "$OUT/findings/$flavour-$SEED"
			echo "FINDING $flavour seed $SEED (build/fuzz/sysfuzz/findings/$flavour-$SEED): $problems"
		else
			rm -rf "$d"
		fi
		runs=$((runs + 1))
	done
	SEED=$((SEED + 1))
done
echo "sysfuzz: $runs runs (seeds $first..$((SEED - 1)), glibc and musl, $COUNT calls each) in ${SECONDS}s with $KM: $found with problems"
[ "$found" -eq 0 ]
