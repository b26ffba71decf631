# shellcheck shell=bash disable=SC2016,SC2034
# Busybox applets, each run natively and under km: stdout, stderr and exit status must match.
# Sourced by run.sh (uses its helpers: want/begin/bad/end/run/km_cmd/compare_runs); defines
# run_busybox. Busybox is the static binary from Debian's busybox-static package.
#
# Each case runs one applet (no shell, no pipes: busybox sh would need fork) in a fixture
# directory with fixed contents, modes and mtimes, with TZ=UTC and LC_ALL=C.

# bb NAME [stdin=FILE] [status=N] -- APPLET ARGS...
#   stdin=FILE  stdin from FILE (relative to the fixture directory); default /dev/null
#   status=N    expected exit status (default 0); both runs must give it
#   "@OUT" in ARGS is a file path the applet writes; the native and km files must be identical.
bb() {
	local name=$1
	shift
	local stdin=/dev/null status=0 a
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		case $1 in
		stdin=*) stdin=$FIX/${1#stdin=} ;;
		status=*) status=${1#status=} ;;
		*) echo "busybox.sh: bad option '$1' for case $name" >&2 ;;
		esac
		shift
	done
	shift
	bb_exe "$name" "$stdin" "$status" "$BUSYBOX" "$@"
}

# bb_exe NAME STDIN STATUS PROGRAM ARGS...: the general form (PROGRAM may be a symlink to busybox).
bb_exe() {
	local name=$1 stdin=$2 status=$3
	shift 3
	local test="busybox/$name"
	want "$test" || return 0
	begin "$test"
	local d=$WORK/busybox/$name a uses_out=0
	local -a nargs=() kargs=()
	for a in "$@"; do
		[[ $a == *@OUT* ]] && uses_out=1
		nargs+=("${a//@OUT/$d/native/outfile}")
		kargs+=("${a//@OUT/$d/km/outfile}")
	done
	mkdir -p "$d/native" "$d/km"
	run "$d/native" "$FIX" "$stdin" -- "${nargs[@]}"
	local nrc=$RC
	N_CMDLINE=$CMDLINE
	km_cmd "${kargs[@]}"
	run "$d/km" "$FIX" "$stdin" -- "${KMCMD[@]}"
	K_CMDLINE=$CMDLINE
	compare_runs "$d/native" "$nrc" "$d/km" "$RC" "$status"
	if [ $uses_out = 1 ]; then
		if [ ! -f "$d/native/outfile" ]; then
			bad "native run did not create its output file"
		elif ! cmp -s "$d/native/outfile" "$d/km/outfile"; then
			bad "the file written under km differs from the one written natively"
			note "    diff native (-) vs km (+) output file:"
			note "$(diff -a -u "$d/native/outfile" "$d/km/outfile" 2>&1 | head -n 30 | cut -c1-300 | cat -v | sed 's/^/      /')"
		fi
	fi
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_runs "$d/native" "$d/km"
	fi
	end
}

find_busybox() {
	local p
	p=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/busybox$')
	[ -n "$p" ] && [ -x "$p" ] || p=/bin/busybox
	[ -x "$p" ] || return 1
	# It must be static (km runs static programs only).
	if readelf -l "$p" 2>/dev/null | grep -q 'program interpreter'; then
		return 1
	fi
	BUSYBOX=$p
}

# Builds the fixture tree in $FIX: files from tests/fixtures/busybox plus generated ones,
# fixed modes, and every mtime (files, symlink, directories) set to one fixed instant.
make_busybox_fixture() {
	BB_ROOT=$WORK/bb
	FIX=$BB_ROOT/fix
	mkdir -p "$FIX/subdir/deeper" "$BB_ROOT/bin"
	cp "$ROOT"/tests/fixtures/busybox/* "$FIX/"
	seq 1 150000 >"$FIX/big.txt"
	local i
	for i in $(seq 0 255); do printf "\\$(printf %03o "$i")"; done >"$FIX/bytes.bin"
	: >"$FIX/empty"
	printf 'nested file\n' >"$FIX/subdir/nested.txt"
	printf 'leaf\n' >"$FIX/subdir/deeper/leaf.txt"
	printf '#!/bin/sh\necho not really run\n' >"$FIX/script.sh"
	ln -s words.txt "$FIX/link-to-words"
	ln -s no-such-target "$FIX/dangling-link"
	gzip -9 -n -c "$FIX/words.txt" >"$FIX/words.txt.gz"
	(cd "$FIX" && md5sum words.txt data.txt >sums.md5)
	sed 's/cherry/CHERRY/; /fig/d' "$FIX/words.txt" >"$FIX/words2.txt"
	base64 "$FIX/bytes.bin" >"$FIX/bytes.b64"
	tar -C "$FIX" --mtime=@981173106 --owner=0 --group=0 --numeric-owner -cf "$FIX/archive.tar" words.txt subdir
	chmod 644 "$FIX"/*.txt "$FIX"/*.bc "$FIX"/*.gz "$FIX"/*.bin "$FIX"/*.b64 "$FIX"/*.tar "$FIX/empty" "$FIX/sums.md5" \
		"$FIX/subdir/nested.txt" "$FIX/subdir/deeper/leaf.txt"
	chmod 600 "$FIX/data.txt"
	chmod 755 "$FIX/script.sh" "$FIX/subdir" "$FIX"
	chmod 700 "$FIX/subdir/deeper"
	# Applets reached through a symlink: busybox picks the applet from argv[0].
	ln -s "$BUSYBOX" "$BB_ROOT/bin/cat"
	ln -s "$BUSYBOX" "$BB_ROOT/bin/ls"
	local when='2001-02-03 04:05:06 UTC'
	find "$FIX" -depth -exec touch -h -d "$when" {} +
	touch -d "$when" "$BB_ROOT"
}

run_busybox() {
	if ! find_busybox; then
		if want busybox/setup; then
			begin busybox/setup
			bad "no static busybox found (install the busybox-static package: scripts/deps.sh does)"
			end
		fi
		return 0
	fi
	make_busybox_fixture

	# Output and arguments
	bb echo -- echo hello world
	bb echo-n -- echo -n no newline
	bb echo-e -- echo -e 'tab\there\nnewline \x41\0101'
	bb printf -- printf '%s|%5d|%-5s|%x|%o|%.3f|%e|%c\n' word 42 ab 255 8 3.14159 12345.678 xyz
	bb true -- true
	bb false status=1 -- false
	bb seq -- seq 1 10
	bb seq-step -- seq 10 -3 -5
	bb seq-float -- seq 0 0.25 2
	bb seq-separator -- seq -s , -w 1 12
	bb expr-mul -- expr 6 '*' 7
	bb expr-length -- expr length 'hello world'
	bb expr-false status=1 -- expr 1 = 2
	bb expr-match -- expr abc123 : '[a-z]*\([0-9]*\)'
	bb date-epoch -- date -u -d @0
	bb date-format -- date -u -d @1234567890 '+%Y-%m-%d %H:%M:%S %j %a %b %s'
	bb basename -- basename /a/b/c.txt .txt
	bb dirname -- dirname /a/b/c.txt
	bb factor -- factor 1234567890 600851475143
	bb bc stdin=calc.bc -- bc -l
	bb dc -- dc -e '2 64 ^ p 7 3 / p 10 k 1 3 / p'

	# Reading files, stdin, directories
	bb cat -- cat words.txt prose.txt
	bb cat-stdin stdin=prose.txt -- cat
	bb cat-dash stdin=numbers.txt -- cat words.txt - empty
	bb cat-n -- cat -n prose.txt
	bb cat-missing status=1 -- cat no-such-file
	bb cat-big -- cat big.txt
	bb ls-la -- ls -la
	bb ls-lan-recursive -- ls -lanR
	bb ls-1 -- ls -1 subdir .
	bb ls-missing status=1 -- ls -l no-such-file
	bb stat -- stat -c '%n %s %a %A %h %F %Y' words.txt data.txt subdir link-to-words empty
	bb readlink -- readlink link-to-words
	bb realpath -- realpath subdir/deeper/../nested.txt
	bb find -- find .
	bb find-type -- find . -type f -name '*.txt'
	bb find-newer-size -- find . -type f -size +1k
	bb find-maxdepth -- find . -maxdepth 1 -type d
	bb pwd -- pwd

	# Text processing
	bb wc -- wc words.txt prose.txt data.txt
	bb wc-l-stdin stdin=big.txt -- wc -l
	bb wc-c-big -- wc -c big.txt
	bb sort -- sort words.txt
	bb sort-n-r -- sort -n -r numbers.txt
	bb sort-u -- sort -u words.txt
	bb sort-key -- sort -t : -k 3,3n data.txt
	bb sort-big -- sort -r big.txt
	bb sort-o -- sort -o @OUT words.txt
	bb uniq stdin=words.txt -- uniq
	bb uniq-c -- uniq -c numbers.txt
	bb head -- head -n 3 words.txt
	bb head-multi -- head -n 2 words.txt data.txt
	bb head-c -- head -c 20 prose.txt
	bb tail -- tail -n 3 words.txt
	bb tail-c-big -- tail -c 1000 big.txt
	bb tail-plus -- tail -n +18 words.txt
	bb tr-upper stdin=prose.txt -- tr a-z A-Z
	bb tr-delete stdin=prose.txt -- tr -d aeiou
	bb tr-squeeze stdin=prose.txt -- tr -s ' '
	bb cut-fields -- cut -d : -f 1,3,7 data.txt
	bb cut-chars -- cut -c 1-3,5 words.txt
	bb grep -- grep -n an words.txt
	bb grep-count -- grep -c apple words.txt
	bb grep-invert -- grep -v -i the prose.txt
	bb grep-extended -- grep -E '^(a|b|c)' words.txt
	bb grep-nomatch status=1 -- grep zzz words.txt
	bb grep-recursive -- grep -r -n leaf .
	bb grep-fixed-stdin stdin=data.txt -- grep -F /usr/sbin/nologin
	bb sed-subst -- sed 's/a/A/g' words.txt
	bb sed-range -- sed -n '2,4p;$p' data.txt
	bb sed-delete stdin=prose.txt -- sed -e '/^$/d' -e 's/[[:space:]]\+/ /g'
	bb awk-sum -- awk -F : '{ s += $3 } END { print s, NR, s / NR }' data.txt
	bb awk-printf -- awk 'BEGIN { printf "%.6f %d %s %e %g\n", 22 / 7, 7 / 2, substr("busybox", 2, 3), 1 / 3, 1e6 * 3 }'
	bb awk-fields stdin=prose.txt -- awk '{ print NF ": " $NF }'
	bb awk-array -- awk '{ n[$1]++ } END { for (w in n) if (n[w] > 1) print w, n[w] }' words.txt
	bb diff status=1 -- diff words.txt words2.txt
	bb cmp status=1 -- cmp words.txt words2.txt
	bb paste -- paste -d , numbers.txt words.txt
	bb nl -- nl prose.txt
	bb rev -- rev words.txt
	bb fold -- fold -w 10 prose.txt
	bb expand -- expand prose.txt
	bb tac -- tac words.txt

	# Binary data and checksums
	bb sha256sum -- sha256sum words.txt big.txt bytes.bin empty
	bb sha1sum -- sha1sum big.txt
	bb sha512sum -- sha512sum bytes.bin
	bb md5sum -- md5sum words.txt big.txt bytes.bin
	bb md5sum-check -- md5sum -c sums.md5
	bb od -- od -A x -t x1 -v bytes.bin
	bb od-c -- od -c prose.txt
	bb hexdump -- hexdump -C bytes.bin
	bb xxd -- xxd -l 64 bytes.bin
	bb base64 -- base64 bytes.bin
	bb base64-decode stdin=bytes.b64 -- base64 -d
	bb gzip -- gzip -c words.txt
	bb gunzip -- gunzip -c words.txt.gz
	# (zcat is left out: busybox's zcat forks, and km has no fork yet)
	bb tar-list -- tar -tvf archive.tar
	bb tar-extract-stdout -- tar -xOf archive.tar
	bb tar-create -- tar -cf @OUT words.txt subdir
	bb strings -- strings -n 3 bytes.bin
	bb cp -- cp words.txt @OUT

	# Process and system information
	bb env -- env
	bb id-u -- id -u
	bb uname -- uname -s -m
	bb sleep -- sleep 0.05
	bb test-true -- test -f words.txt -a -d subdir -a -L link-to-words
	bb test-false status=1 -- test -x words.txt

	# Applets reached through symlinks named after them (argv[0] selects the applet).
	bb_exe symlink-cat /dev/null 0 "$BB_ROOT/bin/cat" words.txt
	bb_exe symlink-ls /dev/null 0 "$BB_ROOT/bin/ls" -l subdir
}
