//! JWT authentication: the `auth_token` cookie at the upgrade, or the SASL PLAIN
//! password when a client cannot set cookies (as ejabberd and MongooseIM accept JWTs).
//!
//! Validation runs once per connection (about 2 µs for HS256 on this machine class), so it
//! stays on the shard thread. RS256/ES256 signature checks cost far more (`cargo bench
//! --bench auth`), so on each shard they are bounded (`TokenGuard`): a token checked once
//! is remembered until it expires (a reconnect storm with the same tokens costs nothing),
//! and new checks are limited to `auth.jwt_signature_checks_per_sec`; past it a login is
//! told to retry (HTTP 503 with Retry-After, SASL `temporary-auth-failure`) instead of
//! stalling every session of the shard.

use super::config::AuthConfig;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use std::path::Path;

pub struct JwtVerifier {
    /// RS256/ES256: checks are dear, and bounded per shard.
    pub asymmetric: bool,
    key: DecodingKey,
    validation: Validation,
    claim: String,
    domain: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// Signature, algorithm, expiry, nbf, iss, aud or format wrong.
    Invalid(String),
    /// The username claim is missing, not a string, not a valid localpart, or names
    /// another domain.
    BadUser(String),
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthError::Invalid(s) => write!(f, "invalid token: {s}"),
            AuthError::BadUser(s) => write!(f, "bad user in token: {s}"),
        }
    }
}

fn algorithm(a: &AuthConfig) -> Result<Algorithm, String> {
    match a.jwt_algorithm.as_str() {
        "HS256" => Ok(Algorithm::HS256),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(format!("unsupported jwt_algorithm {other}")),
    }
}

/// The HS256 secret: config, then `AOBA_JWT_SECRET` (applied by the CLI), then a random
/// secret kept in `<data_dir>/jwt-secret`, created on first start.
pub fn resolve_secret(
    auth: &AuthConfig,
    data_dir: &std::path::Path,
    create: bool,
) -> Result<String, String> {
    if !auth.jwt_secret.is_empty() {
        return Ok(auth.jwt_secret.clone());
    }
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
        Ok(_) | Err(_) if !create => {
            return Err(format!(
                "no JWT secret configured and {} does not exist (start the server once, or pass --jwt-secret)",
                path.display()
            ));
        }
        _ => {}
    }
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).map_err(|e| format!("random: {e}"))?;
    let secret: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
    write_private(&path, &secret)?;
    tracing::warn!(path = %path.display(), "no JWT secret configured: generated a random one");
    Ok(secret)
}

fn write_private(path: &Path, content: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(content.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))
}

impl JwtVerifier {
    /// A verifier of `auth`'s tokens for users of `domain`.
    pub fn new(a: &AuthConfig, domain: &str, secret: Option<&str>) -> Result<JwtVerifier, String> {
        let alg = algorithm(a)?;
        let key = match alg {
            Algorithm::HS256 => {
                DecodingKey::from_secret(secret.ok_or("HS256 needs a secret")?.as_bytes())
            }
            _ => {
                let path = a
                    .jwt_public_key_file
                    .as_ref()
                    .ok_or("jwt_public_key_file is required")?;
                let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
                if alg == Algorithm::RS256 {
                    DecodingKey::from_rsa_pem(&pem)
                } else {
                    DecodingKey::from_ec_pem(&pem)
                }
                .map_err(|e| format!("{}: {e}", path.display()))?
            }
        };
        let mut v = Validation::new(alg);
        v.leeway = a.jwt_leeway_s;
        v.validate_nbf = true;
        v.validate_exp = true;
        let mut required = vec!["exp"];
        match &a.jwt_issuer {
            Some(iss) => {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            None => v.iss = None,
        }
        match &a.jwt_audience {
            Some(aud) => {
                v.set_audience(&[aud]);
                required.push("aud");
            }
            None => v.validate_aud = false,
        }
        v.set_required_spec_claims(&required);
        Ok(JwtVerifier {
            asymmetric: alg != Algorithm::HS256,
            key,
            validation: v,
            claim: a.jwt_username_claim.clone(),
            domain: domain.to_string(),
        })
    }

    /// Validates a token and returns the user's normalized localpart.
    pub fn verify(&self, token: &str) -> Result<String, AuthError> {
        self.verify_until(token).map(|(user, _)| user)
    }

    /// `verify`, with the token's `exp` (seconds since the epoch).
    pub fn verify_until(&self, token: &str) -> Result<(String, u64), AuthError> {
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &self.key,
            &self.validation,
        )
        .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let name = data
            .claims
            .get(&self.claim)
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                AuthError::BadUser(format!("claim {:?} missing or not a string", self.claim))
            })?;
        let (local, domain) = match name.split_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (name, None),
        };
        let jid = crate::xmpp::jid::Jid::new_bare(local, domain.unwrap_or(&self.domain))
            .map_err(|e| AuthError::BadUser(format!("{name:?}: {}", e.0)))?;
        if jid.domain() != self.domain {
            return Err(AuthError::BadUser(format!(
                "{name:?} is not of domain {}",
                self.domain
            )));
        }
        let exp = data.claims.get("exp").and_then(|e| e.as_u64()).unwrap_or(0);
        Ok((jid.local().unwrap_or_default().to_string(), exp))
    }
}

/// Why a token was not accepted.
#[derive(Debug)]
pub enum TokenError {
    Bad(AuthError),
    /// The shard's budget of signature checks is spent for now: retry shortly.
    Busy,
}

/// Tokens remembered per shard, and the longest one remembered (memory stays bounded).
const GUARD_CACHE_MAX: usize = 1024;
const GUARD_TOKEN_MAX: usize = 4096;

/// One shard's bound on RS256/ES256 signature checks (see the module comment).
pub struct TokenGuard {
    checks: crate::net::shaper::Shaper,
    checks_per_sec: u32,
    /// Token → (localpart, exp): tokens already checked, until they expire.
    known: ahash::AHashMap<Box<str>, (Box<str>, u64)>,
}

impl TokenGuard {
    pub fn new(checks_per_sec: u32) -> TokenGuard {
        TokenGuard {
            checks: crate::net::shaper::Shaper::new(checks_per_sec, std::time::Instant::now()),
            checks_per_sec,
            known: Default::default(),
        }
    }

    /// Checks `token` with `v`: HS256 always; RS256/ES256 from the cache, else within the
    /// shard's budget.
    pub fn check(&mut self, v: &JwtVerifier, token: &str) -> Result<String, TokenError> {
        if !v.asymmetric {
            return v.verify(token).map_err(TokenError::Bad);
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if let Some((user, exp)) = self.known.get(token) {
            if *exp > now {
                return Ok(user.to_string());
            }
            self.known.remove(token);
        }
        let t = std::time::Instant::now();
        let rate = self.checks_per_sec;
        if self.checks.ready(t, rate, rate).is_err() {
            return Err(TokenError::Busy);
        }
        self.checks.take();
        let (user, exp) = v.verify_until(token).map_err(TokenError::Bad)?;
        if token.len() <= GUARD_TOKEN_MAX {
            if self.known.len() >= GUARD_CACHE_MAX {
                self.known.retain(|_, (_, e)| *e > now);
                if self.known.len() >= GUARD_CACHE_MAX {
                    self.known.clear();
                }
            }
            self.known.insert(token.into(), (user.as_str().into(), exp));
        }
        Ok(user)
    }
}

/// Mints a token for `user` valid for `ttl_s` seconds (what `aoba token` prints).
pub fn mint(
    a: &AuthConfig,
    secret: Option<&str>,
    user: &str,
    ttl_s: u64,
) -> Result<String, String> {
    let alg = algorithm(a)?;
    let key = match alg {
        Algorithm::HS256 => {
            EncodingKey::from_secret(secret.ok_or("HS256 needs a secret")?.as_bytes())
        }
        _ => {
            let path = a
                .jwt_private_key_file
                .as_ref()
                .ok_or("minting RS256/ES256 tokens needs auth.jwt_private_key_file")?;
            let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
            if alg == Algorithm::RS256 {
                EncodingKey::from_rsa_pem(&pem)
            } else {
                EncodingKey::from_ec_pem(&pem)
            }
            .map_err(|e| format!("{}: {e}", path.display()))?
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let mut claims = serde_json::Map::new();
    claims.insert(a.jwt_username_claim.clone(), user.into());
    claims.insert("iat".into(), now.into());
    claims.insert("exp".into(), (now + ttl_s).into());
    if let Some(iss) = &a.jwt_issuer {
        claims.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &a.jwt_audience {
        claims.insert("aud".into(), aud.clone().into());
    }
    jsonwebtoken::encode(&Header::new(alg), &claims, &key).map_err(|e| e.to_string())
}
