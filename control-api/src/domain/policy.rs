//! Who may deploy what: a bot never deploys itself, so a bot never deploys `all`.

use super::registry::{InstanceId, Registry};
use super::request::{Caller, Target};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0} may not deploy itself; ask another bot or a human")]
    SelfDeploy(InstanceId),
    #[error("{0} is a fleet instance and may not deploy all (it would replace itself); deploy other instances one by one")]
    BotDeployAll(InstanceId),
}

impl PolicyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::SelfDeploy(_) => "self_deploy",
            Self::BotDeployAll(_) => "bot_deploy_all",
        }
    }
}

/// The fleet instance a caller names, by instance id or by host name.
pub fn caller_instance<'r>(registry: &'r Registry, caller: &Caller) -> Option<&'r InstanceId> {
    registry.get(caller.as_str()).map(|(id, _)| id).or_else(|| {
        registry
            .iter()
            .find(|(_, e)| e.host == caller.as_str())
            .map(|(id, _)| id)
    })
}

/// Checks a deploy against the policy. The target is already known to be in the registry.
pub fn authorize_deploy(
    registry: &Registry,
    caller: Option<&Caller>,
    target: &Target,
) -> Result<(), PolicyError> {
    let Some(bot) = caller.and_then(|c| caller_instance(registry, c)) else {
        return Ok(());
    };
    match target {
        Target::All => Err(PolicyError::BotDeployAll(bot.clone())),
        Target::Instance(id) if id == bot => Err(PolicyError::SelfDeploy(bot.clone())),
        Target::Instance(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(caller: Option<&str>, target: &str) -> Result<(), &'static str> {
        let r = Registry::embedded().unwrap();
        let caller = caller.map(|c| Caller::parse(c).unwrap());
        authorize_deploy(&r, caller.as_ref(), &Target::parse(target).unwrap()).map_err(|e| e.code())
    }

    #[test]
    fn policy_table() {
        assert_eq!(check(None, "all"), Ok(()));
        assert_eq!(check(Some("human:ops"), "all"), Ok(()));
        assert_eq!(check(Some("human:ops"), "clawdinator-1"), Ok(()));
        assert_eq!(check(Some("clawdinator-1"), "clawdinator-2"), Ok(()));
        assert_eq!(
            check(Some("clawdinator-1"), "clawdinator-1"),
            Err("self_deploy")
        );
        assert_eq!(check(Some("clawdinator-1"), "all"), Err("bot_deploy_all"));
        assert_eq!(
            check(Some("clawdinator-babelfish"), "all"),
            Err("bot_deploy_all")
        );
        // A retired bot that is no longer in the registry is not a fleet instance.
        assert_eq!(check(Some("clawdinator-9"), "all"), Ok(()));
    }
}
