//! The audit trail in S3: one JSON object per deploy decision at
//! `audit/YYYY/MM/DD/<request_id>.json`, and the newest N read back for a human.
//!
//! Request ids are UUIDv7 (time-ordered), so within a day key order is time order.

use chrono::{DateTime, Duration as Days, Utc};
use serde::{Deserialize, Serialize};

use super::ports::{AwsError, StateStore};

/// How far back `action: audit` looks for records.
pub const LOOKBACK_DAYS: i64 = 31;

/// One decision. Never holds a secret: principals and callers are names, not tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub request_id: String,
    /// RFC 3339, UTC.
    pub time: String,
    pub principal: Option<String>,
    pub caller: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub ami_override: Option<String>,
    /// The commit asked for or dispatched (records written before revisions: absent).
    #[serde(default)]
    pub revision: Option<String>,
    /// `accepted`, `refused`, `replayed`, `guarded` or `failed`.
    pub decision: String,
    pub status: u16,
    /// The error code of a refusal or failure.
    pub error: Option<String>,
    pub run_id: Option<u64>,
    pub run_url: Option<String>,
    /// For a replayed request: the request whose answer it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_request_id: Option<String>,
}

/// Where a record made at `at` lives.
pub fn object_key(at: DateTime<Utc>, request_id: &str) -> String {
    format!("{}{request_id}.json", day_prefix(at))
}

fn day_prefix(at: DateTime<Utc>) -> String {
    at.format("audit/%Y/%m/%d/").to_string()
}

/// Writes one record.
pub async fn write<S: StateStore>(
    store: &S,
    at: DateTime<Utc>,
    record: &AuditRecord,
) -> Result<(), AwsError> {
    let body = serde_json::to_vec(record).expect("records serialize");
    store.put(&object_key(at, &record.request_id), body).await
}

/// The newest `limit` records, newest first, looking back day by day from `now`.
/// A record that cannot be read back (deleted, malformed) is skipped, not fatal.
pub async fn recent<S: StateStore>(
    store: &S,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<AuditRecord>, AwsError> {
    let mut records = Vec::new();
    for days_back in 0..LOOKBACK_DAYS {
        let prefix = day_prefix(now - Days::days(days_back));
        let keys = store.list(&prefix).await?;
        for key in keys.iter().rev() {
            if records.len() == limit {
                return Ok(records);
            }
            if let Some(stored) = store.read(key).await? {
                if let Ok(record) = serde_json::from_slice(&stored.body) {
                    records.push(record);
                }
            }
        }
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_are_dated_paths() {
        let at = Utc.with_ymd_and_hms(2026, 3, 7, 23, 59, 1).unwrap();
        assert_eq!(object_key(at, "0190-x"), "audit/2026/03/07/0190-x.json");
    }
}
