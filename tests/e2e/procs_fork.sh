# shellcheck shell=bash
# Guest processes made by fork (issue 10): what the plain guest runs (fork_basic, fork_threads,
# fork_loop) cannot check. Sourced by run.sh after its helpers; defines run_procs_fork.
#   procs/fork/no-fd-leak/F       200 children in a km leave it no more fds than 1 child did; the
#                                  children neither took nor removed km's management socket
#   procs/fork/chain-stack/F      300 generations of forks (each child forks the next and ends):
#                                  km's stack in the last is no deeper than in the first
#   procs/fork/snapshot-refused/F  a snapshot with a live child: EBUSY, one km line naming the
#                                  child; the program goes on
#   procs/fork/resumed/F           a program resumed from a snapshot forks; its child's getppid()
#                                  is the parent's (old) pid
#   procs/fork/mgmt-refused/F      a forked child's guest connects to its parent km's --mgmt
#                                  socket: refused, as a program under km
#   procs/fork/exec-listener       a child of a --mgmt km execs and ends: the parent's socket file
#                                  stays, and the parent still answers on it (the child took no
#                                  copy of the listener across its exec)
#   procs/fork/setid-snapshot/F    (root) a forked child drops to nobody and snapshots itself:
#                                  where nobody may write it is taken, in root's directory EACCES

# pf_fd_count PID: how many fds km's process PID has.
pf_fd_count() {
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}


pf_no_fd_leak() {
	local flavour=$1 test="procs/fork/no-fd-leak/$1"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/leak/$flavour
	mkdir -p "$d"
	local sock=$d/m.sock mgmt=${TOOLS:-$ROOT/build/tests/tools}/km-mgmt
	coproc PF { exec timeout -k 5 "$TIMEOUT" "$KM" --mgmt="$sock" "$GUESTS/$flavour/fork_loop" stdin 2>"$d/err"; }
	local pf_pid=${PF_PID:-} pf_in=${PF[1]:-} pf_out=${PF[0]:-}
	coproc_gone "$pf_pid" "$pf_in" "$pf_out" "$d/err" && return
	local line before after km_pid
	coproc_send "$pf_in" 1
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$pf_out"
	[ "$line" = "done 1" ] || bad "first round: '$line', expected 'done 1'"
	# timeout's child is km.
	km_pid=$(pgrep -P "$pf_pid" | head -1)
	before=$(pf_fd_count "$km_pid")
	coproc_send "$pf_in" 200
	line=""
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$pf_out"
	[ "$line" = "done 200" ] || bad "second round: '$line', expected 'done 200'"
	after=$(pf_fd_count "$km_pid")
	[ -n "$km_pid" ] && [ "${before:-0}" -gt 0 ] || bad "could not count km's fds (pid '$km_pid')"
	[ "$before" = "$after" ] || bad "km had $before fds after 1 child and $after after 200 more"
	local reply
	reply=$("$mgmt" --timeout 20 "$sock" status 2>&1) && [[ $reply == ok* ]] ||
		bad "the management socket no longer answers after the children ended: '$reply'"
	exec {pf_in}>&- 2>/dev/null
	wait "$pf_pid"
	local rc=$?
	[ "$rc" = 0 ] || bad "exit status $(status_text "$rc")"
	[ -s "$d/err" ] && show_file stderr "$d/err" && bad "km wrote to stderr"
	end
}

# pf_vmstk PID: the size of km's main stack (kB), from /proc/PID/status.
pf_vmstk() {
	sed -n 's/^VmStk:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$1/status" 2>/dev/null
}

pf_chain_stack() {
	local flavour=$1 test="procs/fork/chain-stack/$1" n=300
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/chain/$flavour
	mkdir -p "$d"
	coproc PC { exec timeout -k 5 "$TIMEOUT" "$KM" "$GUESTS/$flavour/fork_chain" "$n" stdin 2>"$d/err"; }
	local pc_pid=${PC_PID:-} pc_in=${PC[1]:-} pc_out=${PC[0]:-}
	coproc_gone "$pc_pid" "$pc_in" "$pc_out" "$d/err" && return
	local line="" first="" last="" pid
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$pc_out"
	pid=${line##* }
	[[ $line == "gen 1 pid "* ]] && first=$(pf_vmstk "$pid") || bad "first generation: '$line'"
	coproc_send "$pc_in" go
	line=""
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$pc_out"
	pid=${line##* }
	[[ $line == "gen $n pid "* ]] && last=$(pf_vmstk "$pid") || bad "generation $n: '$line'"
	coproc_send "$pc_in" go
	line=""
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$pc_out"
	[[ $line == ok* ]] || bad "the first generation did not hear from the last: '$line'"
	exec {pc_in}>&- 2>/dev/null
	wait "$pc_pid"
	if [ -z "$first" ] || [ -z "$last" ]; then
		bad "could not read km's stack size ('$first', '$last')"
	elif [ "$last" -gt $((first + 64)) ]; then
		bad "km's stack grew from $first kB in the first generation to $last kB in generation $n"
	else
		note "    VmStk: $first kB in generation 1, $last kB in generation $n"
	fi
	[ -s "$d/err" ] && show_file stderr "$d/err" && bad "km wrote to stderr"
	end
}

pf_snapshot_refused() {
	local flavour=$1 test="procs/fork/snapshot-refused/$1"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/refused/$flavour
	mkdir -p "$d/cwd"
	run "$d" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/fork_snap" refuse "$d/s.snap"
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
	grep -q '^PASSED' "$d/out" || bad "the guest's checks did not pass"
	[ "$(wc -l <"$d/err")" = 1 ] || bad "stderr has $(wc -l <"$d/err") lines, expected one"
	grep -Eq '^km: snapshot failed: the program has child processes \(pid [0-9]+\); km snapshots one process$' "$d/err" ||
		bad "stderr does not say the snapshot was refused for the child"
	[ -f "$d/s.snap" ] || bad "no snapshot once the child was reaped"
	[ -n "$T_DIAG" ] && show_file stdout "$d/out" && show_file stderr "$d/err"
	end
}

pf_resumed() {
	local flavour=$1 test="procs/fork/resumed/$1"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/resumed/$flavour
	mkdir -p "$d/cwd"
	run "$d/take" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/fork_snap" resume "$d/s.snap"
	[ "$RC" = 0 ] && grep -qx 'snapshot taken' "$d/take/out" || bad "taking: exit status $(status_text "$RC")"
	run "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
	[ "$RC" = 0 ] || bad "resumed: exit status $(status_text "$RC"), expected 0"
	grep -q '^PASSED' "$d/resume/out" || bad "resumed: the guest's checks did not pass"
	[ -s "$d/resume/err" ] && bad "resumed: km wrote to stderr"
	[ -n "$T_DIAG" ] && show_file stdout "$d/resume/out" && show_file stderr "$d/resume/err"
	end
}

# A forked child's guest asks its parent km's management socket for the status: refused (it is a
# km serving a guest), one line; the parent's own client is still served.
pf_mgmt_refused() {
	local flavour=$1 test="procs/fork/mgmt-refused/$1"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/mgmt/$flavour
	rm -rf "$d" && mkdir -p "$d/cwd"
	run "$d" "$d/cwd" /dev/null -- "$KM" --mgmt="$d/m.sock" "$GUESTS/$flavour/fork_mgmt" "$d/m.sock"
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
	grep -qx "reply: error denied a program under km may not use km's management socket" "$d/out" ||
		bad "the child was not refused: $(head -c 300 "$d/out")"
	[ -s "$d/err" ] && bad "km wrote to stderr: $(head -c 300 "$d/err")"
	end
}

# As root: a forked child drops to nobody (tests/guests/setid.c snap): km still runs it, writes
# its snapshot where nobody may write, and refuses (EACCES) one into a directory only root may.
pf_setid_snapshot() {
	local flavour=$1 test="procs/fork/setid-snapshot/$1"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/setid/$flavour
	if [ "$(id -u)" != 0 ]; then
		bad "needs root"
		end
		return
	fi
	rm -rf "$d" && mkdir -p "$d/cwd" "$d/snaps/root"
	chmod 755 "$WORK" "$WORK/procs" "$WORK/procs/fork" "$d" 2>/dev/null
	chmod 1777 "$d/snaps"
	chmod 700 "$d/snaps/root"
	run "$d" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/setid" snap "$d/snaps"
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0"
	grep -q '^FAIL' "$d/out" && bad "$(grep -m3 '^FAIL' "$d/out" | tr '\n' ' ')"
	[ "$(grep -c '^PASSED' "$d/out")" = 2 ] || bad "the checks did not all pass: $(head -c 300 "$d/out")"
	[ "$(stat -c %u "$d/snaps/nobody.snap" 2>/dev/null)" = 65534 ] || bad "no snapshot owned by nobody"
	[ -e "$d/snaps/root/nobody.snap" ] && bad "a snapshot in root's directory"
	[ "$(wc -l <"$d/err")" = 1 ] && grep -q '^km: snapshot failed: .*/snaps/root/nobody.snap: .*Permission denied$' "$d/err" ||
		bad "stderr is not the one line saying the second snapshot failed: $(head -c 300 "$d/err")"
	end
}

# busybox sh (static) forks and execs `true` twice: before the fix the exec'd child km got the
# parent's listener in its exec state, served it, and removed the socket file at its end.
pf_exec_listener() {
	local test="procs/fork/exec-listener"
	want "$test" && km_only "$test" || return 0
	begin "$test"
	local d=$WORK/procs/fork/exec-listener bb=$BUSYBOX
	local mgmt=${TOOLS:-$ROOT/build/tests/tools}/km-mgmt
	rm -rf "$d" && mkdir -p "$d/cwd"
	coproc PX { exec timeout -k 5 "$TIMEOUT" "$KM" --mgmt="$d/m.sock" "$bb" sh -c \
		"$bb true; $bb true; if [ -S '$d/m.sock' ]; then echo kept; else echo gone; fi; read x" 2>"$d/err"; }
	local px_pid=${PX_PID:-} px_in=${PX[1]:-} px_out=${PX[0]:-}
	coproc_gone "$px_pid" "$px_in" "$px_out" "$d/err" && return
	local line="" reply km_pid
	read -r -t "$TIMEOUT" line 2>/dev/null <&"$px_out"
	[ "$line" = kept ] || bad "after the children: '$line', expected 'kept' (the socket file)"
	km_pid=$(pgrep -P "$px_pid" | head -1)
	reply=$("$mgmt" --timeout 20 "$d/m.sock" status 2>&1)
	[[ $reply == ok* && $reply == *" pid=$km_pid "* ]] ||
		bad "the parent km (pid $km_pid) does not answer on its socket: '$reply'"
	coproc_send "$px_in" bye
	exec {px_in}>&- 2>/dev/null
	wait "$px_pid"
	local rc=$?
	[ "$rc" = 0 ] || bad "exit status $(status_text "$rc")"
	[ -s "$d/err" ] && show_file stderr "$d/err" && bad "km wrote to stderr"
	end
}

run_procs_fork() {
	pf_exec_listener
	local flavour
	for flavour in gcc musl; do
		pf_no_fd_leak "$flavour"
		pf_chain_stack "$flavour"
		pf_snapshot_refused "$flavour"
		pf_resumed "$flavour"
		pf_mgmt_refused "$flavour"
		pf_setid_snapshot "$flavour"
	done
}
