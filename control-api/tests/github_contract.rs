//! The dispatch as GitHub sees it, and GitHub's failures as the caller sees them.

mod support;

use control_api::inbound::lambda::handle;
use lambda_http::{Body, Request};
use serde_json::{json, Value};
use support::*;
use wiremock::{MockServer, ResponseTemplate};

fn deploy(target: &str) -> Request {
    let body = json!({"action": "deploy", "target": target, "caller": "human:ops"}).to_string();
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.lambda-url.eu-central-1.on.aws/")
        .header("authorization", format!("Bearer {CONTROL_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

async fn call(api: &control_api::app::App, req: Request) -> (u16, Value) {
    let resp = handle(api, req).await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

#[tokio::test]
async fn an_accepted_dispatch_is_a_200_with_a_fresh_request_id_each_time() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());
    let (s1, b1) = call(&api, deploy("all")).await;
    // The first run has finished, or the in-flight guard would answer the second deploy.
    github.set_run(github.runs()[0].id, "completed", Some("success"), None);
    let (s2, b2) = call(&api, deploy("clawdinator-1")).await;
    assert_eq!((s1, s2), (200, 200), "{b1} {b2}");
    assert_eq!(b1["message"], "deploy queued for all");
    assert_ne!(b1["request_id"], b2["request_id"]);
    let sent = received(&github).await;
    assert_eq!(sent.len(), 2);
    // Exactly the documented body: ref and string inputs, nothing else.
    assert_eq!(
        sent[0].1,
        json!({"ref": "main", "inputs": {"target": "all", "ami_override": "",
            "request_id": b1["request_id"], "caller": "human:ops", "revision": HEAD_SHA, "mode": "apply"},
            "return_run_details": true})
    );
    assert_eq!(sent[1].1["inputs"]["target"], "clawdinator-1");
    // The run the workflow's run-name ties to the request.
    assert_eq!(b1["run_id"], github.runs()[0].id);
    assert_eq!(
        b1["run_url"],
        format!(
            "https://github.com/openclaw/clawdinators/actions/runs/{}",
            github.runs()[0].id
        )
    );
}

#[tokio::test]
async fn github_errors_are_502_with_a_clean_message() {
    for (status, github_body) in [
        (
            401,
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
        ),
        (
            404,
            json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest/actions/workflows#create-a-workflow-dispatch-event"}),
        ),
        (
            422,
            json!({"message": "Unexpected inputs provided: [\"request_id\"]", "documentation_url": "https://docs.github.com/rest"}),
        ),
        (
            403,
            json!({"message": "Resource not accessible by personal access token SECRET-INTERNAL-DETAIL"}),
        ),
    ] {
        let github = MockServer::start().await;
        mount_head_commit(&github).await;
        dispatch_endpoint()
            .respond_with(ResponseTemplate::new(status).set_body_json(&github_body))
            .expect(1)
            .mount(&github)
            .await;
        let api = lambda_app(&github.uri());
        let (code, body) = call(&api, deploy("clawdinator-2")).await;
        assert_eq!(code, 502, "GitHub {status}: {body}");
        assert_eq!(body["ok"], false);
        assert_eq!(body["error"], "github_refused");
        assert_eq!(
            body["message"],
            format!("GitHub refused the workflow dispatch (HTTP {status}); nothing was deployed")
        );
        let text = body.to_string();
        assert!(
            !text.contains(github_body["message"].as_str().unwrap()),
            "GitHub's body leaked: {text}"
        );
        github.verify().await;
    }
}

#[tokio::test]
async fn unreachable_github_is_a_502() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = lambda_app(&format!("http://127.0.0.1:{port}"));
    let (code, body) = call(&api, deploy("clawdinator-2")).await;
    assert_eq!(code, 502, "{body}");
    assert_eq!(body["error"], "github_unavailable");
}

#[tokio::test]
async fn repo_workflow_and_ref_come_from_settings() {
    let github = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path(
        "/repos/acme/fleet/actions/workflows/deploy.yml/dispatches",
    ))
    .respond_with(ResponseTemplate::new(204))
    .expect(1)
    .mount(&github)
    .await;
    wiremock::Mock::given(wiremock::matchers::path(
        "/repos/acme/fleet/commits/release",
    ))
    .respond_with(ResponseTemplate::new(200).set_body_json(commit_json(HEAD_SHA)))
    .expect(1)
    .mount(&github)
    .await;
    let settings = settings(
        &github.uri(),
        &[
            ("GITHUB_REPO", "acme/fleet"),
            ("GITHUB_WORKFLOW", "deploy.yml"),
            ("GITHUB_REF", "release"),
        ],
    );
    let api = app_with(settings, control_api::config::Mode::Lambda);
    let (code, _) = call(&api, deploy("clawdinator-2")).await;
    assert_eq!(code, 200);
    assert_eq!(received(&github).await[0].1["ref"], "release");
    github.verify().await;
}

fn runs_request() -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.lambda-url.eu-central-1.on.aws/")
        .header("authorization", format!("Bearer {CONTROL_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(json!({"action": "runs"}).to_string()))
        .unwrap()
}

#[tokio::test]
async fn github_refusing_a_runs_read_is_asked_once_and_named() {
    for (status, message) in [
        (401, "Bad credentials"),
        (403, "Resource not accessible by personal access token"),
        (406, "Not Acceptable"),
        (422, "Validation Failed"),
    ] {
        let github = MockServer::start().await;
        wiremock::Mock::given(wiremock::matchers::method("GET"))
            .and(wiremock::matchers::path(RUNS_PATH))
            .respond_with(ResponseTemplate::new(status).set_body_json(
                json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
            ))
            .mount(&github)
            .await;
        let api = lambda_app(&github.uri());
        let (code, body) = call(&api, runs_request()).await;
        assert_eq!(
            github_calls(&github).await,
            1,
            "GitHub {status}: asked again"
        );
        assert_eq!(code, 502, "GitHub {status}: {body}");
        assert_eq!(body["error"], "github_refused", "{body}");
        assert_eq!(
            body["message"],
            format!("GitHub refused the read of the deploy runs (HTTP {status}: {message})")
        );
        assert!(!body.to_string().contains(GITHUB_TOKEN));
    }
}

#[tokio::test]
async fn github_5xx_on_a_runs_read_is_retried() {
    let github = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(RUNS_PATH))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&github)
        .await;
    wiremock::Mock::given(wiremock::matchers::method("GET"))
        .and(wiremock::matchers::path(RUNS_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"total_count": 0, "workflow_runs": []})),
        )
        .with_priority(2)
        .mount(&github)
        .await;
    let api = lambda_app(&github.uri());
    let (code, body) = call(&api, runs_request()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(github_calls(&github).await, 3);
}

#[tokio::test]
async fn githubs_run_details_name_the_run_without_reading_the_runs_list() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());
    let (code, body) = call(&api, deploy("clawdinator-2")).await;
    assert_eq!(code, 200, "{body}");
    let run = github.runs()[0].id;
    assert_eq!(body["run_id"], run);
    assert_eq!(
        body["run_url"],
        format!("https://github.com/openclaw/clawdinators/actions/runs/{run}")
    );
    assert_eq!(github.runs_reads_after_last_dispatch().await, 0);
}

#[tokio::test]
async fn a_204_from_an_older_github_looks_the_run_up_by_request_id() {
    let github = github_accepting().await;
    github.answer_204();
    let api = lambda_app(&github.uri());
    let (code, body) = call(&api, deploy("clawdinator-2")).await;
    assert_eq!(code, 200, "{body}");
    let run = github.runs()[0].id;
    assert_eq!(body["run_id"], run);
    assert_eq!(
        body["run_url"],
        format!("https://github.com/openclaw/clawdinators/actions/runs/{run}")
    );
    assert!(github.runs_reads_after_last_dispatch().await >= 1);
}

fn deploy_body(body: Value) -> Request {
    lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://example.lambda-url.eu-central-1.on.aws/")
        .header("authorization", format!("Bearer {CONTROL_TOKEN}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

const ASKED: &str = "0123456789abcdef0123456789abcdef01234567";

#[tokio::test]
async fn the_revision_is_githubs_commit_of_the_ref_unless_a_human_asks_for_one() {
    let github = github_accepting().await;
    github.finish_runs_at_once();
    let api = lambda_app(&github.uri());
    let (code, body) = call(&api, deploy("clawdinator-2")).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["revision"], HEAD_SHA);
    let asked = json!({"action": "deploy", "target": "clawdinator-2", "caller": "human:ops",
        "revision": ASKED.to_uppercase()});
    let (code, body) = call(&api, deploy_body(asked)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["revision"], ASKED);
    let rollback_by_bot = json!({"action": "deploy", "target": "clawdinator-2",
        "caller": "clawdinator-1", "revision": ASKED});
    let (code, body) = call(&api, deploy_body(rollback_by_bot)).await;
    assert_eq!(
        (code, &body["error"]),
        (403, &json!("revision_not_allowed")),
        "{body}"
    );
    let malformed = json!({"action": "rollback", "target": "clawdinator-2", "revision": "abc1234"});
    let (code, body) = call(&api, deploy_body(malformed)).await;
    assert_eq!(
        (code, &body["error"]),
        (400, &json!("invalid_revision")),
        "{body}"
    );
    let sent: Vec<Value> = received(&github)
        .await
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    assert_eq!(sent.len(), 2, "refusals dispatch nothing");
    assert_eq!(sent[0]["inputs"]["revision"], HEAD_SHA);
    assert_eq!(sent[1]["inputs"]["revision"], ASKED);
}

#[tokio::test]
async fn a_ref_github_does_not_know_is_refused_before_any_dispatch() {
    let github = MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path(
        "/repos/openclaw/clawdinators/commits/main",
    ))
    .respond_with(
        ResponseTemplate::new(422)
            .set_body_json(json!({"message": "No commit found for SHA: main"})),
    )
    .expect(1)
    .mount(&github)
    .await;
    let api = lambda_app(&github.uri());
    let (code, body) = call(&api, deploy("clawdinator-2")).await;
    assert_eq!(
        (code, &body["error"]),
        (502, &json!("github_refused")),
        "{body}"
    );
    assert!(received(&github).await.is_empty());
    github.verify().await;
}

#[tokio::test]
async fn a_plan_is_dispatched_with_the_mode_input_plan_and_named_fleet_plan() {
    let github = github_accepting().await;
    let api = lambda_app(&github.uri());
    let plan = json!({"action": "plan", "target": "clawdinator-2", "caller": "human:ops"});
    let (code, body) = call(&api, deploy_body(plan)).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["message"], "plan queued for clawdinator-2");
    assert_eq!(body["mode"], "plan");
    let request_id = body["request_id"].as_str().unwrap().to_owned();
    // The plan's run is queued: a deploy still goes (no deploy waits for a plan), and
    // the deploy is dispatched with the mode input apply.
    let (code, deployed) = call(&api, deploy("clawdinator-1")).await;
    assert_eq!(code, 200, "{deployed}");
    assert!(deployed.get("mode").is_none(), "{deployed}");
    let sent = received(&github).await;
    assert_eq!(
        sent[0].1,
        json!({"ref": "main", "inputs": {"target": "clawdinator-2", "ami_override": "",
            "request_id": request_id, "caller": "human:ops", "revision": HEAD_SHA,
            "mode": "plan"}, "return_run_details": true})
    );
    assert_eq!(sent[1].1["inputs"]["mode"], "apply");
    let runs = github.runs();
    assert_eq!(
        runs[0].display_title,
        format!("fleet-plan clawdinator-2 by human:ops [{request_id}]")
    );
    assert_eq!(body["run_id"], runs[0].id);
    // `runs` tells the plan's run from the deploy's.
    let (code, listed) = call(&api, runs_request()).await;
    assert_eq!(code, 200, "{listed}");
    let modes: Vec<(&Value, Option<&Value>)> = listed["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (&r["target"], r.get("mode")))
        .collect();
    assert_eq!(
        modes,
        [
            (&json!("clawdinator-1"), None),
            (&json!("clawdinator-2"), Some(&json!("plan")))
        ]
    );
    // The deploy's run in flight holds the next deploy, not a plan.
    let (code, refused) = call(&api, deploy("clawdinator-babelfish")).await;
    assert_eq!((code, &refused["error"]), (409, &json!("deploy_in_flight")));
    let plan_all = json!({"action": "plan", "target": "all", "caller": "human:ops"});
    assert_eq!(call(&api, deploy_body(plan_all)).await.0, 200);
}

#[tokio::test]
async fn the_double_refuses_a_dispatch_without_a_known_mode() {
    let github = github_accepting().await;
    let url = format!("{}{DISPATCH_PATH}", github.uri());
    let statuses = tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        [None, Some("destroy"), Some("plan")].map(|mode| {
            let mut inputs = json!({"target": "all", "ami_override": "", "request_id": "r-1",
                "caller": "human:ops", "revision": HEAD_SHA});
            if let Some(mode) = mode {
                inputs["mode"] = json!(mode);
            }
            let body = json!({"ref": "main", "inputs": inputs, "return_run_details": true});
            agent
                .post(&url)
                .header("authorization", &format!("Bearer {GITHUB_TOKEN}"))
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .header("content-type", "application/json")
                .send(body.to_string())
                .unwrap()
                .status()
                .as_u16()
        })
    })
    .await
    .unwrap();
    assert_eq!(statuses, [422, 422, 200]);
    assert_eq!(github.runs().len(), 1, "only the well-formed dispatch ran");
}
