# shellcheck shell=bash
# km-shim end to end (issue 8): the OCI lifecycle with state checks at each step, run in the
# foreground and detached, kill by number and name, delete --force, bad input (one line, exit 1,
# nothing left behind), checkpoint/restore of a counter (the count goes on), restore under a new id
# while the original runs, three restores of one image at once, pause/checkpoint/resume as
# containerd does it, and a km-shim killed -9 during create cleaned by delete --force.
# Sourced by run.sh; defines run_shim. Needs root (namespaces, cgroups), as CI runs.
#
# Each container gets a bundle made here: rootfs/ holding a test guest (shim_count) and a
# config.json written by the test. km-shim runs with a private --root under $WORK, and every
# container left at the end is deleted with --force.

KM_SHIM=${KM_SHIM:-$ROOT/build/bin/km-shim}
case $KM_SHIM in /*) ;; *) KM_SHIM=$PWD/$KM_SHIM ;; esac

# shim_cfg BUNDLE ARGS...: writes BUNDLE/config.json running ARGS (paths inside the rootfs), with
# $SHIM_CFG_EXTRA (more top-level members, each followed by a comma) if set.
shim_cfg() {
	local b=$1 args="" a
	shift
	for a in "$@"; do args+="${args:+, }\"$a\""; done
	cat >"$b/config.json" <<-EOF
		{
		  "ociVersion": "1.0.2",
		  "process": {
		    "terminal": false,
		    "user": {"uid": 0, "gid": 0},
		    "args": [$args],
		    "env": ["PATH=/", "KM_SHIM_E2E=1"],
		    "cwd": "/"
		  },
		  "root": {"path": "rootfs", "readonly": true},
		  ${SHIM_CFG_EXTRA:-}
		  "hostname": "km-shim-e2e",
		  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
		             {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]}],
		  "linux": {
		    "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]
		  }
		}
	EOF
}

# shim_bundle DIR ARGS...: a bundle in DIR whose rootfs holds shim_count, running ARGS.
shim_bundle() {
	local b=$1
	shift
	mkdir -p "$b/rootfs"
	cp "$GUESTS/gcc/shim_count" "$b/rootfs/shim_count"
	shim_cfg "$b" "$@"
}

# shim_cg_dir CONTROLLER ID: the directory of km-shim's default cgroup for container ID in that
# controller's hierarchy: km-shim/ID under this process's own cgroup there (as km-shim resolves
# the relative default), on a v1/hybrid or a pure v2 host.
shim_cg_dir() {
	local own
	if [ -d "/sys/fs/cgroup/$1" ]; then
		own=$(awk -F: -v c="$1" '{ n = split($2, a, ","); for (i = 1; i <= n; i++) if (a[i] == c) { print $3; exit } }' /proc/self/cgroup)
		echo "/sys/fs/cgroup/$1${own%/}/km-shim/$2"
	else
		own=$(sed -n 's/^0:://p' /proc/self/cgroup)
		echo "/sys/fs/cgroup${own%/}/km-shim/$2"
	fi
}

# shim_cg_children: every container cgroup under km-shim's default parent, in every hierarchy
# (sorted paths), to see what the tests leave.
shim_cg_children() {
	local c
	for c in memory pids cpu cpuacct devices; do
		find "$(dirname "$(shim_cg_dir "$c" x)")" -mindepth 1 -maxdepth 1 -type d 2>/dev/null
	done | sort
}

# shim DIR ARGS...: runs km-shim --root $SHIM_ROOT ARGS with stdout/stderr in DIR/out, DIR/err;
# sets RC. km's output (the container's stdio) goes there too for create/run/restore.
shim() {
	local d=$1
	shift
	mkdir -p "$d"
	timeout -k 5 "$TIMEOUT" "$KM_SHIM" --root "$SHIM_ROOT" "$@" >"$d/out" 2>"$d/err" </dev/null
	RC=$?
}

# shim_bg OUT ARGS...: km-shim ARGS in the background (stdout+stderr to OUT); BG_PID.
shim_bg() {
	local out=$1
	shift
	timeout -k 5 "$TIMEOUT" "$KM_SHIM" --root "$SHIM_ROOT" "$@" >"$out" 2>&1 </dev/null &
	BG_PID=$!
}

# shim_status ID: the container's status from `state` ("missing" if state fails).
shim_status() {
	local s
	s=$("$KM_SHIM" --root "$SHIM_ROOT" state "$1" 2>/dev/null) || { echo missing; return; }
	sed -n 's/.*"status": *"\([a-z]*\)".*/\1/p' <<<"$s"
}

# shim_pid ID: the pid `state` reports.
shim_pid() {
	"$KM_SHIM" --root "$SHIM_ROOT" state "$1" 2>/dev/null | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p'
}

# expect_status ID STATUS: a failed assertion unless `state` says STATUS.
expect_status() {
	local s
	s=$(shim_status "$1")
	[ "$s" = "$2" ] || bad "container $1: status '$s', expected '$2'"
}

# wait_status ID STATUS: waits (up to TIMEOUT) for the status; true if reached.
wait_status() {
	local i
	for ((i = 0; i < TIMEOUT * 20; i++)); do
		[ "$(shim_status "$1")" = "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_count FILE N: waits (up to TIMEOUT) until FILE has a "count M" line with M >= N.
wait_count() {
	local i
	for ((i = 0; i < TIMEOUT * 20; i++)); do
		[ "$(last_count "$1")" -ge "$2" ] 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# last_count FILE / first_count FILE: the last / first number of the "count N" lines (0 if none).
last_count() {
	local n
	n=$(grep -a '^count ' "$1" 2>/dev/null | tail -1 | cut -d' ' -f2)
	echo "${n:-0}"
}
first_count() {
	local n
	n=$(grep -a '^count ' "$1" 2>/dev/null | head -1 | cut -d' ' -f2)
	echo "${n:-0}"
}

# counts_consecutive FILE: the "count" lines go up by one, without gap or repeat.
counts_consecutive() {
	grep -a '^count ' "$1" | cut -d' ' -f2 | awk 'NR > 1 && $1 != prev + 1 { exit 1 } { prev = $1 }'
}

# expect_error D WORDS: the last km-shim call (in D) failed with exit status 1 and exactly one
# line on stderr, "km-shim: ..." containing WORDS.
expect_error() {
	local d=$1 words=$2
	[ "$RC" = 1 ] || bad "exit status $RC, expected 1"
	[ "$(wc -l <"$d/err")" = 1 ] || bad "$(wc -l <"$d/err") lines on stderr, expected 1"
	head -1 "$d/err" | grep -q '^km-shim: ' || bad "stderr does not start with 'km-shim: '"
	grep -qF -- "$words" "$d/err" || bad "stderr does not mention '$words'"
	[ -n "$T_DIAG" ] && show_file stderr "$d/err"
}

# expect_ok D WHAT: the last call succeeded.
expect_ok() {
	if [ "$RC" != 0 ]; then
		bad "$2: exit status $RC"
		show_file stderr "$1/err"
	fi
}

# root_holds IDS...: the state root holds exactly these container directories (no temporary or
# half-made ones).
root_holds() {
	local want have
	want=$(printf '%s\n' "$@" | sed '/^$/d' | sort | tr '\n' ' ')
	have=$(ls -A "$SHIM_ROOT" 2>/dev/null | sort | tr '\n' ' ')
	[ "$want" = "$have" ] || bad "state root holds '$have', expected '$want'"
}

# pid_gone PID: the process is gone or a zombie.
pid_gone() {
	[ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# --- tests -----------------------------------------------------------------------------------

shim_test_lifecycle() {
	local d=$SHIM_WORK/life b=$SHIM_WORK/life/bundle pid
	shim_bundle "$b" /shim_count 1000000 20 0 handle
	shim "$d/c" create --bundle "$b" --pid-file "$d/pidfile" life
	expect_ok "$d/c" create
	expect_status life created
	pid=$(shim_pid life)
	[ -n "$pid" ] && [ "$pid" -gt 0 ] || bad "no pid in state after create"
	[ "$(cat "$d/pidfile" 2>/dev/null)" = "$pid" ] || bad "pid file '$(cat "$d/pidfile" 2>/dev/null)' != state pid '$pid'"
	[ "$(tail -c 1 "$d/pidfile" | od -An -c | tr -d ' ')" != '\n' ] || bad "pid file ends with a newline"
	[ "$(readlink "/proc/$pid/exe" 2>/dev/null | sed 's|.*/||')" = "$(basename "$KM")" ] ||
		bad "pid $pid is not km: $(readlink "/proc/$pid/exe" 2>/dev/null)"
	[ "$(last_count "$d/c/out")" = 0 ] || bad "the program ran before start"
	shim "$d/l" list --format json
	grep -q '"id":"life"' "$d/l/out" && grep -q '"status":"created"' "$d/l/out" || bad "list json: $(cat "$d/l/out")"
	shim "$d/s" start life
	expect_ok "$d/s" start
	expect_status life running
	wait_count "$d/c/out" 3 || bad "no count after start"
	grep -qx 'hostname km-shim-e2e' "$d/c/out" || bad "the program did not see the config's hostname"
	shim "$d/s2" start life
	expect_error "$d/s2" "already running"
	shim "$d/ps" ps --format json life
	grep -q "^\[$pid\]\$\|[[,]$pid[],]" "$d/ps/out" || bad "ps --format json: $(cat "$d/ps/out"), expected km's pid $pid"
	shim "$d/q" list -q
	grep -qx life "$d/q/out" || bad "list -q: $(cat "$d/q/out")"
	shim "$d/dl" delete life
	expect_error "$d/dl" "that is not stopped"
	expect_status life running
	shim "$d/k" kill life TERM
	expect_ok "$d/k" "kill TERM"
	wait_status life stopped || bad "still $(shim_status life) after kill TERM"
	grep -qx 'signal 15' "$d/c/out" || bad "the program's SIGTERM handler did not run"
	pid_gone "$pid" || bad "km (pid $pid) still runs"
	[ "$(shim_pid life)" = 0 ] || bad "a stopped container's state shows pid $(shim_pid life), not 0"
	shim "$d/k2" kill life 9
	expect_error "$d/k2" "container not running"
	shim "$d/d" delete life
	expect_ok "$d/d" delete
	shim "$d/st" state life
	expect_error "$d/st" "container \"life\" does not exist"
	root_holds
}

shim_test_run_foreground() {
	local d=$SHIM_WORK/fg b=$SHIM_WORK/fg/bundle
	shim_bundle "$b" /shim_count 3 0 7
	shim "$d/r" run --bundle "$b" fg
	[ "$RC" = 7 ] || bad "run: exit status $RC, expected the program's 7"
	grep -qx 'count 3' "$d/r/out" || bad "run: no 'count 3' in the output"
	root_holds
	shim "$d/r2" run --keep --bundle "$b" fg
	[ "$RC" = 7 ] || bad "run --keep: exit status $RC, expected 7"
	expect_status fg stopped
	shim "$d/d" delete fg
	expect_ok "$d/d" "delete after run --keep"
	root_holds
	# a signal ends the program: 128 + signal, as a shell reports it
	shim_bundle "$b" /shim_count 1000000 20
	shim_bg "$d/bg.out" run --bundle "$b" fgsig
	local bg=$BG_PID
	wait_count "$d/bg.out" 2 || bad "foreground run: no count"
	shim "$d/k" kill fgsig KILL
	expect_ok "$d/k" "kill KILL"
	wait "$bg"
	local rc=$?
	[ "$rc" = 137 ] || bad "run killed by SIGKILL: exit status $rc, expected 137"
	root_holds
}

shim_test_run_detached() {
	local d=$SHIM_WORK/det b=$SHIM_WORK/det/bundle pid
	shim_bundle "$b" /shim_count 1000000 20 0 handle
	shim "$d/r" run -d --pid-file "$d/pid" --bundle "$b" det
	expect_ok "$d/r" "run -d"
	expect_status det running
	pid=$(cat "$d/pid" 2>/dev/null)
	wait_count "$d/r/out" 2 || bad "run -d: no count"
	shim "$d/k" kill det sigusr1
	expect_ok "$d/k" "kill sigusr1"
	wait_status det stopped || bad "still $(shim_status det) after SIGUSR1"
	pid_gone "$pid" || bad "km still runs after SIGUSR1"
	# kill by number, for a second container
	shim "$d/r2" run --detach --bundle "$b" det2
	expect_ok "$d/r2" "run --detach"
	# its handler must be in place first: before it, SIGTERM is at its default action, which an
	# init does not receive
	wait_count "$d/r2/out" 1 || bad "run --detach: no count from det2"
	shim "$d/k2" kill det2 15
	expect_ok "$d/k2" "kill 15"
	wait_status det2 stopped || bad "still $(shim_status det2) after kill 15"
	shim "$d/d" delete det
	shim "$d/d2" delete det2
	root_holds
}

shim_test_delete_force() {
	local d=$SHIM_WORK/force b=$SHIM_WORK/force/bundle pid
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" force
	pid=$(shim_pid force)
	shim "$d/d" delete force
	expect_error "$d/d" "cannot delete container \"force\" that is not stopped"
	shim "$d/f" delete --force force
	expect_ok "$d/f" "delete --force"
	pid_gone "$pid" || bad "km (pid $pid) survived delete --force"
	root_holds
	# a created container that is never started
	shim "$d/c" create --bundle "$b" force2
	pid=$(shim_pid force2)
	shim "$d/f2" delete force2
	expect_ok "$d/f2" "delete of a created container"
	pid_gone "$pid" || bad "km (pid $pid) of a created container survived delete"
	root_holds
}

shim_test_bad_input() {
	local d=$SHIM_WORK/bad b=$SHIM_WORK/bad/bundle
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/1" create --bundle "$SHIM_WORK/no-such-bundle" x
	expect_error "$d/1" "no-such-bundle"
	mkdir -p "$d/empty"
	shim "$d/2" create --bundle "$d/empty" x
	expect_error "$d/2" "config.json"
	mkdir -p "$d/badjson/rootfs"
	echo '{"ociVersion": "1.0.2", "process": ' >"$d/badjson/config.json"
	shim "$d/3" create --bundle "$d/badjson" x
	expect_error "$d/3" "config.json"
	mkdir -p "$d/badtype/rootfs"
	echo '{"ociVersion": "1.0.2", "process": {"args": "notalist", "cwd": "/"}, "root": {"path": "rootfs"}}' >"$d/badtype/config.json"
	shim "$d/4" create --bundle "$d/badtype" x
	expect_error "$d/4" "process.args"
	root_holds
	# a dynamically linked km cannot run inside the container: said at create, not as ENOENT
	KM_SHIM_KM=/bin/true shim "$d/dyn" create --bundle "$b" x
	expect_error "$d/dyn" "dynamically linked"
	KM_SHIM_KM=$ROOT/tests/e2e/fake-km.sh shim "$d/notelf" create --bundle "$b" x
	expect_error "$d/notelf" "not an x86-64 ELF executable"
	root_holds
	for cmd in state start kill delete pause resume checkpoint; do
		shim "$d/u-$cmd" "$cmd" nosuch
		expect_error "$d/u-$cmd" "container \"nosuch\" does not exist"
	done
	shim "$d/id" create --bundle "$b" "a/b"
	expect_error "$d/id" "invalid container id"
	shim "$d/c" create --bundle "$b" dup
	expect_ok "$d/c" create
	shim "$d/dup" create --bundle "$b" dup
	expect_error "$d/dup" "container \"dup\" already exists"
	expect_status dup created
	shim "$d/s1" start dup
	expect_ok "$d/s1" start
	shim "$d/s2" start dup
	expect_error "$d/s2" "already running"
	shim "$d/k" kill dup 9
	wait_status dup stopped || bad "dup did not stop"
	shim "$d/s3" start dup
	expect_error "$d/s3" "has stopped"
	shim "$d/cp" checkpoint --image-path "$d/img" dup
	expect_error "$d/cp" "not running"
	[ ! -e "$d/img/km.snap" ] || bad "a checkpoint of a stopped container wrote km.snap"
	expect_status dup stopped
	root_holds dup
	shim "$d/del" delete dup
	shim "$d/r1" restore --image-path "$d/no-image" --bundle "$b" r1
	expect_error "$d/r1" "no-image"
	mkdir -p "$d/empty-image"
	shim "$d/r2" restore --image-path "$d/empty-image" --bundle "$b" r2
	expect_error "$d/r2" "km.snap is missing"
	mkdir -p "$d/corrupt"
	head -c 4096 /dev/urandom >"$d/corrupt/km.snap"
	shim "$d/r3" restore --image-path "$d/corrupt" --bundle "$b" r3
	[ "$RC" = 1 ] || bad "restore of a corrupt image: exit status $RC, expected 1"
	grep -q '^km-shim: .*km exited with status 1' "$d/r3/err" || bad "restore of a corrupt image: no km-shim line saying km failed"
	grep -q '^km: ' "$d/r3/err" || bad "restore of a corrupt image: km's reason missing"
	[ -n "$T_DIAG" ] && show_file stderr "$d/r3/err"
	shim "$d/ex" exec dup /bin/sh
	expect_error "$d/ex" "exec: km cannot run a second process in a container yet"
	shim "$d/sd" --systemd-cgroup list
	expect_error "$d/sd" "--systemd-cgroup"
	shim "$d/fl" create --bogus x
	expect_error "$d/fl" "flag provided but not defined: -bogus"
	root_holds
	# every CMD --help exits 0 (podman probes checkpoint --help)
	for cmd in create start run state kill delete list ps pause resume events update features spec checkpoint restore exec; do
		shim "$d/h-$cmd" "$cmd" --help
		[ "$RC" = 0 ] && grep -q "km-shim $cmd" "$d/h-$cmd/out" || bad "$cmd --help: exit $RC, $(head -1 "$d/h-$cmd/out")"
	done
}

# The json log as containerd reads it: the error is the last "error" object.
shim_test_log() {
	local d=$SHIM_WORK/log
	mkdir -p "$d"
	shim "$d/1" --log "$d/log.json" --log-format json start nosuch
	expect_error "$d/1" "does not exist"
	grep -q '^{"level":"error","msg":"container \\"nosuch\\" does not exist","time":"[0-9]\{4\}-[0-9][0-9]-[0-9][0-9]T[0-9:]\{8\}Z"}$' "$d/log.json" ||
		bad "json log: $(cat "$d/log.json")"
}

# checkpoint (the container ends), restore under the same id: the count goes on from there.
shim_test_checkpoint_restore() {
	local d=$SHIM_WORK/cr b=$SHIM_WORK/cr/bundle last first
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" cr
	wait_count "$d/r/out" 5 || bad "no count before checkpoint"
	shim "$d/c" checkpoint cr
	expect_ok "$d/c" checkpoint
	for f in km.snap km-checkpoint.json inventory.img; do
		[ -s "$b/checkpoint/$f" ] || bad "the default image directory lacks $f"
	done
	[ "$(od -An -tx4 -N4 "$b/checkpoint/inventory.img" 2>/dev/null | tr -d ' ')" = 58313116 ] ||
		bad "inventory.img does not start with CRIU's inventory magic"
	grep -q '"id": "cr"' "$b/checkpoint/km-checkpoint.json" || bad "km-checkpoint.json lacks the id"
	grep -q "\"config_digest\": \"sha256:$(sha256sum "$b/config.json" | cut -d' ' -f1)\"" "$b/checkpoint/km-checkpoint.json" ||
		bad "km-checkpoint.json lacks config.json's digest"
	grep -q '"memory": [1-9]' "$b/checkpoint/km-checkpoint.json" || bad "km-checkpoint.json lacks km's sizes"
	wait_status cr stopped || bad "still $(shim_status cr) after checkpoint without --leave-running"
	last=$(last_count "$d/r/out")
	shim "$d/d" delete cr
	shim "$d/rs" restore --detach --bundle "$b" cr
	expect_ok "$d/rs" restore
	expect_status cr running
	wait_count "$d/rs/out" $((last + 3)) || bad "no count after restore"
	first=$(first_count "$d/rs/out")
	[ "$first" = $((last + 1)) ] || bad "restored count starts at $first, expected $((last + 1))"
	counts_consecutive "$d/rs/out" || bad "restored counts are not consecutive"
	shim "$d/f" delete --force cr
	root_holds
}

# checkpoint --leave-running, then the image restored under a new id while the original runs,
# and three restores of one image at once (foreground restore passes the exit status through).
shim_test_restore_many() {
	local d=$SHIM_WORK/many b=$SHIM_WORK/many/bundle last i
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" orig
	wait_count "$d/r/out" 3 || bad "no count before checkpoint"
	shim "$d/c" checkpoint --image-path "$d/img" --work-path "$d/work" --leave-running --leave-running orig
	expect_ok "$d/c" "checkpoint --leave-running"
	expect_status orig running
	last=$(last_count "$d/r/out")
	shim "$d/rs" restore -d --image-path "$d/img" --bundle "$b" copy
	expect_ok "$d/rs" "restore under a new id"
	expect_status orig running
	expect_status copy running
	local before
	before=$(last_count "$d/r/out")
	wait_count "$d/rs/out" 3 || bad "the copy does not count"
	wait_count "$d/r/out" $((before + 2)) || bad "the original stopped counting"
	[ "$(first_count "$d/rs/out")" -le "$((last + 1))" ] && [ "$(first_count "$d/rs/out")" -ge 2 ] ||
		bad "the copy starts at $(first_count "$d/rs/out"), not near the checkpoint's $last"
	local pids=()
	for i in 1 2 3; do
		shim_bg "$d/t$i.out" restore --detach --image-path "$d/img" --bundle "$b" "three$i"
		pids+=("$BG_PID")
	done
	for i in 0 1 2; do
		wait "${pids[$i]}" || bad "restore three$((i + 1)) failed: $(cat "$d/t$((i + 1)).out" | grep km-shim)"
	done
	for i in 1 2 3; do
		expect_status "three$i" running
		wait_count "$d/t$i.out" 3 || bad "three$i does not count"
		counts_consecutive "$d/t$i.out" || bad "three$i: counts not consecutive"
	done
	for id in orig copy three1 three2 three3; do
		shim "$d/f-$id" delete --force "$id"
		expect_ok "$d/f-$id" "delete --force $id"
	done
	root_holds
}

# As containerd checkpoints: pause, checkpoint --leave-running, resume.
shim_test_pause_checkpoint() {
	local d=$SHIM_WORK/pause b=$SHIM_WORK/pause/bundle n1 n2
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" pz
	wait_count "$d/r/out" 3 || bad "no count before pause"
	shim "$d/p" pause pz
	expect_ok "$d/p" pause
	expect_status pz paused
	n1=$(last_count "$d/r/out")
	sleep 0.3
	n2=$(last_count "$d/r/out")
	[ "$n1" = "$n2" ] || bad "a paused container counted from $n1 to $n2"
	shim "$d/p2" pause pz
	expect_error "$d/p2" "not running"
	shim "$d/c" checkpoint --image-path "$d/img" --work-path "$d/w" --file-locks --leave-running pz
	expect_ok "$d/c" "checkpoint of a paused container"
	expect_status pz paused
	shim "$d/u" resume pz
	expect_ok "$d/u" resume
	expect_status pz running
	wait_count "$d/r/out" $((n2 + 2)) || bad "no count after resume"
	shim "$d/u2" resume pz
	expect_error "$d/u2" "not paused"
	shim "$d/rs" restore -d --image-path "$d/img" --bundle "$b" pz2
	expect_ok "$d/rs" "restore of a checkpoint taken while paused"
	wait_count "$d/rs/out" $((n2 + 2)) || bad "the restored copy does not count on"
	[ "$(first_count "$d/rs/out")" = $((n2 + 1)) ] || bad "the restored copy starts at $(first_count "$d/rs/out"), expected $((n2 + 1))"
	shim "$d/ev" events --stats pz
	expect_ok "$d/ev" "events --stats"
	grep -q '"type":"stats"' "$d/ev/out" || bad "events --stats: $(cat "$d/ev/out")"
	shim "$d/f" delete --force pz
	# a paused container is killed by delete --force too
	local pid2
	pid2=$(shim_pid pz2)
	shim "$d/p3" pause pz2
	expect_ok "$d/p3" "pause pz2"
	shim "$d/f2" delete --force pz2
	expect_ok "$d/f2" "delete --force of a paused container"
	pid_gone "$pid2" || bad "km of a paused container survived delete --force"
	root_holds
}

# km-shim killed -9 in the middle of create (a createRuntime hook that waits): delete --force
# cleans up everything, and the id can be used again.
shim_test_killed_create() {
	local d=$SHIM_WORK/kill9 b=$SHIM_WORK/kill9/bundle i
	shim_bundle "$b" /shim_count 1000000 20
	mkdir -p "$d"
	mkfifo "$d/hook.fifo"
	SHIM_CFG_EXTRA='"hooks": {"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo $$ > '"$d"'/hook.fifo; exec sleep 60"]}]},' \
		shim_cfg "$b" /shim_count 1000000 20
	shim_bg "$d/create.out" create --bundle "$b" k9
	local cpid=$BG_PID
	local hookpid shimpid
	hookpid=$(timeout "$TIMEOUT" cat "$d/hook.fifo") || bad "the createRuntime hook did not run"
	shimpid=$(pgrep -P "$cpid" -x km-shim | head -1)
	[ -n "$shimpid" ] && kill -9 "$shimpid"
	{ wait "$cpid"; } 2>/dev/null
	expect_status k9 creating
	shim "$d/s" start k9
	[ "$RC" = 1 ] || bad "start of a container whose create was killed: exit $RC"
	shim "$d/f" delete --force k9
	expect_ok "$d/f" "delete --force after a killed create"
	[ -n "$hookpid" ] && kill -9 "$hookpid" 2>/dev/null
	root_holds
	[ ! -d "$(shim_cg_dir memory k9)" ] && [ ! -d "$(shim_cg_dir pids k9)" ] ||
		bad "the killed create's cgroup is left"
	# the id is free again
	shim_cfg "$b" /shim_count 2
	shim "$d/r" run --bundle "$b" k9
	expect_ok "$d/r" "run under the id of the cleaned container"
	root_holds
	# Killed after km was exec'd but before its pid was recorded (the record is made to say so:
	# that window cannot be hit on purpose): delete --force finds km by the start fifo it holds.
	shim_cfg "$b" /shim_count 1000000 20
	shim "$d/c2" create --bundle "$b" k9b
	local kmpid
	kmpid=$(shim_pid k9b)
	sed -i -e 's/"status": *"[a-z]*"/"status": "creating"/' -e 's/"pid": *[0-9]*/"pid": 0/' \
		-e 's/"pidStartTime": *[0-9]*/"pidStartTime": 0/' \
		-e 's|"cgroupPath": *"[^"]*"|"cgroupPath": "/km-shim-e2e-no-such-cgroup"|' "$SHIM_ROOT/k9b/state.json"
	expect_status k9b creating
	shim "$d/f2" delete --force k9b
	expect_ok "$d/f2" "delete --force of a creating container whose km has no recorded pid"
	pid_gone "$kmpid" || { bad "km (pid $kmpid) survived delete --force"; kill -9 "$kmpid"; }
	root_holds
	# a record that cannot be read (torn by hand: km-shim itself writes it atomically)
	shim "$d/c3" create --bundle "$b" k9c
	kmpid=$(shim_pid k9c)
	echo '{"id": "k9c", "sta' >"$SHIM_ROOT/k9c/state.json"
	shim "$d/f3" delete k9c
	[ "$RC" = 1 ] || bad "delete without --force of a container with a corrupt record: exit $RC"
	shim "$d/f4" delete --force k9c
	expect_ok "$d/f4" "delete --force of a container with a corrupt record"
	pid_gone "$kmpid" || { bad "km (pid $kmpid) survived delete --force"; kill -9 "$kmpid"; }
	root_holds
}

SHIM_TESTS=(lifecycle run_foreground run_detached delete_force bad_input log checkpoint_restore restore_many
	pause_checkpoint killed_create misc seccomp init_signals terminal_foreground terminal_closed_stdout
	root_propagation cgroup_v2)

# The program is its pid namespace's init, as under runc: a signal from outside at its default
# action does not reach it (Linux drops those for an init), SIGKILL does, and a program of a
# container without a pid namespace dies of SIGTERM as any process would.
shim_test_init_signals() {
	local d=$SHIM_WORK/init b=$SHIM_WORK/init/bundle pid n
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" init1
	expect_ok "$d/r" "run -d"
	wait_count "$d/r/out" 2 || bad "no count"
	shim "$d/k" kill init1 TERM
	expect_ok "$d/k" "kill TERM"
	# still counting well after the signal: the init ignored it
	n=$(last_count "$d/r/out")
	wait_count "$d/r/out" $((n + 10)) || bad "the init stopped counting after SIGTERM at its default action"
	expect_status init1 running
	shim "$d/k9" kill init1 KILL
	expect_ok "$d/k9" "kill KILL"
	wait_status init1 stopped || bad "still $(shim_status init1) after SIGKILL"
	shim "$d/d" delete init1
	sed -i 's|{"type": "pid"}, ||' "$b/config.json"
	shim "$d/r2" run -d --pid-file "$d/pid2" --bundle "$b" init2
	expect_ok "$d/r2" "run -d without a pid namespace"
	wait_count "$d/r2/out" 2 || bad "no count without a pid namespace"
	shim "$d/k2" kill init2 TERM
	wait_status init2 stopped || bad "without a pid namespace, still $(shim_status init2) after SIGTERM"
	shim "$d/d2" delete init2
	root_holds
}

# linux.seccomp reaches the guest: a rule with an argument condition returns its errno (write to
# fd 99: EACCES, seccomp_rules errno-args checks it and that fd 1 still writes); the same guest
# without the rule fails, so the rule, not the guest, made the difference. An action km-shim
# cannot honour (NOTIFY) is refused at create, naming the field.
shim_test_seccomp() {
	local d=$SHIM_WORK/sc b=$SHIM_WORK/sc/bundle
	mkdir -p "$b/rootfs"
	cp "$GUESTS/gcc/seccomp_rules" "$b/rootfs/seccomp_rules"
	shim_cfg "$b" /seccomp_rules errno-args
	shim "$d/plain" run --bundle "$b" scplain
	[ "$RC" != 0 ] || bad "seccomp_rules errno-args passed without any rule: the test cannot fail"
	local rule='"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
	  "syscalls": [{"names": ["write"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
	                "args": [{"index": 0, "value": 99, "op": "SCMP_CMP_EQ"}]}]},'
	sed -i "s|\"namespaces\": \[|${rule//$'\n'/ } \"namespaces\": [|" "$b/config.json"
	shim "$d/rule" run --bundle "$b" screle
	if [ "$RC" != 0 ]; then
		bad "seccomp_rules errno-args under linux.seccomp: exit status $RC"
		show_file stdout "$d/rule/out"
		show_file stderr "$d/rule/err"
	fi
	sed -i 's|SCMP_ACT_ERRNO|SCMP_ACT_NOTIFY|' "$b/config.json"
	shim "$d/notify" run --bundle "$b" scnotify
	expect_error "$d/notify" "linux.seccomp"
	root_holds
}

# update (pids and memory limits land in the cgroup), features, spec.
shim_test_misc() {
	local d=$SHIM_WORK/misc b=$SHIM_WORK/misc/bundle pid cg
	shim_bundle "$b" /shim_count 1000000 20
	shim "$d/r" run -d --bundle "$b" upd
	pid=$(shim_pid upd)
	shim "$d/u" update --pids-limit 50 --memory 256m upd
	expect_ok "$d/u" update
	cg=$(sed -n 's/^[0-9]*:pids:\(.*\)$/\1/p' "/proc/$pid/cgroup")
	if [ -n "$cg" ] && [ -f "/sys/fs/cgroup/pids$cg/pids.max" ]; then
		[ "$(cat "/sys/fs/cgroup/pids$cg/pids.max")" = 50 ] || bad "pids.max is $(cat "/sys/fs/cgroup/pids$cg/pids.max"), not 50"
	else
		cg=$(sed -n 's/^0::\(.*\)$/\1/p' "/proc/$pid/cgroup")
		[ "$(cat "/sys/fs/cgroup$cg/pids.max" 2>/dev/null)" = 50 ] || bad "no pids.max of 50 for km (cgroup '$cg')"
	fi
	echo '{"pids": {"limit": 60}}' >"$d/res.json"
	shim "$d/u2" update -r "$d/res.json" upd
	expect_ok "$d/u2" "update -r"
	shim "$d/u3" update --pids-limit=notanumber upd
	expect_error "$d/u3" "notanumber"
	shim "$d/f" delete --force upd
	shim "$d/ft" features
	expect_ok "$d/ft" features
	grep -q '"cgroup": {"v1": true, "v2": true, "systemd": false' "$d/ft/out" || bad "features: no cgroup entry"
	mkdir -p "$d/spec"
	shim "$d/sp" spec --bundle "$d/spec"
	expect_ok "$d/sp" spec
	grep -q '"ociVersion"' "$d/spec/config.json" || bad "spec wrote no config.json"
	shim "$d/sp2" spec --bundle "$d/spec"
	expect_error "$d/sp2" "already exists"
	root_holds
}

# process.terminal without --console-socket in a foreground run: km-shim makes the pty and relays
# its own stdin (a pipe here, not a terminal) and stdout; the guest sees a terminal both ways.
shim_test_terminal_foreground() {
	local d=$SHIM_WORK/tty b=$SHIM_WORK/tty/bundle
	shim_bundle "$b" /shim_tty
	cp "$GUESTS/gcc/shim_tty" "$b/rootfs/shim_tty"
	sed -i 's/"terminal": false/"terminal": true/; s|{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": \["nosuid", "mode=755"\]}|&, {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]}|' "$b/config.json"
	grep -q devpts "$b/config.json" || bad "terminal: the test's config has no devpts mount"
	mkdir -p "$d"
	echo "hello tty" | timeout -k 5 "$TIMEOUT" "$KM_SHIM" --root "$SHIM_ROOT" run --bundle "$b" tty >"$d/out" 2>"$d/err"
	local rc=$?
	[ "$rc" = 0 ] || bad "terminal run: exit status $rc, expected 0: $(head -c 300 "$d/err")"
	tr -d '\r' <"$d/out" >"$d/out.lf"
	grep -qx 'tty in=1 out=1' "$d/out.lf" || bad "terminal run: the guest saw no terminal: $(head -c 300 "$d/out.lf")"
	grep -qx 'got hello tty' "$d/out.lf" || bad "terminal run: stdin did not reach the guest: $(head -c 300 "$d/out.lf")"
	shim "$d/dt" run --detach --bundle "$b" ttyd
	expect_error "$d/dt" "process.terminal: needs --console-socket"
	root_holds
}

# The same foreground terminal run with a stdout whose reader goes away after the first line (a
# `| head -1`): km-shim must not die of SIGPIPE (that loses km's status and, on a real terminal,
# leaves it raw); the output direction ends, the guest runs to its end, and km's status (0) is
# km-shim's. Fifos order it: the reader is closed before the guest gets its input, so the echo
# and "got ..." are written to a pipe with no reader.
shim_test_terminal_closed_stdout() {
	local d=$SHIM_WORK/ttyc b=$SHIM_WORK/ttyc/bundle line pid rc
	shim_bundle "$b" /shim_tty
	cp "$GUESTS/gcc/shim_tty" "$b/rootfs/shim_tty"
	sed -i 's/"terminal": false/"terminal": true/; s|{"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": \["nosuid", "mode=755"\]}|&, {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]}|' "$b/config.json"
	mkdir -p "$d"
	mkfifo "$d/in" "$d/outp"
	timeout -k 5 "$TIMEOUT" "$KM_SHIM" --root "$SHIM_ROOT" run --bundle "$b" ttyc <"$d/in" >"$d/outp" 2>"$d/err" &
	pid=$!
	exec 8>"$d/in" 9<"$d/outp"
	IFS= read -r -t "$TIMEOUT" line <&9 || bad "closed stdout: no first line from the guest"
	exec 9<&-
	echo "hello tty" >&8
	exec 8>&-
	wait $pid
	rc=$?
	[ "$rc" = 0 ] || bad "closed stdout: km-shim's exit status $rc, expected the guest's 0 (141 = killed by SIGPIPE): $(head -c 300 "$d/err")"
	case $line in "tty in=1 out=1"*) ;; *) bad "closed stdout: first line '$line'" ;; esac
	root_holds
}

# linux.rootfsPropagation on a host whose mounts are shared (an unshare'd mount namespace with
# shared propagation stands for one): pivot_root still works, and the container's / ends up with
# the propagation asked for ("shared:N" or "master:N" on its line in mountinfo).
shim_test_root_propagation() {
	local d=$SHIM_WORK/prop b=$SHIM_WORK/prop/bundle p want
	for p in shared slave rshared private; do
		case $p in *shared) want=shared: ;; slave) want=master: ;; *) want="" ;; esac
		shim_bundle "$b" /shim_count 1000000 50
		sed -i "s/\"linux\": {/\"linux\": {\"rootfsPropagation\": \"$p\", /" "$b/config.json"
		mkdir -p "$d/$p"
		# the mountinfo is read while the shared namespace lives: a slave whose master is gone
		# is private
		timeout -k 5 "$TIMEOUT" unshare --mount --propagation shared sh -c \
			'"$1" --root "$2" run -d --pid-file "$3/pid" --bundle "$4" "$5" && cat "/proc/$(cat "$3/pid")/mountinfo" >"$3/mountinfo"' \
			sh "$KM_SHIM" "$SHIM_ROOT" "$d/$p" "$b" "prop-$p" >"$d/$p/out" 2>"$d/$p/err" </dev/null
		RC=$?
		expect_ok "$d/$p" "run -d with rootfsPropagation $p"
		if [ -n "$want" ]; then
			awk '$5 == "/"' "$d/$p/mountinfo" | grep -q " $want" ||
				bad "rootfsPropagation $p: / is not $want in the container: $(awk '$5 == "/"' "$d/$p/mountinfo")"
		fi
		shim "$d/$p/del" delete --force "prop-$p"
	done
	# a bundle under a directory whose name has a space, that directory a shared mount of its
	# own: mountinfo writes it "\040", and the rootfs's parent mount must still be found and
	# made private, or pivot_root fails
	local sp="$d/with space"
	mkdir -p "$sp" "$d/space"
	shim_bundle "$d/space-src" /shim_count 1000000 50
	sed -i "s/\"linux\": {/\"linux\": {\"rootfsPropagation\": \"shared\", /" "$d/space-src/config.json"
	timeout -k 5 "$TIMEOUT" unshare --mount --propagation shared sh -c \
		'mount -t tmpfs tmpfs "$4" && mount --make-shared "$4" && mkdir -p "$4/b" && cp -a "$6/." "$4/b/" &&
		 "$1" --root "$2" run -d --pid-file "$3/pid" --bundle "$4/b" "$5"' \
		sh "$KM_SHIM" "$SHIM_ROOT" "$d/space" "$sp" prop-space "$d/space-src" >"$d/space/out" 2>"$d/space/err" </dev/null
	RC=$?
	expect_ok "$d/space" "run -d of a bundle under a shared mount whose path has a space"
	shim "$d/space/del" delete --force prop-space
	root_holds
}

# A pure cgroup v2 host, made in a private mount namespace: the v1 tree at /sys/fs/cgroup is
# detached and a cgroup2 mount put in its place (its controllers stay bound to v1 on this host,
# so cgroup.controllers is empty). km-shim must take it for v2: km in the container's cgroup
# (its 0:: line), the device BPF program attached (a rootfs node the config denies is EPERM, a
# null node opens), a memory or pids limit refused naming the field and the controller, and
# delete removing the cgroup.
shim_test_cgroup_v2() {
	local d=$SHIM_WORK/cg2 b=$SHIM_WORK/cg2/bundle
	mkdir -p "$d" "$b/rootfs/proc" "$b/rootfs/dev"
	cp "$GUESTS/gcc/ctr_view" "$b/rootfs/ctr_view"
	mknod "$b/rootfs/kmsg-node" c 1 11 && mknod "$b/rootfs/null-node" c 1 3 || {
		bad "mknod in the rootfs failed"
		return
	}
	shim_cfg "$b" /ctr_view openw /kmsg-node openw /null-node
	sed -i 's|"namespaces": \[|"resources": {"devices": [{"allow": false, "access": "rwm"}]}, "namespaces": [|' "$b/config.json"
	cp "$b/config.json" "$d/config.base"
	# shellcheck disable=SC2016
	timeout -k 5 $((TIMEOUT * 3)) unshare --mount --propagation private bash -c '
		set -u
		shim=$1 root=$2 d=$3 b=$4
		umount -l /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup || { echo "no cgroup2 mount" >"$d/setup"; exit 1; }
		own=$(sed -n "s/^0:://p" /proc/self/cgroup)
		cg=/sys/fs/cgroup${own%/}/km-shim/cg2
		"$shim" --root "$root" create --pid-file "$d/pid" --bundle "$b" cg2 >"$d/out" 2>"$d/err"
		echo "create=$?" >"$d/results"
		pid=$(cat "$d/pid" 2>/dev/null)
		echo "want=${own%/}/km-shim/cg2" >>"$d/results"
		echo "km=$(sed -n "s/^0:://p" "/proc/$pid/cgroup" 2>/dev/null)" >>"$d/results"
		[ -d "$cg" ] && echo "dir=made" >>"$d/results"
		"$shim" --root "$root" start cg2 >>"$d/err" 2>&1
		while [ -e "/proc/$pid" ] && ! grep -q "^State:.*Z" "/proc/$pid/status" 2>/dev/null; do sleep 0.1; done
		"$shim" --root "$root" delete cg2 >>"$d/err" 2>&1
		echo "delete=$?" >>"$d/results"
		[ -d "$cg" ] && echo "dir=left" >>"$d/results"
		for lim in "\"memory\": {\"limit\": 67108864}" "\"pids\": {\"limit\": 64}"; do
			sed "s|\"resources\": {|\"resources\": {$lim, |" "$d/config.base" >"$b/config.json"
			n=${lim%%\"*:*}; n=${lim#\"}; n=${n%%\"*}
			"$shim" --root "$root" run --bundle "$b" "cg2-$n" >"$d/$n.out" 2>"$d/$n.err" </dev/null
			echo "$n=$?" >>"$d/results"
		done
		cp "$d/config.base" "$b/config.json"
	' bash "$KM_SHIM" "$SHIM_ROOT" "$d" "$b" </dev/null >"$d/outer" 2>&1
	[ -e "$d/setup" ] && { bad "cannot make a cgroup2 mount in a private mount namespace: $(cat "$d/outer")"; return; }
	grep -qx "create=0" "$d/results" || bad "create on cgroup2: $(cat "$d/err")"
	local want km
	want=$(sed -n 's/^want=//p' "$d/results")
	km=$(sed -n 's/^km=//p' "$d/results")
	[ -n "$km" ] && [ "$km" = "$want" ] || bad "km's cgroup (0:: line) is '$km', expected '$want'"
	grep -qx "dir=made" "$d/results" || bad "no container cgroup made in the cgroup2 tree"
	grep -qx "openw /kmsg-node: EPERM" "$d/out" || bad "the denied /kmsg-node was not EPERM (no device BPF program?): $(head -c 300 "$d/out")"
	grep -qx "openw /null-node: ok" "$d/out" || bad "the null node did not open: $(head -c 300 "$d/out")"
	grep -qx "delete=0" "$d/results" || bad "delete on cgroup2 failed: $(cat "$d/err")"
	grep -qx "dir=left" "$d/results" && bad "delete left the container's cgroup in the cgroup2 tree"
	local n
	for n in memory pids; do
		grep -qx "$n=1" "$d/results" || bad "a $n limit on cgroup2 without the $n controller: status $(sed -n "s/^$n=//p" "$d/results"), expected 1"
		grep -q "linux.resources.$n" "$d/$n.err" && grep -q "$n cgroup controller" "$d/$n.err" ||
			bad "the $n refusal does not name the field and the controller: $(cat "$d/$n.err")"
	done
	root_holds
}

# shim_suite_ready PREFIX HINT TESTS...: true if any PREFIX/TEST is wanted and can run: in
# KM=native mode the wanted ones are listed as not run; if km-shim (or a tool named in
# SHIM_SUITE_NEEDS) is not built, one failed PREFIX/build test names it and HINT.
shim_suite_ready() {
	local p=$1 hint=$2 t f any=0 missing=()
	shift 2
	for t; do want "$p/$t" && any=1; done
	[ $any = 1 ] || return 1
	if [ $NATIVE = 1 ]; then
		for t; do want "$p/$t" && NOT_RUN+=("$p/$t"); done
		return 1
	fi
	for f in "$KM_SHIM" "${SHIM_SUITE_NEEDS[@]}"; do [ -x "$f" ] || missing+=("'$f'"); done
	[ ${#missing[@]} = 0 ] && return 0
	begin "$p/build"
	bad "not found: ${missing[*]} ($hint)"
	end
	return 1
}

# shim_suite_run PREFIX TESTS...: runs each wanted PREFIX/TEST as the function PREFIX_test_TEST
# with SHIM_ROOT under $WORK/PREFIX, then one PREFIX/no_containers_left test: a container a test
# left behind fails it (and is force-deleted, so the next suite starts clean).
shim_suite_run() {
	local p=$1 t id left=()
	shift
	SHIM_WORK=$WORK/$p
	SHIM_ROOT=$SHIM_WORK/root
	mkdir -p "$SHIM_WORK"
	# km-shim runs the km under test, unless the caller names a static one (make asan does: a
	# sanitizer build's km is not static and cannot run inside a container)
	local had_km=${KM_SHIM_KM+set}
	export KM_SHIM_KM=${KM_SHIM_KM:-$KM}
	for t; do
		want "$p/$t" || continue
		begin "$p/$t"
		"${p}_test_$t"
		end
	done
	begin "$p/no_containers_left"
	for id in $(ls -A "$SHIM_ROOT" 2>/dev/null); do
		left+=("$id")
		"$KM_SHIM" --root "$SHIM_ROOT" delete --force "$id" >/dev/null 2>&1
	done
	[ ${#left[@]} = 0 ] || bad "containers the tests did not delete: ${left[*]}"
	end
	[ "$had_km" = set ] || unset KM_SHIM_KM
}

run_shim() {
	local SHIM_SUITE_NEEDS=()
	shim_suite_ready shim "make shim" "${SHIM_TESTS[@]}" || return 0
	local cg_before
	cg_before=$(shim_cg_children)
	shim_suite_run shim "${SHIM_TESTS[@]}"
	# every cgroup a deleted container had is gone (in every hierarchy, not only the first one
	# km-shim removes)
	begin shim/no_cgroups_left
	local left id
	left=$(comm -13 <(echo "$cg_before") <(shim_cg_children))
	if [ -n "$left" ]; then
		bad "cgroups of deleted containers are left: $(echo $left)"
		while read -r id; do [ -n "$id" ] && rmdir "$id" 2>/dev/null; done <<<"$left"
	fi
	end
}
