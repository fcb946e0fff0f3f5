//! The workflow chosen at start-up: GitHub, the local dry run, or none (a 500 per deploy).

use super::github::{GitHubWorkflow, WorkflowInputs};
use crate::config::GitHubSettings;
use crate::domain::ports::{
    DeployRequest, DispatchError, DispatchReceipt, DryRunDispatch, Misconfig, Workflow,
    WorkflowError, WorkflowRun,
};
use crate::domain::request::Revision;

pub enum AnyWorkflow {
    GitHub(GitHubWorkflow),
    /// Local server without `GITHUB_TOKEN`: everything runs as in production up to the
    /// dispatch, which is logged and returned instead of sent.
    DryRun(GitHubSettings),
    /// The Lambda without a GitHub token: refusals still answer; accepted deploys are a 500.
    NotConfigured(Misconfig),
}

impl Workflow for AnyWorkflow {
    async fn dispatch(&self, request: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
        match self {
            Self::GitHub(github) => github.dispatch(request).await,
            Self::DryRun(s) => {
                let dispatch = DryRunDispatch {
                    dry_run: true,
                    repo: format!("{}/{}", s.owner, s.repo),
                    workflow: s.workflow.clone(),
                    git_ref: s.git_ref.clone(),
                    inputs: WorkflowInputs::of(request).to_map(),
                };
                // The whole dispatch is in the answer and the decision in the audit line,
                // so this marker is for debugging only: a second line per deploy at info
                // would cost more than the dry run itself.
                tracing::debug!(request_id = %request.request_id, deploy_target = request.target.as_str(), "dry run: workflow dispatch not sent");
                Ok(DispatchReceipt {
                    dry_run: Some(dispatch),
                    run: None,
                })
            }
            Self::NotConfigured(problem) => Err(DispatchError::NotConfigured(*problem)),
        }
    }

    async fn runs(
        &self,
        status: Option<&'static str>,
        per_page: u8,
    ) -> Result<Vec<WorkflowRun>, WorkflowError> {
        match self {
            Self::GitHub(github) => github.runs(status, per_page).await,
            Self::DryRun(_) => Ok(Vec::new()),
            Self::NotConfigured(problem) => Err(WorkflowError::NotConfigured(*problem)),
        }
    }

    async fn run(&self, run_id: u64) -> Result<Option<WorkflowRun>, WorkflowError> {
        match self {
            Self::GitHub(github) => github.run(run_id).await,
            Self::DryRun(_) => Ok(None),
            Self::NotConfigured(problem) => Err(WorkflowError::NotConfigured(*problem)),
        }
    }

    async fn resolve_ref(&self) -> Result<Option<Revision>, WorkflowError> {
        match self {
            Self::GitHub(github) => github.resolve_ref().await,
            Self::DryRun(_) => Ok(None),
            Self::NotConfigured(problem) => Err(WorkflowError::NotConfigured(*problem)),
        }
    }

    fn tracks_runs(&self) -> bool {
        // NotConfigured says so through its errors, before anything is dispatched.
        !matches!(self, Self::DryRun(_))
    }
}
