//! The report as a Markdown table, for the workflow run's step summary.

use crate::domain::report::{human_duration, HostReport, PlanSummary, RollReport};

/// A table cell: `|` and line breaks would end the cell or the row.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn code(s: Option<&str>) -> String {
    s.map(|s| format!("`{}`", cell(s))).unwrap_or_default()
}

fn plan_cell(plan: Option<&PlanSummary>) -> String {
    let Some(p) = plan else {
        return String::new();
    };
    [
        ("replace", &p.replaced),
        ("create", &p.created),
        ("destroy", &p.destroyed),
        ("change", &p.changed),
    ]
    .iter()
    .flat_map(|(verb, addrs)| addrs.iter().map(move |a| format!("{verb} `{}`", cell(a))))
    .collect::<Vec<_>>()
    .join("<br>")
}

fn row(h: &HostReport) -> String {
    let outcome = serde_json::to_value(h.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    format!(
        "| `{}` | {outcome} | {} | {} | {} | {} | {} | {} | {} |",
        cell(&h.id),
        code(h.from_ami.as_deref()),
        code(h.to_ami.as_deref()),
        code(h.old_ec2_instance_id.as_deref()),
        code(h.new_ec2_instance_id.as_deref()),
        h.ready_after_secs.map(human_duration).unwrap_or_default(),
        plan_cell(h.plan.as_ref()),
        cell(h.reason.as_deref().unwrap_or_default()),
    )
}

/// `## fleet-deploy: <headline>`, the run's facts, then one row per host.
pub fn markdown(report: &RollReport) -> String {
    let mut out = vec![
        format!("## fleet-deploy: {}", cell(&report.headline())),
        String::new(),
        format!("request_id `{}`", cell(&report.request_id)),
    ];
    if let Some(rev) = &report.revision {
        out.push(String::new());
        out.push(format!("revision `{}`", cell(rev)));
    }
    out.extend([
        String::new(),
        "| host | outcome | from | to | old instance | new instance | ready after | plan | why |"
            .to_owned(),
        "|---|---|---|---|---|---|---|---|---|".to_owned(),
    ]);
    out.extend(report.hosts.iter().map(row));
    out.push(String::new());
    out.join("\n")
}
