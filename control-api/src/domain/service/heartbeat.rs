//! The heartbeat flow: a host reports itself, the report is checked against EC2 (through
//! a short cache, so a whole fleet reporting every minute costs a few EC2 calls) and kept
//! as the host's latest heartbeat in the state bucket. No durable audit record: the
//! request's audit line is the trail (a fleet a minute would flood `audit/`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ControlApi;
use crate::domain::auth::Principal;
use crate::domain::error::ApiError;
use crate::domain::heartbeat::{heartbeat_key, HeartbeatRecord, HeartbeatReport};
use crate::domain::ports::{BootstrapStore, FleetReader, LiveInstance, StateStore, Workflow};
use crate::domain::rate_limit::RateLimiter;
use crate::domain::registry::InstanceId;

/// What an accepted heartbeat comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// The registry id of the host.
    pub id: String,
    pub received_at: String,
}

/// The per-process heartbeat state: one per host per 10 s, and the live instances as
/// EC2 listed them lately.
#[derive(Debug)]
pub(super) struct Heartbeats {
    limiter: RateLimiter,
    cache: Mutex<Option<(Instant, Arc<Vec<LiveInstance>>)>>,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self {
            limiter: RateLimiter::new(1, Duration::from_secs(10)),
            cache: Mutex::new(None),
        }
    }
}

/// How long one listing of the fleet serves every host's heartbeat.
const CACHE_FOR: Duration = Duration::from_secs(30);
/// An instance not in a listing older than this is looked for again (a fresh launch),
/// so a host cannot make the API call EC2 more than every few seconds.
const RELIST_AFTER: Duration = Duration::from_secs(5);

impl Heartbeats {
    fn cached(&self, now: Instant) -> Option<(Duration, Arc<Vec<LiveInstance>>)> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .map(|(at, list)| (now.duration_since(*at), list.clone()))
            .filter(|(age, _)| *age < CACHE_FOR)
    }

    fn store(&self, at: Instant, list: Vec<LiveInstance>) -> Arc<Vec<LiveInstance>> {
        let list = Arc::new(list);
        *self.cache.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, list.clone()));
        list
    }
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// Checks and keeps the heartbeat of `host` (already known to be the caller itself).
    pub(super) async fn heartbeat(
        &self,
        host: &InstanceId,
        principal: &Principal,
        report: HeartbeatReport,
    ) -> Result<HeartbeatAck, ApiError> {
        let store = self.state()?;
        if let Err(wait) = self.heartbeats.limiter.admit(host.as_str(), Instant::now()) {
            return Err(ApiError::HeartbeatRateLimited {
                host: host.to_string(),
                retry_after_secs: wait.as_millis().div_ceil(1000) as u64,
            });
        }
        self.check_instance(host, report.ec2_instance_id.as_str())
            .await?;
        let received_at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let record = HeartbeatRecord {
            id: host.to_string(),
            report,
            received_at: received_at.clone(),
            principal: principal.to_string(),
        };
        let body = serde_json::to_vec(&record).expect("a heartbeat record serializes");
        store
            .put(&heartbeat_key(host.as_str()), body)
            .await
            .map_err(ApiError::State)?;
        tracing::info!(
            target: "heartbeat",
            host = %host,
            ec2_instance_id = %record.report.ec2_instance_id,
            ami = %record.report.ami,
            revision = %record.report.revision,
            service = %record.report.service,
            agent = %record.report.agent,
            "heartbeat"
        );
        Ok(HeartbeatAck {
            id: host.to_string(),
            received_at,
        })
    }

    /// The reported instance must be live and carry the host's `Name` tag.
    async fn check_instance(&self, host: &InstanceId, ec2_id: &str) -> Result<(), ApiError> {
        let name = self
            .registry
            .get(host.as_str())
            .map(|(_, e)| e.host.clone())
            .unwrap_or_else(|| host.to_string());
        let now = Instant::now();
        let list = match self.heartbeats.cached(now) {
            Some((age, list))
                if age < RELIST_AFTER || list.iter().any(|i| i.ec2_instance_id == ec2_id) =>
            {
                list
            }
            _ => {
                let fresh = self.ports.fleet.live_instances(false).await?;
                self.heartbeats.store(now, fresh)
            }
        };
        let found = match list.iter().find(|i| i.ec2_instance_id == ec2_id) {
            None => "no fleet instance has that id".to_owned(),
            Some(i) if !matches!(i.state.as_str(), "running" | "pending") => {
                format!("it is {}", i.state)
            }
            Some(i) if i.name.as_deref() != Some(name.as_str()) => format!(
                "it is named {}",
                i.name.as_deref().unwrap_or("nothing (no Name tag)")
            ),
            Some(_) => return Ok(()),
        };
        Err(ApiError::HeartbeatMismatch {
            host: name,
            ec2_instance_id: ec2_id.to_owned(),
            found,
        })
    }
}
