# shellcheck shell=bash
# Files across a snapshot (issue 9, kinds file, dir, device, datafile; km/fd/km_fd_file.c,
# km_fd_datafile.c, km_fd_locks.c). tests/guests/fd_files.c snapshots itself (going on) holding
# each of them, checks them in the original and, resumed with `km SNAPSHOT`, in the copy; locks
# are probed from a native process meanwhile (tests/tools/km-lockprobe). Then: a file changed
# since the snapshot fails the resume with one line naming fd, kind and reason, a log that
# shrank too; --restore-missing=closed leaves just that file's fds closed; a deleted file larger
# than --snapshot-file-max fails the snapshot; a record edited to name /proc/self/mem or one of
# km's own fds is refused (no km memory for the guest). Sourced by run.sh after snapshot.sh
# (uses snap_start, snap_wait_line, snap_show, snap_seal); defines run_fd_files.

FDF_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $FDF_TOOLS in /*) ;; *) FDF_TOOLS=$PWD/$FDF_TOOLS ;; esac

# The command that runs km ARGS with no fd above 2 (whatever the harness leaked would be saved
# in the snapshot as what it is, and fail the resume), into FDF_CMD.
fdf_cmd() {
	FDF_CMD=(bash -c 'for fd in $(ls /proc/$BASHPID/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done 2>/dev/null; exec "$@"' fdf "$KM" "$@")
}

# fdf_run DIR ARGS...: km ARGS in the foreground, stdin /dev/null (srun: RC, DIR/out, DIR/err).
fdf_run() {
	local d=$1
	shift
	fdf_cmd "$@"
	srun "$d" "$FDF_D" /dev/null -- "${FDF_CMD[@]}"
}

# fdf_snapshot DIR FLAVOUR [KM-OPTIONS...]: the guest's original run, snapshotting to DIR/fd.snap.
fdf_snapshot() {
	local d=$1 flavour=$2
	shift 2
	rm -rf "$d" && mkdir -p "$d"
	FDF_D=$d
	fdf_run "$d/orig" "$@" "$GUESTS/$flavour/fd_files" "$d" snap
}

# fdf_probe WANT FILE TYPE MODE [START LEN]: km-lockprobe's verdict must be WANT (free|held).
fdf_probe() {
	local want=$1 out
	shift
	out=$("$FDF_TOOLS/km-lockprobe" "$@" 2>&1)
	[[ $out == "$want"* ]] || bad "lock probe $*: '$out', expected $want"
}

# fdf_one_line DIR REGEX: km failed (1) with exactly one stderr line matching REGEX.
fdf_one_line() {
	local d=$1 re=$2
	[ "$RC" = 1 ] || bad "exit status $(status_text "$RC"), expected 1"
	[ "$(wc -l <"$d/err")" = 1 ] || bad "stderr has $(wc -l <"$d/err") lines, expected one"
	grep -qE -- "$re" "$d/err" || bad "stderr does not match '$re': $(head -c 400 "$d/err")"
}

fdf_resume_checks() {
	local d=$1 flavour=$2
	fdf_snapshot "$d" "$flavour"
	[ "$RC" = 0 ] || bad "original run: exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$d/orig/out" && bad "original: $(grep -m3 '^FAIL' "$d/orig/out" | tr '\n' ' ')"
	grep -qx ORIGINAL "$d/orig/out" || bad "the original did not go on after the snapshot"
	[ -s "$d/orig/err" ] && bad "original: stderr: $(head -c 300 "$d/orig/err")"
	[ -f "$d/fd.snap" ] || { bad "no snapshot $d/fd.snap"; return 1; }

	srun "$d/inspect" "$d" /dev/null -- "$KM" --inspect "$d/fd.snap"
	local want
	for want in "fd 3 file rw pos=3 $d/a size=10" "fd 4 file rw pos=3 same-as=3 $d/a" \
		"fd 6 file r,nonblock,cloexec $d/a" "fd 7 file w,append pos=6 $d/log size=6" "fd 8 dir r pos=" \
		"fd 9 device w /dev/null char 1:3" "fd 10 device r /dev/zero char 1:5" \
		"fd 11 datafile rw pos=5 $d/del (deleted) 1048580 bytes mode=0640" "locks=posix:w@0-3" \
		"fd 13 datafile rw pos=2 O_TMPFILE in $d 12 bytes" "memfd:fdtest 10 bytes mode=0777 sealed=shrink,grow" \
		"memfd:unsealable 1 bytes mode=0777 sealed=seal" "$d/locked size=0 locks=flock:w" \
		"$d/locked2 size=56 locks=posix:w@10-19,ofd:r@50-"; do
		grep -qF -- "$want" "$d/inspect/out" || bad "--inspect does not list '$want'"
	done

	# the copy: checks, READY, waits for a line while its locks are probed from outside
	local fifo=$d/stdin
	mkfifo "$fifo"
	fdf_cmd "$d/fd.snap"
	snap_start "$d/resumed" "$d" "$fifo" -- "${FDF_CMD[@]}"
	local pid=$BG_PID
	if snap_wait_line "$d/resumed/out" READY "$TIMEOUT"; then
		fdf_probe held "$d/locked" flock r
		fdf_probe held "$d/locked2" posix w 10 10
		fdf_probe held "$d/locked2" ofd w 50 1
		fdf_probe free "$d/locked2" posix w 0 10
		fdf_probe free "$d/locked2" posix r 50 1
	else
		bad "the resumed copy never said READY"
	fi
	echo go >"$fifo"
	wait "$pid"
	RC=$?
	[ "$RC" = 0 ] || bad "resumed copy: exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$d/resumed/out" && bad "resumed: $(grep -m5 '^FAIL' "$d/resumed/out" | tr '\n' ' ')"
	grep -qx RESUMED "$d/resumed/out" && grep -q '^PASSED all' "$d/resumed/out" || bad "the copy did not finish its checks"
	[ -s "$d/resumed/err" ] && bad "resumed: stderr: $(head -c 300 "$d/resumed/err")"
	ls -A "$d" | grep -q '^\.km-restore' && bad "a re-created deleted file kept its name: $(ls -A "$d")"
	return 0
}

run_fd_files() {
	local flavour test d
	for flavour in gcc musl; do
		test="fdfiles/$flavour/resume"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/fdfiles/$flavour
		fdf_resume_checks "$d" "$flavour"
		snap_verbose && snap_show "$d/orig" "$d/inspect" "$d/resumed"
		end

		# the copy appended to the log (growth is fine); one that shrank is not
		test="fdfiles/$flavour/log-shrunk"
		if want "$test" && [ -f "$d/fd.snap" ]; then
			begin "$test"
			: >"$d/log"
			FDF_D=$d
			fdf_run "$d/shrunk" "$d/fd.snap"
			fdf_one_line "$d/shrunk" "fd 7 \(file\) cannot be restored: $d/log changed since the snapshot \(size 0, was 6\)"
			snap_verbose && snap_show "$d/shrunk"
			end
		fi

		test="fdfiles/$flavour/changed"
		if want "$test" && [ -f "$d/fd.snap" ]; then
			begin "$test"
			printf x >>"$d/a"
			fdf_run "$d/changed" "$d/fd.snap"
			fdf_one_line "$d/changed" "fd 3 \(file\) cannot be restored: $d/a changed since the snapshot \(size 11, was 10\)"
			snap_verbose && snap_show "$d/changed"
			end
		fi

		# --restore-missing=closed: a's fds are closed, everything else is there
		test="fdfiles/$flavour/missing-closed"
		if want "$test"; then
			begin "$test"
			d=$WORK/fdfiles/$flavour-closed
			fdf_snapshot "$d" "$flavour"
			printf x >>"$d/a"
			touch "$d/expect-closed"
			fdf_run "$d/closed" --restore-missing=closed "$d/fd.snap"
			[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
			grep -q '^FAIL' "$d/closed/out" && bad "$(grep -m5 '^FAIL' "$d/closed/out" | tr '\n' ' ')"
			grep -q '^PASSED all' "$d/closed/out" || bad "the copy did not finish its checks"
			[ "$(grep -c 'left closed (--restore-missing=closed)' "$d/closed/err")" = 3 ] ||
				bad "expected 3 'left closed' lines (fds 3, 5, 6), got: $(head -c 600 "$d/closed/err")"
			grep -q "fd 5 (file) left closed (--restore-missing=closed): $d/a changed" "$d/closed/err" ||
				bad "no warning naming fd 5"
			snap_verbose && snap_show "$d/closed"
			end
		fi
	done

	test="fdfiles/file-max"
	if want "$test" && km_only "$test"; then
		begin "$test"
		d=$WORK/fdfiles/max
		fdf_snapshot "$d" gcc --snapshot-file-max=1K
		[ "$RC" = 4 ] || bad "exit status $(status_text "$RC"), expected 4 (the guest saw its snapshot fail)"
		grep -q '^snapshot failed' "$d/orig/out" || bad "the guest did not see the snapshot fail"
		grep -qE "km: snapshot failed: .*fd 11 \(datafile\): $d/del \(deleted\) holds [0-9]+ bytes, more than --snapshot-file-max allows \(1024\)" "$d/orig/err" ||
			bad "km's line does not name the file, its size and --snapshot-file-max: $(head -c 400 "$d/orig/err")"
		[ -e "$d/fd.snap" ] && bad "a snapshot was written"
		snap_verbose && snap_show "$d/orig"
		end
	fi

	# A snapshot is attacker input: its record of DIR/a edited to name km's memory or km's fds
	# (same length: extra slashes) must not open them. Notes precede the memory, so the first
	# occurrence of the path is the record's.
	local target
	for target in mem kmfd; do
		test="fdfiles/hostile-path/$target"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/fdfiles/hostile-$target
		fdf_snapshot "$d" gcc
		local from="$d/a" to off offs pad
		case $target in
		mem) to=/proc/self/mem; pad=$((${#from} - ${#to})); to="/proc/self/$(printf '/%.0s' $(seq 1 "$pad"))mem" ;;
		kmfd) to=/proc/self/fd/1000; pad=$((${#from} - ${#to})); to="/proc/self/fd/$(printf '/%.0s' $(seq 1 "$pad"))1000" ;;
		esac
		# the three records of DIR/a (fds 3, 5, 6)
		offs=$(grep -obUaF -- "$from"$'\x00' "$d/fd.snap" 2>/dev/null | head -3 | cut -d: -f1)
		if [ "$(wc -w <<<"$offs")" != 3 ] || [ "${#to}" != "${#from}" ]; then
			bad "cannot find '$from' three times in the snapshot (or the directory name is too short)"
		else
			for off in $offs; do
				printf '%s' "$to" | dd of="$d/fd.snap" bs=1 seek="$off" conv=notrunc status=none
			done
			snap_seal "$d/fd.snap"
			fdf_run "$d/bad" "$d/fd.snap"
			fdf_one_line "$d/bad" "fd 3 \(file\) cannot be restored: /proc/self/.*: (Permission denied|No such file or directory)"
			touch "$d/expect-closed"
			fdf_run "$d/closed" --restore-missing=closed "$d/fd.snap"
			[ "$RC" = 0 ] || bad "--restore-missing=closed: exit status $(status_text "$RC"), expected 0"
			grep -q "ok a: left closed" "$d/closed/out" || bad "the guest's fd 3 is not closed"
			grep -q '^FAIL' "$d/closed/out" && bad "$(grep -m5 '^FAIL' "$d/closed/out" | tr '\n' ' ')"
		fi
		snap_verbose && snap_show "$d/orig" "$d/bad" "$d/closed"
		end
	done
}
