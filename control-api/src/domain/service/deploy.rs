//! The deploy and rollback flow: static checks, the idempotency key around the stateful
//! steps (image, rate limit, bootstrap, in-flight guard, dispatch, run tracking), and the
//! typed outcome that the answer, the kept replay and the audit record are made from.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{ControlApi, Outcome};
use crate::domain::auth::Principal;
use crate::domain::dispatch::{active_runs, dispatch_once, resolve_ref, DeployError};
use crate::domain::error::ApiError;
use crate::domain::fleet::{fleet_status, previous_image, Flag};
use crate::domain::idempotency::{self, Claim, IdempotencyKey};
use crate::domain::policy::authorize_deploy;
use crate::domain::ports::{
    BootstrapStore, DeployRequest, DryRunDispatch, FleetReader, StateStore, Workflow,
};
use crate::domain::request::{AmiId, Caller, RequestError, Revision, Target};

/// A deploy or rollback as asked, with who asks.
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
    Clear,
    /// Dispatched behind a running deploy (`queue: true`).
    Queued,
    /// The dry run has no runs to guard against.
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

/// A dispatched deploy or rollback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOutcome {
    /// The request that dispatched it.
    pub request_id: String,
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
    Unknown { request_id: String },
}

impl<W: Workflow, F: FleetReader, B: BootstrapStore, S: StateStore> ControlApi<W, F, B, S> {
    /// The static checks, then the idempotency key around the stateful steps.
    pub(super) async fn deploy(
        &self,
        mut ask: Ask<'_>,
        key: Option<&str>,
        request_id: &str,
    ) -> Result<Outcome, ApiError> {
        let key = self.check(&mut ask, key)?;
        let (Some(key), Some(store)) = (key, &self.ports.state) else {
            let check = if self.ports.state.is_none() {
                IdempotencyCheck::Skipped
            } else {
                IdempotencyCheck::None
            };
            return self
                .dispatch_deploy(ask, check, request_id)
                .await
                .map(Outcome::Deployed);
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
            Ok(outcome) => Some(Kept::Dispatched(Box::new(outcome.clone()))),
            Err(ApiError::Deploy(DeployError::Unknown { request_id })) => Some(Kept::Unknown {
                request_id: request_id.clone(),
            }),
            Err(_) => None,
        };
        if let Err(e) = idempotency::settle(store, lease, kept).await {
            tracing::error!(request_id, error = %e, "idempotency record not settled");
        }
        result.map(Outcome::Deployed)
    }

    /// The checks that need no network: the key's form, the target, the policy, queueing.
    fn check(
        &self,
        ask: &mut Ask<'_>,
        key: Option<&str>,
    ) -> Result<Option<IdempotencyKey>, ApiError> {
        let key = key
            .map(|k| IdempotencyKey::parse(k).ok_or(ApiError::InvalidIdempotencyKey))
            .transpose()?;
        ask.target = ask.target.clone().resolve(&self.registry)?;
        authorize_deploy(&self.registry, ask.caller.as_ref(), &ask.target)?;
        if ask.queue && ask.is_bot {
            return Err(ApiError::QueueNotAllowed);
        }
        // A bot deploys what the branch says, never a commit of its own choosing.
        if ask.revision.is_some() && ask.is_bot {
            return Err(ApiError::RevisionNotAllowed);
        }
        Ok(key)
    }

    /// The stateful steps of a deploy: image, rate limit, bootstrap, in-flight guard,
    /// dispatch (with retries) and run tracking.
    async fn dispatch_deploy(
        &self,
        ask: Ask<'_>,
        idempotency: IdempotencyCheck,
        request_id: &str,
    ) -> Result<DeployOutcome, ApiError> {
        let (ami_override, rollback) = self.image(&ask).await?;
        let name = ask.principal.to_string();
        self.limiter
            .admit(&name, Instant::now())
            .map_err(|wait| ApiError::RateLimited {
                principal: name.clone(),
                retry_after_secs: wait.as_secs_f64().ceil() as u64,
            })?;
        let bootstrap = self.check_bootstrap(&ask.target).await?;
        let (in_flight, warning) = self.guard(ask.queue).await?;
        let revision = match ask.revision {
            Some(asked) => Some(asked),
            None => {
                resolve_ref(&self.ports.workflow, &self.deploy_timing, self.ports.sleep).await?
            }
        };
        let request = DeployRequest {
            request_id: request_id.to_owned(),
            target: ask.target,
            ami_override,
            caller: ask
                .caller
                .or_else(|| Caller::parse(&name).ok())
                .filter(|c| !c.as_str().is_empty()),
            revision,
        };
        let workflow = &self.ports.workflow;
        let dispatched =
            dispatch_once(workflow, &request, &self.deploy_timing, self.ports.sleep).await?;
        Ok(DeployOutcome {
            request_id: request.request_id,
            target: request.target,
            ami_override: request.ami_override,
            caller: request.caller,
            revision: request.revision,
            rollback,
            checks: DeployChecks {
                bootstrap,
                idempotency,
                in_flight,
            },
            run: dispatched.run,
            warning,
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

    /// Refuses to dispatch while another deploy is queued or running: with one pending
    /// run per concurrency group, a new dispatch could silently cancel a waiting one.
    async fn guard(&self, queue: bool) -> Result<(InFlightCheck, Option<String>), ApiError> {
        let workflow = &self.ports.workflow;
        if !workflow.tracks_runs() {
            return Ok((InFlightCheck::Skipped, None));
        }
        let active = active_runs(workflow, &self.deploy_timing, self.ports.sleep).await?;
        let Some(newest) = active.first() else {
            return Ok((InFlightCheck::Clear, None));
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
            InFlightCheck::Queued,
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
        if ask.rollback { "rollback" } else { "deploy" },
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
