//! Tokens from SSM Parameter Store (SecureString) at cold start, against moto.

mod support;

use control_api::app;
use control_api::config::Mode;
use control_api::inbound::lambda::handle;
use lambda_http::Body;
use serde_json::Value;
use support::*;

async fn put(name: &str, value: &str) {
    let ssm = aws_sdk_ssm::Client::new(&moto_sdk().await);
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

async fn deploy(api: &app::App, token: &str) -> (u16, Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.us-east-1.on.aws/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(
            r#"{"action":"deploy","target":"clawdinator-2"}"#,
        ))
        .unwrap();
    let resp = handle(api, req).await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

/// The Lambda's settings: parameter names only, no token values in the environment.
fn lambda_settings(
    github: &str,
    control_param: &str,
    github_param: &str,
) -> control_api::config::Settings {
    settings(
        github,
        &[
            ("CONTROL_API_TOKEN", ""),
            ("GITHUB_TOKEN", ""),
            ("CONTROL_API_TOKEN_PARAMETER", control_param),
            ("GITHUB_TOKEN_PARAMETER", github_param),
        ],
    )
}

#[tokio::test]
async fn tokens_come_from_secure_parameters() {
    put(
        "/clawdinator/test/control-token",
        "ssm-control-token-value\n",
    )
    .await;
    put("/clawdinator/test/github-token", GITHUB_TOKEN).await;
    let github = github_accepting().await;
    let settings = lambda_settings(
        &github.uri(),
        "/clawdinator/test/control-token",
        "/clawdinator/test/github-token",
    );
    let api = app::build(settings, Mode::Lambda).await.unwrap();
    let (status, body) = deploy(&api, "ssm-control-token-value").await;
    assert_eq!(status, 200, "{body}");
    // The dispatch carried the GitHub token read from SSM (the double checks the header).
    assert_eq!(received(&github).await.len(), 1);
    let (status, _) = deploy(&api, CONTROL_TOKEN).await;
    assert_eq!(
        status, 401,
        "the environment's token is not the one in force"
    );
}

#[tokio::test]
async fn unreadable_or_placeholder_parameters_are_a_500_naming_the_setting() {
    put(
        "/clawdinator/test/placeholder",
        "UNSET-put-the-real-value-with-aws-ssm-put-parameter",
    )
    .await;
    put("/clawdinator/test/control-ok", "fine-token").await;
    let github = github_accepting().await;

    let api = app::build(
        lambda_settings(
            &github.uri(),
            "/clawdinator/test/missing",
            "/clawdinator/test/placeholder",
        ),
        Mode::Lambda,
    )
    .await
    .unwrap();
    let (status, body) = deploy(&api, "anything").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("misconfigured"))
    );
    assert_eq!(body["message"], "server misconfigured: CONTROL_API_TOKEN_PARAMETER names a parameter that could not be read");

    let api = app::build(
        lambda_settings(
            &github.uri(),
            "/clawdinator/test/control-ok",
            "/clawdinator/test/placeholder",
        ),
        Mode::Lambda,
    )
    .await
    .unwrap();
    let (status, body) = deploy(&api, "fine-token").await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "server misconfigured: GITHUB_TOKEN_PARAMETER names a parameter that still holds its placeholder value"
    );
    let (status, _) = deploy(&api, "UNSET-put-the-real-value-with-aws-ssm-put-parameter").await;
    assert_eq!(status, 401, "a placeholder is never a token");
    assert!(received(&github).await.is_empty());
}

#[tokio::test]
async fn the_lambda_refuses_plain_environment_secrets() {
    let github = github_accepting().await;
    // settings() carries CONTROL_API_TOKEN and GITHUB_TOKEN as plain values, no parameters.
    let api = app::build(settings(&github.uri(), &[]), Mode::Lambda)
        .await
        .unwrap();
    let (status, body) = deploy(&api, CONTROL_TOKEN).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("misconfigured")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "server misconfigured: CONTROL_API_TOKEN is a plain environment value; the Lambda reads secrets only from SSM (name the parameter in the _PARAMETER setting)"
    );
    // The same values are fine for the local server.
    let local = app::build(settings(&github.uri(), &[]), Mode::Local)
        .await
        .unwrap();
    let (status, body) = deploy(&local, CONTROL_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(received(&github).await.len(), 1);
}
