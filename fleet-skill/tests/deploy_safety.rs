//! Deploy safety from the CLI side: queue, replay, in-flight refusals, rollback, runs, audit and wait, against a double of the API's contract.

mod support;

use control_api::contract::{
    AmiId, AuditAnswer, AuditRecord, BootstrapCheck, Caller, DeployAnswer, DeployChecks,
    DryRunDispatch, ErrorBody, IdempotencyCheck, InFlightCheck, Request, RollbackImages, RunAnswer,
    RunRef, RunsAnswer, Target, WorkflowRun, AUDIT_LIMIT, RUNS_LIMIT,
};
use control_api::test_support::fakes::FakeWorkflow;
use serde_json::{json, Value};
use support::*;

const REQUEST_ID: &str = "4f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b";
const OTHER_REQUEST_ID: &str = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d";
const RUN_URL: &str = "https://github.com/openclaw/clawdinators/actions/runs/123";
const OTHER_RUN_URL: &str = "https://github.com/openclaw/clawdinators/actions/runs/122";

fn caller(c: &str) -> Option<Caller> {
    Some(Caller::parse(c).unwrap())
}

fn target(t: &str) -> Target {
    Target::parse(t).unwrap()
}

fn ami(id: &str) -> AmiId {
    AmiId::parse(id).unwrap()
}

fn checks(idempotency: IdempotencyCheck, in_flight: InFlightCheck) -> DeployChecks {
    DeployChecks {
        bootstrap: BootstrapCheck::Ok,
        idempotency,
        in_flight,
    }
}

/// The contract's deploy answer for `to`, its run already visible.
fn accepted(to: &str) -> DeployAnswer {
    DeployAnswer {
        mode: Default::default(),
        ok: true,
        message: format!("deploy queued for {to}"),
        target: target(to),
        ami_override: None,
        caller: caller("human:ops"),
        revision: None,
        checks: checks(IdempotencyCheck::New, InFlightCheck::Clear),
        run_id: Some(123),
        run_url: Some(RUN_URL.to_owned()),
        rollback: None,
        warning: None,
        dispatch: None,
        request_id: REQUEST_ID.to_owned(),
        replayed: false,
    }
}

/// A 200 with a deploy or rollback answer.
fn ok(answer: DeployAnswer) -> (u16, Value) {
    (200, json_of(&answer))
}

/// A run of the contract.
fn run(status: &str, conclusion: Option<&str>, step: Option<&str>) -> WorkflowRun {
    WorkflowRun {
        mode: Default::default(),
        run_id: 123,
        run_url: RUN_URL.to_owned(),
        request_id: Some(REQUEST_ID.to_owned()),
        target: Some("clawdinator-2".to_owned()),
        caller: Some("human:ops".to_owned()),
        status: status.to_owned(),
        conclusion: conclusion.map(str::to_owned),
        started: Some("2026-01-10T12:00:00Z".to_owned()),
        duration_secs: conclusion.map(|_| 252),
        step: step.map(str::to_owned),
        summary: None,
    }
}

fn found(run: WorkflowRun) -> (u16, Value) {
    let answer = RunAnswer {
        ok: true,
        run,
        report: None,
        request_id: OTHER_REQUEST_ID.to_owned(),
    };
    (200, json_of(&answer))
}

fn error_body(code: &str, message: &str) -> ErrorBody {
    ErrorBody {
        ok: false,
        error: code.to_owned(),
        message: message.to_owned(),
        request_id: OTHER_REQUEST_ID.to_owned(),
        run: None,
        lease: None,
        lock: None,
        retry_after_secs: None,
        replayed: false,
    }
}

fn refusal(status: u16, code: &str, message: &str) -> (u16, Value) {
    (status, json_of(&error_body(code, message)))
}

fn deploy_request(to: &str, by: Option<&str>) -> Request {
    Request::Deploy {
        target: target(to),
        caller: by.and_then(caller),
        ami_override: None,
        queue: false,
        revision: None,
    }
}

fn rollback_request(to: &str, by: Option<&str>, queue: bool) -> Request {
    Request::Rollback {
        target: target(to),
        caller: by.and_then(caller),
        queue,
        revision: None,
    }
}

fn by_run_id(by: Option<&str>) -> Request {
    Request::Run {
        caller: by.and_then(caller),
        run: RunRef::RunId(123),
    }
}

fn by_request_id() -> Request {
    Request::Run {
        caller: None,
        run: RunRef::RequestId(REQUEST_ID.to_owned()),
    }
}

/// The progress lines of a transcript without their clock, which the test does not time.
fn progress(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| !l.starts_with("fleet: "))
        .map(|l| {
            let (clock, rest) = l.split_once("] ").unwrap_or_else(|| panic!("{l:?}"));
            assert!(clock.starts_with('[') && clock.ends_with('s'), "{l:?}");
            rest.to_owned()
        })
        .collect()
}

#[test]
fn deploy_prints_the_run_url_and_sends_the_contract() {
    let api = ApiDouble::start();
    api.on(
        deploy_request("clawdinator-2", Some("human:ops")),
        &[ok(accepted("clawdinator-2"))],
    );
    let run = api
        .fleet()
        .run(&["--caller", "human:ops", "deploy", "clawdinator-2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!("deploy queued for clawdinator-2 (request {REQUEST_ID})\nrun: {RUN_URL}\n")
    );
    assert_eq!(run.stderr, "");
    let sent = api.requests();
    assert_eq!(sent.len(), 1, "one request, no polling without --wait");
    assert!(is_uuid_v4(sent[0].header("idempotency-key").unwrap()));
    assert_eq!(
        sent[0].request(),
        deploy_request("clawdinator-2", Some("human:ops"))
    );
}

#[test]
fn a_queued_deploy_sends_queue_and_shows_the_apis_warning() {
    let api = ApiDouble::start();
    let request = Request::Deploy {
        target: target("clawdinator-2"),
        caller: caller("human:ops"),
        ami_override: Some(ami("ami-0123456789abcdef0")),
        queue: true,
        revision: None,
    };
    let answer = DeployAnswer {
        ami_override: Some(ami("ami-0123456789abcdef0")),
        checks: checks(IdempotencyCheck::New, InFlightCheck::Queued),
        warning: Some("queued behind run 122 (in_progress)\nfleet: fake line".to_owned()),
        ..accepted("clawdinator-2")
    };
    api.on(request, &[ok(answer)]);
    // `--ami-override` is the flag; `--ami` its old name, still accepted.
    for flag in ["--ami-override", "--ami"] {
        let run = api.fleet().run(&[
            "--caller",
            "human:ops",
            "deploy",
            "clawdinator-2",
            flag,
            "ami-0123456789abcdef0",
            "--queue",
        ]);
        assert_eq!(run.code, 0, "{flag}: {run:?}");
        assert_eq!(
            run.stdout,
            format!(
                "deploy queued for clawdinator-2 (request {REQUEST_ID})\nrun: {RUN_URL}\nwarning: queued behind run 122 (in_progress) fleet: fake line\n"
            )
        );
    }
}

#[test]
fn a_replayed_deploy_says_so_and_how_to_follow_it() {
    let api = ApiDouble::start();
    let answer = DeployAnswer {
        checks: DeployChecks {
            bootstrap: BootstrapCheck::Skipped,
            idempotency: IdempotencyCheck::Skipped,
            in_flight: InFlightCheck::Skipped,
        },
        run_id: None,
        run_url: None,
        replayed: true,
        ..accepted("clawdinator-2")
    };
    api.on(deploy_request("clawdinator-2", None), &[ok(answer)]);
    let run = api.fleet().run(&["deploy", "clawdinator-2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "deploy queued for clawdinator-2 (request {REQUEST_ID})\n\
             run not visible yet; follow it with: fleet wait {REQUEST_ID}\n\
             (replayed: an earlier identical request already answered)\n"
        )
    );
}

#[test]
fn deploy_in_flight_is_refused_with_the_other_runs_url() {
    let api = ApiDouble::start();
    let in_flight = ErrorBody {
        run: Some(WorkflowRun {
            run_id: 122,
            run_url: OTHER_RUN_URL.to_owned(),
            target: Some("clawdinator-1".to_owned()),
            caller: Some("clawdinator-2".to_owned()),
            started: Some("2026-01-10T11:58:00Z".to_owned()),
            ..run("in_progress", None, Some("Apply clawdinator-1"))
        }),
        ..error_body(
            "deploy_in_flight",
            "another deploy is queued or in progress; pass \"queue\": true to queue behind it",
        )
    };
    api.on(
        deploy_request("all", Some("human:ops")),
        &[(409, json_of(&in_flight))],
    );
    let run = api
        .fleet()
        .run(&["--caller", "human:ops", "deploy", "all", "--wait"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "fleet: another deploy is queued or in progress; pass \"queue\": true to queue behind it \
             (HTTP 409, deploy_in_flight, request {OTHER_REQUEST_ID}); run 122 in_progress: {OTHER_RUN_URL}\n"
        )
    );
    assert_eq!(api.requests().len(), 1, "a refusal is not waited on");
}

#[test]
fn the_new_refusals_and_failures_keep_their_exit_codes() {
    let api = ApiDouble::start();
    api.on(
        deploy_request("clawdinator-2", None),
        &[
            refusal(403, "queue_not_allowed", "bots may not queue"),
            refusal(422, "idempotency_key_reused", "key reused"),
            refusal(409, "idempotency_in_progress", "same key in progress"),
            refusal(
                502,
                "dispatch_unknown",
                "the dispatch may or may not have happened",
            ),
        ],
    );
    for (code, error) in [
        (1, "queue_not_allowed"),
        (1, "idempotency_key_reused"),
        (1, "idempotency_in_progress"),
        (3, "dispatch_unknown"),
    ] {
        let run = api.fleet().run(&["deploy", "clawdinator-2"]);
        assert_eq!(run.code, code, "{error}: {run:?}");
        assert!(
            run.stderr.contains(&format!(", {error}, request ")),
            "{}",
            run.stderr
        );
    }
    // Every invocation is a new deploy with its own key.
    let keys: std::collections::BTreeSet<String> = api
        .requests()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 4);
}

#[test]
fn deploy_wait_follows_the_run_to_success() {
    let api = ApiDouble::start();
    api.on(
        deploy_request("clawdinator-2", Some("human:ops")),
        &[ok(accepted("clawdinator-2"))],
    );
    api.on(
        by_run_id(Some("human:ops")),
        &[
            found(run("in_progress", None, Some("Apply clawdinator-2"))),
            found(run("completed", Some("success"), None)),
        ],
    );
    let run = api.fleet().run(&[
        "--caller",
        "human:ops",
        "deploy",
        "clawdinator-2",
        "--wait",
        "--interval",
        "0.01",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "deploy queued for clawdinator-2 (request {REQUEST_ID})\nrun: {RUN_URL}\n\
             run 123 concluded success in 4m12s: {RUN_URL}\n"
        )
    );
    assert_eq!(
        progress(&run.stderr),
        ["run 123 in_progress: Apply clawdinator-2"]
    );
    let sent = api.requests();
    assert_eq!(sent.len(), 3);
    assert!(sent[1].header("idempotency-key").is_none());
}

/// The contract's rollback answer: clawdinator-2 back from the b image to the a image.
fn rolled_back(by: Option<Caller>) -> DeployAnswer {
    DeployAnswer {
        message: "rollback queued for clawdinator-2".to_owned(),
        ami_override: Some(ami("ami-0aaaaaaaaaaaaaaaa")),
        caller: by,
        rollback: Some(RollbackImages {
            from: "ami-0bbbbbbbbbbbbbbbb".to_owned(),
            to: ami("ami-0aaaaaaaaaaaaaaaa"),
        }),
        ..accepted("clawdinator-2")
    }
}

#[test]
fn deploy_wait_on_a_failed_run_is_exit_1() {
    let api = ApiDouble::start();
    api.on(
        rollback_request("clawdinator-2", None, false),
        &[ok(rolled_back(None))],
    );
    api.on(
        by_run_id(None),
        &[found(run(
            "completed",
            Some("failure"),
            Some("Apply clawdinator-2"),
        ))],
    );
    let run = api
        .fleet()
        .run(&["rollback", "clawdinator-2", "--wait", "--interval", "0.01"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stdout
            .ends_with(&format!("run 123 concluded failure in 4m12s: {RUN_URL}\n")),
        "{}",
        run.stdout
    );
    assert_eq!(run.stderr, "fleet: run 123 concluded failure\n");
}

#[test]
fn rollback_prints_the_images_and_the_run() {
    let api = ApiDouble::start();
    api.on(
        rollback_request("clawdinator-2", Some("human:ops"), true),
        &[ok(rolled_back(caller("human:ops")))],
    );
    let run = api.fleet().run(&[
        "--caller",
        "human:ops",
        "rollback",
        "clawdinator-2",
        "--queue",
    ]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "rollback queued for clawdinator-2 (request {REQUEST_ID})\n\
             rollback: ami-0bbbbbbbbbbbbbbbb \u{2192} ami-0aaaaaaaaaaaaaaaa\n\
             run: {RUN_URL}\n"
        )
    );
    assert!(is_uuid_v4(
        api.requests()[0].header("idempotency-key").unwrap()
    ));
}

#[test]
fn rollback_refusals_are_exit_1() {
    let api = ApiDouble::start();
    api.on(
        rollback_request("all", None, false),
        &[
            refusal(409, "rollback_ambiguous", "hosts are on different images"),
            refusal(
                409,
                "no_previous_image",
                "no fleet image before the current one",
            ),
            refusal(404, "instance_not_running", "no running instance"),
        ],
    );
    for code in [
        "rollback_ambiguous",
        "no_previous_image",
        "instance_not_running",
    ] {
        let run = api.fleet().run(&["rollback", "all"]);
        assert_eq!(run.code, 1, "{code}: {run:?}");
        assert_eq!(run.stdout, "");
        assert!(run.stderr.contains(code), "{}", run.stderr);
    }
}

#[test]
fn a_bot_may_not_roll_back_itself_or_all_nor_queue() {
    let api = ApiDouble::start();
    api.set_instance_name("clawdinator-1");
    for (args, expected) in [
        (
            &["rollback", "clawdinator-1"][..],
            "fleet: clawdinator-1 may not deploy itself; ask another bot or a human (refused locally, nothing was sent)\n",
        ),
        (
            &["chat", "/fleet rollback clawdinator-1"],
            "fleet: clawdinator-1 may not deploy itself; ask another bot or a human (refused locally, nothing was sent)\n",
        ),
        (
            &["rollback", "all"],
            "fleet: clawdinator-1 is a fleet instance and may not deploy all (it would replace itself); deploy other instances one by one (refused locally, nothing was sent)\n",
        ),
        (
            &["chat", "/fleet@clawdinator_bot rollback all"],
            "fleet: clawdinator-1 is a fleet instance and may not deploy all (it would replace itself); deploy other instances one by one (refused locally, nothing was sent)\n",
        ),
        (
            &["deploy", "clawdinator-2", "--queue"],
            "fleet: clawdinator-1 is a fleet instance and may not queue behind a deploy in flight; a human can (refused locally, nothing was sent)\n",
        ),
        (
            &["rollback", "clawdinator-2", "--queue", "--wait"],
            "fleet: clawdinator-1 is a fleet instance and may not queue behind a deploy in flight; a human can (refused locally, nothing was sent)\n",
        ),
    ] {
        let run = api.fleet().run(args);
        assert_eq!(run.code, 1, "{args:?}: {run:?}");
        assert_eq!(run.stdout, "", "{args:?}");
        assert_eq!(run.stderr, expected, "{args:?}");
    }
    assert_eq!(api.proxy.connection_count(), 0, "no HTTP call at all");
    // The same host may roll back another bot, and a human naming themselves may queue.
    api.on(
        rollback_request("clawdinator-2", Some("clawdinator-1"), false),
        &[ok(accepted("clawdinator-2"))],
    );
    api.on(
        rollback_request("all", Some("human:ops"), true),
        &[ok(accepted("all"))],
    );
    let run = api.fleet().run(&["chat", "/fleet rollback clawdinator-2"]);
    assert_eq!(run.code, 0, "{run:?}");
    let run = api
        .fleet()
        .run(&["--caller", "human:ops", "rollback", "all", "--queue"]);
    assert_eq!(run.code, 0, "{run:?}");
}

fn runs_answer() -> RunsAnswer {
    let by_hand = FakeWorkflow::bare_run(
        121,
        "https://github.com/openclaw/clawdinators/actions/runs/121".to_owned(),
        None,
        "queued",
    );
    let cancelled = WorkflowRun {
        run_id: 122,
        run_url: OTHER_RUN_URL.to_owned(),
        target: Some("all".to_owned()),
        status: "completed".to_owned(),
        conclusion: Some("cancelled".to_owned()),
        started: Some("2026-01-09T08:00:00Z".to_owned()),
        duration_secs: Some(3723),
        ..by_hand.clone()
    };
    RunsAnswer {
        ok: true,
        runs: vec![
            run("in_progress", None, Some("Apply clawdinator-2")),
            cancelled,
            by_hand,
        ],
        note: None,
        request_id: OTHER_REQUEST_ID.to_owned(),
    }
}

fn runs_request(by: Option<&str>, limit: u8) -> Request {
    Request::Runs {
        caller: by.and_then(caller),
        limit,
    }
}

#[test]
fn runs_prints_a_table_or_the_json() {
    let api = ApiDouble::start();
    api.on(
        runs_request(None, RUNS_LIMIT.default),
        &[(200, json_of(&runs_answer()))],
    );
    let empty = RunsAnswer {
        runs: Vec::new(),
        ..runs_answer()
    };
    api.on(runs_request(None, 50), &[(200, json_of(&empty))]);
    let none_here = RunsAnswer {
        note: Some("dry run (no GitHub token): there are no runs".to_owned()),
        ..empty.clone()
    };
    api.on(runs_request(None, 1), &[(200, json_of(&none_here))]);
    let run = api.fleet().run(&["runs"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "\
RUN  TARGET         CALLER     STATUS               STARTED               DURATION  REQUEST
123  clawdinator-2  human:ops  in_progress          2026-01-10T12:00:00Z  -         {REQUEST_ID}
122  all            -          completed/cancelled  2026-01-09T08:00:00Z  1h02m03s  -
121  -              -          queued               -                     -         -
"
        )
    );
    let json = api.fleet().run(&["runs", "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let listed: RunsAnswer = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(listed, runs_answer());
    let empty = api.fleet().run(&["runs", "--limit", "50"]);
    assert_eq!(empty.code, 0, "{empty:?}");
    assert_eq!(
        empty.stdout,
        "RUN  TARGET  CALLER  STATUS  STARTED  DURATION  REQUEST\n(no runs)\n"
    );
    // The dry run's note says why the list is empty.
    let none_here = api.fleet().run(&["runs", "--limit", "1"]);
    assert_eq!(
        none_here.stdout,
        "RUN  TARGET  CALLER  STATUS  STARTED  DURATION  REQUEST\n\
         (no runs: dry run (no GitHub token): there are no runs)\n"
    );
    // Out of range is a usage error, sent nowhere.
    let before = api.proxy.connection_count();
    for limit in ["0", "51", "-1", "ten"] {
        assert_eq!(api.fleet().run(&["runs", "--limit", limit]).code, 2);
    }
    assert_eq!(api.proxy.connection_count(), before);
}

fn audit_answer() -> AuditAnswer {
    let text = |s: &str| Some(s.to_owned());
    let accepted = AuditRecord {
        request_id: REQUEST_ID.to_owned(),
        time: "2026-01-10T12:00:00Z".to_owned(),
        principal: text("human:ops"),
        caller: text("human:ops"),
        action: text("deploy"),
        target: text("clawdinator-2"),
        ami_override: text("ami-0123456789abcdef0"),
        revision: None,
        decision: "accepted".to_owned(),
        status: 200,
        error: None,
        run_id: Some(123),
        run_url: text(RUN_URL),
        first_request_id: None,
        about_request_id: None,
        reason: None,
    };
    let refused = AuditRecord {
        request_id: OTHER_REQUEST_ID.to_owned(),
        time: "2026-01-10T11:59:00Z".to_owned(),
        principal: text("clawdinator-1"),
        caller: text("clawdinator-1"),
        target: text("all"),
        ami_override: None,
        decision: "refused".to_owned(),
        status: 403,
        error: text("bot_deploy_all"),
        run_id: None,
        run_url: None,
        ..accepted.clone()
    };
    AuditAnswer {
        ok: true,
        records: vec![accepted, refused],
        request_id: OTHER_REQUEST_ID.to_owned(),
    }
}

#[test]
fn audit_prints_a_table_or_the_json_and_bots_are_refused() {
    let api = ApiDouble::start();
    api.on(
        Request::Audit {
            caller: caller("human:ops"),
            limit: 2,
        },
        &[(200, json_of(&audit_answer()))],
    );
    api.on(
        Request::Audit {
            caller: caller("clawdinator-1"),
            limit: AUDIT_LIMIT.default,
        },
        &[refusal(
            403,
            "audit_humans_only",
            "the audit log is for humans",
        )],
    );
    let run = api
        .fleet()
        .run(&["--caller", "human:ops", "audit", "--limit", "2"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "\
TIME                  PRINCIPAL      CALLER         ACTION  TARGET         AMI                    DECISION  STATUS  ERROR           RUN  REQUEST
2026-01-10T12:00:00Z  human:ops      human:ops      deploy  clawdinator-2  ami-0123456789abcdef0  accepted  200     -               123  {REQUEST_ID}
2026-01-10T11:59:00Z  clawdinator-1  clawdinator-1  deploy  all            -                      refused   403     bot_deploy_all  -    {OTHER_REQUEST_ID}
"
        )
    );
    let json = api
        .fleet()
        .run(&["--caller", "human:ops", "audit", "--limit", "2", "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    assert_eq!(
        serde_json::from_str::<AuditAnswer>(&json.stdout).unwrap(),
        audit_answer()
    );
    api.set_instance_name("clawdinator-1");
    for args in [&["audit"][..], &["chat", "/fleet audit"]] {
        let bot = api.fleet().run(args);
        assert_eq!(bot.code, 1, "{args:?}: {bot:?}");
        assert!(
            bot.stderr.starts_with(
                "fleet: the audit log is for humans (HTTP 403, audit_humans_only, request "
            ),
            "{}",
            bot.stderr
        );
    }
    assert_eq!(
        api.fleet().run(&["audit", "--limit", "101"]).code,
        2,
        "1..=100"
    );
}

#[test]
fn wait_follows_a_run_to_success_with_a_line_per_change() {
    let api = ApiDouble::start();
    api.on(
        by_run_id(None),
        &[
            found(run("queued", None, None)),
            found(run("queued", None, None)),
            found(run("in_progress", None, Some("Check inputs"))),
            found(run("in_progress", None, Some("Check inputs"))),
            found(run("in_progress", None, Some("Apply clawdinator-2"))),
            found(run(
                "completed",
                Some("success"),
                Some("Apply clawdinator-2"),
            )),
        ],
    );
    let run = api.fleet().run(&["wait", "123", "--interval", "0.01"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!("run 123 concluded success in 4m12s: {RUN_URL}\n")
    );
    assert_eq!(
        progress(&run.stderr),
        [
            "run 123 queued",
            "run 123 in_progress: Check inputs",
            "run 123 in_progress: Apply clawdinator-2",
        ]
    );
    assert!(!run.stderr.contains('\r'), "no redrawing off a terminal");
    assert_eq!(api.requests().len(), 6);
}

#[test]
fn wait_on_a_failed_or_cancelled_run_is_exit_1() {
    for conclusion in ["failure", "cancelled", "timed_out", "action_required"] {
        let api = ApiDouble::start();
        api.on(
            by_run_id(None),
            &[found(run("completed", Some(conclusion), None))],
        );
        let run = api.fleet().run(&["wait", "123", "--interval", "0.01"]);
        assert_eq!(run.code, 1, "{conclusion}: {run:?}");
        assert_eq!(
            run.stdout,
            format!("run 123 concluded {conclusion} in 4m12s: {RUN_URL}\n")
        );
        assert_eq!(
            run.stderr,
            format!("fleet: run 123 concluded {conclusion}\n")
        );
    }
}

#[test]
fn wait_for_a_request_id_is_patient_until_the_run_shows_up() {
    let api = ApiDouble::start();
    api.on(
        by_request_id(),
        &[
            refusal(404, "run_not_found", "no run for this request yet"),
            refusal(404, "run_not_found", "no run for this request yet"),
            found(run("queued", None, None)),
        ],
    );
    api.on(
        by_run_id(None),
        &[found(run("completed", Some("success"), None))],
    );
    // Typed in capitals: the same request, asked for in the API's spelling.
    let run = api
        .fleet()
        .run(&["wait", &REQUEST_ID.to_uppercase(), "--interval", "0.01"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        progress(&run.stderr),
        [
            format!("run for request {REQUEST_ID}: not visible yet"),
            "run 123 queued".to_owned(),
        ]
    );
    // Once the run is known it is asked for by run id. Each "not found" also asked
    // whether the request waits in the deploy queue (this double knows no queue).
    let sent: Vec<Request> = api.requests().iter().map(RawRequest::request).collect();
    let (queue, runs): (Vec<Request>, Vec<Request>) = sent
        .into_iter()
        .partition(|r| matches!(r, Request::Queue { .. }));
    assert_eq!(queue.len(), 2);
    assert_eq!(runs.len(), 4);
    assert_eq!(runs[0], by_request_id());
    assert_eq!(runs[3], by_run_id(None));
}

#[test]
fn a_deploy_without_a_visible_run_is_followed_by_request_id() {
    let api = ApiDouble::start();
    let not_visible = DeployAnswer {
        run_id: None,
        run_url: None,
        caller: None,
        ..accepted("clawdinator-2")
    };
    api.on(deploy_request("clawdinator-2", None), &[ok(not_visible)]);
    api.on(
        by_request_id(),
        &[
            refusal(404, "run_not_found", "not yet"),
            found(run("completed", Some("success"), None)),
        ],
    );
    let run = api
        .fleet()
        .run(&["deploy", "clawdinator-2", "--wait", "--interval", "0.01"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "deploy queued for clawdinator-2 (request {REQUEST_ID})\n\
             run not visible yet; follow it with: fleet wait {REQUEST_ID}\n\
             run 123 concluded success in 4m12s: {RUN_URL}\n"
        )
    );
}

/// The local dry run's answer: what it would have dispatched, no run.
fn dry_run() -> DeployAnswer {
    let inputs = [("target", "clawdinator-2"), ("request_id", REQUEST_ID)];
    DeployAnswer {
        message: "dry run: would dispatch the deploy of clawdinator-2 (nothing was sent)"
            .to_owned(),
        caller: None,
        checks: DeployChecks {
            bootstrap: BootstrapCheck::Skipped,
            idempotency: IdempotencyCheck::Skipped,
            in_flight: InFlightCheck::Skipped,
        },
        run_id: None,
        run_url: None,
        dispatch: Some(DryRunDispatch {
            dry_run: true,
            repo: "openclaw/clawdinators".to_owned(),
            workflow: "fleet-deploy.yml".to_owned(),
            git_ref: "main".to_owned(),
            inputs: inputs
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
        }),
        ..accepted("clawdinator-2")
    }
}

#[test]
fn a_dry_run_deploy_has_nothing_to_wait_for() {
    let api = ApiDouble::start();
    // An older server said "queued" for a dry run too; the receipt never does.
    let old = DeployAnswer {
        message: "deploy queued for clawdinator-2".to_owned(),
        ..dry_run()
    };
    api.on(
        deploy_request("clawdinator-2", None),
        &[ok(dry_run()), ok(old)],
    );
    for _ in 0..2 {
        let run = api.fleet().run(&["deploy", "clawdinator-2", "--wait"]);
        assert_eq!(run.code, 0, "{run:?}");
        assert_eq!(
            run.stdout,
            format!(
                "dry run: would dispatch the deploy of clawdinator-2 (nothing was sent) (request {REQUEST_ID})\n\
                 would dispatch: fleet-deploy.yml in openclaw/clawdinators at main\n\
                 nothing to wait for: a dry run dispatches no workflow run\n"
            )
        );
        assert!(!run.stdout.contains("queued"), "{}", run.stdout);
    }
    assert_eq!(api.requests().len(), 2, "no polls");
}

#[test]
fn wait_on_a_server_that_dispatches_nothing_stops_at_once() {
    let api = ApiDouble::start();
    let message = "this server is a dry run (no GitHub token): nothing was dispatched, so there is no run to follow";
    api.on(
        by_request_id(),
        &[refusal(404, "nothing_dispatched", message)],
    );
    // A minute of patience for a run that is not visible yet would be spent in vain.
    let started = std::time::Instant::now();
    let run = api.fleet().run(&["wait", REQUEST_ID, "--interval", "0.5"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "fleet: nothing to wait for: {message} (HTTP 404, nothing_dispatched, request {OTHER_REQUEST_ID})\n"
        )
    );
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn wait_survives_a_dropped_connection_and_a_server_error() {
    // The second poll's connection is hung up on after the request was sent.
    let api = ApiDouble::start_dropping(&[1]);
    api.on(
        by_run_id(None),
        &[
            found(run("in_progress", None, Some("Apply clawdinator-2"))),
            refusal(502, "github_unavailable", "GitHub did not answer"),
            (
                503,
                json!({"Message": "Service Unavailable"}), // Lambda's own throttle
            ),
            found(run("completed", Some("success"), None)),
        ],
    );
    let run = api.fleet().run(&["wait", "123", "--interval", "0.01"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        progress(&run.stderr),
        ["run 123 in_progress: Apply clawdinator-2"],
        "failed polls add no lines to a transcript"
    );
    assert_eq!(
        api.requests().len(),
        5,
        "one dropped, two failed, two answered"
    );
}

#[test]
fn wait_gives_up_after_five_failed_polls_in_a_row() {
    let api = ApiDouble::start();
    api.on(
        by_run_id(None),
        &[refusal(502, "github_unavailable", "GitHub did not answer")],
    );
    let run = api.fleet().run(&["wait", "123", "--interval", "0.01"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        format!(
            "fleet: gave up waiting after 5 failed polls in a row (last: GitHub did not answer \
             (HTTP 502, github_unavailable, request {OTHER_REQUEST_ID})); follow it with: fleet wait 123\n"
        )
    );
    assert_eq!(api.requests().len(), 5);
}

#[test]
fn wait_times_out_with_exit_3() {
    let api = ApiDouble::start();
    api.on(
        by_run_id(None),
        &[found(run("in_progress", None, Some("Apply clawdinator-2")))],
    );
    let run = api
        .fleet()
        .run(&["wait", "123", "--interval", "0.01", "--timeout", "0.05"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stdout, "");
    let last = run.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("fleet: gave up waiting after ")
            && last.ends_with(
                " (last seen: run 123 in_progress: Apply clawdinator-2); follow it with: fleet wait 123"
            ),
        "{last}"
    );
    assert_eq!(
        progress(&run.stderr),
        ["run 123 in_progress: Apply clawdinator-2"]
    );
}

#[test]
fn a_refusal_ends_the_wait_at_once() {
    let api = ApiDouble::start();
    // A run id the API does not know is not "not visible yet": only a request id is.
    api.on(
        by_run_id(None),
        &[refusal(404, "run_not_found", "no run 123")],
    );
    let run = api.fleet().run(&["wait", "123", "--interval", "0.01"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr
            .starts_with("fleet: no run 123 (HTTP 404, run_not_found"),
        "{}",
        run.stderr
    );
    assert_eq!(api.requests().len(), 1);

    let api = ApiDouble::start();
    api.on(
        by_run_id(None),
        &[refusal(401, "unauthorized", "missing or invalid token")],
    );
    let run = api.fleet().run(&["wait", "123", "--interval", "0.01"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(api.requests().len(), 1);
}

#[test]
fn bad_wait_ids_are_usage_errors_that_send_nothing() {
    let api = ApiDouble::start();
    for args in [
        &["wait"][..],
        &["wait", "abc"],
        &["wait", "0"],
        &["wait", "007"],
        &["wait", "-5"],
        &["wait", "12.5"],
        &["wait", "{4f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b}"],
        &["wait", "4f1c2a9e5b6d4e7f8a9b0c1d2e3f4a5b"],
        &["wait", "4f1c2a9e-5b6d-4e7f-8a9b-0c1d2e3f4a5b;reboot"],
        &["wait", "123", "456"],
        &["wait", "123", "--interval", "0"],
        &["wait", "123", "--timeout", "forever"],
        &["chat", "/fleet wait abc"],
        &["chat", "/fleet wait"],
        &["chat", "/fleet wait 123 --timeout 5"],
        &["chat", "/fleet wait 123;reboot"],
    ] {
        let run = api.fleet().run(args);
        assert_eq!(run.code, 2, "{args:?}: {run:?}");
        // Chat text goes back to a channel: never echoed. (clap quotes a bad argument,
        // which the user typed in their own shell.)
        if args[0] == "chat" {
            assert!(!run.stderr.contains("reboot") && !run.stdout.contains("reboot"));
        }
    }
    assert_eq!(api.proxy.connection_count(), 0);
}

#[test]
fn chat_runs_and_wait_print_what_a_bot_relays() {
    let api = ApiDouble::start();
    api.set_instance_name("clawdinator-1");
    api.on(
        runs_request(Some("clawdinator-1"), RUNS_LIMIT.default),
        &[(200, json_of(&runs_answer()))],
    );
    api.on(
        by_run_id(Some("clawdinator-1")),
        &[
            found(run("in_progress", None, Some("Apply clawdinator-2"))),
            found(run("completed", Some("success"), None)),
        ],
    );
    let table = api.fleet().run(&["chat", "/fleet@clawdinator_bot RUNS"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert_eq!(table.stdout, api.fleet().run(&["runs"]).stdout);
    let wait = api.fleet().run(&["chat", "  /fleet wait 123 "]);
    assert_eq!(wait.code, 0, "{wait:?}");
    assert_eq!(
        wait.stdout,
        format!("run 123 concluded success in 4m12s: {RUN_URL}\n")
    );
    assert_eq!(
        progress(&wait.stderr),
        ["run 123 in_progress: Apply clawdinator-2"]
    );
}

/// `fleet_skill::run` in-process with stderr taken for a terminal.
fn run_on_a_terminal(api: &ApiDouble, args: &[&str]) -> (Result<(), u8>, String, String) {
    use clap::Parser;
    let env = api.env();
    let lookup = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let cli =
        fleet_skill::cli::Cli::try_parse_from(std::iter::once("fleet").chain(args.iter().copied()))
            .unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let result =
        fleet_skill::run(cli, &lookup, &mut out, &mut err, true).map_err(|e| e.exit_code());
    (
        result,
        String::from_utf8(out).unwrap(),
        String::from_utf8(err).unwrap(),
    )
}

#[test]
fn on_a_terminal_wait_redraws_one_line_but_chat_never_does() {
    let api = ApiDouble::start();
    api.on(
        by_run_id(None),
        &[
            found(run("queued", None, None)),
            found(run("in_progress", None, Some("Apply clawdinator-2"))),
            found(run("completed", Some("success"), None)),
        ],
    );
    let (result, out, err) = run_on_a_terminal(&api, &["wait", "123", "--interval", "0.3"]);
    assert_eq!(result, Ok(()));
    assert_eq!(
        out,
        format!("run 123 concluded success in 4m12s: {RUN_URL}\n")
    );
    assert!(!err.contains('\n'), "{err:?}");
    let frames: Vec<&str> = err.split('\r').filter(|f| !f.trim().is_empty()).collect();
    assert!(
        frames.iter().any(|f| f.contains("run 123 queued"))
            && frames
                .iter()
                .any(|f| f.contains("run 123 in_progress: Apply clawdinator-2")),
        "{frames:?}"
    );
    for frame in &frames {
        assert!(
            ['|', '/', '-', '\\'].contains(&frame.chars().next().unwrap()),
            "spinner first: {frame:?}"
        );
    }
    assert!(err.ends_with('\r'), "the line is blanked at the end");

    let api = ApiDouble::start();
    api.on(
        by_run_id(None),
        &[
            found(run("queued", None, None)),
            found(run("completed", Some("success"), None)),
        ],
    );
    let (result, _, err) = run_on_a_terminal(&api, &["chat", "/fleet wait 123"]);
    assert_eq!(result, Ok(()));
    assert!(!err.contains('\r'), "{err:?}");
    assert_eq!(progress(&err), ["run 123 queued"]);
}
