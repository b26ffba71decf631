# shellcheck shell=bash
# Many copies resumed from one snapshot (issue 11, "Many copies from one snapshot"): they run at
# once, each one's writes stay its own (the others and the snapshot file never see them), and
# copies that only read share the snapshot's pages (km maps the file MAP_PRIVATE: the page cache is
# mapped into every copy until a copy writes a page). Sourced by run.sh after its helpers and
# snapshot.sh (snap_start, snap_wait_line, snap_show); defines run_copies.
#
# Guest: tests/guests/copies_mem.c. Knobs: COPIES_E2E_MIB=64 (memory of the program, MiB; big
# enough that km's own memory, larger under ASan, stays small beside it),
# KM_MGMT=$TOOLS/km-mgmt (the management socket's client).

COPIES_E2E_MIB=${COPIES_E2E_MIB:-64}
COPIES_E2E_N=4
COPIES_MGMT=${KM_MGMT:-${TOOLS:-$ROOT/build/tests/tools}/km-mgmt}
case $COPIES_MGMT in /*) ;; *) COPIES_MGMT=$PWD/$COPIES_MGMT ;; esac

# copies_wait_count FILE TEXT COUNT: waits (up to TIMEOUT seconds) until FILE has COUNT lines TEXT.
copies_wait_count() {
	local i
	for ((i = 0; i < TIMEOUT * 20; i++)); do
		[ "$(grep -cxF -- "$2" "$1" 2>/dev/null)" -ge "$3" ] && return 0
		sleep 0.05
	done
	return 1
}

# copies_kb PID KEY: KEY's value in kB ("Pss", "Pss_Anon") in /proc/PID/smaps_rollup, else empty.
copies_kb() {
	sed -n "s/^$2: *\([0-9]*\) kB$/\1/p" "/proc/$1/smaps_rollup" 2>/dev/null
}

# copies_km_pid PID: the km under the copy started as PID (snap_start runs it under timeout).
copies_km_pid() {
	pgrep -P "$1" | head -n1
}

# copies_tell I LINE: LINE to copy I's stdin, a fifo this shell holds open read-write (CP_FDS) from
# before the copy starts to its end: a write never blocks, even when the copy is gone, and a line
# written before the copy has opened the fifo is not lost.
copies_tell() {
	echo "$2" >&"${CP_FDS[$1]}"
}

# copies_stop PID...: ends the copies still running (their timeout forwards SIGTERM) and waits.
copies_stop() {
	local p
	for p in "$@"; do
		kill -0 "$p" 2>/dev/null && kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
}

# copies_congruent FILE: every LOAD of FILE that holds a whole aligned 2 MiB page lies at a file
# offset congruent to its address modulo 2 MiB (decisions 19: so that the page cache's 2 MiB
# folios can back the 2 MiB guest pages of a resume); "bad" for each that does not. Leaves the
# number of such segments in CP_HUGE.
copies_congruent() {
	local typ off vaddr filesz memsz huge=$((2 << 20))
	CP_HUGE=0
	while read -r typ off vaddr _ filesz memsz _; do
		[ "$typ" = LOAD ] && ((filesz > 0)) || continue
		((((vaddr + huge - 1) / huge + 1) * huge <= vaddr + memsz)) || continue
		CP_HUGE=$((CP_HUGE + 1))
		((off % huge == vaddr % huge)) ||
			bad "LOAD at $vaddr ($memsz bytes) lies at file offset $off: not congruent to its address modulo 2 MiB"
	done < <(readelf -l -W "$1" | grep -E '^ +LOAD +0x')
}

copies_share() {
	local flavour=$1 name="copies/$1/share"
	want "$name" || return 0
	km_only "$name" || return 0
	begin "$name"
	local d=$WORK/copies/$flavour m=$COPIES_E2E_MIB n=$COPIES_E2E_N bin=$GUESTS/$flavour/copies_mem
	local i kpid pss anon sum0 limit want_out fd
	local -a pids=()
	CP_FDS=()
	mkdir -p "$d"
	mkfifo "$d/in"
	for ((i = 0; i < n; i++)); do mkfifo "$d/in$i"; done

	# The snapshot: taken from outside while the program waits for a line.
	snap_start "$d/orig" "$d" "$d/in" -- "$KM" --mgmt="$d/sock" --snapshot="$d/snap" "$bin" "$m"
	local orig=$BG_PID
	if ! snap_wait_line "$d/orig/out" "ready mib=$m" "$TIMEOUT"; then
		bad "the program did not get ready"
		copies_stop "$orig"
		snap_show "$d/orig"
		end
		return
	fi
	"$COPIES_MGMT" --wait-socket 5 --timeout "$TIMEOUT" "$d/sock" snapshot path="$d/snap" mode=stop \
		>"$d/mgmt.out" 2>&1 || bad "snapshot: $(head -c 300 "$d/mgmt.out")"
	wait "$orig"
	RC=$?
	[ "$RC" = 0 ] || bad "km ended with status $(status_text "$RC") after the snapshot (mode=stop), expected 0"
	if [ ! -s "$d/snap" ]; then
		bad "no snapshot file"
		snap_show "$d/orig"
		end
		return
	fi
	sum0=$(sha256sum <"$d/snap")
	copies_congruent "$d/snap"
	[ "$CP_HUGE" -gt 0 ] || bad "no segment of the snapshot holds a whole 2 MiB page"

	# The copies, all at once; each reads its whole memory.
	for ((i = 0; i < n; i++)); do
		exec {fd}<>"$d/in$i"
		CP_FDS+=("$fd")
	done
	for ((i = 0; i < n; i++)); do
		snap_start "$d/c$i" "$d" "$d/in$i" -- "$KM" "$d/snap"
		pids+=("$BG_PID")
	done
	for ((i = 0; i < n; i++)); do copies_tell "$i" "check 0"; done
	for ((i = 0; i < n; i++)); do
		copies_wait_count "$d/c$i/out" "check key=0 ok" 1 || bad "copy $i did not find the snapshot's memory"
	done

	# Sharing: a copy that only read maps the snapshot's page cache, which the copies share.
	limit=$((m * 1024 * 60 / 100))
	for ((i = 0; i < n; i++)); do
		kpid=$(copies_km_pid "${pids[$i]}")
		pss=$(copies_kb "$kpid" Pss)
		note "    copy $i (km pid $kpid): PSS ${pss:-?} kB after reading its $m MiB, $(copies_kb "$kpid" FilePmdMapped) kB of it mapped in 2 MiB file pages"
		if [ -z "$pss" ]; then
			bad "copy $i: no km process or no /proc/$kpid/smaps_rollup"
		elif [ "$pss" -ge "$limit" ]; then
			bad "copy $i (km pid $kpid) has a PSS of $pss kB after reading its $m MiB, expected < $limit kB (60%): the copies do not share the snapshot's pages"
			note "    /proc/$kpid/smaps_rollup: $(tr -s ' \n' ' ' <"/proc/$kpid/smaps_rollup")"
		fi
	done

	# Copy 0 writes its memory: it sees its own data, the others still see the snapshot's.
	copies_tell 0 "write 7"
	copies_tell 0 "check 7"
	copies_wait_count "$d/c0/out" "check key=7 ok" 1 || bad "copy 0 does not see its own write"
	for ((i = 1; i < n; i++)); do
		copies_tell "$i" "check 0"
		copies_wait_count "$d/c$i/out" "check key=0 ok" 2 || bad "copy $i no longer sees the snapshot's memory after copy 0 wrote its own"
	done
	# Its pages are its own now (what breaks sharing: a copy's writes).
	kpid=$(copies_km_pid "${pids[0]}")
	anon=$(copies_kb "$kpid" Pss_Anon)
	if [ -z "$anon" ] || [ "$anon" -lt $((m * 1024 * 90 / 100)) ]; then
		bad "copy 0 (km pid $kpid) has ${anon:-no} kB of anonymous PSS after rewriting its $m MiB, expected at least 90% of it"
	fi

	for ((i = 0; i < n; i++)); do copies_tell "$i" quit; done
	for ((i = 0; i < n; i++)); do
		wait "${pids[$i]}"
		RC=$?
		want_out=$'check key=0 ok\ncheck key=0 ok\nend'
		[ "$i" = 0 ] && want_out=$'check key=0 ok\nwrite key=7 done\ncheck key=7 ok\nend'
		[ "$RC" = 0 ] || bad "copy $i: exit status $(status_text "$RC"), expected 0"
		[ "$(cat "$d/c$i/out")" = "$want_out" ] || bad "copy $i: stdout is '$(tr '\n' '|' <"$d/c$i/out")', expected '$(tr '\n' '|' <<<"$want_out")'"
		[ -s "$d/c$i/err" ] && bad "copy $i: stderr is not empty: $(head -c 300 "$d/c$i/err" | tr '\n' ' ')"
	done
	pids=()
	for fd in "${CP_FDS[@]}"; do exec {fd}>&-; done

	# The file is as it was written.
	[ "$(sha256sum <"$d/snap")" = "$sum0" ] || bad "the snapshot file changed while its copies ran"
	run "$d/verify" "$d" /dev/null -- "$KM" --inspect --verify "$d/snap"
	[ "$RC" = 0 ] || bad "km --inspect --verify: status $(status_text "$RC"): $(grep -v '^verified' "$d/verify/out" "$d/verify/err" | head -n2 | tr '\n' ' ')"

	if snap_verbose; then
		snap_show "$d/orig"
		for ((i = 0; i < n; i++)); do snap_show "$d/c$i"; done
	fi
	end
}

run_copies() {
	local flavour
	for flavour in gcc musl; do
		copies_share "$flavour"
	done
}
