//! The `fleet` CLI and chat skill: talk to the fleet control API from a shell or a chat bot.
//!
//! [`run`] is the whole program minus process concerns: it takes parsed arguments, an
//! environment lookup, a stdout and a stderr for progress, and returns a [`FleetError`]
//! whose [`exit_code`](FleetError::exit_code) the binary exits with. The order of checks
//! is the contract: chat text and local policy are judged before any configuration is
//! read or any connection is opened, so a refused or malformed command never reaches the
//! network.

pub mod chat;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod render;
pub mod sigv4;
pub mod wait;

use std::io::Write;

use control_api::domain::policy::{authorize_deploy, caller_instance, PolicyError};
use control_api::domain::registry::Registry;
use control_api::domain::request::{AmiId, Caller, Target};
use serde_json::{json, Value};

pub use chat::{parse_chat, ChatCommand, ChatError, USAGE};
pub use error::FleetError;

use cli::{Cli, Command};
use config::{Endpoint, Lookup};
use wait::{Progress, RunRef, WaitOptions};

/// What a run asks of the API, whichever way it was typed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Status {
        json: bool,
    },
    Deploy {
        target: Target,
        ami: Option<AmiId>,
        queue: bool,
        wait: Option<WaitOptions>,
    },
    Rollback {
        target: Target,
        queue: bool,
        wait: Option<WaitOptions>,
    },
    Runs {
        limit: Option<u8>,
        json: bool,
    },
    Audit {
        limit: Option<u8>,
        json: bool,
    },
    Wait {
        run: RunRef,
        options: WaitOptions,
    },
}

/// Runs one `fleet` invocation. Output for the user goes to `out`; a wait's progress goes
/// to `err`, redrawn in place when `err_is_terminal`. The error, if any, is for the
/// caller to print as one `fleet: …` line on stderr.
pub fn run(
    cli: Cli,
    lookup: Lookup<'_>,
    out: &mut dyn Write,
    err: &mut dyn Write,
    err_is_terminal: bool,
) -> Result<(), FleetError> {
    let mut terminal = err_is_terminal;
    let action = match cli.command {
        Command::Status { json } => Action::Status { json },
        Command::Deploy {
            target,
            ami,
            queue,
            wait,
        } => Action::Deploy {
            target,
            ami,
            queue: queue.queue,
            wait: wait.options(),
        },
        Command::Rollback {
            target,
            queue,
            wait,
        } => Action::Rollback {
            target,
            queue: queue.queue,
            wait: wait.options(),
        },
        Command::Runs { limit, json } => Action::Runs { limit, json },
        Command::Audit { limit, json } => Action::Audit { limit, json },
        Command::Wait { run, timing } => Action::Wait {
            run,
            options: timing.options(),
        },
        Command::Chat { text } => {
            // A bot relays lines; a redrawn line would reach the chat as a smear of frames.
            terminal = false;
            match parse_chat(&text) {
                Ok(command) => match from_chat(command) {
                    Some(action) => action,
                    None => {
                        writeln!(out, "{USAGE}")?;
                        return Ok(());
                    }
                },
                Err(e) => {
                    // The usage goes to stdout, which the bot relays to the user.
                    writeln!(out, "{USAGE}")?;
                    return Err(e.into());
                }
            }
        }
    };
    let caller = match cli.caller {
        Some(caller) => Some(caller),
        None => config::default_caller(lookup)?,
    };
    if let Action::Deploy { target, queue, .. } | Action::Rollback { target, queue, .. } = &action {
        check_policy(caller.as_ref(), target)?;
        if *queue {
            check_queue(caller.as_ref())?;
        }
    }
    let endpoint = Endpoint::from_env(lookup)?;
    let caller = caller.as_ref();
    match action {
        Action::Status { json } => {
            let body = json!({"action": "status", "caller": caller});
            read(&endpoint, body, json, render::render_status, out)
        }
        Action::Deploy {
            target,
            ami,
            queue,
            wait,
        } => {
            let body = json!({
                "action": "deploy",
                "target": target,
                "caller": caller,
                "ami_override": ami,
            });
            let answer = deploy(&endpoint, with_queue(body, queue), out)?;
            follow(&endpoint, caller, &answer, wait, err, terminal, out)
        }
        Action::Rollback {
            target,
            queue,
            wait,
        } => {
            let body = json!({"action": "rollback", "target": target, "caller": caller});
            let answer = deploy(&endpoint, with_queue(body, queue), out)?;
            follow(&endpoint, caller, &answer, wait, err, terminal, out)
        }
        Action::Runs { limit, json } => {
            let body = with_limit(json!({"action": "runs", "caller": caller}), limit);
            read(&endpoint, body, json, render::render_runs, out)
        }
        Action::Audit { limit, json } => {
            let body = with_limit(json!({"action": "audit", "caller": caller}), limit);
            read(&endpoint, body, json, render::render_audit, out)
        }
        Action::Wait { run, options } => {
            let mut progress = Progress::start(err, terminal);
            wait::wait(&endpoint, caller, run, &options, &mut progress, out)
        }
    }
}

/// The action a chat command stands for; `None` for help, which needs no call.
fn from_chat(command: ChatCommand) -> Option<Action> {
    Some(match command {
        ChatCommand::Status => Action::Status { json: false },
        ChatCommand::Deploy {
            target,
            ami_override,
        } => Action::Deploy {
            target,
            ami: ami_override,
            queue: false,
            wait: None,
        },
        ChatCommand::Rollback { target } => Action::Rollback {
            target,
            queue: false,
            wait: None,
        },
        ChatCommand::Runs => Action::Runs {
            limit: None,
            json: false,
        },
        ChatCommand::Wait { run } => Action::Wait {
            run,
            options: WaitOptions::default(),
        },
        ChatCommand::Audit => Action::Audit {
            limit: None,
            json: false,
        },
        ChatCommand::Help => return None,
    })
}

/// The API's own deploy policy, applied before sending: a bot never deploys (or rolls
/// back) itself or `all`. The API checks again; this only spares the call and gives a
/// clear refusal.
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

/// The API's rule for `queue`: only a human may queue behind a deploy in flight, so a
/// caller that is a fleet instance (by the same registry test as [`check_policy`]) is
/// refused before sending.
pub fn check_queue(caller: Option<&Caller>) -> Result<(), FleetError> {
    let Some(caller) = caller else {
        return Ok(());
    };
    match Registry::embedded() {
        Ok(registry) => match caller_instance(&registry, caller) {
            Some(bot) => Err(FleetError::QueueNotAllowed(bot.clone())),
            None => Ok(()),
        },
        Err(_) => Ok(()),
    }
}

/// `queue` only when asked for: absent means no, and keeps a plain deploy's body as it
/// always was.
fn with_queue(mut body: Value, queue: bool) -> Value {
    if queue {
        body["queue"] = Value::Bool(true);
    }
    body
}

/// `limit` only when given, so the API's default applies otherwise.
fn with_limit(mut body: Value, limit: Option<u8>) -> Value {
    if let Some(limit) = limit {
        body["limit"] = limit.into();
    }
    body
}

/// A call that only reads: the table, or with `json` the API's answer unchanged.
fn read(
    endpoint: &Endpoint,
    body: Value,
    json: bool,
    render: fn(&Value) -> String,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let answer = client::post(endpoint, body.to_string().as_bytes(), None)?;
    let value = client::interpret(&answer)?;
    if json {
        writeln!(out, "{}", answer.body.trim())?;
    } else {
        out.write_all(render(&value).as_bytes())?;
    }
    Ok(())
}

/// A deploy or rollback: sent once with a fresh `Idempotency-Key`, receipt printed.
fn deploy(endpoint: &Endpoint, body: Value, out: &mut dyn Write) -> Result<Value, FleetError> {
    // One key per invocation: the retry in `client::post` reuses it.
    let key = uuid::Uuid::new_v4().to_string();
    let answer = client::post(endpoint, body.to_string().as_bytes(), Some(&key))?;
    let value = client::interpret(&answer)?;
    out.write_all(render::render_deploy(&value).as_bytes())?;
    Ok(value)
}

/// `--wait` after an accepted deploy or rollback: follows its run by run id when the
/// answer has one, else by request id.
fn follow(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    answer: &Value,
    wait: Option<WaitOptions>,
    err: &mut dyn Write,
    terminal: bool,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let Some(options) = wait else {
        return Ok(());
    };
    if answer
        .get("dispatch")
        .and_then(|d| d.get("dry_run"))
        .and_then(Value::as_bool)
        == Some(true)
    {
        writeln!(out, "nothing to wait for: no workflow run was dispatched")?;
        return Ok(());
    }
    let by_run_id = answer
        .get("run_id")
        .and_then(Value::as_u64)
        .filter(|id| *id > 0)
        .map(RunRef::RunId);
    let by_request_id = || {
        answer
            .get("request_id")
            .and_then(Value::as_str)
            .and_then(|id| RunRef::parse(id).ok())
            .filter(|r| matches!(r, RunRef::RequestId(_)))
    };
    let Some(run) = by_run_id.or_else(by_request_id) else {
        return Err(FleetError::BadAnswer(
            "the deploy answer has neither a run id nor a request id to follow".to_owned(),
        ));
    };
    // The receipt first, in order, before progress starts on stderr.
    out.flush()?;
    let mut progress = Progress::start(err, terminal);
    wait::wait(endpoint, caller, run, &options, &mut progress, out)
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

    #[test]
    fn only_humans_queue() {
        let queue = |caller: Option<&str>| {
            let caller = caller.map(|c| Caller::parse(c).unwrap());
            check_queue(caller.as_ref()).map_err(|e| e.exit_code())
        };
        assert_eq!(queue(None), Ok(()));
        assert_eq!(queue(Some("human:ops")), Ok(()));
        assert_eq!(queue(Some("clawdinator-1")), Err(1));
        assert_eq!(queue(Some("clawdinator-babelfish")), Err(1));
        // Not in the embedded registry: the API, which knows, decides.
        assert_eq!(queue(Some("clawdinator-77")), Ok(()));
    }
}
