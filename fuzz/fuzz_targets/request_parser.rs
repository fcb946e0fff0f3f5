//! `control_api::domain::request::parse_command` on arbitrary bytes.
//!
//! Never panics; on success the command obeys the documented rules (checked here by
//! hand-written predicates, not by calling the parser's own helpers) and survives a
//! JSON round trip; body-level refusals (invalid_json, invalid_body, duplicate_field)
//! agree with plain serde_json; other refusals are stable snake_case codes that echo
//! nothing long or multi-line.

#![no_main]

use std::fmt;

use control_api::domain::registry::InstanceId;
use control_api::domain::request::{parse_command, Command, RequestError, RunRef, Target};
use libfuzzer_sys::fuzz_target;
use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{json, Map, Value};

fuzz_target!(|data: &[u8]| {
    let result = parse_command(data);
    check_classification(data, &result);
    match result {
        Ok(cmd) => check_command(&cmd),
        Err(e) => check_error(&e),
    }
});

/// The body-level refusals agree with plain serde_json: text serde_json refuses is
/// `invalid_json` (whatever else is wrong with it, e.g. a repeated key before the syntax
/// error), a well-formed non-object is `invalid_body`, and a well-formed object is neither.
/// This check found the misclassifications fixed in 15477c1 (fuzz/artifacts-found/).
fn check_classification(data: &[u8], result: &Result<Command, RequestError>) {
    let code = result.as_ref().err().map(RequestError::code);
    match serde_json::from_slice::<Value>(data) {
        Err(_) => assert_eq!(
            code,
            Some("invalid_json"),
            "serde_json refuses {}",
            show(data)
        ),
        Ok(Value::Object(_)) => {
            assert!(
                !matches!(code, Some("invalid_json" | "invalid_body")),
                "well-formed object refused as {code:?}: {}",
                show(data)
            );
            // A repeated top-level key (after unescaping) is always refused as such:
            // `{"target":"clawdinator-2","target":"all"}` must not mean either one.
            let keys = serde_json::from_slice::<TopLevelKeys>(data)
                .expect("well-formed")
                .0;
            let mut unique = keys.clone();
            unique.sort();
            unique.dedup();
            if unique.len() != keys.len() {
                assert_eq!(
                    code,
                    Some("duplicate_field"),
                    "repeated key in {}",
                    show(data)
                );
            } else {
                assert_ne!(
                    code,
                    Some("duplicate_field"),
                    "no repeated key in {}",
                    show(data)
                );
            }
        }
        Ok(_) => assert_eq!(code, Some("invalid_body"), "non-object {}", show(data)),
    }
}

/// The top-level keys of a JSON object, in order, repeats kept.
struct TopLevelKeys(Vec<String>);

impl<'de> Deserialize<'de> for TopLevelKeys {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevelKeys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<TopLevelKeys, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = m.next_key::<String>()? {
                    m.next_value::<IgnoredAny>()?;
                    keys.push(k);
                }
                Ok(TopLevelKeys(keys))
            }
        }
        d.deserialize_map(V)
    }
}

fn check_command(cmd: &Command) {
    if let Some(caller) = cmd.caller() {
        assert!(is_caller(caller.as_str()), "caller {:?}", caller.as_str());
    }
    match cmd {
        Command::Deploy {
            target,
            ami_override,
            ..
        } => {
            check_target(target);
            if let Some(ami) = ami_override {
                assert!(is_ami(ami.as_str()), "ami_override {:?}", ami.as_str());
            }
        }
        Command::Plan {
            target,
            ami_override,
            ..
        } => {
            check_target(target);
            if let Some(ami) = ami_override {
                assert!(is_ami(ami.as_str()), "ami_override {:?}", ami.as_str());
            }
        }
        Command::Rollback { target, .. } | Command::Unlock { target, .. } => check_target(target),
        Command::Lock {
            target,
            reason,
            ttl_secs,
            ..
        } => {
            check_target(target);
            assert!(!reason.trim().is_empty(), "reason {reason:?}");
            assert!((1..=86_400).contains(ttl_secs), "ttl_secs {ttl_secs}");
        }
        Command::Cancel { request_id, .. } => assert!(is_uuid(request_id), "{request_id:?}"),
        Command::Queue { .. } => {}
        Command::Runs { limit, .. } => assert!((1..=50).contains(limit)),
        Command::Audit { limit, .. } => assert!((1..=100).contains(limit)),
        Command::Run {
            run: RunRef::RequestId(id),
            ..
        } => assert!(is_uuid(id), "request_id {id:?}"),
        Command::Run { .. } | Command::Status { .. } | Command::Heartbeat { .. } => {}
    }

    // Round trip: the fields as the fleet CLI sends them must parse to the same command,
    // with absent optionals omitted, sent as null, or sent as "" (all mean "none").
    for style in [Absent::Omit, Absent::Null, Absent::Empty] {
        let body = serde_json::to_vec(&to_json(cmd, style)).expect("serialize");
        match parse_command(&body) {
            Ok(again) => assert_eq!(&again, cmd, "round trip via {}", show(&body)),
            Err(e) => panic!("round trip via {} refused: {e:?}", show(&body)),
        }
    }
}

fn check_target(target: &Target) {
    match target {
        Target::All => assert_eq!(target.as_str(), "all"),
        Target::Instance(id) => {
            let s = id.as_str();
            assert!(is_instance_id(s), "target {s:?}");
            assert_ne!(s, "all", "the literal `all` must be Target::All");
            assert_eq!(InstanceId::parse(s).as_ref(), Ok(id));
        }
    }
}

fn check_error(e: &RequestError) {
    // Stable codes are short snake_case identifiers.
    let code = e.code();
    assert!(
        !code.is_empty()
            && code.len() <= 32
            && code.bytes().all(|c| c.is_ascii_lowercase() || c == b'_'),
        "code {code:?}"
    );
    // parse_command is syntax only; registry membership is `Target::resolve`'s job.
    assert!(!matches!(e, RequestError::UnknownTarget(_)), "{e:?}");
    if let RequestError::UnknownAction(a) = e {
        assert!(a.chars().count() <= 64, "echoed action too long: {a:?}");
        assert!(
            !a.chars().any(char::is_control),
            "echoed action has control: {a:?}"
        );
    }
    let msg = e.to_string();
    assert!(
        !msg.contains('\n') && !msg.contains('\r'),
        "message {msg:?}"
    );
}

#[derive(Clone, Copy)]
enum Absent {
    Omit,
    Null,
    Empty,
}

fn to_json(cmd: &Command, style: Absent) -> Value {
    let mut obj = Map::new();
    let opt = |obj: &mut Map<String, Value>, key: &str, v: Option<&str>| match (v, style) {
        (Some(v), _) => {
            obj.insert(key.into(), json!(v));
        }
        (None, Absent::Omit) => {}
        (None, Absent::Null) => {
            obj.insert(key.into(), Value::Null);
        }
        (None, Absent::Empty) => {
            obj.insert(key.into(), json!(""));
        }
    };
    obj.insert("action".into(), json!(cmd.action()));
    opt(&mut obj, "caller", cmd.caller().map(|c| c.as_str()));
    let flag = |obj: &mut Map<String, Value>, key: &str, on: bool| {
        if on || !matches!(style, Absent::Omit) {
            obj.insert(key.into(), json!(on));
        }
    };
    match cmd {
        Command::Deploy {
            target,
            ami_override,
            queue,
            ..
        } => {
            obj.insert("target".into(), json!(target));
            opt(
                &mut obj,
                "ami_override",
                ami_override.as_ref().map(|a| a.as_str()),
            );
            flag(&mut obj, "queue", *queue);
            opt(&mut obj, "revision", cmd.revision().map(|r| r.as_str()));
        }
        Command::Rollback { target, queue, .. } => {
            obj.insert("target".into(), json!(target));
            flag(&mut obj, "queue", *queue);
            opt(&mut obj, "revision", cmd.revision().map(|r| r.as_str()));
        }
        Command::Plan {
            target,
            ami_override,
            revision,
            ..
        } => {
            obj.insert("target".into(), json!(target));
            opt(
                &mut obj,
                "ami_override",
                ami_override.as_ref().map(|a| a.as_str()),
            );
            opt(&mut obj, "revision", revision.as_ref().map(|r| r.as_str()));
        }
        Command::Lock {
            target,
            reason,
            ttl_secs,
            ..
        } => {
            obj.insert("target".into(), json!(target));
            obj.insert("reason".into(), json!(reason));
            obj.insert("ttl_secs".into(), json!(ttl_secs));
        }
        Command::Unlock { target, .. } => {
            obj.insert("target".into(), json!(target));
        }
        Command::Queue { .. } => {}
        Command::Cancel { request_id, .. } => {
            obj.insert("request_id".into(), json!(request_id));
        }
        Command::Runs { limit, .. } | Command::Audit { limit, .. } => {
            obj.insert("limit".into(), json!(limit));
        }
        Command::Run { run, .. } => match run {
            RunRef::RequestId(id) => {
                obj.insert("request_id".into(), json!(id));
            }
            RunRef::RunId(id) => {
                obj.insert("run_id".into(), json!(id));
            }
        },
        Command::Status {
            include_terminated, ..
        } => {
            if *include_terminated || !matches!(style, Absent::Omit) {
                obj.insert("include_terminated".into(), json!(include_terminated));
            }
        }
        // Every report field is required: sent as the CLI sends them.
        Command::Heartbeat { report, .. } => {
            if let Value::Object(fields) = json!(report) {
                obj.extend(fields);
            }
        }
    }
    Value::Object(obj)
}

/// A hyphenated lowercase UUID, as the parser normalizes request ids.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`
fn is_instance_id(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b[0] != b'-'
        && b.iter()
            .all(|&c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-'))
}

/// `^ami-[0-9a-f]{8}([0-9a-f]{9})?$`
fn is_ami(s: &str) -> bool {
    s.strip_prefix("ami-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// `^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$`
fn is_caller(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=128).contains(&b.len())
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b':' | b'.' | b'_' | b'@' | b'-'))
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
