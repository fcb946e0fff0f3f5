//! Every JSON example in README.md parses into the wire contract's types: requests
//! through the server's own parser, answers into their contract type. An example's
//! keys must all survive a round trip through the type, so a renamed or misspelled
//! field in the README (or in the code) fails here.

use control_api::contract::{
    parse_command, AuditRecord, DeployAnswer, ErrorBody, EventAnswer, HeartbeatAnswer, LockAnswer,
    QueueAnswer, QueuedAnswer, RunAnswer, StatusAnswer, WorkflowRun,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// Each value in each ```json block of the README.
fn readme_examples() -> Vec<Value> {
    let readme = include_str!("../../README.md");
    let mut values = Vec::new();
    for block in readme.split("```json\n").skip(1) {
        let text = block.split("```").next().unwrap();
        for value in serde_json::Deserializer::from_str(text).into_iter::<Value>() {
            values.push(value.unwrap_or_else(|e| panic!("README json block: {e}\n{text}")));
        }
    }
    values
}

/// Every key of `example` is in `typed` too, recursively (arrays element by element).
fn keys_survive(example: &Value, typed: &Value, path: &str) {
    match (example, typed) {
        (Value::Object(e), Value::Object(t)) => {
            for (k, v) in e {
                let there = t
                    .get(k)
                    .unwrap_or_else(|| panic!("README field {path}.{k} is not in the contract"));
                keys_survive(v, there, &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(t)) => {
            for (i, (a, b)) in e.iter().zip(t).enumerate() {
                keys_survive(a, b, &format!("{path}[{i}]"));
            }
        }
        _ => {}
    }
}

fn check<T: DeserializeOwned + Serialize>(example: &Value, what: &str) {
    let typed: T = serde_json::from_value(example.clone())
        .unwrap_or_else(|e| panic!("README {what} example does not parse: {e}\n{example}"));
    keys_survive(example, &serde_json::to_value(&typed).unwrap(), what);
}

#[test]
fn every_readme_example_is_the_contract() {
    let examples = readme_examples();
    let (mut requests, mut answers) = (0, 0);
    for example in &examples {
        let obj = example.as_object().expect("examples are objects");
        if obj.contains_key("action") && !obj.contains_key("decision") {
            let body = serde_json::to_vec(example).unwrap();
            parse_command(&body).unwrap_or_else(|e| panic!("README request {example}: {e}"));
            requests += 1;
            continue;
        }
        answers += 1;
        match () {
            _ if obj.get("ok") == Some(&Value::Bool(false)) => check::<ErrorBody>(example, "error"),
            _ if obj.contains_key("statusCode") => {
                check::<control_api::contract::InvokeAnswer>(example, "direct invocation");
                let body: Value = serde_json::from_str(obj["body"].as_str().unwrap()).unwrap();
                check::<ErrorBody>(&body, "direct invocation's body");
            }
            _ if obj.contains_key("instances") => check::<StatusAnswer>(example, "status"),
            _ if obj.contains_key("queued") => check::<QueuedAnswer>(example, "queued"),
            _ if obj.contains_key("lock") => check::<LockAnswer>(example, "lock"),
            _ if obj.contains_key("queue") => check::<QueueAnswer>(example, "queue"),
            _ if obj.contains_key("checks") => check::<DeployAnswer>(example, "deploy"),
            _ if obj.contains_key("decision") => check::<AuditRecord>(example, "audit record"),
            _ if obj.contains_key("run_url") => check::<WorkflowRun>(example, "run"),
            _ if obj.contains_key("report") => check::<RunAnswer>(example, "run answer"),
            _ if obj.contains_key("event") => check::<EventAnswer>(example, "event answer"),
            _ if obj.contains_key("received_at") => check::<HeartbeatAnswer>(example, "heartbeat"),
            _ => panic!("README example of no known answer type: {example}"),
        }
    }
    assert!(
        requests >= 6,
        "the request examples were found ({requests})"
    );
    assert!(answers >= 6, "the answer examples were found ({answers})");
}
