//! Host readiness on the in-memory fakes: `action: heartbeat` (who may send one, the
//! check against EC2, the rate limit, what is stored) and the readiness status derives
//! from it (ready, unhealthy, booting, stale, missing, unknown, with `why`), and the
//! `revision_drift` of a host against the revision its roll's landed report deployed.

use chrono::{SecondsFormat, Utc};
use control_api::contract::{
    DeployedRevisions, ErrorBody, Flag, HeartbeatAnswer, HostOutcome, HostReport, Readiness,
    RollMode, RollOutcome, RollReport, StatusAnswer, DEPLOYED_KEY,
};
use control_api::domain::auth::{Authenticator, Credentials, Principal};
use control_api::domain::ports::{LiveInstance, StateStore};
use control_api::domain::registry::Registry;
use control_api::domain::service::{ControlApi, Ports};
use control_api::inbound::event::{CreatedObject, LambdaEvent, OnEvent};
use control_api::inbound::http::{answer, HttpCall, Method, Reply};
use control_api::test_support::fakes::{
    no_wait, FakeBootstrap, FakeFleet, FakeState, FakeWorkflow,
};
use serde_json::Value;

const SHARED: &str = "heartbeat-test-shared-token";
/// clawdinator-1's own token.
const BOT: &str = "heartbeat-test-bot-token";
const HUMAN: &str = "heartbeat-test-human-token";
const NEW: &str = "ami-0000000b";
const OLD: &str = "ami-0000000a";
/// The EC2 ids of clawdinator-1, clawdinator-2 and clawdinator-babelfish.
const EC2: [&str; 3] = [
    "i-0000000000000000a",
    "i-0000000000000000b",
    "i-0000000000000000c",
];

type Api = ControlApi<FakeWorkflow, FakeFleet, FakeBootstrap, FakeState>;

fn ago(secs: i64) -> String {
    (Utc::now() - chrono::Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The three registry hosts running, launched `launched_ago` seconds ago, on `amis`.
fn fleet(launched_ago: [i64; 3], amis: [&str; 3]) -> FakeFleet {
    let hosts = ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"];
    let instances: Vec<LiveInstance> = (0..3)
        .map(|i| {
            let mut live = FakeFleet::running(EC2[i], hosts[i], amis[i]);
            live.launch_time = Some(ago(launched_ago[i]));
            live
        })
        .collect();
    FakeFleet {
        instances,
        images: vec![
            FakeFleet::image(OLD, "2026-11-01T00:00:00.000Z"),
            FakeFleet::image(NEW, "2026-11-20T00:00:00.000Z"),
        ],
        fail: false,
    }
}

fn build(fleet: FakeFleet, state: Option<FakeState>) -> Api {
    let auth = Authenticator::shared(SHARED)
        .with_token(BOT, Principal::parse("clawdinator-1").unwrap())
        .with_token(HUMAN, Principal::parse("human:ops").unwrap());
    let ports = Ports {
        workflow: FakeWorkflow::default(),
        fleet,
        bootstrap: None,
        state,
        sleep: no_wait,
    };
    ControlApi::new(Registry::embedded().unwrap(), Ok(auth), ports)
}

/// Hosts launched an hour ago, all on the newest image, with a state bucket.
fn settled() -> Api {
    build(fleet([3600; 3], [NEW; 3]), Some(FakeState::default()))
}

async fn send(api: &Api, token: &str, body: &str) -> Reply {
    let bearer = format!("Bearer {token}");
    let call = HttpCall {
        method: Method::Post,
        credentials: Credentials {
            authorization: Some(&bearer),
            clawdinator_token: None,
            iam_arn: None,
        },
        content_type: Some("application/json"),
        idempotency_key: None,
        body: body.as_bytes(),
        body_too_large: false,
        source_ip: None,
    };
    let reply = answer(api, call).await;
    assert!(!reply.body.contains(token), "no token in an answer");
    reply
}

fn beat(caller: Option<&str>, ec2: &str, service: &str) -> String {
    let caller = caller.map_or(String::new(), |c| format!(r#""caller":"{c}","#));
    format!(
        r#"{{"action":"heartbeat",{caller}"ec2_instance_id":"{ec2}","ami":"{NEW}","revision":"0123abcdef","service":"{service}","booted_at":"2026-12-01T10:00:00Z","agent":"0.1.0"}}"#
    )
}

async fn refused(api: &Api, token: &str, body: &str) -> (u16, String) {
    let reply = send(api, token, body).await;
    let e: ErrorBody = serde_json::from_str(&reply.body).expect(&reply.body);
    (reply.status, e.error)
}

async fn status(api: &Api) -> StatusAnswer {
    let reply = send(api, SHARED, r#"{"action":"status"}"#).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    serde_json::from_str(&reply.body).unwrap()
}

fn host<'a>(s: &'a StatusAnswer, id: &str) -> &'a control_api::contract::InstanceStatus {
    s.fleet.instances.iter().find(|i| i.id == id).unwrap()
}

fn stored(api: &Api) -> Vec<String> {
    api.ports().state.as_ref().unwrap().keys("heartbeats/")
}

#[tokio::test]
async fn a_bots_heartbeat_is_stored_and_its_host_shown_ready() {
    let api = settled();
    let reply = send(&api, BOT, &beat(None, EC2[0], "active")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let ack: HeartbeatAnswer = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(ack.id, "clawdinator-1");
    let body = api
        .ports()
        .state
        .as_ref()
        .unwrap()
        .body("heartbeats/clawdinator-1.json")
        .unwrap();
    let record: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(record["ec2_instance_id"], EC2[0]);
    assert_eq!(record["principal"], "clawdinator-1");
    assert_eq!(record["received_at"], ack.received_at.as_str());
    assert_eq!(stored(&api), ["heartbeats/clawdinator-1.json"]);

    let s = status(&api).await;
    let one = host(&s, "clawdinator-1");
    assert_eq!(one.readiness, Readiness::Ready);
    assert_eq!(one.service.as_deref(), Some("active"));
    assert_eq!(one.revision.as_deref(), Some("0123abcdef"));
    assert!(one.heartbeat_age_secs.is_some_and(|a| a < 5));
    assert_eq!(one.why, None);
    // The others launched an hour ago and never reported.
    let two = host(&s, "clawdinator-2");
    assert_eq!(two.readiness, Readiness::Stale);
    assert_eq!(
        two.why.as_deref(),
        Some("no heartbeat since it launched 60 min ago")
    );
    assert_eq!((s.fleet.summary["ready"], s.fleet.summary["stale"]), (1, 2));
    assert_eq!(s.fleet.summary["readiness_missing"], 0);
}

#[tokio::test]
async fn a_failed_service_is_unhealthy() {
    let api = settled();
    // The shared token speaks for the stated caller, as deploys do.
    let reply = send(&api, SHARED, &beat(Some("clawdinator-2"), EC2[1], "failed")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let s = status(&api).await;
    let two = host(&s, "clawdinator-2");
    assert_eq!(two.readiness, Readiness::Unhealthy);
    assert_eq!(two.why.as_deref(), Some("service is failed"));
    assert_eq!(s.fleet.summary["unhealthy"], 1);
}

#[tokio::test]
async fn a_just_launched_instance_is_booting_and_drift_is_explained() {
    let mut f = fleet([60, 3600, 3600], [NEW, OLD, NEW]);
    f.instances[2].instance_type = Some("t3.xlarge".into());
    let api = build(f, Some(FakeState::default()));
    let s = status(&api).await;
    let one = host(&s, "clawdinator-1");
    assert_eq!(one.readiness, Readiness::Booting);
    assert_eq!(
        one.why.as_deref(),
        Some("launched 60 s ago, no heartbeat yet")
    );
    let two = host(&s, "clawdinator-2");
    assert_eq!(
        two.why.as_deref(),
        Some(&*format!(
            "no heartbeat since it launched 60 min ago; runs {OLD}, newest fleet image is {NEW}"
        ))
    );
    let babelfish = host(&s, "clawdinator-babelfish");
    assert!(babelfish
        .why
        .as_deref()
        .unwrap()
        .ends_with("type t3.xlarge, registry says t3.medium"));
    assert_eq!(s.fleet.summary["booting"], 1);
}

#[tokio::test]
async fn an_old_heartbeat_is_stale_and_one_from_a_replaced_instance_ignored() {
    let api = build(
        fleet([3600, 60, 3600], [NEW; 3]),
        Some(FakeState::default()),
    );
    let state = api.ports().state.as_ref().unwrap();
    let record = |id: &str, ec2: &str, received: String| {
        format!(
            r#"{{"id":"{id}","ec2_instance_id":"{ec2}","ami":"{NEW}","revision":"","service":"active","booted_at":"2026-12-01T10:00:00Z","agent":"0.1.0","received_at":"{received}","principal":"{id}"}}"#
        )
    };
    let old = record("clawdinator-1", EC2[0], ago(12 * 60));
    state
        .put("heartbeats/clawdinator-1.json", old.into_bytes())
        .await
        .unwrap();
    // clawdinator-2 was just replaced: its last heartbeat is the old instance's.
    let replaced = record("clawdinator-2", "i-000000000000000ff", ago(5));
    state
        .put("heartbeats/clawdinator-2.json", replaced.into_bytes())
        .await
        .unwrap();
    let s = status(&api).await;
    let one = host(&s, "clawdinator-1");
    assert_eq!(one.readiness, Readiness::Stale);
    assert_eq!(one.why.as_deref(), Some("no heartbeat for 12 min"));
    assert!(one.heartbeat_age_secs.is_some_and(|a| a >= 720));
    let two = host(&s, "clawdinator-2");
    assert_eq!(two.readiness, Readiness::Booting);
    assert_eq!(two.service, None);
}

#[tokio::test]
async fn another_hosts_instance_is_409_and_nothing_is_stored() {
    let api = settled();
    assert_eq!(
        refused(&api, BOT, &beat(None, EC2[1], "active")).await,
        (409, "heartbeat_mismatch".into())
    );
    assert_eq!(
        refused(
            &api,
            SHARED,
            &beat(Some("clawdinator-2"), "i-0123456789abcdef0", "active")
        )
        .await,
        (409, "heartbeat_mismatch".into())
    );
    assert!(stored(&api).is_empty());
}

#[tokio::test]
async fn humans_and_bots_speaking_for_others_are_403() {
    let api = settled();
    assert_eq!(
        refused(&api, HUMAN, &beat(None, EC2[0], "active")).await,
        (403, "heartbeat_bots_only".into())
    );
    assert_eq!(
        refused(&api, SHARED, &beat(None, EC2[0], "active")).await,
        (403, "heartbeat_bots_only".into())
    );
    assert_eq!(
        refused(&api, SHARED, &beat(Some("human:ops"), EC2[0], "active")).await,
        (403, "heartbeat_bots_only".into())
    );
    assert_eq!(
        refused(&api, BOT, &beat(Some("clawdinator-2"), EC2[1], "active")).await,
        (403, "caller_mismatch".into())
    );
    assert!(stored(&api).is_empty());
}

#[tokio::test]
async fn a_second_heartbeat_within_10_s_is_429() {
    let api = settled();
    assert_eq!(
        send(&api, BOT, &beat(None, EC2[0], "active")).await.status,
        200
    );
    let reply = send(&api, BOT, &beat(None, EC2[0], "active")).await;
    assert_eq!(reply.status, 429, "{}", reply.body);
    let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(e.error, "rate_limited");
    let wait: u64 = reply
        .headers
        .iter()
        .find(|(k, _)| *k == "retry-after")
        .unwrap()
        .1
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    // Per host: another one reports meanwhile.
    let other = send(&api, SHARED, &beat(Some("clawdinator-2"), EC2[1], "active")).await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn malformed_reports_are_400() {
    let api = settled();
    let good = beat(None, EC2[0], "active");
    for (from, to) in [
        (EC2[0], "i-1"),
        (NEW, "ami-1"),
        ("0123abcdef", "not hex"),
        ("\"active\"", "\"active now\""),
        ("2026-12-01T10:00:00Z", "yesterday"),
        (r#","agent":"0.1.0""#, ""),
    ] {
        let body = good.replace(from, to);
        assert_eq!(
            refused(&api, BOT, &body).await,
            (400, "invalid_field".into()),
            "{body}"
        );
    }
    assert!(stored(&api).is_empty());
}

#[tokio::test]
async fn without_a_state_bucket_heartbeats_are_500_and_readiness_unknown() {
    let api = build(fleet([3600; 3], [NEW; 3]), None);
    let reply = send(&api, BOT, &beat(None, EC2[0], "active")).await;
    assert_eq!(reply.status, 500);
    let e: ErrorBody = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(e.error, "misconfigured");
    assert!(e.message.contains("FLEET_STATE_BUCKET"), "{}", e.message);
    let s = status(&api).await;
    assert!(s
        .fleet
        .instances
        .iter()
        .all(|i| i.readiness == Readiness::Unknown));
    assert_eq!(s.fleet.summary["unknown"], 3);
}

#[tokio::test]
async fn a_host_with_nothing_live_is_missing() {
    let mut f = fleet([3600; 3], [NEW; 3]);
    f.instances.pop();
    let api = build(f, Some(FakeState::default()));
    let s = status(&api).await;
    let babelfish = host(&s, "clawdinator-babelfish");
    assert_eq!(babelfish.readiness, Readiness::Missing);
    assert_eq!(babelfish.why.as_deref(), Some("no live instance"));
    assert_eq!(
        (
            s.fleet.summary["missing"],
            s.fleet.summary["readiness_missing"]
        ),
        (1, 1)
    );
}

/// A roll's report (`apply`, pinned to `revision`) landing in the state store, and its
/// event handled as the Lambda handles S3's.
async fn land(api: &Api, revision: &str, hosts: &[(&str, HostOutcome)]) {
    let request_id = uuid::Uuid::now_v7().to_string();
    let report = RollReport {
        request_id: request_id.clone(),
        target: "all".into(),
        ami: NEW.into(),
        mode: RollMode::Apply,
        revision: Some(revision.into()),
        outcome: RollOutcome::Stopped,
        hosts: hosts
            .iter()
            .map(|(id, outcome)| HostReport {
                id: (*id).into(),
                from_ami: Some(OLD.into()),
                to_ami: Some(NEW.into()),
                old_ec2_instance_id: None,
                new_ec2_instance_id: None,
                outcome: *outcome,
                reason: None,
                ready_after_secs: None,
                plan: None,
                put_back_ec2_instance_id: None,
            })
            .collect(),
        run_url: None,
    };
    let store = api.ports().state.as_ref().unwrap();
    let key = format!("reports/{request_id}.json");
    store
        .put(&key, serde_json::to_vec(&report).unwrap())
        .await
        .unwrap();
    let object = CreatedObject {
        bucket: store.bucket().to_owned(),
        key,
    };
    api.on_event(LambdaEvent::ObjectsCreated(vec![object]))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_host_running_another_revision_than_deployed_is_flagged_revision_drift() {
    const DEPLOYED: &str = "5e1ec7ed0000000000000000000000000000c0de";
    let api = settled();
    // Before any roll landed, nothing is known: no drift whatever a host runs.
    let reply = send(&api, BOT, &beat(None, EC2[0], "active")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let s = status(&api).await;
    assert!(host(&s, "clawdinator-1").flags.is_empty());
    assert_eq!(s.fleet.summary["revision_drift"], 0);

    land(
        &api,
        DEPLOYED,
        &[
            ("clawdinator-1", HostOutcome::Ready),
            ("clawdinator-2", HostOutcome::RolledBack),
            ("clawdinator-babelfish", HostOutcome::Skipped),
        ],
    )
    .await;
    let store = api.ports().state.as_ref().unwrap();
    let deployed: DeployedRevisions =
        serde_json::from_slice(&store.body(DEPLOYED_KEY).unwrap()).unwrap();
    assert_eq!(
        deployed["clawdinator-1"].revision.as_deref(),
        Some(DEPLOYED)
    );
    assert_eq!(
        deployed["clawdinator-2"].revision, None,
        "put back: unknown"
    );
    assert!(!deployed.contains_key("clawdinator-babelfish"));
    let reply = send(&api, SHARED, &beat(Some("clawdinator-2"), EC2[1], "active")).await;
    assert_eq!(reply.status, 200, "{}", reply.body);

    let s = status(&api).await;
    let one = host(&s, "clawdinator-1");
    assert_eq!(one.flags, [Flag::RevisionDrift]);
    assert_eq!(one.readiness, Readiness::Ready);
    assert_eq!(
        one.why.as_deref(),
        Some("runs revision 0123abc, deployed 5e1ec7e")
    );
    assert!(
        host(&s, "clawdinator-2").flags.is_empty(),
        "put back: never a drift"
    );
    assert_eq!(s.fleet.summary["revision_drift"], 1);

    // The next roll deploys what the host runs: no drift any more.
    land(
        &api,
        "0123abcdef000000000000000000000000000000",
        &[("clawdinator-1", HostOutcome::Ready)],
    )
    .await;
    let s = status(&api).await;
    assert!(host(&s, "clawdinator-1").flags.is_empty());
    assert_eq!(host(&s, "clawdinator-1").why, None);
    assert_eq!(s.fleet.summary["revision_drift"], 0);
}
