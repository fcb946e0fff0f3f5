//! Deploy locks: an operator (or a bot, for its own host) holds deploys of a host, or of
//! the whole fleet, for a while. One object per target, `locks/<target>.json`, created
//! with `If-None-Match: *` so two lockers cannot both win; an expired lock holds nothing.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::ports::{AwsError, StateStore};
use super::request::Target;

/// The state-store prefix of locks.
pub const LOCKS_PREFIX: &str = "locks/";

/// `ttl_secs`: its default and its bounds.
pub const DEFAULT_TTL_SECS: u32 = 3600;
pub const MAX_TTL_SECS: u32 = 86_400;

/// The longest `reason` kept, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// The state-store key of the lock on `target` (`all` or a registry id).
pub fn lock_key(target: &str) -> String {
    format!("{LOCKS_PREFIX}{target}.json")
}

/// One lock, as kept and as answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// `all` or a registry instance id.
    pub target: String,
    /// Who holds it: `human:<name>` or a bot's instance id.
    pub holder: String,
    pub reason: String,
    /// RFC 3339, UTC.
    pub created: String,
    /// RFC 3339, UTC: from then on the lock holds nothing.
    pub expires: String,
}

impl Lock {
    pub fn new(
        target: &Target,
        holder: &str,
        reason: &str,
        ttl_secs: u32,
        now: DateTime<Utc>,
    ) -> Self {
        let expires = now + chrono::Duration::seconds(i64::from(ttl_secs));
        Self {
            target: target.to_string(),
            holder: holder.to_owned(),
            reason: reason.to_owned(),
            created: rfc3339(now),
            expires: rfc3339(expires),
        }
    }

    /// Whether the lock has run out at `now` (an unreadable expiry counts as run out:
    /// a lock nobody can read the end of must not hold the fleet for ever).
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.expires).map_or(true, |at| at <= now)
    }

    /// Whether a deploy of `target` touches a host this lock holds: an `all` lock holds
    /// every host, and a deploy of `all` touches every host.
    pub fn covers(&self, target: &Target) -> bool {
        self.target == "all" || matches!(target, Target::All) || self.target == target.as_str()
    }

    /// One line for people: who holds what, why, until when.
    pub fn sentence(&self) -> String {
        format!(
            "{} is locked by {} until {}: {}",
            self.target, self.holder, self.expires, self.reason
        )
    }
}

/// Every readable lock in the store, expired ones too (readers judge expiry), for
/// those that only look (the workflow's `control-api check-lock`).
pub async fn read_locks<S: StateStore>(store: &S) -> Result<Vec<Lock>, AwsError> {
    let mut locks = Vec::new();
    for key in store.list(LOCKS_PREFIX, None, 1000).await? {
        if let Some(stored) = store.read(&key).await? {
            if let Ok(lock) = serde_json::from_slice(&stored.body) {
                locks.push(lock);
            }
        }
    }
    Ok(locks)
}

/// RFC 3339 with seconds, UTC (`2026-11-20T10:00:00Z`).
pub fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn all_covers_every_host_and_every_lock_holds_all() {
        let now = Utc.with_ymd_and_hms(2026, 11, 20, 10, 0, 0).unwrap();
        let host = Target::parse("clawdinator-2").unwrap();
        let other = Target::parse("clawdinator-1").unwrap();
        let on_host = Lock::new(&host, "human:ops", "debugging", 60, now);
        assert!(on_host.covers(&host) && on_host.covers(&Target::All));
        assert!(!on_host.covers(&other));
        let on_all = Lock::new(&Target::All, "human:ops", "freeze", 60, now);
        assert!(on_all.covers(&other));
        assert_eq!(on_host.expires, "2026-11-20T10:01:00Z");
        assert!(!on_host.expired(now) && on_host.expired(now + chrono::Duration::seconds(60)));
    }
}
