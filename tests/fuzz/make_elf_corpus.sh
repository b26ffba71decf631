#!/usr/bin/env bash
# Makes the seed corpus of the ELF-loader fuzz target, tests/fuzz/elf-corpus/: real static
# programs (the hello test guest built with glibc as ET_EXEC and static-pie, with musl as ET_EXEC
# (musl-gcc makes no working static-pie here), and busybox) cut down to a few KiB each by
# tests/fuzz/make_elf_seeds.c, plus its hand-made tiny programs. Needs gcc, musl-gcc and
# busybox-static (scripts/deps.sh); no KVM.
#   tests/fuzz/make_elf_corpus.sh [OUTDIR]     (default tests/fuzz/elf-corpus; run from anywhere)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/tests/fuzz/elf-corpus}" && cd "${1:-$ROOT/tests/fuzz/elf-corpus}" && pwd)
B=$ROOT/build/fuzz
mkdir -p "$B"
gcc -std=gnu11 -O1 -g -Wall -Wextra -Werror -D_GNU_SOURCE -o "$B/make_elf_seeds" "$ROOT/tests/fuzz/make_elf_seeds.c"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
HELLO=$ROOT/tests/guests/hello.c
CF=(-O1 -Wall -Wextra -Werror -D_GNU_SOURCE "-I$ROOT/runtime/include")
gcc "${CF[@]}" -static -o "$W/glibc-static" "$HELLO"
gcc "${CF[@]}" -static-pie -o "$W/glibc-static-pie" "$HELLO"
musl-gcc "${CF[@]}" -static -o "$W/musl-static" "$HELLO"
for p in glibc-static glibc-static-pie musl-static; do
	"$B/make_elf_seeds" compact "$W/$p" "$OUT/$p"
done
"$B/make_elf_seeds" compact "$(command -v busybox || echo /bin/busybox)" "$OUT/busybox"
"$B/make_elf_seeds" tiny "$OUT"
ls -l "$OUT"
