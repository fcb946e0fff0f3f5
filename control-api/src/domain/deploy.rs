//! The deploy request handed to the workflow, and the port that dispatches it.

use std::future::Future;

use serde::Serialize;
use serde_json::{json, Value};

use super::request::{AmiId, Caller, Target};
use super::response::Misconfig;

/// A checked, authorized deploy, ready for the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployRequest {
    /// Fresh per request; the workflow's run name carries it so the run can be found.
    pub request_id: String,
    pub target: Target,
    pub ami_override: Option<AmiId>,
    pub caller: Option<Caller>,
}

impl DeployRequest {
    /// The `workflow_dispatch` inputs of `fleet-deploy.yml`: all strings, `""` for no override.
    pub fn workflow_inputs(&self) -> Value {
        json!({
            "target": self.target.as_str(),
            "ami_override": self.ami_override.as_ref().map_or("", AmiId::as_str),
            "request_id": self.request_id,
        })
    }
}

/// What a dispatcher reports back on success.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DispatchReceipt {
    /// Set by the dry-run dispatcher: the dispatch it would have sent.
    pub dry_run: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// A setting the dispatcher needs is missing; names the setting, never a value.
    #[error(transparent)]
    NotConfigured(Misconfig),
    /// GitHub answered with an error status.
    #[error("GitHub refused the workflow dispatch (HTTP {status})")]
    Refused { status: u16 },
    /// No usable answer from GitHub (network, timeout, unreadable reply).
    #[error("GitHub could not be reached to dispatch the workflow")]
    Unavailable,
}

/// The outbound port that starts the deploy workflow.
pub trait Dispatcher: Send + Sync {
    fn dispatch(
        &self,
        request: &DeployRequest,
    ) -> impl Future<Output = Result<DispatchReceipt, DispatchError>> + Send;
}
