#!/usr/bin/env bash
# A stand-in for km, used ONLY to check the e2e harness itself while km cannot run programs yet:
#   KM=tests/e2e/fake-km.sh tests/e2e/run.sh
# It runs the program natively (no KVM), but behaves at its edges the way the harness expects km
# to: the same options, exit statuses and one-line stderr messages, and --trace via strace.
# Passing with it says nothing about km.
set -u

prog_name=km
kvm_dev=/dev/kvm
trace=0

err() {
	echo "$prog_name: $*" >&2
	exit 1
}

while [ $# -gt 0 ]; do
	case $1 in
	--trace) trace=1 ;;
	--kvm-device=*) kvm_dev=${1#--kvm-device=} ;;
	--) shift && break ;;
	-*) err "unknown option '$1' (see km --help)" ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 1 ] || {
	echo "usage: km [--trace] [--kvm-device=PATH] PROGRAM [ARGS...]" >&2
	echo "runs a static x86-64 Linux program in its own KVM virtual machine" >&2
	exit 1
}
prog=$1

[ -e "$kvm_dev" ] || err "cannot open KVM device '$kvm_dev': No such file or directory"
[ -e "$prog" ] || err "cannot load '$prog': No such file or directory"
[ -d "$prog" ] && err "cannot load '$prog': Is a directory"
[ -r "$prog" ] || err "cannot load '$prog': Permission denied"
[ "$(head -c 4 "$prog" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ] || err "cannot load '$prog': not an ELF file"
[ "$(od -An -tu1 -j4 -N1 "$prog" | tr -d ' ')" = 2 ] || err "cannot load '$prog': not a 64-bit ELF file (ELFCLASS32)"
[ "$(od -An -tu2 -j18 -N2 "$prog" | tr -d ' ')" = 62 ] || err "cannot load '$prog': not an x86-64 ELF file"
headers=$(readelf -lW "$(readlink -f "$prog")" 2>&1) || err "cannot load '$prog': malformed ELF"
grep -q 'Warning\|Error\|truncated' <<<"$headers" && err "cannot load '$prog': truncated or malformed ELF"
grep -q 'program interpreter' <<<"$headers" && err "cannot load '$prog': dynamically linked (PT_INTERP); km runs static programs only"
size=$(stat -L -c %s "$prog")
while read -r type off _ _ filesz _; do
	[ "$type" = LOAD ] || continue
	[ $((off + filesz)) -le "$size" ] || err "cannot load '$prog': truncated (segment data past end of file)"
done <<<"$headers"

# Hand the program exactly the environment we were given (bash would add PWD, SHLVL, _ and
# reorder it).
mapfile -d '' environment </proc/$$/environ
if [ $trace = 1 ]; then
	# strace's own format is what km's --trace imitates: "name(args) = result".
	{ strace -qq -e signal=none -o /dev/fd/3 env -i "${environment[@]}" "$@" 3>&4 2>&4; } 4>&2 2>/dev/null
	rc=$?
else
	# (the braces keep bash's "Segmentation fault" report off the program's stderr)
	{ env -i "${environment[@]}" "$@" 2>&4; } 4>&2 2>/dev/null
	rc=$?
fi
if [ $rc -gt 128 ] && sig=$(kill -l $((rc - 128)) 2>/dev/null); then
	echo "$prog_name: '$prog' killed by SIG$sig" >&2
fi
exit $rc
