# shellcheck shell=bash
# What km-shim needs of km (issue 8): descriptors passed in (--kvm-fd, --mgmt-fd, --ready-fd,
# --start-fd, --snapshot-fd) checked with one-line errors, the ready/start handshake, a snapshot
# resumed from an fd, and none of those fds within the guest's reach (hostile_passedfds, run
# here with the fds really passed; hostile.sh runs it bare). Sourced by run.sh after
# snapshot.sh and mgmt.sh (snap_start, snap_wait_line, snap_show, mgmt_sock, mgmt_km_pid,
# SNAP_MGMT); defines run_container_km.

CK_LISTEN=$(dirname "$SNAP_MGMT")/km-listen

# ck_refused NAME WANT-REGEX CMD...: CMD (km with bad fds) exits 1 with exactly one line on
# stderr matching WANT-REGEX and no output.
ck_refused() {
	local name=$1 want=$2 d=$WORK/container_km/refused
	shift 2
	mkdir -p "$d"
	"$@" >"$d/out" 2>"$d/err" </dev/null
	local rc=$?
	[ "$rc" = 1 ] || bad "$name: exit status $(status_text "$rc"), expected 1"
	[ "$(wc -l <"$d/err")" = 1 ] && [[ $(cat "$d/err") =~ $want ]] ||
		bad "$name: stderr '$(head -c 300 "$d/err")', expected one line matching '$want'"
	[ -s "$d/out" ] && bad "$name: wrote to stdout: $(head -c 200 "$d/out")"
}

ck_bad_fds() {
	local test=container_km/bad-fds hello=$GUESTS/gcc/hello d=$WORK/container_km
	want "$test" && km_only "$test" || return 0
	begin "$test"
	mkdir -p "$d"
	: >"$d/file"
	ck_refused not-open '^km: --kvm-fd=7: fd 7 is not open$' "$KM" --kvm-fd=7 "$hello"
	ck_refused kvm-readonly '^km: --kvm-fd=5: not a character device' "$KM" --kvm-fd=5 "$hello" 5</dev/kvm
	ck_refused kvm-file '^km: --kvm-fd=5: not a character device' "$KM" --kvm-fd=5 "$hello" 5<>"$d/file"
	ck_refused kvm-null '^km: the KVM device of --kvm-fd: KVM API version' "$KM" --kvm-fd=5 "$hello" 5<>/dev/null
	ck_refused mgmt-file '^km: --mgmt-fd=5: not a unix stream socket$' "$KM" --mgmt-fd=5 "$hello" 5<"$d/file"
	ck_refused ready-readonly '^km: --ready-fd=5: not open for writing$' "$KM" --ready-fd=5 "$hello" 5<"$d/file"
	ck_refused start-writeonly '^km: --start-fd=5: not open for reading$' "$KM" --start-fd=5 "$hello" 5>"$d/file"
	ck_refused snapshot-dir '^km: --snapshot-fd=5: not a regular file' "$KM" --snapshot-fd=5 5<"$d"
	ck_refused snapshot-elf '^km: --snapshot-fd=5: .*not' "$KM" --snapshot-fd=5 5<"$hello"
	ck_refused snapshot-and-program "no program may follow" "$KM" --snapshot-fd=5 "$hello" 5<"$d/file"
	ck_refused same-fd '^km: fd 5 is given for two --\*-fd options$' "$KM" --ready-fd=5 --start-fd=5 "$hello" 5<>"$d/file"
	ck_refused not-a-number "^km: --kvm-fd: 'x' is not a file descriptor number$" "$KM" --kvm-fd=x "$hello"
	ck_refused mgmt-both '^km: --mgmt and --mgmt-fd exclude each other$' "$KM" --mgmt=/tmp/x --mgmt-fd=3 "$hello"
	end
}

# ready, then nothing until a byte comes on the start fd; end of file instead: exit 0, nothing
# run; SIGTERM while waiting: km dies of it.
ck_ready_start() {
	local test=container_km/ready-start d=$WORK/container_km/rs hello=$GUESTS/gcc/hello bg
	want "$test" && km_only "$test" || return 0
	begin "$test"
	rm -rf "$d" && mkdir -p "$d"
	mkfifo "$d/start" "$d/ready"
	{ "$KM" --kvm-fd=5 --ready-fd=6 --start-fd=7 "$hello" >"$d/out" 2>"$d/err" </dev/null 5<>/dev/kvm 6<>"$d/ready" 7<"$d/start" & } 2>/dev/null
	bg=$!
	exec 8>"$d/start"
	local line
	if read -r -t 20 line <"$d/ready" && [ "$line" = ready ]; then
		[ -s "$d/out" ] && bad "the program ran before the start byte: $(head -c 200 "$d/out")"
		printf x >&8
	else
		bad "no 'ready' line from km (got '$line')"
	fi
	exec 8>&-
	wait "$bg"
	RC=$?
	[ "$RC" = 0 ] && grep -qx "hello, world" "$d/out" || bad "after the start byte: exit $(status_text "$RC"), stdout '$(head -c 200 "$d/out")'"
	[ -s "$d/err" ] && bad "stderr: $(head -c 300 "$d/err")"
	# end of file on the start fd
	"$KM" --start-fd=7 --ready-fd=6 "$hello" >"$d/out2" 2>"$d/err2" </dev/null 6>"$d/ready2" 7</dev/null
	RC=$?
	[ "$RC" = 0 ] || bad "start fd at EOF: exit status $(status_text "$RC"), expected 0"
	[ -s "$d/out2" ] || [ -s "$d/err2" ] && bad "start fd at EOF: output '$(cat "$d/out2" "$d/err2" | head -c 200)'"
	[ "$(cat "$d/ready2")" = ready ] || bad "ready file holds '$(cat "$d/ready2")'"
	# a signal while waiting
	rm -f "$d/start"
	mkfifo "$d/start"
	{ "$KM" --ready-fd=6 --start-fd=7 "$hello" >"$d/out3" 2>"$d/err3" </dev/null 6>"$d/ready3" 7<>"$d/start" & } 2>/dev/null
	bg=$!
	local i
	for ((i = 0; i < 200; i++)); do
		[ -s "$d/ready3" ] && break
		sleep 0.05
	done
	kill -TERM "$bg"
	wait "$bg"
	RC=$?
	[ "$RC" = 143 ] || bad "SIGTERM while waiting to start: exit status $(status_text "$RC"), expected 143"
	[ -s "$d/out3" ] && bad "SIGTERM while waiting: the program ran"
	rm -f "$d/start" "$d/ready"
	end
}

# The passed fds out of the guest's reach, in a run with all of them and in the copy resumed
# from --snapshot-fd with all of them passed again.
ck_hostile_passedfds() {
	local flavour test d bin sock
	for flavour in gcc musl; do
		test=container_km/hostile-passedfds/$flavour
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/container_km/hp/$flavour
		bin=$GUESTS/$flavour/hostile_passedfds
		rm -rf "$d" && mkdir -p "$d/tmp"
		sock=$(mgmt_sock "$d")
		echo go >"$d/start"
		(cd "$d" && exec timeout -k 5 "$TIMEOUT" "$CK_LISTEN" "$sock" 6 "$KM" --snapshot="$d/p.snap" --kvm-fd=5 --mgmt-fd=6 \
			--ready-fd=7 --start-fd=8 "$bin" km "$d/tmp" snap 5 6 7 8 9) >"$d/out" 2>"$d/err" </dev/null 5<>/dev/kvm 7>"$d/ready" 8<"$d/start"
		RC=$?
		[ "$RC" = 0 ] && grep -qx ORIGINAL "$d/out" && ! grep -q '^FAIL' "$d/out" ||
			bad "first run: exit $(status_text "$RC"): $(grep -v '^ok' "$d/out" | head -c 400) $(head -c 300 "$d/err")"
		[ -s "$d/err" ] && bad "first run: stderr $(head -c 300 "$d/err")"
		if [ -f "$d/p.snap" ]; then
			(cd "$d" && exec timeout -k 5 "$TIMEOUT" "$CK_LISTEN" "$sock" 7 "$KM" --snapshot-fd=5 --kvm-fd=6 --mgmt-fd=7 \
				--ready-fd=8 --start-fd=9) >"$d/out2" 2>"$d/err2" </dev/null 5<"$d/p.snap" 6<>/dev/kvm 8>"$d/ready2" 9<"$d/start"
			RC=$?
			[ "$RC" = 0 ] && grep -qx "RESUMED COPY" "$d/out2" && ! grep -q '^FAIL' "$d/out2" ||
				bad "resumed with --snapshot-fd: exit $(status_text "$RC"): $(grep -v '^ok' "$d/out2" | head -c 400) $(head -c 300 "$d/err2")"
			[ "$(cat "$d/ready2")" = ready ] || bad "resumed: ready fd holds '$(cat "$d/ready2")'"
		else
			bad "no snapshot written at $d/p.snap"
		fi
		rm -f "$sock"
		end
	done
}

run_container_km() {
	ck_bad_fds
	ck_ready_start
	ck_hostile_passedfds
}
