//! The order of a roll: the canary alone first (`--canary`, else the registry's first id;
//! a single-host target is its own canary), then the rest of the target in registry order.

use crate::domain::registry::Registry;
use crate::domain::request::Target;

/// Why no order could be made: a usage error, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrderError {
    #[error("unknown target {0:?}: not in the registry")]
    UnknownTarget(String),
    #[error("canary {canary:?} is not a host of target {target}")]
    CanaryOutsideTarget { canary: String, target: String },
}

/// The registry ids of `target`, canary first.
pub fn roll_order(
    registry: &Registry,
    target: &Target,
    canary: Option<&str>,
) -> Result<Vec<String>, OrderError> {
    let ids: Vec<String> = match target {
        Target::All => registry.iter().map(|(id, _)| id.to_string()).collect(),
        Target::Instance(id) if registry.contains(id.as_str()) => vec![id.to_string()],
        Target::Instance(id) => return Err(OrderError::UnknownTarget(id.to_string())),
    };
    let canary = match canary {
        None => return Ok(ids),
        Some(c) => c,
    };
    let Some(at) = ids.iter().position(|id| id == canary) else {
        return Err(OrderError::CanaryOutsideTarget {
            canary: canary.to_owned(),
            target: target.as_str().to_owned(),
        });
    };
    let mut ordered = ids;
    let first = ordered.remove(at);
    ordered.insert(0, first);
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::from_json(include_str!("../../../../nix/instances.json")).unwrap()
    }

    fn target(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn the_registry_first_id_is_the_default_canary() {
        assert_eq!(
            roll_order(&registry(), &target("all"), None).unwrap(),
            ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"]
        );
    }

    #[test]
    fn a_named_canary_goes_first_and_the_rest_keep_their_order() {
        assert_eq!(
            roll_order(&registry(), &target("all"), Some("clawdinator-babelfish")).unwrap(),
            ["clawdinator-babelfish", "clawdinator-1", "clawdinator-2"]
        );
    }

    #[test]
    fn a_single_host_is_its_own_canary() {
        let r = registry();
        assert_eq!(
            roll_order(&r, &target("clawdinator-2"), None).unwrap(),
            ["clawdinator-2"]
        );
        assert_eq!(
            roll_order(&r, &target("clawdinator-2"), Some("clawdinator-2")).unwrap(),
            ["clawdinator-2"]
        );
    }

    #[test]
    fn unknown_names_are_usage_errors_that_name_them() {
        let r = registry();
        let e = roll_order(&r, &target("clawdinator-9"), None).unwrap_err();
        assert!(e.to_string().contains("clawdinator-9"), "{e}");
        let e = roll_order(&r, &target("clawdinator-2"), Some("clawdinator-1")).unwrap_err();
        assert!(matches!(e, OrderError::CanaryOutsideTarget { .. }), "{e}");
        assert!(roll_order(&r, &target("all"), Some("nope")).is_err());
    }
}
