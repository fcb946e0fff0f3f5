//! AWS adapters: the fleet from EC2 (instances, images) and bootstrap bundles in S3.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::provider::error::TokenError;
use aws_credential_types::provider::future::ProvideToken as TokenFuture;
use aws_credential_types::provider::token::ProvideToken;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::{Filter, Image, Instance};

use crate::config::AwsSettings;
use crate::domain::fleet::newest_image;
use crate::domain::ports::{AwsError, BootstrapStore, FleetImage, FleetReader, LiveInstance};
use crate::domain::retention::ImageRecord;

/// Bounds on every AWS call: three attempts with backoff inside 8 s per call, and a
/// whole-answer deadline, all well under the Lambda's 30 s timeout.
const CALL_DEADLINE: Duration = Duration::from_secs(8);
const ANSWER_DEADLINE: Duration = Duration::from_secs(20);

/// Loads region and credentials once, at start-up; credentials resolve lazily on first use.
/// `AWS_ENDPOINT_URL` (tests: moto on loopback) is honoured by the SDK itself.
pub async fn load_sdk_config() -> SdkConfig {
    sdk_defaults().load().await
}

/// As [`load_sdk_config`], for the Lambda: its runtime always puts the execution role's
/// credentials and region in the environment, so they are taken from there instead of
/// building the default chains (profile files, web identity with its own STS client,
/// container and instance metadata) at every cold start, only for their first link to win.
pub async fn load_lambda_sdk_config() -> SdkConfig {
    use aws_config::environment::{
        EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider,
    };
    sdk_defaults()
        .credentials_provider(EnvironmentVariableCredentialsProvider::new())
        .region(EnvironmentVariableRegionProvider::new())
        .load()
        .await
}

/// As [`load_sdk_config`], for a developer machine: the region comes from the environment
/// or the AWS profile, else `us-east-1`, without probing EC2 instance metadata (which on
/// a laptop costs seconds of start-up and a page of warnings).
pub async fn load_local_sdk_config() -> SdkConfig {
    use aws_config::environment::EnvironmentVariableRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::ProfileFileRegionProvider;
    let region = RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(ProfileFileRegionProvider::new())
        .or_else(aws_config::Region::new("us-east-1"));
    sdk_defaults().region(region).load().await
}

fn sdk_defaults() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::aws_http::https_client())
        .token_provider(NoBearerToken)
        .retry_config(RetryConfig::standard().with_max_attempts(3))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(4))
                .operation_timeout(CALL_DEADLINE)
                .build(),
        )
}

/// The bearer-token provider of every SDK config here: none. EC2, S3 and SSM sign with
/// SigV4, so no call ever asks for a token; without this the loader builds the SSO token
/// chain (profile files, an SSO-OIDC client) at every start, for nothing.
#[derive(Debug)]
struct NoBearerToken;

impl ProvideToken for NoBearerToken {
    fn provide_token<'a>(&'a self) -> TokenFuture<'a>
    where
        Self: 'a,
    {
        TokenFuture::ready(Err(TokenError::not_loaded(
            "no service called here takes a bearer token",
        )))
    }
}

/// The reason given when no connection could be made or no credentials were found.
const UNREACHABLE: &str = "unreachable or no credentials";

/// Names the failed call and AWS's error code for the caller; the full chain goes to the log.
pub(crate) fn aws_error<E, R>(call: &'static str, e: SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let reason = match &e {
        SdkError::ServiceError(se) => se.err().code().unwrap_or("service error").to_owned(),
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => UNREACHABLE.to_owned(),
        _ => "no usable answer".to_owned(),
    };
    // One short line for the operator; the SDK's whole chain (hundreds of characters of
    // resolver and connector internals) only at debug.
    tracing::warn!(call, reason = %reason, "AWS call failed");
    tracing::debug!(call, error = %DisplayErrorContext(&e), "AWS call failed: details");
    AwsError(format!("AWS {call} failed ({reason})"))
}

fn deadline_passed(what: &str, deadline: Duration) -> AwsError {
    AwsError(format!(
        "AWS {what} did not finish within {} s",
        deadline.as_secs()
    ))
}

/// Reads the fleet from EC2 by tag. One client for the life of the process.
pub struct Ec2Fleet {
    client: aws_sdk_ec2::Client,
    settings: AwsSettings,
    /// `MaxResults` per DescribeInstances page (5..=1000); fewer calls is faster.
    page_size: i32,
    /// For a whole answer, however many pages and retries it takes.
    deadline: Duration,
    /// Added to "unreachable" errors: what to do when there is no AWS at all.
    unreachable_hint: Option<&'static str>,
}

impl Ec2Fleet {
    pub fn new(sdk: &SdkConfig, settings: AwsSettings) -> Self {
        let page_size = settings.ec2_page_size;
        Self::with_client(aws_sdk_ec2::Client::new(sdk), settings, page_size)
    }

    pub fn with_client(client: aws_sdk_ec2::Client, settings: AwsSettings, page_size: i32) -> Self {
        Self {
            client,
            settings,
            page_size,
            deadline: ANSWER_DEADLINE,
            unreachable_hint: None,
        }
    }

    /// The local server without an emulator: its callers are told how to get one.
    pub fn with_unreachable_hint(mut self, hint: &'static str) -> Self {
        self.unreachable_hint = Some(hint);
        self
    }

    fn hinted(&self, e: AwsError) -> AwsError {
        match self.unreachable_hint {
            Some(hint) if e.0.contains(UNREACHABLE) => AwsError(format!("{}; {hint}", e.0)),
            _ => e,
        }
    }

    /// A longer deadline, for an emulator that is much slower than EC2.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// Every page of DescribeInstances for `filters`, each instance mapped by `map`.
    async fn describe_instances<T>(
        &self,
        filters: Vec<Filter>,
        map: impl Fn(&Instance) -> T,
    ) -> Result<Vec<T>, AwsError> {
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .max_results(self.page_size)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.hinted(aws_error("EC2 DescribeInstances", e)))?;
            out.extend(
                page.reservations()
                    .iter()
                    .flat_map(|r| r.instances())
                    .map(&map),
            );
        }
        Ok(out)
    }

    /// Every page of DescribeImages for `filters` (this account's only, if `owners_self`),
    /// each image mapped by `map`.
    async fn describe_images<T>(
        &self,
        filters: Vec<Filter>,
        owners_self: bool,
        map: impl Fn(&Image) -> T,
    ) -> Result<Vec<T>, AwsError> {
        let mut request = self.client.describe_images().set_filters(Some(filters));
        if owners_self {
            request = request.owners("self");
        }
        let mut pages = request.max_results(1000).into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.hinted(aws_error("EC2 DescribeImages", e)))?;
            out.extend(page.images().iter().map(&map));
        }
        Ok(out)
    }

    /// Bounds one answer, however many pages and retries it takes, by the deadline.
    async fn within<T>(
        &self,
        call: &'static str,
        work: impl std::future::Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        tokio::time::timeout(self.deadline, work)
            .await
            .map_err(|_| deadline_passed(call, self.deadline))?
    }

    fn image_tag_filter(&self) -> Filter {
        tag_filter(&self.settings.image_tag_key, &self.settings.image_tag_value)
    }
}

fn state_filter(states: &[&str]) -> Filter {
    Filter::builder()
        .name("instance-state-name")
        .set_values(Some(states.iter().map(|s| s.to_string()).collect()))
        .build()
}

fn tag_filter(key: &str, value: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{key}"))
        .values(value)
        .build()
}

fn live_instance(i: &Instance) -> LiveInstance {
    let name = i
        .tags()
        .iter()
        .find(|t| t.key() == Some("Name"))
        .and_then(|t| t.value())
        .map(str::to_owned);
    LiveInstance {
        ec2_instance_id: i.instance_id().unwrap_or_default().to_owned(),
        name,
        state: i
            .state()
            .and_then(|s| s.name())
            .map_or_else(|| "unknown".to_owned(), |n| n.as_str().to_owned()),
        ami: i.image_id().map(str::to_owned),
        instance_type: i.instance_type().map(|t| t.as_str().to_owned()),
        launch_time: i.launch_time().and_then(|t| {
            t.fmt(aws_sdk_ec2::primitives::DateTimeFormat::DateTime)
                .ok()
        }),
        public_ip: i.public_ip_address().map(str::to_owned),
        private_ip: i.private_ip_address().map(str::to_owned),
    }
}

fn fleet_image(i: &Image) -> FleetImage {
    FleetImage {
        id: i.image_id().unwrap_or_default().to_owned(),
        name: i.name().map(str::to_owned),
        created: i.creation_date().map(str::to_owned),
    }
}

impl FleetReader for Ec2Fleet {
    async fn live_instances(
        &self,
        include_terminated: bool,
    ) -> Result<Vec<LiveInstance>, AwsError> {
        let mut filters = vec![tag_filter(
            &self.settings.fleet_tag_key,
            &self.settings.fleet_tag_value,
        )];
        if !include_terminated {
            filters.push(state_filter(&[
                "pending",
                "running",
                "shutting-down",
                "stopping",
                "stopped",
            ]));
        }
        self.within(
            "EC2 DescribeInstances",
            self.describe_instances(filters, live_instance),
        )
        .await
    }

    async fn latest_image(&self) -> Result<Option<FleetImage>, AwsError> {
        Ok(newest_image(self.fleet_images().await?))
    }

    async fn fleet_images(&self) -> Result<Vec<FleetImage>, AwsError> {
        let filters = vec![self.image_tag_filter()];
        self.within(
            "EC2 DescribeImages",
            self.describe_images(filters, true, fleet_image),
        )
        .await
    }

    async fn fleet_image(&self, id: &str) -> Result<Option<FleetImage>, AwsError> {
        let filters = vec![
            self.image_tag_filter(),
            Filter::builder().name("image-id").values(id).build(),
        ];
        let images = self
            .within(
                "EC2 DescribeImages",
                self.describe_images(filters, true, fleet_image),
            )
            .await?;
        Ok(images.into_iter().find(|i| i.id == id))
    }

    async fn images(&self, ids: &[String]) -> Result<Vec<FleetImage>, AwsError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // A filter, not ImageIds: an id that was deregistered is then just absent
        // instead of failing the whole call with InvalidAMIID.NotFound.
        let filter = Filter::builder()
            .name("image-id")
            .set_values(Some(ids.to_vec()))
            .build();
        self.within(
            "EC2 DescribeImages",
            self.describe_images(vec![filter], false, fleet_image),
        )
        .await
    }
}

/// An S3 client. Emulators on loopback have no per-bucket host names; real S3 keeps
/// virtual hosts.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    let mut config = aws_sdk_s3::config::Builder::from(sdk);
    if sdk.endpoint_url().is_some() {
        config = config.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(config.build())
}

/// Looks for bootstrap bundles in the bootstrap bucket.
pub struct S3Bootstrap {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Bootstrap {
    /// `client` from [`s3_client`], shared with the state store.
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { client, bucket }
    }
}

impl BootstrapStore for S3Bootstrap {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn has_bundle(&self, prefix: &str) -> Result<bool, AwsError> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(format!("{}/", prefix.trim_end_matches('/')))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| aws_error("S3 ListObjectsV2", e))?;
        Ok(listed.key_count().unwrap_or(0) > 0 || !listed.contents().is_empty())
    }
}

/// Image retention against EC2: the lookups first, then the deletions.
impl Ec2Fleet {
    /// Every fleet image (owners=self, image tag) with the snapshots behind it.
    pub async fn fleet_image_records(&self) -> Result<Vec<ImageRecord>, AwsError> {
        self.describe_images(vec![self.image_tag_filter()], true, |i| ImageRecord {
            id: i.image_id().unwrap_or_default().to_owned(),
            name: i.name().map(str::to_owned),
            created: i.creation_date().map(str::to_owned),
            snapshots: i
                .block_device_mappings()
                .iter()
                .filter_map(|m| m.ebs()?.snapshot_id().map(str::to_owned))
                .collect(),
        })
        .await
    }

    /// Image id → instances (any tag, not just the fleet's) that are pending, running,
    /// stopping or stopped on one of `image_ids`.
    pub async fn images_in_use(
        &self,
        image_ids: &[String],
    ) -> Result<BTreeMap<String, Vec<String>>, AwsError> {
        if image_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let filters = vec![
            Filter::builder()
                .name("image-id")
                .set_values(Some(image_ids.to_vec()))
                .build(),
            state_filter(&["pending", "running", "stopping", "stopped"]),
        ];
        let pairs = self
            .describe_instances(filters, |i| {
                Some((i.image_id()?.to_owned(), i.instance_id()?.to_owned()))
            })
            .await?;
        let mut in_use: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (ami, id) in pairs.into_iter().flatten() {
            in_use.entry(ami).or_default().push(id);
        }
        Ok(in_use)
    }

    /// Deregisters an image; one already gone counts as done.
    pub async fn deregister_image(&self, id: &str) -> Result<(), AwsError> {
        match self.client.deregister_image().image_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws_error("EC2 DeregisterImage", e)),
        }
    }

    /// Deletes a snapshot; one already gone counts as done.
    pub async fn delete_snapshot(&self, id: &str) -> Result<(), AwsError> {
        match self.client.delete_snapshot().snapshot_id(id).send().await {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(aws_error("EC2 DeleteSnapshot", e)),
        }
    }
}

fn is_not_found<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    matches!(e, SdkError::ServiceError(se) if se.err().code().is_some_and(|c| c.ends_with(".NotFound")))
}

/// Why the secrets could not be read: for a while, or until an operator acts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsReadError {
    /// SSM unreachable, slow, throttling or failing on its side: this may pass.
    #[error("{0}")]
    Unavailable(AwsError),
    /// SSM answered with a refusal (access denied by the role or the key policy, a bad
    /// parameter name): asking again changes nothing until an operator fixes it.
    #[error("{0}")]
    Refused(AwsError),
}

/// Reads SSM SecureString parameters, decrypted, in one `GetParameters` call (at most
/// 10 names). A name SSM does not know, or one without a value, is absent from the map.
pub async fn read_secure_parameters(
    client: &aws_sdk_ssm::Client,
    names: &[&str],
) -> Result<BTreeMap<String, String>, SecretsReadError> {
    let mut request = client.get_parameters().with_decryption(true);
    for name in names {
        request = request.names(*name);
    }
    let out = request.send().await.map_err(|e| {
        let refused = is_refusal(&e);
        let e = aws_error("SSM GetParameters", e);
        if refused {
            SecretsReadError::Refused(e)
        } else {
            SecretsReadError::Unavailable(e)
        }
    })?;
    Ok(out
        .parameters()
        .iter()
        .filter_map(|p| Some((p.name()?.to_owned(), p.value()?.to_owned())))
        .collect())
}

/// A 4xx answer that is not throttling: the request itself was refused. Judged by the
/// HTTP status, since an answer whose body names no error code is refused all the same.
fn is_refusal<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    let (status, code) = match e {
        SdkError::ServiceError(se) => (se.raw().status().as_u16(), se.err().code()),
        SdkError::ResponseError(re) => (re.raw().status().as_u16(), None),
        _ => return false,
    };
    (400..500).contains(&status)
        && status != 429
        && !code.is_some_and(|c| c.contains("Throttl") || c == "TooManyUpdates")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ssm::operation::get_parameters::GetParametersError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn answer(status: u16, code: Option<&str>) -> SdkError<GetParametersError> {
        let mut meta = ErrorMetadata::builder();
        if let Some(code) = code {
            meta = meta.code(code);
        }
        SdkError::service_error(
            GetParametersError::generic(meta.build()),
            Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn a_refusal_is_a_4xx_answer_other_than_throttling() {
        assert!(is_refusal(&answer(400, Some("AccessDeniedException"))));
        assert!(is_refusal(&answer(400, Some("ValidationException"))));
        // An answer whose body names no code (moto's XML for a JSON service).
        assert!(is_refusal(&answer(403, None)));
        assert!(!is_refusal(&answer(400, Some("ThrottlingException"))));
        assert!(!is_refusal(&answer(429, None)));
        assert!(!is_refusal(&answer(500, Some("InternalServerError"))));
        assert!(!is_refusal(&answer(503, None)));
        assert!(!is_refusal(&SdkError::<GetParametersError>::timeout_error(
            "slow"
        )));
    }
}
