//! The Lambda adapter: Function URL events (base64 bodies decoded by lambda_http) onto the handler.

use std::sync::Arc;

use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};

use super::http::Handler;
use crate::app::LazyApp;
use crate::config::{Mode, Settings};
use crate::outbound::aws::load_lambda_sdk_config;
use crate::telemetry::{self, LogFormat};

/// Handles one Function URL event. A plain async fn, so tests call it without the runtime.
pub async fn handle(api: &impl Handler, request: Request) -> Result<Response<Body>, Error> {
    let iam_arn = iam_caller_arn(&request);
    let source_ip = source_ip(&request);
    let (parts, body) = request.into_parts();
    let mut call = super::call(&parts.method, &parts.headers, body.as_ref(), false);
    call.credentials.iam_arn = iam_arn.as_deref();
    call.source_ip = source_ip.as_deref();
    let reply = api.handle(call).await;
    Ok(super::response::<String>(reply).map(Body::from))
}

/// The SigV4 signer's ARN, which an `AWS_IAM` Function URL verified before invoking us.
/// Only the request context can carry it; no header a client sends is believed.
fn iam_caller_arn(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => {
            ctx.authorizer.as_ref()?.iam.as_ref()?.user_arn.clone()
        }
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The client's address as the Function URL saw it; a forwarded-for header is the
/// client's word and is never used.
fn source_ip(request: &Request) -> Option<String> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(ctx) => ctx.http.source_ip.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The Lambda's life: settings and the SDK config at cold start (no network: the first
/// `/next` goes out at once), the secrets and clients on the first event, then one handler
/// call per event.
pub async fn run() -> Result<(), Error> {
    let _logs = telemetry::init(LogFormat::Json);
    let settings = Settings::from_env()?;
    let api = Arc::new(LazyApp::new(
        settings,
        Mode::Lambda,
        load_lambda_sdk_config().await,
    ));
    lambda_http::run(service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { handle(&*api, request).await }
    }))
    .await
}
