//! In-memory fakes of the domain's ports, for service-level tests without moto or the
//! GitHub double: a workflow that records dispatches and lists them as runs, a fleet of
//! fixed instances and images, a bootstrap store of fixed prefixes, and a state store
//! whose conditional writes are atomic like S3's. Each can be told to fail.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use crate::domain::ports::{
    AwsError, BootstrapStore, DeployRequest, DispatchError, DispatchReceipt, DryRunDispatch,
    FleetImage, FleetReader, LiveInstance, StateStore, Stored, Workflow, WorkflowError,
    WorkflowRun, Written,
};
use crate::domain::report::RollMode;
use crate::domain::request::Revision;

/// The commit the fakes say `GITHUB_REF` points to.
pub const HEAD_REVISION: &str = "1111111111111111111111111111111111111111";

/// A sleep that returns at once: the fakes answer without delay, and retry budgets are
/// counted by the domain's clock, not by waiting.
pub fn no_wait(_: Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(std::future::ready(()))
}

/// A workflow that accepts dispatches and lists each as a queued run (newest first),
/// or answers the scripted failures first, one per dispatch.
#[derive(Default)]
pub struct FakeWorkflow {
    pub dispatched: Mutex<Vec<DeployRequest>>,
    /// Answers for the next dispatches, in order; when empty, dispatches are accepted.
    pub failures: Mutex<VecDeque<DispatchError>>,
    /// Runs already there before any dispatch (another deploy in flight, say).
    pub existing: Mutex<Vec<WorkflowRun>>,
    /// Every runs read fails so.
    pub runs_error: Mutex<Option<WorkflowError>>,
    /// The dry run: no runs tracked.
    pub dry_run: bool,
}

impl FakeWorkflow {
    pub fn dispatch_count(&self) -> usize {
        self.dispatched.lock().unwrap().len()
    }

    /// A run as GitHub would list it.
    pub fn run(run_id: u64, status: &str, request_id: Option<&str>, target: &str) -> WorkflowRun {
        let url = format!("https://github.com/openclaw/clawdinators/actions/runs/{run_id}");
        WorkflowRun {
            target: Some(target.to_owned()),
            caller: Some("human:ops".to_owned()),
            ..Self::bare_run(run_id, url, request_id.map(str::to_owned), status)
        }
    }

    /// A deploy's run with only its id, URL, request and status (a run started by hand
    /// names no request); no target, caller, conclusion or timing.
    pub fn bare_run(
        run_id: u64,
        run_url: String,
        request_id: Option<String>,
        status: &str,
    ) -> WorkflowRun {
        WorkflowRun {
            run_id,
            run_url,
            request_id,
            mode: RollMode::Apply,
            target: None,
            caller: None,
            status: status.to_owned(),
            conclusion: None,
            started: None,
            duration_secs: None,
            step: None,
            summary: None,
        }
    }

    fn all_runs(&self) -> Vec<WorkflowRun> {
        let dispatched = self.dispatched.lock().unwrap();
        let mut runs: Vec<WorkflowRun> = dispatched
            .iter()
            .enumerate()
            .map(|(i, r)| WorkflowRun {
                // A plan's run is named `fleet-plan …`, which the run's mode says.
                mode: r.mode,
                ..Self::run(
                    1000 + i as u64,
                    "queued",
                    Some(&r.request_id),
                    r.target.as_str(),
                )
            })
            .collect();
        runs.extend(self.existing.lock().unwrap().iter().cloned());
        runs.sort_by_key(|r| std::cmp::Reverse(r.run_id));
        runs
    }
}

impl Workflow for FakeWorkflow {
    async fn dispatch(&self, request: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
        if let Some(failure) = self.failures.lock().unwrap().pop_front() {
            return Err(failure);
        }
        self.dispatched.lock().unwrap().push(request.clone());
        // The dry run answers with what it would have sent, as the real one does.
        let dry_run = self.dry_run.then(|| DryRunDispatch {
            dry_run: true,
            repo: "openclaw/clawdinators".to_owned(),
            workflow: "fleet-deploy.yml".to_owned(),
            git_ref: "main".to_owned(),
            inputs: [("target".to_owned(), Some(request.target.to_string()))].into(),
        });
        Ok(DispatchReceipt { dry_run, run: None })
    }

    async fn runs(
        &self,
        status: Option<&'static str>,
        per_page: u8,
    ) -> Result<Vec<WorkflowRun>, WorkflowError> {
        if let Some(e) = self.runs_error.lock().unwrap().clone() {
            return Err(e);
        }
        let mut runs = self.all_runs();
        runs.retain(|r| status.is_none_or(|s| r.status == s));
        runs.truncate(usize::from(per_page));
        Ok(runs)
    }

    async fn run(&self, run_id: u64) -> Result<Option<WorkflowRun>, WorkflowError> {
        Ok(self.all_runs().into_iter().find(|r| r.run_id == run_id))
    }

    async fn resolve_ref(&self) -> Result<Option<Revision>, WorkflowError> {
        Ok((!self.dry_run).then(|| Revision::parse(HEAD_REVISION).expect("a SHA")))
    }

    fn tracks_runs(&self) -> bool {
        !self.dry_run
    }
}

/// A fleet of fixed instances and fleet images; `fail` makes every call an AWS error.
#[derive(Default)]
pub struct FakeFleet {
    pub instances: Vec<LiveInstance>,
    pub images: Vec<FleetImage>,
    pub fail: bool,
}

impl FakeFleet {
    /// A running instance named after `host` on `ami`.
    pub fn running(ec2_instance_id: &str, host: &str, ami: &str) -> LiveInstance {
        LiveInstance {
            ec2_instance_id: ec2_instance_id.to_owned(),
            name: Some(host.to_owned()),
            state: "running".to_owned(),
            ami: Some(ami.to_owned()),
            instance_type: Some("t3.large".to_owned()),
            launch_time: Some("2026-11-20T00:00:00Z".to_owned()),
            public_ip: None,
            private_ip: Some("10.0.0.1".to_owned()),
        }
    }

    pub fn image(id: &str, created: &str) -> FleetImage {
        FleetImage {
            id: id.to_owned(),
            name: Some(format!("clawdinator-nixos-{id}")),
            created: Some(created.to_owned()),
        }
    }

    fn check(&self) -> Result<(), AwsError> {
        if self.fail {
            Err(AwsError("DescribeInstances: fake outage".into()))
        } else {
            Ok(())
        }
    }
}

impl FleetReader for FakeFleet {
    async fn live_instances(&self, _: bool) -> Result<Vec<LiveInstance>, AwsError> {
        self.check()?;
        Ok(self.instances.clone())
    }
    async fn latest_image(&self) -> Result<Option<FleetImage>, AwsError> {
        self.check()?;
        Ok(crate::domain::fleet::newest_image(self.images.clone()))
    }
    async fn fleet_image(&self, id: &str) -> Result<Option<FleetImage>, AwsError> {
        self.check()?;
        Ok(self.images.iter().find(|i| i.id == id).cloned())
    }
    async fn fleet_images(&self) -> Result<Vec<FleetImage>, AwsError> {
        self.check()?;
        Ok(self.images.clone())
    }
    async fn images(&self, ids: &[String]) -> Result<Vec<FleetImage>, AwsError> {
        self.check()?;
        Ok(self
            .images
            .iter()
            .filter(|i| ids.contains(&i.id))
            .cloned()
            .collect())
    }
}

/// A bootstrap bucket holding bundles under the given prefixes.
#[derive(Default)]
pub struct FakeBootstrap {
    pub prefixes: BTreeSet<String>,
}

impl BootstrapStore for FakeBootstrap {
    fn bucket(&self) -> &str {
        "fake-bootstrap"
    }
    async fn has_bundle(&self, prefix: &str) -> Result<bool, AwsError> {
        Ok(self.prefixes.contains(prefix))
    }
}

/// A state bucket in memory; conditional writes are atomic under one lock, as S3's are.
#[derive(Default)]
pub struct FakeState {
    objects: Mutex<BTreeMap<String, (Vec<u8>, u64)>>,
    /// Every call fails (an S3 outage).
    pub fail: bool,
    /// Keys handed out by `list`, all pages together: how much a listing read.
    listed: std::sync::atomic::AtomicUsize,
    /// The last version handed out. Versions never repeat, not even after a delete (S3's
    /// etags of distinct bodies do not either), so a stale etag never matches by chance.
    versions: std::sync::atomic::AtomicU64,
    /// A write that lands right after the next read of its key: another writer between
    /// a caller's read and its next step.
    interloper: Mutex<Option<(String, Vec<u8>)>>,
}

impl FakeState {
    /// A bucket whose every call fails.
    pub fn failing() -> Self {
        Self {
            fail: true,
            ..Self::default()
        }
    }

    fn check(&self) -> Result<(), AwsError> {
        if self.fail {
            Err(AwsError("PutObject: fake outage".into()))
        } else {
            Ok(())
        }
    }

    /// The keys under `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let objects = self.objects.lock().unwrap();
        objects
            .keys()
            .filter(|k| k.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// How many keys `list` has handed out so far.
    pub fn listed_keys(&self) -> usize {
        self.listed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// One object's body.
    pub fn body(&self, key: &str) -> Option<Vec<u8>> {
        self.objects
            .lock()
            .unwrap()
            .get(key)
            .map(|(b, _)| b.clone())
    }

    /// After the next read of `key` (which sees what is there before), `body` replaces
    /// it as a new version: the race a conditional write or delete must lose.
    pub fn write_after_next_read(&self, key: &str, body: Vec<u8>) {
        *self.interloper.lock().unwrap() = Some((key.to_owned(), body));
    }

    fn write(
        &self,
        map: &mut BTreeMap<String, (Vec<u8>, u64)>,
        key: &str,
        body: Vec<u8>,
    ) -> String {
        let version = 1 + self
            .versions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        map.insert(key.to_owned(), (body, version));
        etag_of(version)
    }
}

/// The etag of a version, quoted as S3 quotes its etags.
fn etag_of(version: u64) -> String {
    format!("\"{version}\"")
}

impl StateStore for FakeState {
    fn bucket(&self) -> &str {
        "fake-state"
    }
    async fn create(&self, key: &str, body: Vec<u8>) -> Result<Written, AwsError> {
        self.check()?;
        let mut objects = self.objects.lock().unwrap();
        if objects.contains_key(key) {
            return Ok(Written::Conflict);
        }
        let etag = self.write(&mut objects, key, body);
        Ok(Written::Done { etag })
    }
    async fn replace(&self, key: &str, body: Vec<u8>, etag: &str) -> Result<Written, AwsError> {
        self.check()?;
        let mut objects = self.objects.lock().unwrap();
        match objects.get(key) {
            Some((_, v)) if etag_of(*v) == etag => {
                let etag = self.write(&mut objects, key, body);
                Ok(Written::Done { etag })
            }
            _ => Ok(Written::Conflict),
        }
    }
    async fn read(&self, key: &str) -> Result<Option<Stored>, AwsError> {
        self.check()?;
        let mut objects = self.objects.lock().unwrap();
        let stored = objects.get(key).map(|(body, v)| Stored {
            body: body.clone(),
            etag: etag_of(*v),
        });
        let mut interloper = self.interloper.lock().unwrap();
        if interloper.as_ref().is_some_and(|(k, _)| k == key) {
            let (_, body) = interloper.take().expect("checked");
            self.write(&mut objects, key, body);
        }
        Ok(stored)
    }
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
        self.check()?;
        self.write(&mut self.objects.lock().unwrap(), key, body);
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), AwsError> {
        self.check()?;
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool, AwsError> {
        self.check()?;
        let mut objects = self.objects.lock().unwrap();
        match objects.get(key) {
            Some((_, v)) if etag_of(*v) == etag => {
                objects.remove(key);
                Ok(true)
            }
            _ => Ok(false),
        }
    }
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        self.check()?;
        let objects = self.objects.lock().unwrap();
        let page: Vec<String> = objects
            .keys()
            .filter(|k| k.starts_with(prefix) && start_after.is_none_or(|s| k.as_str() > s))
            .take(limit)
            .cloned()
            .collect();
        self.listed
            .fetch_add(page.len(), std::sync::atomic::Ordering::Relaxed);
        Ok(page)
    }
}

/// The benchmark's workflow: accepts every dispatch at once and lists only the last one's
/// run, so an accepted deploy takes the whole path (in-flight guard, dispatch, run
/// look-up) without a network and without memory growing over millions of deploys.
#[derive(Default)]
pub struct NoopWorkflow {
    last_request: Mutex<String>,
}

impl Workflow for NoopWorkflow {
    async fn dispatch(&self, request: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
        request
            .request_id
            .clone_into(&mut self.last_request.lock().unwrap());
        Ok(DispatchReceipt::default())
    }
    async fn runs(
        &self,
        status: Option<&'static str>,
        _: u8,
    ) -> Result<Vec<WorkflowRun>, WorkflowError> {
        if status.is_some() {
            return Ok(Vec::new());
        }
        // Only what the run look-up reads, with no formatting: the double's own cost
        // stays out of the handler's figures.
        let last = self.last_request.lock().unwrap().clone();
        Ok(vec![FakeWorkflow::bare_run(
            1,
            "https://github.com/openclaw/clawdinators/actions/runs/1".to_owned(),
            Some(last),
            "queued",
        )])
    }
    async fn run(&self, _: u64) -> Result<Option<WorkflowRun>, WorkflowError> {
        Ok(None)
    }
    async fn resolve_ref(&self) -> Result<Option<Revision>, WorkflowError> {
        Ok(Revision::parse(HEAD_REVISION).ok())
    }
    fn tracks_runs(&self) -> bool {
        true
    }
}

/// Only fills a type parameter where the port is `None` (no state bucket): never called.
pub struct NoState;

impl StateStore for NoState {
    fn bucket(&self) -> &str {
        ""
    }
    async fn create(&self, _: &str, _: Vec<u8>) -> Result<Written, AwsError> {
        unreachable!("state is None")
    }
    async fn replace(&self, _: &str, _: Vec<u8>, _: &str) -> Result<Written, AwsError> {
        unreachable!("state is None")
    }
    async fn read(&self, _: &str) -> Result<Option<Stored>, AwsError> {
        unreachable!("state is None")
    }
    async fn put(&self, _: &str, _: Vec<u8>) -> Result<(), AwsError> {
        unreachable!("state is None")
    }
    async fn delete(&self, _: &str) -> Result<(), AwsError> {
        unreachable!("state is None")
    }
    async fn delete_if(&self, _: &str, _: &str) -> Result<bool, AwsError> {
        unreachable!("state is None")
    }
    async fn list(&self, _: &str, _: Option<&str>, _: usize) -> Result<Vec<String>, AwsError> {
        unreachable!("state is None")
    }
}
