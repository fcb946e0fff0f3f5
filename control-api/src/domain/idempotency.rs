//! Idempotency keys: the first deploy with a key dispatches, a repeat within 24 h gets the
//! first answer back and dispatches nothing, however many arrive at once.
//!
//! One S3 object per (principal, key), moved through its states only by conditional writes:
//! `pending` (created with `If-None-Match: *`: exactly one request wins), then `done` with
//! the answer, or `released` when the request provably dispatched nothing, so that the same
//! key may try again. Expired and released records are taken over with `If-Match`.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ports::{AwsError, Sleep, StateStore, Stored, Written};

/// How long a key is remembered.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// A `pending` record older than this belongs to a request that died (the Lambda timeout
/// is 30 s): nobody will finish it.
pub const PENDING_STALE_AFTER: Duration = Duration::from_secs(90);

/// A client's `Idempotency-Key`: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=255).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic());
        ok.then(|| Self(s.to_owned()))
    }

    /// The object key: a digest, so a key is never a path and principals never share one.
    pub fn object_key(&self, principal: &str) -> String {
        format!("idempotency/{}.json", sha256_hex(&[principal, &self.0]))
    }
}

/// The hex SHA-256 of the parts, each ended by a newline (unambiguous: parts have none).
pub fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum State {
    Pending,
    Done,
    Released,
}

/// One key's record; `T` is what the first request kept for repeats (the service's
/// typed outcome).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct Record<T> {
    state: State,
    /// Of the request's meaning (action, target, image, caller, queue): the same key with
    /// another request is a client bug, refused rather than answered with the wrong reply.
    fingerprint: String,
    request_id: String,
    created_unix: u64,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    kept: Option<T>,
}

/// Who holds the key now: this request, until it settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    object_key: String,
    etag: String,
    fingerprint: String,
    request_id: String,
    created_unix: u64,
}

/// What a request with a key may do.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim<T> {
    /// First with this key: go on, then [`settle`].
    Owned(Lease),
    /// A repeat: answer with what the first request (`request_id`) kept, do nothing else.
    Replay { request_id: String, kept: T },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdempotencyError {
    #[error("Idempotency-Key was already used for a different request ({request_id}); use a new key for a new request")]
    KeyReused { request_id: String },
    #[error("a request with this Idempotency-Key ({request_id}) is still being handled; try again in a few seconds")]
    InProgress { request_id: String },
    #[error("a request with this Idempotency-Key ({request_id}) stopped before it finished and may have dispatched; check `fleet runs` and deploy again with a new key if nothing ran")]
    Unresolved { request_id: String },
    #[error("the idempotency record could not be read or written: {0}")]
    Store(AwsError),
}

impl From<AwsError> for IdempotencyError {
    fn from(e: AwsError) -> Self {
        Self::Store(e)
    }
}

/// How long a repeat waits for the first request's answer, and how often it looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimTiming {
    pub wait_for_first: Duration,
    pub poll: Duration,
}

impl Default for ClaimTiming {
    fn default() -> Self {
        Self {
            // Under the CLI's 30 s read timeout; the first request's deploy budget is ~17 s.
            wait_for_first: Duration::from_secs(22),
            poll: Duration::from_millis(300),
        }
    }
}

fn encode<T: Serialize>(record: &Record<T>) -> Vec<u8> {
    serde_json::to_vec(record).expect("records serialize")
}

/// Takes the key for this request, or says what to answer instead.
pub async fn claim<S: StateStore, T: Serialize + DeserializeOwned>(
    store: &S,
    object_key: String,
    fingerprint: String,
    request_id: &str,
    now_unix: impl Fn() -> u64,
    timing: ClaimTiming,
    sleep: Sleep,
) -> Result<Claim<T>, IdempotencyError> {
    let until = Instant::now() + timing.wait_for_first;
    let fresh = |now: u64| Record::<T> {
        state: State::Pending,
        fingerprint: fingerprint.clone(),
        request_id: request_id.to_owned(),
        created_unix: now,
        kept: None,
    };
    let owned = |etag: String, now: u64| {
        Claim::Owned(Lease {
            object_key: object_key.clone(),
            etag,
            fingerprint: fingerprint.clone(),
            request_id: request_id.to_owned(),
            created_unix: now,
        })
    };
    loop {
        let now = now_unix();
        if let Written::Done { etag } = store.create(&object_key, encode(&fresh(now))).await? {
            return Ok(owned(etag, now));
        }
        let Some(Stored { body, etag }) = store.read(&object_key).await? else {
            // Gone between the two calls (expired by the lifecycle rule): create again.
            continue;
        };
        // An unreadable record is treated like an expired one: taken over, never trusted.
        let record: Option<Record<T>> = serde_json::from_slice(&body).ok();
        match judge(record, &fingerprint, now)? {
            Seen::Replay(claim) => return Ok(claim),
            Seen::Pending(request_id) => {
                if Instant::now() + timing.poll >= until {
                    return Err(IdempotencyError::InProgress { request_id });
                }
                sleep(timing.poll).await;
                continue;
            }
            Seen::Free => {}
        }
        // Expired or released: take it over, unless another request does so first.
        if let Written::Done { etag } = store
            .replace(&object_key, encode(&fresh(now)), &etag)
            .await?
        {
            return Ok(owned(etag, now));
        }
    }
}

/// What an existing record means for a request with the same key.
enum Seen<T> {
    /// Answer with the first request's kept answer.
    Replay(Claim<T>),
    /// The first request is still running: wait for it.
    Pending(String),
    /// Expired or released: it may be taken over.
    Free,
}

fn judge<T>(
    record: Option<Record<T>>,
    fingerprint: &str,
    now: u64,
) -> Result<Seen<T>, IdempotencyError> {
    let Some(r) = record.filter(|r| now.saturating_sub(r.created_unix) < KEY_TTL.as_secs()) else {
        return Ok(Seen::Free);
    };
    if r.fingerprint != fingerprint {
        return Err(IdempotencyError::KeyReused {
            request_id: r.request_id,
        });
    }
    match (r.state, r.kept) {
        (State::Done, Some(kept)) => Ok(Seen::Replay(Claim::Replay {
            request_id: r.request_id,
            kept,
        })),
        // Done without an answer this build can read (an older record's form): it may
        // have dispatched, so never again, and never a guess at its answer.
        (State::Done, None) => Err(IdempotencyError::Unresolved {
            request_id: r.request_id,
        }),
        (State::Pending, _)
            if now.saturating_sub(r.created_unix) >= PENDING_STALE_AFTER.as_secs() =>
        {
            Err(IdempotencyError::Unresolved {
                request_id: r.request_id,
            })
        }
        (State::Pending, _) => Ok(Seen::Pending(r.request_id)),
        (State::Released, _) => Ok(Seen::Free),
    }
}

/// Ends the lease: `Some(kept)` is replayed to repeats; `None` releases the key
/// (nothing was dispatched, so the same key may try again).
pub async fn settle<S: StateStore, T: Serialize>(
    store: &S,
    lease: Lease,
    kept: Option<T>,
) -> Result<(), IdempotencyError> {
    let record = Record {
        state: if kept.is_some() {
            State::Done
        } else {
            State::Released
        },
        fingerprint: lease.fingerprint,
        request_id: lease.request_id,
        created_unix: lease.created_unix,
        kept,
    };
    match store
        .replace(&lease.object_key, encode(&record), &lease.etag)
        .await?
    {
        Written::Done { .. } => Ok(()),
        // Only a takeover after PENDING_STALE_AFTER can get here; that request owns it now.
        Written::Conflict => Err(IdempotencyError::Store(AwsError(
            "the idempotency record changed under its owner".into(),
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_up_to_255() {
        assert!(IdempotencyKey::parse("0190c0de-1234").is_some());
        assert!(IdempotencyKey::parse(&"k".repeat(255)).is_some());
        for bad in ["", "a b", "ключ", "a\n", &"k".repeat(256)] {
            assert!(IdempotencyKey::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn object_keys_are_per_principal_digests() {
        let k = IdempotencyKey::parse("../../etc/passwd").unwrap();
        let a = k.object_key("human:alice");
        assert!(a.starts_with("idempotency/") && a.ends_with(".json"));
        assert_eq!(a.len(), "idempotency/".len() + 64 + ".json".len());
        assert_ne!(a, k.object_key("clawdinator-1"));
    }
}
