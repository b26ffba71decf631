#!/bin/sh
# Makes the seed corpus of the snapshot-loader fuzz target, tests/fuzz/corpus/, from real files:
# snapshots km writes of tests/fuzz/snap_seed.c (with and without file mappings) and of the fd
# zoo (tests/guests/fd_zoo.c: every kind of fd in NT_KM_FILES), a core file km
# writes (tests/guests/snap_segv), and a core file the Linux kernel writes of the same program.
# Each is cut down to its headers and notes (tests/fuzz/make_seeds.c) so the seeds stay a few
# KiB. Needs build/bin/km and the guests (make km guests) and a usable /dev/kvm.
#   tests/fuzz/make_corpus.sh [OUTDIR]     (default tests/fuzz/corpus; run from anywhere)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/tests/fuzz/corpus}" && cd "${1:-$ROOT/tests/fuzz/corpus}" && pwd)
KM=$ROOT/build/bin/km
B=$ROOT/build/fuzz
mkdir -p "$B"
musl-gcc -static -O1 -Wall -Wextra -Werror -I"$ROOT/runtime/include" -o "$B/snap_seed" "$ROOT/tests/fuzz/snap_seed.c"
gcc -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -pthread -I"$ROOT/km" -I"$ROOT/km/vm" \
	-I"$ROOT/km/mm" -I"$ROOT/km/load" -I"$ROOT/km/sys" -I"$ROOT/km/snapshot" -I"$ROOT/runtime" \
	-o "$B/make_seeds" "$ROOT/tests/fuzz/make_seeds.c" "$ROOT/km/snapshot/km_snapshot_checksum.c" \
	"$ROOT/km/snapshot/km_crc32c.c"

W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
cd "$W"
echo "a file the seed guest maps" > mapped.txt
"$KM" --snapshot="$W/plain.snap" "$B/snap_seed"
"$KM" --snapshot="$W/file.snap" "$B/snap_seed" "$W/mapped.txt"
# A program holding one fd of every kind (2.3's NT_KM_FILES): the zoo, in stop mode.
mkdir -p "$W/zoo"
(exec 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&-; "$KM" --snapshot="$W/zoo.snap" "$ROOT/build/tests/guests/musl/fd_zoo" "$W/zoo" stop >/dev/null)
# 2.6 (NT_KM_LAYERS): the program's text left to its file (held-page bitmaps, KM_BELOW_FILE), and
# an incremental child (KM_BELOW_PARENT, a parent path) of a program that changes memory
# (tests/guests/incr_mem.c; km-mgmt from make tools).
"$KM" --snapshot="$W/layers.snap" "$B/snap_seed" "$W/mapped.txt"
head -c 65536 /dev/zero >incr.data
(echo 1; sleep 2; echo 2; sleep 2) | "$KM" --mgmt="$W/m.sock" "$ROOT/build/tests/guests/musl/incr_mem" "$W/incr.data" >/dev/null &
MG=$ROOT/build/tests/tools/km-mgmt
sleep 1
"$MG" --wait-socket 10 "$W/m.sock" snapshot path="$W/p.snap" mode=continue >/dev/null
sleep 2
"$MG" "$W/m.sock" snapshot path="$W/c.snap" mode=continue parent="$W/p.snap" >/dev/null
wait
# A dynamically linked program with a dlopen'd plugin (NT_KM_DYNLINKER with its interpreter and
# mapped files; make guests builds it).
D=$ROOT/build/tests/guests/dyn
LD_LIBRARY_PATH=$D "$KM" --snapshot="$W/dyn.snap" "$D/dyn_snap" "$D/libdynplug.so" >/dev/null
"$KM" --coredump="$W/km.core" "$ROOT/build/tests/guests/musl/snap_segv" >/dev/null 2>&1 || true
test -s km.core
# The kernel's own core of the same program (core_pattern permitting: skipped if none appears).
(ulimit -c unlimited; "$ROOT/build/tests/guests/musl/snap_segv" >/dev/null 2>&1) || true

"$B/make_seeds" compact plain.snap "$OUT/snapshot-compact"
"$B/make_seeds" compact file.snap "$OUT/snapshot-filemaps-compact"
"$B/make_seeds" compact2 plain.snap "$OUT/snapshot-2vcpus-compact"
"$B/make_seeds" compact-strings-last file.snap "$OUT/snapshot-strings-last-compact"
"$B/make_seeds" compact km.core "$OUT/kmcore-compact"
"$B/make_seeds" compact zoo.snap "$OUT/snapshot-fdzoo-compact"
"$B/make_seeds" compact dyn.snap "$OUT/snapshot-dynamic-compact"
"$B/make_seeds" compact layers.snap "$OUT/snapshot-layers-file-compact"
"$B/make_seeds" compact c.snap "$OUT/snapshot-layers-child-compact"
"$B/make_seeds" notes file.snap "$OUT/snapshot-notes-only"
"$B/make_seeds" nokm file.snap "$OUT/snapshot-km-notes-renamed"
if [ -s core ]; then
	"$B/make_seeds" notes core "$OUT/linux-core-notes-only"
fi
head -c 64 plain.snap > "$OUT/elf-header-only"
ls -l "$OUT"
