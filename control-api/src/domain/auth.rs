//! Who is calling: tokens checked in constant time against SHA-256 digests, and IAM
//! identities from signed Function URL requests, each mapped to a principal.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::registry::InstanceId;

/// A verified identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The single shared token (`CONTROL_API_TOKEN`): an operator-level credential that
    /// cannot tell callers apart, so the body's `caller` is taken as asserted.
    Shared,
    /// A human, `human:<name>`.
    Human(String),
    /// A fleet bot, by its instance id: it never deploys itself or `all`.
    Bot(InstanceId),
}

impl Principal {
    /// Parses `human:<name>` or an instance id.
    pub fn parse(s: &str) -> Result<Self, AuthConfigError> {
        if let Some(name) = s.strip_prefix("human:") {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"._@-".contains(&c));
            return if ok {
                Ok(Self::Human(name.to_owned()))
            } else {
                Err(AuthConfigError(format!(
                    "principal {s:?}: human names are [A-Za-z0-9._@-]{{1,64}}"
                )))
            };
        }
        InstanceId::parse(s).map(Self::Bot).map_err(|_| {
            AuthConfigError(format!(
                "principal {s:?} is neither human:<name> nor an instance id"
            ))
        })
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Shared => f.write_str("human:shared-token"),
            Self::Human(name) => write!(f, "human:{name}"),
            Self::Bot(id) => write!(f, "{id}"),
        }
    }
}

/// What a request presented, as the transports read it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header value, whatever its scheme.
    pub authorization: Option<&'a str>,
    /// The seed's `x-clawdinator-token` header. Clients that sign with SigV4 for an
    /// `AWS_IAM` Function URL must use it, since the signature occupies `Authorization`.
    pub clawdinator_token: Option<&'a str>,
    /// The caller's IAM ARN, which Lambda puts in the request context after verifying
    /// the SigV4 signature of an `AWS_IAM` Function URL request.
    pub iam_arn: Option<&'a str>,
}

impl<'a> Credentials<'a> {
    /// The presented token: a `Bearer` authorization wins, else the seed's header.
    pub fn token(&self) -> Option<&'a str> {
        let bearer = self.authorization.and_then(|h| {
            let (scheme, rest) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
        bearer
            .or(self.clawdinator_token.map(str::trim))
            .filter(|t| !t.is_empty())
    }
}

/// A setting that describes tokens or IAM principals is malformed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(pub String);

/// Why a request is not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// One answer for a missing and a wrong token, so a probe learns nothing.
    #[error("missing or invalid token")]
    Unauthorized,
    #[error("IAM identity {0} is not a known principal")]
    UnknownIamPrincipal(String),
    #[error("the token belongs to {token} but the request is signed by {iam}")]
    PrincipalMismatch { token: String, iam: String },
}

/// An IAM ARN (exact) or an assumed-role prefix whose session name is the bot's id.
#[derive(Debug, Clone, PartialEq, Eq)]
enum IamRule {
    Exact(String, Principal),
    /// `arn:aws:sts::<account>:assumed-role/<role>/` followed by the instance id as the
    /// session name; infra lets each host assume the invoker role only under its own id.
    SessionIsInstance(String),
}

/// Holds only digests of the accepted tokens; the tokens themselves are dropped at start-up.
#[derive(Clone, Default)]
pub struct Authenticator {
    keys: Vec<([u8; 32], Principal)>,
    iam: Vec<IamRule>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Authenticator({} key(s), {} IAM rule(s))",
            self.keys.len(),
            self.iam.len()
        )
    }
}

impl Authenticator {
    /// One shared token, as the design card's setup uses.
    pub fn shared(token: &str) -> Self {
        Self::default().with_token(token, Principal::Shared)
    }

    /// Accepts `token` as `principal`. Several tokens may map to one principal: that is
    /// how a token is rotated without downtime (add the next, roll it out, drop the old).
    pub fn with_token(mut self, token: &str, principal: Principal) -> Self {
        self.keys.push((digest(token), principal));
        self
    }

    /// Adds `CONTROL_API_TOKENS`: a JSON object of lowercase hex SHA-256 token digests to
    /// principals, e.g. `{"9f86d0…": "clawdinator-2", "…": "human:ops"}`. A key that is
    /// not a digest may be a token pasted by mistake, so errors name its position only.
    pub fn with_token_digests(mut self, json: &str) -> Result<Self, AuthConfigError> {
        let pairs: OrderedPairs = serde_json::from_str(json).map_err(|e| {
            // serde_json's syntax errors carry a line and column, never the text.
            AuthConfigError(format!(
                "CONTROL_API_TOKENS must be a JSON object of digest to principal: {e}"
            ))
        })?;
        for (position, (hex, principal)) in pairs.0.into_iter().enumerate() {
            let digest = parse_digest(&hex).ok_or_else(|| {
                AuthConfigError(format!(
                    "CONTROL_API_TOKENS key #{} is not a SHA-256 hex digest (64 lowercase hex digits)",
                    position + 1
                ))
            })?;
            self.keys.push((digest, Principal::parse(&principal)?));
        }
        Ok(self)
    }

    /// Adds `CONTROL_API_IAM_PRINCIPALS`: a JSON object of IAM ARNs to principals. A key
    /// ending in `/` with the value `"session"` maps every session of that assumed role to
    /// the bot whose instance id is the session name.
    pub fn with_iam_principals(mut self, json: &str) -> Result<Self, AuthConfigError> {
        let map: std::collections::BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|e| {
                AuthConfigError(format!(
                    "CONTROL_API_IAM_PRINCIPALS must be a JSON object of ARN to principal: {e}"
                ))
            })?;
        for (arn, principal) in map {
            if !arn.starts_with("arn:") {
                return Err(AuthConfigError(format!(
                    "CONTROL_API_IAM_PRINCIPALS key {arn:?} is not an ARN"
                )));
            }
            if principal == "session" {
                if !(arn.contains(":assumed-role/") && arn.ends_with('/')) {
                    return Err(AuthConfigError(format!(
                        "CONTROL_API_IAM_PRINCIPALS key {arn:?}: \"session\" needs an assumed-role ARN prefix ending in /"
                    )));
                }
                self.iam.push(IamRule::SessionIsInstance(arn));
            } else {
                self.iam
                    .push(IamRule::Exact(arn, Principal::parse(&principal)?));
            }
        }
        Ok(self)
    }

    /// Checks a presented token. Comparing fixed-size digests means neither the
    /// token's length nor the position of the first differing byte shows in timing,
    /// and every key is compared whatever matches, so the key count is all that shows.
    pub fn verify_token(&self, credentials: &Credentials<'_>) -> Option<&Principal> {
        let presented = digest(credentials.token()?);
        let mut found = u32::MAX;
        for (i, (key, _)) in self.keys.iter().enumerate() {
            found.conditional_assign(&(i as u32), key.ct_eq(&presented));
        }
        self.keys.get(found as usize).map(|(_, p)| p)
    }

    fn iam_principal(&self, arn: &str) -> Option<Principal> {
        self.iam.iter().find_map(|rule| match rule {
            IamRule::Exact(a, p) => (a == arn).then(|| p.clone()),
            IamRule::SessionIsInstance(prefix) => {
                let session = arn.strip_prefix(prefix.as_str())?;
                InstanceId::parse(session).ok().map(Principal::Bot)
            }
        })
    }

    /// Whether `CONTROL_API_IAM_PRINCIPALS` is configured: then every request must carry
    /// a verified IAM identity.
    pub fn requires_iam(&self) -> bool {
        !self.iam.is_empty()
    }

    /// Authenticates a request: a valid token is always required; when IAM principals are
    /// configured, an IAM identity is too, and it must be known and agree with the token's
    /// principal (the shared token defers to it, being no identity of its own). Without
    /// that rule an unsigned request with the shared token would get human rights for
    /// whatever `caller` it states.
    pub fn authenticate(&self, credentials: &Credentials<'_>) -> Result<Principal, AuthError> {
        let by_token = self
            .verify_token(credentials)
            .ok_or(AuthError::Unauthorized)?;
        if !self.requires_iam() {
            return Ok(by_token.clone());
        }
        let arn = credentials.iam_arn.ok_or(AuthError::Unauthorized)?;
        let by_iam = self
            .iam_principal(arn)
            .ok_or_else(|| AuthError::UnknownIamPrincipal(arn.chars().take(200).collect()))?;
        match by_token {
            Principal::Shared => Ok(by_iam),
            p if *p == by_iam => Ok(by_iam),
            p => Err(AuthError::PrincipalMismatch {
                token: p.to_string(),
                iam: by_iam.to_string(),
            }),
        }
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Exactly 64 lowercase hex digits, as `sha256sum` prints them.
fn parse_digest(hex: &str) -> Option<[u8; 32]> {
    let lower_hex = |c: &u8| c.is_ascii_digit() || (b'a'..=b'f').contains(c);
    if hex.len() != 64 || !hex.as_bytes().iter().all(lower_hex) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

/// A JSON object's string pairs in document order, so a bad key is named by the
/// position an operator sees in the setting (a map would sort the keys first).
struct OrderedPairs(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for OrderedPairs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OrderedPairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::new();
                while let Some(pair) = map.next_entry::<String, String>()? {
                    pairs.push(pair);
                }
                Ok(OrderedPairs(pairs))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// The lowercase hex SHA-256 of a token, as `CONTROL_API_TOKENS` keys are written.
pub fn token_digest_hex(token: &str) -> String {
    digest(token).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds<'a>(
        authorization: Option<&'a str>,
        clawdinator_token: Option<&'a str>,
    ) -> Credentials<'a> {
        Credentials {
            authorization,
            clawdinator_token,
            iam_arn: None,
        }
    }

    fn bot(id: &str) -> Principal {
        Principal::Bot(InstanceId::parse(id).unwrap())
    }

    #[test]
    fn bearer_and_seed_header_both_work() {
        let a = Authenticator::shared("s3cret");
        assert!(a
            .verify_token(&creds(Some("Bearer s3cret"), None))
            .is_some());
        assert!(a
            .verify_token(&creds(Some("bearer s3cret"), None))
            .is_some());
        assert!(a.verify_token(&creds(None, Some("s3cret"))).is_some());
        // A SigV4 Authorization header leaves the token to the seed header.
        assert!(a
            .verify_token(&creds(
                Some("AWS4-HMAC-SHA256 Credential=x"),
                Some("s3cret")
            ))
            .is_some());
    }

    #[test]
    fn wrong_missing_or_empty_tokens_fail() {
        let a = Authenticator::shared("s3cret");
        for c in [
            creds(None, None),
            creds(Some("Bearer "), None),
            creds(Some("Bearer s3cre"), None),
            creds(Some("Bearer s3cret2"), None),
            creds(Some("Basic s3cret"), None),
            creds(Some("s3cret"), None),
            creds(None, Some("")),
            creds(Some("Bearer wrong"), Some("s3cret")),
        ] {
            assert_eq!(a.authenticate(&c), Err(AuthError::Unauthorized), "{c:?}");
        }
    }

    #[test]
    fn per_instance_tokens_and_rotation() {
        let json = format!(
            r#"{{"{}": "clawdinator-2", "{}": "clawdinator-2", "{}": "human:ops"}}"#,
            token_digest_hex("bot2-current"),
            token_digest_hex("bot2-next"),
            token_digest_hex("ops-token")
        );
        let a = Authenticator::shared("shared")
            .with_token_digests(&json)
            .unwrap();
        let who = |t: &str| a.authenticate(&creds(Some(&format!("Bearer {t}")), None));
        assert_eq!(who("bot2-current"), Ok(bot("clawdinator-2")));
        assert_eq!(who("bot2-next"), Ok(bot("clawdinator-2")));
        assert_eq!(who("ops-token"), Ok(Principal::Human("ops".into())));
        assert_eq!(who("shared"), Ok(Principal::Shared));
        assert_eq!(who("bot2-old"), Err(AuthError::Unauthorized));
    }

    #[test]
    fn malformed_token_maps_are_refused() {
        for bad in [
            "[]",
            r#"{"abc": "clawdinator-2"}"#,
            &format!(r#"{{"{}": "Not An Id"}}"#, "0".repeat(64)),
        ] {
            assert!(
                Authenticator::default().with_token_digests(bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bad_token_key_is_named_by_position_never_echoed() {
        let pasted_token = "my-real-bot-token-pasted-by-mistake";
        let json = format!(
            r#"{{"{}": "clawdinator-1", "{pasted_token}": "clawdinator-2"}}"#,
            token_digest_hex("fine")
        );
        let e = Authenticator::default()
            .with_token_digests(&json)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CONTROL_API_TOKENS key #2 is not a SHA-256 hex digest"),
            "{e}"
        );
        assert!(!e.contains(pasted_token), "{e}");
        // Uppercase hex is not what sha256sum prints: refused too, by position.
        let upper = format!(r#"{{"{}": "clawdinator-1"}}"#, "A".repeat(64));
        let e = Authenticator::default()
            .with_token_digests(&upper)
            .unwrap_err()
            .to_string();
        assert!(e.contains("key #1") && !e.contains(&"A".repeat(64)), "{e}");
    }

    #[test]
    fn iam_identities_map_to_principals_and_must_agree_with_the_token() {
        let role = "arn:aws:sts::123456789012:assumed-role/clawdinator-invoker/";
        let json = format!(
            r#"{{"{role}": "session", "arn:aws:iam::123456789012:user/ops": "human:ops"}}"#
        );
        let a = Authenticator::shared("shared")
            .with_token_digests(&format!(
                r#"{{"{}": "clawdinator-1"}}"#,
                token_digest_hex("bot1")
            ))
            .unwrap()
            .with_iam_principals(&json)
            .unwrap();
        let signed = |token: &'static str, arn: &'static str| Credentials {
            authorization: Some("AWS4-HMAC-SHA256 Credential=x"),
            clawdinator_token: Some(token),
            iam_arn: Some(arn),
        };
        let arn2 = "arn:aws:sts::123456789012:assumed-role/clawdinator-invoker/clawdinator-2";
        let arn1 = "arn:aws:sts::123456789012:assumed-role/clawdinator-invoker/clawdinator-1";
        assert_eq!(
            a.authenticate(&signed("shared", arn2)),
            Ok(bot("clawdinator-2")),
            "shared token defers to IAM"
        );
        assert_eq!(
            a.authenticate(&signed("bot1", arn1)),
            Ok(bot("clawdinator-1"))
        );
        assert!(matches!(
            a.authenticate(&signed("bot1", arn2)),
            Err(AuthError::PrincipalMismatch { .. })
        ));
        assert_eq!(
            a.authenticate(&signed("shared", "arn:aws:iam::123456789012:user/ops")),
            Ok(Principal::Human("ops".into()))
        );
        assert!(matches!(
            a.authenticate(&signed(
                "shared",
                "arn:aws:sts::123456789012:assumed-role/other/clawdinator-2"
            )),
            Err(AuthError::UnknownIamPrincipal(_))
        ));
        assert!(matches!(
            a.authenticate(&signed(
                "shared",
                "arn:aws:sts::123456789012:assumed-role/clawdinator-invoker/Not_An_Id"
            )),
            Err(AuthError::UnknownIamPrincipal(_))
        ));
        assert_eq!(
            a.authenticate(&signed("wrong", arn2)),
            Err(AuthError::Unauthorized),
            "a token is always required"
        );
        let unsigned = Credentials {
            authorization: Some("Bearer shared"),
            clawdinator_token: None,
            iam_arn: None,
        };
        assert_eq!(
            a.authenticate(&unsigned),
            Err(AuthError::Unauthorized),
            "IAM rules configured: no IAM identity, no entry, whatever the token"
        );
        assert!(a.requires_iam());
        assert!(!Authenticator::shared("shared").requires_iam());
    }

    #[test]
    fn debug_never_shows_key_material() {
        let a = Authenticator::shared("s3cret");
        assert_eq!(format!("{a:?}"), "Authenticator(1 key(s), 0 IAM rule(s))");
    }
}
