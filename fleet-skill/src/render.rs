//! Plain-text answers from the contract's answer types: the status, runs and audit
//! tables, the deploy and rollback receipt, and the lines a finished wait ends with (the
//! run, then its report).
//!
//! Pure functions over `control_api::contract`. Every string in an answer is the
//! server's text, so each is cut to one short line (a cell to one token): what a bot
//! relays must not gain lines or break the columns.

use std::collections::BTreeMap;

use control_api::contract::{
    AuditAnswer, CancelAnswer, DeployAnswer, Flag, FleetImage, InstanceStatus, LockAnswer,
    QueueAnswer, QueuedAnswer, RollReport, RunsAnswer, StatusAnswer, UnmanagedReason, WorkflowRun,
};

use crate::error::one_line;
use crate::wait::RunRef;

/// Widest a table cell gets; AMI names and the like are cut with `…`.
const MAX_CELL_CHARS: usize = 40;

/// Order in which the summary's counters are shown; unknown counters follow.
const SUMMARY_ORDER: [&str; 8] = [
    "total",
    "running",
    "stopped",
    "missing",
    "stale_ami",
    "type_drift",
    "revision_drift",
    "unmanaged",
];

/// The receipt's first line, the request id, then for a rollback the images, then the
/// run (or how to follow it), the API's warning, a replay note; a dry run says what it
/// would have dispatched.
pub fn render_deploy(answer: &DeployAnswer) -> String {
    let dry_run = answer.dispatch.as_ref().filter(|d| d.dry_run);
    let headline = headline(answer, dry_run.is_some());
    let mut out = match text(&answer.request_id) {
        Some(id) => format!("{headline} (request {})\n", one_line(id, 80)),
        None => format!("{headline}\n"),
    };
    // The short SHA, as git shows it: enough to tell commits apart in chat.
    if let Some(revision) = &answer.revision {
        out.push_str(&format!("revision: {}\n", revision.short()));
    }
    if let Some(rollback) = &answer.rollback {
        out.push_str(&format!(
            "rollback: {} \u{2192} {}\n",
            cut(&rollback.from),
            rollback.to
        ));
    }
    match (answer.run_url.as_deref().and_then(text), answer.run_id) {
        (Some(url), _) => out.push_str(&format!("run: {}\n", one_line(url, 300))),
        (None, Some(id)) => out.push_str(&format!("run: {id}\n")),
        // A dry run never becomes a run: nothing to follow.
        (None, None) if dry_run.is_some() => {}
        // Offered as a command only for an id that `fleet wait` takes: the text is the
        // server's, and a user may paste it into a shell.
        (None, None) => match RunRef::parse(&answer.request_id) {
            Ok(id) => out.push_str(&format!(
                "run not visible yet; follow it with: fleet wait {id}\n"
            )),
            Err(_) => out.push_str("run not visible yet\n"),
        },
    }
    if let Some(warning) = answer.warning.as_deref().and_then(text) {
        out.push_str(&format!("warning: {}\n", one_line(warning, 300)));
    }
    if answer.replayed {
        out.push_str("(replayed: an earlier identical request already answered)\n");
    }
    if let Some(d) = dry_run {
        out.push_str(&format!(
            "would dispatch: {} in {} at {}\n",
            cut(&d.workflow),
            cut(&d.repo),
            cut(&d.git_ref)
        ));
    }
    out
}

/// `deploy queued for <target>` as the API says it; a dry run's own line instead.
fn headline(answer: &DeployAnswer, dry_run: bool) -> String {
    if dry_run {
        // Built here, not taken from the message: a dry run is never "queued", whatever
        // an older server says.
        let verb = if answer.rollback.is_some() {
            "rollback"
        } else {
            "deploy"
        };
        return format!(
            "dry run: would dispatch the {verb} of {} (nothing was sent)",
            answer.target
        );
    }
    text(&answer.message).map_or_else(
        || format!("deploy queued for {}", answer.target),
        |m| one_line(m, 200),
    )
}

/// Workflow runs, newest first as the API sends them: run id, target (a plan's marked),
/// caller,
/// status/conclusion, start, duration, request id; the API's note when there are none.
pub fn render_runs(answer: &RunsAnswer) -> String {
    let mut rows = vec![[
        "RUN", "TARGET", "CALLER", "STATUS", "STARTED", "DURATION", "REQUEST",
    ]
    .map(String::from)];
    for run in &answer.runs {
        // A plan's run changed nothing: it says so where the target is.
        let target = if run.mode.is_apply() {
            opt(&run.target)
        } else {
            format!("{} (plan)", opt(&run.target))
        };
        rows.push([
            run.run_id.to_string(),
            target,
            opt(&run.caller),
            run_status(run),
            opt(&run.started),
            run.duration_secs.map_or_else(|| "-".into(), duration),
            opt(&run.request_id),
        ]);
    }
    let mut out = table(&rows);
    // Below the table: a report's headline is a sentence, too wide for a cell.
    for run in &answer.runs {
        if let Some(summary) = run.summary.as_deref().and_then(text) {
            out.push_str(&format!("run {}: {}\n", run.run_id, one_line(summary, 200)));
        }
    }
    if answer.runs.is_empty() {
        match answer.note.as_deref().and_then(text) {
            Some(note) => out.push_str(&format!("(no runs: {})\n", one_line(note, 200))),
            None => out.push_str("(no runs)\n"),
        }
    }
    out
}

/// Audit records, newest first as the API sends them.
pub fn render_audit(answer: &AuditAnswer) -> String {
    let mut rows = vec![[
        "TIME",
        "PRINCIPAL",
        "CALLER",
        "ACTION",
        "TARGET",
        "AMI",
        "DECISION",
        "STATUS",
        "ERROR",
        "RUN",
        "REQUEST",
    ]
    .map(String::from)];
    for r in &answer.records {
        rows.push([
            cut_or_dash(&r.time),
            opt(&r.principal),
            opt(&r.caller),
            opt(&r.action),
            opt(&r.target),
            opt(&r.ami_override),
            cut_or_dash(&r.decision),
            r.status.to_string(),
            opt(&r.error),
            r.run_id.map_or_else(|| "-".into(), |id| id.to_string()),
            cut_or_dash(&r.request_id),
        ]);
    }
    let mut out = table(&rows);
    if answer.records.is_empty() {
        out.push_str("(no records)\n");
    }
    out
}

/// The line a finished wait prints: `run 123 concluded success in 4m12s: <url>`.
pub fn render_run_summary(label: &str, run: &WorkflowRun) -> String {
    let conclusion = run
        .conclusion
        .as_deref()
        .and_then(text)
        .map_or_else(|| "unknown".into(), cut);
    let mut out = format!("{label} concluded {conclusion}");
    if let Some(secs) = run.duration_secs {
        out.push_str(&format!(" in {}", duration(secs)));
    }
    if let Some(url) = text(&run.run_url) {
        out.push_str(&format!(": {}", one_line(url, 300)));
    }
    out.push('\n');
    out
}

/// A run's report, one line each: the headline, then one sentence per host
/// (`clawdinator-2 ready on ami-… in 4m12s`).
pub fn render_report(report: &RollReport) -> String {
    report
        .summary_lines()
        .iter()
        .filter_map(|line| text(line))
        .map(|line| format!("{}\n", one_line(line, 300)))
        .collect()
}

/// `0m05s`, `4m12s`, `1h02m03s`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// `completed/success` once a run has a conclusion, else its status.
fn run_status(run: &WorkflowRun) -> String {
    match (text(&run.status), run.conclusion.as_deref().and_then(text)) {
        (Some(status), Some(conclusion)) => cut(&format!("{status}/{conclusion}")),
        (Some(status), None) => cut(status),
        (None, Some(conclusion)) => cut(&format!("-/{conclusion}")),
        (None, None) => "-".into(),
    }
}

/// The fleet as a table (id, EC2 id, state, AMI, IP, flags), then the latest AMI and a
/// summary line.
pub fn render_status(answer: &StatusAnswer) -> String {
    let mut out = render_fleet(answer);
    for lock in &answer.locks {
        out.push_str(&format!("locked: {}\n", one_line(&lock.sentence(), 400)));
    }
    out
}

fn render_fleet(answer: &StatusAnswer) -> String {
    let fleet = &answer.fleet;
    let mut rows: Vec<[String; 7]> =
        vec![["ID", "EC2 ID", "STATE", "READY", "AMI", "IP", "FLAGS"].map(String::from)];
    for i in &fleet.instances {
        rows.push([
            cut_or_dash(&i.id),
            opt(&i.ec2_instance_id),
            opt(&i.state),
            i.readiness.as_str().to_owned(),
            opt(&i.ami),
            ip(&i.public_ip, &i.private_ip),
            flags(&i.flags),
        ]);
    }
    for u in &fleet.unmanaged {
        let live = &u.instance;
        rows.push([
            opt(&live.name),
            cut_or_dash(&live.ec2_instance_id),
            cut_or_dash(&live.state),
            "-".to_owned(),
            opt(&live.ami),
            ip(&live.public_ip, &live.private_ip),
            // Why the API counts it as unmanaged: not in the registry, or a duplicate.
            format!("unmanaged:{}", reason(u.reason)),
        ]);
    }
    let mut out = table(&rows);
    if fleet.instances.is_empty() && fleet.unmanaged.is_empty() {
        out.push_str("(no instances)\n");
    }
    // Why each host is not ready or differs from the registry, one line each.
    for i in &fleet.instances {
        if let Some(why) = i.why.as_deref().and_then(text) {
            out.push_str(&format!("{}: {}\n", cut_or_dash(&i.id), one_line(why, 300)));
        }
    }
    out.push_str(&latest_ami(fleet.latest_ami.as_ref()));
    out.push_str(&summary(
        &fleet.summary,
        &fleet.instances,
        fleet.unmanaged.len(),
    ));
    out.push('\n');
    out
}

/// `latest AMI: ami-… (name, created …)`, or `unknown`.
fn latest_ami(ami: Option<&FleetImage>) -> String {
    let Some(ami) = ami else {
        return "latest AMI: unknown\n".to_owned();
    };
    let mut details = Vec::new();
    if let Some(name) = ami.name.as_deref().and_then(text) {
        details.push(cut(name));
    }
    if let Some(created) = ami.created.as_deref().and_then(text) {
        details.push(format!("created {}", cut(created)));
    }
    let mut line = format!("latest AMI: {}", cut_or_dash(&ami.id));
    if !details.is_empty() {
        line.push_str(&format!(" ({})", details.join(", ")));
    }
    line.push('\n');
    line
}

/// `summary: 3 total, 2 running, …` from the API's counters, or counted from the rows
/// when the API sent none.
fn summary(
    counts: &BTreeMap<String, usize>,
    instances: &[InstanceStatus],
    unmanaged: usize,
) -> String {
    let mut parts = Vec::new();
    for key in SUMMARY_ORDER {
        if let Some(n) = counts.get(key) {
            parts.push(format!("{n} {key}"));
        }
    }
    for (key, n) in counts {
        if !SUMMARY_ORDER.contains(&key.as_str()) {
            parts.push(format!("{n} {}", cut(key)));
        }
    }
    if parts.is_empty() {
        let state = |s: &str| {
            instances
                .iter()
                .filter(|i| i.state.as_deref() == Some(s))
                .count()
        };
        let flagged = |f: Flag| instances.iter().filter(|i| i.flags.contains(&f)).count();
        parts = vec![
            format!("{} total", instances.len()),
            format!("{} running", state("running")),
            format!("{} stopped", state("stopped")),
            format!("{} missing", flagged(Flag::Missing)),
            format!("{} stale_ami", flagged(Flag::StaleAmi)),
            format!("{} type_drift", flagged(Flag::TypeDrift)),
            format!("{unmanaged} unmanaged"),
        ];
    }
    format!("summary: {}", parts.join(", "))
}

/// Left-aligned columns two spaces apart; the last column is not padded.
fn table<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0usize; N];
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, c) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(c);
            } else {
                line.push_str(c);
                let pad = widths[i] - c.chars().count() + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Server text that says something, trimmed; `None` for blank text.
fn text(s: &str) -> Option<&str> {
    Some(s.trim()).filter(|s| !s.is_empty())
}

/// A cell from an optional text; `-` when absent or blank.
fn opt(v: &Option<String>) -> String {
    v.as_deref().map_or_else(|| "-".into(), cut_or_dash)
}

fn cut_or_dash(s: &str) -> String {
    text(s).map_or_else(|| "-".into(), cut)
}

/// A single cell: no controls, no inner whitespace that would break the columns.
fn cut(s: &str) -> String {
    let line = one_line(s.trim(), MAX_CELL_CHARS);
    line.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// The public address if there is one, else the private one.
fn ip(public: &Option<String>, private: &Option<String>) -> String {
    public
        .as_deref()
        .and_then(text)
        .or_else(|| private.as_deref().and_then(text))
        .map_or_else(|| "-".into(), cut)
}

fn flags(flags: &[Flag]) -> String {
    if flags.is_empty() {
        return "-".into();
    }
    let names: Vec<&str> = flags.iter().map(|f| f.as_str()).collect();
    names.join(",")
}

/// The reason's wire name.
fn reason(reason: UnmanagedReason) -> &'static str {
    reason.as_str()
}

/// `fleet deploy --queue` answered 202: where it stands and how to follow it.
pub fn render_queued(answer: &QueuedAnswer) -> String {
    let mut out = format!(
        "queued: {} at position {} (request {})\n",
        answer.target,
        answer.position,
        one_line(&answer.request_id, 80)
    );
    if let Ok(id) = RunRef::parse(&answer.request_id) {
        out.push_str(&format!(
            "it is dispatched, its checks run again, when the deploys before it end; follow it with: fleet wait {id}\n"
        ));
    }
    if answer.replayed {
        out.push_str("(replayed: an earlier identical request already answered)\n");
    }
    out
}

/// `fleet lock` and `fleet unlock`: the lock taken or released.
pub fn render_lock(answer: &LockAnswer) -> String {
    let lock = &answer.lock;
    format!(
        "{}\nholder: {}  reason: {}  until: {}\n",
        one_line(&answer.message, 200),
        one_line(&lock.holder, 80),
        one_line(&lock.reason, 200),
        one_line(&lock.expires, 40)
    )
}

/// `fleet queue`: the lease the queue waits behind, then the entries, next first.
pub fn render_queue(answer: &QueueAnswer) -> String {
    let mut out = match &answer.lease {
        Some(lease) => format!("in flight: {}\n", one_line(&lease.sentence(), 400)),
        None => "in flight: nothing\n".to_owned(),
    };
    if answer.queue.is_empty() {
        out.push_str("queue: empty\n");
    }
    for (i, e) in answer.queue.iter().enumerate() {
        out.push_str(&format!(
            "{:>2}. {} {} by {} ({}, queued {})\n",
            i + 1,
            one_line(&e.action, 20),
            e.target,
            one_line(e.caller.as_ref().map_or(&e.principal, |c| c.as_str()), 80),
            one_line(&e.request_id, 80),
            one_line(&e.enqueued_at, 40)
        ));
    }
    out
}

/// `fleet cancel`.
pub fn render_cancel(answer: &CancelAnswer) -> String {
    format!("{}\n", one_line(&answer.message, 300))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_are_single_short_tokens() {
        assert_eq!(cut_or_dash("a b\nc"), "a_b_c");
        assert_eq!(cut_or_dash("  "), "-");
        assert_eq!(opt(&None), "-");
        assert_eq!(opt(&Some("x".repeat(50))).chars().count(), 41);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0m00s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3599), "59m59s");
        assert_eq!(duration(3723), "1h02m03s");
    }
}
