//! Wiring: settings in, a ready [`ControlApi`] out, the same for Lambda and localhost:
//! at once (local server), or on the first request (the Lambda's [`LazyApp`]).

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use aws_config::SdkConfig;
use tokio::sync::OnceCell;

use crate::config::{Mode, Settings};
use crate::contract::EventAnswer;
use crate::domain::auth::{Authenticator, Principal};
use crate::domain::error::ApiError;
use crate::domain::ports::Misconfig;
use crate::domain::rate_limit::RateLimiter;
use crate::domain::service::events::{EventError, Events};
use crate::domain::service::{ControlApi, Ports};
use crate::inbound::event::{dispatch, drain_after, LambdaEvent, OnEvent};
use crate::inbound::http::{answer_unready, Handler, HttpCall, Reply};
use crate::outbound::aws::{
    load_lambda_sdk_config, load_local_sdk_config, read_secure_parameters, s3_client, Ec2Fleet,
    S3Bootstrap, SecretsReadError,
};
use crate::outbound::chat::WebhookChat;
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
    #[error("cannot read the secrets: {0}")]
    Secrets(SecretsReadError),
}

/// Where a token came from, or why there is none.
pub type Secret = Result<Option<String>, Misconfig>;

/// Operators put real values into the SSM parameters after the first apply; until then
/// infra leaves this placeholder, which must never work as a token.
const PLACEHOLDER_PREFIX: &str = "UNSET-";

/// Builds the app at once with AWS settings from the environment (region, credentials,
/// endpoint), reading the tokens from SSM when parameters are named: the local server,
/// which should fail at start-up rather than on its first request.
pub async fn build(settings: Settings, mode: Mode) -> Result<App, AppError> {
    let sdk = match mode {
        Mode::Lambda => load_lambda_sdk_config().await,
        Mode::Local => load_local_sdk_config().await,
    };
    let secrets = read_secrets(&settings, mode, &sdk).await?;
    build_with_secrets(&settings, mode, &sdk, secrets)
}

/// The app as the Lambda holds it. At cold start only settings and the SDK config are
/// loaded, so the function asks the Runtime API for its first event without a network
/// round trip; the tokens are read (one SSM `GetParameters`) and the app built on the
/// first request. An app whose tokens were all usable is kept for the life of the
/// sandbox. Anything less is not: a failed read is a 503 (or a 500 when SSM refused),
/// and a parameter that is missing, empty or still the placeholder gives an app that
/// answers 500 naming it; either way the tokens are read again a second later, so
/// putting the real value (or fixing the role) takes effect without recycling.
pub struct LazyApp {
    settings: Settings,
    mode: Mode,
    sdk: SdkConfig,
    /// Built from usable tokens: final.
    app: OnceCell<App>,
    /// The last attempt that did not give a final app. Its lock also makes requests
    /// that arrive during a read wait for that read instead of starting their own.
    last: tokio::sync::Mutex<Attempt>,
    /// What S3 and schedule events need, built on the first such event.
    events: OnceLock<EventPorts>,
}

/// The state store and, when `FLEET_CHAT_WEBHOOK_PARAMETER` is set, the chat: apart from
/// the app, since an event needs no token and must not wait for (or fail with) them.
struct EventPorts {
    state: Option<S3State>,
    chat: Option<WebhookChat>,
}

/// How the last build that fell short ended, and when. Attempts are at least
/// [`SECRETS_RETRY`] apart, so a broken setup costs one SSM call a second however
/// many requests come in.
enum Attempt {
    None,
    Failed(Instant, ApiError),
    Partial(Instant, Arc<App>),
}

/// The least time between two attempts to read the secrets after one fell short.
pub const SECRETS_RETRY: Duration = Duration::from_secs(1);

/// The app a request is served by: the final one, or one built from a setup that is
/// not complete yet.
pub enum Ready<'a> {
    Final(&'a App),
    Partial(Arc<App>),
}

impl std::ops::Deref for Ready<'_> {
    type Target = App;
    fn deref(&self) -> &App {
        match self {
            Self::Final(app) => app,
            Self::Partial(app) => app,
        }
    }
}

impl LazyApp {
    /// No I/O: nothing is read until the first request.
    pub fn new(settings: Settings, mode: Mode, sdk: SdkConfig) -> Self {
        Self {
            settings,
            mode,
            sdk,
            app: OnceCell::new(),
            last: tokio::sync::Mutex::new(Attempt::None),
            events: OnceLock::new(),
        }
    }

    /// No I/O either: the clients connect on their first call.
    fn event_ports(&self) -> &EventPorts {
        self.events.get_or_init(|| EventPorts {
            state: self
                .settings
                .aws
                .state_bucket
                .clone()
                .map(|bucket| S3State::new(s3_client(&self.sdk), bucket)),
            chat: self
                .settings
                .chat_webhook_parameter
                .clone()
                .map(|name| WebhookChat::new(aws_sdk_ssm::Client::new(&self.sdk), name)),
        })
    }

    /// The app, built on first use; `Err` while it cannot be (the secrets unreadable).
    pub async fn get(&self) -> Result<Ready<'_>, ApiError> {
        if let Some(app) = self.app.get() {
            return Ok(Ready::Final(app));
        }
        let mut last = self.last.lock().await;
        if let Some(app) = self.app.get() {
            return Ok(Ready::Final(app));
        }
        match &*last {
            Attempt::Failed(at, e) if at.elapsed() < SECRETS_RETRY => return Err(e.clone()),
            Attempt::Partial(at, app) if at.elapsed() < SECRETS_RETRY => {
                return Ok(Ready::Partial(Arc::clone(app)))
            }
            _ => {}
        }
        let built = match read_secrets(&self.settings, self.mode, &self.sdk).await {
            Ok(secrets) => {
                let complete = secrets.complete();
                build_with_secrets(&self.settings, self.mode, &self.sdk, secrets)
                    .map(|app| (app, complete))
            }
            Err(e) => Err(e),
        };
        match built {
            Ok((app, true)) => {
                *last = Attempt::None;
                Ok(Ready::Final(self.app.get_or_init(|| async { app }).await))
            }
            Ok((app, false)) => {
                tracing::warn!(
                    "a token parameter is not usable yet; it is read again on a later request"
                );
                let app = Arc::new(app);
                *last = Attempt::Partial(Instant::now(), Arc::clone(&app));
                Ok(Ready::Partial(app))
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot build the app; a later request tries again");
                let answer = match e {
                    AppError::Secrets(SecretsReadError::Unavailable(_)) => {
                        ApiError::SecretsUnavailable {
                            retry_after_secs: SECRETS_RETRY.as_secs().max(1),
                        }
                    }
                    AppError::Secrets(SecretsReadError::Refused(_)) => ApiError::SecretsRefused,
                    AppError::GitHubClient(_) => ApiError::Misconfigured(Misconfig {
                        setting: "GITHUB_API_URL",
                        problem: "is not a URL the GitHub client accepts",
                    }),
                };
                *last = Attempt::Failed(Instant::now(), answer.clone());
                Err(answer)
            }
        }
    }
}

impl Handler for LazyApp {
    async fn handle(&self, call: HttpCall<'_>) -> Reply {
        match self.get().await {
            Ok(app) => app.handle(call).await,
            Err(e) => answer_unready(e),
        }
    }
}

impl OnEvent for LazyApp {
    async fn on_event(&self, event: LambdaEvent) -> Result<EventAnswer, EventError> {
        let ports = self.event_ports();
        let events = Events::new(ports.state.as_ref(), ports.chat.as_ref(), tokio_sleep);
        let answer = dispatch(&events, self.settings.aws.state_bucket.as_deref(), event).await?;
        // The drain dispatches, so it needs the whole app (the GitHub token); without
        // it the chat was still told, and the schedule drains once the app can be built.
        match self.get().await {
            Ok(app) => drain_after(&app, &answer).await,
            Err(e) => tracing::error!(error = %e, "queue not drained: the app cannot be built"),
        }
        Ok(answer)
    }
}

/// The tokens, each usable or the reason it is not.
struct Secrets {
    control: Secret,
    /// The shared token's successor during a rotation.
    control_next: Secret,
    github: Secret,
}

impl Secrets {
    /// Every token usable (or rightly absent): nothing an operator still has to put.
    fn complete(&self) -> bool {
        self.control.is_ok() && self.control_next.is_ok() && self.github.is_ok()
    }
}

/// Every named parameter in one SSM call; `Err` only when that call failed. A parameter
/// that is missing, empty or still a placeholder is the named setting's [`Misconfig`].
async fn read_secrets(
    settings: &Settings,
    mode: Mode,
    sdk: &SdkConfig,
) -> Result<Secrets, AppError> {
    let control = (
        "CONTROL_API_TOKEN_PARAMETER",
        settings.control_token_parameter.as_deref(),
    );
    let control_next = (
        "CONTROL_API_TOKEN_NEXT_PARAMETER",
        settings.control_token_next_parameter.as_deref(),
    );
    let github = (
        "GITHUB_TOKEN_PARAMETER",
        settings.github_token_parameter.as_deref(),
    );
    let names: Vec<&str> = [control.1, control_next.1, github.1]
        .into_iter()
        .flatten()
        .collect();
    let values = if names.is_empty() {
        BTreeMap::new()
    } else {
        read_secure_parameters(&aws_sdk_ssm::Client::new(sdk), &names)
            .await
            .map_err(AppError::Secrets)?
    };
    let token =
        |parameter, plain, placeholder| secret(mode, parameter, plain, placeholder, &values);
    Ok(Secrets {
        control: token(
            control,
            ("CONTROL_API_TOKEN", settings.control_token.clone()),
            Placeholder::Refused,
        ),
        // Infra creates the next token's parameter with the placeholder, and it goes
        // back to one after a rotation: there it means no rotation is under way.
        control_next: token(
            control_next,
            (
                "CONTROL_API_TOKEN_NEXT",
                settings.control_token_next.clone(),
            ),
            Placeholder::MeansUnset,
        ),
        github: token(
            github,
            ("GITHUB_TOKEN", settings.github_token.clone()),
            Placeholder::Refused,
        ),
    })
}

/// What infra's placeholder value in a parameter means.
#[derive(Clone, Copy)]
enum Placeholder {
    /// The operator has not put the real value yet: a misconfiguration.
    Refused,
    /// Nothing to use, by design.
    MeansUnset,
}

/// A token from its SSM parameter when one is named. Otherwise from the environment —
/// but only locally: in the Lambda a plain environment value would sit in the function's
/// configuration and in infra state for anyone with read access to either.
fn secret(
    mode: Mode,
    (setting, parameter): (&'static str, Option<&str>),
    (env_setting, from_env): (&'static str, Option<String>),
    placeholder: Placeholder,
    values: &BTreeMap<String, String>,
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
    match values.get(name) {
        None => Err(Misconfig {
            setting,
            problem: "names a parameter that does not exist",
        }),
        Some(value) if value.starts_with(PLACEHOLDER_PREFIX) => match placeholder {
            Placeholder::MeansUnset => Ok(None),
            Placeholder::Refused => Err(Misconfig {
                setting,
                problem: "names a parameter that still holds its placeholder value",
            }),
        },
        Some(value) if value.trim().is_empty() => Err(Misconfig {
            setting,
            problem: "names an empty parameter",
        }),
        Some(value) => Ok(Some(value.trim().to_owned())),
    }
}

/// Every accepted credential: the shared token (and its successor during a rotation),
/// per-principal token digests, IAM principals. No token at all is a 500 for every request.
fn authenticator(
    settings: &Settings,
    shared: Option<String>,
    next: Option<String>,
) -> Result<Authenticator, Misconfig> {
    let mut auth = Authenticator::default();
    for token in [shared.as_deref(), next.as_deref()].into_iter().flatten() {
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
    let secrets = Secrets {
        control: Ok(settings.control_token.clone()),
        control_next: Ok(settings.control_token_next.clone()),
        github: Ok(settings.github_token.clone()),
    };
    build_with_secrets(&settings, mode, sdk, secrets)
}

/// Secrets are consumed here: only their digests (control token) or the GitHub client
/// (GitHub token) outlive this call.
fn build_with_secrets(
    settings: &Settings,
    mode: Mode,
    sdk: &SdkConfig,
    secrets: Secrets,
) -> Result<App, AppError> {
    let auth = secrets
        .control
        .and_then(|shared| authenticator(settings, shared, secrets.control_next?));
    let timing = settings.timing;
    let workflow = match (secrets.github, mode) {
        (Ok(Some(token)), _) => AnyWorkflow::GitHub(GitHubWorkflow::new(
            settings.github.clone(),
            token,
            timing.github,
        )?),
        (Ok(None), Mode::Local) => AnyWorkflow::DryRun(settings.github.clone()),
        (Ok(None), Mode::Lambda) => AnyWorkflow::NotConfigured(Misconfig::unset("GITHUB_TOKEN")),
        (Err(problem), _) => AnyWorkflow::NotConfigured(problem),
    };
    // One S3 client for both buckets, and none when neither is set.
    let s3 = std::sync::LazyLock::new(|| s3_client(sdk));
    let bootstrap = settings
        .aws
        .bootstrap_bucket
        .clone()
        .map(|bucket| S3Bootstrap::new(s3.clone(), bucket));
    let state = settings
        .aws
        .state_bucket
        .clone()
        .map(|bucket| S3State::new(s3.clone(), bucket));
    if state.is_none() && mode == Mode::Lambda {
        tracing::warn!("FLEET_STATE_BUCKET is not set: no idempotency keys and no audit records");
    }
    let ports = Ports {
        workflow,
        fleet: fleet_reader(sdk, settings, mode),
        bootstrap,
        state,
        sleep: tokio_sleep,
    };
    let (max, window) = settings.deploy_rate_limit;
    let limiter = RateLimiter::new(max, Duration::from_secs(window));
    Ok(ControlApi::new(settings.registry.clone(), auth, ports)
        .with_rate_limit(limiter)
        .with_readiness(settings.readiness)
        .with_lease_lifetime(settings.lease_lifetime)
        .with_timing(timing.deploy, timing.claim))
}

/// The EC2 reader; the local server without an emulator tells its callers how to get one.
fn fleet_reader(sdk: &SdkConfig, settings: &Settings, mode: Mode) -> Ec2Fleet {
    let fleet = Ec2Fleet::new(sdk, settings.aws.clone());
    match (mode, sdk.endpoint_url()) {
        (Mode::Local, None) => fleet.with_unreachable_hint(
            "without an AWS account, scripts/local-fleet runs the whole product on a local emulator",
        ),
        _ => fleet,
    }
}
