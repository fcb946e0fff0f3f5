//! Configuration from the environment: control URL, token, invoker credentials, default caller.
//!
//! Everything is read through a lookup function rather than `std::env` directly, so tests
//! can configure a run without touching the process environment. Secrets (the control
//! token, the AWS secret key) are held in types whose `Debug` is redacted and that have
//! no `Display`; error messages name where a secret came from, never its value.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use control_api::contract::Caller;
use ureq::http::Uri;

use crate::sigv4::Signer;

pub const URL_VAR: &str = "FLEET_CONTROL_URL";
pub const TOKEN_FILE_VAR: &str = "FLEET_CONTROL_TOKEN_FILE";
pub const TOKEN_VAR: &str = "FLEET_CONTROL_TOKEN";
pub const AGENIX_DIR_VAR: &str = "FLEET_AGENIX_DIR";
pub const INSTANCE_NAME_FILE_VAR: &str = "FLEET_INSTANCE_NAME_FILE";

/// Where agenix decrypts the control token on a fleet host.
pub const DEFAULT_TOKEN_FILE: &str = "/run/agenix/clawdinator-control-token";
pub const DEFAULT_AGENIX_DIR: &str = "/run/agenix";
/// Written by `nix/hosts/common.nix`: the host's own instance id.
pub const DEFAULT_INSTANCE_NAME_FILE: &str = "/etc/clawdinator/instance-name";
pub const ACCESS_KEY_ID_FILE: &str = "clawdinator-control-aws-access-key-id";
pub const SECRET_ACCESS_KEY_FILE: &str = "clawdinator-control-aws-secret-access-key";

/// A secret file larger than this is not a token or key; refusing it keeps a wrong path
/// (say, a log file) from being read into memory and sent.
const MAX_SECRET_FILE_BYTES: u64 = 8 * 1024;

/// Reads one environment variable; `None` when unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A variable's value, with empty and blank values counted as unset.
fn var(lookup: Lookup<'_>, name: &str) -> Option<String> {
    lookup(name).filter(|v| !v.trim().is_empty())
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{URL_VAR} is not set; set it to the control API URL: http://127.0.0.1:8787 for the local server (`scripts/local-fleet`), or the Lambda's Function URL https://<id>.lambda-url.<region>.on.aws/")]
    MissingUrl,
    #[error("{URL_VAR} must be an http(s) URL with a host and no user info ({0})")]
    InvalidUrl(&'static str),
    #[error("{URL_VAR} uses plain http to a host that is not loopback; use https so the token is not sent in clear")]
    InsecureUrl,
    #[error(
        "no control token: set {TOKEN_FILE_VAR} or {TOKEN_VAR} (for the local server, the CONTROL_API_TOKEN it prints), or install {DEFAULT_TOKEN_FILE}"
    )]
    MissingToken,
    #[error("the control token from {0} is empty")]
    EmptyToken(String),
    #[error("the control token from {0} contains characters not allowed in an HTTP header")]
    BadToken(String),
    #[error("cannot read {path}: {source}")]
    ReadFile { path: PathBuf, source: io::Error },
    #[error("{path} is larger than {MAX_SECRET_FILE_BYTES} bytes; it is not a secret file")]
    FileTooLarge { path: PathBuf },
    #[error("{present} is set but {missing} is not; provide both or neither")]
    PartialCredentials { present: String, missing: String },
    #[error("no AWS credentials to sign for the Function URL from the default chain: {0}")]
    NoCredentials(String),
    #[error("AWS credentials from {0} contain characters not allowed in an HTTP header")]
    BadCredentials(String),
    #[error("cannot tell the AWS region to sign for: set AWS_REGION, or use a Function URL host <id>.lambda-url.<region>.on.aws")]
    MissingRegion,
    #[error("AWS region {0:?} is not a region name like eu-central-1")]
    InvalidRegion(String),
    #[error("the caller in {path} is not valid: {reason}")]
    InvalidCallerFile { path: PathBuf, reason: String },
}

/// The control token. Deliberately neither `Display` nor `Serialize`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Checks a token read from `source` (a path or a variable name, for messages).
    fn parse(raw: &str, source: &str) -> Result<Self, ConfigError> {
        let token = raw.trim();
        if token.is_empty() {
            return Err(ConfigError::EmptyToken(source.to_owned()));
        }
        // Visible ASCII only: anything else would be rejected by the HTTP layer, whose
        // error might then quote the header.
        if !token.bytes().all(|c| c.is_ascii_graphic()) {
            return Err(ConfigError::BadToken(source.to_owned()));
        }
        Ok(Self(token.to_owned()))
    }

    /// The token text, for the one header that carries it.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// The control API URL, checked, with what signing needs from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlUrl {
    url: String,
    /// The `Host` header value: the authority without a default port. Sent explicitly
    /// when signing so the signed and the sent value cannot differ.
    host_header: String,
    /// The region in a Lambda Function URL host, if it is one.
    function_url_region: Option<String>,
}

impl ControlUrl {
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let raw = raw.trim();
        let uri: Uri = raw
            .parse()
            .map_err(|_| ConfigError::InvalidUrl("not a URL"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(ConfigError::InvalidUrl("scheme must be http or https")),
        };
        let authority = uri.authority().ok_or(ConfigError::InvalidUrl("no host"))?;
        // User info in the URL would be a second, unmanaged place for a secret.
        if authority.as_str().contains('@') {
            return Err(ConfigError::InvalidUrl("user info is not allowed"));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(ConfigError::InvalidUrl("no host"));
        }
        if !https && !is_loopback(host) {
            return Err(ConfigError::InsecureUrl);
        }
        let default_port = if https { 443 } else { 80 };
        let host_header = match authority.port_u16() {
            Some(port) if port != default_port => format!("{host}:{port}"),
            _ => host.to_owned(),
        };
        Ok(Self {
            url: raw.to_owned(),
            host_header,
            function_url_region: function_url_region(host),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }

    pub fn host_header(&self) -> &str {
        &self.host_header
    }

    pub fn function_url_region(&self) -> Option<&str> {
        self.function_url_region.as_deref()
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `<url-id>.lambda-url.<region>.on.aws` → `<region>`.
pub fn function_url_region(host: &str) -> Option<String> {
    let parts: Vec<&str> = host.split('.').collect();
    match parts.as_slice() {
        [id, "lambda-url", region, "on", "aws"] if !id.is_empty() && is_region(region) => {
            Some((*region).to_owned())
        }
        _ => None,
    }
}

/// AWS region names: lowercase letters, digits and dashes, e.g. `us-gov-west-1`.
fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.contains('-')
        && s.bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
}

/// Everything needed to call the control API.
#[derive(Debug)]
pub struct Endpoint {
    pub url: ControlUrl,
    pub token: Token,
    /// Present when invoker credentials are: the Function URL then wants SigV4.
    pub signer: Option<Signer>,
}

impl Endpoint {
    /// Reads URL, token and credentials. The URL is checked first so that a machine with
    /// nothing configured gets the most useful message.
    pub fn from_env(lookup: Lookup<'_>) -> Result<Self, ConfigError> {
        let url = ControlUrl::parse(&var(lookup, URL_VAR).ok_or(ConfigError::MissingUrl)?)?;
        let token = load_token(lookup)?;
        let explicit = load_credentials(lookup)?;
        // A Function URL (AWS_IAM auth) refuses unsigned requests, and a named profile is
        // an explicit ask: then the whole AWS default chain is consulted — profiles,
        // assume-role with a session name (how a host becomes its own invoker session),
        // instance metadata. Never for the local server without either, so a laptop does
        // not wait on an instance-metadata probe.
        let wants_chain =
            url.function_url_region().is_some() || var(lookup, "AWS_PROFILE").is_some();
        let creds = match explicit {
            Some(creds) => Some(creds),
            None if wants_chain => Some(default_chain_credentials()?),
            None => None,
        };
        let signer = match creds {
            None => None,
            Some(creds) => {
                let region = signing_region(lookup, &url)?;
                Some(Signer::new(creds, region))
            }
        };
        Ok(Self { url, token, signer })
    }
}

/// Token precedence: an explicit token file, then the variable, then the agenix default.
fn load_token(lookup: Lookup<'_>) -> Result<Token, ConfigError> {
    if let Some(path) = var(lookup, TOKEN_FILE_VAR) {
        let path = PathBuf::from(path);
        let text = read_secret_file(&path)?;
        return Token::parse(&text, &path.display().to_string());
    }
    if let Some(token) = lookup(TOKEN_VAR) {
        return Token::parse(&token, TOKEN_VAR);
    }
    let path = Path::new(DEFAULT_TOKEN_FILE);
    match read_optional_secret_file(path)? {
        Some(text) => Token::parse(&text, DEFAULT_TOKEN_FILE),
        None => Err(ConfigError::MissingToken),
    }
}

fn read_secret_file(path: &Path) -> Result<String, ConfigError> {
    read_optional_secret_file(path)?.ok_or_else(|| ConfigError::ReadFile {
        path: path.to_owned(),
        source: io::Error::from(io::ErrorKind::NotFound),
    })
}

/// Reads a small file; `None` when it does not exist.
fn read_optional_secret_file(path: &Path) -> Result<Option<String>, ConfigError> {
    let read_err = |source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    if meta.len() > MAX_SECRET_FILE_BYTES {
        return Err(ConfigError::FileTooLarge {
            path: path.to_owned(),
        });
    }
    std::fs::read_to_string(path).map(Some).map_err(read_err)
}

/// Invoker credentials for SigV4, with where they came from (for messages only).
#[derive(Clone, PartialEq, Eq)]
pub struct InvokerCredentials {
    pub access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
    pub source: String,
}

impl InvokerCredentials {
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
        source: impl Into<String>,
    ) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token,
            source: source.into(),
        }
    }
}

impl fmt::Debug for InvokerCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InvokerCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("source", &self.source)
            .finish()
    }
}

/// The AWS default chain's environment variables first, then the agenix files; `None`
/// when neither is there (the request then goes unsigned, with a bearer token).
pub fn load_credentials(lookup: Lookup<'_>) -> Result<Option<InvokerCredentials>, ConfigError> {
    const ID: &str = "AWS_ACCESS_KEY_ID";
    const SECRET: &str = "AWS_SECRET_ACCESS_KEY";
    let from_env = match (var(lookup, ID), var(lookup, SECRET)) {
        (Some(id), Some(secret)) => Some(InvokerCredentials {
            access_key_id: id.trim().to_owned(),
            secret_access_key: secret.trim().to_owned(),
            session_token: var(lookup, "AWS_SESSION_TOKEN").map(|t| t.trim().to_owned()),
            source: "the AWS_* environment variables".to_owned(),
        }),
        (Some(_), None) => return Err(partial(ID, SECRET)),
        (None, Some(_)) => return Err(partial(SECRET, ID)),
        (None, None) => None,
    };
    let creds = match from_env {
        Some(creds) => creds,
        None => {
            let dir =
                PathBuf::from(var(lookup, AGENIX_DIR_VAR).unwrap_or(DEFAULT_AGENIX_DIR.into()));
            let id_path = dir.join(ACCESS_KEY_ID_FILE);
            let secret_path = dir.join(SECRET_ACCESS_KEY_FILE);
            let id = read_optional_secret_file(&id_path)?;
            let secret = read_optional_secret_file(&secret_path)?;
            match (id, secret) {
                (Some(id), Some(secret)) => InvokerCredentials {
                    access_key_id: id.trim().to_owned(),
                    secret_access_key: secret.trim().to_owned(),
                    session_token: None,
                    source: format!(
                        "{}/{{{ACCESS_KEY_ID_FILE},{SECRET_ACCESS_KEY_FILE}}}",
                        dir.display()
                    ),
                },
                (Some(_), None) => {
                    return Err(partial(
                        &id_path.display().to_string(),
                        &secret_path.display().to_string(),
                    ))
                }
                (None, Some(_)) => {
                    return Err(partial(
                        &secret_path.display().to_string(),
                        &id_path.display().to_string(),
                    ))
                }
                (None, None) => return Ok(None),
            }
        }
    };
    let header_safe = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_graphic());
    if !header_safe(&creds.access_key_id)
        || !header_safe(&creds.secret_access_key)
        || !creds.session_token.as_deref().is_none_or(header_safe)
    {
        return Err(ConfigError::BadCredentials(creds.source));
    }
    Ok(Some(creds))
}

/// Credentials from the AWS SDK's default chain, resolved once for this invocation.
fn default_chain_credentials() -> Result<InvokerCredentials, ConfigError> {
    use aws_credential_types::provider::ProvideCredentials;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ConfigError::NoCredentials(e.to_string()))?;
    let creds = runtime.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(control_api::aws_http::https_client())
            .load()
            .await;
        let provider = config
            .credentials_provider()
            .ok_or_else(|| "no credentials provider".to_owned())?;
        provider
            .provide_credentials()
            .await
            .map_err(|e| with_causes(&e))
    });
    let creds = creds.map_err(ConfigError::NoCredentials)?;
    Ok(InvokerCredentials {
        access_key_id: creds.access_key_id().to_owned(),
        secret_access_key: creds.secret_access_key().to_owned(),
        session_token: creds.session_token().map(str::to_owned),
        source: "the AWS default credential chain".to_owned(),
    })
}

/// An error and its causes on one line: the SDK's top-level credentials error only says
/// "an error occurred while loading credentials"; the cause says which (an expired SSO
/// login, a failing credential_process, ...). Not smithy's `DisplayErrorContext`, which
/// writes the same chain and then the error's `Debug` form, too much for a one-line
/// message to a chat or a terminal.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

fn partial(present: &str, missing: &str) -> ConfigError {
    ConfigError::PartialCredentials {
        present: present.to_owned(),
        missing: missing.to_owned(),
    }
}

/// The region to sign for. A Function URL names its own region, and a signature for any
/// other region is refused, so the URL wins over a host-wide `AWS_REGION` default.
pub fn signing_region(lookup: Lookup<'_>, url: &ControlUrl) -> Result<String, ConfigError> {
    if let Some(region) = url.function_url_region() {
        return Ok(region.to_owned());
    }
    let region = var(lookup, "AWS_REGION")
        .or_else(|| var(lookup, "AWS_DEFAULT_REGION"))
        .ok_or(ConfigError::MissingRegion)?;
    let region = region.trim();
    if is_region(region) {
        Ok(region.to_owned())
    } else {
        Err(ConfigError::InvalidRegion(
            region.chars().take(32).collect(),
        ))
    }
}

/// The caller this host speaks for: its instance name, when the file is there.
pub fn default_caller(lookup: Lookup<'_>) -> Result<Option<Caller>, ConfigError> {
    let path = PathBuf::from(
        var(lookup, INSTANCE_NAME_FILE_VAR).unwrap_or(DEFAULT_INSTANCE_NAME_FILE.into()),
    );
    let Some(text) = read_optional_secret_file(&path)? else {
        return Ok(None);
    };
    let name = text.trim();
    if name.is_empty() {
        return Ok(None);
    }
    Caller::parse(name)
        .map(Some)
        .map_err(|e| ConfigError::InvalidCallerFile {
            path,
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn urls() {
        let u = ControlUrl::parse("https://abc123.lambda-url.eu-central-1.on.aws/").unwrap();
        assert_eq!(u.host_header(), "abc123.lambda-url.eu-central-1.on.aws");
        assert_eq!(u.function_url_region(), Some("eu-central-1"));
        let u = ControlUrl::parse("https://abc.lambda-url.us-east-1.on.aws:443/").unwrap();
        assert_eq!(u.host_header(), "abc.lambda-url.us-east-1.on.aws");
        let u = ControlUrl::parse("http://127.0.0.1:8787").unwrap();
        assert_eq!(u.host_header(), "127.0.0.1:8787");
        assert_eq!(u.function_url_region(), None);
        assert!(ControlUrl::parse("http://localhost/").is_ok());
        assert!(ControlUrl::parse("http://[::1]:9/").is_ok());
        assert!(matches!(
            ControlUrl::parse("http://example.com/"),
            Err(ConfigError::InsecureUrl)
        ));
        for bad in [
            "",
            "example.com",
            "ftp://x/",
            "https://user:pw@x.example/",
            "https:///x",
        ] {
            assert!(
                matches!(ControlUrl::parse(bad), Err(ConfigError::InvalidUrl(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn function_url_regions() {
        assert_eq!(
            function_url_region("x1.lambda-url.ap-southeast-2.on.aws").as_deref(),
            Some("ap-southeast-2")
        );
        for no in [
            "lambda-url.us-east-1.on.aws",
            "x.lambda-url.US-EAST-1.on.aws",
            "x.lambda-url.us-east-1.on.aws.evil.com",
            "x.y.lambda-url.us-east-1.on.aws",
            "example.com",
        ] {
            assert_eq!(function_url_region(no), None, "{no}");
        }
    }

    #[test]
    fn region_precedence() {
        let lambda = ControlUrl::parse("https://x.lambda-url.eu-west-1.on.aws/").unwrap();
        let local = ControlUrl::parse("http://127.0.0.1:1/").unwrap();
        let both = env(&[
            ("AWS_REGION", "us-east-1"),
            ("AWS_DEFAULT_REGION", "us-west-2"),
        ]);
        assert_eq!(signing_region(&both, &lambda).unwrap(), "eu-west-1");
        assert_eq!(signing_region(&both, &local).unwrap(), "us-east-1");
        let default = env(&[("AWS_DEFAULT_REGION", "us-west-2")]);
        assert_eq!(signing_region(&default, &local).unwrap(), "us-west-2");
        assert!(matches!(
            signing_region(&env(&[]), &local),
            Err(ConfigError::MissingRegion)
        ));
        assert!(matches!(
            signing_region(&env(&[("AWS_REGION", "Mars 1")]), &local),
            Err(ConfigError::InvalidRegion(_))
        ));
    }

    #[test]
    fn tokens_are_trimmed_checked_and_never_shown() {
        let t = Token::parse("  s3cret-token\n", "FLEET_CONTROL_TOKEN").unwrap();
        assert_eq!(t.expose(), "s3cret-token");
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
        assert!(matches!(
            Token::parse(" \n", "x"),
            Err(ConfigError::EmptyToken(_))
        ));
        let e = Token::parse("ab\ncd", "FLEET_CONTROL_TOKEN").unwrap_err();
        assert!(matches!(e, ConfigError::BadToken(_)));
        assert!(!e.to_string().contains("ab"), "{e}");
    }

    #[test]
    fn partial_env_credentials_are_an_error() {
        let e = load_credentials(&env(&[("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")])).unwrap_err();
        assert!(matches!(e, ConfigError::PartialCredentials { .. }), "{e}");
        let e = load_credentials(&env(&[("AWS_SECRET_ACCESS_KEY", "s")])).unwrap_err();
        assert!(matches!(e, ConfigError::PartialCredentials { .. }), "{e}");
    }

    #[test]
    fn env_credentials_win_and_debug_is_redacted() {
        let c = load_credentials(&env(&[
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
            ("AWS_SESSION_TOKEN", "sessiontok"),
            (AGENIX_DIR_VAR, "/nonexistent"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.access_key_id, "AKIDEXAMPLE");
        assert_eq!(c.session_token.as_deref(), Some("sessiontok"));
        let d = format!("{c:?}");
        assert!(!d.contains("wJalr") && !d.contains("sessiontok"), "{d}");
    }

    #[test]
    fn no_credentials_anywhere_means_unsigned() {
        let none = load_credentials(&env(&[(AGENIX_DIR_VAR, "/nonexistent/agenix")])).unwrap();
        assert!(none.is_none());
    }
}
