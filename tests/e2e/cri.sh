# shellcheck shell=bash
# km-shim under Kubernetes' own interface, CRI (docs/kubernetes.md): a private containerd whose
# configuration holds exactly docs/kubernetes.md's TOML block (BinaryName = the km-shim under
# test), driven over CRI (runtime.v1, gRPC) by tests/tools/cri-client.py as kubelet would drive
# it: Version, ImageStatus, RunPodSandbox with the documented runtime handler (host network, so
# no CNI), CreateContainer + StartContainer of the example image's hello, ContainerStatus until
# it has exited with code 0, its CRI log file, then StopContainer, RemoveContainer,
# StopPodSandbox, RemovePodSandbox. The pod's sandbox ("pause") image is a local image of
# tests/guests/pause.c, named as sandbox_image; both containers must run under km-shim (its
# km.sock in the handler's Root, km as the sandbox's process).
#
# Sourced by run.sh after clients.sh, whose helpers it uses for the daemon, the example image and
# the cleanup (cl_ctrd_ready, cl_blob, cl_cleanup from the EXIT trap: every task killed, the
# daemon stopped by pid, cgroups and mounts removed, the mktemp directory removed); defines
# run_cri. Needs root, containerd 1.6 and python3-grpcio (scripts/deps.sh); a missing one fails
# the test, nothing is skipped. Knobs: KM_SHIM, BUNDLES, GUESTS as for clients.sh and run.sh.

CRI_CLIENT=$ROOT/tests/tools/cri-client.py
CRI_PAUSE_IMAGE=docker.io/km-e2e/pause:1

# cri_call ARGS...: cri-client.py against the private daemon's socket; its output in CRI_OUT,
# everything logged in CL_LOG; a failure (naming the call) unless it exits 0.
cri_call() {
	cl_expect "$CL_LOG" 60 /usr/bin/python3 "$CRI_CLIENT" "$CL_W/ctrd/containerd.sock" "$@" || return 1
	CRI_OUT=$CL_OUT
}

# cri_field KEY: the value of "KEY=value" in the last call's output.
cri_field() { sed -n "s/^$1=//p" <<<"$CRI_OUT" | head -n 1; }

# cri_pause_image OUT: an OCI image layout tarball holding the pause guest as /pause, its
# Entrypoint, named CRI_PAUSE_IMAGE.
cri_pause_image() {
	local d=$CL_W/pause-image src=$GUESTS/gcc/pause layer config manifest
	[ -x "$src" ] || { bad "no $src (make guests)"; return 1; }
	rm -rf "$d" && mkdir -p "$d/rootfs" "$d/layout/blobs/sha256"
	cp "$src" "$d/rootfs/pause"
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$d/rootfs" -cf "$d/layer.tar" . || return 1
	layer=$(cl_blob "$d" "$d/layer.tar" application/vnd.oci.image.layer.v1.tar)
	printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":["/pause"],"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
		"$(sha256sum "$d/layer.tar" | cut -d' ' -f1)" >"$d/config.json"
	config=$(cl_blob "$d" "$d/config.json" application/vnd.oci.image.config.v1+json)
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":%s,"layers":[%s]}' \
		"$config" "$layer" >"$d/manifest.json"
	manifest=$(cl_blob "$d" "$d/manifest.json" application/vnd.oci.image.manifest.v1+json)
	printf '{"imageLayoutVersion":"1.0.0"}' >"$d/layout/oci-layout"
	printf '{"schemaVersion":2,"manifests":[%s]}' \
		"${manifest%\}},\"annotations\":{\"io.containerd.image.name\":\"$CRI_PAUSE_IMAGE\",\"org.opencontainers.image.ref.name\":\"1\"}}" \
		>"$d/layout/index.json"
	tar -C "$d/layout" -cf "$1" .
}

# cri_handler: the runtime handler's name in docs/kubernetes.md's TOML block (runtimes.NAME).
cri_handler() {
	awk '/^```toml$/ { on = 1; next } on && /^```$/ { exit } on' "$ROOT/docs/kubernetes.md" |
		sed -n 's/^ *\[plugins\."io\.containerd\.grpc\.v1\.cri"\.containerd\.runtimes\.\([A-Za-z0-9_-]*\)\]$/\1/p' | head -n 1
}

# cri_on_km WHAT ID PID: the container ID runs under km-shim: its state directory in the
# handler's Root (the runc v2 shim gives the runtime ROOT/NAMESPACE) holds km-shim's km.sock,
# which runc never makes, and its process PID (CRI's verbose status) is km, exec'd by km-shim.
cri_on_km() {
	local dir=$CL_K8S_ROOT/k8s.io/$2 exe
	[ -S "$dir/km.sock" ] ||
		bad "the $1 ($2) is not under km-shim: no km.sock in $dir ($(ls "$dir" 2>&1 | tr '\n' ' '))"
	exe=$(readlink "/proc/$3/exe" 2>/dev/null)
	[ -n "$3" ] && [ "$3" != 0 ] && [ "${exe##*/}" = km ] ||
		bad "the $1's process (pid '$3') is '$exe', expected km"
}

# cri_wait_exited ID: polls ContainerStatus until ID has exited (up to CL_WAIT s); false if not.
cri_wait_exited() {
	local i
	for ((i = 0; i < CL_WAIT * 10; i++)); do
		cri_call status "$1" || return 1
		[ "$(cri_field state)" = EXITED ] && return 0
		sleep 0.1
	done
	bad "ContainerStatus: $1 is '$(cri_field state)' after ${CL_WAIT}s, not EXITED"
	return 1
}

# cri_create SANDBOX NAME [--command C...] [--args A...]: CreateContainer of the example image in the pod, logging to
# NAME/0.log; the container's id in CRI_CID. The status must name the handler's options.
cri_create() {
	local sid=$1 name=$2
	shift 2
	cri_call create "$sid" "${CRI_POD[@]}" --name "$name" --image "$CL_IMAGE" --log-path "$name/0.log" "$@" || return 1
	CRI_CID=$(cri_field container_id)
	cri_call status "$CRI_CID" || return 1
	[ "$(cri_field state)" = CREATED ] || bad "ContainerStatus after CreateContainer ($name): state '$(cri_field state)', expected CREATED"
	[ "$(cri_field runtime_binary)" = "$CL_RT" ] && [ "$(cri_field runtime_root)" = "$CL_K8S_ROOT" ] ||
		bad "ContainerStatus ($name): runtime options binary '$(cri_field runtime_binary)' root '$(cri_field runtime_root)', expected the handler's ($CL_RT, $CL_K8S_ROOT)"
	cri_call start "$CRI_CID"
}

# cri_log NAME REGEX: NAME's CRI log file (TIMESTAMP STREAM P|F LINE) has a full stdout line
# matching REGEX (extended).
cri_log() {
	local f=$CL_W/pods/km-pod/$1/0.log
	grep -Eq "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+) stdout F $2\$" "$f" 2>/dev/null
}

# hello: runs to its end; exit code 0 and its line in the CRI log file.
cri_hello() {
	local cid
	cri_create "$1" hello || return 1
	cid=$CRI_CID
	if cri_wait_exited "$cid"; then
		[ "$(cri_field exit_code)" = 0 ] || bad "ContainerStatus: hello's exit_code '$(cri_field exit_code)' (reason '$(cri_field reason)'), expected 0"
		[ "$(cri_field log_path)" = "$CL_W/pods/km-pod/hello/0.log" ] ||
			bad "ContainerStatus: hello's log_path '$(cri_field log_path)', expected $CL_W/pods/km-pod/hello/0.log"
		cri_log hello 'hello from .* \(cwd /, pid 1\)' ||
			bad "hello's CRI log has no 'TIME stdout F hello from HOST (cwd /, pid 1)' line: $(head -c 300 "$CL_W/pods/km-pod/hello/0.log" 2>&1)"
	fi
	cri_call stop "$cid" --timeout 10
	cri_call remove "$cid"
}

# counter: running, it is km under km-shim; StopContainer's SIGTERM ends it with code 0.
cri_counter() {
	local cid i
	cri_create "$1" counter --command /bin/counter --args 200 || return 1
	cid=$CRI_CID
	for ((i = 0; i < CL_WAIT * 10; i++)); do
		cri_log counter 'count 2' && break
		sleep 0.1
	done
	cri_log counter 'count 2' || bad "no 'count 2' in the counter's CRI log within ${CL_WAIT}s"
	cri_call status "$cid" || return 1
	[ "$(cri_field state)" = RUNNING ] || bad "ContainerStatus: the counter is '$(cri_field state)', expected RUNNING"
	cri_on_km "container counter" "$cid" "$(cri_field pid)"
	cri_call stop "$cid" --timeout 10 || return 1
	if cri_wait_exited "$cid"; then
		[ "$(cri_field exit_code)" = 0 ] || bad "ContainerStatus: the counter's exit_code after StopContainer '$(cri_field exit_code)', expected 0 (its SIGTERM handler)"
		cri_log counter 'counter: SIGTERM at count [0-9]+' || bad "the counter did not get StopContainer's SIGTERM (no 'counter: SIGTERM' line in its CRI log)"
	fi
	cri_call remove "$cid"
	[ -e "$CL_K8S_ROOT/k8s.io/$cid" ] && bad "RemoveContainer left km-shim's state directory $CL_K8S_ROOT/k8s.io/$cid"
	return 0
}

# The whole pod's life over CRI, one step after the other; a failed step ends it.
cri_pod() {
	local handler sid pid exe i
	handler=$(cri_handler)
	[ -n "$handler" ] || { bad "no runtimes.NAME table in docs/kubernetes.md's TOML block"; return 1; }
	cri_call version || return 1
	[ "$(cri_field runtime_name)" = containerd ] || bad "Version: runtime_name '$(cri_field runtime_name)', expected containerd"
	[ "$(cri_field runtime_api_version)" = v1 ] || bad "Version: runtime_api_version '$(cri_field runtime_api_version)', expected v1"
	for i in "$CRI_PAUSE_IMAGE" "$CL_IMAGE"; do
		cri_call image-status "$i" || return 1
		[ -n "$(cri_field id)" ] || { bad "ImageStatus: the CRI plugin does not see $i (imported into namespace k8s.io)"; return 1; }
	done

	CRI_POD=(--pod-name km-pod --pod-uid "uid-$$" --pod-namespace km-e2e --cgroup-parent "/$CL_NS" --log-dir "$CL_W/pods/km-pod")
	mkdir -p "$CL_W/pods/km-pod"
	cri_call run-sandbox "${CRI_POD[@]}" --handler "$handler" || return 1
	sid=$(cri_field sandbox_id)
	cri_call sandbox-status "$sid" || return 1
	[ "$(cri_field state)" = READY ] || bad "PodSandboxStatus: state '$(cri_field state)', expected READY"
	[ "$(cri_field runtime_handler)" = "$handler" ] || bad "PodSandboxStatus: runtime_handler '$(cri_field runtime_handler)', expected '$handler'"
	pid=$(cri_field pid)
	cri_on_km "pod sandbox (pause)" "$sid" "$pid"
	exe=$(readlink "/proc/$pid/exe" 2>/dev/null)

	cri_hello "$sid" || return 1
	cri_counter "$sid" || return 1
	cri_call stop-sandbox "$sid" || return 1
	cri_call sandbox-status "$sid" && [ "$(cri_field state)" != NOTREADY ] &&
		bad "PodSandboxStatus after StopPodSandbox: state '$(cri_field state)', expected NOTREADY"
	[ -n "$pid" ] && [ -e "/proc/$pid" ] && [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$exe" ] &&
		bad "the sandbox's km (pid $pid) still runs after StopPodSandbox"
	cri_call remove-sandbox "$sid"
	[ -e "$CL_K8S_ROOT/k8s.io/$sid" ] && bad "RemovePodSandbox left km-shim's state directory $CL_K8S_ROOT/k8s.io/$sid"
	return 0
}

run_cri() {
	local t=cri/pod-hello
	want "$t" || return 0
	if [ "$NATIVE" = 1 ]; then
		km_only "$t"
		return 0
	fi
	begin "$t"
	if [ "$(id -u)" != 0 ]; then
		bad "the CRI test needs root (a private containerd)"
	elif ! cl_runtime; then
		bad "$CL_RT_WHY"
	elif cl_need containerd ctr containerd-shim-runc-v2; then
		if [ ! -x /usr/bin/python3 ] || ! /usr/bin/python3 -c 'import grpc' 2>/dev/null; then
			bad "/usr/bin/python3 cannot import grpc: python3-grpcio is missing (scripts/deps.sh installs it: make deps)"
		else
			CL_W=$(mktemp -d "${TMPDIR:-/tmp}/km-cri.XXXXXX")
			CL_NS=km-e2e-cri-$$ # the pod's cgroup parent, removed by the cleanup
			CL_IMAGE=docker.io/km-e2e/examples:1
			CL_CTR=(ctr --address "$CL_W/ctrd/containerd.sock" --namespace k8s.io) # CRI's namespace
			# shellcheck disable=SC2034 # clients.sh's cleanup uses it
			CL_RTC=(env "PATH=$CL_PATH" "$CL_RT")
			CL_PM=(false)
			CL_CTRD_STATE="" # a fresh daemon, not clients.sh's (stopped) one
			CL_LOG=$CL_W/cri.log
			# The CRI plugin's sandbox image must be local: nothing can be pulled here.
			# Root here lacks CAP_SYS_RESOURCE (PLATFORM.md): the sandbox's oomScoreAdj (-998) cannot
			# be written by any runtime (runc neither) unless the CRI plugin caps it at its own.
			CL_CRI_TOML="  sandbox_image = \"$CRI_PAUSE_IMAGE\""$'\n'"  restrict_oom_score_adj = true"
			trap 'cl_cleanup; rm -rf "$WORK"' EXIT
			if cri_pause_image "$CL_W/pause.tar" && cl_ctrd_ready; then
				CL_LOG=$CL_W/cri.log
				if cl_expect "$CL_LOG" 60 "${CL_CTR[@]}" images import "$CL_W/pause.tar"; then
					cri_pod
				fi
			fi
			if [ -n "$T_DIAG" ]; then
				show_file "CRI client log" "$CL_LOG"
				show_file "containerd config" "$CL_W/ctrd/config.toml"
				note "    containerd's errors: $(grep -m5 'level=error' "$CL_W/ctrd/containerd.log" | cut -c1-400)"
				show_file "containerd setup log" "$CL_W/ctr-setup.log"
				cat "$CL_W"/ctrd/state/io.containerd.runtime.v2.task/k8s.io/*/log.json >"$CL_W/shim-logs" 2>/dev/null
				show_file "km-shim's logs (the runc v2 shim's log.json)" "$CL_W/shim-logs"
			fi
			cl_cleanup
			CL_CRI_TOML=""
			trap 'rm -rf "$WORK"' EXIT
		fi
	fi
	end
}
