//! The control API's router: authenticate, parse, find the effective caller, then hand the
//! command to its flow (`deploy` for deploy, rollback and plan, `queries` for the reads). Each
//! flow returns a typed [`Outcome`]; the transport turns it into an answer and then asks
//! [`ControlApi::record`] to write the audit line and record of the decision.

mod deploy;
pub mod events;
mod heartbeat;
mod lease;
mod locks;
mod queries;
mod queue;
mod record;

use std::time::Instant;

use super::audit::AuditRecord;
use super::auth::{Authenticator, Credentials, Principal};
use super::dispatch::DeployTiming;
use super::error::ApiError;
use super::fleet::FleetStatus;
use super::idempotency::ClaimTiming;
use super::lease::DEFAULT_LEASE;
use super::lock::Lock;
use super::policy::{caller_instance, effective_caller};
use super::ports::{
    BootstrapStore, FleetReader, Misconfig, Sleep, StateStore, Workflow, WorkflowRun,
};
use super::queue::QueueEntry;
use super::rate_limit::RateLimiter;
use super::readiness::ReadinessTiming;
use super::refusal_budget::RefusalBudget;
use super::registry::InstanceId;
use super::registry::Registry;
use super::report::RollReport;
use super::request::{parse_command, Caller, Command};

pub use deploy::{
    BootstrapCheck, DeployChecks, DeployOutcome, IdempotencyCheck, InFlightCheck, Kept,
    RollbackImages, RunLink,
};
pub use heartbeat::HeartbeatAck;
pub use queue::{DrainReport, QueueReport, QueuedOutcome};
pub use record::{log_unready, Facts};

/// One authenticated-to-be request as the domain sees it: who claims to ask, with which
/// key, and the body (parsed only once the credentials are good).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub credentials: Credentials<'a>,
    /// The `Idempotency-Key`, if any.
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
    /// The peer's address as the transport saw it, if it knows one.
    pub source_ip: Option<&'a str>,
}

/// What a request came to, for the transport to answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// A deploy, rollback or plan was dispatched (or dry-run).
    Deployed(DeployOutcome),
    /// A repeat of an earlier request with the same key: its kept answer, nothing done.
    Replayed {
        first_request_id: String,
        kept: Kept,
    },
    Status(StatusReport),
    Runs(RunsReport),
    Run(RunDetail),
    Audit(Vec<AuditRecord>),
    Heartbeat(HeartbeatAck),
    /// A human's deploy waits in the queue behind the lease's holder.
    Queued(QueuedOutcome),
    /// The lock taken.
    Lock(Lock),
    /// The lock released.
    Unlock(Lock),
    Queue(QueueReport),
    /// The queued deploy removed.
    Cancelled(QueueEntry),
}

/// The live fleet, and whether the bootstrap check is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusReport {
    pub fleet: FleetStatus,
    pub bootstrap_bucket: bool,
    /// The locks in force (none without a state bucket).
    pub locks: Vec<Lock>,
}

/// The newest runs; `dry_run` when this server dispatches nothing and so has none.
#[derive(Debug, Clone, PartialEq)]
pub struct RunsReport {
    pub runs: Vec<WorkflowRun>,
    pub dry_run: bool,
}

/// One run, with its report (`reports/<request_id>.json`) once the run wrote one.
#[derive(Debug, Clone, PartialEq)]
pub struct RunDetail {
    pub run: WorkflowRun,
    pub report: Option<RollReport>,
}

/// A decided request: its id, the result, and what the audit trail says of it.
#[derive(Debug)]
pub struct Decision {
    pub request_id: String,
    pub result: Result<Outcome, ApiError>,
    pub facts: Facts,
    pub started: Instant,
    /// Whom a refusal is counted against: the IAM ARN, else the principal, else the
    /// source address (empty when the result refuses no caller).
    pub source: String,
}

/// The outbound ports the handler talks to.
pub struct Ports<W, F, B, S> {
    pub workflow: W,
    pub fleet: F,
    /// `None` when no bootstrap bucket is configured: the check is skipped, visibly.
    pub bootstrap: Option<B>,
    /// `None` when no state bucket is configured: no idempotency, no audit objects.
    pub state: Option<S>,
    /// How the domain waits between retries (the async runtime's timer).
    pub sleep: Sleep,
}

/// The control API: the registry, the accepted tokens and the outbound ports.
pub struct ControlApi<W, F, B, S> {
    registry: Registry,
    /// Without a usable control token nothing can be authenticated: every request is a 500.
    auth: Result<Authenticator, Misconfig>,
    ports: Ports<W, F, B, S>,
    limiter: RateLimiter,
    refusals: RefusalBudget,
    deploy_timing: DeployTiming,
    claim_timing: ClaimTiming,
    readiness: ReadinessTiming,
    heartbeats: heartbeat::Heartbeats,
    /// How long a lease holds at most: the workflow's timeout and a margin.
    lease_lifetime: std::time::Duration,
}

/// Who asks for a lock, an unlock or a cancel: the name a lock or queue entry keeps
/// (the effective caller, else the principal), and the host when it is a bot.
struct Who {
    name: String,
    principal: String,
    bot: Option<InstanceId>,
}

/// An authenticated request with its command and effective caller.
struct Admitted {
    principal: Principal,
    command: Command,
    caller: Option<Caller>,
    /// The caller is a fleet instance.
    is_bot: bool,
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    pub fn new(
        registry: Registry,
        auth: Result<Authenticator, Misconfig>,
        ports: Ports<W, F, B, S>,
    ) -> Self {
        Self {
            registry,
            auth,
            ports,
            limiter: RateLimiter::default(),
            refusals: RefusalBudget::default(),
            deploy_timing: DeployTiming::default(),
            claim_timing: ClaimTiming::default(),
            readiness: ReadinessTiming::default(),
            heartbeats: heartbeat::Heartbeats::default(),
            lease_lifetime: DEFAULT_LEASE,
        }
    }

    /// Replaces the lease's lifetime (default 2 h 15 min: the deploy job's timeout and a
    /// margin).
    pub fn with_lease_lifetime(mut self, lifetime: std::time::Duration) -> Self {
        self.lease_lifetime = lifetime;
        self
    }

    /// The state bucket, or the misconfiguration its absence is for a flow that needs it.
    fn state(&self) -> Result<&S, ApiError> {
        self.ports
            .state
            .as_ref()
            .ok_or(ApiError::Misconfigured(Misconfig::unset(
                "FLEET_STATE_BUCKET",
            )))
    }

    /// Replaces the default heartbeat ages (stale after 180 s, booting for 900 s).
    pub fn with_readiness(mut self, readiness: ReadinessTiming) -> Self {
        self.readiness = readiness;
        self
    }

    /// Replaces the default deploy rate limit (10 per 10 minutes per principal).
    pub fn with_rate_limit(mut self, limiter: RateLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// Replaces the default bound on recorded refusals (5 per 10 minutes per source).
    pub fn with_refusal_budget(mut self, budget: RefusalBudget) -> Self {
        self.refusals = budget;
        self
    }

    /// Replaces the retry and polling budgets (tests shorten them).
    pub fn with_timing(mut self, deploy: DeployTiming, claim: ClaimTiming) -> Self {
        self.deploy_timing = deploy;
        self.claim_timing = claim;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn ports(&self) -> &Ports<W, F, B, S> {
        &self.ports
    }

    /// Decides one request. Nothing is logged yet: see [`ControlApi::record`].
    pub async fn decide(&self, call: Call<'_>) -> Decision {
        let started = Instant::now();
        // Time-ordered, so audit keys sort by time within a day.
        let request_id = crate::domain::request_id::new_request_id();
        let (facts, result) = match self.admit(&call) {
            Err(refused) => {
                let (facts, e) = *refused;
                (facts, Err(e))
            }
            Ok(admitted) => {
                let facts = Facts::of(&admitted.principal, &admitted.command, &admitted.caller);
                let result = self
                    .route(admitted, call.idempotency_key, &request_id)
                    .await;
                (facts, result)
            }
        };
        // Only a refusal of the caller is counted against its source.
        let source = match &result {
            Err(e) if e.refuses_principal() => source_of(&call, &facts),
            _ => String::new(),
        };
        Decision {
            request_id,
            result,
            facts,
            started,
            source,
        }
    }

    /// Credentials, then the body, then who the effective caller is.
    /// A refusal carries what was known of the request by then, for the audit trail.
    fn admit(&self, call: &Call<'_>) -> Result<Admitted, Box<(Facts, ApiError)>> {
        let refuse = |facts: &Facts, e: ApiError| Box::new((facts.clone(), e));
        let mut facts = Facts::default();
        let auth = self
            .auth
            .as_ref()
            .map_err(|m| refuse(&facts, ApiError::Misconfigured(*m)))?;
        let principal = auth
            .authenticate(&call.credentials)
            .map_err(|e| refuse(&facts, e.into()))?;
        facts.principal = Some(principal.to_string());
        let command = parse_command(call.body).map_err(|e| refuse(&facts, e.into()))?;
        let caller = effective_caller(&self.registry, &principal, command.caller().cloned())
            .map_err(|e| refuse(&Facts::of(&principal, &command, &None), e.into()))?;
        let is_bot = caller
            .as_ref()
            .is_some_and(|c| caller_instance(&self.registry, c).is_some());
        Ok(Admitted {
            principal,
            command,
            caller,
            is_bot,
        })
    }

    /// One flow per action: `deploy` for deploy, rollback and plan, the others by name.
    async fn route(
        &self,
        admitted: Admitted,
        key: Option<&str>,
        request_id: &str,
    ) -> Result<Outcome, ApiError> {
        let asker = deploy::Asker {
            principal: &admitted.principal,
            caller: admitted.caller,
            is_bot: admitted.is_bot,
        };
        match admitted.command {
            Command::Deploy {
                target,
                ami_override,
                queue,
                revision,
                ..
            } => {
                let ask = asker.deploy(target, ami_override, queue, revision);
                self.deploy(ask, key, request_id).await
            }
            Command::Rollback {
                target,
                queue,
                revision,
                ..
            } => {
                let ask = asker.rollback(target, queue, revision);
                self.deploy(ask, key, request_id).await
            }
            Command::Plan {
                target,
                ami_override,
                revision,
                ..
            } => {
                let ask = asker.plan(target, ami_override, revision);
                self.deploy(ask, key, request_id).await
            }
            Command::Lock {
                target,
                reason,
                ttl_secs,
                ..
            } => self
                .lock(&self.who(&asker), target, &reason, ttl_secs)
                .await
                .map(Outcome::Lock),
            Command::Unlock { target, .. } => self
                .unlock(&self.who(&asker), target)
                .await
                .map(Outcome::Unlock),
            Command::Queue { .. } => self.queue_report().await.map(Outcome::Queue),
            Command::Cancel { request_id, .. } => {
                let who = self.who(&asker);
                self.cancel(&who, &request_id).await.map(Outcome::Cancelled)
            }
            Command::Status {
                include_terminated, ..
            } => self.status(include_terminated).await.map(Outcome::Status),
            Command::Runs { limit, .. } => self.runs(limit).await.map(Outcome::Runs),
            Command::Run { run, .. } => self.run(run).await.map(Outcome::Run),
            Command::Audit { .. } if asker.is_bot => Err(ApiError::AuditHumansOnly),
            Command::Audit { limit, .. } => self.audit_records(limit).await.map(Outcome::Audit),
            Command::Heartbeat { report, .. } => {
                // A bot's caller is itself (the effective caller refused any other).
                let host = self.bot(&asker).ok_or(ApiError::HeartbeatBotsOnly)?;
                self.heartbeat(&host, asker.principal, report)
                    .await
                    .map(Outcome::Heartbeat)
            }
        }
    }

    /// Who asks, by the name a lock or queue entry keeps (built only for the actions that
    /// keep one).
    fn who(&self, asker: &deploy::Asker<'_>) -> Who {
        Who {
            name: asker
                .caller
                .as_ref()
                .map_or_else(|| asker.principal.to_string(), |c| c.as_str().to_owned()),
            principal: asker.principal.to_string(),
            bot: self.bot(asker),
        }
    }

    /// The host that asks, when a bot does.
    fn bot(&self, asker: &deploy::Asker<'_>) -> Option<InstanceId> {
        asker
            .caller
            .as_ref()
            .filter(|_| asker.is_bot)
            .and_then(|c| caller_instance(&self.registry, c))
            .cloned()
    }
}

/// Whom a refusal is counted against: the IAM ARN, else the principal, else the peer.
fn source_of(call: &Call<'_>, facts: &Facts) -> String {
    call.credentials
        .iam_arn
        .or(facts.principal.as_deref())
        .or(call.source_ip)
        .unwrap_or("unknown")
        // An ARN is bounded by AWS, but the tally's key need not be long.
        .chars()
        .take(200)
        .collect()
}
