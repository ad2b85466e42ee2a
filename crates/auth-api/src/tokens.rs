//! Issuing and checking the access and refresh tokens.
//!
//! Claims follow Flask-JWT-Extended's (`sub`, `jti`, `type`, `iat`, `nbf`, `exp`, `fresh`), so tokens and blacklist
//! entries look the same as the reference service's. Only the one configured HMAC algorithm is accepted: `alg: none`
//! and every other algorithm are refused before any claim is read.
//!
//! Expiry is checked to the millisecond (a token is dead from the instant `exp` is reached), never later than the
//! cleaner may delete its blacklist entry (`expires_at = exp`, plus the cleaner's grace): a revoked token can never
//! come back to life because its entry was swept.

use std::time::Duration;

use chrono::Utc;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use jtc_shared::Secret;
use serde::{Deserialize, Serialize};

/// Signing and lifetimes.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// `JWT_SECRET_KEY`: signs and verifies every token (at least `config::MIN_SECRET_BYTES` bytes).
    pub secret: Secret,
    /// `JWT_ALGORITHM` (default HS256; HS384, HS512).
    pub algorithm: jsonwebtoken::Algorithm,
    /// `JWT_ACCESS_TOKEN_EXPIRES_SECONDS` (default 900: 15 minutes).
    pub access_ttl: Duration,
    /// `JWT_REFRESH_TOKEN_EXPIRES_SECONDS` (default 604800: 7 days).
    pub refresh_ttl: Duration,
}

/// Which of the two tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Short-lived; opens `/protected` and `/logout`.
    Access,
    /// Long-lived; only gets new access tokens from `/refresh`.
    Refresh,
}

impl TokenKind {
    /// `access` or `refresh`, as stored in the blacklist's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }
}

/// The claims of both tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user name.
    pub sub: String,
    /// Unique token id: what the blacklist records.
    pub jti: String,
    /// Access or refresh.
    #[serde(rename = "type")]
    pub kind: TokenKind,
    /// Issued at (seconds since the epoch).
    pub iat: i64,
    /// Not before.
    pub nbf: i64,
    /// Expiry (seconds since the epoch).
    pub exp: i64,
    /// Issued by a login rather than a refresh.
    #[serde(default)]
    pub fresh: bool,
    /// The double-submit CSRF value, fresh and random per token (Flask-JWT-Extended's claim); a request
    /// authenticated by cookie must echo it in a header. Older tokens without one still work in headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf: Option<String>,
    /// An access token's refresh token: the `jti` of the refresh token issued with it (a login) or used for it (a
    /// refresh). A cookie logout revokes it too when the refresh cookie is not sent to `/logout` (a browser sends
    /// a cookie only to its own path, `JWT_REFRESH_COOKIE_PATH`). Older tokens without one still work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rjti: Option<String>,
}

impl Claims {
    /// True when the token was issued at or before `ms` (milliseconds since the epoch). `iat` has whole seconds,
    /// so a token issued in the very second of `ms` counts as before it: the safe side for every revocation that
    /// ends the tokens issued until an instant (a user's entry, a password change).
    pub fn issued_by(&self, ms: i64) -> bool {
        self.iat.saturating_mul(1000) <= ms
    }
}

/// Why a token was refused; the `Display` text is the `msg` answered to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Past `exp`.
    #[error("Token has expired")]
    Expired,
    /// Before `nbf`.
    #[error("Token is not yet valid")]
    NotYetValid,
    /// Signed with another key, or altered.
    #[error("Signature verification failed")]
    BadSignature,
    /// Any algorithm but the configured one: `alg: none`, a name no library knows, or another real algorithm.
    #[error("The specified alg value is not allowed")]
    WrongAlgorithm,
    /// Not a JWT (no readable header or no `alg` in it), or claims missing or of the wrong type.
    #[error("Invalid token: {0}")]
    Malformed(String),
    /// A refresh token where an access token is needed, or the other way round.
    #[error("Only {0} tokens are allowed")]
    WrongKind(&'static str),
}

/// Signs and checks tokens with the configured key and algorithm.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    algorithm: Algorithm,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl TokenKeys {
    /// Keys for `settings`.
    pub fn new(settings: &JwtSettings) -> Self {
        let secret = settings.secret.expose().as_bytes();
        let mut validation = Validation::new(settings.algorithm);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "nbf", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            algorithm: settings.algorithm,
            validation,
            access_ttl: settings.access_ttl,
            refresh_ttl: settings.refresh_ttl,
        }
    }

    /// A new token for `user`, with its claims.
    pub fn issue(
        &self,
        user: &str,
        kind: TokenKind,
        fresh: bool,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        self.issue_at(user, kind, fresh, Utc::now().timestamp(), None)
    }

    /// How long a refresh token lives.
    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// [`issue`](Self::issue) as if at `now` (seconds since the epoch): a login stamps its tokens with the instant
    /// it started, before it read the password hash. An access token names its refresh token's `refresh_jti`.
    pub fn issue_at(
        &self,
        user: &str,
        kind: TokenKind,
        fresh: bool,
        now: i64,
        refresh_jti: Option<&str>,
    ) -> Result<(String, Claims), jsonwebtoken::errors::Error> {
        let ttl = match kind {
            TokenKind::Access => self.access_ttl,
            TokenKind::Refresh => self.refresh_ttl,
        };
        let claims = Claims {
            sub: user.to_string(),
            jti: uuid::Uuid::new_v4().to_string(),
            kind,
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs() as i64,
            fresh,
            csrf: Some(uuid::Uuid::new_v4().to_string()),
            rjti: refresh_jti.map(str::to_string),
        };
        let token = jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.encoding)?;
        Ok((token, claims))
    }

    /// The claims of `token` if it is well formed, signed with our key and algorithm, of `kind`, and alive now.
    /// Revocation is not checked here (see `revocation`).
    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        // Two layers guard the algorithm. This one, the raw header read first, is the only one that answers
        // `alg: none` and names the JWT library does not know with "The specified alg value is not allowed" (the
        // library would call them malformed). Another real algorithm (HS512 where we use HS256) is refused here
        // too, and again by jsonwebtoken's own list (`Validation::algorithms`, ours alone: `InvalidAlgorithm`,
        // mapped to the same answer below), which is what still guards it should this check ever be loosened.
        let header = header_json(token);
        match header.as_ref().and_then(|h| h.get("alg")?.as_str()) {
            Some(alg) if alg == format!("{:?}", self.algorithm) => {}
            Some(_) => return Err(TokenError::WrongAlgorithm),
            None => return Err(TokenError::Malformed("bad header (not a JWT, or no alg)".into())),
        }
        // RFC 7515 §4.1.11: a `crit` header names extensions the recipient must understand or reject the token;
        // this service understands none.
        if header.as_ref().is_some_and(|h| h.get("crit").is_some()) {
            return Err(TokenError::Malformed(
                "the header names critical extensions (crit) not understood here".into(),
            ));
        }
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::NotYetValid,
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
                _ => TokenError::Malformed(short(&e)),
            })?;
        let claims = data.claims;
        // jsonwebtoken compares whole seconds (a token stays valid through the second after `exp`); the
        // blacklist entry may be swept from `exp` on, so the token must be dead from `exp` on.
        if Utc::now().timestamp_millis() >= claims.exp.saturating_mul(1000) {
            return Err(TokenError::Expired);
        }
        if claims.kind != kind {
            return Err(TokenError::WrongKind(match kind {
                TokenKind::Access => "non-refresh",
                TokenKind::Refresh => "refresh",
            }));
        }
        if claims.jti.is_empty() || claims.sub.is_empty() {
            return Err(TokenError::Malformed("empty sub or jti".into()));
        }
        Ok(claims)
    }
}

/// A token's header as a JSON object, read without the JWT library.
fn header_json(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let (header, rest) = token.split_once('.')?;
    if rest.split('.').count() != 2 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(header).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        serde_json::Value::Object(header) => Some(header),
        _ => None,
    }
}

/// An error's text without anything from the token itself.
fn short(e: &jsonwebtoken::errors::Error) -> String {
    match e.kind() {
        ErrorKind::InvalidToken => "not a JWT".into(),
        ErrorKind::Base64(_) => "not base64url".into(),
        ErrorKind::Json(_) | ErrorKind::Utf8(_) => "unreadable JSON".into(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim {c}"),
        ErrorKind::InvalidAlgorithmName => "unknown or disallowed algorithm".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jtc_shared::Secret;

    fn keys(access: u64) -> TokenKeys {
        TokenKeys::new(&JwtSettings {
            secret: Secret::new("k".repeat(32)),
            algorithm: Algorithm::HS256,
            access_ttl: Duration::from_secs(access),
            refresh_ttl: Duration::from_secs(3600),
        })
    }

    fn b64(json: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    }

    #[test]
    fn round_trip_and_kinds() {
        let keys = keys(60);
        let (access, claims) = keys.issue("alice", TokenKind::Access, true).unwrap();
        assert_eq!(keys.verify(&access, TokenKind::Access).unwrap(), claims);
        assert_eq!(claims.exp - claims.iat, 60);
        assert_eq!(keys.verify(&access, TokenKind::Refresh), Err(TokenError::WrongKind("refresh")));
        let (refresh, _) = keys.issue("alice", TokenKind::Refresh, false).unwrap();
        assert_eq!(keys.verify(&refresh, TokenKind::Access), Err(TokenError::WrongKind("non-refresh")));
    }

    #[test]
    fn refuses_other_keys_algorithms_and_none() {
        let keys = keys(60);
        let (token, claims) = keys.issue("alice", TokenKind::Access, true).unwrap();
        let other = TokenKeys::new(&JwtSettings {
            secret: Secret::new("x".repeat(32)),
            algorithm: Algorithm::HS256,
            access_ttl: Duration::from_secs(60),
            refresh_ttl: Duration::from_secs(60),
        });
        assert_eq!(other.verify(&token, TokenKind::Access), Err(TokenError::BadSignature));

        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &claims,
            &EncodingKey::from_secret("k".repeat(32).as_bytes()),
        )
        .unwrap();
        assert_eq!(keys.verify(&hs512, TokenKind::Access), Err(TokenError::WrongAlgorithm));

        let body = serde_json::to_string(&claims).unwrap();
        let none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), b64(&body));
        assert_eq!(keys.verify(&none, TokenKind::Access), Err(TokenError::WrongAlgorithm), "alg none");
        let unknown = format!("{}.{}.c2ln", b64(r#"{"alg":"XS999"}"#), b64(&body));
        assert_eq!(keys.verify(&unknown, TokenKind::Access), Err(TokenError::WrongAlgorithm));

        for junk in ["", "abc", "a.b.c", "Bearer x"] {
            assert!(matches!(keys.verify(junk, TokenKind::Access), Err(TokenError::Malformed(_))), "{junk:?}");
        }
    }

    #[test]
    fn expiry_is_checked_to_the_millisecond() {
        let keys = keys(60);
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: "alice".into(),
            jti: "j".into(),
            kind: TokenKind::Access,
            iat: now - 10,
            nbf: now - 10,
            exp: now, // reached within this second: jsonwebtoken alone would still accept it
            fresh: false,
            csrf: None,
            rjti: None,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token, TokenKind::Access), Err(TokenError::Expired));
        let future = Claims { nbf: now + 30, exp: now + 60, ..claims };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &future, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token, TokenKind::Access), Err(TokenError::NotYetValid));
    }
}
