//! The deploy workflow on GitHub Actions through octocrab: dispatch, runs list, one run
//! with its jobs. Raw responses, so status codes and rate-limit headers decide what the
//! domain may retry; octocrab's own retries are off (a blind retry could deploy twice).

use std::time::Duration;

use http::header::ACCEPT;
use http::{HeaderMap, StatusCode, Uri};
use octocrab::Octocrab;
use serde::{Deserialize, Serialize};

use crate::config::GitHubSettings;
use crate::domain::dispatch::RunName;
use crate::domain::ports::{
    DeployRequest, DispatchError, DispatchReceipt, RunLink, Workflow, WorkflowError, WorkflowRun,
};
use crate::domain::request::{AmiId, Caller, Revision};

/// The body of `POST …/actions/workflows/{workflow}/dispatches`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DispatchBody<'a> {
    #[serde(rename = "ref")]
    pub git_ref: &'a str,
    pub inputs: WorkflowInputs<'a>,
    /// Always true: GitHub then answers 200 with the run it started, so the run is
    /// known at once instead of being looked for in the runs list. A GitHub that does
    /// not know the parameter answers 204, and the run is looked up by request id.
    pub return_run_details: bool,
}

/// GitHub's 200 answer to a dispatch with `return_run_details`.
#[derive(Debug, Deserialize)]
struct DispatchAnswer {
    workflow_run_id: u64,
    /// The run's page; GitHub's `run_url` is the API address, not for humans.
    html_url: String,
}

/// The `workflow_dispatch` inputs of `fleet-deploy.yml`: all strings, `""` for none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkflowInputs<'a> {
    pub target: &'a str,
    pub ami_override: &'a str,
    pub request_id: &'a str,
    pub caller: &'a str,
    /// The commit to check out; `""` only when none was resolved (the dry run).
    pub revision: &'a str,
    /// `apply` or `plan`: whether the run rolls the hosts or only plans them.
    pub mode: &'a str,
}

impl<'a> WorkflowInputs<'a> {
    pub fn of(request: &'a DeployRequest) -> Self {
        Self {
            target: request.target.as_str(),
            ami_override: request.ami_override.as_ref().map_or("", AmiId::as_str),
            request_id: &request.request_id,
            caller: request.caller.as_ref().map_or("", Caller::as_str),
            revision: request.revision.as_ref().map_or("", Revision::as_str),
            mode: request.mode.as_str(),
        }
    }

    /// The same inputs as a map, for the dry run's answer: a revision it did not
    /// resolve is `null`, not a commit.
    pub fn to_map(&self) -> std::collections::BTreeMap<String, Option<String>> {
        [
            ("target", self.target),
            ("ami_override", self.ami_override),
            ("request_id", self.request_id),
            ("caller", self.caller),
            ("revision", self.revision),
            ("mode", self.mode),
        ]
        .into_iter()
        .map(|(k, v)| {
            let unresolved = k == "revision" && v.is_empty();
            (k.to_owned(), (!unresolved).then(|| v.to_owned()))
        })
        .collect()
    }
}

/// Connect and read timeouts of every GitHub call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GitHubTimeouts {
    pub connect: Duration,
    pub read: Duration,
}

impl Default for GitHubTimeouts {
    fn default() -> Self {
        // Well under the Lambda timeout, so a hung GitHub gives the caller an answer.
        Self {
            connect: Duration::from_secs(3),
            read: Duration::from_secs(8),
        }
    }
}

/// One octocrab client for the life of the process: its connection pool and TLS
/// setup are paid once, not per request.
pub struct GitHubWorkflow {
    client: Octocrab,
    settings: GitHubSettings,
}

impl GitHubWorkflow {
    pub fn new(
        settings: GitHubSettings,
        token: String,
        timeouts: GitHubTimeouts,
    ) -> Result<Self, octocrab::Error> {
        let client = Octocrab::builder()
            .base_uri(settings.api_url.as_str())?
            .personal_token(token)
            .add_header(ACCEPT, "application/vnd.github+json".to_owned())
            .set_connect_timeout(Some(timeouts.connect))
            .set_read_timeout(Some(timeouts.read))
            .set_write_timeout(Some(timeouts.read))
            .build()?;
        Ok(Self { client, settings })
    }

    fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.settings.owner, self.settings.repo)
    }

    /// GET `path` for `call` (named in logs and refusals): `Ok(None)` on 404, the JSON
    /// body on 2xx. Only 5xx and rate limits may be asked again; any other 4xx is final.
    async fn get<T: for<'de> Deserialize<'de>>(
        &self,
        call: &'static str,
        path: String,
    ) -> Result<Option<T>, WorkflowError> {
        let uri: Uri = path.parse().map_err(|_| WorkflowError::Unavailable)?;
        let response = self.client._get(uri).await.map_err(|e| {
            tracing::warn!(call, error = %e, "GitHub request failed");
            WorkflowError::Unavailable
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self.client.body_to_string(response).await.map_err(|e| {
            tracing::warn!(call, error = %e, "GitHub answer unreadable");
            WorkflowError::Unavailable
        })?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            log_refusal(status, &body, call);
            return Err(
                if let Some(retry_after) = rate_limit(status, &headers, &body) {
                    WorkflowError::RateLimited { retry_after }
                } else if status.is_client_error() {
                    WorkflowError::Refused {
                        call,
                        status: status.as_u16(),
                        message: github_message(&body),
                    }
                } else {
                    WorkflowError::Unavailable
                },
            );
        }
        serde_json::from_str(&body).map(Some).map_err(|e| {
            tracing::warn!(call, error = %e, "GitHub answer is not the documented JSON");
            WorkflowError::Unavailable
        })
    }
}

impl Workflow for GitHubWorkflow {
    async fn dispatch(&self, request: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
        let s = &self.settings;
        let path = format!(
            "{}/actions/workflows/{}/dispatches",
            self.repo_path(),
            s.workflow
        );
        let uri: Uri = path
            .parse()
            .map_err(|_| DispatchError::Refused { status: 0 })?;
        let body = DispatchBody {
            git_ref: &s.git_ref,
            inputs: WorkflowInputs::of(request),
            return_run_details: true,
        };
        let response = match self.client._post(uri, Some(&body)).await {
            Ok(r) => r,
            Err(e) if never_sent(&e) => {
                tracing::warn!(request_id = %request.request_id, error = %e, "workflow dispatch: GitHub unreachable");
                return Err(DispatchError::NotSent);
            }
            Err(e) => {
                // Timeout or broken connection: the request may have reached GitHub.
                tracing::warn!(request_id = %request.request_id, error = %e, "workflow dispatch: no answer");
                return Err(DispatchError::Unknown);
            }
        };
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Ok(DispatchReceipt::default());
        }
        if status.is_success() {
            let text = self.client.body_to_string(response).await;
            return Ok(receipt(request, text.as_deref().unwrap_or_default()));
        }
        let headers = response.headers().clone();
        let text = self
            .client
            .body_to_string(response)
            .await
            .unwrap_or_default();
        // GitHub's own words go to the log for the operator, not to the caller.
        log_refusal(status, &text, "the workflow dispatch");
        Err(
            if let Some(retry_after) = rate_limit(status, &headers, &text) {
                DispatchError::RateLimited { retry_after }
            } else if status.is_server_error() {
                DispatchError::Unknown
            } else {
                DispatchError::Refused {
                    status: status.as_u16(),
                }
            },
        )
    }

    async fn runs(
        &self,
        status: Option<&'static str>,
        per_page: u8,
    ) -> Result<Vec<WorkflowRun>, WorkflowError> {
        // Only runs on the ref we dispatch to: a copy of the workflow on another branch
        // (anyone with push access can make one) must not pose as a deploy in flight.
        let mut path = format!(
            "{}/actions/workflows/{}/runs?event=workflow_dispatch&branch={}&per_page={per_page}",
            self.repo_path(),
            self.settings.workflow,
            query_value(branch_of(&self.settings.git_ref))
        );
        if let Some(status) = status {
            path.push_str("&status=");
            path.push_str(status);
        }
        let list: Option<RunList> = self.get("the read of the deploy runs", path).await?;
        let now = chrono::Utc::now();
        Ok(list
            .map(|l| l.workflow_runs)
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.into_run(now, None))
            .collect())
    }

    async fn run(&self, run_id: u64) -> Result<Option<WorkflowRun>, WorkflowError> {
        let base = format!("{}/actions/runs/{run_id}", self.repo_path());
        let Some(run): Option<ApiRun> = self.get("the read of a deploy run", base.clone()).await?
        else {
            return Ok(None);
        };
        // Only runs of the deploy workflow: a run id of another workflow is "not found".
        if let Some(path) = &run.path {
            let file = self.settings.workflow.as_str();
            if (file.ends_with(".yml") || file.ends_with(".yaml"))
                && !path.split('@').next().unwrap_or(path).ends_with(file)
            {
                return Ok(None);
            }
        }
        let step = if run.status.as_deref() == Some("completed") {
            None
        } else {
            let path = format!("{base}/jobs?per_page=30");
            let jobs: Option<JobList> = self.get("the read of a run's jobs", path).await?;
            jobs.and_then(|j| current_step(&j.jobs))
        };
        Ok(Some(run.into_run(chrono::Utc::now(), step)))
    }

    async fn resolve_ref(&self) -> Result<Option<Revision>, WorkflowError> {
        const CALL: &str = "the read of GITHUB_REF's commit";
        let path = format!(
            "{}/commits/{}",
            self.repo_path(),
            path_escape(&self.settings.git_ref)
        );
        let Some(commit): Option<Commit> = self.get(CALL, path).await? else {
            return Err(WorkflowError::Refused {
                call: CALL,
                status: 404,
                message: "no such branch, tag or commit".to_owned(),
            });
        };
        Revision::parse(&commit.sha).map(Some).map_err(|_| {
            tracing::warn!(call = CALL, "GitHub's commit has no full SHA");
            WorkflowError::Unavailable
        })
    }

    fn tracks_runs(&self) -> bool {
        true
    }
}

/// `GET …/commits/{ref}`: only the SHA.
#[derive(Deserialize)]
struct Commit {
    sha: String,
}

/// A ref as one path segment or more: `/` stays (GitHub takes `heads/release/1`),
/// anything outside the URL-safe set is percent-encoded.
fn path_escape(git_ref: &str) -> String {
    let mut out = String::with_capacity(git_ref.len());
    for b in git_ref.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The receipt of a dispatch GitHub accepted with a body: the run it names. A body that
/// is not the documented one still means accepted; the run is then looked up.
fn receipt(request: &DeployRequest, body: &str) -> DispatchReceipt {
    let run = match serde_json::from_str::<DispatchAnswer>(body) {
        Ok(answer) => Some(RunLink {
            run_id: answer.workflow_run_id,
            run_url: answer.html_url,
        }),
        Err(e) => {
            tracing::warn!(request_id = %request.request_id, error = %e, "workflow dispatch accepted without the run's details; looking it up");
            None
        }
    };
    DispatchReceipt { dry_run: None, run }
}

/// Whether the connection itself failed (DNS, refused, TLS handshake): then no byte of
/// the request reached GitHub. Anything later (a timeout waiting for the answer) is unknown.
fn never_sent(e: &octocrab::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(client) = err.downcast_ref::<hyper_util::client::legacy::Error>() {
            return client.is_connect();
        }
        source = err.source();
    }
    false
}

/// A rate limit, as GitHub documents it: 429, or 403 with `retry-after`, with
/// `x-ratelimit-remaining: 0`, or with the secondary-rate-limit message.
/// `Some(wait)` if so, with the wait GitHub asked for when it said.
fn rate_limit(status: StatusCode, headers: &HeaderMap, body: &str) -> Option<Option<Duration>> {
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    let retry_after = number("retry-after").map(Duration::from_secs);
    let exhausted = number("x-ratelimit-remaining") == Some(0);
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (retry_after.is_some()
                || exhausted
                || body.to_ascii_lowercase().contains("rate limit")));
    if !limited {
        return None;
    }
    let until_reset = || {
        let reset = number("x-ratelimit-reset")?;
        let now = u64::try_from(chrono::Utc::now().timestamp()).ok()?;
        Some(Duration::from_secs(reset.saturating_sub(now).max(1)))
    };
    Some(retry_after.or_else(|| if exhausted { until_reset() } else { None }))
}

/// Longest part of GitHub's `message` that a refusal repeats.
const MAX_GITHUB_MESSAGE: usize = 160;

/// GitHub's `message` from an error body, fit for an answer: one line, at most
/// [`MAX_GITHUB_MESSAGE`] characters, and any word shaped like a GitHub token blanked
/// (GitHub does not echo tokens, but a proxy in between might).
fn github_message(body: &str) -> String {
    #[derive(Deserialize)]
    struct GitHubMessage {
        message: Option<String>,
    }
    let message = serde_json::from_str::<GitHubMessage>(body)
        .ok()
        .and_then(|m| m.message)
        .unwrap_or_else(|| "no message".to_owned());
    let words: Vec<&str> = message
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .map(|w| if looks_like_token(w) { "[redacted]" } else { w })
        .collect();
    let line = words.join(" ");
    if line.chars().count() <= MAX_GITHUB_MESSAGE {
        return line;
    }
    let mut short: String = line.chars().take(MAX_GITHUB_MESSAGE).collect();
    short.push('…');
    short
}

/// GitHub's token prefixes (classic, OAuth, app, refresh, fine-grained).
fn looks_like_token(word: &str) -> bool {
    [
        "ghp_",
        "gho_",
        "ghu_",
        "ghs_",
        "ghr_",
        "github_pat_",
        "Bearer",
    ]
    .iter()
    .any(|p| word.contains(p))
}

/// The log line of a GitHub refusal: which call, GitHub's status and its own words.
fn log_refusal(status: StatusCode, body: &str, call: &str) {
    #[derive(Deserialize)]
    struct GitHubDocs {
        documentation_url: Option<String>,
    }
    let docs: Option<GitHubDocs> = serde_json::from_str(body).ok();
    tracing::warn!(
        call,
        status = status.as_u16(),
        github_message = %github_message(body),
        documentation_url = docs.as_ref().and_then(|m| m.documentation_url.as_deref()),
        "GitHub refused the request"
    );
}

/// The branch name GitHub's runs filter takes: `GITHUB_REF` may be written `refs/heads/x`.
fn branch_of(git_ref: &str) -> &str {
    git_ref.strip_prefix("refs/heads/").unwrap_or(git_ref)
}

/// Percent-encodes a query value: a branch may hold `&`, `+`, `#` or `%`.
fn query_value(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `GET …/runs`: only the fields used.
#[derive(Deserialize)]
struct RunList {
    #[serde(default)]
    workflow_runs: Vec<ApiRun>,
}

#[derive(Deserialize)]
struct ApiRun {
    id: u64,
    html_url: String,
    /// The run name (`run-name:`); older GitHub answers lack it, `name` is the workflow's.
    display_title: Option<String>,
    status: Option<String>,
    conclusion: Option<String>,
    run_started_at: Option<String>,
    created_at: Option<String>,
    updated_at: Option<String>,
    path: Option<String>,
}

impl ApiRun {
    fn into_run(self, now: chrono::DateTime<chrono::Utc>, step: Option<String>) -> WorkflowRun {
        let name = RunName::parse(self.display_title.as_deref().unwrap_or_default());
        let status = self.status.unwrap_or_else(|| "unknown".to_owned());
        let started = self.run_started_at.or(self.created_at);
        let parse = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&chrono::Utc))
        };
        let end = if status == "completed" {
            parse(&self.updated_at)
        } else {
            Some(now)
        };
        let duration_secs = parse(&started)
            .zip(end)
            .and_then(|(s, e)| u64::try_from((e - s).num_seconds()).ok());
        WorkflowRun {
            run_id: self.id,
            run_url: self.html_url,
            request_id: name.request_id,
            mode: name.mode,
            target: name.target,
            caller: name.caller,
            status,
            conclusion: self.conclusion,
            started,
            duration_secs,
            step,
            summary: None,
        }
    }
}

#[derive(Deserialize)]
struct JobList {
    #[serde(default)]
    jobs: Vec<Job>,
}

#[derive(Deserialize)]
struct Job {
    name: String,
    status: String,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Deserialize)]
struct Step {
    name: String,
    status: String,
}

/// The step running now: the first in-progress step of the first in-progress job, else
/// that job's name, else the first queued job's name.
fn current_step(jobs: &[Job]) -> Option<String> {
    if let Some(job) = jobs.iter().find(|j| j.status == "in_progress") {
        return Some(
            job.steps
                .iter()
                .find(|s| s.status == "in_progress")
                .map_or_else(|| job.name.clone(), |s| s.name.clone()),
        );
    }
    jobs.iter()
        .find(|j| j.status != "completed")
        .map(|j| j.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rate_limits_as_github_documents_them() {
        let none = HeaderMap::new();
        assert_eq!(
            rate_limit(
                StatusCode::TOO_MANY_REQUESTS,
                &headers(&[("retry-after", "7")]),
                ""
            ),
            Some(Some(Duration::from_secs(7)))
        );
        assert_eq!(
            rate_limit(StatusCode::TOO_MANY_REQUESTS, &none, ""),
            Some(None)
        );
        assert_eq!(
            rate_limit(
                StatusCode::FORBIDDEN,
                &none,
                r#"{"message":"You have exceeded a secondary rate limit."}"#
            ),
            Some(None)
        );
        assert!(rate_limit(
            StatusCode::FORBIDDEN,
            &headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]),
            ""
        )
        .is_some());
        // A plain 403 (no permission) is not a rate limit: it is final.
        assert_eq!(
            rate_limit(
                StatusCode::FORBIDDEN,
                &none,
                r#"{"message":"Resource not accessible by personal access token"}"#
            ),
            None
        );
        assert_eq!(rate_limit(StatusCode::BAD_GATEWAY, &none, ""), None);
    }

    #[test]
    fn the_runs_filter_names_the_branch_encoded() {
        assert_eq!(branch_of("refs/heads/main"), "main");
        assert_eq!(branch_of("release/1.2"), "release/1.2");
        assert_eq!(query_value("fix/a&b+c#d"), "fix/a%26b%2Bc%23d");
    }

    #[test]
    fn github_messages_are_one_short_line_without_tokens() {
        assert_eq!(
            github_message(r#"{"message":"Bad credentials"}"#),
            "Bad credentials"
        );
        assert_eq!(github_message("<html>"), "no message");
        let noisy = json!({"message": "token ghp_abc123 is\nrevoked"}).to_string();
        assert_eq!(github_message(&noisy), "token [redacted] is revoked");
        let long = json!({"message": "x".repeat(500)}).to_string();
        assert_eq!(
            github_message(&long).chars().count(),
            MAX_GITHUB_MESSAGE + 1
        );
    }

    #[test]
    fn the_current_step_is_the_running_one() {
        let jobs: JobList = serde_json::from_value(json!({"jobs": [
            {"name": "deploy all", "status": "in_progress", "steps": [
                {"name": "Checkout", "status": "completed"},
                {"name": "Apply clawdinator-2", "status": "in_progress"},
                {"name": "Summary", "status": "queued"}
            ]}
        ]}))
        .unwrap();
        assert_eq!(
            current_step(&jobs.jobs).as_deref(),
            Some("Apply clawdinator-2")
        );
        let queued: JobList =
            serde_json::from_value(json!({"jobs": [{"name": "deploy all", "status": "queued"}]}))
                .unwrap();
        assert_eq!(current_step(&queued.jobs).as_deref(), Some("deploy all"));
        assert_eq!(current_step(&[]), None);
    }
}
