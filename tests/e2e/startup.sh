# shellcheck shell=bash
# Start-up (issue 12): what glibc's start-up learns from CPUID must be the same under km as
# natively. The static side is tests/guests/cacheinfo.c (run by run_guests); this file checks the
# dynamic loader: `ld.so --list-diagnostics` prints the cache geometry and the memcpy/memset
# tuning glibc derived from CPUID leaves 2 and 4 (and 0xb for the threads sharing a cache), and
# those lines must match byte for byte. km's CPUID table (km/vm/km_machine.c) may change how the
# guest gets there, never what it ends with (docs/performance.md, "issue 12, start-up").
# Sourced by run.sh after its helpers (want, begin, bad, note, end, run, km_cmd, show_diff);
# defines run_startup.

STARTUP_LDSO=/lib64/ld-linux-x86-64.so.2

# The lines of --list-diagnostics that are cache geometry or tuning derived from it.
startup_cache_lines() {
	grep -E '^x86\.cpu_features\.(data_cache_size|shared_cache_size|non_temporal_threshold|rep_(movsb|stosb)(_stop)?_threshold|level[1-4]_[a-z]+_(size|assoc|linesize))=' "$1"
}

run_startup() {
	local test=startup/ldso-cache-tuning d=$WORK/startup/ldso
	want "$test" || return 0
	begin "$test"
	if [ ! -x "$STARTUP_LDSO" ]; then
		bad "$STARTUP_LDSO is missing (libc6 installs it)"
		end
		return
	fi
	run "$d/native" / /dev/null -- "$STARTUP_LDSO" --list-diagnostics
	local nrc=$RC
	km_cmd "$STARTUP_LDSO" --list-diagnostics
	run "$d/km" / /dev/null -- "${KMCMD[@]}"
	local krc=$RC
	[ "$nrc" = 0 ] || bad "native ld.so --list-diagnostics: exit status $nrc"
	[ "$krc" = 0 ] || bad "ld.so --list-diagnostics under km: exit status $krc ($(head -c 300 "$d/km/err"))"
	startup_cache_lines "$d/native/out" >"$d/native/cache"
	startup_cache_lines "$d/km/out" >"$d/km/cache"
	local n
	n=$(wc -l <"$d/native/cache")
	[ "$n" -ge 10 ] || bad "native --list-diagnostics has $n cache lines, expected at least 10 (another glibc?)"
	if ! cmp -s "$d/native/cache" "$d/km/cache"; then
		bad "the cache geometry or memcpy tuning glibc derives differs under km"
		show_diff "$d/native/cache" "$d/km/cache"
	fi
	end
}
