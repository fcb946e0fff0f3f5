//! What each host was last deployed to: the revision of the newest applied roll that made
//! it ready, kept for the whole fleet in one state-store object (`deployed/revisions.json`)
//! that every landed report updates, and the `revision_drift` status flags against it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::fleet::{Flag, FleetStatus};
use super::ports::{AwsError, StateStore, Written};
use super::readiness::Readiness;
use super::report::{HostOutcome, RollReport};

/// The one object: a status reads it with one GET, a report rewrites it by its etag.
pub const DEPLOYED_KEY: &str = "deployed/revisions.json";

/// Conditional writes tried before a contended record gives up (the event then fails and
/// is delivered again).
const ROUNDS: usize = 4;

/// The shortest host revision that counts as naming a commit.
const MIN_HEX: usize = 7;

/// One host's deployed revision, and which roll made it so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployedRevision {
    /// The full commit SHA the roll deployed; `null` when that roll left the host on
    /// something unknown (put back, failed, unpinned). Kept rather than dropped, so a
    /// late redelivery of an older report cannot bring back a revision it no longer runs.
    pub revision: Option<String>,
    /// The roll's request id: its report is `reports/<request_id>.json`.
    pub request_id: String,
    /// When its report was recorded, RFC 3339.
    pub at: String,
}

/// `deployed/revisions.json`: registry id → its deployed revision. A host without an
/// entry, or with a `null` revision, runs an unknown one and is never flagged.
pub type DeployedRevisions = BTreeMap<String, DeployedRevision>;

/// Whether `newer` may overwrite an entry written for `older`. Request ids the API makes
/// are UUIDv7, ordered by time; anything else (a manual `run-<id>-<attempt>`) cannot be
/// ordered, so the report that arrives last wins.
fn supersedes(newer: &str, older: &str) -> bool {
    match (uuid::Uuid::parse_str(newer), uuid::Uuid::parse_str(older)) {
        (Ok(n), Ok(o)) if n.get_version_num() == 7 && o.get_version_num() == 7 => n >= o,
        _ => true,
    }
}

/// Folds an applied roll's report into the record: a host it made ready now runs the
/// report's revision; a host it touched but did not leave ready (put back, failed, or
/// deployed unpinned) runs something unknown: its revision becomes `null` (never a
/// false drift).
/// Hosts not touched, plans, and a report older than an entry keep what is there.
/// Returns whether anything changed.
pub fn fold_report(revisions: &mut DeployedRevisions, report: &RollReport, at: &str) -> bool {
    if !report.mode.is_apply() {
        return false;
    }
    let mut changed = false;
    for host in &report.hosts {
        let known = match host.outcome {
            HostOutcome::Ready => report.revision.as_deref(),
            HostOutcome::RolledBack | HostOutcome::Failed | HostOutcome::RollbackFailed => None,
            HostOutcome::Skipped | HostOutcome::Planned => continue,
        };
        if revisions
            .get(&host.id)
            .is_some_and(|e| !supersedes(&report.request_id, &e.request_id))
        {
            continue;
        }
        let revision = known.map(str::to_ascii_lowercase);
        // The same report delivered again changes nothing, not even the time.
        let same = revisions
            .get(&host.id)
            .is_some_and(|e| e.revision == revision && e.request_id == report.request_id);
        if !same {
            let entry = DeployedRevision {
                revision,
                request_id: report.request_id.clone(),
                at: at.to_owned(),
            };
            revisions.insert(host.id.clone(), entry);
            changed = true;
        }
    }
    changed
}

/// Records a landed report in `deployed/revisions.json`: read, fold, write back only if
/// the object is still what was read (its etag, or absent); another writer in between
/// means reading again. An unreadable object is started afresh (logged). Returns whether
/// the record changed.
pub async fn record<S: StateStore>(
    store: &S,
    report: &RollReport,
    at: &str,
) -> Result<bool, AwsError> {
    for _ in 0..ROUNDS {
        let stored = store.read(DEPLOYED_KEY).await?;
        let mut revisions = match &stored {
            Some(s) => serde_json::from_slice(&s.body).unwrap_or_else(|e| {
                tracing::warn!(key = DEPLOYED_KEY, error = %e, "deployed revisions unreadable: started afresh");
                DeployedRevisions::new()
            }),
            None => DeployedRevisions::new(),
        };
        if !fold_report(&mut revisions, report, at) {
            return Ok(false);
        }
        let body = serde_json::to_vec(&revisions).expect("revisions serialize");
        let written = match &stored {
            Some(s) => store.replace(DEPLOYED_KEY, body, &s.etag).await?,
            None => store.create(DEPLOYED_KEY, body).await?,
        };
        if let Written::Done { .. } = written {
            return Ok(true);
        }
    }
    Err(AwsError(format!(
        "{DEPLOYED_KEY} kept changing; the report is recorded when delivered again"
    )))
}

/// Whether a host reporting `host` runs the deployed commit `deployed`: its hex is the
/// SHA or a prefix of it of at least 7 digits. A `-dirty` tree never is that commit.
pub fn runs_deployed(host: &str, deployed: &str) -> bool {
    !host.ends_with("-dirty")
        && host.len() >= MIN_HEX
        && deployed.to_ascii_lowercase().starts_with(host)
}

/// A revision as people read it: 7 digits, and `-dirty` kept.
fn short(revision: &str) -> String {
    let (hex, dirty) = match revision.strip_suffix("-dirty") {
        Some(hex) => (hex, "-dirty"),
        None => (revision, ""),
    };
    format!("{}{dirty}", &hex[..hex.len().min(MIN_HEX)])
}

/// Flags `revision_drift` on every host whose fresh heartbeat from its current instance
/// (ready or unhealthy) names a revision other than its deployed one, says so in its
/// `why`, and counts the flag in the summary. Without a record (`None`: no state bucket,
/// or it could not be read) or an entry for the host, nothing is flagged.
pub fn flag_drift(fleet: &mut FleetStatus, deployed: Option<&DeployedRevisions>) {
    let mut drifted = 0;
    for s in &mut fleet.instances {
        let fresh = matches!(s.readiness, Readiness::Ready | Readiness::Unhealthy);
        let entry = deployed
            .and_then(|d| d.get(&s.id))
            .and_then(|e| e.revision.as_deref());
        let (Some(entry), Some(runs)) = (entry, s.revision.as_deref().filter(|r| !r.is_empty()))
        else {
            continue;
        };
        if !fresh || runs_deployed(runs, entry) {
            continue;
        }
        let sentence = format!("runs revision {}, deployed {}", short(runs), short(entry));
        s.why = Some(match s.why.take() {
            Some(why) => format!("{why}; {sentence}"),
            None => sentence,
        });
        s.flags.push(Flag::RevisionDrift);
        drifted += 1;
    }
    fleet
        .summary
        .insert(Flag::RevisionDrift.as_str().to_owned(), drifted);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::domain::fleet::InstanceStatus;
    use crate::domain::ports::Stored;
    use crate::domain::report::{HostReport, RollMode, RollOutcome};
    use crate::test_support::fakes::FakeState;

    const A: &str = "5e1ec7ed0000000000000000000000000000c0de";
    const B: &str = "4f1c2d9e0a7b0000000000000000000000000000";
    /// UUIDv7 request ids, the first made before the second.
    const EARLY: &str = "0190c0de-0000-7000-8000-000000000001";
    const LATE: &str = "0190c0de-0001-7000-8000-000000000001";

    fn report(
        request_id: &str,
        revision: Option<&str>,
        hosts: &[(&str, HostOutcome)],
    ) -> RollReport {
        RollReport {
            request_id: request_id.into(),
            target: "all".into(),
            ami: "ami-0bbbbbbb".into(),
            mode: RollMode::Apply,
            revision: revision.map(str::to_owned),
            outcome: RollOutcome::Succeeded,
            hosts: hosts
                .iter()
                .map(|(id, outcome)| HostReport {
                    id: (*id).into(),
                    from_ami: None,
                    to_ami: None,
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
        }
    }

    fn revisions_of(r: &DeployedRevisions) -> Vec<(&str, Option<&str>, &str)> {
        r.iter()
            .map(|(id, e)| (id.as_str(), e.revision.as_deref(), e.request_id.as_str()))
            .collect()
    }

    #[test]
    fn a_host_runs_the_deployed_commit_by_a_prefix_of_seven_or_more() {
        assert!(runs_deployed(A, A));
        assert!(runs_deployed("5e1ec7e", A));
        assert!(runs_deployed("5e1ec7ed0000", &A.to_ascii_uppercase()));
        assert!(!runs_deployed("5e1ec7", A), "six digits name no commit");
        assert!(
            !runs_deployed("5e1ec7e-dirty", A),
            "a dirty tree is no commit"
        );
        assert!(!runs_deployed(&format!("{A}-dirty"), A));
        assert!(!runs_deployed("4f1c2d9", A));
        assert!(!runs_deployed(&format!("{A}00"), A), "longer than the SHA");
        assert_eq!(short("4f1c2d9e0a7b"), "4f1c2d9");
        assert_eq!(short("4f1c2d9e0a7b-dirty"), "4f1c2d9-dirty");
    }

    #[test]
    fn ready_hosts_take_the_revision_put_back_ones_are_forgotten() {
        let mut r = DeployedRevisions::new();
        let first = report(
            EARLY,
            Some(A),
            &[("h1", HostOutcome::Ready), ("h2", HostOutcome::Ready)],
        );
        assert!(fold_report(&mut r, &first, "t1"));
        assert!(
            !fold_report(&mut r, &first, "t2"),
            "a redelivery changes nothing"
        );
        assert_eq!(r["h1"].at, "t1");
        let second = report(
            LATE,
            Some(B),
            &[
                ("h1", HostOutcome::Ready),
                ("h2", HostOutcome::RolledBack),
                ("h3", HostOutcome::Skipped),
            ],
        );
        assert!(fold_report(&mut r, &second, "t3"));
        assert_eq!(
            revisions_of(&r),
            [("h1", Some(B), LATE), ("h2", None, LATE)]
        );
        // The older report arriving late overwrites nothing newer, a put-back included.
        assert!(!fold_report(&mut r, &first, "t4"));
        assert_eq!(r["h2"].revision, None);
        // A plan and an unpinned roll's ready host.
        let mut plan = report(LATE, Some(A), &[("h3", HostOutcome::Ready)]);
        plan.mode = RollMode::Plan;
        assert!(!fold_report(&mut r, &plan, "t5"));
        let unpinned = report(LATE, None, &[("h1", HostOutcome::Ready)]);
        assert!(fold_report(&mut r, &unpinned, "t6"));
        assert_eq!(revisions_of(&r), [("h1", None, LATE), ("h2", None, LATE)]);
    }

    #[test]
    fn manual_runs_go_by_arrival() {
        let mut r = DeployedRevisions::new();
        fold_report(
            &mut r,
            &report(LATE, Some(A), &[("h1", HostOutcome::Ready)]),
            "t1",
        );
        let manual = report("run-42-1", Some(B), &[("h1", HostOutcome::Ready)]);
        assert!(fold_report(&mut r, &manual, "t2"));
        assert!(fold_report(
            &mut r,
            &report(EARLY, Some(A), &[("h1", HostOutcome::Ready)]),
            "t3"
        ));
        assert_eq!(revisions_of(&r), [("h1", Some(A), EARLY)]);
    }

    /// A state store that lets another writer in once, between a record's read and its
    /// write (a test double of the `StateStore` port over the in-memory fake).
    struct Racing {
        inner: FakeState,
        raced: AtomicBool,
    }

    impl Racing {
        async fn race(&self) {
            if !self.raced.swap(true, Ordering::SeqCst) {
                let other = report(EARLY, Some(A), &[("h2", HostOutcome::Ready)]);
                assert!(record(&self.inner, &other, "t0").await.unwrap());
            }
        }
    }

    impl StateStore for Racing {
        fn bucket(&self) -> &str {
            self.inner.bucket()
        }
        async fn create(&self, key: &str, body: Vec<u8>) -> Result<Written, AwsError> {
            self.race().await;
            self.inner.create(key, body).await
        }
        async fn replace(&self, key: &str, body: Vec<u8>, etag: &str) -> Result<Written, AwsError> {
            self.race().await;
            self.inner.replace(key, body, etag).await
        }
        async fn read(&self, key: &str) -> Result<Option<Stored>, AwsError> {
            self.inner.read(key).await
        }
        async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
            self.inner.put(key, body).await
        }
        async fn delete(&self, key: &str) -> Result<(), AwsError> {
            self.inner.delete(key).await
        }
        async fn delete_if(&self, key: &str, etag: &str) -> Result<bool, AwsError> {
            self.inner.delete_if(key, etag).await
        }
        async fn list(&self, p: &str, s: Option<&str>, n: usize) -> Result<Vec<String>, AwsError> {
            self.inner.list(p, s, n).await
        }
    }

    #[tokio::test]
    async fn a_record_written_meanwhile_is_read_again_not_lost() {
        let store = Racing {
            inner: FakeState::default(),
            raced: AtomicBool::new(false),
        };
        let mine = report(LATE, Some(B), &[("h1", HostOutcome::Ready)]);
        assert!(record(&store, &mine, "t1").await.unwrap());
        let body = store.inner.body(DEPLOYED_KEY).unwrap();
        let r: DeployedRevisions = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            revisions_of(&r),
            [("h1", Some(B), LATE), ("h2", Some(A), EARLY)]
        );
        assert!(!record(&store, &mine, "t2").await.unwrap(), "nothing new");
        store
            .inner
            .put(DEPLOYED_KEY, b"not json".to_vec())
            .await
            .unwrap();
        assert!(
            record(&store, &mine, "t3").await.unwrap(),
            "an unreadable record is redone"
        );
        assert!(record(&FakeState::failing(), &mine, "t4").await.is_err());
    }

    fn host(id: &str, readiness: Readiness, revision: &str) -> InstanceStatus {
        InstanceStatus {
            id: id.into(),
            host: id.into(),
            ec2_instance_id: Some("i-0000000a".into()),
            state: Some("running".into()),
            ami: None,
            ami_name: None,
            ami_created: None,
            launch_time: None,
            public_ip: None,
            private_ip: None,
            instance_type: None,
            desired_instance_type: "t3.large".into(),
            flags: Vec::new(),
            readiness,
            revision: Some(revision.into()),
            service: None,
            heartbeat_age_secs: None,
            why: None,
        }
    }

    #[test]
    fn only_a_fresh_revision_other_than_the_deployed_one_drifts() {
        let mut fleet = FleetStatus {
            latest_ami: None,
            instances: vec![
                host("h1", Readiness::Ready, "4f1c2d9e0a7b"),
                host("h2", Readiness::Ready, "5e1ec7ed"),
                host("h3", Readiness::Stale, "4f1c2d9"),
                host("h4", Readiness::Ready, ""),
                host("h5", Readiness::Ready, "4f1c2d9"),
                host("h6", Readiness::Unhealthy, "5e1ec7e-dirty"),
                host("h7", Readiness::Ready, "4f1c2d9"),
            ],
            unmanaged: Vec::new(),
            summary: BTreeMap::new(),
        };
        fleet.instances[5].why = Some("service is failed".into());
        let mut deployed = DeployedRevisions::new();
        for id in ["h1", "h2", "h3", "h4", "h6"] {
            let entry = DeployedRevision {
                revision: Some(A.into()),
                request_id: EARLY.into(),
                at: "t".into(),
            };
            deployed.insert(id.into(), entry);
        }
        // h5 was put back: its revision is unknown. h7 was never recorded.
        let put_back = DeployedRevision {
            revision: None,
            request_id: LATE.into(),
            at: "t".into(),
        };
        deployed.insert("h5".into(), put_back);
        let mut without = fleet.clone();
        flag_drift(&mut without, None);
        assert!(without.instances.iter().all(|i| i.flags.is_empty()));
        flag_drift(&mut fleet, Some(&deployed));
        let drift: Vec<(&str, Option<&str>)> = fleet
            .instances
            .iter()
            .filter(|i| i.flags == [Flag::RevisionDrift])
            .map(|i| (i.id.as_str(), i.why.as_deref()))
            .collect();
        assert_eq!(
            drift,
            [
                ("h1", Some("runs revision 4f1c2d9, deployed 5e1ec7e")),
                (
                    "h6",
                    Some("service is failed; runs revision 5e1ec7e-dirty, deployed 5e1ec7e")
                ),
            ]
        );
        assert_eq!(fleet.summary["revision_drift"], 2);
    }
}
