//! The live fleet as EC2 reports it, joined with the registry: what runs against what is wanted.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::ports::{FleetImage, LiveInstance};
use super::readiness::Readiness;
use super::registry::{Registry, RegistryEntry};

/// What differs between a registry host and what runs for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// In the registry, nothing live.
    Missing,
    /// Not on the newest fleet image.
    StaleAmi,
    /// The instance type differs from the registry's.
    TypeDrift,
    /// Its fresh heartbeat names a NixOS revision other than the one its newest applied
    /// roll deployed (`deployed/revisions.json`).
    RevisionDrift,
    /// A flag this build does not know (a newer server's): shown, never fatal.
    #[serde(other)]
    Other,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::StaleAmi => "stale_ami",
            Self::TypeDrift => "type_drift",
            Self::RevisionDrift => "revision_drift",
            Self::Other => "other",
        }
    }
}

/// Why a tagged instance is listed as unmanaged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnmanagedReason {
    /// Its `Name` tag is no registry host.
    NotInRegistry,
    /// A second live instance of a registry host.
    Duplicate,
    #[serde(other)]
    Other,
}

impl UnmanagedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotInRegistry => "not_in_registry",
            Self::Duplicate => "duplicate",
            Self::Other => "other",
        }
    }
}

/// The newest image by creation date; ties go to the larger id so the choice is stable.
pub fn newest_image(images: impl IntoIterator<Item = FleetImage>) -> Option<FleetImage> {
    images
        .into_iter()
        .filter(|i| i.created.is_some())
        .max_by(|a, b| (&a.created, &a.id).cmp(&(&b.created, &b.id)))
}

/// The fleet image made before `current`: the newest one older than it (creation date,
/// then id, as [`newest_image`] orders them). `None` when `current` is not a fleet image or
/// is the oldest one.
pub fn previous_image(images: &[FleetImage], current: &str) -> Option<FleetImage> {
    let cur = images.iter().find(|i| i.id == current)?;
    let key = |i: &FleetImage| (i.created.clone(), i.id.clone());
    images
        .iter()
        .filter(|i| i.created.is_some() && key(i) < key(cur))
        .max_by_key(|i| key(i))
        .cloned()
}

/// One registry entry beside what runs for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// The registry id.
    pub id: String,
    pub host: String,
    /// EC2's `i-…` id of the instance running for it. Required on the wire (`null` when
    /// missing): an answer of a server from before its rename is refused, not shown blank.
    #[serde(deserialize_with = "Option::deserialize")]
    pub ec2_instance_id: Option<String>,
    pub state: Option<String>,
    pub ami: Option<String>,
    pub ami_name: Option<String>,
    pub ami_created: Option<String>,
    pub launch_time: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub instance_type: Option<String>,
    pub desired_instance_type: String,
    pub flags: Vec<Flag>,
    /// Whether the bot actually works, from its heartbeats (`unknown` from an older
    /// server, which had none).
    #[serde(default)]
    pub readiness: Readiness,
    /// The NixOS revision its current instance last reported (empty: not from git).
    #[serde(default)]
    pub revision: Option<String>,
    /// The service state its current instance last reported (`active`, `failed`, …).
    #[serde(default)]
    pub service: Option<String>,
    /// Seconds since the server received that heartbeat.
    #[serde(default)]
    pub heartbeat_age_secs: Option<u64>,
    /// One sentence for a host that is not ready or differs from the registry.
    #[serde(default)]
    pub why: Option<String>,
}

/// A tagged instance the registry does not account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmanagedInstance {
    #[serde(flatten)]
    pub instance: LiveInstance,
    pub reason: UnmanagedReason,
}

/// The whole fleet: the newest image, each registry host, the unaccounted, the counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub latest_ami: Option<FleetImage>,
    pub instances: Vec<InstanceStatus>,
    pub unmanaged: Vec<UnmanagedInstance>,
    pub summary: BTreeMap<String, usize>,
}

/// How much an instance's state says "this is the host": a running one beats a
/// stopped one left over from a replacement.
fn state_rank(state: &str) -> u8 {
    match state {
        "running" => 6,
        "pending" => 5,
        "stopping" => 4,
        "stopped" => 3,
        "shutting-down" => 2,
        "terminated" => 1,
        _ => 0,
    }
}

/// Joins the registry with the live instances (by `Name` tag = host) and flags drift.
pub fn fleet_status(
    registry: &Registry,
    live: Vec<LiveInstance>,
    latest: Option<FleetImage>,
    images: &[FleetImage],
) -> FleetStatus {
    let (mut by_host, mut unmanaged) = group_by_host(registry, live);
    let mut summary: BTreeMap<String, usize> = ["missing", "stale_ami", "type_drift", "unmanaged"]
        .into_iter()
        .map(|k| (k.to_owned(), 0))
        .collect();
    let mut instances = Vec::new();
    for (id, entry) in registry.iter() {
        let mut candidates = by_host.remove(&entry.host).unwrap_or_default();
        // Best first: live state, then the newest launch.
        candidates.sort_by(|a, b| {
            (state_rank(&b.state), &b.launch_time, &b.ec2_instance_id).cmp(&(
                state_rank(&a.state),
                &a.launch_time,
                &a.ec2_instance_id,
            ))
        });
        let mut candidates = candidates.into_iter();
        let chosen = candidates.next();
        unmanaged.extend(candidates.map(|instance| UnmanagedInstance {
            instance,
            reason: UnmanagedReason::Duplicate,
        }));
        let status = instance_status(id.to_string(), entry, chosen, latest.as_ref(), images);
        if let Some(state) = &status.state {
            *summary.entry(state.clone()).or_default() += 1;
        }
        for flag in &status.flags {
            *summary.entry(flag.as_str().to_owned()).or_default() += 1;
        }
        instances.push(status);
    }
    // Only registry hosts were grouped, and each was taken out above.
    debug_assert!(by_host.is_empty());
    summary.insert("unmanaged".into(), unmanaged.len());
    summary.insert("total".into(), instances.len());
    FleetStatus {
        latest_ami: latest,
        instances,
        unmanaged,
        summary,
    }
}

/// The live instances of registry hosts by host, and those of no registry host.
fn group_by_host(
    registry: &Registry,
    live: Vec<LiveInstance>,
) -> (BTreeMap<String, Vec<LiveInstance>>, Vec<UnmanagedInstance>) {
    let mut by_host: BTreeMap<String, Vec<LiveInstance>> = BTreeMap::new();
    let mut unmanaged = Vec::new();
    for instance in live {
        match instance
            .name
            .as_deref()
            .filter(|n| registry.iter().any(|(_, e)| e.host == *n))
        {
            Some(host) => by_host.entry(host.to_owned()).or_default().push(instance),
            None => unmanaged.push(UnmanagedInstance {
                instance,
                reason: UnmanagedReason::NotInRegistry,
            }),
        }
    }
    (by_host, unmanaged)
}

/// One registry host beside the instance chosen for it (if any), with its drift flags.
fn instance_status(
    id: String,
    entry: &RegistryEntry,
    chosen: Option<LiveInstance>,
    latest: Option<&FleetImage>,
    images: &[FleetImage],
) -> InstanceStatus {
    let mut status = InstanceStatus {
        id,
        host: entry.host.clone(),
        ec2_instance_id: None,
        state: None,
        ami: None,
        ami_name: None,
        ami_created: None,
        launch_time: None,
        public_ip: None,
        private_ip: None,
        instance_type: None,
        desired_instance_type: entry.instance_type.clone(),
        flags: Vec::new(),
        readiness: Readiness::Unknown,
        revision: None,
        service: None,
        heartbeat_age_secs: None,
        why: None,
    };
    let Some(i) = chosen else {
        status.flags.push(Flag::Missing);
        return status;
    };
    if i.state == "terminated" || i.state == "shutting-down" {
        status.flags.push(Flag::Missing);
    }
    if let (Some(latest), Some(ami)) = (latest, &i.ami) {
        if *ami != latest.id {
            status.flags.push(Flag::StaleAmi);
        }
    }
    if i.instance_type
        .as_deref()
        .is_some_and(|t| t != entry.instance_type)
    {
        status.flags.push(Flag::TypeDrift);
    }
    let image = i
        .ami
        .as_deref()
        .and_then(|id| images.iter().find(|m| m.id == id));
    status.ami_name = image.and_then(|m| m.name.clone());
    status.ami_created = image.and_then(|m| m.created.clone());
    status.ec2_instance_id = Some(i.ec2_instance_id);
    status.state = Some(i.state);
    status.ami = i.ami;
    status.launch_time = i.launch_time;
    status.public_ip = i.public_ip;
    status.private_ip = i.private_ip;
    status.instance_type = i.instance_type;
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(
        id: &str,
        name: &str,
        state: &str,
        ami: &str,
        ty: &str,
        launched: &str,
    ) -> LiveInstance {
        LiveInstance {
            ec2_instance_id: id.into(),
            name: Some(name.into()).filter(|n: &String| !n.is_empty()),
            state: state.into(),
            ami: Some(ami.into()),
            instance_type: Some(ty.into()),
            launch_time: Some(launched.into()),
            public_ip: None,
            private_ip: Some("10.0.0.1".into()),
        }
    }

    fn image(id: &str, created: &str) -> FleetImage {
        FleetImage {
            id: id.into(),
            name: Some(format!("clawdinator-nixos-{id}")),
            created: Some(created.into()),
        }
    }

    #[test]
    fn previous_image_is_the_newest_older_one() {
        let images = [
            image("ami-3", "2026-03-01T00:00:00.000Z"),
            image("ami-1", "2026-01-01T00:00:00.000Z"),
            image("ami-2", "2026-02-01T00:00:00.000Z"),
        ];
        assert_eq!(previous_image(&images, "ami-3").unwrap().id, "ami-2");
        assert_eq!(previous_image(&images, "ami-2").unwrap().id, "ami-1");
        assert_eq!(previous_image(&images, "ami-1"), None);
        assert_eq!(previous_image(&images, "ami-unknown"), None);
    }

    #[test]
    fn newest_image_by_creation_date() {
        let images = vec![
            image("ami-00000001", "2026-11-01T00:00:00.000Z"),
            image("ami-00000003", "2026-11-20T00:00:00.000Z"),
            image("ami-00000002", "2026-11-10T00:00:00.000Z"),
            FleetImage {
                id: "ami-0000000f".into(),
                name: None,
                created: None,
            },
        ];
        assert_eq!(newest_image(images).unwrap().id, "ami-00000003");
        assert_eq!(newest_image(Vec::new()), None);
    }

    #[test]
    fn join_flags_every_kind_of_drift() {
        let r = Registry::embedded().unwrap();
        let latest = image("ami-0000000b", "2026-11-20T00:00:00.000Z");
        let old = image("ami-0000000a", "2026-11-01T00:00:00.000Z");
        let status = fleet_status(
            &r,
            vec![
                live(
                    "i-1",
                    "clawdinator-1",
                    "running",
                    "ami-0000000b",
                    "t3.large",
                    "2026-11-21T00:00:00Z",
                ),
                // clawdinator-2: a stopped leftover and the running replacement.
                live(
                    "i-2old",
                    "clawdinator-2",
                    "stopped",
                    "ami-0000000a",
                    "t3.large",
                    "2026-11-02T00:00:00Z",
                ),
                live(
                    "i-2",
                    "clawdinator-2",
                    "running",
                    "ami-0000000a",
                    "t3.xlarge",
                    "2026-11-03T00:00:00Z",
                ),
                live(
                    "i-x",
                    "stray",
                    "running",
                    "ami-0000000b",
                    "t3.micro",
                    "2026-11-04T00:00:00Z",
                ),
            ],
            Some(latest.clone()),
            &[latest, old],
        );
        let flags: Vec<(&str, Option<&str>, Vec<&str>)> = status
            .instances
            .iter()
            .map(|i| {
                let flags = i.flags.iter().map(|f| f.as_str()).collect();
                (i.id.as_str(), i.ec2_instance_id.as_deref(), flags)
            })
            .collect();
        assert_eq!(
            flags,
            [
                ("clawdinator-1", Some("i-1"), vec![]),
                (
                    "clawdinator-2",
                    Some("i-2"),
                    vec!["stale_ami", "type_drift"]
                ),
                ("clawdinator-babelfish", None, vec!["missing"]),
            ]
        );
        assert_eq!(
            status.instances[1].ami_name.as_deref(),
            Some("clawdinator-nixos-ami-0000000a")
        );
        let unmanaged: Vec<(&str, UnmanagedReason)> = status
            .unmanaged
            .iter()
            .map(|u| (u.instance.ec2_instance_id.as_str(), u.reason))
            .collect();
        assert_eq!(
            unmanaged,
            [
                ("i-x", UnmanagedReason::NotInRegistry),
                ("i-2old", UnmanagedReason::Duplicate)
            ]
        );
        let s = &status.summary;
        assert_eq!(
            (
                s["running"],
                s["missing"],
                s["stale_ami"],
                s["type_drift"],
                s["unmanaged"],
                s["total"]
            ),
            (2, 1, 1, 1, 2, 3)
        );
    }

    #[test]
    fn without_a_latest_image_nothing_is_stale() {
        let r = Registry::embedded().unwrap();
        let status = fleet_status(
            &r,
            vec![live(
                "i-1",
                "clawdinator-1",
                "running",
                "ami-0000000b",
                "t3.large",
                "t",
            )],
            None,
            &[],
        );
        assert!(status.instances[0].flags.is_empty());
        assert_eq!(status.instances[0].ami_name, None);
    }
}
