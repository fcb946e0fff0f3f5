//! The flows of events that are not requests: a run's report landing in the state store
//! (record what it deployed, tell the operators' chat exactly once) and the periodic
//! schedule.
//!
//! Held apart from [`ControlApi`](super::ControlApi): an event needs only the state store
//! and the chat, and the chat port is no business of the request flows.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::deployed::{self, DEPLOYED_KEY};
use crate::domain::ports::{AwsError, ChatPost, Misconfig, Sleep, StateStore, Written};
use crate::domain::report::{report_key, RollReport};

/// The state-store prefix of chat claims: one object per report that was (or is being)
/// posted, created with `If-None-Match: *` before the post.
pub const CHAT_PREFIX: &str = "chat/";

/// Discord's limit on a message's `content`, in characters.
pub const CHAT_MAX_CHARS: usize = 2000;

/// The pause before the one retry of a failed post.
pub const CHAT_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// The state-store key that claims a report's chat message.
pub fn chat_claim_key(request_id: &str) -> String {
    format!("{CHAT_PREFIX}{request_id}.json")
}

/// What a chat claim object holds: whose message, and when it was claimed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatClaim {
    pub request_id: String,
    /// RFC 3339.
    pub claimed_at: String,
}

/// What became of a report's chat message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChatNotice {
    /// Posted, now.
    Posted,
    /// Another delivery of the same event claimed it first: not posted again.
    AlreadyPosted,
    /// No chat is configured.
    NoChat,
    /// Claimed, but both attempts failed (logged); never posted again.
    PostFailed,
    /// There is no report under that request id.
    Missing,
    /// The report is not a report (logged); nothing to post.
    Unreadable,
}

/// Why an event could not be handled; the invocation fails, so Lambda delivers it again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error(transparent)]
    NotConfigured(Misconfig),
    #[error("the state store failed: {0}")]
    State(AwsError),
}

/// The event flows over the state store and, when one is configured, the chat.
pub struct Events<'a, S, C> {
    store: Option<&'a S>,
    chat: Option<&'a C>,
    sleep: Sleep,
    retry_pause: Duration,
}

impl<'a, S: StateStore, C: ChatPost> Events<'a, S, C> {
    pub fn new(store: Option<&'a S>, chat: Option<&'a C>, sleep: Sleep) -> Self {
        Self {
            store,
            chat,
            sleep,
            retry_pause: CHAT_RETRY_PAUSE,
        }
    }

    /// Replaces the pause before the retry of a failed post (tests shorten it).
    pub fn with_retry_pause(mut self, pause: Duration) -> Self {
        self.retry_pause = pause;
        self
    }

    /// `reports/<request_id>.json` was created: reads it, records the revision it deployed
    /// per host (`deployed/revisions.json`), and posts its summary and run link to the
    /// chat, once. S3 may deliver an event twice, and two deliveries may run
    /// at once: whichever creates `chat/<request_id>.json` first posts, the other not.
    pub async fn report_landed(&self, request_id: &str) -> Result<ChatNotice, EventError> {
        let store = self
            .store
            .ok_or(EventError::NotConfigured(Misconfig::unset(
                "FLEET_STATE_BUCKET",
            )))?;
        let key = report_key(request_id);
        let Some(stored) = store.read(&key).await.map_err(EventError::State)? else {
            tracing::warn!(key = %key, "report event for a report that is not there");
            return Ok(ChatNotice::Missing);
        };
        let report = match serde_json::from_slice::<RollReport>(&stored.body) {
            Ok(report) => report,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "report unreadable: nothing posted");
                return Ok(ChatNotice::Unreadable);
            }
        };
        tracing::info!(request_id, headline = %report.headline(), "report landed");
        // Before the chat: a failure fails the event, and its redelivery records again
        // (the chat claim keeps the message from being posted twice).
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        if deployed::record(store, &report, &at)
            .await
            .map_err(EventError::State)?
        {
            tracing::info!(
                request_id,
                key = DEPLOYED_KEY,
                "deployed revisions recorded"
            );
        }
        let Some(chat) = self.chat else {
            tracing::info!(
                request_id,
                "no chat configured (FLEET_CHAT_WEBHOOK_PARAMETER unset): report not posted"
            );
            return Ok(ChatNotice::NoChat);
        };
        if !self.claim(store, request_id).await? {
            tracing::info!(request_id, "report already posted to the chat");
            return Ok(ChatNotice::AlreadyPosted);
        }
        Ok(self.post(chat, request_id, &chat_message(&report)).await)
    }

    /// The periodic schedule's entry point (every 5 minutes in infra): seen in the log
    /// here; the queue's drain that it triggers needs the whole app (the GitHub token) and
    /// follows in `inbound::event::drain_after`.
    pub async fn scheduled(&self) -> Result<(), EventError> {
        tracing::info!("scheduled event");
        Ok(())
    }

    /// Creates the claim; false when another delivery holds it.
    async fn claim(&self, store: &S, request_id: &str) -> Result<bool, EventError> {
        let claim = ChatClaim {
            request_id: request_id.to_owned(),
            claimed_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        let body = serde_json::to_vec(&claim).expect("a claim always serializes");
        match store.create(&chat_claim_key(request_id), body).await {
            Ok(Written::Done { .. }) => Ok(true),
            Ok(Written::Conflict) => Ok(false),
            Err(e) => Err(EventError::State(e)),
        }
    }

    /// One post, and one more after a pause if it failed. A failure is logged and
    /// never fails the event: the report is in the bucket and `run` shows it.
    async fn post(&self, chat: &C, request_id: &str, message: &str) -> ChatNotice {
        for attempt in 1..=2 {
            match chat.post(message).await {
                Ok(()) => {
                    tracing::info!(request_id, attempt, "report posted to the chat");
                    return ChatNotice::Posted;
                }
                Err(e) if attempt == 1 => {
                    tracing::warn!(request_id, error = %e, "chat post failed; retrying once");
                    (self.sleep)(self.retry_pause).await;
                }
                Err(e) => {
                    tracing::error!(request_id, error = %e, "chat post failed again; not posted");
                }
            }
        }
        ChatNotice::PostFailed
    }
}

/// The chat message of a report: its summary lines, the revision, and the run link
/// last, which survives when the lines are cut to [`CHAT_MAX_CHARS`].
pub fn chat_message(report: &RollReport) -> String {
    let mut lines = report.summary_lines();
    if let Some(revision) = &report.revision {
        let short: String = revision.chars().take(7).collect();
        lines.insert(1, format!("revision {short}"));
    }
    let link = match &report.run_url {
        Some(url) => format!("run: {url}"),
        None => format!("request: {}", report.request_id),
    };
    let room = CHAT_MAX_CHARS.saturating_sub(link.chars().count() + 1);
    let mut text = lines.join("\n");
    if text.chars().count() > room {
        text = text.chars().take(room.saturating_sub(1)).collect();
        text.push('…');
    }
    format!("{text}\n{link}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::report::{HostOutcome, HostReport, RollMode, RollOutcome};

    fn report(hosts: usize) -> RollReport {
        RollReport {
            request_id: "r-1".into(),
            target: "all".into(),
            ami: "ami-0bbbbbbb".into(),
            mode: RollMode::Apply,
            revision: Some("0123456789abcdef0123456789abcdef01234567".into()),
            outcome: RollOutcome::Succeeded,
            hosts: (0..hosts)
                .map(|i| HostReport {
                    id: format!("clawdinator-{i}"),
                    from_ami: Some("ami-0aaaaaaa".into()),
                    to_ami: Some("ami-0bbbbbbb".into()),
                    old_ec2_instance_id: None,
                    new_ec2_instance_id: None,
                    put_back_ec2_instance_id: None,
                    outcome: HostOutcome::Ready,
                    reason: None,
                    ready_after_secs: Some(252),
                    plan: None,
                })
                .collect(),
            run_url: Some("https://github.com/o/r/actions/runs/7".into()),
        }
    }

    #[test]
    fn the_message_is_the_summary_revision_and_run_link() {
        assert_eq!(
            chat_message(&report(1)),
            "deploy of all on ami-0bbbbbbb succeeded\nrevision 0123456\n\
             clawdinator-0 ready on ami-0bbbbbbb in 4m12s\n\
             run: https://github.com/o/r/actions/runs/7"
        );
        let mut unlinked = report(0);
        unlinked.run_url = None;
        unlinked.revision = None;
        assert_eq!(
            chat_message(&unlinked),
            "deploy of all on ami-0bbbbbbb succeeded\nrequest: r-1"
        );
    }

    #[test]
    fn a_long_message_is_cut_to_discords_limit_keeping_the_link() {
        let text = chat_message(&report(200));
        assert_eq!(text.chars().count(), CHAT_MAX_CHARS);
        assert!(text.ends_with("…\nrun: https://github.com/o/r/actions/runs/7"));
    }
}
