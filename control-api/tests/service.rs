//! The control API's flows on in-memory fakes of its four ports (no moto, no GitHub
//! double): every error code of the README's table, replays, key reuse, the guard and
//! queue, the rollback's choice of image. Answers are read through the wire contract.

use std::collections::BTreeSet;
use std::time::Duration;

use control_api::contract::{
    AuditAnswer, AuditRecord, CancelAnswer, DeployAnswer, ErrorBody, InFlightCheck, LockAnswer,
    QueueAnswer, QueuedAnswer, Request, StatusAnswer, Target,
};
use control_api::domain::auth::{Authenticator, Credentials, Principal};
use control_api::domain::dispatch::DeployTiming;
use control_api::domain::error::ApiError;
use control_api::domain::idempotency::{sha256_hex, ClaimTiming, IdempotencyKey};
use control_api::domain::lease::{Lease, LEASE_KEY};
use control_api::domain::lock::{lock_key, Lock};
use control_api::domain::ports::{DispatchError, Misconfig, StateStore, WorkflowError};
use control_api::domain::rate_limit::RateLimiter;
use control_api::domain::refusal_budget::RefusalBudget;
use control_api::domain::registry::Registry;
use control_api::domain::report::{report_key, RollMode};
use control_api::domain::service::{ControlApi, Ports};
use control_api::inbound::http::{answer, answer_unready, HttpCall, Method, Reply};
use control_api::test_support::fakes::{FakeBootstrap, FakeFleet, FakeState, FakeWorkflow};

const TOKEN: &str = "service-test-token";
const BOT_TOKEN: &str = "service-test-bot-token";
const OLD: &str = "ami-0000000a";
const NEW: &str = "ami-0000000b";

type Api = ControlApi<FakeWorkflow, FakeFleet, FakeBootstrap, FakeState>;

/// What a test changes from the default world: three hosts running the newest image,
/// every bundle present, a state bucket, GitHub accepting.
#[derive(Default)]
struct World {
    workflow: FakeWorkflow,
    fleet: Option<FakeFleet>,
    bootstrap: Option<FakeBootstrap>,
    no_bootstrap: bool,
    no_state: bool,
    state: Option<FakeState>,
    auth: Option<Result<Authenticator, Misconfig>>,
    limiter: Option<RateLimiter>,
}

fn registry() -> Registry {
    Registry::embedded().unwrap()
}

fn fleet_on(amis: [&str; 3]) -> FakeFleet {
    let hosts = ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"];
    FakeFleet {
        instances: hosts
            .iter()
            .zip(amis)
            .enumerate()
            .map(|(i, (h, ami))| FakeFleet::running(&format!("i-0{i}"), h, ami))
            .collect(),
        images: vec![
            FakeFleet::image(OLD, "2026-11-01T00:00:00.000Z"),
            FakeFleet::image(NEW, "2026-11-20T00:00:00.000Z"),
        ],
        fail: false,
    }
}

fn all_bundles() -> FakeBootstrap {
    let prefixes: BTreeSet<String> = registry()
        .iter()
        .map(|(_, e)| e.bootstrap_prefix.clone())
        .collect();
    FakeBootstrap { prefixes }
}

fn tokens() -> Authenticator {
    Authenticator::shared(TOKEN).with_token(BOT_TOKEN, Principal::parse("clawdinator-1").unwrap())
}

/// The tokens, and IAM rules: then every request must be signed.
fn tokens_and_iam() -> Result<Authenticator, Misconfig> {
    Ok(tokens()
        .with_iam_principals(r#"{"arn:aws:iam::123456789012:user/ops":"human:ops"}"#)
        .unwrap())
}

fn build(w: World) -> Api {
    let auth = w.auth.unwrap_or_else(|| Ok(tokens()));
    let ports = Ports {
        workflow: w.workflow,
        fleet: w.fleet.unwrap_or_else(|| fleet_on([NEW, NEW, NEW])),
        bootstrap: (!w.no_bootstrap).then(|| w.bootstrap.unwrap_or_else(all_bundles)),
        state: (!w.no_state).then(|| w.state.unwrap_or_default()),
        sleep: |d| Box::pin(tokio::time::sleep(d)),
    };
    let timing = DeployTiming {
        dispatch_deadline: Duration::from_millis(400),
        backoff_base: Duration::from_millis(5),
        backoff_max: Duration::from_millis(20),
        run_visible_within: Duration::from_millis(50),
        run_poll: Duration::from_millis(10),
    };
    let claim = ClaimTiming {
        wait_for_first: Duration::from_millis(100),
        poll: Duration::from_millis(10),
    };
    let api = ControlApi::new(registry(), auth, ports).with_timing(timing, claim);
    match w.limiter {
        Some(l) => api.with_rate_limit(l),
        None => api,
    }
}

/// One request: the shared token unless `token` says otherwise.
struct Ask<'a> {
    token: Option<&'a str>,
    iam_arn: Option<&'a str>,
    key: Option<&'a str>,
    body: String,
    source_ip: Option<&'a str>,
}

fn ask(request: &Request) -> Ask<'static> {
    Ask {
        token: Some(TOKEN),
        iam_arn: None,
        key: None,
        body: serde_json::to_string(request).unwrap(),
        source_ip: None,
    }
}

fn raw(body: &str) -> Ask<'static> {
    Ask {
        token: Some(TOKEN),
        iam_arn: None,
        key: None,
        body: body.to_owned(),
        source_ip: None,
    }
}

async fn send(api: &Api, a: &Ask<'_>) -> Reply {
    let bearer = a.token.map(|t| format!("Bearer {t}"));
    let call = HttpCall {
        method: Method::Post,
        credentials: Credentials {
            authorization: bearer.as_deref(),
            clawdinator_token: None,
            iam_arn: a.iam_arn,
        },
        content_type: Some("application/json"),
        idempotency_key: a.key,
        body: a.body.as_bytes(),
        body_too_large: false,
        source_ip: a.source_ip,
    };
    answer(api, call).await
}

/// The status and error code of a refusal, read through the contract's error body.
async fn refused(api: &Api, a: &Ask<'_>) -> (u16, String) {
    let reply = send(api, a).await;
    let body: ErrorBody = serde_json::from_str(&reply.body).expect(&reply.body);
    assert!(!body.ok && !body.message.is_empty() && !body.request_id.is_empty());
    assert!(!reply.body.contains(TOKEN), "no token in an answer");
    (reply.status, body.error)
}

async fn deployed(api: &Api, a: &Ask<'_>) -> DeployAnswer {
    let reply = send(api, a).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

fn deploy(target: &str) -> Request {
    Request::Deploy {
        target: Target::parse(target).unwrap(),
        caller: None,
        ami_override: None,
        queue: false,
        revision: None,
    }
}

fn body(target: &str, extra: &str) -> String {
    format!(r#"{{"action":"deploy","target":"{target}"{extra}}}"#)
}

#[tokio::test]
async fn malformed_requests_are_400_with_their_codes_and_dispatch_nothing() {
    let api = build(World::default());
    let cases = [
        ("not json", "invalid_json"),
        ("[1]", "invalid_body"),
        (
            r#"{"action":"deploy","target":"all","target":"all"}"#,
            "duplicate_field",
        ),
        (r#"{"action":1}"#, "invalid_field"),
        ("{}", "missing_action"),
        (r#"{"action":"reboot"}"#, "unknown_action"),
        (r#"{"action":"deploy"}"#, "missing_target"),
        (
            r#"{"action":"deploy","target":"x;reboot"}"#,
            "invalid_target",
        ),
        (&body("all", r#","ami_override":"ami-1""#), "invalid_ami"),
        (&body("all", r#","caller":"a b""#), "invalid_caller"),
        (r#"{"action":"run"}"#, "missing_run"),
        (
            r#"{"action":"run","request_id":"../x"}"#,
            "invalid_request_id",
        ),
    ];
    for (b, code) in cases {
        assert_eq!(refused(&api, &raw(b)).await, (400, code.to_owned()), "{b}");
    }
    let mut bad_key = ask(&deploy("clawdinator-2"));
    bad_key.key = Some("a b");
    assert_eq!(
        refused(&api, &bad_key).await,
        (400, "invalid_idempotency_key".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
}

#[tokio::test]
async fn transport_refusals_405_413_415() {
    let api = build(World::default());
    let bearer = format!("Bearer {TOKEN}");
    let base = HttpCall {
        method: Method::Post,
        credentials: Credentials {
            authorization: Some(&bearer),
            clawdinator_token: None,
            iam_arn: None,
        },
        content_type: Some("application/json"),
        idempotency_key: None,
        body: br#"{"action":"status"}"#,
        body_too_large: false,
        source_ip: None,
    };
    let get = answer(
        &api,
        HttpCall {
            method: Method::Other,
            ..base
        },
    )
    .await;
    assert_eq!(get.status, 405);
    assert!(get.headers.contains(&("allow", "POST".to_owned())));
    let big = answer(
        &api,
        HttpCall {
            body_too_large: true,
            ..base
        },
    )
    .await;
    let text = answer(
        &api,
        HttpCall {
            content_type: Some("text/plain"),
            ..base
        },
    )
    .await;
    for (reply, status, code) in [
        (get, 405, "method_not_allowed"),
        (big, 413, "payload_too_large"),
        (text, 415, "unsupported_media_type"),
    ] {
        let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
        assert_eq!((reply.status, e.error.as_str()), (status, code));
    }
}

#[tokio::test]
async fn credentials_and_policy_refusals() {
    let api = build(World::default());
    let mut no_token = ask(&deploy("all"));
    no_token.token = None;
    assert_eq!(refused(&api, &no_token).await, (401, "unauthorized".into()));
    let mut bot = raw(&body("clawdinator-1", ""));
    bot.token = Some(BOT_TOKEN);
    assert_eq!(refused(&api, &bot).await, (403, "self_deploy".into()));
    bot.body = body("all", "");
    assert_eq!(refused(&api, &bot).await, (403, "bot_deploy_all".into()));
    bot.body = body("clawdinator-2", r#","caller":"clawdinator-2""#);
    assert_eq!(refused(&api, &bot).await, (403, "caller_mismatch".into()));
    bot.body = body("clawdinator-2", r#","queue":true"#);
    assert_eq!(refused(&api, &bot).await, (403, "queue_not_allowed".into()));
    bot.body = r#"{"action":"audit"}"#.into();
    assert_eq!(refused(&api, &bot).await, (403, "audit_humans_only".into()));
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
    // Refused callers leave a durable record each.
    let state = api.ports().state.as_ref().unwrap();
    assert_eq!(state.keys("audit/").len(), 6);

    let api = build(World {
        auth: Some(tokens_and_iam()),
        ..World::default()
    });
    let mut stranger = ask(&deploy("clawdinator-2"));
    stranger.iam_arn = Some("arn:aws:iam::123456789012:user/stranger");
    assert_eq!(
        refused(&api, &stranger).await,
        (403, "unknown_principal".into())
    );
    let mut mismatch = ask(&deploy("clawdinator-2"));
    mismatch.token = Some(BOT_TOKEN);
    mismatch.iam_arn = Some("arn:aws:iam::123456789012:user/ops");
    assert_eq!(
        refused(&api, &mismatch).await,
        (403, "principal_mismatch".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
    let state = api.ports().state.as_ref().unwrap();
    assert_eq!(state.keys("audit/").len(), 2);
}

#[tokio::test]
async fn iam_rules_configured_refuse_a_request_without_an_iam_identity() {
    let api = build(World {
        auth: Some(tokens_and_iam()),
        ..World::default()
    });
    // The shared token stating a human caller, unsigned: once human rights, now a 401.
    let mut unsigned = ask(&deploy("all"));
    unsigned.body = body("all", r#","caller":"human:ops""#);
    assert_eq!(refused(&api, &unsigned).await, (401, "unauthorized".into()));
    let mut bot = raw(&body("clawdinator-2", ""));
    bot.token = Some(BOT_TOKEN);
    assert_eq!(refused(&api, &bot).await, (401, "unauthorized".into()));
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
    // Signed, the same shared token is the IAM identity's principal.
    let mut signed = ask(&deploy("clawdinator-2"));
    signed.iam_arn = Some("arn:aws:iam::123456789012:user/ops");
    let answer = deployed(&api, &signed).await;
    assert_eq!(
        answer.caller.as_ref().map(|c| c.as_str()),
        Some("human:ops")
    );
}

#[tokio::test]
async fn sixty_wrong_tokens_leave_a_handful_of_records_and_the_same_answer() {
    let api = build(World::default());
    let mut wrong = ask(&deploy("clawdinator-2"));
    wrong.token = Some("not-the-token");
    wrong.source_ip = Some("198.51.100.7");
    for _ in 0..60 {
        assert_eq!(refused(&api, &wrong).await, (401, "unauthorized".into()));
    }
    let state = api.ports().state.as_ref().unwrap();
    assert_eq!(
        state.keys("audit/").len(),
        5,
        "the default budget per source"
    );
    // Another address has its own budget; a bot's policy refusals count against the bot.
    wrong.source_ip = Some("203.0.113.9");
    assert_eq!(refused(&api, &wrong).await, (401, "unauthorized".into()));
    let mut bot = raw(&body("clawdinator-1", ""));
    bot.token = Some(BOT_TOKEN);
    bot.source_ip = Some("198.51.100.7");
    for _ in 0..10 {
        assert_eq!(refused(&api, &bot).await, (403, "self_deploy".into()));
    }
    assert_eq!(state.keys("audit/").len(), 5 + 1 + 5);
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
    // Accepted deploys are never suppressed.
    deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    assert_eq!(state.keys("audit/").len(), 12);
}

#[tokio::test]
async fn a_tighter_refusal_budget_is_per_source() {
    let api = build(World::default())
        .with_refusal_budget(RefusalBudget::new(2, Duration::from_secs(600)));
    let mut wrong = ask(&deploy("clawdinator-2"));
    wrong.token = None;
    wrong.source_ip = Some("198.51.100.7");
    for _ in 0..20 {
        assert_eq!(refused(&api, &wrong).await, (401, "unauthorized".into()));
    }
    let state = api.ports().state.as_ref().unwrap();
    assert_eq!(state.keys("audit/").len(), 2);
}

#[tokio::test]
async fn the_audit_listing_reads_only_the_newest_slice_of_a_flooded_day() {
    use chrono::TimeZone;
    use control_api::domain::audit::{self, AuditRecord};
    let state = FakeState::default();
    let now = chrono::Utc
        .with_ymd_and_hms(2026, 11, 20, 18, 0, 0)
        .unwrap();
    // 3000 records, one every 30 s back from `now`: 25 hours, so two days' prefixes.
    for i in 0..3000i64 {
        let at = now - chrono::Duration::seconds(30 * i);
        let ms = at.timestamp_millis() as u64;
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, 0);
        let record = AuditRecord {
            request_id: uuid::Uuid::new_v7(ts).to_string(),
            time: at.to_rfc3339(),
            principal: None,
            caller: None,
            action: Some("deploy".into()),
            target: Some(format!("n{i}")),
            ami_override: None,
            revision: None,
            decision: "refused".into(),
            status: 401,
            error: Some("unauthorized".into()),
            run_id: None,
            run_url: None,
            first_request_id: None,
            about_request_id: None,
            reason: None,
        };
        audit::write(&state, at, &record).await.unwrap();
    }
    let newest = audit::recent(&state, now, 5).await.unwrap();
    let targets: Vec<&str> = newest
        .iter()
        .map(|r| r.target.as_deref().unwrap())
        .collect();
    assert_eq!(targets, ["n0", "n1", "n2", "n3", "n4"]);
    assert!(state.listed_keys() <= 100, "{}", state.listed_keys());
    // Across the day boundary, still newest first and complete.
    let all = audit::recent(&state, now, 3000).await.unwrap();
    let expected: Vec<String> = (0..3000).map(|i| format!("n{i}")).collect();
    let targets: Vec<String> = all.into_iter().filter_map(|r| r.target).collect();
    assert_eq!(targets, expected);
}

#[tokio::test]
async fn unknown_things_are_404() {
    let api = build(World::default());
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-9"))).await,
        (404, "unknown_target".into())
    );
    let b = body("clawdinator-2", r#","ami_override":"ami-0000000f""#);
    assert_eq!(refused(&api, &raw(&b)).await, (404, "unknown_ami".into()));
    let run = raw(r#"{"action":"run","run_id":999}"#);
    assert_eq!(refused(&api, &run).await, (404, "run_not_found".into()));
    let dry = build(World {
        workflow: FakeWorkflow {
            dry_run: true,
            ..Default::default()
        },
        ..Default::default()
    });
    assert_eq!(
        refused(&dry, &run).await,
        (404, "nothing_dispatched".into())
    );
    let empty = build(World {
        fleet: Some(FakeFleet::default()),
        ..Default::default()
    });
    let rollback = raw(r#"{"action":"rollback","target":"clawdinator-2"}"#);
    assert_eq!(
        refused(&empty, &rollback).await,
        (404, "instance_not_running".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
}

#[tokio::test]
async fn rollback_goes_to_the_image_before_the_current_one() {
    let api = build(World::default());
    let reply = deployed(
        &api,
        &raw(r#"{"action":"rollback","target":"clawdinator-2"}"#),
    )
    .await;
    let rollback = reply.rollback.unwrap();
    assert_eq!((rollback.from.as_str(), rollback.to.as_str()), (NEW, OLD));
    assert_eq!(reply.ami_override.unwrap().as_str(), OLD);
    assert!(reply
        .message
        .starts_with("rollback queued for clawdinator-2"));
    let sent = api.ports().workflow.dispatched.lock().unwrap()[0].clone();
    assert_eq!(sent.ami_override.unwrap().as_str(), OLD);

    let oldest = build(World {
        fleet: Some(fleet_on([OLD, OLD, OLD])),
        ..Default::default()
    });
    let b = raw(r#"{"action":"rollback","target":"clawdinator-2"}"#);
    assert_eq!(
        refused(&oldest, &b).await,
        (409, "no_previous_image".into())
    );
    let mixed = build(World {
        fleet: Some(fleet_on([OLD, NEW, NEW])),
        ..Default::default()
    });
    let all = raw(r#"{"action":"rollback","target":"all"}"#);
    assert_eq!(
        refused(&mixed, &all).await,
        (409, "rollback_ambiguous".into())
    );
}

#[tokio::test]
async fn without_a_state_bucket_the_guard_reads_runs_and_bootstrap_conflicts_are_409() {
    let busy = FakeWorkflow::default();
    busy.existing
        .lock()
        .unwrap()
        .push(FakeWorkflow::run(7, "in_progress", None, "all"));
    let api = build(World {
        workflow: busy,
        no_state: true,
        ..Default::default()
    });
    let reply = send(&api, &ask(&deploy("clawdinator-2"))).await;
    let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
    assert_eq!((reply.status, e.error.as_str()), (409, "deploy_in_flight"));
    assert_eq!(e.run.unwrap().run_id, 7);
    // No queue without a state bucket to keep it in, and no GitHub pending slot relied on.
    let q = raw(&body("clawdinator-2", r#","queue":true"#));
    assert_eq!(refused(&api, &q).await, (409, "deploy_in_flight".into()));
    assert_eq!(api.ports().workflow.dispatch_count(), 0);

    let api = build(World {
        bootstrap: Some(FakeBootstrap::default()),
        ..Default::default()
    });
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-2"))).await,
        (409, "bootstrap_missing".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
}

fn state(api: &Api) -> &FakeState {
    api.ports().state.as_ref().unwrap()
}

/// Every audit record in the fake bucket, oldest first.
fn records(api: &Api) -> Vec<AuditRecord> {
    let state = state(api);
    let mut records: Vec<AuditRecord> = state
        .keys("audit/")
        .iter()
        .map(|k| serde_json::from_slice(&state.body(k).unwrap()).unwrap())
        .collect();
    records.sort_by(|a, b| a.request_id.cmp(&b.request_id));
    records
}

async fn queued(api: &Api, a: &Ask<'_>) -> QueuedAnswer {
    let reply = send(api, a).await;
    assert_eq!(reply.status, 202, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

async fn report_lands(api: &Api, request_id: &str) {
    state(api)
        .put(&report_key(request_id), b"{}".to_vec())
        .await
        .unwrap();
}

#[tokio::test]
async fn the_lease_lets_one_deploy_through_and_a_humans_queue_waits_in_order() {
    let api = build(World::default());
    let first = deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    assert_eq!(first.checks.in_flight, InFlightCheck::Clear);
    let reply = send(&api, &ask(&deploy("clawdinator-1"))).await;
    let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
    assert_eq!((reply.status, e.error.as_str()), (409, "deploy_in_flight"));
    assert_eq!(e.lease.unwrap().request_id, first.request_id);
    let q1 = queued(&api, &raw(&body("clawdinator-1", r#","queue":true"#))).await;
    let q2 = queued(&api, &raw(&body("all", r#","queue":true"#))).await;
    assert_eq!((q1.position, q2.position), (1, 2));
    let mut bot = raw(&body("clawdinator-2", r#","queue":true"#));
    bot.token = Some(BOT_TOKEN);
    assert_eq!(refused(&api, &bot).await, (403, "queue_not_allowed".into()));
    let listed: QueueAnswer =
        serde_json::from_str(&send(&api, &raw(r#"{"action":"queue"}"#)).await.body).unwrap();
    let ids: Vec<&str> = listed.queue.iter().map(|e| e.request_id.as_str()).collect();
    assert_eq!(ids, [q1.request_id.as_str(), q2.request_id.as_str()]);
    assert_eq!(listed.lease.unwrap().request_id, first.request_id);
    // Nothing moves while the first run goes on.
    assert!(api.drain_queue().await.unwrap().dispatched.is_empty());
    assert_eq!(api.ports().workflow.dispatch_count(), 1);
    report_lands(&api, &first.request_id).await;
    let drained = api.lease_ended(&first.request_id).await.unwrap();
    assert_eq!(drained.dispatched, std::slice::from_ref(&q1.request_id));
    let sent = api.ports().workflow.dispatched.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert_eq!(
        sent[1].request_id, q1.request_id,
        "dispatched under its own id"
    );
    // One at a time: the second waits for the first queued one's report.
    assert!(api.scheduled().await.unwrap().dispatched.is_empty());
    let kinds: Vec<(Option<String>, String)> = records(&api)
        .into_iter()
        .map(|r| (r.action, r.decision))
        .collect();
    assert!(
        kinds.contains(&(Some("deploy".into()), "enqueue".into())),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(Some("dequeue".into()), "accepted".into())),
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_queued_deploy_is_cancelled_by_its_requester_or_a_human_only() {
    let api = build(World::default());
    deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    let q = queued(
        &api,
        &raw(&body("clawdinator-babelfish", r#","queue":true"#)),
    )
    .await;
    let cancel = format!(r#"{{"action":"cancel","request_id":"{}"}}"#, q.request_id);
    let mut bot = raw(&cancel);
    bot.token = Some(BOT_TOKEN);
    assert_eq!(
        refused(&api, &bot).await,
        (403, "cancel_not_allowed".into())
    );
    let reply = send(&api, &raw(&cancel)).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: CancelAnswer = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(answer.cancelled.request_id, q.request_id);
    assert_eq!(
        refused(&api, &raw(&cancel)).await,
        (404, "not_queued".into())
    );
    let cancelled = records(&api)
        .into_iter()
        .find(|r| r.action.as_deref() == Some("cancel") && r.status == 200)
        .expect("a cancel record");
    assert_eq!(
        cancelled.about_request_id.as_deref(),
        Some(q.request_id.as_str())
    );
    assert!(state(&api).keys("queue/").is_empty());
}

fn lock_body(target: &str, extra: &str) -> String {
    format!(r#"{{"action":"lock","target":"{target}","reason":"debugging the gateway"{extra}}}"#)
}

#[tokio::test]
async fn locks_hold_deploys_with_423_and_a_second_locker_gets_409() {
    let api = build(World::default());
    let reply = send(
        &api,
        &raw(&lock_body("clawdinator-2", r#","caller":"human:ops""#)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let taken: LockAnswer = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(taken.lock.holder, "human:ops");
    let second = send(
        &api,
        &raw(&lock_body("clawdinator-2", r#","caller":"human:eve""#)),
    )
    .await;
    let e: ErrorBody = serde_json::from_str(&second.body).unwrap();
    assert_eq!((second.status, e.error.as_str()), (409, "lock_held"));
    assert_eq!(e.lock.unwrap().holder, "human:ops");
    for target in ["clawdinator-2", "all"] {
        let reply = send(&api, &ask(&deploy(target))).await;
        let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(
            (reply.status, e.error.as_str()),
            (423, "locked"),
            "{target}"
        );
        let lock = e.lock.unwrap();
        assert_eq!(
            (lock.holder.as_str(), lock.reason.as_str()),
            ("human:ops", "debugging the gateway")
        );
        assert!(e.message.contains(&lock.expires), "{}", e.message);
    }
    let rollback = raw(r#"{"action":"rollback","target":"clawdinator-2"}"#);
    assert_eq!(refused(&api, &rollback).await, (423, "locked".into()));
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
    let status: StatusAnswer =
        serde_json::from_str(&send(&api, &raw(r#"{"action":"status"}"#)).await.body).unwrap();
    assert_eq!(status.locks, std::slice::from_ref(&taken.lock));
    // A bot locks only its own host, and may not release a human's lock.
    let mut bot = raw(r#"{"action":"unlock","target":"clawdinator-2"}"#);
    bot.token = Some(BOT_TOKEN);
    assert_eq!(refused(&api, &bot).await, (403, "lock_not_allowed".into()));
    bot.body = lock_body("clawdinator-2", "");
    assert_eq!(refused(&api, &bot).await, (403, "lock_not_allowed".into()));
    bot.body = lock_body("clawdinator-1", "");
    assert_eq!(send(&api, &bot).await.status, 200);
    bot.body = r#"{"action":"unlock","target":"clawdinator-1"}"#.into();
    assert_eq!(send(&api, &bot).await.status, 200);
    // Any human releases any lock; then there is none.
    let unlock = raw(r#"{"action":"unlock","target":"clawdinator-2"}"#);
    assert_eq!(send(&api, &unlock).await.status, 200);
    assert_eq!(refused(&api, &unlock).await, (404, "lock_not_found".into()));
    deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    let actions: Vec<String> = records(&api).into_iter().filter_map(|r| r.action).collect();
    for action in ["lock", "unlock"] {
        assert!(actions.iter().any(|a| a == action), "{actions:?}");
    }
}

#[tokio::test]
async fn an_expired_lock_holds_nothing_and_is_recorded_as_expired() {
    let api = build(World::default());
    let reply = send(&api, &raw(&lock_body("all", r#","ttl_secs":1"#))).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let bad_ttl = raw(&lock_body("all", r#","ttl_secs":86401"#));
    assert_eq!(refused(&api, &bad_ttl).await, (400, "invalid_field".into()));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    let expired = records(&api)
        .into_iter()
        .find(|r| r.action.as_deref() == Some("lock_expired"))
        .expect("a lock_expired record");
    assert_eq!(expired.target.as_deref(), Some("all"));
    assert!(state(&api).keys("locks/").is_empty());
}

#[tokio::test]
async fn a_queued_deploy_whose_host_got_locked_is_dropped_with_a_record() {
    let api = build(World::default());
    let first = deployed(&api, &ask(&deploy("clawdinator-1"))).await;
    let q = queued(&api, &raw(&body("clawdinator-2", r#","queue":true"#))).await;
    assert_eq!(
        send(&api, &raw(&lock_body("clawdinator-2", "")))
            .await
            .status,
        200
    );
    report_lands(&api, &first.request_id).await;
    let drained = api.scheduled().await.unwrap();
    assert_eq!(drained.dropped, [(q.request_id.clone(), "locked")]);
    assert_eq!(api.ports().workflow.dispatch_count(), 1);
    let dropped = records(&api)
        .into_iter()
        .find(|r| r.action.as_deref() == Some("dequeue"))
        .unwrap();
    assert_eq!(
        (dropped.decision.as_str(), dropped.error.as_deref()),
        ("dropped", Some("locked"))
    );
    assert!(dropped.reason.unwrap().contains("debugging the gateway"));
    // The lease was let go: the next deploy goes at once.
    deployed(&api, &ask(&deploy("clawdinator-babelfish"))).await;
}

#[tokio::test]
async fn a_repeat_with_the_key_is_replayed_and_another_request_with_it_is_422() {
    let api = build(World::default());
    let mut first = ask(&deploy("clawdinator-2"));
    first.key = Some("k-1");
    let a = deployed(&api, &first).await;
    let b = deployed(&api, &first).await;
    assert!(!a.replayed && b.replayed);
    assert_eq!(
        (a.request_id.as_str(), a.run_id),
        (b.request_id.as_str(), b.run_id)
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 1);
    let mut other = ask(&deploy("clawdinator-babelfish"));
    other.key = Some("k-1");
    assert_eq!(
        refused(&api, &other).await,
        (422, "idempotency_key_reused".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 1);
    let records: AuditAnswer =
        serde_json::from_str(&send(&api, &raw(r#"{"action":"audit"}"#)).await.body).unwrap();
    let decisions: Vec<&str> = records
        .records
        .iter()
        .map(|r| r.decision.as_str())
        .collect();
    assert_eq!(decisions, ["refused", "replayed", "accepted"]);
    assert_eq!(
        records.records[1].first_request_id.as_deref(),
        Some(a.request_id.as_str())
    );
}

/// A pending record of the same request, as a first request still running (or dead) leaves it.
async fn pending_record(state: &FakeState, key: &str, created_unix: u64) {
    let principal = "human:shared-token";
    // principal, action, target, image, caller, queue, revision: the flow's own order.
    let fingerprint = sha256_hex(&[principal, "deploy", "clawdinator-2", "", "", "", ""]);
    let record = format!(
        r#"{{"state":"pending","fingerprint":"{fingerprint}","request_id":"0190c0de-0000-7000-8000-000000000001","created_unix":{created_unix}}}"#
    );
    let object = IdempotencyKey::parse(key).unwrap().object_key(principal);
    state.create(&object, record.into_bytes()).await.unwrap();
}

#[tokio::test]
async fn a_key_still_pending_is_in_progress_and_a_dead_one_unresolved() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let api = build(World::default());
    let state = api.ports().state.as_ref().unwrap();
    pending_record(state, "busy", now).await;
    pending_record(state, "dead", now - 600).await;
    let mut a = ask(&deploy("clawdinator-2"));
    a.key = Some("busy");
    assert_eq!(
        refused(&api, &a).await,
        (409, "idempotency_in_progress".into())
    );
    a.key = Some("dead");
    assert_eq!(
        refused(&api, &a).await,
        (409, "idempotency_unresolved".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
}

#[tokio::test]
async fn rate_limit_is_429_with_retry_after() {
    let api = build(World {
        limiter: Some(RateLimiter::new(1, Duration::from_secs(600))),
        ..Default::default()
    });
    deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    let reply = send(&api, &ask(&deploy("clawdinator-2"))).await;
    let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
    assert_eq!((reply.status, e.error.as_str()), (429, "rate_limited"));
    assert!(reply
        .headers
        .iter()
        .any(|(n, v)| *n == "retry-after" && v.parse::<u64>().unwrap() > 0));
    assert_eq!(api.ports().workflow.dispatch_count(), 1);
}

#[tokio::test]
async fn misconfiguration_and_unreadable_secrets_are_500() {
    let api = build(World {
        auth: Some(Err(Misconfig::unset("CONTROL_API_TOKEN"))),
        ..Default::default()
    });
    assert_eq!(
        refused(&api, &ask(&deploy("all"))).await,
        (500, "misconfigured".into())
    );
    let stateless = build(World {
        no_state: true,
        ..Default::default()
    });
    assert_eq!(
        refused(&stateless, &raw(r#"{"action":"audit"}"#)).await,
        (500, "misconfigured".into())
    );
    for (e, status, code) in [
        (ApiError::SecretsRefused, 500, "secrets_unreadable"),
        (
            ApiError::SecretsUnavailable {
                retry_after_secs: 1,
            },
            503,
            "secrets_unavailable",
        ),
    ] {
        let reply = answer_unready(e);
        let body: ErrorBody = serde_json::from_str(&reply.body).unwrap();
        assert_eq!((reply.status, body.error.as_str()), (status, code));
    }
}

#[tokio::test]
async fn outages_are_502_and_dispatch_nothing_more() {
    let refused_wf = FakeWorkflow::default();
    refused_wf
        .failures
        .lock()
        .unwrap()
        .push_back(DispatchError::Refused { status: 422 });
    let api = build(World {
        workflow: refused_wf,
        ..Default::default()
    });
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-2"))).await,
        (502, "github_refused".into())
    );

    let down = FakeWorkflow::default();
    *down.runs_error.lock().unwrap() = Some(WorkflowError::Unavailable);
    let api = build(World {
        workflow: down,
        no_state: true,
        ..Default::default()
    });
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-2"))).await,
        (502, "github_unavailable".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);

    let unknown = FakeWorkflow::default();
    unknown
        .failures
        .lock()
        .unwrap()
        .extend((0..1000).map(|_| DispatchError::Unknown));
    let api = build(World {
        workflow: unknown,
        ..Default::default()
    });
    let mut keyed = ask(&deploy("clawdinator-2"));
    keyed.key = Some("u-1");
    assert_eq!(
        refused(&api, &keyed).await,
        (502, "dispatch_unknown".into())
    );
    // The unknown outcome is kept: a repeat is told so again, nothing re-sent.
    let repeat = send(&api, &keyed).await;
    let e: ErrorBody = serde_json::from_str(&repeat.body).unwrap();
    assert_eq!(
        (repeat.status, e.error.as_str(), e.replayed),
        (502, "dispatch_unknown", true)
    );

    let limited = FakeWorkflow::default();
    limited
        .failures
        .lock()
        .unwrap()
        .extend((0..100).map(|_| DispatchError::RateLimited {
            retry_after: Some(Duration::from_secs(60)),
        }));
    let api = build(World {
        workflow: limited,
        ..Default::default()
    });
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-2"))).await,
        (503, "github_rate_limited".into())
    );

    let aws = build(World {
        fleet: Some(FakeFleet {
            fail: true,
            ..Default::default()
        }),
        ..Default::default()
    });
    assert_eq!(
        refused(&aws, &raw(r#"{"action":"status"}"#)).await,
        (502, "aws_unavailable".into())
    );
    let s3 = build(World {
        state: Some(FakeState::failing()),
        ..Default::default()
    });
    let mut keyed = ask(&deploy("clawdinator-2"));
    keyed.key = Some("s-1");
    assert_eq!(
        refused(&s3, &keyed).await,
        (502, "state_unavailable".into())
    );
    assert_eq!(s3.ports().workflow.dispatch_count(), 0);
}

#[tokio::test]
async fn a_dry_run_says_so_and_never_queued() {
    let api = build(World {
        workflow: FakeWorkflow {
            dry_run: true,
            ..Default::default()
        },
        no_bootstrap: true,
        no_state: true,
        ..Default::default()
    });
    let a = deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    assert_eq!(a.checks.in_flight, InFlightCheck::Skipped);
    assert!(a.message.starts_with("dry run"), "{}", a.message);
}

#[tokio::test]
async fn revisions_are_for_humans_and_must_be_commit_shas() {
    let api = build(World::default());
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let bad = raw(&body("clawdinator-2", r#","revision":"main""#));
    assert_eq!(refused(&api, &bad).await, (400, "invalid_revision".into()));
    let mut bot = raw(&body("clawdinator-2", &format!(r#","revision":"{sha}""#)));
    bot.token = Some(BOT_TOKEN);
    assert_eq!(
        refused(&api, &bot).await,
        (403, "revision_not_allowed".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
}

/// A lease for another request, as a successor deploy would write it over `current`.
fn successor_lease(state: &FakeState, request_id: &str) -> Vec<u8> {
    let mut lease: Lease = serde_json::from_slice(&state.body(LEASE_KEY).unwrap()).unwrap();
    lease.request_id = request_id.to_owned();
    lease.run_id = None;
    lease.run_url = None;
    serde_json::to_vec(&lease).unwrap()
}

#[tokio::test]
async fn a_late_end_of_a_deploy_never_removes_the_lease_a_successor_took_meanwhile() {
    let api = build(World::default());
    let first = deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    report_lands(&api, &first.request_id).await;
    // The report's event reads the lease (still the first deploy's); before it deletes
    // it, a new deploy takes the ended lease over.
    let next = successor_lease(state(&api), "req-successor");
    state(&api).write_after_next_read(LEASE_KEY, next);
    api.lease_ended(&first.request_id).await.unwrap();
    assert_eq!(lease_holder(&api).await.as_deref(), Some("req-successor"));
    // A repeated event for the first deploy leaves it too.
    api.lease_ended(&first.request_id).await.unwrap();
    assert_eq!(lease_holder(&api).await.as_deref(), Some("req-successor"));
}

/// The body of a lock on `target` by `holder`: taken now for ten minutes, or (`live`
/// false) taken an hour ago for one minute.
fn lock_of(target: &str, holder: &str, live: bool) -> Vec<u8> {
    let now = chrono::Utc::now();
    let taken = if live {
        now
    } else {
        now - chrono::Duration::hours(1)
    };
    let ttl = if live { 600 } else { 60 };
    let lock = Lock::new(
        &Target::parse(target).unwrap(),
        holder,
        "reindexing",
        ttl,
        taken,
    );
    serde_json::to_vec(&lock).unwrap()
}

#[tokio::test]
async fn an_unlock_judges_the_lock_there_now_not_the_one_it_read() {
    let api = build(World::default());
    let mut bot = raw(&lock_body("clawdinator-1", ""));
    bot.token = Some(BOT_TOKEN);
    assert_eq!(send(&api, &bot).await.status, 200);
    // Between the bot's read of its own lock and the delete, a human's lock replaces it.
    let key = lock_key("clawdinator-1");
    state(&api).write_after_next_read(&key, lock_of("clawdinator-1", "human:ops", true));
    bot.body = r#"{"action":"unlock","target":"clawdinator-1"}"#.into();
    assert_eq!(refused(&api, &bot).await, (403, "lock_not_allowed".into()));
    let left: Lock = serde_json::from_slice(&state(&api).body(&key).unwrap()).unwrap();
    assert_eq!(left.holder, "human:ops");
    // A human's unlock that loses the same race releases the lock that is there now.
    state(&api).write_after_next_read(&key, lock_of("clawdinator-1", "human:eve", true));
    let reply = send(
        &api,
        &raw(r#"{"action":"unlock","target":"clawdinator-1"}"#),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let released: LockAnswer = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(released.lock.holder, "human:eve");
    assert!(state(&api).keys("locks/").is_empty());
}

#[tokio::test]
async fn an_expired_lock_taken_over_while_being_cleared_holds_as_the_new_lock() {
    let api = build(World::default());
    let key = lock_key("clawdinator-2");
    state(&api)
        .put(&key, lock_of("clawdinator-2", "human:ops", false))
        .await
        .unwrap();
    state(&api).write_after_next_read(&key, lock_of("clawdinator-2", "human:eve", true));
    let reply = send(&api, &ask(&deploy("clawdinator-2"))).await;
    let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
    assert_eq!((reply.status, e.error.as_str()), (423, "locked"));
    assert_eq!(e.lock.unwrap().holder, "human:eve");
    assert_eq!(state(&api).keys("locks/"), [key]);
    assert_eq!(api.ports().workflow.dispatch_count(), 0);
    let actions: Vec<String> = records(&api).into_iter().filter_map(|r| r.action).collect();
    assert!(!actions.iter().any(|a| a == "lock_expired"), "{actions:?}");
}

fn plan(target: &str) -> Request {
    Request::Plan {
        target: Target::parse(target).unwrap(),
        caller: None,
        ami_override: None,
        revision: None,
    }
}

/// The lease's holder, as the queue answer shows it.
async fn lease_holder(api: &Api) -> Option<String> {
    let listed: QueueAnswer =
        serde_json::from_str(&send(api, &raw(r#"{"action":"queue"}"#)).await.body).unwrap();
    listed.lease.map(|l| l.request_id)
}

#[tokio::test]
async fn a_plan_dispatches_mode_plan_takes_no_lease_and_a_lock_only_warns() {
    let api = build(World::default());
    let first = deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    // While a deploy holds the lease, a plan still goes: it changes nothing.
    let planned = deployed(&api, &ask(&plan("clawdinator-1"))).await;
    assert_eq!(planned.message, "plan queued for clawdinator-1");
    assert_eq!(planned.mode, RollMode::Plan);
    assert_eq!(planned.checks.in_flight, InFlightCheck::Skipped);
    assert!(planned.warning.is_none(), "{:?}", planned.warning);
    assert_ne!(planned.request_id, first.request_id);
    assert_eq!(lease_holder(&api).await, Some(first.request_id.clone()));
    let sent = api.ports().workflow.dispatched.lock().unwrap().clone();
    let modes: Vec<RollMode> = sent.iter().map(|r| r.mode).collect();
    assert_eq!(modes, [RollMode::Apply, RollMode::Plan]);
    assert_eq!(sent[1].request_id, planned.request_id);
    // A lock holds deploys (423) but a plan of a host it covers runs, with a warning.
    let lock = send(&api, &raw(&lock_body("all", r#","caller":"human:ops""#))).await;
    assert_eq!(lock.status, 200, "{}", lock.body);
    let taken: LockAnswer = serde_json::from_str(&lock.body).unwrap();
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-1"))).await,
        (423, "locked".into())
    );
    for target in ["clawdinator-2", "all"] {
        let warned = deployed(&api, &ask(&plan(target))).await;
        let warning = warned.warning.expect("a warning naming the lock");
        for part in ["human:ops", "debugging the gateway", &taken.lock.expires] {
            assert!(warning.contains(part), "{warning}");
        }
    }
    assert_eq!(api.ports().workflow.dispatch_count(), 4);
    assert!(
        state(&api).keys("queue/").is_empty(),
        "a plan is never queued"
    );
    assert_eq!(lease_holder(&api).await, Some(first.request_id));
    let plans: Vec<AuditRecord> = records(&api)
        .into_iter()
        .filter(|r| r.action.as_deref() == Some("plan"))
        .collect();
    assert_eq!(plans.len(), 3, "{plans:?}");
    assert!(plans
        .iter()
        .all(|r| r.decision == "accepted" && r.run_id.is_some()));
}

#[tokio::test]
async fn a_plan_and_a_deploy_never_share_a_key() {
    let api = build(World::default());
    let mut first = ask(&plan("clawdinator-2"));
    first.key = Some("k-plan");
    let a = deployed(&api, &first).await;
    assert!(deployed(&api, &first).await.replayed);
    let mut other = ask(&deploy("clawdinator-2"));
    other.key = Some("k-plan");
    assert_eq!(
        refused(&api, &other).await,
        (422, "idempotency_key_reused".into())
    );
    let sent = api.ports().workflow.dispatched.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (sent[0].mode, &sent[0].request_id),
        (RollMode::Plan, &a.request_id)
    );
}

#[tokio::test]
async fn bots_may_plan_any_target_but_not_pick_a_revision() {
    let api = build(World::default());
    let as_bot = |request: &Request| {
        let mut a = ask(request);
        a.token = Some(BOT_TOKEN);
        a
    };
    // Deploys of itself or of all are refused to a bot; plans are not.
    assert_eq!(
        refused(&api, &as_bot(&deploy("clawdinator-1"))).await,
        (403, "self_deploy".into())
    );
    for target in ["clawdinator-1", "all", "clawdinator-2"] {
        let answer = deployed(&api, &as_bot(&plan(target))).await;
        assert_eq!(answer.caller.unwrap().as_str(), "clawdinator-1");
    }
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let mut picked = raw(&format!(
        r#"{{"action":"plan","target":"clawdinator-2","revision":"{sha}"}}"#
    ));
    picked.token = Some(BOT_TOKEN);
    assert_eq!(
        refused(&api, &picked).await,
        (403, "revision_not_allowed".into())
    );
    // The deploy's other checks hold for a plan too.
    let foreign =
        raw(r#"{"action":"plan","target":"clawdinator-2","ami_override":"ami-0123456789abcdef0"}"#);
    assert_eq!(refused(&api, &foreign).await, (404, "unknown_ami".into()));
    let unknown = raw(r#"{"action":"plan","target":"clawdinator-9"}"#);
    assert_eq!(
        refused(&api, &unknown).await,
        (404, "unknown_target".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 3);
    // A human's pinned plan dispatches that commit.
    let human = raw(&format!(
        r#"{{"action":"plan","target":"clawdinator-2","revision":"{sha}"}}"#
    ));
    assert_eq!(deployed(&api, &human).await.revision.unwrap().as_str(), sha);
}

#[tokio::test]
async fn plans_are_rate_limited_like_deploys() {
    let api = build(World {
        limiter: Some(RateLimiter::new(2, Duration::from_secs(600))),
        ..Default::default()
    });
    deployed(&api, &ask(&plan("clawdinator-2"))).await;
    deployed(&api, &ask(&deploy("clawdinator-2"))).await;
    for request in [plan("clawdinator-1"), deploy("clawdinator-1")] {
        let reply = send(&api, &ask(&request)).await;
        let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
        assert_eq!((reply.status, e.error.as_str()), (429, "rate_limited"));
    }
    assert_eq!(api.ports().workflow.dispatch_count(), 2);
}

#[tokio::test]
async fn without_a_state_bucket_plans_and_deploys_do_not_guard_against_each_other() {
    let api = build(World {
        no_state: true,
        ..Default::default()
    });
    // A plan's run in flight holds no deploy up, and a deploy's holds no plan up.
    deployed(&api, &ask(&plan("clawdinator-2"))).await;
    deployed(&api, &ask(&deploy("clawdinator-1"))).await;
    deployed(&api, &ask(&plan("all"))).await;
    assert_eq!(
        refused(&api, &ask(&deploy("clawdinator-2"))).await,
        (409, "deploy_in_flight".into())
    );
    assert_eq!(api.ports().workflow.dispatch_count(), 3);
}

/// Every error code of the README's table is exercised by a service-level test on the fakes
/// (this file or the heartbeat flow's), so the
/// table, the code and these tests cannot drift apart unnoticed.
#[test]
fn every_code_of_the_readme_table_is_tested_here() {
    let readme = include_str!("../../README.md");
    // The service-level tests on the fakes: this file and the heartbeat flow's.
    let this = [include_str!("service.rs"), include_str!("heartbeat.rs")].concat();
    let mut codes = Vec::new();
    for row in readme
        .lines()
        .filter(|l| l.starts_with("| 4") || l.starts_with("| 5"))
    {
        let cells: Vec<&str> = row.split('|').collect();
        let Some(cell) = cells.get(2) else { continue };
        codes.extend(cell.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    assert!(codes.len() >= 40, "the README's table was found: {codes:?}");
    let untested: Vec<&String> = codes
        .iter()
        .filter(|c| !this.contains(&format!("\"{c}\"")))
        .collect();
    assert!(
        untested.is_empty(),
        "codes without a test here: {untested:?}"
    );
}
