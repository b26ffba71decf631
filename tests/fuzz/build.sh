#!/bin/sh
# Builds a fuzz target with clang's libFuzzer, ASan and UBSan (run from anywhere):
#   tests/fuzz/build.sh [snapshot] [OUT]   the snapshot loader (default OUT: build/fuzz/fuzz_snapshot)
#   tests/fuzz/build.sh elf [OUT]          the ELF loader      (default OUT: build/fuzz/fuzz_elf)
#   tests/fuzz/build.sh oci [OUT]          config.json parsing (default OUT: build/fuzz/fuzz_oci_config)
# then, e.g.:
#   build/fuzz/fuzz_snapshot -max_len=65536 -timeout=5 -jobs=1 build/fuzz/work tests/fuzz/corpus
# Only the code under test is linked (the snapshot loader: all of km, for the fd table's kinds); the ELF loader needs the address space (km_mm, km_vma, km_physmem, km_pagetable, and
# km_guest_fault, which km_physmem sets up), and the initial stack it is followed by, all host
# memory (no KVM); config.json parsing needs oci/ and jansson.
set -eu
cd "$(dirname "$0")/../.."
TARGET=snapshot
case ${1:-} in snapshot | elf | oci) TARGET=$1 && shift ;; esac
DEFAULT_OUT=build/fuzz/fuzz_$TARGET
[ "$TARGET" = oci ] && DEFAULT_OUT=build/fuzz/fuzz_oci_config
OUT=${1:-$DEFAULT_OUT}
CLANG=${CLANG:-$(command -v clang-14 || command -v clang)}
mkdir -p "$(dirname "$OUT")"
FLAGS="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
	-std=gnu11 -Wall -Wextra -Werror -Wno-gnu-variable-sized-type-not-at-end -D_GNU_SOURCE
	-Ikm -Ikm/vm -Ikm/mm -Ikm/load -Ikm/sys -Ikm/fd -Ikm/proc -Ikm/snapshot -Iruntime -Iruntime/include -Ibuild/gen"
if [ "$TARGET" = oci ]; then
	# shellcheck disable=SC2086
	"$CLANG" $FLAGS -Ioci -o "$OUT" tests/fuzz/fuzz_oci_config.c oci/oci_config.c oci/oci_config_process.c \
		oci/oci_config_linux.c oci/oci_config_seccomp.c oci/oci_json.c km/km_error.c -ljansson
	echo "built $OUT"
	exit 0
fi
if [ "$TARGET" = elf ]; then
	# shellcheck disable=SC2086
	"$CLANG" $FLAGS -o "$OUT" tests/fuzz/fuzz_elf.c km/load/km_elf_load.c km/load/km_initstack.c \
		km/mm/km_mm.c km/mm/km_vma.c km/mm/km_physmem.c km/mm/km_pagetable.c km/mm/km_guest_fault.c \
		km/km_error.c -lelf -lpthread
	echo "built $OUT"
	exit 0
fi
# The snapshot target also lists the fd table (km_fdtab_describe), whose kinds reach most of km:
# it links all of km but main.c, with the guest runtime blob `make km` built.
BLOB=build/obj/km/vm/runtime_blob.o
VDSO_BLOB=build/obj/km/vm/vdso_blob.o
for b in "$BLOB" "$VDSO_BLOB"; do
	[ -f "$b" ] || { echo "tests/fuzz/build.sh: $b is missing: run make km first" >&2; exit 1; }
done
KM_SRCS=$(ls km/*.c km/vm/*.c km/mm/*.c km/load/*.c km/sys/*.c km/fd/*.c km/proc/*.c km/snapshot/*.c | grep -v '^km/main.c$')
# shellcheck disable=SC2086
"$CLANG" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -std=gnu11 -Wall -Wextra -Werror -Wno-gnu-variable-sized-type-not-at-end -D_GNU_SOURCE -pthread \
	-Ikm -Ikm/vm -Ikm/mm -Ikm/load -Ikm/sys -Ikm/fd -Ikm/proc -Ikm/snapshot -Iruntime -Iruntime/vdso -Iruntime/include -Ibuild/gen \
	-o "$OUT" tests/fuzz/fuzz_snapshot.c $KM_SRCS "$BLOB" "$VDSO_BLOB" -lelf -lz -lpthread
echo "built $OUT"
