#!/usr/bin/env python3
"""What each session owner costs in memory: one tmux server per uid.

Usage (root; creates the users ccmbench-1..N if missing, leaves them):
    cargo build --release && sudo python3 benches/owners_memory.py target/release/ccmanagerd

Starts the daemon (detached launcher, a temp directory), then for 1, 2, 5,
10 and 20 owners gives each owner one session (`sleep 1000`, created by root
with `user`) and prints the daemon's RSS, the tmux servers' RSS and PSS, and
the PSS of the daemon's control clients (one `tmux -C` per server); Pss from
/proc/PID/smaps_rollup splits shared pages between the processes.
"""

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

STEPS = [1, 2, 5, 10, 20]


def kib(pid, field, path="status"):
    try:
        with open(f"/proc/{pid}/{path}") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def clients_of(daemon_pid):
    """The daemon's `tmux -C` children (one control client per server)."""
    kids = []
    for task in os.listdir(f"/proc/{daemon_pid}/task"):
        try:
            with open(f"/proc/{daemon_pid}/task/{task}/children") as f:
                kids += [int(p) for p in f.read().split()]
        except OSError:
            pass
    out = []
    for pid in kids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"\0-C\0" in f.read():
                    out.append(pid)
        except OSError:
            pass
    return out


def call(sock, method, params=None):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    s.sendall(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method,
                          "params": params or {}}).encode() + b"\n")
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    reply = json.loads(buf)
    if "error" in reply:
        raise RuntimeError(f"{method}: {reply['error']}")
    return reply["result"]


def ensure_user(name):
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True)
        return pwd.getpwnam(name).pw_uid


def main():
    if os.geteuid() != 0 or len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = os.path.abspath(sys.argv[1])
    users = [f"ccmbench-{i}" for i in range(1, max(STEPS) + 1)]
    for u in users:
        ensure_user(u)
    tmp = tempfile.mkdtemp(prefix="ccm-owners-")
    os.chmod(tmp, 0o755)
    sock = os.path.join(tmp, "d.sock")
    config = os.path.join(tmp, "config.toml")
    with open(config, "w") as f:
        f.write(f'[daemon]\nstate_dir = "{tmp}/state"\nlog_level = "warn"\n'
                '[tmux]\nlauncher = "detached"\nserver_idle_stop = "off"\n'
                '[limits]\nmax_sessions = 1000\n')
    daemon = subprocess.Popen([binary, "--config", config, "--socket", sock,
                               "--tmux-dir", os.path.join(tmp, "tmux")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                call(sock, "daemon.ping")
                break
            except OSError:
                time.sleep(0.05)
        print(f"{'owners':>6} {'daemon RSS':>11} {'servers RSS':>12} {'servers PSS':>12}"
              f" {'clients PSS':>12} {'PSS/owner':>10}")
        done = 0
        for n in STEPS:
            while done < n:
                call(sock, "session.create", {"command": ["sleep", "1000"], "cwd": "/",
                                              "user": users[done]})
                done += 1
            time.sleep(1.0)
            servers = call(sock, "daemon.status")["tmux"]["servers"]
            pids = [s["pid"] for s in servers if s["pid"]]
            rss = sum(kib(p, "VmRSS") for p in pids)
            pss = sum(kib(p, "Pss", "smaps_rollup") for p in pids)
            cpss = sum(kib(p, "Pss", "smaps_rollup") for p in clients_of(daemon.pid))
            print(f"{n:>6} {kib(daemon.pid, 'VmRSS') / 1024:>7.1f} MiB {rss / 1024:>8.1f} MiB"
                  f" {pss / 1024:>8.1f} MiB {cpss / 1024:>8.1f} MiB"
                  f" {(pss + cpss) / len(pids):>6.0f} KiB")
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
        for entry in os.listdir(os.path.join(tmp, "tmux")):
            path = os.path.join(tmp, "tmux", entry, "tmux.sock")
            if os.path.exists(path):
                subprocess.run(["tmux", "-S", path, "kill-server"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
