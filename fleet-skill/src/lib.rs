//! The `fleet` CLI and chat skill: talk to the fleet control API from a shell or a chat bot.
//!
//! [`run`] is the whole program minus process concerns: it takes parsed arguments, an
//! environment lookup and a stdout, and returns a [`FleetError`] whose
//! [`exit_code`](FleetError::exit_code) the binary exits with. The order of checks is the
//! contract: chat text and local policy are judged before any configuration is read or
//! any connection is opened, so a refused or malformed command never reaches the network.

pub mod chat;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod render;
pub mod sigv4;

use std::io::Write;

use control_api::domain::policy::{authorize_deploy, PolicyError};
use control_api::domain::registry::Registry;
use control_api::domain::request::{AmiId, Caller, Target};
use serde_json::json;

pub use chat::{parse_chat, ChatCommand, ChatError, USAGE};
pub use error::FleetError;

use cli::{Cli, Command};
use config::{Endpoint, Lookup};

/// What a run asks of the API, whichever way it was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Status { json: bool },
    Deploy { target: Target, ami: Option<AmiId> },
}

/// Runs one `fleet` invocation. Output for the user goes to `out`; the error, if any, is
/// for the caller to print as one `fleet: …` line on stderr.
pub fn run(cli: Cli, lookup: Lookup<'_>, out: &mut dyn Write) -> Result<(), FleetError> {
    let action = match cli.command {
        Command::Status { json } => Action::Status { json },
        Command::Deploy { target, ami } => Action::Deploy { target, ami },
        Command::Chat { text } => match parse_chat(&text) {
            Ok(ChatCommand::Status) => Action::Status { json: false },
            Ok(ChatCommand::Deploy {
                target,
                ami_override,
            }) => Action::Deploy {
                target,
                ami: ami_override,
            },
            Ok(ChatCommand::Help) => {
                writeln!(out, "{USAGE}")?;
                return Ok(());
            }
            Err(e) => {
                // The usage goes to stdout, which the bot relays to the user.
                writeln!(out, "{USAGE}")?;
                return Err(e.into());
            }
        },
    };
    let caller = match cli.caller {
        Some(caller) => Some(caller),
        None => config::default_caller(lookup)?,
    };
    if let Action::Deploy { target, .. } = &action {
        check_policy(caller.as_ref(), target)?;
    }
    let endpoint = Endpoint::from_env(lookup)?;
    match action {
        Action::Status { json } => status(&endpoint, caller.as_ref(), json, out),
        Action::Deploy { target, ami } => {
            deploy(&endpoint, caller.as_ref(), &target, ami.as_ref(), out)
        }
    }
}

/// The API's own deploy policy, applied before sending: a bot never deploys itself or
/// `all`. The API checks again; this only spares the call and gives a clear refusal.
pub fn check_policy(caller: Option<&Caller>, target: &Target) -> Result<(), PolicyError> {
    if let (Some(caller), Target::Instance(id)) = (caller, target) {
        // Holds even for an instance added after this binary was built.
        if caller.as_str() == id.as_str() {
            return Err(PolicyError::SelfDeploy(id.clone()));
        }
    }
    // The embedded registry is checked by control-api's tests; were it ever invalid, the
    // API's own check still stands, so this one is skipped rather than failing the run.
    match Registry::embedded() {
        Ok(registry) => authorize_deploy(&registry, caller, target),
        Err(_) => Ok(()),
    }
}

fn status(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let body = json!({"action": "status", "caller": caller});
    let answer = client::post(endpoint, body.to_string().as_bytes(), None)?;
    let value = client::interpret(&answer)?;
    if json {
        writeln!(out, "{}", answer.body.trim())?;
    } else {
        out.write_all(render::render_status(&value).as_bytes())?;
    }
    Ok(())
}

fn deploy(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    target: &Target,
    ami: Option<&AmiId>,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let body = json!({
        "action": "deploy",
        "target": target,
        "caller": caller,
        "ami_override": ami,
    });
    // One key per invocation: the retry in `client::post` reuses it.
    let key = uuid::Uuid::new_v4().to_string();
    let answer = client::post(endpoint, body.to_string().as_bytes(), Some(&key))?;
    let value = client::interpret(&answer)?;
    out.write_all(render::render_deploy(&value).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(caller: Option<&str>, target: &str) -> Result<(), &'static str> {
        let caller = caller.map(|c| Caller::parse(c).unwrap());
        check_policy(caller.as_ref(), &Target::parse(target).unwrap()).map_err(|e| e.code())
    }

    #[test]
    fn local_policy_matches_the_api() {
        assert_eq!(check(None, "all"), Ok(()));
        assert_eq!(check(Some("human:ops"), "all"), Ok(()));
        assert_eq!(check(Some("clawdinator-1"), "clawdinator-2"), Ok(()));
        assert_eq!(
            check(Some("clawdinator-2"), "clawdinator-2"),
            Err("self_deploy")
        );
        assert_eq!(check(Some("clawdinator-1"), "all"), Err("bot_deploy_all"));
        // Not in the embedded registry, still itself.
        assert_eq!(
            check(Some("clawdinator-77"), "clawdinator-77"),
            Err("self_deploy")
        );
    }
}
