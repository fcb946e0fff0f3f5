//! Callers derived from credentials: per-principal tokens, IAM identities, rotation, rate limits.

mod support;

use control_api::config::Mode;
use control_api::domain::auth::token_digest_hex;
use control_api::inbound::lambda::handle;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use support::*;

const BOT1: &str = "bot1-token-current";
const BOT1_NEXT: &str = "bot1-token-next";
const OPS: &str = "ops-token";
const ROLE_PREFIX: &str = "arn:aws:sts::123456789012:assumed-role/clawdinator-invoker/";

/// Per-principal tokens, no IAM rules (a Function URL with `NONE` auth).
fn app(github: &str, extra: &[(&str, &str)]) -> control_api::app::App {
    let tokens = json!({
        token_digest_hex(BOT1): "clawdinator-1",
        token_digest_hex(BOT1_NEXT): "clawdinator-1",
        token_digest_hex(OPS): "human:ops",
    })
    .to_string();
    let mut env = vec![("CONTROL_API_TOKENS", tokens.as_str())];
    env.extend_from_slice(extra);
    app_with(settings(github, &env), Mode::Lambda)
}

/// The same tokens and IAM rules: every event must carry a verified IAM identity.
fn app_iam(github: &str) -> control_api::app::App {
    let iam = json!({ ROLE_PREFIX: "session" }).to_string();
    app(github, &[("CONTROL_API_IAM_PRINCIPALS", iam.as_str())])
}

/// The signed Function URL event of the fixture, with `token` in the seed header.
fn signed_event(token: &str) -> Request {
    lambda_http::request::from_str(&signed_event_text(token)).unwrap()
}

fn signed_event_text(token: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/deploy_iam_signed.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .replace("test-control-token", token)
}

fn request(token: &str, body: Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.eu-central-1.on.aws/")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

async fn send(
    api: &control_api::app::App,
    req: Request,
) -> (u16, Value, lambda_http::http::HeaderMap) {
    let resp = handle(api, req).await.unwrap();
    let headers = resp.headers().clone();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
        headers,
    )
}

#[tokio::test]
async fn a_bot_token_is_that_bot_whatever_the_body_says() {
    let github = github_accepting().await;
    // Several deploys in a row: not a test of the in-flight guard.
    github.finish_runs_at_once();
    let api = app(&github.uri(), &[]);
    // Leaving `caller` out no longer skips the self-deploy check.
    let (status, body, _) = send(
        &api,
        request(BOT1, json!({"action":"deploy","target":"clawdinator-1"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("self_deploy")),
        "{body}"
    );
    let (status, body, _) = send(
        &api,
        request(BOT1, json!({"action":"deploy","target":"all"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("bot_deploy_all")),
        "{body}"
    );
    // Claiming to be someone else is refused.
    let (status, body, _) = send(
        &api,
        request(
            BOT1,
            json!({"action":"deploy","target":"clawdinator-2","caller":"human:ops"}),
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("caller_mismatch")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "caller \"human:ops\" contradicts the credentials, which belong to clawdinator-1"
    );
    assert!(received(&github).await.is_empty());
    // Deploying another host works, as itself; so does the rotated-in token.
    let (status, body, _) = send(
        &api,
        request(
            BOT1_NEXT,
            json!({"action":"deploy","target":"clawdinator-2"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caller"], "clawdinator-1");
    // A human token may deploy all; the shared token still works as before.
    let (status, body, _) = send(
        &api,
        request(OPS, json!({"action":"deploy","target":"all"})),
    )
    .await;
    assert_eq!(
        (status, body["caller"].as_str()),
        (200, Some("human:ops")),
        "{body}"
    );
    let (status, _, _) = send(
        &api,
        request(
            CONTROL_TOKEN,
            json!({"action":"deploy","target":"clawdinator-babelfish","caller":"clawdinator-1"}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(received(&github).await.len(), 3);
}

#[tokio::test]
async fn a_signed_function_url_request_is_its_iam_principal() {
    let github = github_accepting().await;
    // Several deploys in a row: not a test of the in-flight guard.
    github.finish_runs_at_once();
    let api = app_iam(&github.uri());
    let event = signed_event;
    // Signed as clawdinator-2 with the shared token: the IAM identity decides, so
    // deploying clawdinator-1 is fine and the audit caller is clawdinator-2.
    let (status, body, _) = send(&api, event(CONTROL_TOKEN)).await;
    assert_eq!(
        (status, body["caller"].as_str()),
        (200, Some("clawdinator-2")),
        "{body}"
    );
    // Signed as clawdinator-2 with clawdinator-1's token: the two disagree.
    let (status, body, _) = send(&api, event(BOT1)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("principal_mismatch")),
        "{body}"
    );
    // A valid signature never replaces the token.
    let (status, _, _) = send(&api, event("not-a-token")).await;
    assert_eq!(status, 401);
    assert_eq!(received(&github).await.len(), 1);
}

#[tokio::test]
async fn with_iam_rules_an_event_without_an_iam_identity_is_401() {
    let github = github_accepting().await;
    let api = app_iam(&github.uri());
    // The signed fixture without `requestContext.authorizer`: what a Function URL with
    // `NONE` auth, or a direct invoke, would hand over.
    let mut event: Value = serde_json::from_str(&signed_event_text(CONTROL_TOKEN)).unwrap();
    event["requestContext"]
        .as_object_mut()
        .unwrap()
        .remove("authorizer");
    event["body"] =
        json!(json!({"action":"deploy","target":"all","caller":"human:ops"}).to_string());
    let unsigned = lambda_http::request::from_str(&event.to_string()).unwrap();
    let (status, body, _) = send(&api, unsigned).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized")),
        "the shared token no longer gets human rights from a stated caller: {body}"
    );
    // Bearer tokens without a signature, human or bot, are refused alike.
    for token in [OPS, BOT1, CONTROL_TOKEN] {
        let (status, body, _) = send(
            &api,
            request(token, json!({"action":"deploy","target":"clawdinator-2"})),
        )
        .await;
        assert_eq!(status, 401, "{body}");
    }
    assert!(received(&github).await.is_empty());
    // Signed, the same event is its IAM principal.
    let (status, body, _) = send(&api, signed_event(CONTROL_TOKEN)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn deploys_are_rate_limited_per_principal_with_retry_after() {
    let github = github_accepting().await;
    // Several deploys in a row: not a test of the in-flight guard.
    github.finish_runs_at_once();
    let api = app(&github.uri(), &[("FLEET_DEPLOY_RATE_LIMIT", "2/600")]);
    for _ in 0..2 {
        let (status, _, _) = send(
            &api,
            request(BOT1, json!({"action":"deploy","target":"clawdinator-2"})),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, body, headers) = send(
        &api,
        request(BOT1, json!({"action":"deploy","target":"clawdinator-2"})),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (429, Some("rate_limited")),
        "{body}"
    );
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    // Refusals do not use up the budget, and other principals have their own.
    let (status, _, _) = send(
        &api,
        request(OPS, json!({"action":"deploy","target":"clawdinator-2"})),
    )
    .await;
    assert_eq!(status, 200);
    // Status is never limited.
    assert_eq!(
        received(&github).await.len(),
        3,
        "the limited request dispatched nothing"
    );
}
