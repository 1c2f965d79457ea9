#!/usr/bin/env python3
"""Memory and start-up footprint of portcullis (issue 10's last two targets).

Measures, on this machine, with the binary given as argv[1]:
  - start to ready: spawn -> first 200 from a public route (static Ed25519 key,
    median of N starts);
  - idle RSS: VmRSS one second after ready, no connection open;
  - RSS with C open keep-alive connections: C clients each send one authenticated
    request (a verified, cached token) and keep the connection open idle.

Prints a markdown section on stdout. Standard library only.
Usage: bench/footprint.py target/release/portcullis [CONNECTIONS] [STARTS]
"""

import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CONFIG = """
[server]
listen = "127.0.0.1:{port}"
header_timeout = "10s"
idle_timeout = "600s"
max_connections = 100000

[upstreams.echo]
url = "echo:"

[identity]
header = "X-User"
claim = "sub"

[[issuers]]
name = "bench"
issuer = "bench"
audiences = ["api"]
private_key = "{dir}/signing.pem"
generate_key = true
kid = "k1"

[[routes]]
name = "health"
path = "/health"
access = "public"
upstream = "echo"

[[routes]]
name = "api"
path = "/**"
upstream = "echo"
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not found for pid {pid}")


def get(port, path, headers=""):
    """One HTTP/1.1 request on a fresh connection; returns the status code or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n".encode())
            head = s.recv(64)
            return int(head.split()[1])
    except (OSError, IndexError, ValueError):
        return None


def start(binary, config, port):
    """Spawns the proxy; returns (process, seconds until the first 200)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([binary, "--config", config], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    while time.perf_counter() - t0 < 10:
        if get(port, "/health") == 200:
            return proc, time.perf_counter() - t0
        if proc.poll() is not None:
            raise RuntimeError(f"portcullis exited with {proc.returncode}")
        time.sleep(0.0005)
    proc.kill()
    raise RuntimeError("portcullis not ready within 10 s")


async def hold(port, n, token, batch=500):
    """Opens n keep-alive connections, one authenticated request each; keeps them."""
    request = (f"GET /api/items HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
               "\r\n").encode()
    conns = []

    async def one():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split()[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        conns.append((reader, writer))
        return status

    statuses = []
    for i in range(0, n, batch):
        statuses += await asyncio.gather(*(one() for _ in range(min(batch, n - i))))
    return conns, statuses


def main():
    binary = os.path.abspath(sys.argv[1])
    conns = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    starts = int(sys.argv[3]) if len(sys.argv) > 3 else 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < conns + 100:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, conns + 1000), hard))

    with tempfile.TemporaryDirectory() as d:
        port = free_port()
        config = os.path.join(d, "proxy.toml")
        with open(config, "w") as f:
            f.write(CONFIG.format(port=port, dir=d))
        token = subprocess.run([binary, "--config", config, "token", "--sub", "bench"],
                               check=True, capture_output=True,
                               text=True).stdout.strip()

        ready = []
        for _ in range(starts):
            proc, secs = start(binary, config, port)
            ready.append(secs)
            proc.terminate()
            proc.wait()

        proc, _ = start(binary, config, port)
        try:
            time.sleep(1)
            idle = rss_kib(proc.pid)
            if get(port, "/api/items", f"Authorization: Bearer {token}\r\n") != 200:
                raise RuntimeError("the bench token was refused")
            t0 = time.perf_counter()
            held, statuses = asyncio.run(hold_and_measure(port, conns, token, proc.pid))
            took = time.perf_counter() - t0
        finally:
            proc.terminate()
            proc.wait()

    ok = sum(1 for s in statuses if s == 200)
    print("## Footprint (`bench/footprint.py`)")
    print()
    print(f"Static Ed25519 key, built-in `echo:` upstream, default worker threads "
          f"({os.cpu_count()} cores), `{os.path.basename(binary)}` as built.")
    print()
    print("| measure | result | target |")
    print("|---|---|---|")
    print(f"| start to ready (spawn -> first 200), median of {starts} | "
          f"{statistics.median(ready) * 1000:.1f} ms (min {min(ready) * 1000:.1f}, "
          f"max {max(ready) * 1000:.1f}) | <= 50 ms |")
    print(f"| idle RSS | {idle / 1024:.1f} MiB | <= 15 MiB |")
    print(f"| RSS with {conns:,} open keep-alive connections ({ok:,} got 200, "
          f"opened in {took:.1f} s) | {held['rss'] / 1024:.1f} MiB "
          f"(peak {held['hwm'] / 1024:.1f} MiB) | <= 150 MiB |")


async def hold_and_measure(port, n, token, pid):
    conns, statuses = await hold(port, n, token)
    await asyncio.sleep(2)
    out = {"rss": rss_kib(pid), "hwm": rss_kib(pid, "VmHWM")}
    for _, w in conns:
        w.close()
    return out, statuses


if __name__ == "__main__":
    main()
