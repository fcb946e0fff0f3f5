//! The handler both transports share: method, size, auth, parse, policy, idempotency,
//! checks, in-flight guard, dispatch, run tracking, audit.

use std::future::Future;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::audit::{self, AuditRecord};
use super::auth::{Authenticator, Credentials, Principal};
use super::deploy::{
    active_runs, dispatch_once, find_run, read_runs, DeployError, DeployRequest, DeployTiming,
    Sleep, Workflow, WorkflowRun,
};
use super::fleet::{fleet_status, previous_image, BootstrapStore, FleetReader};
use super::idempotency::{self, Claim, ClaimTiming, IdempotencyKey, StoredReply};
use super::policy::{authorize_deploy, caller_instance, effective_caller};
use super::rate_limit::RateLimiter;
use super::registry::Registry;
use super::request::{
    parse_command, AmiId, Caller, Command, RequestError, RunRef, Target, MAX_BODY_BYTES,
};
use super::response::{ApiError, Misconfig, Reply};
use super::state::StateStore;

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
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<&'a str>,
    pub body: &'a [u8],
    /// Set by a transport that stopped reading a body over [`MAX_BODY_BYTES`].
    pub body_too_large: bool,
}

/// What a transport hands each call to: the [`ControlApi`] itself, or a holder that
/// builds it on first use (the Lambda's `app::LazyApp`).
pub trait Handler: Send + Sync {
    fn handle(&self, call: Call<'_>) -> impl Future<Output = Reply> + Send;
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> Handler
    for ControlApi<W, F, B, S>
{
    fn handle(&self, call: Call<'_>) -> impl Future<Output = Reply> + Send {
        ControlApi::handle(self, call)
    }
}

/// The answer while there is no control API to ask (its secrets unreadable): the error
/// body and audit line of any failure, with nothing known of the caller.
pub fn answer_unready(error: ApiError) -> Reply {
    let request_id = uuid::Uuid::now_v7().to_string();
    tracing::info!(
        target: "audit",
        request_id = %request_id,
        decision = "failed",
        status = error.status(),
        error = error.code(),
        "request"
    );
    error.into_reply(&request_id)
}

/// The outbound ports the handler talks to.
pub struct Ports<W, F, B, S> {
    pub workflow: W,
    pub fleet: F,
    /// `None` when no bootstrap bucket is configured: the check is skipped, visibly.
    pub bootstrap: Option<B>,
    /// `None` when no state bucket is configured: no idempotency, no audit objects.
    pub state: Option<S>,
    /// How the domain waits between retries (the async runtime's timer).
    pub sleep: Sleep,
}

/// The control API: the registry, the accepted tokens and the outbound ports.
pub struct ControlApi<W, F, B, S> {
    registry: Registry,
    /// Without a usable control token nothing can be authenticated: every request is a 500.
    auth: Result<Authenticator, Misconfig>,
    ports: Ports<W, F, B, S>,
    limiter: RateLimiter,
    deploy_timing: DeployTiming,
    claim_timing: ClaimTiming,
}

/// What the audit line and the audit record say about one request.
#[derive(Default)]
struct Audit {
    principal: Option<String>,
    caller: Option<String>,
    action: Option<&'static str>,
    target: Option<String>,
    ami_override: Option<String>,
    run: Option<(u64, String)>,
    first_request_id: Option<String>,
}

/// A successful answer, and whether it is a repeat's.
struct Answer {
    status: u16,
    body: Map<String, Value>,
    deduplicated: bool,
}

impl Answer {
    fn ok(body: Map<String, Value>) -> Self {
        Self {
            status: 200,
            body,
            deduplicated: false,
        }
    }
}

/// A deploy or rollback, checked and authorized, before its stateful steps.
struct Deploy<'a> {
    principal: &'a Principal,
    caller: Option<Caller>,
    target: Target,
    ami_override: Option<AmiId>,
    rollback: bool,
    queue: bool,
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    pub fn new(
        registry: Registry,
        auth: Result<Authenticator, Misconfig>,
        ports: Ports<W, F, B, S>,
    ) -> Self {
        Self {
            registry,
            auth,
            ports,
            limiter: RateLimiter::default(),
            deploy_timing: DeployTiming::default(),
            claim_timing: ClaimTiming::default(),
        }
    }

    /// Replaces the default deploy rate limit (10 per 10 minutes per principal).
    pub fn with_rate_limit(mut self, limiter: RateLimiter) -> Self {
        self.limiter = limiter;
        self
    }

    /// Replaces the retry and polling budgets (tests shorten them).
    pub fn with_timing(mut self, deploy: DeployTiming, claim: ClaimTiming) -> Self {
        self.deploy_timing = deploy;
        self.claim_timing = claim;
        self
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn ports(&self) -> &Ports<W, F, B, S> {
        &self.ports
    }

    /// Answers one request, writes its audit line, and for deploy decisions and refused
    /// credentials its audit record.
    pub async fn handle(&self, call: Call<'_>) -> Reply {
        let started = Instant::now();
        // Time-ordered, so audit keys sort by time within a day.
        let request_id = uuid::Uuid::now_v7().to_string();
        let mut audit = Audit::default();
        let outcome = self.decide(&call, &request_id, &mut audit).await;
        // Deploy decisions and refused credentials or policy get a durable record;
        // reads get the log line only.
        let mut durable = matches!(audit.action, Some("deploy" | "rollback"));
        let (reply, decision, error) = match outcome {
            Ok(answer) => {
                let mut body = answer.body;
                let decision = if answer.deduplicated {
                    "deduplicated"
                } else {
                    body.insert("request_id".into(), request_id.clone().into());
                    "accepted"
                };
                (
                    Reply::json(answer.status, &Value::Object(body)),
                    decision,
                    None,
                )
            }
            Err(e) => {
                let decision = match &e {
                    ApiError::DeployInFlight { .. } | ApiError::QueueFull { .. } => "guarded",
                    e if e.status() >= 500 => "failed",
                    _ => "refused",
                };
                let code = e.code();
                durable |= matches!(
                    e,
                    ApiError::Auth(_)
                        | ApiError::Policy(_)
                        | ApiError::QueueNotAllowed
                        | ApiError::AuditHumansOnly
                );
                (e.into_reply(&request_id), decision, Some(code))
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
            error,
            run_id = audit.run.as_ref().map(|r| r.0),
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
        if let (true, Some(store)) = (durable, &self.ports.state) {
            let record = AuditRecord {
                request_id: request_id.clone(),
                time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                principal: audit.principal,
                caller: audit.caller,
                action: audit.action.map(str::to_owned),
                target: audit.target,
                ami_override: audit.ami_override,
                decision: decision.to_owned(),
                status: reply.status,
                error: error.map(str::to_owned),
                run_id: audit.run.as_ref().map(|r| r.0),
                run_url: audit.run.map(|r| r.1),
                first_request_id: audit.first_request_id,
            };
            // The decision stands either way; a lost record is an operator alarm, not the caller's problem.
            if let Err(e) = audit::write(store, chrono::Utc::now(), &record).await {
                tracing::error!(request_id = %request_id, error = %e, "audit record not written");
            }
        }
        reply
    }

    async fn decide(
        &self,
        call: &Call<'_>,
        request_id: &str,
        audit: &mut Audit,
    ) -> Result<Answer, ApiError> {
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
        let is_bot = caller
            .as_ref()
            .is_some_and(|c| caller_instance(&self.registry, c).is_some());
        match command {
            Command::Status {
                include_terminated, ..
            } => self.status(include_terminated).await.map(Answer::ok),
            Command::Runs { limit, .. } => self.runs(limit).await.map(Answer::ok),
            Command::Run { run, .. } => self.run(run).await.map(Answer::ok),
            Command::Audit { limit, .. } => {
                if is_bot {
                    return Err(ApiError::AuditHumansOnly);
                }
                self.audit_records(limit).await.map(Answer::ok)
            }
            Command::Deploy {
                target,
                ami_override,
                queue,
                ..
            } => {
                let deploy = Deploy {
                    principal: &principal,
                    caller,
                    target,
                    ami_override,
                    rollback: false,
                    queue,
                };
                self.deploy(call, deploy, is_bot, request_id, audit).await
            }
            Command::Rollback { target, queue, .. } => {
                let deploy = Deploy {
                    principal: &principal,
                    caller,
                    target,
                    ami_override: None,
                    rollback: true,
                    queue,
                };
                self.deploy(call, deploy, is_bot, request_id, audit).await
            }
        }
    }

    /// The static checks, then the idempotency key around the stateful steps.
    async fn deploy(
        &self,
        call: &Call<'_>,
        mut d: Deploy<'_>,
        is_bot: bool,
        request_id: &str,
        audit: &mut Audit,
    ) -> Result<Answer, ApiError> {
        audit.target = Some(d.target.to_string());
        audit.ami_override = d.ami_override.as_ref().map(|a| a.to_string());
        let key = call
            .idempotency_key
            .map(|k| IdempotencyKey::parse(k).ok_or(ApiError::InvalidIdempotencyKey))
            .transpose()?;
        d.target = d.target.resolve(&self.registry)?;
        authorize_deploy(&self.registry, d.caller.as_ref(), &d.target)?;
        if d.queue && is_bot {
            return Err(ApiError::QueueNotAllowed);
        }
        let (Some(key), Some(store)) = (key, &self.ports.state) else {
            let idempotency = if self.ports.state.is_none() {
                "skipped"
            } else {
                "none"
            };
            return self
                .dispatch_deploy(d, idempotency, request_id, audit)
                .await
                .map(Answer::ok);
        };
        let principal = d.principal.to_string();
        let fingerprint = idempotency::sha256_hex(&[
            &principal,
            if d.rollback { "rollback" } else { "deploy" },
            d.target.as_str(),
            d.ami_override.as_ref().map_or("", AmiId::as_str),
            d.caller.as_ref().map_or("", Caller::as_str),
            if d.queue { "queue" } else { "" },
        ]);
        let claim = idempotency::claim(
            store,
            key.object_key(&principal),
            fingerprint,
            request_id,
            unix_now,
            self.claim_timing,
            self.ports.sleep,
        )
        .await?;
        let lease = match claim {
            Claim::Owned(lease) => lease,
            Claim::Replay {
                request_id: first,
                reply,
            } => {
                audit.first_request_id = Some(first);
                let mut body = match reply.body {
                    Value::Object(body) => body,
                    other => Map::from_iter([("answer".to_owned(), other)]),
                };
                if let Some((id, url)) = body
                    .get("run_id")
                    .and_then(Value::as_u64)
                    .zip(body.get("run_url").and_then(Value::as_str))
                {
                    audit.run = Some((id, url.to_owned()));
                }
                body.insert("replayed".into(), true.into());
                return Ok(Answer {
                    status: reply.status,
                    body,
                    deduplicated: true,
                });
            }
        };
        let result = self.dispatch_deploy(d, "new", request_id, audit).await;
        // Keep the answer when a dispatch happened or may have; otherwise free the key,
        // since repeating a request that started nothing is safe.
        let kept = match &result {
            Ok(body) => {
                let mut body = body.clone();
                body.insert("request_id".into(), request_id.into());
                Some(StoredReply {
                    status: 200,
                    body: Value::Object(body),
                })
            }
            Err(e @ ApiError::Deploy(DeployError::Unknown { .. })) => Some(StoredReply {
                status: e.status(),
                body: serde_json::from_str(&e.clone().into_reply(request_id).body)
                    .expect("replies are JSON"),
            }),
            Err(_) => None,
        };
        if let Err(e) = idempotency::settle(store, lease, kept).await {
            tracing::error!(request_id, error = %e, "idempotency record not settled");
        }
        result.map(Answer::ok)
    }

    /// The stateful steps of a deploy: image, rate limit, bootstrap, in-flight guard,
    /// dispatch (with retries) and run tracking.
    async fn dispatch_deploy(
        &self,
        d: Deploy<'_>,
        idempotency: &'static str,
        request_id: &str,
        audit: &mut Audit,
    ) -> Result<Map<String, Value>, ApiError> {
        let mut body = Map::new();
        let mut ami_override = d.ami_override;
        if d.rollback {
            let (from, to) = self.rollback_images(&d.target).await?;
            body.insert("rollback".into(), json!({"from": from, "to": to.as_str()}));
            audit.ami_override = Some(to.to_string());
            ami_override = Some(to);
        } else if let Some(ami) = &ami_override {
            // Only the fleet's own images: an arbitrary (public or shared) AMI booted
            // as another host would run someone else's code with that host's secrets.
            if self.ports.fleet.fleet_image(ami.as_str()).await?.is_none() {
                return Err(RequestError::UnknownAmi(ami.clone()).into());
            }
        }
        let name = d.principal.to_string();
        self.limiter
            .admit(&name, Instant::now())
            .map_err(|wait| ApiError::RateLimited {
                principal: name.clone(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            })?;
        let bootstrap_check = self.check_bootstrap(&d.target).await?;
        let (in_flight, warning) = self.guard(d.queue).await?;
        let request = DeployRequest {
            request_id: request_id.to_owned(),
            target: d.target,
            ami_override,
            caller: d
                .caller
                .or_else(|| Caller::parse(&name).ok())
                .filter(|c| !c.as_str().is_empty()),
        };
        let workflow = &self.ports.workflow;
        let dispatched =
            dispatch_once(workflow, &request, &self.deploy_timing, self.ports.sleep).await?;
        let verb = if d.rollback { "rollback" } else { "deploy" };
        body.insert("ok".into(), true.into());
        body.insert(
            "message".into(),
            format!("{verb} queued for {}", request.target).into(),
        );
        body.insert("target".into(), request.target.as_str().into());
        body.insert("ami_override".into(), json!(request.ami_override));
        body.insert("caller".into(), json!(request.caller));
        body.insert(
            "checks".into(),
            json!({ "bootstrap": bootstrap_check, "idempotency": idempotency, "in_flight": in_flight }),
        );
        let run = dispatched.run.as_ref();
        body.insert("run_id".into(), json!(run.map(|r| r.run_id)));
        body.insert("run_url".into(), json!(run.map(|r| r.run_url.as_str())));
        if let Some(r) = run {
            audit.run = Some((r.run_id, r.run_url.clone()));
        }
        if let Some(warning) = warning {
            body.insert("warning".into(), warning.into());
        }
        if let Some(dry_run) = dispatched.receipt.dry_run {
            body.insert("dispatch".into(), dry_run);
        }
        Ok(body)
    }

    /// Refuses to dispatch while another deploy is queued or running: with one pending
    /// run per concurrency group, a new dispatch could silently cancel a waiting one.
    async fn guard(&self, queue: bool) -> Result<(&'static str, Option<String>), ApiError> {
        let workflow = &self.ports.workflow;
        if !workflow.tracks_runs() {
            return Ok(("skipped", None));
        }
        let active = active_runs(workflow, &self.deploy_timing, self.ports.sleep).await?;
        let Some(newest) = active.first() else {
            return Ok(("clear", None));
        };
        if !queue {
            return Err(ApiError::DeployInFlight {
                run: Box::new(newest.clone()),
            });
        }
        if let Some(waiting) = active.iter().find(|r| r.status == "pending") {
            return Err(ApiError::QueueFull {
                run: Box::new(waiting.clone()),
            });
        }
        Ok((
            "queued",
            Some(format!(
                "queued behind run {} ({}); GitHub keeps only one waiting run: a deploy dispatched before this one starts cancels it",
                newest.run_id, newest.run_url
            )),
        ))
    }

    /// The image a rollback goes back from and to: the one before the target's current
    /// image. For `all`, every host must run the same image.
    async fn rollback_images(&self, target: &Target) -> Result<(String, AmiId), ApiError> {
        let fleet = &self.ports.fleet;
        let live = fleet.live_instances(false).await?;
        let status = fleet_status(&self.registry, live, None, &[]);
        let mut current: Vec<String> = status
            .instances
            .iter()
            .filter(|i| matches!(target, Target::All) || i.id == target.as_str())
            .filter(|i| !i.flags.contains(&"missing"))
            .filter_map(|i| i.ami.clone())
            .collect();
        current.sort();
        current.dedup();
        let current = match current.as_slice() {
            [] => {
                return Err(ApiError::InstanceNotRunning {
                    target: target.to_string(),
                })
            }
            [one] => one.clone(),
            _ => return Err(ApiError::RollbackAmbiguous { images: current }),
        };
        let images = fleet.fleet_images().await?;
        let previous = previous_image(&images, &current)
            .and_then(|p| AmiId::parse(&p.id).ok())
            .ok_or_else(|| ApiError::NoPreviousImage {
                target: target.to_string(),
                current: current.clone(),
            })?;
        Ok((current, previous))
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

    async fn runs(&self, limit: u8) -> Result<Map<String, Value>, ApiError> {
        let workflow = &self.ports.workflow;
        let mut body = Map::new();
        body.insert("ok".into(), true.into());
        if !workflow.tracks_runs() {
            body.insert("runs".into(), json!([]));
            body.insert(
                "note".into(),
                "dry run (no GitHub token): there are no runs".into(),
            );
            return Ok(body);
        }
        let deadline = Instant::now() + self.deploy_timing.dispatch_deadline / 2;
        let runs = read_runs(
            workflow,
            None,
            limit,
            &self.deploy_timing,
            self.ports.sleep,
            deadline,
        )
        .await?;
        body.insert("runs".into(), json!(runs));
        Ok(body)
    }

    async fn run(&self, run: RunRef) -> Result<Map<String, Value>, ApiError> {
        let workflow = &self.ports.workflow;
        let found: Option<WorkflowRun> = match &run {
            _ if !workflow.tracks_runs() => None,
            RunRef::RunId(id) => workflow.run(*id).await?,
            RunRef::RequestId(id) => match find_run(workflow, id).await? {
                // Again by id: the list has no steps.
                Some(listed) => workflow.run(listed.run_id).await?.or(Some(listed)),
                None => None,
            },
        };
        let run = found.ok_or_else(|| {
            ApiError::RunNotFound(match run {
                RunRef::RunId(id) => format!("run id {id}"),
                RunRef::RequestId(id) => format!("request {id}"),
            })
        })?;
        let mut body = Map::new();
        body.insert("ok".into(), true.into());
        body.insert("run".into(), json!(run));
        Ok(body)
    }

    async fn audit_records(&self, limit: u8) -> Result<Map<String, Value>, ApiError> {
        let store = self
            .ports
            .state
            .as_ref()
            .ok_or(ApiError::Misconfigured(Misconfig::unset(
                "FLEET_STATE_BUCKET",
            )))?;
        let records = audit::recent(store, chrono::Utc::now(), usize::from(limit))
            .await
            .map_err(ApiError::State)?;
        let mut body = Map::new();
        body.insert("ok".into(), true.into());
        body.insert("records".into(), json!(records));
        Ok(body)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    media.eq_ignore_ascii_case("application/json")
}
