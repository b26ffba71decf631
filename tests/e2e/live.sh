# shellcheck shell=bash
# Live snapshots (issue 11): mode=continue forks a writer at the pause and the program runs on
# while its memory is written. Sourced by run.sh after snapshot.sh and mgmt.sh, whose helpers it
# uses (snap_start, snap_wait_line, snap_show, SNAP_MGMT, mgmt_sock); defines run_live.
#   live/exact/F      threads writing memory as fast as they can during a live snapshot: the file's
#                     memory is page for page the copy the test build of km (KM_TEST, make
#                     test-km) wrote at the pause, and the resumed program finds every word as
#                     its pass left it (tests/guests/live_churn.c checks each before writing it)
#   live/exact/shared the same with the memory MAP_SHARED | MAP_ANONYMOUS (a fork does not freeze it:
#                     km copies it at the pause)
#   live/big          a 256 MiB program, snapshot live, resumed, its memory checked the same way
#   live/many         six live snapshots one after the other of one program: the first and last
#                     resume, the four between pass km --inspect --verify
#   live/ends         the program ends while its writer still writes: km waits, answers, the file resumes
#   live/writer-killed  the writer killed while it writes: the request fails with one clear
#                     reason, no file (nor temporary one) is left, the program goes on; with the
#                     test build, the temporary file is a named one (KM_TEST_NO_TMPFILE, as on a
#                     filesystem without O_TMPFILE), which km must remove for the killed writer
# hostile_livewait.c (hostile.sh) checks the program's waits never see the writer.

LIVE_CHURN_PASSES=${LIVE_CHURN_PASSES:-60}
LIVE_ENV=()
KM_TEST=${KM_TEST:-$ROOT/build/test-km/bin/km}
case $KM_TEST in /*) ;; *) KM_TEST=$PWD/$KM_TEST ;; esac
LIVE_TOOLS=${TOOLS:-$ROOT/build/tests/tools}
case $LIVE_TOOLS in /*) ;; *) LIVE_TOOLS=$PWD/$LIVE_TOOLS ;; esac

# live_snap DIR SOCK FILE: asks for a live snapshot; the reply in DIR/mgmt.out, status in LIVE_RC.
live_snap() {
	"$SNAP_MGMT" --wait-socket 20 --timeout 60 "$2" snapshot "path=$3" mode=continue >"$1/mgmt.out" 2>&1
	LIVE_RC=$?
}

# live_start DIR KM FLAVOUR ARGS...: km --mgmt on live_churn ARGS in the background (LIVE_ENV:
# VAR=VALUEs for km's environment), waits for "ready".
# Sets LIVE_PID and LIVE_SOCK; false (with bad) if the program never got ready.
live_start() {
	local d=$1 km=$2 flavour=$3
	shift 3
	mkdir -p "$d/cwd"
	LIVE_SOCK=$(mgmt_sock "$d")
	rm -f "$LIVE_SOCK"
	snap_start "$d/run" "$d/cwd" /dev/null "${LIVE_ENV[@]}" -- "$km" --mgmt="$LIVE_SOCK" "$GUESTS/$flavour/live_churn" "$@"
	LIVE_PID=$BG_PID
	snap_wait_line "$d/run/out" ready 30 && return 0
	bad "live_churn never printed 'ready'"
	return 1
}

# live_finish DIR: waits for the original and checks it finished its passes.
live_finish() {
	wait "$LIVE_PID"
	local rc=$?
	[ "$rc" = 0 ] && grep -q '^done ' "$1/run/out" ||
		bad "the original run: exit status $(status_text "$rc"), stdout '$(tr '\n' '|' <"$1/run/out")'"
	rm -f "$LIVE_SOCK"
}

# live_resume DIR FILE NAME: km FILE must finish the passes with every word as expected.
live_resume() {
	run "$1/$3" "$1/cwd" /dev/null -- "$KM" "$2"
	[ "$RC" = 0 ] && grep -q '^done ' "$1/$3/out" ||
		bad "$2 resumed: exit status $(status_text "$RC"), stdout '$(tr '\n' '|' <"$1/$3/out")' $(head -c 300 "$1/$3/err")"
}

live_exact() {
	local flavour test d kind
	for flavour in gcc musl shared; do
		test="live/exact/$flavour"
		kind=private
		[ $flavour = shared ] && flavour=gcc kind=shared
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/live/exact/$flavour-$kind
		if [ ! -x "$KM_TEST" ]; then
			bad "no test build of km at $KM_TEST (make test-km)"
			end
			continue
		fi
		LIVE_ENV=("KM_TEST_LIVE_COPY=$d/copy.snap")
		if live_start "$d" "$KM_TEST" "$flavour" 4 16 "$LIVE_CHURN_PASSES" "$kind"; then
			live_snap "$d" "$LIVE_SOCK" "$d/live.snap"
			[ "$LIVE_RC" = 0 ] || bad "the live snapshot failed: $(cat "$d/mgmt.out")"
		fi
		LIVE_ENV=()
		live_finish "$d"
		if [ -f "$d/live.snap" ] && [ -f "$d/copy.snap" ]; then
			"$LIVE_TOOLS/snap-memcmp" "$d/live.snap" "$d/copy.snap" >"$d/cmp.out" 2>&1 ||
				bad "the live snapshot's memory is not the memory at the pause: $(cat "$d/cmp.out")"
			live_resume "$d" "$d/live.snap" resumed
		else
			bad "missing file(s): $(ls "$d")"
		fi
		snap_verbose && snap_show "$d/run" "$d/resumed"
		end
	done
}

# live_one TEST NAME MIB PASSES [quiet]: live_churn (gcc, one thread) over MIB MiB for PASSES
# passes, one live snapshot DIR/NAME.snap while it runs, the original finished, the file resumed;
# quiet: km's stderr must stay empty too.
live_one() {
	local test=$1 name=$2 d=$WORK/$1
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if live_start "$d" "$KM" gcc 1 "$3" "$4"; then
		live_snap "$d" "$LIVE_SOCK" "$d/$name.snap"
		[ "$LIVE_RC" = 0 ] || bad "the live snapshot failed: $(cat "$d/mgmt.out")"
	fi
	live_finish "$d"
	[ "${5:-}" = quiet ] && [ -s "$d/run/err" ] && bad "km wrote to stderr: $(head -c 300 "$d/run/err")"
	[ -f "$d/$name.snap" ] && live_resume "$d" "$d/$name.snap" resumed
	snap_verbose && snap_show "$d/run" "$d/resumed"
	end
}

live_big() {
	live_one live/big big 256 8
}

live_many() {
	local test=live/many d=$WORK/live/many i
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if live_start "$d" "$KM" musl 2 8 400; then
		for i in 1 2 3 4 5 6; do
			live_snap "$d" "$LIVE_SOCK" "$d/s$i.snap"
			[ "$LIVE_RC" = 0 ] || bad "live snapshot $i failed: $(cat "$d/mgmt.out")"
		done
	fi
	live_finish "$d"
	for i in 1 6; do
		[ -f "$d/s$i.snap" ] && live_resume "$d" "$d/s$i.snap" "resumed$i"
	done
	for i in 2 3 4 5; do
		"$KM" --inspect --verify "$d/s$i.snap" >"$d/inspect$i" 2>&1 || bad "s$i.snap: km --inspect --verify: $(tail -n1 "$d/inspect$i")"
	done
	snap_verbose && snap_show "$d/run" "$d/resumed1" "$d/resumed6"
	end
}

live_ends() {
	# Two passes over 256 MiB: the second ends long before 256 MiB are written.
	live_one live/ends ends 256 2 quiet
}

# The writer is km's only child here (live_churn has none): found, then killed, while it writes.
live_writer_killed() {
	local test=live/writer-killed d=$WORK/live/killed kmpid w attempt caught=0 km=$KM
	want "$test" && km_only "$test" || return 0
	begin "$test"
	if [ -x "$KM_TEST" ]; then
		km=$KM_TEST
		LIVE_ENV=(KM_TEST_NO_TMPFILE=1)
	fi
	live_start "$d" "$km" gcc 1 256 1000000
	local started=$?
	LIVE_ENV=()
	if [ $started = 0 ]; then
		kmpid=$(mgmt_km_pid "$LIVE_PID")
		for attempt in 1 2 3 4 5; do
			live_snap_bg() { live_snap "$d" "$LIVE_SOCK" "$d/k$attempt.snap"; echo "$LIVE_RC" >"$d/rc"; }
			live_snap_bg &
			local cpid=$! i=0
			w=""
			while [ $i -lt 400 ] && [ -z "$w" ]; do
				w=$(pgrep -P "$kmpid" | head -1)
				[ -z "$w" ] && sleep 0.005
				i=$((i + 1))
			done
			[ -n "$w" ] && kill -KILL "$w" 2>/dev/null
			wait "$cpid"
			if [ "$(cat "$d/rc")" != 0 ]; then
				caught=1
				grep -q "killed by signal 9" "$d/mgmt.out" ||
					bad "the failure does not say the writer was killed: $(cat "$d/mgmt.out")"
				[ -e "$d/k$attempt.snap" ] && bad "a snapshot file was left after the writer was killed"
				break
			fi
		done
		[ $caught = 1 ] || bad "the writer was never caught while writing (5 attempts)"
		# The files are written in $d (not the program's cwd): a temporary or link name is hidden there.
		[ -n "$(ls -A "$d" | grep '^\.')" ] && bad "files left in the snapshots' directory: $(ls -A "$d" | grep '^\.')"
		[ -n "$(ls -A "$d/cwd")" ] && bad "files left in the program's directory: $(ls -A "$d/cwd")"
		# The program goes on: another live snapshot works and resumes.
		live_snap "$d" "$LIVE_SOCK" "$d/after.snap"
		[ "$LIVE_RC" = 0 ] || bad "a live snapshot after the killed one failed: $(cat "$d/mgmt.out")"
		kill -TERM "$kmpid" 2>/dev/null
		wait "$LIVE_PID"
		rm -f "$LIVE_SOCK"
	fi
	snap_verbose && snap_show "$d/run"
	end
}

run_live() {
	if [ ! -x "$SNAP_MGMT" ] || [ ! -x "$LIVE_TOOLS/snap-memcmp" ]; then
		want live/ && km_only live/tools || return 0
		begin live/tools
		bad "$SNAP_MGMT or $LIVE_TOOLS/snap-memcmp is missing (make tools)"
		end
		return
	fi
	live_exact
	live_big
	live_many
	live_ends
	live_writer_killed
}
