//! The fleet registry (`nix/instances.json`): instance ids, their hosts, and the rules a registry must meet.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

/// The registry compiled into the binaries, so a fresh checkout runs with the fleet it ships.
pub const EMBEDDED_REGISTRY: &str = include_str!("../../../nix/instances.json");

/// A fleet instance id such as `clawdinator-2`: `^[a-z0-9][a-z0-9-]{0,62}$`.
///
/// The same rule serves registry keys, deploy targets and bot callers, so a value that
/// passes here is safe to put in a workflow input, an S3 key or a log line.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("instance id must match ^[a-z0-9][a-z0-9-]{{0,62}}$")]
pub struct InvalidInstanceId;

impl InstanceId {
    pub fn parse(s: &str) -> Result<Self, InvalidInstanceId> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 63
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidInstanceId)
        }
    }
}

string_newtype!(InstanceId);

impl<'de> Deserialize<'de> for InstanceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InstanceId::parse(&s)
            .map_err(|_| serde::de::Error::custom(format!("invalid instance id {s:?}")))
    }
}

/// One registry entry, with the seed's field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistryEntry {
    /// The host name; also the EC2 `Name` tag and the `nix/hosts/<host>.nix` file.
    pub host: String,
    pub instance_type: String,
    /// Where the host's bootstrap bundle lives in the bootstrap bucket: `bootstrap/<id>`.
    pub bootstrap_prefix: String,
    /// Name of the secret holding this host's Discord token; one token per instance.
    pub discord_token_secret: String,
}

/// The validated registry: instance id -> entry, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    entries: BTreeMap<InstanceId, RegistryEntry>,
}

/// The hosts and token secrets of the entries checked so far: each belongs to one instance.
#[derive(Default)]
struct Seen {
    hosts: HashSet<String>,
    secrets: HashSet<String>,
}

impl Seen {
    /// What is wrong with one entry, in the order the checks run.
    fn problems(&mut self, id: &InstanceId, entry: &RegistryEntry) -> Vec<String> {
        let mut problems = Vec::new();
        if id.as_str() == "all" {
            problems.push("\"all\": reserved as the deploy target for every instance".to_owned());
        }
        if InstanceId::parse(&entry.host).is_err() {
            problems.push(format!(
                "{id}: host {:?} must match ^[a-z0-9][a-z0-9-]{{0,62}}$",
                entry.host
            ));
        }
        if !self.hosts.insert(entry.host.clone()) {
            problems.push(format!(
                "{id}: host {:?} is used by another instance",
                entry.host
            ));
        }
        let expected_prefix = format!("bootstrap/{id}");
        if entry.bootstrap_prefix != expected_prefix {
            problems.push(format!(
                "{id}: bootstrapPrefix is {:?}, must be {expected_prefix:?}",
                entry.bootstrap_prefix
            ));
        }
        if entry.discord_token_secret.trim().is_empty() {
            problems.push(format!("{id}: discordTokenSecret is empty"));
        } else if !self.secrets.insert(entry.discord_token_secret.clone()) {
            problems.push(format!(
                "{id}: discordTokenSecret {:?} is shared with another instance (one Discord token per instance)",
                entry.discord_token_secret
            ));
        }
        if !is_instance_type(&entry.instance_type) {
            problems.push(format!(
                "{id}: instanceType {:?} is not an EC2 instance type like t3.large",
                entry.instance_type
            ));
        }
        problems
    }
}

/// Why a registry was refused. `Invalid` carries one line per problem.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry is not valid JSON of the expected shape: {0}")]
    Parse(String),
    #[error("registry has {} problem(s):\n{}", .0.len(), .0.join("\n"))]
    Invalid(Vec<String>),
}

impl Registry {
    /// Parses and validates a registry document; every problem is reported, not just the first.
    pub fn from_json(json: &str) -> Result<Self, RegistryError> {
        // Keys are read as plain strings first so that one bad id is reported with the
        // others instead of aborting the parse.
        let raw: BTreeMap<String, RegistryEntry> =
            serde_json::from_str(json).map_err(|e| RegistryError::Parse(e.to_string()))?;
        let mut problems = Vec::new();
        let mut entries = BTreeMap::new();
        let mut seen = Seen::default();
        if raw.is_empty() {
            problems.push("registry has no instances".to_owned());
        }
        for (key, entry) in raw {
            let Ok(id) = InstanceId::parse(&key) else {
                problems.push(format!(
                    "{key:?}: instance id must match ^[a-z0-9][a-z0-9-]{{0,62}}$"
                ));
                continue;
            };
            problems.extend(seen.problems(&id, &entry));
            entries.insert(id, entry);
        }
        if problems.is_empty() {
            Ok(Self { entries })
        } else {
            Err(RegistryError::Invalid(problems))
        }
    }

    /// The registry compiled into this binary.
    pub fn embedded() -> Result<Self, RegistryError> {
        Self::from_json(EMBEDDED_REGISTRY)
    }

    /// Looks an id up by its text; the returned key is the registry's own, already checked.
    pub fn get(&self, id: &str) -> Option<(&InstanceId, &RegistryEntry)> {
        self.entries.get_key_value(id)
    }

    pub fn contains(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&InstanceId, &RegistryEntry)> {
        self.entries.iter()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::borrow::Borrow<str> for InstanceId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

/// EC2 instance type syntax: family (letters, digits, optional `-` suffix parts) `.` size,
/// e.g. `t3.large`, `m7g.2xlarge`, `u-6tb1.metal`, `c6in.metal`.
fn is_instance_type(s: &str) -> bool {
    let Some((family, size)) = s.split_once('.') else {
        return false;
    };
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
    };
    word(family)
        && word(size)
        && family.as_bytes()[0].is_ascii_lowercase()
        && family.bytes().any(|c| c.is_ascii_digit())
        && !size.contains('.')
        && s.len() <= 32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_registry_is_valid_and_has_the_three_seed_instances() {
        let r = Registry::embedded().unwrap();
        let ids: Vec<_> = r.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(
            ids,
            ["clawdinator-1", "clawdinator-2", "clawdinator-babelfish"]
        );
        let (_, e) = r.get("clawdinator-2").unwrap();
        assert_eq!(e.bootstrap_prefix, "bootstrap/clawdinator-2");
    }

    #[test]
    fn instance_id_rules() {
        for ok in ["a", "clawdinator-1", "0abc", &"a".repeat(63)] {
            assert!(InstanceId::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "A",
            "a_b",
            "a b",
            "a\n",
            "clawdinator-1 ",
            "с1",
            &"a".repeat(64),
            "a;rm",
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn instance_types() {
        for ok in [
            "t3.large",
            "m7g.2xlarge",
            "c6in.metal",
            "u-6tb1.metal",
            "t4g.nano",
        ] {
            assert!(is_instance_type(ok), "{ok}");
        }
        for bad in [
            "",
            "t3",
            "large",
            "t3.",
            ".large",
            "T3.large",
            "t3.large.x",
            "tx.large",
        ] {
            assert!(!is_instance_type(bad), "{bad:?}");
        }
    }

    #[test]
    fn every_problem_is_reported() {
        let json = r#"{
          "Bad_Id": {"host":"x","instanceType":"t3.large","bootstrapPrefix":"bootstrap/x","discordTokenSecret":"s0"},
          "a": {"host":"h","instanceType":"t3.large","bootstrapPrefix":"bootstrap/a","discordTokenSecret":"s"},
          "b": {"host":"h","instanceType":"huge","bootstrapPrefix":"bootstrap/a","discordTokenSecret":"s"}
        }"#;
        let RegistryError::Invalid(problems) = Registry::from_json(json).unwrap_err() else {
            panic!("expected Invalid")
        };
        let text = problems.join("\n");
        assert_eq!(problems.len(), 5, "{text}");
        assert!(text.contains("\"Bad_Id\": instance id"));
        assert!(text.contains("b: host \"h\" is used by another instance"));
        assert!(text.contains("b: bootstrapPrefix is \"bootstrap/a\", must be \"bootstrap/b\""));
        assert!(text.contains("b: discordTokenSecret \"s\" is shared"));
        assert!(text.contains("b: instanceType \"huge\""));
    }

    #[test]
    fn unknown_fields_and_wrong_shapes_are_parse_errors() {
        assert!(matches!(
            Registry::from_json("[]"),
            Err(RegistryError::Parse(_))
        ));
        let extra = r#"{"a":{"host":"a","instanceType":"t3.large","bootstrapPrefix":"bootstrap/a","discordTokenSecret":"s","ami":"x"}}"#;
        assert!(matches!(
            Registry::from_json(extra),
            Err(RegistryError::Parse(_))
        ));
        assert!(matches!(
            Registry::from_json("{}"),
            Err(RegistryError::Invalid(_))
        ));
    }
}
