//! The roll's outbound ports: OpenTofu (plan, show, apply, output), the hosts' latest
//! heartbeats and a clock. `outbound::tofu` and the state store implement them for real;
//! the roll's unit tests use fakes, so the loop runs without a cloud or a timer.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::domain::heartbeat::{heartbeat_key, HeartbeatRecord};
use crate::domain::ports::{AwsError, StateStore};

/// One host as `tofu output -json instances` lists it (infra/outputs.tf).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TofuInstance {
    /// EC2's `i-…` id.
    pub instance_id: String,
    #[serde(default)]
    pub ami: Option<String>,
}

/// Why an OpenTofu command failed: which command and the end of what it said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TofuError(pub String);

/// OpenTofu in the infra directory, with exactly the commands the deploy has always used.
pub trait Tofu: Send + Sync {
    /// `tofu plan -input=false -lock-timeout=10m -replace=ADDR -var instance_amis=JSON
    /// -out=FILE`.
    fn plan(
        &self,
        replace: &str,
        instance_amis: &BTreeMap<String, String>,
        plan_file: &str,
    ) -> impl Future<Output = Result<(), TofuError>> + Send;
    /// `tofu show -json FILE`: the plan as JSON text.
    fn show(&self, plan_file: &str) -> impl Future<Output = Result<String, TofuError>> + Send;
    /// `tofu apply -input=false -lock-timeout=10m FILE`.
    fn apply(&self, plan_file: &str) -> impl Future<Output = Result<(), TofuError>> + Send;
    /// `tofu output -json instances`: registry id -> instance.
    fn instances(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, TofuInstance>, TofuError>> + Send;
    /// Removes a plan file once it is applied or no longer wanted.
    fn discard(&self, plan_file: &str);
}

/// Where the hosts' latest heartbeats are read.
pub trait HeartbeatSource: Send + Sync {
    /// The latest heartbeat of registry host `id`; `None` when it never sent one.
    fn latest(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<HeartbeatRecord>, AwsError>> + Send;
}

/// The heartbeats the API keeps in the state store (`heartbeats/<id>.json`).
pub struct StoredHeartbeats<'a, S>(pub &'a S);

impl<S: StateStore> HeartbeatSource for StoredHeartbeats<'_, S> {
    async fn latest(&self, id: &str) -> Result<Option<HeartbeatRecord>, AwsError> {
        let Some(stored) = self.0.read(&heartbeat_key(id)).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&stored.body).map(Some).map_err(|e| {
            AwsError(format!(
                "heartbeat record {} unreadable ({e})",
                heartbeat_key(id)
            ))
        })
    }
}

/// The time, and waiting; fakes advance a virtual clock instead of sleeping.
pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + Send;
}
