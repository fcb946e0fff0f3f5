//! The Lambda adapter: Function URL events (base64 bodies decoded by lambda_http) and
//! the seed's direct invocations (a plain JSON payload) onto the one handler; S3's
//! report notifications and the schedule's events onto their flows (`event`).

use std::sync::Arc;

use lambda_http::request::RequestContext;
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};

use super::event::{self, OnEvent};
use super::http::{Handler, HttpCall, Method, Reply};
use crate::app::LazyApp;
use crate::config::{Mode, Settings};
use crate::contract::{InvokeAnswer, MAX_BODY_BYTES};
use crate::domain::auth::Credentials;
use crate::outbound::aws::load_lambda_sdk_config;
use crate::telemetry::{self, LogFormat};

/// Handles one event. A plain async fn, so tests call it without the runtime.
/// lambda_http tells a Function URL event (it has a request context) from anything
/// else, which arrives as it is: an S3 notification or a scheduled event, told by its
/// shape, else the seed's `{"action",…,"control_token"}`. A failed S3 or schedule event
/// is an error, so that Lambda delivers it again.
pub async fn handle<A: Handler + OnEvent>(
    api: &A,
    request: Request,
) -> Result<Response<Body>, Error> {
    if matches!(
        request.request_context_ref(),
        Some(RequestContext::PassThrough)
    ) {
        let payload = request.body().as_ref();
        let body = match event::recognize(payload) {
            Some(event) => serde_json::to_string(&api.on_event(event).await?)?,
            None => serde_json::to_string(&invoke(api, payload).await)?,
        };
        return Ok(Response::new(Body::from(body)));
    }
    let iam_arn = iam_caller_arn(&request);
    let source_ip = source_ip(&request);
    let (parts, body) = request.into_parts();
    let mut call = super::call(&parts.method, &parts.headers, body.as_ref(), false);
    call.credentials.iam_arn = iam_arn.as_deref();
    call.source_ip = source_ip.as_deref();
    let reply = api.handle(call).await;
    Ok(super::response::<String>(reply).map(Body::from))
}

/// The seed's direct invocation: the same decisions and audit as a Function URL
/// request, with the token from the payload's `control_token` (compared in constant
/// time by the same authenticator; a Function URL body's `control_token` is never
/// read). Only the invoker role's `lambda:InvokeFunction` reaches this path.
pub async fn invoke(api: &impl Handler, payload: &[u8]) -> InvokeAnswer {
    let token = control_token(payload);
    let call = HttpCall {
        method: Method::Post,
        credentials: Credentials {
            authorization: None,
            clawdinator_token: token.as_deref(),
            iam_arn: None,
        },
        content_type: None,
        idempotency_key: None,
        body: payload,
        body_too_large: payload.len() > MAX_BODY_BYTES,
        // A direct invocation carries no address: refusals are counted under the
        // principal, else under "unknown".
        source_ip: None,
    };
    let reply: Reply = api.handle(call).await;
    let mut headers: std::collections::BTreeMap<String, String> = reply
        .headers
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    headers.insert("content-type".to_owned(), Reply::CONTENT_TYPE.to_owned());
    InvokeAnswer {
        status_code: reply.status,
        headers,
        body: reply.body,
    }
}

/// The payload's `control_token`, if it is a JSON object with a string there. Never
/// logged; a payload too large to be a request is not even looked at.
fn control_token(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Token {
        control_token: Option<String>,
    }
    if payload.len() > MAX_BODY_BYTES {
        return None;
    }
    serde_json::from_slice::<Token>(payload)
        .ok()
        .and_then(|t| t.control_token)
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
