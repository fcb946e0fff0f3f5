//! `control-api serve --local-fleet`, the newcomer's first command (scripts/local-fleet):
//! the real binary seeds an emulator of its own (moto on loopback) and serves a fleet
//! that shows every host with an image, a stale one, a missing bundle and an audit trail;
//! and it refuses to seed anything that is not on loopback.

mod support;

use control_api::contract::{
    AuditAnswer, DeployAnswer, ErrorBody, Flag, Request, StatusAnswer, Target,
};
use support::{control_api, LocalServer, OwnMoto};

fn token(banner: &[String]) -> String {
    banner
        .iter()
        .find_map(|l| l.trim().strip_prefix("export CONTROL_API_TOKEN="))
        .expect("the banner prints the token")
        .to_owned()
}

fn deploy(target: &str) -> String {
    serde_json::to_string(&Request::Deploy {
        target: Target::parse(target).unwrap(),
        caller: None,
        ami_override: None,
        revision: None,
        queue: false,
    })
    .unwrap()
}

#[test]
fn the_local_fleet_shows_hosts_a_stale_image_a_missing_bundle_and_the_audit_trail() {
    let moto = OwnMoto::start();
    let server = LocalServer::start_with(
        &["serve", "--local-fleet"],
        &[("AWS_ENDPOINT_URL", &moto.url)],
    );
    assert!(server
        .banner
        .iter()
        .any(|l| l.contains("target/debug/fleet status")));
    let bearer = format!("Bearer {}", token(&server.banner));
    let auth = [("authorization", bearer.as_str())];

    let (status, body) = server.post(&auth, r#"{"action":"status"}"#);
    assert_eq!(status, 200, "{body}");
    let fleet: StatusAnswer = serde_json::from_value(body).unwrap();
    assert_eq!(fleet.fleet.instances.len(), 3);
    assert!(fleet
        .fleet
        .instances
        .iter()
        .all(|i| i.ami.is_some() && i.ec2_instance_id.is_some()));
    let stale: Vec<&str> = fleet
        .fleet
        .instances
        .iter()
        .filter(|i| i.flags.contains(&Flag::StaleAmi))
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(stale, ["clawdinator-2"]);

    let (status, body) = server.post(&auth, &deploy("clawdinator-2"));
    assert_eq!(status, 200, "{body}");
    let accepted: DeployAnswer = serde_json::from_value(body).unwrap();
    assert!(
        accepted.message.starts_with("dry run"),
        "{}",
        accepted.message
    );
    let (status, body) = server.post(&auth, &deploy("clawdinator-babelfish"));
    let refused: ErrorBody = serde_json::from_value(body).unwrap();
    assert_eq!((status, refused.error.as_str()), (409, "bootstrap_missing"));

    let (status, body) = server.post(&auth, r#"{"action":"audit"}"#);
    assert_eq!(status, 200, "{body}");
    let trail: AuditAnswer = serde_json::from_value(body).unwrap();
    let ids: Vec<&str> = trail
        .records
        .iter()
        .map(|r| r.request_id.as_str())
        .collect();
    assert_eq!(
        ids,
        [refused.request_id.as_str(), accepted.request_id.as_str()]
    );
    server.stop();
}

#[test]
fn an_endpoint_off_this_machine_is_never_seeded() {
    // Refused before any client is built: nothing is sent anywhere.
    let (code, _, err) = control_api(
        &["serve", "--local-fleet"],
        &[
            ("AWS_ENDPOINT_URL", "http://fleet.example.invalid:1"),
            ("PORT", "0"),
        ],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("only to an emulator on loopback"), "{err}");
}
