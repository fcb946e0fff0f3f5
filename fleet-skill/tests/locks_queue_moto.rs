//! Locks and the queue from the command line, end to end: the real `fleet` binary, the
//! real control API with its state bucket on moto (loopback), GitHub as the stateful
//! double. A lock holds a deploy (and says who, why, until when) and shows in status;
//! a queued deploy shows in `fleet queue`, `fleet wait` says its position until its turn,
//! and `fleet cancel` removes it.

mod support;

use control_api::outbound::aws::{load_sdk_config, s3_client};
use support::*;

/// The state bucket, created in moto.
fn state_bucket(name: &str) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client = s3_client(&load_sdk_config().await);
            client.create_bucket().bucket(name).send().await.unwrap();
        });
}

/// The request id in a receipt's line `… (request <id>)`.
fn request_id_in(stdout: &str) -> String {
    let start = stdout.find("(request ").expect(stdout) + "(request ".len();
    let end = start + stdout[start..].find(')').expect(stdout);
    stdout[start..end].to_owned()
}

#[test]
fn a_lock_holds_a_deploy_and_shows_in_status_until_unlocked() {
    let bucket = "fleet-cli-locks";
    state_bucket(bucket);
    let h = Harness::start_on_moto(&[("FLEET_STATE_BUCKET", bucket)]);
    let ops = ["--caller", "human:ops"];

    let lock = h.fleet().run(&[
        "lock",
        "clawdinator-2",
        "--reason",
        "debugging the bot",
        "--ttl-secs",
        "600",
        ops[0],
        ops[1],
    ]);
    assert_eq!(lock.code, 0, "{lock:?}");
    assert!(
        lock.stdout.contains("reason: debugging the bot"),
        "{lock:?}"
    );

    let held = h
        .fleet()
        .run(&["deploy", "clawdinator-2", "--caller", "human:alice"]);
    assert_eq!(held.code, 1, "{held:?}");
    assert!(held.stderr.starts_with("fleet: "), "{held:?}");
    assert!(held.stderr.contains("debugging the bot"), "{held:?}");
    assert!(
        h.github.runs().is_empty(),
        "nothing dispatched under a lock"
    );

    let status = h.fleet().run(&["status"]);
    assert_eq!(status.code, 0, "{status:?}");
    let locked: Vec<&str> = status
        .stdout
        .lines()
        .filter(|l| l.starts_with("locked: "))
        .collect();
    assert_eq!(locked.len(), 1, "{}", status.stdout);
    assert!(locked[0].contains("clawdinator-2"), "{}", status.stdout);

    let unlock = h.fleet().run(&["unlock", "clawdinator-2", ops[0], ops[1]]);
    assert_eq!(unlock.code, 0, "{unlock:?}");
    let deploy = h
        .fleet()
        .run(&["deploy", "clawdinator-2", "--caller", "human:alice"]);
    assert_eq!(deploy.code, 0, "{deploy:?}");
    assert_eq!(h.github.runs().len(), 1);
}

#[test]
fn a_queued_deploy_is_listed_waited_for_by_position_and_cancelled() {
    let bucket = "fleet-cli-queue";
    state_bucket(bucket);
    // No drain on a timer during the test: the queue stays as the test leaves it.
    let h = Harness::start_on_moto(&[
        ("FLEET_STATE_BUCKET", bucket),
        ("FLEET_QUEUE_DRAIN_SECS", "3600"),
    ]);
    let first = h
        .fleet()
        .run(&["deploy", "clawdinator-1", "--caller", "human:ops"]);
    assert_eq!(first.code, 0, "{first:?}");
    // This double finishes runs at once; the first deploy must still be running for
    // the next one to wait behind its lease.
    let running = h.github.runs()[0].id;
    h.github
        .set_run(running, "in_progress", None, Some("Replace hosts"));

    let queued = h.fleet().run(&[
        "deploy",
        "clawdinator-2",
        "--queue",
        "--caller",
        "human:ops",
    ]);
    assert_eq!(queued.code, 0, "{queued:?}");
    assert!(
        queued
            .stdout
            .starts_with("queued: clawdinator-2 at position 1 "),
        "{queued:?}"
    );
    let id = request_id_in(&queued.stdout);
    assert_eq!(h.github.runs().len(), 1, "the queued deploy waits");

    let queue = h.fleet().run(&["queue"]);
    assert_eq!(queue.code, 0, "{queue:?}");
    assert!(queue.stdout.starts_with("in flight: "), "{queue:?}");
    assert!(
        queue
            .stdout
            .lines()
            .any(|l| l.starts_with(" 1. ") && l.contains(&id)),
        "{queue:?}"
    );

    // Its turn does not come during this wait: it says where the request stands.
    let waited = h
        .fleet()
        .run(&["wait", &id, "--interval", "0.05", "--timeout", "1"]);
    assert_ne!(waited.code, 0, "{waited:?}");
    assert!(waited.stderr.contains("queued, position 1"), "{waited:?}");

    let cancel = h.fleet().run(&["cancel", &id, "--caller", "human:ops"]);
    assert_eq!(cancel.code, 0, "{cancel:?}");
    let queue = h.fleet().run(&["queue"]);
    assert!(queue.stdout.contains("queue: empty"), "{queue:?}");
    assert_eq!(
        h.github.runs().len(),
        1,
        "a cancelled deploy is never dispatched"
    );
}
