//! Plan mode (`--mode plan`), and the plan step every replacement starts with: `tofu plan`
//! with the host's `-replace`, `tofu show -json`, the guard. Plan mode plans every host of
//! the target, applies nothing and reports what each plan would do.

use std::collections::BTreeMap;

use super::guard::{host_address, PlanChanges};
use super::ports::Tofu;
use super::{skip_rest, RollSpec};
use crate::domain::report::{HostOutcome, PlanSummary, RollOutcome, RollReport};

/// Why a plan is not to be applied: a tofu failure, or the guard (the summary kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStop {
    pub reason: String,
    pub plan: Option<PlanSummary>,
}

/// Plans the replacement of `id` with `amis` into `file` and checks it. `Ok` is a plan
/// that may be applied; the file is left for the apply (or [`Tofu::discard`]).
pub async fn plan_host(
    tofu: &impl Tofu,
    id: &str,
    amis: &BTreeMap<String, String>,
    file: &str,
) -> Result<PlanChanges, PlanStop> {
    let address = host_address(id);
    let stop = |reason: String| PlanStop { reason, plan: None };
    tofu.plan(&address, amis, file)
        .await
        .map_err(|e| stop(format!("tofu plan failed: {e}")))?;
    let json = tofu
        .show(file)
        .await
        .map_err(|e| stop(format!("tofu show failed: {e}")))?;
    let changes = PlanChanges::from_show_json(&json)
        .map_err(|e| stop(format!("tofu show -json was not a plan ({e})")))?;
    match changes.check(&address) {
        Ok(()) => Ok(changes),
        Err(guard) => Err(PlanStop {
            reason: guard.to_string(),
            plan: Some(changes.summary()),
        }),
    }
}

/// Plans every host of the target; stops at the first plan the guard refuses.
pub async fn plan(tofu: &impl Tofu, spec: &RollSpec) -> RollReport {
    let mut hosts: Vec<_> = spec.hosts.iter().map(|id| spec.untouched(id)).collect();
    let before = match tofu.instances().await {
        Ok(before) => before,
        Err(e) => {
            hosts[0].reason = Some(format!("stopped before planning: tofu output failed: {e}"));
            skip_rest(&mut hosts, &spec.hosts[0]);
            return spec.report(RollOutcome::Stopped, hosts);
        }
    };
    let amis = spec.instance_amis();
    for i in 0..hosts.len() {
        let line = &mut hosts[i];
        let file = format!("{}.tfplan", line.id);
        if let Some(now) = before.get(&line.id) {
            line.from_ami = now.ami.clone();
            line.old_ec2_instance_id = Some(now.instance_id.clone());
        }
        let planned = plan_host(tofu, &line.id, &amis, &file).await;
        tofu.discard(&file);
        match planned {
            Ok(changes) => {
                line.outcome = HostOutcome::Planned;
                line.plan = Some(changes.summary());
            }
            Err(stop) => {
                line.reason = Some(format!("stopped: {}", stop.reason));
                line.plan = stop.plan;
                let at = line.id.clone();
                skip_rest(&mut hosts, &at);
                return spec.report(RollOutcome::Stopped, hosts);
            }
        }
    }
    spec.report(RollOutcome::Succeeded, hosts)
}
