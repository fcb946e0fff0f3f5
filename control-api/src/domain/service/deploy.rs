//! The deploy, rollback and plan flow: static checks, the idempotency key around the
//! stateful steps (image, rate limit, bootstrap, locks, the lease or the queue, dispatch,
//! run tracking), and the typed outcome that the answer, the kept replay and the audit
//! record are made from. A plan runs the same checks and dispatches the same workflow
//! with the `mode` input `plan`; it changes nothing, so it takes no lease, is never
//! queued, and a lock only warns.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::lease::{Acquired, Held};
use super::queue::QueuedOutcome;
use super::{ControlApi, Outcome};
use crate::domain::auth::Principal;
use crate::domain::dispatch::{active_runs, dispatch_once, resolve_ref, DeployError};
use crate::domain::error::{ApiError, InFlight};
use crate::domain::fleet::{fleet_status, previous_image, Flag};
use crate::domain::idempotency::{self, Claim, IdempotencyKey};
use crate::domain::lease::Lease;
use crate::domain::policy::authorize_deploy;
use crate::domain::ports::{
    BootstrapStore, DeployRequest, DryRunDispatch, FleetReader, StateStore, Workflow,
};
use crate::domain::report::RollMode;
use crate::domain::request::{AmiId, Caller, RequestError, Revision, Target};

/// A deploy, rollback or plan as asked, with who asks.
pub(super) struct Ask<'a> {
    pub principal: &'a Principal,
    pub caller: Option<Caller>,
    pub target: Target,
    pub ami_override: Option<AmiId>,
    pub rollback: bool,
    pub queue: bool,
    /// The commit a human asked for; else `GITHUB_REF`'s, resolved at dispatch.
    pub revision: Option<Revision>,
    pub is_bot: bool,
    /// `plan`: the workflow plans and applies nothing.
    pub mode: RollMode,
}

/// Who asks for a deploy, rollback or plan; each of the three commands' fields then make
/// its [`Ask`] (the router matches the commands, so no other command can get here).
pub(super) struct Asker<'a> {
    pub principal: &'a Principal,
    pub caller: Option<Caller>,
    pub is_bot: bool,
}

impl<'a> Asker<'a> {
    fn ask(self, target: Target, mode: RollMode) -> Ask<'a> {
        Ask {
            principal: self.principal,
            caller: self.caller,
            target,
            ami_override: None,
            rollback: false,
            queue: false,
            revision: None,
            is_bot: self.is_bot,
            mode,
        }
    }

    pub(super) fn deploy(
        self,
        target: Target,
        ami_override: Option<AmiId>,
        queue: bool,
        revision: Option<Revision>,
    ) -> Ask<'a> {
        Ask {
            ami_override,
            queue,
            revision,
            ..self.ask(target, RollMode::Apply)
        }
    }

    pub(super) fn rollback(
        self,
        target: Target,
        queue: bool,
        revision: Option<Revision>,
    ) -> Ask<'a> {
        Ask {
            rollback: true,
            queue,
            revision,
            ..self.ask(target, RollMode::Apply)
        }
    }

    pub(super) fn plan(
        self,
        target: Target,
        ami_override: Option<AmiId>,
        revision: Option<Revision>,
    ) -> Ask<'a> {
        Ask {
            ami_override,
            revision,
            ..self.ask(target, RollMode::Plan)
        }
    }
}

/// What the bootstrap check did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapCheck {
    Ok,
    /// No bootstrap bucket configured.
    Skipped,
}

/// Whether an idempotency key protected the dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdempotencyCheck {
    /// A key was sent and this request was its first.
    New,
    /// No key was sent.
    None,
    /// No state bucket configured.
    Skipped,
}

/// What the in-flight guard found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InFlightCheck {
    /// Nothing in flight: this deploy took the lease (or, without a state bucket, no
    /// run was in flight).
    Clear,
    /// Dispatched from the queue, its turn come.
    Queued,
    /// The dry run has no runs to guard against; a plan, which changes nothing, takes
    /// no lease and waits for no run.
    Skipped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployChecks {
    pub bootstrap: BootstrapCheck,
    pub idempotency: IdempotencyCheck,
    pub in_flight: InFlightCheck,
}

/// The images a rollback goes from and to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackImages {
    pub from: String,
    pub to: AmiId,
}

pub use crate::domain::ports::RunLink;

/// A dispatched deploy, rollback or plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOutcome {
    /// The request that dispatched it.
    pub request_id: String,
    /// `plan` for a plan (absent in answers kept before plans existed: a deploy's).
    #[serde(default)]
    pub mode: RollMode,
    pub target: Target,
    /// The image asked for; for a rollback, the image rolled back to.
    pub ami_override: Option<AmiId>,
    /// Who the run is for.
    pub caller: Option<Caller>,
    /// The commit dispatched (`None` only in the dry run, which resolves nothing;
    /// and in answers kept before revisions were pinned).
    #[serde(default)]
    pub revision: Option<Revision>,
    /// Set for a rollback.
    pub rollback: Option<RollbackImages>,
    pub checks: DeployChecks,
    pub run: Option<RunLink>,
    pub warning: Option<String>,
    /// The dispatch the local dry run did not send.
    pub dry_run: Option<DryRunDispatch>,
}

/// What a key keeps for its repeats: the outcome of a dispatch, or the word that the
/// dispatch's fate is unknown (so a repeat never dispatches again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kept {
    Dispatched(Box<DeployOutcome>),
    Unknown {
        request_id: String,
    },
    /// Put in the queue (its position then).
    Queued(QueuedOutcome),
}

/// What a deploy request came to: dispatched now, or queued for later.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Handled {
    Deployed(Box<DeployOutcome>),
    Queued(QueuedOutcome),
}

impl Handled {
    fn outcome(self) -> Outcome {
        match self {
            Self::Deployed(o) => Outcome::Deployed(*o),
            Self::Queued(q) => Outcome::Queued(q),
        }
    }
}

/// What the checks before a dispatch settled.
pub(super) struct Prepared {
    pub ami_override: Option<AmiId>,
    pub rollback: Option<RollbackImages>,
    pub bootstrap: BootstrapCheck,
}

/// Whether this request may dispatch now, and under which lease.
enum Turn {
    Go {
        in_flight: InFlightCheck,
        held: Option<Held>,
    },
    Queued(QueuedOutcome),
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// The static checks, then the idempotency key around the stateful steps.
    pub(super) async fn deploy(
        &self,
        ask: Ask<'_>,
        key: Option<&str>,
        request_id: &str,
    ) -> Result<Outcome, ApiError> {
        let key = self.check(&ask, key)?;
        let (Some(key), Some(store)) = (key, &self.ports.state) else {
            let check = if self.ports.state.is_none() {
                IdempotencyCheck::Skipped
            } else {
                IdempotencyCheck::None
            };
            return self
                .dispatch_deploy(ask, check, request_id)
                .await
                .map(Handled::outcome);
        };
        let principal = ask.principal.to_string();
        let claim = idempotency::claim(
            store,
            key.object_key(&principal),
            fingerprint(&principal, &ask),
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
                kept,
            } => {
                return Ok(Outcome::Replayed {
                    first_request_id: first,
                    kept,
                })
            }
        };
        let result = self
            .dispatch_deploy(ask, IdempotencyCheck::New, request_id)
            .await;
        // Keep the answer when a dispatch happened or may have; otherwise free the key,
        // since repeating a request that started nothing is safe.
        let kept = match &result {
            Ok(Handled::Deployed(outcome)) => Some(Kept::Dispatched(outcome.clone())),
            Ok(Handled::Queued(queued)) => Some(Kept::Queued(queued.clone())),
            Err(ApiError::Deploy(DeployError::Unknown { request_id })) => Some(Kept::Unknown {
                request_id: request_id.clone(),
            }),
            Err(_) => None,
        };
        if let Err(e) = idempotency::settle(store, lease, kept).await {
            tracing::error!(request_id, error = %e, "idempotency record not settled");
        }
        result.map(Handled::outcome)
    }

    /// The checks that need no network: the key's form, the target, the policy, queueing.
    fn check(&self, ask: &Ask<'_>, key: Option<&str>) -> Result<Option<IdempotencyKey>, ApiError> {
        let key = key
            .map(|k| IdempotencyKey::parse(k).ok_or(ApiError::InvalidIdempotencyKey))
            .transpose()?;
        ask.target.check_known(&self.registry)?;
        // A plan changes nothing: a bot may plan any host, itself and `all` included.
        if ask.mode.is_apply() {
            authorize_deploy(&self.registry, ask.caller.as_ref(), &ask.target)?;
        }
        if ask.queue && ask.is_bot {
            return Err(ApiError::QueueNotAllowed);
        }
        // A bot deploys what the branch says, never a commit of its own choosing.
        if ask.revision.is_some() && ask.is_bot {
            return Err(ApiError::RevisionNotAllowed);
        }
        Ok(key)
    }

    /// The stateful steps of a deploy: image, rate limit, bootstrap, locks, the lease (or
    /// the queue), dispatch (with retries) and run tracking.
    async fn dispatch_deploy(
        &self,
        ask: Ask<'_>,
        idempotency: IdempotencyCheck,
        request_id: &str,
    ) -> Result<Handled, ApiError> {
        let (ami_override, rollback) = self.image(&ask).await?;
        let name = ask.principal.to_string();
        self.limiter
            .admit(&name, Instant::now())
            .map_err(|wait| ApiError::RateLimited {
                principal: name.clone(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            })?;
        let bootstrap = self.check_bootstrap(&ask.target).await?;
        let prepared = Prepared {
            ami_override,
            rollback,
            bootstrap,
        };
        if !ask.mode.is_apply() {
            return self.plan(ask, prepared, idempotency, request_id).await;
        }
        self.check_locks(&ask.target).await?;
        let (in_flight, held) = match self.turn(&ask, request_id).await? {
            Turn::Go { in_flight, held } => (in_flight, held),
            Turn::Queued(queued) => return Ok(Handled::Queued(queued)),
        };
        let checks = DeployChecks {
            bootstrap: prepared.bootstrap,
            idempotency,
            in_flight,
        };
        self.send(ask, prepared, checks, request_id, held)
            .await
            .map(|o| Handled::Deployed(Box::new(o)))
    }

    /// A plan after the shared checks: no lease, no guard, a lock named in a warning
    /// instead of a refusal.
    async fn plan(
        &self,
        ask: Ask<'_>,
        prepared: Prepared,
        idempotency: IdempotencyCheck,
        request_id: &str,
    ) -> Result<Handled, ApiError> {
        let warning = self.lock_warning(&ask.target).await?;
        let checks = DeployChecks {
            bootstrap: prepared.bootstrap,
            idempotency,
            in_flight: InFlightCheck::Skipped,
        };
        let mut outcome = self.send(ask, prepared, checks, request_id, None).await?;
        outcome.warning = warning;
        Ok(Handled::Deployed(Box::new(outcome)))
    }

    /// The checks a queued deploy passes again when its turn comes: target, policy,
    /// image, bootstrap, locks.
    pub(super) async fn prepare(&self, ask: &Ask<'_>) -> Result<Prepared, ApiError> {
        ask.target.check_known(&self.registry)?;
        authorize_deploy(&self.registry, ask.caller.as_ref(), &ask.target)?;
        let (ami_override, rollback) = self.image(ask).await?;
        let bootstrap = self.check_bootstrap(&ask.target).await?;
        self.check_locks(&ask.target).await?;
        Ok(Prepared {
            ami_override,
            rollback,
            bootstrap,
        })
    }

    /// Whether this deploy may dispatch now. With a state bucket (and a workflow whose
    /// runs are tracked) the lease decides; a human's `queue: true` waits in the queue
    /// behind its holder, and behind whoever queued first. Without one, GitHub's runs.
    async fn turn(&self, ask: &Ask<'_>, request_id: &str) -> Result<Turn, ApiError> {
        let (Some(store), true) = (&self.ports.state, self.ports.workflow.tracks_runs()) else {
            let in_flight = self.guard().await?;
            return Ok(Turn::Go {
                in_flight,
                held: None,
            });
        };
        if ask.queue && !self.queued_ids(store).await?.is_empty() {
            return self.enqueue(store, ask, request_id).await.map(Turn::Queued);
        }
        let who = ask
            .caller
            .as_ref()
            .map_or_else(|| ask.principal.to_string(), |c| c.as_str().to_owned());
        let lease = Lease::new(
            request_id,
            ask.target.as_str(),
            &who,
            self.lease_lifetime,
            chrono::Utc::now(),
        );
        match self.acquire(store, lease).await? {
            Acquired::Taken(held) => Ok(Turn::Go {
                in_flight: InFlightCheck::Clear,
                held: Some(held),
            }),
            Acquired::Busy(_) if ask.queue => {
                self.enqueue(store, ask, request_id).await.map(Turn::Queued)
            }
            Acquired::Busy(holder) => {
                Err(ApiError::DeployInFlight(Box::new(InFlight::Lease(holder))))
            }
        }
    }

    /// Resolves the revision and dispatches under the lease `held`: the lease names the
    /// run once there is one, and is released when nothing was dispatched (kept when
    /// the dispatch's fate is unknown: its run may still start).
    pub(super) async fn send(
        &self,
        ask: Ask<'_>,
        prepared: Prepared,
        checks: DeployChecks,
        request_id: &str,
        held: Option<Held>,
    ) -> Result<DeployOutcome, ApiError> {
        let result = self.dispatch_now(ask, prepared, checks, request_id).await;
        let (Some(held), Some(store)) = (held, &self.ports.state) else {
            return result;
        };
        match &result {
            Ok(outcome) => self.attach_run(store, &held, outcome.run.as_ref()).await,
            Err(ApiError::Deploy(DeployError::Unknown { .. })) => {}
            Err(_) => {
                if let Err(e) = self.release(store, request_id).await {
                    tracing::error!(request_id, error = %e, "lease not released after a failed dispatch");
                }
            }
        }
        result
    }

    async fn dispatch_now(
        &self,
        ask: Ask<'_>,
        prepared: Prepared,
        checks: DeployChecks,
        request_id: &str,
    ) -> Result<DeployOutcome, ApiError> {
        let revision = match ask.revision {
            Some(asked) => Some(asked),
            None => {
                resolve_ref(&self.ports.workflow, &self.deploy_timing, self.ports.sleep).await?
            }
        };
        let request = DeployRequest {
            request_id: request_id.to_owned(),
            target: ask.target,
            ami_override: prepared.ami_override,
            caller: ask
                .caller
                .or_else(|| Caller::parse(&ask.principal.to_string()).ok())
                .filter(|c| !c.as_str().is_empty()),
            revision,
            mode: ask.mode,
        };
        let workflow = &self.ports.workflow;
        let dispatched =
            dispatch_once(workflow, &request, &self.deploy_timing, self.ports.sleep).await?;
        Ok(DeployOutcome {
            request_id: request.request_id,
            mode: request.mode,
            target: request.target,
            ami_override: request.ami_override,
            caller: request.caller,
            revision: request.revision,
            rollback: prepared.rollback,
            checks,
            run: dispatched.run,
            warning: None,
            dry_run: dispatched.receipt.dry_run,
        })
    }

    /// The image to deploy: a rollback's previous image, or the override if it is a
    /// fleet image. Only the fleet's own images: an arbitrary (public or shared) AMI
    /// booted as another host would run someone else's code with that host's secrets.
    async fn image(
        &self,
        ask: &Ask<'_>,
    ) -> Result<(Option<AmiId>, Option<RollbackImages>), ApiError> {
        if ask.rollback {
            let (from, to) = self.rollback_images(&ask.target).await?;
            return Ok((Some(to.clone()), Some(RollbackImages { from, to })));
        }
        if let Some(ami) = &ask.ami_override {
            if self.ports.fleet.fleet_image(ami.as_str()).await?.is_none() {
                return Err(RequestError::UnknownAmi(ami.clone()).into());
            }
        }
        Ok((ask.ami_override.clone(), None))
    }

    /// Without a state bucket there is no lease: refuses to dispatch while a run of the
    /// workflow is queued or running, as read from GitHub.
    async fn guard(&self) -> Result<InFlightCheck, ApiError> {
        let workflow = &self.ports.workflow;
        if !workflow.tracks_runs() {
            return Ok(InFlightCheck::Skipped);
        }
        let active = active_runs(workflow, &self.deploy_timing, self.ports.sleep).await?;
        match active.into_iter().next() {
            None => Ok(InFlightCheck::Clear),
            Some(newest) => Err(ApiError::DeployInFlight(Box::new(InFlight::Run(newest)))),
        }
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
            .filter(|i| !i.flags.contains(&Flag::Missing))
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
    /// instance could not configure itself.
    async fn check_bootstrap(&self, target: &Target) -> Result<BootstrapCheck, ApiError> {
        let Some(store) = &self.ports.bootstrap else {
            return Ok(BootstrapCheck::Skipped);
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
            Ok(BootstrapCheck::Ok)
        } else {
            Err(ApiError::BootstrapMissing {
                prefixes: missing,
                bucket: store.bucket().to_owned(),
            })
        }
    }
}

/// Of the request's meaning: the same key with another meaning is refused.
fn fingerprint(principal: &str, ask: &Ask<'_>) -> String {
    idempotency::sha256_hex(&[
        principal,
        match (ask.rollback, ask.mode) {
            (true, _) => "rollback",
            (false, RollMode::Apply) => "deploy",
            (false, RollMode::Plan) => "plan",
        },
        ask.target.as_str(),
        ask.ami_override.as_ref().map_or("", AmiId::as_str),
        ask.caller.as_ref().map_or("", Caller::as_str),
        if ask.queue { "queue" } else { "" },
        ask.revision.as_ref().map_or("", Revision::as_str),
    ])
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
