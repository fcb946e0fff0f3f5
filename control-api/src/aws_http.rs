//! The one HTTPS client of every AWS SDK client here (Lambda, local server, `fleet` CLI):
//! rustls on ring, trusting Mozilla's root certificates compiled into the binary.
//!
//! The SDK's default client would link aws-lc-rs beside the ring that octocrab already
//! uses, and read the system CA store when it makes its first connection (on Debian,
//! every file under /etc/ssl/certs: milliseconds of a cold start). This one links one
//! crypto provider and trusts the same roots as the GitHub client, whatever the image.

use std::borrow::Cow;
use std::sync::Mutex;
use std::time::Duration;

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use base64::Engine;

/// The HTTPS (and plain HTTP, for a loopback emulator) client to give an SDK config.
/// Nothing is built, and no root parsed, before the first connection.
pub fn https_client() -> SharedHttpClient {
    SharedHttpClient::new(OnFirstUse::default())
}

/// A connector's timeouts: the smithy client's own cache key, so the same settings share
/// one connector and its connection pool.
type Timeouts = (Option<Duration>, Option<Duration>);

/// The smithy HTTPS connectors, each built when the first request with its timeouts
/// needs it (every SDK client here has the same ones, so in practice one).
///
/// The smithy client itself builds a throw-away connector each time an SDK client is
/// made (its `validate_base_client_config`, meant to load native certificates early):
/// here that would parse every root once per SDK client — at cold start for the
/// credential chain's STS client, and four more times when the app builds its EC2, S3
/// and SSM clients — before the one connector that is kept. Skipping that validation
/// loses nothing: it only warms a cache this client does not have.
///
/// Only the connector is kept, not the smithy client that made it: the client holds its
/// trust store, the whole PEM bundle (about 300 KB), for connectors it might build later,
/// while the connector needs only the parsed roots of its TLS configuration.
#[derive(Debug, Default)]
struct OnFirstUse(Mutex<Vec<(Timeouts, SharedHttpConnector)>>);

impl HttpClient for OnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        // A panic while building leaves no half-written entry, so a poisoned lock is safe.
        let mut built = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, connector)) = built.iter().find(|(key, _)| *key == timeouts) {
            return connector.clone();
        }
        let connector = build().http_connector(settings, components);
        built.push((timeouts, connector.clone()));
        connector
    }

    /// For the SDK's user agent: what the smithy hyper client reports, asked for per
    /// request, so without building anything.
    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
    }
}

fn build() -> SharedHttpClient {
    // Moved in, not copied; dropped with the client once its connector is built.
    let trust = TrustStore::empty()
        .with_native_roots(false)
        .with_pem_certificate(roots_pem().into_bytes());
    let context = TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("a TLS context of a trust store alone always builds");
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .tls_context(context)
        .build_https()
}

/// The SDK's trust store takes PEM only, so the compiled-in DER roots are encoded for each
/// connector built (once per process in practice).
fn roots_pem() -> String {
    pem_bundle(webpki_root_certs::TLS_SERVER_ROOT_CERTS)
}

fn pem_bundle(certs: &[impl AsRef<[u8]>]) -> String {
    const BEGIN: &str = "-----BEGIN CERTIFICATE-----\n";
    const END: &str = "-----END CERTIFICATE-----\n";
    let b64 = base64::engine::general_purpose::STANDARD;
    // Sized up front: no doubling slack, and no copy of 300 KB while it grows.
    let text_len = |der: usize| der.div_ceil(3) * 4;
    let size = certs
        .iter()
        .map(|cert| {
            let text = text_len(cert.as_ref().len());
            BEGIN.len() + text + text.div_ceil(64) + END.len()
        })
        .sum();
    let mut out = String::with_capacity(size);
    for cert in certs {
        out.push_str(BEGIN);
        let text = b64.encode(cert.as_ref());
        // PEM lines are 64 characters; base64 is ASCII, so byte chunks are whole characters.
        for line in text.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(END);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_compiled_in_root_survives_the_pem_round_trip() {
        use rustls_pki_types::pem::PemObject;
        let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS;
        assert!(roots.len() > 100, "Mozilla ships well over 100 roots");
        let pem = roots_pem();
        assert_eq!(pem.len(), pem.capacity(), "the bundle is sized exactly");
        let parsed: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(parsed.len(), roots.len());
        assert!(parsed
            .iter()
            .zip(roots)
            .all(|(a, b)| a.as_ref() == b.as_ref()));
    }
}
