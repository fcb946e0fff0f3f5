//! Wiring: settings in, a ready [`ControlApi`] out, the same for Lambda and localhost.

use std::time::Duration;

use aws_config::SdkConfig;

use crate::config::{Mode, Settings};
use crate::domain::auth::{Authenticator, Principal};
use crate::domain::rate_limit::RateLimiter;
use crate::domain::response::Misconfig;
use crate::domain::service::{ControlApi, Ports};
use crate::outbound::aws::{
    load_local_sdk_config, load_sdk_config, read_secure_parameter, Ec2Fleet, S3Bootstrap,
};
use crate::outbound::dispatch::AnyWorkflow;
use crate::outbound::github::GitHubWorkflow;
use crate::outbound::state::S3State;
use crate::outbound::tokio_sleep;

/// The control API as the binaries run it.
pub type App = ControlApi<AnyWorkflow, Ec2Fleet, S3Bootstrap, S3State>;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot build the GitHub client: {0}")]
    GitHubClient(#[from] octocrab::Error),
}

/// Where a token came from, or why there is none.
pub type Secret = Result<Option<String>, Misconfig>;

/// Operators put real values into the SSM parameters after the first apply; until then
/// infra leaves this placeholder, which must never work as a token.
const PLACEHOLDER_PREFIX: &str = "UNSET-";

/// Builds the app with AWS settings from the environment (region, credentials, endpoint),
/// reading the tokens from SSM Parameter Store once, here, when parameters are named.
pub async fn build(settings: Settings, mode: Mode) -> Result<App, AppError> {
    let sdk = match mode {
        Mode::Lambda => load_sdk_config().await,
        Mode::Local => load_local_sdk_config().await,
    };
    let control = secret(
        &sdk,
        mode,
        (
            "CONTROL_API_TOKEN_PARAMETER",
            settings.control_token_parameter.as_deref(),
        ),
        ("CONTROL_API_TOKEN", settings.control_token.clone()),
    )
    .await;
    let github = secret(
        &sdk,
        mode,
        (
            "GITHUB_TOKEN_PARAMETER",
            settings.github_token_parameter.as_deref(),
        ),
        ("GITHUB_TOKEN", settings.github_token.clone()),
    )
    .await;
    build_with_secrets(settings, mode, &sdk, control, github)
}

/// A token from its SSM parameter when one is named. Otherwise from the environment —
/// but only locally: in the Lambda a plain environment value would sit in the function's
/// configuration and in infra state for anyone with read access to either.
async fn secret(
    sdk: &SdkConfig,
    mode: Mode,
    (setting, parameter): (&'static str, Option<&str>),
    (env_setting, from_env): (&'static str, Option<String>),
) -> Secret {
    let Some(name) = parameter else {
        return match (mode, from_env) {
            (Mode::Lambda, Some(_)) => Err(Misconfig {
                setting: env_setting,
                problem: "is a plain environment value; the Lambda reads secrets only from SSM (name the parameter in the _PARAMETER setting)",
            }),
            (_, from_env) => Ok(from_env),
        };
    };
    match read_secure_parameter(sdk, name).await {
        Ok(value) if value.starts_with(PLACEHOLDER_PREFIX) => Err(Misconfig {
            setting,
            problem: "names a parameter that still holds its placeholder value",
        }),
        Ok(value) if value.trim().is_empty() => Err(Misconfig {
            setting,
            problem: "names an empty parameter",
        }),
        Ok(value) => Ok(Some(value.trim().to_owned())),
        Err(e) => {
            tracing::error!(setting, parameter = name, error = %e, "cannot read secret parameter");
            Err(Misconfig {
                setting,
                problem: "names a parameter that could not be read",
            })
        }
    }
}

/// Every accepted credential: the shared token (and its successor during a rotation),
/// per-principal token digests, IAM principals. No token at all is a 500 for every request.
fn authenticator(settings: &Settings, shared: Option<String>) -> Result<Authenticator, Misconfig> {
    let mut auth = Authenticator::default();
    for token in [shared.as_deref(), settings.control_token_next.as_deref()]
        .into_iter()
        .flatten()
    {
        auth = auth.with_token(token, Principal::Shared);
    }
    if let Some(json) = &settings.token_digests {
        auth = auth.with_token_digests(json).map_err(|e| {
            tracing::error!(error = %e, "CONTROL_API_TOKENS is invalid");
            Misconfig {
                setting: "CONTROL_API_TOKENS",
                problem: "is not a JSON object of token digest to principal",
            }
        })?;
    } else if shared.is_none() {
        return Err(Misconfig::unset("CONTROL_API_TOKEN"));
    }
    if let Some(json) = &settings.iam_principals {
        auth = auth.with_iam_principals(json).map_err(|e| {
            tracing::error!(error = %e, "CONTROL_API_IAM_PRINCIPALS is invalid");
            Misconfig {
                setting: "CONTROL_API_IAM_PRINCIPALS",
                problem: "is not a JSON object of IAM ARN to principal",
            }
        })?;
    }
    Ok(auth)
}

/// Builds the app from the tokens in `settings` (tests, and anything without SSM).
pub fn build_with(settings: Settings, mode: Mode, sdk: &SdkConfig) -> Result<App, AppError> {
    let control = Ok(settings.control_token.clone());
    let github = Ok(settings.github_token.clone());
    build_with_secrets(settings, mode, sdk, control, github)
}

/// Secrets are consumed here: only their digests (control token) or the GitHub client
/// (GitHub token) outlive this call.
fn build_with_secrets(
    settings: Settings,
    mode: Mode,
    sdk: &SdkConfig,
    control: Secret,
    github: Secret,
) -> Result<App, AppError> {
    let auth = control.and_then(|shared| authenticator(&settings, shared));
    let timing = settings.timing;
    let workflow = match (github, mode) {
        (Ok(Some(token)), _) => {
            AnyWorkflow::GitHub(GitHubWorkflow::new(settings.github, token, timing.github)?)
        }
        (Ok(None), Mode::Local) => AnyWorkflow::DryRun(settings.github),
        (Ok(None), Mode::Lambda) => AnyWorkflow::NotConfigured(Misconfig::unset("GITHUB_TOKEN")),
        (Err(problem), _) => AnyWorkflow::NotConfigured(problem),
    };
    let bootstrap = settings
        .aws
        .bootstrap_bucket
        .clone()
        .map(|bucket| S3Bootstrap::new(sdk, bucket));
    let state = settings
        .aws
        .state_bucket
        .clone()
        .map(|bucket| S3State::new(sdk, bucket));
    if state.is_none() && mode == Mode::Lambda {
        tracing::warn!("FLEET_STATE_BUCKET is not set: no idempotency keys and no audit records");
    }
    let ports = Ports {
        workflow,
        fleet: Ec2Fleet::new(sdk, settings.aws),
        bootstrap,
        state,
        sleep: tokio_sleep,
    };
    let (max, window) = settings.deploy_rate_limit;
    let limiter = RateLimiter::new(max, Duration::from_secs(window));
    Ok(ControlApi::new(settings.registry, auth, ports)
        .with_rate_limit(limiter)
        .with_timing(timing.deploy, timing.claim))
}
