#!/usr/bin/env python3
"""Lambda init: process start to the first GET /2018-06-01/runtime/invocation/next.

Used by scripts/bench. For each run:
  1. one Function URL invocation is queued at the Runtime API (so the first /next is
     answered at once);
  2. the function process is spawned (t0 = just before spawn, monotonic clock);
  3. the time its first `GET .../runtime/invocation/next` reaches us is t_next,
     the time its `POST .../invocation/<id>/response` reaches us is t_resp, and the
     process's peak RSS (VmHWM in /proc/<pid>/status) is read at that moment;
  4. the process is killed (it is blocked in its second /next by then).

Runtime API, either:
  --emulator cargo-lambda: `cargo lambda watch --only-lambda-apis` (cargo-lambda's own
      Runtime API and Function URL emulator). A transparent TCP relay in front of it only
      timestamps the bytes the function sends; the invocation is a real HTTP request to
      the emulator's /lambda-url/ endpoint, which builds the Function URL event itself.
  --emulator python: a minimal Runtime API in this file that serves a saved Function URL
      event (control-api/tests/fixtures/*.json) to the first /next. Each run's process
      gets its own path prefix (AWS_LAMBDA_RUNTIME_API=http://127.0.0.1:PORT/run-N), so a
      killed process's late second /next cannot take the next run's event.

GitHub is a stub on loopback that answers 204 to the workflow dispatch, so an accepted
deploy completes with its real outbound HTTP call.

Prints one JSON object with every run and the medians.
"""

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from loopback import free_port
from procfs import status_kib


def now_ns():
    return time.monotonic_ns()


class Run:
    """What one function process did, as seen on the wire."""

    def __init__(self):
        self.pid = None
        self.t0 = None
        self.t_next = None
        self.t_resp = None
        self.hwm_kib = None
        # What is resident at that moment: anonymous (heap, stacks, relocated data) and
        # file pages (the binary's own code and read-only data, shared libraries).
        self.anon_kib = None
        self.file_kib = None
        self.response_body = b""
        self.errors = []
        self.done = threading.Event()
        self.killed = threading.Event()
        self.served = False

    def saw(self, data):
        """Called with bytes the function sent, in order."""
        t = now_ns()
        if self.t_next is None and b"/runtime/invocation/next" in data:
            self.t_next = t
        elif self.t_resp is None and re.search(rb"POST [^ ]*/runtime/invocation/[^/ ]+/response ", data):
            self.t_resp = t
            if self.pid:
                sizes = status_kib(self.pid)
                self.hwm_kib = sizes["VmHWM"]
                self.anon_kib, self.file_kib = sizes["RssAnon"], sizes["RssFile"]
        elif b"/error " in data and b"POST " in data:
            self.errors.append(data[:400].decode("latin-1"))


CURRENT = {"run": None}
# The minimal Runtime API gives each run its own path prefix (/run-N), so a request is
# matched to its process by path: a killed process's late second /next can then never
# take the next run's event.
RUNS = {}


def run_of(path):
    m = re.match(r"/run-(\d+)/", path)
    return RUNS.get(int(m.group(1))) if m else CURRENT["run"]


# ---------------------------------------------------------------- GitHub stub

class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class GitHubStub(BaseHTTPRequestHandler):
    dispatches = 0

    def log_message(self, *_):
        pass

    last_request_id = ""

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        if self.path.endswith("/dispatches"):
            GitHubStub.dispatches += 1
            try:
                GitHubStub.last_request_id = json.loads(body)["inputs"]["request_id"]
            except (ValueError, KeyError, TypeError):
                pass
        if self.path.endswith("/dispatches") and b'"return_run_details":true' in body:
            # GitHub's answer to return_run_details: the run at once, no look-up after
            # (the Node baseline does not ask, and gets the 204 it expects).
            self.reply({
                "workflow_run_id": 1,
                "run_url": "https://api.github.com/repos/openclaw/clawdinators/actions/runs/1",
                "html_url": "https://github.com/openclaw/clawdinators/actions/runs/1",
            })
            return
        self.send_response(204)
        self.send_header("content-length", "0")
        self.end_headers()

    def reply(self, doc):
        payload = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        # The pinned revision: GITHUB_REF's commit.
        if "/commits/" in self.path:
            self.reply({"sha": "0123456789abcdef0123456789abcdef01234567"})
            return
        # The in-flight guard (runs by status: none active) and the run look-up after the
        # dispatch (the run shows at once, named as fleet-deploy.yml's run-name).
        runs = []
        if "/runs" in self.path and "status=" not in self.path and GitHubStub.last_request_id:
            runs = [{
                "id": 1, "status": "queued", "conclusion": None,
                "display_title": f"fleet-deploy bench by bench [{GitHubStub.last_request_id}]",
                "html_url": "https://github.com/openclaw/clawdinators/actions/runs/1",
            }]
        payload = json.dumps({"total_count": len(runs), "workflow_runs": runs}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


# ------------------------------------------------------ minimal Runtime API

class MiniRuntime(BaseHTTPRequestHandler):
    """Just enough of the Lambda Runtime API for one invocation per process."""

    protocol_version = "HTTP/1.1"
    event = b"{}"

    def log_message(self, *_):
        pass

    def _reply(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        run = run_of(self.path)
        if self.path.endswith("/runtime/invocation/next"):
            if run is not None:
                run.saw(f"GET {self.path} ".encode())
            if run is None or run.served:
                # A second /next: hold it until the process is killed.
                if run is not None:
                    run.killed.wait(30)
                self.close_connection = True
                return
            run.served = True
            request_id = str(uuid.uuid4())
            deadline = int(time.time() * 1000) + 30_000
            self._reply(200, MiniRuntime.event, [
                ("content-type", "application/json"),
                ("lambda-runtime-aws-request-id", request_id),
                ("lambda-runtime-deadline-ms", str(deadline)),
                ("lambda-runtime-invoked-function-arn",
                 "arn:aws:lambda:us-east-1:123456789012:function:control-api"),
                ("lambda-runtime-trace-id", "Root=1-6744a1b2-0123456789abcdef01234567;Sampled=0"),
            ])
        else:
            self._reply(404)

    def do_POST(self):
        run = run_of(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        if run is not None:
            run.saw(f"POST {self.path} ".encode())
            if self.path.endswith("/response"):
                run.response_body = body
            elif self.path.endswith("/error"):
                run.errors.append(body.decode("utf-8", "replace")[:400])
        try:
            self._reply(202, b'{"status":"OK"}', [("content-type", "application/json")])
        except OSError:
            pass
        if run is not None and re.search(r"/invocation/[^/]+/(response|error)$", self.path):
            run.done.set()


# ------------------------------------------- relay in front of cargo-lambda

def pump(src, dst, observe):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if observe is not None:
                observe(data)
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def relay(listener, upstream_port):
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = socket.create_connection(("127.0.0.1", upstream_port))
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        run = CURRENT["run"]

        capture = {"buf": None}

        def observe(data, run=run, capture=capture):
            if run is None:
                return
            run.saw(data)
            if re.search(rb"/runtime/invocation/[^/ ]+/(response|error) ", data):
                capture["buf"] = b""
            if capture["buf"] is None:
                return
            # The response POST, possibly in several chunks: complete when Content-Length is in.
            capture["buf"] += data
            head, sep, body = capture["buf"].partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            if sep and (length is None or len(body) >= int(length.group(1))):
                run.response_body = body
                capture["buf"] = None
                run.done.set()

        threading.Thread(target=pump, args=(client, up, observe), daemon=True).start()
        threading.Thread(target=pump, args=(up, client, None), daemon=True).start()


def wait_port(port, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--emulator", choices=["cargo-lambda", "python"], default="python")
    ap.add_argument("--cargo-lambda", help="path of the cargo-lambda binary")
    ap.add_argument("--manifest", help="a Cargo.toml for cargo-lambda's metadata step")
    ap.add_argument("--fixture", required=True, help="Function URL event (python emulator)")
    ap.add_argument("--token", default="test-control-token")
    ap.add_argument("--label", default="function")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra environment for the function")
    ap.add_argument("--ssm", action="store_true",
                    help="tokens from SSM parameters at $AWS_ENDPOINT_URL (moto; needs boto3)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    if not cmd:
        ap.error("no command")

    with open(args.fixture) as f:
        event = json.load(f)
    MiniRuntime.event = json.dumps(event).encode()
    request_body = event.get("body") or ""
    request_headers = {k: v for k, v in event.get("headers", {}).items()
                       if k in ("authorization", "x-clawdinator-token", "content-type")}

    github = QuietServer(("127.0.0.1", 0), GitHubStub)
    threading.Thread(target=github.serve_forever, daemon=True).start()

    emulator_proc = None
    invoke_url = None
    if args.emulator == "python":
        rt = QuietServer(("127.0.0.1", 0), MiniRuntime)
        threading.Thread(target=rt.serve_forever, daemon=True).start()
        runtime_api = f"http://127.0.0.1:{rt.server_address[1]}/run-{{n}}"
    else:
        cl_port = free_port()
        emulator_proc = subprocess.Popen(
            [args.cargo_lambda, "lambda", "watch", "--only-lambda-apis",
             "-A", "127.0.0.1", "-P", str(cl_port)]
            + (["--manifest-path", args.manifest] if args.manifest else []),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        if not wait_port(cl_port):
            emulator_proc.kill()
            sys.exit("lambda_init: cargo-lambda emulator did not start")
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        threading.Thread(target=relay, args=(listener, cl_port), daemon=True).start()
        runtime_api = f"http://127.0.0.1:{listener.getsockname()[1]}/.rt"
        invoke_url = f"http://127.0.0.1:{cl_port}/lambda-url/_/"

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": "_" if args.emulator == "cargo-lambda" else "control-api",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "CONTROL_API_TOKEN": args.token,
        "GITHUB_TOKEN": "ghs_bench_not_a_real_token",
        "GITHUB_API_URL": f"http://127.0.0.1:{github.server_address[1]}",
    }

    stderr_sink = None if os.environ.get("LAMBDA_INIT_DEBUG") else subprocess.DEVNULL
    for kv in args.env:
        k, v = kv.split("=", 1)
        env[k] = v
    if args.ssm:
        # As the deployed Lambda: the tokens are SecureString parameters read at cold start.
        import boto3
        endpoint = os.environ["AWS_ENDPOINT_URL"]
        ssm = boto3.client("ssm", endpoint_url=endpoint, region_name="us-east-1")
        ssm.put_parameter(Name="/bench/control-token", Value=args.token, Type="SecureString",
                          Overwrite=True)
        ssm.put_parameter(Name="/bench/github-token", Value="ghs_bench_not_a_real_token",
                          Type="SecureString", Overwrite=True)
        del env["CONTROL_API_TOKEN"], env["GITHUB_TOKEN"]
        env["CONTROL_API_TOKEN_PARAMETER"] = "/bench/control-token"
        env["GITHUB_TOKEN_PARAMETER"] = "/bench/github-token"
        env["AWS_ENDPOINT_URL"] = endpoint
        env["AWS_ACCESS_KEY_ID"] = os.environ.get("AWS_ACCESS_KEY_ID", "testing")
        env["AWS_SECRET_ACCESS_KEY"] = os.environ.get("AWS_SECRET_ACCESS_KEY", "testing")

    runs = []
    discarded = 0
    try:
        while len(runs) < args.runs:
            run = Run()
            CURRENT["run"] = run
            RUNS[len(RUNS)] = run
            env["AWS_LAMBDA_RUNTIME_API"] = runtime_api.replace("{n}", str(len(RUNS) - 1))
            answer = {}
            invoker = None
            if invoke_url:
                def invoke(answer=answer):
                    req = urllib.request.Request(invoke_url, data=request_body.encode(),
                                                 headers=request_headers, method="POST")
                    try:
                        with urllib.request.urlopen(req, timeout=20) as r:
                            answer["status"], answer["body"] = r.status, r.read()
                    except urllib.error.HTTPError as e:
                        answer["status"], answer["body"] = e.code, e.read()
                    except OSError as e:
                        answer["error"] = str(e)
                invoker = threading.Thread(target=invoke, daemon=True)
                invoker.start()
                time.sleep(0.05)  # the invocation is queued before the function starts
            dispatched_before = GitHubStub.dispatches
            run.t0 = now_ns()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=stderr_sink)
            run.pid = proc.pid
            finished = run.done.wait(10)
            hwm_end = status_kib(proc.pid, ("VmHWM",))["VmHWM"]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            run.killed.set()
            if invoker:
                invoker.join(5)
            if (not finished and invoke_url and run.t_next is not None and discarded < 5):
                # cargo-lambda can hand the queued event to the previous run's killed
                # process (blocked in its second /next): the event is lost. Discard, retry.
                discarded += 1
                print(f"lambda_init: {args.label}: event lost to the previous process; run "
                      f"discarded ({discarded})", file=sys.stderr)
                continue
            if not finished or run.t_next is None or run.t_resp is None:
                sys.exit(f"lambda_init: run failed (next={run.t_next} resp={run.t_resp} "
                         f"errors={run.errors} answer={answer})")
            # The status the function answered, from its response POST. (With cargo-lambda
            # the HTTP answer to the invocation is checked too when it arrived in time; after
            # a lost event the emulator can pair invocations and answers one run apart.)
            body = run.response_body
            try:
                status = json.loads(body or b"{}").get("statusCode")
            except ValueError:
                status = None
            if invoke_url and answer.get("status") not in (None, status):
                sys.exit(f"lambda_init: the emulator answered {answer.get('status')}, "
                         f"the function {status}")
            runs.append({
                "init_ms": (run.t_next - run.t0) / 1e6,
                "first_invoke_ms": (run.t_resp - run.t_next) / 1e6,
                "start_to_response_ms": (run.t_resp - run.t0) / 1e6,
                "vm_hwm_kib": run.hwm_kib,
                "vm_hwm_kib_end": hwm_end,
                "rss_anon_kib": run.anon_kib,
                "rss_file_kib": run.file_kib,
                "status": status,
                "dispatched": GitHubStub.dispatches - dispatched_before,
            })
            if status != 200:
                sys.exit(f"lambda_init: the invocation answered {status}: {body[:300]!r}")
    finally:
        if emulator_proc:
            os.killpg(emulator_proc.pid, signal.SIGTERM)
            emulator_proc.wait()

    def med(key):
        vals = [r[key] for r in runs if r[key] is not None]
        return statistics.median(vals) if vals else None

    print(json.dumps({
        "label": args.label,
        "emulator": args.emulator,
        "ssm": args.ssm,
        "extra_env": args.env,
        "runs": len(runs),
        "discarded_runs": discarded,
        "median_init_ms": med("init_ms"),
        "min_init_ms": min(r["init_ms"] for r in runs),
        "max_init_ms": max(r["init_ms"] for r in runs),
        "median_first_invoke_ms": med("first_invoke_ms"),
        "median_start_to_response_ms": med("start_to_response_ms"),
        "median_vm_hwm_kib": med("vm_hwm_kib"),
        "max_vm_hwm_kib": max((r["vm_hwm_kib"] or 0) for r in runs),
        "median_rss_anon_kib": med("rss_anon_kib"),
        "median_rss_file_kib": med("rss_file_kib"),
        "dispatches": sum(r["dispatched"] for r in runs),
        "all": runs,
    }, indent=1))


if __name__ == "__main__":
    main()
