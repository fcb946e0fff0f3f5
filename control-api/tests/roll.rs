//! `control-api roll` end to end: the real binary drives the OpenTofu test double
//! (tests/support/tofu-double) against moto's EC2, reads heartbeats from a moto S3 state
//! bucket, where a test "host" writes them for every running instance (healthy or not
//! per scenario) as the API stores them, and writes its report. Run through
//! `scripts/with-moto` (scripts/test does).

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, Utc};
use control_api::contract::{
    HeartbeatRecord, HeartbeatReport, HostOutcome, RollMode, RollOutcome, RollReport,
};
use control_api::domain::heartbeat::heartbeat_key;
use control_api::domain::report::report_key;
use serde_json::{json, Value};
use support::{moto_sdk, tag};

const OLD: &str = "ami-0aaaaaaaaaaaaaaaa";
const NEW: &str = "ami-0bbbbbbbbbbbbbbbb";
const IDS: [&str; 3] = ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"];
const REGISTRY: &str = include_str!("../../nix/instances.json");

/// What a host says, by registry id, image and how long the host has seen its instance:
/// `None` is silence, else the service state it reports.
type Behaviour = fn(&str, &str, Duration) -> Option<&'static str>;

fn healthy(_: &str, _: &str, _: Duration) -> Option<&'static str> {
    Some("active")
}

/// One scenario's world: its own fleet tag, state bucket and directory with
/// `infra/` (where tofu runs) and `nix/instances.json`, removed on drop.
struct World {
    name: String,
    root: PathBuf,
    ec2: aws_sdk_ec2::Client,
    s3: aws_sdk_s3::Client,
    /// The registry host's instance before the roll.
    before: Vec<(String, String)>,
    host: Arc<AtomicBool>,
    host_thread: Option<std::thread::JoinHandle<()>>,
}

impl World {
    async fn start(name: &str, behaviour: Behaviour) -> Self {
        let sdk = moto_sdk().await;
        let ec2 = aws_sdk_ec2::Client::new(&sdk);
        let s3 = control_api::outbound::aws::s3_client(&sdk);
        s3.create_bucket().bucket(name).send().await.unwrap();
        let root = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(root.join("infra")).unwrap();
        std::fs::create_dir_all(root.join("nix")).unwrap();
        std::fs::write(root.join("nix/instances.json"), REGISTRY).unwrap();
        let registry: Value = serde_json::from_str(REGISTRY).unwrap();
        let mut before = Vec::new();
        for id in IDS {
            let entry = &registry[id];
            let out = ec2
                .run_instances()
                .image_id(OLD)
                .instance_type(aws_sdk_ec2::types::InstanceType::from(
                    entry["instanceType"].as_str().unwrap(),
                ))
                .min_count(1)
                .max_count(1)
                .tag_specifications(
                    aws_sdk_ec2::types::TagSpecification::builder()
                        .resource_type(aws_sdk_ec2::types::ResourceType::Instance)
                        .set_tags(Some(vec![
                            tag("Name", entry["host"].as_str().unwrap()),
                            tag("app", name),
                            tag("clawdinator:instance", id),
                            tag(
                                "clawdinator:bootstrap",
                                entry["bootstrapPrefix"].as_str().unwrap(),
                            ),
                        ]))
                        .build(),
                )
                .send()
                .await
                .unwrap();
            before.push((
                id.to_owned(),
                out.instances()[0].instance_id().unwrap().to_owned(),
            ));
        }
        let host = Arc::new(AtomicBool::new(true));
        let host_thread = Some(host_loop(name.to_owned(), behaviour, Arc::clone(&host)));
        Self {
            name: name.to_owned(),
            root,
            ec2,
            s3,
            before,
            host,
            host_thread,
        }
    }

    fn old_instance(&self, id: &str) -> &str {
        &self.before.iter().find(|(i, _)| i == id).unwrap().1
    }

    /// Runs `control-api roll ARGS` with the double as TOFU; exit code, stdout, stderr.
    fn roll(&self, args: &[&str], extra_env: &[(&str, &str)]) -> (i32, String, String) {
        let moto = std::env::var("MOTO_SERVER").expect("run under scripts/with-moto");
        let venv_bin = Path::new(&moto).parent().unwrap();
        let path = format!(
            "{}:{}",
            venv_bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let double = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/tofu-double");
        let out = Command::new(env!("CARGO_BIN_EXE_control-api"))
            .arg("roll")
            .args(args)
            .args([
                "--registry",
                self.path("nix/instances.json").to_str().unwrap(),
            ])
            .args(["--dir", self.path("infra").to_str().unwrap()])
            .args(["--report", self.path("report.json").to_str().unwrap()])
            .args(["--poll-secs", "1"])
            .env("PATH", path)
            .env("TOFU", double)
            .env("TOFU_DOUBLE_LOG", self.path("tofu.log"))
            .env("FLEET_TAG_VALUE", &self.name)
            .env("FLEET_STATE_BUCKET", &self.name)
            .env("GITHUB_STEP_SUMMARY", self.path("summary.md"))
            .env_remove("GITHUB_RUN_ID")
            .envs(extra_env.iter().copied())
            .output()
            .expect("run control-api roll");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// The report as written to --report, checked to be the one in the state bucket.
    async fn report(&self) -> RollReport {
        let file: RollReport =
            serde_json::from_str(&std::fs::read_to_string(self.path("report.json")).unwrap())
                .unwrap();
        let key = report_key(&file.request_id);
        let stored = self
            .s3
            .get_object()
            .bucket(&self.name)
            .key(&key)
            .send()
            .await
            .unwrap();
        let stored: RollReport =
            serde_json::from_slice(&stored.body.collect().await.unwrap().into_bytes()).unwrap();
        assert_eq!(stored, file, "{key} is the report");
        file
    }

    /// Every tofu call: its arguments, after checking it ran in --dir.
    fn tofu_calls(&self) -> Vec<Vec<String>> {
        let Ok(log) = std::fs::read_to_string(self.path("tofu.log")) else {
            return Vec::new();
        };
        let infra = self.path("infra").canonicalize().unwrap();
        log.lines()
            .map(|l| {
                let call: Value = serde_json::from_str(l).unwrap();
                assert_eq!(Path::new(call["cwd"].as_str().unwrap()), infra);
                serde_json::from_value(call["args"].clone()).unwrap()
            })
            .collect()
    }

    /// The `-replace` of every apply's plan, in order, with its AMI.
    fn applies(&self) -> Vec<String> {
        let calls = self.tofu_calls();
        let plans: Vec<&Vec<String>> = calls.iter().filter(|c| c[0] == "plan").collect();
        calls
            .iter()
            .filter(|c| c[0] == "apply")
            .map(|c| {
                let file = format!("-out={}", c[3]);
                let plan = plans.iter().rev().find(|p| p[6] == file).unwrap();
                format!(
                    "{} {}",
                    &plan[3]["-replace=".len()..],
                    &plan[5]["instance_amis=".len()..]
                )
            })
            .collect()
    }

    /// Each registry host's running instance and its AMI, from EC2.
    async fn running(&self) -> Vec<(String, String, String)> {
        let out = self
            .ec2
            .describe_instances()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("tag:app")
                    .values(&self.name)
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("instance-state-name")
                    .values("running")
                    .values("pending")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut hosts: Vec<_> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| {
                let id = i
                    .tags()
                    .iter()
                    .find(|t| t.key() == Some("clawdinator:instance"))
                    .unwrap();
                (
                    id.value().unwrap().to_owned(),
                    i.instance_id().unwrap().to_owned(),
                    i.image_id().unwrap().to_owned(),
                )
            })
            .collect();
        hosts.sort();
        hosts
    }

    async fn host_on(&self, id: &str) -> (String, String) {
        let all = self.running().await;
        let (_, instance, ami) = all.into_iter().find(|(h, _, _)| h == id).unwrap();
        (instance, ami)
    }
}

impl Drop for World {
    fn drop(&mut self) {
        self.host.store(false, Ordering::SeqCst);
        if let Some(t) = self.host_thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The test's hosts: every 300 ms, a heartbeat for each running instance of the fleet
/// whose behaviour says so, stored as the API's heartbeat action stores it.
fn host_loop(
    fleet: String,
    behaviour: Behaviour,
    on: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let sdk = moto_sdk().await;
            let ec2 = aws_sdk_ec2::Client::new(&sdk);
            let s3 = control_api::outbound::aws::s3_client(&sdk);
            let mut seen: std::collections::HashMap<String, Instant> = Default::default();
            while on.load(Ordering::SeqCst) {
                beat_once(&ec2, &s3, &fleet, behaviour, &mut seen).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    })
}

/// One round of the hosts: a heartbeat for each running instance that its behaviour lets speak.
async fn beat_once(
    ec2: &aws_sdk_ec2::Client,
    s3: &aws_sdk_s3::Client,
    fleet: &str,
    behaviour: Behaviour,
    seen: &mut std::collections::HashMap<String, Instant>,
) {
    let out = ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:app")
                .values(fleet)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        )
        .send()
        .await;
    for i in out
        .iter()
        .flat_map(|o| o.reservations())
        .flat_map(|r| r.instances())
    {
        let instance = i.instance_id().unwrap();
        let ami = i.image_id().unwrap();
        let Some(id) = i
            .tags()
            .iter()
            .find(|t| t.key() == Some("clawdinator:instance"))
        else {
            continue;
        };
        let id = id.value().unwrap();
        let first = *seen.entry(instance.to_owned()).or_insert_with(Instant::now);
        if let Some(service) = behaviour(id, ami, first.elapsed()) {
            let beat = heartbeat(id, instance, ami, service);
            let _ = s3
                .put_object()
                .bucket(fleet)
                .key(heartbeat_key(id))
                .body(serde_json::to_vec(&beat).unwrap().into())
                .send()
                .await;
        }
    }
}

fn heartbeat(id: &str, instance: &str, ami: &str, service: &str) -> HeartbeatRecord {
    let body = json!({"ec2_instance_id": instance, "ami": ami, "revision": "0123456789abcdef0123456789abcdef01234567",
                      "service": service, "booted_at": "2026-12-01T10:00:00Z", "agent": "0.1.0"});
    HeartbeatRecord {
        id: id.to_owned(),
        report: HeartbeatReport::from_body(body.as_object().unwrap()).unwrap(),
        received_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        principal: id.to_owned(),
    }
}

fn outcomes(r: &RollReport) -> Vec<HostOutcome> {
    r.hosts.iter().map(|h| h.outcome).collect()
}

/// `--target T --ami NEW --request-id R` with a health timeout and a soak, in seconds.
fn args<'a>(
    target: &'a str,
    request_id: &'a str,
    timeout: &'a str,
    soak: &'a str,
    more: &[&'a str],
) -> Vec<&'a str> {
    let mut a = vec!["--target", target, "--ami", NEW, "--request-id", request_id];
    a.extend(["--health-timeout-secs", timeout, "--soak-secs", soak]);
    a.extend(more);
    a
}

fn replace(id: &str) -> String {
    format!("aws_instance.host[\"{id}\"]")
}

/// Exactly the deploy's commands, in --dir, for the canary of a roll of all.
fn assert_deploy_commands(w: &World) {
    let calls = w.tofu_calls();
    let amis = format!(
        "instance_amis={}",
        json!({"clawdinator-1": NEW, "clawdinator-2": NEW, "clawdinator-babelfish": NEW})
    );
    let first_plan = [
        "plan",
        "-input=false",
        "-lock-timeout=10m",
        &format!("-replace={}", replace("clawdinator-1")),
        "-var",
        &amis,
        "-out=clawdinator-1.tfplan",
    ];
    assert_eq!(calls.iter().find(|c| c[0] == "plan").unwrap(), &first_plan);
    assert!(calls.contains(&vec![
        "show".into(),
        "-json".into(),
        "clawdinator-1.tfplan".into()
    ]));
    assert!(calls.contains(&vec![
        "apply".into(),
        "-input=false".into(),
        "-lock-timeout=10m".into(),
        "clawdinator-1.tfplan".into()
    ]));
    assert!(calls.contains(&vec!["output".into(), "-json".into(), "instances".into()]));
}

#[tokio::test(flavor = "multi_thread")]
async fn three_hosts_roll_green_canary_first() {
    let w = World::start("roll-green", healthy).await;
    // The test host reports this revision: a pinned roll accepts it.
    let rev = "0123456789abcdef0123456789abcdef01234567";
    let (code, out, err) = w.roll(
        &args("all", "roll-green-1", "20", "2", &["--revision", rev]),
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(report.revision.as_deref(), Some(rev));
    assert_eq!(
        (report.outcome, report.mode),
        (RollOutcome::Succeeded, RollMode::Apply)
    );
    assert_eq!(outcomes(&report), [HostOutcome::Ready; 3]);
    let running = w.running().await;
    for (line, (id, instance, ami)) in report.hosts.iter().zip(&running) {
        assert_eq!(
            (&line.id, line.new_ec2_instance_id.as_ref(), ami.as_str()),
            (id, Some(instance), NEW)
        );
        assert_eq!(
            line.old_ec2_instance_id.as_deref(),
            Some(w.old_instance(id))
        );
        assert_eq!(line.from_ami.as_deref(), Some(OLD));
    }
    assert_deploy_commands(&w);
    let order: Vec<String> = w
        .applies()
        .iter()
        .map(|a| a.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(order, IDS.map(replace));
    assert_eq!(
        std::fs::read_dir(w.path("infra")).unwrap().count(),
        0,
        "plan files removed"
    );
    let summary = std::fs::read_to_string(w.path("summary.md")).unwrap();
    assert!(
        summary.contains("deploy of all on ami-0bbbbbbbbbbbbbbbb succeeded"),
        "{summary}"
    );
    assert!(
        summary.contains("| `clawdinator-babelfish` | ready |"),
        "{summary}"
    );
    assert!(
        out.contains("clawdinator-2 ready on ami-0bbbbbbbbbbbbbbbb in "),
        "{out}"
    );
}

/// clawdinator-2 fails on the new image; everything else is healthy.
fn two_sick_on_new(id: &str, ami: &str, _: Duration) -> Option<&'static str> {
    Some(if id == "clawdinator-2" && ami == NEW {
        "failed"
    } else {
        "active"
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sick_host_stops_the_roll_and_is_put_back() {
    let w = World::start("roll-sick-two", two_sick_on_new).await;
    let (code, out, err) = w.roll(&args("all", "roll-sick-two-1", "6", "1", &[]), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(report.outcome, RollOutcome::Stopped);
    assert_eq!(
        outcomes(&report),
        [
            HostOutcome::Ready,
            HostOutcome::RolledBack,
            HostOutcome::Skipped
        ]
    );
    let two = &report.hosts[1];
    assert_eq!(two.reason.as_deref(), Some("service failed after 6s"));
    // Back on its old image, on an instance the put-back started, and it is ready.
    let (instance, ami) = w.host_on("clawdinator-2").await;
    assert_eq!(ami, OLD);
    assert_eq!(
        two.put_back_ec2_instance_id.as_deref(),
        Some(instance.as_str())
    );
    assert_ne!(Some(instance.as_str()), two.new_ec2_instance_id.as_deref());
    assert_ne!(instance, w.old_instance("clawdinator-2"));
    assert_eq!(
        w.host_on("clawdinator-1").await.1,
        NEW,
        "done hosts stay on the new image"
    );
    assert_eq!(
        w.host_on("clawdinator-babelfish").await,
        (
            w.old_instance("clawdinator-babelfish").to_owned(),
            OLD.to_owned()
        )
    );
    for sentence in [
        "clawdinator-2 not ready (service failed after 6s); put back on ami-0aaaaaaaaaaaaaaaa",
        "clawdinator-babelfish not touched (the roll stopped at clawdinator-2)",
    ] {
        assert!(out.contains(sentence), "{out}");
    }
    assert!(
        err.contains("deploy of all on ami-0bbbbbbbbbbbbbbbb stopped"),
        "{err}"
    );
    let summary = std::fs::read_to_string(w.path("summary.md")).unwrap();
    let row = summary
        .lines()
        .find(|l| l.starts_with("| `clawdinator-2` | rolled_back |"));
    assert!(
        row.unwrap().ends_with("| service failed after 6s |"),
        "{summary}"
    );
    let amis = json!({"clawdinator-1": NEW, "clawdinator-2": OLD, "clawdinator-babelfish": NEW});
    assert_eq!(
        w.applies().last().unwrap(),
        &format!("{} {amis}", replace("clawdinator-2"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sick_canary_touches_nothing_else() {
    fn silent_on_new(_: &str, ami: &str, _: Duration) -> Option<&'static str> {
        (ami == OLD).then_some("active")
    }
    let w = World::start("roll-sick-canary", silent_on_new).await;
    let (code, out, err) = w.roll(
        &args(
            "all",
            "roll-sick-canary-1",
            "5",
            "1",
            &["--canary", "clawdinator-2"],
        ),
        &[],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(
        report
            .hosts
            .iter()
            .map(|h| h.id.as_str())
            .collect::<Vec<_>>(),
        ["clawdinator-2", "clawdinator-1", "clawdinator-babelfish"]
    );
    assert_eq!(
        outcomes(&report),
        [
            HostOutcome::RolledBack,
            HostOutcome::Skipped,
            HostOutcome::Skipped
        ]
    );
    let reason = report.hosts[0].reason.as_deref().unwrap();
    assert!(
        reason.starts_with("no heartbeat from the new instance i-"),
        "{reason}"
    );
    for id in ["clawdinator-1", "clawdinator-babelfish"] {
        assert_eq!(
            w.host_on(id).await,
            (w.old_instance(id).to_owned(), OLD.to_owned()),
            "{id}"
        );
    }
    assert_eq!(w.applies().len(), 2, "the canary and its put-back only");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_canary_that_sickens_during_the_soak_stops_the_roll() {
    fn sickens(_: &str, ami: &str, seen: Duration) -> Option<&'static str> {
        Some(if ami == NEW && seen > Duration::from_secs(2) {
            "failed"
        } else {
            "active"
        })
    }
    let w = World::start("roll-soak", sickens).await;
    let (code, out, err) = w.roll(&args("all", "roll-soak-1", "10", "30", &[]), &[]);
    assert_eq!(code, 1, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(
        outcomes(&report),
        [
            HostOutcome::RolledBack,
            HostOutcome::Skipped,
            HostOutcome::Skipped
        ]
    );
    assert_eq!(
        report.hosts[0].reason.as_deref(),
        Some("unhealthy during the soak: service failed")
    );
    assert_eq!(w.host_on("clawdinator-1").await.1, OLD);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_auto_rollback_the_sick_host_is_left() {
    let w = World::start("roll-no-rollback", two_sick_on_new).await;
    let (code, out, err) = w.roll(
        &args(
            "clawdinator-2",
            "roll-no-rollback-1",
            "5",
            "1",
            &["--no-auto-rollback"],
        ),
        &[],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(outcomes(&report), [HostOutcome::Failed]);
    assert_eq!(w.host_on("clawdinator-2").await.1, NEW);
    assert_eq!(w.applies().len(), 1);
    assert!(
        out.contains(
            "clawdinator-2 not ready (service failed after 5s); left on ami-0bbbbbbbbbbbbbbbb"
        ),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_put_back_exits_3_naming_the_host() {
    fn two_always_sick(id: &str, _: &str, _: Duration) -> Option<&'static str> {
        Some(if id == "clawdinator-2" {
            "failed"
        } else {
            "active"
        })
    }
    let w = World::start("roll-put-back-fails", two_always_sick).await;
    let (code, out, err) = w.roll(
        &args("clawdinator-2", "roll-put-back-fails-1", "4", "1", &[]),
        &[],
    );
    assert_eq!(code, 3, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(
        (report.outcome, outcomes(&report)),
        (RollOutcome::NeedsHuman, vec![HostOutcome::RollbackFailed])
    );
    assert!(
        err.contains(
            "clawdinator-2 not ready, and the put-back on ami-0aaaaaaaaaaaaaaaa failed too"
        ),
        "{err}"
    );
    assert!(err.contains("needs a human"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_deleting_another_host_stops_before_apply() {
    let w = World::start("roll-guard", healthy).await;
    let other = replace("clawdinator-1");
    let (code, out, err) = w.roll(
        &args("clawdinator-2", "roll-guard-1", "5", "1", &[]),
        &[("TOFU_DOUBLE_ALSO_DELETE", &other)],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(
        (report.outcome, outcomes(&report)),
        (RollOutcome::Stopped, vec![HostOutcome::Skipped])
    );
    let reason = report.hosts[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("stopped before apply") && reason.contains(&other),
        "{reason}"
    );
    assert!(w.applies().is_empty());
    for id in IDS {
        assert_eq!(
            w.host_on(id).await,
            (w.old_instance(id).to_owned(), OLD.to_owned()),
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_target_is_a_usage_error_naming_it() {
    let w = World::start("roll-unknown", healthy).await;
    let (code, out, err) = w.roll(&args("clawdinator-9", "roll-unknown-1", "5", "1", &[]), &[]);
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.contains("unknown target \"clawdinator-9\""), "{err}");
    assert!(w.tofu_calls().is_empty(), "nothing ran");
    assert!(!w.path("report.json").exists());
    let listed =
        w.s3.list_objects_v2()
            .bucket(&w.name)
            .prefix("reports/")
            .send()
            .await
            .unwrap();
    assert!(listed.contents().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_mode_reports_every_plan_and_replaces_nothing() {
    let w = World::start("roll-plan", healthy).await;
    let (code, out, err) = w.roll(
        &args("all", "roll-plan-1", "5", "1", &["--mode", "plan"]),
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let report = w.report().await;
    assert_eq!(
        (report.outcome, report.mode),
        (RollOutcome::Succeeded, RollMode::Plan)
    );
    assert_eq!(outcomes(&report), [HostOutcome::Planned; 3]);
    for line in &report.hosts {
        let plan = line.plan.as_ref().unwrap();
        assert_eq!(plan.replaced, [replace(&line.id)]);
        assert!(plan.created.is_empty() && plan.destroyed.is_empty() && plan.changed.is_empty());
        assert_eq!(
            (line.from_ami.as_deref(), line.to_ami.as_deref()),
            (Some(OLD), Some(NEW))
        );
    }
    assert!(w.tofu_calls().iter().all(|c| c[0] != "apply"));
    for id in IDS {
        assert_eq!(
            w.host_on(id).await,
            (w.old_instance(id).to_owned(), OLD.to_owned()),
            "{id}"
        );
    }
    assert!(
        out.contains("plan of all on ami-0bbbbbbbbbbbbbbbb succeeded"),
        "{out}"
    );
    assert!(
        out.contains("clawdinator-2 would go to ami-0bbbbbbbbbbbbbbbb"),
        "{out}"
    );
    assert_eq!(
        std::fs::read_dir(w.path("infra")).unwrap().count(),
        0,
        "plan files removed"
    );
}
