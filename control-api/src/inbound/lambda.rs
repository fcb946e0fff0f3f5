//! The Lambda adapter: Function URL events (base64 bodies decoded by lambda_http) onto the handler.

use std::sync::Arc;

use lambda_http::{service_fn, Body, Error, Request, Response};

use crate::app;
use crate::config::{Mode, Settings};
use crate::domain::deploy::Dispatcher;
use crate::domain::fleet::{BootstrapStore, FleetReader};
use crate::domain::service::ControlApi;
use crate::telemetry::{self, LogFormat};

/// Handles one Function URL event. A plain async fn, so tests call it without the runtime.
pub async fn handle<D: Dispatcher, F: FleetReader, B: BootstrapStore>(
    api: &ControlApi<D, F, B>,
    request: Request,
) -> Result<Response<Body>, Error> {
    let (parts, body) = request.into_parts();
    let call = super::call(&parts.method, &parts.headers, body.as_ref(), false);
    let reply = api.handle(call).await;
    Ok(super::response::<String>(reply).map(Body::from))
}

/// The Lambda's life: settings and clients once at cold start, then one handler call per event.
pub async fn run() -> Result<(), Error> {
    let _logs = telemetry::init(LogFormat::Json);
    let settings = Settings::from_env()?;
    let api = Arc::new(app::build(settings, Mode::Lambda).await?);
    lambda_http::run(service_fn(move |request| {
        let api = Arc::clone(&api);
        async move { handle(&api, request).await }
    }))
    .await
}
