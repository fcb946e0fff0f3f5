//! The error catalogue: every way a request can end without success, each with a stable
//! code for clients. Status codes and headers are the transport's (`inbound::http`).

use super::auth::AuthError;
use super::dispatch::DeployError;
use super::idempotency::IdempotencyError;
use super::lease::Lease;
use super::lock::Lock;
use super::policy::PolicyError;
use super::ports::{AwsError, Misconfig, WorkflowError, WorkflowRun};
use super::request::RequestError;

/// The codes a client acts on (the others it shows): `fleet wait` stops on these.
pub mod codes {
    pub const RUN_NOT_FOUND: &str = "run_not_found";
    pub const NOTHING_DISPATCHED: &str = "nothing_dispatched";
}

/// Every way a request can end without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
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
    /// Another deploy holds the lease (or, without a state bucket, a run is in flight).
    #[error("{}", in_flight_message(.0))]
    DeployInFlight(Box<InFlight>),
    #[error("only humans may queue a deploy behind a running one")]
    QueueNotAllowed,
    /// A lock holds a host the deploy would touch.
    #[error("{}; nothing was dispatched", .0.sentence())]
    Locked(Box<Lock>),
    /// Somebody else locked the target first.
    #[error("{}; unlock it first (humans may unlock any lock)", .0.sentence())]
    LockHeld(Box<Lock>),
    /// A bot may lock only its own host, and unlock only the lock it holds there.
    #[error("{bot} may lock and unlock only its own host's lock, not {target}'s")]
    LockNotAllowed { bot: String, target: String },
    #[error("{0} is not locked")]
    LockNotFound(String),
    #[error("request {0} is not in the deploy queue (dispatched, dropped or cancelled)")]
    NotQueued(String),
    /// A bot cancelling a queued deploy it did not ask for.
    #[error("only the requester or a human may cancel request {0}")]
    CancelNotAllowed(String),
    #[error("only humans may choose a revision; a bot deploys the commit GITHUB_REF points to")]
    RevisionNotAllowed,
    #[error("the audit trail is for humans; bots may use runs")]
    AuditHumansOnly,
    /// A heartbeat is a host reporting itself: only a fleet instance may send one.
    #[error("only fleet hosts send heartbeats (a bot's credentials, or the shared token with a caller naming a registry host)")]
    HeartbeatBotsOnly,
    /// The reported EC2 instance is not a live fleet instance of the reporting host.
    #[error(
        "{ec2_instance_id} is not a live fleet instance of {host}: {found}; nothing was stored"
    )]
    HeartbeatMismatch {
        host: String,
        ec2_instance_id: String,
        found: String,
    },
    #[error("{host} sent a heartbeat less than 10 s ago; try again in {retry_after_secs} s")]
    HeartbeatRateLimited { host: String, retry_after_secs: u64 },
    #[error("no deploy run for {0} among the newest runs (a fresh dispatch can take a few seconds to show up)")]
    RunNotFound(String),
    /// This server dispatches nothing (the local dry run): no run will ever exist.
    #[error("this server is a dry run (no GitHub token): nothing was dispatched, so there is no run to follow")]
    NothingDispatched,
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
    pub fn code(&self) -> &'static str {
        match self {
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
            Self::Workflow(WorkflowError::Refused { .. }) => "github_refused",
            Self::Workflow(_) => "github_unavailable",
            Self::Idempotency(IdempotencyError::KeyReused { .. }) => "idempotency_key_reused",
            Self::Idempotency(IdempotencyError::InProgress { .. }) => "idempotency_in_progress",
            Self::Idempotency(IdempotencyError::Unresolved { .. }) => "idempotency_unresolved",
            Self::Idempotency(IdempotencyError::Store(_)) | Self::State(_) => "state_unavailable",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::DeployInFlight(_) => "deploy_in_flight",
            Self::QueueNotAllowed => "queue_not_allowed",
            Self::Locked(_) => "locked",
            Self::LockHeld(_) => "lock_held",
            Self::LockNotAllowed { .. } => "lock_not_allowed",
            Self::LockNotFound(_) => "lock_not_found",
            Self::NotQueued(_) => "not_queued",
            Self::CancelNotAllowed(_) => "cancel_not_allowed",
            Self::AuditHumansOnly => "audit_humans_only",
            Self::RevisionNotAllowed => "revision_not_allowed",
            Self::HeartbeatBotsOnly => "heartbeat_bots_only",
            Self::HeartbeatMismatch { .. } => "heartbeat_mismatch",
            Self::HeartbeatRateLimited { .. } => "rate_limited",
            Self::RunNotFound(_) => codes::RUN_NOT_FOUND,
            Self::NothingDispatched => codes::NOTHING_DISPATCHED,
            Self::InstanceNotRunning { .. } => "instance_not_running",
            Self::NoPreviousImage { .. } => "no_previous_image",
            Self::RollbackAmbiguous { .. } => "rollback_ambiguous",
            Self::BootstrapMissing { .. } => "bootstrap_missing",
            Self::Aws(_) => "aws_unavailable",
        }
    }

    /// How long the caller should wait before trying again, when the error says.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::RateLimited {
                retry_after_secs, ..
            }
            | Self::HeartbeatRateLimited {
                retry_after_secs, ..
            }
            | Self::Deploy(DeployError::RateLimited { retry_after_secs })
            | Self::SecretsUnavailable { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// The run an in-flight refusal is about.
    pub fn run(&self) -> Option<&WorkflowRun> {
        match self {
            Self::DeployInFlight(holder) => match holder.as_ref() {
                InFlight::Run(run) => Some(run),
                InFlight::Lease(_) => None,
            },
            _ => None,
        }
    }

    /// The lease an in-flight refusal is about.
    pub fn lease(&self) -> Option<&Lease> {
        match self {
            Self::DeployInFlight(holder) => match holder.as_ref() {
                InFlight::Lease(lease) => Some(lease),
                InFlight::Run(_) => None,
            },
            _ => None,
        }
    }

    /// The lock a `locked` or `lock_held` refusal is about.
    pub fn lock(&self) -> Option<&Lock> {
        match self {
            Self::Locked(lock) | Self::LockHeld(lock) => Some(lock),
            _ => None,
        }
    }

    /// Whether the lease, a run in flight or a lock stopped the request (not a refusal
    /// of the caller).
    pub fn is_guard(&self) -> bool {
        matches!(self, Self::DeployInFlight(_) | Self::Locked(_))
    }

    /// Refusals of who is asking: they get a durable audit record even for a read.
    pub fn refuses_principal(&self) -> bool {
        matches!(
            self,
            Self::Auth(_)
                | Self::Policy(_)
                | Self::QueueNotAllowed
                | Self::LockNotAllowed { .. }
                | Self::CancelNotAllowed(_)
                | Self::AuditHumansOnly
                | Self::RevisionNotAllowed
                | Self::HeartbeatBotsOnly
        )
    }
}

/// What holds the fleet when a deploy is refused as in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InFlight {
    /// Another request's deploy holds the lease.
    Lease(Lease),
    /// A run of the workflow is in flight (servers without a state bucket, which have
    /// no lease, look at GitHub's runs).
    Run(WorkflowRun),
}

fn in_flight_message(holder: &InFlight) -> String {
    let run = match holder {
        InFlight::Lease(lease) => {
            return format!(
                "another deploy is in flight: {}. Wait for it (fleet wait {}), or, as a human, send queue: true to run after it",
                lease.sentence(),
                lease.request_id
            )
        }
        InFlight::Run(run) => run,
    };
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
