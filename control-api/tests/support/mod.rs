//! Shared test parts: the GitHub double on loopback, the app wired to it, the real local server.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use control_api::app::{self, App};
use control_api::config::{Mode, Settings};
use serde_json::Value;
use wiremock::matchers::{header, header_exists, method, path};
use wiremock::{Mock, MockServer};

#[allow(unused_imports)]
pub use control_api::test_support::github::{
    self, commit_json, fast_timing, Answer, GitHubDouble, DISPATCH_PATH, GITHUB_TOKEN, HEAD_SHA,
    RUNS_PATH,
};

pub const CONTROL_TOKEN: &str = "test-control-token";

/// Settings as the Lambda would read them, with GitHub at `github_url`.
pub fn settings(github_url: &str, extra: &[(&str, &str)]) -> Settings {
    let mut env: Vec<(String, String)> = vec![
        ("CONTROL_API_TOKEN".into(), CONTROL_TOKEN.into()),
        ("GITHUB_TOKEN".into(), GITHUB_TOKEN.into()),
        ("GITHUB_API_URL".into(), github_url.into()),
    ];
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let mut settings = Settings::from_lookup(|k| {
        env.iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    settings.timing = fast_timing();
    settings
}

/// AWS settings that never reach out: a fixed region, dummy credentials, no IMDS, and
/// every endpoint on a closed loopback port, so a call AWS was not expected to get fails
/// at once. Tests that talk to AWS use [`moto_sdk`] instead.
pub fn offline_sdk() -> aws_config::SdkConfig {
    let closed = closed_port();
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{closed}"))
        .http_client(control_api::aws_http::https_client())
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "tests"),
            ),
        )
        .build()
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Puts (or overwrites) a SecureString parameter in the SSM behind `sdk`.
pub async fn put_secret_on(sdk: &aws_config::SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
}

/// [`put_secret_on`] the moto server that `scripts/with-moto` started.
pub async fn put_secret(name: &str, value: &str) {
    put_secret_on(&moto_sdk().await, name, value).await;
}

/// Whatever a child that has exited wrote to its (piped) stderr, for a failure message.
pub fn stderr_of(child: &mut Child) -> String {
    let mut err = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        stderr.read_to_string(&mut err).unwrap();
    }
    err
}

/// The SDK pointed at the moto server that `scripts/with-moto` started.
pub async fn moto_sdk() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS tests run against moto: use `scripts/with-moto cargo test` (scripts/test does)",
    );
    assert!(
        endpoint.starts_with("http://127.0.0.1:"),
        "AWS tests only talk to a loopback emulator, not {endpoint}"
    );
    // moto in Python on a shared 2-core runner answers far slower than AWS: the product's
    // per-call limits stay in the product, the tests give the emulator room.
    control_api::outbound::aws::load_sdk_config()
        .await
        .into_builder()
        .timeout_config(
            aws_config::timeout::TimeoutConfig::builder()
                .connect_timeout(std::time::Duration::from_secs(5))
                .operation_timeout(std::time::Duration::from_secs(60))
                .build(),
        )
        .build()
}

pub fn tag(key: &str, value: &str) -> aws_sdk_ec2::types::Tag {
    aws_sdk_ec2::types::Tag::builder()
        .key(key)
        .value(value)
        .build()
}

pub async fn ec2() -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&moto_sdk().await)
}

/// Starts `count` instances in one reservation with the fleet tag and a Name.
pub async fn run(
    ec2: &aws_sdk_ec2::Client,
    fleet: &str,
    name: &str,
    ami: &str,
    ty: &str,
    count: i32,
) -> Vec<String> {
    let mut tags = vec![tag("app", fleet)];
    if !name.is_empty() {
        tags.push(tag("Name", name));
    }
    let out = ec2
        .run_instances()
        .image_id(ami)
        .instance_type(aws_sdk_ec2::types::InstanceType::from(ty))
        .min_count(count)
        .max_count(count)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                .set_tags(Some(tags))
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.instances()
        .iter()
        .map(|i| i.instance_id().unwrap().to_owned())
        .collect()
}

/// Registers an image in moto, tagged `<tag_key>=true` when a key is given; returns its
/// id and the snapshot behind it.
pub async fn register_image(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    tag_key: Option<&str>,
) -> (String, String) {
    let image_tag = tag_key.map(|key| (key, "true"));
    let id = control_api::test_support::local_fleet::register_image(ec2, name, image_tag)
        .await
        .unwrap();
    let described = ec2.describe_images().image_ids(&id).send().await.unwrap();
    let snapshot = described.images()[0].block_device_mappings()[0]
        .ebs()
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned();
    (id, snapshot)
}

pub fn app_with(settings: Settings, mode: Mode) -> App {
    app::build_with(settings, mode, &offline_sdk()).unwrap()
}

/// One request with the shared token through the Lambda handler, as a Function URL
/// event: its status and JSON body, whatever they are.
pub async fn lambda_post(api: &App, body: Value) -> (u16, Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.us-east-1.on.aws/")
        .header("authorization", format!("Bearer {CONTROL_TOKEN}"))
        .body(lambda_http::Body::from(body.to_string()))
        .unwrap();
    let resp = control_api::inbound::lambda::handle(api, req)
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (
        status,
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

pub fn lambda_app(github_url: &str) -> App {
    app_with(settings(github_url, &[]), Mode::Lambda)
}

/// A dispatch endpoint that checks what GitHub's docs require of the request.
pub fn dispatch_endpoint() -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(DISPATCH_PATH))
        .and(header(
            "authorization",
            format!("Bearer {GITHUB_TOKEN}").as_str(),
        ))
        .and(header("accept", "application/vnd.github+json"))
        .and(header("x-github-api-version", "2022-11-28"))
        .and(header("content-type", "application/json"))
        .and(header_exists("user-agent"))
}

/// `GET /repos/{owner}/{repo}/commits/{ref}` on a bare double: every ref is [`HEAD_SHA`].
pub async fn mount_head_commit(server: &MockServer) {
    Mock::given(method("GET"))
        .and(wiremock::matchers::path_regex(
            r"^/repos/[^/]+/[^/]+/commits/.+$",
        ))
        .respond_with(wiremock::ResponseTemplate::new(200).set_body_json(commit_json(HEAD_SHA)))
        .mount(server)
        .await;
}

/// GitHub accepting every dispatch, with runs that show up at once.
pub async fn github_accepting() -> GitHubDouble {
    GitHubDouble::start().await
}

/// Every workflow dispatch GitHub received, as (path, JSON body).
pub async fn received(server: &MockServer) -> Vec<(String, Value)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path().ends_with("/dispatches"))
        .map(|r| {
            (
                r.url.path().to_owned(),
                serde_json::from_slice(&r.body).unwrap_or(Value::Null),
            )
        })
        .collect()
}

/// Every request GitHub received, reads included.
pub async fn github_calls(server: &MockServer) -> usize {
    server.received_requests().await.unwrap_or_default().len()
}

/// Runs the real `control-api` binary to completion: exit code, stdout, stderr.
pub fn control_api(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_control-api"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run control-api");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The real `control-api serve` binary on a free port, with its output collected.
pub struct LocalServer {
    child: Child,
    pub url: String,
    pub banner: Vec<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

impl LocalServer {
    pub fn start(env: &[(&str, &str)]) -> Self {
        Self::start_with(&["serve"], env)
    }

    /// `control-api ARGS` (a `serve`), until its banner is printed.
    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_control-api"));
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        for var in [
            "CONTROL_API_TOKEN",
            "GITHUB_TOKEN",
            "GITHUB_API_URL",
            "GITHUB_REPO",
            "GITHUB_WORKFLOW",
            "GITHUB_REF",
            "FLEET_REGISTRY",
            "RUST_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PORT", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start control-api serve");
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = Vec::new();
        let mut url = None;
        // The banner ends with the "try:" line, or the local fleet's "Ctrl-C" line.
        loop {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap() == 0 {
                let err = stderr_of(&mut child);
                panic!("control-api serve exited early: {banner:?} {err}");
            }
            let line = line.trim_end().to_owned();
            if let Some(rest) = line.strip_prefix("control-api listening on ") {
                url = rest.split_whitespace().next().map(str::to_owned);
            }
            let done = line.starts_with("try:") || line.starts_with("Ctrl-C");
            banner.push(line);
            if done {
                break;
            }
        }
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        drain(out, Arc::clone(&stdout));
        drain(
            BufReader::new(child.stderr.take().unwrap()),
            Arc::clone(&stderr),
        );
        Self {
            child,
            url: url.expect("listening line in banner"),
            banner,
            stdout,
            stderr,
        }
    }

    /// POSTs `body` with the given headers; returns status and parsed JSON body.
    pub fn post(&self, headers: &[(&str, &str)], body: &str) -> (u16, Value) {
        let agent = agent();
        let mut req = agent
            .post(&self.url)
            .header("content-type", "application/json");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut resp = req.send(body).expect("request");
        (resp.status().as_u16(), json_body(&mut resp))
    }

    /// Stops the server with SIGTERM (so logs flush) and returns (stdout, stderr).
    pub fn stop(mut self) -> (String, String) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "control-api serve exited with {status}");
        std::thread::sleep(Duration::from_millis(50));
        let out = self.stdout.lock().unwrap().clone();
        let err = self.stderr.lock().unwrap().clone();
        (out, err)
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn drain(mut r: impl BufRead + Send + 'static, into: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut line = String::new();
        while r.read_line(&mut line).unwrap_or(0) > 0 {
            into.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
}

/// A moto of a test's own (`MOTO_SERVER`, exported by scripts/with-moto) on a free
/// loopback port, for a test that must not share the suite's emulator; killed on drop.
pub struct OwnMoto {
    child: Child,
    pub url: String,
}

impl OwnMoto {
    pub fn start() -> Self {
        let server = std::env::var("MOTO_SERVER").expect("run under scripts/with-moto");
        let port = closed_port();
        let child = Command::new(server)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let moto = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("moto on {port} did not start");
    }
}

impl Drop for OwnMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client that returns 4xx/5xx as responses, not errors.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(20)))
        .build()
        .into()
}

pub fn json_body(resp: &mut ureq::http::Response<ureq::Body>) -> Value {
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("response is not JSON: {text:?}"))
}
