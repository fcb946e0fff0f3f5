//! Chat text to command: `/fleet status | deploy <target> [ami] | rollback <target> | plan <target> [ami] | runs | wait <id> | audit | lock <target> <reason…> | unlock <target> | queue | cancel <request-id> | help`, nothing else.
//!
//! [`parse_chat`] is total: it never panics, reads at most [`MAX_CHAT_BYTES`] of any
//! input, and never echoes the input back. Everything it accepts has passed the same
//! `Target` and `AmiId` rules the control API applies, and run references the strict
//! [`RunRef`] rules, so a chat message can only ever become a request the API would also
//! have parsed. Nothing in chat queues behind a deploy in flight: only humans may, and
//! in chat the caller is the bot.

use control_api::contract::{AmiId, RequestError, Revision, Target};

use crate::wait::{RunRef, RunRefError};

/// The one line a user gets back for text that is not a fleet command.
pub const USAGE: &str = "usage: /fleet status | /fleet deploy <all|instance-id> [ami-id] | /fleet rollback <all|instance-id> | /fleet plan <all|instance-id> [ami-id] | /fleet runs | /fleet wait <request-id|run-id> | /fleet audit | /fleet lock <all|instance-id> <reason> | /fleet unlock <all|instance-id> | /fleet queue | /fleet cancel <request-id>";

/// `/fleet help`: one screen, every command with an example, what a bot may not do and
/// where a run is followed.
pub const HELP: &str = "\
/fleet commands (one example each):
  /fleet status                          the live fleet: hosts, images, drift
  /fleet deploy clawdinator-2            replace a host (or all) on the newest image
  /fleet deploy clawdinator-2 ami-0123456789abcdef0 --revision <40-hex sha>
                                         a given fleet image, a given commit (humans)
  /fleet rollback clawdinator-2          back to the image before the current one
  /fleet runs                            the newest deploy runs
  /fleet wait 0190c0de-0000-7000-8000-000000000001
                                         follow a run (request id or run id) to its end
  /fleet audit                           who deployed what (humans only)
  /fleet lock clawdinator-2 debugging the gateway
                                         hold deploys of a host (or all) for an hour
  /fleet unlock clawdinator-2            release a lock
  /fleet queue                           deploys waiting their turn, and the one in flight
  /fleet cancel 0190c0de-0000-7000-8000-000000000001
                                         remove a queued deploy
  /fleet plan clawdinator-2              what a deploy would change; applies nothing
A bot may not deploy itself, deploy all, queue behind a running deploy, pick a
revision, read the audit trail, lock another host or unlock a human's lock.
A bot may plan any host, itself and all included: a plan changes nothing.
Every deploy answers with its run's link on GitHub Actions; follow it there or with
/fleet wait <request id>.";

/// Commands the parser knows, for "did you mean".
const COMMANDS: [&str; 12] = [
    "status", "deploy", "rollback", "runs", "wait", "audit", "help", "plan", "lock", "unlock",
    "queue", "cancel",
];

/// Longest message considered at all; a real command is under 80 bytes.
pub const MAX_CHAT_BYTES: usize = 512;

/// Longest bot user name accepted after `@` (Telegram allows 32, Discord 32).
const MAX_MENTION_CHARS: usize = 64;

/// A chat message that is a fleet command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatCommand {
    Status,
    Deploy {
        target: Target,
        ami_override: Option<AmiId>,
        /// `--revision <sha>`: humans only, which the API decides.
        revision: Option<Revision>,
    },
    Rollback {
        target: Target,
    },
    /// `/fleet plan <target> [ami] [--revision <sha>]`: what a deploy would change.
    Plan {
        target: Target,
        ami_override: Option<AmiId>,
        revision: Option<Revision>,
    },
    Runs,
    /// Followed with line-per-change progress, whatever stderr is: a bot relays lines.
    Wait {
        run: RunRef,
    },
    Audit,
    /// `/fleet lock <target> <reason…>`: the rest of the line is the reason.
    Lock {
        target: Target,
        reason: String,
    },
    Unlock {
        target: Target,
    },
    Queue,
    /// `/fleet cancel <request-id>`.
    Cancel {
        request_id: String,
    },
    /// `/fleet help`: answered with [`USAGE`], no call.
    Help,
}

/// Why a chat message is not a fleet command. Messages never echo the input: it goes
/// back to a chat channel, and a user may have pasted something secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("empty message")]
    Empty,
    #[error("message is longer than {MAX_CHAT_BYTES} bytes")]
    TooLong,
    #[error("message must be one line without control characters")]
    ControlCharacter,
    #[error("not a /fleet command")]
    NotFleet,
    #[error("the mention after /fleet@ must be a bot user name (letters, digits, _ . -)")]
    BadMention,
    #[error("missing command after /fleet")]
    MissingCommand,
    #[error("unknown command; did you mean /fleet {closest}? (/fleet help lists them all)")]
    UnknownCommand { closest: &'static str },
    #[error("/fleet {0} takes no arguments")]
    UnexpectedArguments(&'static str),
    #[error("/fleet {0} needs a target: all or one of {ids}", ids = registry_ids())]
    MissingTarget(&'static str),
    #[error("/fleet wait needs a request id or a run id")]
    MissingRun,
    #[error("/fleet lock needs a target and a reason: /fleet lock <all|instance-id> <reason>")]
    MissingReason,
    #[error("/fleet cancel needs the request id of a queued deploy (a UUID)")]
    MissingRequestId,
    #[error("/fleet {command} takes {takes}")]
    TooManyArguments {
        command: &'static str,
        takes: &'static str,
    },
    /// The target or AMI broke the API's own rule; its message states the rule.
    #[error(transparent)]
    Invalid(#[from] RequestError),
    /// Not a run id or request id; the message states the rule.
    #[error(transparent)]
    InvalidRun(#[from] RunRefError),
    /// `fleet chat --stdin` could not read its input (the OS error says why; it holds
    /// nothing of the message).
    #[error("could not read the message from standard input: {0}")]
    Unreadable(String),
    #[error("the message on standard input is not UTF-8")]
    NotUtf8,
}

/// Reads the message for `fleet chat --stdin`: everything on `input`, less the one line
/// break a heredoc ends with. At most [`MAX_CHAT_BYTES`] + 2 bytes are read, so a
/// runaway input costs nothing; anything longer is [`ChatError::TooLong`].
pub fn read_message(input: &mut dyn std::io::Read) -> Result<String, ChatError> {
    use std::io::Read;
    let mut bytes = Vec::new();
    input
        .take(MAX_CHAT_BYTES as u64 + 2)
        .read_to_end(&mut bytes)
        .map_err(|e| ChatError::Unreadable(e.kind().to_string()))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.len() > MAX_CHAT_BYTES {
        return Err(ChatError::TooLong);
    }
    String::from_utf8(bytes).map_err(|_| ChatError::NotUtf8)
}

/// After `/fleet deploy <target>` or `/fleet plan <target>`: an AMI id and
/// `--revision <sha>`, each at most once, in either order.
fn deploy_options<'a>(
    command: &'static str,
    mut words: impl Iterator<Item = &'a str>,
) -> Result<(Option<AmiId>, Option<Revision>), ChatError> {
    let (mut ami_override, mut revision) = (None, None);
    while let Some(word) = words.next() {
        if word.eq_ignore_ascii_case("--revision") && revision.is_none() {
            let sha = words.next().ok_or(RequestError::InvalidRevision)?;
            revision = Some(Revision::parse(sha)?);
        } else if ami_override.is_none() && !word.starts_with("--") {
            ami_override = Some(AmiId::parse(word)?);
        } else {
            return Err(ChatError::TooManyArguments {
                command,
                takes: "a target, at most one AMI id and at most one --revision <sha>",
            });
        }
    }
    Ok((ami_override, revision))
}

/// Parses one chat message. Command words (`/fleet`, `status`, `deploy`, …) are ASCII
/// case-insensitive; targets and AMI ids are exact, as the API wants them.
pub fn parse_chat(text: &str) -> Result<ChatCommand, ChatError> {
    let mut words = fleet_words(text)?;
    let sub = words.next().ok_or(ChatError::MissingCommand)?;
    for family in [deploy_command, read_command, queue_command] {
        if let Some(command) = family(sub, &mut words)? {
            return Ok(command);
        }
    }
    Err(ChatError::UnknownCommand {
        closest: closest(sub),
    })
}

/// The words after `/fleet` (or `/fleet@bot`), once the message is known to be one line
/// addressed to the fleet.
fn fleet_words(text: &str) -> Result<impl Iterator<Item = &str> + '_, ChatError> {
    if text.len() > MAX_CHAT_BYTES {
        return Err(ChatError::TooLong);
    }
    // Chat clients add trailing newlines and leading spaces; what is inside must be one line.
    let text = text.trim();
    if text.is_empty() {
        return Err(ChatError::Empty);
    }
    if text.chars().any(|c| c.is_control() && c != '\t') {
        return Err(ChatError::ControlCharacter);
    }
    // Only ASCII space and tab separate words: a Unicode space look-alike stays inside
    // a word, where the strict word rules below refuse it.
    let mut words = text.split([' ', '\t']).filter(|w| !w.is_empty());
    let head = words.next().ok_or(ChatError::Empty)?;
    let (command, mention) = match head.split_once('@') {
        Some((command, mention)) => (command, Some(mention)),
        None => (head, None),
    };
    if !command.eq_ignore_ascii_case("/fleet") {
        return Err(ChatError::NotFleet);
    }
    if mention.is_some_and(|m| !is_bot_name(m)) {
        return Err(ChatError::BadMention);
    }
    Ok(words)
}

/// `deploy`, `plan` and `rollback`; `None` for any other command word.
fn deploy_command(
    sub: &str,
    words: &mut dyn Iterator<Item = &str>,
) -> Result<Option<ChatCommand>, ChatError> {
    let command = if sub.eq_ignore_ascii_case("deploy") {
        let target = Target::parse(words.next().ok_or(ChatError::MissingTarget("deploy"))?)?;
        let (ami_override, revision) = deploy_options("deploy", words)?;
        ChatCommand::Deploy {
            target,
            ami_override,
            revision,
        }
    } else if sub.eq_ignore_ascii_case("plan") {
        let target = Target::parse(words.next().ok_or(ChatError::MissingTarget("plan"))?)?;
        let (ami_override, revision) = deploy_options("plan", words)?;
        ChatCommand::Plan {
            target,
            ami_override,
            revision,
        }
    } else if sub.eq_ignore_ascii_case("rollback") {
        let target = Target::parse(words.next().ok_or(ChatError::MissingTarget("rollback"))?)?;
        if words.next().is_some() {
            return Err(ChatError::TooManyArguments {
                command: "rollback",
                takes: "exactly one target",
            });
        }
        ChatCommand::Rollback { target }
    } else {
        return Ok(None);
    };
    Ok(Some(command))
}

/// `status`, `help`, `runs`, `wait` and `audit`; `None` for any other command word.
fn read_command(
    sub: &str,
    words: &mut dyn Iterator<Item = &str>,
) -> Result<Option<ChatCommand>, ChatError> {
    let command = if sub.eq_ignore_ascii_case("status") {
        no_more(words, "status")?;
        ChatCommand::Status
    } else if sub.eq_ignore_ascii_case("help") {
        no_more(words, "help")?;
        ChatCommand::Help
    } else if sub.eq_ignore_ascii_case("runs") {
        no_more(words, "runs")?;
        ChatCommand::Runs
    } else if sub.eq_ignore_ascii_case("wait") {
        let run = RunRef::parse(words.next().ok_or(ChatError::MissingRun)?)?;
        if words.next().is_some() {
            return Err(ChatError::TooManyArguments {
                command: "wait",
                takes: "exactly one request id or run id",
            });
        }
        ChatCommand::Wait { run }
    } else if sub.eq_ignore_ascii_case("audit") {
        no_more(words, "audit")?;
        ChatCommand::Audit
    } else {
        return Ok(None);
    };
    Ok(Some(command))
}

/// `lock`, `unlock`, `queue` and `cancel`; `None` for any other command word.
fn queue_command(
    sub: &str,
    words: &mut dyn Iterator<Item = &str>,
) -> Result<Option<ChatCommand>, ChatError> {
    let command = if sub.eq_ignore_ascii_case("lock") {
        let target = Target::parse(words.next().ok_or(ChatError::MissingTarget("lock"))?)?;
        let reason = words.collect::<Vec<_>>().join(" ");
        if reason.is_empty() {
            return Err(ChatError::MissingReason);
        }
        ChatCommand::Lock { target, reason }
    } else if sub.eq_ignore_ascii_case("unlock") {
        let target = Target::parse(words.next().ok_or(ChatError::MissingTarget("unlock"))?)?;
        no_more(words, "unlock")?;
        ChatCommand::Unlock { target }
    } else if sub.eq_ignore_ascii_case("queue") {
        no_more(words, "queue")?;
        ChatCommand::Queue
    } else if sub.eq_ignore_ascii_case("cancel") {
        let word = words.next().ok_or(ChatError::MissingRequestId)?;
        let Ok(RunRef::RequestId(id)) = RunRef::parse(word) else {
            return Err(ChatError::MissingRequestId);
        };
        no_more(words, "cancel")?;
        ChatCommand::Cancel {
            request_id: id.to_string(),
        }
    } else {
        return Ok(None);
    };
    Ok(Some(command))
}

/// The known command nearest to `word` by edit distance (ties: the first listed). Only
/// our own words go back to chat, never the user's.
fn closest(word: &str) -> &'static str {
    let word = word.to_ascii_lowercase();
    COMMANDS
        .iter()
        .min_by_key(|c| edit_distance(&word, c))
        .copied()
        .unwrap_or("help")
}

/// Levenshtein distance over chars; inputs are at most [`MAX_CHAT_BYTES`] long.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The registry's instance ids, for the message of a deploy without a target.
fn registry_ids() -> String {
    control_api::domain::registry::Registry::embedded()
        .map(|r| {
            r.iter()
                .map(|(id, _)| id.as_str().to_owned())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_else(|_| "the registry's instance ids".to_owned())
}

fn no_more<'a>(
    mut words: impl Iterator<Item = &'a str>,
    command: &'static str,
) -> Result<(), ChatError> {
    match words.next() {
        Some(_) => Err(ChatError::UnexpectedArguments(command)),
        None => Ok(()),
    }
}

/// A chat bot user name as it follows `@` in `/fleet@name`.
fn is_bot_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_MENTION_CHARS
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_.-".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("statuses", "status"), 2);
        assert_eq!(edit_distance("", "runs"), 4);
        assert_eq!(closest("stauts"), "status");
        assert_eq!(closest("DEPLOI"), "deploy");
        assert_eq!(closest("rollbacks"), "rollback");
    }

    #[test]
    fn bot_names() {
        assert!(is_bot_name("clawdinator_bot"));
        assert!(is_bot_name("Bot.1-x"));
        assert!(!is_bot_name(""));
        assert!(!is_bot_name("bot name"));
        assert!(!is_bot_name("bot;rm"));
        assert!(!is_bot_name(&"b".repeat(65)));
    }
}
