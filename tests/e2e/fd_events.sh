# shellcheck shell=bash
# eventfd, timerfd, epoll, signalfd and inotify across snapshots (issue 9; km/fd/km_fd_event.c,
# km_fd_epoll.c, km_fd_signalfd.c, km_fd_inotify.c): tests/guests/fd_events.c snapshots itself
# (once: km ends; keep: the original goes on and checks too) and the resumed copy checks every
# fd. Then snapshots whose records are edited (attacker input: huge counts, a bad clock id, a bad
# watch number, an inotify watch naming /proc/<km>/mem) must fail to resume with km's one line
# naming the fd, and nothing else.
# Sourced by run.sh after snapshot.sh (uses srun, snap_expect_run, snap_expect_snapshot,
# snap_show, snap_verbose, snap_get, snap_put, snap_seal, snap_parse, snap_note_index); defines
# run_fd_events.

FDEV_NT_FILES=$((0x4b4d000c))

# fdev_find FILE HEX: offset in FILE of the first occurrence of the bytes HEX ("0a00ff...")
# inside the NT_KM_FILES note's descriptor, or "".
fdev_find() {
	local f=$1 hex=$2 i start len at
	snap_parse "$f" || return 0
	i=$(snap_note_index KM "$FDEV_NT_FILES")
	[ -n "$i" ] || return 0
	start=${NT_DESC[$i]}
	len=${NT_DESCSZ[$i]}
	at=$(dd if="$f" iflag=skip_bytes,count_bytes skip="$start" count="$len" status=none | od -An -v -tx1 |
		tr -d ' \n' | grep -bo "$hex" | awk -F: '$1 % 2 == 0 { print $1 / 2; exit }')
	[ -n "$at" ] && echo $((start + at))
}

# fdev_hostile NAME BASE MENTION EDIT...: copies snapshot BASE, applies EDIT (a function and its
# arguments, given the copy's path first), reseals it; the resume must exit 1 with one km: line
# containing MENTION.
fdev_hostile() {
	local name=$1 base=$2 mention=$3 test d
	shift 3
	test="fd_events/hostile/$name"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	d=$WORK/fd_events/hostile/$name
	mkdir -p "$d/cwd"
	cp "$base" "$d/s.snap"
	if ! "$1" "$d/s.snap" "${@:2}"; then
		bad "could not find the record to edit in the snapshot"
	else
		snap_seal "$d/s.snap"
		srun "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
		[ "$RC" = 1 ] || bad "resume: exit status $(status_text "$RC"), expected 1"
		[ -s "$d/resume/out" ] && bad "the program ran: $(head -c 200 "$d/resume/out" | tr '\n' ' ')"
		[ "$(wc -l <"$d/resume/err")" = 1 ] && grep -q "^km: .*$mention" "$d/resume/err" ||
			bad "stderr is not one km: line mentioning '$mention'"
	fi
	snap_verbose && snap_show "$d/resume"
	end
}

# Edits: each finds its record by values the guest put there.
fdev_edit_eventfd_count() { # the eventfd holding 0x100000005: count 2^64-1, above eventfd's most
	local at
	at=$(fdev_find "$1" 050000000100000000000000)
	[ -n "$at" ] && snap_put "$1" "$at" 8 -1
}
fdev_edit_timer_clock() { # the timer with interval 2.5 s: clock id 99
	local at
	at=$(fdev_find "$1" 00f9029500000000)
	[ -n "$at" ] && snap_put "$1" $((at - 16)) 4 99
}
fdev_edit_epoll_count() { # the epoll (kind 10, O_RDWR, pos 0): 0xa5a5a5a5 targets
	local at
	at=$(fdev_find "$1" 0a000000020000000000000000000000)
	[ -n "$at" ] && snap_put "$1" $((at + 20)) 4 $((0xa5a5a5a5))
}
fdev_path_hex() {
	printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'
	printf '00'
}
fdev_edit_inotify() { # DIR/b's watch: FIELD count (n), wd, or path (/proc/self/mem, as long)
	local at path=$2/b field=$3
	at=$(fdev_find "$1" "$(fdev_path_hex "$path")")
	[ -n "$at" ] || return 1
	case $field in
	count) snap_put "$1" $((at - 32)) 4 $((0xa5a5a5a5)) ;;
	wd) snap_put "$1" $((at - 28)) 4 $((0x7fffffff)) ;;
	path)
		local pad=/proc/self/ proc
		while [ $((${#pad} + 3)) -lt ${#path} ]; do pad+=/; done
		proc=${pad}mem
		printf '%s' "$proc" | dd of="$1" bs=1 seek="$at" conv=notrunc status=none
		;;
	esac
}

run_fd_events() {
	local flavour mode test d bin base=""
	for flavour in gcc musl; do
		bin=$GUESTS/$flavour/fd_events
		for mode in once keep; do
			test="fd_events/$flavour/$mode"
			want "$test" && km_only "$test" || continue
			begin "$test"
			d=$WORK/fd_events/$flavour/$mode
			mkdir -p "$d/cwd" "$d/cwd2" "$d/dir"
			srun "$d/take" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/s.snap" "$bin" "$mode" "$d/dir"
			if [ "$mode" = keep ]; then
				snap_expect_run "$d/take" "the original" 0 "-- original+PASSED"
			else
				snap_expect_run "$d/take" "snapshot run" 0 ""
			fi
			if snap_expect_snapshot "$d/s.snap"; then
				srun "$d/inspect" "$d/cwd" /dev/null -- "$KM" --inspect "$d/s.snap"
				grep -q "eventfd rw,nonblock count=5 semaphore" "$d/inspect/out" ||
					bad "--inspect does not show the semaphore eventfd"
				grep -q "epoll rw 6 targets: .*fd 5 in data=0x7" "$d/inspect/out" ||
					bad "--inspect does not show the epoll's targets"
				srun "$d/resume" "$d/cwd2" /dev/null -- "$KM" "$d/s.snap"
				snap_expect_run "$d/resume" "resume" 0 "-- resumed+PASSED"
				[ "$flavour/$mode" = gcc/once ] && base=$d/s.snap
			fi
			snap_verbose && snap_show "$d/take" "$d/inspect" "$d/resume"
			end
		done
	done
	test="fd_events/nested-epoll"
	if want "$test" && km_only "$test"; then
		begin "$test"
		d=$WORK/fd_events/nested
		mkdir -p "$d/cwd"
		srun "$d/take" "$d/cwd" /dev/null -- "$KM" --snapshot="$d/s.snap" "$GUESTS/gcc/fd_events" nested
		snap_expect_run "$d/take" "snapshot run" 0 "+PASSED"
		srun "$d/inspect" "$d/cwd" /dev/null -- "$KM" --inspect "$d/s.snap"
		grep -q "fd 4 unsupported rw epoll watching another epoll (fd 3): km does not restore nested epolls" \
			"$d/inspect/out" || bad "--inspect does not show the outer epoll as unsupported, saying why"
		srun "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
		[ "$RC" = 1 ] && [ "$(wc -l <"$d/resume/err")" = 1 ] && grep -q "fd 4 (unsupported) cannot be restored: epoll watching another epoll" "$d/resume/err" ||
			bad "resume: not one km: line saying the nested epoll cannot be restored"
		snap_verbose && snap_show "$d/take" "$d/inspect" "$d/resume"
		end
	fi
	[ -n "$base" ] || base=$WORK/fd_events/gcc/once/s.snap
	[ -f "$base" ] || return 0
	local dir=$WORK/fd_events/gcc/once/dir
	fdev_hostile eventfd-count "$base" "fd 4 (eventfd) cannot be restored: corrupt record" fdev_edit_eventfd_count
	fdev_hostile timer-clock "$base" "(timerfd) cannot be restored: corrupt record" fdev_edit_timer_clock
	fdev_hostile epoll-count "$base" "(epoll) cannot be restored: corrupt record" fdev_edit_epoll_count
	fdev_hostile inotify-count "$base" "(inotify) cannot be restored: corrupt record" fdev_edit_inotify "$dir" count
	fdev_hostile inotify-wd "$base" "(inotify) cannot be restored: corrupt record" fdev_edit_inotify "$dir" wd
	fdev_hostile inotify-proc "$base" "is not for the program to watch" fdev_edit_inotify "$dir" path
}
