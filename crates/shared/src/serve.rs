//! Serving a router over HTTP/1.1 with the limits a public port needs, for both servers.
//!
//! `axum::serve` keeps every connection for as long as the client likes: one that sends its headers a byte a
//! minute, or its body never, or sits idle after a request, holds a socket and a task forever, and nothing caps how
//! many. So both servers run this loop instead ([`serve`]):
//! - a connection cap ([`ConnectionLimits::max_connections`]): at the cap, no connection is accepted until one
//!   closes; the kernel's backlog holds the rest;
//! - a header deadline ([`ConnectionLimits::header_timeout`]): the request line and headers must arrive within it,
//!   or the connection is closed. It is hyper's `header_read_timeout`, which also runs while a kept-alive
//!   connection waits for its next request, so it bounds idle connections too;
//! - a body deadline ([`ConnectionLimits::body_timeout`]): a body that does not arrive whole within it, counted
//!   from the end of the head however the bytes are spaced ([`crate::body_deadline`]), fails the request and the
//!   connection closes;
//! - a cap on the request head ([`MAX_HEAD_BYTES`]): a larger head is answered 431 and the connection closes;
//! - an optional handshake (TLS), bounded by the header deadline as well.
//!
//! Each request gets the peer address as `ConnectInfo<SocketAddr>`. On shutdown the loop stops accepting, asks every
//! connection to finish its request in flight, and waits for them (at most `drain`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::body_deadline::DeadlineBody;

/// The most bytes a request line and headers may take together (hyper's read buffer; its default is about
/// 400 KiB). Cookies and a bearer token fit many times over.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How long and how many: see the module doc. Both servers read them from the same variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `HTTP_HEADER_TIMEOUT_SECONDS` (default 10): the request head, and any idle wait between requests.
    pub header_timeout: Duration,
    /// `HTTP_BODY_TIMEOUT_SECONDS` (default 30): the whole request body.
    pub body_timeout: Duration,
    /// `HTTP_MAX_CONNECTIONS` (default 1024): connections open at once.
    pub max_connections: usize,
    /// How long a shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            drain: Duration::from_secs(10),
        }
    }
}

impl ConnectionLimits {
    /// The limits from `HTTP_HEADER_TIMEOUT_SECONDS`, `HTTP_BODY_TIMEOUT_SECONDS` and `HTTP_MAX_CONNECTIONS`, each
    /// with its default; `drain` as given.
    pub fn from_lookup(
        get: &impl Fn(&str) -> Option<String>,
        drain: Duration,
    ) -> Result<Self, crate::config::ConfigError> {
        use crate::config::number;
        Ok(Self {
            header_timeout: Duration::from_secs(number(get, "HTTP_HEADER_TIMEOUT_SECONDS", 10, 1, 600)?),
            body_timeout: Duration::from_secs(number(get, "HTTP_BODY_TIMEOUT_SECONDS", 30, 1, 3600)?),
            max_connections: number(get, "HTTP_MAX_CONNECTIONS", 1024, 1, 100_000)? as usize,
            drain,
        })
    }
}

/// Turns an accepted TCP stream into the stream HTTP is read from (plain, or after a TLS handshake).
pub trait Handshake: Clone + Send + Sync + 'static {
    /// The stream after the handshake.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// Performs the handshake.
    fn handshake(&self, tcp: TcpStream) -> impl Future<Output = io::Result<Self::Io>> + Send;
}

/// No handshake: plain HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Plain;

impl Handshake for Plain {
    type Io = TcpStream;
    async fn handshake(&self, tcp: TcpStream) -> io::Result<TcpStream> {
        Ok(tcp)
    }
}

/// Serves `router` on `listener` until `shutdown` completes (see the module doc).
pub async fn serve<H: Handshake>(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    handshake: H,
    shutdown: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        // Reap finished connections, so the set holds only live ones.
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.map_err(io::Error::other)?,
        };
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // A connection that failed before we saw it (reset, out of descriptors): log, pause, go on.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let (router, handshake, mut stop) = (router.clone(), handshake.clone(), stop_rx.clone());
        connections.spawn(async move {
            let _slot = slot;
            let Ok(Ok(io)) = tokio::time::timeout(limits.header_timeout, handshake.handshake(tcp)).await else {
                tracing::debug!(%peer, "handshake failed or timed out");
                return;
            };
            let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let router = router.clone();
                // hyper's buffer cap holds only when the head arrives in pieces: sent in one write, a head past it is
                // parsed whole. The parsed head is measured here, however its bytes arrived.
                let too_large = head_bytes(&request) > MAX_HEAD_BYTES;
                // The head is here: the body's clock starts.
                let request = request.map(|b| Body::new(DeadlineBody::new(Body::new(b), limits.body_timeout)));
                // The router's error type is `Infallible`: every request gets an answer.
                async move {
                    if too_large {
                        return Ok(head_too_large());
                    }
                    router.oneshot(request).await
                }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout).keep_alive(true);
            builder.max_buf_size(MAX_HEAD_BYTES);
            let connection = builder.serve_connection(TokioIo::new(io), service);
            let mut connection = pin!(connection);
            tokio::select! {
                result = connection.as_mut() => log_end(peer, result),
                () = async { let _ = stop.wait_for(|stopping| *stopping).await; } => {
                    connection.as_mut().graceful_shutdown();
                    log_end(peer, connection.await);
                }
            }
        });
    }
    tracing::info!("shutting down: finishing requests in flight");
    let _ = stop_tx.send(true);
    drop(listener);
    let drained = tokio::time::timeout(limits.drain, async { while connections.join_next().await.is_some() {} });
    if drained.await.is_err() {
        tracing::warn!("requests still in flight after {:?}; stopping them", limits.drain);
        connections.abort_all();
    }
    Ok(())
}

/// The size of `request`'s head as it came on the wire: the request line, each header line, and the blank line.
fn head_bytes<B>(request: &Request<B>) -> usize {
    let line = request.method().as_str().len() + 1 + request.uri().to_string().len() + 1 + "HTTP/1.1\r\n".len();
    let headers: usize = request.headers().iter().map(|(name, value)| name.as_str().len() + 2 + value.len() + 2).sum();
    line + headers + 2
}

/// 431, and the connection closes: what hyper answers when its buffer overflows.
fn head_too_large() -> axum::response::Response {
    let mut response = axum::response::Response::new(Body::from("request header fields too large\n"));
    *response.status_mut() = hyper::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE;
    response.headers_mut().insert(hyper::header::CONNECTION, hyper::header::HeaderValue::from_static("close"));
    response
}

fn log_end(peer: SocketAddr, result: Result<(), hyper::Error>) {
    if let Err(e) = result {
        // Timeouts and clients that go away are routine on a public port: debug, not error.
        tracing::debug!(%peer, "connection closed: {e}");
    }
}
