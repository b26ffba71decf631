# shellcheck shell=bash
# km-shim end to end: the container around km as issue 8's "Done when" asks. The guest
# (tests/guests/ctr_view) sees the bundle's rootfs, hostname, domainname, env, cwd, umask and user
# (root and uid 1000), never a host path; linux.resources.memory.limit ends as ENOMEM in the guest
# (km's --memory, which km-shim passes) and pids.limit as EAGAIN from pthread_create (km's guest
# threads are host threads in the cgroup); linux.seccomp's default action (errno, kill-process);
# --console-socket with process.terminal (tests/tools/console-recv gets the pty master); hooks of
# every kind in order with the right state, and a failing prestart hook; a read-only root,
# maskedPaths and readonlyPaths; the device cgroup (a device node shipped in the rootfs).
# Sourced by run.sh after shim.sh (uses its helpers: shim_cfg, shim, expect_ok, ...); defines
# run_shim_ctr. Needs root, as shim.sh does.

TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $TOOLS in /*) ;; *) TOOLS=$PWD/$TOOLS ;; esac

SHIM_CTR_TESTS=(view user memory pids seccomp_default console hooks hook_fails readonly devices)

# ctr_bundle DIR ARGS...: a bundle in DIR whose rootfs holds ctr_view (and the mount points of
# shim_cfg's mounts), running /ctr_view ARGS.
ctr_bundle() {
	local b=$1
	shift
	mkdir -p "$b/rootfs/proc" "$b/rootfs/dev"
	cp "$GUESTS/gcc/ctr_view" "$b/rootfs/ctr_view"
	shim_cfg "$b" /ctr_view "$@"
}

# ctr_linux BUNDLE JSON: adds members (each followed by a comma) to the config's "linux" object.
ctr_linux() {
	local json=${2//$'\n'/ }
	sed -i "s|\"namespaces\": \[|${json//|/\\|} \"namespaces\": [|" "$1/config.json"
}

# ctr_line FILE LINE: a failed assertion unless FILE has exactly this line.
ctr_line() {
	grep -qxF -- "$2" "$1" || bad "no line '$2' in the program's output"
}

# ctr_show D: the run's output, for diagnostics of a failed test.
ctr_show() {
	[ -n "$T_DIAG" ] || return 0
	show_file stdout "$1/out"
	show_file stderr "$1/err"
}

# The program's view: the rootfs (and nothing of the host), the config's hostname, domainname,
# env, cwd and umask, as root; a write to the read-only root fails with EROFS.
shim_ctr_test_view() {
	local d=$SHIM_WORK/ctr-view b=$SHIM_WORK/ctr-view/bundle
	ctr_bundle "$b" ls / cat /only-in-rootfs cat "$b/config.json" cat "$ROOT/Makefile" env host cwd umask id \
		write /new-file write /wd/new-file
	mkdir -p "$b/rootfs/wd"
	echo "from the rootfs" >"$b/rootfs/only-in-rootfs"
	SHIM_CFG_EXTRA='"domainname": "ctr.example",' shim_cfg "$b" /ctr_view ls / cat /only-in-rootfs \
		cat "$b/config.json" cat "$ROOT/Makefile" env host cwd umask id write /new-file write /wd/new-file
	sed -i -e 's|"env": \["PATH=/", "KM_SHIM_E2E=1"\]|"env": ["PATH=/bin", "ONE=1", "TWO=two words", "EMPTY="]|' \
		-e 's|"cwd": "/"|"cwd": "/wd"|' -e 's|"user": {"uid": 0, "gid": 0}|"user": {"uid": 0, "gid": 0, "umask": 23}|' \
		"$b/config.json"
	shim "$d/r" run --bundle "$b" ctrview
	expect_ok "$d/r" run
	local o=$d/r/out
	ctr_line "$o" "ls /: ctr_view dev only-in-rootfs proc wd"
	ctr_line "$o" "cat /only-in-rootfs: from the rootfs"
	ctr_line "$o" "cat $b/config.json: ENOENT"
	ctr_line "$o" "cat $ROOT/Makefile: ENOENT"
	[ "$(grep '^env: ' "$o" | tr '\n' '|')" = "env: PATH=/bin|env: ONE=1|env: TWO=two words|env: EMPTY=|" ] ||
		bad "the environment is not exactly process.env: $(grep '^env: ' "$o" | tr '\n' '|')"
	ctr_line "$o" "hostname: km-shim-e2e"
	ctr_line "$o" "domainname: ctr.example"
	ctr_line "$o" "cwd: /wd"
	ctr_line "$o" "umask: 0027"
	ctr_line "$o" "id: uid 0 0 gid 0 0 groups"
	ctr_line "$o" "write /new-file: EROFS"
	ctr_line "$o" "write /wd/new-file: EROFS"
	[ "$(uname -n)" != km-shim-e2e ] || bad "the host's hostname changed"
	ctr_show "$d/r"
	root_holds
}

# process.user uid 1000: the program runs as that user, with its additional groups, and cannot
# read a root-owned file of the rootfs that it could as root.
shim_ctr_test_user() {
	local d=$SHIM_WORK/ctr-user b=$SHIM_WORK/ctr-user/bundle
	ctr_bundle "$b" id cat /secret cat /public
	echo "root only" >"$b/rootfs/secret"
	echo "for all" >"$b/rootfs/public"
	chown 0:0 "$b/rootfs/secret" "$b/rootfs/public"
	chmod 0600 "$b/rootfs/secret"
	chmod 0644 "$b/rootfs/public"
	shim "$d/root" run --bundle "$b" ctruser0
	expect_ok "$d/root" "run as root"
	ctr_line "$d/root/out" "cat /secret: root only"
	sed -i 's|"user": {"uid": 0, "gid": 0}|"user": {"uid": 1000, "gid": 1000, "additionalGids": [5, 1001]}|' "$b/config.json"
	shim "$d/r" run --bundle "$b" ctruser
	expect_ok "$d/r" "run as uid 1000"
	ctr_line "$d/r/out" "id: uid 1000 1000 gid 1000 1000 groups 5 1001"
	ctr_line "$d/r/out" "cat /secret: EACCES"
	ctr_line "$d/r/out" "cat /public: for all"
	ctr_show "$d/r"
	root_holds
}

# memory.limit 64 MiB: km-shim passes it to km as --memory and sets the cgroup's limit; the
# guest's mmap ends in ENOMEM below 64 MiB (km's limit, before the cgroup's: km is not
# OOM-killed) and it goes on to exit 0; 32 MiB fit.
shim_ctr_test_memory() {
	local d=$SHIM_WORK/ctr-mem b=$SHIM_WORK/ctr-mem/bundle pid mib
	ctr_bundle "$b" mem 200
	ctr_linux "$b" '"resources": {"memory": {"limit": 67108864}},'
	shim "$d/c" create --bundle "$b" ctrmem
	expect_ok "$d/c" create
	pid=$(shim_pid ctrmem)
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- '--memory=67108864 ' ||
		bad "km's command line lacks --memory=67108864: $(tr '\0' ' ' <"/proc/$pid/cmdline")"
	local cg
	cg=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' "/proc/$pid/cgroup")
	[ "$(cat "/sys/fs/cgroup/memory$cg/memory.limit_in_bytes" 2>/dev/null)" = 67108864 ] ||
		bad "km's memory cgroup '$cg' has no 64 MiB limit"
	# no cgroupsPath: runc's default is relative, so under km-shim's own memory cgroup (on this
	# host /process_api/..., while the other controllers' are /)
	local own
	own=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
	[ "$cg" = "${own%/}/km-shim/ctrmem" ] || bad "km's memory cgroup is '$cg', not under km-shim's own '$own'"
	shim "$d/s" start ctrmem
	expect_ok "$d/s" start
	wait_status ctrmem stopped || bad "still $(shim_status ctrmem)"
	mib=$(sed -nE 's/^mem: stopped after ([0-9]+) MiB: ENOMEM$/\1/p' "$d/c/out")
	if [ -z "$mib" ]; then
		bad "no 'mem: stopped after N MiB: ENOMEM' line (OOM-killed?)"
	elif [ "$mib" -ge 64 ] || [ "$mib" -lt 32 ]; then
		bad "mmap stopped after $mib MiB with a 64 MiB limit (expected 32..63)"
	fi
	expect_status ctrmem stopped
	pid_gone "$pid" || bad "km still runs"
	shim "$d/d" delete ctrmem
	expect_ok "$d/d" delete
	shim_cfg "$b" /ctr_view mem 32
	ctr_linux "$b" '"resources": {"memory": {"limit": 67108864}},'
	shim "$d/r" run --bundle "$b" ctrmem2
	expect_ok "$d/r" "run of 32 MiB"
	ctr_line "$d/r/out" "mem: touched 32 MiB"
	ctr_show "$d/c"
	root_holds
}

# pids.limit N: each guest thread is a host thread of km in the cgroup, so pthread_create fails
# with EAGAIN; 4 more pids give exactly 4 more threads; without the limit 40 threads are made.
# It runs on km's default syscall path whatever path the suite runs: a syscall server is a host
# thread too, `auto` makes at most (CPUs - 1), at the first syscall, so the count stays exact;
# `poll` makes one per thread, when each first exits, so servers and threads race for the same
# pids (docs/cli.md says a pids limit counts them).
shim_ctr_test_pids() {
	local d=$SHIM_WORK/ctr-pids b=$SHIM_WORK/ctr-pids/bundle m10 m14
	local KM_SHIM=${REAL_KM_SHIM:-$KM_SHIM}
	local -x KM_SHIM_SYSCALL_PATH=
	ctr_bundle "$b" threads 40
	shim "$d/free" run --bundle "$b" ctrpids0
	expect_ok "$d/free" "run without a pids limit"
	ctr_line "$d/free/out" "threads: made 40 of 40: ok"
	ctr_linux "$b" '"resources": {"pids": {"limit": 10}},'
	shim "$d/r10" run --bundle "$b" ctrpids10
	expect_ok "$d/r10" "run with pids.limit 10"
	m10=$(sed -nE 's/^threads: made ([0-9]+) of 40: EAGAIN$/\1/p' "$d/r10/out")
	sed -i 's|"limit": 10|"limit": 14|' "$b/config.json"
	shim "$d/r14" run --bundle "$b" ctrpids14
	expect_ok "$d/r14" "run with pids.limit 14"
	m14=$(sed -nE 's/^threads: made ([0-9]+) of 40: EAGAIN$/\1/p' "$d/r14/out")
	if [ -z "$m10" ] || [ -z "$m14" ]; then
		bad "pthread_create did not fail with EAGAIN: '$(cat "$d/r10/out")', '$(cat "$d/r14/out")'"
	else
		[ "$m10" -ge 1 ] && [ "$m10" -lt 10 ] || bad "$m10 threads under pids.limit 10"
		[ "$m14" = $((m10 + 4)) ] || bad "$m14 threads under pids.limit 14, expected $m10 + 4"
		# below the limit: all of them
		shim_cfg "$b" /ctr_view threads "$m10"
		ctr_linux "$b" '"resources": {"pids": {"limit": 10}},'
		shim "$d/below" run --bundle "$b" ctrpidsb
		expect_ok "$d/below" "run below the pids limit"
		ctr_line "$d/below/out" "threads: made $m10 of $m10: ok"
	fi
	ctr_show "$d/r10"
	root_holds
}

# The syscalls a static glibc program needs (tests/e2e/guest_seccomp.sh's GS_NEEDED by name).
CTR_SECCOMP_ALLOW='"read", "write", "close", "fstat", "lseek", "mmap", "mprotect", "munmap", "brk",
	"rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "ioctl", "writev", "sched_yield", "mremap",
	"madvise", "getpid", "exit", "readlink", "getuid", "arch_prctl", "gettid", "futex",
	"sched_getaffinity", "set_tid_address", "exit_group", "tgkill", "openat", "newfstatat",
	"readlinkat", "set_robust_list", "prlimit64", "getrandom", "rseq"'

# ctr_seccomp BUNDLE DEFAULT-ACTION EXTRA: a linux.seccomp allowing CTR_SECCOMP_ALLOW, else
# DEFAULT-ACTION (EXTRA: more members of the seccomp object, each followed by a comma).
ctr_seccomp() {
	ctr_linux "$1" "\"seccomp\": {\"defaultAction\": \"$2\", $3 \"architectures\": [\"SCMP_ARCH_X86_64\"],
	  \"syscalls\": [{\"names\": [$CTR_SECCOMP_ALLOW], \"action\": \"SCMP_ACT_ALLOW\"}]},"
}

# defaultAction ERRNO with defaultErrnoRet: uname (not allowed) returns that errno, the allowed
# ones work; defaultAction KILL_PROCESS: the program dies of SIGSYS at uname, after its output
# from allowed syscalls.
shim_ctr_test_seccomp_default() {
	local d=$SHIM_WORK/ctr-sc b=$SHIM_WORK/ctr-sc/bundle
	ctr_bundle "$b" cat /f host cat /f
	echo "allowed" >"$b/rootfs/f"
	ctr_seccomp "$b" SCMP_ACT_ERRNO '"defaultErrnoRet": 13,'
	shim "$d/e" run --bundle "$b" ctrscerr
	expect_ok "$d/e" "run under defaultAction ERRNO"
	[ "$(cat "$d/e/out")" = $'cat /f: allowed\nhostname: EACCES\ncat /f: allowed' ] ||
		bad "under defaultAction ERRNO (13): '$(tr '\n' '|' <"$d/e/out")'"
	ctr_show "$d/e"
	shim_cfg "$b" /ctr_view cat /f host cat /f
	ctr_seccomp "$b" SCMP_ACT_KILL_PROCESS ""
	shim "$d/k" run --bundle "$b" ctrsckill
	[ "$RC" = 159 ] || bad "under defaultAction KILL_PROCESS: exit status $RC, expected 159 (SIGSYS)"
	[ "$(cat "$d/k/out")" = "cat /f: allowed" ] || bad "under KILL_PROCESS: '$(tr '\n' '|' <"$d/k/out")'"
	ctr_show "$d/k"
	root_holds
}

# process.terminal with --console-socket: console-recv gets the pty master (runc's protocol), the
# program has a tty on 0-2 of process.consoleSize, and its output comes through the master;
# /dev/console is that pty (the spec's MUST).
shim_ctr_test_console() {
	local d=$SHIM_WORK/ctr-con b=$SHIM_WORK/ctr-con/bundle sock
	ctr_bundle "$b" tty cat /f stat /dev/console
	echo "through the pty" >"$b/rootfs/f"
	sed -i -e 's|"terminal": false|"terminal": true, "consoleSize": {"height": 25, "width": 91}|' \
		-e 's|"mode=755"\]}\]|"mode=755"]}, {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666", "mode=0620"]}]|' \
		"$b/config.json"
	mkdir -p "$d"
	sock=$d/console.sock
	timeout -k 5 "$TIMEOUT" "$TOOLS/console-recv" "$sock" >"$d/console.out" 2>"$d/console.err" &
	local recv=$!
	local i
	for ((i = 0; i < TIMEOUT * 20; i++)); do
		[ -S "$sock" ] && break
		sleep 0.05
	done
	shim "$d/c" create --console-socket "$sock" --bundle "$b" ctrcon
	expect_ok "$d/c" "create --console-socket"
	shim "$d/s" start ctrcon
	expect_ok "$d/s" start
	wait "$recv" || bad "console-recv failed: $(cat "$d/console.err")"
	wait_status ctrcon stopped || bad "still $(shim_status ctrcon)"
	tr -d '\r' <"$d/console.out" >"$d/console.txt"
	ctr_line "$d/console.txt" "tty: 0 yes 1 yes 2 yes"
	ctr_line "$d/console.txt" "winsize: 25x91"
	ctr_line "$d/console.txt" "cat /f: through the pty"
	ctr_line "$d/console.txt" "stat /dev/console: chr, fd 0's device"
	grep -q '^console-recv: got fd, name /dev/pts/[0-9]*$' "$d/console.err" || bad "console-recv: $(cat "$d/console.err")"
	[ -s "$d/c/out" ] && bad "the program's output also went to km-shim's stdout"
	if [ -n "$T_DIAG" ]; then
		show_file console "$d/console.out"
		show_file "console-recv stderr" "$d/console.err"
		show_file "create stderr" "$d/c/err"
	fi
	shim "$d/d" delete ctrcon
	expect_ok "$d/d" delete
	root_holds
}

# ctr_hook KIND FILE: a hook appending "KIND <state JSON from stdin>" to FILE.
ctr_hook() {
	printf '"%s": [{"path": "/bin/sh", "args": ["sh", "-c", "echo %s $(cat) >> %s"]}]' "$1" "$1" "$2"
}

# Every kind of hook, in the order of the lifecycle, each with the state it should get: create is
# still going on for prestart, createRuntime and createContainer ("creating", as runc passes it),
# "created" for startContainer, "running" for poststart, "stopped" for poststop.
shim_ctr_test_hooks() {
	local d=$SHIM_WORK/ctr-hooks b=$SHIM_WORK/ctr-hooks/bundle log pid
	ctr_bundle "$b" cat /f
	echo "hooked" >"$b/rootfs/f"
	mkdir -p "$b/rootfs/bin" "$b/rootfs/hooklog" "$d/hooklog"
	cp "$BUSYBOX" "$b/rootfs/bin/sh"
	log=$d/hooklog/log
	: >"$log"
	local k hooks=""
	for k in prestart createRuntime createContainer poststart poststop; do
		hooks+="$(ctr_hook "$k" "$log"), "
	done
	# startContainer runs in the container: the log through a bind mount, sh from the rootfs
	hooks+=$(ctr_hook startContainer /hooklog/log)
	SHIM_CFG_EXTRA="\"annotations\": {\"org.km.test\": \"hooked\"}, \"hooks\": {$hooks}," shim_cfg "$b" /ctr_view cat /f
	sed -i "s|\"mounts\": \[|\"mounts\": [{\"destination\": \"/hooklog\", \"type\": \"bind\", \"source\": \"$d/hooklog\", \"options\": [\"rbind\", \"rw\"]}, |" \
		"$b/config.json"
	shim "$d/c" create --bundle "$b" ctrhooks
	expect_ok "$d/c" create
	pid=$(shim_pid ctrhooks)
	shim "$d/s" start ctrhooks
	expect_ok "$d/s" start
	wait_status ctrhooks stopped || bad "still $(shim_status ctrhooks)"
	ctr_line "$d/c/out" "cat /f: hooked"
	shim "$d/d" delete ctrhooks
	expect_ok "$d/d" delete
	[ "$(cut -d' ' -f1 "$log" | tr '\n' ' ')" = "prestart createRuntime createContainer startContainer poststart poststop " ] ||
		bad "hooks ran as: $(cut -d' ' -f1 "$log" | tr '\n' ' ')"
	local want
	for want in "prestart creating $pid" "createRuntime creating $pid" "createContainer creating $pid" \
		"startContainer created $pid" "poststart running $pid" "poststop stopped"; do
		set -- $want
		local line
		line=$(grep "^$1 " "$log")
		grep -q "\"id\": *\"ctrhooks\"" <<<"$line" || bad "$1: no id in '$line'"
		grep -q "\"status\": *\"$2\"" <<<"$line" || bad "$1: status is not '$2': '$line'"
		grep -q "\"bundle\": *\"$b\"" <<<"$line" || bad "$1: no bundle in '$line'"
		[ -z "${3:-}" ] || grep -q "\"pid\": *$3[,}]" <<<"$line" || bad "$1: pid is not km's $3: '$line'"
		# one document for every hook: the spec's keys with the config's annotations; pid
		# only while km lives (runc omits it once stopped)
		local keys want_keys="annotations,bundle,id,ociVersion,pid,status"
		[ -n "${3:-}" ] || want_keys="annotations,bundle,id,ociVersion,status"
		keys=$(jq -r 'keys | join(",")' <<<"${line#* }" 2>&1)
		[ "$keys" = "$want_keys" ] || bad "$1: keys are '$keys', not '$want_keys': '$line'"
		[ "$(jq -r '.annotations["org.km.test"]' <<<"${line#* }" 2>&1)" = hooked ] ||
			bad "$1: no annotation in '$line'"
	done
	[ -n "$T_DIAG" ] && show_file "hook log" "$log"
	root_holds
}

# A failing prestart hook: create fails with one line, and leaves no container, km or cgroup.
shim_ctr_test_hook_fails() {
	local d=$SHIM_WORK/ctr-hookfail b=$SHIM_WORK/ctr-hookfail/bundle
	ctr_bundle "$b" cat /f
	SHIM_CFG_EXTRA='"hooks": {"prestart": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]},' \
		shim_cfg "$b" /shim_count_never
	cp "$GUESTS/gcc/shim_count" "$b/rootfs/shim_count_never"
	shim "$d/c" create --bundle "$b" ctrhookfail
	expect_error "$d/c" "prestart"
	root_holds
	pgrep -f shim_count_never >/dev/null && bad "a km of the failed create still runs"
	local own
	own=$(sed -n 's/^[0-9]*:memory:\(.*\)$/\1/p' /proc/self/cgroup)
	[ ! -d /sys/fs/cgroup/pids/km-shim/ctrhookfail ] && [ ! -d "/sys/fs/cgroup/memory${own%/}/km-shim/ctrhookfail" ] ||
		bad "the failed create's cgroup is left"
}

# root.readonly false with maskedPaths (a file reads empty, a directory lists empty) and
# readonlyPaths (writes fail with EROFS) while the rest of the root is writable.
shim_ctr_test_readonly() {
	local d=$SHIM_WORK/ctr-ro b=$SHIM_WORK/ctr-ro/bundle
	ctr_bundle "$b" cat /masked-file ls /masked-dir write /rw-file write /ro-dir/x cat /ro-dir/f
	echo "hidden" >"$b/rootfs/masked-file"
	mkdir -p "$b/rootfs/masked-dir" "$b/rootfs/ro-dir"
	echo "hidden" >"$b/rootfs/masked-dir/inside"
	echo "readable" >"$b/rootfs/ro-dir/f"
	sed -i 's|"readonly": true|"readonly": false|' "$b/config.json"
	ctr_linux "$b" '"maskedPaths": ["/masked-file", "/masked-dir", "/no-such-path"], "readonlyPaths": ["/ro-dir", "/no-such-path"],'
	shim "$d/r" run --bundle "$b" ctrro
	expect_ok "$d/r" run
	local o=$d/r/out
	ctr_line "$o" "cat /masked-file: "
	ctr_line "$o" "ls /masked-dir:"
	ctr_line "$o" "write /rw-file: ok"
	ctr_line "$o" "write /ro-dir/x: EROFS"
	ctr_line "$o" "cat /ro-dir/f: readable"
	[ "$(cat "$b/rootfs/masked-file")" = hidden ] || bad "the masked file changed in the rootfs"
	ctr_show "$d/r"
	root_holds
}

# The device cgroup: the rootfs ships a node of /dev/kmsg (1:11; a write-only open needs no
# capability and writes nothing) and one of /dev/null (1:3). With podman's rules (deny all) the
# guest's open of the first, which km makes on its behalf, fails with EPERM while the default
# list lets the second and a linux.devices node through; an allow rule in
# linux.resources.devices opens the first too; the rules are in the container's devices cgroup.
shim_ctr_test_devices() {
	local d=$SHIM_WORK/ctr-dev b=$SHIM_WORK/ctr-dev/bundle
	local args=(openw /kmsg-node openw /null-node openw /dev/null)
	ctr_bundle "$b" "${args[@]}"
	mknod "$b/rootfs/kmsg-node" c 1 11 && mknod "$b/rootfs/null-node" c 1 3 || {
		bad "mknod in the rootfs failed"
		return
	}
	local nodes='"devices": [{"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 438}],'
	ctr_linux "$b" "$nodes \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"}]},"
	shim "$d/r" run --bundle "$b" ctrdev
	expect_ok "$d/r" run
	ctr_line "$d/r/out" "openw /kmsg-node: EPERM"
	ctr_line "$d/r/out" "openw /null-node: ok"
	ctr_line "$d/r/out" "openw /dev/null: ok"
	ctr_show "$d/r"

	ctr_bundle "$b" "${args[@]}"
	ctr_linux "$b" "$nodes \"resources\": {\"devices\": [{\"allow\": false, \"access\": \"rwm\"},
		{\"allow\": true, \"type\": \"c\", \"major\": 1, \"minor\": 11, \"access\": \"w\"}]},"
	shim "$d/r2" run --bundle "$b" ctrdev
	expect_ok "$d/r2" run
	ctr_line "$d/r2/out" "openw /kmsg-node: ok"
	ctr_show "$d/r2"
	if [ -d /sys/fs/cgroup/devices ]; then
		shim "$d/c" create --bundle "$b" ctrdev2
		expect_ok "$d/c" create
		local list
		list=$'\n'$(cat "$(shim_cg_dir devices ctrdev2)/devices.list")$'\n'
		case $list in *$'\n'"a *:* rwm"$'\n'*) bad "the container's devices cgroup allows everything" ;; esac
		case $list in *$'\n'"c 1:11 w"$'\n'*) ;; *) bad "devices.list lacks the config's rule c 1:11 w:$list" ;; esac
		shim "$d/dl" delete --force ctrdev2
		expect_ok "$d/dl" delete
	fi
	root_holds
}

run_shim_ctr() {
	local SHIM_SUITE_NEEDS=("$TOOLS/console-recv")
	shim_suite_ready shim_ctr "make shim tools" "${SHIM_CTR_TESTS[@]}" || return 0
	shim_suite_run shim_ctr "${SHIM_CTR_TESTS[@]}"
}
