//! A sweep's batches as spans, bounded: the first [`MAX_BATCH_SPANS`] of a target each get one (with its database
//! calls as children); the rest are counted on the target's span (`batches_untraced`), so a long run of small
//! batches cannot flood the exporter's queue or the trace view.

use crate::store::Lane;

/// Batch spans per target, at most. 50 batches of the default 5,000 entries is a quarter of a million entries, more
/// than one run sweeps of a collection kept clean.
pub const MAX_BATCH_SPANS: u64 = 50;

/// The batches of one sweep so far.
#[derive(Debug, Default)]
pub struct Batches {
    traced: u64,
    untraced: u64,
}

impl Batches {
    /// The span of the next batch, in `lane`: a real one while under the limit, else a disabled one.
    pub fn batch(&mut self, lane: Lane) -> tracing::Span {
        if self.traced >= MAX_BATCH_SPANS {
            self.untraced += 1;
            return tracing::Span::none();
        }
        self.traced += 1;
        tracing::info_span!(
            "batch",
            lane = ?lane,
            batch = self.traced,
            entries = tracing::field::Empty,
            window.lo_ms = tracing::field::Empty,
            window.hi_ms = tracing::field::Empty,
        )
    }

    /// Records the batches past the limit on the current span (the target's), when there were any.
    pub fn summarise(&self) {
        if self.untraced > 0 {
            tracing::Span::current().record("batches_untraced", self.untraced);
        }
    }
}

/// Records what a batch did on its span: `entries` deleted (counted, in a dry run) from the expiry window
/// `[lo_ms, hi_ms)`, the part of the lane it walked.
pub fn ended(span: &tracing::Span, entries: u64, lo_ms: i64, hi_ms: i64) {
    span.record("entries", entries);
    span.record("window.lo_ms", lo_ms.min(hi_ms));
    span.record("window.hi_ms", hi_ms);
}
