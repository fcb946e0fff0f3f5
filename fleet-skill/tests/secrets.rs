//! The control token never shows: not in stdout or stderr in any outcome, never in argv.

mod support;

use support::*;

fn assert_clean(what: &str, run: &Run) {
    for (stream, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !text.contains(CONTROL_TOKEN),
            "{what}: the token is in {stream}: {text}"
        );
        assert!(
            !text.contains(GITHUB_TOKEN),
            "{what}: the GitHub token is in {stream}"
        );
    }
    assert!(
        run.args.iter().all(|a| !a.contains(CONTROL_TOKEN)),
        "{what}: the token is in argv: {:?}",
        run.args
    );
}

#[test]
fn the_token_never_appears_in_output_or_argv_whatever_happens() {
    let ok = Harness::start(GitHub::Accepts);
    let failing = Harness::start(GitHub::Fails(422));
    ok.dir.write("wrong-token", "tok-FLEETTEST-wrong\n");
    let wrong = ok.dir.path().join("wrong-token");
    let bad_chars = ok
        .dir
        .write("bad-token", &format!("{CONTROL_TOKEN}\nsecond line"));
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    let not_json = RawPeer::start(Some(
        "HTTP/1.1 500 Internal Server Error\r\ncontent-length: 5\r\nconnection: close\r\n\r\noops!",
    ));
    let hang_up = RawPeer::start(None);
    let mut seen = std::collections::BTreeSet::new();

    let mut check = |what: &str, run: Run| {
        assert_clean(what, &run);
        seen.insert(run.code);
    };
    check("deploy ok", ok.fleet().run(&["deploy", "clawdinator-2"]));
    check(
        "token via env",
        ok.fleet()
            .env_remove("FLEET_CONTROL_TOKEN_FILE")
            .env("FLEET_CONTROL_TOKEN", CONTROL_TOKEN)
            .run(&["deploy", "clawdinator-1"]),
    );
    check(
        "signed",
        ok.fleet()
            .env("AWS_ACCESS_KEY_ID", "AKIDSECRETS")
            .env("AWS_SECRET_ACCESS_KEY", "secretsSecret")
            .env("AWS_REGION", "eu-central-1")
            .run(&["deploy", "clawdinator-1"]),
    );
    check(
        "unknown target",
        ok.fleet().run(&["deploy", "clawdinator-9"]),
    );
    check("status 5xx", ok.fleet().run(&["status", "--json"]));
    check(
        "wrong token",
        ok.fleet()
            .env("FLEET_CONTROL_TOKEN_FILE", wrong.to_str().unwrap())
            .run(&["deploy", "all"]),
    );
    check(
        "token with a newline inside",
        ok.fleet()
            .env("FLEET_CONTROL_TOKEN_FILE", bad_chars.to_str().unwrap())
            .run(&["deploy", "all"]),
    );
    check("github 500", failing.fleet().run(&["deploy", "all"]));
    check(
        "connection refused",
        ok.fleet()
            .env("FLEET_CONTROL_URL", &closed)
            .run(&["deploy", "all"]),
    );
    check(
        "not json",
        ok.fleet()
            .env("FLEET_CONTROL_URL", &not_json.url())
            .run(&["deploy", "all"]),
    );
    check(
        "hang up",
        ok.fleet()
            .env("FLEET_CONTROL_URL", &hang_up.url())
            .run(&["deploy", "all"]),
    );
    check(
        "insecure url",
        ok.fleet()
            .env("FLEET_CONTROL_URL", "http://example.com/")
            .run(&["deploy", "all"]),
    );
    check(
        "missing url",
        ok.fleet()
            .env_remove("FLEET_CONTROL_URL")
            .run(&["deploy", "all"]),
    );
    check("bad chat", ok.fleet().run(&["chat", "/fleet reboot"]));
    // A user pasting the token into chat gets it neither echoed nor sent (argv holds it
    // here only because the test put it in the message).
    let pasted = ok
        .fleet()
        .run(&["chat", &format!("/fleet {CONTROL_TOKEN}")]);
    assert_eq!(pasted.code, 2);
    assert!(!pasted.stdout.contains(CONTROL_TOKEN) && !pasted.stderr.contains(CONTROL_TOKEN));
    ok.set_instance_name("clawdinator-1");
    check("self deploy", ok.fleet().run(&["deploy", "clawdinator-1"]));
    check("help", ok.fleet().run(&["--help"]));
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "every outcome was exercised"
    );
}
