//! The apply loop: one host at a time, canary first (and soaked), each replaced through a
//! checked plan and waited for by its heartbeat. The first host that is not ready stops
//! the roll; unless told not to, it is put back on the image it ran before (read from
//! `tofu output` before its replacement) and waited for the same way. Hosts not reached
//! are not touched; hosts already done stay on the new image.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::gate::{self, Expect};
use super::plan::plan_host;
use super::ports::{Clock, HeartbeatSource, Tofu, TofuInstance};
use super::{skip_rest, RollPorts, RollSpec};
use crate::domain::report::{HostOutcome, HostReport, PlanSummary, RollOutcome, RollReport};

/// A host whose apply went through: the instance it now runs and when the apply began.
struct Applied {
    instance: String,
    began: DateTime<Utc>,
}

/// Why a replacement did not reach the health gate.
enum Failed {
    /// Nothing was applied (a tofu failure before apply, or the guard and its summary).
    BeforeApply(String, Option<PlanSummary>),
    /// The apply ran (or may have): the host is in an unknown state.
    Applied(String),
}

/// Plans, checks and applies the replacement of `id` on `amis`.
async fn replace<T: Tofu, H, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    id: &str,
    amis: &BTreeMap<String, String>,
    file: &str,
    old: Option<&str>,
) -> Result<(Applied, super::guard::PlanChanges), Failed> {
    let tofu = ports.tofu;
    let planned = plan_host(tofu, id, amis, file).await;
    let changes = planned.map_err(|stop| {
        tofu.discard(file);
        Failed::BeforeApply(stop.reason, stop.plan)
    })?;
    tracing::info!(host = id, plan = file, "applying");
    let began = ports.clock.now();
    let applied = tofu.apply(file).await;
    tofu.discard(file);
    applied.map_err(|e| Failed::Applied(format!("tofu apply failed: {e}")))?;
    let now = tofu
        .instances()
        .await
        .map_err(|e| Failed::Applied(format!("tofu output failed after the apply: {e}")))?;
    match now.get(id) {
        None => Err(Failed::Applied("no instance after the apply".to_owned())),
        Some(i) if Some(i.instance_id.as_str()) == old => Err(Failed::Applied(format!(
            "the apply did not replace {}",
            i.instance_id
        ))),
        Some(i) => Ok((
            Applied {
                instance: i.instance_id.clone(),
                began,
            },
            changes,
        )),
    }
}

/// Waits for the host, and soaks it when it is the canary.
async fn gate<T, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
    expect: &Expect,
    canary: bool,
) -> Result<DateTime<Utc>, String> {
    let ready = gate::wait_ready(ports.heartbeats, ports.clock, expect, &spec.timing).await?;
    if canary && !spec.timing.soak.is_zero() {
        gate::soak(ports.heartbeats, ports.clock, expect, &spec.timing).await?;
    }
    Ok(ready)
}

/// Puts `line`'s host back on its previous image; the instance it then runs.
async fn put_back<T: Tofu, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
    line: &HostReport,
    failed_instance: Option<&str>,
) -> Result<String, String> {
    let from = line
        .from_ami
        .as_deref()
        .ok_or("no previous image is known")?;
    let mut amis = spec.instance_amis();
    amis.insert(line.id.clone(), from.to_owned());
    let file = format!("{}.put-back.tfplan", line.id);
    let (applied, _) = replace(ports, &line.id, &amis, &file, failed_instance)
        .await
        .map_err(|(Failed::BeforeApply(e, _) | Failed::Applied(e))| e)?;
    // The old image runs the old revision: only instance, time and service count here.
    let expect = Expect {
        id: line.id.clone(),
        instance: applied.instance.clone(),
        since: applied.began,
        revision: None,
    };
    gate::wait_ready(ports.heartbeats, ports.clock, &expect, &spec.timing).await?;
    Ok(applied.instance)
}

/// `line`'s host did not become ready for `reason`: puts it back unless told not to.
async fn not_ready<T: Tofu, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
    line: &mut HostReport,
    reason: String,
) -> RollOutcome {
    tracing::warn!(host = %line.id, %reason, put_back = spec.auto_rollback, "not ready");
    line.reason = Some(reason);
    if !spec.auto_rollback {
        line.outcome = HostOutcome::Failed;
        return RollOutcome::Stopped;
    }
    let failed = line.new_ec2_instance_id.clone();
    match put_back(ports, spec, line, failed.as_deref()).await {
        Ok(instance) => {
            line.outcome = HostOutcome::RolledBack;
            line.put_back_ec2_instance_id = Some(instance);
            RollOutcome::Stopped
        }
        Err(e) => {
            line.outcome = HostOutcome::RollbackFailed;
            line.reason = line.reason.take().map(|r| format!("{r}; put-back: {e}"));
            RollOutcome::NeedsHuman
        }
    }
}

/// Starts `line`'s host on the new image: replaced through a checked plan, or, when an
/// earlier plan of this run created it, taken as it is. `Err` is the roll's end.
async fn start<T: Tofu, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
    line: &mut HostReport,
    before: Option<TofuInstance>,
    created: &mut BTreeMap<String, DateTime<Utc>>,
) -> Result<Applied, RollOutcome> {
    if let Some(began) = created.remove(&line.id) {
        return match before {
            Some(now) => Ok(Applied {
                instance: now.instance_id,
                began,
            }),
            None => Err(not_ready(
                ports,
                spec,
                line,
                "created, but not in tofu output".to_owned(),
            )
            .await),
        };
    }
    if let Some(now) = before {
        line.from_ami = now.ami;
        line.old_ec2_instance_id = Some(now.instance_id);
    }
    let file = format!("{}.tfplan", line.id);
    let old = line.old_ec2_instance_id.clone();
    match replace(
        ports,
        &line.id,
        &spec.instance_amis(),
        &file,
        old.as_deref(),
    )
    .await
    {
        Ok((applied, changes)) => {
            for id in changes
                .created_hosts()
                .into_iter()
                .filter(|id| *id != line.id)
            {
                created.insert(id, applied.began);
            }
            line.plan = Some(changes.summary());
            Ok(applied)
        }
        Err(Failed::BeforeApply(reason, plan)) => {
            line.reason = Some(format!("stopped before apply: {reason}"));
            line.plan = plan;
            Err(RollOutcome::Stopped)
        }
        Err(Failed::Applied(reason)) => Err(not_ready(ports, spec, line, reason).await),
    }
}

/// One host: started, gated, put back when not ready. `Some` when the roll stops here.
async fn roll_host<T: Tofu, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
    line: &mut HostReport,
    canary: bool,
    created: &mut BTreeMap<String, DateTime<Utc>>,
) -> Option<RollOutcome> {
    let before = match ports.tofu.instances().await {
        Ok(mut all) => all.remove(&line.id),
        Err(e) => {
            line.reason = Some(format!("stopped before apply: tofu output failed: {e}"));
            return Some(RollOutcome::Stopped);
        }
    };
    let applied = match start(ports, spec, line, before, created).await {
        Ok(applied) => applied,
        Err(outcome) => return Some(outcome),
    };
    line.new_ec2_instance_id = Some(applied.instance.clone());
    tracing::info!(host = %line.id, instance = %applied.instance, canary, "waiting for its heartbeat");
    let expect = Expect {
        id: line.id.clone(),
        instance: applied.instance,
        since: applied.began,
        revision: spec.revision.clone(),
    };
    match gate(ports, spec, &expect, canary).await {
        Ok(ready) => {
            tracing::info!(host = %line.id, "ready");
            line.outcome = HostOutcome::Ready;
            line.ready_after_secs = Some((ready - applied.began).num_seconds().max(0) as u64);
            None
        }
        Err(reason) => Some(not_ready(ports, spec, line, reason).await),
    }
}

/// Rolls the target's hosts in order; the report says how far it got and why it stopped.
pub async fn apply<T: Tofu, H: HeartbeatSource, C: Clock>(
    ports: &RollPorts<'_, T, H, C>,
    spec: &RollSpec,
) -> RollReport {
    let mut hosts: Vec<_> = spec.hosts.iter().map(|id| spec.untouched(id)).collect();
    let mut created = BTreeMap::new();
    for i in 0..hosts.len() {
        if let Some(outcome) = roll_host(ports, spec, &mut hosts[i], i == 0, &mut created).await {
            let at = hosts[i].id.clone();
            skip_rest(&mut hosts, &at);
            return spec.report(outcome, hosts);
        }
    }
    spec.report(RollOutcome::Succeeded, hosts)
}
