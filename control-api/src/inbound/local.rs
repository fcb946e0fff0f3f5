//! The local server: the same handler over real HTTP/1.1 on 127.0.0.1, for newcomers and tests.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::http::Handler;
use crate::contract::MAX_BODY_BYTES;

/// Serves until `shutdown` resolves. It is a development server: connections still open
/// then are dropped with the runtime.
pub async fn serve<H: Handler + 'static>(
    api: Arc<H>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                // Out of file descriptors and the like: keep serving the others.
                Err(e) => { tracing::warn!(error = %e, "accept failed"); continue; }
            },
            () = &mut shutdown => break,
        };
        let api = Arc::clone(&api);
        let peer_ip = peer.ip().to_string();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let api = Arc::clone(&api);
                let peer_ip = peer_ip.clone();
                async move { Ok::<_, Infallible>(handle(&*api, request, &peer_ip).await) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    Ok(())
}

async fn handle(
    api: &impl Handler,
    request: http::Request<Incoming>,
    peer_ip: &str,
) -> http::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let declared_too_large = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .is_some_and(|n| n > MAX_BODY_BYTES as u64);
    // Never buffer more than the limit, whatever Content-Length claims.
    let (bytes, too_large) = if declared_too_large {
        (Bytes::new(), true)
    } else {
        match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => (collected.to_bytes(), false),
            Err(e) => (Bytes::new(), e.is::<http_body_util::LengthLimitError>()),
        }
    };
    let mut call = super::call(&parts.method, &parts.headers, &bytes, too_large);
    call.source_ip = Some(peer_ip);
    let reply = api.handle(call).await;
    super::response::<String>(reply).map(|s| Full::new(Bytes::from(s)))
}
