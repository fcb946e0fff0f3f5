//! One POST to the control API over `ureq`: auth headers, optional SigV4, timeouts, one safe retry.
//!
//! The retry rule is the point of this module: a request is retried once only when it
//! provably never left this machine (refused, unroutable or unresolvable connect, or a
//! connect timeout). Anything after the connection was made — a reset, a read timeout —
//! may follow an accepted deploy, so it is reported, never repeated.

use std::io;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
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
        request = request.header("idempotency-key", key);
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
                ("x-clawdinator-token", token),
            ];
            if let Some(key) = idempotency_key {
                signed.push(("idempotency-key", key));
            }
            let extra = signer
                .sign("POST", url, &signed, body, SystemTime::now())
                .map_err(AttemptError::Sign)?;
            request = request
                .header("host", host)
                .header("x-clawdinator-token", token);
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

/// Turns a raw answer into the API's JSON object, or the error it stands for.
///
/// 2xx with `"ok": true` is success; 4xx JSON is a refusal (exit 1); 5xx is a server
/// failure (exit 3); anything that is not a JSON object is not the API talking (exit 3).
pub fn interpret(answer: &Answer) -> Result<Value, FleetError> {
    let json = serde_json::from_str::<Value>(&answer.body)
        .ok()
        .filter(Value::is_object);
    let Some(json) = json else {
        return Err(FleetError::BadAnswer(format!(
            "HTTP {} with a body that is not a JSON object",
            answer.status
        )));
    };
    match answer.status {
        200..=299 if json.get("ok") == Some(&Value::Bool(true)) => Ok(json),
        200..=299 => Err(FleetError::BadAnswer(format!(
            "HTTP {} without \"ok\": true",
            answer.status
        ))),
        400..=499 => Err(FleetError::Refused(failure(answer.status, &json))),
        500..=599 => Err(FleetError::Server(failure(answer.status, &json))),
        other => Err(FleetError::BadAnswer(format!("HTTP {other}"))),
    }
}

fn failure(status: u16, json: &Value) -> ApiFailure {
    let text = |key: &str| {
        json.get(key)
            .and_then(Value::as_str)
            .map(|s| one_line(s, 300))
    };
    ApiFailure {
        status,
        code: text("error"),
        // Lambda's own refusals (IAM) say `{"Message": "Forbidden"}`.
        message: text("message")
            .or_else(|| text("Message"))
            .unwrap_or_else(|| format!("the control API answered HTTP {status}")),
        request_id: text("request_id"),
        run: json.get("run").and_then(run_note),
    }
}

/// The run an error body names (`deploy_in_flight` carries the run in the way), if it
/// names one with anything to show.
fn run_note(run: &Value) -> Option<Box<RunNote>> {
    let text = |key: &str| {
        run.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .map(|s| one_line(s.trim(), 300))
    };
    let note = RunNote {
        run_id: run.get("run_id").and_then(Value::as_u64),
        status: text("status").map(|s| one_line(&s, 40)),
        run_url: text("run_url"),
    };
    (note.run_id.is_some() || note.run_url.is_some()).then(|| Box::new(note))
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

    #[test]
    fn answers_map_to_outcomes() {
        let ok = interpret(&answer(200, r#"{"ok":true,"message":"m"}"#)).unwrap();
        assert_eq!(ok["message"], "m");
        let refused = interpret(&answer(
            403,
            r#"{"ok":false,"error":"self_deploy","message":"no","request_id":"r"}"#,
        ))
        .unwrap_err();
        assert_eq!(refused.exit_code(), 1);
        assert_eq!(refused.to_string(), "no (HTTP 403, self_deploy, request r)");
        let iam = interpret(&answer(403, r#"{"Message":"Forbidden"}"#)).unwrap_err();
        assert_eq!(iam.to_string(), "Forbidden (HTTP 403)");
        assert_eq!(
            interpret(&answer(502, r#"{"ok":false,"message":"gh"}"#))
                .unwrap_err()
                .exit_code(),
            3
        );
        for (status, body) in [
            (200, "<html>"),
            (200, "[1]"),
            (200, r#"{"ok":false}"#),
            (404, "Not Found"),
            (302, "{}"),
            (200, ""),
        ] {
            let e = interpret(&answer(status, body)).unwrap_err();
            assert_eq!(e.exit_code(), 3, "{status} {body}");
        }
    }

    #[test]
    fn an_in_flight_refusal_names_the_other_run() {
        let e = interpret(&answer(
            409,
            r#"{"ok":false,"error":"deploy_in_flight","message":"busy","request_id":"r",
                "run":{"run_id":7,"status":"queued","run_url":"https://github.com/o/r/actions/runs/7"}}"#,
        ))
        .unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(
            e.to_string(),
            "busy (HTTP 409, deploy_in_flight, request r); run 7 queued: https://github.com/o/r/actions/runs/7"
        );
        // A run with nothing to show, or not an object, adds nothing.
        for run in [r#"{"status":"queued"}"#, "[7]", "null"] {
            let body = format!(r#"{{"ok":false,"error":"x","message":"m","run":{run}}}"#);
            assert_eq!(
                interpret(&answer(409, &body)).unwrap_err().to_string(),
                "m (HTTP 409, x)"
            );
        }
    }

    #[test]
    fn server_text_cannot_add_lines() {
        let e = interpret(&answer(400, r#"{"ok":false,"message":"a\nfleet: fake"}"#)).unwrap_err();
        assert!(!e.one_line().contains('\n'));
    }
}
