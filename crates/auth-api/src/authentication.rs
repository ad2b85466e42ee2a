//! Who is asking: a route that needs a token says so in its signature, with an extractor that runs before the
//! body is read.
//!
//! - [`Authenticated<K>`]: a token of kind `K` ([`Access`] or [`Refresh`]), verified and not revoked (`/protected`,
//!   `/refresh`).
//! - [`Verified<K>`]: verified, its revocation left to the route (`/logout`, whose write itself says whether the
//!   token was already revoked).
//!
//! A token is looked for in `JWT_TOKEN_LOCATION`'s order (the `Authorization: Bearer` header, the JWT cookie). A
//! token from a cookie, on a method of `JWT_CSRF_METHODS`, must come with its `csrf` claim in the CSRF header,
//! compared in constant time (see `cookies`). The messages are Flask-JWT-Extended's. A revocation check the
//! database cannot answer refuses the request (503): fail closed.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};

use crate::cookies::{constant_time_eq, read_cookie, read_header, Location};
use crate::error::ApiError;
use crate::revocation_cache::Check;
use crate::state::{AppState, Shared};
use crate::tokens::{Claims, TokenKind};

/// A kind of token, as a type: what an extractor asks for.
pub trait Kind: Send + Sync + 'static {
    /// The kind.
    const KIND: TokenKind;
}

/// An access token.
#[derive(Debug)]
pub struct Access;

impl Kind for Access {
    const KIND: TokenKind = TokenKind::Access;
}

/// A refresh token.
#[derive(Debug)]
pub struct Refresh;

impl Kind for Refresh {
    const KIND: TokenKind = TokenKind::Refresh;
}

/// The request's token of kind `K`, verified and not revoked.
#[derive(Debug)]
pub struct Authenticated<K> {
    /// Its claims.
    pub claims: Claims,
    kind: PhantomData<K>,
}

/// The request's token of kind `K`, verified; whether it is revoked is the route's to check.
#[derive(Debug)]
pub struct Verified<K> {
    /// Its claims.
    pub claims: Claims,
    /// It came in a cookie (so the answer may set or unset cookies, and the refresh cookie travelled with it).
    pub by_cookie: bool,
    kind: PhantomData<K>,
}

impl<K: Kind> FromRequestParts<AppState> for Verified<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        verify(state, &parts.method, &parts.headers, K::KIND)
    }
}

impl<K: Kind> FromRequestParts<AppState> for Authenticated<K> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let verified: Verified<K> = verify(state, &parts.method, &parts.headers, K::KIND)?;
        check_not_revoked(state, &verified.claims).await?;
        Ok(Self { claims: verified.claims, kind: PhantomData })
    }
}

/// The request's token of `kind`, checked to be alive and of `kind` (see the module doc).
fn verify<K>(state: &Shared, method: &Method, headers: &HeaderMap, kind: TokenKind) -> Result<Verified<K>, ApiError> {
    let verified = |claims, by_cookie| Ok(Verified { claims, by_cookie, kind: PhantomData });
    let mut missing = Vec::new();
    for location in &state.cookies.locations {
        match location {
            Location::Headers => match bearer(headers) {
                Ok(token) => return verified(state.keys.verify(token, kind)?, false),
                Err(ApiError::MissingToken(why)) => missing.push(why),
                Err(e) => return Err(e),
            },
            Location::Cookies => {
                let names = state.cookies.of(kind);
                let Some(token) = read_cookie(headers, &names.jwt) else {
                    missing.push(format!("Missing cookie \"{}\"", names.jwt));
                    continue;
                };
                // The header is looked for first, the claim after the signature is checked (as Flask does).
                let sent = match state.cookies.csrf_required(method) {
                    true => Some(read_header(headers, &names.header).ok_or(ApiError::Csrf("Missing CSRF token"))?),
                    false => None,
                };
                let claims = state.keys.verify(&token, kind)?;
                if let Some(sent) = sent {
                    let claim = claims.csrf.as_deref().ok_or(ApiError::Csrf("Missing claim: csrf"))?;
                    if !constant_time_eq(sent.as_bytes(), claim.as_bytes()) {
                        return Err(ApiError::Csrf("CSRF double submit tokens do not match"));
                    }
                }
                return verified(claims, true);
            }
        }
    }
    Err(ApiError::MissingToken(missing.join("; ")))
}

/// `Err(Revoked)` when `claims.jti` is in the blacklist: from the set in memory while it is proven current, else
/// from the database (failing closed). The span says which answered (`answered_by`: `set` or `database`).
#[tracing::instrument(name = "revocation check", skip_all, fields(answered_by = tracing::field::Empty))]
pub async fn check_not_revoked(state: &Shared, claims: &Claims) -> Result<(), ApiError> {
    let span = tracing::Span::current();
    match state.revocation_cache.as_ref().map(|cache| cache.check(claims)) {
        Some(Check::Revoked) => {
            span.record("answered_by", "set");
            return Err(ApiError::Revoked);
        }
        Some(Check::NotRevoked) => {
            span.record("answered_by", "set");
            return Ok(());
        }
        Some(Check::Stale) | None => {}
    }
    span.record("answered_by", "database");
    match state.revocations.is_revoked(claims).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(ApiError::Revoked),
        Err(e) => {
            tracing::error!("revocation lookup failed: {e}");
            Err(ApiError::Unavailable)
        }
    }
}

/// The token of an `Authorization: Bearer <JWT>` header.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let bad = || ApiError::MissingToken("Bad Authorization header. Expected 'Authorization: Bearer <JWT>'".into());
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::MissingToken("Missing Authorization Header".into()))?;
    let (scheme, token) = value.to_str().ok().and_then(|v| v.split_once(' ')).ok_or_else(bad)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(bad());
    }
    Ok(token)
}
