//! Dispatches `fleet-deploy.yml` through GitHub's REST API with octocrab.

use std::time::Duration;

use http::header::ACCEPT;
use octocrab::Octocrab;

use crate::config::GitHubSettings;
use crate::domain::deploy::{DeployRequest, DispatchError, DispatchReceipt, Dispatcher};

/// One octocrab client for the life of the process: its connection pool and TLS
/// setup are paid once, not per request.
pub struct GitHubDispatcher {
    client: Octocrab,
    settings: GitHubSettings,
}

impl GitHubDispatcher {
    pub fn new(settings: GitHubSettings, token: String) -> Result<Self, octocrab::Error> {
        let client = Octocrab::builder()
            .base_uri(settings.api_url.as_str())?
            .personal_token(token)
            .add_header(ACCEPT, "application/vnd.github+json".to_owned())
            // Well under the Lambda timeout, so a hung GitHub gives the caller a 502, not a Lambda timeout.
            .set_connect_timeout(Some(Duration::from_secs(3)))
            .set_read_timeout(Some(Duration::from_secs(10)))
            .set_write_timeout(Some(Duration::from_secs(10)))
            .build()?;
        Ok(Self { client, settings })
    }
}

impl Dispatcher for GitHubDispatcher {
    async fn dispatch(&self, request: &DeployRequest) -> Result<DispatchReceipt, DispatchError> {
        let s = &self.settings;
        let result = self
            .client
            .actions()
            .create_workflow_dispatch(&s.owner, &s.repo, &s.workflow, &s.git_ref)
            .inputs(request.workflow_inputs())
            .send()
            .await;
        match result {
            Ok(()) => Ok(DispatchReceipt::default()),
            Err(octocrab::Error::GitHub { source, .. }) => {
                // GitHub's own words go to the log for the operator, not to the caller.
                tracing::warn!(
                    request_id = %request.request_id,
                    status = source.status_code.as_u16(),
                    github_message = %source.message,
                    documentation_url = source.documentation_url.as_deref(),
                    "workflow dispatch refused by GitHub"
                );
                Err(DispatchError::Refused {
                    status: source.status_code.as_u16(),
                })
            }
            Err(e) => {
                tracing::warn!(request_id = %request.request_id, error = %e, "workflow dispatch failed");
                Err(DispatchError::Unavailable)
            }
        }
    }
}
