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

/// What a run asks of the API, whichever way it was typed. Requests are built once, when
/// the command is read, without a caller: [`perform`] sets the caller it finds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// A deploy, rollback or plan: sent once with an idempotency key, its receipt shown,
    /// then with `wait` its run followed.
    Dispatch {
        request: Request,
        wait: Option<WaitOptions>,
    },
    /// A request whose answer is shown as `view` draws it, or with `json` as it came.
    Show {
        request: Request,
        view: View,
        json: bool,
    },
    Wait {
        run: RunRef,
        options: WaitOptions,
    },
    Heartbeat,
}

/// How a shown answer reads and is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum View {
    Status,
    Runs,
    Audit,
    /// A lock taken or released.
    Lock,
    Queue,
    Cancel,
}

impl View {
    /// Sends `request` and shows its answer.
    fn show(
        self,
        endpoint: &Endpoint,
        request: &Request,
        json: bool,
        out: &mut dyn Write,
    ) -> Result<(), FleetError> {
        match self {
            Self::Status => {
                read::<StatusAnswer>(endpoint, request, json, render::render_status, out)
            }
            Self::Runs => read::<RunsAnswer>(endpoint, request, json, render::render_runs, out),
            Self::Audit => read::<AuditAnswer>(endpoint, request, json, render::render_audit, out),
            Self::Lock => read::<LockAnswer>(endpoint, request, json, render::render_lock, out),
            Self::Queue => read::<QueueAnswer>(endpoint, request, json, render::render_queue, out),
            Self::Cancel => {
                read::<CancelAnswer>(endpoint, request, json, render::render_cancel, out)
            }
        }
    }
}

/// One constructor per kind of request, shared by the command line and chat.
impl Action {
    fn deploy(
        target: Target,
        ami_override: Option<AmiId>,
        revision: Option<Revision>,
        queue: bool,
        wait: Option<WaitOptions>,
    ) -> Self {
        let request = Request::Deploy {
            target,
            caller: None,
            ami_override,
            queue,
            revision,
        };
        Self::Dispatch { request, wait }
    }

    fn rollback(
        target: Target,
        revision: Option<Revision>,
        queue: bool,
        wait: Option<WaitOptions>,
    ) -> Self {
        let request = Request::Rollback {
            target,
            caller: None,
            queue,
            revision,
        };
        Self::Dispatch { request, wait }
    }

    /// No local policy for a plan: it changes nothing, so any caller may plan any target.
    fn plan(
        target: Target,
        ami_override: Option<AmiId>,
        revision: Option<Revision>,
        wait: Option<WaitOptions>,
    ) -> Self {
        let request = Request::Plan {
            target,
            caller: None,
            ami_override,
            revision,
        };
        Self::Dispatch { request, wait }
    }

    fn status(json: bool) -> Self {
        let request = Request::Status {
            caller: None,
            include_terminated: false,
        };
        Self::show(request, View::Status, json)
    }

    fn runs(limit: u8, json: bool) -> Self {
        Self::show(
            Request::Runs {
                caller: None,
                limit,
            },
            View::Runs,
            json,
        )
    }

    fn audit(limit: u8, json: bool) -> Self {
        Self::show(
            Request::Audit {
                caller: None,
                limit,
            },
            View::Audit,
            json,
        )
    }

    fn lock(target: Target, reason: String, ttl_secs: u32) -> Self {
        let request = Request::Lock {
            target,
            caller: None,
            reason,
            ttl_secs,
        };
        Self::show(request, View::Lock, false)
    }

    fn unlock(target: Target) -> Self {
        let request = Request::Unlock {
            target,
            caller: None,
        };
        Self::show(request, View::Lock, false)
    }

    fn queue(json: bool) -> Self {
        Self::show(Request::Queue { caller: None }, View::Queue, json)
    }

    fn cancel(request_id: String) -> Self {
        let request = Request::Cancel {
            caller: None,
            request_id,
        };
        Self::show(request, View::Cancel, false)
    }

    fn show(request: Request, view: View, json: bool) -> Self {
        Self::Show {
            request,
            view,
            json,
        }
    }

    /// The local checks before sending: a deploy or rollback meets the API's deploy
    /// policy, and only a human queues.
    fn check(&self, caller: Option<&Caller>) -> Result<(), FleetError> {
        if let Self::Dispatch {
            request: Request::Deploy { target, queue, .. } | Request::Rollback { target, queue, .. },
            ..
        } = self
        {
            check_policy(caller, target)?;
            if *queue {
                check_queue(caller)?;
            }
        }
        Ok(())
    }
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
    action.check(caller.as_ref())?;
    let endpoint = Endpoint::from_env(lookup)?;
    let mut output = Output { out, err, terminal };
    perform(&endpoint, caller.as_ref(), lookup, action, &mut output)
}

/// The action the command line asks for; `None` when it was answered without a call
/// (chat help).
fn action_of(command: Command, out: &mut dyn Write) -> Result<Option<Action>, FleetError> {
    Ok(Some(match command {
        Command::Status { json } => Action::status(json),
        Command::Deploy {
            target,
            ami_override,
            revision,
            queue,
            wait,
        } => Action::deploy(target, ami_override, revision, queue.queue, wait.options()),
        Command::Rollback {
            target,
            revision,
            queue,
            wait,
        } => Action::rollback(target, revision, queue.queue, wait.options()),
        Command::Plan {
            target,
            ami_override,
            revision,
            wait,
        } => Action::plan(target, ami_override, revision, wait.options()),
        Command::Runs { limit, json } => Action::runs(limit, json),
        Command::Audit { limit, json } => Action::audit(limit, json),
        Command::Wait { run, timing } => Action::Wait {
            run,
            options: timing.options(),
        },
        Command::Heartbeat => Action::Heartbeat,
        Command::Lock {
            target,
            reason,
            ttl_secs,
        } => Action::lock(target, reason, ttl_secs),
        Command::Unlock { target } => Action::unlock(target),
        Command::Queue { json } => Action::queue(json),
        Command::Cancel { request_id } => Action::cancel(request_id),
        Command::Chat { text, stdin } => return chat_action(text, stdin, out),
    }))
}

/// The action a chat message asks for; `None` for help, which is printed here. Bad chat
/// text prints the usage to stdout, which the bot relays.
fn chat_action(
    text: Option<String>,
    stdin: bool,
    out: &mut dyn Write,
) -> Result<Option<Action>, FleetError> {
    match chat_text(text, stdin).and_then(|t| parse_chat(&t)) {
        Ok(command) => {
            let action = from_chat(command);
            if action.is_none() {
                writeln!(out, "{HELP}")?;
            }
            Ok(action)
        }
        Err(e) => {
            writeln!(out, "{USAGE}")?;
            Err(e.into())
        }
    }
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

/// Sends the action's request, as `caller`, and shows its answer.
fn perform(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    lookup: Lookup<'_>,
    action: Action,
    output: &mut Output<'_>,
) -> Result<(), FleetError> {
    match action {
        Action::Dispatch { mut request, wait } => {
            *request.caller_mut() = caller.cloned();
            let receipt = deploy(endpoint, &request, output.out)?;
            follow(endpoint, caller, &receipt, wait, output)
        }
        Action::Show {
            mut request,
            view,
            json,
        } => {
            *request.caller_mut() = caller.cloned();
            view.show(endpoint, &request, json, output.out)
        }
        Action::Wait { run, options } => {
            let mut progress = Progress::start(output.err, output.terminal);
            wait::wait(endpoint, caller, run, &options, &mut progress, output.out)
        }
        Action::Heartbeat => report(endpoint, caller.cloned(), lookup, output.out),
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

/// The action a chat command stands for; `None` for help, which needs no call. Nothing
/// from chat queues or follows its run (`/fleet wait` does that), and limits are the
/// defaults.
fn from_chat(command: ChatCommand) -> Option<Action> {
    Some(match command {
        ChatCommand::Status => Action::status(false),
        ChatCommand::Deploy {
            target,
            ami_override,
            revision,
        } => Action::deploy(target, ami_override, revision, false, None),
        ChatCommand::Rollback { target } => Action::rollback(target, None, false, None),
        ChatCommand::Plan {
            target,
            ami_override,
            revision,
        } => Action::plan(target, ami_override, revision, None),
        ChatCommand::Runs => Action::runs(RUNS_LIMIT.default, false),
        ChatCommand::Wait { run } => Action::Wait {
            run,
            options: WaitOptions::default(),
        },
        ChatCommand::Audit => Action::audit(AUDIT_LIMIT.default, false),
        ChatCommand::Lock { target, reason } => Action::lock(target, reason, DEFAULT_TTL_SECS),
        ChatCommand::Unlock { target } => Action::unlock(target),
        ChatCommand::Queue => Action::queue(false),
        ChatCommand::Cancel { request_id } => Action::cancel(request_id),
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
