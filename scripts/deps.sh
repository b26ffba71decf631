#!/usr/bin/env bash
# Installs the Debian packages km needs to build, test and benchmark, if any are missing
# (with --fuzz, also what `make fuzz` needs).
# The one place where packages get installed: Makefile targets call it, nothing else does.
set -euo pipefail

packages=(
	build-essential      # gcc, make
	libelf-dev           # ELF loading and snapshot writing (elfutils libelf)
	libcmocka-dev        # unit tests
	libseccomp-dev       # seccomp on the monitor (and km-shim)
	libjansson-dev       # OCI config.json
	musl-tools           # musl-gcc: test guests built against a second libc
	busybox-static       # a real static program to run under km
	binutils             # readelf/objdump for snapshot tests
	gdb                  # snapshot/core tests read files with gdb
	hyperfine            # benchmarks
	strace               # comparing --trace with the real thing while debugging
	golang-go            # Go test guest for threads and signals (CGO_ENABLED=0, static)
	# km-shim's real clients and peers (tests/e2e/clients.sh, bench/: ../shared/CLIENTS.md)
	runc                 # the reference runtime: harness self-check (RUNTIME=runc) and bench peer
	crun                 # bench peer (runs only with the cgroup2 mount hidden: bench/README.md)
	containerd           # ctr, containerd, containerd-shim-runc-v2
	podman               # podman 4.3 and conmon
	conmon
	criu                 # podman 4.3 asks `criu swrk` its version over RPC before every checkpoint/restore
	                     # (3.17.1 answers, though it cannot dump on this kernel; km-shim needs no CRIU)
	iptables             # runc checkpoint/restore (CRIU) with a network namespace
	python3-grpcio       # tests/tools/cri-client.py: containerd's CRI over gRPC (tests/e2e/cri.sh)
	jq                   # tests/e2e/shim_ctr.sh reads the state JSON hooks get
	python3              # tests/e2e/dynlink.sh: Debian's dynamically linked python3 under km (perl
	                     # and coreutils, the others it runs, are essential packages)
	# Real programs under km (issue 10: tests/e2e/procs.sh, bench/ section procs), each compared
	# with a native run (python3: above). Shells: one of each family, static and dynamic.
	bash-static          # /bin/bash-static (glibc, static)
	mksh                 # /bin/mksh (dynamic) and /bin/mksh-static (klibc, static)
	dash                 # /bin/dash (dynamic; in Debian's base, listed so it is never assumed)
	make                 # `make -j2` of tests/fixtures/procs_make, its compiler run under km too
	curl                 # the native client of busybox httpd under km (fork per connection)
	perl                 # dynamically linked, the other common script interpreter
	# Issue 12's programs in bench/apps/ (static, glibc): sqlite inserts and zlib, beside native
	libsqlite3-dev       # libsqlite3.a
	zlib1g-dev           # libz.a
)
# `scripts/deps.sh --fuzz` (make fuzz) also installs libFuzzer: clang and its runtimes.
if [ "${1:-}" = --fuzz ]; then
	packages+=(clang libclang-rt-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "deps.sh: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	if command -v sudo >/dev/null; then
		sudo="sudo"
	else
		echo "deps.sh: packages missing (${missing[*]}) and not root; run as root or install them" >&2
		exit 1
	fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -q >/dev/null
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
