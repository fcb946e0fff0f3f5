//! The plan guard: what `tofu show -json` says a plan would do, reduced to addresses and
//! actions, and the two checks that stop a roll before anything is applied: a plan may
//! delete (replace) only its own host, and may change only what a deploy owns (hosts,
//! their instance profiles, the control API's code); anything else needs an
//! administrator's apply (infra/README.md), which the deploy role could not do anyway.

use serde::Deserialize;

use crate::domain::report::PlanSummary;

/// The address of a registry host's instance in infra/instances.tf.
pub fn host_address(id: &str) -> String {
    format!("aws_instance.host[\"{id}\"]")
}

/// The registry id in a host instance's address, if it is one.
pub fn host_of_address(address: &str) -> Option<&str> {
    address
        .strip_prefix("aws_instance.host[\"")?
        .strip_suffix("\"]")
}

/// The part of `tofu show -json` the guard reads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PlanChanges {
    #[serde(default)]
    pub resource_changes: Vec<ResourceChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ResourceChange {
    pub address: String,
    pub change: Change,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Change {
    pub actions: Vec<String>,
}

/// Why a plan must not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardStop {
    #[error("plan would also delete or replace {}", .0.join(", "))]
    OtherDeletion(Vec<String>),
    #[error("plan would also change admin-owned resources {} (needs an administrator's apply)", .0.join(", "))]
    AdminOwned(Vec<String>),
}

impl ResourceChange {
    fn is(&self, actions: &[&str]) -> bool {
        self.change
            .actions
            .iter()
            .map(String::as_str)
            .eq(actions.iter().copied())
    }

    fn deletes(&self) -> bool {
        self.change.actions.iter().any(|a| a == "delete")
    }

    fn changes_anything(&self) -> bool {
        !(self.is(&["no-op"]) || self.is(&["read"]))
    }

    /// What a deploy may change: instances, their instance profiles, the Lambda's code.
    fn deploy_owned(&self) -> bool {
        let a = self.address.as_str();
        a.starts_with("aws_instance.host[")
            || a.starts_with("aws_iam_instance_profile.host[")
            || a == "aws_lambda_function.control_api"
    }
}

impl PlanChanges {
    pub fn from_show_json(json: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(json)
    }

    fn addresses(&self, keep: impl Fn(&ResourceChange) -> bool) -> Vec<String> {
        self.resource_changes
            .iter()
            .filter(|c| keep(c))
            .map(|c| c.address.clone())
            .collect()
    }

    /// Replaced, created, destroyed and changed addresses.
    pub fn summary(&self) -> PlanSummary {
        PlanSummary {
            replaced: self
                .addresses(|c| c.is(&["delete", "create"]) || c.is(&["create", "delete"])),
            created: self.addresses(|c| c.is(&["create"])),
            destroyed: self.addresses(|c| c.is(&["delete"])),
            changed: self.addresses(|c| c.is(&["update"])),
        }
    }

    /// The registry ids of hosts this plan creates (new registry entries).
    pub fn created_hosts(&self) -> Vec<String> {
        self.resource_changes
            .iter()
            .filter(|c| c.is(&["create"]))
            .filter_map(|c| host_of_address(&c.address).map(str::to_owned))
            .collect()
    }

    /// Whether the plan for host `own` (its address) may be applied.
    pub fn check(&self, own: &str) -> Result<(), GuardStop> {
        let others = self.addresses(|c| c.deletes() && c.address != own);
        if !others.is_empty() {
            return Err(GuardStop::OtherDeletion(others));
        }
        let outside = self.addresses(|c| c.changes_anything() && !c.deploy_owned());
        if !outside.is_empty() {
            return Err(GuardStop::AdminOwned(outside));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(changes: &[(&str, &[&str])]) -> PlanChanges {
        let rc: Vec<_> = changes
            .iter()
            .map(|(a, acts)| serde_json::json!({"address": a, "type": "x", "change": {"actions": acts}}))
            .collect();
        PlanChanges::from_show_json(
            &serde_json::json!({"format_version": "1.2", "resource_changes": rc}).to_string(),
        )
        .unwrap()
    }

    const TWO: &str = "aws_instance.host[\"clawdinator-2\"]";

    #[test]
    fn its_own_replacement_passes_and_is_summarized() {
        let p = plan(&[
            (TWO, &["delete", "create"]),
            ("aws_instance.host[\"clawdinator-1\"]", &["no-op"]),
            ("data.aws_iam_policy_document.host_assume", &["read"]),
            ("aws_lambda_function.control_api", &["update"]),
        ]);
        assert_eq!(p.check(TWO), Ok(()));
        let s = p.summary();
        assert_eq!(s.replaced, [TWO]);
        assert_eq!(s.changed, ["aws_lambda_function.control_api"]);
        assert!(s.created.is_empty() && s.destroyed.is_empty());
    }

    #[test]
    fn another_deletion_stops_naming_it() {
        let one = "aws_instance.host[\"clawdinator-1\"]";
        let p = plan(&[(TWO, &["delete", "create"]), (one, &["delete"])]);
        let e = p.check(TWO).unwrap_err();
        assert_eq!(e, GuardStop::OtherDeletion(vec![one.to_owned()]));
        assert!(e.to_string().contains(one), "{e}");
        assert_eq!(p.summary().destroyed, [one]);
    }

    #[test]
    fn admin_owned_changes_stop() {
        let p = plan(&[
            (TWO, &["create", "delete"]),
            ("aws_s3_bucket.fleet", &["update"]),
        ]);
        assert_eq!(
            p.check(TWO),
            Err(GuardStop::AdminOwned(
                vec!["aws_s3_bucket.fleet".to_owned()]
            ))
        );
    }

    #[test]
    fn created_hosts_are_found_by_address() {
        let p = plan(&[
            ("aws_instance.host[\"clawdinator-7\"]", &["create"]),
            (
                "aws_iam_instance_profile.host[\"clawdinator-7\"]",
                &["create"],
            ),
        ]);
        assert_eq!(p.created_hosts(), ["clawdinator-7"]);
        assert_eq!(host_of_address(&host_address("a-b")), Some("a-b"));
        assert!(PlanChanges::from_show_json("{}")
            .unwrap()
            .resource_changes
            .is_empty());
        assert!(PlanChanges::from_show_json("not json").is_err());
    }
}
