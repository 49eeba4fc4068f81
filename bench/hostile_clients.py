#!/usr/bin/env python3
"""Hostile-client figures for the README's Limits section, against a real
otpd on loopback. Bounded in count and time; loopback only.

Usage: bench/hostile_clients.py OTPD_BINARY [otpd serve args...]
Starts `OTPD_BINARY serve --port P --database TMP ...`, runs each scenario
against it and prints one line per figure. HOSTILE_SCENARIOS=burst (or
flood, trickle; comma-separated) runs only those.
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return -1


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def connect(port, source="127.0.0.1"):
    s = socket.socket()
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def healthz_ms(port, source="127.0.0.2"):
    start = time.monotonic()
    try:
        s = connect(port, source)
        s.settimeout(5)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    ms = (time.monotonic() - start) * 1000
    return ms if ok else -1


def metric(port, name):
    s = connect(port, "127.0.0.3")
    s.settimeout(5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    for line in data.decode(errors="replace").splitlines():
        if line.startswith(name):
            return float(line.split()[-1])
    return -1


def header_flood(pid, port, count=920_000):
    """One connection sending `count` header lines (or until cut off)."""
    before = rss_kib(pid)
    s = connect(port)
    s.settimeout(5)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Flood: aaaaaaaaaaaaaaaa\r\n"
    batch = line * 1000
    sent = 0
    cut = False
    peak = before
    try:
        while sent < count:
            s.sendall(batch)
            sent += 1000
            if sent % 50_000 == 0:
                peak = max(peak, rss_kib(pid))
        s.sendall(b"\r\n")
    except OSError:
        cut = True
    answer = b""
    try:
        answer = s.recv(200)
    except OSError:
        pass
    during = max(peak, rss_kib(pid))
    s.close()
    time.sleep(1)
    after = rss_kib(pid)
    status = answer.split(b"\r\n", 1)[0].decode(errors="replace") or "(closed, no answer)"
    print(f"header flood: sent {sent} header lines, cut off: {cut}, answer: {status}; "
          f"RSS before {before} KiB, during {during} KiB, after close {after} KiB")


def trickle(pid, port, n=1100, seconds=12):
    """`n` connections from 127.0.0.1 trickling a header byte a second,
    while a client on 127.0.0.2 asks /healthz every half second."""
    refused_before = metric(port, 'otpd_connections_refused_total{reason="per_ip"}')
    socks = []
    for _ in range(n):
        try:
            s = connect(port)
            s.setblocking(False)
            s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            socks.append(s)
        except OSError:
            pass
    worst = 0.0
    failed = 0
    start = time.monotonic()
    alive_at = {}
    while time.monotonic() - start < seconds:
        for s in socks:
            try:
                s.send(b"a")
            except OSError:
                pass
        ms = healthz_ms(port)
        if ms < 0:
            failed += 1
        worst = max(worst, ms)
        elapsed = int(time.monotonic() - start)
        if elapsed not in alive_at:
            alive_at[elapsed] = sum(1 for s in socks if still_open(s))
        time.sleep(0.5)
    refused = metric(port, 'otpd_connections_refused_total{reason="per_ip"}') - refused_before
    for s in socks:
        s.close()
    print(f"trickle: {len(socks)} connections from 127.0.0.1, 1 byte/s for {seconds} s; "
          f"127.0.0.2 /healthz: worst {worst:.0f} ms, {failed} failed; "
          f"refused on accept: {refused:.0f}; still open at t=0,3,6,9 s: "
          f"{[alive_at.get(t, '?') for t in (0, 3, 6, 9)]}; threads now {threads_of(pid)}")


def still_open(s):
    try:
        data = s.recv(1, socket.MSG_PEEK)
        return data != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def burst(pid, port, n=1000, rounds=2):
    """`n` keep-alive connections from 20 addresses at once, each served one
    request and held; then all closed, and RSS and threads once the idle
    workers have left (3 s idle, joined by the pool). `rounds` times."""
    idle = rss_kib(pid)
    idle_threads = threads_of(pid)
    figures = []
    for _ in range(rounds):
        socks = []
        for i in range(n):
            src = f"127.0.1.{1 + i % 20}"
            try:
                s = connect(port, src)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                socks.append(s)
            except OSError:
                pass
        answered = 0
        for s in socks:
            s.settimeout(10)
            try:
                if s.recv(12).startswith(b"HTTP/1.1 200"):
                    answered += 1
            except OSError:
                pass
        busy = rss_kib(pid)
        busy_threads = threads_of(pid)
        for s in socks:
            s.close()
        time.sleep(10)  # keep-alive ends at once; idle workers leave after 3 s
        figures.append((len(socks), answered, busy, busy_threads, rss_kib(pid),
                        threads_of(pid)))
    print(f"burst: RSS idle {idle} KiB ({idle_threads} threads)")
    for k, (opened, answered, busy, busy_threads, after, after_threads) in enumerate(figures):
        print(f"burst {k + 1}: {opened} connections, {answered} answered; "
              f"held {busy} KiB ({busy_threads} threads); 10 s after close {after} KiB "
              f"({after_threads} threads), {(after - idle) / 1024:+.1f} MB vs idle")


def main():
    binary = sys.argv[1]
    extra = sys.argv[2:]
    tmp = tempfile.mkdtemp()
    port = free_port()
    proc = subprocess.Popen([binary, "serve", "--port", str(port), "--database",
                             os.path.join(tmp, "otpd.db"), "--log-level", "warn"] + extra,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if healthz_ms(port, "127.0.0.1") >= 0:
                break
            time.sleep(0.02)
        time.sleep(1)
        scenarios = os.environ.get("HOSTILE_SCENARIOS", "burst,flood,trickle").split(",")
        if "burst" in scenarios:
            burst(proc.pid, port)
        if "flood" in scenarios:
            header_flood(proc.pid, port)
        if "trickle" in scenarios:
            trickle(proc.pid, port)
            time.sleep(6)
        print(f"end: RSS {rss_kib(proc.pid)} KiB, {threads_of(proc.pid)} threads")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
