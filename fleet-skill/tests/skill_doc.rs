//! SKILL.md: its frontmatter, its commands against the chat parser, and its shell snippet
//! (the message on standard input through a quoted heredoc) run through a real shell,
//! with hostile messages, into a stub and into the real binary.

mod support;

use fleet_skill::{parse_chat, ChatCommand, USAGE};
use support::*;

const SKILL: &str = include_str!("../SKILL.md");

/// The placeholder line of SKILL.md's snippet, where the agent puts the message.
const PLACEHOLDER: &str = "<the user's exact message>";

/// The heredoc's delimiter, as SKILL.md spells it.
const DELIMITER: &str = "FLEET_CHAT_EOF_7c1e";

/// SKILL.md's shell snippet, exactly as documented.
fn snippet() -> &'static str {
    let (_, run) = SKILL.split_once("## How to run it").unwrap();
    let (_, code) = run.split_once("```sh\n").expect("a sh block");
    code.split_once("```").unwrap().0
}

/// The shell line an agent runs for `message`, following SKILL.md: the message put on
/// the placeholder's line, unchanged.
fn agent_script(message: &str) -> String {
    snippet().replace(PLACEHOLDER, message)
}

/// SKILL.md's rule for when to run `fleet` at all: a one-line message starting with `/fleet`.
fn agent_runs(message: &str) -> bool {
    !message.contains(['\n', '\r']) && message.starts_with("/fleet")
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
    assert_eq!(
        snippet(),
        format!("fleet chat --stdin <<'{DELIMITER}'\n{PLACEHOLDER}\n{DELIMITER}\n"),
        "the snippet: a quoted heredoc, the message alone on its line"
    );
    assert!(
        !body.contains("fleet chat '"),
        "no chat text on a shell line"
    );
    assert!(body.contains("one line") && body.contains("never be that line"));
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
            ChatCommand::Plan { .. } => "plan",
            ChatCommand::Runs => "runs",
            ChatCommand::Wait { .. } => "wait",
            ChatCommand::Audit => "audit",
            ChatCommand::Lock { .. } => "lock",
            ChatCommand::Unlock { .. } => "unlock",
            ChatCommand::Queue => "queue",
            ChatCommand::Cancel { .. } => "cancel",
            ChatCommand::Help => "help",
        });
    }
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        [
            "audit", "cancel", "deploy", "help", "lock", "plan", "queue", "rollback", "runs",
            "status", "unlock", "wait"
        ]
    );
}

/// Hostile one-line messages; `{m}` is the marker a command substitution would create.
const HOSTILE: &[&str] = &[
    "/fleet deploy it's-me",
    "/fleet deploy all'; touch {m}; echo '",
    "/fleet deploy all\"; touch {m}; echo \"",
    "/fleet deploy $(touch {m})",
    "/fleet deploy `touch {m}`",
    "/fleet ${IFS}$(touch${IFS}{m}) \\ $HOME * ? ~ ! # & | ; < >",
    "/fleet deploy FLEET_CHAT_EOF_7c1e; touch {m}",
    "/fleet FLEET_CHAT_EOF_7c1e",
    "/fleet 'FLEET_CHAT_EOF_7c1e'",
    "/fleet <<'FLEET_CHAT_EOF_7c1e' $(touch {m})",
    "/fleet é 💥 \u{202e}",
];

/// A `fleet` on PATH that records how it was run: its arguments and its standard input.
fn stub_fleet(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let stub = bin.join("fleet");
    std::fs::write(
        &stub,
        "#!/bin/sh\necho run >> \"$STUB_DIR/runs\"\nprintf '%s\\n' \"$@\" > \"$STUB_DIR/args\"\ncat > \"$STUB_DIR/stdin\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// Runs the agent's shell line for `message` with bash, `fleet` being the stub.
fn run_snippet_on_stub(dir: &std::path::Path, message: &str) -> std::process::Output {
    let bin = stub_fleet(dir);
    std::process::Command::new("bash")
        .arg("-c")
        .arg(agent_script(message))
        .current_dir(dir)
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
        .env("STUB_DIR", dir)
        .output()
        .unwrap()
}

#[test]
fn the_snippet_hands_hostile_messages_verbatim_to_fleet_and_runs_nothing_else() {
    // One-line messages as SKILL.md allows, and lines that merely mention the delimiter
    // (it ends the heredoc only as a whole line).
    let multi_line = [
        "/fleet status\n$(touch {m})\n`touch {m}`",
        "/fleet status\n FLEET_CHAT_EOF_7c1e\ntouch {m}",
        "/fleet status\nFLEET_CHAT_EOF_7c1e \ntouch {m}",
    ];
    for template in HOSTILE.iter().chain(&multi_line) {
        let dir = TempDir::new("snippet");
        let marker = dir.path().join("pwned");
        let message = template.replace("{m}", marker.to_str().unwrap());
        assert_eq!(agent_runs(&message), !message.contains('\n'), "{message:?}");
        let out = run_snippet_on_stub(dir.path(), &message);
        assert!(out.status.success(), "{out:?}");
        assert!(!marker.exists(), "the shell ran part of {message:?}");
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(
            read("runs"),
            "run\n",
            "fleet ran once, nothing else: {message:?}"
        );
        assert_eq!(read("args"), "chat\n--stdin\n");
        assert_eq!(read("stdin"), format!("{message}\n"), "verbatim");
    }
}

#[test]
fn the_one_line_rule_is_what_keeps_the_delimiter_out() {
    // A line that is exactly the delimiter would end the heredoc and run what follows:
    // SKILL.md's rule never lets such a message reach the shell.
    let dir = TempDir::new("snippet");
    let marker = dir.path().join("pwned");
    let message = format!(
        "/fleet status\n{DELIMITER}\ntouch {}",
        marker.to_str().unwrap()
    );
    assert!(!agent_runs(&message));
    // The shell then also tries to run the snippet's own last line as a command.
    let _ = run_snippet_on_stub(dir.path(), &message);
    assert!(
        marker.exists(),
        "this is why: ignoring the rule would have run the line after the delimiter"
    );
}

#[test]
fn a_hostile_message_through_the_snippet_runs_nothing_and_sends_nothing() {
    let h = Harness::start(GitHub::Accepts);
    let bin = h.dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_fleet"), bin.join("fleet")).unwrap();
    let run = |message: &str| {
        std::process::Command::new("bash")
            .arg("-c")
            .arg(agent_script(message))
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin.display()))
            .env("FLEET_CONTROL_URL", h.proxy.url())
            .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
            .env("FLEET_INSTANCE_NAME_FILE", "/nonexistent/instance-name")
            .env("FLEET_AGENIX_DIR", "/nonexistent/agenix")
            .output()
            .unwrap()
    };
    let marker = h.dir.path().join("pwned");
    for template in HOSTILE {
        let message = template.replace("{m}", marker.to_str().unwrap());
        let out = run(&message);
        assert_eq!(out.status.code(), Some(2), "{message:?}: {out:?}");
        assert!(!marker.exists(), "the shell ran part of {message:?}");
    }
    assert_eq!(h.proxy.connection_count(), 0);

    // The same path with a valid message does the deploy.
    let ok = run("/fleet@clawdinator_bot deploy clawdinator-2");
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    assert_eq!(h.dispatches().len(), 1);
}

#[test]
fn stdin_is_read_whole_less_the_heredoc_line_break() {
    use fleet_skill::{read_message, ChatError};
    let read = |bytes: &[u8]| read_message(&mut &bytes[..]);
    assert_eq!(read(b"/fleet status\n"), Ok("/fleet status".to_owned()));
    assert_eq!(read(b"/fleet status"), Ok("/fleet status".to_owned()));
    assert_eq!(
        read(b"a\nb\n\n"),
        Ok("a\nb\n".to_owned()),
        "only one break dropped"
    );
    assert_eq!(read(&[b'x'; 600]), Err(ChatError::TooLong));
    assert_eq!(read(&[0xff, b'\n']), Err(ChatError::NotUtf8));
}
