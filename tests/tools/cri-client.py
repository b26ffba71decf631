#!/usr/bin/python3
"""cri-client: a minimal Kubernetes CRI client (runtime.v1) for tests/e2e/cri.sh.

It speaks to a CRI endpoint (containerd's CRI plugin) over gRPC on a unix socket, as kubelet
or crictl would, using Debian's python3-grpcio (scripts/deps.sh) with generic unary calls: the
request messages are encoded here in protobuf wire format (varints, length-delimited strings and
nested messages, maps as repeated key/value entries) and only the response fields the test needs
are decoded. No generated code, no .proto compiler: field numbers are those of
k8s.io/cri-api pkg/apis/runtime/v1/api.proto.

Covered (one subcommand each; output is "key=value" lines for a shell to read):
  version                      RuntimeService/Version
  image-status IMAGE           ImageService/ImageStatus (id=, or absent=1)
  run-sandbox POD-OPTIONS      RuntimeService/RunPodSandbox: host network (NamespaceMode NODE),
                               pid CONTAINER, ipc POD, a cgroup parent, a log directory, a
                               runtime handler
  sandbox-status ID            RuntimeService/PodSandboxStatus verbose (state=, pid= from info)
  create SANDBOX-ID POD-OPTIONS --name N --image I --log-path P [--command C...] [--args A...]
                               RuntimeService/CreateContainer (container_id=)
  start|stop|remove ID         RuntimeService/StartContainer, StopContainer (--timeout), Remove...
  status ID                    RuntimeService/ContainerStatus verbose (state=, exit_code=,
                               log_path=, reason=; pid=, runtime_type=, runtime_binary=,
                               runtime_root= from info)
  stop-sandbox|remove-sandbox ID
Not covered: streaming calls (exec, attach, port-forward, events), stats, image pull/removal,
anything with a Windows or security-profile field.

Usage: cri-client.py SOCKET COMMAND ...   (exit 0 on success; a gRPC error prints
"cri-client: METHOD: CODE: DETAILS" on stderr and exits 1)
"""
import argparse
import json
import sys

import grpc

# --- protobuf wire format: encoding ------------------------------------------------------------

WT_VARINT, WT_I64, WT_LEN, WT_I32 = 0, 1, 2, 5


def varint(n):
    if n < 0:  # int64/int32 negatives: two's complement in 64 bits, ten bytes
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(num, wt):
    return varint((num << 3) | wt)


def f_int(num, v):
    """A varint field (int32/int64/uint32/bool/enum); proto3 leaves zero out."""
    return key(num, WT_VARINT) + varint(int(v)) if v else b""


def f_bytes(num, data):
    return key(num, WT_LEN) + varint(len(data)) + data


def f_str(num, s):
    return f_bytes(num, s.encode()) if s else b""


def f_msg(num, body):
    """A nested message, present even when empty (presence can matter to the server)."""
    return f_bytes(num, body)


def f_map(num, d):
    """map<string,string>: one entry message (key = 1, value = 2) per pair."""
    return b"".join(f_msg(num, f_str(1, k) + f_str(2, v)) for k, v in sorted(d.items()))


# --- protobuf wire format: decoding ------------------------------------------------------------


def read_varint(buf, i):
    n = shift = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def fields(buf):
    """Decodes one message level: {field number: [values]} (bytes for length-delimited fields)."""
    out = {}
    i = 0
    while i < len(buf):
        k, i = read_varint(buf, i)
        num, wt = k >> 3, k & 7
        if wt == WT_VARINT:
            v, i = read_varint(buf, i)
        elif wt == WT_I64:
            v, i = buf[i:i + 8], i + 8
        elif wt == WT_I32:
            v, i = buf[i:i + 4], i + 4
        elif wt == WT_LEN:
            n, i = read_varint(buf, i)
            if i + n > len(buf):
                raise ValueError("truncated length-delimited field")
            v, i = bytes(buf[i:i + n]), i + n
        else:
            raise ValueError("unsupported wire type %d" % wt)
        out.setdefault(num, []).append(v)
    return out


def one(f, num, default=None):
    v = f.get(num)
    return v[-1] if v else default


def text(f, num):
    return one(f, num, b"").decode(errors="replace")


def int32(v):
    """A decoded varint as a signed 32/64-bit value."""
    return v - (1 << 64) if v >= 1 << 63 else v


def map_of(f, num):
    out = {}
    for entry in f.get(num, []):
        e = fields(entry)
        out[text(e, 1)] = text(e, 2)
    return out


# --- CRI messages (runtime.v1 field numbers) -----------------------------------------------------

NS_POD, NS_CONTAINER, NS_NODE = 0, 1, 2
CONTAINER_STATES = {0: "CREATED", 1: "RUNNING", 2: "EXITED", 3: "UNKNOWN"}
SANDBOX_STATES = {0: "READY", 1: "NOTREADY"}


def pod_sandbox_config(a):
    metadata = f_str(1, a.pod_name) + f_str(2, a.pod_uid) + f_str(3, a.pod_namespace)
    # NamespaceOption: network 1, pid 2, ipc 3. Host network needs no CNI; pid CONTAINER is
    # what kubelet sets for v1 pods.
    ns = f_int(1, NS_NODE) + f_int(2, NS_CONTAINER) + f_int(3, NS_POD)
    security = f_msg(1, ns)  # LinuxSandboxSecurityContext.namespace_options
    linux = f_str(1, a.cgroup_parent) + f_msg(2, security)  # LinuxPodSandboxConfig
    # PodSandboxConfig: metadata 1, hostname 2, log_directory 3, labels 6, linux 8
    return (f_msg(1, metadata) + f_str(3, a.log_dir) + f_map(6, {"km-e2e": "cri"}) +
            f_msg(8, linux))


def container_config(a):
    metadata = f_str(1, a.name)  # ContainerMetadata: name 1, attempt 2
    image = f_str(1, a.image)  # ImageSpec: image 1
    # Same namespaces as the sandbox's (as kubelet repeats them per container).
    ns = f_int(1, NS_NODE) + f_int(2, NS_CONTAINER) + f_int(3, NS_POD)
    linux = f_msg(2, f_msg(3, ns))  # LinuxContainerConfig.security_context.namespace_options
    # ContainerConfig: metadata 1, image 2, command 3, args 4, labels 9, log_path 11, linux 15
    return (f_msg(1, metadata) + f_msg(2, image) + b"".join(f_str(3, x) for x in a.command) +
            b"".join(f_str(4, x) for x in a.args) +
            f_map(9, {"km-e2e": "cri"}) + f_str(11, a.log_path) + f_msg(15, linux))


def info_json(info):
    """containerd's verbose status: one JSON document under the key "info"."""
    try:
        return json.loads(info.get("info", "{}"))
    except ValueError:
        return {}


def pid_from_info(info):
    return info_json(info).get("pid", "")


def runtime_from_info(info):
    """The runtime handler's options containerd gave the runc v2 shim for this container."""
    opts = info_json(info).get("runtimeOptions") or {}
    return "runtime_type=%s\nruntime_binary=%s\nruntime_root=%s" % (
        info_json(info).get("runtimeType", ""), opts.get("binary_name", ""), opts.get("root", ""))


# --- calls ---------------------------------------------------------------------------------------


class Client:
    def __init__(self, socket, timeout):
        self.channel = grpc.insecure_channel("unix://" + socket)
        self.timeout = timeout

    def call(self, service, method, request):
        path = "/runtime.v1.%s/%s" % (service, method)
        stub = self.channel.unary_unary(path)  # no (de)serialisers: bytes in, bytes out
        try:
            return fields(stub(request, timeout=self.timeout))
        except grpc.RpcError as e:
            sys.stderr.write("cri-client: %s: %s: %s\n" % (method, e.code().name, e.details()))
            sys.exit(1)

    def rt(self, method, request):
        return self.call("RuntimeService", method, request)


def cmd_version(c, a):
    r = c.rt("Version", f_str(1, "v1"))
    print("version=%s\nruntime_name=%s\nruntime_version=%s\nruntime_api_version=%s" %
          (text(r, 1), text(r, 2), text(r, 3), text(r, 4)))


def cmd_image_status(c, a):
    r = c.call("ImageService", "ImageStatus", f_msg(1, f_str(1, a.image)))
    img = one(r, 1)
    if img is None:
        print("absent=1")
    else:
        print("id=%s" % text(fields(img), 1))


def cmd_run_sandbox(c, a):
    r = c.rt("RunPodSandbox", f_msg(1, pod_sandbox_config(a)) + f_str(2, a.handler))
    print("sandbox_id=%s" % text(r, 1))


def cmd_sandbox_status(c, a):
    r = c.rt("PodSandboxStatus", f_str(1, a.id) + f_int(2, True))
    st = fields(one(r, 1, b""))
    print("state=%s\nruntime_handler=%s\npid=%s" % (
        SANDBOX_STATES.get(one(st, 3, 0), "?"), text(st, 9), pid_from_info(map_of(r, 2))))


def cmd_create(c, a):
    req = f_str(1, a.sandbox_id) + f_msg(2, container_config(a)) + f_msg(3, pod_sandbox_config(a))
    print("container_id=%s" % text(c.rt("CreateContainer", req), 1))


def cmd_status(c, a):
    r = c.rt("ContainerStatus", f_str(1, a.id) + f_int(2, True))
    st = fields(one(r, 1, b""))
    info = map_of(r, 2)
    print("state=%s\nexit_code=%d\nlog_path=%s\nreason=%s\nmessage=%s\npid=%s\n%s" % (
        CONTAINER_STATES.get(one(st, 3, 0), "?"), int32(one(st, 7, 0)), text(st, 15),
        text(st, 10), text(st, 11), pid_from_info(info), runtime_from_info(info)))


def simple(method, with_timeout=False):
    def run(c, a):
        req = f_str(1, a.id)
        if with_timeout:
            req += f_int(2, a.timeout)
        c.rt(method, req)
        print("ok=1")
    return run


def main():
    p = argparse.ArgumentParser(description="minimal CRI (runtime.v1) client")
    p.add_argument("socket")
    p.add_argument("--call-timeout", type=float, default=30.0)
    sub = p.add_subparsers(dest="cmd", required=True)

    def pod_options(sp):
        sp.add_argument("--pod-name", required=True)
        sp.add_argument("--pod-uid", required=True)
        sp.add_argument("--pod-namespace", default="default")
        sp.add_argument("--cgroup-parent", default="")
        sp.add_argument("--log-dir", required=True)

    sub.add_parser("version").set_defaults(fn=cmd_version)
    sp = sub.add_parser("image-status")
    sp.add_argument("image")
    sp.set_defaults(fn=cmd_image_status)
    sp = sub.add_parser("run-sandbox")
    pod_options(sp)
    sp.add_argument("--handler", default="")
    sp.set_defaults(fn=cmd_run_sandbox)
    sp = sub.add_parser("sandbox-status")
    sp.add_argument("id")
    sp.set_defaults(fn=cmd_sandbox_status)
    sp = sub.add_parser("create")
    sp.add_argument("sandbox_id")
    pod_options(sp)
    sp.add_argument("--name", required=True)
    sp.add_argument("--image", required=True)
    sp.add_argument("--log-path", required=True)
    sp.add_argument("--command", nargs="*", default=[])
    sp.add_argument("--args", nargs="*", default=[])
    sp.set_defaults(fn=cmd_create)
    sp = sub.add_parser("status")
    sp.add_argument("id")
    sp.set_defaults(fn=cmd_status)
    for name, method, to in (("start", "StartContainer", False), ("stop", "StopContainer", True),
                             ("remove", "RemoveContainer", False),
                             ("stop-sandbox", "StopPodSandbox", False),
                             ("remove-sandbox", "RemovePodSandbox", False)):
        sp = sub.add_parser(name)
        sp.add_argument("id")
        if to:
            sp.add_argument("--timeout", type=int, default=10)
        sp.set_defaults(fn=simple(method, to))

    a = p.parse_args()
    a.fn(Client(a.socket, a.call_timeout), a)


if __name__ == "__main__":
    main()
