//! `POST /login` `{"username", "password"}` → `{"access_token", "refresh_token"}`.
//!
//! Rate limited per client IP (`RATE_LIMIT_LOGIN`) before anything else; the body must be declared JSON (415
//! otherwise). Failed logins are also counted per user name, whatever the client (`RATE_LIMIT_LOGIN_FAILURES_PER_USER`):
//! over that limit the name is refused (429) before its password is tried, until the window closes. The window opens
//! at the first failure and is short (a minute by default), so an attacker can hold a real user out only by failing
//! all the time, from more addresses than the per-client limit allows each. A failed login is answered 401
//! `{"msg": "Invalid credentials"}` and logged as a security event with the user name and client IP, never the
//! password.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::Value;

use super::{hand_out, issue_at, json_object, require_json};
use crate::error::ApiError;
use crate::rate_limit::{Scope, Subject};
use crate::state::AppState;
use crate::tokens::TokenKind;
use crate::users::{check_password, Username};
use jtc_shared::Secret;

/// Checks the credentials and issues an access and a refresh token.
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(HeaderMap, Json<Value>), ApiError> {
    // Already counted per client by the route layer (`RATE_LIMIT_LOGIN`).
    let client_ip = state.client_ip(peer, &headers);
    require_json(&headers)?;
    let mut body = json_object(&body)?;
    let (Some(Value::String(raw_name)), Some(Value::String(password))) =
        (body.remove("username"), body.remove("password"))
    else {
        return Err(ApiError::BadRequest("Missing username or password".into()));
    };
    // The tokens' issue time is taken before the password hash is read: a password change or a revoke-user that
    // lands while this login waits to verify is later than `iat`, so the tokens it issues are refused (and a hash
    // changed meanwhile refuses the login outright, see `UserStore::check_credentials`).
    let issued_at = chrono::Utc::now().timestamp();
    let password = Secret::new(password);
    // Names and passwords no user can have are refused like any other wrong pair, at the cost of a check.
    let username = Username::parse(&raw_name).ok().filter(|_| check_password(password.expose()).is_ok());
    let stored = match &username {
        Some(username) => {
            // Too many recent failures for this name, from anywhere: refused before the password is even tried.
            state.over_limit(Scope::LoginFailures, Subject::User(username.as_str())).await?;
            state.users.check_credentials(username, password).await.map_err(|e| {
                tracing::error!("login: user lookup failed: {e}");
                ApiError::Unavailable
            })?
        }
        None => None,
    };
    let Some(stored) = stored else {
        tracing::warn!(security = "login_failed", username = ?raw_name, client_ip = %client_ip, "failed login");
        if let Ok(name) = Username::parse(&raw_name) {
            let _ = state.limiter.hit(Scope::LoginFailures, Subject::User(name.as_str())).await;
        }
        return Err(ApiError::InvalidCredentials);
    };
    let refresh = issue_at(&state.keys, &stored, TokenKind::Refresh, false, issued_at, None)?;
    let access = issue_at(&state.keys, &stored, TokenKind::Access, true, issued_at, Some(&refresh.1.jti))?;
    tracing::info!(username = ?stored, client_ip = %client_ip, "login");
    // `{"access_token", "refresh_token"}`, and in cookie mode the four cookies.
    Ok(hand_out(&state.cookies, &[access, refresh], ("login", Value::Bool(true))))
}
