//! The audit trail of a decision: one log line for every request, and for deploy
//! decisions and refused callers a durable record in the state store. Built from the
//! typed outcome once the transport knows the answer's status.

use std::time::Instant;

use super::{ControlApi, Decision, Kept, Outcome};
use crate::domain::audit::{self, AuditRecord};
use crate::domain::auth::Principal;
use crate::domain::error::ApiError;
use crate::domain::ports::{BootstrapStore, FleetReader, RunLink, StateStore, Workflow};
use crate::domain::refusal_budget::Verdict;
use crate::domain::request::{Caller, Command};

/// What is known of who asked for what, as far as the request got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub principal: Option<String>,
    pub caller: Option<String>,
    pub action: Option<&'static str>,
    pub target: Option<String>,
    pub ami_override: Option<String>,
    pub revision: Option<String>,
    /// A lock's reason.
    pub reason: Option<String>,
    /// The queued request a cancel is about.
    pub about_request_id: Option<String>,
}

impl Facts {
    pub(super) fn of(principal: &Principal, command: &Command, caller: &Option<Caller>) -> Self {
        let (target, ami_override) = match command {
            Command::Deploy {
                target,
                ami_override,
                ..
            }
            | Command::Plan {
                target,
                ami_override,
                ..
            } => (Some(target), ami_override.as_ref()),
            Command::Rollback { target, .. }
            | Command::Lock { target, .. }
            | Command::Unlock { target, .. } => (Some(target), None),
            _ => (None, None),
        };
        let reason = match command {
            Command::Lock { reason, .. } => Some(reason.clone()),
            _ => None,
        };
        let about_request_id = match command {
            Command::Cancel { request_id, .. } => Some(request_id.clone()),
            _ => None,
        };
        Self {
            principal: Some(principal.to_string()),
            caller: caller.as_ref().map(|c| c.as_str().to_owned()),
            action: Some(command.action()),
            target: target.map(|t| t.to_string()),
            ami_override: ami_override.map(|a| a.to_string()),
            revision: command.revision().map(|r| r.to_string()),
            reason,
            about_request_id,
        }
    }
}

/// A record of something the API did on its own (a drain's dequeue, an expired lock
/// removed, a lease taken over): nobody's request, so a fresh id and status 0.
#[derive(Debug, Clone, Default)]
pub(super) struct Note {
    pub action: &'static str,
    pub decision: &'static str,
    pub principal: Option<String>,
    pub caller: Option<String>,
    pub target: Option<String>,
    pub ami_override: Option<String>,
    pub revision: Option<String>,
    pub about_request_id: Option<String>,
    pub reason: Option<String>,
    pub error: Option<&'static str>,
    pub run: Option<crate::domain::ports::RunLink>,
}

/// The audit decision word: `accepted`, `replayed`, `guarded`, `failed` or `refused`.
fn decision_word(result: &Result<Outcome, ApiError>, status: u16) -> &'static str {
    match result {
        Ok(Outcome::Replayed { .. }) => "replayed",
        Ok(Outcome::Queued(_)) => "enqueue",
        Ok(_) => "accepted",
        Err(e) if e.is_guard() => "guarded",
        Err(_) if status >= 500 => "failed",
        Err(_) => "refused",
    }
}

/// The run a decision started or replayed, and the request whose answer a repeat got.
fn run_of(result: &Result<Outcome, ApiError>) -> (Option<&RunLink>, Option<&str>) {
    match result {
        Ok(Outcome::Deployed(o)) => (o.run.as_ref(), None),
        Ok(Outcome::Replayed {
            first_request_id,
            kept,
        }) => {
            let run = match kept {
                Kept::Dispatched(o) => o.run.as_ref(),
                Kept::Unknown { .. } | Kept::Queued(_) => None,
            };
            (run, Some(first_request_id))
        }
        _ => (None, None),
    }
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// Writes the decision's audit line and, for deploy decisions and refused callers,
    /// its audit record. `status` and `error` are the answer's, as the caller saw it.
    /// Refusals over their source's budget get neither: the bound is checked before any
    /// S3 write, and the count of what was left out is logged once per source.
    pub async fn record(&self, decision: &Decision, status: u16, error: Option<&str>) {
        let now = Instant::now();
        for (source, suppressed) in self.refusals.ended(now) {
            log_suppressed(&source, suppressed);
        }
        let refused = decision
            .result
            .as_ref()
            .err()
            .is_some_and(ApiError::refuses_principal);
        if refused {
            match self.refusals.admit(&decision.source, now) {
                Verdict::Suppress => return,
                Verdict::Record { suppressed_before } if suppressed_before > 0 => {
                    log_suppressed(&decision.source, suppressed_before)
                }
                Verdict::Record { .. } => {}
            }
        }
        let facts = &decision.facts;
        // The line from the decision's own fields: most requests end here (no state
        // bucket, or a read), so the record is only built for a write.
        tracing::info!(
            target: "audit",
            request_id = %decision.request_id,
            principal = facts.principal.as_deref(),
            caller = facts.caller.as_deref(),
            action = facts.action,
            deploy_target = facts.target.as_deref(),
            decision = decision_word(&decision.result, status),
            status,
            error,
            run_id = run_of(&decision.result).0.map(|r| r.run_id),
            latency_us = decision.started.elapsed().as_micros() as u64,
            "request"
        );
        // Deploy decisions and refused credentials or policy get a durable record;
        // reads get the log line only.
        let durable = matches!(
            facts.action,
            Some("deploy" | "rollback" | "plan" | "lock" | "unlock" | "cancel")
        ) || refused;
        let (true, Some(store)) = (durable, &self.ports.state) else {
            return;
        };
        let at = chrono::Utc::now();
        let record = audit_record(decision, status, error, at);
        // The decision stands either way; a lost record is an operator alarm, not the caller's problem.
        if let Err(e) = audit::write(store, at, &record).await {
            tracing::error!(request_id = %record.request_id, error = %e, "audit record not written");
        }
    }

    /// Writes the log line and audit record of something the API did on its own.
    pub(super) async fn note(&self, note: Note) {
        let at = chrono::Utc::now();
        let record = AuditRecord {
            request_id: crate::domain::request_id::new_request_id(),
            time: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            principal: note.principal,
            caller: note.caller,
            action: Some(note.action.to_owned()),
            target: note.target,
            ami_override: note.ami_override,
            revision: note.revision,
            decision: note.decision.to_owned(),
            status: 0,
            error: note.error.map(str::to_owned),
            run_id: note.run.as_ref().map(|r| r.run_id),
            run_url: note.run.map(|r| r.run_url),
            first_request_id: None,
            about_request_id: note.about_request_id,
            reason: note.reason,
        };
        tracing::info!(
            target: "audit",
            request_id = %record.request_id,
            action = note.action,
            deploy_target = record.target.as_deref(),
            decision = note.decision,
            about_request_id = record.about_request_id.as_deref(),
            error = note.error,
            reason = record.reason.as_deref(),
            "api action"
        );
        let Some(store) = &self.ports.state else {
            return;
        };
        if let Err(e) = audit::write(store, at, &record).await {
            tracing::error!(request_id = %record.request_id, error = %e, "audit record not written");
        }
    }
}

/// The audit record of a decision, as the caller saw it answered.
fn audit_record(
    decision: &Decision,
    status: u16,
    error: Option<&str>,
    at: chrono::DateTime<chrono::Utc>,
) -> AuditRecord {
    let Decision {
        request_id,
        result,
        facts,
        ..
    } = decision;
    let (run, first_request_id) = run_of(result);
    let ami_override = match result {
        // A rollback's image is chosen by the flow.
        Ok(Outcome::Deployed(o)) => o.ami_override.as_ref().map(|a| a.to_string()),
        _ => facts.ami_override.clone(),
    };
    // The commit dispatched, else the one asked for.
    let revision = match result {
        Ok(Outcome::Deployed(o)) => o.revision.as_ref().map(|r| r.to_string()),
        _ => facts.revision.clone(),
    };
    AuditRecord {
        request_id: request_id.clone(),
        time: at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        principal: facts.principal.clone(),
        caller: facts.caller.clone(),
        action: facts.action.map(str::to_owned),
        target: facts.target.clone(),
        ami_override,
        revision,
        decision: decision_word(result, status).to_owned(),
        status,
        error: error.map(str::to_owned),
        run_id: run.map(|r| r.run_id),
        run_url: run.map(|r| r.run_url.clone()),
        first_request_id: first_request_id.map(str::to_owned),
        about_request_id: match result {
            Ok(Outcome::Cancelled(entry)) => Some(entry.request_id.clone()),
            _ => facts.about_request_id.clone(),
        },
        reason: facts.reason.clone(),
    }
}

/// The one line that stands for the refusals of `source` that were answered but not
/// recorded. `source` is an ARN, a principal or an address: never a credential.
fn log_suppressed(source: &str, suppressed: u32) {
    tracing::warn!(
        target: "audit",
        source,
        suppressed,
        "refusals over the per-source budget were answered but not recorded"
    );
}

/// The audit line of a request answered before any control API could decide it (the
/// transport refused it, or the secrets are unreadable): nothing known of the caller.
pub fn log_unready(request_id: &str, status: u16, error: &str) {
    tracing::info!(
        target: "audit",
        request_id = %request_id,
        decision = if status >= 500 { "failed" } else { "refused" },
        status,
        error,
        "request"
    );
}
