#!/usr/bin/env bash
# make demo: an OCI container under km-shim (create, start, checkpoint into the bundle, restore: the
# count goes on), then a few programs under km itself, showing what km did.
# Usage: scripts/demo.sh KM [KM_SHIM]   (KM_SHIM defaults to km-shim beside KM)
set -euo pipefail
KM=${1:-build/bin/km}
cd "$(dirname "$0")/.."
KM=$(realpath "$KM")
KM_SHIM=$(realpath "${2:-$(dirname "$KM")/km-shim}")
GUESTS=build/tests/guests
BUNDLES=build/bundles

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "demo: /dev/kvm is missing or not readable and writable by $(id -un): km needs KVM" >&2
	exit 1
fi
BUSYBOX=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/busybox$' || echo /bin/busybox)

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

# --- km-shim: an OCI container, checkpointed and restored -----------------------------------
DEMO_SHIM=""
shim_cleanup() {
	[ -n "$DEMO_SHIM" ] || return 0
	local id
	for id in counter-1 counter-2; do
		"$KM_SHIM" --root "$DEMO_SHIM/state" delete --force "$id" >/dev/null 2>&1 || true
	done
	rm -rf "$DEMO_SHIM"
}
trap shim_cleanup EXIT
# shim ARGS...: shows and runs km-shim with the demo's private state directory.
shim() {
	show "km-shim --root \$DEMO/state $*" | sed "s|$DEMO_SHIM|\$DEMO|g"
	"$KM_SHIM" --root "$DEMO_SHIM/state" "$@"
}
# counts FILE: the counter's lines so far, indented, on one line.
counts() { printf '    %s\n' "$(tr '\n' ' ' <"$1")"; }

if [ "$(id -u)" != 0 ]; then
	step "km-shim: not shown (it needs root for namespaces and cgroups; run make demo as root)"
else
	DEMO_SHIM=$(mktemp -d)
	cp -a "$BUNDLES/counter" "$DEMO_SHIM/counter"
	step "A. An OCI bundle under km-shim, the runtime with runc's command line (examples/bundles/counter)"
	echo "    config.json: runs /bin/counter (a static C program that prints its count every second and"
	echo "    exists only in the bundle's rootfs), in its own pid, ipc, uts, mount and network namespaces,"
	echo "    read-only root, 128 MiB memory limit"
	show "km-shim --root \$DEMO/state create --bundle \$DEMO/counter counter-1 > \$DEMO/out-1"
	"$KM_SHIM" --root "$DEMO_SHIM/state" create --bundle "$DEMO_SHIM/counter" counter-1 \
		>"$DEMO_SHIM/out-1" 2>&1 </dev/null
	echo "    status: $("$KM_SHIM" --root "$DEMO_SHIM/state" state counter-1 | sed -n 's/.*"status": "\(.*\)".*/\1/p') (km has loaded the program and waits for start)"
	shim start counter-1
	sleep 3.3
	echo "    after 3 seconds the container printed:"
	counts "$DEMO_SHIM/out-1"

	step "B. Checkpoint into the bundle (the container ends, as with runc checkpoint)"
	shim checkpoint --image-path "$DEMO_SHIM/counter/checkpoint" counter-1
	echo "    the container printed, in all: $(tr '\n' ' ' <"$DEMO_SHIM/out-1")"
	show "ls -l \$DEMO/counter/checkpoint"
	ls -l "$DEMO_SHIM/counter/checkpoint" | tail -n +2 | sed 's/^/    /'
	shim delete counter-1

	step "C. Restore it under a new id: the count goes on where it stopped"
	show "km-shim --root \$DEMO/state restore --detach --bundle \$DEMO/counter --image-path \$DEMO/counter/checkpoint counter-2 > \$DEMO/out-2"
	"$KM_SHIM" --root "$DEMO_SHIM/state" restore --detach --bundle "$DEMO_SHIM/counter" \
		--image-path "$DEMO_SHIM/counter/checkpoint" counter-2 >"$DEMO_SHIM/out-2" 2>&1 </dev/null
	sleep 2.3
	echo "    the restored container printed:"
	counts "$DEMO_SHIM/out-2"
	echo "    last count before the checkpoint: $(sed -n 's/^count //p' "$DEMO_SHIM/out-1" | tail -n 1)," \
		"first after the restore: $(sed -n 's/^count //p' "$DEMO_SHIM/out-2" | head -n 1)"
	shim kill counter-2 TERM
	sleep 0.5
	echo "    after SIGTERM: $(tail -n 1 "$DEMO_SHIM/out-2")"
	shim delete --force counter-2
	shim_cleanup
	DEMO_SHIM=""
	echo
	echo "    The same runtime under containerd and podman, and in Kubernetes: docs/kubernetes.md,"
	echo "    tests/e2e/clients.sh."
fi

# --- km itself ------------------------------------------------------------------------------

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
trap 'rm -rf "$DEMO"; shim_cleanup' EXIT
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
