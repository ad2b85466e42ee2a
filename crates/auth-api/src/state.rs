//! What every route shares: the stores, the keys, the limiter and the cookie settings, behind one `AppState`.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::HeaderMap;

use crate::cookies::CookieSettings;
use crate::error::ApiError;
use crate::rate_limit::{Decision, RateLimiter, Scope, Subject};
use crate::revocation::RevocationList;
use crate::revocation_cache::RevocationCache;
use crate::tokens::TokenKeys;
use crate::users::UserStore;

/// What every route shares (see `jtc_shared::state`).
pub type AppState = jtc_shared::state::AppState<Shared>;

/// The parts of [`AppState`].
pub struct Shared {
    /// User names and password hashes.
    pub users: UserStore,
    /// The blacklist.
    pub revocations: RevocationList,
    /// Token signing and checking.
    pub keys: TokenKeys,
    /// Hit counters, each scope against its own limit.
    pub limiter: RateLimiter,
    /// `TRUSTED_PROXY_HOPS`.
    pub trusted_proxy_hops: u8,
    /// Where tokens are read from and written to, and their CSRF values.
    pub cookies: CookieSettings,
    /// The revocations in memory, when `REVOCATION_CACHE` is on.
    pub revocation_cache: Option<Arc<RevocationCache>>,
}

impl Shared {
    /// The client's address (see [`client_ip`](crate::client_ip)).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        crate::client_ip::client_ip(peer.ip(), headers, self.trusted_proxy_hops)
    }

    /// Counts a hit of `subject` on `scope`; `Err(429)` over the limit.
    pub async fn limit(&self, scope: Scope, subject: Subject<'_>) -> Result<(), ApiError> {
        limited(scope, subject, self.limiter.hit(scope, subject).await)
    }

    /// `Err(429)` when one more hit of `subject` on `scope` would be over the limit; counts nothing.
    pub async fn over_limit(&self, scope: Scope, subject: Subject<'_>) -> Result<(), ApiError> {
        limited(scope, subject, self.limiter.peek(scope, subject).await)
    }
}

fn limited(scope: Scope, subject: Subject<'_>, decision: Decision) -> Result<(), ApiError> {
    match decision {
        Decision::Allowed => Ok(()),
        Decision::Limited { retry_after } => {
            tracing::warn!(subject = ?subject, scope = scope.as_str(), "rate limit exceeded");
            Err(ApiError::TooManyRequests(retry_after))
        }
    }
}
