//! The queue flow: put a human's deploy in the queue while another holds the lease, list
//! and cancel entries, and drain: when the lease ends (the report's event, the schedule,
//! the local timer), the oldest entry takes the lease, is claimed (`If-None-Match: *`,
//! so it is dispatched once), passes every check again and is dispatched, or is dropped
//! with a record saying why.

use serde::{Deserialize, Serialize};

use super::deploy::{Ask, DeployChecks, DeployOutcome, IdempotencyCheck, InFlightCheck};
use super::lease::{Acquired, Held};
use super::record::Note;
use super::{ControlApi, Who};
use crate::domain::auth::Principal;
use crate::domain::error::ApiError;
use crate::domain::lease::Lease;
use crate::domain::ports::{BootstrapStore, FleetReader, StateStore, Workflow, Written};
use crate::domain::queue::{claim_key, entry_key, request_id_of_key, QueueEntry, QUEUE_PREFIX};
use crate::domain::report::RollMode;
use crate::domain::request::Target;

/// A deploy put in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedOutcome {
    pub request_id: String,
    pub target: Target,
    /// 1 for the next to go.
    pub position: u32,
}

/// The queue, oldest first, and the lease it waits behind.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueReport {
    pub entries: Vec<QueueEntry>,
    pub lease: Option<Lease>,
}

/// What one drain did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DrainReport {
    /// The request ids dispatched (at most one: it then holds the lease).
    pub dispatched: Vec<String>,
    /// The request ids dropped, each with the refusal's code.
    pub dropped: Vec<(String, &'static str)>,
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// Every queued request id, oldest first (UUIDv7 order is time order).
    pub(super) async fn queued_ids(&self, store: &S) -> Result<Vec<String>, ApiError> {
        let mut ids = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = store
                .list(QUEUE_PREFIX, after.as_deref(), 1000)
                .await
                .map_err(ApiError::State)?;
            let more = page.len() == 1000;
            after = page.last().cloned();
            ids.extend(
                page.iter()
                    .filter_map(|k| request_id_of_key(k))
                    .map(str::to_owned),
            );
            if !more {
                break;
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Appends the deploy to the queue; its position counts from 1.
    pub(super) async fn enqueue(
        &self,
        store: &S,
        ask: &Ask<'_>,
        request_id: &str,
    ) -> Result<QueuedOutcome, ApiError> {
        let entry = QueueEntry {
            request_id: request_id.to_owned(),
            action: if ask.rollback { "rollback" } else { "deploy" }.to_owned(),
            target: ask.target.clone(),
            ami_override: ask.ami_override.clone(),
            revision: ask.revision.clone(),
            principal: ask.principal.to_string(),
            caller: ask.caller.clone(),
            enqueued_at: crate::domain::lock::rfc3339(chrono::Utc::now()),
        };
        let body = serde_json::to_vec(&entry).expect("entries serialize");
        store
            .create(&entry_key(request_id), body)
            .await
            .map_err(ApiError::State)?;
        let ids = self.queued_ids(store).await?;
        let position = ids
            .iter()
            .position(|id| id == request_id)
            .unwrap_or(ids.len());
        Ok(QueuedOutcome {
            request_id: request_id.to_owned(),
            target: ask.target.clone(),
            position: position as u32 + 1,
        })
    }

    /// `action: queue`.
    pub(super) async fn queue_report(&self) -> Result<QueueReport, ApiError> {
        let store = self.state()?;
        let mut entries = Vec::new();
        for id in self.queued_ids(store).await? {
            if let Some(entry) = self.entry(store, &id).await? {
                entries.push(entry);
            }
        }
        let lease = self.current_lease(store).await?;
        Ok(QueueReport { entries, lease })
    }

    async fn entry(&self, store: &S, request_id: &str) -> Result<Option<QueueEntry>, ApiError> {
        let stored = store
            .read(&entry_key(request_id))
            .await
            .map_err(ApiError::State)?;
        Ok(stored.and_then(|s| serde_json::from_slice(&s.body).ok()))
    }

    /// `action: cancel`: its requester or any human removes a queued deploy. The entry is
    /// claimed first, so a drain cannot dispatch it meanwhile.
    pub(super) async fn cancel(&self, who: &Who, request_id: &str) -> Result<QueueEntry, ApiError> {
        let store = self.state()?;
        let entry = self
            .entry(store, request_id)
            .await?
            .ok_or_else(|| ApiError::NotQueued(request_id.to_owned()))?;
        let own = entry.caller.as_ref().map(|c| c.as_str()) == Some(who.name.as_str())
            || entry.principal == who.principal;
        if who.bot.is_some() && !own {
            return Err(ApiError::CancelNotAllowed(request_id.to_owned()));
        }
        let claimed = store
            .create(&claim_key(request_id), who.name.clone().into_bytes())
            .await
            .map_err(ApiError::State)?;
        if claimed == Written::Conflict {
            return Err(ApiError::NotQueued(request_id.to_owned()));
        }
        self.remove(store, request_id).await?;
        Ok(entry)
    }

    /// Removes an entry and then its claim.
    async fn remove(&self, store: &S, request_id: &str) -> Result<(), ApiError> {
        store
            .delete(&entry_key(request_id))
            .await
            .map_err(ApiError::State)?;
        store
            .delete(&claim_key(request_id))
            .await
            .map_err(ApiError::State)
    }

    /// The run of `request_id` has ended (its report landed): its lease ends, and the
    /// queue's next deploy goes. What the report's S3 event calls.
    pub async fn lease_ended(&self, request_id: &str) -> Result<DrainReport, ApiError> {
        let store = self.state()?;
        self.release(store, request_id).await?;
        self.drain_queue().await
    }

    /// The safety net on a schedule (EventBridge; the local server's timer): a lease
    /// whose run finished, whose report landed unannounced, or that expired, ends here.
    pub async fn scheduled(&self) -> Result<DrainReport, ApiError> {
        self.drain_queue().await
    }

    /// Dispatches the oldest queued deploy if the lease is free (or its run has ended);
    /// entries that fail their checks now are dropped, each with a record, and the next
    /// one is tried.
    pub async fn drain_queue(&self) -> Result<DrainReport, ApiError> {
        let mut report = DrainReport::default();
        let Some(store) = &self.ports.state else {
            return Ok(report);
        };
        if !self.ports.workflow.tracks_runs() {
            return Ok(report);
        }
        loop {
            let Some(id) = self.queued_ids(store).await?.into_iter().next() else {
                return Ok(report);
            };
            let Some(entry) = self.entry(store, &id).await? else {
                continue;
            };
            let who = entry
                .caller
                .as_ref()
                .map_or(entry.principal.as_str(), |c| c.as_str());
            let lease = Lease::new(
                &id,
                entry.target.as_str(),
                who,
                self.lease_lifetime,
                chrono::Utc::now(),
            );
            let held = match self.acquire(store, lease).await? {
                Acquired::Busy(_) => return Ok(report),
                Acquired::Taken(held) => held,
            };
            match self.dequeue(store, entry, held).await? {
                Ok(_) => {
                    report.dispatched.push(id);
                    return Ok(report);
                }
                Err(code) => report.dropped.push((id, code)),
            }
        }
    }

    /// Claims the entry (under the lease `held`), dispatches it after every check, and
    /// removes it. `Ok(Err(code))`: dropped, the lease released.
    async fn dequeue(
        &self,
        store: &S,
        entry: QueueEntry,
        held: Held,
    ) -> Result<Result<DeployOutcome, &'static str>, ApiError> {
        let id = entry.request_id.clone();
        let claimed = store
            .create(&claim_key(&id), b"drain".to_vec())
            .await
            .map_err(ApiError::State)?;
        let result = if claimed == Written::Conflict {
            // Under the lease nobody else drains: the claim is left by a drain that did
            // not finish, which may have dispatched it. Never twice: drop it.
            Err(ApiError::NotQueued(id.clone()))
        } else {
            self.dispatch_entry(&entry, held).await
        };
        self.remove(store, &id).await?;
        let mut note = Note {
            action: "dequeue",
            principal: Some(entry.principal.clone()),
            caller: entry.caller.as_ref().map(|c| c.as_str().to_owned()),
            target: Some(entry.target.to_string()),
            ami_override: entry.ami_override.as_ref().map(|a| a.to_string()),
            revision: entry.revision.as_ref().map(|r| r.to_string()),
            about_request_id: Some(id.clone()),
            ..Note::default()
        };
        match result {
            Ok(outcome) => {
                note.decision = "accepted";
                note.run = outcome.run.clone();
                self.note(note).await;
                Ok(Ok(outcome))
            }
            Err(e) => {
                let code = e.code();
                if claimed == Written::Conflict {
                    self.release(store, &id).await?;
                }
                note.decision = "dropped";
                note.error = Some(code);
                note.reason = Some(e.to_string());
                self.note(note).await;
                Ok(Err(code))
            }
        }
    }

    /// Every check again, then the dispatch under the lease (released if it fails).
    async fn dispatch_entry(
        &self,
        entry: &QueueEntry,
        held: Held,
    ) -> Result<DeployOutcome, ApiError> {
        let principal = Principal::parse(&entry.principal).unwrap_or(Principal::Shared);
        let ask = Ask {
            principal: &principal,
            caller: entry.caller.clone(),
            target: entry.target.clone(),
            ami_override: entry.ami_override.clone(),
            rollback: entry.rollback(),
            queue: true,
            revision: entry.revision.clone(),
            is_bot: false,
            // Plans are never queued.
            mode: RollMode::Apply,
        };
        let prepared = match self.prepare(&ask).await {
            Ok(prepared) => prepared,
            Err(e) => {
                if let Some(store) = &self.ports.state {
                    self.release(store, &entry.request_id).await?;
                }
                return Err(e);
            }
        };
        let checks = DeployChecks {
            bootstrap: prepared.bootstrap,
            idempotency: IdempotencyCheck::None,
            in_flight: InFlightCheck::Queued,
        };
        self.send(ask, prepared, checks, &entry.request_id, Some(held))
            .await
    }
}
