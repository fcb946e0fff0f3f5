//! `fleet heartbeat` end to end: the real CLI against the real control API (EC2 and the
//! state bucket from moto on loopback, through the real adapters), with a loopback
//! IMDSv2 double, and `fleet status` showing the readiness it led to.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use control_api::contract::{Readiness, StatusAnswer};
use support::*;

const IMDS_TOKEN: &str = "imds-double-session-token";

/// A test double of the narrowest interface the CLI uses of the EC2 instance metadata
/// service (IMDSv2: `PUT /latest/api/token`, then `GET /latest/meta-data/instance-id` and
/// `/latest/meta-data/ami-id` with the token header), because IMDS cannot be emulated
/// otherwise: moto has none, and only an EC2 instance can reach the real one.
struct ImdsDouble {
    url: String,
    /// Every request line, with whether it carried the right token header.
    seen: Arc<Mutex<Vec<(String, bool)>>>,
}

impl ImdsDouble {
    fn start(instance_id: &str, ami: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (record, id, ami) = (Arc::clone(&seen), instance_id.to_owned(), ami.to_owned());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                Self::answer(stream, &id, &ami, &record);
            }
        });
        Self { url, seen }
    }

    /// One request per connection (`Connection: close`), enough for the SDK's client.
    fn answer(stream: TcpStream, id: &str, ami: &str, seen: &Mutex<Vec<(String, bool)>>) {
        let mut reader = BufReader::new(&stream);
        let mut line = String::new();
        if reader.read_line(&mut line).is_err() {
            return;
        }
        let (mut token, mut ttl) = (None, false);
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                break;
            }
            let (k, v) = h.split_once(':').unwrap_or((&h, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "x-aws-ec2-metadata-token" => token = Some(v.trim().to_owned()),
                "x-aws-ec2-metadata-token-ttl-seconds" => ttl = true,
                _ => {}
            }
        }
        let request = line.trim().to_owned();
        let authorized = token.as_deref() == Some(IMDS_TOKEN);
        seen.lock().unwrap().push((request.clone(), authorized));
        let mut parts = request.split_whitespace();
        let (status, body) = match (parts.next(), parts.next()) {
            (Some("PUT"), Some("/latest/api/token")) if ttl => ("200 OK", IMDS_TOKEN),
            (Some("GET"), Some(_)) if !authorized => ("401 Unauthorized", ""),
            (Some("GET"), Some("/latest/meta-data/instance-id")) => ("200 OK", id),
            (Some("GET"), Some("/latest/meta-data/ami-id")) => ("200 OK", ami),
            _ => ("404 Not Found", ""),
        };
        let mut stream = &stream;
        let _ = write!(
            stream,
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\nx-aws-ec2-metadata-token-ttl-seconds: 21600\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    }

    fn seen(&self) -> Vec<(String, bool)> {
        self.seen.lock().unwrap().clone()
    }
}

/// A running fleet instance named `name` in moto; its EC2 id.
fn seed(fleet: &str, name: &str, ami: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ec2 = aws_sdk_ec2::Client::new(&control_api::outbound::aws::load_sdk_config().await);
        let out = ec2
            .run_instances()
            .image_id(ami)
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

/// A bucket in moto, created path-style (moto checks no signature).
fn bucket(name: &str) {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").expect("run under scripts/with-moto");
    let resp = ureq::put(&format!("{endpoint}/{name}"))
        .send_empty()
        .expect("create the state bucket in moto");
    assert!(resp.status().is_success());
}

fn heartbeat(h: &Harness, host: &str, imds: &ImdsDouble, health: &str) -> Run {
    h.set_instance_name(host);
    let revision = h.dir.write("revision", "0123abcdef\n");
    h.fleet()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &imds.url)
        .env("FLEET_HEALTH_COMMAND", health)
        .env("FLEET_REVISION_FILE", revision.to_str().unwrap())
        .run(&["heartbeat"])
}

#[test]
fn heartbeats_make_hosts_ready_or_unhealthy_in_status() {
    let fleet = "fleet-cli-heartbeat";
    let state = "fleet-cli-heartbeat-state";
    bucket(state);
    let ami = "ami-0123456789abcdef0";
    let two = seed(fleet, "clawdinator-2", ami);
    let one = seed(fleet, "clawdinator-1", ami);
    let h = Harness::start_on_moto(&[("FLEET_TAG_VALUE", fleet), ("FLEET_STATE_BUCKET", state)]);

    let imds_two = ImdsDouble::start(&two, ami);
    let run = heartbeat(&h, "clawdinator-2", &imds_two, "true");
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout
            .starts_with("heartbeat of clawdinator-2 recorded at "),
        "{}",
        run.stdout
    );
    let seen = imds_two.seen();
    assert_eq!(
        seen[0],
        ("PUT /latest/api/token HTTP/1.1".to_owned(), false)
    );
    assert!(
        seen[1..].iter().all(|(_, authorized)| *authorized),
        "{seen:?}"
    );
    let imds_one = ImdsDouble::start(&one, ami);
    let run = heartbeat(&h, "clawdinator-1", &imds_one, "false");
    assert_eq!(run.code, 0, "{run:?}");

    // A second one within 10 s: refused, one line on stderr, no token in it.
    let again = heartbeat(&h, "clawdinator-2", &imds_two, "true");
    assert_eq!(again.code, 1, "{again:?}");
    assert_eq!(again.stderr.lines().count(), 1, "{}", again.stderr);
    assert!(again.stderr.contains("rate_limited"), "{}", again.stderr);
    assert!(!again.stderr.contains(CONTROL_TOKEN) && !again.stderr.contains(IMDS_TOKEN));

    let json = h.fleet().run(&["status", "--json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let answer: StatusAnswer = serde_json::from_str(&json.stdout).unwrap();
    let host = |id: &str| answer.fleet.instances.iter().find(|i| i.id == id).unwrap();
    let readiness = |id: &str| (host(id).readiness, host(id).why.clone());
    assert_eq!(readiness("clawdinator-2"), (Readiness::Ready, None));
    // What the CLI gathered, as kept in the state bucket and read back by status.
    let two_status = host("clawdinator-2");
    assert_eq!(two_status.ec2_instance_id.as_deref(), Some(two.as_str()));
    assert_eq!(
        (
            two_status.service.as_deref(),
            two_status.revision.as_deref()
        ),
        (Some("active"), Some("0123abcdef"))
    );
    assert!(two_status.heartbeat_age_secs.is_some_and(|a| a < 60));
    assert_eq!(
        readiness("clawdinator-1"),
        (Readiness::Unhealthy, Some("service is failed".to_owned()))
    );
    assert_eq!(readiness("clawdinator-babelfish").0, Readiness::Missing);

    let table = h.fleet().run(&["status"]);
    assert_eq!(table.code, 0, "{table:?}");
    assert!(
        table.stdout.lines().next().unwrap().contains("  READY  "),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("clawdinator-1: service is failed\n"),
        "{}",
        table.stdout
    );
}

#[test]
fn without_instance_metadata_nothing_is_sent() {
    let h = Harness::start(GitHub::Absent);
    h.set_instance_name("clawdinator-2");
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = h
        .fleet()
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", &url)
        .env("FLEET_HEALTH_COMMAND", "true")
        .run(&["heartbeat"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("IMDSv2"), "{}", run.stderr);
    assert!(h.proxy.requests().is_empty(), "nothing reached the API");
}
