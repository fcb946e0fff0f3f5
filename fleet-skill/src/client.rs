//! One POST to the control API over `ureq`: auth headers, optional SigV4, timeouts, one safe retry.
//!
//! The retry rule is the point of this module: a request is retried once only when it
//! provably never left this machine (refused, unroutable or unresolvable connect, or a
//! connect timeout). Anything after the connection was made — a reset, a read timeout —
//! may follow an accepted deploy, so it is reported, never repeated.

use std::io;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use control_api::contract::{
    AuditAnswer, CancelAnswer, DeployAnswer, ErrorBody, HeartbeatAnswer, LockAnswer, QueueAnswer,
    QueuedAnswer, Request, RunAnswer, RunsAnswer, StatusAnswer, WorkflowRun,
    IDEMPOTENCY_KEY_HEADER, TOKEN_HEADER,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use ureq::Agent;

use crate::config::Endpoint;
use crate::error::{one_line, ApiFailure, FleetError, RunNote};
use crate::sigv4::SignError;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The whole run's budget, both attempts included.
pub const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before the single retry: long enough for a restarting listener, short for a human.
const RETRY_PAUSE: Duration = Duration::from_millis(250);
/// A status answer for a large fleet is tens of KiB; anything near this is not the API.
const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// A raw answer: status and body text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// Why one attempt failed.
#[derive(Debug)]
enum AttemptError {
    Sign(SignError),
    Http(ureq::Error),
}

/// Sends one request of the contract, in the JSON the API parses back.
pub fn send(
    endpoint: &Endpoint,
    request: &Request,
    idempotency_key: Option<&str>,
) -> Result<Answer, FleetError> {
    // Strings, small numbers and booleans only: serializing cannot fail.
    let body = serde_json::to_vec(request).expect("a request serializes");
    post(endpoint, &body, idempotency_key)
}

/// POSTs `body` (JSON) to the control API and returns its raw answer.
///
/// `idempotency_key` is sent as `Idempotency-Key`; the retry reuses it, so the API can
/// tell a retry from a second deploy.
pub fn post(
    endpoint: &Endpoint,
    body: &[u8],
    idempotency_key: Option<&str>,
) -> Result<Answer, FleetError> {
    let agent = agent();
    let started = Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = TOTAL_TIMEOUT.saturating_sub(started.elapsed());
        match attempt(&agent, endpoint, body, idempotency_key, remaining) {
            Ok(answer) => return Ok(answer),
            Err(AttemptError::Sign(e)) => return Err(e.into()),
            Err(AttemptError::Http(e)) => {
                let never_sent = is_never_sent(&e);
                let budget_left =
                    TOTAL_TIMEOUT.saturating_sub(started.elapsed()) > RETRY_PAUSE + CONNECT_TIMEOUT;
                if never_sent && attempts == 1 && budget_left {
                    thread::sleep(RETRY_PAUSE);
                    continue;
                }
                return Err(if never_sent {
                    FleetError::Unreachable {
                        url: endpoint.url.as_str().to_owned(),
                        detail: describe(&e),
                        attempts,
                    }
                } else {
                    FleetError::NoAnswer(describe(&e))
                });
            }
        }
    }
}

fn agent() -> Agent {
    Agent::config_builder()
        // 4xx and 5xx carry the API's JSON; they are answers, not transport errors.
        .http_status_as_error(false)
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(Some(TOTAL_TIMEOUT))
        // The API never redirects; following one would carry the token elsewhere.
        .max_redirects(0)
        .max_redirects_will_error(false)
        .user_agent(concat!("fleet/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

fn attempt(
    agent: &Agent,
    endpoint: &Endpoint,
    body: &[u8],
    idempotency_key: Option<&str>,
    remaining: Duration,
) -> Result<Answer, AttemptError> {
    let url = endpoint.url.as_str();
    let token = endpoint.token.expose();
    let mut request = agent
        .post(url)
        .config()
        .timeout_global(Some(remaining))
        .build()
        .header("content-type", "application/json")
        .header("accept", "application/json");
    if let Some(key) = idempotency_key {
        request = request.header(IDEMPOTENCY_KEY_HEADER, key);
    }
    match &endpoint.signer {
        None => {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        Some(signer) => {
            // SigV4 takes `Authorization`, so the control token rides in the seed's header.
            let host = endpoint.url.host_header();
            let mut signed: Vec<(&str, &str)> = vec![
                ("content-type", "application/json"),
                ("host", host),
                (TOKEN_HEADER, token),
            ];
            if let Some(key) = idempotency_key {
                signed.push((IDEMPOTENCY_KEY_HEADER, key));
            }
            let extra = signer
                .sign("POST", url, &signed, body, SystemTime::now())
                .map_err(AttemptError::Sign)?;
            request = request.header("host", host).header(TOKEN_HEADER, token);
            for (name, value) in extra {
                request = request.header(name, value);
            }
        }
    }
    let mut response = request.send(body).map_err(AttemptError::Http)?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_string()
        .map_err(AttemptError::Http)?;
    Ok(Answer { status, body })
}

/// True when the error proves the request never reached the server.
pub fn is_never_sent(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Io(io) => matches!(
            io.kind(),
            io::ErrorKind::ConnectionRefused
                | io::ErrorKind::HostUnreachable
                | io::ErrorKind::NetworkUnreachable
                | io::ErrorKind::NetworkDown
                | io::ErrorKind::AddrNotAvailable
        ),
        ureq::Error::Timeout(t) => {
            matches!(t, ureq::Timeout::Connect | ureq::Timeout::Resolve)
        }
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        _ => false,
    }
}

/// A transport error in a few words. ureq's messages never carry header values, and the
/// token has been checked to be a valid header value, so nothing secret can appear here.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(io) if io.kind() == io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        ureq::Error::Timeout(t) => format!("timed out ({t})"),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        other => one_line(&other.to_string(), 200),
    }
}

/// An answer type of the wire contract: what a 2xx answer to one action reads into.
pub trait Reply: DeserializeOwned {
    /// The action, for the message when an answer does not read.
    const ACTION: &'static str;
    fn ok(&self) -> bool;
}

macro_rules! reply {
    ($ty:ty, $action:literal) => {
        impl Reply for $ty {
            const ACTION: &'static str = $action;
            fn ok(&self) -> bool {
                self.ok
            }
        }
    };
}
reply!(DeployAnswer, "deploy");
reply!(StatusAnswer, "status");
reply!(RunsAnswer, "runs");
reply!(RunAnswer, "run");
reply!(AuditAnswer, "audit");
reply!(HeartbeatAnswer, "heartbeat");
reply!(QueuedAnswer, "queued deploy");
reply!(LockAnswer, "lock");
reply!(QueueAnswer, "queue");
reply!(CancelAnswer, "cancel");

/// Lambda's own refusals and throttles (IAM, concurrency) come from AWS, not from the
/// API: `{"Message": "Forbidden"}`.
#[derive(Debug, Deserialize)]
struct AwsMessage {
    #[serde(rename = "Message")]
    message: String,
}

/// Turns a raw answer into the contract's answer `T`, or the error it stands for.
///
/// 2xx that reads as `T` with `"ok": true` is success; 4xx is a refusal (exit 1); 5xx is
/// a server failure (exit 3), each read as the contract's [`ErrorBody`] (or Lambda's
/// own `{"Message": …}`); anything that does not read is not the API talking (exit 3).
pub fn interpret<T: Reply>(answer: &Answer) -> Result<T, FleetError> {
    let status = answer.status;
    match status {
        200..=299 => {
            let reply = serde_json::from_str::<T>(&answer.body)
                .map_err(|e| not_the_api(status, &format!("{} answer", T::ACTION), &e))?;
            if reply.ok() {
                Ok(reply)
            } else {
                Err(FleetError::BadAnswer(format!(
                    "HTTP {status} without \"ok\": true"
                )))
            }
        }
        400..=499 => Err(FleetError::Refused(failure(answer)?)),
        500..=599 => Err(FleetError::Server(failure(answer)?)),
        other => Err(FleetError::BadAnswer(format!("HTTP {other}"))),
    }
}

/// `HTTP 200 with a body that is not the API's deploy answer (missing field …)`.
fn not_the_api(status: u16, what: &str, e: &serde_json::Error) -> FleetError {
    FleetError::BadAnswer(format!(
        "HTTP {status} with a body that is not the API's {what} ({})",
        one_line(&e.to_string(), 120)
    ))
}

fn failure(answer: &Answer) -> Result<ApiFailure, FleetError> {
    let status = answer.status;
    let text = |s: &str| Some(one_line(s.trim(), 300)).filter(|s| !s.is_empty());
    let fallback = || format!("the control API answered HTTP {status}");
    match serde_json::from_str::<ErrorBody>(&answer.body) {
        Ok(body) => Ok(ApiFailure {
            status,
            code: text(&body.error),
            message: text(&body.message).unwrap_or_else(fallback),
            request_id: text(&body.request_id),
            run: body.run.as_ref().map(run_note),
        }),
        Err(e) => match serde_json::from_str::<AwsMessage>(&answer.body) {
            Ok(aws) => Ok(ApiFailure {
                status,
                code: None,
                message: text(&aws.message).unwrap_or_else(fallback),
                request_id: None,
                run: None,
            }),
            Err(_) => Err(not_the_api(status, "error answer", &e)),
        },
    }
}

/// The run an error body names (`deploy_in_flight` carries the run in the way).
fn run_note(run: &WorkflowRun) -> Box<RunNote> {
    let status = Some(one_line(run.status.trim(), 40)).filter(|s| !s.is_empty());
    let run_url = Some(one_line(run.run_url.trim(), 300)).filter(|s| !s.is_empty());
    Box::new(RunNote {
        run_id: Some(run.run_id),
        status,
        run_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            body: body.to_owned(),
        }
    }

    #[test]
    fn never_sent_is_only_before_the_connection() {
        let io = |kind| ureq::Error::Io(io::Error::from(kind));
        assert!(is_never_sent(&io(io::ErrorKind::ConnectionRefused)));
        assert!(is_never_sent(&ureq::Error::Timeout(ureq::Timeout::Connect)));
        assert!(is_never_sent(&ureq::Error::HostNotFound));
        // After connecting, the request may have been read and acted on.
        assert!(!is_never_sent(&io(io::ErrorKind::ConnectionReset)));
        assert!(!is_never_sent(&io(io::ErrorKind::UnexpectedEof)));
        assert!(!is_never_sent(&ureq::Error::Timeout(ureq::Timeout::Global)));
        assert!(!is_never_sent(&ureq::Error::Timeout(
            ureq::Timeout::RecvResponse
        )));
    }

    const RUN: &str = r#"{"run_id":7,"run_url":"https://github.com/o/r/actions/runs/7",
        "request_id":null,"target":"all","caller":null,"status":"queued","conclusion":null,
        "started":null,"duration_secs":null,"step":null}"#;

    #[test]
    fn answers_map_to_outcomes() {
        let ok: RunAnswer = interpret(&answer(
            200,
            &format!(r#"{{"ok":true,"run":{RUN},"request_id":"r"}}"#),
        ))
        .unwrap();
        assert_eq!(ok.run.run_id, 7);
        let refused = interpret::<RunAnswer>(&answer(
            403,
            r#"{"ok":false,"error":"self_deploy","message":"no","request_id":"r"}"#,
        ))
        .unwrap_err();
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.to_string(), "no (HTTP 403, self_deploy, request r)");
        let iam = interpret::<RunAnswer>(&answer(403, r#"{"Message":"Forbidden"}"#)).unwrap_err();
        assert_eq!(iam.exit_code(), 1);
        assert_eq!(iam.to_string(), "Forbidden (HTTP 403)");
        let gh = r#"{"ok":false,"error":"github_unavailable","message":"gh","request_id":"r"}"#;
        let server = interpret::<RunAnswer>(&answer(502, gh)).unwrap_err();
        assert_eq!(server.exit_code(), 3);
        assert_eq!(
            server.to_string(),
            "gh (HTTP 502, github_unavailable, request r)"
        );
    }

    #[test]
    fn answers_that_do_not_read_are_not_the_api() {
        for (status, body) in [
            (200, "<html>"),
            (200, "[1]"),
            (200, r#"{"ok":true,"message":"m"}"#),
            (
                200,
                &format!(r#"{{"ok":false,"run":{RUN},"request_id":"r"}}"#),
            ),
            (200, r#"{"ok":true,"run":[7],"request_id":"r"}"#),
            (404, "Not Found"),
            // JSON, but neither the contract's error body nor Lambda's.
            (409, r#"{"ok":false,"message":"m"}"#),
            (502, r#"{"ok":false,"message":"gh"}"#),
            (302, "{}"),
            (200, ""),
        ] {
            let e = interpret::<RunAnswer>(&answer(status, body)).unwrap_err();
            assert_eq!(e.exit_code(), 3, "{status} {body}");
            let line = e.one_line();
            assert!(
                line.starts_with(&format!(
                    "unexpected answer from the control API: HTTP {status}"
                )),
                "{line}"
            );
        }
        let e = interpret::<DeployAnswer>(&answer(200, "{}")).unwrap_err();
        assert!(
            e.to_string().contains(
                "HTTP 200 with a body that is not the API's deploy answer (missing field"
            ),
            "{e}"
        );
    }

    #[test]
    fn an_in_flight_refusal_names_the_other_run() {
        let e = interpret::<DeployAnswer>(&answer(
            409,
            &format!(
                r#"{{"ok":false,"error":"deploy_in_flight","message":"busy","request_id":"r",
                "run":{RUN}}}"#
            ),
        ))
        .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "busy (HTTP 409, deploy_in_flight, request r); run 7 queued: https://github.com/o/r/actions/runs/7"
        );
        // A run that is not the contract's makes the whole answer unreadable.
        let body = r#"{"ok":false,"error":"x","message":"m","request_id":"r","run":[7]}"#;
        assert_eq!(
            interpret::<DeployAnswer>(&answer(409, body))
                .unwrap_err()
                .exit_code(),
            3
        );
        let body = r#"{"ok":false,"error":"x","message":"m","request_id":"r","run":null}"#;
        assert_eq!(
            interpret::<DeployAnswer>(&answer(409, body))
                .unwrap_err()
                .to_string(),
            "m (HTTP 409, x, request r)"
        );
    }

    #[test]
    fn server_text_cannot_add_lines() {
        let body = r#"{"ok":false,"error":"e","message":"a\nfleet: fake","request_id":"r"}"#;
        let e = interpret::<RunAnswer>(&answer(400, body)).unwrap_err();
        assert!(!e.one_line().contains('\n'));
        assert!(!e.to_string().contains('\n'));
    }
}
