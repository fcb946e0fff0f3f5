//! A host's report of itself (`action: heartbeat`): its EC2 instance, image, NixOS
//! revision, service health, boot time and agent version, each checked on parsing, and
//! the record the API keeps of the latest one per host (`heartbeats/<id>.json`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::request::{AmiId, RequestError};

/// The state-store key of a host's latest heartbeat.
pub fn heartbeat_key(id: &str) -> String {
    format!("heartbeats/{id}.json")
}

/// A checked string newtype: serialized as the string, deserialized through `parse`, so a
/// record read back from the store holds the same invariants as one just parsed.
macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $field:literal, $expected:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, RequestError> {
                let ok: fn(&str) -> bool = $ok;
                if ok(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(RequestError::InvalidReport($field, $expected))
                }
            }
        }

        string_newtype!($name);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
}

checked_string!(
    /// EC2's instance id: `i-` and 8 or 17 lowercase hex digits.
    Ec2InstanceId,
    "ec2_instance_id",
    "an EC2 instance id like i-0123456789abcdef0",
    |s| s
        .strip_prefix("i-")
        .is_some_and(|h| (h.len() == 8 || h.len() == 17) && lower_hex(h))
);

checked_string!(
    /// The NixOS configuration revision: empty (not built from a clean git tree), or a git
    /// commit in lowercase hex, optionally `-dirty` as flakes mark an unclean tree.
    HostRevision,
    "revision",
    "empty or a git commit in lowercase hex (7 to 64 digits, optionally -dirty)",
    |s| {
        let hex = s.strip_suffix("-dirty").unwrap_or(s);
        s.is_empty() || ((7..=64).contains(&hex.len()) && lower_hex(hex))
    }
);

checked_string!(
    /// The service's state as `systemctl is-active` words it: `active`, `failed`, …
    ServiceState,
    "service",
    "a systemd unit state such as active or failed ([a-z-], 1 to 32)",
    |s| (1..=32).contains(&s.len()) && s.bytes().all(|c| c.is_ascii_lowercase() || c == b'-')
);

checked_string!(
    /// When the host booted, RFC 3339.
    BootTime,
    "booted_at",
    "an RFC 3339 time such as 2026-11-20T10:00:00Z",
    |s| s.len() <= 40 && chrono::DateTime::parse_from_rfc3339(s).is_ok()
);

checked_string!(
    /// The reporting agent's version (the `fleet` CLI's).
    AgentVersion,
    "agent",
    "a version such as 0.1.0 ([A-Za-z0-9.+_-], 1 to 64)",
    |s| {
        (1..=64).contains(&s.len())
            && s.bytes().all(|c| c.is_ascii_alphanumeric() || b".+_-".contains(&c))
    }
);

impl ServiceState {
    /// The one state that counts as working.
    pub const ACTIVE: &'static str = "active";

    pub fn is_active(&self) -> bool {
        self.0 == Self::ACTIVE
    }
}

/// What a host says about itself. Who the host is comes from the credentials (or, for
/// the shared token, the stated `caller`), never from this report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReport {
    pub ec2_instance_id: Ec2InstanceId,
    pub ami: AmiId,
    pub revision: HostRevision,
    pub service: ServiceState,
    pub booted_at: BootTime,
    pub agent: AgentVersion,
}

impl HeartbeatReport {
    /// Reads the report's fields from a request body; every field is required.
    pub fn from_body(obj: &Map<String, Value>) -> Result<Self, RequestError> {
        fn field<'a>(
            obj: &'a Map<String, Value>,
            name: &'static str,
            expected: &'static str,
        ) -> Result<&'a str, RequestError> {
            obj.get(name)
                .and_then(Value::as_str)
                .ok_or(RequestError::InvalidReport(name, expected))
        }
        let ami = field(obj, "ami", "an AMI id like ami-0123456789abcdef0")?;
        Ok(Self {
            ec2_instance_id: Ec2InstanceId::parse(field(obj, "ec2_instance_id", "a string")?)?,
            ami: AmiId::parse(ami).map_err(|_| {
                RequestError::InvalidReport("ami", "an AMI id like ami-0123456789abcdef0")
            })?,
            revision: HostRevision::parse(field(obj, "revision", "a string (empty for none)")?)?,
            service: ServiceState::parse(field(obj, "service", "a string")?)?,
            booted_at: BootTime::parse(field(obj, "booted_at", "a string")?)?,
            agent: AgentVersion::parse(field(obj, "agent", "a string")?)?,
        })
    }
}

/// The latest heartbeat of a host as stored: the report, when the server received it
/// (its own clock, never the host's) and whose credentials sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRecord {
    /// The registry id of the host.
    pub id: String,
    #[serde(flatten)]
    pub report: HeartbeatReport,
    /// RFC 3339, UTC.
    pub received_at: String,
    pub principal: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(s: &str) -> Map<String, Value> {
        serde_json::from_str(s).unwrap()
    }

    const GOOD: &str = r#"{"ec2_instance_id":"i-0123456789abcdef0","ami":"ami-0000000b","revision":"0123abc","service":"active","booted_at":"2026-11-20T10:00:00Z","agent":"0.1.0"}"#;

    #[test]
    fn a_report_is_read_and_written_back() {
        let report = HeartbeatReport::from_body(&body(GOOD)).unwrap();
        assert!(report.service.is_active());
        let back: HeartbeatReport =
            serde_json::from_str(&serde_json::to_string(&report).unwrap()).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn every_field_is_checked() {
        for (field, bad) in [
            ("ec2_instance_id", "i-123"),
            ("ec2_instance_id", "clawdinator-1"),
            ("ami", "ami-1"),
            ("revision", "xyz"),
            ("revision", "abc"),
            ("service", "Active;reboot"),
            ("service", ""),
            ("booted_at", "yesterday"),
            ("agent", "0.1 beta"),
        ] {
            let mut obj = body(GOOD);
            obj.insert(field.into(), Value::String(bad.into()));
            let e = HeartbeatReport::from_body(&obj).unwrap_err();
            assert_eq!(e.code(), "invalid_field", "{field}={bad}");
            assert!(e.to_string().contains(field), "{e}");
        }
        let mut obj = body(GOOD);
        obj.remove("agent");
        assert!(HeartbeatReport::from_body(&obj).is_err());
        for ok in ["", "0123abcdef", "0123abcdef-dirty"] {
            assert!(HostRevision::parse(ok).is_ok(), "{ok}");
        }
    }
}
