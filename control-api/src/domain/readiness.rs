//! Whether each registry host actually works: the status join of desired (registry),
//! actual (EC2) and observed (the host's latest heartbeat), with one sentence saying why
//! for every host that is not ready or differs from what the registry wants.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::fleet::{Flag, FleetStatus, InstanceStatus};
use super::heartbeat::HeartbeatRecord;

/// A host's readiness, as status shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// A fresh heartbeat from its current instance, with the service active.
    Ready,
    /// A fresh heartbeat, but the service is not active.
    Unhealthy,
    /// No heartbeat from its current instance yet, launched within the boot grace.
    Booting,
    /// A live instance without a fresh heartbeat.
    Stale,
    /// No live instance.
    Missing,
    /// Heartbeats cannot be read (no state bucket); also what a newer server's word
    /// reads as.
    #[default]
    #[serde(other)]
    Unknown,
}

impl Readiness {
    pub const ALL: [Self; 6] = [
        Self::Ready,
        Self::Unhealthy,
        Self::Booting,
        Self::Stale,
        Self::Missing,
        Self::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Unhealthy => "unhealthy",
            Self::Booting => "booting",
            Self::Stale => "stale",
            Self::Missing => "missing",
            Self::Unknown => "unknown",
        }
    }

    /// Its count's key in the status summary: `missing` is taken by the flag count
    /// there, so that one is `readiness_missing`.
    pub fn summary_key(self) -> &'static str {
        match self {
            Self::Missing => "readiness_missing",
            other => other.as_str(),
        }
    }
}

/// How old a heartbeat may be, and how long a new instance may take to send its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadinessTiming {
    /// `FLEET_HEARTBEAT_STALE_SECS`: older heartbeats are stale.
    pub stale: Duration,
    /// `FLEET_BOOT_GRACE_SECS`: an instance this young without a heartbeat is booting.
    pub boot_grace: Duration,
}

impl Default for ReadinessTiming {
    /// 180 s (three missed minutes of a 60 s timer), 900 s (a NixOS boot with its
    /// first activation and secrets).
    fn default() -> Self {
        Self {
            stale: Duration::from_secs(180),
            boot_grace: Duration::from_secs(900),
        }
    }
}

/// What the state bucket holds for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Nothing,
    Beat(Box<HeartbeatRecord>),
    /// The read failed (logged by the caller): said so per host, status still answers.
    Unreadable,
}

/// Sets every host's readiness, heartbeat facts and `why`, and counts readiness in the
/// summary. `observed` is `None` without a state bucket; else it has each registry id.
pub fn apply(
    fleet: &mut FleetStatus,
    observed: Option<&BTreeMap<String, Observed>>,
    now: DateTime<Utc>,
    timing: &ReadinessTiming,
) {
    let latest = fleet.latest_ami.as_ref().map(|i| i.id.clone());
    for status in &mut fleet.instances {
        let seen = observed.map(|m| m.get(&status.id).unwrap_or(&Observed::Nothing));
        let reason = judge(status, seen, now, timing);
        let why: Vec<String> = reason
            .into_iter()
            .chain(drift(status, latest.as_deref()))
            .collect();
        status.why = (!why.is_empty()).then(|| why.join("; "));
    }
    for r in Readiness::ALL {
        let n = fleet.instances.iter().filter(|s| s.readiness == r).count();
        fleet.summary.insert(r.summary_key().to_owned(), n);
    }
}

/// The host's readiness, and the sentence saying why when it is not ready.
fn judge(
    s: &mut InstanceStatus,
    seen: Option<&Observed>,
    now: DateTime<Utc>,
    timing: &ReadinessTiming,
) -> Option<String> {
    if s.ec2_instance_id.is_none() || s.flags.contains(&Flag::Missing) {
        s.readiness = Readiness::Missing;
        return Some(match &s.state {
            Some(state) => format!("its instance is {state}, nothing live"),
            None => "no live instance".to_owned(),
        });
    }
    let beat = match seen {
        None => {
            s.readiness = Readiness::Unknown;
            return Some("no heartbeats without a state bucket (FLEET_STATE_BUCKET)".to_owned());
        }
        Some(Observed::Unreadable) => {
            s.readiness = Readiness::Unknown;
            return Some("its heartbeat could not be read from the state bucket".to_owned());
        }
        Some(Observed::Nothing) => None,
        // A heartbeat of an instance it replaced says nothing about this one.
        Some(Observed::Beat(b)) => Some(b)
            .filter(|b| s.ec2_instance_id.as_deref() == Some(b.report.ec2_instance_id.as_str())),
    };
    let Some(beat) = beat else {
        return unheard(s, now, timing);
    };
    let age = since(&beat.received_at, now);
    s.revision = Some(beat.report.revision.to_string());
    s.service = Some(beat.report.service.to_string());
    s.heartbeat_age_secs = age;
    match age {
        Some(age) if age < timing.stale.as_secs() => {
            if beat.report.service.is_active() {
                s.readiness = Readiness::Ready;
                None
            } else {
                s.readiness = Readiness::Unhealthy;
                Some(format!("service is {}", beat.report.service))
            }
        }
        _ => {
            s.readiness = Readiness::Stale;
            Some(match age {
                Some(age) => format!("no heartbeat for {}", human(age)),
                None => "its last heartbeat has no readable time".to_owned(),
            })
        }
    }
}

/// A live instance with no heartbeat of its own: booting while young, else stale.
fn unheard(s: &mut InstanceStatus, now: DateTime<Utc>, timing: &ReadinessTiming) -> Option<String> {
    let launched = s.launch_time.as_deref().and_then(|t| since(t, now));
    match launched {
        Some(age) if age < timing.boot_grace.as_secs() => {
            s.readiness = Readiness::Booting;
            Some(format!("launched {} ago, no heartbeat yet", human(age)))
        }
        Some(age) => {
            s.readiness = Readiness::Stale;
            Some(format!("no heartbeat since it launched {} ago", human(age)))
        }
        None => {
            s.readiness = Readiness::Stale;
            Some("no heartbeat from its instance".to_owned())
        }
    }
}

/// How the live instance differs from what is wanted, one phrase each.
fn drift(s: &InstanceStatus, latest: Option<&str>) -> Vec<String> {
    let mut why = Vec::new();
    if s.readiness != Readiness::Missing {
        if let Some(state) = s.state.as_deref().filter(|st| *st != "running") {
            why.push(format!("its instance is {state}"));
        }
    }
    if s.flags.contains(&Flag::StaleAmi) {
        let ami = s.ami.as_deref().unwrap_or("?");
        why.push(format!(
            "runs {ami}, newest fleet image is {}",
            latest.unwrap_or("?")
        ));
    }
    if s.flags.contains(&Flag::TypeDrift) {
        why.push(format!(
            "type {}, registry says {}",
            s.instance_type.as_deref().unwrap_or("?"),
            s.desired_instance_type
        ));
    }
    why
}

/// Whole seconds from an RFC 3339 time to `now` (0 for a time ahead of this clock).
fn since(time: &str, now: DateTime<Utc>) -> Option<u64> {
    let t = DateTime::parse_from_rfc3339(time).ok()?;
    Some(u64::try_from((now - t.with_timezone(&Utc)).num_seconds()).unwrap_or(0))
}

/// `45 s`, `12 min`, `5 h`, `3 d`.
pub fn human(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 120 * 60 => format!("{} min", s / 60),
        s if s < 48 * 3600 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        assert_eq!(human(45), "45 s");
        assert_eq!(human(12 * 60 + 5), "12 min");
        assert_eq!(human(5 * 3600), "5 h");
        assert_eq!(human(3 * 86_400), "3 d");
    }

    #[test]
    fn missing_keeps_its_flag_key() {
        assert_eq!(Readiness::Missing.summary_key(), "readiness_missing");
        assert_eq!(Readiness::Ready.summary_key(), "ready");
        let r: Readiness = serde_json::from_str(r#""rebooting""#).unwrap();
        assert_eq!(r, Readiness::Unknown);
    }
}
