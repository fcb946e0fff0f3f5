//! `fleet wait`: follow one workflow run to its end by polling the API's `run` action,
//! then print how it ended and, when the run wrote one, its report.
//!
//! A wait has to outlast network weather: a poll only reads, so one that fails for
//! transport or server reasons is simply asked again, and only [`MAX_FAILED_POLLS`]
//! failures in a row, a refusal or the deadline end a wait early. A fresh dispatch takes
//! a few seconds to show up as a run, so for a request id `run_not_found` means "not yet"
//! for [`NOT_VISIBLE_GRACE`]; a server that dispatches nothing (`nothing_dispatched`)
//! ends the wait at once, since no run will ever show up.

use std::fmt;
use std::io::{self, Write};
use std::thread;
use std::time::{Duration, Instant};

use control_api::contract::{self, Caller, QueueAnswer, Request, RunAnswer, WorkflowRun};
use uuid::Uuid;

use crate::client;
use crate::config::Endpoint;
use crate::error::{one_line, ApiFailure, FleetError};
use crate::render;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long `run_not_found` for a request id counts as "not visible yet".
pub const NOT_VISIBLE_GRACE: Duration = Duration::from_secs(60);
/// Failed polls in a row (network, 5xx, 408/429, not the API's JSON) that end a wait.
pub const MAX_FAILED_POLLS: u32 = 5;
/// The API's answer to `run` when it dispatches nothing (the local dry run, HTTP 404).
pub use control_api::contract::codes::NOTHING_DISPATCHED;
use control_api::contract::codes::RUN_NOT_FOUND;
/// How often the terminal line is redrawn between polls, so spinner and clock move.
const TICK: Duration = Duration::from_millis(250);
const SPINNER: [char; 4] = ['|', '/', '-', '\\'];
/// Longest terminal line drawn: a wrapped line cannot be rewritten with `\r`.
const MAX_TERMINAL_CHARS: usize = 100;

/// Which run to follow: GitHub's run id, or the request id the API gave the dispatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunRef {
    RunId(u64),
    RequestId(Uuid),
}

/// Why a word is not a run reference. Messages never echo the input (it may come from chat).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RunRefError {
    #[error("a run id is a positive number without leading zeros")]
    BadRunId,
    #[error("expected a run id (digits) or a request id (a UUID such as 5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d)")]
    NotAnId,
}

impl RunRef {
    /// All digits is a run id; anything else must be a UUID in the hyphenated form the
    /// API writes. `uuid` also reads braces, URNs and bare hex; those are refused so that
    /// an id has one spelling.
    pub fn parse(s: &str) -> Result<Self, RunRefError> {
        if !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit()) {
            // 19 digits always fit a u64; GitHub's run ids have 10 or 11.
            if s.starts_with('0') || s.len() > 19 {
                return Err(RunRefError::BadRunId);
            }
            return s
                .parse()
                .map(Self::RunId)
                .map_err(|_| RunRefError::BadRunId);
        }
        if s.len() == 36 {
            if let Ok(id) = Uuid::try_parse(s) {
                return Ok(Self::RequestId(id));
            }
        }
        Err(RunRefError::NotAnId)
    }

    /// The `run` request that asks for this run.
    pub fn request(&self, caller: Option<&Caller>) -> Request {
        let run = match self {
            Self::RunId(id) => contract::RunRef::RunId(*id),
            // Hyphenated lowercase: the spelling the API writes and the run name carries.
            Self::RequestId(id) => contract::RunRef::RequestId(id.to_string()),
        };
        Request::Run {
            caller: caller.cloned(),
            run,
        }
    }

    /// `run 123`, or `run for request <id>` while only the request id is known.
    pub fn label(&self) -> String {
        match self {
            Self::RunId(id) => format!("run {id}"),
            Self::RequestId(id) => format!("run for request {id}"),
        }
    }
}

/// The bare id, as `fleet wait` takes it.
impl fmt::Display for RunRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RunId(id) => write!(f, "{id}"),
            Self::RequestId(id) => write!(f, "{id}"),
        }
    }
}

/// How long to wait and how often to ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOptions {
    pub timeout: Duration,
    pub interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        Self {
            timeout: DEFAULT_TIMEOUT,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// Progress on stderr. On a terminal one line is redrawn in place; anywhere else (a bot,
/// a log) a line is written only when the run's state changes, so every line stands on
/// its own and a long wait stays a short transcript.
pub struct Progress<'a> {
    sink: &'a mut dyn Write,
    terminal: bool,
    started: Instant,
    /// What the run is doing, without the clock: `run 123 in_progress: Apply clawdinator-2`.
    state: Option<String>,
    /// A passing remark after the state on the terminal line, such as a failed poll.
    note: Option<String>,
    /// Characters of the terminal line on screen, to blank what a shorter line leaves.
    drawn: usize,
    frame: usize,
}

impl<'a> Progress<'a> {
    /// Starts the clock.
    pub fn start(sink: &'a mut dyn Write, terminal: bool) -> Self {
        Self {
            sink,
            terminal,
            started: Instant::now(),
            state: None,
            note: None,
            drawn: 0,
            frame: 0,
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn show(&mut self, state: String) -> io::Result<()> {
        self.note = None;
        if self.terminal {
            self.state = Some(state);
            return self.draw();
        }
        if self.state.as_deref() != Some(state.as_str()) {
            writeln!(
                self.sink,
                "[{}] {state}",
                render::duration(self.elapsed().as_secs())
            )?;
            self.state = Some(state);
        }
        Ok(())
    }

    /// A remark that does not change the run's state: terminal only, so a transcript
    /// keeps one line per state.
    fn remark(&mut self, note: String) -> io::Result<()> {
        if self.terminal {
            self.note = Some(note);
            self.draw()?;
        }
        Ok(())
    }

    fn pause(&mut self, pause: Duration) -> io::Result<()> {
        if !self.terminal {
            thread::sleep(pause);
            return Ok(());
        }
        let until = Instant::now() + pause;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            thread::sleep(left.min(TICK));
            self.draw()?;
        }
    }

    fn draw(&mut self) -> io::Result<()> {
        let spinner = SPINNER[self.frame % SPINNER.len()];
        self.frame += 1;
        let mut line = format!(
            "{spinner} [{}] {}",
            render::duration(self.elapsed().as_secs()),
            self.state
                .as_deref()
                .unwrap_or("waiting for the first answer")
        );
        if let Some(note) = &self.note {
            line.push_str(&format!(" ({note})"));
        }
        let line = one_line(&line, MAX_TERMINAL_CHARS);
        let len = line.chars().count();
        let blank = " ".repeat(self.drawn.saturating_sub(len));
        write!(self.sink, "\r{line}{blank}")?;
        self.drawn = len;
        self.sink.flush()
    }

    /// Blanks the terminal line, so what is printed next starts clean.
    pub fn finish(&mut self) -> io::Result<()> {
        if self.terminal && self.drawn > 0 {
            write!(self.sink, "\r{}\r", " ".repeat(self.drawn))?;
            self.drawn = 0;
            self.sink.flush()?;
        }
        Ok(())
    }
}

/// Follows `run` until it completes, then writes a one-line summary to `out`. Succeeds
/// only when the run concluded `success`.
pub fn wait(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    run: RunRef,
    options: &WaitOptions,
    progress: &mut Progress<'_>,
    out: &mut dyn Write,
) -> Result<(), FleetError> {
    let result = follow(endpoint, caller, run, options, progress);
    // Before anything else is printed, the `fleet: …` error line included.
    let finished = progress.finish();
    let (run, answer) = result?;
    finished?;
    let label = run.label();
    let last = &answer.run;
    out.write_all(render::render_run_summary(&label, last).as_bytes())?;
    if let Some(report) = &answer.report {
        out.write_all(render::render_report(report).as_bytes())?;
    }
    match last.conclusion.as_deref() {
        Some("success") => Ok(()),
        other => Err(FleetError::RunConcluded {
            run: label,
            conclusion: one_line(other.unwrap_or("unknown"), 40),
        }),
    }
}

/// Polls until the run completes; returns the run reference and the last answer (the
/// completed run, with its report when the run wrote one).
fn follow(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    run: RunRef,
    options: &WaitOptions,
    progress: &mut Progress<'_>,
) -> Result<(RunRef, RunAnswer), FleetError> {
    let mut follow = Follow {
        run,
        failures: 0,
        last_seen: None,
        visible_from: Duration::ZERO,
    };
    loop {
        if let Some(answer) = follow.poll(endpoint, caller, progress)? {
            return Ok((follow.run, answer));
        }
        let left = options.timeout.saturating_sub(progress.elapsed());
        if left.is_zero() {
            return Err(follow.timed_out(progress));
        }
        progress.pause(options.interval.min(left))?;
    }
}

/// Where a wait stands between polls.
struct Follow {
    /// What is asked for: the request id until the run's own id is known.
    run: RunRef,
    /// Failed polls in a row.
    failures: u32,
    /// The last state shown, for the message of a wait that times out.
    last_seen: Option<String>,
    /// When the grace for a run to show up began: the start, or the last look that found
    /// the request still queued.
    visible_from: Duration,
}

impl Follow {
    /// Asks once: the completed run's answer, `None` to ask again, or why the wait ends.
    fn poll(
        &mut self,
        endpoint: &Endpoint,
        caller: Option<&Caller>,
        progress: &mut Progress<'_>,
    ) -> Result<Option<RunAnswer>, FleetError> {
        match poll(endpoint, caller, &self.run) {
            Ok(answer) => {
                let found = &answer.run;
                self.failures = 0;
                // Once the run is known, ask for it by its id: a lookup, not a search.
                if found.run_id > 0 {
                    self.run = RunRef::RunId(found.run_id);
                }
                if found.status == "completed" {
                    return Ok(Some(answer));
                }
                let state = run_state(&self.run, found);
                self.show(progress, state)?;
            }
            Err(FleetError::Refused(f)) if f.code.as_deref() == Some(NOTHING_DISPATCHED) => {
                return Err(FleetError::NothingDispatched(f));
            }
            Err(FleetError::Refused(f))
                if f.code.as_deref() == Some(RUN_NOT_FOUND)
                    && matches!(self.run, RunRef::RequestId(_)) =>
            {
                let state = self.not_found(endpoint, caller, progress, f)?;
                self.show(progress, state)?;
            }
            Err(e) => self.failed(e, progress)?,
        }
        Ok(None)
    }

    /// A queued request has no run until its turn: say where it stands, and count the
    /// grace for a run to show up from its dispatch.
    fn not_found(
        &mut self,
        endpoint: &Endpoint,
        caller: Option<&Caller>,
        progress: &Progress<'_>,
        refusal: ApiFailure,
    ) -> Result<String, FleetError> {
        match queue_position(endpoint, caller, &self.run) {
            Some(position) => {
                self.visible_from = progress.elapsed();
                Ok(format!("{}: queued, position {position}", self.run.label()))
            }
            None if progress.elapsed() - self.visible_from < NOT_VISIBLE_GRACE => {
                Ok(format!("{}: not visible yet", self.run.label()))
            }
            None => Err(FleetError::Refused(refusal)),
        }
    }

    /// A failed poll: passed over, unless it is a refusal or one too many in a row.
    fn failed(&mut self, e: FleetError, progress: &mut Progress<'_>) -> Result<(), FleetError> {
        let Some(reason) = passing_failure(&e) else {
            return Err(e);
        };
        self.failures += 1;
        if self.failures >= MAX_FAILED_POLLS {
            return Err(FleetError::PollsFailed {
                failures: self.failures,
                last: reason,
                follow: self.run.to_string(),
            });
        }
        progress.remark(format!("poll failed, retrying: {reason}"))?;
        Ok(())
    }

    fn show(&mut self, progress: &mut Progress<'_>, state: String) -> Result<(), FleetError> {
        progress.show(state.clone())?;
        self.last_seen = Some(state);
        Ok(())
    }

    fn timed_out(self, progress: &Progress<'_>) -> FleetError {
        FleetError::WaitTimedOut {
            after: render::duration(progress.elapsed().as_secs()),
            state: self
                .last_seen
                .unwrap_or_else(|| format!("{}: no answer yet", self.run.label())),
            follow: self.run.to_string(),
        }
    }
}

/// The request's position in the deploy queue (1 is next), if it is queued; any
/// failure to tell counts as not queued.
fn queue_position(endpoint: &Endpoint, caller: Option<&Caller>, run: &RunRef) -> Option<usize> {
    let RunRef::RequestId(id) = run else {
        return None;
    };
    let request = Request::Queue {
        caller: caller.cloned(),
    };
    let answer = client::send(endpoint, &request, None).ok()?;
    let queue = client::interpret::<QueueAnswer>(&answer).ok()?;
    queue
        .queue
        .iter()
        .position(|e| e.request_id == id.to_string())
        .map(|i| i + 1)
}

fn poll(
    endpoint: &Endpoint,
    caller: Option<&Caller>,
    run: &RunRef,
) -> Result<RunAnswer, FleetError> {
    let answer = client::send(endpoint, &run.request(caller), None)?;
    client::interpret::<RunAnswer>(&answer)
}

/// `run 123 in_progress: Apply clawdinator-2`, server text cut to one short line.
fn run_state(run: &RunRef, found: &WorkflowRun) -> String {
    let text = |s: &str, max: usize| Some(one_line(s.trim(), max)).filter(|s| !s.is_empty());
    let status = text(&found.status, 30).unwrap_or_else(|| "unknown".to_owned());
    match found.step.as_deref().and_then(|s| text(s, 60)) {
        Some(step) => format!("{} {status}: {step}", run.label()),
        None => format!("{} {status}", run.label()),
    }
}

/// Why a poll failed, when asking again may well work: the network, the server, a
/// throttle, or an answer that is not the API's (a proxy's error page). `None` for a
/// refusal, which asking again will not change.
fn passing_failure(e: &FleetError) -> Option<String> {
    match e {
        FleetError::Unreachable { detail, .. } => {
            Some(format!("cannot reach the control API: {detail}"))
        }
        FleetError::NoAnswer(detail) => Some(format!("no answer: {detail}")),
        FleetError::BadAnswer(detail) => Some(format!("unexpected answer: {detail}")),
        FleetError::Server(f) => Some(f.to_string()),
        FleetError::Refused(f) if matches!(f.status, 408 | 429) => Some(f.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ApiFailure;

    #[test]
    fn run_refs_have_one_spelling() {
        assert_eq!(RunRef::parse("123"), Ok(RunRef::RunId(123)));
        assert_eq!(
            RunRef::parse("9999999999999999999"),
            Ok(RunRef::RunId(9_999_999_999_999_999_999))
        );
        let id = "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";
        let parsed = RunRef::parse(id).unwrap();
        assert_eq!(parsed.to_string(), id);
        // Upper case reads the same id, written the API's way.
        assert_eq!(RunRef::parse(&id.to_uppercase()), Ok(parsed));
        for bad in ["0", "0123", "12345678901234567890", "99999999999999999999"] {
            assert_eq!(RunRef::parse(bad), Err(RunRefError::BadRunId), "{bad}");
        }
        for bad in [
            "",
            "-1",
            "+1",
            "1.0",
            "12a",
            "５",
            "5b0c1d2e3f404a5b8c6d7e8f9a0b1c2d",
            "{5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d}",
            "urn:uuid:5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d",
            "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2g",
            "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d;x",
            "run-123",
        ] {
            assert_eq!(RunRef::parse(bad), Err(RunRefError::NotAnId), "{bad}");
        }
    }

    #[test]
    fn run_requests_match_the_contract() {
        let caller = Caller::parse("human:ops").unwrap();
        let body = |r: Request| serde_json::to_string(&r).unwrap();
        assert_eq!(
            RunRef::RunId(7).request(Some(&caller)),
            Request::Run {
                caller: Some(caller.clone()),
                run: contract::RunRef::RunId(7)
            }
        );
        let id = "5b0c1d2e-3f40-4a5b-8c6d-7e8f9a0b1c2d";
        let request = RunRef::parse(&id.to_uppercase()).unwrap().request(None);
        // What the API parses back is what was meant, in its spelling.
        assert_eq!(
            contract::parse_command(body(request.clone()).as_bytes()),
            Ok(request.clone())
        );
        assert_eq!(
            body(request),
            format!(r#"{{"action":"run","request_id":"{id}"}}"#)
        );
    }

    fn run(status: &str, step: Option<&str>) -> WorkflowRun {
        WorkflowRun {
            mode: Default::default(),
            run_id: 7,
            run_url: "https://github.com/o/r/actions/runs/7".into(),
            request_id: None,
            target: None,
            caller: None,
            status: status.into(),
            conclusion: None,
            started: None,
            duration_secs: None,
            step: step.map(Into::into),
            summary: None,
        }
    }

    #[test]
    fn states_are_one_short_line() {
        let r = RunRef::RunId(7);
        assert_eq!(
            run_state(&r, &run("in_progress", Some("Apply clawdinator-2"))),
            "run 7 in_progress: Apply clawdinator-2"
        );
        assert_eq!(run_state(&r, &run("queued", None)), "run 7 queued");
        assert_eq!(run_state(&r, &run(" ", Some(""))), "run 7 unknown");
        let evil = run_state(&r, &run("x\ny", Some(&"a\r\n".repeat(50))));
        assert!(
            !evil.contains(['\n', '\r']) && evil.chars().count() < 110,
            "{evil}"
        );
    }

    #[test]
    fn only_passing_failures_are_retried() {
        let failure = |status| ApiFailure {
            status,
            code: None,
            message: "m".into(),
            request_id: None,
            run: None,
        };
        assert!(passing_failure(&FleetError::NoAnswer("reset".into())).is_some());
        assert!(passing_failure(&FleetError::BadAnswer("html".into())).is_some());
        assert!(passing_failure(&FleetError::Server(failure(502))).is_some());
        assert!(passing_failure(&FleetError::Refused(failure(429))).is_some());
        assert!(passing_failure(&FleetError::Refused(failure(401))).is_none());
        assert!(passing_failure(&FleetError::Refused(failure(403))).is_none());
        assert!(passing_failure(&FleetError::Refused(failure(404))).is_none());
    }

    #[test]
    fn a_transcript_has_a_line_per_state() {
        let mut sink = Vec::new();
        let mut p = Progress::start(&mut sink, false);
        p.show("run 7 queued".into()).unwrap();
        p.show("run 7 queued".into()).unwrap();
        p.remark("poll failed, retrying: no answer".into()).unwrap();
        p.show("run 7 in_progress: Apply".into()).unwrap();
        p.finish().unwrap();
        assert_eq!(
            String::from_utf8(sink).unwrap(),
            "[0m00s] run 7 queued\n[0m00s] run 7 in_progress: Apply\n"
        );
    }

    #[test]
    fn a_terminal_gets_one_line_redrawn_in_place() {
        let mut sink = Vec::new();
        let mut p = Progress::start(&mut sink, true);
        p.show("run 7 in_progress: Apply clawdinator-2".into())
            .unwrap();
        p.show("run 7 queued".into()).unwrap();
        p.remark("poll failed, retrying".into()).unwrap();
        p.finish().unwrap();
        let text = String::from_utf8(sink).unwrap();
        assert!(!text.contains('\n'), "{text:?}");
        let frames: Vec<&str> = text.split('\r').skip(1).collect();
        assert_eq!(
            frames[0],
            "| [0m00s] run 7 in_progress: Apply clawdinator-2"
        );
        // A shorter line blanks what the longer one left.
        assert_eq!(frames[1].chars().count(), frames[0].chars().count());
        // Every redraw turns the spinner.
        assert!(frames[1].starts_with("/ [0m00s] run 7 queued   "));
        assert_eq!(
            frames[2].trim_end(),
            "- [0m00s] run 7 queued (poll failed, retrying)"
        );
        // The end leaves a blank line and the cursor at its start.
        assert_eq!(frames[3].trim(), "");
        assert_eq!(frames[4], "");
    }
}
