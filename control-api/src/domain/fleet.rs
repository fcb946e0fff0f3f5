//! The live fleet as EC2 reports it, joined with the registry: what runs against what is wanted.

use std::collections::BTreeMap;
use std::future::Future;

use serde::Serialize;

use super::registry::Registry;

/// An EC2 instance carrying the fleet tag, reduced to what status shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LiveInstance {
    pub instance_id: String,
    /// The `Name` tag, which is the registry's `host`.
    pub name: Option<String>,
    pub state: String,
    pub ami: Option<String>,
    pub instance_type: Option<String>,
    pub launch_time: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
}

/// A machine image (AMI).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FleetImage {
    pub id: String,
    pub name: Option<String>,
    /// ISO-8601 as EC2 gives it (`2026-11-25T12:05:21.000Z`), so text order is time order.
    pub created: Option<String>,
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

/// Why AWS could not answer; the text names the call and AWS's error code, never a credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AwsError(pub String);

/// The outbound port that reads the fleet from EC2.
pub trait FleetReader: Send + Sync {
    /// Every instance with the fleet tag, every page; terminated ones only when asked.
    fn live_instances(
        &self,
        include_terminated: bool,
    ) -> impl Future<Output = Result<Vec<LiveInstance>, AwsError>> + Send;
    /// The newest image with the fleet image tag, owned by this account.
    fn latest_image(&self) -> impl Future<Output = Result<Option<FleetImage>, AwsError>> + Send;
    /// The image `id` if it is a fleet image: owned by this account and carrying the
    /// fleet image tag. Anything else must never be deployed.
    fn fleet_image(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<FleetImage>, AwsError>> + Send;
    /// Every fleet image (owned by this account, with the fleet image tag).
    fn fleet_images(&self) -> impl Future<Output = Result<Vec<FleetImage>, AwsError>> + Send;
    /// Details of the given images (those deregistered since are simply absent).
    fn images(
        &self,
        ids: &[String],
    ) -> impl Future<Output = Result<Vec<FleetImage>, AwsError>> + Send;
}

/// The outbound port that checks for a host's bootstrap bundle.
pub trait BootstrapStore: Send + Sync {
    /// The bucket name, for messages.
    fn bucket(&self) -> &str;
    /// Whether at least one object exists under `prefix/`.
    fn has_bundle(&self, prefix: &str) -> impl Future<Output = Result<bool, AwsError>> + Send;
}

/// One registry entry beside what runs for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceStatus {
    pub id: String,
    pub host: String,
    pub instance_id: Option<String>,
    pub state: Option<String>,
    pub ami: Option<String>,
    pub ami_name: Option<String>,
    pub ami_created: Option<String>,
    pub launch_time: Option<String>,
    pub public_ip: Option<String>,
    pub private_ip: Option<String>,
    pub instance_type: Option<String>,
    pub desired_instance_type: String,
    pub flags: Vec<&'static str>,
}

/// A tagged instance the registry does not account for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmanagedInstance {
    #[serde(flatten)]
    pub instance: LiveInstance,
    /// `not_in_registry`, or `duplicate` for a second live instance of a registry host.
    pub reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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
                reason: "not_in_registry",
            }),
        }
    }
    let image = |id: &str| images.iter().find(|i| i.id == id);
    let mut summary: BTreeMap<String, usize> = ["missing", "stale_ami", "type_drift", "unmanaged"]
        .into_iter()
        .map(|k| (k.to_owned(), 0))
        .collect();
    let mut instances = Vec::new();
    for (id, entry) in registry.iter() {
        let mut candidates = by_host.remove(&entry.host).unwrap_or_default();
        // Best first: live state, then the newest launch.
        candidates.sort_by(|a, b| {
            (state_rank(&b.state), &b.launch_time, &b.instance_id).cmp(&(
                state_rank(&a.state),
                &a.launch_time,
                &a.instance_id,
            ))
        });
        let mut candidates = candidates.into_iter();
        let chosen = candidates.next();
        unmanaged.extend(candidates.map(|instance| UnmanagedInstance {
            instance,
            reason: "duplicate",
        }));
        let mut flags = Vec::new();
        let status = match chosen {
            None => {
                flags.push("missing");
                InstanceStatus {
                    id: id.to_string(),
                    host: entry.host.clone(),
                    instance_id: None,
                    state: None,
                    ami: None,
                    ami_name: None,
                    ami_created: None,
                    launch_time: None,
                    public_ip: None,
                    private_ip: None,
                    instance_type: None,
                    desired_instance_type: entry.instance_type.clone(),
                    flags,
                }
            }
            Some(i) => {
                if i.state == "terminated" || i.state == "shutting-down" {
                    flags.push("missing");
                }
                if let (Some(latest), Some(ami)) = (&latest, &i.ami) {
                    if *ami != latest.id {
                        flags.push("stale_ami");
                    }
                }
                if i.instance_type
                    .as_deref()
                    .is_some_and(|t| t != entry.instance_type)
                {
                    flags.push("type_drift");
                }
                let img = i.ami.as_deref().and_then(image);
                InstanceStatus {
                    id: id.to_string(),
                    host: entry.host.clone(),
                    ami_name: img.and_then(|m| m.name.clone()),
                    ami_created: img.and_then(|m| m.created.clone()),
                    instance_id: Some(i.instance_id),
                    state: Some(i.state),
                    ami: i.ami,
                    launch_time: i.launch_time,
                    public_ip: i.public_ip,
                    private_ip: i.private_ip,
                    instance_type: i.instance_type,
                    desired_instance_type: entry.instance_type.clone(),
                    flags,
                }
            }
        };
        if let Some(state) = &status.state {
            *summary.entry(state.clone()).or_default() += 1;
        }
        for flag in &status.flags {
            *summary.entry((*flag).to_owned()).or_default() += 1;
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
            instance_id: id.into(),
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
            .map(|i| (i.id.as_str(), i.instance_id.as_deref(), i.flags.clone()))
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
        let unmanaged: Vec<(&str, &str)> = status
            .unmanaged
            .iter()
            .map(|u| (u.instance.instance_id.as_str(), u.reason))
            .collect();
        assert_eq!(
            unmanaged,
            [("i-x", "not_in_registry"), ("i-2old", "duplicate")]
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
