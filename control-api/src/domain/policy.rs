//! Who may deploy what: a bot never deploys itself, so a bot never deploys `all`.

use super::auth::Principal;
use super::registry::{InstanceId, Registry};
use super::request::{Caller, Target};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("{0} may not deploy itself; ask another bot or a human")]
    SelfDeploy(InstanceId),
    #[error("{0} is a fleet instance and may not deploy all (it would replace itself); deploy other instances one by one")]
    BotDeployAll(InstanceId),
    #[error("caller {stated:?} contradicts the credentials, which belong to {verified}")]
    CallerMismatch { stated: String, verified: String },
}

impl PolicyError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::SelfDeploy(_) => "self_deploy",
            Self::BotDeployAll(_) => "bot_deploy_all",
            Self::CallerMismatch { .. } => "caller_mismatch",
        }
    }
}

/// The caller the policy judges: a verified principal's own identity, or for the shared
/// token (which identifies nobody) the `caller` the request states.
pub fn effective_caller(
    registry: &Registry,
    principal: &Principal,
    stated: Option<Caller>,
) -> Result<Option<Caller>, PolicyError> {
    let own = match principal {
        Principal::Shared => return Ok(stated),
        Principal::Human(name) => format!("human:{name}"),
        Principal::Bot(id) => id.to_string(),
    };
    let agrees = match (&stated, principal) {
        (None, _) => true,
        (Some(c), Principal::Bot(id)) => {
            caller_instance(registry, c) == Some(id) || c.as_str() == id.as_str()
        }
        (Some(c), Principal::Human(name)) => c.as_str() == own || c.as_str() == name,
        (Some(_), Principal::Shared) => unreachable!("returned above"),
    };
    if agrees {
        Ok(Some(
            Caller::parse(&own).expect("principal names are valid callers"),
        ))
    } else {
        Err(PolicyError::CallerMismatch {
            stated: stated.map(|c| c.as_str().to_owned()).unwrap_or_default(),
            verified: own,
        })
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

    #[test]
    fn verified_principals_decide_the_caller() {
        let r = Registry::embedded().unwrap();
        let bot = Principal::Bot(InstanceId::parse("clawdinator-2").unwrap());
        let c = |s: &str| Some(Caller::parse(s).unwrap());
        let eff = |p: &Principal, stated: Option<Caller>| {
            effective_caller(&r, p, stated).map(|c| c.map(|c| c.as_str().to_owned()))
        };
        // A bot is itself whatever it states, or leaves out.
        assert_eq!(eff(&bot, None), Ok(Some("clawdinator-2".into())));
        assert_eq!(
            eff(&bot, c("clawdinator-2")),
            Ok(Some("clawdinator-2".into()))
        );
        assert_eq!(
            eff(&bot, c("clawdinator-1")).map_err(|e| e.code()),
            Err("caller_mismatch")
        );
        assert_eq!(
            eff(&bot, c("human:ops")).map_err(|e| e.code()),
            Err("caller_mismatch")
        );
        let ops = Principal::Human("ops".into());
        assert_eq!(eff(&ops, None), Ok(Some("human:ops".into())));
        assert_eq!(eff(&ops, c("ops")), Ok(Some("human:ops".into())));
        assert_eq!(
            eff(&ops, c("clawdinator-1")).map_err(|e| e.code()),
            Err("caller_mismatch")
        );
        // The shared token identifies nobody: the stated caller stands, as in the seed.
        assert_eq!(
            eff(&Principal::Shared, c("clawdinator-1")),
            Ok(Some("clawdinator-1".into()))
        );
        assert_eq!(eff(&Principal::Shared, None), Ok(None));
        // So a bot leaving out `caller` is still held to the rules.
        let caller = eff(&bot, None).unwrap().map(|c| Caller::parse(&c).unwrap());
        assert_eq!(
            authorize_deploy(&r, caller.as_ref(), &Target::parse("all").unwrap())
                .map_err(|e| e.code()),
            Err("bot_deploy_all")
        );
    }
}
