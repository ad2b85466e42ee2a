//! One deadline for the whole request body.
//!
//! tower-http's `RequestBodyTimeoutLayer` measures the time between two frames, not the body: a client that sends
//! one byte every few seconds restarts it each time and holds the connection (and its slot under the connection
//! cap) for as long as it likes: a few connections dribbling a byte now and then can keep a server at its connection
//! cap (BENCHMARKS.md, "Figures behind the code"). [`DeadlineBody`] starts its clock when the request's
//! head has arrived and fails the body once the clock runs out, however the bytes are spaced.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

/// The body did not arrive whole within the deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive whole within {0:?}")]
pub struct BodyDeadlineExceeded(pub Duration);

/// A request body that fails once `limit` has passed since it was wrapped.
pub struct DeadlineBody {
    inner: Body,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// Wraps `inner`; the clock starts now.
    pub fn new(inner: Body, limit: Duration) -> Self {
        Self { inner, limit, deadline: Box::pin(tokio::time::sleep(limit)) }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        // The body first: a frame that is already there is taken even at the deadline's last instant.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyDeadlineExceeded(self.limit))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields one byte per `gap`, `n` times.
    fn dribble(n: usize, gap: Duration) -> Body {
        let stream = futures_util::stream::unfold(0, move |i| async move {
            if i == n {
                return None;
            }
            tokio::time::sleep(gap).await;
            Some((Ok::<_, std::io::Error>(Bytes::from_static(b"x")), i + 1))
        });
        Body::from_stream(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_counts_the_whole_body_not_the_gaps() {
        // Each gap (1 s) is far under the limit (4 s); the whole body (10 s) is not.
        let body = DeadlineBody::new(dribble(10, Duration::from_secs(1)), Duration::from_secs(4));
        let err = body.collect().await.expect_err("the body outlived its deadline");
        assert!(err.to_string().contains("did not arrive whole"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_within_the_deadline_arrives_whole() {
        let body = DeadlineBody::new(dribble(3, Duration::from_secs(1)), Duration::from_secs(4));
        let bytes = body.collect().await.expect("in time").to_bytes();
        assert_eq!(&bytes[..], b"xxx");
    }
}
