//! A local fleet on an AWS emulator (moto on loopback), for `control-api serve
//! --local-fleet` (`scripts/local-fleet`): the registry's hosts running as tagged
//! instances, two tagged fleet images with one host on the older (so `stale_ami` shows),
//! a state bucket (idempotency, audit, the guard) and bootstrap bundles for every host but
//! one (so `bootstrap_missing` shows). Refuses any endpoint that is not loopback: it can
//! never write to a real account.

use aws_config::SdkConfig;
use aws_sdk_ec2::types::{
    BlockDeviceMapping, EbsBlockDevice, InstanceType, ResourceType, Tag, TagSpecification,
};

use crate::config::AwsSettings;
use crate::domain::fleet::newest_image;
use crate::domain::ports::FleetImage;
use crate::domain::registry::Registry;

pub const STATE_BUCKET: &str = "fleet-state-local";
pub const BOOTSTRAP_BUCKET: &str = "fleet-bootstrap-local";

/// What was made, for the banner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seeded {
    pub newest_ami: String,
    pub older_ami: String,
    /// The host left on the older image.
    pub stale_host: String,
    /// The host without a bootstrap bundle.
    pub host_without_bundle: String,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("--local-fleet writes only to an emulator on loopback; AWS_ENDPOINT_URL is {0:?} (start it with scripts/local-fleet)")]
    NotLoopback(String),
    #[error("the registry has fewer than two hosts; a local fleet needs two")]
    RegistryTooSmall,
    #[error("seeding the local fleet failed: {0}")]
    Aws(String),
}

/// Whether `endpoint` (an `AWS_ENDPOINT_URL`) is on this machine.
pub fn is_loopback(endpoint: &str) -> bool {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, r)| r);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split([':', '/']).next().unwrap_or_default()
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn aws<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> SeedError {
    move |e| SeedError::Aws(format!("{what}: {e}"))
}

/// Seeds the emulator at `endpoint` and returns what it made. The caller sets
/// `aws.state_bucket` and `aws.bootstrap_bucket` to [`STATE_BUCKET`] and [`BOOTSTRAP_BUCKET`].
pub async fn seed(
    endpoint: &str,
    sdk: &SdkConfig,
    registry: &Registry,
    aws_settings: &AwsSettings,
) -> Result<Seeded, SeedError> {
    if !is_loopback(endpoint) {
        return Err(SeedError::NotLoopback(endpoint.to_owned()));
    }
    let hosts: Vec<_> = registry.iter().collect();
    let [_, (stale, _), ..] = hosts.as_slice() else {
        return Err(SeedError::RegistryTooSmall);
    };
    let ec2 = aws_sdk_ec2::Client::new(sdk);
    let (newest, older) = two_images(&ec2, aws_settings).await?;
    for (id, entry) in &hosts {
        let ami = if id == stale { &older } else { &newest };
        let tags = [
            tag(&aws_settings.fleet_tag_key, &aws_settings.fleet_tag_value),
            tag("Name", &entry.host),
        ];
        ec2.run_instances()
            .image_id(ami)
            .instance_type(InstanceType::from(entry.instance_type.as_str()))
            .min_count(1)
            .max_count(1)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags.to_vec()))
                    .build(),
            )
            .send()
            .await
            .map_err(aws("RunInstances"))?;
    }
    let without = hosts
        .last()
        .map(|(id, _)| id.to_string())
        .unwrap_or_default();
    buckets(sdk, registry, &without).await?;
    Ok(Seeded {
        newest_ami: newest,
        older_ami: older,
        stale_host: stale.to_string(),
        host_without_bundle: without,
    })
}

impl std::fmt::Display for Seeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "local fleet on the AWS emulator: every registry host running, {} on the older image {} (newest {}); state bucket {STATE_BUCKET}; bootstrap bundles for every host but {}",
            self.stale_host, self.older_ami, self.newest_ami, self.host_without_bundle
        )
    }
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// Registers an image in the emulator (one EBS root volume), tagged `key=value` when a
/// tag is given: what the local fleet and the tests use as fleet images.
pub async fn register_image(
    ec2: &aws_sdk_ec2::Client,
    name: &str,
    image_tag: Option<(&str, &str)>,
) -> Result<String, SeedError> {
    let out = ec2
        .register_image()
        .name(name)
        .root_device_name("/dev/xvda")
        .block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(
                    EbsBlockDevice::builder()
                        .snapshot_id("snap-0123456789abcdef0")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .map_err(aws("RegisterImage"))?;
    let id = out.image_id().unwrap_or_default().to_owned();
    if let Some((key, value)) = image_tag {
        ec2.create_tags()
            .resources(&id)
            .tags(tag(key, value))
            .send()
            .await
            .map_err(aws("CreateTags"))?;
    }
    Ok(id)
}

/// Registers two tagged fleet images and answers (newest, older) by the domain's own rule.
async fn two_images(
    ec2: &aws_sdk_ec2::Client,
    aws_settings: &AwsSettings,
) -> Result<(String, String), SeedError> {
    let mut images = Vec::new();
    for name in ["clawdinator-nixos-local-a", "clawdinator-nixos-local-b"] {
        let image_tag = (
            aws_settings.image_tag_key.as_str(),
            aws_settings.image_tag_value.as_str(),
        );
        let id = register_image(ec2, name, Some(image_tag)).await?;
        let described = ec2
            .describe_images()
            .image_ids(&id)
            .send()
            .await
            .map_err(aws("DescribeImages"))?;
        let created = described.images().first().and_then(|i| i.creation_date());
        images.push(FleetImage {
            id,
            name: Some(name.to_owned()),
            created: created.map(str::to_owned),
        });
    }
    let newest = newest_image(images.clone())
        .ok_or_else(|| SeedError::Aws("the emulator gave the images no creation date".into()))?;
    let older = images.into_iter().find(|i| i.id != newest.id).map(|i| i.id);
    Ok((newest.id, older.unwrap_or_default()))
}

/// The state bucket, and the bootstrap bucket with a bundle for every host but `without`.
async fn buckets(sdk: &SdkConfig, registry: &Registry, without: &str) -> Result<(), SeedError> {
    let s3 = crate::outbound::aws::s3_client(sdk);
    for bucket in [STATE_BUCKET, BOOTSTRAP_BUCKET] {
        s3.create_bucket()
            .bucket(bucket)
            .send()
            .await
            .map_err(aws("CreateBucket"))?;
    }
    for (id, entry) in registry.iter().filter(|(id, _)| id.as_str() != without) {
        s3.put_object()
            .bucket(BOOTSTRAP_BUCKET)
            .key(format!("{}/secrets.age", entry.bootstrap_prefix))
            .body(format!("local bundle for {id}\n").into_bytes().into())
            .send()
            .await
            .map_err(aws("PutObject"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_endpoints_are_seeded() {
        for ok in [
            "http://127.0.0.1:5000",
            "http://localhost:1",
            "http://[::1]:9",
            "127.0.0.2",
        ] {
            assert!(is_loopback(ok), "{ok}");
        }
        for bad in [
            "https://ec2.us-east-1.amazonaws.com",
            "http://10.0.0.1:5000",
            "http://127.example.com",
            "",
        ] {
            assert!(!is_loopback(bad), "{bad}");
        }
    }
}
