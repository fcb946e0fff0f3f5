//! The shared state store on S3 (`FLEET_STATE_BUCKET`): conditional writes for
//! idempotency records, locks, the lease and the queue, conditional deletes for ending a
//! lock or the lease; plain writes, deletes and listings for the rest.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;

use super::aws::aws_error;
use crate::domain::ports::{AwsError, StateStore, Stored, Written};

pub struct S3State {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3State {
    /// `client` from [`s3_client`](super::aws::s3_client), shared with the bootstrap check.
    pub fn new(client: aws_sdk_s3::Client, bucket: String) -> Self {
        Self { client, bucket }
    }
}

/// A conditional write lost: 412 Precondition Failed, or S3's 409 for a conditional write
/// racing another one on the same key.
fn lost_condition<E: ProvideErrorMetadata>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    match e {
        aws_sdk_s3::error::SdkError::ServiceError(se) => {
            matches!(se.raw().status().as_u16(), 409 | 412)
                || matches!(
                    se.err().code(),
                    Some("PreconditionFailed" | "ConditionalRequestConflict")
                )
        }
        _ => false,
    }
}

/// The HTTP status of an answer S3 gave, if it gave one.
fn status_of<E>(
    e: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

impl S3State {
    async fn put_if(
        &self,
        key: &str,
        body: Vec<u8>,
        condition: Condition<'_>,
    ) -> Result<Written, AwsError> {
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        let request = match condition {
            Condition::Absent => request.if_none_match("*"),
            Condition::Version(etag) => request.if_match(etag),
        };
        match request.send().await {
            Ok(out) => Ok(Written::Done {
                etag: out.e_tag().unwrap_or_default().to_owned(),
            }),
            Err(e) if lost_condition(&e) => Ok(Written::Conflict),
            Err(e) => Err(aws_error("S3 PutObject", e)),
        }
    }
}

enum Condition<'a> {
    Absent,
    Version(&'a str),
}

impl StateStore for S3State {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn create(&self, key: &str, body: Vec<u8>) -> Result<Written, AwsError> {
        self.put_if(key, body, Condition::Absent).await
    }

    async fn replace(&self, key: &str, body: Vec<u8>, etag: &str) -> Result<Written, AwsError> {
        self.put_if(key, body, Condition::Version(etag)).await
    }

    async fn read(&self, key: &str) -> Result<Option<Stored>, AwsError> {
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => {
                return Ok(None)
            }
            Err(e) => return Err(aws_error("S3 GetObject", e)),
        };
        let etag = out.e_tag().unwrap_or_default().to_owned();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError(format!("AWS S3 GetObject body unreadable ({e})")))?
            .into_bytes()
            .to_vec();
        Ok(Some(Stored { body, etag }))
    }

    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("S3 PutObject", e))
    }

    async fn delete(&self, key: &str) -> Result<(), AwsError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| aws_error("S3 DeleteObject", e))
    }

    async fn delete_if(&self, key: &str, etag: &str) -> Result<bool, AwsError> {
        let sent = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .if_match(etag)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            // 412: another version is there now; 404: nothing is (S3 answers NoSuchKey to
            // a conditional delete of a missing key).
            Err(e) if lost_condition(&e) || status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(aws_error("S3 DeleteObject", e)),
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, AwsError> {
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            // S3 answers at most 1000 keys a page whatever is asked.
            .max_keys(limit.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| aws_error("S3 ListObjectsV2", e))?;
        let mut keys: Vec<String> = page
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        Ok(keys)
    }
}
