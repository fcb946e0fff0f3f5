//! `control-api prune-amis` against moto: keeps the newest and anything backing a host.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_ec2::types::{Filter, InstanceType};
use support::moto_sdk;

const TAG_KEY: &str = "clawdinator-retention";

async fn image(ec2: &aws_sdk_ec2::Client, name: &str) -> (String, String) {
    support::register_image(ec2, name, Some(TAG_KEY)).await
}

async fn instance_on(ec2: &aws_sdk_ec2::Client, ami: &str) -> String {
    let out = ec2
        .run_instances()
        .image_id(ami)
        .instance_type(InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .send()
        .await
        .unwrap();
    out.instances()[0].instance_id().unwrap().to_owned()
}

fn prune(args: &[&str]) -> (i32, String, String) {
    let args: Vec<&str> = ["prune-amis"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    support::control_api(&args, &[("FLEET_IMAGE_TAG_KEY", TAG_KEY)])
}

async fn remaining_images(ec2: &aws_sdk_ec2::Client) -> BTreeSet<String> {
    let out = ec2
        .describe_images()
        .owners("self")
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_KEY}"))
                .values("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.images()
        .iter()
        .map(|i| i.image_id().unwrap().to_owned())
        .collect()
}

async fn remaining_snapshots(ec2: &aws_sdk_ec2::Client) -> BTreeSet<String> {
    let out = ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    out.snapshots()
        .iter()
        .map(|s| s.snapshot_id().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn prunes_old_images_but_never_one_backing_a_host() {
    let ec2 = aws_sdk_ec2::Client::new(&moto_sdk().await);
    // Oldest first; creation dates have one-second resolution.
    let mut images = Vec::new();
    for name in [
        "r0-unused",
        "r1-stopped-host",
        "r2-running-host",
        "r3-terminated-host",
        "r4",
        "r5",
    ] {
        images.push(image(&ec2, name).await);
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    let id = |i: usize| images[i].0.clone();
    let stopped = instance_on(&ec2, &id(1)).await;
    ec2.stop_instances()
        .instance_ids(&stopped)
        .send()
        .await
        .unwrap();
    let running = instance_on(&ec2, &id(2)).await;
    let terminated = instance_on(&ec2, &id(3)).await;
    ec2.terminate_instances()
        .instance_ids(&terminated)
        .send()
        .await
        .unwrap();

    // Dry run: says what it would do, deletes nothing.
    let before = remaining_images(&ec2).await;
    let (code, out, err) = prune(&["--keep", "2"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("keep    {} r5 (newest 1/2)", id(5))),
        "{out}"
    );
    assert!(
        out.contains(&format!("keep    {} r4 (newest 2/2)", id(4))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "keep    {} r2-running-host (backs {running})",
            id(2)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "keep    {} r1-stopped-host (backs {stopped})",
            id(1)
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("would delete {} r3-terminated-host", id(3))),
        "{out}"
    );
    assert!(
        out.contains(&format!("would delete {} r0-unused", id(0))),
        "{out}"
    );
    assert!(
        out.contains(
            "4 image(s) kept, 2 to delete with 2 snapshot(s) (dry run; --apply to delete)"
        ),
        "{out}"
    );
    assert_eq!(remaining_images(&ec2).await, before);

    let (code, out, err) = prune(&["--keep", "2", "--apply"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("4 image(s) kept, 2 deleted with 2 snapshot(s)"),
        "{out}"
    );
    let left = remaining_images(&ec2).await;
    assert_eq!(
        left,
        [1, 2, 4, 5].map(id).into_iter().collect::<BTreeSet<_>>()
    );
    let snapshots = remaining_snapshots(&ec2).await;
    assert!(
        !snapshots.contains(&images[0].1) && !snapshots.contains(&images[3].1),
        "{snapshots:?}"
    );
    assert!(
        [1, 2, 4, 5]
            .iter()
            .all(|&i| snapshots.contains(&images[i].1)),
        "{snapshots:?}"
    );

    // Again: nothing left to delete, and it says so.
    let (code, out, _) = prune(&["--keep", "2", "--apply"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("4 image(s) kept, 0 deleted with 0 snapshot(s)"),
        "{out}"
    );
}

#[test]
fn a_failed_lookup_aborts_before_deleting_anything() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let (code, out, err) = support::control_api(
        &["prune-amis", "--apply"],
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
        ],
    );
    assert_eq!(code, 2);
    assert!(err.contains("AWS EC2 DescribeImages failed"), "{err}");
    assert!(out.is_empty(), "nothing planned or deleted");
}
