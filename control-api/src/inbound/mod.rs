//! Inbound adapters: Lambda Function URL events and the local HTTP server, both onto one
//! handler (`http`), which owns everything HTTP about an answer; the Lambda's other
//! events (S3's report notification, the schedule) onto their flows (`event`).

pub mod event;
pub mod http;
pub mod lambda;
pub mod local;

use ::http::{HeaderMap, HeaderValue};

use self::http::{HttpCall, Method, Reply};
use crate::contract::{IDEMPOTENCY_KEY_HEADER, TOKEN_HEADER};
use crate::domain::auth::Credentials;

/// Builds the transport-neutral call from HTTP parts.
pub fn call<'a>(
    method: &::http::Method,
    headers: &'a HeaderMap,
    body: &'a [u8],
    body_too_large: bool,
) -> HttpCall<'a> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    HttpCall {
        method: if method == ::http::Method::POST {
            Method::Post
        } else {
            Method::Other
        },
        credentials: Credentials {
            authorization: header("authorization"),
            clawdinator_token: header(TOKEN_HEADER),
            iam_arn: None,
        },
        content_type: header("content-type"),
        idempotency_key: header(IDEMPOTENCY_KEY_HEADER),
        body,
        body_too_large,
        source_ip: None,
    }
}

/// Turns a reply into an HTTP response with a JSON content type.
pub fn response<B: From<String>>(reply: Reply) -> ::http::Response<B> {
    let mut response = ::http::Response::new(B::from(reply.body));
    *response.status_mut() = ::http::StatusCode::from_u16(reply.status)
        .unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        ::http::header::CONTENT_TYPE,
        HeaderValue::from_static(Reply::CONTENT_TYPE),
    );
    headers.insert(
        ::http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}
