//! Who is calling: bearer tokens checked in constant time against SHA-256 digests.

use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// A verified identity behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    name: String,
}

impl Principal {
    /// The identity of the single shared token (`CONTROL_API_TOKEN`): an operator who
    /// may name any caller, so the self-deploy rules apply to the `caller` field.
    pub fn shared() -> Self {
        Self {
            name: "human:shared-token".to_owned(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The token a request presented, as its two possible headers carry it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header value, whatever its scheme.
    pub authorization: Option<&'a str>,
    /// The seed's `x-clawdinator-token` header. Clients that sign with SigV4 for an
    /// `AWS_IAM` Function URL must use it, since the signature occupies `Authorization`.
    pub clawdinator_token: Option<&'a str>,
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

/// Holds only digests of the accepted tokens; the tokens themselves are dropped at start-up.
#[derive(Clone)]
pub struct Authenticator {
    keys: Vec<([u8; 32], Principal)>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Authenticator({} key(s))", self.keys.len())
    }
}

impl Authenticator {
    /// One shared token, as the design card's setup uses.
    pub fn shared(token: &str) -> Self {
        Self {
            keys: vec![(digest(token), Principal::shared())],
        }
    }

    /// Checks a presented token. Comparing fixed-size digests means neither the
    /// token's length nor the position of the first differing byte shows in timing,
    /// and every key is compared whatever matches, so the key count is all that shows.
    pub fn verify(&self, credentials: &Credentials<'_>) -> Option<&Principal> {
        let presented = digest(credentials.token()?);
        let mut found = u32::MAX;
        for (i, (key, _)) in self.keys.iter().enumerate() {
            found.conditional_assign(&(i as u32), key.ct_eq(&presented));
        }
        self.keys.get(found as usize).map(|(_, p)| p)
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
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
        }
    }

    #[test]
    fn bearer_and_seed_header_both_work() {
        let a = Authenticator::shared("s3cret");
        assert!(a.verify(&creds(Some("Bearer s3cret"), None)).is_some());
        assert!(a.verify(&creds(Some("bearer s3cret"), None)).is_some());
        assert!(a.verify(&creds(None, Some("s3cret"))).is_some());
        // A SigV4 Authorization header leaves the token to the seed header.
        assert!(a
            .verify(&creds(
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
            assert!(a.verify(&c).is_none(), "{c:?}");
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let a = Authenticator::shared("s3cret");
        assert_eq!(format!("{a:?}"), "Authenticator(1 key(s))");
    }
}
