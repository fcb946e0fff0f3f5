//! `parse_chat` as a table: what chat text becomes which command, and what hostile text is refused.

use control_api::domain::request::{AmiId, Target};
use fleet_skill::wait::{RunRef, RunRefError};
use fleet_skill::{parse_chat, ChatCommand, ChatError};

fn deploy(target: &str, ami: Option<&str>) -> Result<ChatCommand, ChatError> {
    Ok(ChatCommand::Deploy {
        target: Target::parse(target).unwrap(),
        ami_override: ami.map(|a| AmiId::parse(a).unwrap()),
        revision: None,
    })
}

#[test]
fn a_deploy_may_name_a_revision() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let want = Ok(ChatCommand::Deploy {
        target: Target::parse("clawdinator-2").unwrap(),
        ami_override: None,
        revision: Some(control_api::contract::Revision::parse(sha).unwrap()),
    });
    assert_eq!(
        parse_chat(&format!("/fleet deploy clawdinator-2 --revision {sha}")),
        want
    );
    for bad in [
        "/fleet deploy clawdinator-2 --revision",
        "/fleet deploy clawdinator-2 --revision abc1234",
    ] {
        assert_eq!(
            parse_chat(bad).map_err(|e| e.to_string()),
            Err("revision must be a full commit SHA: 40 hexadecimal digits".to_owned()),
            "{bad}"
        );
    }
}

#[test]
fn accepted_commands() {
    let cases: &[(&str, Result<ChatCommand, ChatError>)] = &[
        ("/fleet status", Ok(ChatCommand::Status)),
        ("/fleet help", Ok(ChatCommand::Help)),
        ("/FLEET STATUS", Ok(ChatCommand::Status)),
        ("/Fleet Status", Ok(ChatCommand::Status)),
        ("   /fleet    status   ", Ok(ChatCommand::Status)),
        ("/fleet\tstatus", Ok(ChatCommand::Status)),
        ("/fleet status\n", Ok(ChatCommand::Status)),
        ("\r\n/fleet status\r\n", Ok(ChatCommand::Status)),
        ("/fleet@clawdinator_bot status", Ok(ChatCommand::Status)),
        ("/FLEET@Clawdinator_Bot STATUS", Ok(ChatCommand::Status)),
        ("/fleet deploy clawdinator-2", deploy("clawdinator-2", None)),
        ("/fleet DEPLOY clawdinator-2", deploy("clawdinator-2", None)),
        ("/fleet deploy all", deploy("all", None)),
        (
            "/fleet deploy clawdinator-2 ami-0123456789abcdef0",
            deploy("clawdinator-2", Some("ami-0123456789abcdef0")),
        ),
        (
            "/fleet deploy clawdinator-2 ami-01234567",
            deploy("clawdinator-2", Some("ami-01234567")),
        ),
        (
            "  /fleet@clawdinator_bot   Deploy  all    ami-0123456789abcdef0  ",
            deploy("all", Some("ami-0123456789abcdef0")),
        ),
        // Syntax only: whether the instance exists is the API's 404 to give.
        ("/fleet deploy clawdinator-9", deploy("clawdinator-9", None)),
        ("/fleet rollback clawdinator-2", rollback("clawdinator-2")),
        ("/FLEET ROLLBACK all", rollback("all")),
        (
            "  /fleet@clawdinator_bot\tRollBack   clawdinator-2  \n",
            rollback("clawdinator-2"),
        ),
        ("/fleet runs", Ok(ChatCommand::Runs)),
        ("/fleet@clawdinator_bot RUNS ", Ok(ChatCommand::Runs)),
        ("/fleet audit", Ok(ChatCommand::Audit)),
        ("/Fleet Audit\r\n", Ok(ChatCommand::Audit)),
        ("/fleet wait 123", wait("123")),
        ("/fleet@clawdinator_bot WAIT 9876543210", wait("9876543210")),
        (
            "/fleet wait 5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d",
            wait("5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"),
        ),
        // Ids are hex: the case of a UUID does not change which request it is.
        (
            "/fleet wait 5B0C1D2E-3F40-4A5B-8C6D-7E8F9A0B1C2D",
            wait("5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d"),
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&parse_chat(text), expected, "{text:?}");
    }
}

fn rollback(target: &str) -> Result<ChatCommand, ChatError> {
    Ok(ChatCommand::Rollback {
        target: Target::parse(target).unwrap(),
    })
}

fn wait(run: &str) -> Result<ChatCommand, ChatError> {
    Ok(ChatCommand::Wait {
        run: RunRef::parse(run).unwrap(),
    })
}

/// Which refusal a case expects.
type Expect = fn(&ChatError) -> bool;

#[test]
fn refused_text() {
    use ChatError::*;
    let long_target = format!("/fleet deploy {}", "a".repeat(64));
    let cases: &[(&str, Expect)] = &[
        ("", |e| *e == Empty),
        ("   \n\t ", |e| *e == Empty),
        ("hello", |e| *e == NotFleet),
        ("fleet status", |e| *e == NotFleet),
        ("/fleets status", |e| *e == NotFleet),
        ("/fleetstatus", |e| *e == NotFleet),
        ("!fleet status", |e| *e == NotFleet),
        ("/deploy all", |e| *e == NotFleet),
        ("/fleet", |e| *e == MissingCommand),
        ("/fleet@bot", |e| *e == MissingCommand),
        ("/fleet@ status", |e| *e == BadMention),
        ("/fleet@bot@x status", |e| *e == BadMention),
        ("/fleet@bot;rm status", |e| *e == BadMention),
        ("/fleet reboot", |e| matches!(e, UnknownCommand { .. })),
        ("/fleet statuses", |e| matches!(e, UnknownCommand { .. })),
        ("/fleet status now", |e| *e == UnexpectedArguments("status")),
        ("/fleet help me", |e| *e == UnexpectedArguments("help")),
        ("/fleet deploy", |e| *e == MissingTarget("deploy")),
        ("/fleet deploy   ", |e| *e == MissingTarget("deploy")),
        ("/fleet deploy ALL", |e| matches!(e, Invalid(_))),
        ("/fleet deploy Clawdinator-2", |e| matches!(e, Invalid(_))),
        ("/fleet deploy -clawdinator", |e| matches!(e, Invalid(_))),
        ("/fleet deploy clawdinator_2", |e| matches!(e, Invalid(_))),
        ("/fleet deploy all ami-123", |e| matches!(e, Invalid(_))),
        ("/fleet deploy all AMI-0123456789ABCDEF0", |e| {
            matches!(e, Invalid(_))
        }),
        ("/fleet deploy all ami-0123456789abcdef0 extra", |e| {
            matches!(
                e,
                TooManyArguments {
                    command: "deploy",
                    ..
                }
            )
        }),
        ("/fleet deploy clawdinator-1 clawdinator-2", |e| {
            matches!(e, Invalid(_))
        }),
        ("/fleet deploy --ami ami-0123456789abcdef0", |e| {
            matches!(e, Invalid(_))
        }),
        // Shell metacharacters never survive the id rules.
        ("/fleet deploy clawdinator-2;reboot", |e| {
            matches!(e, Invalid(_))
        }),
        ("/fleet deploy clawdinator-2; reboot", |e| {
            matches!(e, Invalid(_))
        }),
        ("/fleet deploy $(reboot)", |e| matches!(e, Invalid(_))),
        ("/fleet deploy `id`", |e| matches!(e, Invalid(_))),
        ("/fleet deploy all|sh", |e| matches!(e, Invalid(_))),
        ("/fleet deploy all && reboot", |e| matches!(e, Invalid(_))),
        ("/fleet deploy all ami-0123456789abcdef0 && reboot", |e| {
            matches!(
                e,
                TooManyArguments {
                    command: "deploy",
                    ..
                }
            )
        }),
        ("/fleet deploy 'all'", |e| matches!(e, Invalid(_))),
        ("/fleet deploy all ami-0123456789abcdef0>x", |e| {
            matches!(e, Invalid(_))
        }),
        ("/fleet deploy ../../etc", |e| matches!(e, Invalid(_))),
        (&long_target, |e| matches!(e, Invalid(_))),
        // rollback: one target, nothing else (no AMI: the API picks the previous image).
        ("/fleet rollback", |e| *e == MissingTarget("rollback")),
        ("/fleet rollback ALL", |e| matches!(e, Invalid(_))),
        ("/fleet rollback clawdinator-2;reboot", |e| {
            matches!(e, Invalid(_))
        }),
        ("/fleet rollback clawdinator-2 ami-0123456789abcdef0", |e| {
            matches!(
                e,
                TooManyArguments {
                    command: "rollback",
                    ..
                }
            )
        }),
        ("/fleet rollback clawdinator-2 --queue", |e| {
            matches!(
                e,
                TooManyArguments {
                    command: "rollback",
                    ..
                }
            )
        }),
        ("/fleet rollback $(reboot)", |e| matches!(e, Invalid(_))),
        ("/fleet rollbacks all", |e| {
            matches!(e, UnknownCommand { .. })
        }),
        // runs and audit take nothing, not even a limit.
        ("/fleet runs 5", |e| *e == UnexpectedArguments("runs")),
        ("/fleet runs --json", |e| *e == UnexpectedArguments("runs")),
        ("/fleet audit all", |e| *e == UnexpectedArguments("audit")),
        ("/fleet audit; reboot", |e| {
            matches!(e, UnknownCommand { .. })
        }),
        // wait: exactly one run id or request id, strictly spelled.
        ("/fleet wait", |e| *e == MissingRun),
        ("/fleet wait 0", |e| *e == InvalidRun(RunRefError::BadRunId)),
        ("/fleet wait 0123", |e| {
            *e == InvalidRun(RunRefError::BadRunId)
        }),
        ("/fleet wait 99999999999999999999", |e| {
            *e == InvalidRun(RunRefError::BadRunId)
        }),
        ("/fleet wait -1", |e| *e == InvalidRun(RunRefError::NotAnId)),
        ("/fleet wait clawdinator-2", |e| {
            *e == InvalidRun(RunRefError::NotAnId)
        }),
        ("/fleet wait 123;reboot", |e| {
            *e == InvalidRun(RunRefError::NotAnId)
        }),
        ("/fleet wait $(reboot)", |e| {
            *e == InvalidRun(RunRefError::NotAnId)
        }),
        ("/fleet wait {5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d}", |e| {
            *e == InvalidRun(RunRefError::NotAnId)
        }),
        ("/fleet wait 5b0c1d2e3f404a5b8c6d7e8f9a0b1c2d", |e| {
            *e == InvalidRun(RunRefError::NotAnId)
        }),
        ("/fleet wait 123 456", |e| {
            matches!(
                e,
                TooManyArguments {
                    command: "wait",
                    ..
                }
            )
        }),
        ("/fleet wait 123 --timeout 5", |e| {
            matches!(
                e,
                TooManyArguments {
                    command: "wait",
                    ..
                }
            )
        }),
        // More than one line, or control characters anywhere inside.
        ("/fleet status\n/fleet deploy all", |e| {
            *e == ControlCharacter
        }),
        ("/fleet\nstatus", |e| *e == ControlCharacter),
        ("/fleet deploy all\rami-0123456789abcdef0", |e| {
            *e == ControlCharacter
        }),
        ("/fleet status\0", |e| *e == ControlCharacter),
        ("/fleet \u{1b}[2Jstatus", |e| *e == ControlCharacter),
        ("/fleet deploy clawdinator-2\u{85}x", |e| {
            *e == ControlCharacter
        }),
    ];
    for (text, check) in cases {
        let got = parse_chat(text);
        match &got {
            Err(e) if check(e) => {}
            other => panic!("{text:?} gave {other:?}"),
        }
    }
}

#[test]
fn unicode_look_alikes_are_refused() {
    for text in [
        "/fleet stаtus",                // Cyrillic а
        "/flеet status",                // Cyrillic е
        "／fleet status",               // fullwidth solidus
        "/fleet ｓｔａｔｕｓ",          // fullwidth letters
        "/fleet deploy clawdinator‐2",  // U+2010 hyphen
        "/fleet deploy clawdinator-２", // fullwidth digit
        "/fleet deploy сlawdinator-2",  // Cyrillic с
        "/fleet deploy ａｌｌ",         // fullwidth all
        "/fleet\u{a0}status",           // no-break space is not a separator
        "/fleet\u{2003}status",         // em space
        "/fleet deploy\u{200b} all",    // zero-width space
        "/fleet deploy all\u{202e}",    // right-to-left override
        "/fleet deploy all ami-0123456789abcdeƒ0",
        "/fleet ſtatus",   // long s, which some case folds map to s
        "/fleet \u{212a}", // Kelvin sign
        "/fleet rollback clawdinator‐2",
        "/fleet ｒｕｎｓ",
        "/fleet wait １２３",                               // fullwidth digits
        "/fleet wait ١٢٣",                                  // Arabic-Indic digits
        "/fleet wait 5b0c1d2e‐3f40‐4a5b‐8c6d‐7e8f9a0b1c2d", // U+2010 hyphens
        "/fleet \u{212a}audit",
    ] {
        assert!(parse_chat(text).is_err(), "{text:?} was accepted");
    }
}

#[test]
fn very_long_input_is_refused_quickly() {
    let huge = format!("/fleet status{}", " ".repeat(10 * 1024 * 1024));
    let started = std::time::Instant::now();
    assert_eq!(parse_chat(&huge), Err(ChatError::TooLong));
    assert_eq!(
        parse_chat(&"/fleet deploy all ".repeat(100)),
        Err(ChatError::TooLong)
    );
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
    // Just under the limit is judged on content.
    let padded = format!("/fleet status{}", " ".repeat(512 - 13));
    assert_eq!(padded.len(), 512);
    assert_eq!(parse_chat(&padded), Ok(ChatCommand::Status));
}

#[test]
fn messages_never_echo_the_input() {
    for text in [
        "/fleet tok-secret-value",
        "/fleet deploy TOK-secret-value",
        "/fleet deploy all tok-secret-value",
        "/fleet@tok-secret;value status",
        "tok-secret-value",
        "/fleet rollback tok-secret-VALUE",
        "/fleet wait tok-secret-value",
        "/fleet wait 1 tok-secret-value",
        "/fleet runs tok-secret-value",
    ] {
        let e = parse_chat(text).unwrap_err().to_string();
        assert!(!e.contains("secret"), "{text:?} → {e}");
        assert!(!e.contains('\n'));
    }
}

/// A deterministic xorshift, so failures reproduce without a fuzzing crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

#[test]
fn never_panics_and_accepts_only_valid_commands() {
    let words = [
        "/fleet",
        "/FLEET",
        "/fleet@bot",
        "status",
        "deploy",
        "help",
        "rollback",
        "runs",
        "wait",
        "audit",
        "WAIT",
        "123",
        "0",
        "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d",
        "all",
        "clawdinator-2",
        "ami-0123456789abcdef0",
        "ami-01234567",
        " ",
        "  ",
        "\t",
        "\n",
        "\r",
        ";",
        "$(x)",
        "'",
        "\"",
        "\\",
        "é",
        "а",
        "\u{0}",
        "\u{200b}",
        "\u{202e}",
        "@",
        "/",
        "-",
        "ALL",
        "💥",
        "ﬂeet",
        "Deploy",
        "",
    ];
    let mut rng = Rng(0x5eed_f1ee7);
    for _ in 0..20_000 {
        // Token soup from the interesting words…
        let n = rng.next() % 7;
        let text: String = (0..n)
            .map(|_| rng.pick(&words))
            .collect::<Vec<_>>()
            .join(rng.pick(&[" ", "", "\t"]));
        check_total(&text);
        // …and arbitrary bytes made UTF-8.
        let len = (rng.next() % 64) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_total(&String::from_utf8_lossy(&bytes));
    }
}

/// Whatever came back, an accepted command re-serializes to its canonical form, which
/// parses to the same command: nothing odd slips through.
fn check_total(text: &str) {
    match parse_chat(text) {
        Ok(ChatCommand::Status) | Ok(ChatCommand::Help) | Ok(ChatCommand::Queue) => {}
        Ok(ChatCommand::Lock { target, reason }) => {
            assert!(
                !reason.is_empty() && !reason.contains(['\n', '\t']),
                "{text:?}"
            );
            assert_eq!(
                parse_chat(&format!("/fleet lock {target} {reason}")),
                Ok(ChatCommand::Lock { target, reason })
            );
        }
        Ok(ChatCommand::Unlock { target }) => {
            assert_eq!(
                parse_chat(&format!("/fleet unlock {target}")),
                Ok(ChatCommand::Unlock { target })
            );
        }
        Ok(ChatCommand::Cancel { request_id }) => {
            assert_eq!(
                parse_chat(&format!("/fleet cancel {request_id}")),
                Ok(ChatCommand::Cancel { request_id })
            );
        }
        Ok(cmd @ (ChatCommand::Runs | ChatCommand::Audit)) => {
            let canonical = if cmd == ChatCommand::Runs {
                "/fleet runs"
            } else {
                "/fleet audit"
            };
            assert_eq!(parse_chat(canonical), Ok(cmd), "{text:?}");
        }
        Ok(ChatCommand::Rollback { target }) => {
            assert_eq!(
                parse_chat(&format!("/fleet rollback {target}")),
                Ok(ChatCommand::Rollback { target })
            );
        }
        Ok(ChatCommand::Wait { run }) => {
            // The canonical id is what `fleet wait` would be given, and reads back the same.
            let canonical = run.to_string();
            assert_eq!(RunRef::parse(&canonical), Ok(run), "{text:?}");
            assert_eq!(
                parse_chat(&format!("/fleet wait {canonical}")),
                Ok(ChatCommand::Wait { run })
            );
        }
        Ok(ChatCommand::Deploy {
            target,
            ami_override,
            revision,
        }) => {
            assert!(Target::parse(target.as_str()).is_ok(), "{text:?}");
            let mut canonical = match &ami_override {
                Some(ami) => format!("/fleet deploy {target} {ami}"),
                None => format!("/fleet deploy {target}"),
            };
            if let Some(revision) = &revision {
                canonical.push_str(&format!(" --revision {revision}"));
            }
            assert_eq!(
                parse_chat(&canonical),
                Ok(ChatCommand::Deploy {
                    target,
                    ami_override,
                    revision,
                })
            );
        }
        Ok(ChatCommand::Plan {
            target,
            ami_override,
            revision,
        }) => {
            let mut canonical = format!("/fleet plan {target}");
            if let Some(ami) = &ami_override {
                canonical.push_str(&format!(" {ami}"));
            }
            if let Some(revision) = &revision {
                canonical.push_str(&format!(" --revision {revision}"));
            }
            assert_eq!(
                parse_chat(&canonical),
                Ok(ChatCommand::Plan {
                    target,
                    ami_override,
                    revision,
                })
            );
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n') && msg.len() < 200, "{msg}");
        }
    }
}

#[test]
fn help_is_one_screen_with_every_command() {
    assert_eq!(
        fleet_skill::HELP,
        "/fleet commands (one example each):
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
/fleet wait <request id>."
    );
    assert!(fleet_skill::HELP.lines().count() <= 24, "one screen");
}

#[test]
fn lock_unlock_queue_and_cancel_parse_and_refuse_bad_words() {
    let id = "0190c0de-0000-7000-8000-000000000001";
    assert_eq!(
        parse_chat("/fleet lock clawdinator-2 debugging  the gateway"),
        Ok(ChatCommand::Lock {
            target: Target::parse("clawdinator-2").unwrap(),
            reason: "debugging the gateway".into()
        })
    );
    assert_eq!(
        parse_chat("/FLEET UNLOCK all"),
        Ok(ChatCommand::Unlock {
            target: Target::All
        })
    );
    assert_eq!(parse_chat("/fleet queue"), Ok(ChatCommand::Queue));
    assert_eq!(
        parse_chat(&format!("/fleet cancel {}", id.to_uppercase())),
        Ok(ChatCommand::Cancel {
            request_id: id.into()
        })
    );
    for (text, code) in [
        ("/fleet lock clawdinator-2", ChatError::MissingReason),
        ("/fleet lock", ChatError::MissingTarget("lock")),
        (
            "/fleet unlock all now",
            ChatError::UnexpectedArguments("unlock"),
        ),
        ("/fleet queue all", ChatError::UnexpectedArguments("queue")),
        ("/fleet cancel 123", ChatError::MissingRequestId),
        ("/fleet cancel", ChatError::MissingRequestId),
    ] {
        assert_eq!(parse_chat(text), Err(code), "{text}");
    }
    assert!(matches!(
        parse_chat("/fleet lock ALL x"),
        Err(ChatError::Invalid(_))
    ));
}

#[test]
fn plan_parses_like_a_deploy() {
    let sha = "0123456789abcdef0123456789abcdef01234567";
    let plan = |target: &str, ami: Option<&str>, revision: Option<&str>| {
        Ok(ChatCommand::Plan {
            target: Target::parse(target).unwrap(),
            ami_override: ami.map(|a| AmiId::parse(a).unwrap()),
            revision: revision.map(|r| control_api::contract::Revision::parse(r).unwrap()),
        })
    };
    assert_eq!(parse_chat("/fleet plan all"), plan("all", None, None));
    assert_eq!(
        parse_chat("/FLEET@clawdinator_bot Plan clawdinator-2 ami-0123456789abcdef0"),
        plan("clawdinator-2", Some("ami-0123456789abcdef0"), None)
    );
    assert_eq!(
        parse_chat(&format!("/fleet plan clawdinator-2 --revision {sha}")),
        plan("clawdinator-2", None, Some(sha))
    );
    assert_eq!(
        parse_chat("/fleet plan"),
        Err(ChatError::MissingTarget("plan"))
    );
    assert_eq!(
        parse_chat("/fleet plan all ami-01234567 ami-0123456a"),
        Err(ChatError::TooManyArguments {
            command: "plan",
            takes: "a target, at most one AMI id and at most one --revision <sha>",
        })
    );
    assert!(matches!(
        parse_chat("/fleet plan all --revision main"),
        Err(ChatError::Invalid(_))
    ));
}

#[test]
fn unknown_commands_answer_in_one_line() {
    let said = |text: &str| parse_chat(text).unwrap_err().to_string();
    assert_eq!(
        said("/fleet statuss"),
        "unknown command; did you mean /fleet status? (/fleet help lists them all)"
    );
    assert_eq!(
        said("/fleet rollbak all"),
        "unknown command; did you mean /fleet rollback? (/fleet help lists them all)"
    );
    assert_eq!(
        said("/fleet plann all"),
        "unknown command; did you mean /fleet plan? (/fleet help lists them all)"
    );
    let missing = said("/fleet deploy");
    assert!(
        missing.starts_with("/fleet deploy needs a target: all or one of clawdinator-1"),
        "{missing}"
    );
    assert!(!missing.contains('\n'));
}

#[test]
fn the_usage_line_names_every_command() {
    assert_eq!(
        fleet_skill::USAGE,
        "usage: /fleet status | /fleet deploy <all|instance-id> [ami-id] | /fleet rollback <all|instance-id> | /fleet plan <all|instance-id> [ami-id] | /fleet runs | /fleet wait <request-id|run-id> | /fleet audit | /fleet lock <all|instance-id> <reason> | /fleet unlock <all|instance-id> | /fleet queue | /fleet cancel <request-id>"
    );
}
