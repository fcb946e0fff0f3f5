//! A run's report back to the operators: S3's notification of `reports/<request_id>.json`
//! (a saved, real-shaped event) through the Lambda handler, the report read from moto S3,
//! the webhook URL from moto SSM, and the chat a loopback webhook double; the schedule's
//! event; the report in the API's `run` and `runs` answers (moto S3, GitHub double); and
//! the revision a report deployed against a host's heartbeats (`revision_drift`, moto S3
//! and EC2).
//! Run through `scripts/with-moto` (scripts/test does).

mod support;

use std::sync::{Arc, Mutex, OnceLock};

use control_api::app::{self, LazyApp};
use control_api::config::Mode;
use control_api::contract::{
    ChatNotice, DeployedRevisions, EventAnswer, EventKind, Flag, HostOutcome, HostReport, RollMode,
    RollOutcome, RollReport, RunAnswer, RunsAnswer, StatusAnswer, DEPLOYED_KEY,
};
use control_api::inbound::lambda::handle;
use lambda_http::Request;
use serde_json::{json, Value};
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// A writer the tests read back: every log line of this test binary, as CloudWatch
/// would get it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide JSON subscriber (a scoped one can miss lines while other tests run:
/// tracing caches each call site's interest globally), installed once.
fn logs() -> String {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = control_api::telemetry::json_subscriber(move || writer.clone());
        tracing::subscriber::set_global_default(subscriber).expect("only this binary sets one");
        logs
    });
    String::from_utf8(logs.0.lock().unwrap().clone()).unwrap()
}

fn s3(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    control_api::outbound::aws::s3_client(sdk)
}

async fn bucket(sdk: &aws_config::SdkConfig, name: &str) {
    s3(sdk).create_bucket().bucket(name).send().await.unwrap();
}

async fn put(sdk: &aws_config::SdkConfig, bucket: &str, key: &str, body: Vec<u8>) {
    s3(sdk)
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

async fn object(sdk: &aws_config::SdkConfig, bucket: &str, key: &str) -> Option<Value> {
    let out = s3(sdk)
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    let bytes = out.body.collect().await.unwrap().into_bytes();
    Some(serde_json::from_slice(&bytes).unwrap())
}

const RUN_URL: &str = "https://github.com/openclaw/clawdinators/actions/runs/4242";

/// A roll that went green on two hosts.
fn report(request_id: &str) -> RollReport {
    let host = |id: &str, secs| HostReport {
        id: id.to_owned(),
        from_ami: Some("ami-0aaaaaaaaaaaaaaaa".to_owned()),
        to_ami: Some("ami-0bbbbbbbbbbbbbbbb".to_owned()),
        old_ec2_instance_id: Some("i-0123456789abcdef0".to_owned()),
        new_ec2_instance_id: Some("i-0fedcba9876543210".to_owned()),
        put_back_ec2_instance_id: None,
        outcome: HostOutcome::Ready,
        reason: None,
        ready_after_secs: Some(secs),
        plan: None,
    };
    RollReport {
        request_id: request_id.to_owned(),
        target: "all".to_owned(),
        ami: "ami-0bbbbbbbbbbbbbbbb".to_owned(),
        mode: RollMode::Apply,
        revision: Some(HEAD_SHA.to_owned()),
        outcome: RollOutcome::Succeeded,
        hosts: vec![host("clawdinator-1", 190), host("clawdinator-2", 252)],
        run_url: Some(RUN_URL.to_owned()),
    }
}

/// The saved S3 notification for `key` in `bucket`, as the Lambda runtime hands it over.
fn s3_event(bucket: &str, key: &str) -> Request {
    let path = format!(
        "{}/tests/fixtures/s3_report_created.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path)
        .unwrap()
        .replace("__BUCKET__", bucket)
        .replace("__KEY__", key);
    lambda_http::request::from_str(&text).unwrap()
}

/// The webhook double: Discord's webhook endpoint on loopback, answering every POST to
/// its path with `status`. Its path holds `secret`, as a real webhook's token.
async fn webhook(status: u16, secret: &str) -> (MockServer, String) {
    let server = MockServer::start().await;
    let hook = format!("/api/webhooks/1234567890/{secret}");
    Mock::given(method("POST"))
        .and(path(hook.as_str()))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    let url = format!("{}{hook}", server.uri());
    (server, url)
}

/// What the webhook double received: each POST's JSON body.
async fn posts(server: &MockServer) -> Vec<Value> {
    let requests = server.received_requests().await.unwrap();
    requests
        .iter()
        .map(|r| {
            assert_eq!(r.method.as_str(), "POST");
            assert_eq!(r.headers["content-type"], "application/json");
            serde_json::from_slice(&r.body).unwrap()
        })
        .collect()
}

/// The Lambda's app as it runs there (settings, lazy wiring), on moto; the chat webhook's
/// URL in SSM under `parameter`, when given.
async fn lambda(state_bucket: &str, parameter: Option<&str>) -> LazyApp {
    let mut extra = vec![("FLEET_STATE_BUCKET", state_bucket)];
    if let Some(name) = parameter {
        extra.push(("FLEET_CHAT_WEBHOOK_PARAMETER", name));
    }
    // The events need no GitHub and no token: a closed port proves it.
    let github = format!("http://127.0.0.1:{}", closed_port());
    LazyApp::new(settings(&github, &extra), Mode::Lambda, moto_sdk().await)
}

async fn event_answer(api: &LazyApp, request: Request) -> EventAnswer {
    let resp = handle(api, request).await.unwrap();
    serde_json::from_slice(resp.body().as_ref()).unwrap()
}

/// A bucket, a report in it, a webhook double answering `status`, its URL in SSM, and
/// the Lambda; returns what the tests look at.
struct Scene {
    sdk: aws_config::SdkConfig,
    bucket: String,
    request_id: String,
    secret: String,
    webhook: MockServer,
    api: LazyApp,
}

async fn scene(tag: &str, status: u16) -> Scene {
    let sdk = moto_sdk().await;
    let bucket_name = format!("report-events-{tag}");
    bucket(&sdk, &bucket_name).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let body = serde_json::to_vec(&report(&request_id)).unwrap();
    put(
        &sdk,
        &bucket_name,
        &format!("reports/{request_id}.json"),
        body,
    )
    .await;
    let secret = format!("webhook-token-{tag}-{}", uuid::Uuid::new_v4().simple());
    let (webhook, url) = webhook(status, &secret).await;
    let parameter = format!("/report-events/{tag}/chat-webhook");
    put_secret_on(&sdk, &parameter, &url).await;
    let api = lambda(&bucket_name, Some(&parameter)).await;
    Scene {
        sdk,
        bucket: bucket_name,
        request_id,
        secret,
        webhook,
        api,
    }
}

impl Scene {
    fn event(&self) -> Request {
        s3_event(&self.bucket, &format!("reports/{}.json", self.request_id))
    }
}

#[tokio::test]
async fn a_report_event_posts_one_message_with_the_outcome_and_run_link() {
    let _ = logs();
    let s = scene("once", 204).await;

    let answer = event_answer(&s.api, s.event()).await;
    assert_eq!(answer.event, EventKind::ReportCreated);
    assert_eq!(answer.reports.len(), 1, "{answer:?}");
    assert_eq!(answer.reports[0].request_id, s.request_id);
    assert_eq!(answer.reports[0].chat, ChatNotice::Posted);
    let sent = posts(&s.webhook).await;
    assert_eq!(
        sent,
        vec![json!({"content": format!(
            "deploy of all on ami-0bbbbbbbbbbbbbbbb succeeded\nrevision {}\n\
             clawdinator-1 ready on ami-0bbbbbbbbbbbbbbbb in 3m10s\n\
             clawdinator-2 ready on ami-0bbbbbbbbbbbbbbbb in 4m12s\nrun: {RUN_URL}",
            &HEAD_SHA[..7]
        )})]
    );
    // The claim that keeps it to one.
    let claim = object(&s.sdk, &s.bucket, &format!("chat/{}.json", s.request_id))
        .await
        .expect("chat claim written");
    assert_eq!(claim["request_id"], s.request_id.as_str());

    // S3 delivers the same event again: nothing more is posted.
    let again = event_answer(&s.api, s.event()).await;
    assert_eq!(again.reports[0].chat, ChatNotice::AlreadyPosted);
    assert_eq!(posts(&s.webhook).await.len(), 1);
    let text = logs();
    assert!(text.contains(&s.request_id), "the event is logged");
    assert!(!text.contains(&s.secret), "webhook URL in the logs: {text}");
}

#[tokio::test]
async fn two_deliveries_at_once_still_post_once() {
    let s = scene("race", 204).await;
    let (a, b) = tokio::join!(
        event_answer(&s.api, s.event()),
        event_answer(&s.api, s.event())
    );
    let mut notices = [a.reports[0].chat, b.reports[0].chat];
    notices.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(notices, [ChatNotice::AlreadyPosted, ChatNotice::Posted]);
    assert_eq!(posts(&s.webhook).await.len(), 1);
}

#[tokio::test]
async fn a_failing_webhook_is_tried_twice_and_the_event_still_succeeds() {
    let _ = logs();
    let s = scene("fails", 500).await;
    let resp = handle(&s.api, s.event()).await.expect("never fatal");
    let answer: EventAnswer = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert!(answer.ok);
    assert_eq!(answer.reports[0].chat, ChatNotice::PostFailed);
    assert_eq!(posts(&s.webhook).await.len(), 2, "one post and one retry");

    // Claimed: a later delivery does not post what was given up on.
    let again = event_answer(&s.api, s.event()).await;
    assert_eq!(again.reports[0].chat, ChatNotice::AlreadyPosted);
    assert_eq!(posts(&s.webhook).await.len(), 2);
    let text = logs();
    assert!(text.contains("HTTP 500"), "the failure is logged: {text}");
    assert!(!text.contains(&s.secret), "webhook URL in the logs: {text}");
}

#[tokio::test]
async fn an_unreachable_webhook_is_logged_without_its_url() {
    let _ = logs();
    let sdk = moto_sdk().await;
    let name = "report-events-unreachable";
    bucket(&sdk, name).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let body = serde_json::to_vec(&report(&request_id)).unwrap();
    put(&sdk, name, &format!("reports/{request_id}.json"), body).await;
    let secret = format!("webhook-token-gone-{}", uuid::Uuid::new_v4().simple());
    let url = format!("http://127.0.0.1:{}/api/webhooks/1/{secret}", closed_port());
    put_secret_on(&sdk, "/report-events/unreachable/chat-webhook", &url).await;
    let api = lambda(name, Some("/report-events/unreachable/chat-webhook")).await;

    let answer = event_answer(&api, s3_event(name, &format!("reports/{request_id}.json"))).await;
    assert_eq!(answer.reports[0].chat, ChatNotice::PostFailed);
    let text = logs();
    assert!(
        text.contains("the chat webhook could not be reached"),
        "{text}"
    );
    assert!(!text.contains(&secret), "webhook URL in the logs: {text}");
}

#[tokio::test]
async fn without_a_webhook_parameter_nothing_is_posted_or_claimed() {
    let sdk = moto_sdk().await;
    let name = "report-events-no-chat";
    bucket(&sdk, name).await;
    let request_id = uuid::Uuid::now_v7().to_string();
    let body = serde_json::to_vec(&report(&request_id)).unwrap();
    put(&sdk, name, &format!("reports/{request_id}.json"), body).await;
    let api = lambda(name, None).await;
    let answer = event_answer(&api, s3_event(name, &format!("reports/{request_id}.json"))).await;
    assert_eq!(answer.reports[0].chat, ChatNotice::NoChat);
    assert!(object(&sdk, name, &format!("chat/{request_id}.json"))
        .await
        .is_none());
}

#[tokio::test]
async fn only_report_objects_of_the_state_bucket_count() {
    let s = scene("others", 204).await;
    for (bucket, key) in [
        (
            s.bucket.as_str(),
            "heartbeats/clawdinator-1.json".to_owned(),
        ),
        (
            "some-other-bucket",
            format!("reports/{}.json", s.request_id),
        ),
        (
            s.bucket.as_str(),
            format!("reports/nested/{}.json", s.request_id),
        ),
    ] {
        let answer = event_answer(&s.api, s3_event(bucket, &key)).await;
        assert_eq!(answer.event, EventKind::ReportCreated);
        assert!(answer.reports.is_empty(), "{bucket} {key}: {answer:?}");
    }
    // A report that is not there (deleted since) is said so, and nothing is posted.
    let missing = event_answer(&s.api, s3_event(&s.bucket, "reports/r-gone.json")).await;
    assert_eq!(missing.reports[0].chat, ChatNotice::Missing);
    assert!(posts(&s.webhook).await.is_empty());
}

#[tokio::test]
async fn the_schedule_event_is_accepted() {
    let api = lambda("report-events-schedule", None).await;
    let path = format!(
        "{}/tests/fixtures/schedule.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let request = lambda_http::request::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let resp = handle(&api, request).await.unwrap();
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    assert_eq!(body, json!({"ok": true, "event": "schedule"}));
}

async fn post(api: &app::App, body: Value) -> Value {
    let (status, body) = lambda_post(api, body).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn run_answers_carry_the_report_and_runs_its_headline() {
    let sdk = moto_sdk().await;
    let name = "report-events-run-answers";
    bucket(&sdk, name).await;
    let github = github_accepting().await;
    let with_report = uuid::Uuid::now_v7().to_string();
    let without = uuid::Uuid::now_v7().to_string();
    let reported = github.add_run(
        &format!("fleet-deploy all by human:ops [{with_report}]"),
        "completed",
    );
    github.set_run(reported, "completed", Some("success"), None);
    let bare = github.add_run(
        &format!("fleet-deploy clawdinator-1 by human:ops [{without}]"),
        "in_progress",
    );
    let kept = report(&with_report);
    put(
        &sdk,
        name,
        &format!("reports/{with_report}.json"),
        serde_json::to_vec(&kept).unwrap(),
    )
    .await;
    let api = app::build_with(
        settings(&github.uri(), &[("FLEET_STATE_BUCKET", name)]),
        Mode::Lambda,
        &sdk,
    )
    .unwrap();

    for ask in [
        json!({"action": "run", "run_id": reported}),
        json!({"action": "run", "request_id": with_report}),
    ] {
        let answer: RunAnswer = serde_json::from_value(post(&api, ask).await).unwrap();
        assert_eq!(answer.run.run_id, reported);
        assert_eq!(answer.report.as_ref(), Some(&kept));
    }
    let raw = post(&api, json!({"action": "run", "run_id": bare})).await;
    assert!(raw.get("report").is_none(), "no report, no key: {raw}");

    let runs: RunsAnswer =
        serde_json::from_value(post(&api, json!({"action": "runs"})).await).unwrap();
    let summary = |id| {
        runs.runs
            .iter()
            .find(|r| r.run_id == id)
            .unwrap()
            .summary
            .clone()
    };
    assert_eq!(
        summary(reported).as_deref(),
        Some("deploy of all on ami-0bbbbbbbbbbbbbbbb succeeded")
    );
    assert_eq!(summary(bare), None);
}

#[tokio::test]
async fn a_report_event_ends_the_runs_lease_and_the_next_queued_deploy_goes() {
    let sdk = moto_sdk().await;
    let name = "report-events-drain";
    bucket(&sdk, name).await;
    let github = github_accepting().await;
    let api = app::build_with(
        settings(&github.uri(), &[("FLEET_STATE_BUCKET", name)]),
        Mode::Lambda,
        &sdk,
    )
    .unwrap();
    let (status, first) = lambda_post(
        &api,
        json!({"action": "deploy", "target": "clawdinator-1", "caller": "human:ops"}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let first = first["request_id"].as_str().unwrap().to_owned();
    let (status, second) = lambda_post(
        &api,
        json!({"action": "deploy", "target": "clawdinator-2", "caller": "human:ops", "queue": true}),
    )
    .await;
    assert_eq!(status, 202, "{second}");
    let second = second["request_id"].as_str().unwrap().to_owned();

    // Another run's report ends nothing: the first run still holds the lease.
    let other = uuid::Uuid::now_v7().to_string();
    let body = serde_json::to_vec(&report(&other)).unwrap();
    put(&sdk, name, &format!("reports/{other}.json"), body).await;
    let resp = handle(&api, s3_event(name, &format!("reports/{other}.json")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(github.dispatched_request_ids().await, vec![first.clone()]);

    let body = serde_json::to_vec(&report(&first)).unwrap();
    put(&sdk, name, &format!("reports/{first}.json"), body).await;
    let resp = handle(&api, s3_event(name, &format!("reports/{first}.json")))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        github.dispatched_request_ids().await,
        vec![first, second.clone()]
    );
    let lease = object(&sdk, name, "leases/deploy.json").await.unwrap();
    assert_eq!(lease["request_id"], json!(second), "{lease}");
}

/// A ready host's roll recorded when its report lands; then its heartbeats through the
/// Lambda handler, naming another revision, then the deployed one.
#[tokio::test]
async fn a_host_running_another_revision_than_its_roll_deployed_is_flagged() {
    let (fleet, name) = ("report-events-drift", "report-events-drift-state");
    let ec2 = ec2().await;
    let ami = "ami-0123456789abcdef0";
    let one = run(&ec2, fleet, "clawdinator-1", ami, "t3.large", 1).await;
    let sdk = moto_sdk().await;
    bucket(&sdk, name).await;
    let github = github_accepting().await;
    let extra = [("FLEET_STATE_BUCKET", name), ("FLEET_TAG_VALUE", fleet)];
    // Each its own Lambda instance: a host's heartbeats are limited to one per 10 s per
    // instance.
    let lambda = || app::build_with(settings(&github.uri(), &extra), Mode::Lambda, &sdk).unwrap();
    let api = lambda();
    let request_id = uuid::Uuid::now_v7().to_string();
    let mut rolled = report(&request_id);
    rolled.hosts.truncate(1);
    let key = format!("reports/{request_id}.json");
    put(&sdk, name, &key, serde_json::to_vec(&rolled).unwrap()).await;
    let resp = handle(&api, s3_event(name, &key)).await.unwrap();
    assert_eq!(resp.status(), 200);
    let deployed: DeployedRevisions =
        serde_json::from_value(object(&sdk, name, DEPLOYED_KEY).await.unwrap()).unwrap();
    let entry = &deployed["clawdinator-1"];
    assert_eq!(
        (entry.revision.as_deref(), entry.request_id.as_str()),
        (Some(HEAD_SHA), request_id.as_str())
    );

    let beat = |revision: &str| {
        json!({"action": "heartbeat", "caller": "clawdinator-1", "ec2_instance_id": one[0],
               "ami": ami, "revision": revision, "service": "active",
               "booted_at": "2026-12-01T10:00:00Z", "agent": "0.1.0"})
    };
    let (status, body) = lambda_post(&api, beat("4f1c2d9e0a7b")).await;
    assert_eq!(status, 200, "{body}");
    let answer = drift_status(&api).await;
    let host = answer
        .fleet
        .instances
        .iter()
        .find(|i| i.id == "clawdinator-1")
        .unwrap();
    assert_eq!(host.flags, [Flag::RevisionDrift], "{host:?}");
    let why = host.why.as_deref().unwrap_or_default();
    assert!(
        why.contains("runs revision 4f1c2d9, deployed 5e1ec7e"),
        "{why}"
    );
    assert_eq!(answer.fleet.summary["revision_drift"], 1);

    let api = lambda();
    let (status, body) = lambda_post(&api, beat(&HEAD_SHA[..12])).await;
    assert_eq!(status, 200, "{body}");
    let answer = drift_status(&api).await;
    let host = answer
        .fleet
        .instances
        .iter()
        .find(|i| i.id == "clawdinator-1")
        .unwrap();
    assert!(!host.flags.contains(&Flag::RevisionDrift), "{host:?}");
    assert!(
        !host.why.as_deref().unwrap_or_default().contains("revision"),
        "{host:?}"
    );
    assert_eq!(answer.fleet.summary["revision_drift"], 0);
}

async fn drift_status(api: &app::App) -> StatusAnswer {
    let (status, body) = lambda_post(api, json!({"action": "status"})).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}
