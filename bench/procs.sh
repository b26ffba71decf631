# shellcheck shell=bash
# The `procs` rows of run.sh (issue 10: real processes), sourced by run.sh after the thread rows;
# uses its helpers (compare, row, ratio, kmfailed, fail, field, isnum, median, calc, log) and B,
# KM, KM_OK, KM_TIMEOUT, SNAP_DIR, SNAP_TIMEOUT, KM_MGMT. Every km value is measured beside its
# native peer in the same run:
#   - fork+exec+wait of hello (guests/fork_exec), per libc (fork+exit+wait alone: run.sh's own
#     procs rows, after the thread rows);
#   - `python3 -c pass`, start to exit (walltime), Debian's dynamically linked python3;
#   - python3 after `import json, decimal, email.parser`, to its first output: resumed by km from a
#     snapshot taken (km --mgmt, stop mode) while it waited on stdin after the imports, beside a cold
#     start natively and under km.
# A km case whose feature km lacks fails like any km row (FAIL, "km: failed (...)", listed under the
# table): nothing is skipped by name.

PROCS_EXEC_N=${PROCS_EXEC_N:-50} # fork+exec+wait rounds per fork_exec run
PROCS_RUNS=${PROCS_RUNS:-5}      # fork_exec runs, native / km alternating
PY_RUNS=${PY_RUNS:-20}            # python3 -c pass runs (after 3 warm-ups) per side
PYSNAP_RUNS=${PYSNAP_RUNS:-5}     # cold starts and snapshot + resume rounds
PYTHON3=${PYTHON3:-/usr/bin/python3}
# The warm program: prints "ready" once imported, then waits for one byte on stdin (the snapshot is
# taken there), then prints "resumed". A cold start's first output is "ready": the same work done.
PY_WARM='import json, decimal, email.parser, os
print("ready", flush=True)
os.read(0, 1)
print("resumed", flush=True)'

# procs_py_pass MODE(native|km): R1 = median us of `python3 -c pass`; FAIL with R_ERR.
procs_py_pass() {
	local mode=$1 r rc err="$B/$1-python3-pass.err"
	local -a cmd=("$PYTHON3" -c pass)
	R1=n/a R_ERR=""
	if [ "$mode" = km ]; then
		[ $KM_OK = 0 ] && return
		cmd=("$KM" "${cmd[@]}")
	fi
	# one untimed run first, whose stderr names what fails (walltime's runs have none)
	timeout "$KM_TIMEOUT" "${cmd[@]}" </dev/null >/dev/null 2>"$err"
	rc=$?
	if [ $rc -eq 0 ]; then
		r=$("$B/walltime" -n "$PY_RUNS" -w 3 -t "$KM_TIMEOUT" -- "${cmd[@]}" 2>"$err")
		rc=$?
	fi
	R1=$(field median_us <<<"$r")
	if [ $rc -ne 0 ] || ! isnum "$R1"; then
		R1=FAIL R_ERR=$(errline "$err" $rc)
		fail "python3 -c pass failed $([ "$mode" = km ] && echo under km || echo natively): $R_ERR (all in $err)"
	fi
}

# procs_firstout NAME CMD...: R1 = ns from spawn to CMD's first output, which must be WANT_FIRST
# (the run's stdin holds one byte); FAIL with R_ERR.
procs_firstout() {
	local name=$1 r st v err="$B/procs-${1// /-}.err"
	shift
	r=$("$B/snaptime" firstout -t "$SNAP_TIMEOUT" -- "$@" 2>"$err")
	st=$(field status <<<"$(head -n1 <<<"$r")")
	v=$(field first_out_ns <<<"$(head -n1 <<<"$r")")
	R1=$v R_ERR=""
	if [ "$st" != 0 ] || ! isnum "$v" || [ "$(sed -n 's/^out: //p' <<<"$r" | head -n1)" != "$WANT_FIRST" ]; then
		R1=FAIL R_ERR=$(first_of "$(grep -v -m1 '^km-timing:' "$err")" "$(sed -n 's/^out: //p' <<<"$r" | head -n1)" \
			"status ${st:-timed out}")
		fail "$name failed: status ${st:-timed out}, output '$(sed -n 's/^out: //p' <<<"$r" | head -n2 | tr '\n' '|')', stderr: $R_ERR (all in $err)"
	fi
}

# procs_py_snapshot F: km runs the warm program with --mgmt until it prints "ready", then km-mgmt
# asks for a snapshot into F (stop mode). True if F was written; else false with R_ERR.
procs_py_snapshot() {
	local f=$1 sock="$PROCSTMP/py.sock" reply="$PROCSTMP/py.reply" r l1 st
	local es="$B/procs-py-snap.err" ek="$B/procs-py-snap.km.err"
	R_ERR=""
	rm -f "$f" "$sock" "$reply"
	if [ ! -x "$KM_MGMT" ]; then
		R_ERR="no management client $KM_MGMT (make builds it from tests/tools/km-mgmt.c)"
		return 1
	fi
	r=$("$B/snaptime" checkpoint -t "$SNAP_TIMEOUT" -O "$reply" -E "$ek" -- \
		"$KM" --mgmt="$sock" --snapshot="$f" "$PYTHON3" -c "$PY_WARM" \
		--then "$KM_MGMT" --wait-socket 10 --timeout "$SNAP_TIMEOUT" "$sock" snapshot path="$f" mode=stop 2>"$es")
	l1=$(head -n1 <<<"$r")
	st=$(field checkpointer_status <<<"$l1")
	if [ "$st" != 0 ] || [ ! -s "$f" ]; then
		R_ERR="snapshot: $(first_of "$(grep -v -m1 '^km-timing:' "$ek" 2>/dev/null)" "$(grep -m1 '^error' "$reply" 2>/dev/null)" \
			"$(head -n1 "$es")" "km-mgmt status ${st:-?}")"
		fail "python3 snapshot under km failed: $R_ERR (all in $ek, $es)"
		return 1
	fi
}

# procs_ms VALUE-US: milliseconds, FAIL and n/a kept
procs_ms() { if isnum "$1"; then calc %.2f 'a / 1000' "$1"; else echo "$1"; fi; }

if want procs; then
	PROCSTMP=$(mktemp -d "$SNAP_DIR/procsbench.XXXXXX") || { fail "cannot make a temporary directory in $SNAP_DIR"; PROCSTMP=""; }
	for libc in $LIBCS; do
		log "fork+exec+wait of hello ($libc): $PROCS_RUNS runs of $PROCS_EXEC_N each, native / km alternating$SKIPNOTE"
		compare "$libc" fork_exec "$PROCS_EXEC_N" ns_per_exec "$PROCS_RUNS" 0
		row "fork+exec(hello)+wait, ms ($libc) vs native" "$(procs_ms "$(nsus "$KMV")")" "$(procs_ms "$(nsus "$NAT")")" \
			"$(ratio "$KMV" "$NAT")" - "$(kmfailed - "$KM_ERR")"
	done

	log "python3 -c pass: $PY_RUNS runs natively, then under km$SKIPNOTE"
	procs_py_pass native
	n_med=$R1
	procs_py_pass km
	row "python3 -c pass start-to-exit, ms vs native" "$(procs_ms "$R1")" "$(procs_ms "$n_med")" "$(ratio "$R1" "$n_med")" \
		- "$(kmfailed - "$R_ERR")"

	log "python3 after imports, to first output: $PYSNAP_RUNS rounds of native cold, km cold, km snapshot + resume$SKIPNOTE"
	pn="" pk="" pr="" pk_err="" pr_err="" pn_fail=0
	for ((i = 0; i < PYSNAP_RUNS; i++)); do
		WANT_FIRST=ready
		if [ $pn_fail = 0 ]; then
			procs_firstout "python3 cold start natively" "$PYTHON3" -c "$PY_WARM"
			[ "$R1" = FAIL ] && pn_fail=1 || pn+="$R1"$'\n'
		fi
		[ $KM_OK = 0 ] || [ -z "$PROCSTMP" ] && continue
		if [ -z "$pk_err" ]; then
			procs_firstout "python3 cold start under km" "$KM" "$PYTHON3" -c "$PY_WARM"
			[ "$R1" = FAIL ] && pk_err=$R_ERR || pk+="$R1"$'\n'
		fi
		[ -n "$pr_err" ] && continue
		if procs_py_snapshot "$PROCSTMP/py.km"; then
			WANT_FIRST=resumed
			procs_firstout "python3 resumed by km" "$KM" "$PROCSTMP/py.km"
			[ "$R1" = FAIL ] && pr_err="resume: $R_ERR" || pr+="$R1"$'\n'
		else
			pr_err=$R_ERR
		fi
		rm -f "$PROCSTMP/py.km"
	done
	# medians in us; FAIL when a side failed, n/a when km was not run
	py_med() { if [ -n "$2" ]; then echo FAIL; elif [ -z "$1" ]; then echo n/a; else calc %.0f 'a / 1000' "$(median <<<"$1")"; fi; }
	pyn=$(py_med "$pn" "$([ $pn_fail = 1 ] && echo x)")
	pyk=$(py_med "$pk" "$pk_err")
	pyr=$(py_med "$pr" "$pr_err")
	row "python3 after imports to first output, ms: km resumed vs native cold" "$(procs_ms "$pyr")" "$(procs_ms "$pyn")" \
		"$(ratio "$pyr" "$pyn")" "< native cold" "$(kmfailed "$(lt "$pyr" "$pyn")" "$pr_err")"
	row "python3 after imports to first output, ms: km resumed vs km cold" "$(procs_ms "$pyr")" "$(procs_ms "$pyk")" \
		"$(ratio "$pyr" "$pyk")" - "$(kmfailed - "${pr_err:-$pk_err}")"
	row "python3 after imports to first output, ms: km cold vs native cold" "$(procs_ms "$pyk")" "$(procs_ms "$pyn")" \
		"$(ratio "$pyk" "$pyn")" - "$(kmfailed - "$pk_err")"
	[ -n "$PROCSTMP" ] && rm -rf "$PROCSTMP"
	PROCSTMP=""
fi
