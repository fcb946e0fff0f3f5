//! The health-gated roll (`control-api roll`): hosts replaced one at a time through
//! OpenTofu, canary first, each waited for by its heartbeat; the first host that does not
//! become ready stops the roll and is put back on the image it ran before. Plan mode plans
//! every host and applies nothing. Both end in one [`RollReport`].

pub mod gate;
pub mod guard;
pub mod order;
pub mod plan;
pub mod ports;
pub mod run;
pub mod summary;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::domain::report::{HostOutcome, HostReport, RollMode, RollReport};

pub use gate::GateTiming;
pub use ports::{Clock, HeartbeatSource, Tofu};

/// What to roll, decided before anything changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollSpec {
    pub request_id: String,
    /// `all` or a registry id.
    pub target: String,
    /// The target's hosts in roll order, canary first.
    pub hosts: Vec<String>,
    /// Every registry id: with target `all`, hosts a plan creates get the new image too.
    pub registry_ids: Vec<String>,
    pub ami: String,
    /// The full commit the hosts must report, when pinned.
    pub revision: Option<String>,
    pub timing: GateTiming,
    pub auto_rollback: bool,
    pub mode: RollMode,
}

/// The ports a roll runs on.
pub struct RollPorts<'a, T, H, C> {
    pub tofu: &'a T,
    pub heartbeats: &'a H,
    pub clock: &'a C,
}

impl RollSpec {
    /// `instance_amis` for the plans: every registry id for `all`, else the one host.
    pub fn instance_amis(&self) -> BTreeMap<String, String> {
        let ids: &[String] = if self.target == "all" {
            &self.registry_ids
        } else {
            std::slice::from_ref(&self.target)
        };
        ids.iter()
            .map(|id| (id.clone(), self.ami.clone()))
            .collect()
    }

    /// A host's line before anything happened to it.
    fn untouched(&self, id: &str) -> HostReport {
        HostReport {
            id: id.to_owned(),
            from_ami: None,
            to_ami: Some(self.ami.clone()),
            old_ec2_instance_id: None,
            new_ec2_instance_id: None,
            outcome: HostOutcome::Skipped,
            reason: None,
            ready_after_secs: None,
            plan: None,
            put_back_ec2_instance_id: None,
        }
    }

    fn report(
        &self,
        outcome: crate::domain::report::RollOutcome,
        hosts: Vec<HostReport>,
    ) -> RollReport {
        RollReport {
            request_id: self.request_id.clone(),
            target: self.target.clone(),
            ami: self.ami.clone(),
            mode: self.mode,
            revision: self.revision.clone(),
            outcome,
            hosts,
            run_url: None,
        }
    }
}

/// Runs the roll (or the plan) and reports it; never fails, every stop is in the report.
pub async fn roll<T: Tofu, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
) -> RollReport {
    match spec.mode {
        RollMode::Apply => run::apply(ports, spec).await,
        RollMode::Plan => plan::plan(ports.tofu, spec).await,
    }
}

/// Marks every host not reached as skipped because of the stop at `at`.
fn skip_rest(hosts: &mut [HostReport], at: &str) {
    for line in hosts
        .iter_mut()
        .filter(|l| l.outcome == HostOutcome::Skipped && l.reason.is_none())
    {
        line.reason = Some(format!("the roll stopped at {at}"));
    }
}
