//! The rules that make a dispatch happen once: retries with backoff, and a look for the
//! run before any re-dispatch; and the reads of the workflow's runs.

use std::future::Future;
use std::time::{Duration, Instant};

use super::ports::{
    DeployRequest, DispatchError, DispatchReceipt, Misconfig, RunLink, Sleep, Workflow,
    WorkflowError, WorkflowRun, ACTIVE_STATUSES,
};
use super::report::RollMode;
use super::request::Revision;

/// What the run name says, parsed: `fleet-deploy <target> [by <caller>] [<request_id>]`,
/// or for a plan's run `fleet-plan …` in the same shape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunName {
    pub target: Option<String>,
    pub caller: Option<String>,
    pub request_id: Option<String>,
    pub mode: RollMode,
}

impl RunName {
    pub fn parse(name: &str) -> Self {
        let (rest, mode) = if let Some(rest) = name.strip_prefix("fleet-deploy ") {
            (rest, RollMode::Apply)
        } else if let Some(rest) = name.strip_prefix("fleet-plan ") {
            (rest, RollMode::Plan)
        } else {
            return Self::default();
        };
        let (rest, request_id) = match rest.rsplit_once(" [") {
            Some((head, tail)) => match tail.strip_suffix(']') {
                Some(id) if !id.is_empty() => (head, Some(id.to_owned())),
                _ => (head, None),
            },
            None => (rest, None),
        };
        let (target, caller) = match rest.split_once(" by ") {
            Some((t, c)) => (t, Some(c.to_owned()).filter(|c| !c.is_empty())),
            None => (rest, None),
        };
        Self {
            target: Some(target.trim().to_owned()).filter(|t| !t.is_empty()),
            caller,
            request_id,
            mode,
        }
    }
}

/// Time budgets of a deploy. The sum stays well under the Lambda timeout (30 s) and the
/// `fleet` CLI's 30 s read timeout, so a caller always gets an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployTiming {
    /// Retries of the dispatch (and of the run look-ups between them) end by then.
    pub dispatch_deadline: Duration,
    /// First backoff; doubled per attempt, capped, with full jitter.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How long a run of an accepted dispatch may take to show up in the runs list.
    pub run_visible_within: Duration,
    /// Between two looks at the runs list.
    pub run_poll: Duration,
}

impl Default for DeployTiming {
    fn default() -> Self {
        Self {
            dispatch_deadline: Duration::from_secs(12),
            backoff_base: Duration::from_millis(400),
            backoff_max: Duration::from_secs(4),
            run_visible_within: Duration::from_secs(5),
            run_poll: Duration::from_millis(750),
        }
    }
}

impl DeployTiming {
    /// Exponential backoff with full jitter: uniform in `[0, min(max, base·2^attempt)]`.
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.backoff_max);
        cap.mul_f64(fastrand::f64())
    }
}

/// How a dispatch ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    pub receipt: DispatchReceipt,
    /// The run GitHub named in its answer, else the run carrying the request id when
    /// it showed up within the time budget.
    pub run: Option<RunLink>,
    /// Dispatch calls sent (1 unless GitHub failed).
    pub attempts: u32,
}

/// Why a deploy could not be handed to the workflow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    NotConfigured(Misconfig),
    /// Definitely not dispatched.
    #[error("GitHub refused the workflow dispatch (HTTP {status}); nothing was deployed")]
    Refused { status: u16 },
    /// Definitely not dispatched: still rate-limited at the deadline.
    #[error("GitHub is rate-limiting workflow dispatches; nothing was deployed, try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// Definitely not dispatched: GitHub could not be reached until the deadline.
    #[error("GitHub could not be reached to dispatch the workflow; nothing was deployed")]
    Unreachable,
    /// GitHub never confirmed, and no run with this request id could be found.
    #[error("GitHub did not confirm the workflow dispatch and no run for request {request_id} was found yet; it may still start: check `fleet runs` before deploying again")]
    Unknown { request_id: String },
}

/// Reads the runs, retrying rate limits and failures within `deadline`.
pub async fn read_runs<W: Workflow>(
    workflow: &W,
    status: Option<&'static str>,
    per_page: u8,
    timing: &DeployTiming,
    sleep: Sleep,
    deadline: Instant,
) -> Result<Vec<WorkflowRun>, WorkflowError> {
    retrying(timing, sleep, deadline, || workflow.runs(status, per_page)).await
}

/// The commit `GITHUB_REF` points to now, retrying rate limits and failures for a
/// quarter of the dispatch budget.
pub async fn resolve_ref<W: Workflow>(
    workflow: &W,
    timing: &DeployTiming,
    sleep: Sleep,
) -> Result<Option<Revision>, WorkflowError> {
    let deadline = Instant::now() + timing.dispatch_deadline / 4;
    retrying(timing, sleep, deadline, || workflow.resolve_ref()).await
}

/// One GitHub read, asked again after a rate limit or an outage (never after a
/// refusal, which would only be repeated) until `deadline`.
async fn retrying<T, F, Fut>(
    timing: &DeployTiming,
    sleep: Sleep,
    deadline: Instant,
    mut read: F,
) -> Result<T, WorkflowError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, WorkflowError>>,
{
    let mut attempt = 0;
    loop {
        match read().await {
            Ok(value) => return Ok(value),
            Err(e) if e.retryable() => {
                let retry_after = match &e {
                    WorkflowError::RateLimited { retry_after } => *retry_after,
                    _ => None,
                };
                let wait = retry_after.unwrap_or_default().max(timing.backoff(attempt));
                if Instant::now() + wait >= deadline {
                    return Err(e);
                }
                sleep(wait).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Every deploy run that has not finished, newest first, one look per active status
/// (a plan's run changes nothing, so no deploy waits for it). The
/// looks go out together: one round trip of latency, not four, and a narrow window
/// for a run to move between two statuses unseen (read one after another, a run
/// going from `pending` to `queued` between the two reads was missed by both).
pub async fn active_runs<W: Workflow>(
    workflow: &W,
    timing: &DeployTiming,
    sleep: Sleep,
) -> Result<Vec<WorkflowRun>, WorkflowError> {
    let deadline = Instant::now() + timing.dispatch_deadline / 2;
    let looks = ACTIVE_STATUSES
        .map(|status| read_runs(workflow, Some(status), 20, timing, sleep, deadline));
    let mut runs: Vec<WorkflowRun> = Vec::new();
    for run in futures_util::future::try_join_all(looks)
        .await?
        .into_iter()
        .flatten()
        .filter(|r| r.mode.is_apply())
    {
        if !runs.iter().any(|r| r.run_id == run.run_id) {
            runs.push(run);
        }
    }
    runs.sort_by_key(|r| std::cmp::Reverse(r.run_id));
    Ok(runs)
}

/// The run whose name carries `request_id`, among the newest 50.
pub async fn find_run<W: Workflow>(
    workflow: &W,
    request_id: &str,
) -> Result<Option<WorkflowRun>, WorkflowError> {
    let runs = workflow.runs(None, 50).await?;
    Ok(runs
        .into_iter()
        .find(|r| r.request_id.as_deref() == Some(request_id)))
}

/// Looks for the request's run until it shows up or `within` has passed.
/// `Ok(None)`: the list was read and the run is not there. `Err`: it could not be read.
async fn await_run<W: Workflow>(
    workflow: &W,
    request_id: &str,
    within: Duration,
    timing: &DeployTiming,
    sleep: Sleep,
) -> Result<Option<WorkflowRun>, WorkflowError> {
    let until = Instant::now() + within;
    loop {
        // Only the latest look counts: "not there" a second ago says nothing about now.
        let last = match find_run(workflow, request_id).await {
            Ok(Some(run)) => return Ok(Some(run)),
            other => other,
        };
        if Instant::now() + timing.run_poll >= until {
            return last;
        }
        sleep(timing.run_poll).await;
    }
}

/// Dispatches `request` exactly once as far as anyone can tell:
/// - 200 with the run's details: done, and the run is known without a look-up;
/// - 204 (a GitHub without `return_run_details`): done; the run is then looked up for
///   a few seconds (`run_visible_within`);
/// - rate limit: GitHub did not process it; wait (Retry-After or backoff) and send again;
/// - unknown outcome (5xx, timeout): first wait for a run carrying the request id to show
///   up; only when the runs list was read and has none is the dispatch sent again;
/// - anything else, or the deadline: stop without another dispatch.
pub async fn dispatch_once<W: Workflow>(
    workflow: &W,
    request: &DeployRequest,
    timing: &DeployTiming,
    sleep: Sleep,
) -> Result<Dispatched, DeployError> {
    let deadline = Instant::now() + timing.dispatch_deadline;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let backoff = timing.backoff(attempts - 1);
        let wait = match workflow.dispatch(request).await {
            Ok(receipt) => {
                return Ok(accepted(workflow, request, receipt, attempts, timing, sleep).await)
            }
            Err(DispatchError::NotConfigured(m)) => return Err(DeployError::NotConfigured(m)),
            Err(DispatchError::Refused { status }) => return Err(DeployError::Refused { status }),
            Err(DispatchError::RateLimited { retry_after }) => {
                let wait = retry_after.unwrap_or_default().max(backoff);
                if Instant::now() + wait >= deadline {
                    return Err(DeployError::RateLimited {
                        retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                    });
                }
                wait
            }
            Err(DispatchError::NotSent) => {
                if Instant::now() + backoff >= deadline {
                    return Err(DeployError::Unreachable);
                }
                backoff
            }
            Err(DispatchError::Unknown) => {
                match unknown(workflow, request, attempts, deadline, timing, sleep).await? {
                    Some(dispatched) => return Ok(dispatched),
                    None => backoff,
                }
            }
        };
        if Instant::now() + wait >= deadline {
            return Err(DeployError::Unknown {
                request_id: request.request_id.clone(),
            });
        }
        tracing::info!(request_id = %request.request_id, attempt = attempts, wait_ms = wait.as_millis() as u64, "retrying the workflow dispatch");
        sleep(wait).await;
    }
}

/// After GitHub accepted: the run it named, else (a 204) the run carrying the request
/// id, if it shows up within `run_visible_within`.
async fn accepted<W: Workflow>(
    workflow: &W,
    request: &DeployRequest,
    receipt: DispatchReceipt,
    attempts: u32,
    timing: &DeployTiming,
    sleep: Sleep,
) -> Dispatched {
    let run = if let Some(run) = receipt.run.clone() {
        Some(run)
    } else if workflow.tracks_runs() {
        let within = timing.run_visible_within;
        await_run(workflow, &request.request_id, within, timing, sleep)
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(request_id = %request.request_id, error = %e, "dispatched; run not looked up");
                None
            })
            .map(link)
    } else {
        None
    };
    Dispatched {
        receipt,
        run,
        attempts,
    }
}

fn link(run: WorkflowRun) -> RunLink {
    RunLink {
        run_id: run.run_id,
        run_url: run.run_url,
    }
}

/// After an unknown outcome: `Some` when the run exists (never send again), `None` when
/// the runs list was read and has none (sending again is safe), `Err` when it could not
/// be read (stop: a second dispatch could deploy twice).
async fn unknown<W: Workflow>(
    workflow: &W,
    request: &DeployRequest,
    attempts: u32,
    deadline: Instant,
    timing: &DeployTiming,
    sleep: Sleep,
) -> Result<Option<Dispatched>, DeployError> {
    let within = timing
        .run_visible_within
        .min(deadline.saturating_duration_since(Instant::now()));
    match await_run(workflow, &request.request_id, within, timing, sleep).await {
        Ok(Some(run)) => {
            tracing::info!(request_id = %request.request_id, run_id = run.run_id, "dispatch outcome was unknown; its run exists, not sending again");
            Ok(Some(Dispatched {
                receipt: DispatchReceipt::default(),
                run: Some(link(run)),
                attempts,
            }))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            tracing::warn!(request_id = %request.request_id, error = %e, "dispatch outcome unknown and runs unreadable: not sending again");
            Err(DeployError::Unknown {
                request_id: request.request_id.clone(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_names_parse_old_and_new_forms() {
        assert_eq!(
            RunName::parse("fleet-deploy clawdinator-2 by human:alice [0190-abc]"),
            RunName {
                target: Some("clawdinator-2".into()),
                caller: Some("human:alice".into()),
                request_id: Some("0190-abc".into()),
                mode: RollMode::Apply,
            }
        );
        assert_eq!(
            RunName::parse("fleet-plan clawdinator-2 by clawdinator-1 [0190-def]"),
            RunName {
                target: Some("clawdinator-2".into()),
                caller: Some("clawdinator-1".into()),
                request_id: Some("0190-def".into()),
                mode: RollMode::Plan,
            }
        );
        assert_eq!(
            RunName::parse("fleet-deploy all [r1]"),
            RunName {
                target: Some("all".into()),
                caller: None,
                request_id: Some("r1".into()),
                mode: RollMode::Apply,
            }
        );
        assert_eq!(
            RunName::parse("fleet-deploy all by  []"),
            RunName {
                target: Some("all".into()),
                caller: None,
                request_id: None,
                mode: RollMode::Apply,
            }
        );
        assert_eq!(RunName::parse("some other run"), RunName::default());
    }

    /// Answers a runs read only once all four are waiting: read one after another,
    /// the first would wait for ever.
    struct FourAtOnce(tokio::sync::Barrier);

    impl Workflow for FourAtOnce {
        async fn dispatch(&self, _: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
            unreachable!("the guard only reads")
        }
        async fn runs(
            &self,
            status: Option<&'static str>,
            _: u8,
        ) -> Result<Vec<WorkflowRun>, WorkflowError> {
            self.0.wait().await;
            // The same run under two statuses, as it moves between looks.
            let run_id = if status == Some("waiting") { 7 } else { 3 };
            let run_id = if status == Some("pending") { 9 } else { run_id };
            Ok(vec![WorkflowRun {
                run_id,
                run_url: String::new(),
                request_id: None,
                mode: RollMode::Apply,
                target: None,
                caller: None,
                status: status.unwrap_or_default().to_owned(),
                conclusion: None,
                started: None,
                duration_secs: None,
                step: None,
                summary: None,
            }])
        }
        async fn run(&self, _: u64) -> Result<Option<WorkflowRun>, WorkflowError> {
            unreachable!()
        }
        async fn resolve_ref(&self) -> Result<Option<Revision>, WorkflowError> {
            unreachable!("the guard only reads runs")
        }
        fn tracks_runs(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn the_guard_reads_every_active_status_at_once() {
        let workflow = FourAtOnce(tokio::sync::Barrier::new(ACTIVE_STATUSES.len()));
        let sleep: Sleep = |d| Box::pin(tokio::time::sleep(d));
        let runs = tokio::time::timeout(
            Duration::from_secs(30),
            active_runs(&workflow, &DeployTiming::default(), sleep),
        )
        .await
        .expect("the four reads must be in flight together")
        .unwrap();
        let ids: Vec<u64> = runs.iter().map(|r| r.run_id).collect();
        assert_eq!(ids, [9, 7, 3], "newest first, each run once");
    }

    #[test]
    fn backoff_is_capped_and_jittered() {
        let t = DeployTiming::default();
        for attempt in 0..40 {
            assert!(t.backoff(attempt) <= t.backoff_max);
        }
        assert!(t.backoff(0) <= t.backoff_base);
    }
}
