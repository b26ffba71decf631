#!/usr/bin/env python3
"""A client that streams lines at an echo server (tests/guests/echo_epoll.c) without pause while
the server is snapshotted with mode=stop and resumed: bytes are in flight while km writes the
file, while no km owns the connection, and while the resumed km rebuilds it
(tests/e2e/fd_netlock.sh, stream-through-stop).

    tcp-stream.py PORT KM KM_MGMT MGMT_SOCKET SNAPSHOT RESUME_SOCKET

Prints "sent N echoed M in order" and exits 0 when every line came back once, in order, with the
server's per-connection count; else says what differed and exits 1.
"""
import socket
import subprocess
import sys
import threading
import time


def main():
    port, km, mgmt, sock, snap, sock2 = sys.argv[1:7]
    s = socket.create_connection(("127.0.0.1", int(port)))
    state = {"sent": 0, "stop": False, "error": None}

    def writer():
        i = 0
        while not state["stop"]:
            try:
                s.sendall(b"line %d\n" % i)
            except OSError as e:
                state["error"] = repr(e)
                return
            i += 1
            state["sent"] = i
            time.sleep(0.0005)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(0.3)
    r = subprocess.run([mgmt, "--timeout", "20", sock, "snapshot", "path=" + snap, "mode=stop"],
                       capture_output=True, text=True)
    if not r.stdout.startswith("ok"):
        print("snapshot failed:", r.stdout.strip(), r.stderr.strip())
        state["stop"] = True
        t.join()
        return 1
    time.sleep(0.5)  # no km owns the connection meanwhile; the writer goes on
    resumed = subprocess.Popen([km, "--mgmt=" + sock2, snap], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)
    state["stop"] = True
    t.join()
    if state["error"]:
        print("sending failed:", state["error"])
        resumed.kill()
        return 1
    s.sendall(b"quit\n")
    s.settimeout(20)
    data = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    except OSError as e:
        print("receiving failed:", repr(e))
        resumed.kill()
        return 1
    err = resumed.communicate(timeout=20)[1]
    if err:
        print("the resumed km wrote to stderr:", err.decode(errors="replace")[:300])
        return 1
    sent = state["sent"]
    got = [line for line in data.decode(errors="replace").splitlines() if " line " in line]
    want = ["%d line %d" % (i + 1, i) for i in range(sent)]
    if got != want:
        diff = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
        print("sent %d echoed %d: first difference at line %d (%r, expected %r)" %
              (sent, len(got), diff, got[diff] if diff < len(got) else None,
               want[diff] if diff < len(want) else None))
        return 1
    print("sent %d echoed %d in order" % (sent, len(got)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
