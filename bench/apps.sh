# shellcheck shell=bash disable=SC2034 # it sets run.sh's globals (KM_COUNTS, COMPARE_KEY2, ...)
# The `apps` rows of run.sh (issue 12: real programs), sourced by run.sh after procs.sh; uses its
# helpers (compare, once, row, ratio, met, calc, kmfailed, fail, log, counts) and procs.sh's
# procs_py_pass. Each km value, under the default syscall path, is measured beside its native peer in
# the same run, alternating:
#   - sqlite (Debian's libsqlite3.a, glibc only): SQLITE_TXN_N inserts in transactions of 100, and
#     SQLITE_AUTO_N inserts each committed alone, into a file database (WAL, synchronous=NORMAL) in a
#     temporary directory under APPS_DIR (apps/sqlite_insert.c);
#   - zlib (Debian's libz.a, glibc only): ZLIB_MIB MiB of mixed data compressed at level 6 from a
#     file to a file, and decompressed from that file to a file (apps/zlib_file.c);
#   - `python3 -c pass`, Debian's dynamically linked python3, start to exit (walltime).
# Targets: sqlite and zlib <= 1.5x native; python3 is printed without one.

SQLITE_TXN_N=${SQLITE_TXN_N:-20000} # rows inserted in transactions of 100
SQLITE_AUTO_N=${SQLITE_AUTO_N:-2000} # rows inserted one autocommit statement each
ZLIB_MIB=${ZLIB_MIB:-64}            # MiB of input to compress and decompress
APPS_RUNS=${APPS_RUNS:-5}           # runs of each sqlite row and of zlib, native / km alternating
APPS_DIR=${APPS_DIR:-$SNAP_DIR}     # where the databases and zlib's files go

# apps_row LABEL KM NATIVE: a row in ms from values in seconds, target <= 1.5x native
apps_row() {
	local k n
	k=$(if isnum "$2"; then calc %.1f 'a * 1000' "$2"; else echo "$2"; fi)
	n=$(if isnum "$3"; then calc %.1f 'a * 1000' "$3"; else echo "$3"; fi)
	row "$1" "$k" "$n" "$(ratio "$2" "$3")" "<= 1.50x" \
		"$(kmfailed "$(counts "$(met "$(calc %.4f 'a / b' "$2" "$3")" 1.5)")" "$KM_ERR")"
}

if want apps; then
	APPSTMP=$(mktemp -d "$APPS_DIR/appsbench.XXXXXX") || { fail "cannot make a temporary directory in $APPS_DIR"; APPSTMP=""; }
fi
if want apps && [ -n "$APPSTMP" ]; then
	KM_COUNTS=1
	log "sqlite ($SQLITE_TXN_N inserts in transactions of 100, gcc): $APPS_RUNS runs, native / km alternating$SKIPNOTE"
	compare gcc sqlite_insert "txn $APPSTMP/db $SQLITE_TXN_N" seconds "$APPS_RUNS" 0
	apps_row "sqlite $SQLITE_TXN_N inserts, transactions of 100, ms (gcc) vs native" "$KMV" "$NAT"
	log "sqlite ($SQLITE_AUTO_N autocommit inserts, WAL, synchronous=NORMAL, gcc): $APPS_RUNS runs, native / km alternating$SKIPNOTE"
	compare gcc sqlite_insert "autocommit $APPSTMP/db $SQLITE_AUTO_N" seconds "$APPS_RUNS" 0
	apps_row "sqlite $SQLITE_AUTO_N autocommit inserts (WAL, sync NORMAL), ms (gcc) vs native" "$KMV" "$NAT"

	log "zlib ($ZLIB_MIB MiB, level 6, file to file, gcc): $APPS_RUNS runs, native / km alternating$SKIPNOTE"
	if "$B/guests/gcc/zlib_file" gen "$APPSTMP/zdata" "$ZLIB_MIB" 2>"$B/zlib-gen.err"; then
		COMPARE_KEY2=decompress_s
		compare gcc zlib_file "run $APPSTMP/zdata" compress_s "$APPS_RUNS" 0
		COMPARE_KEY2=""
	else
		KMV=FAIL NAT=FAIL KMV2=FAIL NAT2=FAIL KM_ERR="" KM_SRV="" KM_EXIT=""
		fail "zlib_file gen failed natively: $(head -n1 "$B/zlib-gen.err")"
	fi
	rm -f "$APPSTMP/zdata"
	apps_row "zlib compress $ZLIB_MIB MiB, level 6, file to file, ms (gcc) vs native" "$KMV" "$NAT"
	apps_row "zlib decompress $ZLIB_MIB MiB, file to file, ms (gcc) vs native" "$KMV2" "$NAT2"
	KM_COUNTS=0

	log "python3 -c pass: $PY_RUNS runs natively, then under km$SKIPNOTE"
	procs_py_pass native
	n_med=$R1
	procs_py_pass km
	row "python3 -c pass start-to-exit, ms vs native (dynamic $PYTHON3)" "$(procs_ms "$R1")" "$(procs_ms "$n_med")" \
		"$(ratio "$R1" "$n_med")" "printed, no target" "$(kmfailed - "$R_ERR")"
fi
