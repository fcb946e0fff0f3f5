//! SigV4 for the control API's `AWS_IAM` Function URL: service `lambda`, body hash header included.
//!
//! Only signing lives here, on plain strings and bytes, so it can be checked without a
//! network; `aws-sigv4` does the canonicalisation. Signing itself needs no AWS SDK and
//! no async runtime: those start only in `config`, to resolve the default credential
//! chain when a Function URL must be signed and no explicit credentials were given.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

use crate::config::InvokerCredentials;

/// Lambda Function URLs are signed for the `lambda` service.
pub const SERVICE: &str = "lambda";

#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request: {0}")]
pub struct SignError(String);

/// Signs requests with one set of invoker credentials for one region.
#[derive(Debug, Clone)]
pub struct Signer {
    // `aws_credential_types::Credentials` redacts its secrets in `Debug`.
    credentials: Credentials,
    region: String,
    service: &'static str,
}

impl Signer {
    /// A signer for the control API's Function URL (service `lambda`).
    pub fn new(creds: InvokerCredentials, region: String) -> Self {
        Self::for_service(creds, region, SERVICE)
    }

    /// A signer for another service name; AWS's published test vectors use `service`.
    pub fn for_service(creds: InvokerCredentials, region: String, service: &'static str) -> Self {
        Self {
            credentials: Credentials::new(
                creds.access_key_id,
                creds.secret_access_key,
                creds.session_token,
                None,
                "fleet",
            ),
            region,
            service,
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn access_key_id(&self) -> &str {
        self.credentials.access_key_id()
    }

    /// The headers to add to the request: `authorization`, `x-amz-date`,
    /// `x-amz-content-sha256` and, with a session token, `x-amz-security-token`.
    ///
    /// `headers` are the request's own headers that the signature must cover; they have
    /// to be sent exactly as given (including `host`).
    pub fn sign(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
        time: SystemTime,
    ) -> Result<Vec<(&'static str, String)>, SignError> {
        let identity = self.credentials.clone().into();
        let mut settings = SigningSettings::default();
        // Function URLs require the payload hash for bodies, as a signed header.
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(time)
            .settings(settings)
            .build()
            .map_err(|e| SignError(e.to_string()))?
            .into();
        let request = SignableRequest::new(
            method,
            url,
            headers.iter().copied(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignError(e.to_string()))?;
        let (instructions, _signature) = sign(request, &params)
            .map_err(|e| SignError(e.to_string()))?
            .into_parts();
        let (new_headers, _query) = instructions.into_parts();
        Ok(new_headers
            .into_iter()
            .map(|h| (h.name(), h.value().to_owned()))
            .collect())
    }
}
