#!/usr/bin/env python3
"""A/B of two or more builds on the same machine in the same minutes, interleaved.

  ab.py --rounds 5 --samples 200000 --wrk-secs 10 \
        --variant NAME=HANDLER_BENCH_EXE,CONTROL_API_BIN [--variant ...] > ab.json

On a shared VM the speed of the machine moves by 2-3x between runs minutes apart, so
figures from two separate `scripts/bench` runs cannot say whether a change made the
handler slower. Here every round measures every variant back to back, in an order that
rotates each round: the handler bench's percentile pass (criterion skipped with a
filter that matches nothing; `-` for a variant without one) and one wrk run per case
against `CONTROL_API_BIN serve` (throughput.py, RUST_LOG=info, dry run). The answer is
each figure's per-round values and median per variant, and each variant's median of
its per-round ratios to the first variant (a ratio within a round cancels most of the
machine's drift).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

from loopback import free_port

HERE = os.path.dirname(os.path.abspath(__file__))
RUST_ENV = ["AWS_EC2_METADATA_DISABLED=true", "AWS_REGION=us-east-1",
            "FLEET_DEPLOY_RATE_LIMIT=1000000/1", "RUST_LOG=info"]


def handler(exe, samples):
    """The percentile pass of one handler bench executable: {case/log: p99 and mean µs}."""
    with tempfile.TemporaryDirectory() as out:
        env = dict(os.environ, BENCH_RESULTS_DIR=out, BENCH_HANDLER_SAMPLES=str(samples))
        subprocess.run([exe, "--bench", "ab-no-criterion-case-matches-this"], env=env,
                       stdout=subprocess.DEVNULL, check=True)
        with open(os.path.join(out, "handler.json")) as f:
            rows = json.load(f)["percentiles"]
    figures = {}
    for r in rows:
        name = f"handler {r['case']}/{r['subscriber']}"
        figures[f"{name} p99 µs"] = r["p99_ns"] / 1e3
        figures[f"{name} mean µs"] = r["mean_ns"] / 1e3
    return figures


def server(binary, wrk_secs):
    """One wrk run per case against `binary serve`: user CPU per request and req/s."""
    cmd = [sys.executable, os.path.join(HERE, "throughput.py"), "--label", "ab",
           "--port", str(free_port()), "--runs", "1", "--duration", str(wrk_secs)]
    for kv in RUST_ENV:
        cmd += ["--env", kv]
    out = subprocess.run(cmd + ["--", binary, "serve"], capture_output=True, text=True,
                         check=True)
    cases = json.loads(out.stdout)["cases"]
    figures = {}
    for name, c in cases.items():
        if not c["status_check_ok"]:
            sys.exit(f"ab: {binary}: {name} answered with unexpected statuses")
        figures[f"serve {name} user CPU µs/req"] = c["median_user_us_per_req"]
        figures[f"serve {name} req/s"] = c["median_rps"]
    return figures


def measure(variant, samples, wrk_secs):
    figures = {}
    if variant["handler"] != "-":
        figures.update(handler(variant["handler"], samples))
    figures.update(server(variant["control_api"], wrk_secs))
    return figures


def parse_variant(text):
    name, _, paths = text.partition("=")
    exe, _, binary = paths.partition(",")
    if not (name and exe and binary):
        sys.exit(f"ab: --variant NAME=HANDLER_BENCH_EXE,CONTROL_API_BIN, not {text!r}")
    return {"name": name, "handler": exe, "control_api": binary}


def summarize(variants, rounds):
    base = variants[0]["name"]
    summary = {}
    for v in variants:
        name = v["name"]
        per_figure = {}
        for figure in rounds[0][name]:
            values = [r[name][figure] for r in rounds if figure in r[name]]
            ratios = [r[name][figure] / r[base][figure] for r in rounds
                      if figure in r[name] and figure in r[base] and r[base][figure]]
            per_figure[figure] = {
                "values": values,
                "median": statistics.median(values),
                "median_ratio_to_first": statistics.median(ratios) if ratios else None,
            }
        summary[name] = per_figure
    return summary


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--samples", type=int, default=200_000)
    ap.add_argument("--wrk-secs", type=int, default=10)
    ap.add_argument("--variant", action="append", required=True, type=parse_variant)
    ap.add_argument("--describe", action="append", default=[],
                    help="NAME=TEXT: what a variant is, for the report")
    args = ap.parse_args()
    if len(args.variant) < 2:
        sys.exit("ab: at least two variants")
    rounds = []
    for i in range(args.rounds):
        order = args.variant[i % len(args.variant):] + args.variant[:i % len(args.variant)]
        row = {}
        for v in order:
            print(f"ab: round {i + 1}/{args.rounds}: {v['name']}", file=sys.stderr)
            row[v["name"]] = measure(v, args.samples, args.wrk_secs)
        rounds.append(row)
    described = dict(d.split("=", 1) for d in args.describe)
    print(json.dumps({
        "rounds": args.rounds, "samples": args.samples, "wrk_secs": args.wrk_secs,
        "variants": [dict(v, describe=described.get(v["name"], "")) for v in args.variant],
        "summary": summarize(args.variant, rounds),
    }, indent=1))


if __name__ == "__main__":
    main()
