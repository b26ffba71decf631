# shellcheck shell=bash
# The guest's own seccomp filter (docs/guest-seccomp.md), enforced by km on the program's syscall
# path: errno with argument conditions, a default action, kill, trap (SIGSYS and its siginfo as
# the handler sees it), log, a second thread, rules kept across snapshot/resume, refused rule
# files, and a program that tries to get past the filter (seccomp_escape). Sourced by run.sh
# after its helpers; defines run_guest_seccomp.

# gs_rules FILE LINE...: a rules file with the header and the given lines.
gs_rules() {
	local f=$1
	shift
	{
		echo "km-guest-seccomp 1"
		printf '%s\n' "$@"
	} >"$f"
}

# gs_case NAME RULES WANT-RC WANT-STDERR-REGEX GUEST ARGS...: runs the guest under km with the
# rules for both libcs: exit status WANT-RC, no FAIL line, a PASSED line when WANT-RC is 0,
# stderr empty or matching WANT-STDERR-REGEX.
gs_case() {
	local name=$1 rules=$2 want=$3 errre=$4 guest=$5 flavour d
	shift 5
	for flavour in gcc musl; do
		local test=guest_seccomp/$flavour/$name
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/guest_seccomp/$flavour/$name
		mkdir -p "$d/cwd"
		run "$d" "$d/cwd" /dev/null -- "$KM" --guest-seccomp="$rules" "$GUESTS/$flavour/$guest" "$@"
		[ "$RC" = "$want" ] || bad "exit status $(status_text "$RC"), expected $want"
		grep -q '^FAIL' "$d/out" && bad "$(grep '^FAIL' "$d/out" | head -5)"
		[ "$want" = 0 ] && ! grep -q '^PASSED' "$d/out" && bad "no PASSED line"
		if [ -n "$errre" ]; then
			[[ $(cat "$d/err") =~ $errre ]] || bad "stderr '$(head -c 300 "$d/err")' does not match '$errre'"
		else
			[ -s "$d/err" ] && bad "stderr: $(head -c 300 "$d/err")"
		fi
		[ -n "$T_DIAG" ] && show_file stdout "$d/out"
		end
	done
}

# The calls a static glibc or musl program and seccomp_rules' "default" mode make.
GS_NEEDED="0 1 3 5 8 9 10 11 12 13 14 15 16 20 24 25 28 39 60 89 102 158 186 202 204 218 231 234 257 262 267 273 302 318 334"

gs_persist() {
	local flavour test d
	for flavour in gcc musl; do
		test=guest_seccomp/$flavour/persist
		want "$test" && km_only "$test" || continue
		begin "$test"
		d=$WORK/guest_seccomp/$flavour/persist
		rm -rf "$d" && mkdir -p "$d/cwd"
		run "$d/orig" "$d/cwd" /dev/null -- "$KM" --guest-seccomp="$GS_DIR/errno.rules" --snapshot="$d/s.snap" \
			"$GUESTS/$flavour/seccomp_rules" persist
		[ "$RC" = 0 ] && grep -qx ORIGINAL "$d/orig/out" && ! grep -q '^FAIL' "$d/orig/out" ||
			bad "original: exit $(status_text "$RC"): $(grep -v '^ok' "$d/orig/out" | head -c 300) $(head -c 300 "$d/orig/err")"
		# resumed without --guest-seccomp: the snapshot's filter holds
		run "$d/res" "$d/cwd" /dev/null -- "$KM" "$d/s.snap"
		[ "$RC" = 0 ] && grep -qx "RESUMED COPY" "$d/res/out" && ! grep -q '^FAIL' "$d/res/out" ||
			bad "resumed: exit $(status_text "$RC"): $(grep -v '^ok' "$d/res/out" | head -c 400) $(head -c 300 "$d/res/err")"
		"$KM" --inspect "$d/s.snap" >"$d/inspect" 2>&1 || bad "km --inspect: $(head -c 300 "$d/inspect")"
		# and with the same filter given again (km-shim restores so): not stacked twice, still held
		run "$d/res2" "$d/cwd" /dev/null -- "$KM" --guest-seccomp="$GS_DIR/errno.rules" "$d/s.snap"
		[ "$RC" = 0 ] && grep -qx "RESUMED COPY" "$d/res2/out" && ! grep -q '^FAIL' "$d/res2/out" ||
			bad "resumed with the filter again: exit $(status_text "$RC"): $(grep -v '^ok' "$d/res2/out" | head -c 400)"
		end
	done
}

gs_refused() {
	local test=guest_seccomp/refused-rules d=$GS_DIR/bad hello=$GUESTS/gcc/hello
	want "$test" && km_only "$test" || return 0
	begin "$test"
	mkdir -p "$d"
	local -a bads=(
		"no-header|default allow 0"
		"bad-header|km-guest-seccomp 2"
		"no-default|km-guest-seccomp 1"
		"bad-action|km-guest-seccomp 1\ndefault allow 0\n1 notify 0"
		"nr-range|km-guest-seccomp 1\ndefault allow 0\n512 errno 1"
		"errno-range|km-guest-seccomp 1\ndefault errno 4096"
		"arg-index|km-guest-seccomp 1\ndefault allow 0\n1 errno 1 6 eq 1 0"
		"bad-op|km-guest-seccomp 1\ndefault allow 0\n1 errno 1 0 is 1 0"
		"overflow|km-guest-seccomp 1\ndefault allow 0\n1 errno 1 0 eq 18446744073709551616 0"
		"negative|km-guest-seccomp 1\ndefault allow 0\n1 errno 1 0 eq -1 0"
		"seven-conds|km-guest-seccomp 1\ndefault allow 0\n1 errno 1 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0 0 eq 1 0"
		"two-spaces|km-guest-seccomp 1\ndefault  allow 0"
		"control-byte|km-guest-seccomp 1\ndefault allow 0\n1 errno\t1"
		"no-newline|km-guest-seccomp 1\ndefault allow 0\n1 errno 1NOLF"
	)
	local b name text
	for b in "${bads[@]}"; do
		name=${b%%|*}
		text=${b#*|}
		if [[ $text == *NOLF ]]; then
			printf '%b' "${text%NOLF}" >"$d/$name"
		else
			printf '%b\n' "$text" >"$d/$name"
		fi
		km_rejects_quiet "$name" "$d/$name"
	done
	head -c 2000000 /dev/zero | tr '\0' '#' >"$d/huge"
	km_rejects_quiet huge "$d/huge"
	end
}

# km_rejects_quiet NAME RULES: km refuses the rules with one `km: ...--guest-seccomp...` line.
km_rejects_quiet() {
	"$KM" --guest-seccomp="$2" "$GUESTS/gcc/hello" >"$GS_DIR/bad/$1.out" 2>"$GS_DIR/bad/$1.err" </dev/null
	local rc=$?
	[ "$rc" = 1 ] && [ "$(wc -l <"$GS_DIR/bad/$1.err")" = 1 ] && grep -q '^km: .*--guest-seccomp' "$GS_DIR/bad/$1.err" &&
		[ ! -s "$GS_DIR/bad/$1.out" ] ||
		bad "$1: exit $rc, stdout '$(head -c 100 "$GS_DIR/bad/$1.out")', stderr '$(head -c 300 "$GS_DIR/bad/$1.err")'"
}

run_guest_seccomp() {
	GS_DIR=$WORK/guest_seccomp
	mkdir -p "$GS_DIR"
	gs_rules "$GS_DIR/errno.rules" "default allow 0" "# write to fd 99 only" "1 errno 13 0 eq 99 0"
	local -a needed=()
	local n
	for n in $GS_NEEDED; do needed+=("$n allow 0"); done
	gs_rules "$GS_DIR/default.rules" "default errno 1" "${needed[@]}"
	gs_rules "$GS_DIR/kill.rules" "default allow 0" "39 kill-process 0"
	gs_rules "$GS_DIR/killthread.rules" "default allow 0" "39 kill-thread 0"
	gs_rules "$GS_DIR/trap.rules" "default allow 0" "39 trap 7"
	# log over allow, errno over log: writes to fd 99 refused, every other write logged
	gs_rules "$GS_DIR/log.rules" "default allow 0" "1 allow 0" "1 log 0" "1 errno 13 0 eq 99 0"
	gs_rules "$GS_DIR/escape.rules" "default allow 0" "1 errno 13 0 eq 99 0" "110 errno 1"
	# several rules match getpid: the one of highest precedence wins (kill-process over errno)
	gs_rules "$GS_DIR/precedence.rules" "default allow 0" "39 errno 1" "39 kill-process 0 0 ge 0 0" "39 allow 0"
	gs_case errno-args "$GS_DIR/errno.rules" 0 "" seccomp_rules errno-args
	gs_case threads "$GS_DIR/errno.rules" 0 "" seccomp_rules threads
	gs_case default-errno "$GS_DIR/default.rules" 0 "" seccomp_rules default
	gs_case kill-process "$GS_DIR/kill.rules" 159 "^km: .*seccomp_rules: killed by SIGSYS" seccomp_rules kill
	gs_case kill-thread-last "$GS_DIR/killthread.rules" 159 "^km: .*seccomp_rules: killed by SIGSYS" seccomp_rules kill
	gs_case precedence "$GS_DIR/precedence.rules" 159 "^km: .*seccomp_rules: killed by SIGSYS" seccomp_rules kill
	gs_case trap "$GS_DIR/trap.rules" 159 "^km: .*seccomp_rules: killed by SIGSYS" seccomp_rules trap
	gs_case log "$GS_DIR/log.rules" 0 "^km: seccomp: the program's syscall write \(1\) logged by its filter" seccomp_rules errno-args
	gs_case escape "$GS_DIR/escape.rules" 0 "" seccomp_escape escape
	gs_persist
	gs_refused
}
