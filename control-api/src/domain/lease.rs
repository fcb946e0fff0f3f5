//! The deploy lease: one object, `leases/deploy.json`, created with `If-None-Match: *`
//! before a dispatch, so of any number of deploys arriving together on any number of API
//! instances exactly one dispatches. It ends when the run's report lands, when the run
//! is seen finished, or at its expiry (the workflow's timeout and a margin).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::lock::rfc3339;

/// The state-store key of the one lease.
pub const LEASE_KEY: &str = "leases/deploy.json";

/// The default lifetime: the deploy job's 120-minute timeout and 15 minutes' margin.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(2 * 3600 + 15 * 60);

/// Who may dispatch now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The request whose run holds it.
    pub request_id: String,
    pub target: String,
    /// Who asked for that deploy.
    pub principal: String,
    /// RFC 3339, UTC.
    pub created: String,
    pub expires: String,
    /// The run, once the dispatch named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_url: Option<String>,
}

impl Lease {
    pub fn new(
        request_id: &str,
        target: &str,
        principal: &str,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> Self {
        let lifetime = chrono::Duration::from_std(lifetime).unwrap_or(chrono::Duration::hours(3));
        Self {
            request_id: request_id.to_owned(),
            target: target.to_owned(),
            principal: principal.to_owned(),
            created: rfc3339(now),
            expires: rfc3339(now + lifetime),
            run_id: None,
            run_url: None,
        }
    }

    /// Run out at `now`; an unreadable expiry counts as run out.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        DateTime::parse_from_rfc3339(&self.expires).map_or(true, |at| at <= now)
    }

    /// One line for people.
    pub fn sentence(&self) -> String {
        let run = self
            .run_url
            .as_deref()
            .map(|u| format!(", run {u}"))
            .unwrap_or_default();
        format!(
            "the deploy of {} by {} (request {}{run}) holds the fleet until it ends (at the latest {})",
            self.target, self.principal, self.request_id, self.expires
        )
    }
}
