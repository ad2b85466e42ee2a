//! `POST /logout` with an access token: revokes it, and the refresh token given in the body
//! (`{"refresh_token": ...}`, optional) or, in cookie mode, the refresh cookie that came along, so that a logout
//! really ends the session (Flask-JWT-Extended leaves the refresh token alive; a browser logout should not). In
//! cookie mode the answer also unsets the four cookies: empty, already expired, same path and domain.
//!
//! Everything is checked before anything is written: a refresh token that is forged, of another user or not a
//! refresh token is a 400 and revokes nothing. An expired refresh token needs no revocation and is skipped.
//!
//! The common case, the access token alone, is one database round trip: the write itself says whether the token
//! was already revoked (then 401 `Token has been revoked`, as for any revoked token). Rate limited per client
//! (`RATE_LIMIT_LOGOUT`): each logout is a database write.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap};
use axum::Json;
use serde_json::{json, Value};

use super::json_object;
use crate::authentication::{check_not_revoked, Access, Verified};
use crate::cookies::read_cookie;
use crate::error::ApiError;
use crate::revocation_cache::set::Entry;
use crate::state::AppState;
use crate::tokens::{Claims, TokenError, TokenKind};

/// Writes the blacklist entries and answers which tokens were revoked.
///
/// The token is checked before the body is read (an extractor of the request's head runs before the body's): a
/// request without valid credentials costs no wait for a body (logouts whose bodies never come cannot hold
/// connections open). Its revocation is checked by the write itself, below.
pub async fn logout(
    State(state): State<AppState>,
    authenticated: Verified<Access>,
    headers: HeaderMap,
    request: Request,
) -> Result<(HeaderMap, Json<Value>), ApiError> {
    let access = authenticated.claims;
    let body = Bytes::from_request(request, &state).await?;

    let refresh = refresh_to_revoke(&state, &access, authenticated.by_cookie, &headers, &body)?;

    let revocations = &state.revocations;
    let cache = state.revocation_cache.as_deref();
    // Written, then in this instance's own set before the answer: the instance that revoked a token never accepts
    // it again, whatever its watcher has seen yet.
    let revoke = |claims: &'_ Claims| {
        let claims = claims.clone();
        async move {
            let written = revocations.revoke(&claims).await.map_err(|e| {
                tracing::error!("logout: could not write the blacklist entry: {e}");
                ApiError::Unavailable
            })?;
            if let Some(cache) = cache {
                cache.insert(Entry::Token { jti: claims.jti.clone(), expires_ms: claims.exp.saturating_mul(1000) });
            }
            Ok::<bool, ApiError>(written)
        }
    };
    let revoked = match &refresh {
        None => {
            if !revoke(&access).await? {
                return Err(ApiError::Revoked);
            }
            vec!["access"]
        }
        Some(refresh) => {
            // A revoked access token must not revoke anything else, so look first. Then the refresh token: if the
            // access token's write fails after it, the client simply retries (its access token still works, and
            // revoking the refresh token again is harmless); the other order could leave a live refresh token that
            // no logout can reach any more.
            check_not_revoked(&state, &access).await?;
            revoke(refresh).await?;
            revoke(&access).await?;
            vec!["access", "refresh"]
        }
    };
    tracing::info!(username = ?access.sub, revoked = ?revoked, "logout");
    let mut cookies = HeaderMap::new();
    if state.cookies.tokens_in_cookies() {
        for cookie in state.cookies.unset_all() {
            cookies.append(header::SET_COOKIE, cookie);
        }
    }
    Ok((cookies, Json(json!({ "msg": "Successfully logged out", "revoked": revoked }))))
}

/// The refresh token a logout ends beside the access token, checked before anything is written: the body's
/// `refresh_token` (a forged one, another user's or not a refresh token is a 400; an expired one needs nothing), else
/// in cookie mode the refresh cookie that came along, else the one the access token names.
fn refresh_to_revoke(
    state: &AppState,
    access: &Claims,
    by_cookie: bool,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Option<Claims>, ApiError> {
    let refresh_token = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match json_object(body)?.remove("refresh_token") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => Some(token),
            Some(_) => return Err(ApiError::BadRequest("refresh_token must be a string".into())),
        }
    };
    // The refresh cookie travels with the access cookie (the request's CSRF value already vouched for both). A
    // stale one (another user's, from before a secret change) is left alone rather than blocking the logout.
    let cookie_refresh = match refresh_token {
        None if by_cookie => read_cookie(headers, &state.cookies.refresh.jwt)
            .and_then(|t| state.keys.verify(&t, TokenKind::Refresh).ok())
            .filter(|claims| claims.sub == access.sub),
        _ => None,
    };
    let refresh = match refresh_token.as_deref().map(|t| state.keys.verify(t, TokenKind::Refresh)) {
        None | Some(Err(TokenError::Expired)) => None,
        Some(Err(e)) => return Err(ApiError::BadRequest(format!("refresh_token: {e}"))),
        Some(Ok(claims)) if claims.sub != access.sub => {
            return Err(ApiError::BadRequest("refresh_token: it belongs to another user".into()))
        }
        Some(Ok(claims)) => Some(claims),
    }
    .or(cookie_refresh)
    .or_else(|| {
        // A cookie logout that cannot see the refresh cookie (it is sent only to its own path) still ends the
        // refresh token: the access token names it. Its entry lasts as long as any refresh token issued by then.
        let jti = access.rjti.clone().filter(|_| by_cookie && refresh_token.is_none())?;
        let exp = access.iat.saturating_add(i64::try_from(state.keys.refresh_ttl().as_secs()).unwrap_or(i64::MAX));
        Some(Claims { jti, kind: TokenKind::Refresh, exp, rjti: None, csrf: None, fresh: false, ..access.clone() })
    });
    Ok(refresh)
}
