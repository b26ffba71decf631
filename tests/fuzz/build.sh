#!/bin/sh
# Builds the snapshot-loader fuzz target with clang's libFuzzer, ASan and UBSan:
#   tests/fuzz/build.sh [OUT]      (default OUT: build/fuzz/fuzz_snapshot; run from the repo root)
# then, e.g.:
#   build/fuzz/fuzz_snapshot -max_len=65536 -timeout=5 -jobs=1 build/fuzz/work tests/fuzz/corpus
# Only the loader and the error objects are linked: km_snapshot_read.c uses nothing else of km.
set -eu
cd "$(dirname "$0")/../.."
OUT=${1:-build/fuzz/fuzz_snapshot}
CLANG=${CLANG:-$(command -v clang-14 || command -v clang)}
mkdir -p "$(dirname "$OUT")"
"$CLANG" -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE \
	-Ikm -Iruntime -Iruntime/include -Ibuild/gen \
	-o "$OUT" tests/fuzz/fuzz_snapshot.c km/km_snapshot_read.c km/km_snapshot_checksum.c \
	km/km_crc32c.c km/km_error.c
echo "built $OUT"
