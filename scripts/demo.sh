#!/usr/bin/env bash
# make demo: runs a few programs under km and shows what km did. Usage: scripts/demo.sh KM
set -euo pipefail
KM=${1:-build/bin/km}
cd "$(dirname "$0")/.."
KM=$(realpath "$KM")
GUESTS=build/tests/guests

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "demo: /dev/kvm is missing or not readable and writable by $(id -un): km needs KVM" >&2
	exit 1
fi
BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/busybox$' || echo /bin/busybox)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

step "1. A static C program (musl) in its own KVM virtual machine, every syscall traced"
show "$KM --trace $GUESTS/musl/hello"
"$KM" --trace "$GUESTS/musl/hello" 2>&1 | sed 's/^/    /'

step "2. A real program: busybox (static, from Debian) under km, output identical to native"
show "$KM $BUSYBOX sha256sum README.md"
"$KM" "$BUSYBOX" sha256sum README.md | sed 's/^/    /'
show "$BUSYBOX sha256sum README.md   # natively"
"$BUSYBOX" sha256sum README.md | sed 's/^/    /'

step "3. The guest's environment and arguments are its own"
show "$KM --clear-env --env=GREETING=hello $BUSYBOX env"
"$KM" --clear-env --env=GREETING=hello "$BUSYBOX" env | sed 's/^/    /'

step "4. A fault in the guest is a Linux signal, reported like a shell would"
show "$KM $GUESTS/gcc/crash_null"
set +e
"$KM" "$GUESTS/gcc/crash_null" 2>&1 | sed 's/^/    /'
echo "    exit status: ${PIPESTATUS[0]} (128 + SIGSEGV)"

step "5. Memory is limited per guest: running out is ENOMEM for the program, not a crash of km"
show "$KM --memory=64M $GUESTS/gcc/memlimit exhaust 256"
"$KM" --memory=64M "$GUESTS/gcc/memlimit" exhaust 256 2>&1 | grep stopped | sed 's/^/    /'

step "6. Bad input gets one clear line"
show "$KM /bin/true"
"$KM" /bin/true 2>&1 | sed 's/^/    /'
show "$KM README.md"
"$KM" README.md 2>&1 | sed 's/^/    /'
set -e

step "7. Snapshot a running program from outside, resume it later, elsewhere"
DEMO=$(mktemp -d)
trap 'rm -rf "$DEMO"' EXIT
show "$KM --mgmt=\$DEMO/km.sock $GUESTS/gcc/snap_cpu 250000000 &     # CPU-bound, a few seconds"
"$KM" --mgmt="$DEMO/km.sock" "$GUESTS/gcc/snap_cpu" 250000000 > "$DEMO/original.out" &
kmpid=$!
build/tests/tools/km-mgmt --wait-socket 5 "$DEMO/km.sock" status > /dev/null
sleep 0.5
show "km-mgmt \$DEMO/km.sock snapshot path=\$DEMO/warm.snap mode=continue"
build/tests/tools/km-mgmt "$DEMO/km.sock" snapshot "path=$DEMO/warm.snap" mode=continue | sed 's/^/    /'
wait $kmpid
echo "    the original run finished: $(tail -1 "$DEMO/original.out")"
show "$KM --inspect \$DEMO/warm.snap"
"$KM" --inspect "$DEMO/warm.snap" | sed -n '1,4p;/^threads/,/^  vcpu/p' | sed 's/^/    /'
show "cd / && KM_TIMING=1 $KM \$DEMO/warm.snap      # resume: same answer"
(cd / && KM_TIMING=1 "$KM" "$DEMO/warm.snap") 2>&1 | sed 's/^/    /'
echo "    disk use of the snapshot: $(du -h "$DEMO/warm.snap" | cut -f1) (untouched memory is holes)"

step "8. Start-up cost: 20 runs of hello, native then under km"
t0=$(date +%s%N); for _ in $(seq 20); do "$GUESTS/musl/hello" >/dev/null; done; t1=$(date +%s%N)
for _ in $(seq 20); do "$KM" "$GUESTS/musl/hello" >/dev/null; done; t2=$(date +%s%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" \
	'BEGIN { printf "    native: %.2f ms per run, km: %.2f ms per run (VM creation included)\n", (b - a) / 2e7, (c - b) / 2e7 }'
echo
echo "More: km --help, README.md, docs/."
