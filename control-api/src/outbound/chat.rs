//! The operators' chat as a Discord-compatible webhook: `POST {"content": "…"}` to the URL
//! kept in the SSM SecureString that `FLEET_CHAT_WEBHOOK_PARAMETER` names.
//!
//! The URL is the credential (whoever has it may post), so it is read at each post and
//! kept nowhere else, and it is never logged: errors here are built from kinds and
//! statuses only, never from the HTTP client's own messages, which may quote the URL.

use std::time::Duration;

use http::header::CONTENT_TYPE;
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper::body::Bytes;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use super::aws::{read_secure_parameters, SecretsReadError};
use crate::domain::ports::{ChatError, ChatPost};
use crate::domain::service::events::CHAT_MAX_CHARS;

/// The whole post, connection included.
pub const POST_TIMEOUT: Duration = Duration::from_secs(10);

/// The body a Discord-compatible webhook takes.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    content: &'a str,
}

/// Posts to the webhook named by an SSM parameter.
pub struct WebhookChat {
    ssm: aws_sdk_ssm::Client,
    parameter: String,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl WebhookChat {
    /// Nothing is read or connected until the first post.
    pub fn new(ssm: aws_sdk_ssm::Client, parameter: String) -> Self {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            // Plain HTTP only reaches a loopback address: `webhook_uri` refuses the rest.
            .https_or_http()
            .enable_http1()
            .build();
        Self {
            ssm,
            parameter,
            client: Client::builder(TokioExecutor::new()).build(https),
            timeout: POST_TIMEOUT,
        }
    }

    /// The webhook's URL, read (decrypted) from the parameter.
    async fn url(&self) -> Result<Uri, ChatError> {
        let values = read_secure_parameters(&self.ssm, &[self.parameter.as_str()])
            .await
            .map_err(|e| match e {
                SecretsReadError::Unavailable(e) | SecretsReadError::Refused(e) => {
                    ChatError(format!("the chat webhook parameter was not read: {e}"))
                }
            })?;
        let value = values.get(&self.parameter).map(|v| v.trim()).unwrap_or("");
        if value.is_empty() || value.starts_with("UNSET-") {
            return Err(ChatError(format!(
                "FLEET_CHAT_WEBHOOK_PARAMETER names a parameter ({}) that is missing, empty or a placeholder",
                self.parameter
            )));
        }
        webhook_uri(value)
    }
}

/// The URL if it is one to post to: HTTPS, or plain HTTP to a loopback address (a local
/// double); anything else would send the credential in the clear.
fn webhook_uri(value: &str) -> Result<Uri, ChatError> {
    let uri: Uri = value
        .parse()
        .map_err(|_| ChatError("the chat webhook parameter does not hold a URL".to_owned()))?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match uri.scheme_str() {
        Some("https") => Ok(uri),
        Some("http") if loopback => Ok(uri),
        _ => Err(ChatError(
            "the chat webhook parameter holds a URL that is not https".to_owned(),
        )),
    }
}

/// At most `max` characters, the last one an ellipsis when cut.
fn truncated(content: &str, max: usize) -> String {
    if content.chars().count() <= max {
        return content.to_owned();
    }
    let mut cut: String = content.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

impl ChatPost for WebhookChat {
    async fn post(&self, content: &str) -> Result<(), ChatError> {
        let uri = self.url().await?;
        let content = truncated(content, CHAT_MAX_CHARS);
        let body = serde_json::to_vec(&WebhookBody { content: &content })
            .expect("a string always serializes");
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| ChatError("the chat webhook request could not be built".to_owned()))?;
        let answer = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| {
                ChatError(format!(
                    "the chat webhook did not answer within {}s",
                    self.timeout.as_secs()
                ))
            })?
            .map_err(|e| {
                // Never `e` itself: hyper's messages may name the address.
                ChatError(if e.is_connect() {
                    "the chat webhook could not be reached".to_owned()
                } else {
                    "the chat webhook connection failed".to_owned()
                })
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(ChatError(format!(
                "the chat webhook answered HTTP {}",
                status.as_u16()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_urls_are_posted_to() {
        assert!(webhook_uri("https://discord.com/api/webhooks/1/abc").is_ok());
        assert!(webhook_uri("http://127.0.0.1:9/hook").is_ok());
        let plain = webhook_uri("http://discord.com/api/webhooks/1/abc").unwrap_err();
        let junk = webhook_uri("not a url at all/abc").unwrap_err();
        for e in [plain, junk] {
            assert!(!e.0.contains("abc"), "{e}");
        }
    }

    #[test]
    fn content_is_cut_to_the_limit() {
        assert_eq!(truncated("short", 10), "short");
        let cut = truncated(&"é".repeat(2500), CHAT_MAX_CHARS);
        assert_eq!(cut.chars().count(), CHAT_MAX_CHARS);
        assert!(cut.ends_with('…'));
    }
}
