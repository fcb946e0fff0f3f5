//! The read flows: fleet status (with each host's readiness from its heartbeat and its
//! revision against the deployed one), the newest runs (each with its report's
//! headline), one run (with its report), the audit trail.

use std::collections::BTreeMap;
use std::time::Instant;

use futures_util::future::{join, join_all};
use futures_util::{stream, StreamExt};

use super::{ControlApi, RunDetail, RunsReport, StatusReport};
use crate::domain::audit::{self, AuditRecord};
use crate::domain::deployed::{flag_drift, DeployedRevisions, DEPLOYED_KEY};
use crate::domain::dispatch::{find_run, read_runs};
use crate::domain::error::ApiError;
use crate::domain::fleet::fleet_status;
use crate::domain::heartbeat::{heartbeat_key, HeartbeatRecord};
use crate::domain::ports::{BootstrapStore, FleetReader, StateStore, Workflow, WorkflowRun};
use crate::domain::readiness::{self, Observed};
use crate::domain::report::{report_key, RollReport};
use crate::domain::request::RunRef;

/// Reports read at once for one `runs` answer.
const REPORT_READS: usize = 8;

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// The registry joined with what EC2 runs, and the images they run.
    pub(super) async fn status(&self, include_terminated: bool) -> Result<StatusReport, ApiError> {
        let fleet = &self.ports.fleet;
        let live = fleet.live_instances(include_terminated).await?;
        let latest = fleet.latest_image().await?;
        let mut ami_ids: Vec<String> = live.iter().filter_map(|i| i.ami.clone()).collect();
        ami_ids.sort();
        ami_ids.dedup();
        let images = fleet.images(&ami_ids).await?;
        let mut status = fleet_status(&self.registry, live, latest, &images);
        let (observed, deployed) = match &self.ports.state {
            Some(store) => {
                let (observed, deployed) = join(self.observed(store), deployed_of(store)).await;
                (Some(observed), deployed)
            }
            None => (None, None),
        };
        readiness::apply(
            &mut status,
            observed.as_ref(),
            chrono::Utc::now(),
            &self.readiness,
        );
        flag_drift(&mut status, deployed.as_ref());
        let locks = match &self.ports.state {
            Some(store) => self.live_locks(store).await.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "locks not read for status");
                Vec::new()
            }),
            None => Vec::new(),
        };
        Ok(StatusReport {
            fleet: status,
            bootstrap_bucket: self.ports.bootstrap.is_some(),
            locks,
        })
    }

    /// Every registry host's latest heartbeat, one read each, all at once.
    async fn observed(&self, store: &S) -> BTreeMap<String, Observed> {
        let ids: Vec<String> = self.registry.iter().map(|(id, _)| id.to_string()).collect();
        let reads = join_all(ids.iter().map(|id| async move {
            let key = heartbeat_key(id);
            match store.read(&key).await {
                Ok(None) => Observed::Nothing,
                Ok(Some(stored)) => match serde_json::from_slice::<HeartbeatRecord>(&stored.body) {
                    Ok(record) => Observed::Beat(Box::new(record)),
                    Err(e) => {
                        tracing::warn!(key = %key, error = %e, "heartbeat record unreadable");
                        Observed::Unreadable
                    }
                },
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "heartbeat not read");
                    Observed::Unreadable
                }
            }
        }))
        .await;
        ids.into_iter().zip(reads).collect()
    }

    pub(super) async fn runs(&self, limit: u8) -> Result<RunsReport, ApiError> {
        let workflow = &self.ports.workflow;
        if !workflow.tracks_runs() {
            return Ok(RunsReport {
                runs: Vec::new(),
                dry_run: true,
            });
        }
        let deadline = Instant::now() + self.deploy_timing.dispatch_deadline / 2;
        let runs = read_runs(
            workflow,
            None,
            limit,
            &self.deploy_timing,
            self.ports.sleep,
            deadline,
        )
        .await?;
        // The reads made before they are streamed: a closure held across the await would
        // make this future not provably Send.
        let reads: Vec<_> = runs
            .iter()
            .map(|run| self.report_of(run.request_id.as_deref()))
            .collect();
        let reports: Vec<Option<RollReport>> =
            stream::iter(reads).buffered(REPORT_READS).collect().await;
        let runs = runs
            .into_iter()
            .zip(reports)
            .map(|(run, report)| WorkflowRun {
                summary: report.map(|r| r.headline()),
                ..run
            })
            .collect();
        Ok(RunsReport {
            runs,
            dry_run: false,
        })
    }

    /// The run's report, if the run wrote one and the state store is configured. A read
    /// that fails is logged and shows as no report: the run itself is still answered.
    async fn report_of(&self, request_id: Option<&str>) -> Option<RollReport> {
        let store = self.ports.state.as_ref()?;
        // Only an id as the API makes them: a run named by hand names no report.
        let id = request_id.filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })?;
        let key = report_key(id);
        match store.read(&key).await {
            Ok(stored) => match serde_json::from_slice(&stored?.body) {
                Ok(report) => Some(report),
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "report unreadable");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "report not read");
                None
            }
        }
    }

    pub(super) async fn run(&self, run: RunRef) -> Result<RunDetail, ApiError> {
        let workflow = &self.ports.workflow;
        if !workflow.tracks_runs() {
            return Err(ApiError::NothingDispatched);
        }
        let found = match &run {
            RunRef::RunId(id) => workflow.run(*id).await?,
            RunRef::RequestId(id) => match find_run(workflow, id).await? {
                // Again by id: the list has no steps.
                Some(listed) => workflow.run(listed.run_id).await?.or(Some(listed)),
                None => None,
            },
        };
        let found = found.ok_or_else(|| {
            ApiError::RunNotFound(match &run {
                RunRef::RunId(id) => format!("run id {id}"),
                RunRef::RequestId(id) => format!("request {id}"),
            })
        })?;
        let request_id = match &run {
            RunRef::RequestId(id) => Some(id.as_str()),
            RunRef::RunId(_) => found.request_id.as_deref(),
        };
        let report = self.report_of(request_id).await;
        Ok(RunDetail { run: found, report })
    }

    pub(super) async fn audit_records(&self, limit: u8) -> Result<Vec<AuditRecord>, ApiError> {
        let store = self.state()?;
        audit::recent(store, chrono::Utc::now(), usize::from(limit))
            .await
            .map_err(ApiError::State)
    }
}

/// The deployed revisions, one read. A failed or unreadable read is logged and flags
/// nothing: status still answers, and a drift is never guessed.
async fn deployed_of<S: StateStore>(store: &S) -> Option<DeployedRevisions> {
    match store.read(DEPLOYED_KEY).await {
        Ok(stored) => match serde_json::from_slice(&stored?.body) {
            Ok(revisions) => Some(revisions),
            Err(e) => {
                tracing::warn!(key = DEPLOYED_KEY, error = %e, "deployed revisions unreadable");
                None
            }
        },
        Err(e) => {
            tracing::warn!(key = DEPLOYED_KEY, error = %e, "deployed revisions not read");
            None
        }
    }
}
