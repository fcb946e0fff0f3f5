//! Status and the pre-deploy bootstrap check against a real AWS emulator (moto on loopback).
//!
//! Run through `scripts/with-moto` (scripts/test does). moto is shared by the whole run,
//! so each test uses its own tag values and bucket names.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_ec2::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_ec2::config::{ConfigBag, Intercept, RuntimeComponents};
use control_api::app::{self, App};
use control_api::config::Mode;
use control_api::domain::ports::FleetReader;
use control_api::outbound::aws::Ec2Fleet;
use serde_json::{json, Value};
use support::*;
use wiremock::MockServer;

async fn image(ec2: &aws_sdk_ec2::Client, name: &str, image_tag: Option<&str>) -> String {
    register_image(ec2, name, image_tag).await.0
}

async fn moto_app(github: &MockServer, extra: &[(&str, &str)]) -> App {
    app::build_with(
        settings(&github.uri(), extra),
        Mode::Lambda,
        &moto_sdk().await,
    )
    .unwrap()
}

#[tokio::test]
async fn status_joins_ec2_with_the_registry_and_flags_drift() {
    let ec2 = ec2().await;
    let (fleet, image_key) = ("status-join", "clawdinator-status-join");
    // EC2 creation dates have one-second resolution: space the images out.
    let old = image(&ec2, "clawdinator-nixos-old", Some(image_key)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let latest = image(&ec2, "clawdinator-nixos-new", Some(image_key)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let _untagged_newer = image(&ec2, "someone-elses-image", None).await;

    let c1 = run(&ec2, fleet, "clawdinator-1", &latest, "t3.large", 1).await;
    let c2 = run(&ec2, fleet, "clawdinator-2", &old, "t3.xlarge", 1).await;
    let stray = run(&ec2, fleet, "stray-box", &latest, "t3.micro", 1).await;
    let babel = run(
        &ec2,
        fleet,
        "clawdinator-babelfish",
        &latest,
        "t3.medium",
        1,
    )
    .await;
    ec2.terminate_instances()
        .set_instance_ids(Some(babel.clone()))
        .send()
        .await
        .unwrap();
    // Same Name, another fleet tag value: not ours, never shown.
    run(&ec2, "other-fleet", "clawdinator-1", &latest, "t3.large", 1).await;

    let github = MockServer::start().await;
    let api = moto_app(
        &github,
        &[
            ("FLEET_TAG_VALUE", fleet),
            ("FLEET_IMAGE_TAG_KEY", image_key),
        ],
    )
    .await;
    let (status, body) = lambda_post(&api, json!({"action": "status"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true);
    assert_eq!(body["latest_ami"]["id"], latest.as_str());
    assert_eq!(body["latest_ami"]["name"], "clawdinator-nixos-new");

    let rows = body["instances"].as_array().unwrap();
    let row = |id: &str| rows.iter().find(|r| r["id"] == id).unwrap().clone();
    let r1 = row("clawdinator-1");
    assert_eq!(r1["ec2_instance_id"], c1[0].as_str());
    assert_eq!(r1["state"], "running");
    assert_eq!(r1["ami"], latest.as_str());
    assert_eq!(r1["ami_name"], "clawdinator-nixos-new");
    assert!(r1["ami_created"].as_str().unwrap().starts_with("20"));
    assert!(r1["launch_time"].as_str().unwrap().ends_with('Z'));
    assert!(r1["private_ip"].is_string());
    assert_eq!(r1["flags"], json!([]));
    let r2 = row("clawdinator-2");
    assert_eq!(r2["ec2_instance_id"], c2[0].as_str());
    assert_eq!(r2["instance_type"], "t3.xlarge");
    assert_eq!(r2["ami_name"], "clawdinator-nixos-old");
    assert_eq!(r2["flags"], json!(["stale_ami", "type_drift"]));
    let rb = row("clawdinator-babelfish");
    assert_eq!(
        rb["ec2_instance_id"],
        Value::Null,
        "terminated is excluded by default"
    );
    assert_eq!(rb["flags"], json!(["missing"]));

    let unmanaged = body["unmanaged"].as_array().unwrap();
    assert_eq!(unmanaged.len(), 1, "{unmanaged:?}");
    assert_eq!(unmanaged[0]["ec2_instance_id"], stray[0].as_str());
    assert_eq!(unmanaged[0]["name"], "stray-box");
    assert_eq!(unmanaged[0]["reason"], "not_in_registry");
    let s = &body["summary"];
    assert_eq!(
        (
            s["running"].as_u64(),
            s["missing"].as_u64(),
            s["stale_ami"].as_u64(),
            s["type_drift"].as_u64(),
            s["unmanaged"].as_u64(),
            s["total"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1), Some(1), Some(3))
    );

    // Asked for, the terminated instance shows, still flagged missing.
    let (_, body) = lambda_post(
        &api,
        json!({"action": "status", "include_terminated": true}),
    )
    .await;
    let rb = body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "clawdinator-babelfish")
        .unwrap()
        .clone();
    assert_eq!(rb["ec2_instance_id"], babel[0].as_str());
    assert_eq!(rb["state"], "terminated");
    assert_eq!(rb["flags"], json!(["missing"]));
    assert!(
        received(&github).await.is_empty(),
        "status never dispatches"
    );
}

/// Counts the DescribeInstances requests that actually go out.
#[derive(Debug, Default)]
struct CountCalls(Arc<AtomicUsize>);

impl Intercept for CountCalls {
    fn name(&self) -> &'static str {
        "CountCalls"
    }
    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_ec2::error::BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

#[tokio::test]
async fn a_thousand_instances_are_read_page_by_page() {
    // A region of its own, so the other tests' DescribeInstances calls (moto scans every
    // instance of a region in Python) do not wade through these thousand.
    let sdk = moto_sdk()
        .await
        .into_builder()
        .region(aws_config::Region::new("eu-west-1"))
        .build();
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let fleet = "status-scale";
    // 20 launches of 50. moto pages DescribeInstances by reservation (real EC2 by
    // instance), so a page size of 5 gives 4 pages here.
    for n in 0..20 {
        run(
            &ec2,
            fleet,
            &format!("scale-{n}"),
            "ami-0123456789abcdef0",
            "t3.micro",
            50,
        )
        .await;
    }
    let calls = Arc::new(AtomicUsize::new(0));
    // moto takes seconds per page of this size where EC2 takes well under one, so the
    // production time limits are relaxed here; the paging logic is the product's own.
    let counted = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&sdk)
            .interceptor(CountCalls(Arc::clone(&calls)))
            .timeout_config(aws_sdk_ec2::config::timeout::TimeoutConfig::disabled())
            .build(),
    );
    let settings = settings("http://127.0.0.1:9", &[("FLEET_TAG_VALUE", fleet)]).aws;
    let reader =
        Ec2Fleet::with_client(counted, settings, 5).with_deadline(Duration::from_secs(300));
    let live = reader.live_instances(false).await.unwrap();
    assert_eq!(live.len(), 1000);
    let mut ids: Vec<_> = live.iter().map(|i| i.ec2_instance_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "no instance read twice across pages");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "one DescribeInstances call per page"
    );
}

#[tokio::test]
async fn latest_image_ignores_untagged_and_other_tags() {
    let ec2 = ec2().await;
    let key = "clawdinator-latest";
    let a = image(&ec2, "a", Some(key)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let b = image(&ec2, "b", Some(key)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    image(&ec2, "c-untagged", None).await;
    image(&ec2, "d-other-tag", Some("some-other-key")).await;
    let settings = settings("http://127.0.0.1:9", &[("FLEET_IMAGE_TAG_KEY", key)]).aws;
    let reader = Ec2Fleet::with_client(ec2.clone(), settings, 1000);
    let latest = reader.latest_image().await.unwrap().unwrap();
    assert_eq!(latest.id, b);
    assert_ne!(latest.id, a);
    let none = Ec2Fleet::with_client(
        ec2,
        control_api::config::AwsSettings {
            image_tag_key: "no-such-tag".into(),
            ..reader_settings()
        },
        1000,
    );
    assert_eq!(none.latest_image().await.unwrap(), None);
}

fn reader_settings() -> control_api::config::AwsSettings {
    settings("http://127.0.0.1:9", &[]).aws
}

async fn bucket_with(name: &str, keys: &[&str]) {
    let sdk = moto_sdk().await;
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    s3.create_bucket().bucket(name).send().await.unwrap();
    for key in keys {
        s3.put_object()
            .bucket(name)
            .key(*key)
            .body(b"bundle".to_vec().into())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn deploys_need_a_bootstrap_bundle_for_every_host_they_create() {
    let bucket = "bootstrap-check";
    bucket_with(
        bucket,
        &[
            "bootstrap/clawdinator-1/bundle.tar.zst",
            "bootstrap/clawdinator-2-old/bundle.tar.zst",
        ],
    )
    .await;
    let github = github_accepting().await;
    let api = moto_app(&github, &[("FLEET_BOOTSTRAP_BUCKET", bucket)]).await;

    let (status, body) =
        lambda_post(&api, json!({"action": "deploy", "target": "clawdinator-1"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["checks"],
        json!({"bootstrap": "ok", "idempotency": "skipped", "in_flight": "clear"})
    );
    assert_eq!(received(&github).await.len(), 1);

    // A neighbour's prefix that merely starts the same does not count.
    let (status, body) =
        lambda_post(&api, json!({"action": "deploy", "target": "clawdinator-2"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (409, Some("bootstrap_missing")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "no bootstrap bundle under bootstrap/clawdinator-2 in bootstrap-check"
    );

    let (status, body) = lambda_post(&api, json!({"action": "deploy", "target": "all"})).await;
    assert_eq!(status, 409);
    assert_eq!(
        body["message"],
        "no bootstrap bundle under bootstrap/clawdinator-2, bootstrap/clawdinator-babelfish in bootstrap-check"
    );
    assert_eq!(
        received(&github).await.len(),
        1,
        "no dispatch for a refused deploy"
    );

    // Without a bucket setting the check is skipped, and the answer says so. (The first
    // deploy's run has finished, or the in-flight guard would answer first.)
    github.set_run(github.runs()[0].id, "completed", Some("success"), None);
    let api = moto_app(&github, &[]).await;
    let (status, body) =
        lambda_post(&api, json!({"action": "deploy", "target": "clawdinator-2"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["bootstrap"], "skipped");
}

#[tokio::test]
async fn aws_failures_are_502_and_dispatch_nothing() {
    let github = github_accepting().await;
    let api = moto_app(
        &github,
        &[("FLEET_BOOTSTRAP_BUCKET", "no-such-bucket-here")],
    )
    .await;
    let (status, body) =
        lambda_post(&api, json!({"action": "deploy", "target": "clawdinator-1"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("aws_unavailable")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "AWS S3 ListObjectsV2 failed (NoSuchBucket)"
    );

    // EC2 unreachable: a closed loopback port.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Built by hand: an SdkConfig loaded from the environment keeps moto's AWS_ENDPOINT_URL.
    let sdk = offline_sdk()
        .into_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let api = app::build_with(settings(&github.uri(), &[]), Mode::Lambda, &sdk).unwrap();
    let (status, body) = lambda_post(&api, json!({"action": "status"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (502, Some("aws_unavailable")),
        "{body}"
    );
    assert_eq!(
        body["message"],
        "AWS EC2 DescribeInstances failed (unreachable or no credentials)"
    );
    assert!(received(&github).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_local_server_shows_status_from_moto() {
    let ec2 = ec2().await;
    let fleet = "status-local";
    let id = run(
        &ec2,
        fleet,
        "clawdinator-2",
        "ami-0123456789abcdef0",
        "t3.large",
        1,
    )
    .await;
    let server = LocalServer::start(&[
        ("CONTROL_API_TOKEN", CONTROL_TOKEN),
        ("FLEET_TAG_VALUE", fleet),
    ]);
    let bearer = format!("Bearer {CONTROL_TOKEN}");
    let (status, body) = tokio::task::block_in_place(|| {
        server.post(&[("authorization", &bearer)], r#"{"action":"status"}"#)
    });
    assert_eq!(status, 200, "{body}");
    let row = body["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "clawdinator-2")
        .unwrap()
        .clone();
    assert_eq!(row["ec2_instance_id"], id[0].as_str());
    assert_eq!(body["summary"]["missing"], 2);
    server.stop();
}

#[tokio::test]
async fn the_latest_ami_command_prints_the_newest_tagged_image() {
    let ec2 = ec2().await;
    let key = "clawdinator-cli-latest";
    image(&ec2, "older", Some(key)).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newest = image(&ec2, "newest", Some(key)).await;
    let run = |tag_key: &str| control_api(&["latest-ami"], &[("FLEET_IMAGE_TAG_KEY", tag_key)]);
    let (code, out, err) = run(key);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), newest);
    let (code, _, err) = run("no-image-has-this");
    assert_eq!(code, 1);
    assert!(
        err.contains("no image owned by this account has tag no-image-has-this=true"),
        "{err}"
    );
}

#[tokio::test]
async fn an_ami_override_must_be_a_fleet_image() {
    let ec2 = ec2().await;
    let key = "clawdinator-override";
    let fleet_image = image(&ec2, "clawdinator-nixos-override", Some(key)).await;
    let foreign = image(&ec2, "someone-elses-image", None).await;
    let github = github_accepting().await;
    let api = moto_app(&github, &[("FLEET_IMAGE_TAG_KEY", key)]).await;

    let deploy =
        |ami: &str| json!({"action": "deploy", "target": "clawdinator-2", "ami_override": ami});
    let (status, body) = lambda_post(&api, deploy(&fleet_image)).await;
    assert_eq!(status, 200, "{body}");
    for ami in [foreign.as_str(), "ami-0123456789abcdef0"] {
        let (status, body) = lambda_post(&api, deploy(ami)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (404, Some("unknown_ami")),
            "{ami}: {body}"
        );
        assert_eq!(
            body["message"],
            format!("ami_override {ami} is not a fleet image (owned by this account and tagged as the fleet's)")
        );
    }
    let sent = received(&github).await;
    assert_eq!(sent.len(), 1, "only the fleet image was dispatched");
    assert_eq!(sent[0].1["inputs"]["ami_override"], fleet_image.as_str());

    // The workflow's own check, the same rule from the command line.
    let check = |ami: &str| {
        control_api(
            &["check-ami", "--ami", ami],
            &[("FLEET_IMAGE_TAG_KEY", key)],
        )
    };
    assert_eq!(check(&fleet_image).0, 0);
    let (code, _, err) = check(&foreign);
    assert_eq!(code, 1);
    assert!(err.contains("is not a fleet image"), "{err}");
}
