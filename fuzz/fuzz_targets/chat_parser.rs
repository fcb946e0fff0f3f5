//! `fleet_skill::chat::parse_chat` on arbitrary UTF-8.
//!
//! Never panics; an accepted command obeys the API's target/AMI rules (hand-written
//! predicates), re-renders to a canonical `/fleet …` line that parses to the same
//! command, and serialized as the CLI sends it (`contract::Request`) is a request
//! `parse_command` accepts with the same fields. A refusal never echoes the input.

#![no_main]

use control_api::domain::request::{parse_command, Command, RequestError, Target};
use fleet_skill::chat::{parse_chat, ChatCommand, ChatError, MAX_CHAT_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_chat(text) {
        Ok(cmd) => check_command(text, &cmd),
        Err(e) => check_error(&e),
    }
});

fn check_command(text: &str, cmd: &ChatCommand) {
    assert!(
        text.len() <= MAX_CHAT_BYTES,
        "accepted {} bytes",
        text.len()
    );
    let trimmed = text.trim();
    assert!(
        !trimmed.chars().any(|c| c.is_control() && c != '\t'),
        "accepted control characters: {text:?}"
    );
    // An accepted line has only ASCII command words; whatever survived trim() must be
    // ASCII apart from space/tab separators.
    assert!(trimmed.is_ascii(), "accepted non-ASCII text: {text:?}");

    if let ChatCommand::Deploy {
        target,
        ami_override,
        revision,
    } = cmd
    {
        match target {
            Target::All => assert_eq!(target.as_str(), "all"),
            Target::Instance(id) => {
                assert!(is_instance_id(id.as_str()), "target {:?}", id.as_str());
                assert_ne!(id.as_str(), "all");
            }
        }
        if let Some(ami) = ami_override {
            assert!(is_ami(ami.as_str()), "ami {:?}", ami.as_str());
        }

        // What chat accepts, the CLI sends as the contract's request, and the API reads
        // back field for field.
        let body = serde_json::to_string(&Command::Deploy {
            target: target.clone(),
            caller: None,
            ami_override: ami_override.clone(),
            queue: false,
            revision: revision.clone(),
        })
        .expect("a request serializes");
        match parse_command(body.as_bytes()) {
            Ok(Command::Deploy {
                target: t,
                ami_override: a,
                caller: None,
                queue: false,
                ..
            }) => {
                assert_eq!(&t, target, "{body}");
                assert_eq!(&a, ami_override, "{body}");
            }
            other => panic!("API disagrees with chat on {body}: {other:?}"),
        }
    }

    // Canonical rendering, plain and with a bot mention, parses to the same command.
    let canonical = render(cmd);
    let mentioned = canonical.replacen("/fleet", "/fleet@clawdinator_bot", 1);
    for line in [canonical.as_str(), mentioned.as_str()] {
        assert_eq!(
            parse_chat(line).as_ref(),
            Ok(cmd),
            "canonical {line:?} of {text:?}"
        );
    }
    // The canonical form is never longer than what was accepted (modulo the words'
    // case and separators), so it cannot trip MAX_CHAT_BYTES on re-parse.
    assert!(
        canonical.len() <= trimmed.len(),
        "{canonical:?} vs {text:?}"
    );
}

fn render(cmd: &ChatCommand) -> String {
    match cmd {
        ChatCommand::Status => "/fleet status".to_owned(),
        ChatCommand::Help => "/fleet help".to_owned(),
        ChatCommand::Deploy {
            target,
            ami_override,
            revision,
        } => {
            let mut text = format!("/fleet deploy {target}");
            if let Some(ami) = ami_override {
                text.push_str(&format!(" {ami}"));
            }
            if let Some(revision) = revision {
                text.push_str(&format!(" --revision {revision}"));
            }
            text
        }
        ChatCommand::Plan {
            target,
            ami_override,
            revision,
        } => {
            let mut text = format!("/fleet plan {target}");
            if let Some(ami) = ami_override {
                text.push_str(&format!(" {ami}"));
            }
            if let Some(revision) = revision {
                text.push_str(&format!(" --revision {revision}"));
            }
            text
        }
        ChatCommand::Rollback { target } => format!("/fleet rollback {target}"),
        ChatCommand::Runs => "/fleet runs".to_owned(),
        ChatCommand::Wait { run } => format!("/fleet wait {run}"),
        ChatCommand::Audit => "/fleet audit".to_owned(),
        ChatCommand::Lock { target, reason } => format!("/fleet lock {target} {reason}"),
        ChatCommand::Unlock { target } => format!("/fleet unlock {target}"),
        ChatCommand::Queue => "/fleet queue".to_owned(),
        ChatCommand::Cancel { request_id } => format!("/fleet cancel {request_id}"),
    }
}

fn check_error(e: &ChatError) {
    // Only the syntax refusals: nothing that carries (and so could echo) user text.
    if let ChatError::Invalid(inner) = e {
        assert!(
            matches!(
                inner,
                RequestError::InvalidTarget | RequestError::InvalidAmi
            ),
            "{inner:?}"
        );
    }
    let msg = e.to_string();
    assert!(
        !msg.is_empty() && msg.len() <= 120 && msg.is_ascii() && !msg.contains('\n'),
        "{msg:?}"
    );
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`
fn is_instance_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0] != b'-'
        && b.iter()
            .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// `^ami-[0-9a-f]{8}([0-9a-f]{9})?$`
fn is_ami(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    })
}
