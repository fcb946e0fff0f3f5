//! Answers: the error catalogue with status codes and stable codes, and the JSON reply.

use serde_json::{json, Value};

use super::auth::AuthError;
use super::deploy::DispatchError;
use super::fleet::AwsError;
use super::policy::PolicyError;
use super::request::RequestError;

/// Every way a request can end without success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    #[error("only POST is accepted")]
    MethodNotAllowed,
    #[error("request body is larger than 16 KiB")]
    PayloadTooLarge,
    #[error("content type must be application/json")]
    UnsupportedMediaType,
    /// Missing or wrong token (401), or credentials that do not add up (403).
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("too many deploys by {principal}; try again in {retry_after_secs} s")]
    RateLimited {
        principal: String,
        retry_after_secs: u64,
    },
    #[error(transparent)]
    Misconfigured(Misconfig),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Hosts the deploy would (re)create have no bootstrap bundle: they could not boot.
    #[error("no bootstrap bundle under {} in {bucket}", prefixes.join(", "))]
    BootstrapMissing {
        prefixes: Vec<String>,
        bucket: String,
    },
    #[error(transparent)]
    Aws(#[from] AwsError),
}

impl ApiError {
    pub fn status(&self) -> u16 {
        match self {
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Auth(AuthError::Unauthorized) => 401,
            Self::Auth(_) => 403,
            Self::RateLimited { .. } => 429,
            Self::Misconfigured(_) | Self::Dispatch(DispatchError::NotConfigured(_)) => 500,
            Self::Request(RequestError::UnknownTarget(_) | RequestError::UnknownAmi(_)) => 404,
            Self::Request(_) => 400,
            Self::Policy(_) => 403,
            Self::BootstrapMissing { .. } => 409,
            Self::Dispatch(_) | Self::Aws(_) => 502,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::Auth(AuthError::Unauthorized) => "unauthorized",
            Self::Auth(AuthError::UnknownIamPrincipal(_)) => "unknown_principal",
            Self::Auth(AuthError::PrincipalMismatch { .. }) => "principal_mismatch",
            Self::RateLimited { .. } => "rate_limited",
            Self::Misconfigured(_) | Self::Dispatch(DispatchError::NotConfigured(_)) => {
                "misconfigured"
            }
            Self::Request(e) => e.code(),
            Self::Policy(e) => e.code(),
            Self::Dispatch(DispatchError::Refused { .. }) => "github_refused",
            Self::Dispatch(DispatchError::Unavailable) => "github_unavailable",
            Self::BootstrapMissing { .. } => "bootstrap_missing",
            Self::Aws(_) => "aws_unavailable",
        }
    }

    /// The error answer; it carries the request id so a caller can quote it to an operator.
    pub fn into_reply(self, request_id: &str) -> Reply {
        let mut reply = Reply::json(
            self.status(),
            &json!({"ok": false, "error": self.code(), "message": self.to_string(), "request_id": request_id}),
        );
        match self {
            Self::MethodNotAllowed => reply.headers.push(("allow", "POST".to_owned())),
            Self::RateLimited {
                retry_after_secs, ..
            } => reply
                .headers
                .push(("retry-after", retry_after_secs.to_string())),
            _ => {}
        }
        reply
    }
}

/// A setting the server needs and lacks. Names the setting, never a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("server misconfigured: {setting} {problem}")]
pub struct Misconfig {
    pub setting: &'static str,
    pub problem: &'static str,
}

impl Misconfig {
    pub const fn unset(setting: &'static str) -> Self {
        Self {
            setting,
            problem: "is not set",
        }
    }
}

/// A transport-neutral answer: status, extra headers, and a one-line JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: body.to_string(),
        }
    }

    pub const CONTENT_TYPE: &'static str = "application/json";
}
