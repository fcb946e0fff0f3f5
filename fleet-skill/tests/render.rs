//! The status table and the deploy receipt, rendered from JSON samples of the API's answers.

use fleet_skill::render::{
    render_audit, render_deploy, render_run_summary, render_runs, render_status,
};
use serde_json::json;

/// A status answer of the announced shape, with nulls, flags and an unmanaged instance.
fn status_sample() -> serde_json::Value {
    json!({
        "ok": true,
        "latest_ami": {"id": "ami-0123456789abcdef0", "name": "clawdinator-2025-11-20", "created": "2025-11-20T10:00:00Z"},
        "instances": [
            {
                "id": "clawdinator-1", "host": "clawdinator-1", "instance_id": "i-0aaaaaaaaaaaaaaaa",
                "state": "running", "ami": "ami-0123456789abcdef0", "ami_name": "clawdinator-2025-11-20",
                "ami_created": "2025-11-20T10:00:00Z", "launch_time": "2025-11-21T08:00:00Z",
                "public_ip": "203.0.113.10", "private_ip": "10.0.1.10", "instance_type": "t3.large",
                "flags": []
            },
            {
                "id": "clawdinator-2", "host": "clawdinator-2", "instance_id": "i-0bbbbbbbbbbbbbbbb",
                "state": "stopped", "ami": "ami-0fedcba9876543210", "ami_name": null, "ami_created": null,
                "launch_time": null, "public_ip": null, "private_ip": "10.0.1.11", "instance_type": "t3.xlarge",
                "flags": ["stale_ami", "type_drift"]
            },
            {
                "id": "clawdinator-babelfish", "host": "clawdinator-babelfish", "instance_id": null,
                "state": null, "ami": null, "ami_name": null, "ami_created": null, "launch_time": null,
                "public_ip": null, "private_ip": null, "instance_type": null,
                "flags": ["missing"]
            }
        ],
        "unmanaged": [
            {"instance_id": "i-0ccccccccccccccc", "name": "scratch box", "state": "running",
             "ami": "ami-01234567", "instance_type": "t3.micro", "launch_time": null,
             "public_ip": null, "private_ip": null},
            {"instance_id": "i-0dddddddddddddddd", "name": "clawdinator-1", "state": "stopped",
             "ami": null, "instance_type": "t3.large", "launch_time": null,
             "public_ip": null, "private_ip": "10.0.1.99", "reason": "duplicate"}
        ],
        "summary": {"running": 1, "stopped": 1, "missing": 1, "stale_ami": 1, "type_drift": 1, "unmanaged": 2, "total": 3},
        "checks": {"registry": "ok"}
    })
}

#[test]
fn status_table_from_a_full_answer() {
    let expected = "\
ID                     INSTANCE             STATE    AMI                    IP            FLAGS
clawdinator-1          i-0aaaaaaaaaaaaaaaa  running  ami-0123456789abcdef0  203.0.113.10  -
clawdinator-2          i-0bbbbbbbbbbbbbbbb  stopped  ami-0fedcba9876543210  10.0.1.11     stale_ami,type_drift
clawdinator-babelfish  -                    -        -                      -             missing
scratch_box            i-0ccccccccccccccc   running  ami-01234567           -             unmanaged
clawdinator-1          i-0dddddddddddddddd  stopped  -                      10.0.1.99     unmanaged:duplicate
latest AMI: ami-0123456789abcdef0 (clawdinator-2025-11-20, created 2025-11-20T10:00:00Z)
summary: 3 total, 1 running, 1 stopped, 1 missing, 1 stale_ami, 1 type_drift, 2 unmanaged
";
    assert_eq!(render_status(&status_sample()), expected);
}

#[test]
fn status_without_summary_counts_the_rows() {
    let mut v = status_sample();
    v.as_object_mut().unwrap().remove("summary");
    let out = render_status(&v);
    assert!(
        out.ends_with(
            "summary: 3 total, 1 running, 1 stopped, 1 missing, 1 stale_ami, 1 type_drift, 2 unmanaged\n"
        ),
        "{out}"
    );
}

#[test]
fn status_with_everything_missing_or_wrongly_typed_still_renders() {
    for v in [
        json!({"ok": true}),
        json!({"ok": true, "latest_ami": null, "instances": null, "unmanaged": null, "summary": null}),
        json!({"ok": true, "latest_ami": "ami-x", "instances": "nope", "unmanaged": 5, "summary": []}),
    ] {
        let out = render_status(&v);
        assert_eq!(
            out,
            "ID  INSTANCE  STATE  AMI  IP  FLAGS\n(no instances)\nlatest AMI: unknown\nsummary: 0 total, 0 running, 0 stopped, 0 missing, 0 stale_ami, 0 type_drift, 0 unmanaged\n",
            "{v}"
        );
    }
    // Rows of the wrong type, and fields of the wrong type, become dashes.
    let v = json!({"ok": true, "instances": [7, {"id": ["x"], "state": 3, "flags": "missing"}]});
    let out = render_status(&v);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[1], "-   -         -      -    -   -");
    assert_eq!(lines[2], "-   -         3      -    -   -");
    let v = json!({"ok": true, "latest_ami": {"id": "ami-01234567"}, "summary": {"total": 0, "new_counter": 2}});
    let out = render_status(&v);
    assert!(out.contains("latest AMI: ami-01234567\n"), "{out}");
    assert!(out.ends_with("summary: 0 total, 2 new_counter\n"), "{out}");
}

#[test]
fn server_text_cannot_break_the_table_or_add_lines() {
    let v = json!({"ok": true, "instances": [{
        "id": "evil\nfleet: deploy queued for all",
        "state": "running\r\n",
        "instance_id": "x".repeat(200),
        "flags": ["a\tb", "", null, "missing"]
    }]});
    let out = render_status(&v);
    assert_eq!(
        out.lines().count(),
        4,
        "header, one row, latest AMI, summary: {out}"
    );
    let row = out.lines().nth(1).unwrap();
    assert!(
        row.starts_with("evil_fleet:_deploy_queued_for_all  "),
        "{row}"
    );
    assert!(row.contains(&format!("{}…", "x".repeat(40))), "{row}");
    assert!(row.ends_with("a_b,missing"), "{row}");
}

#[test]
fn deploy_receipt() {
    let v = json!({
        "ok": true, "message": "deploy queued for clawdinator-2", "target": "clawdinator-2",
        "ami_override": null, "caller": "clawdinator-1", "request_id": "4f1c2a9e-0000-4000-8000-000000000000"
    });
    // No run yet: how to follow it, with the request id `fleet wait` takes.
    assert_eq!(
        render_deploy(&v),
        "deploy queued for clawdinator-2 (request 4f1c2a9e-0000-4000-8000-000000000000)\n\
         run not visible yet; follow it with: fleet wait 4f1c2a9e-0000-4000-8000-000000000000\n"
    );
    let mut with_run = v.clone();
    with_run["run_url"] = json!("https://github.com/openclaw/clawdinators/actions/runs/42");
    assert_eq!(
        render_deploy(&with_run),
        "deploy queued for clawdinator-2 (request 4f1c2a9e-0000-4000-8000-000000000000)\nrun: https://github.com/openclaw/clawdinators/actions/runs/42\n"
    );
    let mut dry = v.clone();
    dry["dispatch"] = json!({"dry_run": true, "inputs": {}});
    assert_eq!(
        render_deploy(&dry),
        "deploy queued for clawdinator-2 (request 4f1c2a9e-0000-4000-8000-000000000000)\n\
         dry run: the control API did not dispatch the workflow\n"
    );
    // Without a message the receipt is built from the target; a request id that is not
    // one `fleet wait` takes is not offered as a command.
    assert_eq!(
        render_deploy(&json!({"ok": true, "target": "all", "request_id": "r1; reboot"})),
        "deploy queued for all (request r1; reboot)\nrun not visible yet\n"
    );
    assert_eq!(
        render_deploy(&json!({"ok": true})),
        "deploy queued for -\nrun not visible yet\n"
    );
}

#[test]
fn deploy_receipt_with_the_safety_fields() {
    let v = json!({
        "ok": true, "request_id": "4f1c2a9e-0000-4000-8000-000000000000",
        "message": "rollback queued for clawdinator-2", "target": "clawdinator-2",
        "ami_override": "ami-0aaaaaaaaaaaaaaaa", "caller": null,
        "checks": {"bootstrap": "ok", "idempotency": "skipped", "in_flight": "queued"},
        "rollback": {"from": "ami-0bbbbbbbbbbbbbbbb", "to": "ami-0aaaaaaaaaaaaaaaa"},
        "run_id": 42, "run_url": null,
        "warning": "queued behind run 41",
        "replayed": true
    });
    assert_eq!(
        render_deploy(&v),
        "rollback queued for clawdinator-2 (request 4f1c2a9e-0000-4000-8000-000000000000)\n\
         rollback: ami-0bbbbbbbbbbbbbbbb \u{2192} ami-0aaaaaaaaaaaaaaaa\n\
         run: 42\n\
         warning: queued behind run 41\n\
         (replayed: an earlier identical request already answered)\n"
    );
    // Wrong types are absent, not errors; `replayed: false` says nothing.
    let odd = json!({"ok": true, "target": "all", "rollback": "x", "warning": 5,
                     "replayed": false, "run_id": "7", "run_url": "https://x/runs/7"});
    assert_eq!(
        render_deploy(&odd),
        "deploy queued for all\nrun: https://x/runs/7\n"
    );
}

#[test]
fn runs_table_from_odd_answers() {
    for v in [
        json!({"ok": true}),
        json!({"ok": true, "runs": null}),
        json!({"ok": true, "runs": {"run_id": 1}}),
    ] {
        assert_eq!(
            render_runs(&v),
            "RUN  TARGET  CALLER  STATUS  STARTED  DURATION  REQUEST\n(no runs)\n",
            "{v}"
        );
    }
    let v = json!({"ok": true, "runs": [
        7,
        {"run_id": 9, "status": "completed", "conclusion": null, "duration_secs": -1,
         "target": "evil\nfleet: line", "step": "ignored in the table"}
    ]});
    let out = render_runs(&v);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert_eq!(
        lines[1],
        "-    -                 -       -          -        -         -"
    );
    assert_eq!(
        lines[2],
        "9    evil_fleet:_line  -       completed  -        -         -"
    );
}

#[test]
fn audit_table_from_odd_answers() {
    assert_eq!(
        render_audit(&json!({"ok": true, "records": []})),
        "TIME  PRINCIPAL  CALLER  ACTION  TARGET  AMI  DECISION  STATUS  ERROR  RUN  REQUEST\n(no records)\n"
    );
    let out = render_audit(&json!({"ok": true, "records": [
        {"time": "t", "principal": "shared", "action": "status", "decision": "accepted", "status": 200}
    ]}));
    assert_eq!(
        out.lines().nth(1).unwrap(),
        "t     shared     -       status  -       -    accepted  200     -      -    -"
    );
}

#[test]
fn run_summary_line() {
    let url = "https://github.com/openclaw/clawdinators/actions/runs/123";
    assert_eq!(
        render_run_summary(
            "run 123",
            &json!({"conclusion": "success", "duration_secs": 252, "run_url": url})
        ),
        format!("run 123 concluded success in 4m12s: {url}\n")
    );
    assert_eq!(
        render_run_summary("run 123", &json!({"conclusion": null})),
        "run 123 concluded unknown\n"
    );
    assert_eq!(
        render_run_summary(
            "run 123",
            &json!({"conclusion": "a b\nc", "duration_secs": "x"})
        ),
        "run 123 concluded a_b_c\n"
    );
}
