//! What a caller asks for: the JSON body `{"action","target","caller","ami_override",…}`
//! parsed into checked types, and written back (the `fleet` CLI builds its bodies from the
//! same [`Command`]; `crate::contract` names it the wire's `Request`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::heartbeat::HeartbeatReport;
use super::lock::{DEFAULT_TTL_SECS, MAX_REASON_CHARS, MAX_TTL_SECS};
use super::registry::{InstanceId, Registry};

/// The largest body the API reads (16 KiB); a deploy request is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A `limit` field: its default when absent and its largest value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub default: u8,
    pub max: u8,
}

/// `runs`: how many runs.
pub const RUNS_LIMIT: Limit = Limit {
    default: 10,
    max: 50,
};
/// `audit`: how many records.
pub const AUDIT_LIMIT: Limit = Limit {
    default: 20,
    max: 100,
};

/// Deserializes a checked newtype through its `parse`, so a value read from the wire
/// (an answer, say) holds the same invariants as one the server parsed.
macro_rules! deserialize_via_parse {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
deserialize_via_parse!(Target);
deserialize_via_parse!(AmiId);
deserialize_via_parse!(Caller);
deserialize_via_parse!(Revision);

/// A deploy target: every instance, or one registry instance id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    All,
    Instance(InstanceId),
}

impl Target {
    /// Checks syntax only: `all` or an instance id. Whether the id is in the registry is
    /// [`Target::resolve`]'s job, because the two refusals have different status codes.
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        if s == "all" {
            return Ok(Self::All);
        }
        InstanceId::parse(s)
            .map(Self::Instance)
            .map_err(|_| RequestError::InvalidTarget)
    }

    /// Checks that an instance target is in the registry.
    pub fn resolve(self, registry: &Registry) -> Result<Self, RequestError> {
        self.check_known(registry)?;
        Ok(self)
    }

    /// [`Target::resolve`]'s check, for a target that stays where it is.
    pub fn check_known(&self, registry: &Registry) -> Result<(), RequestError> {
        match self {
            Self::Instance(id) if !registry.contains(id.as_str()) => {
                Err(RequestError::UnknownTarget(id.clone()))
            }
            _ => Ok(()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::All => "all",
            Self::Instance(id) => id.as_str(),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// An AMI id: `ami-` and 8 or 17 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct AmiId(String);

impl AmiId {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let ok = s.strip_prefix("ami-").is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17)
                && hex
                    .bytes()
                    .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RequestError::InvalidAmi)
        }
    }
}

string_newtype!(AmiId);

/// A commit of the fleet repo, as the deploy workflow checks it out: a full SHA-1, 40
/// hex digits, kept lowercase. Only full SHAs: a short one can become ambiguous later,
/// and a branch name would move under the deploy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Revision(String);

impl Revision {
    /// How many digits chat and the CLI show.
    pub const SHORT: usize = 7;

    pub fn parse(s: &str) -> Result<Self, RequestError> {
        if s.len() == 40 && s.bytes().all(|c| c.is_ascii_hexdigit()) {
            Ok(Self(s.to_ascii_lowercase()))
        } else {
            Err(RequestError::InvalidRevision)
        }
    }

    /// The first seven digits, for people.
    pub fn short(&self) -> &str {
        &self.0[..Self::SHORT]
    }
}

string_newtype!(Revision);

/// Who says they are calling: a bot's instance id or a human's handle, as the client reports it.
/// `^[A-Za-z0-9][A-Za-z0-9:._@-]{0,127}$`, so it is safe to log and to pass on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Caller(String);

impl Caller {
    pub fn parse(s: &str) -> Result<Self, RequestError> {
        let b = s.as_bytes();
        let ok = !b.is_empty()
            && b.len() <= 128
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b":._@-".contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(RequestError::InvalidCaller)
        }
    }
}

string_newtype!(Caller);

/// Which run `action: run` asks about: `{"request_id": …}` or `{"run_id": …}` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunRef {
    /// The control API's request id (a UUID), which the run name carries.
    RequestId(String),
    /// GitHub's run id.
    RunId(u64),
}

/// A parsed, syntactically valid command: one variant per action. Registry membership
/// and policy come later. Serializes to the body that [`parse_command`] reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Command {
    Deploy {
        target: Target,
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ami_override: Option<AmiId>,
        /// Dispatch even while another deploy runs (humans only).
        #[serde(skip_serializing_if = "is_false")]
        queue: bool,
        /// The commit to deploy (humans only); else whatever `GITHUB_REF` points to.
        #[serde(skip_serializing_if = "Option::is_none")]
        revision: Option<Revision>,
    },
    /// Plan a deploy of `target` (the same workflow, `mode` plan): every check and
    /// `tofu plan`, nothing applied. No lease, never queued; a lock only warns.
    Plan {
        target: Target,
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ami_override: Option<AmiId>,
        /// The commit to plan (humans only); else whatever `GITHUB_REF` points to.
        #[serde(skip_serializing_if = "Option::is_none")]
        revision: Option<Revision>,
    },
    /// Redeploy `target` on the fleet image before its current one.
    Rollback {
        target: Target,
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(skip_serializing_if = "is_false")]
        queue: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        revision: Option<Revision>,
    },
    Status {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(skip_serializing_if = "is_false")]
        include_terminated: bool,
    },
    /// The newest deploy runs.
    Runs {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        limit: u8,
    },
    /// One deploy run, with its current step.
    Run {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(flatten)]
        run: RunRef,
    },
    /// The newest audit records (humans only).
    Audit {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        limit: u8,
    },
    /// A host reporting itself (bots only, each for itself).
    Heartbeat {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        #[serde(flatten)]
        report: HeartbeatReport,
    },
    /// Hold deploys of `target` (`all` or a host) for `ttl_secs`.
    Lock {
        target: Target,
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        reason: String,
        ttl_secs: u32,
    },
    /// Release the lock on `target`.
    Unlock {
        target: Target,
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
    },
    /// The queued deploys, in order, and the lease.
    Queue {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
    },
    /// Remove a queued deploy (its requester, or any human).
    Cancel {
        #[serde(skip_serializing_if = "Option::is_none")]
        caller: Option<Caller>,
        request_id: String,
    },
}

fn is_false(b: &bool) -> bool {
    !b
}

impl Command {
    pub fn action(&self) -> &'static str {
        match self {
            Self::Deploy { .. } => "deploy",
            Self::Rollback { .. } => "rollback",
            Self::Plan { .. } => "plan",
            Self::Status { .. } => "status",
            Self::Runs { .. } => "runs",
            Self::Run { .. } => "run",
            Self::Audit { .. } => "audit",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Lock { .. } => "lock",
            Self::Unlock { .. } => "unlock",
            Self::Queue { .. } => "queue",
            Self::Cancel { .. } => "cancel",
        }
    }

    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Self::Deploy { caller, .. }
            | Self::Rollback { caller, .. }
            | Self::Plan { caller, .. }
            | Self::Status { caller, .. }
            | Self::Runs { caller, .. }
            | Self::Run { caller, .. }
            | Self::Audit { caller, .. }
            | Self::Heartbeat { caller, .. }
            | Self::Lock { caller, .. }
            | Self::Unlock { caller, .. }
            | Self::Queue { caller }
            | Self::Cancel { caller, .. } => caller.as_ref(),
        }
    }

    /// The caller field, for a client that builds a command before it knows who asks.
    pub fn caller_mut(&mut self) -> &mut Option<Caller> {
        match self {
            Self::Deploy { caller, .. }
            | Self::Rollback { caller, .. }
            | Self::Plan { caller, .. }
            | Self::Status { caller, .. }
            | Self::Runs { caller, .. }
            | Self::Run { caller, .. }
            | Self::Audit { caller, .. }
            | Self::Heartbeat { caller, .. }
            | Self::Lock { caller, .. }
            | Self::Unlock { caller, .. }
            | Self::Queue { caller }
            | Self::Cancel { caller, .. } => caller,
        }
    }

    /// The revision a deploy, rollback or plan asks for.
    pub fn revision(&self) -> Option<&Revision> {
        match self {
            Self::Deploy { revision, .. }
            | Self::Rollback { revision, .. }
            | Self::Plan { revision, .. } => revision.as_ref(),
            _ => None,
        }
    }

    /// Whether the command dispatches the deploy workflow (and so takes an idempotency
    /// key): a deploy, a rollback or a plan.
    pub fn deploys(&self) -> bool {
        matches!(
            self,
            Self::Deploy { .. } | Self::Rollback { .. } | Self::Plan { .. }
        )
    }
}

/// Why a request body was refused. Each has a stable code for clients.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("request body is not valid JSON")]
    InvalidJson,
    #[error("request body must be a JSON object")]
    NotAnObject,
    #[error("request body has a field more than once")]
    DuplicateField,
    #[error("field {0:?} must be a {1}")]
    WrongType(&'static str, &'static str),
    #[error("field \"action\" is required")]
    MissingAction,
    #[error("unknown action {0:?}; expected one of deploy, rollback, plan, status, runs, run, audit, heartbeat, lock, unlock, queue, cancel")]
    UnknownAction(String),
    #[error("field \"target\" is required for deploy: \"all\" or an instance id")]
    MissingTarget,
    #[error("target must be \"all\" or an instance id matching ^[a-z0-9][a-z0-9-]{{0,62}}$")]
    InvalidTarget,
    #[error("target \"{0}\" is not in the fleet registry")]
    UnknownTarget(InstanceId),
    #[error("ami_override must be empty or an AMI id like ami-0123456789abcdef0")]
    InvalidAmi,
    #[error(
        "ami_override {0} is not a fleet image (owned by this account and tagged as the fleet's)"
    )]
    UnknownAmi(AmiId),
    #[error("revision must be a full commit SHA: 40 hexadecimal digits")]
    InvalidRevision,
    #[error("caller must match ^[A-Za-z0-9][A-Za-z0-9:._@-]{{0,127}}$")]
    InvalidCaller,
    #[error("field {0:?} must be a whole number from 1 to {1}")]
    OutOfRange(&'static str, u8),
    #[error("action run needs exactly one of request_id (a UUID) or run_id (a number)")]
    MissingRun,
    #[error("request_id must be a UUID such as 0190c0de-0000-7000-8000-000000000000")]
    InvalidRequestId,
    /// A heartbeat field missing or malformed: the field and what it must be.
    #[error("field {0:?} must be {1}")]
    InvalidReport(&'static str, &'static str),
    #[error("lock needs a reason: 1 to 200 characters on one line")]
    InvalidReason,
    #[error("ttl_secs must be a whole number from 1 to 86400")]
    InvalidTtl,
}

impl RequestError {
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::NotAnObject => "invalid_body",
            Self::DuplicateField => "duplicate_field",
            Self::WrongType(..) => "invalid_field",
            Self::MissingAction => "missing_action",
            Self::UnknownAction(_) => "unknown_action",
            Self::MissingTarget => "missing_target",
            Self::InvalidTarget => "invalid_target",
            Self::UnknownTarget(_) => "unknown_target",
            Self::InvalidAmi => "invalid_ami",
            Self::UnknownAmi(_) => "unknown_ami",
            Self::InvalidCaller => "invalid_caller",
            Self::InvalidRevision => "invalid_revision",
            Self::OutOfRange(..) => "invalid_field",
            Self::MissingRun => "missing_run",
            Self::InvalidRequestId => "invalid_request_id",
            Self::InvalidReport(..) | Self::InvalidReason | Self::InvalidTtl => "invalid_field",
        }
    }
}

/// Parses a request body. Unknown fields are ignored (the seed's clients send a
/// `control_token` field, which is never read, echoed or logged).
pub fn parse_command(body: &[u8]) -> Result<Command, RequestError> {
    let obj = parse_object(body)?;
    let action = match obj.get("action") {
        None | Some(Value::Null) => return Err(RequestError::MissingAction),
        Some(Value::String(s)) => s,
        Some(_) => return Err(RequestError::WrongType("action", "string")),
    };
    let caller = optional_str(&obj, "caller")?
        .filter(|s| !s.is_empty())
        .map(Caller::parse)
        .transpose()?;
    let fields = Fields { obj: &obj, caller };
    // The seed lowercased the action; keep accepting "Deploy" from old clients.
    let name = action.to_ascii_lowercase();
    for family in [Fields::dispatch, Fields::read, Fields::hold] {
        if let Some(command) = family(&fields, &name)? {
            return Ok(command);
        }
    }
    Err(RequestError::UnknownAction(truncate(action, 64)))
}

/// A body's fields once its caller is read. Each family of actions reads the rest of its
/// own, field by field in a fixed order, so the first bad field is the one refused.
struct Fields<'a> {
    obj: &'a Map<String, Value>,
    caller: Option<Caller>,
}

impl Fields<'_> {
    /// `deploy`, `plan` and `rollback`; `None` for any other action.
    fn dispatch(&self, action: &str) -> Result<Option<Command>, RequestError> {
        let (obj, caller) = (self.obj, self.caller.clone());
        Ok(Some(match action {
            "deploy" => Command::Deploy {
                target: self.target()?,
                caller,
                ami_override: ami_override(obj)?,
                queue: optional_bool(obj, "queue")?,
                revision: self.revision()?,
            },
            "plan" => Command::Plan {
                target: self.target()?,
                caller,
                ami_override: ami_override(obj)?,
                revision: self.revision()?,
            },
            "rollback" => Command::Rollback {
                target: self.target()?,
                caller,
                queue: optional_bool(obj, "queue")?,
                revision: self.revision()?,
            },
            _ => return Ok(None),
        }))
    }

    /// `status`, `runs`, `audit`, `run` and `heartbeat`; `None` for any other action.
    fn read(&self, action: &str) -> Result<Option<Command>, RequestError> {
        let (obj, caller) = (self.obj, self.caller.clone());
        Ok(Some(match action {
            "status" => Command::Status {
                caller,
                include_terminated: optional_bool(obj, "include_terminated")?,
            },
            "runs" => Command::Runs {
                caller,
                limit: limit(obj, RUNS_LIMIT)?,
            },
            "audit" => Command::Audit {
                caller,
                limit: limit(obj, AUDIT_LIMIT)?,
            },
            "run" => Command::Run {
                caller,
                run: run_ref(obj)?,
            },
            "heartbeat" => Command::Heartbeat {
                caller,
                report: HeartbeatReport::from_body(obj)?,
            },
            _ => return Ok(None),
        }))
    }

    /// `lock`, `unlock`, `queue` and `cancel`; `None` for any other action.
    fn hold(&self, action: &str) -> Result<Option<Command>, RequestError> {
        let (obj, caller) = (self.obj, self.caller.clone());
        Ok(Some(match action {
            "lock" => Command::Lock {
                target: self.target()?,
                caller,
                reason: reason(obj)?,
                ttl_secs: ttl_secs(obj)?,
            },
            "unlock" => Command::Unlock {
                target: self.target()?,
                caller,
            },
            "queue" => Command::Queue { caller },
            "cancel" => Command::Cancel {
                caller,
                request_id: match optional_str(obj, "request_id")? {
                    Some(id) => request_id(id)?,
                    None => return Err(RequestError::InvalidRequestId),
                },
            },
            _ => return Ok(None),
        }))
    }

    /// `target`: required where an action takes one.
    fn target(&self) -> Result<Target, RequestError> {
        match optional_str(self.obj, "target")? {
            None | Some("") => Err(RequestError::MissingTarget),
            Some(t) => Target::parse(t),
        }
    }

    /// `revision`: empty or absent is none.
    fn revision(&self) -> Result<Option<Revision>, RequestError> {
        optional_str(self.obj, "revision")?
            .filter(|s| !s.is_empty())
            .map(Revision::parse)
            .transpose()
    }
}

/// `request_id` (a UUID) or `run_id` (a positive number), exactly one of them.
fn run_ref(obj: &Map<String, Value>) -> Result<RunRef, RequestError> {
    let request_id = optional_str(obj, "request_id")?.filter(|s| !s.is_empty());
    let run_id = match obj.get("run_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|&n| n > 0)
                .ok_or(RequestError::WrongType("run_id", "positive whole number"))?,
        ),
    };
    match (request_id, run_id) {
        (Some(id), None) => Ok(RunRef::RequestId(self::request_id(id)?)),
        (None, Some(id)) => Ok(RunRef::RunId(id)),
        _ => Err(RequestError::MissingRun),
    }
}

/// A request id: a UUID, written the one way the API writes them.
fn request_id(id: &str) -> Result<String, RequestError> {
    Ok(uuid::Uuid::try_parse(id)
        .map_err(|_| RequestError::InvalidRequestId)?
        .hyphenated()
        .to_string())
}

/// A lock's `reason`: required, one line, at most [`MAX_REASON_CHARS`] characters.
fn reason(obj: &Map<String, Value>) -> Result<String, RequestError> {
    let reason = optional_str(obj, "reason")?.unwrap_or_default().trim();
    let ok = !reason.is_empty()
        && reason.chars().count() <= MAX_REASON_CHARS
        && !reason.chars().any(char::is_control);
    ok.then(|| reason.to_owned())
        .ok_or(RequestError::InvalidReason)
}

/// A lock's `ttl_secs`: 1 to a day, default an hour.
fn ttl_secs(obj: &Map<String, Value>) -> Result<u32, RequestError> {
    match obj.get("ttl_secs") {
        None | Some(Value::Null) => Ok(DEFAULT_TTL_SECS),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(MAX_TTL_SECS)).contains(n))
            .map(|n| n as u32)
            .ok_or(RequestError::InvalidTtl),
    }
}

/// `ami_override`: empty or absent is none.
fn ami_override(obj: &Map<String, Value>) -> Result<Option<AmiId>, RequestError> {
    optional_str(obj, "ami_override")?
        .filter(|s| !s.is_empty())
        .map(AmiId::parse)
        .transpose()
}

fn optional_bool(obj: &Map<String, Value>, field: &'static str) -> Result<bool, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(RequestError::WrongType(field, "boolean")),
    }
}

fn limit(obj: &Map<String, Value>, limit: Limit) -> Result<u8, RequestError> {
    match obj.get("limit") {
        None | Some(Value::Null) => Ok(limit.default),
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=u64::from(limit.max)).contains(n))
            .map(|n| n as u8)
            .ok_or(RequestError::OutOfRange("limit", limit.max)),
    }
}

/// Parses a JSON object, refusing a repeated field: `{"target":"clawdinator-2","target":"all"}`
/// must not mean whichever a particular parser happens to keep.
fn parse_object(body: &[u8]) -> Result<Map<String, Value>, RequestError> {
    use serde::de::{self, Deserializer, MapAccess, Visitor};

    const DUPLICATE: &str = "duplicate field";
    struct UniqueKeys;
    impl<'de> Visitor<'de> for UniqueKeys {
        type Value = Map<String, Value>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = Map::new();
            while let Some(key) = access.next_key::<String>()? {
                if map.contains_key(&key) {
                    return Err(de::Error::custom(DUPLICATE));
                }
                let value: Value = access.next_value()?;
                map.insert(key, value);
            }
            Ok(map)
        }
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = de
        .deserialize_map(UniqueKeys)
        .and_then(|map| de.end().map(|()| map));
    parsed.map_err(|e| {
        // Only on the error path: is the body valid JSON at all? A full `Value` parse, so
        // UTF-8, lone surrogates and number range count too (found by the fuzzer).
        if serde_json::from_slice::<Value>(body).is_err() {
            RequestError::InvalidJson
        } else if e.is_data() && e.to_string().starts_with(DUPLICATE) {
            RequestError::DuplicateField
        } else {
            RequestError::NotAnObject
        }
    })
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, RequestError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(RequestError::WrongType(field, "string")),
    }
}

/// Keeps an echoed value short and on one line.
fn truncate(s: &str, max: usize) -> String {
    s.chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Command, RequestError> {
        parse_command(s.as_bytes())
    }

    #[test]
    fn a_caller_set_after_building_is_sent() {
        let target = Target::Instance(InstanceId::parse("clawdinator-2").unwrap());
        for mut command in [
            Command::Queue { caller: None },
            Command::Rollback {
                target: target.clone(),
                caller: None,
                queue: true,
                revision: None,
            },
            Command::Unlock {
                target,
                caller: None,
            },
        ] {
            *command.caller_mut() = Some(Caller::parse("human:ops").unwrap());
            assert_eq!(command.caller().map(Caller::as_str), Some("human:ops"));
            let body = serde_json::to_vec(&command).unwrap();
            assert_eq!(parse_command(&body).unwrap(), command);
        }
    }

    #[test]
    fn deploy_with_every_field() {
        let c = parse(r#"{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-1","ami_override":"ami-0123456789abcdef0","control_token":"x"}"#).unwrap();
        assert_eq!(
            c,
            Command::Deploy {
                target: Target::Instance(InstanceId::parse("clawdinator-2").unwrap()),
                caller: Some(Caller::parse("clawdinator-1").unwrap()),
                ami_override: Some(AmiId::parse("ami-0123456789abcdef0").unwrap()),
                queue: false,
                revision: None,
            }
        );
    }

    #[test]
    fn empty_optional_fields_mean_none() {
        let c =
            parse(r#"{"action":"DEPLOY","target":"all","caller":"","ami_override":""}"#).unwrap();
        assert_eq!(
            c,
            Command::Deploy {
                target: Target::All,
                caller: None,
                ami_override: None,
                queue: false,
                revision: None,
            }
        );
    }

    #[test]
    fn status_flags() {
        assert_eq!(
            parse(r#"{"action":"status","include_terminated":true}"#).unwrap(),
            Command::Status {
                caller: None,
                include_terminated: true
            }
        );
        assert_eq!(
            parse(r#"{"action":"status","include_terminated":"yes"}"#),
            Err(RequestError::WrongType("include_terminated", "boolean"))
        );
    }

    #[test]
    fn refusals_have_stable_codes() {
        let cases = [
            ("not json", "invalid_json"),
            ("[1]", "invalid_body"),
            ("[1,", "invalid_json"),
            ("1", "invalid_body"),
            ("null", "invalid_body"),
            ("{} {}", "invalid_json"),
            (
                r#"{"action":"deploy","target":"clawdinator-2","target":"all"}"#,
                "duplicate_field",
            ),
            // Found by the request_parser fuzz target: malformed JSON is invalid_json, whatever else.
            (r#"{"action":"sat}","action""#, "invalid_json"),
            ("[\"\\ud800\"]", "invalid_json"),
            ("[1e999]", "invalid_json"),
            ("\"deploy\"", "invalid_body"),
            ("{}", "missing_action"),
            (r#"{"action":1}"#, "invalid_field"),
            (r#"{"action":"reboot"}"#, "unknown_action"),
            (r#"{"action":"deploy"}"#, "missing_target"),
            (r#"{"action":"deploy","target":""}"#, "missing_target"),
            (r#"{"action":"deploy","target":5}"#, "invalid_field"),
            (r#"{"action":"deploy","target":"all "}"#, "invalid_target"),
            (r#"{"action":"deploy","target":"ALL"}"#, "invalid_target"),
            (
                r#"{"action":"deploy","target":"x;reboot"}"#,
                "invalid_target",
            ),
            (
                r#"{"action":"deploy","target":"clawdinator-1\n"}"#,
                "invalid_target",
            ),
            (
                r#"{"action":"deploy","target":"all","ami_override":"ami-123"}"#,
                "invalid_ami",
            ),
            (
                r#"{"action":"deploy","target":"all","ami_override":"ami-0123456789abcdef0 "}"#,
                "invalid_ami",
            ),
            (
                r#"{"action":"deploy","target":"all","ami_override":"ami-0123456G"}"#,
                "invalid_ami",
            ),
            (
                r#"{"action":"deploy","target":"all","ami_override":7}"#,
                "invalid_field",
            ),
            (
                r#"{"action":"deploy","target":"all","caller":"a b"}"#,
                "invalid_caller",
            ),
            (
                r#"{"action":"deploy","target":"all","caller":false}"#,
                "invalid_field",
            ),
        ];
        for (body, code) in cases {
            assert_eq!(parse(body).map_err(|e| e.code()), Err(code), "{body}");
        }
    }

    #[test]
    fn deploy_safety_actions() {
        assert_eq!(
            parse(r#"{"action":"rollback","target":"clawdinator-2","queue":true}"#).unwrap(),
            Command::Rollback {
                target: Target::parse("clawdinator-2").unwrap(),
                caller: None,
                queue: true,
                revision: None,
            }
        );
        assert_eq!(
            parse(r#"{"action":"runs"}"#).unwrap(),
            Command::Runs {
                caller: None,
                limit: 10
            }
        );
        assert_eq!(
            parse(r#"{"action":"audit","limit":100}"#).unwrap(),
            Command::Audit {
                caller: None,
                limit: 100
            }
        );
        assert_eq!(
            parse(r#"{"action":"run","request_id":"0190C0DE-0000-7000-8000-000000000001"}"#)
                .unwrap(),
            Command::Run {
                caller: None,
                run: RunRef::RequestId("0190c0de-0000-7000-8000-000000000001".into())
            }
        );
        assert_eq!(
            parse(r#"{"action":"run","run_id":42}"#).unwrap(),
            Command::Run {
                caller: None,
                run: RunRef::RunId(42)
            }
        );
        let refused = [
            (r#"{"action":"rollback"}"#, "missing_target"),
            (r#"{"action":"plan"}"#, "missing_target"),
            (
                r#"{"action":"plan","target":"all","ami_override":"ami-1"}"#,
                "invalid_ami",
            ),
            (
                r#"{"action":"deploy","target":"all","queue":"yes"}"#,
                "invalid_field",
            ),
            (r#"{"action":"runs","limit":0}"#, "invalid_field"),
            (r#"{"action":"runs","limit":51}"#, "invalid_field"),
            (r#"{"action":"audit","limit":1.5}"#, "invalid_field"),
            (r#"{"action":"run"}"#, "missing_run"),
            (
                r#"{"action":"deploy","target":"all","revision":"abc1234"}"#,
                "invalid_revision",
            ),
            (
                r#"{"action":"rollback","target":"all","revision":"main"}"#,
                "invalid_revision",
            ),
            (
                r#"{"action":"deploy","target":"all","revision":7}"#,
                "invalid_field",
            ),
            (
                r#"{"action":"run","run_id":1,"request_id":"0190c0de-0000-7000-8000-000000000001"}"#,
                "missing_run",
            ),
            (r#"{"action":"run","run_id":-1}"#, "invalid_field"),
            (r#"{"action":"run","run_id":"1"}"#, "invalid_field"),
            (
                r#"{"action":"run","request_id":"../x"}"#,
                "invalid_request_id",
            ),
            (r#"{"action":"lock","target":"all"}"#, "invalid_field"),
            (
                r#"{"action":"lock","target":"all","reason":"x","ttl_secs":0}"#,
                "invalid_field",
            ),
            (
                r#"{"action":"lock","target":"all","reason":"x","ttl_secs":86401}"#,
                "invalid_field",
            ),
            (r#"{"action":"unlock"}"#, "missing_target"),
            (r#"{"action":"cancel"}"#, "invalid_request_id"),
            (
                r#"{"action":"cancel","request_id":"nope"}"#,
                "invalid_request_id",
            ),
        ];
        for (body, code) in refused {
            assert_eq!(parse(body).map_err(|e| e.code()), Err(code), "{body}");
        }
    }

    #[test]
    fn every_command_serializes_to_a_body_that_parses_back() {
        let id = "0190c0de-0000-7000-8000-000000000001";
        let bodies = [
            r#"{"action":"deploy","target":"clawdinator-2","caller":"human:ops","ami_override":"ami-0123456789abcdef0","queue":true}"#,
            r#"{"action":"deploy","target":"all"}"#,
            r#"{"action":"rollback","target":"clawdinator-2","queue":true}"#,
            r#"{"action":"plan","target":"all","caller":"clawdinator-1","ami_override":"ami-0123456789abcdef0","revision":"0123456789abcdef0123456789abcdef01234567"}"#,
            r#"{"action":"plan","target":"clawdinator-2"}"#,
            r#"{"action":"deploy","target":"all","revision":"0123456789abcdef0123456789abcdef01234567"}"#,
            r#"{"action":"rollback","target":"all","revision":"0123456789abcdef0123456789abcdef01234567"}"#,
            r#"{"action":"status","include_terminated":true}"#,
            r#"{"action":"runs","limit":7}"#,
            r#"{"action":"audit","caller":"human:ops","limit":20}"#,
            r#"{"action":"run","run_id":42}"#,
            r#"{"action":"heartbeat","caller":"clawdinator-2","ec2_instance_id":"i-0123456789abcdef0","ami":"ami-0000000b","revision":"","service":"active","booted_at":"2026-11-20T10:00:00Z","agent":"0.1.0"}"#,
            r#"{"action":"lock","target":"all","reason":"debugging clawdinator-2","ttl_secs":3600}"#,
            r#"{"action":"unlock","target":"clawdinator-2","caller":"human:ops"}"#,
            r#"{"action":"queue"}"#,
            r#"{"action":"cancel","request_id":"0190c0de-0000-7000-8000-000000000001"}"#,
        ];
        for body in bodies {
            let command = parse(body).unwrap();
            assert_eq!(serde_json::to_string(&command).unwrap(), body);
        }
        let run = Command::Run {
            caller: None,
            run: RunRef::RequestId(id.into()),
        };
        let body = serde_json::to_string(&run).unwrap();
        assert_eq!(body, format!(r#"{{"action":"run","request_id":"{id}"}}"#));
        assert_eq!(parse(&body).unwrap(), run);
    }

    #[test]
    fn newtypes_deserialize_only_valid_values() {
        assert!(serde_json::from_str::<Target>(r#""all""#).is_ok());
        assert!(serde_json::from_str::<Target>(r#""x;reboot""#).is_err());
        assert!(serde_json::from_str::<AmiId>(r#""ami-123""#).is_err());
        assert!(serde_json::from_str::<Caller>(r#""a b""#).is_err());
        let upper = "0123456789ABCDEF0123456789ABCDEF01234567";
        let revision = Revision::parse(upper).unwrap();
        assert_eq!(revision.as_str(), upper.to_ascii_lowercase());
        assert_eq!(revision.short(), "0123456");
        assert!(Revision::parse(&upper[1..]).is_err());
        assert!(Revision::parse(&format!("{}g", &upper[1..])).is_err());
    }

    #[test]
    fn invalid_utf8_is_invalid_json() {
        assert_eq!(parse_command(b"[\"\xff\"]"), Err(RequestError::InvalidJson));
        assert_eq!(
            parse_command(b"{\"action\":\"\xff\"}"),
            Err(RequestError::InvalidJson)
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let deep = format!(
            r#"{{"action":"status","x":{}{}}}"#,
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(parse(&deep), Err(RequestError::InvalidJson));
    }

    #[test]
    fn ami_ids() {
        assert!(AmiId::parse("ami-01234567").is_ok());
        assert!(AmiId::parse("ami-0123456789abcdef0").is_ok());
        for bad in [
            "ami-0123456",
            "ami-0123456789abcdef",
            "AMI-01234567",
            "ami-0123456789ABCDEF0",
            "ami-01234567\n",
        ] {
            assert!(AmiId::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unknown_action_is_echoed_short_and_on_one_line() {
        let long = format!(r#"{{"action":"{}\n"}}"#, "x".repeat(200));
        let Err(RequestError::UnknownAction(a)) = parse(&long) else {
            panic!()
        };
        assert_eq!(a.chars().count(), 64);
        assert!(!a.contains('\n'));
    }

    #[test]
    fn targets_resolve_against_the_registry() {
        let r = Registry::embedded().unwrap();
        assert_eq!(Target::parse("all").unwrap().resolve(&r), Ok(Target::All));
        assert!(Target::parse("clawdinator-babelfish")
            .unwrap()
            .resolve(&r)
            .is_ok());
        assert_eq!(
            Target::parse("clawdinator-9")
                .unwrap()
                .resolve(&r)
                .map_err(|e| e.code()),
            Err("unknown_target")
        );
    }
}
