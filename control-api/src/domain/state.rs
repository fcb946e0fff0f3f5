//! The port to the shared state store (S3): conditional writes for idempotency, plain
//! writes and listings for the audit trail. Lambda instances share nothing else.

use std::future::Future;

use super::fleet::AwsError;

/// An object as read back, with the version tag that a conditional write names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub body: Vec<u8>,
    pub etag: String,
}

/// The result of a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Written; the new object's version tag.
    Done { etag: String },
    /// The condition failed: somebody else wrote first.
    Conflict,
}

pub trait StateStore: Send + Sync {
    /// The bucket, for messages and audit records.
    fn bucket(&self) -> &str;
    /// Writes `key` only if no object is there (`If-None-Match: *`), atomically.
    fn create(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<Written, AwsError>> + Send;
    /// Overwrites `key` only if it still is version `etag` (`If-Match`), atomically.
    fn replace(
        &self,
        key: &str,
        body: Vec<u8>,
        etag: &str,
    ) -> impl Future<Output = Result<Written, AwsError>> + Send;
    /// Reads `key`; `None` when there is no such object.
    fn read(&self, key: &str) -> impl Future<Output = Result<Option<Stored>, AwsError>> + Send;
    /// Writes `key` unconditionally.
    fn put(&self, key: &str, body: Vec<u8>) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Every key under `prefix`, in ascending order, all pages.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, AwsError>> + Send;
}
