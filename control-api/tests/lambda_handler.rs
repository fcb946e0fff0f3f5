//! The Lambda handler driven by saved Function URL events, with GitHub as a loopback double.

mod support;

use control_api::config::Mode;
use control_api::inbound::lambda::handle;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use support::*;
use wiremock::MockServer;

fn event(name: &str) -> Request {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    lambda_http::request::from_str(&text).unwrap()
}

fn parts(resp: lambda_http::Response<Body>) -> (u16, Value, lambda_http::http::HeaderMap) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();
    (status, body, headers)
}

#[tokio::test]
async fn function_url_deploy_dispatches_exactly_the_documented_request() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());
    let (status, body, headers) = parts(handle(&api, event("deploy_bearer.json")).await.unwrap());
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["ok"], true);
    assert_eq!(body["message"], "deploy queued for clawdinator-2");
    assert_eq!(body["target"], "clawdinator-2");
    assert_eq!(body["caller"], "clawdinator-1");
    assert_eq!(body["ami_override"], Value::Null);
    let request_id = body["request_id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(request_id).is_ok(), "{request_id}");
    assert!(body.get("dispatch").is_none(), "the Lambda never dry-runs");

    let sent = received(&github).await;
    assert_eq!(
        sent,
        vec![(
            DISPATCH_PATH.to_owned(),
            json!({"ref": "main", "inputs": {"target": "clawdinator-2", "ami_override": "", "request_id": request_id, "caller": "clawdinator-1", "revision": HEAD_SHA, "mode": "apply"}, "return_run_details": true})
        )]
    );
}

#[tokio::test]
async fn base64_body_and_the_seed_header_work_and_the_body_token_is_ignored() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());
    let (status, body, _) = parts(
        handle(&api, event("deploy_base64_seed_header.json"))
            .await
            .unwrap(),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ami_override"], serde_json::Value::Null);
    let sent = received(&github).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].1["inputs"],
        json!({"target": "clawdinator-babelfish", "ami_override": "", "request_id": body["request_id"], "caller": "human:ops", "revision": HEAD_SHA, "mode": "apply"})
    );
}

#[tokio::test]
async fn self_deploy_wrong_token_and_get_are_refused_without_calling_github() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());

    let (status, body, _) = parts(handle(&api, event("deploy_self.json")).await.unwrap());
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("self_deploy")),
        "{body}"
    );

    let (status, body, _) = parts(
        handle(&api, event("deploy_wrong_token.json"))
            .await
            .unwrap(),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );

    let (status, body, headers) = parts(handle(&api, event("get_root.json")).await.unwrap());
    assert_eq!(
        (status, body["error"].as_str()),
        (405, Some("method_not_allowed")),
        "{body}"
    );
    assert_eq!(headers["allow"], "POST");

    assert_eq!(
        github_calls(&github).await,
        0,
        "refusals make no GitHub call at all"
    );
}

#[tokio::test]
async fn lambda_without_secrets_answers_500_naming_the_setting_never_dry_runs() {
    let github = MockServer::start().await;
    // No GITHUB_TOKEN: refusals still answer as usual, an accepted deploy is a 500.
    let no_github = app_with(
        settings(&github.uri(), &[("GITHUB_TOKEN", "")]),
        Mode::Lambda,
    );
    let (status, body, _) = parts(
        handle(&no_github, event("deploy_bearer.json"))
            .await
            .unwrap(),
    );
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "misconfigured");
    assert_eq!(
        body["message"],
        "server misconfigured: GITHUB_TOKEN is not set"
    );
    let (status, _, _) = parts(handle(&no_github, event("deploy_self.json")).await.unwrap());
    assert_eq!(status, 403);

    // No CONTROL_API_TOKEN: nothing can be authenticated, so everything is a 500.
    let no_token = app_with(
        settings(&github.uri(), &[("CONTROL_API_TOKEN", "")]),
        Mode::Lambda,
    );
    let (status, body, _) = parts(
        handle(&no_token, event("deploy_bearer.json"))
            .await
            .unwrap(),
    );
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "server misconfigured: CONTROL_API_TOKEN is not set"
    );
    let text = body.to_string();
    assert!(!text.contains(GITHUB_TOKEN), "{text}");

    assert!(received(&github).await.is_empty());
}

/// A writer the test can read back, for the Lambda's JSON log lines.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn the_json_audit_line_keeps_every_field_and_no_secret() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());
    // A process-wide subscriber, not a scoped one: tracing caches each call site's interest
    // globally, so a thread-local subscriber can miss lines while other tests run in parallel.
    // Other tests' lines land here too; the audit line is found by this request's id.
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let logs = LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = control_api::telemetry::json_subscriber(move || writer.clone());
        tracing::subscriber::set_global_default(subscriber).expect("only this test sets one");
        logs
    });
    let (status, body, _) = parts(handle(&api, event("deploy_bearer.json")).await.unwrap());
    assert_eq!(status, 200, "{body}");
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        !text.contains(CONTROL_TOKEN) && !text.contains(GITHUB_TOKEN),
        "{text}"
    );
    let audit: Value = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["target"] == "audit" && v["request_id"] == body["request_id"])
        .unwrap_or_else(|| panic!("no audit line in {text}"));
    // One key per name: the deploy target must not be shadowed by the log target.
    assert_eq!(audit["deploy_target"], "clawdinator-2", "{audit}");
    assert_eq!(audit["caller"], "clawdinator-1");
    assert_eq!(audit["action"], "deploy");
    assert_eq!(audit["decision"], "accepted");
    assert_eq!(audit["status"], 200);
    assert_eq!(audit["request_id"], body["request_id"]);
}
