//! Every refusal, one per status code and reason, answers clearly and reaches GitHub zero times.

mod support;

use control_api::config::Mode;
use control_api::inbound::lambda::handle;
use lambda_http::Body;
use serde_json::Value;
use support::*;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};

struct Case {
    name: &'static str,
    method: &'static str,
    auth: Option<String>,
    content_type: Option<&'static str>,
    body: String,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, body: &str, status: u16, code: &'static str) -> Case {
    Case {
        name,
        method: "POST",
        auth: Some(format!("Bearer {CONTROL_TOKEN}")),
        content_type: Some("application/json; charset=utf-8"),
        body: body.to_owned(),
        status,
        code,
    }
}

fn cases() -> Vec<Case> {
    vec![
        case("malformed json", "{\"action\":", 400, "invalid_json"),
        case("empty body", "", 400, "invalid_json"),
        case("array body", "[]", 400, "invalid_body"),
        case("string body", "\"deploy\"", 400, "invalid_body"),
        case("no action", "{}", 400, "missing_action"),
        case(
            "action not a string",
            r#"{"action":["deploy"]}"#,
            400,
            "invalid_field",
        ),
        case(
            "unknown action",
            r#"{"action":"reboot","target":"all"}"#,
            400,
            "unknown_action",
        ),
        case("no target", r#"{"action":"deploy"}"#, 400, "missing_target"),
        case(
            "target not a string",
            r#"{"action":"deploy","target":1}"#,
            400,
            "invalid_field",
        ),
        case(
            "target with a space",
            r#"{"action":"deploy","target":"all "}"#,
            400,
            "invalid_target",
        ),
        case(
            "target with shell",
            r#"{"action":"deploy","target":"clawdinator-1;rm -rf /"}"#,
            400,
            "invalid_target",
        ),
        case(
            "target with newline",
            r#"{"action":"deploy","target":"clawdinator-1\nx"}"#,
            400,
            "invalid_target",
        ),
        case(
            "target look-alike",
            r#"{"action":"deploy","target":"clawdinator-\u0031\u0335"}"#,
            400,
            "invalid_target",
        ),
        case(
            "bad ami",
            r#"{"action":"deploy","target":"all","ami_override":"ami-12345"}"#,
            400,
            "invalid_ami",
        ),
        case(
            "ami trailing garbage",
            r#"{"action":"deploy","target":"all","ami_override":"ami-0123456789abcdef0;x"}"#,
            400,
            "invalid_ami",
        ),
        case(
            "bad caller",
            r#"{"action":"deploy","target":"all","caller":"$(id)"}"#,
            400,
            "invalid_caller",
        ),
        case(
            "unknown target",
            r#"{"action":"deploy","target":"clawdinator-9"}"#,
            404,
            "unknown_target",
        ),
        case(
            "self deploy",
            r#"{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-2"}"#,
            403,
            "self_deploy",
        ),
        case(
            "bot deploys all",
            r#"{"action":"deploy","target":"all","caller":"clawdinator-babelfish"}"#,
            403,
            "bot_deploy_all",
        ),
        case(
            "duplicate field",
            r#"{"action":"deploy","target":"clawdinator-2","target":"all"}"#,
            400,
            "duplicate_field",
        ),
        case(
            "deeply nested",
            &format!(
                r#"{{"action":"status","x":{}{}}}"#,
                "[".repeat(5000),
                "]".repeat(5000)
            ),
            400,
            "invalid_json",
        ),
        case(
            "cyrillic look-alike target",
            "{\"action\":\"deploy\",\"target\":\"\u{0441}lawdinator-1\"}",
            400,
            "invalid_target",
        ),
        case(
            "fullwidth all",
            "{\"action\":\"deploy\",\"target\":\"\u{FF41}ll\"}",
            400,
            "invalid_target",
        ),
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain body",
                r#"{"action":"deploy","target":"all"}"#,
                415,
                "unsupported_media_type",
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "form body",
                r#"{"action":"deploy","target":"all"}"#,
                415,
                "unsupported_media_type",
            )
        },
        case(
            "status flag not a boolean",
            r#"{"action":"status","include_terminated":"yes"}"#,
            400,
            "invalid_field",
        ),
        case(
            "body over 16 KiB",
            &format!(
                r#"{{"action":"deploy","target":"all","pad":"{}"}}"#,
                "x".repeat(16 * 1024)
            ),
            413,
            "payload_too_large",
        ),
        Case {
            method: "GET",
            ..case("GET", "", 405, "method_not_allowed")
        },
        Case {
            method: "DELETE",
            ..case(
                "DELETE",
                r#"{"action":"deploy","target":"all"}"#,
                405,
                "method_not_allowed",
            )
        },
        Case {
            auth: None,
            ..case(
                "no token",
                r#"{"action":"deploy","target":"all"}"#,
                401,
                "unauthorized",
            )
        },
        Case {
            auth: Some("Bearer wrong".into()),
            ..case(
                "wrong token",
                r#"{"action":"deploy","target":"all"}"#,
                401,
                "unauthorized",
            )
        },
        Case {
            auth: Some(format!("Bearer {CONTROL_TOKEN}x")),
            ..case(
                "longer token",
                r#"{"action":"deploy","target":"all"}"#,
                401,
                "unauthorized",
            )
        },
        Case {
            auth: Some(format!("Basic {CONTROL_TOKEN}")),
            ..case(
                "basic scheme",
                r#"{"action":"deploy","target":"all"}"#,
                401,
                "unauthorized",
            )
        },
        Case {
            auth: None,
            ..case(
                "token only in body",
                &format!(
                    r#"{{"action":"deploy","target":"all","control_token":"{CONTROL_TOKEN}"}}"#
                ),
                401,
                "unauthorized",
            )
        },
    ]
}

async fn run(api: &control_api::app::App, c: &Case) -> (u16, Value) {
    let mut builder = lambda_http::http::Request::builder()
        .method(c.method)
        .uri("https://x.lambda-url.eu-central-1.on.aws/");
    if let Some(auth) = &c.auth {
        builder = builder.header("authorization", auth);
    }
    if let Some(ct) = c.content_type {
        builder = builder.header("content-type", ct);
    }
    let req = builder.body(Body::from(c.body.clone())).unwrap();
    let resp = handle(api, req).await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

#[tokio::test]
async fn every_refusal_has_its_status_and_code_and_makes_no_github_call() {
    let github = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(204))
        .expect(0)
        .mount(&github)
        .await;
    let api = lambda_app(&github.uri());
    for c in cases() {
        let (status, body) = run(&api, &c).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (c.status, Some(c.code)),
            "{}: {body}",
            c.name
        );
        assert_eq!(body["ok"], false, "{}", c.name);
        let message = body["message"].as_str().unwrap();
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{}: {message:?}",
            c.name
        );
        assert!(
            !body.to_string().contains(CONTROL_TOKEN),
            "{}: token echoed",
            c.name
        );
    }
    // The one status code that needs other settings: no control token configured.
    let unconfigured = app_with(
        settings(&github.uri(), &[("CONTROL_API_TOKEN", "")]),
        Mode::Lambda,
    );
    let (status, body) = run(
        &unconfigured,
        &case(
            "unconfigured",
            r#"{"action":"deploy","target":"all"}"#,
            500,
            "misconfigured",
        ),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("misconfigured"))
    );
    github.verify().await;
}

#[tokio::test]
async fn missing_and_wrong_tokens_get_the_same_answer() {
    let github = MockServer::start().await;
    let api = lambda_app(&github.uri());
    let strip = |mut v: Value| {
        v.as_object_mut().unwrap().remove("request_id");
        v
    };
    let all = r#"{"action":"deploy","target":"all"}"#;
    let (_, missing) = run(
        &api,
        &Case {
            auth: None,
            ..case("", all, 401, "")
        },
    )
    .await;
    let (_, wrong) = run(
        &api,
        &Case {
            auth: Some("Bearer nope".into()),
            ..case("", all, 401, "")
        },
    )
    .await;
    assert_eq!(strip(missing), strip(wrong));
}
