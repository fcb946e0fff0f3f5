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
    /// `accepted`, `refused`, `replayed`, `guarded` or `failed`; `enqueue` for a deploy
    /// put in the queue; for the API's own actions (`action` `dequeue`, `lock_expired`,
    /// `lease_takeover`) `accepted`, `dropped` or `expired`.
    pub decision: String,
    /// The answer's status; 0 for the API's own actions, which answered nobody.
    pub status: u16,
    /// The error code of a refusal or failure.
    pub error: Option<String>,
    pub run_id: Option<u64>,
    pub run_url: Option<String>,
    /// For a replayed request: the request whose answer it got.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_request_id: Option<String>,
    /// The request a record is about: the queued deploy a `dequeue` or `cancel` moved,
    /// the deploy whose lease was taken over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub about_request_id: Option<String>,
    /// A lock's reason; why a queued deploy was dropped; why a lock or lease ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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

/// Keys asked for per listing call.
const PAGE: usize = 100;

/// The first slice of a day read back, in seconds; each next slice is four times longer.
const FIRST_SLICE_SECS: i64 = 300;

/// The newest `limit` records, newest first, looking back day by day from `now`.
/// Within a day the keys are read a slice of time at a time, newest slice first, with
/// `start_after` set to the slice's first possible key: however many records a day
/// holds, only the slices that hold the newest `limit` are listed, so a flood cannot
/// make the answer outlast the Lambda. A record that cannot be read back (deleted,
/// malformed) is skipped, not fatal.
pub async fn recent<S: StateStore>(
    store: &S,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<AuditRecord>, AwsError> {
    let mut records = Vec::with_capacity(limit);
    for days_back in 0..LOOKBACK_DAYS {
        let day = now - Days::days(days_back);
        let prefix = day_prefix(day);
        let start = day
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc();
        let mut top = if days_back == 0 {
            now
        } else {
            start + Days::days(1)
        };
        // The newest slice has no upper bound: records written after `now` belong in it.
        let mut upper = None;
        let mut span = Days::seconds(FIRST_SLICE_SECS);
        loop {
            let lower = (top - span).max(start);
            let from = (lower > start).then_some(lower);
            for key in keys_between(store, &prefix, from, upper)
                .await?
                .iter()
                .rev()
            {
                if records.len() == limit {
                    return Ok(records);
                }
                if let Some(stored) = store.read(key).await? {
                    if let Ok(record) = serde_json::from_slice(&stored.body) {
                        records.push(record);
                    }
                }
            }
            if records.len() == limit || from.is_none() {
                break;
            }
            (top, upper, span) = (lower, Some(lower), span * 4);
        }
        if records.len() == limit {
            break;
        }
    }
    Ok(records)
}

/// The keys under `prefix` made from `from` (or the day's start) up to, not including,
/// `upper` (or the end), ascending, read page by page.
async fn keys_between<S: StateStore>(
    store: &S,
    prefix: &str,
    from: Option<DateTime<Utc>>,
    upper: Option<DateTime<Utc>>,
) -> Result<Vec<String>, AwsError> {
    let mut after = from.map(|t| format!("{prefix}{}", time_key(t)));
    let stop = upper.map(|t| format!("{prefix}{}", time_key(t)));
    let mut keys = Vec::new();
    loop {
        let page = store.list(prefix, after.as_deref(), PAGE).await?;
        let more = page.len() == PAGE;
        after = page.last().cloned();
        for key in page {
            if stop.as_ref().is_some_and(|s| key >= *s) {
                return Ok(keys);
            }
            keys.push(key);
        }
        if !more {
            return Ok(keys);
        }
    }
}

/// The start of a UUIDv7 made at `at`: its 48-bit millisecond time as `xxxxxxxx-xxxx`.
/// It sorts before every id of that millisecond and after every earlier one.
fn time_key(at: DateTime<Utc>) -> String {
    let hex = format!("{:012x}", at.timestamp_millis().max(0));
    format!("{}-{}", &hex[..8], &hex[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn time_keys_bound_the_uuids_of_their_millisecond() {
        let at = Utc.with_ymd_and_hms(2026, 3, 7, 12, 0, 0).unwrap();
        let ms = at.timestamp_millis() as u64;
        let id = uuid::Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, ms / 1000, 0))
            .to_string();
        assert!(id.starts_with(&time_key(at)), "{id}");
        assert!(time_key(at) < id);
        assert!(time_key(at - Days::milliseconds(1)) < time_key(at));
    }

    #[test]
    fn keys_are_dated_paths() {
        let at = Utc.with_ymd_and_hms(2026, 3, 7, 23, 59, 1).unwrap();
        assert_eq!(object_key(at, "0190-x"), "audit/2026/03/07/0190-x.json");
    }
}
