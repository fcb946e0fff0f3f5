#!/usr/bin/env python3
"""Builds the benchmark report (Markdown) from target/bench-results/*.json.

  report.py --results DIR --root REPO [--write BENCHMARKS.md]

Prints the report; with --write also writes it. Every number comes from the result files
of the last `scripts/bench` run; the prose around them is fixed here.
"""

import argparse
import glob
import json
import os

MIB = 1024 * 1024


def load(results, name):
    path = os.path.join(results, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        text = f.read().strip()
    return json.loads(text) if text else None


def ms(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f} ms"


def us(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f} µs"


def mib(kib):
    return "—" if kib is None else f"{kib / 1024:.1f} MiB"


def ratio(a, b, digits=2):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.{digits}f}×"


def verdict(value, target, floor=None):
    if value is None:
        return "not measured"
    if value < target:
        return "**met**"
    if floor is not None and value < floor:
        return "**missed target** (within floor)"
    return "**MISSED**" + (" (over floor)" if floor is not None else "")


def pages(case, status):
    """DescribeInstances pages moto should answer: it pages by reservation."""
    size = status.get("page_size", 1000)
    return max(1, -(-case["reservations"] // size))


def criterion_means(root):
    """criterion's mean estimate (ns) and 95% CI per benchmark id."""
    out = {}
    for bench in glob.glob(os.path.join(root, "target/bench-build/criterion/handle/*/new/benchmark.json")):
        with open(bench) as f:
            meta = json.load(f)
        est_path = os.path.join(os.path.dirname(bench), "estimates.json")
        if not os.path.exists(est_path):
            continue
        with open(est_path) as f:
            est = json.load(f)["mean"]
        out[meta.get("function_id") or meta.get("title")] = (
            est["point_estimate"],
            est["confidence_interval"]["lower_bound"],
            est["confidence_interval"]["upper_bound"],
        )
    return out


def ab_section(w, ab):
    """The A/B step (ab.py): each variant's median figure and its median per-round ratio
    to the first variant."""
    variants = ab["variants"]
    first = variants[0]["name"]
    w("## 7. A/B: builds measured side by side")
    w("")
    w(f"`scripts/bench --against REV` (`scripts/bench-lib/ab.py`): {ab['rounds']} rounds; in "
      "each, every variant is measured back to back, in an order that rotates per round: the "
      f"handler bench's percentile pass ({ab['samples']:,} calls per case, criterion skipped) "
      f"and one {ab['wrk_secs']} s wrk run per case against its `control-api serve` "
      "(RUST_LOG=info, dry run; as in section 3). Figures from separate runs of this script "
      "cannot be compared (the machine's speed moved 2–3× between runs); a ratio within one "
      "round can. Ratio = the median over rounds of the variant's figure divided by the "
      f"first variant's (`{first}`) in the same round.")
    w("")
    for v in variants:
        w(f"- `{v['name']}`: {v.get('describe') or v['control_api']}")
    w("")
    names = [v["name"] for v in variants]
    head = " | ".join(f"{n}: median (min–max)" for n in names)
    w(f"| figure | {head} | " + " | ".join(f"{n} / {first}" for n in names[1:]) + " |")
    w("|---" * (1 + 2 * len(names) - 1) + "|")
    summary = ab["summary"]
    for figure in summary[first]:
        cells = []
        for n in names:
            f = summary[n].get(figure)
            cells.append("—" if f is None else
                         f"{f['median']:,.2f} ({min(f['values']):,.2f}–{max(f['values']):,.2f})")
        ratios = []
        for n in names[1:]:
            f = summary[n].get(figure)
            r = f and f.get("median_ratio_to_first")
            ratios.append("—" if r is None else f"{r:.2f}×")
        w(f"| {figure} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
    w("")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--write")
    args = ap.parse_args()
    r = args.results
    meta = load(r, "meta.json") or {}
    init_rust = load(r, "init_rust.json")
    init_node = load(r, "init_node.json")
    init_rust_py = load(r, "init_rust_python.json")
    handler = load(r, "handler.json")
    handler_node = load(r, "handler_node.json")
    wrk_info = load(r, "wrk_rust_info.json")
    wrk_warn = load(r, "wrk_rust_warn.json")
    wrk_node = load(r, "wrk_node.json")
    status = load(r, "status.json")
    fleet_help = load(r, "fleet_help.json")
    node_help = load(r, "node_help.json")
    artifact = load(r, "artifact.json") or {}
    crit = criterion_means(args.root)

    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("Numbers from one script, `scripts/bench` (`scripts/bench --write` regenerates this file "
      "from a fresh run; `--report-only --write` from the last run's `target/bench-results/`). "
      "These are benchmarks, not tests: no number here fails CI, and `scripts/test` does not "
      "run them. Every step talks to loopback only. Each figure is the median of several runs "
      "unless it says otherwise.")
    w("")
    w("## Machine and run")
    w("")
    w("| | |")
    w("|---|---|")
    w(f"| date | {meta.get('date', '—')} |")
    modified = meta.get("modified") or []
    dirty = (" plus uncommitted changes to " + ", ".join(f"`{m}`" for m in modified)) if modified else ""
    w(f"| commit | `{meta.get('commit', '—')}`{dirty} |")
    w(f"| CPU | {meta.get('cpu', '—')}, `nproc` = {meta.get('nproc', '—')} |")
    w(f"| memory | {mib(meta.get('mem_kib')) if meta.get('mem_kib') else '—'} |")
    w(f"| kernel | {meta.get('kernel', '—')} |")
    for run in meta.get("runs", []):
        w(f"| run {run['date']} | steps {run['steps'].replace(',', ', ')}; load average at start "
          f"{' '.join(run['loadavg'])} |")
    w(f"| toolchain | {meta.get('rustc', '—')}; Node.js {meta.get('node', '—')}; "
      f"{meta.get('wrk') or 'wrk'}; {meta.get('hyperfine') or 'hyperfine'} |")
    w(f"| release profile | `opt-level=3` for this workspace's crates, `\"s\"` for dependencies, fat LTO, `codegen-units=1`, `panic=abort`, `strip` (root Cargo.toml) |")
    if meta.get("quick"):
        w("| mode | `--quick`: fewer repetitions, noisier numbers |")
    w("")
    w("The 2 cores are shared: with the load generator (wrk takes most of one core), and "
      "with whatever else runs on the machine (other engineers' builds here; see the load "
      "averages). Throughput and tail latencies are therefore lower bounds for a quiet machine; "
      "ratios against the Node.js baseline, measured in the same run under the same load, are "
      "the more stable figure.")
    w("")

    # ------------------------------------------------------------- summary
    w("## Summary")
    w("")
    w("| # | what | target (floor) | ours | Node.js baseline | ours / Node | verdict |")
    w("|---|---|---|---|---|---|---|")
    ri = init_rust or {}
    ni = init_node or {}
    w(f"| 1 | Lambda init, process start → first `/next` | < 10 ms (25 ms) | {ms(ri.get('median_init_ms'), 2)} "
      f"| {ms(ni.get('median_init_ms'), 2)} | {ratio(ri.get('median_init_ms'), ni.get('median_init_ms'))} "
      f"| {verdict(ri.get('median_init_ms'), 10, 25)} |")
    rs, ns = ri.get("median_start_to_response_ms"), ni.get("median_start_to_response_ms")
    w(f"| 1 | cold start → first answer (init, SSM read, whole deploy path) | | {ms(rs, 2)} "
      f"| {ms(ns, 2)} | {ratio(rs, ns)} | |")
    rh, nh = ri.get("max_vm_hwm_kib"), ni.get("max_vm_hwm_kib")
    w(f"| 1 | peak RSS (VmHWM) after the first deploy | < 16 MiB (32 MiB) | {mib(rh)} | {mib(nh)} "
      f"| {ratio(rh, nh)} | {verdict(rh / 1024 if rh else None, 16, 32)} |")
    hp = {(x["case"], x["subscriber"]): x for x in (handler or {}).get("percentiles", [])}
    hn = {(x["case"], x["subscriber"]): x for x in (handler_node or {}).get("percentiles", [])}
    worst = max((x["p99_ns"] for (c, s), x in hp.items() if s == "no-subscriber"), default=None)
    worst_log = max((x["p99_ns"] for (c, s), x in hp.items() if s == "json-sink"), default=None)
    worst_node = max((x["p99_ns"] for (c, s), x in hn.items() if s == "no-log"), default=None)
    w(f"| 2 | handler p99, worst case, no subscriber | < 50 µs | {us(worst / 1e3 if worst else None, 2)} "
      f"| {us(worst_node / 1e3 if worst_node else None, 2)} | {ratio(worst, worst_node)} "
      f"| {verdict(worst / 1e3 if worst else None, 50)} |")
    w(f"| 2 | handler p99, worst case, JSON audit line to a sink | < 50 µs | "
      f"{us(worst_log / 1e3 if worst_log else None, 2)} | | | {verdict(worst_log / 1e3 if worst_log else None, 50)} |")
    ref_info = (wrk_info or {}).get("cases", {}).get("refused_auth", {})
    ref_warn = (wrk_warn or {}).get("cases", {}).get("refused_auth", {})
    ref_node = (wrk_node or {}).get("cases", {}).get("refused_auth", {})
    rps = ref_info.get("median_rps")
    nrps = ref_node.get("median_rps")
    if rps:
        w(f"| 3 | refused requests/s over loopback (RUST_LOG=info) | ≥ 20,000 | {rps:,.0f} | "
          f"{nrps:,.0f} | {ratio(rps, nrps)} | {'**met**' if rps >= 20000 else '**MISSED**'} |")
    else:
        w("| 3 | refused requests/s over loopback | ≥ 20,000 | — | — | — | not measured |")
    cpu_ours = ref_info.get("median_user_us_per_req")
    cpu_node = ref_node.get("median_user_us_per_req")
    w(f"| 3 | user CPU per refused request | < ⅓ of Node | {us(cpu_ours, 1)} | {us(cpu_node, 1)} "
      f"| {ratio(cpu_ours, cpu_node)} | {'**met**' if cpu_ours and cpu_node and cpu_ours < cpu_node / 3 else '**MISSED**'} |")
    dep_info = (wrk_info or {}).get("cases", {}).get("dry_run_deploy", {})
    dep_node = (wrk_node or {}).get("cases", {}).get("dry_run_deploy", {})
    cpu_ours_d = dep_info.get("median_user_us_per_req")
    cpu_node_d = dep_node.get("median_user_us_per_req")
    dep_what = "user CPU per dry-run deploy"
    w(f"| 3 | {dep_what} | < ⅓ of Node | {us(cpu_ours_d, 1)} | {us(cpu_node_d, 1)} "
      f"| {ratio(cpu_ours_d, cpu_node_d)} | {'**met**' if cpu_ours_d and cpu_node_d and cpu_ours_d < cpu_node_d / 3 else '**MISSED**'} |")
    if status:
        sizes = " / ".join(f"{c['instances']:,}" for c in status["cases"])
        calls = " / ".join(("/".join(str(x) for x in c["ec2_calls"])) + ("" if c["all_ok"] else " (failed)")
                           for c in status["cases"])
        per_page = all(c["ec2_calls"] == [pages(c, status) + 2] for c in status["cases"] if c["all_ok"])
        failed = [c for c in status["cases"] if not c["all_ok"]]
        verdict4 = ("**not met**" if failed else "**met**" if per_page else "**calls do not follow pages**") + (
            ": one DescribeInstances per page + 2 DescribeImages" if per_page else "") + (
            "; **" + ", ".join(f"{c['instances']:,}" for c in failed) + " instances: "
            + "; ".join(sorted({e for c in failed for e in c["errors"]})) + "**" if failed else "")
        w(f"| 4 | EC2 calls per status at {sizes} instances (moto) | grow with pages, not instances | "
          f"{calls} | n/a | | {verdict4} |")
    if fleet_help:
        fh = fleet_help["results"][0]
        nhm = node_help["results"][0]["median"] * 1e3 if node_help else None
        w(f"| 5 | `fleet --help` start → exit | < 5 ms | {ms(fh['median'] * 1e3, 2)} | "
          f"{ms(nhm, 1)} (`node -e 0`) | {ratio(fh['median'] * 1e3, nhm)} | {verdict(fh['median'] * 1e3, 5)} |")
    else:
        w("| 5 | `fleet --help` start → exit | < 5 ms | — | — | — | not measured (fleet CLI did not build) |")
    zb = artifact.get("zip_bytes")
    w(f"| 6 | zipped x86_64 `bootstrap` | < 8 MiB | {mib(zb / 1024) if zb else '—'} | n/a | | "
      f"{verdict(zb / MIB if zb else None, 8)} |")
    w("")

    # ------------------------------------------------------------- 1
    w("## 1. Lambda init")
    w("")
    emulator = ri.get("emulator")
    if emulator == "cargo-lambda":
        w("**Runtime API: cargo-lambda's emulator** (`cargo lambda watch --only-lambda-apis`, "
          "cargo-lambda 1.9 from its PyPI wheel, which carries the prebuilt binary: building "
          "it with `cargo install` would take longer than this whole run on 2 shared cores, and "
          "the wheel is the same release). For each run the harness "
          "(`scripts/bench-lib/lambda_init.py`) queues one real HTTP request at the emulator's "
          "Function URL endpoint (`/lambda-url/_/`, with the body and `Authorization` header of "
          "`control-api/tests/fixtures/deploy_bearer.json`): the emulator builds the Function URL "
          "event itself. Then it spawns the release `bootstrap` with `AWS_LAMBDA_RUNTIME_API` "
          "pointing at a transparent TCP relay in front of the emulator; the relay only "
          "timestamps the bytes the function sends (its first `GET …/runtime/invocation/next`, "
          "its `POST …/response`). The emulator listens under `/.rt`, so the variable is "
          "`http://127.0.0.1:PORT/.rt` rather than Lambda's bare `host:port`; the runtime client "
          "accepts both.")
    else:
        w("**Runtime API: the minimal emulator in `scripts/bench-lib/lambda_init.py`** "
          "(cargo-lambda could not be installed or run here): a Python `http.server` that "
          "answers the first `GET /2018-06-01/runtime/invocation/next` with the saved Function "
          "URL event `control-api/tests/fixtures/deploy_bearer.json` and records that GET and "
          "the response POST.")
    w("")
    ssm = ri.get("ssm")
    w("Init = from just before the harness spawns the process (monotonic clock, so it "
      "includes fork/exec and dynamic loading) to the first `/next` reaching the relay. The "
      "environment is Lambda's: `AWS_LAMBDA_FUNCTION_MEMORY_SIZE=128`, `AWS_REGION=us-east-1`, "
      "`AWS_EC2_METADATA_DISABLED=true`, "
      + ("the two tokens as SSM SecureString parameters named by `CONTROL_API_TOKEN_PARAMETER` "
         "and `GITHUB_TOKEN_PARAMETER` (the Lambda takes secrets only from SSM), served by moto "
         "on loopback under `scripts/with-moto`. Init makes no network call: the function reads "
         "both parameters in one `GetParameters` call on its first event, so that call is in the "
         "first invocation's time and in start → response, not in init; "
         if ssm else "`CONTROL_API_TOKEN`, `GITHUB_TOKEN` (a dummy), ")
      + "`GITHUB_API_URL` pointing at a loopback stub that answers the commit look-up of "
      "`GITHUB_REF` (the pinned revision), the in-flight guard's runs read (no state bucket, so "
      "no lease) and the workflow dispatch with `return_run_details` (200 with the run), so the "
      "deploy completes "
      "with its real outbound HTTP calls (every run was checked to answer 200 and to reach the "
      "stub's dispatch once). Peak RSS is `VmHWM` from `/proc/<pid>/status`, read when "
      "the response POST arrives. The Node.js baseline runs the same handler as a minimal custom "
      "runtime loop (`node-baseline.js lambda`, plain `http`, no dependencies) under the same "
      "harness and emulator"
      + (", reading its token from the environment (a Node function reading SSM would first "
         "load the AWS SDK for JavaScript; not measured), so the init ratio favours Node."
         if ssm else ".")) 
    w("")
    if init_rust and init_node:
        w(f"| {ri['runs']} runs, median (min–max) | target (floor) | ours | Node.js | ours / Node |")
        w("|---|---|---|---|---|")
        w(f"| init: start → first `/next` | < 10 ms (25 ms) | {ms(ri['median_init_ms'], 2)} "
          f"({ri['min_init_ms']:.2f}–{ri['max_init_ms']:.2f}) | {ms(ni['median_init_ms'], 2)} "
          f"({ni['min_init_ms']:.2f}–{ni['max_init_ms']:.2f}) | {ratio(ri['median_init_ms'], ni['median_init_ms'])} |")
        w(f"| first invocation: `/next` → response POST (ours: SSM read, app build, guard, dispatch, run look-up) | | "
          f"{ms(ri['median_first_invoke_ms'], 2)} | {ms(ni['median_first_invoke_ms'], 2)} "
          f"| {ratio(ri['median_first_invoke_ms'], ni['median_first_invoke_ms'])} |")
        w(f"| start → response | | {ms(ri['median_start_to_response_ms'], 2)} | "
          f"{ms(ni['median_start_to_response_ms'], 2)} | "
          f"{ratio(ri['median_start_to_response_ms'], ni['median_start_to_response_ms'])} |")
        w(f"| peak RSS (VmHWM), largest of the runs | < 16 MiB (32 MiB) | {mib(ri['max_vm_hwm_kib'])} "
          f"| {mib(ni['max_vm_hwm_kib'])} | {ratio(ri['max_vm_hwm_kib'], ni['max_vm_hwm_kib'])} |")
        if ri.get("median_rss_anon_kib") is not None:
            w(f"| resident at the response, median: anonymous (heap, stacks) / file pages (code, read-only data) | | "
              f"{mib(ri['median_rss_anon_kib'])} / {mib(ri['median_rss_file_kib'])} "
              f"| {mib(ni.get('median_rss_anon_kib'))} / {mib(ni.get('median_rss_file_kib'))} | |")
        if init_rust_py:
            w(f"| cross-check: ours against the minimal Python Runtime API | | "
              f"{ms(init_rust_py['median_init_ms'], 2)} init, {mib(init_rust_py['max_vm_hwm_kib'])} | | |")
        w("")
    w("Not emulated: Lambda's Firecracker sandbox, its 128 MB memory cgroup and the CPU share "
      "that comes with it (a 128 MB Lambda gets a fraction of one vCPU, so real init is "
      "slower than here), fetching and unpacking the code zip, and the `provided.al2023` image. "
      "AWS reports `Init Duration` from a comparable start point; compare trends, not "
      "absolute numbers. The deployed function is arm64; this is the x86_64 build.")
    w("")

    # ------------------------------------------------------------- 2
    w("## 2. Handler cost without network")
    w("")
    w("`cargo bench -p control-api --bench handler` (`control-api/benches/handler.rs`): "
      "`Handler::handle` (the HTTP edge, `inbound/http.rs`) called directly — method, size, "
      "constant-time auth over SHA-256 digests, JSON parse, validation, registry, policy, "
      "the rate limit, the in-flight guard, the fresh UUIDv7 request id, JSON encoding of the "
      "reply, and the audit `tracing` event — with the `test-support` doubles: "
      "`NoopWorkflow` (names `GITHUB_REF`'s commit, accepts every dispatch as a 204 and lists "
      "its run for the run look-up, built from literals), a `FakeFleet` that deploys never "
      "call, and no "
      "bootstrap or state bucket (so no lease, lock or idempotency object). The "
      "future is polled on the bench thread with a no-op waker (every port answers at once), "
      "so no async runtime is in the numbers. Criterion gives the mean with its 95% interval; "
      "a second pass times each call on its own (`Instant` around one `handle`, "
      f"{(handler or {}).get('percentiles', [{}])[0].get('n', 0):,} calls per case after a "
      "warm-up) for the percentiles. The bench profile is the release profile (fat LTO, "
      "`codegen-units=1`), with two differences: Cargo builds bench targets with "
      "`panic=unwind` (the binaries abort; nothing panics on these paths), and `scripts/bench` "
      "lowers the optimization of the AWS SDK service crates for the bench build only "
      "(`aws-sdk-ec2`, `-s3`, `-ssm`, `-sts`, `-sso`, `-ssooidc`: `opt-level=1`, "
      "`codegen-units=16`), which the bench never calls, to save a quarter of an hour of build.")
    w("")
    w("With no subscriber installed, the audit line is a disabled `tracing` callsite (one "
      "relaxed atomic load): near-free, so those rows are the handler alone. The *json-sink* "
      "rows install the Lambda's subscriber configuration (`fmt().json()`, flattened events, "
      "no spans, `info` filter, as `telemetry::init` sets it) writing to `io::sink()`: the cost "
      "of formatting the audit line, without the I/O. (In production the line goes to a "
      "`tracing-appender` non-blocking writer, so the write itself is off the request path.)")
    w("")
    w("The Node.js columns are the same three cases through the baseline's `handle` in "
      "process (`node-baseline.js bench`, `process.hrtime` per call, after a warm-up that lets "
      "V8 optimize; its *json-sink* builds the audit line with `JSON.stringify` and drops it).")
    w("")
    if handler:
        w("| case | log | criterion mean [95% CI] | mean | p50 | p99 | p99.9 | Node p99 | ours / Node (p99) |")
        w("|---|---|---|---|---|---|---|---|---|")
        for x in handler["percentiles"]:
            key = f"{x['case']}/{x['subscriber']}"
            c = crit.get(key)
            cm = f"{c[0] / 1e3:.2f} µs [{c[1] / 1e3:.2f}, {c[2] / 1e3:.2f}]" if c else "—"
            node_key = (x["case"], "no-log" if x["subscriber"] == "no-subscriber" else "json-sink")
            nx = hn.get(node_key)
            w(f"| {x['case']} | {x['subscriber']} | {cm} | {x['mean_ns'] / 1e3:.2f} µs | "
              f"{x['p50_ns'] / 1e3:.2f} µs | {x['p99_ns'] / 1e3:.2f} µs | {x['p999_ns'] / 1e3:.2f} µs | "
              f"{us(nx['p99_ns'] / 1e3, 2) if nx else '—'} | {ratio(x['p99_ns'], nx['p99_ns']) if nx else '—'} |")
        w("")
        w("Target: p99 < 50 µs for every case.")
        w("")

    # ------------------------------------------------------------- 3
    w("## 3. Local server throughput (loopback)")
    w("")
    conn = (wrk_info or {}).get("connections", 32)
    dur = (wrk_info or {}).get("duration_s", 10)
    runs = len(ref_info.get("runs", [])) if ref_info else 0
    w(f"`wrk -t1 -c{conn} -d{dur}s --latency` with `scripts/bench-lib/wrk-post.lua` (POST body and "
      f"`Authorization` header; statuses checked through wrk's non-2xx count), after a 2 s "
      f"warm-up, {runs} runs per row, median. Server: `target/release/control-api serve` on "
      "127.0.0.1 (`CONTROL_API_TOKEN` set, no `GITHUB_TOKEN` → dry-run dispatcher, stdout and "
      "stderr to `/dev/null`), tokio's multi-threaded runtime (2 workers here). Node: "
      "`node-baseline.js serve`, one process, its audit line to stderr = `/dev/null`. wrk runs on "
      "the same 2 cores and takes most of one of them, so the server has about one core. CPU per "
      "request is the server's `utime`/`stime` delta from `/proc/<pid>/stat` over the wrk run, "
      "divided by the requests served.")
    w("")
    w("*refused* = wrong token (401); *deploy* = a valid deploy request answered by the dry-run "
      "dispatch (200): auth, parse, policy, the rate limiter, the in-flight guard (skipped: a "
      "dry run has no runs to read), the dry-run dispatch and the answer (the dry run's own "
      "log line is `debug`, so at `info` the audit line is each request's only line). The "
      "server runs with "
      "`FLEET_DEPLOY_RATE_LIMIT=1000000/1` so the limiter admits every request but still does "
      "its bookkeeping (at the default 10 per 10 minutes all but ten would be 429s). The "
      "Node.js baseline answers each deploy with its dry-run dispatch (200) too. "
      "`RUST_LOG=info` writes the text audit line per request; `warn` writes none.")
    w("")
    w("| server | case | req/s | p50 | p99 | user CPU / req | sys CPU / req | server CPU | wrk CPU |")
    w("|---|---|---|---|---|---|---|---|---|")
    for label, res in (("ours, RUST_LOG=info", wrk_info), ("ours, RUST_LOG=warn", wrk_warn),
                       ("Node.js baseline", wrk_node)):
        if not res:
            continue
        for name, c in res["cases"].items():
            flag = "" if c["status_check_ok"] and c["socket_errors"] == 0 else " ⚠"
            shown = name.replace("_", " ")
            w(f"| {label} | {shown}{flag} | {c['median_rps']:,.0f} | "
              f"{c['median_p50_us'] / 1e3:.2f} ms | {c['median_p99_us'] / 1e3:.2f} ms | "
              f"{c['median_user_us_per_req']:.1f} µs | {c['median_sys_us_per_req']:.1f} µs | "
              f"{c['median_server_cpu_util'] * 100:.0f}% | {c['median_wrk_cpu_util'] * 100:.0f}% |")
    w("")
    if wrk_info and wrk_node:
        w("| ratio ours (info) / Node | req/s | p99 | user CPU / req |")
        w("|---|---|---|---|")
        for name in ("refused_auth", "dry_run_deploy"):
            a, b = wrk_info["cases"].get(name), wrk_node["cases"].get(name)
            if a and b:
                shown = name.replace("_", " ")
                w(f"| {shown} | {ratio(a['median_rps'], b['median_rps'])} | "
                  f"{ratio(a['median_p99_us'], b['median_p99_us'])} | "
                  f"{ratio(a['median_user_us_per_req'], b['median_user_us_per_req'])} |")
        w("")
        w(f"Peak RSS after the runs: ours {mib(wrk_info.get('vm_hwm_kib'))} "
          f"({wrk_info.get('threads')} threads), Node {mib(wrk_node.get('vm_hwm_kib'))}.")
        w("")
    w("Not emulated: TLS, the Function URL front end and IAM auth: in production each request "
      "is one Lambda invocation, not a keep-alive connection to a long-running server. This "
      "measures the handler plus hyper/tokio (or Node's `http`) on loopback.")
    w("")

    # ------------------------------------------------------------- 4
    w("## 4. Status at scale (moto)")
    w("")
    registry_max = (status or {}).get("registry_max", 100)
    w("`scripts/bench-lib/moto_status.py`, run with the moto venv's Python (boto3): starts moto "
      "5.2.5 (the version `scripts/with-moto` installs) on a free loopback port, as "
      "`with-moto` does, but keeps moto's access log (which `with-moto` deletes and does not "
      "expose) and turns on moto's request recorder around each status call to name the "
      "calls. For each size it resets moto, registers a fleet image (tag "
      "`clawdinator=true`), and launches the instances tagged `app=clawdinator` in reservations "
      f"of {(status or {}).get('per_reservation', 10)}, half on the fleet image. The first "
      f"{registry_max} of them at most are the registry's hosts (a generated `FLEET_REGISTRY` "
      "file, `t3.large` like the instances), the rest unmanaged. It creates the state bucket "
      "(`FLEET_STATE_BUCKET`) and writes a heartbeat from its current instance for every "
      "registry host but the last (`heartbeats/<id>.json`, shaped as the API stores one, "
      "`service: active`, received at seeding time), so status judges readiness for every "
      "host: the seeded ones `ready`, the last one `booting` (just launched, no heartbeat yet). "
      "First moto alone answers the product's "
      f"DescribeInstances (same filters, `MaxResults={(status or {}).get('page_size', 1000)}`, "
      "every page) through boto3, untimed-out, for scale. Then a fresh `control-api serve` "
      "(release, `RUST_LOG=warn`, `AWS_ENDPOINT_URL` = moto, "
      f"`FLEET_EC2_PAGE_SIZE={(status or {}).get('page_size', 1000)}`, "
      "`FLEET_HEARTBEAT_STALE_SECS=3600` so that no seeded heartbeat ages into `stale` during "
      "the slow 1,000-instance case) answers "
      "`{\"action\":\"status\"}`: one warm-up, then the timed requests. EC2 and S3 calls per "
      "request are counted and named by moto's request recorder (switched on only around each "
      "status request) and cross-checked against moto's access log; every answer's readiness "
      "is checked against what was seeded; after a request the harness "
      "waits until moto has answered every call it received, so an abandoned (timed-out) call "
      "does not slow the next request.")
    w("")
    w("Pages: `MaxResults` is `FLEET_EC2_PAGE_SIZE` (the product's default is 1,000). moto "
      "pages DescribeInstances by *reservation* (EC2 by instance), so with reservations of 10 "
      "and a page size of 20 each page holds 200 instances: 10 and 100 instances are one page, "
      "1,000 instances five pages. The expected count is one DescribeInstances per page plus two "
      "DescribeImages. At the default page size moto would have to render all 1,000 instances "
      "in one answer, which takes it longer than the product's 4 s per attempt, so the "
      "retried page never finishes (`502 aws_unavailable` after 8 s, measured on `02bbb43`); "
      "that is what `FLEET_EC2_PAGE_SIZE` is for.")
    w("")
    if status:
        w("| instances | registry hosts (heartbeats) | reservations | pages (moto) | EC2 calls per status | EC2 Actions | S3 calls per status | S3 operations | readiness | moto alone: DescribeInstances | status wall time (moto), median (min–max) | answer |")
        w("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for c in status["cases"]:
            acts = ", ".join(c["ec2_actions"])
            ans = "200 ok, all instances listed" if c["all_ok"] else "**" + "; ".join(c["errors"]) + "**"
            seen = {x.get("instances_seen") for x in c["runs"] if x.get("ok")}
            if c["all_ok"] and seen != {c["instances"]}:
                ans = f"200 ok, {sorted(seen)} listed"
            s3_calls = "/".join(str(x) for x in c.get("s3_calls", [])) or "—"
            s3_ops = ", ".join(f"{k} ×{v}" for k, v in (c.get("s3_actions") or {}).items()) or "—"
            ready = ", ".join(f"{k} {v}" for k, v in (c.get("readiness") or {}).items() if v) or "—"
            if "readiness_ok" in c:
                ready += " (as seeded)" if c["readiness_ok"] else " (**not as seeded**)"
            hosts = (f"{c['registry_hosts']:,} ({c['heartbeats']:,})" if "registry_hosts" in c
                     else "3 (none)")
            w(f"| {c['instances']:,} | {hosts} | {c['reservations']:,} | {pages(c, status)} | "
              f"{'/'.join(str(x) for x in c['ec2_calls'])} | {acts} | {s3_calls} | {s3_ops} | {ready} | "
              f"{c['moto_describe_instances_ms']:,.0f} ms, {c['moto_describe_instances_pages']} page(s) | "
              f"{c['median_wall_ms']:,.0f} ms ({c['min_wall_ms']:,.0f}–{c['max_wall_ms']:,.0f}) | {ans} |")
        w("")
        w("Calls: one DescribeInstances per page plus two DescribeImages (the newest fleet image; "
          "the details of the images in use): 100 times the instances cost five pages, not 100 "
          "times the calls. S3: one GetObject per registry host (its `heartbeats/<id>.json`, a "
          "missing one a 404, all at once) plus one ListObjectsV2 of `locks/` (the locks in "
          "force); S3 calls grow with the registry, not with the instances, and with "
          f"{registry_max} registry hosts at most the 1,000-instance case reads as many as the "
          "100-instance one. The readiness column is the answer's `summary` of the last timed "
          "request (zero counts left out). The wall time is "
          "moto's: it builds every EC2 XML answer in Python and is one to two orders of magnitude "
          "slower than EC2 for large answers; it is not a prediction of production latency. The "
          "product's bounds are 2 s connect, 4 s per attempt, 3 attempts within 8 s per call, and "
          "a 20 s deadline per whole answer.")
        w("")
    w("Not emulated: EC2's and S3's own latency, throttling and EC2's instance-count paging; IAM.")
    w("")

    # ------------------------------------------------------------- 5
    w("## 5. `fleet` CLI")
    w("")
    if fleet_help:
        fh = fleet_help["results"][0]
        w(f"`hyperfine -N --warmup 10 --runs {len(fh['times'])} 'target/release/fleet --help'` "
          "(no shell in between). For scale, the same for `node -e 0`, the floor of any Node CLI.")
        w("")
        w("| command | target | median | mean ± σ | min | max |")
        w("|---|---|---|---|---|---|")
        w(f"| `fleet --help` | < 5 ms | {fh['median'] * 1e3:.2f} ms | {fh['mean'] * 1e3:.2f} ± "
          f"{fh['stddev'] * 1e3:.2f} ms | {fh['min'] * 1e3:.2f} ms | {fh['max'] * 1e3:.2f} ms |")
        if node_help:
            nh0 = node_help["results"][0]
            w(f"| `node -e 0` | | {nh0['median'] * 1e3:.2f} ms | {nh0['mean'] * 1e3:.2f} ± "
              f"{nh0['stddev'] * 1e3:.2f} ms | {nh0['min'] * 1e3:.2f} ms | {nh0['max'] * 1e3:.2f} ms |")
        fs = (status or {}).get("fleet_status")
        if fs:
            w(f"| `fleet status` → local server → moto (10 instances) | | {fs['median_ms']:.1f} ms | | "
              f"{fs['min_ms']:.1f} ms | {fs['max_ms']:.1f} ms |")
            w("")
            w(f"`fleet status` ran {fs['runs']} times after one warm-up, with `FLEET_CONTROL_URL` "
              f"= the local server, the token in `FLEET_CONTROL_TOKEN` and no AWS credentials (so "
              f"no SigV4); exit code {fs['exit_code']}; first line: "
              f"`{(fs['stdout_head'] or fs['stderr_head'] or [''])[0][:100]}`. Most of its time is "
              f"the server's EC2 calls to moto.")
        w("")
    else:
        w("The `fleet` CLI (being built in `fleet-skill/`) did not build at the time of this run: "
          "not measured.")
        w("")

    # ------------------------------------------------------------- 6
    w("## 6. Artifact")
    w("")
    w("`scripts/build-lambda-zip` (release profile above; deterministic zip, `bootstrap` at the "
      "root, `zip -9` or Python's zipfile at level 9). x86_64 only: the Lambda is arm64, but "
      "this machine has no other Rust target installed and cannot download one, so the "
      "arm64 size is not measured.")
    w("")
    w("| artifact | target | size |")
    w("|---|---|---|")
    if zb:
        w(f"| `target/lambda/control-api.zip` (x86_64) | < 8 MiB | {zb / MIB:.2f} MiB ({zb:,} bytes) |")
    else:
        w("| `target/lambda/control-api.zip` | < 8 MiB | build-lambda-zip failed (see artifact.log) |")
    if artifact.get("bootstrap_bytes"):
        w(f"| `bootstrap` binary, stripped | | {artifact['bootstrap_bytes'] / MIB:.2f} MiB |")
    if artifact.get("control_api_bytes"):
        w(f"| `control-api` binary (local server and tools) | | {artifact['control_api_bytes'] / MIB:.2f} MiB |")
    if artifact.get("fleet_bytes"):
        w(f"| `fleet` binary | | {artifact['fleet_bytes'] / MIB:.2f} MiB |")
    w("")

    ab = load(r, "ab.json")
    if ab:
        ab_section(w, ab)

    # ------------------------------------------------------------- notes
    notes_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "NOTES.md")
    if os.path.exists(notes_path):
        with open(notes_path) as f:
            w(f.read().rstrip())
            w("")

    text = "\n".join(L) + "\n"
    print(text)
    if args.write:
        with open(args.write, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
