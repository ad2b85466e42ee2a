//! The auth API's HTTP server: shared state, the router, start-up on any port (0 for tests), plain HTTP or HTTPS
//! with rustls, and graceful shutdown.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use jtc_shared::serve::{serve, ConnectionLimits, Handshake, Plain};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tower_http::cors::{AllowCredentials, AllowOrigin, CorsLayer};

use super::config::{AuthSettings, TlsSettings};
use super::cookies::{constant_time_eq, read_cookie, read_header, CookieSettings, Location};
use super::error::ApiError;
use super::rate_limit::{Decision, RateLimiter, Scope, Subject};
use super::revocation::RevocationList;
use super::revocation_cache::{Check, RevocationCache};
use super::routes;
use super::tokens::{Claims, TokenKeys, TokenKind};
use super::users::{UserError, UserStore};
use jtc_shared::mongo::connect;

/// Request bodies above this are refused (413): a login is a few hundred bytes.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The port could not be bound.
    #[error("cannot listen on port {0}: {1}")]
    Bind(u16, std::io::Error),
    /// The certificate or key could not be read or used.
    #[error("TLS: {0}")]
    Tls(String),
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
    /// The client's address (see [`client_ip`](super::client_ip)).
    pub fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        super::client_ip::client_ip(peer.ip(), headers, self.trusted_proxy_hops)
    }

    /// Counts a hit of `subject` on `scope`; `Err(429)` over the limit.
    pub async fn limit(&self, scope: Scope, subject: Subject<'_>) -> Result<(), ApiError> {
        limited(scope, subject, self.limiter.hit(scope, subject).await)
    }

    /// `Err(429)` when one more hit of `subject` on `scope` would be over the limit; counts nothing.
    pub async fn over_limit(&self, scope: Scope, subject: Subject<'_>) -> Result<(), ApiError> {
        limited(scope, subject, self.limiter.peek(scope, subject).await)
    }

    /// The claims of the request's token of `kind` (see [`verify_request`](Self::verify_request)), not revoked. A
    /// revocation check the database cannot answer refuses the request (503): fail closed.
    pub async fn authorize(&self, method: &Method, headers: &HeaderMap, kind: TokenKind) -> Result<Claims, ApiError> {
        let claims = self.verify_request(method, headers, kind)?.claims;
        self.check_not_revoked(&claims).await?;
        Ok(claims)
    }

    /// The request's token of `kind`, looked for in `JWT_TOKEN_LOCATION`'s order (the `Authorization: Bearer`
    /// header, the JWT cookie), checked to be alive and of `kind`; revocation is the caller's to check. A token
    /// from a cookie, on a method of `JWT_CSRF_METHODS`, must come with its `csrf` claim in the CSRF header,
    /// compared in constant time (see `cookies`). The messages are Flask-JWT-Extended's.
    pub fn verify_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        kind: TokenKind,
    ) -> Result<Authenticated, ApiError> {
        let mut missing = Vec::new();
        for location in &self.cookies.locations {
            match location {
                Location::Headers => match bearer(headers) {
                    Ok(token) => return Ok(Authenticated { claims: self.keys.verify(token, kind)?, by_cookie: false }),
                    Err(ApiError::MissingToken(why)) => missing.push(why),
                    Err(e) => return Err(e),
                },
                Location::Cookies => {
                    let names = self.cookies.of(kind);
                    let Some(token) = read_cookie(headers, &names.jwt) else {
                        missing.push(format!("Missing cookie \"{}\"", names.jwt));
                        continue;
                    };
                    // The header is looked for first, the claim after the signature is checked (as Flask does).
                    let sent = match self.cookies.csrf_required(method) {
                        true => Some(read_header(headers, &names.header).ok_or(ApiError::Csrf("Missing CSRF token"))?),
                        false => None,
                    };
                    let claims = self.keys.verify(&token, kind)?;
                    if let Some(sent) = sent {
                        let claim = claims.csrf.as_deref().ok_or(ApiError::Csrf("Missing claim: csrf"))?;
                        if !constant_time_eq(sent.as_bytes(), claim.as_bytes()) {
                            return Err(ApiError::Csrf("CSRF double submit tokens do not match"));
                        }
                    }
                    return Ok(Authenticated { claims, by_cookie: true });
                }
            }
        }
        Err(ApiError::MissingToken(missing.join("; ")))
    }

    /// `Err(Revoked)` when `claims.jti` is in the blacklist: from the set in memory while it is proven current,
    /// else from the database (failing closed).
    pub async fn check_not_revoked(&self, claims: &Claims) -> Result<(), ApiError> {
        match self.revocation_cache.as_ref().map(|cache| cache.check(claims)) {
            Some(Check::Revoked) => return Err(ApiError::Revoked),
            Some(Check::NotRevoked) => return Ok(()),
            Some(Check::Stale) | None => {}
        }
        match self.revocations.is_revoked(claims).await {
            Ok(false) => Ok(()),
            Ok(true) => Err(ApiError::Revoked),
            Err(e) => {
                tracing::error!("revocation lookup failed: {e}");
                Err(ApiError::Unavailable)
            }
        }
    }
}

/// The route layer: one hit of the client on `scope`; 429 over the limit, the handler otherwise.
async fn limit_per_client(
    State((state, scope)): State<(AppState, Scope)>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = state.client_ip(peer, request.headers());
    match state.limit(scope, Subject::Ip(client)).await {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
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

/// A request's verified token, and where it came from.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// Its claims.
    pub claims: Claims,
    /// It came in a cookie (so the answer may set or unset cookies).
    pub by_cookie: bool,
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

/// The routes, with CORS for the allowed origins. Every route but `/health` is rate limited per client by a
/// route layer that runs before the handler (and before its body is read): the scope is part of the route's
/// declaration, so a new route cannot be added without one.
pub fn router(state: AppState, cors_allowed_origins: &[String]) -> Router {
    let limited: [(&str, Scope, MethodRouter<AppState>); 4] = [
        ("/login", Scope::Login, post(routes::login::login)),
        ("/protected", Scope::Protected, get(routes::protected::protected)),
        ("/refresh", Scope::Refresh, post(routes::refresh::refresh)),
        ("/logout", Scope::Logout, post(routes::logout::logout)),
    ];
    let mut router = Router::new();
    for (path, scope, route) in limited {
        router = router.route(path, route.route_layer(from_fn_with_state((state.clone(), scope), limit_per_client)));
    }
    let cookies = state.cookies.clone();
    let router = router
        .route("/health", get(routes::health::health))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state);
    let origins: Vec<HeaderValue> = cors_allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    if origins.is_empty() {
        return router;
    }
    // The CSRF headers may come through; with cookies, credentials are allowed, and only ever for a listed origin
    // (never `*`: the list is exact, and the credentials header is answered to those origins alone).
    let mut allowed_headers = vec![header::AUTHORIZATION, header::CONTENT_TYPE];
    for name in [&cookies.access.header, &cookies.refresh.header] {
        if let Ok(name) = header::HeaderName::from_bytes(name.as_bytes()) {
            if !allowed_headers.contains(&name) {
                allowed_headers.push(name);
            }
        }
    }
    let mut cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.clone()))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers(allowed_headers)
        .max_age(Duration::from_secs(600));
    if cookies.tokens_in_cookies() {
        cors = cors.allow_credentials(AllowCredentials::predicate(move |origin, _| origins.contains(origin)));
    }
    router.layer(cors)
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
            Some(files) => Some(tls_config(files)?),
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

/// The TLS handshake, for [`serve`].
#[derive(Clone)]
struct Tls(TlsAcceptor);

impl Handshake for Tls {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    async fn handshake(&self, tcp: tokio::net::TcpStream) -> std::io::Result<Self::Io> {
        self.0.accept(tcp).await
    }
}

/// A rustls server configuration (ring, TLS 1.2 and 1.3) from the PEM files.
fn tls_config(files: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, StartError> {
    let shown = |p: &std::path::Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| StartError::Tls(format!("TLS_CERT_FILE {}: {e}", shown(&files.cert_file))))?;
    if certs.is_empty() {
        return Err(StartError::Tls(format!("TLS_CERT_FILE {}: no certificate in it", shown(&files.cert_file))));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| StartError::Tls(format!("TLS_KEY_FILE {}: {e}", shown(&files.key_file))))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StartError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| StartError::Tls(format!("the certificate and key do not make a usable pair: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
