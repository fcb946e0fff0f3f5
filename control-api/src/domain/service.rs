//! The handler both transports share: method, size, auth, parse, policy, checks, dispatch, audit.

use std::time::Instant;

use serde_json::{json, Map, Value};

use super::auth::{Authenticator, Credentials};
use super::deploy::{DeployRequest, Dispatcher};
use super::fleet::{fleet_status, BootstrapStore, FleetReader};
use super::policy::{authorize_deploy, effective_caller};
use super::rate_limit::RateLimiter;
use super::registry::Registry;
use super::request::{parse_command, Command, RequestError, Target, MAX_BODY_BYTES};
use super::response::{ApiError, Misconfig, Reply};

/// The HTTP method, reduced to what the contract distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Other,
}

/// One incoming request as both transports present it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub method: Method,
    pub credentials: Credentials<'a>,
    /// The `Content-Type` header, if any: absent or JSON is accepted.
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
    /// Set by a transport that stopped reading a body over [`MAX_BODY_BYTES`].
    pub body_too_large: bool,
}

/// The outbound ports the handler talks to.
pub struct Ports<D, F, B> {
    pub dispatcher: D,
    pub fleet: F,
    /// `None` when no bootstrap bucket is configured: the check is skipped, visibly.
    pub bootstrap: Option<B>,
}

/// The control API: the registry, the accepted tokens and the outbound ports.
pub struct ControlApi<D, F, B> {
    registry: Registry,
    /// Without a usable control token nothing can be authenticated: every request is a 500.
    auth: Result<Authenticator, Misconfig>,
    ports: Ports<D, F, B>,
    limiter: RateLimiter,
}

/// What the audit line records about one request.
#[derive(Default)]
struct Audit {
    principal: Option<String>,
    caller: Option<String>,
    action: Option<&'static str>,
    target: Option<String>,
}

impl<D: Dispatcher, F: FleetReader, B: BootstrapStore> ControlApi<D, F, B> {
    pub fn new(
        registry: Registry,
        auth: Result<Authenticator, Misconfig>,
        ports: Ports<D, F, B>,
    ) -> Self {
        Self {
            registry,
            auth,
            ports,
            limiter: RateLimiter::default(),
        }
    }

    /// Replaces the default deploy rate limit (10 per 10 minutes per principal).
    pub fn with_rate_limit(mut self, limiter: RateLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn ports(&self) -> &Ports<D, F, B> {
        &self.ports
    }

    /// Answers one request and writes its audit line.
    pub async fn handle(&self, call: Call<'_>) -> Reply {
        let started = Instant::now();
        let request_id = uuid::Uuid::new_v4().to_string();
        let mut audit = Audit::default();
        let outcome = self.decide(&call, &request_id, &mut audit).await;
        let (reply, decision) = match outcome {
            Ok(mut body) => {
                body.insert("request_id".into(), request_id.clone().into());
                (Reply::json(200, &Value::Object(body)), "accepted")
            }
            Err(e) => {
                let decision = match &e {
                    ApiError::Dispatch(_) | ApiError::Misconfigured(_) | ApiError::Aws(_) => {
                        "failed"
                    }
                    _ => "refused",
                };
                (e.into_reply(&request_id), decision)
            }
        };
        tracing::info!(
            target: "audit",
            request_id = %request_id,
            principal = audit.principal.as_deref(),
            caller = audit.caller.as_deref(),
            action = audit.action,
            deploy_target = audit.target.as_deref(),
            decision,
            status = reply.status,
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
        reply
    }

    async fn decide(
        &self,
        call: &Call<'_>,
        request_id: &str,
        audit: &mut Audit,
    ) -> Result<Map<String, Value>, ApiError> {
        if call.method != Method::Post {
            return Err(ApiError::MethodNotAllowed);
        }
        if call.body_too_large || call.body.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        if !call.content_type.is_none_or(is_json) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let auth = self
            .auth
            .as_ref()
            .map_err(|m| ApiError::Misconfigured(*m))?;
        let principal = auth.authenticate(&call.credentials)?;
        audit.principal = Some(principal.to_string());

        let command = parse_command(call.body)?;
        audit.action = Some(command.action());
        let caller = effective_caller(&self.registry, &principal, command.caller().cloned())?;
        audit.caller = caller.as_ref().map(|c| c.as_str().to_owned());
        match command {
            Command::Status {
                include_terminated, ..
            } => self.status(include_terminated).await,
            Command::Deploy {
                target,
                ami_override,
                ..
            } => {
                audit.target = Some(target.to_string());
                let target = target.resolve(&self.registry)?;
                authorize_deploy(&self.registry, caller.as_ref(), &target)?;
                // Only the fleet's own images: an arbitrary (public or shared) AMI booted
                // as another host would run someone else's code with that host's secrets.
                if let Some(ami) = &ami_override {
                    if self.ports.fleet.fleet_image(ami.as_str()).await?.is_none() {
                        return Err(RequestError::UnknownAmi(ami.clone()).into());
                    }
                }
                let name = principal.to_string();
                self.limiter.admit(&name, Instant::now()).map_err(|wait| {
                    ApiError::RateLimited {
                        principal: name,
                        retry_after_secs: wait.as_secs_f64().ceil() as u64,
                    }
                })?;
                let bootstrap_check = self.check_bootstrap(&target).await?;
                let request = DeployRequest {
                    request_id: request_id.to_owned(),
                    target,
                    ami_override,
                    caller,
                };
                let receipt = self.ports.dispatcher.dispatch(&request).await?;
                let mut body = Map::new();
                body.insert("ok".into(), true.into());
                body.insert(
                    "message".into(),
                    format!("deploy queued for {}", request.target).into(),
                );
                body.insert("target".into(), request.target.as_str().into());
                body.insert("ami_override".into(), json!(request.ami_override));
                body.insert("caller".into(), json!(request.caller));
                body.insert("checks".into(), json!({ "bootstrap": bootstrap_check }));
                if let Some(dry_run) = receipt.dry_run {
                    body.insert("dispatch".into(), dry_run);
                }
                Ok(body)
            }
        }
    }

    /// Every host the deploy would (re)create must have its bootstrap bundle, or the new
    /// instance could not configure itself. Answers what the check did.
    async fn check_bootstrap(&self, target: &Target) -> Result<&'static str, ApiError> {
        let Some(store) = &self.ports.bootstrap else {
            return Ok("skipped");
        };
        let mut missing = Vec::new();
        for (id, entry) in self.registry.iter() {
            if matches!(target, Target::Instance(t) if t != id) {
                continue;
            }
            if !store.has_bundle(&entry.bootstrap_prefix).await? {
                missing.push(entry.bootstrap_prefix.clone());
            }
        }
        if missing.is_empty() {
            Ok("ok")
        } else {
            Err(ApiError::BootstrapMissing {
                prefixes: missing,
                bucket: store.bucket().to_owned(),
            })
        }
    }

    async fn status(&self, include_terminated: bool) -> Result<Map<String, Value>, ApiError> {
        let fleet = &self.ports.fleet;
        let live = fleet.live_instances(include_terminated).await?;
        let latest = fleet.latest_image().await?;
        let mut ami_ids: Vec<String> = live.iter().filter_map(|i| i.ami.clone()).collect();
        ami_ids.sort();
        ami_ids.dedup();
        let images = fleet.images(&ami_ids).await?;
        let status = fleet_status(&self.registry, live, latest, &images);
        let Value::Object(mut body) = json!(status) else {
            unreachable!("FleetStatus serializes to an object")
        };
        body.insert("ok".into(), true.into());
        body.insert(
            "checks".into(),
            json!({"bootstrap_bucket": if self.ports.bootstrap.is_some() { "configured" } else { "unset" }}),
        );
        Ok(body)
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
}
