//! Wiring: settings in, a ready [`ControlApi`] out, the same for Lambda and localhost.

use aws_config::SdkConfig;

use crate::config::{Mode, Settings};
use crate::domain::auth::Authenticator;
use crate::domain::service::{ControlApi, Ports};
use crate::outbound::aws::{load_local_sdk_config, load_sdk_config, Ec2Fleet, S3Bootstrap};
use crate::outbound::dispatch::AnyDispatcher;
use crate::outbound::github::GitHubDispatcher;

/// The control API as the binaries run it.
pub type App = ControlApi<AnyDispatcher, Ec2Fleet, S3Bootstrap>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot build the GitHub client: {0}")]
    GitHubClient(#[from] octocrab::Error),
}

/// Builds the app with AWS settings from the environment (region, credentials, endpoint).
pub async fn build(settings: Settings, mode: Mode) -> Result<App, AppError> {
    let sdk = match mode {
        Mode::Lambda => load_sdk_config().await,
        Mode::Local => load_local_sdk_config().await,
    };
    build_with(settings, mode, &sdk)
}

/// Builds the app. Secrets are consumed here: only their digests (control token) or the
/// GitHub client (GitHub token) outlive this call.
pub fn build_with(settings: Settings, mode: Mode, sdk: &SdkConfig) -> Result<App, AppError> {
    let auth = settings.control_token.as_deref().map(Authenticator::shared);
    let dispatcher = match (settings.github_token, mode) {
        (Some(token), _) => AnyDispatcher::GitHub(GitHubDispatcher::new(settings.github, token)?),
        (None, Mode::Local) => AnyDispatcher::DryRun(settings.github),
        (None, Mode::Lambda) => AnyDispatcher::NotConfigured("GITHUB_TOKEN"),
    };
    let bootstrap = settings
        .aws
        .bootstrap_bucket
        .clone()
        .map(|bucket| S3Bootstrap::new(sdk, bucket));
    let ports = Ports {
        dispatcher,
        fleet: Ec2Fleet::new(sdk, settings.aws),
        bootstrap,
    };
    Ok(ControlApi::new(settings.registry, auth, ports))
}
