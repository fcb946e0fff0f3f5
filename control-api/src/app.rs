//! Wiring: settings in, a ready [`ControlApi`] out, the same for Lambda and localhost.

use crate::config::{Mode, Settings};
use crate::domain::auth::Authenticator;
use crate::domain::service::ControlApi;
use crate::outbound::dispatch::AnyDispatcher;
use crate::outbound::github::GitHubDispatcher;

/// The control API as the binaries run it.
pub type App = ControlApi<AnyDispatcher>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot build the GitHub client: {0}")]
    GitHubClient(#[from] octocrab::Error),
}

/// Builds the app. Secrets are consumed here: only their digests (control token) or the
/// GitHub client (GitHub token) outlive this call.
pub fn build(settings: Settings, mode: Mode) -> Result<App, AppError> {
    let auth = settings.control_token.as_deref().map(Authenticator::shared);
    let dispatcher = match (settings.github_token, mode) {
        (Some(token), _) => AnyDispatcher::GitHub(GitHubDispatcher::new(settings.github, token)?),
        (None, Mode::Local) => AnyDispatcher::DryRun(settings.github),
        (None, Mode::Lambda) => AnyDispatcher::NotConfigured("GITHUB_TOKEN"),
    };
    Ok(ControlApi::new(settings.registry, auth, dispatcher))
}
