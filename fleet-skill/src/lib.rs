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
pub mod heartbeat;
pub mod render;
pub mod sigv4;
pub mod wait;

use std::io::Write;

use control_api::contract::{
    AmiId, AuditAnswer, Caller, CancelAnswer, DeployAnswer, HeartbeatAnswer, LockAnswer,
    QueueAnswer, QueuedAnswer, Request, Revision, RunsAnswer, StatusAnswer, Target, AUDIT_LIMIT,
    DEFAULT_TTL_SECS, RUNS_LIMIT,
};
use control_api::domain::policy::{authorize_deploy, caller_instance, PolicyError};
use control_api::domain::registry::Registry;

pub use chat::{parse_chat, read_message, ChatCommand, ChatError, HELP, USAGE};
pub use error::FleetError;

use cli::{Cli, Command};
use client::Reply;
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
        ami_override: Option<AmiId>,
        revision: Option<Revision>,
        queue: bool,
        wait: Option<WaitOptions>,
    },
    Rollback {
        target: Target,
        revision: Option<Revision>,
        queue: bool,
        wait: Option<WaitOptions>,
    },
    Plan {
        target: Target,
        ami_override: Option<AmiId>,
        revision: Option<Revision>,
        wait: Option<WaitOptions>,
    },
    Runs {
        limit: u8,
        json: bool,
    },
    Audit {
        limit: u8,
        json: bool,
    },
    Wait {
        run: RunRef,
        options: WaitOptions,
    },
    Heartbeat,
    Lock {
        target: Target,
        reason: String,
        ttl_secs: u32,
    },
    Unlock {
        target: Target,
    },
    Queue {
        json: bool,
    },
    Cancel {
        request_id: String,
    },
}

/// Where a run writes: results to `out`, a wait's progress to `err` (redrawn in place
/// when `terminal`).
struct Output<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
    terminal: bool,
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
    // A bot relays lines; a redrawn line would reach the chat as a smear of frames.
    let terminal = err_is_terminal && !matches!(cli.command, Command::Chat { .. });
    let Some(action) = action_of(cli.command, out)? else {
        return Ok(());
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
    let mut output = Output { out, err, terminal };
    perform(&endpoint, caller.as_ref(), lookup, action, &mut output)
}

/// The action the command line asks for; `None` when it was answered without a call
/// (chat help). Bad chat text prints the usage to stdout, which the bot relays.
fn action_of(command: Command, out: &mut dyn Write) -> Result<Option<Action>, FleetError> {
    Ok(Some(match command {
        Command::Status { json } => Action::Status { json },
        Command::Deploy {
            target,
            ami_override,
            revision,
            queue,
            wait,
        } => Action::Deploy {
            target,
            ami_override,
            revision,
            queue: queue.queue,
            wait: wait.options(),
        },
        Command::Rollback {
            target,
            revision,
            queue,
            wait,
        } => Action::Rollback {
            target,
            revision,
            queue: queue.queue,
            wait: wait.options(),
        },
        Command::Plan {
            target,
            ami_override,
            revision,
            wait,
        } => Action::Plan {
            target,
            ami_override,
            revision,
            wait: wait.options(),
        },
        Command::Runs { limit, json } => Action::Runs { limit, json },
        Command::Audit { limit, json } => Action::Audit { limit, json },
        Command::Wait { run, timing } => Action::Wait {
            run,
            options: timing.options(),
        },
        Command::Heartbeat => Action::Heartbeat,
        Command::Lock {
            target,
            reason,
            ttl_secs,
        } => Action::Lock {
            target,
            reason,
            ttl_secs,
        },
        Command::Unlock { target } => Action::Unlock { target },
        Command::Queue { json } => Action::Queue { json },
        Command::Cancel { request_id } => Action::Cancel { request_id },
        Command::Chat { text, stdin } => {
            match chat_text(text, stdin).and_then(|t| parse_chat(&t)) {
                Ok(command) => {
                    let action = from_chat(command);
                    if action.is_none() {
                        writeln!(out, "{HELP}")?;
                    }
                    return Ok(action);
                }
                Err(e) => {
                    writeln!(out, "{USAGE}")?;
                    return Err(e.into());
                }
            }
        }
    }))
}

/// The chat message: the argument, or with `--stdin` standard input, so that a bot never
/// has to put chat text on a shell line.
fn chat_text(text: Option<String>, stdin: bool) -> Result<String, ChatError> {
    match text {
        Some(text) if !stdin => Ok(text),
        // clap allows exactly one of the two; reading stdin is the safe fallback.
        _ => read_message(&mut std::io::stdin().lock()),
    }
}

/// Sends the action's request and shows its answer.
fn perform(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    lookup: Lookup<'_>,
    action: Action,
    output: &mut Output<'_>,
) -> Result<(), FleetError> {
    let caller_owned = caller.cloned();
    match action {
        Action::Status { json } => {
            let request = Request::Status {
                caller: caller_owned,
                include_terminated: false,
            };
            read::<StatusAnswer>(endpoint, &request, json, render::render_status, output.out)
        }
        Action::Deploy {
            target,
            ami_override,
            revision,
            queue,
            wait,
        } => {
            let request = Request::Deploy {
                target,
                caller: caller_owned,
                ami_override,
                queue,
                revision,
            };
            let answer = deploy(endpoint, &request, output.out)?;
            follow(endpoint, caller, &answer, wait, output)
        }
        Action::Rollback {
            target,
            revision,
            queue,
            wait,
        } => {
            let request = Request::Rollback {
                target,
                caller: caller_owned,
                queue,
                revision,
            };
            let answer = deploy(endpoint, &request, output.out)?;
            follow(endpoint, caller, &answer, wait, output)
        }
        Action::Plan {
            target,
            ami_override,
            revision,
            wait,
        } => {
            // No local policy: a plan changes nothing, so any caller may plan any target.
            let request = Request::Plan {
                target,
                caller: caller_owned,
                ami_override,
                revision,
            };
            let answer = deploy(endpoint, &request, output.out)?;
            follow(endpoint, caller, &answer, wait, output)
        }
        Action::Runs { limit, json } => {
            let request = Request::Runs {
                caller: caller_owned,
                limit,
            };
            read::<RunsAnswer>(endpoint, &request, json, render::render_runs, output.out)
        }
        Action::Audit { limit, json } => {
            let request = Request::Audit {
                caller: caller_owned,
                limit,
            };
            read::<AuditAnswer>(endpoint, &request, json, render::render_audit, output.out)
        }
        Action::Wait { run, options } => {
            let mut progress = Progress::start(output.err, output.terminal);
            wait::wait(endpoint, caller, run, &options, &mut progress, output.out)
        }
        Action::Heartbeat => report(endpoint, caller_owned, lookup, output.out),
        Action::Lock {
            target,
            reason,
            ttl_secs,
        } => {
            let request = Request::Lock {
                target,
                caller: caller_owned,
                reason,
                ttl_secs,
            };
            read::<LockAnswer>(endpoint, &request, false, render::render_lock, output.out)
        }
        Action::Unlock { target } => {
            let request = Request::Unlock {
                target,
                caller: caller_owned,
            };
            read::<LockAnswer>(endpoint, &request, false, render::render_lock, output.out)
        }
        Action::Queue { json } => {
            let request = Request::Queue {
                caller: caller_owned,
            };
            read::<QueueAnswer>(endpoint, &request, json, render::render_queue, output.out)
        }
        Action::Cancel { request_id } => {
            let request = Request::Cancel {
                caller: caller_owned,
                request_id,
            };
            read::<CancelAnswer>(endpoint, &request, false, render::render_cancel, output.out)
        }
    }
}

/// `fleet heartbeat`: this host's facts, gathered now, sent once; one line on stdout.
fn report(
    endpoint: &Endpoint,
    caller: Option<Caller>,
    lookup: Lookup<'_>,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let report = heartbeat::gather(lookup)?;
    let request = Request::Heartbeat { caller, report };
    let answer = client::send(endpoint, &request, None)?;
    let reply = client::interpret::<HeartbeatAnswer>(&answer)?;
    writeln!(out, "{} at {}", reply.message, reply.received_at)?;
    Ok(())
}

/// The action a chat command stands for; `None` for help, which needs no call.
fn from_chat(command: ChatCommand) -> Option<Action> {
    Some(match command {
        ChatCommand::Status => Action::Status { json: false },
        ChatCommand::Deploy {
            target,
            ami_override,
            revision,
        } => Action::Deploy {
            target,
            ami_override,
            revision,
            queue: false,
            wait: None,
        },
        ChatCommand::Rollback { target } => Action::Rollback {
            target,
            revision: None,
            queue: false,
            wait: None,
        },
        ChatCommand::Plan {
            target,
            ami_override,
            revision,
        } => Action::Plan {
            target,
            ami_override,
            revision,
            wait: None,
        },
        ChatCommand::Runs => Action::Runs {
            limit: RUNS_LIMIT.default,
            json: false,
        },
        ChatCommand::Wait { run } => Action::Wait {
            run,
            options: WaitOptions::default(),
        },
        ChatCommand::Audit => Action::Audit {
            limit: AUDIT_LIMIT.default,
            json: false,
        },
        ChatCommand::Lock { target, reason } => Action::Lock {
            target,
            reason,
            ttl_secs: DEFAULT_TTL_SECS,
        },
        ChatCommand::Unlock { target } => Action::Unlock { target },
        ChatCommand::Queue => Action::Queue { json: false },
        ChatCommand::Cancel { request_id } => Action::Cancel { request_id },
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

/// A call that only reads: the table, or with `json` the API's answer unchanged (once
/// it has read as the contract's answer, so `--json` never passes on a broken one).
fn read<T: Reply>(
    endpoint: &Endpoint,
    request: &Request,
    json: bool,
    render: fn(&T) -> String,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let answer = client::send(endpoint, request, None)?;
    let reply = client::interpret::<T>(&answer)?;
    if json {
        writeln!(out, "{}", answer.body.trim())?;
    } else {
        out.write_all(render(&reply).as_bytes())?;
    }
    Ok(())
}

/// What a deploy, rollback or plan came to: dispatched, or (202) queued behind another.
enum Receipt {
    Dispatched(Box<DeployAnswer>),
    Queued(QueuedAnswer),
}

/// A deploy, rollback or plan: sent once with a fresh `Idempotency-Key`, receipt printed.
fn deploy(
    endpoint: &Endpoint,
    request: &Request,
    out: &mut dyn Write,
) -> Result<Receipt, FleetError> {
    // One key per invocation: the retry in `client::post` reuses it.
    let key = uuid::Uuid::new_v4().to_string();
    let answer = client::send(endpoint, request, Some(&key))?;
    if answer.status == 202 {
        let reply = client::interpret::<QueuedAnswer>(&answer)?;
        out.write_all(render::render_queued(&reply).as_bytes())?;
        return Ok(Receipt::Queued(reply));
    }
    let reply = client::interpret::<DeployAnswer>(&answer)?;
    out.write_all(render::render_deploy(&reply).as_bytes())?;
    Ok(Receipt::Dispatched(Box::new(reply)))
}

/// `--wait` after an accepted deploy or rollback: follows its run by run id when the
/// answer has one, else by request id. A dry run dispatched nothing, so it is not waited on.
fn follow(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    receipt: &Receipt,
    wait: Option<WaitOptions>,
    output: &mut Output<'_>,
) -> Result<(), FleetError> {
    let Some(options) = wait else {
        return Ok(());
    };
    let answer = match receipt {
        Receipt::Dispatched(answer) => answer,
        // Followed by its request id: its position until it is dispatched, then its run.
        Receipt::Queued(queued) => {
            let run = RunRef::parse(&queued.request_id).map_err(|_| {
                FleetError::BadAnswer("the queued answer has no request id to follow".to_owned())
            })?;
            output.out.flush()?;
            let mut progress = Progress::start(output.err, output.terminal);
            return wait::wait(endpoint, caller, run, &options, &mut progress, output.out);
        }
    };
    if answer.dispatch.as_ref().is_some_and(|d| d.dry_run) {
        writeln!(
            output.out,
            "nothing to wait for: a dry run dispatches no workflow run"
        )?;
        return Ok(());
    }
    let by_run_id = answer.run_id.filter(|id| *id > 0).map(RunRef::RunId);
    let by_request_id = || {
        RunRef::parse(&answer.request_id)
            .ok()
            .filter(|r| matches!(r, RunRef::RequestId(_)))
    };
    let Some(run) = by_run_id.or_else(by_request_id) else {
        return Err(FleetError::BadAnswer(
            "the deploy answer has neither a run id nor a request id to follow".to_owned(),
        ));
    };
    // The receipt first, in order, before progress starts on stderr.
    output.out.flush()?;
    let mut progress = Progress::start(output.err, output.terminal);
    wait::wait(endpoint, caller, run, &options, &mut progress, output.out)
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
