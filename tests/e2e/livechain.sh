# shellcheck shell=bash
# Live and incremental snapshots together (issue 11): chains of live (mode=continue) incremental
# snapshots of tests/guests/live_mix.c, which changes its memory from several threads in every way
# km must track (stores, read(2) into buffers, mmap/munmap, brk) and checks all of it before each
# change: every member resumed must finish its rounds with nothing different. Sourced by run.sh
# after live.sh and incremental.sh (helpers: snap_start, snap_wait_line, mgmt_sock); defines
# run_livechain.
#   livechain/chain/F     five members, each naming the one before; a sixth asked to replace its
#                         own parent is refused
#   livechain/enospc      a member that fails (disk full: a small tmpfs, root only) between two;
#                         the next one names the last good one and resumes right, and the failed
#                         one cannot be named
#   livechain/own         the program takes live snapshots of itself (HC_snapshot) all the time
#                         while the chain is asked for from outside: a child is refused (its parent
#                         is no longer the last snapshot) or resumes right, never wrong
#   livechain/shell       busybox sh under km --mgmt runs a command per line it reads (fork, exec:
#                         the child's km must not bind the socket again); a live incremental
#                         chain taken between lines resumes to the same end

LC_MGMT=${TOOLS:-$ROOT/build/tests/tools}/km-mgmt

# lc_start DIR FLAVOUR ARGS...: live_mix under km --mgmt in DIR/cwd, stdin a fifo (DIR/in) that
# ends it; waits for "ready". Sets LC_PID, LC_SOCK. False (with bad) if it never got ready.
lc_start() {
	local d=$1 flavour=$2
	shift 2
	rm -rf "$d"
	mkdir -p "$d/cwd"
	mkfifo "$d/in"
	LC_SOCK=$(mgmt_sock "$d")
	rm -f "$LC_SOCK"
	snap_start "$d/run" "$d/cwd" "$d/in" -- "$KM" --mgmt="$LC_SOCK" --snapshot="$d/cwd/own.snap" \
		"$GUESTS/$flavour/live_mix" "$d/data" "$@"
	LC_PID=$BG_PID
	snap_wait_line "$d/run/out" ready 30 && return 0
	bad "live_mix never printed 'ready': $(head -c 300 "$d/run/err")"
	kill "$LC_PID" 2>/dev/null
	wait "$LC_PID" 2>/dev/null
	return 1
}

# lc_snap DIR PATH [PARENT]: a live snapshot; the reply in LC_REPLY.
lc_snap() {
	LC_REPLY=$("$LC_MGMT" --wait-socket 20 --timeout 60 "$LC_SOCK" snapshot "path=$2" mode=continue \
		${3:+"parent=$3"} 2>&1)
}

# lc_finish DIR: ends live_mix (a line on its stdin) and checks it finished.
lc_finish() {
	echo stop >"$1/in"
	wait "$LC_PID"
	local rc=$?
	[ "$rc" = 0 ] && grep -qx "done" "$1/run/out" ||
		bad "the original run: exit status $(status_text "$rc"), stdout '$(tr '\n' '|' <"$1/run/out")'"
	rm -f "$LC_SOCK"
}

# lc_resume DIR FILE: resumed (in DIR/cwd, as it ran), FILE must finish with every check passed.
lc_resume() {
	local name o
	name=$(basename "$2")
	o=$1/resumed-$name
	mkdir -p "$o"
	echo stop >"$o/in"
	run "$o" "$1/cwd" "$o/in" -- "$KM" "$2"
	[ "$RC" = 0 ] && grep -qx "done" "$o/out" ||
		bad "$name resumed: exit status $(status_text "$RC"), stdout '$(tr '\n' '|' <"$o/out")' $(head -c 300 "$o/err")"
}

lc_chain() {
	local flavour test d n
	for flavour in gcc musl; do
		test=livechain/chain/$flavour
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/livechain/chain-$flavour
		if lc_start "$d" "$flavour"; then
			for n in 1 2 3 4 5; do
				if [ "$n" = 1 ]; then
					lc_snap "$d" "$d/s1"
				else
					lc_snap "$d" "$d/s$n" "$d/s$((n - 1))"
				fi
				[[ $LC_REPLY == ok* ]] || bad "s$n: $LC_REPLY"
			done
			# Over its own parent: refused, the parent left as it was (resumed below).
			lc_snap "$d" "$d/s5" "$d/s5"
			[[ $LC_REPLY == error*"would replace"* ]] || bad "a child written over its parent: $LC_REPLY"
			lc_finish "$d"
			for n in 1 2 3 4 5; do
				[ -f "$d/s$n" ] && lc_resume "$d" "$d/s$n"
			done
			"$KM" --inspect "$d/s5" 2>&1 </dev/null | grep -q '^chain: *5 files' ||
				bad "--inspect s5 does not show a chain of 5"
		fi
		end
	done
}

lc_enospc() {
	local test=livechain/enospc d=$WORK/livechain/enospc
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if [ "$(id -u)" != 0 ]; then
		note "    (not root: no small tmpfs to fill; not run)"
		end
		return
	fi
	mkdir -p "$d.small"
	if ! mount -t tmpfs -o size=512k tmpfs "$d.small"; then
		bad "mount -t tmpfs on $d.small failed"
		end
		return
	fi
	if lc_start "$d" gcc; then
		lc_snap "$d" "$d/s1"
		[[ $LC_REPLY == ok* ]] || bad "s1: $LC_REPLY"
		lc_snap "$d" "$d/s2" "$d/s1"
		[[ $LC_REPLY == ok* ]] || bad "s2: $LC_REPLY"
		lc_snap "$d" "$d.small/full" "$d/s2"
		[[ $LC_REPLY == error*"No space left"* ]] || bad "a snapshot on a full tmpfs: $LC_REPLY"
		[ -n "$(ls -A "$d.small")" ] && bad "left on the full tmpfs: $(ls -A "$d.small")"
		lc_snap "$d" "$d/s3" "$d/s2"
		[[ $LC_REPLY == ok* ]] || bad "s3 on s2 after the failed one: $LC_REPLY"
		lc_snap "$d" "$d/s4" "$d/s3"
		[[ $LC_REPLY == ok* ]] || bad "s4 on s3: $LC_REPLY"
		lc_finish "$d"
		local n
		for n in 1 2 3 4; do
			[ -f "$d/s$n" ] && lc_resume "$d" "$d/s$n"
		done
	fi
	umount "$d.small"
	end
}

lc_own() {
	local test=livechain/own d=$WORK/livechain/own
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if lc_start "$d" gcc snap; then
		local n prev="" taken=0 children=0 f
		for ((n = 1; n <= 40 && children < 4; n++)); do
			lc_snap "$d" "$d/s$n" ${prev:+"$d/$prev"}
			case $LC_REPLY in
			ok*)
				taken=$((taken + 1))
				[ -n "$prev" ] && children=$((children + 1))
				prev=s$n
				;;
			*"not the last snapshot"*) prev="" ;; # the program's own snapshot came between
			*"another snapshot is being taken"*) ;;
			*) bad "s$n: $LC_REPLY" ;;
			esac
		done
		lc_finish "$d"
		[ "$taken" -gt 0 ] || bad "no snapshot from outside was taken"
		for f in "$d"/s*; do
			lc_resume "$d" "$f"
		done
		[ -n "$(ls "$d/cwd"/own.snap 2>/dev/null)" ] || bad "the program's own snapshots were never written"
	fi
	end
}

# The shell's loop: each line goes through a command it forks and execs, and into a variable.
LC_SH='n=0; acc=""; while read -r l; do n=$((n + 1)); acc="$acc$("$0" echo "$l" | "$0" wc -c):"; case $l in dump*) echo "$l $n";; final) echo "final $n ${#acc} $acc" | "$0" md5sum; exit 0;; esac; done'

lc_shell() {
	local test=livechain/shell d=$WORK/livechain/shell
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d"
	mkdir -p "$d/cwd"
	mkfifo "$d/in"
	LC_SOCK=$(mgmt_sock "$d")
	rm -f "$LC_SOCK"
	snap_start "$d/run" "$d/cwd" "$d/in" -- "$KM" --mgmt="$LC_SOCK" "$BUSYBOX" sh -c "$LC_SH" "$BUSYBOX"
	LC_PID=$BG_PID
	local k j prev=""
	exec {lc_w}>"$d/in"
	for k in 1 2 3; do
		for ((j = 0; j < 20; j++)); do echo "line $k $j"; done >"$d/b$k"
		echo "dump $k" >>"$d/b$k"
		cat "$d/b$k" >&"$lc_w"
		snap_wait_line "$d/run/out" "dump $k $((21 * k))" 60 || bad "the shell never printed 'dump $k': $(head -c 300 "$d/run/err")"
		lc_snap "$d" "$d/s$k" ${prev:+"$d/$prev"}
		[[ $LC_REPLY == ok* ]] || bad "s$k: $LC_REPLY"
		prev=s$k
	done
	echo final >&"$lc_w"
	exec {lc_w}>&-
	wait "$LC_PID"
	local rc=$? want
	want=$(tail -n1 "$d/run/out")
	[ "$rc" = 0 ] && [[ $want == *-* ]] || bad "the shell: exit status $(status_text "$rc"), stdout '$(tr '\n' '|' <"$d/run/out")' $(head -c 300 "$d/run/err")"
	for k in 1 2 3; do
		[ -f "$d/s$k" ] || continue
		local o=$d/resumed-s$k rest=()
		for ((j = k + 1; j <= 3; j++)); do rest+=("$d/b$j"); done
		mkdir -p "$o"
		cat "${rest[@]}" /dev/null >"$o/in"
		echo final >>"$o/in"
		run "$o" "$d/cwd" "$o/in" -- "$KM" "$d/s$k"
		[ "$RC" = 0 ] && [ "$(tail -n1 "$o/out")" = "$want" ] ||
			bad "s$k resumed: exit status $(status_text "$RC"), last line '$(tail -n1 "$o/out")', not '$want' $(head -c 300 "$o/err")"
	done
	rm -f "$LC_SOCK"
	end
}

run_livechain() {
	if [ ! -x "$LC_MGMT" ]; then
		want livechain/ && km_only livechain/tools || return 0
		begin livechain/tools
		bad "$LC_MGMT is missing (make tools)"
		end
		return
	fi
	lc_chain
	lc_enospc
	lc_own
	lc_shell
}
