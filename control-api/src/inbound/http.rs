//! HTTP at the edge: the method, content-type and size checks, the status code and headers
//! of every outcome and error, and the answer bodies built from the wire contract. Both
//! transports (Lambda Function URL, local server) answer through [`answer`].

use std::future::Future;

use serde::Serialize;

use crate::contract::{
    AuditAnswer, AuditRecord, BucketSetting, CancelAnswer, DeployAnswer, ErrorBody,
    HeartbeatAnswer, Lock, LockAnswer, QueueAnswer, QueueEntry, QueuedAnswer, RunAnswer,
    RunsAnswer, StatusAnswer, StatusChecks, MAX_BODY_BYTES,
};
use crate::domain::auth::{AuthError, Credentials};
use crate::domain::dispatch::DeployError;
use crate::domain::error::ApiError;
use crate::domain::idempotency::IdempotencyError;
use crate::domain::ports::{BootstrapStore, FleetReader, StateStore, Workflow, WorkflowError};
use crate::domain::request::RequestError;
use crate::domain::service::{
    self, Call, ControlApi, DeployOutcome, HeartbeatAck, Kept, Outcome, QueueReport, QueuedOutcome,
    RunDetail, RunsReport, StatusReport,
};

/// The HTTP method, reduced to what the contract distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Other,
}

/// One incoming HTTP request as both transports present it.
#[derive(Debug, Clone, Copy)]
pub struct HttpCall<'a> {
    pub method: Method,
    pub credentials: Credentials<'a>,
    /// The `Content-Type` header, if any: absent or JSON is accepted.
    pub content_type: Option<&'a str>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
    /// Set by a transport that stopped reading a body over [`MAX_BODY_BYTES`].
    pub body_too_large: bool,
    /// The peer's address as the transport saw it (the local server's socket peer, the
    /// Function URL's `requestContext.http.sourceIp`): whom refusals are counted against
    /// when the request names no identity.
    pub source_ip: Option<&'a str>,
}

/// A transport-neutral HTTP answer: status, extra headers, and a one-line JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub const CONTENT_TYPE: &'static str = "application/json";

    fn json(status: u16, body: &impl Serialize) -> Self {
        Self {
            status,
            headers: Vec::new(),
            // Straight into a buffer; every contract type serializes.
            body: serde_json::to_string(body).unwrap_or_default(),
        }
    }
}

/// What a transport hands each call to: the [`ControlApi`] itself, or a holder that
/// builds it on first use (the Lambda's `app::LazyApp`).
pub trait Handler: Send + Sync {
    fn handle(&self, call: HttpCall<'_>) -> impl Future<Output = Reply> + Send;
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> Handler
    for ControlApi<W, F, B, S>
{
    fn handle(&self, call: HttpCall<'_>) -> impl Future<Output = Reply> + Send {
        answer(self, call)
    }
}

/// A request refused by its HTTP form, before any credential is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    MethodNotAllowed,
    PayloadTooLarge,
    UnsupportedMediaType,
}

impl Refusal {
    fn of(call: &HttpCall<'_>) -> Option<Self> {
        if call.method != Method::Post {
            Some(Self::MethodNotAllowed)
        } else if call.body_too_large || call.body.len() > MAX_BODY_BYTES {
            Some(Self::PayloadTooLarge)
        } else if !call.content_type.is_none_or(is_json) {
            Some(Self::UnsupportedMediaType)
        } else {
            None
        }
    }

    fn code(self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
        }
    }

    fn reply(self, request_id: &str) -> Reply {
        let (status, message) = match self {
            Self::MethodNotAllowed => (405, "only POST is accepted"),
            Self::PayloadTooLarge => (413, "request body is larger than 16 KiB"),
            Self::UnsupportedMediaType => (415, "content type must be application/json"),
        };
        let body = error_body(self.code(), message.into(), request_id);
        let mut reply = Reply::json(status, &body);
        if self == Self::MethodNotAllowed {
            reply.headers.push(("allow", "POST".to_owned()));
        }
        reply
    }
}

/// Answers one HTTP request: its form, then the domain's decision, then the audit trail
/// of that decision with the status the caller got.
pub async fn answer<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore>(
    api: &ControlApi<W, F, B, S>,
    call: HttpCall<'_>,
) -> Reply {
    if let Some(refusal) = Refusal::of(&call) {
        let request_id = crate::domain::request_id::new_request_id();
        let reply = refusal.reply(&request_id);
        service::log_unready(&request_id, reply.status, refusal.code());
        return reply;
    }
    let decision = api
        .decide(Call {
            credentials: call.credentials,
            idempotency_key: call.idempotency_key,
            body: call.body,
            source_ip: call.source_ip,
        })
        .await;
    let (reply, error) = match &decision.result {
        Ok(outcome) => outcome_reply(outcome, &decision.request_id),
        Err(e) => (error_reply(e, &decision.request_id, false), Some(e.code())),
    };
    api.record(&decision, reply.status, error).await;
    reply
}

/// The answer while there is no control API to ask (its secrets unreadable): the error
/// body and audit line of any failure, with nothing known of the caller.
pub fn answer_unready(error: ApiError) -> Reply {
    let request_id = crate::domain::request_id::new_request_id();
    let reply = error_reply(&error, &request_id, false);
    service::log_unready(&request_id, reply.status, error.code());
    reply
}

/// The answer to a decided request, and its error code when it replays a failure.
fn outcome_reply(outcome: &Outcome, request_id: &str) -> (Reply, Option<&'static str>) {
    let reply = match outcome {
        Outcome::Deployed(o) => Reply::json(200, &deploy_answer(o, false)),
        Outcome::Queued(q) => Reply::json(202, &queued_answer(q, false)),
        Outcome::Replayed { kept, .. } => return replay_reply(kept),
        Outcome::Lock(lock) => {
            let message = format!("locked {} until {}", lock.target, lock.expires);
            Reply::json(200, &lock_answer(lock, message, request_id))
        }
        Outcome::Unlock(lock) => {
            let message = format!("unlocked {} (held by {})", lock.target, lock.holder);
            Reply::json(200, &lock_answer(lock, message, request_id))
        }
        Outcome::Queue(report) => Reply::json(200, &queue_answer(report, request_id)),
        Outcome::Cancelled(entry) => Reply::json(200, &cancel_answer(entry, request_id)),
        Outcome::Status(report) => Reply::json(200, &status_answer(report, request_id)),
        Outcome::Runs(report) => Reply::json(200, &runs_answer(report, request_id)),
        Outcome::Run(detail) => Reply::json(200, &run_answer(detail, request_id)),
        Outcome::Audit(records) => Reply::json(200, &audit_answer(records, request_id)),
        Outcome::Heartbeat(ack) => Reply::json(200, &heartbeat_answer(ack, request_id)),
    };
    (reply, None)
}

/// A repeated deploy's kept answer, marked replayed; a first attempt whose fate is
/// unknown replays as its error.
fn replay_reply(kept: &Kept) -> (Reply, Option<&'static str>) {
    match kept {
        Kept::Dispatched(o) => (Reply::json(200, &deploy_answer(o, true)), None),
        Kept::Queued(q) => (Reply::json(202, &queued_answer(q, true)), None),
        Kept::Unknown { request_id: first } => {
            let e = ApiError::Deploy(DeployError::Unknown {
                request_id: first.clone(),
            });
            (error_reply(&e, first, true), Some(e.code()))
        }
    }
}

fn lock_answer(lock: &Lock, message: String, request_id: &str) -> LockAnswer {
    LockAnswer {
        ok: true,
        message,
        lock: lock.clone(),
        request_id: request_id.to_owned(),
    }
}

fn queue_answer(report: &QueueReport, request_id: &str) -> QueueAnswer {
    QueueAnswer {
        ok: true,
        queue: report.entries.clone(),
        lease: report.lease.clone(),
        request_id: request_id.to_owned(),
    }
}

fn cancel_answer(entry: &QueueEntry, request_id: &str) -> CancelAnswer {
    CancelAnswer {
        ok: true,
        message: format!(
            "cancelled the queued {} of {} ({})",
            entry.action, entry.target, entry.request_id
        ),
        cancelled: entry.clone(),
        request_id: request_id.to_owned(),
    }
}

fn run_answer(detail: &RunDetail, request_id: &str) -> RunAnswer {
    RunAnswer {
        ok: true,
        run: detail.run.clone(),
        report: detail.report.clone(),
        request_id: request_id.to_owned(),
    }
}

fn audit_answer(records: &[AuditRecord], request_id: &str) -> AuditAnswer {
    AuditAnswer {
        ok: true,
        records: records.to_vec(),
        request_id: request_id.to_owned(),
    }
}

fn heartbeat_answer(ack: &HeartbeatAck, request_id: &str) -> HeartbeatAnswer {
    HeartbeatAnswer {
        ok: true,
        message: format!("heartbeat of {} recorded", ack.id),
        id: ack.id.clone(),
        received_at: ack.received_at.clone(),
        request_id: request_id.to_owned(),
    }
}

fn deploy_answer(o: &DeployOutcome, replayed: bool) -> DeployAnswer {
    let verb = if o.rollback.is_some() {
        "rollback"
    } else if o.mode.is_apply() {
        "deploy"
    } else {
        "plan"
    };
    let message = if o.dry_run.is_some() {
        format!(
            "dry run: would dispatch the {verb} of {} (nothing was sent)",
            o.target
        )
    } else {
        format!("{verb} queued for {}", o.target)
    };
    DeployAnswer {
        ok: true,
        message,
        mode: o.mode,
        target: o.target.clone(),
        ami_override: o.ami_override.clone(),
        caller: o.caller.clone(),
        revision: o.revision.clone(),
        checks: o.checks,
        run_id: o.run.as_ref().map(|r| r.run_id),
        run_url: o.run.as_ref().map(|r| r.run_url.clone()),
        rollback: o.rollback.clone(),
        warning: o.warning.clone(),
        dispatch: o.dry_run.clone(),
        request_id: o.request_id.clone(),
        replayed,
    }
}

fn queued_answer(q: &QueuedOutcome, replayed: bool) -> QueuedAnswer {
    QueuedAnswer {
        ok: true,
        queued: true,
        position: q.position,
        message: format!(
            "{} queued at position {}: it is dispatched, its checks run again, when the deploys before it have ended",
            q.target, q.position
        ),
        target: q.target.clone(),
        request_id: q.request_id.clone(),
        replayed,
    }
}

fn status_answer(report: &StatusReport, request_id: &str) -> StatusAnswer {
    StatusAnswer {
        ok: true,
        fleet: report.fleet.clone(),
        checks: StatusChecks {
            bootstrap_bucket: if report.bootstrap_bucket {
                BucketSetting::Configured
            } else {
                BucketSetting::Unset
            },
        },
        locks: report.locks.clone(),
        request_id: request_id.to_owned(),
    }
}

fn runs_answer(report: &RunsReport, request_id: &str) -> RunsAnswer {
    RunsAnswer {
        ok: true,
        runs: report.runs.clone(),
        note: report
            .dry_run
            .then(|| "dry run (no GitHub token): there are no runs".to_owned()),
        request_id: request_id.to_owned(),
    }
}

fn error_body(code: &str, message: String, request_id: &str) -> ErrorBody {
    ErrorBody {
        ok: false,
        error: code.to_owned(),
        message,
        request_id: request_id.to_owned(),
        run: None,
        lease: None,
        lock: None,
        retry_after_secs: None,
        replayed: false,
    }
}

/// The error answer; it carries the request id so a caller can quote it to an operator.
pub fn error_reply(e: &ApiError, request_id: &str, replayed: bool) -> Reply {
    let mut body = error_body(e.code(), e.to_string(), request_id);
    body.run = e.run().cloned();
    body.lease = e.lease().cloned();
    body.lock = e.lock().cloned();
    body.replayed = replayed;
    // Only a GitHub rate limit and unreadable secrets say when in the body too.
    body.retry_after_secs = match e {
        ApiError::RateLimited { .. } | ApiError::HeartbeatRateLimited { .. } => None,
        _ => e.retry_after_secs(),
    };
    let mut reply = Reply::json(status_of(e), &body);
    if let Some(secs) = e.retry_after_secs() {
        reply.headers.push(("retry-after", secs.to_string()));
    }
    reply
}

/// The HTTP status of every error.
pub fn status_of(e: &ApiError) -> u16 {
    match e {
        ApiError::Auth(AuthError::Unauthorized) => 401,
        ApiError::Auth(_) => 403,
        ApiError::RateLimited { .. } | ApiError::HeartbeatRateLimited { .. } => 429,
        ApiError::Misconfigured(_)
        | ApiError::SecretsRefused
        | ApiError::Deploy(DeployError::NotConfigured(_))
        | ApiError::Workflow(WorkflowError::NotConfigured(_)) => 500,
        ApiError::Request(RequestError::UnknownTarget(_) | RequestError::UnknownAmi(_)) => 404,
        ApiError::Request(_) | ApiError::InvalidIdempotencyKey => 400,
        ApiError::Policy(_)
        | ApiError::QueueNotAllowed
        | ApiError::AuditHumansOnly
        | ApiError::RevisionNotAllowed
        | ApiError::LockNotAllowed { .. }
        | ApiError::CancelNotAllowed(_) => 403,
        ApiError::Locked(_) => 423,
        ApiError::LockNotFound(_) | ApiError::NotQueued(_) => 404,
        ApiError::HeartbeatBotsOnly => 403,
        ApiError::RunNotFound(_)
        | ApiError::NothingDispatched
        | ApiError::InstanceNotRunning { .. } => 404,
        ApiError::Idempotency(IdempotencyError::KeyReused { .. }) => 422,
        ApiError::Idempotency(IdempotencyError::Store(_)) | ApiError::State(_) => 502,
        ApiError::Idempotency(_)
        | ApiError::DeployInFlight(_)
        | ApiError::LockHeld(_)
        | ApiError::NoPreviousImage { .. }
        | ApiError::RollbackAmbiguous { .. }
        | ApiError::BootstrapMissing { .. }
        | ApiError::HeartbeatMismatch { .. } => 409,
        ApiError::Deploy(DeployError::RateLimited { .. }) | ApiError::SecretsUnavailable { .. } => {
            503
        }
        ApiError::Deploy(_) | ApiError::Workflow(_) | ApiError::Aws(_) => 502,
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
}
