//! The lock flow: take a lock (`If-None-Match: *`, or over an expired one by its etag),
//! release one, list those in force, and refuse a deploy that touches a locked host.
//! Expired locks are removed where they are found, each with a `lock_expired` record.

use chrono::Utc;

use super::record::Note;
use super::{ControlApi, Who};
use crate::domain::error::ApiError;
use crate::domain::lock::{lock_key, Lock, LOCKS_PREFIX};
use crate::domain::ports::{BootstrapStore, FleetReader, StateStore, Stored, Workflow, Written};
use crate::domain::request::Target;

/// Attempts at a contended lock before giving up on it.
const ROUNDS: usize = 4;

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// Takes the lock on `target` for `ttl_secs`. A bot may lock only its own host.
    pub(super) async fn lock(
        &self,
        who: &Who,
        target: Target,
        reason: &str,
        ttl_secs: u32,
    ) -> Result<Lock, ApiError> {
        let store = self.state()?;
        let target = target.resolve(&self.registry)?;
        if let Some(bot) = &who.bot {
            if target.as_str() != bot.as_str() {
                return Err(ApiError::LockNotAllowed {
                    bot: bot.to_string(),
                    target: target.to_string(),
                });
            }
        }
        let key = lock_key(target.as_str());
        let lock = Lock::new(&target, &who.name, reason, ttl_secs, Utc::now());
        let body = serde_json::to_vec(&lock).expect("locks serialize");
        for _ in 0..ROUNDS {
            if let Written::Done { .. } = store
                .create(&key, body.clone())
                .await
                .map_err(ApiError::State)?
            {
                return Ok(lock);
            }
            let Some(stored) = store.read(&key).await.map_err(ApiError::State)? else {
                continue;
            };
            match parse(&stored) {
                Some(held) if !held.expired(Utc::now()) => {
                    return Err(ApiError::LockHeld(Box::new(held)))
                }
                old => {
                    if let Written::Done { .. } = store
                        .replace(&key, body.clone(), &stored.etag)
                        .await
                        .map_err(ApiError::State)?
                    {
                        self.note_expired(old.as_ref(), &key).await;
                        return Ok(lock);
                    }
                }
            }
        }
        Err(contended(&key, "locked"))
    }

    /// Releases the lock on `target`. Humans release any lock; a bot only the one it
    /// holds on its own host.
    pub(super) async fn unlock(&self, who: &Who, target: Target) -> Result<Lock, ApiError> {
        let store = self.state()?;
        let target = target.resolve(&self.registry)?;
        let key = lock_key(target.as_str());
        // The delete is conditional on the version read and checked: a lock that changed
        // hands in between (it expired and was taken) is judged again, never removed unseen.
        for _ in 0..ROUNDS {
            let stored = store.read(&key).await.map_err(ApiError::State)?;
            let Some((lock, etag)) = stored.and_then(|s| Some((parse(&s)?, s.etag))) else {
                return Err(ApiError::LockNotFound(target.to_string()));
            };
            if let Some(bot) = &who.bot {
                if lock.target != bot.as_str() || lock.holder != bot.as_str() {
                    return Err(ApiError::LockNotAllowed {
                        bot: bot.to_string(),
                        target: lock.target,
                    });
                }
            }
            if store
                .delete_if(&key, &etag)
                .await
                .map_err(ApiError::State)?
            {
                return Ok(lock);
            }
        }
        Err(contended(&key, "released"))
    }

    /// The locks in force, oldest target first; expired ones are removed on the way.
    pub(super) async fn live_locks(&self, store: &S) -> Result<Vec<Lock>, ApiError> {
        let keys = store
            .list(LOCKS_PREFIX, None, 1000)
            .await
            .map_err(ApiError::State)?;
        let mut locks = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(stored) = store.read(&key).await.map_err(ApiError::State)? else {
                continue;
            };
            match parse(&stored) {
                Some(lock) if !lock.expired(Utc::now()) => locks.push(lock),
                old => {
                    if let Some(taken) = self.remove_expired(store, &key, &stored, old).await? {
                        locks.push(taken);
                    }
                }
            }
        }
        Ok(locks)
    }

    /// Removes the expired (or unreadable) lock `stored`, if it still is that version.
    /// If somebody took the lock over in between, that new lock is in force: it is
    /// answered, not removed.
    async fn remove_expired(
        &self,
        store: &S,
        key: &str,
        stored: &Stored,
        old: Option<Lock>,
    ) -> Result<Option<Lock>, ApiError> {
        if store
            .delete_if(key, &stored.etag)
            .await
            .map_err(ApiError::State)?
        {
            self.note_expired(old.as_ref(), key).await;
            return Ok(None);
        }
        let now = store.read(key).await.map_err(ApiError::State)?;
        Ok(now
            .as_ref()
            .and_then(parse)
            .filter(|lock| !lock.expired(Utc::now())))
    }

    /// Refuses a deploy of `target` while a lock holds a host it touches (423 `locked`).
    pub(super) async fn check_locks(&self, target: &Target) -> Result<(), ApiError> {
        let Some(store) = &self.ports.state else {
            return Ok(());
        };
        match self
            .live_locks(store)
            .await?
            .into_iter()
            .find(|l| l.covers(target))
        {
            Some(lock) => Err(ApiError::Locked(Box::new(lock))),
            None => Ok(()),
        }
    }

    /// A plan touching a locked host runs anyway (it changes nothing); its answer says
    /// whose lock, why and until when.
    pub(super) async fn lock_warning(&self, target: &Target) -> Result<Option<String>, ApiError> {
        let Some(store) = &self.ports.state else {
            return Ok(None);
        };
        let locks = self.live_locks(store).await?;
        Ok(locks
            .into_iter()
            .find(|l| l.covers(target))
            .map(|l| format!("{}; the plan runs anyway: it changes nothing", l.sentence())))
    }

    /// The `lock_expired` record of a lock that ran out (or could not be read).
    async fn note_expired(&self, old: Option<&Lock>, key: &str) {
        let target = old.map_or_else(
            || {
                key.trim_start_matches(LOCKS_PREFIX)
                    .trim_end_matches(".json")
                    .to_owned()
            },
            |l| l.target.clone(),
        );
        self.note(Note {
            action: "lock_expired",
            decision: "expired",
            principal: old.map(|l| l.holder.clone()),
            target: Some(target),
            reason: Some(old.map_or_else(
                || "the lock could not be read".to_owned(),
                |l| format!("expired at {}: {}", l.expires, l.reason),
            )),
            ..Note::default()
        })
        .await;
    }
}

/// Every round lost to another writer of `key`: the caller may try again.
fn contended(key: &str, doing: &str) -> ApiError {
    ApiError::State(crate::domain::ports::AwsError(format!(
        "{key} kept changing while it was being {doing}; try again"
    )))
}

fn parse(stored: &Stored) -> Option<Lock> {
    serde_json::from_slice(&stored.body).ok()
}
