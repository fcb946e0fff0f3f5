//! Deploy safety: one dispatch per request however often it is sent, retries that never
//! deploy twice, the in-flight guard, run tracking, rollback and the audit trail.
//!
//! S3 and EC2 are moto on loopback (`scripts/with-moto`); GitHub is the stateful double in
//! `support/github.rs`. Every test counts the dispatches GitHub received.

mod support;

use std::sync::Arc;
use std::time::Duration;

use control_api::app::{self, App};
use control_api::config::Mode;
use control_api::inbound::lambda::handle;
use lambda_http::Body;
use serde_json::{json, Value};
use support::*;

/// A fresh bucket in moto: each test has its own state.
async fn bucket(name: &str) -> String {
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto_sdk().await)
            .force_path_style(true)
            .build(),
    );
    let name = format!("{name}-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket().bucket(&name).send().await.unwrap();
    name
}

async fn s3() -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto_sdk().await)
            .force_path_style(true)
            .build(),
    )
}

async fn keys(bucket: &str, prefix: &str) -> Vec<String> {
    let out = s3()
        .await
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
        .unwrap();
    out.contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect()
}

async fn app(github: &GitHubDouble, bucket: &str, extra: &[(&str, &str)]) -> App {
    let mut env = vec![("FLEET_STATE_BUCKET", bucket)];
    env.extend_from_slice(extra);
    app::build_with(
        settings(&github.uri(), &env),
        Mode::Lambda,
        &moto_sdk().await,
    )
    .unwrap()
}

/// POSTs `body` as the Function URL would hand it over, with an Idempotency-Key if given.
async fn post(api: &App, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.us-east-1.on.aws/")
        .header("authorization", format!("Bearer {CONTROL_TOKEN}"))
        .header("content-type", "application/json");
    if let Some(key) = key {
        req = req.header("idempotency-key", key);
    }
    let resp = handle(api, req.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

fn deploy(target: &str) -> Value {
    json!({"action": "deploy", "target": target, "caller": "human:ops"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_identical_requests_dispatch_once() {
    let github = github_accepting().await;
    let bucket = bucket("idem-race").await;
    // Two instances of the function, as Lambda runs them: they share only S3.
    let apis = [
        Arc::new(app(&github, &bucket, &[]).await),
        Arc::new(app(&github, &bucket, &[]).await),
    ];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let api = Arc::clone(&apis[i % 2]);
            tokio::spawn(
                async move { post(&api, Some("key-race-1"), deploy("clawdinator-2")).await },
            )
        })
        .collect();
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    assert_eq!(github.dispatches().await.len(), 1, "exactly one dispatch");
    let first = &answers
        .iter()
        .find(|(_, b)| b.get("replayed").is_none())
        .expect("one request did the work")
        .1;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
        assert_eq!(body["request_id"], first["request_id"], "{body}");
        assert_eq!(body["run_id"], first["run_id"], "{body}");
    }
    assert!(first["run_id"].is_u64(), "{first}");
    assert_eq!(
        answers
            .iter()
            .filter(|(_, b)| b["replayed"] == true)
            .count(),
        19
    );
    assert_eq!(keys(&bucket, "idempotency/").await.len(), 1);
    // One audit record per request: the first accepted, the others replayed.
    assert_eq!(keys(&bucket, "audit/").await.len(), 20);
}

#[tokio::test]
async fn a_repeat_gets_the_first_answer_and_a_reused_key_is_refused() {
    let github = github_accepting().await;
    let bucket = bucket("idem-repeat").await;
    let api = app(&github, &bucket, &[]).await;
    let (s1, b1) = post(&api, Some("k-1"), deploy("clawdinator-1")).await;
    assert_eq!(s1, 200, "{b1}");
    assert_eq!(b1["checks"]["idempotency"], "new");
    assert_eq!(b1["checks"]["in_flight"], "clear");
    assert_eq!(b1["message"], "deploy queued for clawdinator-1");
    let run_url = b1["run_url"].as_str().unwrap();
    assert!(run_url.starts_with("https://github.com/openclaw/clawdinators/actions/runs/"));

    let (s2, mut b2) = post(&api, Some("k-1"), deploy("clawdinator-1")).await;
    assert_eq!(s2, 200);
    assert_eq!(
        b2.as_object_mut().unwrap().remove("replayed"),
        Some(json!(true))
    );
    assert_eq!(b2, b1, "the first answer, unchanged");

    // The same key for another request is a client bug: refused, nothing dispatched.
    let (s3, b3) = post(&api, Some("k-1"), deploy("clawdinator-2")).await;
    assert_eq!(s3, 422, "{b3}");
    assert_eq!(b3["error"], "idempotency_key_reused");
    // Another principal's key space is its own: a human with the same key is new.
    assert_eq!(github.dispatches().await.len(), 1);

    let (s4, b4) = post(&api, Some("bad key with spaces"), deploy("clawdinator-1")).await;
    assert_eq!(
        (s4, b4["error"].as_str()),
        (400, Some("invalid_idempotency_key"))
    );
    assert_eq!(github.dispatches().await.len(), 1);
}

#[tokio::test]
async fn a_refusal_frees_the_key_for_a_later_try() {
    let github = github_accepting().await;
    let bucket = bucket("idem-release").await;
    let api = app(&github, &bucket, &[]).await;
    let (s0, first) = post(&api, Some("k-1"), deploy("clawdinator-1")).await;
    assert_eq!(s0, 200, "{first}");
    let (s1, b1) = post(&api, Some("k-2"), deploy("clawdinator-2")).await;
    assert_eq!(s1, 409, "{b1}");
    assert_eq!(b1["error"], "deploy_in_flight");
    assert_eq!(b1["lease"]["request_id"], first["request_id"]);
    assert_eq!(b1["lease"]["target"], "clawdinator-1");
    assert_eq!(b1["lease"]["run_id"], first["run_id"]);
    assert!(
        b1["message"].as_str().unwrap().contains("fleet wait"),
        "{b1}"
    );
    assert_eq!(github.dispatches().await.len(), 1);

    // The first run finishing ends its lease: the refused request may be sent again.
    github.set_run(
        first["run_id"].as_u64().unwrap(),
        "completed",
        Some("success"),
        None,
    );
    let (s2, b2) = post(&api, Some("k-2"), deploy("clawdinator-2")).await;
    assert_eq!(s2, 200, "{b2}");
    assert!(b2.get("replayed").is_none());
    assert_eq!(github.dispatches().await.len(), 2);
}

#[tokio::test]
async fn a_run_on_another_branch_is_not_a_deploy_in_flight() {
    let github = github_accepting().await;
    let api = app(&github, &bucket("branch").await, &[]).await;
    // A copy of the workflow pushed to another branch, named like a deploy in flight.
    let copy = github.add_run_on_branch(
        "fleet-deploy all by human:mallory [0190c0de-0000-7000-8000-00000000000b]",
        "in_progress",
        "mallory-copy",
    );
    let (s, b) = post(&api, Some("br-1"), deploy("clawdinator-2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["checks"]["in_flight"], "clear");
    assert_ne!(b["run_id"], copy, "the run found is the one on main");
    let (s, runs) = post(&api, None, json!({"action": "runs"})).await;
    assert_eq!(s, 200, "{runs}");
    let ids: Vec<u64> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&copy), "{runs}");
    assert_eq!(github.dispatches().await.len(), 1);
}

#[tokio::test]
async fn a_human_queues_behind_the_lease_in_order_and_bots_never_queue() {
    let github = github_accepting().await;
    let bucket = bucket("guard").await;
    let api = app(&github, &bucket, &[]).await;
    let (s, first) = post(&api, Some("q-0"), deploy("clawdinator-1")).await;
    assert_eq!(s, 200, "{first}");
    let mut queued = deploy("clawdinator-2");
    queued["queue"] = json!(true);
    let (s, b) = post(&api, Some("q-1"), queued.clone()).await;
    assert_eq!(
        (s, b["queued"].as_bool(), b["position"].as_u64()),
        (202, Some(true), Some(1)),
        "{b}"
    );
    let (s, b) = post(&api, Some("q-2"), queued).await;
    assert_eq!((s, b["position"].as_u64()), (202, Some(2)), "{b}");
    assert_eq!(keys(&bucket, "queue/").await.len(), 2);

    // Bots never queue.
    let bot = json!({"action": "deploy", "target": "clawdinator-2", "caller": "clawdinator-1", "queue": true});
    let (s, b) = post(&api, Some("q-3"), bot).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("queue_not_allowed")));
    assert_eq!(github.dispatches().await.len(), 1);
}

#[tokio::test]
async fn github_500_then_success_dispatches_again_only_after_finding_no_run() {
    let github = github_accepting().await;
    github.script([Answer::error(500, "Server Error")]);
    let api = app(&github, &bucket("retry-500").await, &[]).await;
    let (s, b) = post(&api, Some("r-1"), deploy("clawdinator-2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(github.dispatches().await.len(), 2);
    assert_eq!(github.runs().len(), 1);
    assert_eq!(b["run_id"], github.runs()[0].id);
}

#[tokio::test]
async fn github_500_after_creating_the_run_is_not_sent_again() {
    let github = github_accepting().await;
    github.script([Answer::error(502, "Bad Gateway").creating_run()]);
    let api = app(&github, &bucket("retry-502-run").await, &[]).await;
    let (s, b) = post(&api, Some("r-2"), deploy("clawdinator-2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(github.dispatches().await.len(), 1);
    assert_eq!(b["run_id"], github.runs()[0].id);
}

#[tokio::test]
async fn a_timeout_after_github_accepted_is_not_sent_again() {
    let github = github_accepting().await;
    // GitHub takes the dispatch but answers after the client's 2 s read timeout.
    github.script([Answer::accepted().delayed(Duration::from_secs(3))]);
    let api = app(&github, &bucket("retry-timeout").await, &[]).await;
    let (s, b) = post(&api, Some("r-3"), deploy("clawdinator-2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(github.dispatches().await.len(), 1);
    assert_eq!(b["run_id"], github.runs()[0].id);
}

#[tokio::test]
async fn rate_limits_are_waited_out_as_github_asks() {
    let github = github_accepting().await;
    github.script([
        Answer::error(429, "Too Many Requests").header("retry-after", "1"),
        Answer::error(403, "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."),
    ]);
    let api = app(&github, &bucket("retry-429").await, &[]).await;
    let started = std::time::Instant::now();
    let (s, b) = post(&api, Some("r-4"), deploy("clawdinator-2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(github.dispatches().await.len(), 3);
    assert_eq!(github.runs().len(), 1);
    // Not a timing assertion on speed: Retry-After is a floor GitHub sets.
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_final_refusal_is_not_retried_and_an_unknown_outcome_is_kept() {
    let github = github_accepting().await;
    github.script([Answer::error(422, "Unexpected inputs provided")]);
    let bucket = bucket("final").await;
    let api = app(&github, &bucket, &[]).await;
    let (s, b) = post(&api, Some("f-1"), deploy("clawdinator-2")).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (502, Some("github_refused")),
        "{b}"
    );
    assert_eq!(github.dispatches().await.len(), 1);

    // GitHub answers 500 to every dispatch and never starts a run: after the deadline the
    // caller hears that the outcome is unknown, and a repeat does not dispatch again.
    github.script(std::iter::repeat_n(
        Answer::error(500, "Server Error"),
        1000,
    ));
    let (s, b) = post(&api, Some("f-2"), deploy("clawdinator-1")).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (502, Some("dispatch_unknown")),
        "{b}"
    );
    let sent = github.dispatches().await.len();
    assert!(sent >= 2, "retried after finding no run: {sent}");
    let (s2, b2) = post(&api, Some("f-2"), deploy("clawdinator-1")).await;
    assert_eq!(s2, 502);
    assert_eq!(b2["replayed"], true);
    assert_eq!(b2["request_id"], b["request_id"]);
    assert_eq!(
        github.dispatches().await.len(),
        sent,
        "a repeat sends nothing"
    );
}

#[tokio::test]
async fn runs_and_one_run_with_its_step() {
    let github = github_accepting().await;
    let api = app(&github, &bucket("runs").await, &[]).await;
    let (_, b) = post(&api, Some("t-1"), deploy("clawdinator-2")).await;
    let run_id = b["run_id"].as_u64().unwrap();
    let request_id = b["request_id"].as_str().unwrap().to_owned();

    let (s, list) = post(&api, None, json!({"action": "runs", "limit": 5})).await;
    assert_eq!(s, 200, "{list}");
    let run = &list["runs"][0];
    assert_eq!(run["run_id"], run_id);
    assert_eq!(run["target"], "clawdinator-2");
    assert_eq!(run["caller"], "human:ops");
    assert_eq!(run["request_id"], request_id.as_str());
    assert_eq!(run["status"], "queued");
    assert_eq!(run["started"], "2026-11-25T10:00:05Z");

    github.set_run(run_id, "in_progress", None, Some("Apply clawdinator-2"));
    let (s, one) = post(
        &api,
        None,
        json!({"action": "run", "request_id": request_id}),
    )
    .await;
    assert_eq!(s, 200, "{one}");
    assert_eq!(one["run"]["step"], "Apply clawdinator-2");
    assert_eq!(one["run"]["status"], "in_progress");

    github.set_run(run_id, "completed", Some("success"), None);
    let (_, one) = post(&api, None, json!({"action": "run", "run_id": run_id})).await;
    assert_eq!(one["run"]["conclusion"], "success");
    assert_eq!(one["run"]["duration_secs"], 180);
    assert_eq!(one["run"]["step"], Value::Null);

    let (s, none) = post(&api, None, json!({"action": "run", "run_id": 1})).await;
    assert_eq!((s, none["error"].as_str()), (404, Some("run_not_found")));
}

#[tokio::test]
async fn rollback_goes_to_the_image_before_the_current_one() {
    let github = github_accepting().await;
    let ec2 = ec2().await;
    let tag_key = format!("rollback-{}", uuid::Uuid::new_v4().simple());
    let fleet = format!("fleet-{}", uuid::Uuid::new_v4().simple());
    let (old, _) = register_image(&ec2, "nixos-old", Some(&tag_key)).await;
    // moto dates images to the second: the next one is a second younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (new, _) = register_image(&ec2, "nixos-new", Some(&tag_key)).await;
    run(&ec2, &fleet, "clawdinator-2", &new, "t3.large", 1).await;
    run(&ec2, &fleet, "clawdinator-1", &old, "t3.large", 1).await;
    let bucket = bucket("rollback").await;
    let api = app(
        &github,
        &bucket,
        &[
            ("FLEET_IMAGE_TAG_KEY", &tag_key),
            ("FLEET_TAG_VALUE", &fleet),
        ],
    )
    .await;

    let rollback =
        |target: &str| json!({"action": "rollback", "target": target, "caller": "human:ops"});
    let (s, b) = post(&api, Some("rb-1"), rollback("clawdinator-2")).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["rollback"], json!({"from": new, "to": old}));
    assert_eq!(b["ami_override"], old.as_str());
    assert_eq!(b["message"], "rollback queued for clawdinator-2");
    let sent = github.dispatches().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0]["inputs"]["ami_override"], old.as_str());
    assert_eq!(sent[0]["inputs"]["target"], "clawdinator-2");
    github.set_run(
        b["run_id"].as_u64().unwrap(),
        "completed",
        Some("success"),
        None,
    );

    let (s, b) = post(&api, Some("rb-2"), rollback("clawdinator-1")).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("no_previous_image")),
        "{b}"
    );
    let (s, b) = post(&api, Some("rb-3"), rollback("clawdinator-babelfish")).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (404, Some("instance_not_running")),
        "{b}"
    );
    let (s, b) = post(&api, Some("rb-4"), rollback("all")).await;
    assert_eq!(
        (s, b["error"].as_str()),
        (409, Some("rollback_ambiguous")),
        "{b}"
    );
    // A bot rolls back neither itself nor everyone.
    let bot = json!({"action": "rollback", "target": "clawdinator-2", "caller": "clawdinator-2"});
    let (s, b) = post(&api, Some("rb-5"), bot).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("self_deploy")), "{b}");
    assert_eq!(github.dispatches().await.len(), 1);
}

#[tokio::test]
async fn every_deploy_decision_is_an_audit_record_a_human_can_list() {
    let github = github_accepting().await;
    let bucket = bucket("audit").await;
    let api = app(&github, &bucket, &[]).await;
    let (_, accepted) = post(&api, Some("a-1"), deploy("clawdinator-2")).await;
    let (_, deduplicated) = post(&api, Some("a-1"), deploy("clawdinator-2")).await;
    let (_, guarded) = post(&api, Some("a-2"), deploy("clawdinator-1")).await;
    let self_deploy =
        json!({"action": "deploy", "target": "clawdinator-1", "caller": "clawdinator-1"});
    let (_, refused) = post(&api, Some("a-3"), self_deploy).await;
    // Reads are not decisions: no record for this one.
    post(&api, None, json!({"action": "runs"})).await;

    let (s, list) = post(&api, None, json!({"action": "audit", "limit": 10})).await;
    assert_eq!(s, 200, "{list}");
    let records = list["records"].as_array().unwrap();
    let decisions: Vec<&str> = records
        .iter()
        .map(|r| r["decision"].as_str().unwrap())
        .collect();
    assert_eq!(decisions, ["refused", "guarded", "replayed", "accepted"]);
    assert_eq!(records[3]["request_id"], accepted["request_id"]);
    assert_eq!(records[3]["run_id"], accepted["run_id"]);
    assert_eq!(records[3]["target"], "clawdinator-2");
    assert_eq!(records[3]["principal"], "human:shared-token");
    assert_eq!(records[2]["first_request_id"], accepted["request_id"]);
    assert_eq!(deduplicated["replayed"], true);
    assert_eq!(records[1]["error"], "deploy_in_flight");
    assert_eq!(records[1]["request_id"], guarded["request_id"]);
    assert_eq!(records[0]["error"], "self_deploy");
    assert_eq!(records[0]["request_id"], refused["request_id"]);
    let (s, one) = post(&api, None, json!({"action": "audit", "limit": 1})).await;
    assert_eq!(s, 200);
    assert_eq!(one["records"].as_array().unwrap().len(), 1);

    let today = chrono::Utc::now().format("audit/%Y/%m/%d/").to_string();
    let stored = keys(&bucket, "audit/").await;
    assert_eq!(stored.len(), 4, "{stored:?}");
    assert!(stored
        .iter()
        .all(|k| k.starts_with(&today) && k.ends_with(".json")));
    let text = format!("{list}");
    assert!(!text.contains(CONTROL_TOKEN) && !text.contains(GITHUB_TOKEN));

    let bot = json!({"action": "audit", "caller": "clawdinator-1"});
    let (s, b) = post(&api, None, bot).await;
    assert_eq!((s, b["error"].as_str()), (403, Some("audit_humans_only")));
}

#[tokio::test]
async fn sixty_wrong_tokens_from_one_address_leave_five_audit_objects() {
    let github = github_accepting().await;
    let bucket = bucket("flood").await;
    let api = app(&github, &bucket, &[]).await;
    let path = format!(
        "{}/tests/fixtures/deploy_wrong_token.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).unwrap();
    for _ in 0..60 {
        let event = lambda_http::request::from_str(&text).unwrap();
        let resp = handle(&api, event).await.unwrap();
        // The answer never changes: only the trail is bounded.
        assert_eq!(resp.status().as_u16(), 401);
    }
    let stored = keys(&bucket, "audit/").await;
    assert_eq!(stored.len(), 5, "{stored:?}");
    assert!(github.dispatches().await.is_empty());
}

#[tokio::test]
async fn the_audit_listing_pages_s3_from_the_newest_slice() {
    use control_api::domain::audit::{self, AuditRecord};
    use control_api::outbound::state::S3State;
    let github = github_accepting().await;
    let bucket = bucket("audit-pages").await;
    let store = S3State::new(s3().await, bucket.clone());
    let now = chrono::Utc::now();
    // 150 records a minute apart: more than one ListObjectsV2 page (100) in all.
    for i in 0..150i64 {
        let at = now - chrono::Duration::seconds(60 * i);
        let ms = at.timestamp_millis() as u64;
        let ts =
            uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, (ms % 1000) as u32 * 1_000_000);
        let record = AuditRecord {
            request_id: uuid::Uuid::new_v7(ts).to_string(),
            time: at.to_rfc3339(),
            principal: Some("human:ops".into()),
            caller: None,
            action: Some("deploy".into()),
            target: Some(format!("n{i}")),
            ami_override: None,
            revision: None,
            decision: "accepted".into(),
            status: 200,
            error: None,
            run_id: None,
            run_url: None,
            first_request_id: None,
            about_request_id: None,
            reason: None,
        };
        audit::write(&store, at, &record).await.unwrap();
    }
    let targets = |records: Vec<AuditRecord>| -> Vec<String> {
        records.into_iter().filter_map(|r| r.target).collect()
    };
    let newest = audit::recent(&store, now, 3).await.unwrap();
    assert_eq!(targets(newest), ["n0", "n1", "n2"]);
    let all = audit::recent(&store, now, 150).await.unwrap();
    let expected: Vec<String> = (0..150).map(|i| format!("n{i}")).collect();
    assert_eq!(targets(all), expected);
    // Through the API too, newest first.
    let api = app(&github, &bucket, &[]).await;
    let (s, list) = post(&api, None, json!({"action": "audit", "limit": 4})).await;
    assert_eq!(s, 200, "{list}");
    let got: Vec<&str> = list["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["n0", "n1", "n2", "n3"]);
}
