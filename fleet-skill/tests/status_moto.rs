//! `fleet status` end to end: the real CLI, the real control API, EC2 from moto on loopback.

mod support;

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use control_api::contract::StatusAnswer;
use support::*;

fn seed(fleet: &str, name: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&control_api::outbound::aws::load_sdk_config().await);
        let out = ec2
            .run_instances()
            .image_id("ami-0123456789abcdef0")
            .instance_type(InstanceType::T3Large)
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key("app").value(fleet).build())
                    .tags(Tag::builder().key("Name").value(name).build())
                    .build(),
            )
            .send()
            .await
            .unwrap();
        out.instances()[0].instance_id().unwrap().to_owned()
    })
}

#[test]
fn status_prints_the_live_table_and_summary() {
    let fleet = "fleet-cli-status";
    let id = seed(fleet, "clawdinator-2");
    let h = Harness::start_on_moto(&[("FLEET_TAG_VALUE", fleet)]);

    let run = h.fleet().run(&["status"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.starts_with("ID "), "{}", run.stdout);
    assert!(
        run.stdout.lines().next().unwrap().contains("  EC2 ID  "),
        "{}",
        run.stdout
    );
    let row = run
        .stdout
        .lines()
        .find(|l| l.starts_with("clawdinator-2"))
        .expect("a row for clawdinator-2");
    assert!(
        row.contains(&id) && row.contains("running") && row.contains("ami-0123456789abcdef0"),
        "{row}"
    );
    let babelfish = run
        .stdout
        .lines()
        .find(|l| l.starts_with("clawdinator-babelfish"))
        .unwrap();
    assert!(babelfish.contains("missing"), "{babelfish}");
    assert!(run.stdout.contains("latest AMI: unknown"), "{}", run.stdout);
    let last = run.stdout.lines().last().unwrap();
    assert!(
        last.contains("running") && last.contains("missing"),
        "summary line: {last}"
    );

    let json = h.fleet().run(&["status", "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let answer: StatusAnswer = serde_json::from_str(&json.stdout).unwrap();
    assert!(answer.ok);
    assert_eq!(answer.fleet.summary.get("missing"), Some(&2));
    let live = answer
        .fleet
        .instances
        .iter()
        .find(|i| i.id == "clawdinator-2")
        .unwrap();
    assert_eq!(live.ec2_instance_id.as_deref(), Some(id.as_str()));

    let chat = h.fleet().run(&["chat", "/fleet@clawdinator_bot STATUS"]);
    assert_eq!(chat.code, 0, "{chat:?}");
    assert_eq!(
        chat.stdout, run.stdout,
        "chat and the subcommand print the same table"
    );
}
