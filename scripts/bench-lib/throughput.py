#!/usr/bin/env python3
"""Local server throughput over loopback with wrk, and server CPU per request.

  throughput.py --label NAME --port PORT [--runs 3 --duration 10 --connections 32]
                [--env K=V ...] -- SERVER_CMD...

Starts the server (stdout to a file, stderr to /dev/null), waits for the port, checks one
request of each case answers as expected, then runs wrk (1 thread) against it `--runs`
times per case. The server's user and system CPU come from /proc/<pid>/stat (utime,
stime: all its threads) before and after each wrk run; wrk's own CPU from rusage of the
child. Prints one JSON object with every run and the medians.
"""

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

from procfs import status_kib

HERE = os.path.dirname(os.path.abspath(__file__))
TICK = os.sysconf("SC_CLK_TCK")
TOKEN = "bench-control-token-0123456789abcdef"

CASES = {
    "refused_auth": {
        "auth": "Bearer not-the-token-0123456789abcdef00",
        "body": '{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-1","ami_override":""}',
        "status": 401,
    },
    "dry_run_deploy": {
        "auth": f"Bearer {TOKEN}",
        "body": '{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-1","ami_override":""}',
        "status": 200,
    },
}


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15.
    return int(fields[11]), int(fields[12])


def wait_port(port, proc, timeout=30):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def one(port, case):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=case["body"].encode(),
                                 method="POST", headers={"authorization": case["auth"],
                                                         "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def run_wrk(port, case, duration, connections):
    env = dict(os.environ, BENCH_BODY=case["body"], BENCH_AUTH=case["auth"])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency",
         "-s", os.path.join(HERE, "wrk-post.lua"), f"http://127.0.0.1:{port}/"],
        env=env, capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(l for l in out.stdout.splitlines() if l.startswith("WRK_JSON "))
    result = json.loads(line[len("WRK_JSON "):])
    result["wrk_cpu_s"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "PORT": str(args.port), "CONTROL_API_TOKEN": TOKEN}
    for kv in args.env:
        k, v = kv.split("=", 1)
        env[k] = v
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        if not wait_port(args.port, server):
            sys.exit(f"throughput: {args.label} did not start")
        result = {"label": args.label, "env": {k: v for k, v in env.items() if k in ("RUST_LOG",)},
                  "connections": args.connections, "duration_s": args.duration, "cases": {}}
        for name in args.cases.split(","):
            case = CASES[name]
            status, body = one(args.port, case)
            if status != case["status"]:
                sys.exit(f"throughput: {args.label} {name}: answered {status}, expected "
                         f"{case['status']}: {body[:200]!r}")
            # Warm-up: connections, allocator, JIT for Node.
            run_wrk(args.port, case, 2, args.connections)
            runs = []
            for _ in range(args.runs):
                u0, s0 = cpu_ticks(server.pid)
                w = run_wrk(args.port, case, args.duration, args.connections)
                u1, s1 = cpu_ticks(server.pid)
                n = w["requests"]
                expected_non2xx = n if case["status"] >= 300 else 0
                w["status_check_ok"] = (w["errors_status"] == expected_non2xx)
                w["rps"] = n / (w["duration_us"] / 1e6)
                w["server_user_us_per_req"] = (u1 - u0) / TICK * 1e6 / n
                w["server_sys_us_per_req"] = (s1 - s0) / TICK * 1e6 / n
                w["server_cpu_util"] = ((u1 - u0) + (s1 - s0)) / TICK / (w["duration_us"] / 1e6)
                w["wrk_cpu_util"] = w["wrk_cpu_s"] / (w["duration_us"] / 1e6)
                runs.append(w)
            med = lambda k: statistics.median(r[k] for r in runs)
            result["cases"][name] = {
                "runs": runs,
                "median_rps": med("rps"),
                "median_p50_us": med("p50_us"),
                "median_p99_us": med("p99_us"),
                "median_user_us_per_req": med("server_user_us_per_req"),
                "median_sys_us_per_req": med("server_sys_us_per_req"),
                "median_server_cpu_util": med("server_cpu_util"),
                "median_wrk_cpu_util": med("wrk_cpu_util"),
                "status_check_ok": all(r["status_check_ok"] for r in runs),
                "socket_errors": sum(r["errors_connect"] + r["errors_read"] + r["errors_write"]
                                     + r["errors_timeout"] for r in runs),
            }
            print(f"throughput: {args.label} {name}: {med('rps'):.0f} req/s, p50 {med('p50_us')} µs, "
                  f"p99 {med('p99_us')} µs, user {med('server_user_us_per_req'):.1f} µs/req",
                  file=sys.stderr)
        result["vm_hwm_kib"] = status_kib(server.pid, ("VmHWM",))["VmHWM"]
        result["threads"] = len(os.listdir(f"/proc/{server.pid}/task"))
        print(json.dumps(result, indent=1))
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
