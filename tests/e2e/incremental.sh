# Incremental snapshots and file-backed text left to its file (format 2.6, NT_KM_LAYERS;
# docs/snapshot-format.md). Sourced by run.sh.
#
# incr_mem changes its memory in five steps (stores, read(2) into its buffers, mmap, munmap,
# mremap, brk, mprotect, MADV_DONTNEED, a private file mapping, a second thread) and prints a hash
# of all of it after each; a snapshot after each step names the one before as its parent. Each
# member resumed prints the hash of its step, and the fifth (a chain of five files) the same as a
# full snapshot taken at the same point.

INC_MGMT=${TOOLS:-$ROOT/build/tests/tools}/km-mgmt
INC_SCRIBBLE=${TOOLS:-$ROOT/build/tests/tools}/snap-scribble

# inc_chain DIR FLAVOUR [KM OPTIONS...]: runs incr_mem under km --mgmt in DIR and takes s1..s5
# (each naming the one before) and full (self-contained, no parent) after step 5. Leaves the
# step hashes in DIR/sums ("sum N H" lines) and the replies in DIR/replies. False (the test
# failed) if km could not be run.
inc_chain() {
	local d=$1 flavour=$2 n line reply
	shift 2
	rm -rf "$d" "$d.data"
	mkdir -p "$d"
	# outside the snapshots' directory, which a test moves
	head -c 65536 /dev/urandom >"$d.data"
	coproc INC { exec timeout -k 5 "$TIMEOUT" "$KM" "$@" --mgmt="$d/m.sock" "$GUESTS/$flavour/incr_mem" "$d.data" 2>"$d/err"; }
	local pid=${INC_PID:-} in=${INC[1]:-} out=${INC[0]:-}
	coproc_gone "$pid" "$in" "$out" "$d/err" && return 1
	: >"$d/sums"
	: >"$d/replies"
	for n in 1 2 3 4 5; do
		coproc_send "$in" "$n"
		while read -r -t "$TIMEOUT" line <&"$out"; do
			case $line in
			"sum $n "*) echo "$line" >>"$d/sums" ;;
			"done $n") break ;;
			FAIL*) bad "incr_mem: $line" ;;
			esac
		done
		if [ "$n" = 3 ]; then # a child that fails after km collected the changes: they count again
			reply=$("$INC_MGMT" --timeout 30 "$d/m.sock" snapshot "path=$d/no/such/dir/x" mode=continue "parent=$d/s2" 2>&1)
			[[ $reply == error* ]] || bad "a snapshot into a missing directory: '$reply'"
		fi
		if [ "$n" = 1 ]; then
			reply=$("$INC_MGMT" --wait-socket 10 --timeout 30 "$d/m.sock" snapshot "path=$d/s1" mode=continue 2>&1)
		else
			reply=$("$INC_MGMT" --timeout 30 "$d/m.sock" snapshot "path=$d/s$n" mode=continue "parent=$d/s$((n - 1))" 2>&1)
		fi
		echo "s$n $reply" >>"$d/replies"
		[[ $reply == ok* ]] || bad "snapshot s$n: $reply"
	done
	reply=$("$INC_MGMT" --timeout 30 "$d/m.sock" snapshot "path=$d/full" mode=continue self-contained=1 2>&1)
	[[ $reply == ok* ]] || bad "the full snapshot: $reply"
	INC_IN=$in
	INC_OUT=$out
	INC_PID=$pid
	return 0
}

# inc_stop: ends the coproc inc_chain left running.
inc_stop() {
	exec {INC_IN}>&- 2>/dev/null
	wait "$INC_PID" 2>/dev/null
}

# inc_resume_sum DIR FILE OUTDIR [KM OPTIONS...]: resumes FILE with "check" on stdin; prints
# the hash the resumed program reports (empty if none).
inc_resume_sum() {
	local d=$1 f=$2 o=$3
	shift 3
	mkdir -p "$o"
	echo check >"$o/in"
	(cd "$d" && timeout -k 5 "$TIMEOUT" "$KM" "$@" "$f" <"$o/in" >"$o/out" 2>"$o/err")
	sed -n 's/^sum check //p' "$o/out"
}

inc_depth5() {
	local flavour=$1 test="incremental/chain5/$1"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/incremental/chain5/$flavour n want got
	inc_chain "$d" "$flavour" || return
	inc_stop
	want=$(sed -n 's/^sum 5 //p' "$d/sums")
	[ -n "$want" ] || bad "incr_mem printed no hash for step 5: $(head -c 300 "$d/err")"
	for n in 1 2 3 4 5; do
		got=$(inc_resume_sum "$d" "s$n" "$d/r$n")
		[ "$got" = "$(sed -n "s/^sum $n //p" "$d/sums")" ] ||
			bad "s$n resumed with hash '$got', step $n had '$(sed -n "s/^sum $n //p" "$d/sums")': $(head -c 300 "$d/r$n/err")"
		grep -q '^FAIL' "$d/r$n/out" && bad "s$n resumed: $(grep -m2 '^FAIL' "$d/r$n/out" | tr '\n' ' ')"
	done
	got=$(inc_resume_sum "$d" full "$d/rfull")
	[ "$got" = "$want" ] || bad "the full snapshot resumed with hash '$got', expected '$want'"
	# Each child holds less than the first file; the fifth sits on four parents.
	(cd "$d" && "$KM" --inspect s5 >"$d/inspect5" 2>&1 </dev/null) ||
		bad "--inspect s5: $(head -c 300 "$d/inspect5")"
	grep -q '^chain: *5 files' "$d/inspect5" || bad "--inspect s5 does not show a chain of 5: $(grep -m1 '^chain' "$d/inspect5")"
	grep -q '^  \[4\] .*s1: id [0-9a-f]\{32\}, depth 0' "$d/inspect5" || bad "--inspect s5 does not name s1 at depth 0"
	local full_disk s5_disk
	full_disk=$(du -k "$d/full" | cut -f1)
	s5_disk=$(du -k "$d/s5" | cut -f1)
	[ "$s5_disk" -lt "$full_disk" ] || bad "s5 uses $s5_disk KiB, no less than the full snapshot's $full_disk KiB"
	(cd "$d" && "$KM" --inspect --verify s5 >"$d/verify5" 2>&1 </dev/null) ||
		bad "--inspect --verify s5: $(tail -c 300 "$d/verify5")"
	[ "$(grep -c '^verified: *memory of all' "$d/verify5")" = 5 ] || bad "--verify did not check the 5 members"
	# The directory moved elsewhere: parents are named relative to their child.
	mv "$d" "$d.moved"
	got=$(inc_resume_sum "$d.moved" s5 "$d.moved/rmoved")
	[ "$got" = "$want" ] || bad "s5 in a moved directory resumed with hash '$got': $(head -c 300 "$d.moved/rmoved/err")"
	mv "$d.moved" "$d"
	end
}

# A missing, replaced or self-naming parent is refused before anything runs, naming it.
inc_refused() {
	local flavour=gcc test="incremental/parent-refused"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/incremental/refused
	inc_chain "$d" "$flavour" || return
	# A parent that is not the last snapshot this km wrote.
	local reply
	reply=$("$INC_MGMT" --timeout 30 "$d/m.sock" snapshot "path=$d/wrong" mode=continue "parent=$d/s2" 2>&1)
	[[ $reply == error* && $reply == *"not the last snapshot"* ]] || bad "a parent that is not the last snapshot: '$reply'"
	[ -e "$d/wrong" ] && bad "the refused snapshot was written"
	reply=$("$INC_MGMT" --timeout 30 "$d/m.sock" snapshot "path=$d/fifo-child" mode=continue "parent=/dev/null" 2>&1)
	[[ $reply == error* && $reply == *"not a regular file"* ]] || bad "a device as parent: '$reply'"
	inc_stop
	mv "$d/s3" "$d/s3.away"
	inc_resume_sum "$d" s5 "$d/missing" >/dev/null
	grep -q "s3" "$d/missing/err" && ! grep -q '^sum' "$d/missing/out" ||
		bad "s5 without s3: $(head -c 300 "$d/missing/err")"
	cp "$d/s1" "$d/s3"
	inc_resume_sum "$d" s5 "$d/changed" >/dev/null
	grep -q "s3 is not the snapshot it was written on" "$d/changed/err" ||
		bad "s5 over a replaced s3: $(head -c 300 "$d/changed/err")"
	end
}

# --snapshot-chain=2: a third generation would be deeper, so it is written whole (depth 0).
inc_depth_bound() {
	local test="incremental/depth-bound"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/incremental/bound
	inc_chain "$d" gcc --snapshot-chain=2 || return
	inc_stop
	local n
	for n in 1 2 3 4 5; do
		(cd "$d" && "$KM" --inspect "s$n" >"$d/i$n" 2>&1 </dev/null) || bad "--inspect s$n: $(head -c 300 "$d/i$n")"
	done
	grep -q '^  \[0\] s2: .*depth 1' "$d/i2" || bad "s2 is not at depth 1"
	grep -q '^  \[0\] s3: .*depth 2' "$d/i3" || bad "s3 is not at depth 2"
	grep -q '^  \[0\] s4: .*depth 0' "$d/i4" || bad "s4 (a third generation under --snapshot-chain=2) is not whole: $(grep -m1 '\[0\]' "$d/i4")"
	grep -q '^  \[0\] s5: .*depth 1' "$d/i5" || bad "s5 does not chain on the whole s4"
	local got
	got=$(inc_resume_sum "$d" s5 "$d/r5")
	[ "$got" = "$(sed -n 's/^sum 5 //p' "$d/sums")" ] || bad "s5 resumed with hash '$got'"
	end
}

# The program's text stays in its file: not held, mapped from it at resume; --self-contained
# holds it; a changed program file is refused.
inc_text() {
	local test="incremental/file-text"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/incremental/text
	rm -rf "$d"
	mkdir -p "$d"
	cp -p "$GUESTS/gcc/snap_modes" "$d/prog"
	# (by its absolute path: a mapping named relatively has no identity recorded, so nothing below)
	(cd "$d" && timeout -k 5 "$TIMEOUT" "$KM" --snapshot=lean.snap "$d/prog" once >/dev/null 2>&1 </dev/null)
	(cd "$d" && timeout -k 5 "$TIMEOUT" "$KM" --self-contained --snapshot=whole.snap "$d/prog" once >/dev/null 2>&1 </dev/null)
	"$KM" --inspect "$d/lean.snap" >"$d/lean" 2>&1 </dev/null || bad "--inspect lean.snap: $(head -c 300 "$d/lean")"
	"$KM" --inspect "$d/whole.snap" >"$d/whole" 2>&1 </dev/null || bad "--inspect whole.snap: $(head -c 300 "$d/whole")"
	grep -A1 'r-x private .* program ' "$d/lean" | grep -q 'the others from the mapped file' ||
		bad "the program's text is held whole without --self-contained"
	grep -q 'the others from' "$d/whole" && bad "--self-contained left pages to a file"
	local lean whole
	lean=$(du -k "$d/lean.snap" | cut -f1)
	whole=$(du -k "$d/whole.snap" | cut -f1)
	[ "$lean" -lt "$whole" ] || bad "lean.snap uses $lean KiB, whole.snap $whole KiB"
	srun "$d/r-lean" "$d" /dev/null -- "$KM" "$d/lean.snap"
	snap_expect_run "$d/r-lean" "resume lean" 0 "resumed+PASSED"
	# What a 2.5 km makes of it: its segments with pages below have NT_KM_VMA saved 2, refused
	# (here: the same file marked 2.5) rather than resumed with those pages zero.
	cp --sparse=always "$d/lean.snap" "$d/as25.snap"
	local i proc=""
	snap_parse "$d/as25.snap"
	for i in "${!NT_TYPE[@]}"; do
		[ "${NT_TYPE[$i]}" = $((0x4b4d0001)) ] && proc=${NT_DESC[$i]}
	done
	snap_put "$d/as25.snap" "$proc" 4 $((2 | 5 << 16))
	snap_seal "$d/as25.snap"
	srun "$d/r-as25" "$d" /dev/null -- "$KM" "$d/as25.snap"
	[ "$RC" = 1 ] && grep -q "corrupt snapshot: bad NT_KM_VMA note" "$d/r-as25/err" ||
		bad "lean.snap marked 2.5: exit status $(status_text "$RC"): $(head -c 300 "$d/r-as25/err")"
	touch -d '2001-01-01' "$d/prog"
	srun "$d/r-changed" "$d" /dev/null -- "$KM" "$d/lean.snap"
	[ "$RC" = 1 ] && grep -q "prog, mapped by the program at .* changed since the snapshot" "$d/r-changed/err" ||
		bad "a changed program file: exit status $(status_text "$RC"): $(head -c 300 "$d/r-changed/err")"
	srun "$d/r-whole" "$d" /dev/null -- "$KM" "$d/whole.snap"
	[ "$RC" = 1 ] || bad "whole.snap with a changed program file resumed (NT_KM_DYNLINKER checks it still)"
	# --self-contained goes across an execve (the km it re-executes gets it): a dynamically
	# linked program exec'd by a shell keeps its libraries' pages in the file (without the
	# option the same run leaves some to their files: the check below can fail)
	local dyn=$GUESTS/dyn opt
	if [ -x "$dyn/dyn_snap" ]; then
		for opt in lean self-contained; do
			local flags=()
			[ $opt = self-contained ] && flags=(--self-contained)
			(cd "$d" && LD_LIBRARY_PATH=$dyn timeout -k 5 "$TIMEOUT" "$KM" "${flags[@]}" \
				--snapshot="$d/exec-$opt.snap" "$BUSYBOX" sh -c "exec $dyn/dyn_snap $dyn/libdynplug.so" \
				>/dev/null 2>&1 </dev/null)
			"$KM" --inspect "$d/exec-$opt.snap" >"$d/exec-$opt" 2>&1 </dev/null ||
				bad "--inspect exec-$opt.snap: $(head -c 300 "$d/exec-$opt")"
		done
		grep -q 'the others from' "$d/exec-lean" || bad "an exec'd program's libraries are held whole without --self-contained"
		grep -q 'the others from' "$d/exec-self-contained" && bad "--self-contained was lost across the execve"
	else
		bad "no $dyn/dyn_snap (make guests)"
	fi
	end
}

# inc_layers FILE: INC_L, the offset of FILE's NT_KM_LAYERS descriptor (empty: none). Layout:
# id 0, parent_id 16, depth 32, nsegments 36, path_len 40, then 16-byte segment records (below,
# reserved, nwords) from 48.
inc_layers() {
	INC_L=""
	snap_parse "$1" || return
	local i
	for i in "${!NT_TYPE[@]}"; do
		[ "${NT_TYPE[$i]}" = $((0x4b4d000d)) ] && INC_L=${NT_DESC[$i]}
	done
}

# inc_case NAME EXPECT: resumes $d/NAME/s2 (edited by the caller, then sealed), whose parent is
# $d/NAME/s1: refused with one line holding EXPECT.
inc_case() {
	local c=$d/$1
	snap_seal "$c/s2"
	(cd "$c" && timeout -k 5 "$TIMEOUT" "$KM" s2 </dev/null >"$c/out" 2>"$c/err")
	local rc=$?
	[ "$rc" = 1 ] && [ "$(wc -l <"$c/err")" = 1 ] && grep -qF -- "$2" "$c/err" ||
		bad "$1: exit status $(status_text "$rc"), expected 1 and one line with '$2': $(head -c 300 "$c/err")"
}

# inc_copy NAME: $d/NAME with copies of s1 and s2 (sparse; s2's note where it was, INC_L).
inc_copy() {
	mkdir -p "$d/$1"
	cp --sparse=always "$d/s1" "$d/s2" "$d/$1/"
}

# A snapshot file is attacker input: bad layer notes and bad parents are each refused.
inc_hostile() {
	local test="incremental/hostile"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/incremental/hostile seg
	inc_chain "$d" gcc || return
	inc_stop
	inc_layers "$d/s2"
	[ -n "$INC_L" ] || { bad "s2 has no NT_KM_LAYERS note"; end; return; }
	inc_copy self
	dd if="$d/self/s2" of="$d/self/s2" bs=1 skip="$INC_L" seek=$((INC_L + 16)) count=16 conv=notrunc status=none
	inc_case self "bad NT_KM_LAYERS note"
	inc_copy depth
	snap_put "$d/depth/s2" $((INC_L + 32)) 4 3
	inc_case depth "its parent s1 has depth 0, it 3"
	inc_copy deep
	snap_put "$d/deep/s2" $((INC_L + 32)) 4 100000
	inc_case deep "bad NT_KM_LAYERS note"
	# the first segment record with a bitmap, one word longer, then one shorter
	for seg in $(seq 0 $(($(snap_get "$d/s2" $((INC_L + 36)) 4) - 1))); do
		[ "$(snap_get "$d/s2" $((INC_L + 48 + 16 * seg + 8)) 8)" != 0 ] && break
	done
	inc_copy longer
	snap_put "$d/longer/s2" $((INC_L + 48 + 16 * seg + 8)) 8 $(($(snap_get "$d/s2" $((INC_L + 48 + 16 * seg + 8)) 8) + 1))
	inc_case longer "bad NT_KM_LAYERS segment record or bitmap"
	inc_copy shorter
	snap_put "$d/shorter/s2" $((INC_L + 48 + 16 * seg + 8)) 8 $(($(snap_get "$d/s2" $((INC_L + 48 + 16 * seg + 8)) 8) - 1))
	inc_case shorter "bad NT_KM_LAYERS segment record or bitmap"
	inc_copy below
	snap_put "$d/below/s2" $((INC_L + 48 + 16 * seg)) 4 7
	inc_case below "bad NT_KM_LAYERS segment record or bitmap"
	# a loop: s2 names s3 (as "s1") and s3 names s2
	inc_copy loop
	cp --sparse=always "$d/s3" "$d/loop/s1"
	local l2=$INC_L l3
	inc_layers "$d/s3"
	l3=$INC_L
	INC_L=$l2
	dd if="$d/s3" of="$d/loop/s2" bs=1 skip="$l3" seek=$((INC_L + 16)) count=16 conv=notrunc status=none
	inc_case loop "its parent s1 has depth 2, it 1"
	inc_copy fifo
	rm "$d/fifo/s1"
	mkfifo "$d/fifo/s1"
	inc_case fifo "s1: not a regular file"
	inc_copy dir
	rm "$d/dir/s1"
	mkdir "$d/dir/s1"
	inc_case dir "s1: not a regular file"
	inc_device_below
	inc_short_below
	end
}

# inc_rename_below FILE NAME TARGET: in FILE (a copy of s1), the program's mappings (NT_KM_VMA paths)
# renamed NAME (no longer than the program's path) with TARGET's size and time in NT_KM_DYNLINKER.
inc_rename_below() {
	local f=$1 name=$2 target=$3 i o plen path prog=$GUESTS/gcc/incr_mem ns size
	snap_parse "$f"
	ns=$(date -r "$target" +%s%N)
	size=$(stat -L -c %s "$target")
	for i in "${!NT_TYPE[@]}"; do
		o=${NT_DESC[$i]}
		if [ "${NT_TYPE[$i]}" = $((0x4b4d0005)) ]; then
			plen=$(snap_get "$f" $((o + 56)) 4)
			[ "$plen" -gt 0 ] || continue
			path=$(dd if="$f" bs=1 skip=$((o + 64)) count="$plen" status=none | tr -d '\0')
			[ "$path" = "$prog" ] || continue
			dd if=/dev/zero of="$f" bs=1 seek=$((o + 64)) count="$plen" conv=notrunc status=none
			printf %s "$name" | dd of="$f" bs=1 seek=$((o + 64)) conv=notrunc status=none
		elif [ "${NT_TYPE[$i]}" = $((0x4b4d0004)) ]; then
			local n k
			n=$(snap_get "$f" $((o + 56)) 4)
			for ((k = 0; k < n; k++)); do
				snap_put "$f" $((o + 64 + 48 * k + 24)) 8 "$size"
				snap_put "$f" $((o + 64 + 48 * k + 32)) 8 $((ns / 1000000000))
				snap_put "$f" $((o + 64 + 48 * k + 40)) 8 $((ns % 1000000000))
			done
		fi
	done
	snap_seal "$f"
}

# The file below a mapping (KM_BELOW_FILE) is named by the snapshot: one that names a device,
# with that device's identity recorded, is refused before it is opened (by the reader, now that a
# device's size of 0 leaves no page to it; else by the resume, which opens regular files only).
inc_device_below() {
	mkdir -p "$d/dev"
	cp --sparse=always "$d/s1" "$d/dev/s1"
	inc_rename_below "$d/dev/s1" /dev/null /dev/null
	(cd "$d/dev" && timeout -k 5 "$TIMEOUT" "$KM" s1 </dev/null >"$d/dev/out" 2>"$d/dev/err")
	grep -Eq "/dev/null, mapped by the program at 0x[0-9a-f]*, is not a regular file|bad NT_KM_LAYERS segment" \
		"$d/dev/err" ||
		bad "a device below a mapping: $(head -c 300 "$d/dev/err")"
}

# ... one shorter than the pages left to it (its size recorded as it is): those pages would be
# mapped past the file's end, where any read (the program's, or km's for one of its syscalls) is
# a SIGBUS. Refused by the reader: a page left to a file lies wholly inside it.
inc_short_below() {
	local t rc
	mkdir -p "$d/short"
	cp --sparse=always "$d/s1" "$d/short/s1"
	t=$(mktemp -d /tmp/kmsb.XXXXXX) # a short absolute name, to fit in the program's path's place
	head -c 4096 "$GUESTS/gcc/incr_mem" >"$t/p"
	inc_rename_below "$d/short/s1" "$t/p" "$t/p"
	(cd "$d/short" && timeout -k 5 "$TIMEOUT" "$KM" s1 </dev/null >"$d/short/out" 2>"$d/short/err")
	rc=$?
	rm -rf "$t"
	[ "$rc" = 1 ] && [ "$(wc -l <"$d/short/err")" = 1 ] &&
		grep -qF "bad NT_KM_LAYERS segment record or bitmap" "$d/short/err" ||
		bad "a file below shorter than its pages: exit status $(status_text "$rc"): $(head -c 300 "$d/short/err")"
}

# km-shim: a pre-dump, a checkpoint on it (--parent-path relative to the new image), one more
# (absolute), then a restore of the last: the chain is found from km-checkpoint.json and passed
# to km as --snapshot-parent-fd; the count goes on from where the last checkpoint left it.
incrshim_test_chain() {
	local d=$SHIM_WORK/chain b=$SHIM_WORK/chain/bundle last first
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" ic
	wait_count "$d/r/out" 3 || bad "no count before the pre-dump"
	shim "$d/c1" checkpoint --image-path "$d/img1" --pre-dump ic
	expect_ok "$d/c1" "checkpoint --pre-dump"
	expect_status ic running
	wait_count "$d/r/out" 6 || bad "no count after the pre-dump"
	shim "$d/c2" checkpoint --image-path "$d/img2" --parent-path ../img1 --leave-running ic
	expect_ok "$d/c2" "checkpoint --parent-path ../img1"
	wait_count "$d/r/out" 9 || bad "no count after the second checkpoint"
	shim "$d/c3" checkpoint --image-path "$d/img3" --parent-path "$d/img2" ic
	expect_ok "$d/c3" "checkpoint --parent-path (absolute)"
	grep -q '"parent": "../img2/km.snap"' "$d/img3/km-checkpoint.json" ||
		bad "km-checkpoint.json does not name ../img2/km.snap: $(grep parent "$d/img3/km-checkpoint.json")"
	wait_status ic stopped || bad "still $(shim_status ic) after the last checkpoint"
	last=$(last_count "$d/r/out")
	"$KM" --inspect "$d/img3/km.snap" >"$d/inspect" 2>&1 </dev/null || bad "--inspect img3: $(head -c 300 "$d/inspect")"
	grep -q '^chain: *3 files' "$d/inspect" || bad "img3 is not a chain of 3: $(grep -m1 '^chain' "$d/inspect")"
	shim "$d/d" delete ic
	shim "$d/rs" restore --detach --image-path "$d/img3" --bundle "$b" ic2
	expect_ok "$d/rs" "restore of the third image"
	wait_count "$d/rs/out" $((last + 3)) || bad "no count after restore"
	first=$(first_count "$d/rs/out")
	[ "$first" = $((last + 1)) ] || bad "restored count starts at $first, expected $((last + 1))"
	# the restored container checkpointed on the image it came from: a fourth member
	shim "$d/c4" checkpoint --image-path "$d/img4" --parent-path ../img3 ic2
	expect_ok "$d/c4" "checkpoint of the restored container on its own image"
	wait_status ic2 stopped || bad "ic2 still $(shim_status ic2) after its checkpoint"
	last=$(last_count "$d/rs/out")
	"$KM" --inspect "$d/img4/km.snap" 2>&1 </dev/null | grep -q '^chain: *4 files' ||
		bad "img4 is not a chain of 4: $("$KM" --inspect "$d/img4/km.snap" 2>&1 </dev/null | grep -m1 '^chain\|^km:')"
	shim "$d/d2" delete ic2
	shim "$d/rs4" restore --detach --image-path "$d/img4" --bundle "$b" ic4
	expect_ok "$d/rs4" "restore of the fourth image"
	wait_count "$d/rs4/out" $((last + 3)) || bad "no count after the fourth restore"
	first=$(first_count "$d/rs4/out")
	[ "$first" = $((last + 1)) ] || bad "the fourth image's count starts at $first, expected $((last + 1))"
	# into the image it names as parent: refused (the child would name itself), the image kept
	shim "$d/c5" checkpoint --image-path "$d/img4" --parent-path . --leave-running ic4
	expect_error "$d/c5" "names the image directory"
	[ -f "$d/img4/km-checkpoint.json" ] && [ -f "$d/img4/inventory.img" ] ||
		bad "a refused checkpoint into its own parent image removed that image's description"
	"$KM" --inspect "$d/img4/km.snap" 2>&1 </dev/null | grep -q '^chain: *4 files' ||
		bad "img4 after a checkpoint into it on itself: $("$KM" --inspect "$d/img4/km.snap" 2>&1 </dev/null | grep -m1 '^chain\|^km:')"
	shim "$d/f4" delete --force ic4
	# without its parent image the restore is refused, naming it
	mv "$d/img2" "$d/img2.away"
	shim "$d/rs2" restore --detach --image-path "$d/img3" --bundle "$b" ic3
	expect_error "$d/rs2" "img2/km.snap"
	mv "$d/img2.away" "$d/img2"
	"$KM_SHIM" --root "$SHIM_ROOT" delete --force ic3 >/dev/null 2>&1
	# km-shim (root) opens the chain and hands it into the container: a parent reached through a
	# symbolic link, or one not an image's km.snap, is refused (the link is the image's own
	# km.snap moved aside: followed, the restore would succeed)
	mv "$d/img2/km.snap" "$d/img2.snap"
	ln -s "$d/img2.snap" "$d/img2/km.snap"
	shim "$d/rs5" restore --detach --image-path "$d/img3" --bundle "$b" ic5
	expect_error "$d/rs5" "img2/km.snap is a symbolic link"
	"$KM_SHIM" --root "$SHIM_ROOT" delete --force ic5 >/dev/null 2>&1
	rm "$d/img2/km.snap"
	cp --sparse=always "$d/img2.snap" "$d/img2/other.snap"
	mv "$d/img2.snap" "$d/img2/km.snap"
	sed -i 's|"../img2/km.snap"|"../img2/other.snap"|' "$d/img3/km-checkpoint.json"
	shim "$d/rs6" restore --detach --image-path "$d/img3" --bundle "$b" ic6
	expect_error "$d/rs6" "img2/other.snap is not an image's km.snap"
	"$KM_SHIM" --root "$SHIM_ROOT" delete --force ic6 >/dev/null 2>&1
	root_holds
}

# inc_lease_one DIR MODE HELD [OFFSET LEN]: resumes DIR/s2 (its pages partly s1's), changes s1
# from outside with snap-scribble MODE once the program runs (the writer waits for km to detach
# the memory: km_snapshot_lease.h), then checks the program's memory is still step 2's. HELD=1:
# s1 is open for writing elsewhere while km resumes (no lease can be had on it: its pages are
# copied at resume).
inc_lease_one() {
	local d=$1 mode=$2 held=$3 o=$1/lease-$2-$3 line got out hold
	shift 3
	rm -rf "$o"
	mkdir -p "$o"
	cp "$d/s1" "$o/s1"
	cp "$d/s2" "$o/s2"
	mkfifo "$o/in"
	[ "$held" = 1 ] && exec {hold}<>"$o/s1"
	(cd "$o" && exec timeout -k 5 "$TIMEOUT" "$KM" --ready-fd=3 s2 <"$o/in" >"$o/out" 2>"$o/err" 3>"$o/ready") &
	local pid=$!
	exec {INC_LEASE_FD}>"$o/in"
	snap_wait_line "$o/ready" ready 10 || bad "the resumed s2 did not get ready: $(head -c 300 "$o/err")"
	[ "$held" = 1 ] && exec {hold}>&-
	out=$("$INC_SCRIBBLE" "$mode" "$o/s1" "$@" 2>&1) || bad "snap-scribble $mode s1: $out"
	note "    snap-scribble $mode s1: $out"
	echo check >&"$INC_LEASE_FD"
	exec {INC_LEASE_FD}>&-
	wait "$pid" || bad "the resumed s2 ended with status $? after s1 was changed ($mode): $(head -c 300 "$o/err")"
	got=$(sed -n 's/^sum check //p' "$o/out")
	line=$(sed -n 's/^sum 2 //p' "$d/sums")
	[ -n "$got" ] && [ "$got" = "$line" ] ||
		bad "s1 changed ($mode) under the resumed s2: hash '$got', step 2 had '$line': $(head -c 300 "$o/err")"
}

# A parent of the resumed chain is leased as the top file is: rewritten in place, the running
# program keeps its memory; truncated, it gets no SIGBUS; not leasable at resume, it is copied.
inc_lease() {
	local test="incremental/lease"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/incremental/lease sz
	inc_chain "$d" gcc || return
	inc_stop
	sz=$(stat -c %s "$d/s1")
	inc_lease_one "$d" pwrite 0 65536 $((sz - 65536))
	inc_lease_one "$d" truncate 0
	inc_lease_one "$d" pwrite 1 65536 $((sz - 65536))
	end
}

run_incremental() {
	local flavour
	for flavour in gcc musl; do
		inc_depth5 "$flavour"
	done
	inc_refused
	inc_depth_bound
	inc_text
	inc_hostile
	inc_lease
	local SHIM_SUITE_NEEDS=()
	shim_suite_ready incrshim "make shim" chain && shim_suite_run incrshim chain
}
