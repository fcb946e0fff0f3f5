//! SKILL.md: its frontmatter, its commands against the chat parser, and its quoting rule run through a real shell into the real binary.

mod support;

use fleet_skill::{parse_chat, ChatCommand, USAGE};
use support::*;

const SKILL: &str = include_str!("../SKILL.md");

/// The rule SKILL.md gives the bot: single quotes, each `'` becomes `'\''`.
fn quote(message: &str) -> String {
    format!("'{}'", message.replace('\'', r"'\''"))
}

#[test]
fn frontmatter_has_the_openclaw_fields() {
    let rest = SKILL.strip_prefix("---\n").expect("frontmatter first");
    let (front, body) = rest.split_once("\n---\n").expect("frontmatter closed");
    let field = |key: &str| {
        front
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}: ")))
            .unwrap_or_else(|| panic!("no {key}"))
    };
    assert_eq!(field("name"), "fleet");
    assert!(field("description").len() > 20);
    assert_eq!(field("user-invocable"), "true");
    // OpenClaw's embedded parser reads single-line keys; metadata is one line of JSON.
    let meta: serde_json::Value = serde_json::from_str(field("metadata")).unwrap();
    assert_eq!(meta["openclaw"]["requires"]["bins"][0], "fleet");
    assert!(body.contains("fleet chat '<the user's exact message>'"));
    assert!(body.contains(r"'\''"));
    for code in ["| 0 |", "| 1 |", "| 2 |", "| 3 |"] {
        assert!(body.contains(code), "exit code row {code}");
    }
}

/// The commands in the usage line: `/fleet status`, `/fleet deploy <all|instance-id> [ami-id]`, …
fn usage_commands() -> Vec<&'static str> {
    USAGE
        .strip_prefix("usage: ")
        .unwrap()
        .split(" | ")
        .collect()
}

/// Every `` `/fleet …` `` code span in SKILL.md's list of commands (the quoting section
/// after it shows a message that is meant to be refused).
fn documented_messages() -> Vec<&'static str> {
    let (commands, _) = SKILL.split_once("## How to run it").unwrap();
    commands
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| span.starts_with("/fleet "))
        .collect()
}

#[test]
fn every_chat_command_is_documented_and_every_example_parses() {
    let (front, _) = SKILL
        .strip_prefix("---\n")
        .and_then(|rest| rest.split_once("\n---\n"))
        .unwrap();
    let description = front
        .lines()
        .find_map(|l| l.strip_prefix("description: "))
        .unwrap();
    let documented = documented_messages();
    for command in usage_commands() {
        // As a bullet, in the usage line's own spelling, and named in the description.
        assert!(
            SKILL.contains(&format!("- `{command}`")),
            "SKILL.md has no bullet for {command}"
        );
        let word = command.split(' ').nth(1).unwrap();
        assert!(
            description.contains(&format!("/fleet {word}")),
            "the description does not mention /fleet {word}"
        );
    }
    assert!(SKILL.contains("- `/fleet help`"));
    // Concrete examples (no placeholders) are commands the parser accepts, and between
    // them they show every kind of command.
    let mut kinds = std::collections::BTreeSet::new();
    for message in documented.iter().filter(|m| !m.contains('<')) {
        let command = parse_chat(message).unwrap_or_else(|e| panic!("{message:?}: {e}"));
        kinds.insert(match command {
            ChatCommand::Status => "status",
            ChatCommand::Deploy { .. } => "deploy",
            ChatCommand::Rollback { .. } => "rollback",
            ChatCommand::Runs => "runs",
            ChatCommand::Wait { .. } => "wait",
            ChatCommand::Audit => "audit",
            ChatCommand::Help => "help",
        });
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        ["audit", "deploy", "help", "rollback", "runs", "status", "wait"]
    );
}

#[test]
fn the_quoting_rule_hands_the_exact_message_through_sh() {
    for message in [
        "/fleet deploy it's-me",
        "/fleet deploy all'; touch /tmp/x; echo '",
        "/fleet $(reboot) `id` \\ \" $HOME ${IFS} * ? ~ ! # & | ; < >",
        "'''",
        "/fleet status\n/fleet deploy all",
        "é 💥 \u{202e}",
    ] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote(message)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8(out.stdout).unwrap(), message);
    }
}

#[test]
fn a_quoted_injection_attempt_runs_nothing_and_sends_nothing() {
    let h = Harness::start(GitHub::Accepts);
    let marker = h.dir.path().join("pwned");
    let message = format!(
        "/fleet deploy all'; touch {}; echo '",
        marker.to_str().unwrap()
    );
    let fleet = env!("CARGO_BIN_EXE_fleet");
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("'{fleet}' chat {}", quote(&message)))
        .env_clear()
        .env("FLEET_CONTROL_URL", h.proxy.url())
        .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
        .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
        .env("FLEET_AGENIX_DIR", "/nonexistent/agenix");
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!marker.exists(), "the shell ran part of the message");
    assert_eq!(h.proxy.connection_count(), 0);

    // The same path with a valid message does the deploy.
    let ok = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{fleet}' chat {}",
            quote("/fleet@clawdinator_bot deploy clawdinator-2")
        ))
        .env_clear()
        .env("FLEET_CONTROL_URL", h.proxy.url())
        .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
        .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
        .env("FLEET_AGENIX_DIR", "/nonexistent/agenix")
        .output()
        .unwrap();
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(h.dispatches().len(), 1);
}
