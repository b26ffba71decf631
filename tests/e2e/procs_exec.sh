# shellcheck shell=bash
# execve under km (issue 10): what the guests tests/guests/exec_*.c cannot show beside a native
# run. A 32-bit ELF is ENOEXEC (Linux would run it); the guest's seccomp filter stays across
# exec; the management socket (--mgmt) still serves, and snapshots, the program after it exec'd;
# km's internal --exec-state option refuses what km did not make; --trace shows why an exec
# failed; a km-shim container whose shell execs its program runs, checkpoints and restores; a
# resumed program's monotonic clocks do not go back across its exec; only the km the user
# started reports its program's death by a signal, also after an exec.
# Sourced by run.sh after its helpers and after snapshot.sh, mgmt.sh and shim.sh (snap_start,
# snap_wait_line, mgmt_sock, mgmt_expect_ok, shim, shim_bundle, wait_count, last_count,
# first_count); defines run_procs_exec.

procs_exec_elf32() {
	local flavour test d
	for flavour in gcc musl; do
		test=procs_exec/$flavour/elf32
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/procs_exec/$flavour/elf32
		rm -rf "$d" && mkdir -p "$d/cwd"
		if ! gcc -m32 -nostdlib -static -o "$d/elf32" "$ROOT/tests/fixtures/elf32_exit.S" 2>/dev/null; then
			cp "$GUESTS/$flavour/hello" "$d/elf32" # ELFCLASS32 patched in, as run.sh's bad-input case
			printf '\x01' | dd of="$d/elf32" bs=1 seek=4 conv=notrunc status=none
		fi
		chmod 755 "$d/elf32"
		run "$d" "$d/cwd" /dev/null -- "$KM" "$GUESTS/$flavour/exec_errors" try "$d/elf32"
		[ "$RC" = 0 ] && grep -q '^PASSED' "$d/out" || bad "exit $(status_text "$RC"): $(head -c 300 "$d/out")"
		[ -s "$d/err" ] && bad "stderr: $(head -c 300 "$d/err")"
		end
	done
}

procs_exec_seccomp() {
	local flavour test d
	for flavour in gcc musl; do
		test=procs_exec/$flavour/guest-seccomp
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/procs_exec/$flavour/seccomp
		rm -rf "$d" && mkdir -p "$d/cwd"
		printf 'km-guest-seccomp 1\ndefault allow 0\n83 errno 1\n' >"$d/rules" # mkdir: EPERM
		run "$d" "$d/cwd" /dev/null -- "$KM" --guest-seccomp="$d/rules" "$GUESTS/$flavour/exec_seccomp" filtered
		[ "$RC" = 0 ] && grep -q '^ok mkdir before execve: the filter holds' "$d/out" &&
			grep -q '^ok mkdir after execve: the filter holds' "$d/out" && grep -q '^PASSED' "$d/out" ||
			bad "exit $(status_text "$RC"): $(tr '\n' ' ' <"$d/out" | head -c 400)"
		end
	done
}

# A program that exec'd is still the management socket's: snapshot it (mode=stop) and resume.
procs_exec_mgmt() {
	local test=procs_exec/mgmt-snapshot d=$WORK/procs_exec/mgmt bin=$GUESTS/gcc/mgmt_ticker sock bg
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d/cwd"
	sock=$(mgmt_sock "$d")
	rm -f "$sock"
	mkfifo "$d/in"
	snap_start "$d/orig" "$d/cwd" "$d/in" -- "$KM" --mgmt="$sock" "$BUSYBOX" sh -c "read x; exec $bin"
	bg=$BG_PID
	local i ino=""
	for ((i = 0; i < 200; i++)); do # the shell waits for a line: the socket is the first km's
		[ -S "$sock" ] && ino=$(stat -c '%i %z' "$sock") && break
		sleep 0.05
	done
	echo go >"$d/in"
	if ! snap_wait_line "$d/orig/out" "tick 3" 10; then
		bad "the exec'd ticker did not start within 10 s: $(head -c 300 "$d/orig/err")"
		kill "$bg" 2>/dev/null
		wait "$bg"
		end
		return
	fi
	[ -n "$ino" ] && [ "$(stat -c '%i %z' "$sock" 2>/dev/null)" = "$ino" ] ||
		bad "the socket file was made again across the exec ($ino, now $(stat -c '%i %z' "$sock" 2>&1)): the listener was not handed over"
	mgmt_expect_ok "$d" snap "$sock" snapshot "path=$d/s.snap" mode=stop
	wait "$bg"
	RC=$?
	[ "$RC" = 0 ] || bad "km after a stop-mode snapshot of the exec'd program: $(status_text "$RC")"
	[ -e "$sock" ] && bad "the socket file was left behind"
	run "$d/res" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
	[ "$RC" = 0 ] && grep -q '^done' "$d/res/out" || bad "resumed: exit $(status_text "$RC"), $(tail -c 200 "$d/res/out")"
	grep -q '^tick 1$' "$d/res/out" && bad "the resumed program started over"
	end
}

# --exec-state is km's own: a guest-range fd, a file km did not seal, garbage, are refused.
procs_exec_state() {
	local test=procs_exec/state-refused d=$WORK/procs_exec/state hello=$GUESTS/gcc/hello
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d/cwd"
	head -c 4096 /dev/urandom >"$d/junk"
	run "$d/low" "$d/cwd" /dev/null -- bash -c 'exec "$0" --exec-state=5 -- hello 5<"$1"' "$KM" "$d/junk"
	[ "$RC" = 1 ] && grep -q "not one of km's fds" "$d/low/err" || bad "fd 5: $(status_text "$RC"), $(cat "$d/low/err")"
	run "$d/high" "$d/cwd" /dev/null -- bash -c 'exec "$0" --exec-state=1005 -- hello 1005<"$1"' "$KM" "$d/junk"
	[ "$RC" = 1 ] && grep -q "not a state km made" "$d/high/err" || bad "fd 1005: $(status_text "$RC"), $(cat "$d/high/err")"
	run "$d/mix" "$d/cwd" /dev/null -- "$KM" --exec-state=1005 --env=A=B -- "$hello"
	[ "$RC" = 1 ] && grep -q "goes with nothing else" "$d/mix/err" || bad "with --env: $(status_text "$RC"), $(cat "$d/mix/err")"
	[ -s "$d/low/out$d/high/out" ] && bad "a program ran"
	end
}

# --trace names why an exec failed (the ELF check's reason) and the new km goes on tracing.
procs_exec_trace() {
	local test=procs_exec/trace d=$WORK/procs_exec/trace
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d/cwd"
	run "$d" "$d/cwd" /dev/null -- "$KM" --trace "$BUSYBOX" sh -c "exec $GUESTS/musl/hello"
	[ "$RC" = 0 ] && grep -q 'hello' "$d/out" || bad "exit $(status_text "$RC"): $(head -c 300 "$d/out")"
	grep -q '^execve(' "$d/err" || bad "no execve line in the trace"
	grep -q '^exit_group(0) = ?' "$d/err" || bad "the new program is not traced"
	printf 'not a program\n' >"$d/text"
	chmod 755 "$d/text"
	run "$d/2" "$d/cwd" /dev/null -- "$KM" --trace "$GUESTS/gcc/exec_errors" try "$d/text"
	[ "$RC" = 0 ] || bad "exec_errors try: exit $(status_text "$RC")"
	grep -q "^km: execve $d/text: .*(ENOEXEC)\$" "$d/2/err" || bad "no line saying why: $(grep -m2 execve "$d/2/err")"
	end
}

# A container whose program execs (no fork: busybox sh execs its last command): km-shim's km
# re-executes itself inside the container (its fd on its own binary, opened through /proc).
procs_exec_shim() {
	local test=procs_exec/shim-sh-exec d=$WORK/procs_exec/shim b
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if [ ! -x "$KM_SHIM" ] || [ "$(id -u)" != 0 ]; then
		bad "needs root and km-shim ($KM_SHIM)"
		end
		return
	fi
	b=$d/bundle
	rm -rf "$d" && mkdir -p "$b/rootfs"
	cp "$BUSYBOX" "$b/rootfs/busybox"
	local SHIM_ROOT=$d/root
	KM_SHIM_KM=${KM_SHIM_KM:-$KM} shim_bundle "$b" /busybox sh -c 'exec /shim_count 3 0 7'
	KM_SHIM_KM=${KM_SHIM_KM:-$KM} shim "$d/r" run --bundle "$b" shexec
	[ "$RC" = 7 ] || bad "run: exit status $(status_text "$RC"), expected the exec'd program's 7: $(head -c 300 "$d/r/err")"
	grep -qx 'count 3' "$d/r/out" || bad "no 'count 3' from the exec'd program: $(head -c 300 "$d/r/out")"
	"$KM_SHIM" --root "$SHIM_ROOT" delete --force shexec >/dev/null 2>&1
	# checkpoint and restore after the exec: the management listener km-shim passed (--mgmt-fd)
	# crossed the exec
	KM_SHIM_KM=${KM_SHIM_KM:-$KM} shim_bundle "$b" /busybox sh -c 'exec /shim_count 1000000 20'
	KM_SHIM_KM=${KM_SHIM_KM:-$KM} shim "$d/r2" run -d --bundle "$b" shcr
	if ! wait_count "$d/r2/out" 5; then
		bad "no count from the exec'd program: $(head -c 300 "$d/r2/out")"
	else
		KM_SHIM_KM=${KM_SHIM_KM:-$KM} shim "$d/c" checkpoint shcr
		[ "$RC" = 0 ] || bad "checkpoint after the exec: $(status_text "$RC"), $(head -c 300 "$d/c/err")"
		local last
		last=$(last_count "$d/r2/out")
		"$KM_SHIM" --root "$SHIM_ROOT" delete --force shcr >/dev/null 2>&1
		KM_SHIM_KM=${KM_SHIM_KM:-$KM} shim "$d/rs" restore --detach --bundle "$b" shcr
		[ "$RC" = 0 ] || bad "restore: $(status_text "$RC"), $(head -c 300 "$d/rs/err")"
		wait_count "$d/rs/out" $((last + 3)) || bad "no count after restore (last before: $last)"
		[ "$(first_count "$d/rs/out")" = $((last + 1)) ] || bad "restored count starts at $(first_count "$d/rs/out"), expected $((last + 1))"
	fi
	"$KM_SHIM" --root "$SHIM_ROOT" delete --force shcr >/dev/null 2>&1
	end
}

# A resumed program whose clocks run ahead of the host's (its snapshot was taken with
# KM_TEST_CLOCK_AHEAD, a day: as on a host up a day longer) execs: the exec'd program's
# monotonic clocks must not go back (the offset crosses the exec in km's exec state).
procs_exec_clock() {
	local flavour test d
	for flavour in gcc musl; do
		test=procs_exec/$flavour/clock-resumed
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/procs_exec/$flavour/clock
		rm -rf "$d" && mkdir -p "$d/cwd"
		run "$d/take" "$d/cwd" /dev/null KM_TEST_CLOCK_AHEAD=86400 -- \
			"$KM" "$GUESTS/$flavour/exec_clock" snap "$d/c.snap"
		[ "$RC" = 0 ] && [ -f "$d/c.snap" ] || bad "taking the snapshot: $(status_text "$RC"), $(head -c 300 "$d/take/err")"
		run "$d/resume" "$d/cwd" /dev/null -- "$KM" "$d/c.snap"
		[ "$RC" = 0 ] || bad "resumed: exit status $(status_text "$RC"), expected 0"
		grep -q '^FAIL' "$d/resume/out" && bad "$(grep -m3 -A1 '^FAIL' "$d/resume/out" | tr '\n' ' ')"
		grep -q '^PASSED' "$d/resume/out" || bad "the exec'd program did not pass its checks"
		[ -s "$d/resume/err" ] && bad "stderr: $(head -c 300 "$d/resume/err")"
		end
	done
}

# Who reports a program's death by a signal: the km the user started does, also after its
# program exec'd; a forked child's km does not, also after it exec'd (twice), as natively the
# dying process says nothing and the shell reports what it reports.
procs_exec_report() {
	local test=procs_exec/death-report d=$WORK/procs_exec/report bb=$BUSYBOX
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d/cwd"
	run "$d/top" "$d/cwd" /dev/null -- "$KM" "$bb" sh -c 'exec "$0" sh -c "kill \$\$"' "$bb"
	[ "$RC" = 143 ] || bad "the user's km after an exec: exit status $(status_text "$RC"), expected 143"
	[ "$(wc -l <"$d/top/err")" = 1 ] && grep -q '^km: .*: killed by SIGTERM' "$d/top/err" ||
		bad "the user's km after an exec did not say how its program died: $(head -c 300 "$d/top/err")"
	run "$d/child" "$d/cwd" /dev/null -- "$KM" "$bb" sh -c \
		'"$0" sh -c "exec \"\$0\" sh -c \"kill \\\$\\\$\"" "$0"; echo "child: $?"' "$bb"
	[ "$RC" = 0 ] || bad "a forked and exec'd child: exit status $(status_text "$RC"), expected 0"
	grep -qx 'child: 143' "$d/child/out" || bad "the child's status: $(head -c 300 "$d/child/out")"
	# (the shell may say "Terminated" itself, as natively)
	grep -q '^km:' "$d/child/err" && bad "a km line for a forked and exec'd child's death: $(head -c 300 "$d/child/err")"
	end
}

run_procs_exec() {
	procs_exec_elf32
	procs_exec_seccomp
	procs_exec_mgmt
	procs_exec_state
	procs_exec_trace
	procs_exec_shim
	procs_exec_clock
	procs_exec_report
}
