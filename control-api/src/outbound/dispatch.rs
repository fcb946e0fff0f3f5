//! The dispatcher chosen at start-up: GitHub, the local dry run, or none (a 500 per deploy).

use serde_json::json;

use super::github::GitHubDispatcher;
use crate::config::GitHubSettings;
use crate::domain::deploy::{DeployRequest, DispatchError, DispatchReceipt, Dispatcher};
use crate::domain::response::Misconfig;

pub enum AnyDispatcher {
    GitHub(GitHubDispatcher),
    /// Local server without `GITHUB_TOKEN`: everything runs as in production up to the
    /// dispatch, which is logged and returned instead of sent.
    DryRun(GitHubSettings),
    /// The Lambda without a GitHub token: refusals still answer; accepted deploys are a 500.
    NotConfigured(Misconfig),
}

impl Dispatcher for AnyDispatcher {
    async fn dispatch(&self, request: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
        match self {
            Self::GitHub(github) => github.dispatch(request).await,
            Self::DryRun(s) => {
                let dispatch = json!({
                    "dry_run": true,
                    "repo": format!("{}/{}", s.owner, s.repo),
                    "workflow": s.workflow,
                    "ref": s.git_ref,
                    "inputs": request.workflow_inputs(),
                });
                tracing::info!(request_id = %request.request_id, %dispatch, "dry run: workflow dispatch not sent");
                Ok(DispatchReceipt {
                    dry_run: Some(dispatch),
                })
            }
            Self::NotConfigured(problem) => Err(DispatchError::NotConfigured(*problem)),
        }
    }
}
