//! The lease flow: take `leases/deploy.json` before a dispatch (created with
//! `If-None-Match: *`; a lease whose run has ended is replaced by its etag, one writer
//! winning), name the run in it once dispatched, and release it (by its etag, so never a
//! successor's) when the dispatch did not happen or its run has ended.

use chrono::Utc;

use super::record::Note;
use super::ControlApi;
use crate::domain::dispatch::find_run;
use crate::domain::error::ApiError;
use crate::domain::lease::{Lease, LEASE_KEY};
use crate::domain::ports::{
    BootstrapStore, FleetReader, RunLink, StateStore, Stored, Workflow, Written,
};
use crate::domain::report::report_key;

/// Attempts at a contended lease before answering with whoever holds it then.
const ROUNDS: usize = 4;

/// The lease a dispatch holds: what it wrote and the version it wrote.
#[derive(Debug, Clone)]
pub(super) struct Held {
    pub lease: Lease,
    pub etag: String,
}

/// How taking the lease went.
pub(super) enum Acquired {
    Taken(Held),
    /// Another request's deploy holds it (and has not ended).
    Busy(Lease),
}

/// Why a lease no longer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    Expired,
    Reported,
    RunFinished,
    Unreadable,
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// Takes the lease for `lease.request_id`, unless another deploy holds it.
    pub(super) async fn acquire(&self, store: &S, lease: Lease) -> Result<Acquired, ApiError> {
        let body = serde_json::to_vec(&lease).expect("leases serialize");
        let mut last = None;
        for _ in 0..ROUNDS {
            if let Written::Done { etag } = store
                .create(LEASE_KEY, body.clone())
                .await
                .map_err(ApiError::State)?
            {
                return Ok(Acquired::Taken(Held { lease, etag }));
            }
            let Some(stored) = store.read(LEASE_KEY).await.map_err(ApiError::State)? else {
                continue;
            };
            let current = parse(&stored);
            let ended = match &current {
                Some(holder) => self.ended(store, holder).await,
                None => Some(Ended::Unreadable),
            };
            let Some(ended) = ended else {
                return Ok(Acquired::Busy(current.expect("a live lease was read")));
            };
            let written = store
                .replace(LEASE_KEY, body.clone(), &stored.etag)
                .await
                .map_err(ApiError::State)?;
            if let Written::Done { etag } = written {
                if matches!(ended, Ended::Expired | Ended::Unreadable) {
                    self.note_takeover(current.as_ref(), &lease, ended).await;
                }
                return Ok(Acquired::Taken(Held { lease, etag }));
            }
            last = current;
        }
        // Every round lost to another writer: one of them holds it now.
        match store.read(LEASE_KEY).await.map_err(ApiError::State)? {
            Some(stored) => parse(&stored).or(last).map(Acquired::Busy),
            None => last.map(Acquired::Busy),
        }
        .ok_or_else(|| {
            ApiError::State(crate::domain::ports::AwsError(
                "the deploy lease kept changing; try again".to_owned(),
            ))
        })
    }

    /// Whether `lease` has ended: run out, its run's report landed, or its run finished.
    /// A look that fails counts as not ended: a lease is never taken on a guess.
    async fn ended(&self, store: &S, lease: &Lease) -> Option<Ended> {
        if lease.expired(Utc::now()) {
            return Some(Ended::Expired);
        }
        if let Ok(Some(_)) = store.read(&report_key(&lease.request_id)).await {
            return Some(Ended::Reported);
        }
        let workflow = &self.ports.workflow;
        let run = match lease.run_id {
            Some(id) => workflow.run(id).await,
            None => find_run(workflow, &lease.request_id).await,
        };
        match run {
            Ok(Some(run)) if run.status == "completed" => Some(Ended::RunFinished),
            _ => None,
        }
    }

    /// Names the dispatched run in the lease, so others can tell when it ends.
    pub(super) async fn attach_run(&self, store: &S, held: &Held, run: Option<&RunLink>) {
        let Some(run) = run else { return };
        let mut lease = held.lease.clone();
        lease.run_id = Some(run.run_id);
        lease.run_url = Some(run.run_url.clone());
        let body = serde_json::to_vec(&lease).expect("leases serialize");
        if let Err(e) = store.replace(LEASE_KEY, body, &held.etag).await {
            tracing::warn!(request_id = %lease.request_id, error = %e, "run not written into the lease");
        }
    }

    /// Ends the lease of `request_id`, if it is still that request's. The delete is
    /// conditional on the version read: a lease another deploy took over in between (this
    /// one's run ended, or it expired) is theirs, and a late or repeated end of this
    /// request must not remove it.
    pub(super) async fn release(&self, store: &S, request_id: &str) -> Result<bool, ApiError> {
        let Some(stored) = store.read(LEASE_KEY).await.map_err(ApiError::State)? else {
            return Ok(false);
        };
        if parse(&stored).is_some_and(|l| l.request_id != request_id) {
            return Ok(false);
        }
        store
            .delete_if(LEASE_KEY, &stored.etag)
            .await
            .map_err(ApiError::State)
    }

    /// The lease as it is now, if any.
    pub(super) async fn current_lease(&self, store: &S) -> Result<Option<Lease>, ApiError> {
        let stored = store.read(LEASE_KEY).await.map_err(ApiError::State)?;
        Ok(stored.as_ref().and_then(parse))
    }

    async fn note_takeover(&self, old: Option<&Lease>, new: &Lease, ended: Ended) {
        self.note(Note {
            action: "lease_takeover",
            decision: "accepted",
            principal: Some(new.principal.clone()),
            target: Some(new.target.clone()),
            about_request_id: old.map(|l| l.request_id.clone()),
            reason: Some(match (ended, old) {
                (Ended::Expired, Some(old)) => format!(
                    "the lease of request {} expired at {}; taken for request {}",
                    old.request_id, old.expires, new.request_id
                ),
                _ => format!(
                    "the lease could not be read; taken for request {}",
                    new.request_id
                ),
            }),
            ..Note::default()
        })
        .await;
    }
}

fn parse(stored: &Stored) -> Option<Lease> {
    serde_json::from_slice(&stored.body).ok()
}
