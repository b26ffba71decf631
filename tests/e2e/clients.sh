# shellcheck shell=bash
# The real OCI clients driving km-shim (issue 8, ../shared/CLIENTS.md): containerd 1.6 (ctr and its
# runc v2 shim, `--runc-binary`), the Kubernetes configuration of docs/kubernetes.md, podman 4.3
# (conmon, `--runtime`), a checkpoint moved between two bundle copies standing in for two hosts,
# and the example bundles (hello, echo) under the runtime itself. Sourced by run.sh after its helpers (want, begin, bad, note, end, show_file, km_only);
# defines run_clients.
#
# The containerd tests share one private daemon, the podman tests one private store (podman has no
# daemon), started for them with root, state and runroot directories under one mktemp directory;
# at the end, also on failure or interruption (cl_cleanup runs from the EXIT trap), every container
# is killed and deleted, the daemon stopped by pid, conmons killed by their pid files, cgroups
# removed, nothing left mounted, the directory removed.
#
# Knobs:
#   KM_SHIM=path     the runtime under test (default build/bin/km-shim).
#   RUNTIME=runc     harness self-check: the same tests against runc (the runtime they were
#                    written against), to tell a broken harness from a broken km-shim.
#   BUNDLES=dir      the example bundles (default build/bundles; `make bundles`).
#   PODMAN_RUN_OPTS  extra options for every podman run (e.g. "--security-opt seccomp=unconfined"
#                    to leave out podman's default seccomp profile while debugging).
# A missing client binary fails the test and names scripts/deps.sh; nothing is skipped silently.

CL_BUNDLES=${BUNDLES:-$ROOT/build/bundles}
case $CL_BUNDLES in /*) ;; *) CL_BUNDLES=$PWD/$CL_BUNDLES ;; esac
CL_WAIT=${CL_WAIT:-20} # seconds to wait for a container's output before giving up (never asserted)

# --- helpers ---------------------------------------------------------------------------------

# cl_runtime: sets CL_RT (the runtime binary) and CL_RT_NAME, or returns 1 with CL_RT_WHY.
cl_runtime() {
	CL_RT_WHY=""
	if [ "${RUNTIME:-}" = runc ]; then
		CL_RT=$(command -v runc) || { CL_RT_WHY="runc is not installed (scripts/deps.sh installs it)"; return 1; }
		CL_RT_NAME=runc
		# runc checkpoints with the first criu on PATH, and Debian 12's criu does not run on this
		# kernel (PLATFORM.md): the daemons get CRIU 4.1.1 from ../shared/tools/criu/build.sh.
		CL_PATH=$PATH
		local criu=${CRIU:-/var/cache/km-peers/criu-4.1.1/criu/criu}
		[ -x "$criu" ] && CL_PATH=$(dirname "$criu"):$PATH
		return 0
	fi
	CL_RT=${KM_SHIM:-$ROOT/build/bin/km-shim}
	case $CL_RT in /*) ;; *) CL_RT=$PWD/$CL_RT ;; esac
	CL_RT_NAME=km-shim
	CL_PATH=$PATH
	[ -x "$CL_RT" ] || { CL_RT_WHY="km-shim '$CL_RT' not found or not executable (make shim, or KM_SHIM=path)"; return 1; }
}

# cl_need CMD...: true if every client binary is there; otherwise one failure naming deps.sh.
cl_need() {
	local c missing=()
	for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	bad "missing client programs: ${missing[*]} (scripts/deps.sh installs them: make deps)"
	return 1
}

# cl_cmd LOG TIMEOUT CMD...: runs CMD with stdout+stderr to LOG (appended, after the command
# line); RC is its status. stdin is /dev/null.
cl_cmd() {
	local log=$1 t=$2
	shift 2
	printf '$ %s\n' "$*" | sed 's/^\$ env PATH=[^ ]* /$ /' >>"$log"
	timeout -k 5 "$t" "$@" </dev/null >>"$log.out" 2>&1
	RC=$?
	cat "$log.out" >>"$log"
	CL_OUT=$(cat "$log.out")
	rm -f "$log.out"
	[ "$RC" -eq 0 ] || echo "(exit status $RC)" >>"$log"
	return "$RC"
}

# cl_expect LOG TIMEOUT CMD...: cl_cmd, and a failure (with the command and its output) unless
# it exits 0.
cl_expect() {
	local log=$1
	cl_cmd "$@" && return 0
	shift 2
	# The private daemons' global options (in the client log) would hide the command here.
	local c="$*" pm="${CL_PM[*]}" ct="${CL_CTR[*]}"
	c=${c/#"$pm"/podman} c=${c/#"$ct"/ctr}
	bad "'$(sed 's/^env PATH=[^ ]* //' <<<"$c")' failed with status $(status_text "$RC"): $(tail -n 3 <<<"$CL_OUT" | tr '\n' ' ' | cut -c1-600)"
	return 1
}

# cl_counts FILE: the counts "count N" in FILE, one number per line.
cl_counts() { sed -n 's/^count \([0-9][0-9]*\)$/\1/p' "$1" 2>/dev/null; }
cl_last_count() { cl_counts "$1" | tail -n 1; }

# cl_wait_count FILE N: waits (up to CL_WAIT s) until FILE shows a count >= N; false if not.
cl_wait_count() {
	local i last
	for ((i = 0; i < CL_WAIT * 10; i++)); do
		last=$(cl_last_count "$1")
		[ -n "$last" ] && [ "$last" -ge "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# cl_wait_more FILE N: waits until FILE shows more than N count lines.
cl_wait_more() {
	local i
	for ((i = 0; i < CL_WAIT * 10; i++)); do
		[ "$(cl_counts "$1" | wc -l)" -gt "$2" ] && return 0
		sleep 0.1
	done
	return 1
}

# cl_consecutive FILE: true if FILE's counts are 1, 2, 3, ... with no gap and no repeat.
cl_consecutive() {
	cl_counts "$1" | awk '$1 != NR { exit 1 } END { if (NR == 0) exit 1 }'
}

# cl_blob DIR FILE MEDIATYPE: stores FILE in DIR/layout/blobs/sha256 by its digest; prints its
# OCI descriptor.
cl_blob() {
	local dig
	dig=$(sha256sum "$2" | cut -d' ' -f1)
	cp "$2" "$1/layout/blobs/sha256/$dig"
	printf '{"mediaType":"%s","digest":"sha256:%s","size":%s}' "$3" "$dig" "$(stat -c %s "$2")"
}

# cl_image_tar OUT: an OCI image layout tarball (oci-layout, index.json, blobs/sha256/...) of the
# three example programs in one layer, as a registry would serve it; image config Cmd /bin/hello.
cl_image_tar() {
	local out=$1 d=$CL_W/image b
	rm -rf "$d" && mkdir -p "$d/rootfs" "$d/layout/blobs/sha256"
	for b in hello counter echo; do
		[ -x "$CL_BUNDLES/$b/rootfs/bin/$b" ] || { bad "bundle $CL_BUNDLES/$b is not built (make bundles)"; return 1; }
		cp -a "$CL_BUNDLES/$b/rootfs/." "$d/rootfs/"
	done
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d/rootfs" -cf "$d/layer.tar" . || return 1
	local layer config manifest
	layer=$(cl_blob "$d" "$d/layer.tar" application/vnd.oci.image.layer.v1.tar)
	printf '{"architecture":"amd64","os":"linux","config":{"Cmd":["/bin/hello"],"Env":["PATH=/bin"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$(sha256sum "$d/layer.tar" | cut -d' ' -f1)" >"$d/config.json"
	config=$(cl_blob "$d" "$d/config.json" application/vnd.oci.image.config.v1+json)
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
		"$config" "$layer" >"$d/manifest.json"
	manifest=$(cl_blob "$d" "$d/manifest.json" application/vnd.oci.image.manifest.v1+json)
	printf '{"imageLayoutVersion":"1.0.0"}' >"$d/layout/oci-layout"
	printf '{"schemaVersion":2,"manifests":[%s]}' \
		"${manifest%\}},\"annotations\":{\"io.containerd.image.name\":\"$CL_IMAGE\",\"org.opencontainers.image.ref.name\":\"1\"}}" \
		>"$d/layout/index.json"
	tar -C "$d/layout" -cf "$out" . && cp "$d/layer.tar" "$CL_W/rootfs.tar"
}

# cl_cgroups_rm NAME: removes the cgroup directories called NAME (and below) in every hierarchy.
cl_cgroups_rm() {
	local d
	for d in /sys/fs/cgroup/*/"$1" /sys/fs/cgroup/"$1"; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	return 0
}

# cl_umount_under DIR: unmounts whatever is still mounted below DIR (deepest first).
cl_umount_under() {
	local m
	awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | while read -r m; do
		umount -l "$m" 2>/dev/null
	done
}

# --- the private containerd ------------------------------------------------------------------

CL_CTRD_PID=""
# ctrd ARGS...: ctr against the private daemon, in the test namespace (CL_CTR: the same as a
# command line, for cl_cmd).
ctrd() { "${CL_CTR[@]}" "$@"; }

# cl_ctrd_start: starts containerd with private root/state/socket and the runtime handler `km` of
# docs/kubernetes.md (its TOML block, BinaryName = the runtime under test, Root = a private
# directory), and waits until it answers.
cl_ctrd_start() {
	local d=$CL_W/ctrd i
	mkdir -p "$d/root" "$d/state" "$d/cni" "$d/runtime-root"
	if ! awk '/^```toml$/ { on = 1; next } on && /^```$/ { exit } on' "$ROOT/docs/kubernetes.md" |
		sed -e "s|^\( *BinaryName = \).*|\1\"$CL_RT\"|" -e "s|^\( *Root = \).*|\1\"$d/runtime-root\"|" \
			>"$d/kubernetes.toml" || ! grep -q BinaryName "$d/kubernetes.toml"; then
		bad "no containerd TOML block with BinaryName in docs/kubernetes.md"
		return 1
	fi
	{
		echo 'version = 2'
		echo "root = \"$d/root\""
		echo "state = \"$d/state\""
		echo '[grpc]'
		echo "  address = \"$d/containerd.sock\""
		echo '[ttrpc]'
		echo "  address = \"$d/containerd.sock.ttrpc\""
		# The CRI plugin's own needs, kept private (CNI configuration, streaming port).
		echo '[plugins."io.containerd.grpc.v1.cri"]'
		echo '  stream_server_port = "0"'
		# More keys of the CRI plugin's own table from a caller (tests/e2e/cri.sh: sandbox_image).
		[ -n "${CL_CRI_TOML:-}" ] && printf '%s\n' "$CL_CRI_TOML"
		echo '  [plugins."io.containerd.grpc.v1.cri".cni]'
		echo "    conf_dir = \"$d/cni\""
		echo "    bin_dir = \"$d/cni\""
		# As in containerd's default configuration: the default handler stays runc.
		echo '  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
		echo '    runtime_type = "io.containerd.runc.v2"'
		echo '# --- from docs/kubernetes.md ---'
		cat "$d/kubernetes.toml"
	} >"$d/config.toml"
	PATH=$CL_PATH containerd --config "$d/config.toml" </dev/null >"$d/containerd.log" 2>&1 &
	CL_CTRD_PID=$!
	for ((i = 0; i < CL_WAIT * 10; i++)); do
		ctrd version >/dev/null 2>&1 && break
		kill -0 "$CL_CTRD_PID" 2>/dev/null || break
		sleep 0.1
	done
	if ! ctrd version >/dev/null 2>&1; then
		bad "private containerd did not come up: $(grep -i -m2 'level=fatal\|level=error' "$d/containerd.log" | tr '\n' ' ')"
		return 1
	fi
	# The shim gets what the CRI plugin would pass for handler km: BinaryName and Root as
	# containerd itself parsed them.
	containerd --config "$d/config.toml" config dump >"$d/config.dump" 2>&1
	CL_K8S_BIN=$(awk '/runtimes\.km\.options\]/ { on = 1; next } /^ *\[/ { on = 0 } on && $1 == "BinaryName" { gsub(/"/, "", $3); print $3 }' "$d/config.dump")
	CL_K8S_ROOT=$(awk '/runtimes\.km\.options\]/ { on = 1; next } /^ *\[/ { on = 0 } on && $1 == "Root" { gsub(/"/, "", $3); print $3 }' "$d/config.dump")
	return 0
}

# cl_ctrd_stop: every container of the test namespace killed and deleted (so the shims and their
# mounts in /run/containerd go), the daemon stopped by pid, its cgroups removed.
cl_ctrd_stop() {
	local c
	[ -n "$CL_CTRD_PID" ] || return 0
	if kill -0 "$CL_CTRD_PID" 2>/dev/null; then
		for c in $(ctrd task ls -q 2>/dev/null); do
			ctrd task kill -s KILL "$c" >/dev/null 2>&1
			timeout 10 "${CL_CTR[@]}" task delete -f "$c" >/dev/null 2>&1
		done
		for c in $(ctrd containers ls -q 2>/dev/null); do ctrd containers rm "$c" >/dev/null 2>&1; done
		kill "$CL_CTRD_PID" 2>/dev/null
		for ((c = 0; c < 50; c++)); do kill -0 "$CL_CTRD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$CL_CTRD_PID" 2>/dev/null
	fi
	wait "$CL_CTRD_PID" 2>/dev/null
	CL_CTRD_PID=""
	cl_cgroups_rm "$CL_NS"
}

# --- podman with a private store -------------------------------------------------------------

# pm ARGS...: podman with private root, runroot, tmpdir and the runtime under test (CL_PM: the
# same as a command line, for cl_cmd).
pm() { "${CL_PM[@]}" "$@"; }
# Containers run without a network (podman's CNI/netavark setup is not what is tested) and with
# rlimits this root can set: podman's default nofile/nproc of 1048576 exceed the hard limits here
# and root lacks CAP_SYS_RESOURCE (CLIENTS.md).
cl_pm_run_opts() {
	CL_PM_OPTS=(--network none --cgroup-parent "/$CL_NS" --ulimit "nofile=$(ulimit -Hn):$(ulimit -Hn)"
		--ulimit nproc=32768:32768)
	# shellcheck disable=SC2206 # words on purpose
	[ -n "${PODMAN_RUN_OPTS:-}" ] && CL_PM_OPTS+=($PODMAN_RUN_OPTS)
}

# cl_pm_stop_all: every container removed (killed first), then, should podman have failed at that,
# the conmons and containers its pid files name are killed by pid.
cl_pm_stop_all() {
	local f p
	[ -d "$CL_W/podman/root" ] || return 0
	timeout 30 "${CL_PM[@]}" rm -a -f -t 0 >/dev/null 2>&1
	for f in "$CL_W"/podman/runroot/vfs-containers/*/userdata/{conmon.pid,pidfile}; do
		p=$(cat "$f" 2>/dev/null)
		[[ $p =~ ^[0-9]+$ ]] && kill -KILL "$p" 2>/dev/null
	done
	timeout 30 "${CL_PM[@]}" image rm -a -f >/dev/null 2>&1
	cl_umount_under "$CL_W/podman"
	sleep 0.2
	cl_cgroups_rm "$CL_NS"
}

# --- cleanup ---------------------------------------------------------------------------------

cl_cleanup() {
	[ -n "${CL_W:-}" ] || return 0
	cl_ctrd_stop
	cl_pm_stop_all
	cl_direct_stop
	cl_umount_under "$CL_W"
	cl_cgroups_rm "$CL_NS"
	rm -rf "$CL_W"
	CL_W=""
}

# --- containerd ------------------------------------------------------------------------------

# cl_ctr_run_d ID ARGS...: a detached ctr run of the test image with the runtime under test,
# stdout and stderr into $CL_W/ID.log.
cl_ctr_run_d() {
	local id=$1
	shift
	cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" run -d --snapshotter native --runtime io.containerd.runc.v2 --runc-binary "$CL_K8S_BIN" \
		--runc-root "$CL_K8S_ROOT" --log-uri "file://$CL_W/$id.log" "$CL_IMAGE" "$id" "$@"
}

# cl_ctrd_ready: the private containerd is up and holds the test image (once per run); else a
# failure of the current test.
CL_CTRD_STATE=""
cl_ctrd_ready() {
	if [ -z "$CL_CTRD_STATE" ]; then
		CL_CTRD_STATE=failed
		CL_LOG=$CL_W/ctr-setup.log
		cl_need containerd ctr containerd-shim-runc-v2 || { CL_CTRD_WHY="client programs missing"; return 1; }
		cl_image_tar "$CL_W/image.tar" || { CL_CTRD_WHY="could not build the test image"; return 1; }
		cl_ctrd_start || { CL_CTRD_WHY="the private containerd did not start"; return 1; }
		cl_expect "$CL_LOG" 60 "${CL_CTR[@]}" images import "$CL_W/image.tar" ||
			{ CL_CTRD_WHY="ctr images import failed"; return 1; }
		CL_CTRD_STATE=ok
		return 0
	fi
	[ "$CL_CTRD_STATE" = ok ] && return 0
	bad "containerd setup failed earlier: $CL_CTRD_WHY"
	return 1
}

# cl_first_count_in FILE LOW HIGH WHAT: the first count in FILE is within LOW..HIGH.
cl_first_count_in() {
	local c
	c=$(cl_counts "$1" | head -n 1)
	if [ -z "$c" ]; then
		bad "$4: no count printed after the restore"
	elif [ "$c" -lt "$2" ] || [ "$c" -gt "$3" ]; then
		bad "$4: the count went on at $c, expected $2..$3 (the count at the checkpoint, plus one)"
	fi
}

run_clients_containerd() {
	local t d pid st l1 l2 i

	# docs/kubernetes.md's configuration: containerd loads the CRI plugin with it, and parses the km
	# handler's options as the runtime under test and a private state root.
	t=clients/containerd/kubernetes-config
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/ctr-k8s.log
		if cl_ctrd_ready; then
			[ "$CL_K8S_BIN" = "$CL_RT" ] || bad "containerd config dump: runtimes.km.options.BinaryName is '$CL_K8S_BIN', expected '$CL_RT'"
			[ "$CL_K8S_ROOT" = "$CL_W/ctrd/runtime-root" ] || bad "containerd config dump: runtimes.km.options.Root is '$CL_K8S_ROOT', expected '$CL_W/ctrd/runtime-root'"
			grep -q 'runtime_type = "io.containerd.runc.v2"' "$CL_W/ctrd/config.dump" || bad "containerd config dump: no runtime_type io.containerd.runc.v2"
			if cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" plugins ls; then
				awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" && $NF == "ok" { f = 1 } END { exit !f }' <<<"$CL_OUT" ||
					bad "the CRI plugin did not load with docs/kubernetes.md's configuration: $(grep ' cri ' <<<"$CL_OUT")"
			fi
		fi
		[ -n "$T_DIAG" ] && { show_file "containerd config" "$CL_W/ctrd/config.toml"; note "    containerd's errors: $(grep -m3 'level=error\|failed to load' "$CL_W/ctrd/containerd.log")"; }
		end
	fi

	t=clients/containerd/run-exit-status
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/ctr-run.log
		if cl_ctrd_ready; then
			# The image's own Cmd (hello, status 0), then hello with status 3: ctr's status is the task's.
			if cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" run --rm --snapshotter native --runtime io.containerd.runc.v2 \
				--runc-binary "$CL_K8S_BIN" --runc-root "$CL_K8S_ROOT" "$CL_IMAGE" t-hello; then
				grep -q '^hello from ' <<<"$CL_OUT" || bad "ctr run: no 'hello from' line in the output: $CL_OUT"
			fi
			cl_cmd "$CL_LOG" 30 "${CL_CTR[@]}" run --rm --snapshotter native --runtime io.containerd.runc.v2 \
				--runc-binary "$CL_K8S_BIN" --runc-root "$CL_K8S_ROOT" "$CL_IMAGE" t-hello3 /bin/hello 3
			[ "$RC" = 3 ] || bad "ctr run of 'hello 3': exit status $(status_text "$RC"), expected 3 (the container's)"
		fi
		[ -n "$T_DIAG" ] && show_file "client log" "$CL_LOG"
		end
	fi

	t=clients/containerd/ps-kill
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/ctr-kill.log
		if cl_ctrd_ready && cl_ctr_run_d t-kill /bin/counter; then
			cl_wait_count "$CL_W/t-kill.log" 1 || bad "no 'count 1' from the counter within ${CL_WAIT}s"
			if cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" task ps t-kill; then
				pid=$(awk 'NR > 1 && $1 ~ /^[0-9]+$/ { print $1; exit }' <<<"$CL_OUT")
				if [ -z "$pid" ]; then
					bad "ctr task ps listed no pid: $CL_OUT"
				elif [ ! -d "/proc/$pid" ]; then
					bad "ctr task ps listed pid $pid, which does not exist"
				fi
			fi
			# SIGTERM (runtime: kill ID 15): the counter's handler prints its last line and exits.
			cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" task kill t-kill
			st=""
			for ((i = 0; i < CL_WAIT * 10; i++)); do
				st=$(ctrd task ls 2>/dev/null | awk '$1 == "t-kill" { print $3 }')
				[ "$st" = STOPPED ] && break
				sleep 0.1
			done
			[ "$st" = STOPPED ] || bad "after ctr task kill (SIGTERM) the task is '$st', not STOPPED"
			grep -q '^counter: SIGTERM at count' "$CL_W/t-kill.log" || bad "the counter did not get SIGTERM (no 'counter: SIGTERM' line)"
			cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" task delete t-kill
			cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" containers rm t-kill
		fi
		[ -n "$T_DIAG" ] && { show_file "client log" "$CL_LOG"; show_file "container output" "$CL_W/t-kill.log"; }
		end
	fi

	t=clients/containerd/checkpoint-restore
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/ctr-ckpt.log
		if cl_ctrd_ready && cl_ctr_run_d t-ck /bin/counter; then
			cl_wait_count "$CL_W/t-ck.log" 2 || bad "no 'count 2' from the counter within ${CL_WAIT}s"
			# ctr task checkpoint: pause, checkpoint --leave-running into a directory, resume.
			if cl_expect "$CL_LOG" 60 "${CL_CTR[@]}" task checkpoint --image-path "$CL_W/ck-dir" t-ck; then
				[ -n "$(ls -A "$CL_W/ck-dir" 2>/dev/null)" ] || bad "ctr task checkpoint --image-path left $CL_W/ck-dir empty"
				l1=$(cl_last_count "$CL_W/t-ck.log")
				cl_wait_more "$CL_W/t-ck.log" "$l1" || bad "the counter stopped after ctr task checkpoint (it must be left running)"
			fi
			# A checkpoint image in the content store (ctr 1.6 restores only those), then the
			# original goes and a new container is restored from it.
			l1=$(cl_last_count "$CL_W/t-ck.log")
			if cl_expect "$CL_LOG" 60 "${CL_CTR[@]}" containers checkpoint --task --image t-ck km-e2e/ckpt:1; then
				l2=$(cl_last_count "$CL_W/t-ck.log")
				cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" task kill -s KILL t-ck
				for ((i = 0; i < CL_WAIT * 10; i++)); do
					[ "$(ctrd task ls 2>/dev/null | awk '$1 == "t-ck" { print $3 }')" = STOPPED ] && break
					sleep 0.1
				done
				cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" task delete t-ck
				cl_expect "$CL_LOG" 30 "${CL_CTR[@]}" containers rm t-ck
				# The restored task's stdio is ctr's own: ctr c restore shows what it prints until
				# ctr returns, ctr task attach the rest.
				if cl_expect "$CL_LOG" 60 "${CL_CTR[@]}" containers restore --live t-ck2 km-e2e/ckpt:1; then
					echo "$CL_OUT" >"$CL_W/t-ck2.out"
					if [ -z "$(cl_counts "$CL_W/t-ck2.out")" ]; then
						# SIGKILL: ctr task attach forwards every other signal to the task.
						timeout -s KILL "$CL_WAIT" "${CL_CTR[@]}" task attach t-ck2 >>"$CL_W/t-ck2.out" 2>&1 &
						cl_wait_more "$CL_W/t-ck2.out" 0
						kill -KILL $! 2>/dev/null
						wait $! 2>/dev/null
					fi
					cl_first_count_in "$CL_W/t-ck2.out" $((l1 + 1)) $((l2 + 1)) "ctr containers restore --live"
					st=$(ctrd task ls 2>/dev/null | awk '$1 == "t-ck2" { print $3 }')
					[ "$st" = RUNNING ] || bad "the restored task is '$st', not RUNNING"
				fi
			fi
		fi
		[ -n "$T_DIAG" ] && { show_file "client log" "$CL_LOG"; show_file "container output" "$CL_W/t-ck.log"; show_file "restored output" "$CL_W/t-ck2.out"; }
		end
	fi
}

# --- podman ----------------------------------------------------------------------------------

CL_PM_IMAGE=localhost/km-e2e/examples:1
CL_PM_STATE=""
# cl_pm_ready: podman's private store holds the test image (imported from the rootfs tar, once).
cl_pm_ready() {
	if [ -z "$CL_PM_STATE" ]; then
		CL_PM_STATE=failed
		CL_LOG=$CL_W/pm-setup.log
		cl_need podman conmon criu || { CL_PM_WHY="client programs missing"; return 1; }
		[ -s "$CL_W/rootfs.tar" ] || cl_image_tar "$CL_W/image.tar" || { CL_PM_WHY="could not build the test image"; return 1; }
		mkdir -p "$CL_W/podman/tmp" "$CL_W/podman/net"
		cl_expect "$CL_LOG" 60 "${CL_PM[@]}" import --change 'CMD ["/bin/hello"]' "$CL_W/rootfs.tar" "$CL_PM_IMAGE" ||
			{ CL_PM_WHY="podman import failed"; return 1; }
		CL_PM_STATE=ok
		return 0
	fi
	[ "$CL_PM_STATE" = ok ] && return 0
	bad "podman setup failed earlier: $CL_PM_WHY"
	return 1
}

# cl_pm_logs NAME: the container's output so far into $CL_W/NAME.log (podman's k8s-file log).
cl_pm_logs() { pm logs "$1" >"$CL_W/$1.log" 2>&1; }

# cl_pm_wait_count NAME N: waits until NAME's log shows a count >= N.
cl_pm_wait_count() {
	local i last
	for ((i = 0; i < CL_WAIT * 5; i++)); do
		cl_pm_logs "$1"
		last=$(cl_last_count "$CL_W/$1.log")
		[ -n "$last" ] && [ "$last" -ge "$2" ] && return 0
		sleep 0.2
	done
	return 1
}

# cl_pm_status NAME: "status exitcode" as podman inspect reports them.
cl_pm_status() { pm inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$1" 2>&1; }

# cl_pm_counter NAME: podman run -d of the counter, waited for until it has printed count 2.
cl_pm_counter() {
	cl_expect "$CL_LOG" 60 "${CL_PM[@]}" run -d --name "$1" "${CL_PM_OPTS[@]}" "$CL_PM_IMAGE" /bin/counter || return 1
	cl_pm_wait_count "$1" 2 && return 0
	bad "no 'count 2' from the counter $1 within ${CL_WAIT}s"
	return 1
}

run_clients_podman() {
	local t st l1 l2 n
	cl_pm_run_opts

	t=clients/podman/run-exit-status
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/pm-run.log
		if cl_pm_ready; then
			if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" run --rm "${CL_PM_OPTS[@]}" "$CL_PM_IMAGE"; then
				grep -q '^hello from ' <<<"$CL_OUT" || bad "podman run: no 'hello from' line in the output: $CL_OUT"
			fi
			cl_cmd "$CL_LOG" 60 "${CL_PM[@]}" run --rm "${CL_PM_OPTS[@]}" "$CL_PM_IMAGE" /bin/hello 4
			[ "$RC" = 4 ] || bad "podman run of 'hello 4': exit status $(status_text "$RC"), expected 4 (the container's)"
		fi
		[ -n "$T_DIAG" ] && show_file "client log" "$CL_LOG"
		end
	fi

	t=clients/podman/run-d-stop
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/pm-stop.log
		if cl_pm_ready && cl_pm_counter p-stop; then
			# podman stop: SIGTERM (runtime: kill ID 15); the counter's handler ends it with status 0.
			cl_expect "$CL_LOG" 60 "${CL_PM[@]}" stop -t 10 p-stop
			st=$(cl_pm_status p-stop)
			[ "$st" = "exited 0" ] || bad "after podman stop the container is '$st', expected 'exited 0'"
			cl_pm_logs p-stop
			grep -q '^counter: SIGTERM at count' "$CL_W/p-stop.log" || bad "the counter did not get SIGTERM (no 'counter: SIGTERM' line)"
		fi
		[ -n "$T_DIAG" ] && { show_file "client log" "$CL_LOG"; show_file "container output" "$CL_W/p-stop.log"; }
		end
	fi

	t=clients/podman/checkpoint-restore
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/pm-ckpt.log
		if cl_pm_ready && cl_pm_counter p-ck; then
			if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" container checkpoint p-ck; then
				st=$(cl_pm_status p-ck)
				[ "${st%% *}" = exited ] || bad "after podman container checkpoint the container is '$st', not exited"
				cl_pm_logs p-ck
				n=$(cl_counts "$CL_W/p-ck.log" | wc -l)
				if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" container restore p-ck; then
					st=$(cl_pm_status p-ck)
					[ "${st%% *}" = running ] || bad "after podman container restore the container is '$st', not running"
					cl_pm_wait_count p-ck $((n + 2)) || bad "the restored counter did not count on within ${CL_WAIT}s"
					# One log across checkpoint and restore: 1, 2, ... with nothing lost or repeated.
					cl_consecutive "$CL_W/p-ck.log" || bad "the counts across checkpoint/restore are not consecutive: $(cl_counts "$CL_W/p-ck.log" | tr '\n' ' ')"
				fi
			fi
		fi
		[ -n "$T_DIAG" ] && { show_file "client log" "$CL_LOG"; show_file "container output" "$CL_W/p-ck.log"; }
		end
	fi

	t=clients/podman/checkpoint-leave-running
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/pm-leave.log
		if cl_pm_ready && cl_pm_counter p-lr; then
			cl_pm_logs p-lr
			l1=$(cl_last_count "$CL_W/p-lr.log")
			if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" container checkpoint --leave-running p-lr; then
				cl_pm_logs p-lr
				l2=$(cl_last_count "$CL_W/p-lr.log")
				st=$(cl_pm_status p-lr)
				[ "${st%% *}" = running ] || bad "after checkpoint --leave-running the container is '$st', not running"
				cl_pm_wait_count p-lr $((l2 + 1)) || bad "the counter stopped counting after checkpoint --leave-running"
				# Stop it and restore the checkpoint: the count goes back to where it was taken.
				cl_expect "$CL_LOG" 60 "${CL_PM[@]}" stop -t 10 p-lr
				cl_pm_logs p-lr
				n=$(cl_counts "$CL_W/p-lr.log" | wc -l)
				if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" container restore p-lr; then
					cl_pm_wait_count p-lr 0
					for ((i = 0; i < CL_WAIT * 5; i++)); do
						cl_pm_logs p-lr
						[ "$(cl_counts "$CL_W/p-lr.log" | wc -l)" -gt "$n" ] && break
						sleep 0.2
					done
					cl_counts "$CL_W/p-lr.log" | tail -n +$((n + 1)) | sed 's/^/count /' >"$CL_W/p-lr.after"
					cl_first_count_in "$CL_W/p-lr.after" $((l1 + 1)) $((l2 + 1)) "podman restore of a --leave-running checkpoint"
				fi
			fi
		fi
		[ -n "$T_DIAG" ] && { show_file "client log" "$CL_LOG"; show_file "container output" "$CL_W/p-lr.log"; }
		end
	fi

	t=clients/podman/export-import
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/pm-export.log
		if cl_pm_ready && cl_pm_counter p-ex; then
			if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" container checkpoint --export "$CL_W/p-ex.tar.gz" p-ex; then
				cl_pm_logs p-ex
				l1=$(cl_last_count "$CL_W/p-ex.log")
				tar -tf "$CL_W/p-ex.tar.gz" >"$CL_W/p-ex.list" 2>&1 || bad "the exported checkpoint is not a (compressed) tar: $(head -n 2 "$CL_W/p-ex.list")"
				# A new container from the archive, as on another host.
				if cl_expect "$CL_LOG" 60 "${CL_PM[@]}" container restore --import "$CL_W/p-ex.tar.gz" --name p-ex2; then
					cl_pm_wait_count p-ex2 $((l1 + 1)) || bad "the imported counter did not count past $l1 within ${CL_WAIT}s"
					cl_consecutive "$CL_W/p-ex2.log" || bad "the imported container's counts are not consecutive: $(cl_counts "$CL_W/p-ex2.log" | tr '\n' ' ')"
				fi
			fi
		fi
		[ -n "$T_DIAG" ] && { show_file "client log" "$CL_LOG"; show_file "container output" "$CL_W/p-ex.log"; show_file "imported output" "$CL_W/p-ex2.log"; }
		end
	fi
}

# --- runtime under test, driven directly -----------------------------------------------------

# CL_DIRECT: "ROOT:ID" of every container started with the runtime itself, for cleanup.
CL_DIRECT=()
cl_direct_stop() {
	local e
	for e in "${CL_DIRECT[@]}"; do
		"${CL_RTC[@]}" --root "${e%%:*}" kill "${e#*:}" KILL >/dev/null 2>&1
		sleep 0.1
		"${CL_RTC[@]}" --root "${e%%:*}" delete -f "${e#*:}" >/dev/null 2>&1
		cl_cgroups_rm "${e#*:}"          # runc's default cgroup path: /ID
		cl_cgroups_rm "km-shim/${e#*:}"  # km-shim's: /km-shim/ID
	done
	CL_DIRECT=()
}

# Two hosts: the counter runs from bundle copy A with state root A; it is checkpointed into
# A/checkpoint (and ends, as without --leave-running); the image directory is copied into bundle
# copy B, which has its own state root, and restored there: the count goes on from where it was.
# The containers' stdout are pipes, as a client's would be (CRIU, behind runc, cannot restore a
# host file that is outside the container).
run_clients_two_hosts() {
	local t=clients/two-hosts a=$CL_W/hostA b=$CL_W/hostB last
	want "$t" || return 0
	begin "$t"
	CL_LOG=$CL_W/two-hosts.log
	if [ ! -x "$CL_BUNDLES/counter/rootfs/bin/counter" ]; then
		bad "bundle $CL_BUNDLES/counter is not built (make bundles)"
		end
		return
	fi
	mkdir -p "$a" "$b"
	cp -a "$CL_BUNDLES/counter" "$a/bundle"
	cp -a "$CL_BUNDLES/counter" "$b/bundle"
	CL_DIRECT+=("$a/state:c-move")
	printf '$ %s\n' "$CL_RT --root $a/state run -d --bundle $a/bundle c-move" >>"$CL_LOG"
	timeout 30 "${CL_RTC[@]}" --root "$a/state" run -d --bundle "$a/bundle" c-move </dev/null > >(exec cat >"$a/out") 2>&1
	RC=$?
	if [ "$RC" != 0 ]; then
		bad "$CL_RT_NAME run -d on host A failed with status $(status_text "$RC")"
	elif ! cl_wait_count "$a/out" 2; then
		bad "no 'count 2' from the counter on host A within ${CL_WAIT}s"
	elif cl_expect "$CL_LOG" 60 "${CL_RTC[@]}" --root "$a/state" checkpoint --image-path "$a/bundle/checkpoint" \
		--work-path "$a/work" c-move; then
		last=$(cl_last_count "$a/out")
		cp -a "$a/bundle/checkpoint" "$b/bundle/checkpoint"
		cl_cmd "$CL_LOG" 30 "$CL_RT" --root "$a/state" delete -f c-move
		CL_DIRECT+=("$b/state:c-move")
		printf '$ %s\n' "$CL_RT --root $b/state restore -d --image-path $b/bundle/checkpoint --bundle $b/bundle c-move" >>"$CL_LOG"
		timeout 30 "${CL_RTC[@]}" --root "$b/state" restore -d --image-path "$b/bundle/checkpoint" --work-path "$b/work" \
			--bundle "$b/bundle" c-move </dev/null > >(exec cat >"$b/out") 2>&1
		RC=$?
		if [ "$RC" != 0 ]; then
			bad "$CL_RT_NAME restore -d on host B failed with status $(status_text "$RC")"
		elif ! cl_wait_more "$b/out" 0; then
			bad "the counter restored on host B printed nothing within ${CL_WAIT}s"
		else
			cl_first_count_in "$b/out" $((last + 1)) $((last + 1)) "restore on host B"
		fi
	fi
	cl_direct_stop
	[ -n "$T_DIAG" ] && { show_file "runtime log" "$CL_LOG"; show_file "host A output" "$a/out"; show_file "host B output" "$b/out"; }
	end
}

# cl_bundle_copy NAME DIR: copies the example bundle NAME into DIR/NAME for runs as b-NAME with
# --root DIR/state (deleted at the end); a failure of the current test if it is not built.
cl_bundle_copy() {
	if [ ! -x "$CL_BUNDLES/$1/rootfs/bin/$1" ]; then
		bad "bundle $CL_BUNDLES/$1 is not built (make bundles)"
		return 1
	fi
	mkdir -p "$2"
	cp -a "$CL_BUNDLES/$1" "$2/$1"
	CL_DIRECT+=("$2/state:b-$1")
}

# The example bundles as they are, under the runtime itself: hello's output names the bundle's
# hostname, cwd and pid namespace; echo's createRuntime hook brings lo up in the container's own
# network namespace, and a client in that namespace gets its bytes back.
run_clients_bundles() {
	local t d pid reply

	t=clients/bundles/hello
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/bundle-hello.log
		d=$CL_W/bundles
		if cl_bundle_copy hello "$d"; then
			if cl_expect "$CL_LOG" 30 "${CL_RTC[@]}" --root "$d/state" run --bundle "$d/hello" b-hello; then
				[ "$CL_OUT" = "hello from hello (cwd /, pid 1)" ] ||
					bad "hello printed '$CL_OUT', expected 'hello from hello (cwd /, pid 1)' (hostname, cwd and pid namespace from config.json)"
			fi
		fi
		[ -n "$T_DIAG" ] && show_file "runtime log" "$CL_LOG"
		end
	fi

	t=clients/bundles/echo
	if want "$t"; then
		begin "$t"
		CL_LOG=$CL_W/bundle-echo.log
		d=$CL_W/bundles
		if cl_bundle_copy echo "$d"; then
			# The container's stdout and stderr: a file of its own (the runtime's go there too).
			printf '$ %s\n' "$CL_RT --root $d/state run -d --bundle $d/echo b-echo > $d/echo.out" >>"$CL_LOG"
			timeout 30 "${CL_RTC[@]}" --root "$d/state" run -d --bundle "$d/echo" b-echo </dev/null >"$d/echo.out" 2>&1
			RC=$?
			[ "$RC" = 0 ] || bad "$CL_RT_NAME run -d of the echo bundle failed with status $(status_text "$RC"): $(head -c 300 "$d/echo.out")"
			if [ "$RC" = 0 ]; then
				for ((i = 0; i < CL_WAIT * 10; i++)); do
					grep -q '^echo: listening on 127.0.0.1:7777$' "$d/echo.out" && break
					sleep 0.1
				done
				grep -q '^echo: listening on 127.0.0.1:7777$' "$d/echo.out" || bad "no 'echo: listening on 127.0.0.1:7777' within ${CL_WAIT}s"
				pid=$("${CL_RTC[@]}" --root "$d/state" state b-echo 2>&1 | sed -n 's/.*"pid": *\([0-9][0-9]*\).*/\1/p')
				if [ -z "$pid" ] || [ ! -e "/proc/$pid/ns/net" ]; then
					bad "no pid for b-echo in its state: $("${CL_RTC[@]}" --root "$d/state" state b-echo 2>&1 | tr '\n' ' ')"
				elif [ "$(readlink "/proc/$pid/ns/net")" = "$(readlink /proc/self/ns/net)" ]; then
					bad "the container shares the host's network namespace"
				else
					nsenter --net="/proc/$pid/ns/net" ip -br link show lo >"$d/lo" 2>&1
					grep -q 'LOOPBACK,UP' "$d/lo" || bad "lo is not up in the container's namespace (the createRuntime hook): $(cat "$d/lo")"
					# shellcheck disable=SC2016 # the inner shell's variables
					reply=$(timeout 10 nsenter --net="/proc/$pid/ns/net" bash -c \
						'exec 3<>/dev/tcp/127.0.0.1/7777 && echo "ping from the e2e test" >&3 && read -r l <&3 && echo "$l"' 2>&1)
					[ "$reply" = "ping from the e2e test" ] || bad "the echo server answered '$reply', expected 'ping from the e2e test'"
					for ((i = 0; i < CL_WAIT * 10; i++)); do
						grep -q '^echo: connection 1: 23 bytes echoed$' "$d/echo.out" && break
						sleep 0.1
					done
					grep -q '^echo: connection 1: 23 bytes echoed$' "$d/echo.out" || bad "the server did not report 'connection 1: 23 bytes echoed'"
				fi
			fi
		fi
		cl_direct_stop
		[ -n "$T_DIAG" ] && { show_file "runtime log" "$CL_LOG"; show_file "the container's output" "$d/echo.out"; }
		end
	fi
}

# --- main ------------------------------------------------------------------------------------

run_clients() {
	local tests=(clients/containerd/run-exit-status clients/containerd/ps-kill clients/containerd/checkpoint-restore
		clients/containerd/kubernetes-config clients/podman/run-exit-status clients/podman/run-d-stop
		clients/podman/checkpoint-restore clients/podman/checkpoint-leave-running clients/podman/export-import
		clients/two-hosts clients/bundles/hello clients/bundles/echo) t any=0
	for t in "${tests[@]}"; do want "$t" && any=1; done
	[ $any = 1 ] || return 0
	if [ "${RUNTIME:-}" != runc ] && [ "$NATIVE" = 1 ]; then
		for t in "${tests[@]}"; do want "$t" && km_only "$t"; done
		return 0
	fi
	if ! cl_runtime || [ "$(id -u)" != 0 ]; then
		for t in "${tests[@]}"; do
			want "$t" || continue
			begin "$t"
			bad "${CL_RT_WHY:-the client tests need root (private containerd and podman daemons)}"
			end
		done
		return 0
	fi
	CL_W=$(mktemp -d "${TMPDIR:-/tmp}/km-clients.XXXXXX")
	CL_NS=km-e2e-$$
	CL_IMAGE=docker.io/km-e2e/examples:1
	CL_RTC=(env "PATH=$CL_PATH" "$CL_RT")
	CL_CTR=(ctr --address "$CL_W/ctrd/containerd.sock" --namespace "$CL_NS")
	CL_PM=(env "PATH=$CL_PATH" podman --root "$CL_W/podman/root" --runroot "$CL_W/podman/runroot"
		--tmpdir "$CL_W/podman/tmp" --network-config-dir "$CL_W/podman/net" --storage-driver vfs
		--cgroup-manager cgroupfs --events-backend file --runtime "$CL_RT")
	trap 'cl_cleanup; rm -rf "$WORK"' EXIT
	echo "clients: runtime $CL_RT_NAME ($CL_RT), work dir $CL_W"

	run_clients_containerd
	run_clients_podman
	run_clients_two_hosts
	run_clients_bundles
	cl_cleanup
	trap 'rm -rf "$WORK"' EXIT
}
