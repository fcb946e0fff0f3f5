//! The real `fleet` binary against the real local control API (GitHub as a double): outputs and exit codes.

mod support;

use control_api::contract::{AmiId, Caller, Request, RunsAnswer, Target};
use control_api::test_support::github::HEAD_SHA;
use serde_json::json;
use support::*;

fn is_uuid_v4(s: &str) -> bool {
    uuid_version(s) == Some(4)
}

fn uuid_version(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    let shape = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        });
    shape.then(|| b[14] - b'0')
}

#[test]
fn deploy_success_prints_the_receipt_and_dispatches_once() {
    // An AMI override must be a fleet image, which the API checks in EC2 (moto).
    let ami = moto_fleet_image("fleet-cli-e2e-deploy");
    let h = Harness::start_on_moto(&[("FLEET_IMAGE_TAG_KEY", "fleet-cli-e2e-deploy")]);
    let run = h.fleet().run(&[
        "deploy",
        "clawdinator-2",
        "--ami-override",
        &ami,
        "--caller",
        "human:ops",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(run.stderr, "");
    let line = run.stdout.lines().next().unwrap();
    let request_id = line
        .strip_prefix("deploy queued for clawdinator-2 (request ")
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{line}"));
    // The API's request ids are UUIDv7: time-ordered, so audit keys sort by time.
    assert!(
        uuid::Uuid::parse_str(request_id).is_ok_and(|u| u.get_version_num() == 7),
        "{request_id}"
    );
    // GitHub showed the run at once, so the receipt links it; no dry run.
    let run_id = h.github.runs()[0].id;
    assert_eq!(
        run.stdout.lines().skip(1).collect::<Vec<_>>(),
        [
            format!(
                "revision: {}",
                &control_api::test_support::github::HEAD_SHA[..7]
            ),
            format!("run: https://github.com/openclaw/clawdinators/actions/runs/{run_id}"),
        ]
    );

    let dispatches = h.dispatches();
    assert_eq!(dispatches.len(), 1, "exactly one workflow dispatch");
    assert_eq!(
        dispatches[0],
        json!({
            "ref": "main",
            "inputs": {
                "target": "clawdinator-2",
                "ami_override": ami,
                "request_id": request_id,
                "caller": "human:ops",
                "revision": HEAD_SHA,
                "mode": "apply",
            },
            "return_run_details": true
        })
    );

    // What crossed the wire: the contract's body and headers, a bearer token, no SigV4.
    let sent = h.proxy.requests();
    assert_eq!(sent.len(), 1);
    let req = &sent[0];
    assert_eq!(req.method, "POST");
    assert_eq!(
        req.request(),
        Request::Deploy {
            target: Target::parse("clawdinator-2").unwrap(),
            caller: Some(Caller::parse("human:ops").unwrap()),
            ami_override: Some(AmiId::parse(&ami).unwrap()),
            queue: false,
            revision: None,
        }
    );
    assert_eq!(
        req.header("authorization"),
        Some(format!("Bearer {CONTROL_TOKEN}").as_str())
    );
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert!(req.header("x-clawdinator-token").is_none());
    assert!(
        req.headers.iter().all(|(k, _)| !k.starts_with("x-amz-")),
        "{:?}",
        req.headers
    );
    assert!(is_uuid_v4(req.header("idempotency-key").unwrap()));
}

#[test]
fn every_deploy_gets_a_fresh_idempotency_key_and_status_gets_none() {
    let h = Harness::start(GitHub::Accepts);
    for _ in 0..2 {
        assert_eq!(h.fleet().run(&["deploy", "clawdinator-1"]).code, 0);
    }
    // The harness gives the API no reachable AWS, so status is a 5xx; only the request matters here.
    let status = h.fleet().run(&["status"]);
    assert_eq!(status.code, 3, "{status:?}");
    let sent = h.proxy.requests();
    assert_eq!(sent.len(), 3);
    let k1 = sent[0].header("idempotency-key").unwrap();
    let k2 = sent[1].header("idempotency-key").unwrap();
    assert!(is_uuid_v4(k1) && is_uuid_v4(k2));
    assert_ne!(k1, k2);
    assert!(sent[2].header("idempotency-key").is_none());
    assert_eq!(
        sent[2].request(),
        Request::Status {
            caller: None,
            include_terminated: false
        }
    );
}

#[test]
fn chat_deploy_uses_the_hosts_instance_name_as_caller() {
    let ami = moto_fleet_image("fleet-cli-e2e-chat");
    let h = Harness::start_on_moto(&[("FLEET_IMAGE_TAG_KEY", "fleet-cli-e2e-chat")]);
    h.set_instance_name("clawdinator-1");
    let text = format!("  /fleet@clawdinator_bot   DEPLOY   clawdinator-2  {ami}\n");
    let run = h.fleet().run(&["chat", &text]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("deploy queued for clawdinator-2 (request "),
        "{}",
        run.stdout
    );
    let req = &h.proxy.requests()[0];
    assert_eq!(
        req.request().caller(),
        Some(&Caller::parse("clawdinator-1").unwrap())
    );
    let d = h.dispatches();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["inputs"]["target"], "clawdinator-2");
    assert_eq!(d[0]["inputs"]["ami_override"], ami.as_str());
}

#[test]
fn a_bot_plans_itself_from_chat_and_a_human_plans_from_the_command_line() {
    let h = Harness::start(GitHub::Accepts);
    h.set_instance_name("clawdinator-1");
    // A plan changes nothing: the bot may plan its own host, which it may not deploy.
    let run = h.fleet().run(&["chat", "/fleet plan clawdinator-1"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("plan queued for clawdinator-1 (request "),
        "{}",
        run.stdout
    );
    let refused = h.fleet().run(&["chat", "/fleet deploy clawdinator-1"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    let run = h.fleet().run(&[
        "--caller",
        "human:ops",
        "plan",
        "all",
        "--revision",
        HEAD_SHA,
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with("plan queued for all (request "),
        "{}",
        run.stdout
    );
    let sent = h.proxy.requests();
    assert_eq!(sent.len(), 2, "the refused deploy never left");
    assert!(sent.iter().all(|r| r.header("idempotency-key").is_some()));
    assert_eq!(
        sent[1].request(),
        Request::Plan {
            target: Target::All,
            caller: Some(Caller::parse("human:ops").unwrap()),
            ami_override: None,
            revision: Some(control_api::contract::Revision::parse(HEAD_SHA).unwrap()),
        }
    );
    let d = h.dispatches();
    let inputs: Vec<(&str, &str, &str)> = d
        .iter()
        .map(|d| {
            let i = &d["inputs"];
            (
                i["target"].as_str().unwrap(),
                i["caller"].as_str().unwrap(),
                i["mode"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        inputs,
        [
            ("clawdinator-1", "clawdinator-1", "plan"),
            ("all", "human:ops", "plan")
        ]
    );
}

#[test]
fn the_token_can_come_from_the_environment_variable() {
    let h = Harness::start(GitHub::Accepts);
    let run = h
        .fleet()
        .env_remove("FLEET_CONTROL_TOKEN_FILE")
        .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
        .run(&["deploy", "all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("deploy queued for all (request "));
}

#[test]
fn unknown_target_is_a_404_refusal() {
    let h = Harness::start(GitHub::Accepts);
    let run = h.fleet().run(&["deploy", "clawdinator-9"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    // The API's own message, whatever its exact wording of the id, then its status and code.
    assert!(
        run.stderr.starts_with("fleet: target ")
            && run.stderr.contains("clawdinator-9")
            && run
                .stderr
                .contains(" is not in the fleet registry (HTTP 404, unknown_target, request "),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1);
    assert_eq!(h.proxy.connection_count(), 1);
    assert!(h.dispatches().is_empty());
}

#[test]
fn self_deploy_is_refused_locally_without_any_connection() {
    let h = Harness::start(GitHub::Accepts);
    h.set_instance_name("clawdinator-2");
    for args in [
        &["deploy", "clawdinator-2"][..],
        &["chat", "/fleet deploy clawdinator-2"],
        // An explicit caller is judged the same way.
        &["--caller", "clawdinator-1", "deploy", "clawdinator-1"],
    ] {
        let run = h.fleet().run(args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "");
        assert!(
            run.stderr.starts_with("fleet: clawdinator-")
                && run
                    .stderr
                    .contains("may not deploy itself; ask another bot or a human (refused locally, nothing was sent)"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(h.proxy.connection_count(), 0, "no HTTP call at all");
    assert!(h.dispatches().is_empty());
}

#[test]
fn a_bot_deploying_all_is_refused_locally_without_any_connection() {
    let h = Harness::start(GitHub::Accepts);
    h.set_instance_name("clawdinator-babelfish");
    for args in [&["deploy", "all"][..], &["chat", "/fleet deploy all"]] {
        let run = h.fleet().run(args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert!(
            run.stderr
                .contains("clawdinator-babelfish is a fleet instance and may not deploy all"),
            "{}",
            run.stderr
        );
    }
    assert_eq!(h.proxy.connection_count(), 0);
    // A human naming themselves may deploy all from the same host.
    let run = h.fleet().run(&["--caller", "human:ops", "deploy", "all"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(h.dispatches().len(), 1);
}

#[test]
fn the_apis_own_policy_refusal_is_exit_1() {
    // The deployed API knows an instance this binary's embedded registry does not, so
    // only the API can tell that this caller is a bot: its 403 is the refusal.
    let mut registry: serde_json::Value =
        serde_json::from_str(control_api::domain::registry::EMBEDDED_REGISTRY).unwrap();
    registry["clawdinator-3"] = json!({
        "host": "clawdinator-3",
        "instanceType": "t3.large",
        "bootstrapPrefix": "bootstrap/clawdinator-3",
        "discordTokenSecret": "clawdinator-3-discord-token",
    });
    let h = Harness::start_with(GitHub::Accepts, Some(&registry.to_string()));
    h.set_instance_name("clawdinator-3");
    let run = h.fleet().run(&["deploy", "all"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "fleet: clawdinator-3 is a fleet instance and may not deploy all (it would replace itself); deploy other instances one by one (HTTP 403, bot_deploy_all, request "
        ),
        "{}",
        run.stderr
    );
    assert_eq!(h.proxy.connection_count(), 1);
    assert!(h.dispatches().is_empty());
}

#[test]
fn a_wrong_token_is_a_401_refusal() {
    let h = Harness::start(GitHub::Accepts);
    let wrong = h.dir.write("wrong-token", "not-the-token\n");
    let run = h
        .fleet()
        .env("FLEET_CONTROL_TOKEN_FILE", wrong.to_str().unwrap())
        .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("fleet: missing or invalid token (HTTP 401, unauthorized, request "),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("not-the-token"));
    assert!(h.dispatches().is_empty());
}

#[test]
fn github_failing_is_a_502_and_exit_3() {
    let h = Harness::start(GitHub::Fails(422));
    let run = h.fleet().run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.starts_with(
            "fleet: GitHub refused the workflow dispatch (HTTP 422); nothing was deployed (HTTP 502, github_refused, request "
        ),
        "{}",
        run.stderr
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn status_failing_on_the_server_is_exit_3() {
    // The API cannot reach AWS in this harness (all AWS endpoints are a closed loopback
    // port), so status answers 5xx: exit 3, the API's message, nothing on stdout.
    let h = Harness::start(GitHub::Accepts);
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["chat", "/fleet status"],
    ] {
        let run = h.fleet().run(args);
        assert_eq!(run.code, 3, "{args:?}: {run:?}");
        assert!(
            run.stderr.starts_with("fleet: ") && run.stderr.contains("(HTTP 5"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.lines().count(), 1);
        assert_eq!(run.stdout, "");
    }
    assert_eq!(h.proxy.connection_count(), 3);
}

#[test]
fn connection_refused_is_exit_3_after_one_retry() {
    let port = closed_port();
    let run = Fleet::new()
        .env("FLEET_CONTROL_URL", &format!("http://127.0.0.1:{port}/"))
        .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
        .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
        .env("FLEET_AGENIX_DIR", "/nonexistent/agenix")
        .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(
        run.stderr,
        format!("fleet: cannot reach the control API at http://127.0.0.1:{port}/: connection refused (tried 2 time(s); nothing was sent)\n")
    );
}

#[test]
fn a_deploy_that_was_sent_is_never_retried() {
    // The peer reads the whole request and hangs up: the deploy may have been accepted.
    let peer = RawPeer::start(None);
    let run = Fleet::new()
        .env("FLEET_CONTROL_URL", &peer.url())
        .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
        .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
        .env("FLEET_AGENIX_DIR", "/nonexistent/agenix")
        .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr
            .starts_with("fleet: no answer from the control API: ")
            && run.stderr.contains("a deploy may still have been queued"),
        "{}",
        run.stderr
    );
    assert_eq!(peer.connections(), 1, "exactly one attempt");
}

#[test]
fn answers_that_are_not_the_apis_json_are_exit_3() {
    for answer in [
        "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 13\r\nconnection: close\r\n\r\n<html></html>",
        "HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\nconnection: close\r\n\r\nNot Found",
        "HTTP/1.1 302 Found\r\nlocation: https://example.com/\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    ] {
        let peer = RawPeer::start(Some(answer));
        let run = Fleet::new()
            .env("FLEET_CONTROL_URL", &peer.url())
            .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
            .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
            .env("FLEET_AGENIX_DIR", "/nonexistent/agenix")
            .run(&["deploy", "clawdinator-2"]);
        assert_eq!(run.code, 3, "{answer}: {run:?}");
        assert!(
            run.stderr.starts_with("fleet: unexpected answer from the control API: HTTP "),
            "{}",
            run.stderr
        );
        assert_eq!(peer.connections(), 1, "a redirect is not followed");
    }
}

#[test]
fn missing_control_url_is_a_usage_error() {
    let run = Fleet::new()
        .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
        .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
        .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(
        run.stderr,
        "fleet: FLEET_CONTROL_URL is not set; set it to the control API URL: http://127.0.0.1:8787 for the local server (`scripts/local-fleet`), or the Lambda's Function URL https://<id>.lambda-url.<region>.on.aws/\n"
    );
}

#[test]
fn configuration_problems_are_usage_errors_that_send_nothing() {
    let h = Harness::start(GitHub::Accepts);
    let empty = h.dir.write("empty-token", "\n");
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("FLEET_CONTROL_URL", "http://example.com/".into())],
            "plain http to a host that is not loopback",
        ),
        (
            vec![("FLEET_CONTROL_TOKEN_FILE", "/nonexistent/token".into())],
            "cannot read /nonexistent/token",
        ),
        (
            vec![(
                "FLEET_CONTROL_TOKEN_FILE",
                empty.to_str().unwrap().to_owned(),
            )],
            "is empty",
        ),
        (
            vec![("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into())],
            "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
        ),
        (
            vec![
                ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE".into()),
                ("AWS_SECRET_ACCESS_KEY", "secret".into()),
            ],
            "cannot tell the AWS region",
        ),
    ];
    for (env, expected) in cases {
        let mut fleet = h.fleet();
        for (k, v) in &env {
            fleet.env(k, v);
        }
        let run = fleet.run(&["deploy", "clawdinator-2"]);
        assert_eq!(run.code, 2, "{env:?}: {run:?}");
        assert!(run.stderr.contains(expected), "{env:?}: {}", run.stderr);
    }
    let bad_caller = h.dir.write("bad-instance-name", "not a caller!\n");
    let run = h
        .fleet()
        .env("FLEET_INSTANCE_NAME_FILE", bad_caller.to_str().unwrap())
        .run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("the caller in"), "{}", run.stderr);
    assert_eq!(h.proxy.connection_count(), 0);
}

#[test]
fn bad_chat_text_prints_the_usage_and_sends_nothing() {
    let h = Harness::start(GitHub::Accepts);
    for text in [
        "hello bot",
        "/fleet",
        "/fleet reboot all",
        "/fleet deploy",
        "/fleet deploy ALL",
        "/fleet deploy clawdinator-2; rm -rf /",
        "/fleet deploy clawdinator-2 ami-123",
        "/fleet status\n/fleet deploy all",
        "/fleet deploy $(reboot)",
        "/fleet stаtus",
        "-rf /",
        "",
    ] {
        let run = h.fleet().run(&["chat", text]);
        assert_eq!(run.code, 2, "{text:?}: {run:?}");
        assert_eq!(run.stdout, format!("{}\n", fleet_skill::USAGE));
        assert!(run.stderr.starts_with("fleet: "), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    }
    assert_eq!(h.proxy.connection_count(), 0, "no HTTP call at all");
    let help = h.fleet().run(&["chat", "/fleet help"]);
    assert_eq!((help.code, help.stderr.as_str()), (0, ""));
    assert_eq!(help.stdout, format!("{}\n", fleet_skill::HELP));
    assert_eq!(h.proxy.connection_count(), 0);
}

#[test]
fn clap_usage_errors_exit_2_and_send_nothing() {
    let h = Harness::start(GitHub::Accepts);
    for args in [
        &["deploy"][..],
        &["deploy", "x;reboot"],
        &["deploy", "all", "--ami", "ami-xyz"],
        &["deploy", "all", "--ami-override", "ami-xyz"],
        &["--caller", "a b", "status"],
        &["reboot"],
        &["chat"],
        &["chat", "/fleet status", "extra"],
        // One argument that is a defined flag sets it, leaving no message.
        &["chat", "--caller=human:ops"],
        &[],
    ] {
        let run = h.fleet().run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
    }
    assert_eq!(h.proxy.connection_count(), 0);
}

/// Against the real API and the stateful GitHub double: a deploy with --wait follows its
/// run to success, runs lists it, and a second identical CLI call is a new request.
#[test]
fn deploy_wait_runs_and_rollback_refusal_against_the_real_api() {
    let h = Harness::start(GitHub::Accepts);
    let run = h.fleet().run(&[
        "deploy",
        "clawdinator-2",
        "--caller",
        "human:ops",
        "--wait",
        "--interval",
        "0.05",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    let run_id = h.github.runs()[0].id;
    assert!(
        run.stdout.contains(&format!("actions/runs/{run_id}")),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("success"), "{}", run.stdout);
    assert_eq!(h.dispatches().len(), 1);

    let runs = h.fleet().run(&["runs", "--json"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    let listed: RunsAnswer = serde_json::from_str(&runs.stdout).unwrap();
    assert_eq!(listed.runs[0].run_id, run_id);
    assert_eq!(listed.runs[0].target.as_deref(), Some("clawdinator-2"));
    assert_eq!(listed.runs[0].caller.as_deref(), Some("human:ops"));

    let waited = h
        .fleet()
        .run(&["wait", &run_id.to_string(), "--interval", "0.05"]);
    assert_eq!(waited.code, 0, "{waited:?}");

    // Rollback needs a live instance; this API reads no EC2 (a closed port): exit 3.
    let rb = h
        .fleet()
        .run(&["rollback", "clawdinator-2", "--caller", "human:ops"]);
    assert_eq!(rb.code, 3, "{rb:?}");
    assert!(rb.stderr.contains("aws_unavailable"), "{}", rb.stderr);
    assert_eq!(h.dispatches().len(), 1);
}

/// The local server without a GitHub token dispatches nothing: the receipt says so and
/// never "queued", `--wait` does not wait, `wait` stops at the first answer and `runs`
/// says why it is empty.
#[test]
fn a_dry_run_server_is_never_waited_on() {
    let h = Harness::start(GitHub::Absent);
    let run = h
        .fleet()
        .run(&["deploy", "clawdinator-2", "--wait", "--interval", "0.05"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(!run.stdout.contains("queued"), "{}", run.stdout);
    let first = run.stdout.lines().next().unwrap();
    let request_id = first
        .strip_prefix(
            "dry run: would dispatch the deploy of clawdinator-2 (nothing was sent) (request ",
        )
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{first}"));
    assert_eq!(
        run.stdout.lines().last(),
        Some("nothing to wait for: a dry run dispatches no workflow run")
    );
    assert!(h.dispatches().is_empty());
    assert_eq!(h.proxy.connection_count(), 1, "no polls");

    let started = std::time::Instant::now();
    let wait = h.fleet().run(&["wait", request_id, "--interval", "0.05"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(wait.code, 1, "{wait:?}");
    assert!(
        wait.stderr.starts_with("fleet: nothing to wait for: ")
            && wait
                .stderr
                .contains("(HTTP 404, nothing_dispatched, request "),
        "{}",
        wait.stderr
    );
    assert_eq!(wait.stderr.lines().count(), 1);
    assert_eq!(h.proxy.connection_count(), 2, "one poll");

    let runs = h.fleet().run(&["runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert!(runs.stdout.contains("(no runs: dry run"), "{}", runs.stdout);
}
