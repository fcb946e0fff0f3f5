//! The Lambda's tokens from SSM Parameter Store (SecureString), against moto: one
//! `GetParameters` on the first request, none at start-up, a failed read retried.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use control_api::app::{self, LazyApp, SECRETS_RETRY};
use control_api::config::{Mode, Settings};
use control_api::inbound::event::OnEvent;
use control_api::inbound::http::Handler;
use control_api::inbound::lambda::handle;
use lambda_http::Body;
use serde_json::Value;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn deploy(api: &(impl Handler + OnEvent), token: &str) -> (u16, Option<String>, Value) {
    call(
        api,
        token,
        r#"{"action":"deploy","target":"clawdinator-2"}"#,
    )
    .await
}

/// Lists the deploy runs: authenticates like a deploy, and can be asked again.
async fn runs(api: &(impl Handler + OnEvent), token: &str) -> u16 {
    call(api, token, r#"{"action":"runs"}"#).await.0
}

async fn call(
    api: &(impl Handler + OnEvent),
    token: &str,
    body: &str,
) -> (u16, Option<String>, Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.us-east-1.on.aws/")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(body.to_owned()))
        .unwrap();
    let resp = handle(api, req).await.unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        resp.status().as_u16(),
        retry_after,
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

/// The Lambda's settings: parameter names only, no token values in the environment.
fn lambda_settings(github: &str, control_param: &str, github_param: &str) -> Settings {
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

/// The Lambda's app against moto, its tokens in these two parameters.
async fn lambda_on_moto(github: &str, control_param: &str, github_param: &str) -> LazyApp {
    LazyApp::new(
        lambda_settings(github, control_param, github_param),
        Mode::Lambda,
        moto_sdk().await,
    )
}

/// A TCP relay to moto that counts the SSM `GetParameters` requests passing through it
/// and, while `up` is false, drops every connection: SSM unreachable, then back.
struct SsmRelay {
    url: String,
    up: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
}

impl SsmRelay {
    async fn start() -> Self {
        Self::start_to(&std::env::var("AWS_ENDPOINT_URL").unwrap()).await
    }

    /// A relay to another moto than the shared one.
    async fn start_to(moto: &str) -> Self {
        let moto = moto.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let up = Arc::new(AtomicBool::new(true));
        let reads = Arc::new(AtomicUsize::new(0));
        let (up2, reads2) = (Arc::clone(&up), Arc::clone(&reads));
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let server = TcpStream::connect(&moto).await.unwrap();
                let reads = Arc::clone(&reads2);
                tokio::spawn(relay(client, server, reads));
            }
        });
        Self { url, up, reads }
    }

    /// AWS through this relay. Built from scratch: an SDK config loaded from the
    /// environment would let `AWS_ENDPOINT_URL` (moto itself) win over this endpoint.
    fn sdk(&self) -> aws_config::SdkConfig {
        offline_sdk().into_builder().endpoint_url(&self.url).build()
    }
}

async fn relay(client: TcpStream, server: TcpStream, reads: Arc<AtomicUsize>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async move {
        let mut buf = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = cr.read(&mut buf).await {
            let chunk = &buf[..n];
            let target = b"AmazonSSM.GetParameters";
            reads.fetch_add(
                chunk.windows(target.len()).filter(|w| w == target).count(),
                Ordering::SeqCst,
            );
            if sw.write_all(chunk).await.is_err() {
                break;
            }
        }
    };
    let down = async move {
        let _ = tokio::io::copy(&mut sr, &mut cw).await;
    };
    tokio::join!(up, down);
}

#[tokio::test]
async fn tokens_come_from_one_ssm_read_on_the_first_request_not_at_start_up() {
    put_secret(
        "/clawdinator/test/control-token",
        "ssm-control-token-value\n",
    )
    .await;
    put_secret("/clawdinator/test/github-token", GITHUB_TOKEN).await;
    let github = github_accepting().await;
    let ssm = SsmRelay::start().await;
    let api = LazyApp::new(
        lambda_settings(
            &github.uri(),
            "/clawdinator/test/control-token",
            "/clawdinator/test/github-token",
        ),
        Mode::Lambda,
        ssm.sdk(),
    );
    assert_eq!(
        ssm.reads.load(Ordering::SeqCst),
        0,
        "nothing read at start-up"
    );

    // A burst of first requests waits for one read.
    let burst = (0..8).map(|_| runs(&api, "ssm-control-token-value"));
    let statuses = futures_util::future::join_all(burst).await;
    assert_eq!(statuses, [200; 8]);
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 1);

    let (status, _, body) = deploy(&api, "ssm-control-token-value").await;
    assert_eq!(status, 200, "{body}");
    // The dispatch carried the GitHub token read from SSM (the double checks the header).
    assert_eq!(received(&github).await.len(), 1);
    let (status, _, _) = deploy(&api, CONTROL_TOKEN).await;
    assert_eq!(
        status, 401,
        "the environment's token is not the one in force"
    );
    assert_eq!(
        ssm.reads.load(Ordering::SeqCst),
        1,
        "both tokens in one GetParameters, kept for the sandbox's life"
    );
}

#[tokio::test]
async fn an_unreadable_ssm_is_a_503_and_the_next_request_reads_again() {
    put_secret("/clawdinator/test/retry-control", "retry-control-token").await;
    put_secret("/clawdinator/test/retry-github", GITHUB_TOKEN).await;
    let github = github_accepting().await;
    let ssm = SsmRelay::start().await;
    ssm.up.store(false, Ordering::SeqCst);
    // One attempt per read, so the outage is seen without the SDK's backoff.
    let sdk = ssm
        .sdk()
        .into_builder()
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .build();
    let api = LazyApp::new(
        lambda_settings(
            &github.uri(),
            "/clawdinator/test/retry-control",
            "/clawdinator/test/retry-github",
        ),
        Mode::Lambda,
        sdk,
    );

    let (status, retry_after, body) = deploy(&api, "retry-control-token").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("secrets_unavailable")),
        "{body}"
    );
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert_eq!(body["retry_after_secs"], 1);
    assert!(body["request_id"].is_string());
    // Within the retry interval nothing more is tried: the same answer, no new read.
    ssm.up.store(true, Ordering::SeqCst);
    let (status, _, _) = deploy(&api, "retry-control-token").await;
    assert_eq!(status, 503);
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 0);
    assert!(received(&github).await.is_empty(), "nothing dispatched");

    tokio::time::sleep(SECRETS_RETRY + Duration::from_millis(100)).await;
    let (status, _, body) = deploy(&api, "retry-control-token").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 1);
    assert_eq!(received(&github).await.len(), 1);
}

#[tokio::test]
async fn the_next_token_is_read_with_the_others_and_its_placeholder_means_no_rotation() {
    put_secret("/clawdinator/test/rot-control", "current-token").await;
    put_secret("/clawdinator/test/rot-github", GITHUB_TOKEN).await;
    put_secret(
        "/clawdinator/test/rot-next-idle",
        "UNSET-put-the-real-value-with-aws-ssm-put-parameter",
    )
    .await;
    put_secret("/clawdinator/test/rot-next", "next-token").await;
    let github = github_accepting().await;
    let ssm = SsmRelay::start().await;
    let rotation = |next: &str| {
        LazyApp::new(
            settings(
                &github.uri(),
                &[
                    ("CONTROL_API_TOKEN", ""),
                    ("GITHUB_TOKEN", ""),
                    (
                        "CONTROL_API_TOKEN_PARAMETER",
                        "/clawdinator/test/rot-control",
                    ),
                    ("CONTROL_API_TOKEN_NEXT_PARAMETER", next),
                    ("GITHUB_TOKEN_PARAMETER", "/clawdinator/test/rot-github"),
                ],
            ),
            Mode::Lambda,
            ssm.sdk(),
        )
    };

    // Between rotations: the placeholder is no token, and the current one works.
    let idle = rotation("/clawdinator/test/rot-next-idle");
    assert_eq!(runs(&idle, "current-token").await, 200);
    let placeholder = "UNSET-put-the-real-value-with-aws-ssm-put-parameter";
    assert_eq!(runs(&idle, placeholder).await, 401);
    assert_eq!(
        ssm.reads.load(Ordering::SeqCst),
        1,
        "three parameters, one GetParameters"
    );

    // During one: both tokens are accepted, as the shared principal.
    let rotating = rotation("/clawdinator/test/rot-next");
    assert_eq!(runs(&rotating, "current-token").await, 200);
    let (status, _, body) = deploy(&rotating, "next-token").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["caller"], "human:shared-token", "{body}");
    assert_eq!(runs(&rotating, "previous-token").await, 401);
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 2);
    assert_eq!(received(&github).await.len(), 1);

    // A named next parameter that does not exist is a typo, not "no rotation".
    let typo = rotation("/clawdinator/test/rot-nxet");
    let (status, _, body) = deploy(&typo, "current-token").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["message"],
        "server misconfigured: CONTROL_API_TOKEN_NEXT_PARAMETER names a parameter that does not exist"
    );
    assert_eq!(received(&github).await.len(), 1);
}

/// A moto of its own that enforces IAM after `free_actions` calls: from then on the
/// dummy credentials are refused (403 InvalidClientTokenId), as AWS refuses a role
/// without access. Stopped when dropped.
struct StrictMoto {
    child: std::process::Child,
    url: String,
}

impl StrictMoto {
    async fn start(free_actions: u32) -> Self {
        let server = std::env::var("MOTO_SERVER").expect("run under scripts/with-moto");
        let port = closed_port();
        let child = std::process::Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", free_actions.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return moto;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("moto on {port} did not start");
    }

    fn sdk(&self) -> aws_config::SdkConfig {
        offline_sdk().into_builder().endpoint_url(&self.url).build()
    }
}

impl Drop for StrictMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_ssm_refusal_is_a_500_for_an_operator_and_is_read_again_later() {
    let moto = StrictMoto::start(1).await;
    // The one free action: the parameter exists, so only the refusal stands in the way.
    put_secret_on(&moto.sdk(), "/clawdinator/test/denied", "denied-token").await;
    let github = github_accepting().await;
    let ssm = SsmRelay::start_to(&moto.url).await;
    let api = LazyApp::new(
        lambda_settings(
            &github.uri(),
            "/clawdinator/test/denied",
            "/clawdinator/test/denied",
        ),
        Mode::Lambda,
        ssm.sdk(),
    );
    let (status, retry_after, body) = deploy(&api, "denied-token").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("secrets_unreadable")),
        "{body}"
    );
    assert_eq!(retry_after, None, "waiting does not fix a role");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("an operator must fix the function's role"),
        "{body}"
    );
    assert_eq!(
        ssm.reads.load(Ordering::SeqCst),
        1,
        "a refusal is not retried"
    );
    assert_eq!(deploy(&api, "denied-token").await.0, 500);
    assert_eq!(
        ssm.reads.load(Ordering::SeqCst),
        1,
        "at most a read a second"
    );
    // Not kept for the sandbox's life: a fixed role works without recycling it.
    tokio::time::sleep(SECRETS_RETRY + Duration::from_millis(100)).await;
    assert_eq!(deploy(&api, "denied-token").await.0, 500);
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 2, "read again");
    assert!(received(&github).await.is_empty(), "nothing dispatched");
}

#[tokio::test]
async fn missing_or_placeholder_parameters_are_a_500_naming_the_setting() {
    put_secret(
        "/clawdinator/test/placeholder",
        "UNSET-put-the-real-value-with-aws-ssm-put-parameter",
    )
    .await;
    put_secret("/clawdinator/test/control-ok", "fine-token").await;
    put_secret("/clawdinator/test/blank", " \n").await;
    let github = github_accepting().await;

    let api = lambda_on_moto(
        &github.uri(),
        "/clawdinator/test/missing",
        "/clawdinator/test/placeholder",
    )
    .await;
    let (status, _, body) = deploy(&api, "anything").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("misconfigured"))
    );
    assert_eq!(
        body["message"],
        "server misconfigured: CONTROL_API_TOKEN_PARAMETER names a parameter that does not exist"
    );

    let api = lambda_on_moto(
        &github.uri(),
        "/clawdinator/test/control-ok",
        "/clawdinator/test/placeholder",
    )
    .await;
    let (status, _, body) = deploy(&api, "fine-token").await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "server misconfigured: GITHUB_TOKEN_PARAMETER names a parameter that still holds its placeholder value"
    );
    let (status, _, _) = deploy(&api, "UNSET-put-the-real-value-with-aws-ssm-put-parameter").await;
    assert_eq!(status, 401, "a placeholder is never a token");

    let api = lambda_on_moto(
        &github.uri(),
        "/clawdinator/test/control-ok",
        "/clawdinator/test/blank",
    )
    .await;
    let (status, _, body) = deploy(&api, "fine-token").await;
    assert_eq!(status, 500);
    assert_eq!(
        body["message"],
        "server misconfigured: GITHUB_TOKEN_PARAMETER names an empty parameter"
    );
    assert!(received(&github).await.is_empty());
}

#[tokio::test]
async fn a_placeholder_is_read_again_until_the_real_value_is_put_then_kept() {
    put_secret("/clawdinator/test/later-control", "later-control-token").await;
    put_secret(
        "/clawdinator/test/later-github",
        "UNSET-put-the-real-value-with-aws-ssm-put-parameter",
    )
    .await;
    let github = github_accepting().await;
    let ssm = SsmRelay::start().await;
    let api = LazyApp::new(
        lambda_settings(
            &github.uri(),
            "/clawdinator/test/later-control",
            "/clawdinator/test/later-github",
        ),
        Mode::Lambda,
        ssm.sdk(),
    );
    let (status, _, body) = deploy(&api, "later-control-token").await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body["message"],
        "server misconfigured: GITHUB_TOKEN_PARAMETER names a parameter that still holds its placeholder value"
    );
    assert_eq!(deploy(&api, "later-control-token").await.0, 500);
    assert_eq!(
        ssm.reads.load(Ordering::SeqCst),
        1,
        "at most a read a second"
    );

    // The operator puts the real value: the same sandbox picks it up.
    put_secret("/clawdinator/test/later-github", GITHUB_TOKEN).await;
    tokio::time::sleep(SECRETS_RETRY + Duration::from_millis(100)).await;
    let (status, _, body) = deploy(&api, "later-control-token").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 2);
    assert_eq!(received(&github).await.len(), 1);

    // Complete now, so kept: no more reads.
    tokio::time::sleep(SECRETS_RETRY + Duration::from_millis(100)).await;
    assert_eq!(runs(&api, "later-control-token").await, 200);
    assert_eq!(ssm.reads.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn the_lambda_refuses_plain_environment_secrets() {
    let github = github_accepting().await;
    // settings() carries CONTROL_API_TOKEN and GITHUB_TOKEN as plain values, no parameters.
    let api = LazyApp::new(settings(&github.uri(), &[]), Mode::Lambda, offline_sdk());
    let (status, _, body) = deploy(&api, CONTROL_TOKEN).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (500, Some("misconfigured")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "server misconfigured: CONTROL_API_TOKEN is a plain environment value; the Lambda reads secrets only from SSM (name the parameter in the _PARAMETER setting)"
    );
    // The rotation token too, even beside a shared token from SSM.
    put_secret("/clawdinator/test/plain-next-control", "from-ssm").await;
    put_secret("/clawdinator/test/plain-next-github", GITHUB_TOKEN).await;
    let mut with_next = lambda_settings(
        &github.uri(),
        "/clawdinator/test/plain-next-control",
        "/clawdinator/test/plain-next-github",
    );
    with_next.control_token_next = Some("plain-next".to_owned());
    let api = LazyApp::new(with_next, Mode::Lambda, moto_sdk().await);
    for token in ["from-ssm", "plain-next"] {
        let (status, _, body) = deploy(&api, token).await;
        assert_eq!(status, 500, "{body}");
        assert_eq!(
            body["message"],
            "server misconfigured: CONTROL_API_TOKEN_NEXT is a plain environment value; the Lambda reads secrets only from SSM (name the parameter in the _PARAMETER setting)"
        );
    }
    // The same values are fine for the local server.
    let local = app::build(settings(&github.uri(), &[]), Mode::Local)
        .await
        .unwrap();
    let (status, _, body) = deploy(&local, CONTROL_TOKEN).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(received(&github).await.len(), 1);
}

#[test]
fn the_local_server_stops_at_start_up_when_ssm_cannot_be_read() {
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let (code, _, stderr) = control_api(
        &["serve"],
        &[
            ("AWS_ENDPOINT_URL", &closed),
            (
                "CONTROL_API_TOKEN_PARAMETER",
                "/clawdinator/test/control-ok",
            ),
            ("PORT", "0"),
        ],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("cannot read the secrets: AWS SSM GetParameters failed"),
        "{stderr}"
    );
}
