//! Host readiness through the real adapters: heartbeats checked against EC2 and kept in
//! an S3 state bucket, both moto on loopback, then status reading them back (ready,
//! booting, stale, missing). Run through `scripts/with-moto` (scripts/test does).

mod support;

use control_api::app::{self, App};
use control_api::config::Mode;
use control_api::contract::{
    HeartbeatRecord, HeartbeatReport, InstanceStatus, Readiness, StatusAnswer,
};
use control_api::domain::heartbeat::heartbeat_key;
use control_api::inbound::lambda::handle;
use lambda_http::Body;
use serde_json::{json, Value};
use support::*;

async fn post(api: &App, body: Value) -> (u16, Value) {
    let req = lambda_http::http::Request::builder()
        .method("POST")
        .uri("https://x.lambda-url.us-east-1.on.aws/")
        .header("authorization", format!("Bearer {CONTROL_TOKEN}"))
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = handle(api, req).await.unwrap();
    (
        resp.status().as_u16(),
        serde_json::from_slice(resp.body().as_ref()).unwrap(),
    )
}

fn beat(caller: &str, ec2_instance_id: &str) -> Value {
    json!({"action": "heartbeat", "caller": caller, "ec2_instance_id": ec2_instance_id,
           "ami": "ami-0123456789abcdef0", "revision": "0123abcdef", "service": "active",
           "booted_at": "2026-12-01T10:00:00Z", "agent": "0.1.0"})
}

#[tokio::test]
async fn heartbeats_in_s3_and_instances_in_ec2_make_readiness() {
    let (fleet, bucket) = ("readiness-moto", "readiness-moto-state");
    let ec2 = ec2().await;
    let ami = "ami-0123456789abcdef0";
    let one = run(&ec2, fleet, "clawdinator-1", ami, "t3.large", 1).await;
    let two = run(&ec2, fleet, "clawdinator-2", ami, "t3.large", 1).await;
    let sdk = moto_sdk().await;
    let s3 = s3_of(&sdk);
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    // The boot grace read from its setting: a host launched a moment ago is booting.
    let extra = [
        ("FLEET_TAG_VALUE", fleet),
        ("FLEET_STATE_BUCKET", bucket),
        ("FLEET_BOOT_GRACE_SECS", "3600"),
    ];
    let github = github_accepting().await;
    let api = app::build_with(settings(&github.uri(), &extra), Mode::Lambda, &sdk).unwrap();

    let (status, body) = post(&api, beat("clawdinator-1", &one[0])).await;
    assert_eq!(status, 200, "{body}");
    // clawdinator-1's instance is not clawdinator-2's: refused, nothing kept.
    let (status, body) = post(&api, beat("clawdinator-2", &one[0])).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("heartbeat_mismatch"))
    );
    let kept = s3
        .get_object()
        .bucket(bucket)
        .key("heartbeats/clawdinator-1.json")
        .send()
        .await
        .unwrap();
    let record: Value =
        serde_json::from_slice(&kept.body.collect().await.unwrap().into_bytes()).unwrap();
    assert_eq!(record["ec2_instance_id"], one[0].as_str());
    assert_eq!(record["principal"], "human:shared-token");
    let listed = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix("heartbeats/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1);

    let (status, body) = post(&api, json!({"action": "status"})).await;
    assert_eq!(status, 200, "{body}");
    let answer: StatusAnswer = serde_json::from_value(body).unwrap();
    let host = |id: &str| answer.fleet.instances.iter().find(|i| i.id == id).unwrap();
    assert_eq!(host("clawdinator-1").readiness, Readiness::Ready);
    assert_eq!(
        host("clawdinator-1").revision.as_deref(),
        Some("0123abcdef")
    );
    assert_eq!(
        host("clawdinator-2").ec2_instance_id.as_deref(),
        Some(two[0].as_str())
    );
    assert_eq!(host("clawdinator-2").readiness, Readiness::Booting);
    assert_eq!(host("clawdinator-babelfish").readiness, Readiness::Missing);
    let s = &answer.fleet.summary;
    assert_eq!(
        (s["ready"], s["booting"], s["readiness_missing"]),
        (1, 1, 1)
    );
}

/// The state bucket's client, path-style as on any loopback emulator.
fn s3_of(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(true)
            .build(),
    )
}

fn host_of<'a>(answer: &'a StatusAnswer, id: &str) -> &'a InstanceStatus {
    answer.fleet.instances.iter().find(|i| i.id == id).unwrap()
}

async fn status_of(api: &App) -> StatusAnswer {
    let (status, body) = post(api, json!({"action": "status"})).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

#[tokio::test]
async fn a_heartbeat_older_than_the_stale_setting_is_stale_and_a_fresh_one_ready() {
    let (fleet, bucket) = ("readiness-moto-stale", "readiness-moto-stale-state");
    let ec2 = ec2().await;
    let one = run(
        &ec2,
        fleet,
        "clawdinator-1",
        "ami-0123456789abcdef0",
        "t3.large",
        1,
    )
    .await;
    let sdk = moto_sdk().await;
    let s3 = s3_of(&sdk);
    s3.create_bucket().bucket(bucket).send().await.unwrap();
    // 30 s: a heartbeat 45 s old is stale here, though the default 180 s would call it ready.
    let extra = [
        ("FLEET_TAG_VALUE", fleet),
        ("FLEET_STATE_BUCKET", bucket),
        ("FLEET_HEARTBEAT_STALE_SECS", "30"),
    ];
    let github = github_accepting().await;
    let api = app::build_with(settings(&github.uri(), &extra), Mode::Lambda, &sdk).unwrap();

    // The host's last heartbeat, from its current instance, kept as the API keeps one,
    // but received 45 s ago.
    let old = chrono::Utc::now() - chrono::Duration::seconds(45);
    let record = HeartbeatRecord {
        id: "clawdinator-1".into(),
        report: HeartbeatReport::from_body(beat("clawdinator-1", &one[0]).as_object().unwrap())
            .unwrap(),
        received_at: old.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        principal: "bot:clawdinator-1".into(),
    };
    s3.put_object()
        .bucket(bucket)
        .key(heartbeat_key("clawdinator-1"))
        .body(serde_json::to_vec(&record).unwrap().into())
        .send()
        .await
        .unwrap();
    let answer = status_of(&api).await;
    let host = host_of(&answer, "clawdinator-1");
    assert_eq!(host.readiness, Readiness::Stale, "{host:?}");
    assert!(
        host.heartbeat_age_secs.is_some_and(|age| age >= 45),
        "{host:?}"
    );
    let why = host.why.as_deref().unwrap_or_default();
    assert!(
        why.starts_with("no heartbeat for ") && why.contains(" s"),
        "{why}"
    );
    assert_eq!(answer.fleet.summary["stale"], 1);

    // The same host reports in through the API: fresh, so ready, and nothing to explain.
    let (status, body) = post(&api, beat("clawdinator-1", &one[0])).await;
    assert_eq!(status, 200, "{body}");
    let answer = status_of(&api).await;
    let host = host_of(&answer, "clawdinator-1");
    assert_eq!(host.readiness, Readiness::Ready, "{host:?}");
    assert!(
        host.heartbeat_age_secs.is_some_and(|age| age < 30),
        "{host:?}"
    );
    // Other suites' images in the shared moto may add an image phrase, never a heartbeat one.
    let why = host.why.as_deref().unwrap_or_default();
    assert!(!why.contains("heartbeat"), "{why}");
    let s = &answer.fleet.summary;
    assert_eq!((s["ready"], s["stale"]), (1, 0));
}
