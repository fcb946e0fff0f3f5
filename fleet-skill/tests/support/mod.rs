//! Test parts: the real control API in-process, GitHub as a wiremock double, a recording proxy, the real `fleet` binary.
//!
//! Requests from `fleet` go through a byte-for-byte TCP proxy (which only records what
//! passes) to `control_api::inbound::local::serve` running the real handler in
//! `Mode::Local`, with GitHub as a double. The one exception is [`ApiDouble`]: answers
//! the real API only gives in states that are slow or awkward to reach (a run in
//! progress, a refusal in flight, a rollback), so for them the API is a wiremock double
//! that answers only the exact bodies the contract's `Request` serializes to, with
//! answers built from the contract's types.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use control_api::config::{Mode, Settings};
use control_api::contract::{self, Request};
use serde::Serialize;
use serde_json::Value;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockServer, Request as Received, Respond, ResponseTemplate};

/// Distinctive, so a leak is found by plain substring search.
pub const CONTROL_TOKEN: &str = "tok-FLEETTEST-7f3a9c1e5b";
/// The stateful GitHub double the control API's own tests use: dispatches become runs.
#[allow(unused_imports)]
pub use control_api::test_support::github::{
    self as github_double, Answer, GitHubDouble, DISPATCH_PATH, GITHUB_TOKEN,
};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "fleet-skill-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One request as it crossed the wire.
#[derive(Debug, Clone)]
pub struct RawRequest {
    pub method: String,
    pub target: String,
    /// Names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawRequest {
    pub fn parse(bytes: &[u8]) -> Self {
        let split = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete request head");
        let head = String::from_utf8(bytes[..split].to_vec()).expect("ASCII head");
        let mut lines = head.split("\r\n");
        let mut request_line = lines.next().unwrap().split(' ');
        let method = request_line.next().unwrap().to_owned();
        let target = request_line.next().unwrap().to_owned();
        let headers = lines
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_ascii_lowercase(), v.trim().to_owned())
            })
            .collect();
        Self {
            method,
            target,
            headers,
            body: bytes[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    /// The body as the API reads it.
    pub fn request(&self) -> Request {
        contract::parse_command(&self.body).expect("a request the API parses")
    }
}

/// The bytes one connection sent, appended as they pass.
type Recording = Arc<Mutex<Vec<u8>>>;

/// A TCP proxy that forwards bytes unchanged and records each connection's request side.
pub struct RecordingProxy {
    pub addr: SocketAddr,
    connections: Arc<Mutex<Vec<Recording>>>,
}

impl RecordingProxy {
    pub fn start(upstream: SocketAddr) -> Self {
        Self::start_dropping(upstream, &[])
    }

    /// Like [`RecordingProxy::start`], but the connections numbered in `drop` (from 0)
    /// are read in full and then hung up on, unanswered and never forwarded: a network
    /// failure after the request was sent.
    pub fn start_dropping(upstream: SocketAddr, drop: &[usize]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections: Arc<Mutex<Vec<Recording>>> = Arc::default();
        let conns = Arc::clone(&connections);
        let drop = drop.to_vec();
        // The accept thread lives as long as the test process; each test has its own port.
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let record = Arc::new(Mutex::new(Vec::new()));
                let number = {
                    let mut conns = conns.lock().unwrap();
                    conns.push(Arc::clone(&record));
                    conns.len() - 1
                };
                if drop.contains(&number) {
                    thread::spawn(move || {
                        client
                            .set_read_timeout(Some(Duration::from_secs(5)))
                            .unwrap();
                        let request = read_request(&mut client);
                        record.lock().unwrap().extend_from_slice(&request);
                        let _ = client.shutdown(Shutdown::Both);
                    });
                } else {
                    thread::spawn(move || forward(client, upstream, record));
                }
            }
        });
        Self { addr, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn connection_count(&self) -> usize {
        self.connections.lock().unwrap().len()
    }

    /// Every request that came through, parsed (one per connection: `fleet` sends one).
    pub fn requests(&self) -> Vec<RawRequest> {
        self.connections
            .lock()
            .unwrap()
            .iter()
            .map(|r| RawRequest::parse(&r.lock().unwrap()))
            .collect()
    }
}

fn forward(mut client: TcpStream, upstream: SocketAddr, record: Recording) {
    let Ok(mut server) = TcpStream::connect(upstream) else {
        return;
    };
    let (mut client_r, mut server_w) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let up = thread::spawn(move || {
        let mut buf = [0u8; 8192];
        loop {
            match client_r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // Recorded before it is forwarded, so it is complete once answered.
                    record.lock().unwrap().extend_from_slice(&buf[..n]);
                    if server_w.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = server_w.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut server, &mut client);
    let _ = client.shutdown(Shutdown::Both);
    let _ = up.join();
}

/// How the GitHub double answers the workflow dispatch.
#[derive(Debug, Clone, Copy)]
pub enum GitHub {
    Accepts,
    Fails(u16),
    /// No `GITHUB_TOKEN`: the local server's dry run, which dispatches nothing.
    Absent,
}

/// The real control API (local server, real handler) with GitHub as a double, behind a
/// recording proxy, plus the files a `fleet` run reads.
pub struct Harness {
    // Dropping the runtime stops the server and the GitHub double.
    runtime: tokio::runtime::Runtime,
    pub github: GitHubDouble,
    pub api_addr: SocketAddr,
    pub proxy: RecordingProxy,
    pub dir: TempDir,
}

impl Harness {
    pub fn start(github: GitHub) -> Self {
        Self::start_with(github, None)
    }

    /// With `registry` (JSON), the API reads that registry instead of the embedded one,
    /// as a deployed API would after an instance was added.
    pub fn start_with(github: GitHub, registry: Option<&str>) -> Self {
        Self::start_full(github, registry, None, &[])
    }

    /// The API reading AWS from the moto server that `scripts/with-moto` started, with
    /// extra API settings (e.g. its own fleet tag value).
    pub fn start_on_moto(extra: &[(&'static str, &str)]) -> Self {
        let endpoint = std::env::var("AWS_ENDPOINT_URL").expect(
            "status tests run against moto: use `scripts/with-moto cargo test` (scripts/test does)",
        );
        assert!(
            endpoint.starts_with("http://127.0.0.1:"),
            "only a loopback emulator, not {endpoint}"
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sdk = rt.block_on(control_api::outbound::aws::load_sdk_config());
        Self::start_full(GitHub::Accepts, None, Some(sdk), extra)
    }

    fn start_full(
        github: GitHub,
        registry: Option<&str>,
        sdk: Option<aws_config::SdkConfig>,
        extra: &[(&'static str, &str)],
    ) -> Self {
        let dir = TempDir::new("harness");
        dir.write("token", &format!("{CONTROL_TOKEN}\n"));
        std::fs::create_dir_all(dir.path().join("agenix")).unwrap();
        let registry_path = registry.map(|json| dir.write("instances.json", json));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (mock, api_addr) = runtime.block_on(async {
            let mock = GitHubDouble::start().await;
            // The CLI's tests deploy several times in a row; the guard has its own tests.
            mock.finish_runs_at_once();
            if let GitHub::Fails(status) = github {
                mock.script(std::iter::repeat_n(
                    Answer::error(status, "Server Error"),
                    1000,
                ));
            }
            let mut env = vec![
                ("CONTROL_API_TOKEN", CONTROL_TOKEN.to_owned()),
                ("GITHUB_API_URL", mock.uri()),
            ];
            if !matches!(github, GitHub::Absent) {
                env.push(("GITHUB_TOKEN", GITHUB_TOKEN.to_owned()));
            }
            if let Some(p) = &registry_path {
                env.push(("FLEET_REGISTRY", p.to_str().unwrap().to_owned()));
            }
            env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
            let mut settings = Settings::from_lookup(|k| {
                env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
            })
            .unwrap();
            settings.timing = github_double::fast_timing();
            let app = Arc::new(
                control_api::app::build_with(
                    settings,
                    Mode::Local,
                    &sdk.unwrap_or_else(offline_aws),
                )
                .unwrap(),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(control_api::inbound::local::serve(
                app,
                listener,
                std::future::pending(),
            ));
            (mock, addr)
        });
        let proxy = RecordingProxy::start(api_addr);
        Self {
            runtime,
            github: mock,
            api_addr,
            proxy,
            dir,
        }
    }

    /// `fleet` with a clean environment pointed at this harness: the proxy URL, the right
    /// token in a file, no instance name, no AWS credentials.
    pub fn fleet(&self) -> Fleet {
        fleet_at(&self.proxy.url(), self.dir.path())
    }

    /// Makes this "host" the given fleet instance (the caller default).
    pub fn set_instance_name(&self, name: &str) {
        self.dir.write("instance-name", &format!("{name}\n"));
    }

    /// The workflow dispatches GitHub received, as their JSON bodies.
    pub fn dispatches(&self) -> Vec<Value> {
        self.runtime.block_on(self.github.dispatches())
    }
}

/// The control API as a wiremock double behind a [`RecordingProxy`], with the files a
/// `fleet` run reads. Each answer is mounted for one exact request body and the control
/// token; deploys and rollbacks must also carry a UUID v4 `Idempotency-Key`, every other
/// action none. A request nobody mounted gets wiremock's empty 404, which `fleet` takes
/// for a broken answer (exit 3), so a wrong body cannot pass unnoticed.
pub struct ApiDouble {
    runtime: tokio::runtime::Runtime,
    pub server: MockServer,
    pub proxy: RecordingProxy,
    pub dir: TempDir,
}

impl ApiDouble {
    pub fn start() -> Self {
        Self::start_dropping(&[])
    }

    /// The proxy hangs up on the connections numbered in `drop` (see
    /// [`RecordingProxy::start_dropping`]).
    pub fn start_dropping(drop: &[usize]) -> Self {
        let dir = TempDir::new("double");
        dir.write("token", &format!("{CONTROL_TOKEN}\n"));
        std::fs::create_dir_all(dir.path().join("agenix")).unwrap();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let server = runtime.block_on(MockServer::start());
        let proxy = RecordingProxy::start_dropping(*server.address(), drop);
        Self {
            runtime,
            server,
            proxy,
            dir,
        }
    }

    /// Answers `request` (as its exact JSON) with `answers` in turn (status, JSON body);
    /// the last one repeats.
    pub fn on(&self, request: Request, answers: &[(u16, Value)]) {
        let keyed = request.deploys();
        let body = serde_json::to_value(&request).unwrap();
        let mock = Mock::given(method("POST"))
            .and(path("/"))
            .and(header(
                "authorization",
                format!("Bearer {CONTROL_TOKEN}").as_str(),
            ))
            .and(header("content-type", "application/json"))
            .and(IdempotencyKey(keyed))
            .and(body_json(body))
            .respond_with(InTurn::new(answers));
        self.runtime.block_on(mock.mount(&self.server));
    }

    /// `fleet` with a clean environment pointed at this double, as [`Harness::fleet`].
    pub fn fleet(&self) -> Fleet {
        fleet_at(&self.proxy.url(), self.dir.path())
    }

    /// The environment [`ApiDouble::fleet`] sets, for calling `fleet_skill::run` in-process.
    pub fn env(&self) -> Vec<(String, String)> {
        let path = |name: &str| self.dir.path().join(name).to_str().unwrap().to_owned();
        vec![
            ("FLEET_CONTROL_URL".into(), self.proxy.url()),
            ("FLEET_CONTROL_TOKEN_FILE".into(), path("token")),
            ("FLEET_INSTANCE_NAME_FILE".into(), path("instance-name")),
            ("FLEET_AGENIX_DIR".into(), path("agenix")),
        ]
    }

    pub fn set_instance_name(&self, name: &str) {
        self.dir.write("instance-name", &format!("{name}\n"));
    }

    /// Every request that reached the proxy, answered or dropped, in order.
    pub fn requests(&self) -> Vec<RawRequest> {
        self.proxy.requests()
    }
}

/// A contract answer as the JSON the double sends.
pub fn json_of(answer: &impl Serialize) -> Value {
    serde_json::to_value(answer).unwrap()
}

/// Present and a UUID v4 (`true`), or absent (`false`).
struct IdempotencyKey(bool);

impl Match for IdempotencyKey {
    fn matches(&self, request: &Received) -> bool {
        match request.headers.get(contract::IDEMPOTENCY_KEY_HEADER) {
            None => !self.0,
            Some(key) => self.0 && key.to_str().is_ok_and(is_uuid_v4),
        }
    }
}

/// Canned answers given in turn; the last one repeats.
struct InTurn {
    answers: Vec<ResponseTemplate>,
    next: AtomicUsize,
}

impl InTurn {
    fn new(answers: &[(u16, Value)]) -> Self {
        assert!(!answers.is_empty());
        Self {
            answers: answers
                .iter()
                .map(|(status, body)| ResponseTemplate::new(*status).set_body_json(body))
                .collect(),
            next: AtomicUsize::new(0),
        }
    }
}

impl Respond for InTurn {
    fn respond(&self, _: &Received) -> ResponseTemplate {
        let i = self.next.fetch_add(1, Ordering::SeqCst);
        self.answers[i.min(self.answers.len() - 1)].clone()
    }
}

pub fn is_uuid_v4(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b[14] == b'4'
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
        })
}

/// A `fleet` invocation with an empty environment plus what the test sets.
pub struct Fleet {
    cmd: Command,
}

/// What a finished `fleet` run left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub args: Vec<String>,
}

impl Fleet {
    pub fn new() -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fleet"));
        // Nothing from the developer's shell or CI (AWS keys, proxies) may change a run.
        cmd.env_clear().stdin(Stdio::null());
        Self { cmd }
    }

    pub fn env(&mut self, k: &str, v: &str) -> &mut Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(&mut self, k: &str) -> &mut Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn run(&mut self, args: &[&str]) -> Run {
        self.cmd.args(args);
        let argv: Vec<String> = self
            .cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let out = self.cmd.output().expect("run fleet");
        Run {
            code: out.status.code().expect("fleet exited, not killed"),
            stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
            args: argv,
        }
    }
}

impl Default for Fleet {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers an image in moto tagged `<tag_key>=true`, as a fleet image the API accepts
/// as `ami_override` when started with `FLEET_IMAGE_TAG_KEY=<tag_key>`.
pub fn moto_fleet_image(tag_key: &str) -> String {
    use control_api::test_support::local_fleet::register_image;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&control_api::outbound::aws::load_sdk_config().await);
        let name = format!("clawdinator-nixos-{tag_key}");
        register_image(&ec2, &name, Some((tag_key, "true")))
            .await
            .unwrap()
    })
}

/// AWS for the in-process API: dummy credentials and every endpoint on a closed loopback
/// port, without retries, so any AWS call (status) fails at once instead of reaching out.
pub fn offline_aws() -> aws_config::SdkConfig {
    use aws_config::{retry::RetryConfig, BehaviorVersion, Region};
    use aws_credential_types::{provider::SharedCredentialsProvider, Credentials};
    aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(format!("http://127.0.0.1:{}", closed_port()))
        .http_client(control_api::aws_http::https_client())
        .retry_config(RetryConfig::disabled())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "tests",
        )))
        .build()
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A one-shot raw HTTP peer: accepts connections, reads the request, then either answers
/// `answer` verbatim or, with `None`, hangs up without a word. Counts connections.
pub struct RawPeer {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
}

impl RawPeer {
    pub fn start(answer: Option<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&connections);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                read_request(&mut stream);
                if let Some(answer) = answer {
                    let _ = stream.write_all(answer.as_bytes());
                }
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        Self { addr, connections }
    }

    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and Content-Length body), so the client has fully sent it.
fn read_request(stream: &mut TcpStream) -> Vec<u8> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return data,
            Ok(n) => n,
        };
        data.extend_from_slice(&buf[..n]);
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + len {
                return data;
            }
        }
    }
}

/// `fleet` with a clean environment: `url` as the control API, the token file, instance
/// name and agenix directory under `dir`, no AWS credentials.
fn fleet_at(url: &str, dir: &Path) -> Fleet {
    let mut f = Fleet::new();
    f.env("FLEET_CONTROL_URL", url)
        .env(
            "FLEET_CONTROL_TOKEN_FILE",
            dir.join("token").to_str().unwrap(),
        )
        .env(
            "FLEET_INSTANCE_NAME_FILE",
            dir.join("instance-name").to_str().unwrap(),
        )
        .env("FLEET_AGENIX_DIR", dir.join("agenix").to_str().unwrap());
    f
}
