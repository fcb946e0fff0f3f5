//! The roll on fakes: a fake cloud that is at once OpenTofu (instances replaced in memory),
//! the hosts' heartbeats (healthy or not per scenario) and a virtual clock, so every path of
//! the loop runs in microseconds. Test doubles of the roll's ports, nothing more.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;

use super::gate::{judge, Expect, GateTiming, NotReady};
use super::ports::{Clock, HeartbeatSource, Tofu, TofuError, TofuInstance};
use super::{roll, RollPorts, RollSpec};
use crate::domain::heartbeat::{HeartbeatRecord, HeartbeatReport};
use crate::domain::ports::AwsError;
use crate::domain::report::{HostOutcome, RollMode, RollOutcome, RollReport};

const OLD: &str = "ami-0aaaaaaaaaaaaaaaa";
const NEW: &str = "ami-0bbbbbbbbbbbbbbbb";
const IDS: [&str; 3] = ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"];
const REV: &str = "0123456789abcdef0123456789abcdef01234567";

/// What a host says, by registry id, image and seconds since its instance started:
/// `None` is silence (no heartbeat at all), else the service state.
type Health = Box<dyn Fn(&str, &str, u64) -> Option<&'static str> + Send + Sync>;

struct Cloud {
    now: DateTime<Utc>,
    instances: BTreeMap<String, (String, String, DateTime<Utc>)>,
    plans: BTreeMap<String, (String, BTreeMap<String, String>)>,
    beats: BTreeMap<String, HeartbeatRecord>,
    applies: Vec<(String, String)>,
    discarded: Vec<String>,
    next: u64,
}

/// Test double of OpenTofu, the heartbeat store and the clock, all at once.
struct FakeCloud {
    state: Mutex<Cloud>,
    health: Health,
    /// Another address `tofu show` says each plan deletes.
    also_delete: Option<String>,
    revision: String,
}

impl FakeCloud {
    fn new(health: Health) -> Self {
        let start = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .to_utc();
        let mut cloud = Cloud {
            now: start,
            instances: BTreeMap::new(),
            plans: BTreeMap::new(),
            beats: BTreeMap::new(),
            applies: Vec::new(),
            discarded: Vec::new(),
            next: 1,
        };
        for id in IDS {
            let instance = format!("i-{:017x}", cloud.next);
            cloud.next += 1;
            cloud
                .instances
                .insert(id.to_owned(), (instance.clone(), OLD.to_owned(), start));
            let beat = record(id, &instance, OLD, "active", REV, start);
            cloud.beats.insert(id.to_owned(), beat);
        }
        Self {
            state: Mutex::new(cloud),
            health,
            also_delete: None,
            revision: REV.to_owned(),
        }
    }

    fn host(&self, id: &str) -> (String, String) {
        let s = self.state.lock().unwrap();
        let (i, ami, _) = &s.instances[id];
        (i.clone(), ami.clone())
    }
}

fn record(
    id: &str,
    instance: &str,
    ami: &str,
    service: &str,
    rev: &str,
    at: DateTime<Utc>,
) -> HeartbeatRecord {
    let body = json!({"ec2_instance_id": instance, "ami": ami, "revision": rev, "service": service,
                      "booted_at": "2026-12-01T09:00:00Z", "agent": "0.1.0"});
    HeartbeatRecord {
        id: id.to_owned(),
        report: HeartbeatReport::from_body(body.as_object().unwrap()).unwrap(),
        received_at: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        principal: format!("host:{id}"),
    }
}

impl Tofu for FakeCloud {
    async fn plan(
        &self,
        replace: &str,
        amis: &BTreeMap<String, String>,
        file: &str,
    ) -> Result<(), TofuError> {
        let mut s = self.state.lock().unwrap();
        s.plans
            .insert(file.to_owned(), (replace.to_owned(), amis.clone()));
        Ok(())
    }
    async fn show(&self, file: &str) -> Result<String, TofuError> {
        let s = self.state.lock().unwrap();
        let (replace, amis) = &s.plans[file];
        let mut changes =
            vec![json!({"address": replace, "change": {"actions": ["delete", "create"]}})];
        for id in amis.keys().filter(|id| !s.instances.contains_key(*id)) {
            let address = super::guard::host_address(id);
            changes.push(json!({"address": address, "change": {"actions": ["create"]}}));
        }
        if let Some(other) = &self.also_delete {
            changes.push(json!({"address": other, "change": {"actions": ["delete"]}}));
        }
        Ok(json!({"resource_changes": changes}).to_string())
    }
    async fn apply(&self, file: &str) -> Result<(), TofuError> {
        let mut s = self.state.lock().unwrap();
        let (replace, amis) = s
            .plans
            .remove(file)
            .ok_or(TofuError("no such plan".into()))?;
        let id = super::guard::host_of_address(&replace).unwrap().to_owned();
        let instance = format!("i-{:017x}", s.next);
        s.next += 1;
        let now = s.now;
        s.instances
            .insert(id.clone(), (instance, amis[&id].clone(), now));
        s.applies.push((id.clone(), amis[&id].clone()));
        // New registry entries are created by whichever plan comes first.
        for (new, ami) in amis
            .iter()
            .filter(|(id, _)| !s.instances.contains_key(*id))
            .collect::<Vec<_>>()
        {
            let instance = format!("i-{:017x}", s.next);
            s.next += 1;
            s.instances
                .insert(new.clone(), (instance, ami.clone(), now));
        }
        Ok(())
    }
    async fn instances(&self) -> Result<BTreeMap<String, TofuInstance>, TofuError> {
        let s = self.state.lock().unwrap();
        Ok(s.instances
            .iter()
            .map(|(id, (i, ami, _))| {
                (
                    id.clone(),
                    TofuInstance {
                        instance_id: i.clone(),
                        ami: Some(ami.clone()),
                    },
                )
            })
            .collect())
    }
    fn discard(&self, file: &str) {
        self.state.lock().unwrap().discarded.push(file.to_owned());
    }
}

impl HeartbeatSource for FakeCloud {
    async fn latest(&self, id: &str) -> Result<Option<HeartbeatRecord>, AwsError> {
        let mut s = self.state.lock().unwrap();
        let (instance, ami, launched) = s.instances[id].clone();
        let age = (s.now - launched).num_seconds() as u64;
        if let Some(service) = (self.health)(id, &ami, age) {
            let beat = record(id, &instance, &ami, service, &self.revision, s.now);
            s.beats.insert(id.to_owned(), beat);
        }
        Ok(s.beats.get(id).cloned())
    }
}

impl Clock for FakeCloud {
    fn now(&self) -> DateTime<Utc> {
        self.state.lock().unwrap().now
    }
    async fn sleep(&self, d: Duration) {
        self.state.lock().unwrap().now += TimeDelta::from_std(d).unwrap();
    }
}

fn spec(target: &str, mode: RollMode) -> RollSpec {
    let hosts: Vec<String> = if target == "all" {
        IDS.map(str::to_owned).to_vec()
    } else {
        vec![target.to_owned()]
    };
    RollSpec {
        request_id: "r-1".into(),
        target: target.into(),
        hosts,
        registry_ids: IDS.map(str::to_owned).to_vec(),
        ami: NEW.into(),
        revision: None,
        timing: GateTiming {
            timeout: Duration::from_secs(900),
            soak: Duration::from_secs(120),
            poll: Duration::from_secs(10),
            stale: Duration::from_secs(180),
        },
        auto_rollback: true,
        mode,
    }
}

async fn run(cloud: &FakeCloud, spec: &RollSpec) -> RollReport {
    roll(
        &RollPorts {
            tofu: cloud,
            heartbeats: cloud,
            clock: cloud,
        },
        spec,
    )
    .await
}

fn outcomes(r: &RollReport) -> Vec<HostOutcome> {
    r.hosts.iter().map(|h| h.outcome).collect()
}

/// Healthy after 30 s on any image.
fn healthy() -> Health {
    Box::new(|_, _, age| (age >= 30).then_some("active"))
}

#[tokio::test]
async fn every_host_rolls_canary_first_when_healthy() {
    let cloud = FakeCloud::new(healthy());
    let report = run(&cloud, &spec("all", RollMode::Apply)).await;
    assert_eq!(report.outcome, RollOutcome::Succeeded, "{report:#?}");
    assert_eq!(outcomes(&report), [HostOutcome::Ready; 3]);
    let s = cloud.state.lock().unwrap();
    assert_eq!(
        s.applies
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>(),
        IDS
    );
    assert!(s.applies.iter().all(|(_, ami)| ami == NEW));
    let first = &report.hosts[0];
    assert_eq!(first.from_ami.as_deref(), Some(OLD));
    assert_eq!(first.ready_after_secs, Some(30));
    assert_ne!(first.old_ec2_instance_id, first.new_ec2_instance_id);
    assert_eq!(
        first.plan.as_ref().unwrap().replaced,
        ["aws_instance.host[\"clawdinator-1\"]"]
    );
    assert_eq!(
        s.discarded,
        [
            "clawdinator-1.tfplan",
            "clawdinator-2.tfplan",
            "clawdinator-babelfish.tfplan"
        ]
    );
}

#[tokio::test]
async fn a_host_an_earlier_plan_created_is_gated_not_replaced_again() {
    let cloud = FakeCloud::new(healthy());
    cloud
        .state
        .lock()
        .unwrap()
        .instances
        .remove("clawdinator-babelfish");
    let report = run(&cloud, &spec("all", RollMode::Apply)).await;
    assert_eq!(report.outcome, RollOutcome::Succeeded, "{report:#?}");
    let applies: Vec<String> = cloud
        .state
        .lock()
        .unwrap()
        .applies
        .iter()
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(applies, ["clawdinator-1", "clawdinator-2"]);
    let created = &report.hosts[2];
    assert_eq!(
        (created.outcome, created.from_ami.as_deref()),
        (HostOutcome::Ready, None)
    );
    assert_eq!(
        created.new_ec2_instance_id,
        Some(cloud.host("clawdinator-babelfish").0)
    );
    assert_eq!(
        report.hosts[0].plan.as_ref().unwrap().created,
        ["aws_instance.host[\"clawdinator-babelfish\"]"]
    );
}

#[tokio::test]
async fn a_sick_host_stops_the_roll_and_is_put_back() {
    let cloud = FakeCloud::new(Box::new(|id, ami, _| {
        Some(if id == "clawdinator-2" && ami == NEW {
            "failed"
        } else {
            "active"
        })
    }));
    let report = run(&cloud, &spec("all", RollMode::Apply)).await;
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
    assert_eq!(two.reason.as_deref(), Some("service failed after 15m00s"));
    assert_eq!(cloud.host("clawdinator-2").1, OLD);
    assert_eq!(
        two.put_back_ec2_instance_id.as_deref(),
        Some(cloud.host("clawdinator-2").0.as_str())
    );
    assert_eq!(
        cloud.host("clawdinator-1").1,
        NEW,
        "done hosts stay on the new image"
    );
    assert_eq!(
        cloud.host("clawdinator-babelfish"),
        ("i-00000000000000003".into(), OLD.into())
    );
    assert_eq!(
        report.hosts[2].reason.as_deref(),
        Some("the roll stopped at clawdinator-2")
    );
}

#[tokio::test]
async fn a_sick_canary_touches_nothing_else() {
    let cloud = FakeCloud::new(Box::new(|_, ami, _| (ami == OLD).then_some("active")));
    let report = run(&cloud, &spec("all", RollMode::Apply)).await;
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
        reason.starts_with("no heartbeat from the new instance"),
        "{reason}"
    );
    let s = cloud.state.lock().unwrap();
    assert_eq!(
        s.applies,
        [
            ("clawdinator-1".into(), NEW.into()),
            ("clawdinator-1".into(), OLD.into())
        ]
    );
}

#[tokio::test]
async fn a_canary_that_sickens_during_the_soak_stops_the_roll() {
    let cloud = FakeCloud::new(Box::new(|_, ami, age| {
        Some(if ami == NEW && age >= 60 {
            "failed"
        } else {
            "active"
        })
    }));
    let report = run(&cloud, &spec("all", RollMode::Apply)).await;
    assert_eq!(report.outcome, RollOutcome::Stopped);
    assert_eq!(report.hosts[0].outcome, HostOutcome::RolledBack);
    assert_eq!(
        report.hosts[0].reason.as_deref(),
        Some("unhealthy during the soak: service failed")
    );
    assert_eq!(report.hosts[1].outcome, HostOutcome::Skipped);
}

#[tokio::test]
async fn without_auto_rollback_the_sick_host_is_left() {
    let cloud = FakeCloud::new(Box::new(|_, ami, _| {
        Some(if ami == NEW { "failed" } else { "active" })
    }));
    let mut spec = spec("clawdinator-2", RollMode::Apply);
    spec.auto_rollback = false;
    let report = run(&cloud, &spec).await;
    assert_eq!(
        (report.outcome, outcomes(&report)),
        (RollOutcome::Stopped, vec![HostOutcome::Failed])
    );
    assert_eq!(cloud.host("clawdinator-2").1, NEW);
}

#[tokio::test]
async fn a_failed_put_back_needs_a_human() {
    // Heartbeats are asked for only after a replacement: both of clawdinator-2's fail.
    let cloud = FakeCloud::new(Box::new(|id, _, _| {
        Some(if id == "clawdinator-2" {
            "failed"
        } else {
            "active"
        })
    }));
    let report = run(&cloud, &spec("clawdinator-2", RollMode::Apply)).await;
    assert_eq!(report.outcome, RollOutcome::NeedsHuman);
    let two = &report.hosts[0];
    assert_eq!(two.outcome, HostOutcome::RollbackFailed);
    let reason = two.reason.as_deref().unwrap();
    assert!(reason.contains("put-back: service failed"), "{reason}");
}

#[tokio::test]
async fn the_guard_stops_before_any_apply() {
    let mut cloud = FakeCloud::new(healthy());
    cloud.also_delete = Some("aws_instance.host[\"clawdinator-1\"]".into());
    let report = run(&cloud, &spec("clawdinator-2", RollMode::Apply)).await;
    assert_eq!(
        (report.outcome, outcomes(&report)),
        (RollOutcome::Stopped, vec![HostOutcome::Skipped])
    );
    let reason = report.hosts[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("stopped before apply") && reason.contains("clawdinator-1"),
        "{reason}"
    );
    assert!(cloud.state.lock().unwrap().applies.is_empty());
    assert_eq!(
        cloud.state.lock().unwrap().discarded,
        ["clawdinator-2.tfplan"]
    );
}

#[tokio::test]
async fn a_pinned_revision_must_be_the_one_running() {
    let mut cloud = FakeCloud::new(healthy());
    let mut spec = spec("clawdinator-2", RollMode::Apply);
    spec.timing.soak = Duration::ZERO;
    spec.revision = Some(REV.into());
    assert_eq!(run(&cloud, &spec).await.outcome, RollOutcome::Succeeded);
    cloud.revision = "fedcba9876543210fedcba9876543210fedcba98".into();
    let report = run(&cloud, &spec).await;
    assert_eq!(
        report.hosts[0].outcome,
        HostOutcome::RolledBack,
        "the put-back ignores the pin"
    );
    assert_eq!(
        report.hosts[0].reason.as_deref(),
        Some("running fedcba9, not 0123456 after 15m00s")
    );
}

#[tokio::test]
async fn plan_mode_plans_every_host_and_applies_nothing() {
    let cloud = FakeCloud::new(healthy());
    let report = run(&cloud, &spec("all", RollMode::Plan)).await;
    assert_eq!(report.outcome, RollOutcome::Succeeded);
    assert_eq!(outcomes(&report), [HostOutcome::Planned; 3]);
    assert_eq!(
        report.hosts[2].plan.as_ref().unwrap().replaced,
        ["aws_instance.host[\"clawdinator-babelfish\"]"]
    );
    assert_eq!(report.hosts[2].to_ami.as_deref(), Some(NEW));
    let s = cloud.state.lock().unwrap();
    assert!(s.applies.is_empty());
    assert_eq!(s.discarded.len(), 3);
}

#[tokio::test]
async fn plan_mode_stops_at_the_guard() {
    let mut cloud = FakeCloud::new(healthy());
    cloud.also_delete = Some("aws_s3_bucket.fleet".into());
    let report = run(&cloud, &spec("all", RollMode::Plan)).await;
    assert_eq!(report.outcome, RollOutcome::Stopped);
    assert_eq!(
        report.hosts[0].plan.as_ref().unwrap().destroyed,
        ["aws_s3_bucket.fleet"]
    );
    assert_eq!(
        report.hosts[1].reason.as_deref(),
        Some("the roll stopped at clawdinator-1")
    );
}

#[test]
fn only_a_heartbeat_of_the_new_instance_after_the_apply_counts() {
    let at = DateTime::parse_from_rfc3339("2026-12-01T10:00:00.700Z")
        .unwrap()
        .to_utc();
    let expect = Expect {
        id: "c".into(),
        instance: "i-00000000000000009".into(),
        since: at,
        revision: None,
    };
    let stale = Duration::from_secs(180);
    let beat = |i: &str, s: &str, t: &str| {
        record(
            "c",
            i,
            NEW,
            s,
            "",
            DateTime::parse_from_rfc3339(t).unwrap().to_utc(),
        )
    };
    let now = at + TimeDelta::seconds(5);
    let old = beat("i-00000000000000001", "active", "2026-12-01T10:00:03Z");
    assert!(matches!(
        judge(Some(&old), &expect, now, stale),
        Err(NotReady::NotFromNewInstance(_))
    ));
    let early = beat("i-00000000000000009", "active", "2026-12-01T09:59:59Z");
    assert!(matches!(
        judge(Some(&early), &expect, now, stale),
        Err(NotReady::NotFromNewInstance(_))
    ));
    // The same second as the apply's start: the record keeps whole seconds.
    let same = beat("i-00000000000000009", "active", "2026-12-01T10:00:00Z");
    assert_eq!(judge(Some(&same), &expect, now, stale), Ok(()));
    let down = beat("i-00000000000000009", "activating", "2026-12-01T10:00:02Z");
    assert_eq!(
        judge(Some(&down), &expect, now, stale),
        Err(NotReady::Service("activating".into()))
    );
    assert_eq!(judge(None, &expect, now, stale), Err(NotReady::NoHeartbeat));
    let later = now + TimeDelta::seconds(600);
    assert!(matches!(
        judge(Some(&same), &expect, later, stale),
        Err(NotReady::Stale(_))
    ));
}

#[test]
fn the_step_summary_is_one_table_row_per_host() {
    let mut report = crate::domain::report::RollReport {
        request_id: "r-1".into(),
        target: "all".into(),
        ami: NEW.into(),
        mode: RollMode::Apply,
        revision: Some(REV.into()),
        outcome: RollOutcome::Stopped,
        hosts: vec![spec("all", RollMode::Apply).untouched("clawdinator-2")],
        run_url: None,
    };
    report.hosts[0].reason = Some("a | b\nc".into());
    let md = super::summary::markdown(&report);
    assert!(
        md.starts_with("## fleet-deploy: deploy of all on ami-0bbbbbbbbbbbbbbbb stopped\n"),
        "{md}"
    );
    assert!(md.contains(&format!("revision `{REV}`")), "{md}");
    let row = md
        .lines()
        .find(|l| l.starts_with("| `clawdinator-2`"))
        .unwrap();
    assert!(
        row.starts_with("| `clawdinator-2` | skipped |  | `ami-0bbbbbbbbbbbbbbbb` |"),
        "{row}"
    );
    assert!(row.ends_with("| a \\| b c |"), "{row}");
}
