//! The auth API's start-up: the stores, the indexes, the revocation set, TLS and the port, bound on any port (0 for
//! tests); then serving until shutdown. The state, the router, CORS, authentication and TLS each have their own
//! module (`state`, `router`, `cors`, `authentication`, `tls`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use jtc_shared::mongo::connect;
use jtc_shared::serve::{serve, ConnectionLimits, Plain};
use tokio_rustls::TlsAcceptor;

use crate::config::AuthSettings;
use crate::rate_limit::RateLimiter;
use crate::revocation::RevocationList;
use crate::revocation_cache::RevocationCache;
use crate::router::router;
use crate::state::{AppState, Shared};
use crate::tls::{self, Tls};
use crate::tokens::TokenKeys;
use crate::users::{UserError, UserStore};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port could not be bound.
    #[error("cannot listen on port {0}: {1}")]
    Bind(u16, std::io::Error),
    /// The certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The MongoDB client could not be created (a malformed `DB_URI`, say).
    #[error("database: {0}")]
    Database(#[from] mongodb::error::Error),
    /// Preparing the users store failed.
    #[error("users: {0}")]
    Users(#[from] UserError),
    /// `REDIS_URL` could not be used.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Starts the revocation watcher and waits for its first load (the server answers only once the set is loaded),
/// at most twice the database timeout: past that it starts anyway, and checks go to the database (failing closed)
/// until the set is loaded.
async fn start_revocation_cache(settings: &AuthSettings, database: &mongodb::Database) -> Arc<RevocationCache> {
    let cache = Arc::new(RevocationCache::new(&settings.revocation_cache));
    let blacklist = database.collection(&settings.blacklist_collection);
    tokio::spawn(crate::revocation_cache::watcher::run(
        Arc::clone(&cache),
        blacklist,
        settings.expires_field.clone(),
        settings.revocation_cache,
    ));
    let waited = Instant::now();
    while !cache.is_loaded() && waited.elapsed() < settings.db.timeout * 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if !cache.is_loaded() {
        tracing::warn!("revocations not loaded yet: checks go to the database until they are");
    }
    cache
}

/// A bound, not yet running server.
pub struct Application {
    listener: std::net::TcpListener,
    router: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
}

impl Application {
    /// Connects the stores (the database is reached lazily), makes sure of the indexes (a failure is logged, not
    /// fatal: requests then answer 503 until the database is back), loads the TLS files, and binds
    /// `0.0.0.0:settings.port`.
    pub async fn build(settings: &AuthSettings) -> Result<Self, StartError> {
        let client = connect(&settings.db, "auth-api").await?;
        let database = client.database(&settings.db.database);
        let users =
            UserStore::new(database.collection(&settings.users_collection), settings.password_memory_keep).await?;
        let revocations =
            RevocationList::new(database.collection(&settings.blacklist_collection), &settings.expires_field);
        let (users_index, jti_index, expiry_index) =
            tokio::join!(users.ensure_indexes(), revocations.ensure_index(), revocations.ensure_expiry_index());
        if let Err(e) = expiry_index {
            tracing::error!("could not index the blacklist on {}: {e}", settings.expires_field);
        }
        if let Err(e) = users_index {
            tracing::error!("could not make the unique index on users.username: {e}");
        }
        match jti_index {
            Ok(index) => tracing::debug!(?index, "jti lookups are indexed"),
            Err(e) => tracing::error!("could not index the blacklist on jti: {e}"),
        }

        let limits = settings.rate_limits.limits.clone();
        let limiter = match &settings.rate_limits.redis_url {
            Some(url) => RateLimiter::with_redis(limits, url.expose(), &settings.rate_limits.key_prefix)?,
            None => RateLimiter::in_memory(limits),
        };
        let revocation_cache = match settings.revocation_cache.enabled {
            true => Some(start_revocation_cache(settings, &database).await),
            false => None,
        };
        let state = AppState::new(Shared {
            users,
            revocations,
            keys: TokenKeys::new(&settings.jwt),
            limiter,
            trusted_proxy_hops: settings.rate_limits.trusted_proxy_hops,
            cookies: settings.cookies.clone(),
            revocation_cache,
        });

        if settings.cookies.tokens_in_cookies() && !settings.cookies.secure {
            tracing::warn!(
                "JWT cookies without Secure: a browser sends them over plain HTTP too; set JWT_COOKIE_SECURE=true \
                 when TLS ends in front of this service"
            );
        }
        let tls = match &settings.tls {
            Some(files) => Some(tls::config(files)?),
            None => {
                tracing::warn!(
                    "serving plain HTTP: tokens and passwords cross the network in clear unless TLS ends in front \
                     of this service; set TLS_CERT_FILE and TLS_KEY_FILE to serve HTTPS"
                );
                None
            }
        };
        let listener = std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], settings.port)))
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|e| StartError::Bind(settings.port, e))?;
        let (router, limits) = (router(state, &settings.cors_allowed_origins), settings.connections);
        Ok(Self { listener, router, tls, limits })
    }

    /// The port really bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// True when serving HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish (up to 10 s), with the connection
    /// limits of `jtc_shared::serve` (a cap, header, idle and body deadlines; the TLS handshake within the header
    /// deadline).
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let listener = tokio::net::TcpListener::from_std(self.listener)?;
        match self.tls {
            Some(config) => serve(listener, self.router, self.limits, Tls(TlsAcceptor::from(config)), shutdown).await,
            None => serve(listener, self.router, self.limits, Plain, shutdown).await,
        }
    }
}
