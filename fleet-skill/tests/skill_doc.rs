//! SKILL.md: its frontmatter, and its quoting rule run through a real shell into the real binary.

mod support;

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
