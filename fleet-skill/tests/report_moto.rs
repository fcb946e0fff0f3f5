//! A run's report in the CLI, end to end: the real `fleet` binary, the real control API
//! with its state bucket on moto (loopback), GitHub as the stateful double. `fleet wait`
//! ends with the report's lines, `fleet runs` shows its headline.

mod support;

use control_api::contract::{HostOutcome, HostReport, RollMode, RollOutcome, RollReport};
use control_api::domain::ports::StateStore;
use control_api::outbound::aws::{load_sdk_config, s3_client};
use control_api::outbound::state::S3State;
use support::*;

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// The state bucket, created in moto.
fn state_bucket(name: &str) -> S3State {
    block_on(async {
        let client = s3_client(&load_sdk_config().await);
        client.create_bucket().bucket(name).send().await.unwrap();
        S3State::new(client, name.to_owned())
    })
}

/// A roll that stopped at clawdinator-2 and put it back.
fn stopped(request_id: &str, run_url: &str) -> RollReport {
    let host = |id: &str, outcome, reason: Option<&str>| HostReport {
        id: id.to_owned(),
        from_ami: Some("ami-0aaaaaaaaaaaaaaaa".to_owned()),
        to_ami: Some("ami-0bbbbbbbbbbbbbbbb".to_owned()),
        old_ec2_instance_id: None,
        new_ec2_instance_id: None,
        put_back_ec2_instance_id: None,
        outcome,
        reason: reason.map(str::to_owned),
        ready_after_secs: (outcome == HostOutcome::Ready).then_some(252),
        plan: None,
    };
    RollReport {
        request_id: request_id.to_owned(),
        target: "clawdinator-2".to_owned(),
        ami: "ami-0bbbbbbbbbbbbbbbb".to_owned(),
        mode: RollMode::Apply,
        revision: None,
        outcome: RollOutcome::Stopped,
        hosts: vec![
            host("clawdinator-1", HostOutcome::Ready, None),
            host(
                "clawdinator-2",
                HostOutcome::RolledBack,
                Some("service failed"),
            ),
        ],
        run_url: Some(run_url.to_owned()),
    }
}

#[test]
fn wait_ends_with_the_report_and_runs_shows_its_headline() {
    let bucket = "fleet-cli-report";
    let state = state_bucket(bucket);
    let h = Harness::start_on_moto(&[("FLEET_STATE_BUCKET", bucket)]);
    let deploy = h
        .fleet()
        .run(&["deploy", "clawdinator-2", "--caller", "human:ops"]);
    assert_eq!(deploy.code, 0, "{deploy:?}");
    let request_id = deploy
        .stdout
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("deploy queued for clawdinator-2 (request "))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{deploy:?}"))
        .to_owned();
    let run_id = h.github.runs()[0].id;
    let run_url = format!("https://github.com/openclaw/clawdinators/actions/runs/{run_id}");

    // Before the report lands, wait ends with the run's line alone.
    let waited = h
        .fleet()
        .run(&["wait", &run_id.to_string(), "--interval", "0.05"]);
    assert_eq!(waited.code, 0, "{waited:?}");
    assert_eq!(waited.stdout.lines().count(), 1, "{}", waited.stdout);

    let report = serde_json::to_vec(&stopped(&request_id, &run_url)).unwrap();
    block_on(state.put(&format!("reports/{request_id}.json"), report)).unwrap();
    let waited = h
        .fleet()
        .run(&["wait", &run_id.to_string(), "--interval", "0.05"]);
    assert_eq!(waited.code, 0, "{waited:?}");
    let lines: Vec<&str> = waited.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("run {run_id} concluded success")),
        "{}",
        waited.stdout
    );
    assert_eq!(
        lines[1..],
        [
            "deploy of clawdinator-2 on ami-0bbbbbbbbbbbbbbbb stopped",
            "clawdinator-1 ready on ami-0bbbbbbbbbbbbbbbb in 4m12s",
            "clawdinator-2 not ready (service failed); put back on ami-0aaaaaaaaaaaaaaaa",
        ]
    );

    let runs = h.fleet().run(&["runs"]);
    assert_eq!(runs.code, 0, "{runs:?}");
    assert!(
        runs.stdout.lines().any(|l| l
            == format!("run {run_id}: deploy of clawdinator-2 on ami-0bbbbbbbbbbbbbbbb stopped")),
        "{}",
        runs.stdout
    );
}
