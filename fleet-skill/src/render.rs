//! Plain-text answers from the API's JSON: the status, runs and audit tables, the deploy
//! and rollback receipt, and the line a finished wait ends with.
//!
//! Pure functions over `serde_json::Value`. The answers' shapes are still settling on the
//! server side, so every field is optional here: a missing or null value renders as
//! `-`, a wrong type is treated as missing, and server text is cut to one short line.

use serde_json::Value;

use crate::error::one_line;
use crate::wait::RunRef;

/// Widest a table cell gets; AMI names and the like are cut with `…`.
const MAX_CELL_CHARS: usize = 40;

/// Order in which the summary's counters are shown; unknown counters follow.
const SUMMARY_ORDER: [&str; 7] = [
    "total",
    "running",
    "stopped",
    "missing",
    "stale_ami",
    "type_drift",
    "unmanaged",
];

/// `deploy queued for <target> (request <id>)`, then for a rollback the images, then the
/// run (or how to follow it), the API's warning, a replay note and a dry-run note.
pub fn render_deploy(answer: &Value) -> String {
    let target = cell(answer.get("target"));
    let message = text(answer.get("message"))
        .map(|m| one_line(m, 200))
        .unwrap_or_else(|| format!("deploy queued for {target}"));
    let request_id = text(answer.get("request_id"));
    let mut out = match request_id {
        Some(id) => format!("{message} (request {})\n", one_line(id, 80)),
        None => format!("{message}\n"),
    };
    if let Some(rollback) = answer.get("rollback").filter(|r| r.is_object()) {
        out.push_str(&format!(
            "rollback: {} \u{2192} {}\n",
            cell(rollback.get("from")),
            cell(rollback.get("to"))
        ));
    }
    let dry_run = answer
        .get("dispatch")
        .and_then(|d| d.get("dry_run"))
        .and_then(Value::as_bool)
        == Some(true);
    match (
        text(answer.get("run_url")),
        answer.get("run_id").and_then(Value::as_u64),
    ) {
        (Some(url), _) => out.push_str(&format!("run: {}\n", one_line(url, 300))),
        (None, Some(id)) => out.push_str(&format!("run: {id}\n")),
        // A dry run never becomes a run: nothing to follow.
        (None, None) if dry_run => {}
        // Offered as a command only for an id that `fleet wait` takes: the text is the
        // server's, and a user may paste it into a shell.
        (None, None) => match request_id.and_then(|id| RunRef::parse(id).ok()) {
            Some(id) => out.push_str(&format!(
                "run not visible yet; follow it with: fleet wait {id}\n"
            )),
            None => out.push_str("run not visible yet\n"),
        },
    }
    if let Some(warning) = text(answer.get("warning")) {
        out.push_str(&format!("warning: {}\n", one_line(warning, 300)));
    }
    if answer.get("replayed").and_then(Value::as_bool) == Some(true) {
        out.push_str("(replayed: an earlier identical request already answered)\n");
    }
    if dry_run {
        out.push_str("dry run: the control API did not dispatch the workflow\n");
    }
    out
}

/// Workflow runs, newest first as the API sends them: run id, target, caller,
/// status/conclusion, start, duration, request id.
pub fn render_runs(answer: &Value) -> String {
    let mut rows = vec![[
        "RUN", "TARGET", "CALLER", "STATUS", "STARTED", "DURATION", "REQUEST",
    ]
    .map(String::from)];
    let runs = array(answer.get("runs"));
    for run in runs {
        rows.push([
            cell(run.get("run_id")),
            cell(run.get("target")),
            cell(run.get("caller")),
            run_status(run),
            cell(run.get("started")),
            run.get("duration_secs")
                .and_then(Value::as_u64)
                .map_or_else(|| "-".into(), duration),
            cell(run.get("request_id")),
        ]);
    }
    let mut out = table(&rows);
    if runs.is_empty() {
        out.push_str("(no runs)\n");
    }
    out
}

/// Audit records, newest first as the API sends them.
pub fn render_audit(answer: &Value) -> String {
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
    let records = array(answer.get("records"));
    for r in records {
        rows.push([
            cell(r.get("time")),
            cell(r.get("principal")),
            cell(r.get("caller")),
            cell(r.get("action")),
            cell(r.get("target")),
            cell(r.get("ami_override")),
            cell(r.get("decision")),
            cell(r.get("status")),
            cell(r.get("error")),
            cell(r.get("run_id")),
            cell(r.get("request_id")),
        ]);
    }
    let mut out = table(&rows);
    if records.is_empty() {
        out.push_str("(no records)\n");
    }
    out
}

/// The line a finished wait prints: `run 123 concluded success in 4m12s: <url>`.
pub fn render_run_summary(label: &str, run: &Value) -> String {
    let conclusion = text(run.get("conclusion")).map_or_else(|| "unknown".into(), cut);
    let mut out = format!("{label} concluded {conclusion}");
    if let Some(secs) = run.get("duration_secs").and_then(Value::as_u64) {
        out.push_str(&format!(" in {}", duration(secs)));
    }
    if let Some(url) = text(run.get("run_url")) {
        out.push_str(&format!(": {}", one_line(url, 300)));
    }
    out.push('\n');
    out
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
fn run_status(run: &Value) -> String {
    match (text(run.get("status")), text(run.get("conclusion"))) {
        (Some(status), Some(conclusion)) => cut(&format!("{status}/{conclusion}")),
        (Some(status), None) => cut(status),
        (None, Some(conclusion)) => cut(&format!("-/{conclusion}")),
        (None, None) => "-".into(),
    }
}

/// The fleet as a table (id, instance id, state, AMI, IP, flags), then the latest AMI and
/// a summary line.
pub fn render_status(answer: &Value) -> String {
    let mut rows: Vec<[String; 6]> = vec![[
        "ID".into(),
        "INSTANCE".into(),
        "STATE".into(),
        "AMI".into(),
        "IP".into(),
        "FLAGS".into(),
    ]];
    let instances = array(answer.get("instances"));
    for i in instances {
        rows.push([
            cell(i.get("id")),
            cell(i.get("instance_id")),
            cell(i.get("state")),
            cell(i.get("ami")),
            ip(i),
            flags(i.get("flags")),
        ]);
    }
    let unmanaged = array(answer.get("unmanaged"));
    for u in unmanaged {
        rows.push([
            cell(u.get("name")),
            cell(u.get("instance_id")),
            cell(u.get("state")),
            cell(u.get("ami")),
            ip(u),
            // Why the API counts it as unmanaged (not in the registry, a duplicate), if it says.
            match text(u.get("reason")) {
                Some(reason) => format!("unmanaged:{}", cut(reason)),
                None => "unmanaged".into(),
            },
        ]);
    }
    let mut out = table(&rows);
    if instances.is_empty() && unmanaged.is_empty() {
        out.push_str("(no instances)\n");
    }
    match answer.get("latest_ami").filter(|v| v.is_object()) {
        Some(ami) => {
            let mut details = Vec::new();
            if let Some(name) = text(ami.get("name")) {
                details.push(cut(name));
            }
            if let Some(created) = text(ami.get("created")) {
                details.push(format!("created {}", cut(created)));
            }
            out.push_str(&format!("latest AMI: {}", cell(ami.get("id"))));
            if !details.is_empty() {
                out.push_str(&format!(" ({})", details.join(", ")));
            }
            out.push('\n');
        }
        None => out.push_str("latest AMI: unknown\n"),
    }
    out.push_str(&summary(answer, instances, unmanaged.len()));
    out.push('\n');
    out
}

/// `summary: 3 total, 2 running, …` from the API's counters, or counted from the rows
/// when the API sent none.
fn summary(answer: &Value, instances: &[Value], unmanaged: usize) -> String {
    let mut parts = Vec::new();
    if let Some(map) = answer.get("summary").and_then(Value::as_object) {
        for key in SUMMARY_ORDER {
            if let Some(n) = map.get(key).and_then(Value::as_u64) {
                parts.push(format!("{n} {key}"));
            }
        }
        for (key, value) in map {
            if !SUMMARY_ORDER.contains(&key.as_str()) {
                if let Some(n) = value.as_u64() {
                    parts.push(format!("{n} {}", cut(key)));
                }
            }
        }
    }
    if parts.is_empty() {
        let state = |s: &str| {
            instances
                .iter()
                .filter(|i| i.get("state").and_then(Value::as_str) == Some(s))
                .count()
        };
        let flagged = |f: &str| {
            instances
                .iter()
                .filter(|i| array(i.get("flags")).iter().any(|x| x.as_str() == Some(f)))
                .count()
        };
        parts = vec![
            format!("{} total", instances.len()),
            format!("{} running", state("running")),
            format!("{} stopped", state("stopped")),
            format!("{} missing", flagged("missing")),
            format!("{} stale_ami", flagged("stale_ami")),
            format!("{} type_drift", flagged("type_drift")),
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

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn text(v: Option<&Value>) -> Option<&str> {
    v.and_then(Value::as_str).filter(|s| !s.trim().is_empty())
}

/// A cell from a string or number; `-` for anything else.
fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) if !s.trim().is_empty() => cut(s),
        Some(Value::Number(n)) => n.to_string(),
        _ => "-".into(),
    }
}

/// A single cell: no controls, no inner whitespace that would break the columns.
fn cut(s: &str) -> String {
    let line = one_line(s.trim(), MAX_CELL_CHARS);
    line.chars()
        .map(|c| if c.is_whitespace() { '_' } else { c })
        .collect()
}

/// The public address if there is one, else the private one.
fn ip(instance: &Value) -> String {
    text(instance.get("public_ip"))
        .or_else(|| text(instance.get("private_ip")))
        .map_or_else(|| "-".into(), cut)
}

fn flags(v: Option<&Value>) -> String {
    let flags: Vec<String> = array(v)
        .iter()
        .filter_map(Value::as_str)
        .filter(|f| !f.trim().is_empty())
        .map(cut)
        .collect();
    if flags.is_empty() {
        "-".into()
    } else {
        flags.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_single_short_tokens() {
        assert_eq!(cell(Some(&json!("a b\nc"))), "a_b_c");
        assert_eq!(cell(Some(&json!(null))), "-");
        assert_eq!(cell(Some(&json!(["x"]))), "-");
        assert_eq!(cell(Some(&json!(7))), "7");
        assert_eq!(cell(None), "-");
        assert_eq!(cell(Some(&json!("x".repeat(50)))).chars().count(), 41);
    }

    #[test]
    fn durations() {
        assert_eq!(duration(0), "0m00s");
        assert_eq!(duration(65), "1m05s");
        assert_eq!(duration(3599), "59m59s");
        assert_eq!(duration(3723), "1h02m03s");
    }
}
