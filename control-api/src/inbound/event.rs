//! The Lambda's events that are not requests, recognized by their shape: S3's notification
//! that objects were created (a run's report under `reports/`), and EventBridge's
//! scheduled event. Each goes to its flow in `domain::service::events`.

use std::future::Future;

use serde::Deserialize;

use crate::contract::{EventAnswer, EventKind, ReportLanded};
use crate::domain::ports::{BootstrapStore, ChatPost, FleetReader, StateStore, Workflow};
use crate::domain::report::request_id_of_key;
use crate::domain::service::events::{EventError, Events};
use crate::domain::service::ControlApi;
use crate::outbound::chat::WebhookChat;

/// An event the Lambda acts on besides requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LambdaEvent {
    /// S3 created these objects (bucket, decoded key).
    ObjectsCreated(Vec<CreatedObject>),
    /// The periodic schedule fired.
    Scheduled,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    pub bucket: String,
    /// The key as stored: S3 sends it URL-encoded, this is decoded.
    pub key: String,
}

/// S3's event notification, reduced to what is read.
#[derive(Debug, Deserialize)]
struct S3Notification {
    #[serde(rename = "Records")]
    records: Vec<S3Record>,
}

#[derive(Debug, Deserialize)]
struct S3Record {
    #[serde(rename = "eventSource")]
    event_source: String,
    /// `ObjectCreated:Put`, `ObjectCreated:CompleteMultipartUpload`, …
    #[serde(rename = "eventName")]
    event_name: String,
    s3: S3Entity,
}

#[derive(Debug, Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Debug, Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Debug, Deserialize)]
struct S3Object {
    key: String,
}

/// EventBridge's event, reduced to what tells a schedule.
#[derive(Debug, Deserialize)]
struct ScheduledEvent {
    source: String,
    #[serde(rename = "detail-type")]
    detail_type: String,
}

/// The event in a direct invocation's payload, if it is one of ours; `None` for anything
/// else (the seed's `{"action",…}` request among them).
pub fn recognize(payload: &[u8]) -> Option<LambdaEvent> {
    if let Ok(s3) = serde_json::from_slice::<S3Notification>(payload) {
        if !s3.records.is_empty() && s3.records.iter().all(|r| r.event_source == "aws:s3") {
            return Some(LambdaEvent::ObjectsCreated(created_objects(s3.records)));
        }
    }
    let scheduled = serde_json::from_slice::<ScheduledEvent>(payload).ok()?;
    (scheduled.source == "aws.events" && scheduled.detail_type == "Scheduled Event")
        .then_some(LambdaEvent::Scheduled)
}

fn created_objects(records: Vec<S3Record>) -> Vec<CreatedObject> {
    records
        .into_iter()
        .filter(|r| r.event_name.starts_with("ObjectCreated:"))
        .filter_map(|r| match decode_key(&r.s3.object.key) {
            Some(key) => Some(CreatedObject {
                bucket: r.s3.bucket.name,
                key,
            }),
            None => {
                tracing::warn!("S3 event with an undecodable object key: skipped");
                None
            }
        })
        .collect()
}

/// S3 event keys are form-encoded: `+` is a space, `%XX` a byte. `None` for a broken
/// escape or a key that is not UTF-8.
pub fn decode_key(encoded: &str) -> Option<String> {
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// What a holder of the state store (and maybe the chat) does with an event.
pub trait OnEvent: Send + Sync {
    fn on_event(
        &self,
        event: LambdaEvent,
    ) -> impl Future<Output = Result<EventAnswer, EventError>> + Send;
}

/// An app alone has no chat: reports are read, nothing is posted (the Lambda's
/// `LazyApp` brings the chat).
impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> OnEvent
    for ControlApi<W, F, B, S>
{
    async fn on_event(&self, event: LambdaEvent) -> Result<EventAnswer, EventError> {
        let store = self.ports().state.as_ref();
        let events = Events::<S, WebhookChat>::new(store, None, self.ports().sleep);
        let answer = dispatch(&events, store.map(StateStore::bucket), event).await?;
        drain_after(self, &answer).await;
        Ok(answer)
    }
}

/// After an event's own flow, the queue's turn: a landed report ends its run's lease
/// (only if that run holds it) and the next queued deploy goes; the schedule is the
/// safety net for a report event that never came. A failure here is logged, not the
/// event's: the next schedule drains again, and failing would only make S3 deliver
/// the report again.
pub async fn drain_after<W, F, B, S>(app: &ControlApi<W, F, B, S>, answer: &EventAnswer)
where
    W: Workflow,
    F: FleetReader,
    B: BootstrapStore,
    S: StateStore,
{
    let drains = match answer.event {
        EventKind::Schedule => vec![("schedule".to_owned(), app.scheduled().await)],
        EventKind::ReportCreated => {
            let mut drains = Vec::new();
            for report in &answer.reports {
                let drained = app.lease_ended(&report.request_id).await;
                drains.push((report.request_id.clone(), drained));
            }
            drains
        }
    };
    for (about, drained) in drains {
        match drained {
            Ok(report) => tracing::info!(
                about,
                dispatched = ?report.dispatched,
                dropped = ?report.dropped,
                "queue drained"
            ),
            Err(e) => {
                tracing::error!(about, error = %e, "queue not drained; the schedule tries again")
            }
        }
    }
}

/// Hands an event to its flow. Only report objects of the state bucket count; every
/// report is handled even when one fails, then the first failure fails the event (a
/// retried delivery posts nothing twice: the chat claim sees to that).
pub async fn dispatch<S: StateStore, C: ChatPost>(
    events: &Events<'_, S, C>,
    state_bucket: Option<&str>,
    event: LambdaEvent,
) -> Result<EventAnswer, EventError> {
    let objects = match event {
        LambdaEvent::Scheduled => {
            events.scheduled().await?;
            return Ok(EventAnswer {
                ok: true,
                event: EventKind::Schedule,
                reports: Vec::new(),
            });
        }
        LambdaEvent::ObjectsCreated(objects) => objects,
    };
    let mut reports = Vec::new();
    let mut failed = None;
    for object in objects {
        let request_id =
            request_id_of_key(&object.key).filter(|_| Some(object.bucket.as_str()) == state_bucket);
        let Some(request_id) = request_id else {
            tracing::info!(bucket = %object.bucket, key = %object.key, "created object is not a report of the state bucket: ignored");
            continue;
        };
        match events.report_landed(request_id).await {
            Ok(chat) => reports.push(ReportLanded {
                request_id: request_id.to_owned(),
                chat,
            }),
            Err(e) => {
                tracing::error!(request_id, error = %e, "report event not handled");
                failed.get_or_insert(e);
            }
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(EventAnswer {
            ok: true,
            event: EventKind::ReportCreated,
            reports,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_form_decoded() {
        assert_eq!(
            decode_key("reports/a%2Bb+c.json").as_deref(),
            Some("reports/a+b c.json")
        );
        assert_eq!(decode_key("%E2%80%A6").as_deref(), Some("…"));
        assert_eq!(decode_key("bad%2"), None);
        assert_eq!(decode_key("bad%zz"), None);
        assert_eq!(decode_key("%FF"), None);
    }

    #[test]
    fn shapes_are_told_apart() {
        let s3 = br#"{"Records":[{"eventSource":"aws:s3","eventName":"ObjectCreated:Put","s3":{"bucket":{"name":"b"},"object":{"key":"reports/r-1.json"}}}]}"#;
        assert_eq!(
            recognize(s3),
            Some(LambdaEvent::ObjectsCreated(vec![CreatedObject {
                bucket: "b".into(),
                key: "reports/r-1.json".into()
            }]))
        );
        let schedule = br#"{"source":"aws.events","detail-type":"Scheduled Event","detail":{}}"#;
        assert_eq!(recognize(schedule), Some(LambdaEvent::Scheduled));
        for other in [
            &br#"{"action":"status","control_token":"t"}"#[..],
            br#"{"Records":[]}"#,
            br#"{"Records":[{"eventSource":"aws:sqs"}]}"#,
            br#"{"source":"aws.events","detail-type":"EC2 Instance State-change Notification"}"#,
            b"not json",
        ] {
            assert_eq!(recognize(other), None, "{}", String::from_utf8_lossy(other));
        }
    }
}
