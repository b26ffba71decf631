# shellcheck shell=bash
# Dynamically linked programs (issue 10): Debian's own programs (ls, sort, env, perl, python3) and
# the test guests of tests/guests-dyn/ (built into $GUESTS/dyn/ with their .so files: TLS of a
# shared library, IFUNC, dlopen, LD_PRELOAD, LD_LIBRARY_PATH), each run natively and under km and
# compared byte for byte (stdout, stderr, exit status); then snapshots of dynamic programs
# (dyn_snap and python3 after its imports) resumed, and resumes refused because a mapped library
# changed or vanished; a dynamic program in a container under km-shim. Sourced by run.sh after
# its helpers (want, begin, bad, note, end, run, split_run_args, km_cmd, compare_runs, show_runs,
# show_diff, km_only, status_text, show_file); defines run_dynlink.
#
# Knob: KM_MGMT=$TOOLS/km-mgmt (the management socket's client, for the python3 snapshot).

DYN_GUESTS=$GUESTS/dyn
DYN_MGMT=${KM_MGMT:-${TOOLS:-$ROOT/build/tests/tools}/km-mgmt}
case $DYN_MGMT in /*) ;; *) DYN_MGMT=$PWD/$DYN_MGMT ;; esac

# dyn_compare NAME EXPECT CWD STDIN VAR=VALUE... -- CMD ARGS...: CMD natively and under km with
# the same environment; exit status EXPECT, identical stdout and stderr, no FAIL lines. A
# "GUEST:VAR=VALUE" is given to the program only: natively in its environment, under km with
# --env (LD_PRELOAD in km's own environment would load into an ASan km, which is dynamic).
dyn_compare() {
	local name=$1 expect=$2 cwd=$3 stdin=$4
	shift 4
	local test="dyn/$name"
	want "$test" || return 0
	begin "$test"
	local d=$WORK/dyn/$name v
	split_run_args "$@"
	local -a extra=() native_env=() km_opts=() cmd=("${RUN_CMD[@]}")
	for v in "${RUN_EXTRA[@]}"; do
		case $v in
		GUEST:*)
			native_env+=("${v#GUEST:}")
			km_opts+=("--env=${v#GUEST:}")
			;;
		*) extra+=("$v") ;;
		esac
	done
	if [ ! -x "${cmd[0]}" ]; then
		bad "${cmd[0]} is missing (make guests; scripts/deps.sh installs the Debian programs)"
		end
		return
	fi
	run "$d/native" "$cwd" "$stdin" "${extra[@]}" "${native_env[@]}" -- "${cmd[@]}"
	local nrc=$RC
	N_CMDLINE=$CMDLINE
	if [ $NATIVE = 1 ]; then
		km_cmd "${cmd[@]}"
		run "$d/km" "$cwd" "$stdin" "${extra[@]}" "${native_env[@]}" -- "${KMCMD[@]}"
	else
		run "$d/km" "$cwd" "$stdin" "${extra[@]}" -- "$KM" "${km_opts[@]}" "${cmd[@]}"
	fi
	K_CMDLINE=$CMDLINE
	compare_runs "$d/native" "$nrc" "$d/km" "$RC" "$expect"
	grep -q '^FAIL' "$d/km/out" && bad "the guest's own checks failed under km: $(grep -m3 '^FAIL' "$d/km/out" | tr '\n' ' ')"
	[ -s "$d/native/out" ] || [ -s "$d/native/err" ] || bad "the native run printed nothing (a broken test?)"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_runs "$d/native" "$d/km"
	fi
	end
}

# Debian's programs: a directory listing, sort, env, perl and python3 (their XS and C modules are
# dlopen'd: POSIX.so, _hashlib, _json ...).
dyn_debian() {
	local d=$WORK/dyn/data
	mkdir -p "$d/dir/sub"
	printf 'one\n' >"$d/dir/a.txt"
	printf 'two two\n' >"$d/dir/b file"
	ln -sf a.txt "$d/dir/link"
	chmod 640 "$d/dir/a.txt"
	touch -h -d '2024-02-29 12:34:56' "$d/dir/a.txt" "$d/dir/b file" "$d/dir/link" "$d/dir/sub" "$d/dir"
	printf 'pear 3\napple 10\nfig 2\nbanana 1\napple 2\n\nZebra 0\n' >"$d/fruit"
	printf '{"name": "km", "list": [1, 2.5, null, true], "nested": {"a": "\\u00e9"}}\n' >"$d/in.json"

	dyn_compare ls-la 0 "$d" /dev/null -- /bin/ls -la "$d/dir"
	dyn_compare ls-missing 2 "$d" /dev/null -- /bin/ls -l "$d/no-such-file"
	dyn_compare sort 0 "$d" /dev/null -- /usr/bin/sort "$d/fruit"
	dyn_compare sort-keys 0 "$d" "$d/fruit" -- /usr/bin/sort -k2,2n -r
	dyn_compare env 0 "$d" /dev/null EXTRA=x -- /usr/bin/env
	# XS modules (POSIX, List::Util) are dlopen'd; the exit status is the script's own.
	dyn_compare perl-e 3 "$d" /dev/null -- /usr/bin/perl -MPOSIX -MList::Util=sum -e \
		'my %h = (b => 2, a => 1); print join(",", map { "$_=$h{$_}" } sort keys %h), "\n";
		 printf("%.6f %d %s\n", atan2(1, 1) * 4, sum(1 .. 100), POSIX::floor(-2.5));
		 print scalar(gmtime(0)), "\n"; print STDERR "to stderr\n"; exit 3'
	dyn_compare python3-c 0 "$d" /dev/null -- /usr/bin/python3 -c \
		'import json, os, sys, hashlib, math, re
print(json.dumps({"k": [1, 2.5, None]}, sort_keys=True))
print(hashlib.sha256(b"km").hexdigest(), math.factorial(25))
print(re.sub(r"(\d+)", r"<\1>", "a1b22c333"), os.getcwd(), sys.argv)
print("to stderr", file=sys.stderr)'
	dyn_compare python3-json-tool 0 "$d" /dev/null -- /usr/bin/python3 -m json.tool "$d/in.json"
	dyn_compare python3-json-tool-stdin 0 "$d" "$d/in.json" -- /usr/bin/python3 -m json.tool --sort-keys
	dyn_compare python3-error 1 "$d" /dev/null -- /usr/bin/python3 -c 'import no_such_module_here'
}

# The test guests: TLS of a .so and IFUNC, dlopen (by path and by name), LD_PRELOAD,
# LD_LIBRARY_PATH (and its absence), the interpreter run as the program.
dyn_guests() {
	local lib=$DYN_GUESTS cwd=$WORK/dyn
	mkdir -p "$cwd"
	dyn_compare tls 0 "$cwd" /dev/null "LD_LIBRARY_PATH=$lib" -- "$lib/dyn_tls"
	dyn_compare tls-bind-now 0 "$cwd" /dev/null "LD_LIBRARY_PATH=$lib" LD_BIND_NOW=1 -- "$lib/dyn_tls"
	dyn_compare dlopen-path 0 "$cwd" /dev/null "LD_LIBRARY_PATH=$lib" -- "$lib/dyn_dlopen" "$lib/libdynplug.so"
	dyn_compare dlopen-name 0 "$cwd" /dev/null "LD_LIBRARY_PATH=$lib" -- "$lib/dyn_dlopen" libdynplug.so
	dyn_compare library-path 0 "$cwd" /dev/null "LD_LIBRARY_PATH=/nonexistent:$lib" -- "$lib/dyn_hello" a 'b c'
	dyn_compare preload 0 "$cwd" /dev/null "LD_LIBRARY_PATH=$lib" "GUEST:LD_PRELOAD=$lib/libdynpre.so" -- "$lib/dyn_hello" x
	dyn_compare library-missing 127 "$cwd" /dev/null -- "$lib/dyn_hello"
	dyn_compare interp-as-program 0 "$cwd" /dev/null "LD_LIBRARY_PATH=$lib" -- \
		/lib64/ld-linux-x86-64.so.2 "$lib/dyn_hello" via ld.so
	# musl's dynamic linker (/lib/ld-musl-x86_64.so.1) is its libc too.
	if want dyn/musl-args; then
		if ! musl-gcc -O1 -D_GNU_SOURCE -o "$cwd/bin-musl-args" "$ROOT/tests/guests/args.c" 2>"$cwd/musl-build.log"; then
			begin dyn/musl-args
			bad "musl-gcc could not build a dynamic program: $(head -2 "$cwd/musl-build.log")"
			end
		else
			dyn_compare musl-args 0 "$cwd" /dev/null -- "$cwd/bin-musl-args" one 'two words' ''
		fi
	fi
}

# dyn_resume_refused NAME SNAPSHOT MENTION...: km SNAPSHOT exits 1 with one stderr line that
# names each MENTION, and prints nothing.
dyn_resume_refused() {
	local name=$1 snap=$2
	shift 2
	local test="dyn/$name" m
	want "$test" || return 0
	km_only "$test" || return 0
	begin "$test"
	local d=$WORK/dyn/$name
	run "$d" "$WORK/dyn" /dev/null -- "$KM" "$snap"
	[ "$RC" = 1 ] || bad "exit status $(status_text "$RC"), expected 1"
	[ "$(wc -l <"$d/err")" -eq 1 ] || bad "stderr has $(wc -l <"$d/err") lines, expected one"
	for m in "$@"; do
		grep -qF -- "$m" "$d/err" || bad "stderr does not mention '$m'"
	done
	[ -s "$d/out" ] && bad "the refused resume printed something"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_file stderr "$d/err"
	fi
	end
}

# dyn_resume_ok NAME SNAPSHOT WANT_OUT: km SNAPSHOT exits 0 printing WANT_OUT's contents.
dyn_resume_ok() {
	local test="dyn/$1" snap=$2 want_out=$3
	want "$test" || return 0
	km_only "$test" || return 0
	begin "$test"
	local d=$WORK/dyn/$1
	run "$d" "$WORK/dyn" /dev/null -- "$KM" "$snap"
	[ "$RC" = 0 ] || bad "exit status $(status_text "$RC"), expected 0: $(head -2 "$d/err")"
	cmp -s "$want_out" "$d/out" || bad "stdout differs from the first resume's"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_file stdout "$d/out"
		show_file stderr "$d/err"
	fi
	end
}

# dyn_snap with its plugin copied aside, snapshotted and resumed: the two runs' output together
# is the native run's; a copy of the plugin (same size and time) put in its place is accepted;
# then the plugin is changed, then removed, and each of these resumes is refused.
dyn_snapshot() {
	local test=dyn/snapshot
	local d=$WORK/dyn/snapshot
	local lib=$d/lib snap=$d/snap
	want "$test" || want dyn/snapshot-library-copied || want dyn/snapshot-library-changed ||
		want dyn/snapshot-library-gone || return 0
	km_only "$test" || return 0
	begin "$test"
	mkdir -p "$lib"
	cp "$DYN_GUESTS/libdynplug.so" "$lib/"
	run "$d/native" "$d" /dev/null "LD_LIBRARY_PATH=$DYN_GUESTS" -- "$DYN_GUESTS/dyn_snap" "$lib/libdynplug.so"
	local nrc=$RC
	run "$d/take" "$d" /dev/null "LD_LIBRARY_PATH=$DYN_GUESTS" -- "$KM" --snapshot="$snap" \
		"$DYN_GUESTS/dyn_snap" "$lib/libdynplug.so"
	local trc=$RC
	run "$d/resume" "$d" /dev/null -- "$KM" "$snap"
	local rrc=$RC
	[ "$nrc" = 0 ] || bad "native run: exit status $(status_text "$nrc")"
	[ "$trc" = 0 ] || bad "km run up to the snapshot: exit status $(status_text "$trc")"
	[ "$rrc" = 0 ] || bad "resumed run: exit status $(status_text "$rrc")"
	mkdir -p "$d/km"
	cat "$d/take/out" "$d/resume/out" >"$d/km/out"
	if ! cmp -s "$d/native/out" "$d/km/out"; then
		bad "the km runs' stdout together differs from the native run's"
		show_diff "$d/native/out" "$d/km/out"
	fi
	grep -q '^FAIL' "$d/km/out" && bad "the guest's own checks failed under km"
	"$KM" --inspect "$snap" >"$d/inspect" 2>&1 || bad "km --inspect failed: $(head -1 "$d/inspect")"
	grep -q '^interpreter: *.*/ld-linux-x86-64.so.2 at 0x' "$d/inspect" ||
		bad "--inspect does not name the interpreter: $(grep -m1 interpreter "$d/inspect")"
	grep -q "libdynplug.so" "$d/inspect" || bad "--inspect does not show the plugin's mappings"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_file "native stdout" "$d/native/out"
		show_file "km stdout (both runs)" "$d/km/out"
		show_file "resume stderr" "$d/resume/err"
	fi
	end
	[ -f "$snap" ] || return 0
	# A copy with the same size and modification time (another inode: what a bundle copied to
	# another host has) is the same file.
	cp -a "$lib/libdynplug.so" "$lib/copy.so" && mv "$lib/copy.so" "$lib/libdynplug.so"
	dyn_resume_ok snapshot-library-copied "$snap" "$d/resume/out"
	# Same size, one byte different (the modification time changes with it).
	printf 'X' | dd of="$lib/libdynplug.so" bs=1 seek=100 conv=notrunc status=none
	dyn_resume_refused snapshot-library-changed "$snap" "$lib/libdynplug.so" "changed since the snapshot"
	rm -f "$lib/libdynplug.so"
	dyn_resume_refused snapshot-library-gone "$snap" "$lib/libdynplug.so" "is gone"
}

# python3 snapshotted from outside (the management socket) once its imports are done, resumed,
# and given its input only then: its output is the native run's.
dyn_python_snapshot() {
	local test=dyn/python3-snapshot
	want "$test" || return 0
	km_only "$test" || return 0
	begin "$test"
	local d=$WORK/dyn/py-snap sock snap
	mkdir -p "$d"
	sock=$d/mgmt.sock
	snap=$d/snap
	if [ ! -x "$DYN_MGMT" ]; then
		bad "the management socket client $DYN_MGMT is missing (make tools)"
		end
		return
	fi
	local prog='import json, hashlib, sys
print("imported", flush=True)
line = sys.stdin.readline()
print(json.dumps({"got": line.strip(), "sha": hashlib.sha1(line.encode()).hexdigest()}))'
	printf 'after the resume\n' >"$d/input"
	run "$d/native" "$d" "$d/input" -- /usr/bin/python3 -c "$prog"
	local nrc=$RC
	mkfifo "$d/in.fifo"
	# The fifo is held open for writing by this shell (fd 8) so that python3 blocks in its read.
	exec 8<>"$d/in.fifo"
	{ (cd "$d" && exec timeout -k 5 "$TIMEOUT" "${BASE_ENV[@]}" "$KM" --mgmt="$sock" /usr/bin/python3 -c "$prog") \
		>"$d/take.out" 2>"$d/take.err" <"$d/in.fifo" & } 2>/dev/null
	local pid=$! i
	for ((i = 0; i < TIMEOUT * 20; i++)); do
		grep -qx imported "$d/take.out" 2>/dev/null && break
		sleep 0.05
	done
	"$DYN_MGMT" --wait-socket 5 --timeout 20 "$sock" snapshot "path=$snap" mode=stop >"$d/mgmt.out" 2>"$d/mgmt.err" ||
		bad "snapshot request failed: $(cat "$d/mgmt.out" "$d/mgmt.err" | head -2 | tr '\n' ' ')"
	wait "$pid"
	local trc=$?
	exec 8>&-
	run "$d/resume" "$d" "$d/input" -- "$KM" "$snap"
	[ "$nrc" = 0 ] || bad "native run: exit status $(status_text "$nrc")"
	[ "$trc" = 0 ] || bad "km run up to the snapshot: exit status $(status_text "$trc"): $(head -2 "$d/take.err")"
	[ "$RC" = 0 ] || bad "resumed run: exit status $(status_text "$RC"): $(head -2 "$d/resume/err")"
	cat "$d/take.out" "$d/resume/out" >"$d/km.out"
	if ! cmp -s "$d/native/out" "$d/km.out"; then
		bad "the km runs' stdout together differs from the native run's"
		show_diff "$d/native/out" "$d/km.out"
	fi
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_file "native stdout" "$d/native/out"
		show_file "km stdout (both runs)" "$d/km.out"
		show_file "resume stderr" "$d/resume/err"
	fi
	end
}

# dyn_ctr_bundle DIR WITH_INTERP: a bundle whose rootfs holds dyn_tls, its libraries and glibc
# (with the interpreter only if WITH_INTERP is 1), running /bin/dyn_tls.
dyn_ctr_bundle() {
	local b=$1 with_interp=$2 f
	mkdir -p "$b/rootfs/bin" "$b/rootfs/lib64" "$b/rootfs/lib/x86_64-linux-gnu" "$b/rootfs/usr/local/lib"
	cp "$DYN_GUESTS/dyn_tls" "$b/rootfs/bin/"
	cp "$DYN_GUESTS/libdyntls.so" "$DYN_GUESTS/libdynwho.so" "$b/rootfs/usr/local/lib/"
	for f in libc.so.6; do cp -L "/lib/x86_64-linux-gnu/$f" "$b/rootfs/lib/x86_64-linux-gnu/"; done
	[ "$with_interp" = 1 ] && cp -L /lib64/ld-linux-x86-64.so.2 "$b/rootfs/lib64/"
	cat >"$b/config.json" <<-EOF
		{
		  "ociVersion": "1.0.2",
		  "process": {
		    "terminal": false,
		    "user": {"uid": 0, "gid": 0},
		    "args": ["/bin/dyn_tls"],
		    "env": ["PATH=/bin", "LD_LIBRARY_PATH=/usr/local/lib"],
		    "cwd": "/"
		  },
		  "root": {"path": "rootfs", "readonly": true},
		  "hostname": "km-dyn",
		  "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
		  "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}]}
		}
	EOF
}

# A dynamic program in a container (km-shim): its interpreter and libraries come from the
# rootfs, not the host; without an interpreter in the rootfs it is refused, naming it. km-shim
# runs $KM_SHIM_KM if set (make asan names a static km: a sanitizer build's cannot run in a
# container), else the km under test.
dyn_container() {
	local shim=${KM_SHIM:-$ROOT/build/bin/km-shim} d=$WORK/dyn/ctr test
	want dyn/container || want dyn/container-no-interpreter || return 0
	km_only dyn/container || return 0
	local root=$d/root
	mkdir -p "$d"
	test=dyn/container
	if want "$test"; then
		begin "$test"
		if [ ! -x "$shim" ]; then
			bad "km-shim is missing (make shim)"
		else
			dyn_ctr_bundle "$d/b1" 1
			run "$d/native" "$WORK/dyn" /dev/null "LD_LIBRARY_PATH=$DYN_GUESTS" -- "$DYN_GUESTS/dyn_tls"
			KM_SHIM_KM=${KM_SHIM_KM:-$KM} timeout -k 5 "$TIMEOUT" "$shim" --root "$root" run --bundle "$d/b1" dyn-ctr \
				>"$d/out" 2>"$d/err" </dev/null
			local rc=$?
			[ "$rc" = 0 ] || bad "km-shim run: exit status $(status_text "$rc"): $(head -2 "$d/err")"
			cmp -s "$d/native/out" "$d/out" || { bad "output differs from the native run's"; show_diff "$d/native/out" "$d/out"; }
			"$shim" --root "$root" delete --force dyn-ctr >/dev/null 2>&1
		fi
		end
	fi
	test=dyn/container-no-interpreter
	if want "$test" && [ -x "$shim" ]; then
		begin "$test"
		dyn_ctr_bundle "$d/b2" 0
		KM_SHIM_KM=${KM_SHIM_KM:-$KM} timeout -k 5 "$TIMEOUT" "$shim" --root "$root" run --bundle "$d/b2" dyn-ctr2 \
			>"$d/out2" 2>"$d/err2" </dev/null
		local rc=$?
		[ "$rc" != 0 ] || bad "km-shim run succeeded without an interpreter in the rootfs"
		grep -q "/bin/dyn_tls: its interpreter: /lib64/ld-linux-x86-64.so.2" "$d/out2" "$d/err2" ||
			bad "no line naming the program and its missing interpreter: $(cat "$d/out2" "$d/err2" | head -3 | tr '\n' ' ')"
		"$shim" --root "$root" delete --force dyn-ctr2 >/dev/null 2>&1
		end
	fi
}

run_dynlink() {
	if [ ! -d "$DYN_GUESTS" ]; then
		if want dyn/; then
			begin dyn/guests
			bad "no dynamically linked test guests in $DYN_GUESTS (make guests)"
			end
		fi
		return
	fi
	dyn_debian
	dyn_guests
	dyn_snapshot
	dyn_python_snapshot
	dyn_container
}
