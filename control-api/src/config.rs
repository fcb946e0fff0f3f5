//! Settings read once from the environment at start-up (names and defaults are in README).

use std::path::PathBuf;
use std::time::Duration;

use crate::domain::dispatch::DeployTiming;
use crate::domain::idempotency::ClaimTiming;
use crate::domain::lease::DEFAULT_LEASE;
use crate::domain::readiness::ReadinessTiming;
use crate::domain::registry::{Registry, RegistryError};
use crate::outbound::github::GitHubTimeouts;

/// Where the process runs: the Lambda never dry-runs and never invents a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Lambda,
    Local,
}

/// GitHub coordinates of the deploy workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubSettings {
    pub api_url: String,
    pub owner: String,
    pub repo: String,
    pub workflow: String,
    pub git_ref: String,
}

/// Where the fleet lives in AWS: its tags and the bootstrap bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSettings {
    pub fleet_tag_key: String,
    pub fleet_tag_value: String,
    pub image_tag_key: String,
    pub image_tag_value: String,
    /// Unset: the pre-deploy bootstrap check is skipped, and answers say so.
    pub bootstrap_bucket: Option<String>,
    /// `FLEET_STATE_BUCKET`: idempotency records and the audit trail. Unset: no
    /// idempotency and no audit objects (answers say `"idempotency": "skipped"`).
    pub state_bucket: Option<String>,
    /// `FLEET_EC2_PAGE_SIZE`: `MaxResults` per DescribeInstances page (5..=1000). Fewest
    /// calls at 1000; smaller pages answer sooner each, for a page that would not
    /// finish within one attempt's timeout.
    pub ec2_page_size: i32,
}

/// Time budgets of the deploy path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timing {
    pub deploy: DeployTiming,
    pub claim: ClaimTiming,
    pub github: GitHubTimeouts,
}

/// Everything the handler needs, secrets included; never printed whole.
pub struct Settings {
    pub control_token: Option<String>,
    pub github_token: Option<String>,
    /// SSM SecureString parameters holding the tokens (the Lambda's way); when set they
    /// win over the plain variables above.
    pub control_token_parameter: Option<String>,
    pub github_token_parameter: Option<String>,
    /// The next shared token during a rotation; both are accepted meanwhile.
    pub control_token_next: Option<String>,
    /// Its SSM parameter (the Lambda's way); infra's placeholder there means no
    /// rotation is under way.
    pub control_token_next_parameter: Option<String>,
    /// `FLEET_CHAT_WEBHOOK_PARAMETER`: the SSM SecureString holding the chat's webhook
    /// URL, to which each run's report is posted. Unset: no chat messages.
    pub chat_webhook_parameter: Option<String>,
    /// `CONTROL_API_TOKENS`: JSON of token SHA-256 digest → principal (digests, not secrets).
    pub token_digests: Option<String>,
    /// `CONTROL_API_IAM_PRINCIPALS`: JSON of IAM ARN (or assumed-role prefix) → principal.
    pub iam_principals: Option<String>,
    /// `FLEET_DEPLOY_RATE_LIMIT`: deploys per window per principal, `<count>/<seconds>`.
    pub deploy_rate_limit: (usize, u64),
    /// `FLEET_HEARTBEAT_STALE_SECS` and `FLEET_BOOT_GRACE_SECS`.
    pub readiness: ReadinessTiming,
    /// `FLEET_LEASE_SECS`: the longest a deploy's lease holds (default 8100: the deploy
    /// job's 120-minute timeout and 15 minutes' margin).
    pub lease_lifetime: Duration,
    /// `FLEET_QUEUE_DRAIN_SECS`: the local server drains the deploy queue this often
    /// (default 30; the Lambda is drained by its schedule and by report events).
    pub queue_drain: Duration,
    pub github: GitHubSettings,
    pub aws: AwsSettings,
    /// Retry, polling and timeout budgets; defaults fit the Lambda's 30 s (tests shorten them).
    pub timing: Timing,
    pub registry: Registry,
    /// Where the registry came from, for start-up logs.
    pub registry_source: String,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field(
                "control_token",
                &self.control_token.as_ref().map(|_| "<set>"),
            )
            .field("github_token", &self.github_token.as_ref().map(|_| "<set>"))
            .field("control_token_parameter", &self.control_token_parameter)
            .field("github_token_parameter", &self.github_token_parameter)
            .field(
                "control_token_next",
                &self.control_token_next.as_ref().map(|_| "<set>"),
            )
            .field(
                "token_digests",
                &self.token_digests.as_ref().map(|_| "<set>"),
            )
            .field(
                "control_token_next_parameter",
                &self.control_token_next_parameter,
            )
            .field("iam_principals", &self.iam_principals)
            .field("chat_webhook_parameter", &self.chat_webhook_parameter)
            .field("deploy_rate_limit", &self.deploy_rate_limit)
            .field("lease_lifetime", &self.lease_lifetime)
            .field("queue_drain", &self.queue_drain)
            .field("github", &self.github)
            .field("aws", &self.aws)
            .field("timing", &self.timing)
            .field("registry_source", &self.registry_source)
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("GITHUB_REPO must be owner/name, got {0:?}")]
    InvalidRepo(String),
    #[error("{name} must be {what}, got {value:?}")]
    Invalid {
        name: &'static str,
        what: &'static str,
        value: String,
    },
    #[error("cannot read FLEET_REGISTRY {path}: {source}")]
    RegistryRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("fleet registry {source_name} is invalid: {error}")]
    Registry {
        source_name: String,
        error: RegistryError,
    },
}

pub const DEFAULT_GITHUB_API_URL: &str = "https://api.github.com";
pub const DEFAULT_GITHUB_REPO: &str = "openclaw/clawdinators";
pub const DEFAULT_GITHUB_WORKFLOW: &str = "fleet-deploy.yml";
pub const DEFAULT_GITHUB_REF: &str = "main";

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup`, so tests need not touch the process environment.
    /// Empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |k: &str| lookup(k).filter(|v| !v.trim().is_empty());
        let github = github_settings(&get)?;
        let deploy_rate_limit = deploy_rate_limit(&get)?;
        let aws = aws_settings(&get)?;
        let (registry, registry_source) = registry(get("FLEET_REGISTRY"))?;
        let defaults = ReadinessTiming::default();
        let readiness = ReadinessTiming {
            stale: seconds(&get, "FLEET_HEARTBEAT_STALE_SECS", defaults.stale)?,
            boot_grace: seconds(&get, "FLEET_BOOT_GRACE_SECS", defaults.boot_grace)?,
        };
        Ok(Self {
            control_token: get("CONTROL_API_TOKEN"),
            github_token: get("GITHUB_TOKEN"),
            control_token_parameter: get("CONTROL_API_TOKEN_PARAMETER"),
            github_token_parameter: get("GITHUB_TOKEN_PARAMETER"),
            control_token_next: get("CONTROL_API_TOKEN_NEXT"),
            control_token_next_parameter: get("CONTROL_API_TOKEN_NEXT_PARAMETER"),
            chat_webhook_parameter: get("FLEET_CHAT_WEBHOOK_PARAMETER"),
            token_digests: get("CONTROL_API_TOKENS"),
            iam_principals: get("CONTROL_API_IAM_PRINCIPALS"),
            deploy_rate_limit,
            readiness,
            lease_lifetime: seconds(&get, "FLEET_LEASE_SECS", DEFAULT_LEASE)?,
            queue_drain: seconds(&get, "FLEET_QUEUE_DRAIN_SECS", Duration::from_secs(30))?,
            github,
            aws,
            timing: Timing::default(),
            registry,
            registry_source,
        })
    }
}

/// `FLEET_DEPLOY_RATE_LIMIT`: `<count>/<seconds>`, default 10 per 10 minutes.
fn deploy_rate_limit(get: &dyn Fn(&str) -> Option<String>) -> Result<(usize, u64), ConfigError> {
    match get("FLEET_DEPLOY_RATE_LIMIT") {
        None => Ok((10, 600)),
        Some(v) => v
            .split_once('/')
            .and_then(|(n, s)| Some((n.trim().parse().ok()?, s.trim().parse().ok()?)))
            .filter(|&(n, s): &(usize, u64)| n > 0 && s > 0)
            .ok_or(ConfigError::Invalid {
                name: "FLEET_DEPLOY_RATE_LIMIT",
                what: "<count>/<seconds>, both above zero",
                value: v,
            }),
    }
}

/// The fleet's tags, buckets and EC2 page size.
fn aws_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<AwsSettings, ConfigError> {
    let ec2_page_size = match get("FLEET_EC2_PAGE_SIZE") {
        None => 1000,
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|n| (5..=1000).contains(n))
            .ok_or(ConfigError::Invalid {
                name: "FLEET_EC2_PAGE_SIZE",
                what: "a number from 5 to 1000",
                value: v,
            })?,
    };
    Ok(AwsSettings {
        fleet_tag_key: get("FLEET_TAG_KEY").unwrap_or_else(|| "app".to_owned()),
        fleet_tag_value: get("FLEET_TAG_VALUE").unwrap_or_else(|| "clawdinator".to_owned()),
        image_tag_key: get("FLEET_IMAGE_TAG_KEY").unwrap_or_else(|| "clawdinator".to_owned()),
        image_tag_value: get("FLEET_IMAGE_TAG_VALUE").unwrap_or_else(|| "true".to_owned()),
        bootstrap_bucket: get("FLEET_BOOTSTRAP_BUCKET"),
        state_bucket: get("FLEET_STATE_BUCKET"),
        ec2_page_size,
    })
}

/// A whole number of seconds above zero, or `default` when unset.
fn seconds(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v
            .trim()
            .parse()
            .ok()
            .filter(|&n: &u64| n > 0)
            .map(Duration::from_secs)
            .ok_or(ConfigError::Invalid {
                name,
                what: "a whole number of seconds above zero",
                value: v,
            }),
    }
}

/// `GITHUB_REPO`, `GITHUB_API_URL`, `GITHUB_WORKFLOW` and `GITHUB_REF`, checked.
fn github_settings(get: &dyn Fn(&str) -> Option<String>) -> Result<GitHubSettings, ConfigError> {
    let repo_full = get("GITHUB_REPO").unwrap_or_else(|| DEFAULT_GITHUB_REPO.to_owned());
    let (owner, repo) = repo_full
        .split_once('/')
        .filter(|(o, r)| is_github_name(o) && is_github_name(r))
        .ok_or_else(|| ConfigError::InvalidRepo(repo_full.clone()))?;
    let api_url = get("GITHUB_API_URL").unwrap_or_else(|| DEFAULT_GITHUB_API_URL.to_owned());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://"))
        || api_url.parse::<http::Uri>().is_err()
    {
        return Err(ConfigError::Invalid {
            name: "GITHUB_API_URL",
            what: "an http(s) URL",
            value: api_url,
        });
    }
    let workflow = get("GITHUB_WORKFLOW").unwrap_or_else(|| DEFAULT_GITHUB_WORKFLOW.to_owned());
    if !is_github_name(&workflow) {
        return Err(ConfigError::Invalid {
            name: "GITHUB_WORKFLOW",
            what: "a workflow file name or id",
            value: workflow,
        });
    }
    Ok(GitHubSettings {
        api_url: api_url.trim_end_matches('/').to_owned(),
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        workflow,
        git_ref: get("GITHUB_REF").unwrap_or_else(|| DEFAULT_GITHUB_REF.to_owned()),
    })
}

/// The registry from `FLEET_REGISTRY` (a file), else the embedded one, and its name.
fn registry(path: Option<String>) -> Result<(Registry, String), ConfigError> {
    match path {
        Some(path) => {
            let path = PathBuf::from(path);
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::RegistryRead {
                    path: path.clone(),
                    source,
                })?;
            let source_name = path.display().to_string();
            let registry = Registry::from_json(&text).map_err(|error| ConfigError::Registry {
                source_name: source_name.clone(),
                error,
            })?;
            Ok((registry, source_name))
        }
        None => {
            let registry = Registry::embedded().map_err(|error| ConfigError::Registry {
                source_name: "embedded".to_owned(),
                error,
            })?;
            Ok((registry, "embedded nix/instances.json".to_owned()))
        }
    }
}

/// GitHub owner, repository and workflow file names: letters, digits, `-`, `_`, `.`.
fn is_github_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        && s != "."
        && s != ".."
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_match_the_seed() {
        let s = settings(&[]).unwrap();
        assert_eq!(
            s.github,
            GitHubSettings {
                api_url: "https://api.github.com".into(),
                owner: "openclaw".into(),
                repo: "clawdinators".into(),
                workflow: "fleet-deploy.yml".into(),
                git_ref: "main".into(),
            }
        );
        assert!(s.control_token.is_none() && s.github_token.is_none());
        assert_eq!(
            s.aws,
            AwsSettings {
                fleet_tag_key: "app".into(),
                fleet_tag_value: "clawdinator".into(),
                image_tag_key: "clawdinator".into(),
                image_tag_value: "true".into(),
                bootstrap_bucket: None,
                state_bucket: None,
                ec2_page_size: 1000,
            }
        );
        assert_eq!(s.registry.len(), 3);
    }

    #[test]
    fn bad_values_are_named() {
        assert!(matches!(
            settings(&[("GITHUB_REPO", "nope")]),
            Err(ConfigError::InvalidRepo(_))
        ));
        assert!(matches!(
            settings(&[("GITHUB_REPO", "a/b/c")]),
            Err(ConfigError::InvalidRepo(_))
        ));
        assert!(matches!(
            settings(&[("GITHUB_API_URL", "ftp://x")]),
            Err(ConfigError::Invalid {
                name: "GITHUB_API_URL",
                ..
            })
        ));
        assert!(matches!(
            settings(&[("FLEET_REGISTRY", "/nonexistent/registry.json")]),
            Err(ConfigError::RegistryRead { .. })
        ));
        assert!(matches!(
            settings(&[("GITHUB_API_URL", "https://exa mple.com")]),
            Err(ConfigError::Invalid {
                name: "GITHUB_API_URL",
                ..
            })
        ));
        for bad in ["4", "1001", "many"] {
            assert!(matches!(
                settings(&[("FLEET_EC2_PAGE_SIZE", bad)]),
                Err(ConfigError::Invalid {
                    name: "FLEET_EC2_PAGE_SIZE",
                    ..
                })
            ));
        }
        assert_eq!(
            settings(&[("FLEET_EC2_PAGE_SIZE", "50")])
                .unwrap()
                .aws
                .ec2_page_size,
            50
        );
        assert!(matches!(
            settings(&[("FLEET_DEPLOY_RATE_LIMIT", "10 per hour")]),
            Err(ConfigError::Invalid {
                name: "FLEET_DEPLOY_RATE_LIMIT",
                ..
            })
        ));
        assert_eq!(
            settings(&[("FLEET_DEPLOY_RATE_LIMIT", "3/60")])
                .unwrap()
                .deploy_rate_limit,
            (3, 60)
        );
    }

    #[test]
    fn debug_hides_secrets() {
        let s = settings(&[
            ("CONTROL_API_TOKEN", "tok-123"),
            ("GITHUB_TOKEN", "ghp_456"),
            ("CONTROL_API_TOKEN_NEXT", "tok-789"),
        ])
        .unwrap();
        let d = format!("{s:?}");
        assert!(
            !d.contains("tok-123") && !d.contains("ghp_456") && !d.contains("tok-789"),
            "{d}"
        );
    }
}
