#!/usr/bin/env bash
# km benchmarks: prints one table, km beside its peer (the same program run natively, or a floor
# measured with a bare KVM VM), all measured in this run on this machine. See bench/README.md.
#
#   run.sh <bench-build-dir> <km>       (bench/Makefile calls it; the dir holds the built tools/guests)
#
# Exit status: 0 if every measurement ran; 1 if km is missing or not runnable, or any measurement
# failed (everything that can be measured is still measured and printed first); 2 if the bench
# tools are not built.
# Numbers never decide the exit status: targets are printed, not asserted.
#
# Knobs (environment): SECTIONS (which rows to measure; default all), HELLO_RUNS, GETPPID_N,
# GETPPID_RUNS, CLOCK_N, CLOCK_RUNS, CPU_N, CPU_RUNS, THREAD_N, THREAD_RUNS, FUTEX_N, FUTEX_RUNS, FLOOR_BATCHES,
# FLOOR_PER_BATCH, FLOOR_BATCHES_INTERLEAVED, VMCREATE_REPS, KM_TIMEOUT (seconds per km run),
# SNAP_SIZES, SNAP_LIBC, SNAP_DIR, SNAP_TIMEOUT, CRIU, CRIU_BUILD, KM_SHIM, BUNDLES, SHIM_RUNS,
# SHIM_CK_RUNS, FDS_RUNS, PROCS_EXEC_N, PROCS_RUNS, PY_RUNS, PYSNAP_RUNS, PYTHON3, COPIES_N,
# COPIES_MIB, COPIES_WRITE_MIB, TOUCH_MIB, TOUCH_RUNS, TOUCH_IDLE, TOUCH_SMALL_MIB, PIPE_N, TCP_N, IO_RUNS,
# SQLITE_TXN_N, SQLITE_AUTO_N, ZLIB_MIB, APPS_RUNS, APPS_DIR
# (see bench/README.md).
set -uo pipefail

if [ $# -ne 2 ]; then
	echo "usage: $0 <bench-build-dir> <km>" >&2
	exit 2
fi
B=$(cd "$1" 2>/dev/null && pwd) || { echo "run.sh: no directory $1" >&2; exit 2; } # absolute: criu runs elsewhere
KM=$2

HELLO_RUNS=${HELLO_RUNS:-300}
GETPPID_N=${GETPPID_N:-50000}
GETPPID_RUNS=${GETPPID_RUNS:-5}
CLOCK_N=${CLOCK_N:-1000000}  # clock_gettime calls per clock_loop run
CLOCK_RUNS=${CLOCK_RUNS:-5}
CPU_N=${CPU_N:-150000000}
CPU_RUNS=${CPU_RUNS:-7}
THREAD_N=${THREAD_N:-2000}   # pthread_create + pthread_join rounds per thread_create run
THREAD_RUNS=${THREAD_RUNS:-5}
FUTEX_N=${FUTEX_N:-20000}    # round trips per futex_pingpong run
FUTEX_RUNS=${FUTEX_RUNS:-5}
FORK_N=${FORK_N:-200}        # fork + exit + wait rounds per fork_wait run
FORK_RUNS=${FORK_RUNS:-5}
DIRTY_PAGES=${DIRTY_PAGES:-16384} # pages dirty_write stores to (64 MiB)
DIRTY_RUNS=${DIRTY_RUNS:-5}
DIRTY_BIG=${DIRTY_BIG:-65536:4096} # pages:changed for the collect row (256 MiB, 16 MiB changed)
TOUCH_MIB=${TOUCH_MIB:-1024}      # MiB the first-touch rows touch (even, <= 1024)
TOUCH_RUNS=${TOUCH_RUNS:-5}       # native / km alternating runs of touch_first, and floor runs
TOUCH_IDLE=${TOUCH_IDLE:-5}       # seconds idle before each "after idle" run
TOUCH_SMALL_MIB=${TOUCH_SMALL_MIB:-128} # MiB of the slow floor variants (4 KiB host pages)
PIPE_N=${PIPE_N:-20000}      # round trips per pipe_pingpong run (io)
TCP_N=${TCP_N:-20000}        # requests per tcp_echo run (io)
IO_RUNS=${IO_RUNS:-5}        # runs of each io row, native / km alternating
ALL_SECTIONS="floors hello getppid clock cpu touch io threads procs apps dirty shim shimck snap snap4 fds copies live incr"
SECTIONS=${SECTIONS:-$ALL_SECTIONS} # which rows to measure (see bench/README.md, "Knobs")
FLOOR_BATCHES=${FLOOR_BATCHES:-40}
FLOOR_PER_BATCH=${FLOOR_PER_BATCH:-2500}
FLOOR_BATCHES_INTERLEAVED=${FLOOR_BATCHES_INTERLEAVED:-8} # floor runs between km getppid runs
VMCREATE_REPS=${VMCREATE_REPS:-200}
KM_TIMEOUT=${KM_TIMEOUT:-30}
LIBCS="gcc musl"
SNAP_SIZES=${SNAP_SIZES:-"16:7 256:5 1024:3"} # touched MiB:runs, for the snapshot rows
SNAP_LIBC=${SNAP_LIBC:-gcc}                   # which build of snap_touch the snapshot rows use
SNAP_DIR=${SNAP_DIR:-$B}                      # where snapshots, CRIU images and the floor file go
SNAP_DIR=$(cd "$SNAP_DIR" 2>/dev/null && pwd) || SNAP_DIR="$SNAP_DIR (no such directory)"
SNAP_TIMEOUT=${SNAP_TIMEOUT:-120}             # seconds per snapshot/restore/dump command
KM_MGMT=${KM_MGMT:-$B/../tests/tools/km-mgmt} # client for km --mgmt (tests/tools/km-mgmt.c)
CRIU=${CRIU:-}                                # a criu binary; "none" to leave CRIU out
CRIU_BUILD=${CRIU_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/../shared/tools/criu/build.sh}
KM_SHIM=${KM_SHIM:-$(dirname "$KM")/km-shim} # the OCI runtime, for the container rows (shim, shimck)
BUNDLES=${BUNDLES:-$B/../bundles}            # the example bundles (make bundles)
SHIM_RUNS=${SHIM_RUNS:-30}                   # container start-to-exit runs per runtime
SHIM_CK_RUNS=${SHIM_CK_RUNS:-5}              # checkpoint + restore rounds per runtime
FDS_RUNS=${FDS_RUNS:-3}                      # snapshot + restore rounds of each fds row
COPIES_N=${COPIES_N:-10}                     # copies run at once in the copies rows
COPIES_MIB=${COPIES_MIB:-256}                # MiB each copy touched (the snapshot's memory)
COPIES_WRITE_MIB=${COPIES_WRITE_MIB:-32}     # MiB each copy rewrites in the copies row that breaks sharing
LIVE_SIZES=${LIVE_SIZES:-"16:3 256:3 1024:3"}  # live rows: touched MiB:runs
INCR_MIB=${INCR_MIB:-1024}                   # incr: the program's memory, MiB
INCR_CHANGE=${INCR_CHANGE:-16}               # incr: MiB it changes between its two snapshots
INCR_RUNS=${INCR_RUNS:-3}                    # incr: rounds (each: a full program and the reference)

for f in walltime vmexit_floor vmcreate_floor snaptime copytime; do
	if [ ! -x "$B/$f" ]; then
		echo "run.sh: $B/$f is missing: build with make -C bench" >&2
		exit 2
	fi
done

log() { echo "  [bench] $*" >&2; }

for s in $SECTIONS; do
	if [[ " $ALL_SECTIONS " != *" $s "* ]]; then
		echo "run.sh: unknown section '$s' in SECTIONS (known: $ALL_SECTIONS)" >&2
		exit 2
	fi
done
want() { [[ " $SECTIONS " == *" $1 "* ]]; } # want SECTION: is it selected?

# field KEY <<< "a=1 KEY=2 ..." -> 2 (empty if absent)
field() { tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

# median of the numbers on stdin, nearest rank (the lower middle for an even count)
median() { awk 'NF' | sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
minimum() { awk 'NF' | sort -g | head -n1; }

# Arithmetic on values that may be "n/a"/"FAIL"/empty: prints "n/a" unless all are numbers.
isnum() { [[ $1 =~ ^[0-9]+([.][0-9]+)?$ ]]; }
calc() { # calc FORMAT EXPR-in-awk-using-a,b a b (integers: %.0f, as mawk's %d stops at 2^31-1)
	local fmt=$1 expr=$2 a=$3 b=${4:-0}
	if isnum "$a" && isnum "$b"; then
		awk -v a="$a" -v b="$b" "BEGIN { printf \"$fmt\", ($expr) }" 2>/dev/null || echo n/a
	else
		echo n/a
	fi
}
ratio() { if isnum "$1" && isnum "$2" && [ "$(calc %d 'b > 0' "$1" "$2")" = 1 ]; then calc %.2fx 'a / b' "$1" "$2"; else echo n/a; fi; }
# met KM LIMIT: yes if KM <= LIMIT, no if above, "-" if either is not a number
met() { if isnum "$1" && isnum "$2"; then calc %s '(a <= b) ? "yes" : "no"' "$1" "$2"; else echo -; fi; }

ROWFMT="%-70s %10s %10s %8s  %-32s %s\n"
# shellcheck disable=SC2059 # the format is ours
row() { printf "$ROWFMT" "$@"; }

FAILURES=()
fail() { # a message already listed (the same failure in another run) is not repeated
	local f
	for f in "${FAILURES[@]}"; do [ "$f" = "$1" ] && return; done
	FAILURES+=("$1")
}

# ---------------------------------------------------------------------------------------------------
# The machine and the run
cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n1)
backend=unknown
for m in kvm_pvm kvm_intel kvm_amd; do
	if [ -d /sys/module/$m ]; then backend=$m; break; fi
done
commit=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "km benchmarks"
echo "  date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "  cpu:     ${cpu:-unknown}"
echo "  kernel:  $(uname -r) ($(uname -m)), nproc $(nproc), KVM module: $backend"
echo "  source:  commit $commit"
echo "  km:      $KM"
[ "$SECTIONS" = "$ALL_SECTIONS" ] || echo "  rows:    only SECTIONS=\"$SECTIONS\""

# ---------------------------------------------------------------------------------------------------
# CRIU, the peer of the snapshot rows. CRIU=<path> uses that binary, CRIU=none leaves it out;
# otherwise CRIU_BUILD (../shared/tools/criu/build.sh beside the repository) builds CRIU 4.1.1 once
# into /var/cache/km-peers and prints its path (instant once built). Without CRIU the criu columns
# are n/a, km's are still measured, and the run ends with "CRIU NOT AVAILABLE: <why>".
CRIU_OK=0
CRIU_WHY=""
CRIU_OMIT=0 # 1: left out on purpose, which does not fail the run
if [ "$CRIU" = none ]; then
	CRIU_WHY="left out (CRIU=none)"
	CRIU_OMIT=1
elif ! want snap && ! want snap4 && ! want shimck && ! want fds && ! want copies && ! want live; then
	CRIU_WHY="not needed: no snapshot or container checkpoint rows in SECTIONS"
	CRIU_OMIT=1
elif [ "$(id -u)" != 0 ]; then
	CRIU_WHY="criu dump/restore need root (run make bench as root)"
elif [ -z "$CRIU" ] && [ ! -f "$CRIU_BUILD" ]; then
	CRIU_WHY="no CRIU: $CRIU_BUILD does not exist (set CRIU=/path/to/criu)"
else
	if [ -z "$CRIU" ]; then
		log "CRIU: $CRIU_BUILD (the first time it installs packages and builds CRIU: minutes; cached after)"
		CRIU=$(bash "$CRIU_BUILD" 2>"$B/criu-build.log" | tail -n1)
		rc=$?
		[ $rc -eq 0 ] && [ -n "$CRIU" ] ||
			CRIU_WHY="$CRIU_BUILD failed (status $rc): $(tail -n1 "$B/criu-build.log"); log in $B/criu-build.log"
	fi
	if [ -z "$CRIU_WHY" ]; then
		if criu_ver=$("$CRIU" --version 2>&1 | sed -n 's/^Version: //p') && [ -n "$criu_ver" ]; then
			CRIU_OK=1
		else
			CRIU_WHY="'$CRIU --version' failed: $("$CRIU" --version 2>&1 | head -n1)"
		fi
	fi
fi
# CRIU keeps what it learns about the kernel (kerndat) in /run/criu.kdat, but only if /run is a
# tmpfs; without that cache every criu command spends some 30-40 ms probing the kernel again. Where
# /run is not a tmpfs (as on these machines) the criu runs go into a private mount namespace with a
# tmpfs on /run, held open by a sleeping process, so criu runs as it would on a usual host. The
# guest runs in the same namespace, because criu dumps the mount namespace of a task whose namespace
# differs from its own. CRIU_KDAT_CACHE=0 runs criu without the cache.
CRIU_NS=()     # prefix for commands that run criu
CRIU_NS_PID="" # the process that holds the namespace; killed at exit
SNAPTMP=""     # the snapshot rows' temporary directory; removed at exit
PROCSTMP=""    # the procs rows' (bench/procs.sh); removed at exit
APPSTMP=""     # the apps rows' (bench/apps.sh): databases and zlib files; removed at exit
TCP_SRV_PID="" # the io rows' native TCP echo server while it runs; killed at exit
SHIMTMP=""     # the container rows' bundles, state roots and images; removed at exit
SHIM_LIVE=()   # "PREFIX-INDEX|RUNTIME|ROOT|ID" of containers that may still exist (killed at exit)
# shellcheck disable=SC2317 # called by cleanup
shim_cleanup() {
	local e rt root id
	for e in "${SHIM_LIVE[@]}"; do
		IFS='|' read -r _ rt root id <<<"$e"
		"$rt" --root "$root" kill "$id" KILL >/dev/null 2>&1
		"$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
	done
	SHIM_LIVE=()
	[ -n "$SHIMTMP" ] && rm -rf "$SHIMTMP"
	SHIMTMP=""
}
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	[ -n "$TCP_SRV_PID" ] && kill "$TCP_SRV_PID" 2>/dev/null
	[ -n "$APPSTMP" ] && rm -rf "$APPSTMP"
	[ -n "$SNAPTMP" ] && rm -rf "$SNAPTMP"
	[ -n "$PROCSTMP" ] && rm -rf "$PROCSTMP"
	shim_cleanup
	[ -n "$CRIU_NS_PID" ] && kill "$CRIU_NS_PID" 2>/dev/null
}
trap cleanup EXIT
CRIU_NOTE=""
if [ $CRIU_OK = 1 ]; then
	if [ "$(stat -f -c %T /run 2>/dev/null)" = tmpfs ]; then
		CRIU_NOTE="kerndat cache in /run (tmpfs)"
	elif [ "${CRIU_KDAT_CACHE:-1}" = 0 ]; then
		CRIU_NOTE="no kerndat cache: /run is not a tmpfs and CRIU_KDAT_CACHE=0"
	else
		ready="$B/criu-ns.ready"
		rm -f "$ready"
		# The holder ends by itself when this script does (tail --pid), even if the trap cannot run.
		# shellcheck disable=SC2016 # $1 and $2 are the inner shell's
		unshare --mount --propagation private -- sh -c \
			'mount -t tmpfs -o size=4m,mode=0755 km-bench-criu-run /run && echo ok > "$1" && exec tail --pid="$2" -f /dev/null' \
			sh "$ready" $$ </dev/null >/dev/null 2>"$B/criu-ns.err" &
		CRIU_NS_PID=$!
		for ((i = 0; i < 500; i++)); do
			[ -s "$ready" ] && break
			kill -0 "$CRIU_NS_PID" 2>/dev/null || break
			sleep 0.01
		done
		if [ -s "$ready" ]; then
			CRIU_NS=(nsenter --mount="/proc/$CRIU_NS_PID/ns/mnt" --) # only absolute paths after it
			CRIU_NOTE="kerndat cache on a tmpfs /run in a private mount namespace"
		else
			kill "$CRIU_NS_PID" 2>/dev/null
			CRIU_NS_PID=""
			CRIU_NOTE="no kerndat cache: /run is not a tmpfs and the private namespace failed: $(head -n1 "$B/criu-ns.err")"
		fi
	fi
	# criu check: does this criu work here? (it also fills the kerndat cache before any timing)
	if ! "${CRIU_NS[@]}" "$CRIU" check >"$B/criu-check.log" 2>&1; then
		CRIU_OK=0
		CRIU_WHY="'criu check' failed: $(grep -m1 -i error "$B/criu-check.log" || tail -n1 "$B/criu-check.log") (all in $B/criu-check.log)"
	fi
fi
if [ $CRIU_OK = 1 ]; then
	echo "  criu:    $CRIU (version $criu_ver; $CRIU_NOTE)"
else
	echo "  criu:    not available: $CRIU_WHY"
fi
echo

# ---------------------------------------------------------------------------------------------------
# Is km runnable? One hello run, output checked.
KM_OK=0
KM_WHY=""
if [ ! -e "$KM" ]; then
	KM_WHY="$KM does not exist (km is not built yet?)"
elif [ ! -x "$KM" ]; then
	KM_WHY="$KM is not executable"
else
	out=$(timeout "$KM_TIMEOUT" "$KM" "$B/guests/gcc/hello" 2>"$B/km-check.err")
	rc=$?
	if [ $rc -ne 0 ]; then
		KM_WHY="'km $B/guests/gcc/hello' exited with status $rc$([ $rc -eq 124 ] && echo ' (timed out)')"
	elif [ "$out" != "hello, world" ]; then
		KM_WHY="'km $B/guests/gcc/hello' printed '$(echo "$out" | head -c 200)' instead of 'hello, world'"
	else
		KM_OK=1
	fi
fi
SKIPNOTE=""
if [ $KM_OK = 0 ]; then
	SKIPNOTE=" (km skipped: not runnable)"
	log "km is NOT runnable: $KM_WHY; measuring the floors and native runs only"
fi

# ---------------------------------------------------------------------------------------------------
# Floors: bare KVM, no km (not measured when SECTIONS leaves out floors: then they show n/a)
vmc="" vmx=""
if want floors; then
	log "VM creation floor ($VMCREATE_REPS reps, fresh process and warm)"
	vmc=$("$B/vmcreate_floor" "$VMCREATE_REPS" 2>"$B/vmcreate_floor.err") ||
		fail "vmcreate_floor failed: $(head -n2 "$B/vmcreate_floor.err" | tr '\n' ' ')"
fi
vmc_fresh_us=$(grep '^mode=fresh phase=total ' <<<"$vmc" | field median_us)
vmc_fresh_p90_us=$(grep '^mode=fresh phase=total ' <<<"$vmc" | field p90_us)
vmc_warm_us=$(grep '^mode=warm phase=total ' <<<"$vmc" | field median_us)
vmc_close_us=$(grep '^mode=fresh phase=close ' <<<"$vmc" | field median_us)
vmc_phases=$(grep '^mode=fresh ' <<<"$vmc" | grep -v -e 'phase=total' -e 'phase=close' |
	awk '{ split($2, p, "="); split($4, m, "="); printf "%s%s %s", (NR > 1 ? ", " : ""), p[2], m[2] }')

if want floors; then
	log "VM exit floor ($FLOOR_BATCHES x $FLOOR_PER_BATCH exits per variant)"
	vmx=$("$B/vmexit_floor" "$FLOOR_BATCHES" "$FLOOR_PER_BATCH" 2>"$B/vmexit_floor.err") ||
		fail "vmexit_floor failed: $(head -n2 "$B/vmexit_floor.err" | tr '\n' ' ')"
fi
floor_km=$(grep '^variant=km_path ' <<<"$vmx" | field median_ns)
floor_km_p90=$(grep '^variant=km_path ' <<<"$vmx" | field p90_ns)
floor_int3=$(grep '^variant=int3_cpl3 ' <<<"$vmx" | field median_ns)
floor_out=$(grep '^variant=out_cpl0 ' <<<"$vmx" | field median_ns)
floor_sysjmp=$(grep '^variant=sysjmp ' <<<"$vmx" | field median_ns)
floor_poll=$(grep '^variant=poll ' <<<"$vmx" | field median_ns)
floor_pollpath=$(calc %.0f 'a + b' "$floor_sysjmp" "$floor_poll") # the exitless path's floor
for v in floor_km floor_km_p90 floor_int3 floor_out floor_sysjmp floor_poll floor_pollpath; do
	isnum "${!v}" || printf -v "$v" n/a
done

ms() { calc %.3f 'a / 1000' "$1"; } # microseconds -> milliseconds

# ---------------------------------------------------------------------------------------------------
# Measurements. Each helper leaves its values in R1 (and R2); "FAIL" when the program failed, "n/a"
# when it was not run (km not runnable). Helpers run in this shell, so fail() is remembered.

# hello LIBC MODE(native|km): R1 = median us, R2 = p90 us
hello() {
	local libc=$1 mode=$2 r rc
	local g="$B/guests/$libc/hello"
	R1=n/a R2=n/a
	[ "$mode" = km ] && [ $KM_OK = 0 ] && return
	if [ "$mode" = km ]; then
		r=$("$B/walltime" -n "$HELLO_RUNS" -w 10 -t "$KM_TIMEOUT" -- "$KM" "$g" 2>"$B/km-hello-$libc.err")
	else
		r=$("$B/walltime" -n "$HELLO_RUNS" -w 10 -- "$g" 2>"$B/native-hello-$libc.err")
	fi
	rc=$?
	R1=$(field median_us <<<"$r") R2=$(field p90_us <<<"$r")
	if [ $rc -ne 0 ] || ! isnum "$R1" || ! isnum "$R2"; then
		R1=FAIL R2=FAIL
		fail "hello ($libc) failed $([ "$mode" = km ] && echo under km || echo natively): $(head -n1 "$B/$mode-hello-$libc.err")"
	fi
}

# errline ERRFILE STATUS: the first line of ERRFILE (km's or the guest's stderr; km-timing lines
# skipped), else what the status says
errline() {
	local l
	l=$(grep -v -m1 '^km-timing:' "$1" 2>/dev/null | head -c 160)
	if [ -n "$l" ]; then echo "$l"; elif [ "$2" = 124 ]; then echo "timed out after $KM_TIMEOUT s"; else echo "exit status $2, nothing on stderr"; fi
}
# kmfailed NOTE ERR: NOTE, or "km: failed (ERR)" when ERR is set: the last column of a row whose
# km side failed, so the reason is in the row itself as well as under the table
kmfailed() { if [ -n "$2" ]; then echo "km: failed ($2)"; else echo "$1"; fi; }

# KM_OPTS: km's options for the km runs of once/compare (e.g. --syscall-path=poll); KM_COUNTS=1 runs
# km with KM_TIMING=1 and leaves in R_SRV/R_EXIT the syscalls its poll servers served and the ones
# that took the exit path (summed over km's processes; empty if km printed none).
KM_OPTS=()
KM_COUNTS=0
# timing_sum KEY FILE: the sum of KEY=N over FILE's km-timing lines, or empty if there is none
timing_sum() {
	grep '^km-timing:' "$2" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | awk 'NF { s += $1; n++ } END { if (n) printf "%.0f", s }'
}
# once LIBC MODE GUEST ARGS KEY: R1 = the KEY=value the guest printed in one run, or FAIL (R_ERR: the
# first line of the error). ARGS: the guest's arguments, split at spaces.
once() {
	local libc=$1 mode=$2 guest=$3 arg=$4 key=$5 out rc
	local -a args
	read -ra args <<<"$arg"
	local opts=${KM_OPTS[*]}
	[ "$mode" = km ] || opts=""
	local g="$B/guests/$libc/$guest" err="$B/$mode-$guest-$libc${opts:+-${opts//[^a-z0-9]/}}.err"
	R_SRV="" R_EXIT=""
	if [ "$mode" = km ]; then
		out=$(KM_TIMING=$KM_COUNTS timeout "$KM_TIMEOUT" "$KM" "${KM_OPTS[@]}" "$g" "${args[@]}" 2>"$err")
	else
		out=$(timeout "$KM_TIMEOUT" "$g" "${args[@]}" 2>"$err")
	fi
	rc=$?
	R1=$(field "$key" <<<"$out") R_ERR=""
	R2=$([ -n "$COMPARE_KEY2" ] && field "$COMPARE_KEY2" <<<"$out")
	if [ "$mode" = km ] && [ "$KM_COUNTS" = 1 ]; then
		R_SRV=$(timing_sum syscalls_served "$err") R_EXIT=$(timing_sum syscalls_exit "$err")
	fi
	if [ $rc -ne 0 ] || ! isnum "$R1"; then
		R1=FAIL R_ERR=$(errline "$err" $rc)
		fail "$guest ($libc) failed $([ "$mode" = km ] && echo "under km${opts:+ $opts}" || echo natively): status $rc$([ $rc -eq 124 ] && echo ', timed out'), output '$(head -c 100 <<<"$out")', stderr in $err"
	fi
}

# compare LIBC GUEST ARG KEY RUNS FLOOR: runs the guest RUNS times natively and under km (with
# KM_OPTS), alternating (native, [floor,] km, native, ...) so that both see the same machine load.
# NAT, KMV = medians of the KEY=value the guest printed (NAT_MIN, KMV_MIN: the smallest); FLR = median
# of the floor measured between them when km is runnable (else the one measured at the start):
# FLOOR 0 none, 1 or km_path the exit floor, sysjmp+poll the exitless path's (the sum of the two).
# A side that fails once is not run again and shows FAIL; km shows n/a when km is not runnable.
# KM_ERR: the first line of km's error when km failed, else empty. KM_SRV, KM_EXIT: R_SRV and
# R_EXIT of the last km run (KM_COUNTS=1). COMPARE_KEY2: a second KEY2=value of the same runs, whose
# medians go to NAT2, KMV2 (once leaves it in R2).
COMPARE_KEY2=""
# floor_now VARIANT[+VARIANT...]: the sum of the medians of a short vmexit_floor run of each, or empty
floor_now() {
	local v f sum=0
	for v in ${1//+/ }; do
		f=$("$B/vmexit_floor" "$FLOOR_BATCHES_INTERLEAVED" "$FLOOR_PER_BATCH" "$v" 2>/dev/null | field median_ns)
		isnum "$f" || return 0
		sum=$(calc %.0f 'a + b' "$sum" "$f")
	done
	echo "$sum"
}
compare() {
	local libc=$1 guest=$2 arg=$3 key=$4 runs=$5 with_floor=$6 i f
	local nv="" kv="" fv="" nv2="" kv2=""
	NAT="" KMV="" KM_ERR="" KM_SRV="" KM_EXIT="" NAT2="" KMV2=""
	[ "$with_floor" = 1 ] && with_floor=km_path
	case $with_floor in
	km_path) FLR=$floor_km ;;
	sysjmp+poll) FLR=$floor_pollpath ;;
	*) FLR=n/a ;;
	esac
	[ $KM_OK = 0 ] && KMV=n/a
	for ((i = 0; i < runs; i++)); do
		if [ "$NAT" != FAIL ]; then
			once "$libc" native "$guest" "$arg" "$key"
			if [ "$R1" = FAIL ]; then NAT=FAIL; else nv+="$R1"$'\n' nv2+="$R2"$'\n'; fi
		fi
		[ $KM_OK = 0 ] || [ "$KMV" = FAIL ] && continue
		if [ "$with_floor" != 0 ]; then
			f=$(floor_now "$with_floor")
			isnum "$f" && fv+="$f"$'\n'
		fi
		once "$libc" km "$guest" "$arg" "$key"
		KM_SRV=$R_SRV KM_EXIT=$R_EXIT
		if [ "$R1" = FAIL ]; then KMV=FAIL KM_ERR=$R_ERR; else kv+="$R1"$'\n' kv2+="$R2"$'\n'; fi
	done
	NAT_MIN=$NAT KMV_MIN=$KMV NAT2=$NAT KMV2=$KMV
	if [ "$NAT" != FAIL ]; then
		NAT=$(median <<<"$nv") NAT_MIN=$(minimum <<<"$nv") NAT2=$(median <<<"$nv2")
	fi
	if [ "$KMV" != FAIL ] && [ "$KMV" != n/a ]; then
		KMV=$(median <<<"$kv") KMV_MIN=$(minimum <<<"$kv") KMV2=$(median <<<"$kv2")
	fi
	[ -n "$fv" ] && FLR=$(median <<<"$fv")
	return 0
}

# ---------------------------------------------------------------------------------------------------
echo "Each row: km's value, its peer's, km/peer, and the target km should meet. Times are medians"
echo "unless the row says p90. 'peer' is the same static program run natively, or a floor measured"
echo "with a bare KVM VM (no km). Benchmarks only print; targets are not asserted."
echo
row "metric" "km" "peer" "ratio" "target" "met"
row "------" "--" "----" "-----" "------" "---"

hello_target_ms=$(calc %.3f '3 + a / 1000' "$vmc_fresh_us")
if want floors; then
	row "VM creation floor, ms (new process)" - "$(ms "$vmc_fresh_us")" - "create+memslot+vCPU+first exit" -
	row "VM creation floor p90, ms (new process)" - "$(ms "$vmc_fresh_p90_us")" - - -
	row "VM creation floor, ms (warm, same process)" - "$(ms "$vmc_warm_us")" - - -
	row "VM teardown (close), ms" - "$(ms "$vmc_close_us")" - "not in the floor" -
	row "exit floor, ns: km's path (CPL3 syscall -> int3 -> CPL0 out -> iretq)" - "$floor_km" - "monitor: sync regs + frame edit" -
	row "exit floor p90, ns: km's path" - "$floor_km_p90" - - -
	row "exit floor, ns: plain exit (CPL3 int3 -> CPL0 out -> iretq)" - "$floor_int3" - "no syscall, no sync regs" -
	row "exit floor, ns: CPL0 out only (emulated on PVM)" - "$floor_out" - "km's old CPL0 path" -
	row "exitless floor, ns: syscall alone (CPL3 syscall -> LSTAR stub -> back)" - "$floor_sysjmp" - \
		"no exit; PVM traps syscall" -
	row "exitless floor, ns: poll (CPL3 guest <-> host thread, one word)" - "$floor_poll" - "no exit, no syscall" -
	row "exitless floor, ns: poll path (sysjmp + poll)" - "$floor_pollpath" - "the poll path's least cost" -
fi

want hello && for libc in $LIBCS; do
	log "hello ($libc): $HELLO_RUNS runs native, then under km$SKIPNOTE"
	hello "$libc" native
	n_med=$R1 n_p90=$R2
	hello "$libc" km
	k_med=$R1 k_p90=$R2
	row "hello wall, ms ($libc) vs native" "$(ms "$k_med")" "$(ms "$n_med")" "$(ratio "$k_med" "$n_med")" \
		"<= $hello_target_ms ms (3 ms + VM floor)" "$(met "$(ms "$k_med")" "$hello_target_ms")"
	row "hello wall p90, ms ($libc) vs native" "$(ms "$k_p90")" "$(ms "$n_p90")" "$(ratio "$k_p90" "$n_p90")" - -
done

# counts NOTE: NOTE, followed by the last km run's syscall counts when km printed them
counts() { if [ -n "$KM_SRV$KM_EXIT" ]; then echo "$1 (served ${KM_SRV:-?}, exit ${KM_EXIT:-?})"; else echo "$1"; fi; }
# getppid: under the default path (auto), --syscall-path=poll and --syscall-path=exit, each beside
# native and beside its floor (the exitless path's: sysjmp + poll; the exit path's: km_path),
# measured between the km runs. The target is the poll path's (<= 3x native); the floor row says
# whether this host's exitless floor allows it at all.
want getppid && for libc in $LIBCS; do
	KM_COUNTS=1
	for path in auto poll exit; do
		KM_OPTS=()
		[ $path = auto ] || KM_OPTS=("--syscall-path=$path")
		fl=sysjmp+poll
		[ $path = exit ] && fl=km_path
		log "getppid loop ($libc, --syscall-path=$path): $GETPPID_RUNS runs of $GETPPID_N calls each, native / floor ($fl) / km alternating$SKIPNOTE"
		compare "$libc" getppid_loop "$GETPPID_N" ns_per_call "$GETPPID_RUNS" $fl
		case $path in
		auto)
			row "getppid, ns/call ($libc) vs native (default path)" "$KMV" "$NAT" "$(ratio "$KMV" "$NAT")" "<= 3.00x" \
				"$(kmfailed "$(counts "$(met "$(calc %.4f 'a / b' "$KMV" "$NAT")" 3)")" "$KM_ERR")"
			;;
		poll)
			row "getppid --syscall-path=poll, ns/call ($libc) vs native" "$KMV" "$NAT" "$(ratio "$KMV" "$NAT")" \
				"<= 3.00x" "$(kmfailed "$(counts "$(met "$(calc %.4f 'a / b' "$KMV" "$NAT")" 3)")" "$KM_ERR")"
			row "getppid --syscall-path=poll, ns/call ($libc) vs floor sysjmp + poll" "$KMV" "$FLR" \
				"$(ratio "$KMV" "$FLR")" - "$(kmfailed - "$KM_ERR")"
			row "  floor sysjmp + poll, ns vs native getppid ($libc)" "$FLR" "$NAT" "$(ratio "$FLR" "$NAT")" \
				"<= 3.00x (target reachable?)" "$(met "$(calc %.4f 'a / b' "$FLR" "$NAT")" 3)"
			;;
		exit)
			row "getppid --syscall-path=exit, ns/call ($libc) vs native" "$KMV" "$NAT" "$(ratio "$KMV" "$NAT")" - \
				"$(kmfailed "$(counts -)" "$KM_ERR")"
			row "getppid --syscall-path=exit, ns/call ($libc) vs km-path floor" "$KMV" "$FLR" "$(ratio "$KMV" "$FLR")" \
				"<= 1.30x" "$(kmfailed "$(met "$(calc %.4f 'a / b' "$KMV" "$FLR")" 1.30)" "$KM_ERR")"
			;;
		esac
	done
	KM_OPTS=() KM_COUNTS=0
done

want clock && for libc in $LIBCS; do
	log "clock_gettime loop ($libc): $CLOCK_RUNS runs of $CLOCK_N calls each, native / km alternating$SKIPNOTE"
	compare "$libc" clock_loop "$CLOCK_N" ns_per_call "$CLOCK_RUNS" 0
	row "clock_gettime (vDSO), ns/call ($libc) vs native" "$KMV" "$NAT" "$(ratio "$KMV" "$NAT")" "<= 2.00x" \
		"$(kmfailed "$(met "$(calc %.4f 'a / b' "$KMV" "$NAT")" 2.00)" "$KM_ERR")"
done

want cpu && for libc in $LIBCS; do
	log "cpu loop ($libc): $CPU_RUNS runs of $CPU_N rounds each, native / km alternating$SKIPNOTE"
	compare "$libc" cpu_loop "$CPU_N" seconds "$CPU_RUNS" 0
	row "cpu loop, s ($libc) vs native, best of $CPU_RUNS" "$KMV_MIN" "$NAT_MIN" "$(ratio "$KMV_MIN" "$NAT_MIN")" "<= 1.03x" \
		"$(kmfailed "$(met "$(calc %.4f 'a / b' "$KMV_MIN" "$NAT_MIN")" 1.03)" "$KM_ERR")"
	row "cpu loop, s ($libc) vs native, median" "$KMV" "$NAT" "$(ratio "$KMV" "$NAT")" "<= 1.03x" \
		"$(kmfailed "$(met "$(calc %.4f 'a / b' "$KMV" "$NAT")" 1.03)" "$KM_ERR")"
done

# First touch (section touch): touch_first stores once into each 4 KiB page of TOUCH_MIB MiB it just
# mapped, natively and under km, alternating; touch_floor does the same in a bare VM (no km), with
# 2 MiB or 4 KiB guest pages over THP or 4 KiB host memory. Back-to-back runs reuse host memory the
# previous run freed; the "after idle" rows wait TOUCH_IDLE s first, long enough for this host to
# hand free memory back to its own hypervisor (free page reporting), which then faults it in again.
# touch_floor VARIANT MIB RUNS: R1 = median ns (FAIL if it failed); PREFAULT = KVM_PRE_FAULT_MEMORY's answer
touch_floor() {
	local out
	out=$("$B/touch_floor" "$2" "$3" "$1" 2>"$B/touch_floor.err")
	R1=$(sed -n "s/^variant=$1 .*median_ns=\([0-9]*\).*/\1/p" <<<"$out")
	PREFAULT=$(sed -n 's/^pre_fault=//p' <<<"$out")
	if ! isnum "$R1"; then
		R1=FAIL
		fail "touch_floor $1 failed: $(head -n1 "$B/touch_floor.err")"
	fi
}
nsms0() { if [ "$1" = FAIL ] || [ "$1" = n/a ]; then echo "$1"; else calc %.0f 'a / 1e6' "$1"; fi; }
kbmib0() { if isnum "$1"; then calc %.1f 'a / 1024' "$1"; else echo "$1"; fi; } # kB -> MiB
perpage() { if isnum "$1"; then calc %.0f "a / ($2 * 256)" "$1"; else echo "$1"; fi; } # ns per 4 KiB page
want touch && {
	log "first touch: floors in a bare VM ($TOUCH_MIB MiB, $TOUCH_RUNS runs; 4 KiB host pages at $TOUCH_SMALL_MIB MiB, 1 run)"
	touch_floor huge_thp "$TOUCH_MIB" "$TOUCH_RUNS"; t_huge=$R1
	touch_floor native_thp "$TOUCH_MIB" "$TOUCH_RUNS"; t_nthp=$R1
	touch_floor small_thp "$TOUCH_MIB" 1; t_small=$R1
	touch_floor huge_nothp "$TOUCH_SMALL_MIB" 1; t_nothp=$R1
	log "first touch (gcc): $TOUCH_RUNS runs of $TOUCH_MIB MiB, native / km alternating$SKIPNOTE"
	compare gcc touch_first "$TOUCH_MIB" touch_ns "$TOUCH_RUNS" 0
	t_nat=$NAT t_km=$KMV t_err=$KM_ERR
	log "first touch after $TOUCH_IDLE s idle: native, km, floor, once each$SKIPNOTE"
	sleep "$TOUCH_IDLE"; once gcc native touch_first "$TOUCH_MIB" touch_ns; c_nat=$R1
	c_km=n/a
	if [ $KM_OK = 1 ]; then sleep "$TOUCH_IDLE"; once gcc km touch_first "$TOUCH_MIB" touch_ns; c_km=$R1; fi
	sleep "$TOUCH_IDLE"; touch_floor huge_thp "$TOUCH_MIB" 1; c_huge=$R1
	sleep "$TOUCH_IDLE"; touch_floor native_thp "$TOUCH_MIB" 1; c_nthp=$R1
	log "RSS of a program that maps $TOUCH_MIB MiB and touches 16 MiB$SKIPNOTE"
	compare gcc touch_first "$TOUCH_MIB:16" rss_kb 1 0
	r_nat=$NAT r_km=$KMV
	row "first touch $TOUCH_MIB MiB, ms (gcc) vs native" "$(nsms0 "$t_km")" "$(nsms0 "$t_nat")" \
		"$(ratio "$t_km" "$t_nat")" "<= 2.00x" "$(kmfailed "$(met "$(calc %.4f 'a / b' "$t_km" "$t_nat")" 2.00)" "$t_err")"
	row "first touch $TOUCH_MIB MiB, ms (gcc) vs floor (2 MiB guest pages, THP)" "$(nsms0 "$t_km")" \
		"$(nsms0 "$t_huge")" "$(ratio "$t_km" "$t_huge")" "<= 1.30x" \
		"$(kmfailed "$(met "$(calc %.4f 'a / b' "$t_km" "$t_huge")" 1.30)" "$t_err")"
	row "first touch floor, ms: native over THP (MADV_HUGEPAGE)" - "$(nsms0 "$t_nthp")" - "what THP itself costs here" -
	row "first touch after ${TOUCH_IDLE} s idle, ms (gcc) vs native" "$(nsms0 "$c_km")" "$(nsms0 "$c_nat")" \
		"$(ratio "$c_km" "$c_nat")" "<= 2.00x" "$(met "$(calc %.4f 'a / b' "$c_km" "$c_nat")" 2.00)"
	row "first touch after ${TOUCH_IDLE} s idle, ms (gcc) vs floor" "$(nsms0 "$c_km")" "$(nsms0 "$c_huge")" \
		"$(ratio "$c_km" "$c_huge")" "host refaults freed THP" -
	row "first touch after ${TOUCH_IDLE} s idle floor, ms: native over THP" - "$(nsms0 "$c_nthp")" - "the same refault, no VM" -
	row "first touch floor, ns/4 KiB page: 2 MiB guest pages, THP" - "$(perpage "$t_huge" "$TOUCH_MIB")" - - -
	row "first touch floor, ns/4 KiB page: 4 KiB guest pages, THP" - "$(perpage "$t_small" "$TOUCH_MIB")" - \
		"one shadow fault per page" -
	row "first touch floor, ns/4 KiB page: no THP on the host" - "$(perpage "$t_nothp" "$TOUCH_SMALL_MIB")" - \
		"one host fault per page" -
	row "KVM_PRE_FAULT_MEMORY on this host" - "${PREFAULT:-n/a}" - "needs TDP (absent on PVM)" -
	row "RSS, MiB: $TOUCH_MIB MiB mapped, 16 touched (gcc) vs native" "$(kbmib0 "$r_km")" "$(kbmib0 "$r_nat")" \
		"$(ratio "$r_km" "$r_nat")" "no populate of untouched memory" -
}

nsus() { if [ "$1" = FAIL ]; then echo FAIL; else calc %.1f 'a / 1000' "$1"; fi; } # ns -> us

# io_tcp_native_server LIBC: the TCP echo row whose server runs natively (the glibc tcp_echo server,
# started here and killed after): the LIBC client natively and under km, alternating.
io_tcp_native_server() {
	local libc=$1 port="" i out="$B/tcp-server.out"
	rm -f "$out"
	"$B/guests/gcc/tcp_echo" server >"$out" 2>&1 </dev/null &
	TCP_SRV_PID=$!
	for ((i = 0; i < 100; i++)); do
		port=$(sed -n 's/^port=//p' "$out" 2>/dev/null)
		[ -n "$port" ] && break
		kill -0 "$TCP_SRV_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [ -z "$port" ]; then
		KMV=FAIL NAT=FAIL KM_ERR="the native server did not start: $(head -c 100 "$out")"
		fail "tcp_echo server (native) did not start: $(head -c 100 "$out")"
	else
		log "TCP echo over loopback ($libc client, native server): $IO_RUNS runs of $TCP_N requests$SKIPNOTE"
		compare "$libc" tcp_echo "client $port $TCP_N" requests_per_s "$IO_RUNS" 0
	fi
	kill "$TCP_SRV_PID" 2>/dev/null
	wait "$TCP_SRV_PID" 2>/dev/null
	TCP_SRV_PID=""
	row "TCP 1-byte echo, req/s ($libc client, native server) vs native client" "$KMV" "$NAT" \
		"$(ratio "$NAT" "$KMV")" "<= 2.00x (native/km)" \
		"$(kmfailed "$(counts "$(met "$(calc %.4f 'b / a' "$KMV" "$NAT")" 2)")" "$KM_ERR")"
}

# io: a pipe between two threads and between two processes (guests/pipe_pingpong), a 1-byte TCP
# echo over loopback in the guest (guests/tcp_echo threads) and its client alone against a native
# server; native / km alternating, km under the default syscall path. Targets: <= 2x native.
if want io; then
	KM_COUNTS=1
	for libc in $LIBCS; do
		for mode in threads procs; do
			log "pipe ping-pong ($libc, $mode): $IO_RUNS runs of $PIPE_N round trips, native / km alternating$SKIPNOTE"
			compare "$libc" pipe_pingpong "$mode $PIPE_N" ns_per_round_trip "$IO_RUNS" 0
			row "pipe 1-byte round trip, us ($libc, two $mode) vs native" "$(nsus "$KMV")" "$(nsus "$NAT")" \
				"$(ratio "$KMV" "$NAT")" "<= 2.00x" \
				"$(kmfailed "$(counts "$(met "$(calc %.4f 'a / b' "$KMV" "$NAT")" 2)")" "$KM_ERR")"
		done
		log "TCP echo over loopback ($libc, server thread in the guest): $IO_RUNS runs of $TCP_N requests$SKIPNOTE"
		compare "$libc" tcp_echo "threads $TCP_N" requests_per_s "$IO_RUNS" 0
		row "TCP 1-byte echo, requests/s ($libc, client + server thread) vs native" "$KMV" "$NAT" \
			"$(ratio "$NAT" "$KMV")" "<= 2.00x (native/km)" \
			"$(kmfailed "$(counts "$(met "$(calc %.4f 'b / a' "$KMV" "$NAT")" 2)")" "$KM_ERR")"
		io_tcp_native_server "$libc"
	done
	KM_COUNTS=0
fi

# Threads: the same static guest natively and under km, alternating; the guests print ns, the rows
# show us.
want threads && for libc in $LIBCS; do
	log "thread create+join ($libc): $THREAD_RUNS runs of $THREAD_N threads each, native / km alternating$SKIPNOTE"
	compare "$libc" thread_create "$THREAD_N" ns_per_thread "$THREAD_RUNS" 0
	row "thread create+join, us/thread ($libc) vs native" "$(nsus "$KMV")" "$(nsus "$NAT")" "$(ratio "$KMV" "$NAT")" \
		- "$(kmfailed - "$KM_ERR")"
	log "futex ping-pong ($libc): $FUTEX_RUNS runs of $FUTEX_N round trips each, native / km alternating$SKIPNOTE"
	compare "$libc" futex_pingpong "$FUTEX_N" ns_per_round_trip "$FUTEX_RUNS" 0
	row "futex ping-pong, us/round trip ($libc) vs native" "$(nsus "$KMV")" "$(nsus "$NAT")" "$(ratio "$KMV" "$NAT")" \
		- "$(kmfailed - "$KM_ERR")"
done

# Processes: fork + _exit + waitpid, natively and under km, alternating (each km child is a km
# process with a new VM over the parent's copy-on-write memory).
want procs && for libc in $LIBCS; do
	log "fork+exit+wait ($libc): $FORK_RUNS runs of $FORK_N children each, native / km alternating$SKIPNOTE"
	compare "$libc" fork_wait "$FORK_N" ns_per_fork "$FORK_RUNS" 0
	row "fork+exit+wait, us/child ($libc) vs native" "$(nsus "$KMV")" "$(nsus "$NAT")" "$(ratio "$KMV" "$NAT")" \
		- "$(kmfailed - "$KM_ERR")"
done

# Dirty tracking (issue 11, the tracker behind incremental snapshots): what a program pays per page
# it stores to after each collect (KVM write-protects the pages again), beside the same store with
# tracking off; the collect itself (every vCPU stopped; part of an incremental snapshot's pause),
# and the start (part of the first snapshot's pause), plain or after km_dirty_arm turned KVM's
# log on while the program ran; all timed by the program around the hypercall. guests/dirty_write under km's
# test-only --test-dirty-probe; no peer runs it (CRIU's counterpart is soft-dirty bits, not timed).
if want dirty; then
	libc=gcc
	log "dirty tracking ($libc): $DIRTY_RUNS runs of $DIRTY_PAGES pages, and of ${DIRTY_BIG%%:*} with ${DIRTY_BIG##*:} changed$SKIPNOTE"
	d_on=() d_off=() d_coll=() d_start=() d_armed=() d_err=""
	for ((i = 0; i < DIRTY_RUNS; i++)); do
		[ $KM_OK = 1 ] || break
		for args in "$DIRTY_PAGES" "${DIRTY_BIG%%:*} ${DIRTY_BIG##*:}" "${DIRTY_BIG%%:*} ${DIRTY_BIG##*:} arm"; do
			# shellcheck disable=SC2086 # two numbers
			out=$(timeout "$KM_TIMEOUT" "$KM" --test-dirty-probe "$B/guests/$libc/dirty_write" $args \
				2>"$B/dirty-$libc.err")
			rc=$?
			if [ $rc -ne 0 ] || ! isnum "$(field first_ns <<<"$out")"; then
				d_err=$(errline "$B/dirty-$libc.err" $rc)
				fail "dirty_write $args ($libc) failed under km: status $rc, output '$(head -c 100 <<<"$out")', stderr in $B/dirty-$libc.err"
				break 2
			fi
			case $args in
			"$DIRTY_PAGES") d_on+=("$(field first_ns <<<"$out")") d_off+=("$(field off_ns <<<"$out")") ;;
			*arm) d_armed+=("$(field start_us <<<"$out")") ;;
			*) d_coll+=("$(field collect_us <<<"$out")") d_start+=("$(field start_us <<<"$out")") ;;
			esac
		done
	done
	if [ -n "$d_err" ]; then
		KMV=FAIL NAT=FAIL COLL=FAIL START=FAIL ARMED=FAIL
	elif [ ${#d_on[@]} -eq 0 ]; then
		KMV=n/a NAT=n/a COLL=n/a START=n/a ARMED=n/a
	else
		KMV=$(printf '%s\n' "${d_on[@]}" | median) NAT=$(printf '%s\n' "${d_off[@]}" | median)
		COLL=$(printf '%s\n' "${d_coll[@]}" | median) START=$(printf '%s\n' "${d_start[@]}" | median)
		ARMED=$(printf '%s\n' "${d_armed[@]}" | median)
	fi
	row "first store to a page after a dirty collect, us/page vs tracking off" "$(nsus "$KMV")" "$(nsus "$NAT")" \
		"$(ratio "$KMV" "$NAT")" - "$(kmfailed - "$d_err")"
	isnum "$COLL" && COLL=$(ms "$COLL")
	isnum "$START" && START=$(ms "$START")
	isnum "$ARMED" && ARMED=$(ms "$ARMED")
	row "dirty collect, $((${DIRTY_BIG##*:} / 256)) MiB changed of $((${DIRTY_BIG%%:*} / 256)) MiB, ms" "$COLL" - - - "$(kmfailed - "$d_err")"
	row "dirty start, $((${DIRTY_BIG%%:*} / 256)) MiB touched, ms" "$START" - - - "$(kmfailed - "$d_err")"
	row "dirty start armed beforehand (km_dirty_arm), $((${DIRTY_BIG%%:*} / 256)) MiB touched, ms" "$ARMED" - - - \
		"$(kmfailed - "$d_err")"
fi

# ---------------------------------------------------------------------------------------------------
# Containers: km-shim beside runc (and crun) on the example bundles (examples/bundles), the same
# bundle for each runtime. Start-to-exit: `RUNTIME run --bundle hello ID` timed by walltime (create,
# start, the program, exit, delete). Checkpoint/restore: the counter started with `run -d`, then
# `checkpoint --image-path` (the container ends) and `restore -d` each timed by walltime; runc's
# steps run with CRIU 4.1.1 on PATH, in criu's private mount namespace when there is one (as the
# snapshot rows' criu runs). crun runs only with the cgroup2 mount hidden (a private mount
# namespace with /sys/fs/cgroup/unified unmounted: Debian's crun 1.8.1 refuses the hybrid layout).
SHIM_OK=0 SHIM_WHY="" RUNC_OK=0 RUNC_WHY="" CRUN_OK=0 CRUN_WHY="" RUNC="" CRUN=""
if want shim || want shimck; then
	if [ "$(id -u)" != 0 ]; then
		SHIM_WHY="container runtimes need root" RUNC_WHY=$SHIM_WHY CRUN_WHY=$SHIM_WHY
	elif [ ! -x "$BUNDLES/hello/rootfs/bin/hello" ] || [ ! -x "$BUNDLES/counter/rootfs/bin/counter" ]; then
		SHIM_WHY="no example bundles in $BUNDLES (make bundles)" RUNC_WHY=$SHIM_WHY CRUN_WHY=$SHIM_WHY
	else
		SHIMTMP=$(mktemp -d "$SNAP_DIR/shimbench.XXXXXX") || SHIMTMP=""
		if [ -z "$SHIMTMP" ]; then
			SHIM_WHY="cannot make a temporary directory in $SNAP_DIR" RUNC_WHY=$SHIM_WHY CRUN_WHY=$SHIM_WHY
		else
			cp -a "$BUNDLES/hello" "$BUNDLES/counter" "$SHIMTMP/"
			[ -x "$KM_SHIM" ] && SHIM_OK=1 || SHIM_WHY="$KM_SHIM is missing (make shim)"
			if RUNC=$(command -v runc); then RUNC_OK=1; else RUNC_WHY="runc is not installed (scripts/deps.sh installs it)"; fi
			if CRUN=$(command -v crun); then CRUN_OK=1; else CRUN_WHY="crun is not installed (scripts/deps.sh installs it)"; fi
		fi
	fi
fi
# CRUN_NS: crun's prefix, a private mount namespace without the cgroup2 mount.
CRUN_NS=(unshare --mount --propagation private -- sh -c 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"' sh)
RUNC_NS=(env "PATH=$PATH")
[ $CRIU_OK = 1 ] && RUNC_NS=(env "PATH=$(dirname "$CRIU"):$PATH") # runc checkpoints with the first criu on PATH
[ ${#CRIU_NS[@]} -gt 0 ] && RUNC_NS=("${CRIU_NS[@]}" "${RUNC_NS[@]}")

# rt_hello NAME RUNTIME PREFIX...: R1 = median us of RUNTIME run of the hello bundle (SHIM_RUNS
# runs after 3 warm-ups, through PREFIX), R2 = p90 us; FAIL with R_ERR on a failure.
rt_hello() {
	local name=$1 rt=$2 r rc err="$B/shim-hello-$1.err"
	shift 2
	R1=n/a R2=n/a R_ERR=""
	r=$("$@" "$B/walltime" -n "$SHIM_RUNS" -w 3 -t "$KM_TIMEOUT" -- "$rt" --root "$SHIMTMP/$name-root" \
		run --bundle "$SHIMTMP/hello" bench-hello 2>"$err")
	rc=$?
	R1=$(field median_us <<<"$r") R2=$(field p90_us <<<"$r")
	if [ $rc -ne 0 ] || ! isnum "$R1"; then
		R1=FAIL R2=FAIL R_ERR=$(head -c 160 "$err")
		fail "$name run of the hello bundle failed: $(head -n 1 "$err") (all in $err)"
	fi
}

# rt_ck NAME RUNTIME PREFIX...: SHIM_CK_RUNS rounds of counter: run -d, checkpoint, restore -d,
# kill. CK1/CK2/CK3: medians of checkpoint us, restore us, image bytes on disk; FAIL and R_ERR
# on a failure (no further rounds).
rt_ck() {
	local name=$1 rt=$2 i r id root img cv="" rv="" sv="" err="$B/shim-ck-$1.err"
	shift 2
	CK1=n/a CK2=n/a CK3=n/a R_ERR=""
	root="$SHIMTMP/$name-ckroot"
	for ((i = 0; i < SHIM_CK_RUNS; i++)); do
		id=bench-ck-$i img="$SHIMTMP/$name-img-$i"
		SHIM_LIVE+=("$name-$i|$rt|$root|$id")
		# All of the container's stdio is /dev/null: CRIU cannot checkpoint a host file.
		if ! "$@" "$rt" --root "$root" run -d --bundle "$SHIMTMP/counter" "$id" </dev/null >/dev/null 2>&1; then
			R_ERR="run -d failed: $("$@" "$rt" --root "$root" run -d --bundle "$SHIMTMP/counter" "$id-again" 2>&1 </dev/null | head -c 120)"
			SHIM_LIVE+=("$name-$i|$rt|$root|$id-again")
			break
		fi
		sleep 0.3 # running and counting, not just created
		r=$("$@" "$B/walltime" -n 1 -w 0 -t "$SNAP_TIMEOUT" -- "$rt" --root "$root" checkpoint \
			--image-path "$img" --work-path "$img.work" "$id" 2>"$err")
		if ! isnum "$(field median_us <<<"$r")"; then
			cp "$img.work/dump.log" "$B/shim-ck-$name-dump.log" 2>/dev/null
			R_ERR="checkpoint: $(head -c 120 "$err")$([ -s "$B/shim-ck-$name-dump.log" ] && echo "; CRIU's log: $B/shim-ck-$name-dump.log")"
			break
		fi
		cv+="$(field median_us <<<"$r")"$'\n'
		sv+="$(du -s -B1 "$img" | cut -f1)"$'\n'
		"$@" "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
		r=$("$@" "$B/walltime" -n 1 -w 0 -t "$SNAP_TIMEOUT" -- "$rt" --root "$root" restore -d \
			--image-path "$img" --work-path "$img.rwork" --bundle "$SHIMTMP/counter" "$id" 2>"$err")
		if ! isnum "$(field median_us <<<"$r")"; then
			cp "$img.rwork/restore.log" "$B/shim-ck-$name-restore.log" 2>/dev/null
			R_ERR="restore: $(head -c 120 "$err")$([ -s "$B/shim-ck-$name-restore.log" ] && echo "; CRIU's log: $B/shim-ck-$name-restore.log")"
			break
		fi
		rv+="$(field median_us <<<"$r")"$'\n'
		if ! "$@" "$rt" --root "$root" state "$id" 2>&1 | grep -q '"status": *"running"'; then
			R_ERR="the restored counter is not running: $("$@" "$rt" --root "$root" state "$id" 2>&1 | grep status | head -c 100)"
			break
		fi
		"$@" "$rt" --root "$root" kill "$id" KILL >/dev/null 2>&1
		sleep 0.1
		"$@" "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
		rm -rf "$img" "$img.work" "$img.rwork"
	done
	if [ -n "$R_ERR" ]; then
		CK1=FAIL CK2=FAIL CK3=FAIL
		fail "$name checkpoint/restore of the counter bundle failed: $R_ERR (stderr in $err)"
		"$@" "$rt" --root "$root" delete --force "$id" >/dev/null 2>&1
		return
	fi
	CK1=$(median <<<"$cv") CK2=$(median <<<"$rv") CK3=$(median <<<"$sv")
}

msf() { if [ "$1" = FAIL ]; then echo FAIL; else ms "$1"; fi; }                         # us -> ms
mbf() { if [ "$1" = FAIL ]; then echo FAIL; else calc %.2f 'a / 1048576' "$1"; fi; } # bytes -> MiB

# peer_note OK WHY ERR: the last column of a container row: why the peer or km-shim is missing.
peer_note() {
	if [ "$1" != 1 ]; then echo "peer n/a: $2"; elif [ -n "$3" ]; then echo "failed: $3" | head -c 60; else echo -; fi
}

if want shim; then
	log "container start-to-exit: $SHIM_RUNS runs of 'run --bundle hello' each under km-shim, runc, crun"
	s_med=n/a s_p90=n/a s_err="" r_med=n/a r_p90=n/a c_med=n/a
	[ $SHIM_OK = 1 ] && { rt_hello km-shim "$KM_SHIM" env; s_med=$R1 s_p90=$R2 s_err=$R_ERR; }
	[ $RUNC_OK = 1 ] && { rt_hello runc "$RUNC" env; r_med=$R1 r_p90=$R2; }
	if [ $CRUN_OK = 1 ]; then
		rt_hello crun "$CRUN" "${CRUN_NS[@]}"
		c_med=$R1
		[ "$c_med" = FAIL ] && CRUN_OK=0 CRUN_WHY="crun failed even with the cgroup2 mount hidden: $R_ERR"
	fi
	row "container start-to-exit, ms (hello): km-shim vs runc" "$(msf "$s_med")" "$(msf "$r_med")" \
		"$(ratio "$s_med" "$r_med")" - "$(peer_note $RUNC_OK "$RUNC_WHY" "$s_err")"
	row "container start-to-exit p90, ms (hello): km-shim vs runc" "$(msf "$s_p90")" "$(msf "$r_p90")" \
		"$(ratio "$s_p90" "$r_p90")" - -
	row "container start-to-exit, ms (hello): km-shim vs crun (no cgroup2)" "$(msf "$s_med")" "$(msf "$c_med")" \
		"$(ratio "$s_med" "$c_med")" - "$(peer_note $CRUN_OK "$CRUN_WHY" "$s_err")"
fi

if want shimck; then
	RUNC_CK_OK=$RUNC_OK RUNC_CK_WHY=$RUNC_WHY
	[ $RUNC_OK = 1 ] && [ $CRIU_OK = 0 ] && RUNC_CK_OK=0 RUNC_CK_WHY="no CRIU for runc: $CRIU_WHY"
	log "container checkpoint + restore: $SHIM_CK_RUNS rounds of the counter bundle each under km-shim, runc + CRIU"
	s1=n/a s2=n/a s3=n/a s_err="" r1=n/a r2=n/a r3=n/a
	[ $SHIM_OK = 1 ] && { rt_ck km-shim "$KM_SHIM" env; s1=$CK1 s2=$CK2 s3=$CK3 s_err=$R_ERR; }
	[ $RUNC_CK_OK = 1 ] && { rt_ck runc "$RUNC" "${RUNC_NS[@]}"; r1=$CK1 r2=$CK2 r3=$CK3; }
	row "container checkpoint, ms (counter): km-shim vs runc + CRIU" "$(msf "$s1")" "$(msf "$r1")" \
		"$(ratio "$s1" "$r1")" - "$(peer_note $RUNC_CK_OK "$RUNC_CK_WHY" "$s_err")"
	row "container restore -d, ms (counter): km-shim vs runc + CRIU" "$(msf "$s2")" "$(msf "$r2")" \
		"$(ratio "$s2" "$r2")" - "$(peer_note $RUNC_CK_OK "$RUNC_CK_WHY" "$s_err")"
	row "container checkpoint on disk, MiB (counter): km-shim vs runc + CRIU" "$(mbf "$s3")" "$(mbf "$r3")" \
		"$(ratio "$s3" "$r3")" - -
fi

# ---------------------------------------------------------------------------------------------------
# Snapshots: km beside CRIU on the same static program (guests/snap_touch), per touched-memory size.
# Every run of a size does, in this order: the plain write floor, km snapshot + km restore, native
# run + criu dump + criu restore. Snapshots, images and the floor file live in one temporary
# directory under SNAP_DIR (same filesystem for all three), removed as soon as each is measured and
# at exit.
if want snap || want snap4 || want fds || want copies || want live || want incr; then
	SNAPTMP=$(mktemp -d "$SNAP_DIR/snapbench.XXXXXX") || { fail "cannot make a temporary directory in $SNAP_DIR"; SNAPTMP=""; }
fi
SNAP_G="$B/guests/$SNAP_LIBC/snap_touch"
SNAP_G4="$B/guests/$SNAP_LIBC/snap_threads" # the 4-thread program of the snap4 rows
KM_SNAP_WHY="" # set when km has no snapshots at all: then later sizes are not tried
KM_MGMT_WHY="" # set when the --mgmt rows cannot be measured (no client)

declare -A ACC # per size: KEY -> newline-separated values, or FAIL
acc() {        # acc KEY VALUE: a number is kept, FAIL sticks, anything else (n/a) is ignored
	[ "${ACC[$1]:-}" = FAIL ] && return
	if isnum "$2"; then ACC[$1]+="$2"$'\n'; elif [ "$2" = FAIL ]; then ACC[$1]=FAIL; fi
}
res() { # res KEY: median, FAIL, or n/a
	local v=${ACC[$1]:-}
	if [ "$v" = FAIL ]; then echo FAIL; elif [ -z "$v" ]; then echo n/a; else median <<<"$v"; fi
}
# nanoseconds -> milliseconds, bytes -> MiB; FAIL stays FAIL
nsms() { if [ "$1" = FAIL ]; then echo FAIL; else calc "${2:-%.1f}" 'a / 1e6' "$1"; fi; }
mib() { if [ "$1" = FAIL ]; then echo FAIL; else calc %.1f 'a / 1048576' "$1"; fi; }
outline() { sed -n "s/^out: //p" <<<"$1" | sed -n "${2}p"; } # the guest's Nth output line
# within KM REF PCT: yes if KM is within PCT % of REF
within() {
	if isnum "$1" && isnum "$2"; then
		awk -v a="$1" -v b="$2" -v c="$3" 'BEGIN { print (a >= b * (1 - c / 100) && a <= b * (1 + c / 100)) ? "yes" : "no" }'
	else echo -; fi
}
lt() { if isnum "$1" && isnum "$2"; then calc %s '(a < b) ? "yes" : "no"' "$1" "$2"; else echo -; fi; }
# restored_ok OUTPUT: the restored program's first line is "resumed" and it verified its memory
restored_ok() { [ "$(outline "$1" 1)" = resumed ] && grep -q '^out: verify=ok' <<<"$1"; }

# settle: flush what earlier steps left dirty on the snapshot filesystem, so that every timed write
# starts from the same state instead of paying for its predecessor's writeback
settle() { sync -f "$SNAPTMP" 2>/dev/null || sync; }

# snap_floor MIB: acc floor = ns to write MIB MiB + fsync on SNAP_DIR's filesystem
snap_floor() {
	local r v
	settle
	r=$("$B/snaptime" write "$SNAPTMP/floor" "$1" 2>"$B/snap-floor.err")
	v=$(field write_ns <<<"$r")
	if ! isnum "$v"; then
		v=FAIL
		fail "write floor ($1 MiB) failed: $(head -n1 "$B/snap-floor.err")"
	fi
	acc floor "$v"
}

# snap_km MIB: km snapshots snap_touch (self), then restores it. acc: ksnap (ns, guest's timestamp
# before the hypercall -> km's exit), ksize (bytes on disk), kentry (km-timing
# restore_to_first_entry_ns), kout (ns, spawn of km -> first byte on stdout), kown (km-timing
# snapshot_ns, when km prints one).
snap_km() {
	local m=$1 f="$SNAPTMP/snap.km" r l1 st v
	local es="$B/km-snap-$1.err" er="$B/km-restore-$1.err"
	[ $KM_OK = 0 ] && return
	if [ -n "$KM_SNAP_WHY" ]; then
		for v in ksnap ksize kentry kout; do acc $v FAIL; done
		return
	fi
	rm -f "$f"
	settle
	r=$(KM_TIMING=1 "$B/snaptime" self -t "$SNAP_TIMEOUT" -- "$KM" --snapshot="$f" "$SNAP_G" "$m" self 2>"$es")
	l1=$(head -n1 <<<"$r")
	st=$(field status <<<"$l1")
	v=$(field snap_ns <<<"$l1")
	if [ "$st" != 0 ] || ! isnum "$v" || [ ! -s "$f" ]; then
		for v in ksnap ksize kentry kout; do acc $v FAIL; done
		if grep -q 'returned -38' <<<"$r"; then
			KM_SNAP_WHY="km has no snapshots yet: in the guest, km_snapshot() returned -ENOSYS"
			fail "km snapshot: $KM_SNAP_WHY (km run: status ${st:-?}; no further km snapshot runs)"
		else
			fail "km snapshot ($m MiB) failed: status ${st:-timed out}, $([ -s "$f" ] && echo "file written" || echo "no snapshot file"), guest said '$(sed -n 's/^out: //p' <<<"$r" | tail -n1)', km's stderr: $(head -n1 "$es") (all in $es)"
		fi
		rm -f "$f"
		return
	fi
	acc ksnap "$v"
	acc ksize "$(du -B1 "$f" | cut -f1)"
	acc kown "$(sed -n 's/.*km-timing:.*snapshot_ns=\([0-9]*\).*/\1/p' "$es" | head -n1)"

	r=$(KM_TIMING=1 "$B/snaptime" firstout -t "$SNAP_TIMEOUT" -- "$KM" "$f" 2>"$er")
	l1=$(head -n1 <<<"$r")
	st=$(field status <<<"$l1")
	v=$(field first_out_ns <<<"$l1")
	if [ "$st" != 0 ] || ! isnum "$v" || ! restored_ok "$r"; then
		acc kentry FAIL
		acc kout FAIL
		fail "km restore ($m MiB) failed: status ${st:-timed out}, output '$(sed -n 's/^out: //p' <<<"$r" | head -n3 | tr '\n' '|')', km's stderr: $(grep -v '^km-timing:' "$er" | head -n1) (all in $er)"
	else
		acc kout "$v"
		v=$(sed -n 's/^km-timing: .*restore_to_first_entry_ns=\([0-9]*\).*/\1/p' "$er" | head -n1)
		if isnum "$v"; then
			acc kentry "$v"
		else
			acc kentry FAIL
			fail "km restore: no 'km-timing: restore_to_first_entry_ns=<n>' line on km's stderr with KM_TIMING=1 (stderr in $B/km-restore-<MiB>.err)"
		fi
	fi
	rm -f "$f"
}

# first_of LINE...: the first non-empty argument, cut to 160 bytes (for "km: failed (...)")
first_of() {
	local l
	for l in "$@"; do
		[ -n "$l" ] && { head -c 160 <<<"$l"; return; }
	done
	echo "no message"
}

# snap_mgmt MIB [GUEST PREFIX WHAT]: km runs GUEST (default snap_touch) in wait mode with --mgmt;
# km-mgmt asks for a snapshot (stop mode) once the program waits in read() on stdin, as criu dump
# does below; then km restores it with a new stdin holding one byte. acc, each key after PREFIX:
# mwall (ns, spawn of km-mgmt -> its exit with km's reply; the file is written by then), mown (km's
# reply ms=), mout (ns, spawn of km -> first byte on stdout). On a failure, KMERR[PREFIX, or 1 without one]
# holds its first line (km's stderr, else the guest's or km-mgmt's words). WHAT names the program in messages.
declare -A KMERR
snap_mgmt() {
	local m=$1 g=${2:-$SNAP_G} p=${3:-} what=${4:-} f="$SNAPTMP/mgmt.km" sock="$SNAPTMP/mgmt.sock" r l1 st v
	local es="$B/km-mgmt-snap$p-$1.err" ek="$B/km-mgmt-snap$p-$1.km.err" er="$B/km-mgmt-restore$p-$1.err"
	[ $KM_OK = 0 ] && return
	if [ ! -x "$KM_MGMT" ]; then
		[ -n "$KM_MGMT_WHY" ] || KM_MGMT_WHY="no management client $KM_MGMT (make builds it from tests/tools/km-mgmt.c)"
		return
	fi
	if [ -n "$KM_SNAP_WHY" ]; then
		for v in mwall mout; do acc "$p$v" FAIL; done
		KMERR[${p:-1}]=$KM_SNAP_WHY
		return
	fi
	rm -f "$f" "$sock" "$SNAPTMP/mgmt.reply"
	settle
	r=$(KM_TIMING=1 "$B/snaptime" checkpoint -t "$SNAP_TIMEOUT" -O "$SNAPTMP/mgmt.reply" -E "$ek" -- \
		"$KM" --mgmt="$sock" --snapshot="$f" "$g" "$m" wait \
		--then "$KM_MGMT" --wait-socket 10 --timeout "$SNAP_TIMEOUT" "$sock" snapshot path="$f" mode=stop 2>"$es")
	l1=$(head -n1 <<<"$r")
	st=$(field checkpointer_status <<<"$l1")
	v=$(field checkpoint_ns <<<"$l1")
	if [ "$st" != 0 ] || ! isnum "$v" || [ ! -s "$f" ]; then
		for v in mwall mout; do acc "$p$v" FAIL; done
		[ -n "${KMERR[${p:-1}]:-}" ] || KMERR[${p:-1}]=$(first_of "$(grep -v -m1 '^km-timing:' "$ek" 2>/dev/null)" \
			"$(sed -n 's/^out: //p' <<<"$r" | grep -m1 -i error)" "$(grep -m1 '^error' "$SNAPTMP/mgmt.reply" 2>/dev/null)" \
			"$(head -n1 "$es")")
		fail "km --mgmt snapshot ($m MiB$what) failed: km-mgmt status ${st:-?}, reply '$(head -c 200 "$SNAPTMP/mgmt.reply" 2>/dev/null)', km status $(field guest_status <<<"$l1"), guest said '$(sed -n 's/^out: //p' <<<"$r" | tail -n1)', km's stderr: $(grep -v -m1 '^km-timing:' "$ek" 2>/dev/null) (all in $ek, $es)"
		rm -f "$f" "$sock"
		return
	fi
	acc "${p}mwall" "$v"
	acc "${p}mown" "$(sed -n 's/^ok .*ms=\([0-9.]*\).*/\1/p' "$SNAPTMP/mgmt.reply" | awk 'NF { printf "%.0f", $1 * 1e6 }')"

	r=$(KM_TIMING=1 "$B/snaptime" firstout -t "$SNAP_TIMEOUT" -- "$KM" "$f" 2>"$er")
	l1=$(head -n1 <<<"$r")
	st=$(field status <<<"$l1")
	v=$(field first_out_ns <<<"$l1")
	if [ "$st" != 0 ] || ! isnum "$v" || ! restored_ok "$r"; then
		acc "${p}mout" FAIL
		[ -n "${KMERR[${p:-1}]:-}" ] || KMERR[${p:-1}]="restore: $(first_of "$(grep -v -m1 '^km-timing:' "$er")" \
			"$(sed -n 's/^out: //p' <<<"$r" | grep -v -m1 '^resumed$')" "status ${st:-timed out}")"
		fail "km restore after a --mgmt snapshot ($m MiB$what) failed: status ${st:-timed out}, output '$(sed -n 's/^out: //p' <<<"$r" | head -n3 | tr '\n' '|')', km's stderr: $(grep -v '^km-timing:' "$er" | head -n1) (all in $er)"
	else
		acc "${p}mout" "$v"
	fi
	rm -f "$f" "$sock"
}

# criu_error LOG ERRFILE: criu's first real error (not the RLIMIT_NOFILE one it logs every time here,
# as root lacks CAP_SYS_RESOURCE), else the first line of ERRFILE
criu_error() {
	grep -i error "$1" 2>/dev/null | grep -v -m1 RLIMIT_NOFILE || head -n1 "$2"
}

# snap_criu MIB [GUEST PREFIX WHAT]: GUEST (default snap_touch) in wait mode run natively, dumped by
# criu dump, restored by criu restore with new stdin/stdout pipes in place of the old ones. acc,
# each key after PREFIX: cdump (ns, criu dump), csnap (ns, criu dump + fsync of the images), csize
# (bytes of the image directory on disk), centry (criu's own "Restore time", ns), cout (ns, spawn of
# criu restore -> first byte on the program's stdout). WHAT names the program in messages.
snap_criu() {
	local m=$1 g=${2:-$SNAP_G} p=${3:-} what=${4:-} img="$SNAPTMP/img" work="$SNAPTMP/work" r l1 st v gpid ino_in ino_out
	local ed="$B/criu-dump$p-$1.err" er="$B/criu-restore$p-$1.err" lg="$B/criu-dump$p-$1.log" lr="$B/criu-restore$p-$1.log"
	[ $CRIU_OK = 1 ] || return
	rm -rf "$img" "$work"
	mkdir -p "$img" "$work"
	settle
	r=$("${CRIU_NS[@]}" "$B/snaptime" checkpoint -t "$SNAP_TIMEOUT" -S "$img" -O "$work/dump.stats" -- "$g" "$m" wait \
		--then "$CRIU" dump -t '{pid}' -D "$img" -W "$work" -o dump.log --shell-job --display-stats "${CRIU_EXTRA[@]}" 2>"$ed")
	l1=$(head -n1 <<<"$r")
	st=$(field checkpointer_status <<<"$l1")
	v=$(field checkpoint_ns <<<"$l1")
	if [ "$st" != 0 ] || ! isnum "$v"; then
		for v in cdump csnap csize centry cout; do acc "$p$v" FAIL; done
		cp "$work/dump.log" "$lg" 2>/dev/null
		fail "criu dump ($m MiB$what) failed: status ${st:-?}: $(criu_error "$work/dump.log" "$ed") (log in $lg, $ed)"
		rm -rf "$img" "$work"
		return
	fi
	acc "${p}cdump" "$v"
	acc "${p}csnap" "$(calc %.0f 'a + b' "$v" "$(field fsync_ns <<<"$l1")")"
	acc "${p}csize" "$(du -s -B1 "$img" | cut -f1)"
	gpid=$(field guest_pid <<<"$l1")
	ino_in=$(field stdin_ino <<<"$l1")
	ino_out=$(field stdout_ino <<<"$l1")

	r=$("${CRIU_NS[@]}" "$B/snaptime" firstout -t "$SNAP_TIMEOUT" -P -O "$work/restore.stats" -- "$CRIU" restore -D "$img" -W "$work" \
		-o restore.log --shell-job --display-stats "${CRIU_EXTRA[@]}" \
		--inherit-fd "fd[3]:pipe:[$ino_in]" --inherit-fd "fd[4]:pipe:[$ino_out]" 2>"$er")
	l1=$(head -n1 <<<"$r")
	st=$(field status <<<"$l1")
	v=$(field first_out_ns <<<"$l1")
	if [ "$st" != 0 ] || ! isnum "$v" || ! restored_ok "$r"; then
		acc "${p}centry" FAIL
		acc "${p}cout" FAIL
		cp "$work/restore.log" "$lr" 2>/dev/null
		fail "criu restore ($m MiB$what) failed: status ${st:-timed out}, output '$(sed -n 's/^out: //p' <<<"$r" | head -n3 | tr '\n' '|')': $(criu_error "$work/restore.log" "$er") (log in $lr)"
	else
		acc "${p}cout" "$v"
		v=$(sed -n 's/^Restore time: \([0-9]*\) us.*/\1/p' "$work/restore.stats" | head -n1)
		acc "${p}centry" "$(calc %.0f 'a * 1000' "$v")"
	fi
	# A restored program left behind by a failed or timed-out restore (criu gives it its old pid).
	if [ -n "$gpid" ] && [ "$(cat "/proc/$gpid/comm" 2>/dev/null)" = "$(basename "$g" | head -c 15)" ]; then
		kill -KILL "$gpid" 2>/dev/null
	fi
	rm -rf "$img" "$work"
}

CRIU_EXTRA=() # more options for criu dump and restore (the fds rows' TCP connections)

# snap_rows MIB: the single-thread rows of one size, from ACC
snap_rows() {
	local m=$1 floor ksnap ksize kentry kout cdump csnap csize centry cout kown mwall mown mout touched
	floor=$(res floor) ksnap=$(res ksnap) ksize=$(res ksize) kentry=$(res kentry) kout=$(res kout)
	cdump=$(res cdump) csnap=$(res csnap) csize=$(res csize) centry=$(res centry) cout=$(res cout)
	kown=$(res kown) mwall=$(res mwall) mown=$(res mown) mout=$(res mout)
	touched=$((m * 1048576))
	row "snapshot, ms ($m MiB): km, hypercall -> km exit, vs write+fsync" "$(nsms "$ksnap")" "$(nsms "$floor")" \
		"$(ratio "$ksnap" "$floor")" "<= 1.10x the plain write" "$(met "$(calc %.4f 'a / b' "$ksnap" "$floor")" 1.1)"
	row "snapshot, ms ($m MiB): km vs criu dump + fsync of the images" "$(nsms "$ksnap")" "$(nsms "$csnap")" \
		"$(ratio "$ksnap" "$csnap")" "< criu dump + fsync" "$(lt "$ksnap" "$csnap")"
	row "snapshot on disk, MiB ($m MiB touched): km vs touched memory" "$(mib "$ksize")" "$m.0" \
		"$(ratio "$ksize" "$touched")" "within 5% of touched" "$(within "$ksize" "$touched" 5)"
	row "snapshot on disk, MiB ($m MiB touched): km vs criu images" "$(mib "$ksize")" "$(mib "$csize")" \
		"$(ratio "$ksize" "$csize")" - -
	row "restore to first instruction, ms ($m MiB): km vs criu's 'Restore time'" "$(nsms "$kentry" %.3f)" \
		"$(nsms "$centry" %.3f)" "$(ratio "$kentry" "$centry")" "< 5 ms" "$(lt "$(nsms "$kentry" %.3f)" 5)"
	row "restore to first output, ms ($m MiB): km vs criu restore" "$(nsms "$kout")" "$(nsms "$cout")" \
		"$(ratio "$kout" "$cout")" - -
	row "snapshot from outside, ms ($m MiB): km --mgmt vs criu dump + fsync" "$(nsms "$mwall")" "$(nsms "$csnap")" \
		"$(ratio "$mwall" "$csnap")" - "$(kmfailed - "${KMERR[1]:-}")"
	row "restore to first output after it, ms ($m MiB): km vs criu restore" "$(nsms "$mout")" "$(nsms "$cout")" \
		"$(ratio "$mout" "$cout")" - "$(kmfailed - "${KMERR[1]:-}")"
	SNAPNOTES+=("$m MiB: criu dump alone $(nsms "$cdump") ms (the rest is the fsync of its images); km's own times: snapshot_ns $(nsms "$kown") ms (KM_TIMING; $(ratio "$kown" "$floor") the plain write: the rest of the row is stopping the vCPUs and km's exit), --mgmt reply ms= $(nsms "$mown") ms")
}

# snap4_rows MIB: the 4-thread rows of one size (snap_threads, taken from outside), from ACC
snap4_rows() {
	local m=$1 tmwall tmout tmown tcdump tcsnap tcout
	tmwall=$(res tmwall) tmout=$(res tmout) tmown=$(res tmown)
	tcdump=$(res tcdump) tcsnap=$(res tcsnap) tcout=$(res tcout)
	row "4 threads, snapshot, ms ($m MiB): km --mgmt vs criu dump + fsync" "$(nsms "$tmwall")" \
		"$(nsms "$tcsnap")" "$(ratio "$tmwall" "$tcsnap")" - "$(kmfailed - "${KMERR[t]:-}")"
	row "4 threads, restore to first output, ms ($m MiB): km vs criu restore" "$(nsms "$tmout")" \
		"$(nsms "$tcout")" "$(ratio "$tmout" "$tcout")" - "$(kmfailed - "${KMERR[t]:-}")"
	SNAPNOTES+=("$m MiB, 4 threads: criu dump alone $(nsms "$tcdump") ms; km's --mgmt reply ms= $(nsms "$tmown") ms")
}

SNAPNOTES=()
if [ -n "$SNAPTMP" ] && { want snap || want snap4; }; then
	want snap && { [ -x "$SNAP_G" ] || fail "$SNAP_G is missing: build with make -C bench"; }
	want snap4 && { [ -x "$SNAP_G4" ] || fail "$SNAP_G4 is missing: build with make -C bench"; }
	for spec in $SNAP_SIZES; do
		m=${spec%%:*} runs=${spec#*:}
		if ! isnum "$m" || ! isnum "$runs"; then
			fail "bad SNAP_SIZES entry '$spec' (want MIB:RUNS)"
			continue
		fi
		what=""
		want snap && what+=" / write floor / km snapshot + restore / km --mgmt + restore / criu dump + restore"
		want snap4 && what+=" / 4 threads: km --mgmt + restore / criu dump + restore"
		log "snapshots, $m MiB touched ($SNAP_LIBC): $runs runs of${what# /}$([ $KM_OK = 0 ] && echo "$SKIPNOTE")$([ $CRIU_OK = 0 ] && echo " (criu skipped: not available)")"
		ACC=() KMERR=()
		for ((i = 0; i < runs; i++)); do
			if want snap; then
				snap_floor "$m"
				snap_km "$m"
				snap_mgmt "$m"
				snap_criu "$m"
			fi
			if want snap4; then
				snap_mgmt "$m" "$SNAP_G4" t ", 4 threads"
				snap_criu "$m" "$SNAP_G4" t ", 4 threads"
			fi
		done
		want snap && snap_rows "$m"
		want snap4 && snap4_rows "$m"
	done
fi

# ---------------------------------------------------------------------------------------------------
# fds: km beside CRIU on guests/fd_hold (SNAP_LIBC), taken from outside while it waits on stdin:
# 1000 open fds (files and pipes mixed), then 10 established TCP connections (both ends the
# program's; criu with --tcp-established, km with its default, repair). Uses snap_mgmt and
# snap_criu with WHAT = files1000 or tcp10 in place of the size.
FDS_G="$B/guests/$SNAP_LIBC/fd_hold"
if want fds && [ -n "$SNAPTMP" ]; then
	[ -x "$FDS_G" ] || fail "$FDS_G is missing: build with make -C bench"
	export FD_HOLD_DIR=$SNAPTMP
	for what in files1000 tcp10; do
		label="1000 fds"
		[ $what = tcp10 ] && label="10 TCP connections"
		log "fds, $label ($SNAP_LIBC): $FDS_RUNS runs of km --mgmt + restore / criu dump + restore$([ $KM_OK = 0 ] && echo "$SKIPNOTE")$([ $CRIU_OK = 0 ] && echo " (criu skipped: not available)")"
		ACC=() KMERR=()
		CRIU_EXTRA=()
		[ $what = tcp10 ] && CRIU_EXTRA=(--tcp-established)
		for ((i = 0; i < FDS_RUNS; i++)); do
			snap_mgmt "$what" "$FDS_G" f ", $label"
			rm -f "$SNAPTMP"/fd_hold.*
			snap_criu "$what" "$FDS_G" f ", $label"
			rm -f "$SNAPTMP"/fd_hold.*
		done
		CRIU_EXTRA=()
		row "$label, snapshot, ms: km --mgmt vs criu dump + fsync" "$(nsms "$(res fmwall)")" \
			"$(nsms "$(res fcsnap)")" "$(ratio "$(res fmwall)" "$(res fcsnap)")" - "$(kmfailed - "${KMERR[f]:-}")"
		row "$label, restore to first output, ms: km vs criu restore" "$(nsms "$(res fmout)")" \
			"$(nsms "$(res fcout)")" "$(ratio "$(res fmout)" "$(res fcout)")" - "$(kmfailed - "${KMERR[f]:-}")"
		SNAPNOTES+=("$label: criu dump alone $(nsms "$(res fcdump)") ms; km's --mgmt reply ms= $(nsms "$(res fmown)") ms")
	done
fi

# ---------------------------------------------------------------------------------------------------
# Many copies from one snapshot: COPIES_N copies of guests/copy_touch (SNAP_LIBC) that touched
# COPIES_MIB MiB, all running at once, each having read its whole memory back after its start or
# resume (bench/copytime): natively (each touched its memory itself), resumed by km from one snapshot
# (taken through --mgmt, stop mode, while the program waited on stdin), and restored by criu from one
# dump, each restore in a pid namespace of its own (criu gives the task its old pid, which one copy
# already holds in ours). Rows: the time until all are running, and the proportional memory (PSS) of
# the programs: km's processes, the native ones, criu's restored tasks (not criu or unshare).
COPIES_G="$B/guests/$SNAP_LIBC/copy_touch"
kbmib() { if [ "$1" = FAIL ]; then echo FAIL; else calc %.1f "a / 1024 / ${2:-1}" "$1"; fi; } # kB [/ N] -> MiB

# copies_run NAME CMD...: runs CMD (a copytime command line); CP_T (ns until all ran), CP_PSS,
# CP_ANON, CP_FILE (kB, summed over the copies), or FAIL in each with CP_ERR.
copies_run() {
	local name=$1 l1 out="$B/copies-$1.out" err="$B/copies-$1.err"
	shift
	CP_T=FAIL CP_PSS=FAIL CP_ANON=FAIL CP_FILE=FAIL CP_ERR=""
	"$@" >"$out" 2>"$err"
	l1=$(head -n1 "$out")
	if [ "$(field status <<<"$l1")" != ok ]; then
		CP_ERR=$(first_of "$(grep -v -m1 -e '^km-timing:' -e RLIMIT_NOFILE "$err")" \
			"$(grep -m1 -e '^out[0-9]*: error' -e 'verify=BAD' "$out")" "$(grep -m1 -e 'exit=[1-9-]' -e 'pids=none' "$out")")
		fail "copies ($name): $CP_ERR (output in $out, stderr in $err)"
		return
	fi
	CP_T=$(field all_running_ns <<<"$l1") CP_PSS=$(field pss_kb <<<"$l1")
	CP_ANON=$(field pss_anon_kb <<<"$l1") CP_FILE=$(field pss_file_kb <<<"$l1")
}

# copies_km_snap FILE: km --mgmt snapshot (stop mode) of copy_touch waiting on stdin; false with
# CP_ERR on a failure.
copies_km_snap() {
	local f=$1 sock="$SNAPTMP/copies.sock" r l1 ek="$B/copies-km-snap.km.err"
	rm -f "$f" "$sock"
	r=$("$B/snaptime" checkpoint -t "$SNAP_TIMEOUT" -O "$SNAPTMP/copies.reply" -E "$ek" -- \
		"$KM" --mgmt="$sock" --snapshot="$f" "$COPIES_G" "$COPIES_MIB" \
		--then "$KM_MGMT" --wait-socket 10 --timeout "$SNAP_TIMEOUT" "$sock" snapshot path="$f" mode=stop \
		2>"$B/copies-km-snap.err")
	l1=$(head -n1 <<<"$r")
	[ "$(field checkpointer_status <<<"$l1")" = 0 ] && [ -s "$f" ] && return 0
	CP_ERR="snapshot: $(first_of "$(grep -v -m1 '^km-timing:' "$ek" 2>/dev/null)" \
		"$(grep -m1 '^error' "$SNAPTMP/copies.reply" 2>/dev/null)" "$(head -n1 "$B/copies-km-snap.err")" \
		"km-mgmt status $(field checkpointer_status <<<"$l1")")"
	fail "copies (km): $CP_ERR (km's stderr in $ek)"
	return 1
}

# copies_criu_dump IMG WORK: criu dump of copy_touch waiting on stdin (run natively with pipes);
# CP_INO_IN and CP_INO_OUT: the inodes of its old stdin and stdout pipes; false with CP_ERR.
copies_criu_dump() {
	local img=$1 work=$2 r l1
	r=$("${CRIU_NS[@]}" "$B/snaptime" checkpoint -t "$SNAP_TIMEOUT" -- "$COPIES_G" "$COPIES_MIB" \
		--then "$CRIU" dump -t '{pid}' -D "$img" -W "$work" -o dump.log --shell-job 2>"$B/copies-criu-dump.err")
	l1=$(head -n1 <<<"$r")
	CP_INO_IN=$(field stdin_ino <<<"$l1") CP_INO_OUT=$(field stdout_ino <<<"$l1")
	[ "$(field checkpointer_status <<<"$l1")" = 0 ] && isnum "$CP_INO_IN" && isnum "$CP_INO_OUT" && return 0
	cp "$work/dump.log" "$B/copies-criu-dump.log" 2>/dev/null
	CP_ERR="dump: $(criu_error "$work/dump.log" "$B/copies-criu-dump.err")"
	fail "copies (criu): $CP_ERR (log in $B/copies-criu-dump.log)"
	return 1
}

if want copies && [ -n "$SNAPTMP" ]; then
	[ -x "$COPIES_G" ] || fail "$COPIES_G is missing: build with make -C bench"
	cn=$COPIES_N cm=$COPIES_MIB cw=$COPIES_WRITE_MIB comm=$(basename "$COPIES_G" | head -c 15)
	log "copies: $cn copies of a $cm MiB program at once ($SNAP_LIBC): native / km resumes of one snapshot (read-only, then rewriting $cw MiB each) / criu restores of one dump$([ $KM_OK = 0 ] && echo "$SKIPNOTE")$([ $CRIU_OK = 0 ] && echo " (criu skipped: not available)")"
	copies_run native "$B/copytime" -n "$cn" -c "$comm" -t "$SNAP_TIMEOUT" -- "$COPIES_G" "$cm"
	n_t=$CP_T n_pss=$CP_PSS
	k_t=n/a k_pss=n/a k_anon=n/a k_file=n/a kw_pss=n/a k_err=""
	if [ $KM_OK = 1 ] && [ ! -x "$KM_MGMT" ]; then
		k_err="no management client $KM_MGMT" k_t=FAIL k_pss=FAIL kw_pss=FAIL
		fail "copies (km): $k_err"
	elif [ $KM_OK = 1 ]; then
		f="$SNAPTMP/copies.km"
		if copies_km_snap "$f"; then
			settle # the resumes read a file whose writeback is over, as a later resume would
			copies_run km "$B/copytime" -n "$cn" -c "$comm" -t "$SNAP_TIMEOUT" -- "$KM" "$f"
			k_t=$CP_T k_pss=$CP_PSS k_anon=$CP_ANON k_file=$CP_FILE k_err=$CP_ERR
			copies_run km-write "$B/copytime" -n "$cn" -c "$comm" -t "$SNAP_TIMEOUT" -w "$cw" -- "$KM" "$f"
			kw_pss=$CP_PSS
			[ -n "$k_err" ] || k_err=$CP_ERR
		else
			k_t=FAIL k_pss=FAIL kw_pss=FAIL k_err=$CP_ERR
		fi
		rm -f "$f" "$SNAPTMP/copies.sock" "$SNAPTMP/copies.reply"
	fi
	c_t=n/a c_pss=n/a c_anon=n/a c_file=n/a
	if [ $CRIU_OK = 1 ]; then
		img="$SNAPTMP/copies-img" work="$SNAPTMP/copies-work"
		rm -rf "$img" "$work"
		mkdir -p "$img" "$work"
		for ((i = 0; i < cn; i++)); do mkdir -p "$work/$i"; done
		if copies_criu_dump "$img" "$work"; then
			# Each restore: criu as init of a new pid namespace (with its own /proc), which stays
			# the restored task's parent until the task ends.
			copies_run criu "${CRIU_NS[@]}" "$B/copytime" -n "$cn" -c "$comm" -t "$SNAP_TIMEOUT" -P -- \
				unshare --pid --fork --mount-proc -- "$CRIU" restore -D "$img" -W "$work/{i}" -o restore.log \
				--shell-job --inherit-fd "fd[3]:pipe:[$CP_INO_IN]" --inherit-fd "fd[4]:pipe:[$CP_INO_OUT]"
			c_t=$CP_T c_pss=$CP_PSS c_anon=$CP_ANON c_file=$CP_FILE
			[ -n "$CP_ERR" ] && cp "$work/0/restore.log" "$B/copies-criu-restore.log" 2>/dev/null
		else
			c_t=FAIL c_pss=FAIL
		fi
		rm -rf "$img" "$work"
	fi
	what="$cn x $cm MiB"
	row "copies ($what): all running, ms: km resumes vs native starts" "$(nsms "$k_t")" "$(nsms "$n_t")" \
		"$(ratio "$k_t" "$n_t")" - "$(kmfailed - "$k_err")"
	row "copies ($what): all running, ms: km resumes vs criu restores" "$(nsms "$k_t")" "$(nsms "$c_t")" \
		"$(ratio "$k_t" "$c_t")" - "$(kmfailed - "$k_err")"
	row "copies ($what): total PSS, MiB: km vs native" "$(kbmib "$k_pss")" "$(kbmib "$n_pss")" \
		"$(ratio "$k_pss" "$n_pss")" - "$(kmfailed - "$k_err")"
	row "copies ($what): total PSS, MiB: km vs criu restores" "$(kbmib "$k_pss")" "$(kbmib "$c_pss")" \
		"$(ratio "$k_pss" "$c_pss")" - "$(kmfailed - "$k_err")"
	row "copies ($what): PSS per copy, MiB: km vs native" "$(kbmib "$k_pss" "$cn")" "$(kbmib "$n_pss" "$cn")" \
		"$(ratio "$k_pss" "$n_pss")" - -
	row "copies ($what): PSS per copy, MiB: km vs criu restores" "$(kbmib "$k_pss" "$cn")" "$(kbmib "$c_pss" "$cn")" \
		"$(ratio "$k_pss" "$c_pss")" - -
	row "copies ($what) rewriting $cw MiB each: PSS per copy, MiB: km vs km read-only" "$(kbmib "$kw_pss" "$cn")" \
		"$(kbmib "$k_pss" "$cn")" "$(ratio "$kw_pss" "$k_pss")" - -
	SNAPNOTES+=("copies ($what), PSS per copy: km $(kbmib "$k_anon" "$cn") MiB anonymous + $(kbmib "$k_file" "$cn") MiB file-backed (the snapshot's page cache, shared); criu restore $(kbmib "$c_anon" "$cn") MiB anonymous + $(kbmib "$c_file" "$cn") MiB file-backed")
fi

# live: the pause of a live snapshot as the program sees it (guests/live_gap, SNAP_LIBC): a thread
# reads the clock through the vDSO in a loop and reports the largest gap between two reads while
# the snapshot is taken; km with --mgmt mode=continue, the same program natively under criu dump
# --leave-running (its freeze). Also km's own snapshot_pause_ns (KM_TIMING: from the first vCPU
# stopped to their release) and live_floor's freeze floors (fork with THP, userfaultfd
# write-protect; natively, 1 GiB). On a loaded host the largest gap is often the scheduler's, not
# the snapshot's: the row after it shows the same window under km with no snapshot.
LIVE_G="$B/guests/$SNAP_LIBC/live_gap"

# live_window DIR PREFIX GUEST-CMD... ::: SNAPSHOT-CMD... (not "--": criu's namespace prefix has
# one): runs the guest with a pipe as stdin, waits for "ready", opens the window, runs
# SNAPSHOT-CMD ({pid}: the guest's pid), closes it. acc: PREFIXgap (ns), PREFIXwall (ns of
# SNAPSHOT-CMD). DIR/out holds the guest's output (stdout and stderr).
live_window() {
	local d=$1 p=$2 gpid i t0 t1 st gap
	shift 2
	local -a g=() c=()
	while [ "$1" != ::: ]; do g+=("$1"); shift; done
	shift
	c=("$@")
	rm -rf "$d" && mkdir -p "$d"
	# stdin and stdout anonymous pipes: criu cannot dump a named FIFO or a file of this tree from
	# its private mount namespace ("Can't lookup mount")
	# and no other fd of this script's (criu would have to dump them too)
	coproc LIVEG {
		for f in /proc/self/fd/*; do
			f=${f##*/}
			[ "$f" -gt 2 ] && eval "exec $f>&-"
		done 2>/dev/null
		KM_TIMING=1 exec "${g[@]}" 2>&1
	}
	gpid=$LIVEG_PID
	# (bash keeps a coproc's own fds from subshells: copies for cat and for the end of input)
	exec 7>&"${LIVEG[1]}" 8<&"${LIVEG[0]}"
	eval "exec ${LIVEG[1]}>&- ${LIVEG[0]}<&-"
	cat <&8 >"$d/out" 7>&- &
	local cat_pid=$!
	exec 8<&-
	for ((i = 0; i < SNAP_TIMEOUT * 20; i++)); do
		grep -qx ready "$d/out" 2>/dev/null && break
		kill -0 "$gpid" 2>/dev/null || break
		sleep 0.05
	done
	if ! grep -qx ready "$d/out"; then
		exec 7>&-
		wait "$gpid" "$cat_pid"
		acc "${p}gap" FAIL
		fail "live ($p): the program never got ready: $(head -n1 "$d/out")"
		return 1
	fi
	echo start >&7
	sleep 0.2
	c=("${c[@]//\{pid\}/$gpid}")
	t0=$(date +%s%N)
	timeout "$SNAP_TIMEOUT" "${c[@]}" >"$d/snap.out" 2>"$d/snap.err"
	st=$?
	t1=$(date +%s%N)
	sleep 0.2
	echo stop >&7
	for ((i = 0; i < 100; i++)); do
		grep -q '^max_gap_ns=' "$d/out" && break
		sleep 0.05
	done
	exec 7>&-
	wait "$gpid" "$cat_pid"
	gap=$(sed -n 's/^max_gap_ns=//p' "$d/out" | head -n1)
	if [ "$st" != 0 ] || ! isnum "$gap"; then
		acc "${p}gap" FAIL
		fail "live ($p): the snapshot failed (status $st): $(head -n1 "$d/snap.err") $(head -n1 "$d/snap.out")"
		return 1
	fi
	acc "${p}gap" "$gap"
	acc "${p}wall" "$((t1 - t0))"
	return 0
}

if want live && [ -n "$SNAPTMP" ]; then
	[ -x "$LIVE_G" ] || fail "$LIVE_G is missing: build with make -C bench"
	r=$("$B/live_floor" 1024 2>&1)
	LIVE_FLOOR=$r
	for spec in $LIVE_SIZES; do
		m=${spec%%:*} runs=${spec#*:}
		log "live snapshots, $m MiB touched ($SNAP_LIBC): $runs runs of km --mgmt mode=continue / criu dump --leave-running$([ $CRIU_OK = 0 ] && echo " (criu skipped: not available)")"
		ACC=()
		for ((i = 0; i < runs; i++)); do
			if [ $KM_OK = 1 ] && [ -x "$KM_MGMT" ]; then
				rm -f "$SNAPTMP/live.km" "$SNAPTMP/live.sock"
				settle
				if live_window "$SNAPTMP/livek" k "$KM" --mgmt="$SNAPTMP/live.sock" "$LIVE_G" "$m" ::: \
					"$KM_MGMT" --wait-socket 10 --timeout "$SNAP_TIMEOUT" "$SNAPTMP/live.sock" snapshot \
					path="$SNAPTMP/live.km" mode=continue; then
					acc kpause "$(sed -n 's/^km-timing: snapshot_pause_ns=//p' "$SNAPTMP/livek/out" | head -n1)"
					acc kown "$(sed -n 's/^ok .*ms=\([0-9.]*\).*/\1/p' "$SNAPTMP/livek/snap.out" | awk 'NF { printf "%.0f", $1 * 1e6 }')"
				fi
				rm -f "$SNAPTMP/live.km" "$SNAPTMP/live.sock"
				# The same window with no snapshot: what this host's scheduling alone does to the gap.
				live_window "$SNAPTMP/liven" n "$KM" "$LIVE_G" "$m" ::: sleep 0.5
			fi
			if [ $CRIU_OK = 1 ]; then
				rm -rf "$SNAPTMP/img" "$SNAPTMP/work"
				mkdir -p "$SNAPTMP/img" "$SNAPTMP/work"
				settle
				live_window "$SNAPTMP/livec" c "${CRIU_NS[@]}" "$LIVE_G" "$m" ::: \
					"${CRIU_NS[@]}" "$CRIU" dump -t '{pid}' -D "$SNAPTMP/img" -W "$SNAPTMP/work" -o dump.log \
					--shell-job --leave-running ||
					cp "$SNAPTMP/work/dump.log" "$B/criu-live-$m.log" 2>/dev/null
				rm -rf "$SNAPTMP/img" "$SNAPTMP/work"
			fi
		done
		kgap=$(res kgap) cgap=$(res cgap) kpause=$(res kpause)
		row "live snapshot, pause the program sees, ms ($m MiB): km vs criu --leave-running" "$(nsms "$kgap" %.3f)" \
			"$(nsms "$cgap" %.3f)" "$(ratio "$kgap" "$cgap")" "<= 5 ms" "$(met "$(nsms "$kgap" %.3f)" 5)"
		row "  the same window under km without a snapshot (host noise), ms ($m MiB)" "$(nsms "$(res ngap)" %.3f)" \
			- - - -
		row "live snapshot, km's snapshot_pause_ns, ms ($m MiB)" "$(nsms "$kpause" %.3f)" - - "<= 5 ms" \
			"$(met "$(nsms "$kpause" %.3f)" 5)"
		row "live snapshot, written, ms ($m MiB): km --mgmt reply vs criu dump" "$(nsms "$(res kwall)")" \
			"$(nsms "$(res cwall)")" "$(ratio "$(res kwall)" "$(res cwall)")" - -
	done
	for w in fork-thp uffd-thp fork-4k uffd-4k; do
		l=$(grep "way=$w " <<<"$LIVE_FLOOR")
		row "freeze floor, 1 GiB natively ($w): pause ms, first write after it us" \
			"$(nsms "$(field pause_ns <<<"$l")" %.3f)" "$(calc %.1f 'a / 1000' "$(field write_ns <<<"$l")")" - - -
	done
fi

# incr: an incremental snapshot (format 2.6, parent=) of a program of INCR_MIB MiB that changed
# INCR_CHANGE MiB since its parent, beside a full snapshot of a program of INCR_CHANGE MiB, both
# taken from outside with mode=continue (guests/incr_touch). acc: iwall/fwall (ns, spawn of
# km-mgmt -> its exit with km's reply), imem/fmem (bytes km wrote: the reply's memory=).
# incr_take MIB CHANGE PREFIX: one program; its second snapshot (CHANGE > 0: on the first) timed.
incr_take() {
	local m=$1 c=$2 p=$3 d="$SNAPTMP/incr" t0 t1 reply line
	local err="$B/km-incr-$p.err"
	rm -rf "$d"
	mkdir -p "$d"
	mkfifo "$d/in"
	"$KM" --mgmt="$d/sock" "$INCR_G" "$m" <"$d/in" >"$d/out" 2>"$err" &
	local kpid=$!
	exec {INCR_FD}>"$d/in"
	incr_wait() { # incr_wait WORD: the program printed WORD (within SNAP_TIMEOUT)
		local k
		for ((k = 0; k < SNAP_TIMEOUT * 10; k++)); do
			grep -q "^$1\$" "$d/out" 2>/dev/null && return 0
			kill -0 "$kpid" 2>/dev/null || return 1
			sleep 0.1
		done
		return 1
	}
	local ok=1
	incr_wait ready || ok=0
	[ $ok = 1 ] && [ "$c" -gt 0 ] && {
		reply=$("$KM_MGMT" --wait-socket 10 --timeout "$SNAP_TIMEOUT" "$d/sock" snapshot path="$d/s1" mode=continue 2>&1)
		[[ $reply == ok* ]] || ok=0
		echo "change $c" >&"$INCR_FD"
		incr_wait changed || ok=0
	}
	if [ $ok = 1 ]; then
		settle
		t0=$(date +%s%N)
		if [ "$c" -gt 0 ]; then
			reply=$("$KM_MGMT" --timeout "$SNAP_TIMEOUT" "$d/sock" snapshot path="$d/s2" mode=continue parent="$d/s1" 2>&1)
		else
			reply=$("$KM_MGMT" --wait-socket 10 --timeout "$SNAP_TIMEOUT" "$d/sock" snapshot path="$d/s2" mode=continue 2>&1)
		fi
		t1=$(date +%s%N)
		[[ $reply == ok* ]] || ok=0
	fi
	exec {INCR_FD}>&-
	wait "$kpid" 2>/dev/null
	if [ $ok = 1 ]; then
		acc "${p}wall" $((t1 - t0))
		acc "${p}mem" "$(field memory <<<"$reply")"
		[ "$c" -gt 0 ] && ! "$KM" --inspect "$d/s2" 2>/dev/null | grep -q '^chain: *2 files' &&
			fail "incr: the second snapshot is not a chain of 2 (km did not track changes?): $("$KM" --inspect "$d/s2" 2>&1 | grep -m1 '^chain')"
	else
		acc "${p}wall" FAIL
		acc "${p}mem" FAIL
		fail "incr ($m MiB, $c changed) failed: reply '${reply:-none}', program said '$(tail -n1 "$d/out" 2>/dev/null)', km's stderr: $(head -n1 "$err")"
	fi
	rm -rf "$d"
}
INCR_G="$B/guests/$SNAP_LIBC/incr_touch"
if want incr && [ -n "$SNAPTMP" ] && [ $KM_OK = 1 ]; then
	[ -x "$INCR_G" ] || fail "$INCR_G is missing: build with make -C bench"
	[ -x "$KM_MGMT" ] || fail "incr: no management client $KM_MGMT"
	log "incremental snapshots ($SNAP_LIBC): $INCR_RUNS runs of $INCR_MIB MiB with $INCR_CHANGE MiB changed / a full $INCR_CHANGE MiB"
	ACC=()
	for ((i = 0; i < INCR_RUNS; i++)); do
		incr_take "$INCR_MIB" "$INCR_CHANGE" i
		incr_take "$INCR_CHANGE" 0 f
	done
	iw=$(res iwall) fw=$(res fwall) im=$(res imem) fm=$(res fmem)
	row "incremental snapshot, MiB written ($INCR_MIB MiB, $INCR_CHANGE changed): km vs full $INCR_CHANGE MiB" \
		"$(mib "$im")" "$(mib "$fm")" "$(ratio "$im" "$fm")" "<= 20 MiB" "$(met "$(mib "$im")" 20)"
	row "incremental snapshot, ms ($INCR_MIB MiB, $INCR_CHANGE changed): km vs full $INCR_CHANGE MiB" \
		"$(nsms "$iw")" "$(nsms "$fw")" "$(ratio "$iw" "$fw")" "<= 2.00x the full" \
		"$(met "$(calc %.4f 'a / b' "$iw" "$fw")" 2)"
fi

# Processes: fork, exec, python3 (bench/procs.sh).
# shellcheck source=procs.sh
. "$(dirname "$0")/procs.sh"

# Programs: sqlite, zlib, python3 (bench/apps.sh).
# shellcheck source=apps.sh
. "$(dirname "$0")/apps.sh"

echo
echo "VM creation floor by phase, us (new process, medians): ${vmc_phases:-n/a}"
if [ ${#SNAPNOTES[@]} -gt 0 ]; then
	echo "Snapshot rows: km and criu take the same static program ($SNAP_LIBC: snap_touch, or snap_threads for the 4-thread rows, fd_hold for the fds rows); medians of the runs in SNAP_SIZES (fds: FDS_RUNS)."
	echo "  criu's 'Restore time' is its own stat (restore start to just before the tasks resume; not criu's exec)."
	printf '  %s\n' "${SNAPNOTES[@]}"
fi

echo
status=0
if [ $KM_OK = 0 ]; then
	echo "KM NOT RUNNABLE: $KM_WHY"
	if [ -s "$B/km-check.err" ]; then
		echo "  its stderr (first lines, full text in $B/km-check.err):"
		head -n 5 "$B/km-check.err" | sed 's/^/    /'
	fi
	echo "Only the floors and native runs were measured; the km column is n/a."
	status=1
fi
if [ $CRIU_OK = 0 ] && { want snap || want snap4 || want fds || want copies || want live; }; then
	echo "CRIU NOT AVAILABLE: $CRIU_WHY"
	echo "The criu columns of the snapshot rows are n/a."
	[ $CRIU_OMIT = 1 ] || status=1
fi
if { want shim || want shimck; } && [ $SHIM_OK = 0 ]; then
	echo "KM-SHIM NOT AVAILABLE: $SHIM_WHY (its column of the container rows is n/a)"
	status=1
fi
if want shim || want shimck; then
	[ $RUNC_OK = 1 ] || { echo "RUNC NOT AVAILABLE: $RUNC_WHY (the container rows' peer is n/a)"; status=1; }
	want shim && [ $CRUN_OK = 0 ] && echo "CRUN NOT AVAILABLE: $CRUN_WHY (its row is n/a; crun is measured only where it can run)"
fi
if [ -n "$KM_MGMT_WHY" ]; then
	echo "KM --MGMT ROWS NOT MEASURED: $KM_MGMT_WHY"
	status=1
fi
if [ ${#FAILURES[@]} -gt 0 ]; then
	echo "FAILED MEASUREMENTS:"
	printf '  %s\n' "${FAILURES[@]}"
	status=1
fi
[ $status = 0 ] && echo "All measurements ran."
exit $status
