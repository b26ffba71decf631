# shellcheck shell=bash disable=SC2016,SC2034,SC2153
# Real programs (issue 10's "Done when"): each run natively and under km, compared byte for byte
# (stdout, stderr, exit status), never against a hard-coded output.
#   procs/sh/SHELL/SCRIPT      tests/fixtures/procs_sh/*.sh under busybox sh, bash-static, dash,
#                              mksh and mksh-static (pipelines, $(...), &/wait, redirections,
#                              here-documents, trap, subshells, exec, a loop of 50 commands,
#                              commands that cannot run: 127, 126, #! with a missing interpreter)
#   procs/make-j2              `make -j2` of tests/fixtures/procs_make: make, gcc, cc1, as, ld all
#                              run under km (every exec of a km guest goes through km); the
#                              objects and the program must be identical to a native build
#   procs/httpd                busybox httpd (a fork per connection) under km serving 20 curl
#                              requests (curl natively), bodies identical to a native httpd's
#   procs/debian/NAME          Debian's dynamically linked ls, sort, python3 (-c, -m json.tool,
#                              subprocess.run) and perl
#   procs/orphan/LIBC/unshare  proc_orphan init as pid 1 of a new pid namespace (unshare -pf),
#                              natively and as `unshare -pf km ...`
#   procs/orphan/LIBC/km-shim  the same guest as a km-shim container's init (root only)
# Sourced by run.sh (uses its helpers: want/begin/bad/end/run/km_cmd/compare_runs, BUSYBOX from
# busybox.sh, shim_cfg from shim.sh); defines run_procs.

PROCS_FIX=$ROOT/tests/fixtures

# procs_pair NAME CWD STDIN [VAR=VALUE...] -- CMD ARGS...: one test NAME running CMD natively and
# under km with the same cwd, stdin and environment (TMPDIR is a fresh directory for each run, at
# the same path); the km run must give the native run's exit status, stdout and stderr.
procs_pair() {
	local name=$1 cwd=$2 stdin=$3
	shift 3
	want "$name" || return 0
	begin "$name"
	local d=$WORK/$name
	split_run_args "$@"
	local -a extra=("${RUN_EXTRA[@]}") cmd=("${RUN_CMD[@]}")
	if [ ! -x "${cmd[0]}" ]; then
		bad "${cmd[0]} is not installed (scripts/deps.sh installs it)"
		end
		return
	fi
	rm -rf "$d/tmp" && mkdir -p "$d/tmp"
	run "$d/native" "$cwd" "$stdin" "TMPDIR=$d/tmp" "${extra[@]}" -- "${cmd[@]}"
	local nrc=$RC
	N_CMDLINE=$CMDLINE
	rm -rf "$d/tmp" && mkdir -p "$d/tmp"
	# PROCS_KM_AT=N: km goes after the first N words (a wrapper such as unshare runs km)
	local at=${PROCS_KM_AT:-0}
	km_cmd "${cmd[@]:at}"
	KMCMD=("${cmd[@]:0:at}" "${KMCMD[@]}")
	run "$d/km" "$cwd" "$stdin" "TMPDIR=$d/tmp" "${extra[@]}" -- "${KMCMD[@]}"
	K_CMDLINE=$CMDLINE
	compare_runs "$d/native" "$nrc" "$d/km" "$RC" "$nrc"
	[ -n "$(ls -A "$d/tmp")" ] && bad "the km run left files in TMPDIR: $(ls -A "$d/tmp" | head -5 | tr '\n' ' ')"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_runs "$d/native" "$d/km"
	fi
	end
}

# The shells: NAME=PATH-AND-ARGS (busybox's sh is an applet).
procs_shells() {
	PROCS_SHELLS=("busybox-sh=$BUSYBOX sh" "bash-static=/bin/bash-static" "dash=/bin/dash"
		"mksh=/bin/mksh" "mksh-static=/bin/mksh-static")
}

run_procs_shells() {
	local entry name script s
	procs_shells
	mkdir -p "$WORK/procs/cwd"
	for entry in "${PROCS_SHELLS[@]}"; do
		name=${entry%%=*}
		local -a sh
		read -r -a sh <<<"${entry#*=}"
		for script in "$PROCS_FIX"/procs_sh/*.sh; do
			s=$(basename "$script" .sh)
			procs_pair "procs/sh/$name/$s" "$WORK/procs/cwd" /dev/null -- "${sh[@]}" "$script"
		done
	done
}

# make -j2: the job order varies, so make's output is compared sorted; the objects, the program
# and its output must be identical (both builds happen in one directory, so debug info agrees).
run_procs_make() {
	local test=procs/make-j2
	want "$test" || return 0
	begin "$test"
	local d=$WORK/procs/make src=$WORK/procs/make/src
	rm -rf "$d" && mkdir -p "$d" && cp -r "$PROCS_FIX/procs_make" "$src"
	run "$d/native" "$src" /dev/null -- /usr/bin/make -j2 CC=gcc check
	local nrc=$RC
	N_CMDLINE=$CMDLINE
	(cd "$src" && md5sum ./*.o calc result.txt) >"$d/native/sums" 2>&1
	/usr/bin/make -C "$src" clean >/dev/null 2>&1
	km_cmd /usr/bin/make -j2 CC=gcc check
	run "$d/km" "$src" /dev/null -- "${KMCMD[@]}"
	K_CMDLINE=$CMDLINE
	(cd "$src" && md5sum ./*.o calc result.txt) >"$d/km/sums" 2>&1
	[ "$nrc" = 0 ] || bad "native make failed: $(status_text "$nrc")"
	[ "$RC" = "$nrc" ] || bad "km run: exit status $(status_text "$RC"), natively $(status_text "$nrc")"
	sort "$d/native/out" >"$d/native/sorted"
	sort "$d/km/out" >"$d/km/sorted"
	if ! cmp -s "$d/native/sorted" "$d/km/sorted"; then
		bad "make's output (sorted) differs"
		show_diff "$d/native/sorted" "$d/km/sorted"
	fi
	cmp -s "$d/native/err" "$d/km/err" || bad "stderr differs"
	if ! cmp -s "$d/native/sums" "$d/km/sums"; then
		bad "the objects, the program or its output differ from the native build's"
		show_diff "$d/native/sums" "$d/km/sums"
	fi
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_runs "$d/native" "$d/km"
	fi
	end
}

# procs_free_port: a TCP port on 127.0.0.1 nobody listens on right now.
procs_free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# procs_httpd_session DIR DOCROOT CMD...: starts the server CMD (which must take -p PORT after
# it), fetches 10 requests one after another and 10 at once with curl into DIR/bodyN (status
# codes into DIR/codes), then stops the server; DIR/server.err has its stderr. False if the
# server never answered.
procs_httpd_session() {
	local dir=$1 doc=$2
	shift 2
	local port i up=0 pid
	mkdir -p "$dir"
	port=$(procs_free_port) || return 1
	(cd "$doc" && exec timeout -k 5 "$((TIMEOUT * 4))" "${BASE_ENV[@]}" "$@" -p "127.0.0.1:$port" -h "$doc") \
		>"$dir/server.out" 2>"$dir/server.err" </dev/null &
	pid=$!
	for ((i = 0; i < TIMEOUT * 10; i++)); do
		curl -s -o /dev/null "http://127.0.0.1:$port/" && up=1 && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	local -a files=(index.html data.bin sub/page.txt missing.html)
	: >"$dir/codes"
	if [ $up = 1 ]; then
		for ((i = 0; i < 10; i++)); do
			curl -s -o "$dir/body$i" -w "$i %{http_code}\n" "http://127.0.0.1:$port/${files[i % 4]}" >>"$dir/codes"
		done
		for ((i = 10; i < 20; i++)); do
			curl -s -o "$dir/body$i" -w "$i %{http_code}\n" "http://127.0.0.1:$port/${files[i % 4]}" >"$dir/code$i" &
		done
		wait_jobs_except "$pid"
		cat "$dir"/code1? >>"$dir/codes"
	fi
	kill -TERM "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	[ $up = 1 ]
}

# wait_jobs_except PID: waits for every background job of this shell but PID.
wait_jobs_except() {
	local j
	for j in $(jobs -p); do
		[ "$j" = "$1" ] || wait "$j"
	done
}

run_procs_httpd() {
	local test=procs/httpd
	want "$test" || return 0
	begin "$test"
	local d=$WORK/procs/httpd doc=$WORK/procs/httpd/doc i
	mkdir -p "$doc/sub"
	printf '<html><body>index under test</body></html>\n' >"$doc/index.html"
	printf 'a page in a subdirectory\n' >"$doc/sub/page.txt"
	python3 -c 'import sys; sys.stdout.buffer.write(bytes((i * 7 + i // 256) % 256 for i in range(300000)))' >"$doc/data.bin"
	if ! command -v curl >/dev/null; then
		bad "curl is not installed (scripts/deps.sh installs it)"
		end
		return
	fi
	procs_httpd_session "$d/native" "$doc" "$BUSYBOX" httpd -f ||
		bad "native busybox httpd never answered: $(head -c 300 "$d/native/server.err")"
	km_cmd "$BUSYBOX" httpd -f
	if ! procs_httpd_session "$d/km" "$doc" "${KMCMD[@]}"; then
		bad "busybox httpd under km never answered: $(head -c 300 "$d/km/server.err")"
	elif ! cmp -s "$d/native/codes" "$d/km/codes"; then
		bad "HTTP status codes differ"
		show_diff "$d/native/codes" "$d/km/codes"
	else
		for ((i = 0; i < 20; i++)); do
			cmp -s "$d/native/body$i" "$d/km/body$i" || bad "response body $i differs from the native server's"
		done
	fi
	cmp -s "$d/native/body1" "$doc/data.bin" || bad "the native server's data.bin differs from the file"
	grep -qv ' 200$\| 404$' "$d/native/codes" && bad "native codes other than 200/404: $(tr '\n' ' ' <"$d/native/codes")"
	if [ -n "$T_DIAG" ] || [ "$VERBOSE" = 1 ]; then
		show_file "native server stderr" "$d/native/server.err"
		show_file "km server stderr" "$d/km/server.err"
	fi
	end
}

run_procs_debian() {
	local d=$WORK/procs/debian-fix
	mkdir -p "$d/dir/sub"
	printf 'b 2\na 10\nc 1\na 10\nB 3\n' >"$d/dir/words.txt"
	printf 'nested\n' >"$d/dir/sub/file"
	ln -sf words.txt "$d/dir/link"
	printf '{"name": "km", "list": [1, 2.5, "three", null, true], "nested": {"a": {"b": []}}}\n' >"$d/data.json"
	chmod 644 "$d/dir/words.txt" "$d/dir/sub/file"
	chmod 755 "$d/dir" "$d/dir/sub"
	find "$d" -depth -exec touch -h -d '2001-02-03 04:05:06 UTC' {} +
	procs_pair procs/debian/ls "$d" /dev/null -- /bin/ls -lanR --time-style=+%F.%T dir
	procs_pair procs/debian/sort "$d" /dev/null -- /usr/bin/sort -k2,2n -k1,1r dir/words.txt
	procs_pair procs/debian/sort-u "$d" dir/words.txt -- /usr/bin/sort -u -f
	procs_pair procs/debian/python3-c "$d" /dev/null -- /usr/bin/python3 -c \
		'import hashlib, os, re, sys; print(sum(range(10**6)), hashlib.sha256(b"km").hexdigest()[:16]); print(re.sub(r"(\d+)", r"<\1>", "a1b22c333"), os.path.basename(os.getcwd()), sys.argv[1:])' x y
	procs_pair procs/debian/python3-json-tool "$d" /dev/null -- /usr/bin/python3 -m json.tool --sort-keys data.json
	procs_pair procs/debian/python3-subprocess "$d" /dev/null -- /usr/bin/python3 -c \
		'import subprocess as s
r = s.run(["echo", "from", "echo"], capture_output=True, text=True)
print(r.returncode, repr(r.stdout))
print(s.run(["sh", "-c", "exit 3"]).returncode)
print(s.check_output("echo abc | tr a-c x-z", shell=True).decode(), end="")
p = s.Popen(["cat"], stdin=s.PIPE, stdout=s.PIPE)
print(p.communicate(b"through cat\n")[0].decode(), end="")'
	procs_pair procs/debian/perl "$d" /dev/null -- /usr/bin/perl -e \
		'use POSIX (); use List::Util qw(sum max);
print join(",", map { $_ * 2 } 1..10), "\n";
print POSIX::floor(3.7), " ", sum(1..100), " ", max(3, 9, 4), "\n";
my @a = sort { $b <=> $a } (5, 3, 9); print "@a\n";
print `echo backticks`;
system("exit 2"); print $? >> 8, "\n";
open(my $fh, "-|", "sort", "-r", "dir/words.txt") or die; print <$fh>; close $fh;'
}

# Orphans are reparented to the namespace's init (the guest, pid 1) and reaped by its wait().
run_procs_orphan() {
	local flavour test d g
	for flavour in gcc musl; do
		g=$GUESTS/$flavour/proc_orphan
		mkdir -p "$WORK/procs/orphan-cwd"
		PROCS_KM_AT=4 procs_pair "procs/orphan/$flavour/unshare" "$WORK/procs/orphan-cwd" /dev/null -- \
			/usr/bin/unshare --pid --fork --kill-child "$g" init
		test="procs/orphan/$flavour/km-shim"
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/procs/orphan-shim/$flavour
		if [ ! -x "${KM_SHIM:-}" ] || [ "$(id -u)" != 0 ]; then
			bad "needs root and km-shim ('${KM_SHIM:-}', make shim)"
			end
			continue
		fi
		mkdir -p "$d/bundle/rootfs"
		cp "$g" "$d/bundle/rootfs/proc_orphan"
		shim_cfg "$d/bundle" /proc_orphan init
		run "$d/native" "$d" /dev/null -- /usr/bin/unshare --pid --fork --kill-child "$g" init
		local nrc=$RC
		N_CMDLINE=$CMDLINE
		run "$d/km" "$d" /dev/null "KM_SHIM_KM=${KM_SHIM_KM:-$KM}" -- \
			"$KM_SHIM" --root "$d/root" run --bundle "$d/bundle" "procs-orphan-$flavour"
		K_CMDLINE=$CMDLINE
		compare_runs "$d/native" "$nrc" "$d/km" "$RC" 0
		"$KM_SHIM" --root "$d/root" delete --force "procs-orphan-$flavour" >/dev/null 2>&1
		[ -n "$T_DIAG" ] && show_runs "$d/native" "$d/km"
		end
	done
}

run_procs() {
	run_procs_shells
	run_procs_make
	run_procs_httpd
	run_procs_debian
	run_procs_orphan
}
