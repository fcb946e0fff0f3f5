//! The health gate: a replaced host is ready when its latest heartbeat comes from the NEW
//! EC2 instance, was received after the apply began, says the service is active and, when
//! the roll is pinned to a revision, runs that revision. Waiting is bounded by the health
//! timeout; the canary must then stay ready for the soak, re-checked at every poll.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};

use super::ports::{Clock, HeartbeatSource};
use crate::domain::heartbeat::HeartbeatRecord;
use crate::domain::report::human_duration;

/// What a ready host's heartbeat must show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expect {
    /// The registry id.
    pub id: String,
    /// The instance the apply started.
    pub instance: String,
    /// When the apply began. The API keeps whole seconds, so the second it began in counts.
    pub since: DateTime<Utc>,
    /// The full commit the host must run, when the roll is pinned.
    pub revision: Option<String>,
}

/// How long to wait, how long to soak, how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateTiming {
    pub timeout: Duration,
    pub soak: Duration,
    pub poll: Duration,
    /// A heartbeat older than this no longer shows a ready host (status's stale age).
    pub stale: Duration,
}

/// Why a heartbeat does not show a ready host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    NoHeartbeat,
    /// Only heartbeats of the old instance, or from before the apply.
    NotFromNewInstance(String),
    Service(String),
    Revision {
        running: String,
        wanted: String,
    },
    Stale(Duration),
    Unreadable(String),
}

impl fmt::Display for NotReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHeartbeat => f.write_str("no heartbeat"),
            Self::NotFromNewInstance(i) => write!(f, "no heartbeat from the new instance {i}"),
            Self::Service(s) => write!(f, "service {s}"),
            Self::Revision { running, wanted } => {
                let short = |s: &str| s.chars().take(7).collect::<String>();
                let running = if running.is_empty() {
                    "no revision".to_owned()
                } else {
                    short(running)
                };
                write!(f, "running {running}, not {}", short(wanted))
            }
            Self::Stale(age) => write!(f, "no heartbeat for {}", human_duration(age.as_secs())),
            Self::Unreadable(e) => write!(f, "heartbeat unreadable: {e}"),
        }
    }
}

/// Whether `beat` shows the host of `expect` ready at `now`.
pub fn judge(
    beat: Option<&HeartbeatRecord>,
    expect: &Expect,
    now: DateTime<Utc>,
    stale: Duration,
) -> Result<(), NotReady> {
    let beat = beat.ok_or(NotReady::NoHeartbeat)?;
    let received = DateTime::parse_from_rfc3339(&beat.received_at).map(|t| t.with_timezone(&Utc));
    let floor = expect
        .since
        .duration_trunc(TimeDelta::seconds(1))
        .unwrap_or(expect.since);
    let new = beat.report.ec2_instance_id.as_str() == expect.instance
        && received.as_ref().is_ok_and(|t| *t >= floor);
    if !new {
        return Err(NotReady::NotFromNewInstance(expect.instance.clone()));
    }
    if !beat.report.service.is_active() {
        return Err(NotReady::Service(beat.report.service.to_string()));
    }
    if let Some(wanted) = &expect.revision {
        if beat.report.revision.as_str() != wanted {
            return Err(NotReady::Revision {
                running: beat.report.revision.to_string(),
                wanted: wanted.clone(),
            });
        }
    }
    let age = received.map_or(Duration::MAX, |t| (now - t).to_std().unwrap_or_default());
    if age > stale {
        return Err(NotReady::Stale(age));
    }
    Ok(())
}

async fn look(
    source: &impl HeartbeatSource,
    clock: &impl Clock,
    expect: &Expect,
    stale: Duration,
) -> Result<(), NotReady> {
    match source.latest(&expect.id).await {
        Ok(beat) => judge(beat.as_ref(), expect, clock.now(), stale),
        Err(e) => Err(NotReady::Unreadable(e.to_string())),
    }
}

/// Waits until the host is ready; `Ok` with when it was, or why it was not by the timeout.
pub async fn wait_ready(
    source: &impl HeartbeatSource,
    clock: &impl Clock,
    expect: &Expect,
    timing: &GateTiming,
) -> Result<DateTime<Utc>, String> {
    let start = clock.now();
    loop {
        let problem = match look(source, clock, expect, timing.stale).await {
            Ok(()) => return Ok(clock.now()),
            Err(p) => p,
        };
        let waited = (clock.now() - start).to_std().unwrap_or_default();
        if waited >= timing.timeout {
            return Err(format!(
                "{problem} after {}",
                human_duration(timing.timeout.as_secs())
            ));
        }
        clock.sleep(timing.poll.min(timing.timeout - waited)).await;
    }
}

/// After the canary is ready: it must stay ready for the soak, looked at every poll. A
/// heartbeat that cannot be read is not held against the host.
pub async fn soak(
    source: &impl HeartbeatSource,
    clock: &impl Clock,
    expect: &Expect,
    timing: &GateTiming,
) -> Result<(), String> {
    let start = clock.now();
    loop {
        let soaked = (clock.now() - start).to_std().unwrap_or_default();
        if soaked >= timing.soak {
            return Ok(());
        }
        clock.sleep(timing.poll.min(timing.soak - soaked)).await;
        match look(source, clock, expect, timing.stale).await {
            Ok(()) | Err(NotReady::Unreadable(_)) => {}
            Err(problem) => return Err(format!("unhealthy during the soak: {problem}")),
        }
    }
}
