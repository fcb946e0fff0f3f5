//! Every way a `fleet` run fails, and the exit code each one means.
//!
//! The exit codes are the skill's contract with the bot: 1 is a refusal (tell the user
//! why) or a followed run that did not succeed, 2 is a usage or configuration problem
//! (nothing was sent), 3 is a server or network failure (say so; a deploy may or may not
//! have been queued), including a wait that timed out or whose polls kept failing (the
//! run itself goes on).

use control_api::domain::policy::PolicyError;
use control_api::domain::registry::InstanceId;

use crate::chat::ChatError;
use crate::config::ConfigError;
use crate::heartbeat::GatherError;
use crate::sigv4::SignError;

/// Refused by the API (4xx) or locally by policy; or a followed run concluded other than success.
pub const EXIT_REFUSED: u8 = 1;
/// Bad arguments, bad chat text or missing configuration; no request was sent.
pub const EXIT_USAGE: u8 = 2;
/// Server error (5xx), network failure or an answer that is not the API's JSON; a wait
/// that timed out or whose polls failed too often in a row.
pub const EXIT_FAILED: u8 = 3;

/// What the API said about a failed request, from its JSON error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    /// The other run a refusal is about (`deploy_in_flight`), so the user can look at it.
    /// Boxed: it is rare, and every `Result` in the crate carries this type.
    pub run: Option<Box<RunNote>>,
}

/// A run named in an error body: just enough to find it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunNote {
    pub run_id: Option<u64>,
    pub status: Option<String>,
    pub run_url: Option<String>,
}

impl std::fmt::Display for ApiFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (HTTP {}", self.message, self.status)?;
        if let Some(code) = &self.code {
            write!(f, ", {code}")?;
        }
        if let Some(id) = &self.request_id {
            write!(f, ", request {id}")?;
        }
        f.write_str(")")?;
        if let Some(run) = &self.run {
            f.write_str("; run")?;
            if let Some(id) = run.run_id {
                write!(f, " {id}")?;
            }
            if let Some(status) = &run.status {
                write!(f, " {status}")?;
            }
            if let Some(url) = &run.run_url {
                write!(f, ": {url}")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{0}; {usage}", usage = crate::chat::USAGE)]
    Chat(#[from] ChatError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0} (refused locally, nothing was sent)")]
    Policy(#[from] PolicyError),
    /// The API's rule for `queue`, applied before sending like [`FleetError::Policy`].
    #[error("{0} is a fleet instance and may not queue behind a deploy in flight; a human can (refused locally, nothing was sent)")]
    QueueNotAllowed(InstanceId),
    /// A 4xx answer.
    #[error("{0}")]
    Refused(ApiFailure),
    /// A 5xx answer.
    #[error("{0}")]
    Server(ApiFailure),
    /// The request was never delivered (connection refused, DNS, connect timeout).
    #[error("cannot reach the control API at {url}: {detail} (tried {attempts} time(s); nothing was sent)")]
    Unreachable {
        url: String,
        detail: String,
        attempts: u32,
    },
    /// Sent, but no complete answer came back. For a deploy the outcome is unknown.
    #[error("no answer from the control API: {0}; a deploy may still have been queued, check `fleet status` before retrying")]
    NoAnswer(String),
    #[error("unexpected answer from the control API: {0}")]
    BadAnswer(String),
    /// `fleet wait` on a server that dispatches nothing (the local dry run, answering
    /// `nothing_dispatched`): no run will ever show up, so there is nothing to poll for.
    #[error("nothing to wait for: {0}")]
    NothingDispatched(ApiFailure),
    /// A followed run completed with a conclusion other than `success`.
    #[error("{run} concluded {conclusion}")]
    RunConcluded { run: String, conclusion: String },
    /// The wait's deadline passed first; the run itself is not affected.
    #[error(
        "gave up waiting after {after} (last seen: {state}); follow it with: fleet wait {follow}"
    )]
    WaitTimedOut {
        after: String,
        state: String,
        follow: String,
    },
    /// Polls kept failing (network, 5xx); the run itself is not affected.
    #[error("gave up waiting after {failures} failed polls in a row (last: {last}); follow it with: fleet wait {follow}")]
    PollsFailed {
        failures: u32,
        last: String,
        follow: String,
    },
    #[error(transparent)]
    Sign(#[from] SignError),
    /// `fleet heartbeat` could not learn this host's facts; nothing was sent.
    #[error("{0} (nothing was sent)")]
    Gather(#[from] GatherError),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl FleetError {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Policy(_)
            | Self::QueueNotAllowed(_)
            | Self::Refused(_)
            | Self::NothingDispatched(_)
            | Self::RunConcluded { .. } => EXIT_REFUSED,
            Self::Chat(_) | Self::Config(_) | Self::Sign(_) => EXIT_USAGE,
            Self::Server(_)
            | Self::Unreachable { .. }
            | Self::NoAnswer(_)
            | Self::BadAnswer(_)
            | Self::WaitTimedOut { .. }
            | Self::PollsFailed { .. }
            | Self::Gather(_)
            | Self::Output(_) => EXIT_FAILED,
        }
    }

    /// The message as one printable line, for `fleet: <message>` on stderr. Long enough
    /// for a 300-character API message plus its code, request id and a run link.
    pub fn one_line(&self) -> String {
        one_line(&self.to_string(), 600)
    }
}

/// Collapses text to one printable line of at most `max` characters: server-supplied
/// text must not be able to add lines to what a bot relays.
pub fn one_line(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 3));
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_strips_controls_and_truncates() {
        assert_eq!(one_line("a\nb\r\tc", 10), "a b  c");
        assert_eq!(one_line(&"x".repeat(20), 5), "xxxxx…");
        assert_eq!(one_line("", 5), "");
    }

    #[test]
    fn api_failure_reads_as_one_sentence() {
        let f = ApiFailure {
            status: 404,
            code: Some("unknown_target".into()),
            message: "target \"x\" is not in the fleet registry".into(),
            request_id: Some("r-1".into()),
            run: None,
        };
        assert_eq!(
            f.to_string(),
            "target \"x\" is not in the fleet registry (HTTP 404, unknown_target, request r-1)"
        );
        let busy = ApiFailure {
            status: 409,
            code: Some("deploy_in_flight".into()),
            message: "a deploy is in flight".into(),
            request_id: Some("r-2".into()),
            run: Some(Box::new(RunNote {
                run_id: Some(122),
                status: Some("in_progress".into()),
                run_url: Some("https://github.com/o/r/actions/runs/122".into()),
            })),
        };
        assert_eq!(
            busy.to_string(),
            "a deploy is in flight (HTTP 409, deploy_in_flight, request r-2); run 122 in_progress: https://github.com/o/r/actions/runs/122"
        );
    }
}
