//! Answers: the error catalogue with status codes and stable codes, and the JSON reply.

use serde_json::{json, Value};

use super::auth::AuthError;
use super::deploy::{DeployError, WorkflowError, WorkflowRun};
use super::fleet::AwsError;
use super::idempotency::IdempotencyError;
use super::policy::PolicyError;
use super::request::RequestError;

/// Every way a request can end without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("only POST is accepted")]
    MethodNotAllowed,
    #[error("request body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// Missing or wrong token (401), or credentials that do not add up (403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("too many deploys by {principal}; try again in {retry_after_secs} s")]
    RateLimited {
        principal: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Misconfigured(Misconfig),
    /// The secrets store could not be read; nothing was decided. The next request reads again.
    #[error("the server could not read its secrets; try again in {retry_after_secs} s")]
    SecretsUnavailable { retry_after_secs: u64 },
    /// SSM (or the key behind it) refused to give the secrets: the function's role, the
    /// key policy or a parameter name needs an operator. Read again a second later, so
    /// a fixed role works without recycling the function.
    #[error("the server may not read its secrets from SSM (access denied or a bad parameter name; the function's log has AWS's error code); an operator must fix the function's role, key policy or parameter names")]
    SecretsRefused,
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Deploy(#[from] DeployError),
    /// Reading the workflow's runs failed.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error("Idempotency-Key must be 1 to 255 visible ASCII characters")]
    InvalidIdempotencyKey,
    /// Another deploy is queued or running; dispatching now could cancel a waiting one.
    #[error("{}", in_flight_message(run))]
    DeployInFlight { run: Box<WorkflowRun> },
    /// `queue` asked, but a deploy already waits: GitHub keeps one pending run per group,
    /// so queueing another would cancel that one.
    #[error("deploy run {} ({}) is already waiting to start; GitHub keeps only one waiting run, so queueing another would cancel it. Try again when it has started", run.run_id, run.target.as_deref().unwrap_or("?"))]
    QueueFull { run: Box<WorkflowRun> },
    #[error("only humans may queue a deploy behind a running one")]
    QueueNotAllowed,
    #[error("the audit trail is for humans; bots may use runs")]
    AuditHumansOnly,
    #[error("no deploy run for {0} among the newest runs (a fresh dispatch can take a few seconds to show up)")]
    RunNotFound(String),
    #[error("{target} has no running instance to roll back")]
    InstanceNotRunning { target: String },
    #[error("{target} runs {current}, and no older fleet image exists to roll back to")]
    NoPreviousImage { target: String, current: String },
    #[error("the hosts run different images ({}); roll them back one by one", images.join(", "))]
    RollbackAmbiguous { images: Vec<String> },
    #[error("the shared state store could not be used: {0}")]
    State(AwsError),
    /// Hosts the deploy would (re)create have no bootstrap bundle: they could not boot.
    #[error("no bootstrap bundle under {} in {bucket}", prefixes.join(", "))]
    BootstrapMissing {
        prefixes: Vec<String>,
        bucket: String,
    },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Auth(AuthError::Unauthorized) => 401,
            Self::Auth(_) => 403,
            Self::RateLimited { .. } => 429,
            Self::Misconfigured(_)
            | Self::SecretsRefused
            | Self::Deploy(DeployError::NotConfigured(_))
            | Self::Workflow(WorkflowError::NotConfigured(_)) => 500,
            Self::Request(RequestError::UnknownTarget(_) | RequestError::UnknownAmi(_)) => 404,
            Self::Request(_) | Self::InvalidIdempotencyKey => 400,
            Self::Policy(_) | Self::QueueNotAllowed | Self::AuditHumansOnly => 403,
            Self::RunNotFound(_) | Self::InstanceNotRunning { .. } => 404,
            Self::Idempotency(IdempotencyError::KeyReused { .. }) => 422,
            Self::Idempotency(IdempotencyError::Store(_)) | Self::State(_) => 502,
            Self::Idempotency(_)
            | Self::DeployInFlight { .. }
            | Self::QueueFull { .. }
            | Self::NoPreviousImage { .. }
            | Self::RollbackAmbiguous { .. }
            | Self::BootstrapMissing { .. } => 409,
            Self::Deploy(DeployError::RateLimited { .. }) | Self::SecretsUnavailable { .. } => 503,
            Self::Deploy(_) | Self::Workflow(_) | Self::Aws(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Auth(AuthError::Unauthorized) => "unauthorized",
            Self::Auth(AuthError::UnknownIamPrincipal(_)) => "unknown_principal",
            Self::Auth(AuthError::PrincipalMismatch { .. }) => "principal_mismatch",
            Self::RateLimited { .. } => "rate_limited",
            Self::Misconfigured(_)
            | Self::Deploy(DeployError::NotConfigured(_))
            | Self::Workflow(WorkflowError::NotConfigured(_)) => "misconfigured",
            Self::SecretsUnavailable { .. } => "secrets_unavailable",
            Self::SecretsRefused => "secrets_unreadable",
            Self::Request(e) => e.code(),
            Self::Policy(e) => e.code(),
            Self::Deploy(DeployError::Refused { .. }) => "github_refused",
            Self::Deploy(DeployError::RateLimited { .. }) => "github_rate_limited",
            Self::Deploy(DeployError::Unknown { .. }) => "dispatch_unknown",
            Self::Deploy(DeployError::Unreachable) => "github_unavailable",
            Self::Workflow(_) => "github_unavailable",
            Self::Idempotency(IdempotencyError::KeyReused { .. }) => "idempotency_key_reused",
            Self::Idempotency(IdempotencyError::InProgress { .. }) => "idempotency_in_progress",
            Self::Idempotency(IdempotencyError::Unresolved { .. }) => "idempotency_unresolved",
            Self::Idempotency(IdempotencyError::Store(_)) | Self::State(_) => "state_unavailable",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::DeployInFlight { .. } => "deploy_in_flight",
            Self::QueueFull { .. } => "deploy_queue_full",
            Self::QueueNotAllowed => "queue_not_allowed",
            Self::AuditHumansOnly => "audit_humans_only",
            Self::RunNotFound(_) => "run_not_found",
            Self::InstanceNotRunning { .. } => "instance_not_running",
            Self::NoPreviousImage { .. } => "no_previous_image",
            Self::RollbackAmbiguous { .. } => "rollback_ambiguous",
            Self::BootstrapMissing { .. } => "bootstrap_missing",
            Self::Aws(_) => "aws_unavailable",
        }
    }

    /// The error answer; it carries the request id so a caller can quote it to an operator.
    pub fn into_reply(self, request_id: &str) -> Reply {
        let mut body = json!({"ok": false, "error": self.code(), "message": self.to_string(), "request_id": request_id});
        match &self {
            Self::DeployInFlight { run } | Self::QueueFull { run } => {
                body["run"] = json!(run);
            }
            Self::Deploy(DeployError::RateLimited { retry_after_secs })
            | Self::SecretsUnavailable { retry_after_secs } => {
                body["retry_after_secs"] = json!(retry_after_secs);
            }
            _ => {}
        }
        let mut reply = Reply::json(self.status(), &body);
        match self {
            Self::MethodNotAllowed => reply.headers.push(("allow", "POST".to_owned())),
            Self::RateLimited {
                retry_after_secs, ..
            }
            | Self::Deploy(DeployError::RateLimited { retry_after_secs })
            | Self::SecretsUnavailable { retry_after_secs } => reply
                .headers
                .push(("retry-after", retry_after_secs.to_string())),
            _ => {}
        }
        reply
    }
}

fn in_flight_message(run: &WorkflowRun) -> String {
    format!(
        "another deploy is {} (run {}: {} by {}, request {}): {}. Wait for it (fleet wait {}), or, as a human, send queue: true to run after it",
        run.status.replace('_', " "),
        run.run_id,
        run.target.as_deref().unwrap_or("?"),
        run.caller.as_deref().unwrap_or("?"),
        run.request_id.as_deref().unwrap_or("?"),
        run.run_url,
        run.run_id,
    )
}

/// A setting the server needs and lacks. Names the setting, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server misconfigured: {setting} {problem}")]
pub struct Misconfig {
    pub setting: &'static str,
    pub problem: &'static str,
}

impl Misconfig {
    pub const fn unset(setting: &'static str) -> Self {
        Self {
            setting,
            problem: "is not set",
        }
    }
}

/// A transport-neutral answer: status, extra headers, and a one-line JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            // Straight into a buffer: `Value`'s Display writes through `fmt::Write` piece
            // by piece, several times slower. A `Value` always serializes.
            body: serde_json::to_string(body).unwrap_or_default(),
        }
    }

    pub const CONTENT_TYPE: &'static str = "application/json";
}
