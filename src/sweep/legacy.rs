//! Legacy entries: blacklists that stored the raw `token` and no usable expiry.
//!
//! A legacy entry goes only when its token verifies with `JWT_SECRET_KEY` (algorithm `JWT_ALGORITHM`; `alg: none`
//! and every other algorithm are refused) and its `exp` plus the grace lies in the past. A token that fails
//! verification, has no numeric `exp`, or cannot be read is kept and counted in `skipped_unverifiable`. With
//! `BACKFILL_EXPIRES_AT=true`, a verified entry that is not yet expired gets its expiry field written, so later
//! sweeps find it through the index. The scan is bounded per run, by `LEGACY_SCAN_LIMIT` entries and by the time
//! budget, and walks the entries in `_id` order a page at a time.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mongodb::bson::Bson;
use serde_json::Value;

use super::tally::Tally;
use super::SweepOptions;
use crate::clock::RunClock;
use crate::config::LegacySettings;
use crate::store::{LegacyStore, StoreError};

/// Legacy entries read per page.
const LEGACY_PAGE: u64 = 500;

/// Reads the expiry of a token, after verifying its signature.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    /// A verifier for `settings`, or `None` when no `JWT_SECRET_KEY` is configured.
    pub fn from_settings(settings: &LegacySettings) -> Option<Self> {
        let secret = settings.secret_key.as_ref()?;
        Some(Self::new(secret.expose().as_bytes(), settings.algorithm))
    }

    /// A verifier for an HMAC secret.
    pub fn new(secret: &[u8], algorithm: Algorithm) -> Self {
        let mut validation = Validation::new(algorithm);
        // We need the expiry of expired tokens: check the signature and the presence of `exp`, not its value.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        validation.required_spec_claims = HashSet::from(["exp".to_string()]);
        Self { key: DecodingKey::from_secret(secret), validation }
    }

    /// The token's `exp` in milliseconds since the epoch, when its signature verifies and `exp` is a sane number.
    pub fn expiry_ms(&self, token: &str) -> Option<i64> {
        let data = jsonwebtoken::decode::<Value>(token.trim(), &self.key, &self.validation).ok()?;
        let exp = data.claims.get("exp")?.as_f64()?;
        (0.0..1e14).contains(&exp).then_some((exp * 1000.0) as i64)
    }
}

/// Examines legacy entries page by page. Returns whether every legacy entry was examined (false when the scan
/// limit or the time budget stopped it).
pub(super) async fn sweep(
    store: &dyn LegacyStore,
    options: &SweepOptions,
    verifier: &TokenVerifier,
    cutoff_ms: i64,
    clock: &RunClock,
    tally: &mut Tally,
) -> Result<bool, StoreError> {
    let mut after: Option<Bson> = None;
    let mut examined = 0;
    loop {
        if examined >= options.legacy_scan_limit || clock.spent() {
            return Ok(false);
        }
        let limit = LEGACY_PAGE.min(options.legacy_scan_limit - examined);
        let page = store.legacy_page(after.as_ref(), limit as u32).await?;
        let Some(last) = page.last() else { return Ok(true) };
        after = Some(last.id.clone());
        examined += page.len() as u64;

        let (mut expired, mut bytes) = (Vec::new(), 0);
        for entry in &page {
            match verifier.expiry_ms(&entry.token) {
                None => tally.skipped_unverifiable(),
                Some(expires_ms) if expires_ms < cutoff_ms => {
                    expired.push(entry.id.clone());
                    bytes += entry.bytes;
                }
                Some(expires_ms) => {
                    if options.legacy_backfill
                        && !options.dry_run
                        && store.backfill_expiry(&entry.id, expires_ms).await?
                    {
                        tally.backfilled();
                    }
                }
            }
        }
        if expired.is_empty() {
            continue;
        }
        tally.batch();
        let count = expired.len() as u64;
        if options.dry_run {
            tally.would_delete(count, bytes);
        } else {
            let deleted = store.delete_legacy(&expired).await?;
            tally.legacy_deleted(count, bytes, deleted);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn token(claims: Value, secret: &[u8], alg: Algorithm) -> String {
        encode(&Header::new(alg), &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    #[test]
    fn reads_exp_of_a_verified_token_even_when_expired() {
        let v = TokenVerifier::new(b"k", Algorithm::HS256);
        assert_eq!(v.expiry_ms(&token(json!({"exp": 1_000, "jti": "a"}), b"k", Algorithm::HS256)), Some(1_000_000));
        assert_eq!(
            v.expiry_ms(&token(json!({"exp": 4_000_000_000_u64}), b"k", Algorithm::HS256)),
            Some(4_000_000_000_000)
        );
    }

    #[test]
    fn refuses_what_cannot_be_verified() {
        let v = TokenVerifier::new(b"k", Algorithm::HS256);
        assert_eq!(v.expiry_ms(&token(json!({"exp": 1_000}), b"wrong", Algorithm::HS256)), None);
        assert_eq!(v.expiry_ms(&token(json!({"exp": 1_000}), b"k", Algorithm::HS512)), None);
        assert_eq!(v.expiry_ms(&token(json!({"sub": "x"}), b"k", Algorithm::HS256)), None);
        assert_eq!(v.expiry_ms(&token(json!({"exp": "soon"}), b"k", Algorithm::HS256)), None);
        assert_eq!(v.expiry_ms(&token(json!({"exp": -5}), b"k", Algorithm::HS256)), None);
        assert_eq!(v.expiry_ms("garbage"), None);
        assert_eq!(v.expiry_ms(""), None);
        // alg: none, unsigned.
        let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJleHAiOjEwMDB9.";
        assert_eq!(v.expiry_ms(unsigned), None);
    }
}
