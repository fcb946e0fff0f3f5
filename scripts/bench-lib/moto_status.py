#!/usr/bin/env python3
"""Status at scale: `{"action":"status"}` against the release local server, backed by moto.

Run with the moto venv's python (it has boto3). Used by scripts/bench:

  moto_status.py --moto-server .tools/moto/bin/moto_server --server target/release/control-api \
      --sizes 10,100,1000 --per-reservation 10 [--page-size 10] [--paging 1200] \
      [--registry-max 100] [--fleet-cli target/release/fleet]

Starts its own moto server on a free loopback port (as scripts/with-moto does, but keeping
moto's access log, which with-moto discards, and moto's request recorder, which names
each call's Action), then for each size: resets moto, seeds that many tagged instances in
reservations of --per-reservation (the first --registry-max of them, at most, are the
registry's hosts, written to a FLEET_REGISTRY file; the rest unmanaged), registers the
fleet image, creates the state bucket (FLEET_STATE_BUCKET) and in it a heartbeat record
(heartbeats/<id>.json, as the API stores one) for every registry host but the last, times
moto alone answering the same DescribeInstances through boto3, then starts a fresh
`control-api serve` (RUST_LOG=warn) pointed at moto and times status requests against it.
EC2 and S3 calls per status request are named and counted by moto's recorder (which logs a
request when it arrives) and cross-checked against moto's access log (a line when moto
answers). Each answer's readiness is checked: the hosts with a heartbeat `ready`, the one
without `booting` (it launched a moment ago).
--page-size N starts the server with FLEET_EC2_PAGE_SIZE=N (DescribeInstances MaxResults;
the product's default is 1000) and asks moto alone for the same pages. moto pages
DescribeInstances by reservation (EC2 by instance), so with reservations of 10 a page
size of 20 gives pages of 200 instances: 1,000 instances are 5 pages.
--paging N seeds N instances in N one-instance reservations: moto pages DescribeInstances
by reservation, so past --page-size reservations a second page appears.

Wall times are moto's: moto renders EC2 XML in Python and is far slower than EC2.
Prints one JSON object.
"""

import argparse
import base64
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import boto3
import botocore.config

from loopback import free_port

TOKEN = "bench-status-token"
REGISTRY_HOSTS = ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"]
STATE_BUCKET = "bench-fleet-state"
READINESS = ["ready", "unhealthy", "booting", "stale", "missing", "unknown"]


def wait_port(port, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def post(url, path, payload=b""):
    req = urllib.request.Request(url + path, data=payload, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()


def host_name(i):
    return REGISTRY_HOSTS[i] if i < len(REGISTRY_HOSTS) else f"bench-{i}"


def seed(ec2, n, per_reservation):
    """n tagged instances in ceil(n / per_reservation) reservations; returns the number of
    reservations and, in launch order, each instance's (Name, instance id, image)."""
    base = ec2.describe_images(Owners=["amazon"], MaxResults=5)["Images"]
    base_ami = base[0]["ImageId"] if base else "ami-12c6146b"
    fleet_ami = ec2.register_image(
        Name="clawdinator-bench-image", Architecture="x86_64", RootDeviceName="/dev/xvda",
        VirtualizationType="hvm",
    )["ImageId"]
    ec2.create_tags(Resources=[fleet_ami], Tags=[{"Key": "clawdinator", "Value": "true"}])
    made = 0
    reservations = 0
    launched = []
    while made < n:
        k = min(per_reservation, n - made)
        names = [host_name(made + i) for i in range(k)]
        ami = fleet_ami if made % 2 == 0 else base_ami
        out = ec2.run_instances(
            ImageId=ami,
            InstanceType="t3.large", MinCount=k, MaxCount=k,
            TagSpecifications=[{"ResourceType": "instance",
                                "Tags": [{"Key": "app", "Value": "clawdinator"}]}],
        )
        for inst, name in zip(out["Instances"], names):
            ec2.create_tags(Resources=[inst["InstanceId"]], Tags=[{"Key": "Name", "Value": name}])
            launched.append((name, inst["InstanceId"], ami))
        made += k
        reservations += 1
    return reservations, launched


def write_registry(path, hosts):
    """A FLEET_REGISTRY file naming `hosts` (each its own id and EC2 Name), all t3.large
    like the seeded instances."""
    registry = {h: {"host": h, "instanceType": "t3.large", "bootstrapPrefix": f"bootstrap/{h}",
                    "discordTokenSecret": f"{h}-discord-token"} for h in hosts}
    with open(path, "w") as f:
        json.dump(registry, f)


def seed_heartbeats(s3, launched):
    """Each host's latest heartbeat from its instance, received now, shaped as the API
    stores it (control-api/src/domain/heartbeat.rs HeartbeatRecord: the report's fields
    flattened, then received_at and principal; a bot's principal is its id)."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    for name, instance_id, ami in launched:
        record = {"id": name, "ec2_instance_id": instance_id, "ami": ami,
                  "revision": "0123abcdef", "service": "active", "booted_at": now,
                  "agent": "0.1.0", "received_at": now, "principal": name}
        s3.put_object(Bucket=STATE_BUCKET, Key=f"heartbeats/{name}.json",
                      Body=json.dumps(record, separators=(",", ":")).encode())


S3_METHODS = {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject",
              "DELETE": "DeleteObject", "POST": "PostObject"}


def recorded_calls(recording):
    """The recorded requests, named: (EC2 Actions, S3 operations). EC2 is a POST to / with
    the Action in its form body; S3 (path-style) is a request to /<bucket>..., named by the
    SDK's `x-id` query parameter when it sends one, else by list-type=2 or the method."""
    ec2, s3 = [], []
    for line in recording.splitlines():
        if not line.strip():
            continue
        entry = json.loads(line)
        url = urllib.parse.urlsplit(entry.get("url") or "")
        if url.path.startswith(f"/{STATE_BUCKET}"):
            query = urllib.parse.parse_qs(url.query)
            if "x-id" in query:
                s3.append(query["x-id"][0])
            elif query.get("list-type") == ["2"]:
                s3.append("ListObjectsV2")
            else:
                s3.append(S3_METHODS.get(entry.get("method"), entry.get("method") or "?"))
            continue
        body = entry.get("body") or ""
        if entry.get("body_encoded"):
            body = base64.b64decode(body).decode("utf-8", "replace")
        fields = urllib.parse.parse_qs(body)
        action = (fields.get("Action") or ["?"])[0]
        ec2.append(action + ("+NextToken" if "NextToken" in fields else ""))
    return ec2, s3


def access_log_counts(text):
    """Lines of moto's access log (one per answered request): EC2 calls, state-bucket calls.
    werkzeug colours the request of a 4xx/5xx answer (a missing heartbeat's 404)."""
    colour = r"(?:\x1b\[[0-9;]*m)?"
    ec2 = len(re.findall(rf'"{colour}POST / HTTP', text))
    s3 = len(re.findall(rf'"{colour}(?:GET|PUT|HEAD|DELETE|POST) /{STATE_BUCKET}[/? ]', text))
    return ec2, s3


def readiness_of(answer, heartbeats):
    """The answer's readiness summary, and whether it is the expected one: each host with
    a seeded heartbeat `ready`, every other registry host `booting`."""
    hosts = answer.get("instances") or []
    summary = answer.get("summary") or {}
    counts = {r: summary.get("readiness_missing" if r == "missing" else r) for r in READINESS}
    expected = all(h.get("readiness") == ("ready" if h.get("id") in heartbeats else "booting")
                   for h in hosts) and bool(hosts)
    return counts, expected


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--moto-server", required=True)
    ap.add_argument("--server", required=True, help="the release control-api binary")
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--per-reservation", type=int, default=10)
    ap.add_argument("--page-size", type=int, default=1000,
                    help="FLEET_EC2_PAGE_SIZE for the server, MaxResults for moto alone")
    ap.add_argument("--paging", type=int, default=0, help="also N instances, one per reservation")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--registry-max", type=int, default=100,
                    help="registry hosts (and heartbeat reads per status), at most")
    ap.add_argument("--fleet-cli", help="time `fleet status` too, at the smallest size")
    ap.add_argument("--fleet-runs", type=int, default=10)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bench-moto-")
    moto_port = free_port()
    moto_log_path = os.path.join(work, "moto.log")
    moto_log = open(moto_log_path, "w")
    # The recorder stays off (MOTO_ENABLE_RECORDING unset) except around each status call.
    env = dict(os.environ, MOTO_RECORDER_FILEPATH=os.path.join(work, "rec.jsonl"))
    env.pop("MOTO_ENABLE_RECORDING", None)
    moto = subprocess.Popen([args.moto_server, "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=moto_log, stderr=subprocess.STDOUT, env=env)
    servers = []
    try:
        if not wait_port(moto_port, moto):
            sys.exit("moto_status: moto_server did not start")
        endpoint = f"http://127.0.0.1:{moto_port}"
        ec2 = boto3.client("ec2", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing",
                          config=botocore.config.Config(s3={"addressing_style": "path"}))

        server_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "CONTROL_API_TOKEN": TOKEN,
            "RUST_LOG": "warn",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "FLEET_EC2_PAGE_SIZE": str(args.page_size),
            "FLEET_STATE_BUCKET": STATE_BUCKET,
            "FLEET_REGISTRY": os.path.join(work, "registry.json"),
            # Seeded heartbeats must not age into `stale` during a slow case at 1,000
            # instances: what is measured is their reads.
            "FLEET_HEARTBEAT_STALE_SECS": "3600",
        }
        state = {"server": None, "api": None}

        def start_server(tag):
            """A fresh `control-api serve` per size (its log kept in the work folder)."""
            port = free_port()
            log = open(os.path.join(work, f"server-{tag}.log"), "w")
            proc = subprocess.Popen([args.server, "serve"], env=dict(server_env, PORT=str(port)),
                                    stdout=log, stderr=subprocess.STDOUT)
            if not wait_port(port, proc):
                sys.exit(f"moto_status: control-api serve did not start (exit {proc.poll()})")
            state["server"], state["api"] = proc, f"http://127.0.0.1:{port}/"
            servers.append(proc)

        def moto_idle(timeout=120):
            """Waits until moto has answered every request it received (a timed-out call
            goes on inside moto after the client gave up)."""
            end = time.time() + timeout
            while time.time() < end:
                moto_log.flush()
                answered = sum(access_log_counts(open(moto_log_path).read()))
                started = sum(map(len, recorded_calls(open(env["MOTO_RECORDER_FILEPATH"]).read())))
                if answered >= state.get("log_base", 0) + started:
                    return
                time.sleep(0.5)

        def status_once():
            req = urllib.request.Request(state["api"], data=b'{"action":"status"}', method="POST",
                                         headers={"authorization": f"Bearer {TOKEN}",
                                                  "content-type": "application/json"})
            post(endpoint, "/moto-api/recorder/reset-recording")
            moto_log.flush()
            lines_before = access_log_counts(open(moto_log_path).read())
            state["log_base"] = sum(lines_before)
            post(endpoint, "/moto-api/recorder/start-recording")
            t = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=120) as r:
                    code, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                code, body = e.code, e.read()
            except OSError as e:
                code, body = None, json.dumps({"ok": False, "error": "no_answer", "message":
                                               f"{e}; server exit code {state['server'].poll()}"}).encode()
            wall = time.monotonic() - t
            post(endpoint, "/moto-api/recorder/stop-recording")
            moto_idle()
            lines_after = access_log_counts(open(moto_log_path).read())
            recording = urllib.request.urlopen(endpoint + "/moto-api/recorder/download-recording",
                                               timeout=60).read().decode()
            answer = json.loads(body)
            actions, s3_actions = recorded_calls(recording)
            readiness, readiness_ok = readiness_of(answer, state["heartbeats"])
            return {
                "http": code,
                "ok": answer.get("ok"),
                "error": answer.get("error"),
                "message": answer.get("message") if not answer.get("ok") else None,
                "wall_ms": wall * 1000,
                "ec2_calls": len(actions),
                "ec2_calls_access_log": lines_after[0] - lines_before[0],
                "ec2_actions": actions,
                "s3_calls": len(s3_actions),
                "s3_calls_access_log": lines_after[1] - lines_before[1],
                "s3_actions": s3_actions,
                "readiness": readiness,
                "readiness_ok": readiness_ok,
                "instances_seen": (len(answer.get("instances", [])) + len(answer.get("unmanaged", [])))
                if answer.get("ok") else None,
            }

        cases = [(int(s), args.per_reservation) for s in args.sizes.split(",") if s]
        if args.paging:
            cases.append((args.paging, 1))
        results = []
        fleet = None
        for n, per in cases:
            post(endpoint, "/moto-api/reset")
            t = time.monotonic()
            reservations, launched = seed(ec2, n, per)
            registry = launched[:args.registry_max]
            write_registry(server_env["FLEET_REGISTRY"], [name for name, _, _ in registry])
            s3.create_bucket(Bucket=STATE_BUCKET)
            # The last registry host has not reported yet: its instance is new, so booting.
            seed_heartbeats(s3, registry[:-1])
            state["heartbeats"] = {name for name, _, _ in registry[:-1]}
            seed_s = time.monotonic() - t
            # moto alone, no timeouts: the same DescribeInstances call through boto3.
            t = time.monotonic()
            direct_pages = 0
            kwargs = {"Filters": [{"Name": "tag:app", "Values": ["clawdinator"]},
                                  {"Name": "instance-state-name", "Values": [
                                      "pending", "running", "shutting-down", "stopping", "stopped"]}],
                      "MaxResults": args.page_size}
            while True:
                page = ec2.describe_instances(**kwargs)
                direct_pages += 1
                if not page.get("NextToken"):
                    break
                kwargs["NextToken"] = page["NextToken"]
            direct_ms = (time.monotonic() - t) * 1000
            start_server(n)
            status_once()  # warm: connection pool, moto caches
            runs = [status_once() for _ in range(args.repeats if n <= 1000 else max(2, args.repeats // 2))]
            walls = [r["wall_ms"] for r in runs]
            results.append({
                "instances": n,
                "registry_hosts": len(registry),
                "heartbeats": len(registry) - 1,
                "reservations": reservations,
                "seed_s": round(seed_s, 1),
                "runs": runs,
                "median_wall_ms": statistics.median(walls),
                "min_wall_ms": min(walls),
                "max_wall_ms": max(walls),
                "all_ok": all(r["ok"] for r in runs),
                "errors": sorted({f'{r["error"]}: {r["message"]}' for r in runs if not r["ok"]}),
                "ec2_calls": sorted({r["ec2_calls"] for r in runs}),
                "ec2_calls_access_log": sorted({r["ec2_calls_access_log"] for r in runs}),
                "moto_describe_instances_ms": direct_ms,
                "moto_describe_instances_pages": direct_pages,
                "ec2_actions": runs[-1]["ec2_actions"],
                "s3_calls": sorted({r["s3_calls"] for r in runs}),
                "s3_calls_access_log": sorted({r["s3_calls_access_log"] for r in runs}),
                "s3_actions": action_counts(runs[-1]["s3_actions"]),
                "readiness": runs[-1]["readiness"],
                "readiness_ok": all(r["readiness_ok"] for r in runs),
            })
            c = results[-1]
            print(f"moto_status: {n} instances in {reservations} reservations, {len(registry)} registry hosts: "
                  f"median {statistics.median(walls):.0f} ms (moto alone: {direct_ms:.0f} ms), "
                  f"EC2 calls {c['ec2_calls']} {c['ec2_actions']}, S3 calls {c['s3_calls']} "
                  f"{c['s3_actions']}, readiness {c['readiness']} as seeded={c['readiness_ok']}, "
                  f"ok={c['all_ok']} {c['errors']}", file=sys.stderr)
            if args.fleet_cli and fleet is None:
                fleet = time_fleet(args.fleet_cli, state["api"], args.fleet_runs)
            state["server"].terminate()
            state["server"].wait(10)
        print(json.dumps({"moto_port": moto_port, "work_dir": work, "page_size": args.page_size,
                          "per_reservation": args.per_reservation,
                          "registry_max": args.registry_max, "cases": results,
                          "fleet_status": fleet}, indent=1))
    finally:
        for p in servers + [moto]:
            if p is not None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


def action_counts(actions):
    """{"GetObject": 99, "ListObjectsV2": 1}: a status's S3 calls, counted by name."""
    counts = {}
    for a in actions:
        counts[a] = counts.get(a, 0) + 1
    return dict(sorted(counts.items()))


def time_fleet(cli, api, runs):
    """`fleet status` start to exit against the local server (moto behind it)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "FLEET_CONTROL_URL": api,
        "FLEET_CONTROL_TOKEN": TOKEN,
        "FLEET_AGENIX_DIR": "/nonexistent",
        "FLEET_INSTANCE_NAME_FILE": "/nonexistent",
    }
    walls = []
    last = None
    for _ in range(runs + 1):
        t = time.monotonic()
        p = subprocess.run([cli, "status"], env=env, capture_output=True, timeout=60)
        walls.append((time.monotonic() - t) * 1000)
        last = p
    walls = walls[1:]
    return {
        "runs": runs,
        "exit_code": last.returncode,
        "median_ms": statistics.median(walls),
        "min_ms": min(walls),
        "max_ms": max(walls),
        "stdout_head": last.stdout.decode("utf-8", "replace").splitlines()[:3],
        "stderr_head": last.stderr.decode("utf-8", "replace").splitlines()[:3],
    }


if __name__ == "__main__":
    main()
