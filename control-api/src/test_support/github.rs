//! A GitHub Actions double on loopback (wiremock) that keeps state like GitHub does: a
//! dispatch it accepts becomes a run in the runs list, named by the workflow's `run-name`,
//! and each run can be read by id with its jobs. Failures are scripted per dispatch.
//! Shared by the control-api and fleet-skill tests.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::{header, header_exists, method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

pub const OWNER_REPO: &str = "openclaw/clawdinators";
pub const GITHUB_TOKEN: &str = "ghp_testGitHubToken0123456789abcdef";
pub const DISPATCH_PATH: &str =
    "/repos/openclaw/clawdinators/actions/workflows/fleet-deploy.yml/dispatches";
pub const RUNS_PATH: &str = "/repos/openclaw/clawdinators/actions/workflows/fleet-deploy.yml/runs";
/// The commit the double's `main` points to.
pub const HEAD_SHA: &str = "5e1ec7ed0000000000000000000000000000c0de";
/// `GET /repos/{owner}/{repo}/commits/{ref}` for the default `GITHUB_REF`.
pub const HEAD_COMMIT_PATH: &str = "/repos/openclaw/clawdinators/commits/main";

/// What GitHub does with one dispatch.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
    /// Whether a run is created anyway (a 5xx or a slow 204 after GitHub took it).
    pub creates_run: bool,
    pub delay: Duration,
}

impl Answer {
    /// Today's GitHub: 200 with the run's details (`return_run_details`), or 204 when
    /// the double was told to be an older GitHub ([`GitHubDouble::answer_204`]).
    pub fn accepted() -> Self {
        Self {
            status: 200,
            body: Value::Null,
            headers: Vec::new(),
            creates_run: true,
            delay: Duration::ZERO,
        }
    }

    pub fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            body: json!({"message": message, "documentation_url": "https://docs.github.com/rest"}),
            headers: Vec::new(),
            creates_run: false,
            delay: Duration::ZERO,
        }
    }

    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    pub fn creating_run(mut self) -> Self {
        self.creates_run = true;
        self
    }

    pub fn delayed(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    pub id: u64,
    pub display_title: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub step: Option<String>,
    /// The branch the run is on: the dispatch's `ref`, or the one a test gave.
    pub head_branch: String,
    /// When it was created: the runs list shows it only [`GitHubDouble::list_runs_after`]
    /// later, as GitHub does.
    pub created: std::time::Instant,
}

#[derive(Default)]
struct State {
    runs: Vec<Run>,
    /// Answers for the next dispatches, in order; then every dispatch is accepted.
    script: VecDeque<Answer>,
    next_id: u64,
    /// Runs finish as soon as they are created (tests that deploy several times in a row
    /// and are not about the in-flight guard).
    instant_runs: bool,
    /// An older GitHub that does not know `return_run_details`: accepted is a bare 204.
    legacy_204: bool,
    /// How long a new run stays out of the runs list (GitHub lists a dispatched run only
    /// seconds later); reading the run by id sees it at once.
    list_delay: Duration,
}

/// The double: a wiremock server with the dispatch, runs, run and jobs endpoints.
#[derive(Clone)]
pub struct GitHubDouble {
    pub server: Arc<MockServer>,
    state: Arc<Mutex<State>>,
}

struct Dispatches(Arc<Mutex<State>>);

impl Respond for Dispatches {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
        let mut state = self.0.lock().unwrap();
        let mut answer = state.script.pop_front().unwrap_or_else(Answer::accepted);
        if !well_formed(&body) {
            return ResponseTemplate::new(422)
                .set_body_json(json!({"message": "Invalid request: inputs must be strings"}));
        }
        if answer.creates_run {
            let id = state.create_run(&body);
            if answer.status == 200 && answer.body.is_null() {
                if state.legacy_204 {
                    answer.status = 204;
                } else {
                    answer.body = json!({
                        "workflow_run_id": id,
                        "run_url": format!("https://api.github.com/repos/{OWNER_REPO}/actions/runs/{id}"),
                        "html_url": format!("https://github.com/{OWNER_REPO}/actions/runs/{id}"),
                    });
                }
            }
        }
        let mut t = ResponseTemplate::new(answer.status).set_delay(answer.delay);
        if !answer.body.is_null() {
            t = t.set_body_json(&answer.body);
        }
        for (k, v) in &answer.headers {
            t = t.insert_header(*k, v.as_str());
        }
        t
    }
}

/// A dispatch as GitHub takes it: string inputs, a full SHA, a known mode.
fn well_formed(body: &Value) -> bool {
    let inputs = &body["inputs"];
    body["ref"].is_string()
        && body["return_run_details"] == Value::Bool(true)
        && ["target", "ami_override", "request_id", "caller"]
            .iter()
            .all(|k| inputs[k].is_string())
        && inputs["revision"].as_str().is_some_and(is_full_sha)
        && matches!(inputs["mode"].as_str(), Some("apply" | "plan"))
}

impl State {
    /// The run a well-formed dispatch starts, named as the workflow's run-name does; its id.
    fn create_run(&mut self, body: &Value) -> u64 {
        let inputs = &body["inputs"];
        self.next_id += 1;
        let id = 9000 + self.next_id;
        // fleet-deploy <target> by <caller> [<request_id>], fleet-plan … for the mode plan.
        let name = match inputs["mode"].as_str() {
            Some("plan") => "fleet-plan",
            _ => "fleet-deploy",
        };
        let title = format!(
            "{name} {} by {} [{}]",
            inputs["target"].as_str().unwrap(),
            inputs["caller"].as_str().unwrap(),
            inputs["request_id"].as_str().unwrap()
        );
        let done = self.instant_runs;
        let git_ref = body["ref"].as_str().unwrap();
        self.runs.push(Run {
            id,
            display_title: title,
            status: if done { "completed" } else { "queued" }.into(),
            conclusion: done.then(|| "success".into()),
            step: None,
            head_branch: git_ref
                .strip_prefix("refs/heads/")
                .unwrap_or(git_ref)
                .to_owned(),
            created: std::time::Instant::now(),
        });
        id
    }
}

/// What the workflow's `revision` input must be: a full commit SHA, lowercase.
fn is_full_sha(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

/// `GET …/commits/{ref}`: the commit JSON, of which the API reads `sha`.
pub fn commit_json(sha: &str) -> Value {
    json!({
        "sha": sha,
        "node_id": "C_kwDOA",
        "url": format!("https://api.github.com/repos/{OWNER_REPO}/commits/{sha}"),
        "html_url": format!("https://github.com/{OWNER_REPO}/commit/{sha}"),
        "commit": {"message": "fleet: registry update"},
        "parents": [],
    })
}

fn run_json(r: &Run) -> Value {
    json!({
        "id": r.id,
        "name": "fleet-deploy",
        "display_title": r.display_title,
        "event": "workflow_dispatch",
        "head_branch": r.head_branch,
        "status": r.status,
        "conclusion": r.conclusion,
        "html_url": format!("https://github.com/{OWNER_REPO}/actions/runs/{}", r.id),
        "path": ".github/workflows/fleet-deploy.yml",
        "created_at": "2026-11-25T10:00:00Z",
        "run_started_at": "2026-11-25T10:00:05Z",
        "updated_at": "2026-11-25T10:03:05Z",
    })
}

struct RunsList(Arc<Mutex<State>>);

impl Respond for RunsList {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let query = |name: &str| {
            request
                .url
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        if query("event").as_deref() != Some("workflow_dispatch") {
            return ResponseTemplate::new(400).set_body_json(json!({"message": "event expected"}));
        }
        // The API must read only runs on its ref: a read without `branch` would see a
        // copy of the workflow on any branch, so it fails the test loudly.
        let Some(branch) = query("branch") else {
            return ResponseTemplate::new(400)
                .set_body_json(json!({"message": "the double requires branch=<GITHUB_REF>"}));
        };
        let per_page: usize = query("per_page").and_then(|p| p.parse().ok()).unwrap_or(30);
        let status = query("status");
        let state = self.0.lock().unwrap();
        let runs: Vec<Value> = state
            .runs
            .iter()
            .rev()
            .filter(|r| r.head_branch == branch)
            .filter(|r| r.created.elapsed() >= state.list_delay)
            .filter(|r| status.as_deref().is_none_or(|s| s == r.status))
            .take(per_page)
            .map(run_json)
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(json!({"total_count": runs.len(), "workflow_runs": runs}))
    }
}

struct OneRun(Arc<Mutex<State>>);

impl Respond for OneRun {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let segments: Vec<&str> = request.url.path().split('/').collect();
        // /repos/o/r/actions/runs/{id}[/jobs]
        let id: u64 = segments.get(6).and_then(|s| s.parse().ok()).unwrap_or(0);
        let jobs = segments.get(7) == Some(&"jobs");
        let state = self.0.lock().unwrap();
        let Some(run) = state.runs.iter().find(|r| r.id == id) else {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        };
        if !jobs {
            return ResponseTemplate::new(200).set_body_json(run_json(run));
        }
        let job_status = if run.status == "completed" {
            "completed"
        } else if run.step.is_some() {
            "in_progress"
        } else {
            "queued"
        };
        let steps: Vec<Value> = run
            .step
            .iter()
            .map(|s| json!({"name": s, "status": "in_progress", "number": 3}))
            .collect();
        ResponseTemplate::new(200).set_body_json(json!({
            "total_count": 1,
            "jobs": [{"id": id * 10, "name": "deploy", "status": job_status, "steps": steps}]
        }))
    }
}

impl std::ops::Deref for GitHubDouble {
    type Target = MockServer;
    fn deref(&self) -> &MockServer {
        &self.server
    }
}

impl GitHubDouble {
    pub async fn start() -> Self {
        let server = MockServer::start().await;
        let state = Arc::new(Mutex::new(State::default()));
        let authed = |m: wiremock::MockBuilder| {
            m.and(header(
                "authorization",
                format!("Bearer {GITHUB_TOKEN}").as_str(),
            ))
            .and(header("accept", "application/vnd.github+json"))
            .and(header("x-github-api-version", "2022-11-28"))
            .and(header_exists("user-agent"))
        };
        authed(Mock::given(method("POST")).and(path(DISPATCH_PATH)))
            .and(header("content-type", "application/json"))
            .respond_with(Dispatches(Arc::clone(&state)))
            .mount(&server)
            .await;
        authed(Mock::given(method("GET")).and(path(HEAD_COMMIT_PATH)))
            .respond_with(ResponseTemplate::new(200).set_body_json(commit_json(HEAD_SHA)))
            .mount(&server)
            .await;
        authed(Mock::given(method("GET")).and(path(RUNS_PATH)))
            .respond_with(RunsList(Arc::clone(&state)))
            .mount(&server)
            .await;
        authed(Mock::given(method("GET")).and(path_regex(
            r"^/repos/openclaw/clawdinators/actions/runs/[0-9]+(/jobs)?$",
        )))
        .respond_with(OneRun(Arc::clone(&state)))
        .mount(&server)
        .await;
        Self {
            server: Arc::new(server),
            state,
        }
    }

    pub fn uri(&self) -> String {
        self.server.uri()
    }

    /// From now on, every run finishes as soon as it is created.
    pub fn finish_runs_at_once(&self) {
        self.state.lock().unwrap().instant_runs = true;
    }

    /// From now on, an accepted dispatch is answered as by a GitHub that does not know
    /// `return_run_details`: 204, no body, and the run must be looked up.
    pub fn answer_204(&self) {
        self.state.lock().unwrap().legacy_204 = true;
    }

    /// From now on, a dispatched run shows in the runs list only `delay` after its
    /// dispatch, as on GitHub (a guard reading the list sees nothing meanwhile).
    pub fn list_runs_after(&self, delay: Duration) {
        self.state.lock().unwrap().list_delay = delay;
    }

    /// The next dispatches get these answers, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Answer>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    /// A run that is already there (started by someone else), on `main`.
    pub fn add_run(&self, title: &str, status: &str) -> u64 {
        self.add_run_on_branch(title, status, "main")
    }

    /// A run of a copy of the workflow on another branch.
    pub fn add_run_on_branch(&self, title: &str, status: &str, branch: &str) -> u64 {
        let mut state = self.state.lock().unwrap();
        state.next_id += 1;
        let id = 9000 + state.next_id;
        // Someone else's run, there before the test looks.
        let created = std::time::Instant::now()
            .checked_sub(state.list_delay)
            .unwrap_or_else(std::time::Instant::now);
        state.runs.push(Run {
            id,
            display_title: title.to_owned(),
            status: status.to_owned(),
            conclusion: None,
            step: None,
            head_branch: branch.to_owned(),
            created,
        });
        id
    }

    /// Moves a run on, as the workflow would.
    pub fn set_run(&self, id: u64, status: &str, conclusion: Option<&str>, step: Option<&str>) {
        let mut state = self.state.lock().unwrap();
        let run = state.runs.iter_mut().find(|r| r.id == id).expect("run");
        run.status = status.to_owned();
        run.conclusion = conclusion.map(str::to_owned);
        run.step = step.map(str::to_owned);
    }

    pub fn runs(&self) -> Vec<Run> {
        self.state.lock().unwrap().runs.clone()
    }

    /// The workflow dispatches GitHub received (whatever it answered), as JSON bodies.
    pub async fn dispatches(&self) -> Vec<Value> {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.method.as_str() == "POST" && r.url.path() == DISPATCH_PATH)
            .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
            .collect()
    }

    /// The `request_id` input of each workflow dispatch GitHub received, in order.
    pub async fn dispatched_request_ids(&self) -> Vec<String> {
        self.dispatches()
            .await
            .iter()
            .map(|d| {
                d["inputs"]["request_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// Reads of the runs list GitHub received after the last dispatch.
    pub async fn runs_reads_after_last_dispatch(&self) -> usize {
        let requests = self.server.received_requests().await.unwrap_or_default();
        let last = requests
            .iter()
            .rposition(|r| r.method.as_str() == "POST" && r.url.path() == DISPATCH_PATH)
            .map_or(0, |i| i + 1);
        requests[last..]
            .iter()
            .filter(|r| r.method.as_str() == "GET" && r.url.path() == RUNS_PATH)
            .count()
    }

    /// Every request GitHub received, reads included.
    pub async fn request_count(&self) -> usize {
        self.server
            .received_requests()
            .await
            .unwrap_or_default()
            .len()
    }
}

/// The production retry and polling shapes, in milliseconds instead of seconds, so a test
/// of "500, then success" or "run not visible yet" takes a moment, not half a minute.
pub fn fast_timing() -> crate::config::Timing {
    use crate::domain::dispatch::DeployTiming;
    use crate::domain::idempotency::ClaimTiming;
    use crate::outbound::github::GitHubTimeouts;
    crate::config::Timing {
        deploy: DeployTiming {
            dispatch_deadline: Duration::from_secs(4),
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            run_visible_within: Duration::from_millis(400),
            run_poll: Duration::from_millis(50),
        },
        claim: ClaimTiming {
            wait_for_first: Duration::from_secs(15),
            poll: Duration::from_millis(50),
        },
        github: GitHubTimeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(2),
        },
    }
}
