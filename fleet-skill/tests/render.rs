//! The status table and the deploy receipt, rendered from JSON samples of the API's answers read into the contract's types.

use control_api::contract::{
    AuditAnswer, DeployAnswer, Flag, RunsAnswer, StatusAnswer, WorkflowRun,
};
use fleet_skill::render::{
    render_audit, render_deploy, render_run_summary, render_runs, render_status,
};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

/// A sample read as the contract's answer, as the CLI reads the API's.
fn read<T: DeserializeOwned>(v: &Value) -> T {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"))
}

/// A status answer of the contract's shape, with nulls, flags and unmanaged instances.
fn status_sample() -> Value {
    json!({
        "ok": true,
        "latest_ami": {"id": "ami-0123456789abcdef0", "name": "clawdinator-2025-11-20", "created": "2025-11-20T10:00:00Z"},
        "instances": [
            {
                "id": "clawdinator-1", "host": "clawdinator-1", "ec2_instance_id": "i-0aaaaaaaaaaaaaaaa",
                "state": "running", "ami": "ami-0123456789abcdef0", "ami_name": "clawdinator-2025-11-20",
                "ami_created": "2025-11-20T10:00:00Z", "launch_time": "2025-11-21T08:00:00Z",
                "public_ip": "203.0.113.10", "private_ip": "10.0.1.10", "instance_type": "t3.large",
                "desired_instance_type": "t3.large", "flags": [], "readiness": "ready",
                "revision": "0123abcdef", "service": "active", "heartbeat_age_secs": 12, "why": null
            },
            {
                "id": "clawdinator-2", "host": "clawdinator-2", "ec2_instance_id": "i-0bbbbbbbbbbbbbbbb",
                "state": "stopped", "ami": "ami-0fedcba9876543210", "ami_name": null, "ami_created": null,
                "launch_time": null, "public_ip": null, "private_ip": "10.0.1.11", "instance_type": "t3.xlarge",
                "desired_instance_type": "t3.large", "flags": ["stale_ami", "type_drift"],
                "readiness": "stale", "revision": null, "service": null, "heartbeat_age_secs": null,
                "why": "its instance is stopped; runs ami-0fedcba9876543210, newest fleet image is ami-0123456789abcdef0"
            },
            {
                "id": "clawdinator-babelfish", "host": "clawdinator-babelfish", "ec2_instance_id": null,
                "state": null, "ami": null, "ami_name": null, "ami_created": null, "launch_time": null,
                "public_ip": null, "private_ip": null, "instance_type": null,
                "desired_instance_type": "t3.small", "flags": ["missing"], "readiness": "missing",
                "why": "no live instance"
            }
        ],
        "unmanaged": [
            {"ec2_instance_id": "i-0ccccccccccccccc", "name": "scratch box", "state": "running",
             "ami": "ami-01234567", "instance_type": "t3.micro", "launch_time": null,
             "public_ip": null, "private_ip": null, "reason": "not_in_registry"},
            {"ec2_instance_id": "i-0dddddddddddddddd", "name": "clawdinator-1", "state": "stopped",
             "ami": null, "instance_type": "t3.large", "launch_time": null,
             "public_ip": null, "private_ip": "10.0.1.99", "reason": "duplicate"}
        ],
        "summary": {"running": 1, "stopped": 1, "missing": 1, "stale_ami": 1, "type_drift": 1, "unmanaged": 2, "total": 3},
        "checks": {"bootstrap_bucket": "configured"},
        "request_id": "0190c0de-0000-7000-8000-000000000000"
    })
}

fn status(v: &Value) -> StatusAnswer {
    read(v)
}

#[test]
fn status_table_from_a_full_answer() {
    let expected = "\
ID                     EC2 ID               STATE    READY    AMI                    IP            FLAGS
clawdinator-1          i-0aaaaaaaaaaaaaaaa  running  ready    ami-0123456789abcdef0  203.0.113.10  -
clawdinator-2          i-0bbbbbbbbbbbbbbbb  stopped  stale    ami-0fedcba9876543210  10.0.1.11     stale_ami,type_drift
clawdinator-babelfish  -                    -        missing  -                      -             missing
scratch_box            i-0ccccccccccccccc   running  -        ami-01234567           -             unmanaged:not_in_registry
clawdinator-1          i-0dddddddddddddddd  stopped  -        -                      10.0.1.99     unmanaged:duplicate
clawdinator-2: its instance is stopped; runs ami-0fedcba9876543210, newest fleet image is ami-0123456789abcdef0
clawdinator-babelfish: no live instance
latest AMI: ami-0123456789abcdef0 (clawdinator-2025-11-20, created 2025-11-20T10:00:00Z)
summary: 3 total, 1 running, 1 stopped, 1 missing, 1 stale_ami, 1 type_drift, 2 unmanaged
";
    assert_eq!(render_status(&status(&status_sample())), expected);
}

#[test]
fn revision_drift_shows_as_a_flag_with_its_why_and_its_count() {
    let mut v = status_sample();
    v["instances"][0]["flags"] = json!(["revision_drift"]);
    v["instances"][0]["why"] = json!("runs revision 0123abc, deployed 5e1ec7e");
    v["summary"]["revision_drift"] = json!(1);
    let answer = status(&v);
    assert_eq!(answer.fleet.instances[0].flags, [Flag::RevisionDrift]);
    let out = render_status(&answer);
    assert!(
        out.contains(
            "clawdinator-1          i-0aaaaaaaaaaaaaaaa  running  ready    ami-0123456789abcdef0  203.0.113.10  revision_drift\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("\nclawdinator-1: runs revision 0123abc, deployed 5e1ec7e\n"),
        "{out}"
    );
    assert!(
        out.ends_with("1 stale_ami, 1 type_drift, 1 revision_drift, 2 unmanaged\n"),
        "{out}"
    );
}

#[test]
fn status_without_counters_counts_the_rows() {
    let mut v = status_sample();
    v["summary"] = json!({});
    let out = render_status(&status(&v));
    assert!(
        out.ends_with(
            "summary: 3 total, 1 running, 1 stopped, 1 missing, 1 stale_ami, 1 type_drift, 2 unmanaged\n"
        ),
        "{out}"
    );
}

#[test]
fn status_answers_of_another_shape_do_not_read() {
    // The EC2 id's name before the contract (`instance_id`) is refused, not shown blank:
    // `ec2_instance_id` must be there, if only as null.
    let mut old_name = status_sample();
    let first = &mut old_name["instances"][0];
    first["instance_id"] = first["ec2_instance_id"].take();
    first.as_object_mut().unwrap().remove("ec2_instance_id");
    assert!(serde_json::from_value::<StatusAnswer>(old_name).is_err());
    // Answers with parts missing or of the wrong type are not the contract: the CLI
    // reports them as not the API's answer.
    for v in [
        json!({"ok": true}),
        json!({"ok": true, "latest_ami": null, "instances": null, "unmanaged": null, "summary": null,
               "checks": {"bootstrap_bucket": "unset"}, "request_id": "r"}),
        json!({"ok": true, "latest_ami": "ami-x", "instances": "nope", "unmanaged": 5, "summary": [],
               "checks": {"bootstrap_bucket": "unset"}, "request_id": "r"}),
        json!({"ok": true, "latest_ami": null, "instances": [7], "unmanaged": [], "summary": {},
               "checks": {"bootstrap_bucket": "unset"}, "request_id": "r"}),
    ] {
        assert!(
            serde_json::from_value::<StatusAnswer>(v.clone()).is_err(),
            "{v}"
        );
    }
}

#[test]
fn an_empty_fleet_and_new_counters_and_flags() {
    let v = json!({"ok": true, "latest_ami": null, "instances": [], "unmanaged": [], "summary": {},
                   "checks": {"bootstrap_bucket": "unset"}, "request_id": "r"});
    assert_eq!(
        render_status(&status(&v)),
        "ID  EC2 ID  STATE  READY  AMI  IP  FLAGS\n(no instances)\nlatest AMI: unknown\nsummary: 0 total, 0 running, 0 stopped, 0 missing, 0 stale_ami, 0 type_drift, 0 unmanaged\n",
    );
    let mut v = status_sample();
    v["latest_ami"] = json!({"id": "ami-01234567", "name": null, "created": null});
    v["summary"] = json!({"total": 3, "new_counter": 2});
    // A flag a newer server invented reads as `Flag::Other`, shown, never fatal.
    v["instances"][0]["flags"] = json!(["missing", "brand_new_flag"]);
    let answer = status(&v);
    assert_eq!(
        answer.fleet.instances[0].flags,
        [Flag::Missing, Flag::Other]
    );
    let out = render_status(&answer);
    assert!(out.contains("latest AMI: ami-01234567\n"), "{out}");
    assert!(out.ends_with("summary: 3 total, 2 new_counter\n"), "{out}");
    assert!(
        out.lines().nth(1).unwrap().ends_with("missing,other"),
        "{out}"
    );
}

#[test]
fn server_text_cannot_break_the_table_or_add_lines() {
    let mut v = status_sample();
    v["instances"] = json!([{
        "id": "evil\nfleet: deploy queued for all", "host": "h",
        "ec2_instance_id": "x".repeat(200), "state": "running\r\n",
        "ami": null, "ami_name": null, "ami_created": null, "launch_time": null,
        "public_ip": null, "private_ip": null, "instance_type": null,
        "desired_instance_type": "t3.large", "flags": ["missing"]
    }]);
    v["unmanaged"] = json!([]);
    let out = render_status(&status(&v));
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
    assert!(row.ends_with("missing"), "{row}");
}

const REQUEST_ID: &str = "4f1c2a9e-0000-4000-8000-000000000000";

fn deploy_sample() -> Value {
    json!({
        "ok": true, "message": "deploy queued for clawdinator-2", "target": "clawdinator-2",
        "ami_override": null, "caller": "clawdinator-1",
        "checks": {"bootstrap": "ok", "idempotency": "new", "in_flight": "clear"},
        "run_id": null, "run_url": null, "request_id": REQUEST_ID
    })
}

fn deploy(v: &Value) -> DeployAnswer {
    read(v)
}

#[test]
fn deploy_receipt() {
    let v = deploy_sample();
    // No run yet: how to follow it, with the request id `fleet wait` takes.
    assert_eq!(
        render_deploy(&deploy(&v)),
        format!(
            "deploy queued for clawdinator-2 (request {REQUEST_ID})\n\
             run not visible yet; follow it with: fleet wait {REQUEST_ID}\n"
        )
    );
    let mut with_run = v.clone();
    with_run["run_url"] = json!("https://github.com/openclaw/clawdinators/actions/runs/42");
    assert_eq!(
        render_deploy(&deploy(&with_run)),
        format!("deploy queued for clawdinator-2 (request {REQUEST_ID})\nrun: https://github.com/openclaw/clawdinators/actions/runs/42\n")
    );
    // A blank message is built from the target; a request id that is not one
    // `fleet wait` takes is not offered as a command.
    let mut odd = v.clone();
    odd["message"] = json!(" ");
    odd["target"] = json!("all");
    odd["request_id"] = json!("r1; reboot");
    assert_eq!(
        render_deploy(&deploy(&odd)),
        "deploy queued for all (request r1; reboot)\nrun not visible yet\n"
    );
}

#[test]
fn a_dry_run_receipt_says_what_would_have_been_sent_and_never_queued() {
    let mut dry = deploy_sample();
    dry["message"] =
        json!("dry run: would dispatch the deploy of clawdinator-2 (nothing was sent)");
    dry["dispatch"] = json!({
        "dry_run": true, "repo": "openclaw/clawdinators", "workflow": "fleet-deploy.yml",
        "ref": "main", "inputs": {"target": "clawdinator-2"}
    });
    let expected = format!(
        "dry run: would dispatch the deploy of clawdinator-2 (nothing was sent) (request {REQUEST_ID})\n\
         would dispatch: fleet-deploy.yml in openclaw/clawdinators at main\n"
    );
    assert_eq!(render_deploy(&deploy(&dry)), expected);
    // An older server's message said "queued" even for a dry run.
    dry["message"] = json!("deploy queued for clawdinator-2");
    assert_eq!(render_deploy(&deploy(&dry)), expected);
    dry["rollback"] = json!({"from": "ami-0bbbbbbbbbbbbbbbb", "to": "ami-0aaaaaaaaaaaaaaaa"});
    assert!(render_deploy(&deploy(&dry))
        .starts_with("dry run: would dispatch the rollback of clawdinator-2 (nothing was sent)"));
}

#[test]
fn deploy_receipt_with_the_safety_fields() {
    let v = json!({
        "ok": true, "request_id": REQUEST_ID,
        "message": "rollback queued for clawdinator-2", "target": "clawdinator-2",
        "ami_override": "ami-0aaaaaaaaaaaaaaaa", "caller": null,
        "checks": {"bootstrap": "ok", "idempotency": "skipped", "in_flight": "queued"},
        "rollback": {"from": "ami-0bbbbbbbbbbbbbbbb", "to": "ami-0aaaaaaaaaaaaaaaa"},
        "run_id": 42, "run_url": null,
        "warning": "queued behind run 41",
        "replayed": true
    });
    assert_eq!(
        render_deploy(&deploy(&v)),
        format!(
            "rollback queued for clawdinator-2 (request {REQUEST_ID})\n\
             rollback: ami-0bbbbbbbbbbbbbbbb \u{2192} ami-0aaaaaaaaaaaaaaaa\n\
             run: 42\n\
             warning: queued behind run 41\n\
             (replayed: an earlier identical request already answered)\n"
        )
    );
    // Wrong types are not the contract: the answer does not read at all.
    for (field, odd) in [
        ("rollback", json!("x")),
        ("warning", json!(5)),
        ("run_id", json!("7")),
        ("target", json!("x;reboot")),
        ("ami_override", json!("ami-123")),
    ] {
        let mut bad = v.clone();
        bad[field] = odd;
        assert!(
            serde_json::from_value::<DeployAnswer>(bad).is_err(),
            "{field}"
        );
    }
}

fn runs(v: &Value) -> RunsAnswer {
    read(v)
}

#[test]
fn runs_table_from_odd_answers() {
    let empty = json!({"ok": true, "runs": [], "request_id": "r"});
    assert_eq!(
        render_runs(&runs(&empty)),
        "RUN  TARGET  CALLER  STATUS  STARTED  DURATION  REQUEST\n(no runs)\n",
    );
    for v in [
        json!({"ok": true, "request_id": "r"}),
        json!({"ok": true, "runs": null, "request_id": "r"}),
        json!({"ok": true, "runs": {"run_id": 1}, "request_id": "r"}),
        json!({"ok": true, "runs": [7], "request_id": "r"}),
    ] {
        assert!(
            serde_json::from_value::<RunsAnswer>(v.clone()).is_err(),
            "{v}"
        );
    }
    let v = json!({"ok": true, "request_id": "r", "runs": [
        {"run_id": 9, "run_url": "https://x/runs/9", "request_id": null, "status": "completed",
         "conclusion": null, "started": null, "duration_secs": null, "caller": " ",
         "target": "evil\nfleet: line", "step": "ignored in the table"}
    ]});
    let out = render_runs(&runs(&v));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        lines[1],
        "9    evil_fleet:_line  -       completed  -        -         -"
    );
}

#[test]
fn audit_table_from_odd_answers() {
    let audit = |v: Value| render_audit(&read::<AuditAnswer>(&v));
    assert_eq!(
        audit(json!({"ok": true, "records": [], "request_id": "r"})),
        "TIME  PRINCIPAL  CALLER  ACTION  TARGET  AMI  DECISION  STATUS  ERROR  RUN  REQUEST\n(no records)\n"
    );
    let out = audit(json!({"ok": true, "request_id": "r", "records": [
        {"request_id": "", "time": "t", "principal": "shared", "caller": null, "action": "status",
         "target": null, "ami_override": null, "decision": "accepted", "status": 200,
         "error": null, "run_id": null, "run_url": null}
    ]}));
    assert_eq!(
        out.lines().nth(1).unwrap(),
        "t     shared     -       status  -       -    accepted  200     -      -    -"
    );
}

fn finished(conclusion: Option<&str>, duration_secs: Option<u64>) -> WorkflowRun {
    WorkflowRun {
        mode: Default::default(),
        run_id: 123,
        run_url: "https://github.com/openclaw/clawdinators/actions/runs/123".to_owned(),
        request_id: None,
        target: None,
        caller: None,
        status: "completed".to_owned(),
        conclusion: conclusion.map(str::to_owned),
        started: None,
        duration_secs,
        step: None,
        summary: None,
    }
}

#[test]
fn run_summary_line() {
    let url = "https://github.com/openclaw/clawdinators/actions/runs/123";
    assert_eq!(
        render_run_summary("run 123", &finished(Some("success"), Some(252))),
        format!("run 123 concluded success in 4m12s: {url}\n")
    );
    assert_eq!(
        render_run_summary("run 123", &finished(None, None)),
        format!("run 123 concluded unknown: {url}\n")
    );
    assert_eq!(
        render_run_summary("run 123", &finished(Some("a b\nc"), None)),
        format!("run 123 concluded a_b_c: {url}\n")
    );
}

#[test]
fn a_plan_receipt_and_a_plans_run_say_plan() {
    let mut v = deploy_sample();
    v["message"] = json!("plan queued for clawdinator-2");
    v["mode"] = json!("plan");
    v["checks"]["in_flight"] = json!("skipped");
    v["run_url"] = json!("https://github.com/openclaw/clawdinators/actions/runs/42");
    v["warning"] = json!("clawdinator-2 is locked by human:ops until 2026-11-25T11:00:00Z: debugging; the plan runs anyway: it changes nothing");
    assert_eq!(
        render_deploy(&deploy(&v)),
        format!(
            "plan queued for clawdinator-2 (request {REQUEST_ID})\n\
             run: https://github.com/openclaw/clawdinators/actions/runs/42\n\
             warning: clawdinator-2 is locked by human:ops until 2026-11-25T11:00:00Z: debugging; the plan runs anyway: it changes nothing\n"
        )
    );
    let listed = json!({"ok": true, "request_id": "r", "runs": [
        {"run_id": 9, "run_url": "https://x/runs/9", "request_id": "q", "mode": "plan",
         "status": "completed", "conclusion": "success", "started": null, "duration_secs": null,
         "caller": "clawdinator-1", "target": "all", "step": null}
    ]});
    let out = render_runs(&runs(&listed));
    assert_eq!(
        out.lines().nth(1).unwrap(),
        "9    all (plan)  clawdinator-1  completed/success  -        -         q"
    );
}
