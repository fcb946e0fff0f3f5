//! The deploy queue: a human's `"queue": true` deploy while another holds the lease is
//! kept as `queue/<request_id>.json`. Request ids are UUIDv7, so key order is arrival
//! order (FIFO). A drain claims an entry with `queue/claims/<request_id>.json`
//! (`If-None-Match: *`) so no entry is dispatched twice.

use serde::{Deserialize, Serialize};

use super::request::{AmiId, Caller, Revision, Target};

pub const QUEUE_PREFIX: &str = "queue/";
const CLAIMS_PREFIX: &str = "queue/claims/";

pub fn entry_key(request_id: &str) -> String {
    format!("{QUEUE_PREFIX}{request_id}.json")
}

pub fn claim_key(request_id: &str) -> String {
    format!("{CLAIMS_PREFIX}{request_id}.json")
}

/// The request id of an entry's key; `None` for claims and anything else.
pub fn request_id_of_key(key: &str) -> Option<&str> {
    if key.starts_with(CLAIMS_PREFIX) {
        return None;
    }
    let id = key.strip_prefix(QUEUE_PREFIX)?.strip_suffix(".json")?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

/// One queued deploy or rollback: what was asked and by whom, so its dispatch can run
/// every check again when its turn comes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueEntry {
    /// The request that queued it; its run will carry this id.
    pub request_id: String,
    /// `deploy` or `rollback`.
    pub action: String,
    pub target: Target,
    pub ami_override: Option<AmiId>,
    pub revision: Option<Revision>,
    pub principal: String,
    pub caller: Option<Caller>,
    /// RFC 3339, UTC.
    pub enqueued_at: String,
}

impl QueueEntry {
    pub fn rollback(&self) -> bool {
        self.action == "rollback"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_not_entries() {
        let id = "0190c0de-0000-7000-8000-000000000001";
        assert_eq!(request_id_of_key(&entry_key(id)), Some(id));
        assert_eq!(request_id_of_key(&claim_key(id)), None);
        assert_eq!(request_id_of_key("queue/x/y.json"), None);
    }
}
