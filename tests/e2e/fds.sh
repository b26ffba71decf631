# shellcheck shell=bash
# Open files and sockets across snapshots (issue 9). Sourced by run.sh after snapshot.sh (it uses
# run.sh's helpers and snapshot.sh's srun, snap_show, snap_parse, snap_note_index, snap_get,
# snap_put, snap_seal); defines run_fds. Every test needs the real km.
#
#   fds/zoo/FLAVOUR/{stop,keep}   tests/guests/fd_zoo.c snapshotted (km exits / goes on) and
#                                 resumed with `km SNAP`: the original (keep) and the copy find
#                                 every fd as it was ("ZOO OK", no FAIL line, nothing on stderr)
#   fds/inspect/FLAVOUR           `km --inspect` of the zoo's snapshot lists every fd with its kind
#   fds/unix-path-reused/FLAVOUR  the zoo's unix listener is rebound over the socket file its
#                                 original left at DIR/zoo.sock
#   fds/missing/WHAT              the zoo's fd 100 (DIR/victim.txt) deleted, grown, or with a new
#                                 mtime before the resume: refused before the program runs with one
#                                 line naming fd 100, its kind and the reason; with
#                                 --restore-missing=closed it resumes and only fd 100 is closed
#   fds/stdio-inherited/FLAVOUR   taken with pipes on 0-2, resumed with a file and /dev/null: the
#                                 copy writes to the resuming km's stdout; --inspect says inherited
#   fds/many/FLAVOUR              tests/guests/fd_many.c: all 1000 guest fd numbers in use
#   fds/memfd-map/FLAVOUR/{open,closed}  tests/guests/snap_memfd_map.c: shared mappings of a memfd
#                                 and a deleted file, their fds open (one file again after the
#                                 resume) or closed (the mappings keep their bytes)
#   fds/unix-longpath/FLAVOUR     tests/guests/snap_unix_longpath.c: a unix listener whose path
#                                 fills sun_path (108 bytes, no NUL) is bound and listening again
#   fds/verify-data               --inspect --verify checks the open files' saved data (blobs after
#                                 the memory): a byte changed there fails it, naming the data
#   fds/hostile/note-tamper       --inspect --verify passes on a zoo snapshot; a byte changed in the
#                                 NT_KM_FILES note is refused (checksum); changed and resealed
#                                 (tests/tools/km-snapseal) at many offsets, km never crashes and
#                                 either refuses with one `km:` line or resumes
#
# The kinds --inspect may name (docs/snapshot-format.md has the lead's exact format; lines are
# matched loosely as "fd N KIND"): file dir device datafile pipe unix inet eventfd epoll timerfd
# signalfd inotify inherited.

FDS_FLAVOURS=(gcc musl)
FDS_COREDUMP_H=$ROOT/km/snapshot/km_coredump.h

# The zoo's fds by number (fd_zoo.c opens them in this order after stdio) and the kinds --inspect
# may give each (a regex). A deleted file, an O_TMPFILE file and a memfd carry their data.
FDS_ZOO_KINDS=(
	"0 inherited" "1 inherited" "2 inherited"
	"3 file" "4 file" "5 file" "6 file" "100 file" "7 file" "8 file" "200 file" "300 file"
	"9 file" "10 file" "11 file" "12 dir" "13 device" "14 device"
	"15 datafile" "16 datafile" "17 datafile"
	"18 pipe" "19 pipe" "20 pipe"
	"21 unix" "22 unix" "23 unix" "24 unix" "25 unix" "26 unix"
	"27 inet" "28 inet" "29 inet" "30 inet"
	"31 eventfd" "32 eventfd" "33 timerfd" "34 signalfd" "35 inotify" "36 epoll" "37 epoll"
)

# fds_dir NAME: a fresh directory for one test (FD_D), with cwd/ and zoo/ (the zoo's DIR).
fds_dir() {
	FD_D=$WORK/fds/$1
	rm -rf "$FD_D"
	mkdir -p "$FD_D/cwd" "$FD_D/zoo"
}

# fds_take FLAVOUR GUEST MODE [KM_OPTS...]: km --snapshot=$FD_D/s.snap GUEST $FD_D/zoo MODE
# (fd_many gets N=1000 before MODE) in $FD_D/take; true if the file is there (a keep-mode run
# whose own checks failed still left a snapshot to resume: its exit status is the caller's to judge).
fds_take() {
	local flavour=$1 guest=$2 mode=$3
	shift 3
	local -a args=("$FD_D/zoo")
	[ "$guest" = fd_many ] && args+=(1000)
	srun "$FD_D/take" "$FD_D/cwd" /dev/null -- "$KM" "$@" --snapshot="$FD_D/s.snap" "$GUESTS/$flavour/$guest" "${args[@]}" "$mode"
	if [ ! -f "$FD_D/s.snap" ]; then
		bad "snapshot of $guest ($mode): exit status $(status_text "$RC"), no file: $(head -c 300 "$FD_D/take/err" | tr '\n' ' ')$(grep -m3 -e FAIL -e 'cannot' "$FD_D/take/out" | tr '\n' ' ')"
		return 1
	fi
	[ "$mode" = keep ] || [ "$RC" = 0 ] || bad "snapshot of $guest ($mode): exit status $(status_text "$RC")"
	return 0
}

# fds_ok DIR WHAT OKLINE: the run exited 0 with OKLINE, no FAIL line and nothing on stderr.
fds_ok() {
	local dir=$1 what=$2 okline=$3
	[ "$RC" = 0 ] || bad "$what: exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$dir/out" && bad "$what: $(grep -c '^FAIL' "$dir/out") failed checks, first: $(grep -m5 '^FAIL' "$dir/out" | cut -c1-200 | tr '\n' '|')"
	grep -q "^$okline" "$dir/out" || bad "$what: no '$okline' line"
	[ -s "$dir/err" ] && bad "$what: stderr is not empty: $(head -c 300 "$dir/err" | tr '\n' ' ')"
}

# --- the zoo, both modes --------------------------------------------------------------------------

fds_zoo() {
	local flavour mode test
	for flavour in "${FDS_FLAVOURS[@]}"; do
		for mode in stop keep; do
			test="fds/zoo/$flavour/$mode"
			want "$test" && km_only "$test" || continue
			begin "$test"
			fds_dir "zoo-$flavour-$mode"
			if fds_take "$flavour" fd_zoo "$mode"; then
				if [ "$mode" = keep ]; then
					fds_ok "$FD_D/take" "the original after its snapshot" "ZOO OK"
					grep -qx 'zoo: original' "$FD_D/take/out" || bad "the original did not say 'zoo: original'"
				else
					[ "$(cat "$FD_D/take/out")" = "zoo: built" ] || bad "the run before the snapshot printed more than 'zoo: built'"
				fi
				srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
				fds_ok "$FD_D/resume" "the resumed copy" "ZOO OK"
				grep -qx 'zoo: resumed' "$FD_D/resume/out" || bad "the copy did not say 'zoo: resumed'"
			fi
			snap_verbose && snap_show "$FD_D/take" "$FD_D/resume"
			end
		done
	done
}

# --- --inspect lists every fd -----------------------------------------------------------------------

fds_inspect() {
	local flavour test e n kind line
	for flavour in "${FDS_FLAVOURS[@]}"; do
		test="fds/inspect/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		fds_dir "inspect-$flavour"
		if fds_take "$flavour" fd_zoo stop; then
			srun "$FD_D/inspect" "$FD_D/cwd" /dev/null -- "$KM" --inspect "$FD_D/s.snap"
			[ "$RC" = 0 ] || bad "--inspect: exit status $(status_text "$RC"): $(head -c 300 "$FD_D/inspect/err")"
			for e in "${FDS_ZOO_KINDS[@]}"; do
				n=${e%% *} kind=${e#* }
				line=$(grep -E "^ +fd $n([^0-9]|$)" "$FD_D/inspect/out" | head -n1)
				if [ -z "$line" ]; then
					bad "--inspect does not list fd $n (a $kind)"
				elif ! grep -qE "fd $n:? +$kind([^a-z]|$)" <<<"$line"; then
					bad "--inspect lists fd $n, but not as '$kind': $line"
				fi
			done
			n=$(grep -cE '^ +fd [0-9]+:? +[a-z]' "$FD_D/inspect/out")
			[ "$n" = ${#FDS_ZOO_KINDS[@]} ] || bad "--inspect lists $n fds, the zoo holds ${#FDS_ZOO_KINDS[@]} (stdio included)"
		fi
		snap_verbose && snap_show "$FD_D/take" "$FD_D/inspect"
		end
	done
}

# --- a stale socket file where the unix listener was bound ----------------------------------------

fds_unix_path() {
	local flavour test
	for flavour in "${FDS_FLAVOURS[@]}"; do
		test="fds/unix-path-reused/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		fds_dir "unixpath-$flavour"
		if fds_take "$flavour" fd_zoo stop; then
			[ -S "$FD_D/zoo/zoo.sock" ] || bad "no socket file left at DIR/zoo.sock after the snapshot (the test's premise)"
			srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
			[ "$RC" = 0 ] || [ "$RC" = 1 ] || bad "resume: exit status $(status_text "$RC")"
			grep -qx 'zoo: resumed' "$FD_D/resume/out" || bad "the copy did not run: $(head -c 300 "$FD_D/resume/err")"
			grep -E '^FAIL fd 2[56] ' "$FD_D/resume/out" >"$FD_D/unix.fail"
			[ -s "$FD_D/unix.fail" ] && bad "the unix listener or its pending client: $(head -n3 "$FD_D/unix.fail" | tr '\n' '|')"
		fi
		snap_verbose && snap_show "$FD_D/take" "$FD_D/resume"
		end
	done
}

# --- a file that vanished or changed ----------------------------------------------------------------

# fds_refused DIR WHAT REASON-REGEX: km refused the resume before the program ran: status not 0,
# nothing on stdout, one line on stderr naming fd 100, its kind and matching REASON-REGEX.
fds_refused() {
	local dir=$1 what=$2 reason=$3 nl
	[ "$RC" != 0 ] || bad "$what: the resume did not fail (exit status 0)"
	[ "$RC" -ge 128 ] && bad "$what: km died of a signal ($(status_text "$RC"))"
	[ -s "$dir/out" ] && bad "$what: the program ran: $(head -n3 "$dir/out" | tr '\n' '|')"
	nl=$(wc -l <"$dir/err")
	[ "$nl" = 1 ] || bad "$what: stderr has $nl lines, expected one"
	grep -qE '(^|[^0-9])fd 100([^0-9]|$)' "$dir/err" || bad "$what: stderr does not name fd 100: $(head -c 300 "$dir/err")"
	grep -qw file "$dir/err" || bad "$what: stderr does not name the kind (file): $(head -c 300 "$dir/err")"
	grep -qiE "$reason" "$dir/err" || bad "$what: stderr does not give the reason (/$reason/): $(head -c 300 "$dir/err")"
}

fds_missing() {
	local what test reason
	for what in deleted grown mtime; do
		test="fds/missing/$what"
		want "$test" && km_only "$test" || continue
		begin "$test"
		fds_dir "missing-$what"
		if fds_take musl fd_zoo stop; then
			case $what in
			deleted)
				rm "$FD_D/zoo/victim.txt"
				reason='no such file|not found|missing|deleted|vanished|gone|ENOENT|exist'
				;;
			grown)
				printf 'x' >>"$FD_D/zoo/victim.txt"
				reason='size|changed'
				;;
			mtime)
				touch -m -d '2001-02-03 04:05:06' "$FD_D/zoo/victim.txt"
				reason='mtime|modif|changed'
				;;
			esac
			srun "$FD_D/default" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
			fds_refused "$FD_D/default" "resume" "$reason"
			srun "$FD_D/error" "$FD_D/cwd" /dev/null -- "$KM" --restore-missing=error "$FD_D/s.snap"
			fds_refused "$FD_D/error" "resume with --restore-missing=error" "$reason"
			: >"$FD_D/zoo/victim.expect-closed"
			srun "$FD_D/closed" "$FD_D/cwd" /dev/null -- "$KM" --restore-missing=closed "$FD_D/s.snap"
			# one warning line, naming the fd it left closed, is the policy's whole output on stderr
			grep -qE '^km: .*fd 100 \(file\) left closed \(--restore-missing=closed\): ' "$FD_D/closed/err" &&
				[ "$(wc -l <"$FD_D/closed/err")" = 1 ] && : >"$FD_D/closed/err" ||
				bad "resume with --restore-missing=closed: not one warning line naming fd 100: $(head -c 300 "$FD_D/closed/err")"
			fds_ok "$FD_D/closed" "resume with --restore-missing=closed" "ZOO OK"
			grep -qx 'zoo: resumed (fd 100 must be closed)' "$FD_D/closed/out" ||
				bad "the copy resumed with --restore-missing=closed did not run its checks for a closed fd 100"
		fi
		snap_verbose && snap_show "$FD_D/take" "$FD_D/default" "$FD_D/error" "$FD_D/closed"
		end
	done
}

# --- stdio: the resuming km's own fds take 0-2's place -------------------------------------------

fds_stdio() {
	local flavour test
	for flavour in "${FDS_FLAVOURS[@]}"; do
		test="fds/stdio-inherited/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		fds_dir "stdio-$flavour"
		mkdir -p "$FD_D/take"
		echo "(cd $(quote "$FD_D/cwd") && echo | km --snapshot=... fd_zoo DIR stop 2>&1 | cat)" >"$FD_D/take/cmd"
		(cd "$FD_D/cwd" && echo | timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "$KM" --snapshot="$FD_D/s.snap" \
			"$GUESTS/$flavour/fd_zoo" "$FD_D/zoo" stop 2>&1 | cat >"$FD_D/take/out")
		: >"$FD_D/take/err"
		if [ ! -f "$FD_D/s.snap" ]; then
			bad "no snapshot taken with pipes on fds 0-2: $(head -c 300 "$FD_D/take/out")"
		else
			srun "$FD_D/inspect" "$FD_D/cwd" /dev/null -- "$KM" --inspect "$FD_D/s.snap"
			local n
			for n in 0 1 2; do
				grep -qE "(^|[^0-9])fd $n:? +inherited" "$FD_D/inspect/out" ||
					bad "--inspect does not list fd $n as inherited: $(grep -m1 -E "(^|[^0-9])fd $n([^0-9]|$)" "$FD_D/inspect/out")"
			done
			srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
			fds_ok "$FD_D/resume" "the copy resumed with a file on stdout and /dev/null on stdin" "ZOO OK"
			grep -qx 'zoo: resumed' "$FD_D/resume/out" || bad "the copy's output did not reach the resuming km's stdout"
		fi
		snap_verbose && snap_show "$FD_D/take" "$FD_D/inspect" "$FD_D/resume"
		end
	done
}

# --- a full fd table ----------------------------------------------------------------------------------

fds_many() {
	local flavour test n
	for flavour in "${FDS_FLAVOURS[@]}"; do
		test="fds/many/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		fds_dir "many-$flavour"
		if fds_take "$flavour" fd_many stop; then
			grep -qx 'many: built 1000' "$FD_D/take/out" || bad "fd_many did not fill 1000 fds: $(head -c 300 "$FD_D/take/out")"
			srun "$FD_D/inspect" "$FD_D/cwd" /dev/null -- "$KM" --inspect "$FD_D/s.snap"
			n=$(grep -cE '^ +fd [0-9]+:? +[a-z]' "$FD_D/inspect/out")
			[ "$n" = 1000 ] || bad "--inspect lists $n fds, expected 1000"
			srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
			fds_ok "$FD_D/resume" "the resumed copy" "MANY OK"
		fi
		snap_verbose && snap_show "$FD_D/take" "$FD_D/resume"
		end
	done
}

fds_memfd_map() {
	local flavour mode test
	for flavour in "${FDS_FLAVOURS[@]}"; do
		for mode in open closed; do
			test="fds/memfd-map/$flavour/$mode"
			want "$test" && km_only "$test" || continue
			begin "$test"
			fds_dir "memfd-$flavour-$mode"
			srun "$FD_D/take" "$FD_D/cwd" /dev/null -- "$KM" --snapshot="$FD_D/s.snap" \
				"$GUESTS/$flavour/snap_memfd_map" "$mode"
			if [ -f "$FD_D/s.snap" ]; then
				srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
				fds_ok "$FD_D/resume" "the resumed copy" "MEMFD MAP OK"
			else
				bad "no snapshot: exit status $(status_text "$RC"): $(head -c 300 "$FD_D/take/err")"
			fi
			snap_verbose && snap_show "$FD_D/take" "$FD_D/resume"
			end
		done
	done
}

fds_unix_longpath() {
	local flavour test
	for flavour in "${FDS_FLAVOURS[@]}"; do
		test="fds/unix-longpath/$flavour"
		want "$test" && km_only "$test" || continue
		begin "$test"
		fds_dir "longpath-$flavour"
		srun "$FD_D/take" "$FD_D/cwd" /dev/null -- "$KM" --snapshot="$FD_D/s.snap" \
			"$GUESTS/$flavour/snap_unix_longpath" "$FD_D/zoo" snap
		if [ -f "$FD_D/s.snap" ]; then
			srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
			fds_ok "$FD_D/resume" "the resumed copy" "PASSED"
		else
			bad "no snapshot: exit status $(status_text "$RC"): $(head -c 300 "$FD_D/take/err")"
		fi
		snap_verbose && snap_show "$FD_D/take" "$FD_D/resume"
		end
	done
}

fds_verify_data() {
	local test=fds/verify-data size
	want "$test" && km_only "$test" || return 0
	begin "$test"
	fds_dir verify-data
	if fds_take musl fd_zoo stop; then
		srun "$FD_D/good" "$FD_D/cwd" /dev/null -- "$KM" --inspect --verify "$FD_D/s.snap"
		[ "$RC" = 0 ] && grep -q "^verified: *open files' saved data ok" "$FD_D/good/out" ||
			bad "--verify of the untouched snapshot: exit status $(status_text "$RC"), no line for the saved data"
		# the blobs are the file's last bytes: the zoo's memfd, deleted and O_TMPFILE contents
		size=$(stat -c %s "$FD_D/s.snap")
		fds_flip "$FD_D/s.snap" $((size - 10))
		srun "$FD_D/bad" "$FD_D/cwd" /dev/null -- "$KM" --inspect --verify "$FD_D/s.snap"
		[ "$RC" = 1 ] || bad "--verify of damaged saved data: exit status $(status_text "$RC"), expected 1"
		grep -q "saved data at .* is damaged" "$FD_D/bad/err" || bad "--verify did not name the damaged data: $(head -c 300 "$FD_D/bad/err")"
		srun "$FD_D/resume" "$FD_D/cwd" /dev/null -- "$KM" "$FD_D/s.snap"
		[ "$RC" = 1 ] && grep -q "damaged" "$FD_D/resume/err" ||
			bad "resuming damaged saved data: exit status $(status_text "$RC"): $(head -c 300 "$FD_D/resume/err")"
	fi
	snap_verbose && snap_show "$FD_D/take" "$FD_D/bad"
	end
}

# --- hostile: the fd note edited ---------------------------------------------------------------------

# fds_zoo_keep / fds_zoo_reset: a resumed zoo writes to rw.txt and app.txt, which would make the
# next resume of the same snapshot refuse them as changed; reset puts back their bytes and mtime
# in place (same inode), so that the snapshot resumes again and again.
fds_zoo_keep() {
	local f
	mkdir -p "$FD_D/pristine"
	for f in rw.txt app.txt; do
		cp "$FD_D/zoo/$f" "$FD_D/pristine/$f"
		stat -c %.9Y "$FD_D/zoo/$f" >"$FD_D/pristine/$f.mtime"
	done
}
fds_zoo_reset() {
	local f
	for f in rw.txt app.txt; do
		cat "$FD_D/pristine/$f" >"$FD_D/zoo/$f"
		touch -m -d "@$(cat "$FD_D/pristine/$f.mtime")" "$FD_D/zoo/$f"
	done
	rm -f "$FD_D/zoo/inotify-probe" "$FD_D/zoo/tmpfile-linked"
}

# fds_flip FILE OFFSET: inverts one byte.
fds_flip() {
	snap_put "$1" "$2" 1 $(($(snap_get "$1" "$2" 1) ^ 255))
}

fds_tamper() {
	local test=fds/hostile/note-tamper nt idx off desc size f i nl
	want "$test" && km_only "$test" || return 0
	begin "$test"
	fds_dir tamper
	nt=$(sed -nE 's/^#define NT_KM_FILES[[:space:]]+(0x[0-9a-fA-F]+).*/\1/p' "$FDS_COREDUMP_H")
	if [ -z "$nt" ]; then
		bad "$FDS_COREDUMP_H defines no NT_KM_FILES"
	elif fds_take musl fd_zoo stop; then
		fds_zoo_keep
		srun "$FD_D/verify" "$FD_D/cwd" /dev/null -- "$KM" --inspect --verify "$FD_D/s.snap"
		[ "$RC" = 0 ] && grep -q '^verified: ' "$FD_D/verify/out" ||
			bad "--inspect --verify of the untouched snapshot: exit status $(status_text "$RC"): $(head -c 300 "$FD_D/verify/err")"
		snap_parse "$FD_D/s.snap" || bad "cannot parse the snapshot's notes"
		idx=$(snap_note_index KM $((nt)))
		if [ -z "$idx" ]; then
			bad "the snapshot has no NT_KM_FILES ($nt) note"
		else
			desc=${NT_DESC[idx]} size=${NT_DESCSZ[idx]}
			note "    NT_KM_FILES: $size bytes at offset $desc"
			# Not resealed: the checksum refuses it, at resume and in --inspect.
			f=$FD_D/flip.snap
			cp --sparse=always "$FD_D/s.snap" "$f" && fds_flip "$f" $((desc + size / 2))
			for i in resume inspect; do
				local -a a=("$f")
				[ $i = inspect ] && a=(--inspect "$f")
				srun "$FD_D/flip-$i" "$FD_D/cwd" /dev/null -- "$KM" "${a[@]}"
				[ "$RC" = 1 ] || bad "flipped byte, $i: exit status $(status_text "$RC"), expected 1"
				[ "$(wc -l <"$FD_D/flip-$i/err")" = 1 ] && grep -q "changed since it was written" "$FD_D/flip-$i/err" ||
					bad "flipped byte, $i: stderr is not one line saying the file changed: $(head -c 300 "$FD_D/flip-$i/err")"
				[ $i = resume ] && [ -s "$FD_D/flip-$i/out" ] && bad "flipped byte: the program ran"
			done
			# Resealed: km's own parsing of the note meets the damage. Never a crash; either one
			# km: line and status 1, or a resume (the zoo then reports what it found).
			local -a offs=(0 1 4 8 12 16 24 32 40 48 64 $((size / 3)) $((size / 2)) $((size - 8)) $((size - 1)))
			local s=7
			for ((i = 0; i < 16; i++)); do
				s=$(((s * 1103515245 + 12345) % 2147483648))
				offs+=($((s % size)))
			done
			for off in "${offs[@]}"; do
				[ "$off" -ge 0 ] && [ "$off" -lt "$size" ] || continue
				f=$FD_D/sealed.snap
				fds_zoo_reset
				cp --sparse=always "$FD_D/s.snap" "$f" && fds_flip "$f" $((desc + off)) && snap_seal "$f"
				srun "$FD_D/sealed" "$FD_D/cwd" /dev/null -- "$KM" "$f"
				if [ "$RC" -ge 124 ]; then
					bad "byte $off of the note changed and resealed: km ended with $(status_text "$RC")"
				elif [ "$RC" != 0 ] && [ ! -s "$FD_D/sealed/out" ]; then
					nl=$(wc -l <"$FD_D/sealed/err")
					[ "$nl" = 1 ] && grep -q '^km: ' "$FD_D/sealed/err" ||
						bad "byte $off changed and resealed: refused, but not with one 'km:' line: $(head -c 300 "$FD_D/sealed/err" | tr '\n' '|')"
				fi
				grep -qiE 'sanitizer|runtime error:' "$FD_D/sealed/err" && bad "byte $off: sanitizer report"
				srun "$FD_D/sealed-inspect" "$FD_D/cwd" /dev/null -- "$KM" --inspect "$f"
				[ "$RC" -ge 124 ] && bad "byte $off changed and resealed: --inspect ended with $(status_text "$RC")"
			done
		fi
	fi
	snap_verbose && snap_show "$FD_D/take"
	end
}

run_fds() {
	fds_zoo
	fds_inspect
	fds_unix_path
	fds_missing
	fds_stdio
	fds_many
	fds_memfd_map
	fds_unix_longpath
	fds_verify_data
	fds_tamper
}
