//! The wire contract, typed: every request (one [`Request`] variant per action) and every
//! answer of the control API, shared by the server (which answers from these types), the
//! `fleet` CLI (which builds requests and reads answers through them) and both test
//! suites. Plain serde types, outside the `server` feature.

use serde::{Deserialize, Serialize};

pub use crate::domain::audit::AuditRecord;
pub use crate::domain::deployed::{DeployedRevision, DeployedRevisions, DEPLOYED_KEY};
pub use crate::domain::error::codes;
pub use crate::domain::fleet::{
    Flag, FleetStatus, InstanceStatus, UnmanagedInstance, UnmanagedReason,
};
pub use crate::domain::heartbeat::{
    AgentVersion, BootTime, Ec2InstanceId, HeartbeatRecord, HeartbeatReport, HostRevision,
    ServiceState,
};
pub use crate::domain::lease::Lease;
pub use crate::domain::lock::{Lock, DEFAULT_TTL_SECS, MAX_TTL_SECS};
pub use crate::domain::ports::{DryRunDispatch, FleetImage, LiveInstance, WorkflowRun};
pub use crate::domain::queue::QueueEntry;
pub use crate::domain::readiness::Readiness;
pub use crate::domain::report::{
    HostOutcome, HostReport, PlanSummary, RollMode, RollOutcome, RollReport,
};
pub use crate::domain::request::{
    parse_command, AmiId, Caller, Command as Request, Limit, RequestError, Revision, RunRef,
    Target, AUDIT_LIMIT, MAX_BODY_BYTES, RUNS_LIMIT,
};
pub use crate::domain::service::events::ChatNotice;
pub use crate::domain::service::{
    BootstrapCheck, DeployChecks, IdempotencyCheck, InFlightCheck, RollbackImages,
};

/// The header that carries a client's idempotency key (deploy and rollback).
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// The seed's token header; SigV4-signed clients must use it (the signature takes
/// `Authorization`).
pub const TOKEN_HEADER: &str = "x-clawdinator-token";

fn is_false(b: &bool) -> bool {
    !b
}

/// `deploy`, `rollback` and `plan` (200): what was dispatched, with the checks it passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployAnswer {
    pub ok: bool,
    /// `deploy queued for <target>` (`plan queued for <target>`, `rollback queued for
    /// <target>`); a dry run says `dry run: would dispatch …`.
    pub message: String,
    /// `plan` for a plan, whose run applies nothing; absent for a deploy or rollback.
    #[serde(default, skip_serializing_if = "RollMode::is_apply")]
    pub mode: RollMode,
    pub target: Target,
    /// The image asked for; for a rollback, the image rolled back to.
    pub ami_override: Option<AmiId>,
    pub caller: Option<Caller>,
    /// The commit the run checks out (full SHA): asked for, or `GITHUB_REF`'s when the
    /// request came in; `null` in a dry run that was not asked for one.
    #[serde(default)]
    pub revision: Option<Revision>,
    pub checks: DeployChecks,
    /// GitHub's run, once it showed up (`null` until then: `fleet wait` finds it later).
    pub run_id: Option<u64>,
    pub run_url: Option<String>,
    /// A rollback's images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackImages>,
    /// Set when queued behind a running deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The local dry run's dispatch, which was not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dispatch: Option<DryRunDispatch>,
    /// The request that dispatched (for a replay, the first request's id).
    pub request_id: String,
    /// A repeat with the same `Idempotency-Key`: this is the first request's answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replayed: bool,
}

/// What status says about its own checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BucketSetting {
    Configured,
    Unset,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusChecks {
    pub bootstrap_bucket: BucketSetting,
}

/// `status` (200): the registry joined with the live fleet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusAnswer {
    pub ok: bool,
    #[serde(flatten)]
    pub fleet: FleetStatus,
    pub checks: StatusChecks,
    /// The locks in force.
    #[serde(default)]
    pub locks: Vec<Lock>,
    pub request_id: String,
}

/// `deploy` or `rollback` with `"queue": true` while another deploy holds the lease
/// (202): the request waits in the queue and is dispatched, its checks run again, when
/// its turn comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedAnswer {
    pub ok: bool,
    pub queued: bool,
    /// 1 for the next to go.
    pub position: u32,
    /// `deploy of <target> queued at position <n>`.
    pub message: String,
    pub target: Target,
    /// The queued request; its run will carry it (`fleet wait <request_id>`).
    pub request_id: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub replayed: bool,
}

/// `lock` and `unlock` (200): the lock taken, or the one released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockAnswer {
    pub ok: bool,
    pub message: String,
    pub lock: Lock,
    pub request_id: String,
}

/// `queue` (200): the queued deploys, next first, and the lease they wait behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueAnswer {
    pub ok: bool,
    pub queue: Vec<QueueEntry>,
    pub lease: Option<Lease>,
    pub request_id: String,
}

/// `cancel` (200): the queued deploy removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancelAnswer {
    pub ok: bool,
    pub message: String,
    pub cancelled: QueueEntry,
    pub request_id: String,
}

/// `runs` (200): the newest deploy runs, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunsAnswer {
    pub ok: bool,
    pub runs: Vec<WorkflowRun>,
    /// Why the list is empty when this server dispatches nothing (the local dry run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub request_id: String,
}

/// `run` (200): one run with the step running now, and its report when it has one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunAnswer {
    pub ok: bool,
    pub run: WorkflowRun,
    /// The run's report (`reports/<request_id>.json`), once the run wrote one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report: Option<RollReport>,
    pub request_id: String,
}

/// `audit` (200): the newest records, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAnswer {
    pub ok: bool,
    pub records: Vec<AuditRecord>,
    pub request_id: String,
}

/// `heartbeat` (200): the host's report was checked against EC2 and kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAnswer {
    pub ok: bool,
    /// `heartbeat of <id> recorded`.
    pub message: String,
    /// The registry id of the host.
    pub id: String,
    /// When the server received it (RFC 3339, its own clock).
    pub received_at: String,
    pub request_id: String,
}

/// Every refusal or failure: a stable `error` code and one line for a human.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub ok: bool,
    pub error: String,
    pub message: String,
    pub request_id: String,
    /// The run a `deploy_in_flight` is about (servers without a state bucket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<WorkflowRun>,
    /// The lease a `deploy_in_flight` is about: who holds the fleet, until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// The lock a `locked` or `lock_held` is about: who, why, until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<Lock>,
    /// Also in the `Retry-After` header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// A repeat with the same `Idempotency-Key`: the first request's answer.
    #[serde(default, skip_serializing_if = "is_false")]
    pub replayed: bool,
}

/// The answer to the seed's direct invocation (`aws lambda invoke --payload
/// '{"action",…,"control_token"}'`), in the seed's shape: the HTTP answer's status and
/// headers, and its JSON body as a string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvokeAnswer {
    #[serde(rename = "statusCode")]
    pub status_code: u16,
    pub headers: std::collections::BTreeMap<String, String>,
    /// One of the answers above, serialized.
    pub body: String,
}

/// Which event the Lambda handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// S3's notification of created objects (reports under `reports/`).
    ReportCreated,
    /// The periodic schedule (EventBridge).
    Schedule,
}

/// One report the event was about, and what became of its chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLanded {
    pub request_id: String,
    pub chat: ChatNotice,
}

/// The answer to an event (S3 and EventBridge invoke asynchronously, so only the log and
/// tests read it); a failed event is a failed invocation, which Lambda delivers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventAnswer {
    pub ok: bool,
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reports: Vec<ReportLanded>,
}

/// Any answer, when the caller does not know which to expect (a transcript, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Answer {
    Deploy(Box<DeployAnswer>),
    Status(Box<StatusAnswer>),
    Runs(Box<RunsAnswer>),
    Run(Box<RunAnswer>),
    Audit(Box<AuditAnswer>),
    Heartbeat(Box<HeartbeatAnswer>),
    Error(Box<ErrorBody>),
    Lock(Box<LockAnswer>),
    Queued(Box<QueuedAnswer>),
    Queue(Box<QueueAnswer>),
    Cancel(Box<CancelAnswer>),
}
