//! The outbound ports of the domain, with the data they carry and their errors: the deploy
//! workflow, the fleet reader (EC2), the bootstrap store and the shared state store (S3).
//! Adapters in `outbound/` implement them; `test_support` has in-memory fakes.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::report::RollMode;
use super::request::{AmiId, Caller, Revision, Target};

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

/// A sleep the domain can wait on without naming an async runtime.
pub type Sleep = fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>>;

// --- The deploy workflow -------------------------------------------------------------

/// A checked, authorized deploy, ready for the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployRequest {
    /// Fresh per request; the workflow's run name carries it so the run can be found.
    pub request_id: String,
    pub target: Target,
    pub ami_override: Option<AmiId>,
    /// Who the run is for: the effective caller, else the principal (`human:…`).
    pub caller: Option<Caller>,
    /// The commit the workflow checks out: asked for by a human, else what `GITHUB_REF`
    /// pointed to when the request came in. `None` only in the dry run.
    pub revision: Option<Revision>,
    /// The workflow's `mode` input: `apply` rolls the hosts, `plan` only plans them.
    pub mode: RollMode,
}

/// The dispatch the local dry run would have sent, returned instead of sending it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DryRunDispatch {
    pub dry_run: bool,
    /// `owner/name`.
    pub repo: String,
    pub workflow: String,
    #[serde(rename = "ref")]
    pub git_ref: String,
    /// The `workflow_dispatch` inputs, all strings; `null` for a revision the dry run
    /// could not resolve (it does not ask GitHub).
    pub inputs: BTreeMap<String, Option<String>>,
}

/// The workflow run a dispatch started: GitHub's run id and the run's page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunLink {
    pub run_id: u64,
    /// The run's page for humans (GitHub's `html_url`).
    pub run_url: String,
}

/// What a dispatcher reports back on success.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DispatchReceipt {
    /// Set by the dry-run dispatcher: the dispatch it would have sent.
    pub dry_run: Option<DryRunDispatch>,
    /// The run GitHub started, when it said so in its answer (`return_run_details`);
    /// `None` from a GitHub that answers 204, whose run must be looked up.
    pub run: Option<RunLink>,
}

/// Why one dispatch call did not end in GitHub's 204.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// A setting the dispatcher needs is missing; names the setting, never a value.
    #[error(transparent)]
    NotConfigured(Misconfig),
    /// GitHub refused the dispatch (4xx other than a rate limit): nothing was started.
    #[error("GitHub refused the workflow dispatch (HTTP {status})")]
    Refused { status: u16 },
    /// A primary or secondary rate limit (429, or 403 with rate-limit headers): GitHub
    /// did not process the request; it may be sent again after `retry_after`.
    #[error("GitHub rate-limited the workflow dispatch")]
    RateLimited { retry_after: Option<Duration> },
    /// No connection could be opened: the request never left, so it may be sent again.
    #[error("GitHub could not be reached to dispatch the workflow")]
    NotSent,
    /// A 5xx, a timeout or a broken connection: GitHub may or may not have started a run.
    #[error("GitHub did not confirm the workflow dispatch")]
    Unknown,
}

/// Why a read of the workflow's runs failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    #[error(transparent)]
    NotConfigured(Misconfig),
    #[error("GitHub is rate-limiting reads of the deploy runs")]
    RateLimited { retry_after: Option<Duration> },
    #[error("GitHub could not be reached to read the deploy runs")]
    Unavailable,
    /// A 4xx other than 404 and rate limits (a revoked token, a missing permission, a
    /// request GitHub will not take): asking again gets the same answer, so it is final.
    /// `message` is GitHub's own `message`, one line, truncated, never a token.
    #[error("GitHub refused {call} (HTTP {status}: {message})")]
    Refused {
        call: &'static str,
        status: u16,
        message: String,
    },
}

impl WorkflowError {
    /// Whether another read may help: only when GitHub was unavailable or rate-limiting.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Unavailable)
    }
}

/// One run of the deploy workflow, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub run_id: u64,
    pub run_url: String,
    /// From the run name `fleet-deploy <target> by <caller> [<request_id>]` (a plan's:
    /// `fleet-plan …`); `None` for runs started by hand or by an older workflow.
    pub request_id: Option<String>,
    /// `plan` for a plan's run (its name starts `fleet-plan`), which changes nothing:
    /// no guard or lease ever waits for it.
    #[serde(default, skip_serializing_if = "RollMode::is_apply")]
    pub mode: RollMode,
    pub target: Option<String>,
    pub caller: Option<String>,
    /// `queued`, `in_progress`, `waiting`, `pending`, `requested` or `completed`.
    pub status: String,
    pub conclusion: Option<String>,
    /// RFC 3339.
    pub started: Option<String>,
    pub duration_secs: Option<u64>,
    /// The step running now (only filled in for a single run).
    pub step: Option<String>,
    /// The headline of the run's report (`reports/<request_id>.json`), once there is one
    /// (only filled in by the API's `runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

/// Statuses of a run that has not finished: the in-flight guard looks for these.
pub const ACTIVE_STATUSES: [&str; 4] = ["queued", "in_progress", "waiting", "pending"];

/// The outbound port to the deploy workflow (GitHub Actions).
pub trait Workflow: Send + Sync {
    /// Sends one `workflow_dispatch`; never retries by itself.
    fn dispatch(
        &self,
        request: &DeployRequest,
    ) -> impl Future<Output = Result<DispatchReceipt, DispatchError>> + Send;
    /// The newest `per_page` runs of the workflow, optionally only those in `status`.
    fn runs(
        &self,
        status: Option<&'static str>,
        per_page: u8,
    ) -> impl Future<Output = Result<Vec<WorkflowRun>, WorkflowError>> + Send;
    /// One run by id, with its current step; `None` if GitHub does not know it.
    fn run(
        &self,
        run_id: u64,
    ) -> impl Future<Output = Result<Option<WorkflowRun>, WorkflowError>> + Send;
    /// The commit `GITHUB_REF` points to now, so the run deploys exactly what was asked
    /// for even if the branch moves; `None` for the dry run, which asks GitHub nothing.
    fn resolve_ref(&self) -> impl Future<Output = Result<Option<Revision>, WorkflowError>> + Send;
    /// False for the local dry run, which has no runs to guard against or to track.
    fn tracks_runs(&self) -> bool;
}

// --- The fleet (EC2) and the bootstrap bundles ---------------------------------------

/// Why AWS could not answer; the text names the call and AWS's error code, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AwsError(pub String);

/// An EC2 instance carrying the fleet tag, reduced to what status shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveInstance {
    /// EC2's `i-…` id (the registry's key is the instance `id`).
    pub ec2_instance_id: String,
    /// The `Name` tag, which is the registry's `host`.
    pub name: Option<String>,
    pub state: String,
    pub ami: Option<String>,
    pub instance_type: Option<String>,
    pub launch_time: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
}

/// A machine image (AMI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetImage {
    pub id: String,
    pub name: Option<String>,
    /// ISO-8601 as EC2 gives it (`2026-11-25T12:05:21.000Z`), so text order is time order.
    pub created: Option<String>,
}

/// The outbound port that reads the fleet from EC2.
pub trait FleetReader: Send + Sync {
    /// Every instance with the fleet tag, every page; terminated ones only when asked.
    fn live_instances(
        &self,
        include_terminated: bool,
    ) -> impl Future<Output = Result<Vec<LiveInstance>, AwsError>> + Send;
    /// The newest image with the fleet image tag, owned by this account.
    fn latest_image(&self) -> impl Future<Output = Result<Option<FleetImage>, AwsError>> + Send;
    /// The image `id` if it is a fleet image: owned by this account and carrying the
    /// fleet image tag. Anything else must never be deployed.
    fn fleet_image(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<FleetImage>, AwsError>> + Send;
    /// Every fleet image (owned by this account, with the fleet image tag).
    fn fleet_images(&self) -> impl Future<Output = Result<Vec<FleetImage>, AwsError>> + Send;
    /// Details of the given images (those deregistered since are simply absent).
    fn images(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<FleetImage>, AwsError>> + Send;
}

/// The outbound port that checks for a host's bootstrap bundle.
pub trait BootstrapStore: Send + Sync {
    /// The bucket name, for messages.
    fn bucket(&self) -> &str;
    /// Whether at least one object exists under `prefix/`.
    fn has_bundle(&self, prefix: &str) -> impl Future<Output = Result<bool, AwsError>> + Send;
}

// --- The shared state store (S3) ---------------------------------------------------

/// An object as read back, with the version tag that a conditional write names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub body: Vec<u8>,
    pub etag: String,
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written; the new object's version tag.
    Done { etag: String },
    /// The condition failed: somebody else wrote first.
    Conflict,
}

/// Conditional writes for idempotency, locks, the lease and the queue; plain writes,
/// deletes and listings for the rest.
/// Lambda instances share nothing else.
pub trait StateStore: Send + Sync {
    /// The bucket, for messages and audit records.
    fn bucket(&self) -> &str;
    /// Writes `key` only if no object is there (`If-None-Match: *`), atomically.
    fn create(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<Written, AwsError>> + Send;
    /// Overwrites `key` only if it still is version `etag` (`If-Match`), atomically.
    fn replace(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> impl Future<Output = Result<Written, AwsError>> + Send;
    /// Reads `key`; `None` when there is no such object.
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Stored>, AwsError>> + Send;
    /// Writes `key` unconditionally.
    fn put(&self, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Removes `key`; removing what is not there is no error (S3's DeleteObject).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Removes `key` only if it still is version `etag` (`If-Match`), atomically: `false`
    /// when another writer changed it since, or it is gone. What ends an object a
    /// competitor may take over (the lease, a lock), so the end is never theirs.
    fn delete_if(
        &self,
        key: &str,
        etag: &str,
    ) -> impl Future<Output = Result<bool, AwsError>> + Send;
    /// One page: at most `limit` keys under `prefix` that sort after `start_after`, in
    /// ascending order (S3's `StartAfter` and `MaxKeys`). Fewer than `limit` means the
    /// listing ended.
    fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}

// --- The chat (a webhook) -----------------------------------------------------------

/// Why a chat message was not posted. The text never carries the webhook's address
/// (its path is the credential) nor anything the webhook answered beyond its status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ChatError(pub String);

/// The outbound port that posts one message to the operators' chat.
pub trait ChatPost: Send + Sync {
    /// Posts `content` once; never retries by itself.
    fn post(&self, content: &str) -> impl Future<Output = Result<(), ChatError>> + Send;
}
