//! The real `bootstrap` binary as Lambda runs it: a Runtime API double on loopback hands
//! it a saved Function URL event; its tokens come from moto's SSM with the environment's
//! credentials, its dispatch goes to the GitHub double, its logs are JSON lines.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const REQUEST_ID: &str = "8476a536-e9f4-11e8-9739-2dfe598c3fcd";

/// The Runtime API: one event on the first `/next`, then a `/next` that never answers
/// (the function waits there, as it does between invocations).
async fn runtime_api(event: &str) -> MockServer {
    let api = MockServer::start().await;
    let deadline = SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + Duration::from_secs(30);
    Mock::given(method("GET"))
        .and(path(NEXT))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("lambda-runtime-aws-request-id", REQUEST_ID)
                .insert_header(
                    "lambda-runtime-deadline-ms",
                    deadline.as_millis().to_string().as_str(),
                )
                .insert_header(
                    "lambda-runtime-invoked-function-arn",
                    "arn:aws:lambda:eu-central-1:123456789012:function:control-api",
                )
                .insert_header("content-type", "application/json")
                .set_body_string(event),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&api)
        .await;
    Mock::given(method("GET"))
        .and(path(NEXT))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(600)))
        .with_priority(2)
        .mount(&api)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(202))
        .mount(&api)
        .await;
    api
}

/// The body the function POSTed as its response to the event, once it has.
async fn function_response(api: &MockServer) -> Option<Value> {
    let want = format!("/2018-06-01/runtime/invocation/{REQUEST_ID}/response");
    api.received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .find(|r| r.method.as_str() == "POST" && r.url.path() == want)
        .map(|r| serde_json::from_slice(&r.body).unwrap())
}

/// Runs the real `bootstrap` on one event (tokens from moto's SSM, GitHub at `github`):
/// the response it POSTed to the Runtime API, and its stdout (the JSON log lines).
async fn run_bootstrap(event: &str, github: &str) -> (Value, String) {
    run_bootstrap_with(event, github, &[]).await
}

/// [`run_bootstrap`] with `extra` settings in the function's environment.
async fn run_bootstrap_with(event: &str, github: &str, extra: &[(&str, &str)]) -> (Value, String) {
    put_secret("/clawdinator/bootstrap-test/control", CONTROL_TOKEN).await;
    put_secret("/clawdinator/bootstrap-test/github", GITHUB_TOKEN).await;
    let api = runtime_api(event).await;
    let runtime = api.uri().trim_start_matches("http://").to_owned();

    let mut child = Command::new(env!("CARGO_BIN_EXE_bootstrap"))
        .env_clear()
        .envs([
            ("PATH", "/usr/bin:/bin"),
            ("AWS_LAMBDA_RUNTIME_API", runtime.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "control-api"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/control-api"),
            ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/01/[$LATEST]0123"),
            ("AWS_REGION", "us-east-1"),
            // As Lambda provides the execution role's credentials.
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_SESSION_TOKEN", "testing"),
            (
                "AWS_ENDPOINT_URL",
                &std::env::var("AWS_ENDPOINT_URL").unwrap(),
            ),
            (
                "CONTROL_API_TOKEN_PARAMETER",
                "/clawdinator/bootstrap-test/control",
            ),
            (
                "GITHUB_TOKEN_PARAMETER",
                "/clawdinator/bootstrap-test/github",
            ),
            ("GITHUB_API_URL", github),
        ])
        .envs(extra.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bootstrap");

    let started = Instant::now();
    let response = loop {
        if let Some(r) = function_response(&api).await {
            break r;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("bootstrap exited with {status}: {}", stderr_of(&mut child));
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no response from the bootstrap"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The audit line goes through the log queue's writer thread after the answer is
    // made; give it a moment before the kill, or a fast refusal's line is lost with it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().unwrap();
    child.wait().unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    (response, stdout)
}

/// The audit lines among the log lines.
fn audit_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["target"] == "audit")
        .collect()
}

#[tokio::test]
async fn the_bootstrap_answers_a_function_url_event_with_tokens_from_ssm() {
    let github = github_accepting().await;
    let event = std::fs::read_to_string(format!(
        "{}/tests/fixtures/deploy_bearer.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let (response, stdout) = run_bootstrap(&event, &github.uri()).await;

    assert_eq!(response["statusCode"], 200, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["ok"], true, "{body}");
    assert_eq!(body["target"], "clawdinator-2");
    assert_eq!(body["caller"], "clawdinator-1");
    // The double only accepts the GitHub token that SSM holds.
    let dispatches = received(&github).await;
    assert_eq!(dispatches.len(), 1, "{dispatches:?}");
    assert_eq!(dispatches[0].1["inputs"]["request_id"], body["request_id"]);

    // CloudWatch gets JSON lines; the audit line has the decision and no secret.
    let audit = audit_lines(&stdout);
    assert_eq!(audit.len(), 1, "{stdout}");
    assert_eq!(audit[0]["decision"], "accepted");
    assert_eq!(audit[0]["deploy_target"], "clawdinator-2");
    assert_eq!(audit[0]["request_id"], body["request_id"]);
    for secret in [CONTROL_TOKEN, GITHUB_TOKEN] {
        assert!(!stdout.contains(secret), "a token in the logs: {stdout}");
    }
}

/// The seed's skill: `aws lambda invoke --payload '{"action","target","caller",
/// "ami_override","control_token"}'`, answered in the seed's `{statusCode, headers,
/// body}` with the same decisions and audit as a Function URL request.
#[tokio::test]
async fn the_bootstrap_answers_the_seeds_direct_invocation() {
    let github = github_accepting().await;
    let payload = |token: &str, target: &str| {
        serde_json::json!({"action": "deploy", "target": target, "caller": "clawdinator-1",
            "ami_override": "", "control_token": token})
        .to_string()
    };
    let cases = [
        (payload(CONTROL_TOKEN, "clawdinator-2"), 200, None),
        (
            payload("wrong-token", "clawdinator-2"),
            401,
            Some("unauthorized"),
        ),
        (
            payload(CONTROL_TOKEN, "x;reboot"),
            400,
            Some("invalid_target"),
        ),
        (
            serde_json::json!({"control_token": CONTROL_TOKEN, "target": "clawdinator-2"})
                .to_string(),
            400,
            Some("missing_action"),
        ),
    ];
    for (event, status, error) in cases {
        let before = received(&github).await.len();
        let (response, stdout) = run_bootstrap(&event, &github.uri()).await;
        assert_eq!(response["statusCode"], status, "{response}");
        assert_eq!(response["headers"]["content-type"], "application/json");
        let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
        let audit = audit_lines(&stdout);
        assert_eq!(audit.len(), 1, "{event}: {response}: {stdout}");
        assert_eq!(audit[0]["request_id"], body["request_id"]);
        assert!(
            !stdout.contains(CONTROL_TOKEN),
            "a token in the logs: {stdout}"
        );
        let dispatched = received(&github).await.len() - before;
        match error {
            None => {
                assert_eq!(body["ok"], true, "{body}");
                assert_eq!(audit[0]["decision"], "accepted");
                assert_eq!(dispatched, 1);
                let sent = &received(&github).await[before].1;
                assert_eq!(sent["inputs"]["request_id"], body["request_id"]);
                github.set_run(github.runs()[0].id, "completed", Some("success"), None);
            }
            Some(code) => {
                assert_eq!(body["error"], code, "{body}");
                assert_eq!(audit[0]["decision"], "refused");
                assert_eq!(dispatched, 0, "a refusal dispatches nothing");
            }
        }
    }
}

/// A report landing in the state bucket reaches the real binary as S3's notification (the
/// saved event's shape): the same binary that serves Function URL requests reads the
/// report from moto's S3 and posts it once to the chat webhook named in moto's SSM (a
/// loopback double of Discord's webhook endpoint), and never logs the webhook's URL.
#[tokio::test]
async fn the_bootstrap_takes_a_reports_s3_event_and_tells_the_chat() {
    use control_api::contract::{HostOutcome, HostReport, RollMode, RollOutcome, RollReport};
    let sdk = moto_sdk().await;
    let bucket = "bootstrap-binary-reports";
    let s3 = control_api::outbound::aws::s3_client(&sdk);
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    let request_id = uuid::Uuid::now_v7().to_string();
    let report = RollReport {
        request_id: request_id.clone(),
        target: "clawdinator-2".into(),
        ami: "ami-0bbbbbbbbbbbbbbbb".into(),
        mode: RollMode::Apply,
        revision: None,
        outcome: RollOutcome::Succeeded,
        hosts: vec![HostReport {
            id: "clawdinator-2".into(),
            from_ami: Some("ami-0aaaaaaaaaaaaaaaa".into()),
            to_ami: Some("ami-0bbbbbbbbbbbbbbbb".into()),
            old_ec2_instance_id: None,
            new_ec2_instance_id: None,
            put_back_ec2_instance_id: None,
            outcome: HostOutcome::Ready,
            reason: None,
            ready_after_secs: Some(252),
            plan: None,
        }],
        run_url: Some("https://github.com/openclaw/clawdinators/actions/runs/77".into()),
    };
    let key = format!("reports/{request_id}.json");
    s3.put_object()
        .bucket(bucket)
        .key(&key)
        .body(serde_json::to_vec(&report).unwrap().into())
        .send()
        .await
        .unwrap();
    let webhook = MockServer::start().await;
    let hook = "/api/webhooks/42/bootstrap-binary-secret-token";
    Mock::given(method("POST"))
        .and(path(hook))
        .respond_with(ResponseTemplate::new(204))
        .mount(&webhook)
        .await;
    let url = format!("{}{hook}", webhook.uri());
    put_secret("/clawdinator/bootstrap-test/chat", &url).await;
    let event = std::fs::read_to_string(format!(
        "{}/tests/fixtures/s3_report_created.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("__BUCKET__", bucket)
    .replace("__KEY__", &key);
    let github = format!("http://127.0.0.1:{}", closed_port());
    let (response, stdout) = run_bootstrap_with(
        &event,
        &github,
        &[
            ("FLEET_STATE_BUCKET", bucket),
            (
                "FLEET_CHAT_WEBHOOK_PARAMETER",
                "/clawdinator/bootstrap-test/chat",
            ),
        ],
    )
    .await;
    assert_eq!(
        response,
        serde_json::json!({"ok": true, "event": "report_created",
            "reports": [{"request_id": request_id, "chat": "posted"}]}),
        "{stdout}"
    );
    let posts = webhook.received_requests().await.unwrap();
    assert_eq!(posts.len(), 1);
    let body: Value = serde_json::from_slice(&posts[0].body).unwrap();
    let content = body["content"].as_str().unwrap();
    assert!(
        content.starts_with("deploy of clawdinator-2 on ami-0bbbbbbbbbbbbbbbb succeeded"),
        "{content}"
    );
    assert!(content.contains("actions/runs/77"), "{content}");
    assert!(
        !stdout.contains("bootstrap-binary-secret-token"),
        "{stdout}"
    );
}

/// The schedule's event reaches the real binary too, and is answered as one.
#[tokio::test]
async fn the_bootstrap_takes_the_schedules_event() {
    let event = std::fs::read_to_string(format!(
        "{}/tests/fixtures/schedule.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let github = format!("http://127.0.0.1:{}", closed_port());
    let (response, stdout) = run_bootstrap(&event, &github).await;
    assert_eq!(
        response,
        serde_json::json!({"ok": true, "event": "schedule"}),
        "{stdout}"
    );
}
