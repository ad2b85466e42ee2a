//! The lease document: how a run claims "one run at a time" in the run history collection, the same way through
//! both backends.
//!
//! One document, `{_id: "lease", holder, until, taken_at}`, beside the run records (which carry a `kind` marker, so
//! that reading the history never sees it). Taking it is one write, an upsert whose filter matches only an
//! expired lease ([`take_filter`]): with no lease document it inserts one, with an expired one it takes it over,
//! and with a live one the filter misses and the upsert's insert collides with the live document's `_id`, a
//! duplicate-key error (11000): the lease is held. The Data API has `updateOne` with `upsert` but no
//! `findOneAndUpdate`, so the holder is then read with one `findOne`: two round trips when held, one when taken.
//! Releasing is one `deleteOne` filtered on the holder, so a run whose lease expired and was taken over never
//! deletes its successor's.
//!
//! `until` is written with the taker's clock, and compared with the next taker's: see `crate::lease` for the skew
//! this tolerates.

use mongodb::bson::{doc, Bson, Document};

use super::StoreError;

/// The lease document's `_id`.
pub const LEASE_ID: &str = "lease";

/// A claim: `holder` (the run's request id) wants the lease from `now_ms` until `until_ms` (its own clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseClaim {
    /// Who asks: the run's request id.
    pub holder: String,
    /// The taker's clock, in milliseconds since the epoch.
    pub now_ms: i64,
    /// When the lease it takes runs out.
    pub until_ms: i64,
}

/// What a claim found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// The claim holds the lease.
    Taken,
    /// Another run holds it: its request id, and when its lease runs out (milliseconds since the epoch).
    Held {
        /// The holder's request id.
        holder: String,
        /// When its lease runs out.
        until_ms: i64,
    },
}

/// Matches the lease document only when it has run out (or has no `until`, which no holder writes).
pub fn take_filter(claim: &LeaseClaim) -> Document {
    doc! { "_id": LEASE_ID, "until": { "$lt": mongodb::bson::DateTime::from_millis(claim.now_ms) } }
}

/// The lease, as `claim` holds it.
pub fn take_update(claim: &LeaseClaim) -> Document {
    doc! { "$set": {
        "holder": &claim.holder,
        "until": mongodb::bson::DateTime::from_millis(claim.until_ms),
        "taken_at": mongodb::bson::DateTime::from_millis(claim.now_ms),
    } }
}

/// The lease document, whoever holds it.
pub fn id_filter() -> Document {
    doc! { "_id": LEASE_ID }
}

/// The lease document while `holder` holds it (the release).
pub fn release_filter(holder: &str) -> Document {
    doc! { "_id": LEASE_ID, "holder": holder }
}

/// What the lease document read after a collision says, for `claim`: `None` when it no longer stands in the way (it
/// was released, or ran out, between the two calls), so the claim may be tried again.
pub fn held_by(document: Option<&Document>, claim: &LeaseClaim) -> Result<Option<LeaseState>, StoreError> {
    let Some(document) = document else { return Ok(None) };
    let holder = match document.get("holder") {
        Some(Bson::String(holder)) => holder.clone(),
        _ => return Err(StoreError::protocol("the lease document has no holder")),
    };
    let until_ms = match document.get("until") {
        Some(Bson::DateTime(until)) => until.timestamp_millis(),
        _ => return Err(StoreError::protocol("the lease document has no Date `until`")),
    };
    Ok((until_ms >= claim.now_ms).then_some(LeaseState::Held { holder, until_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim() -> LeaseClaim {
        LeaseClaim { holder: "me".into(), now_ms: 1_000_000, until_ms: 1_100_000 }
    }

    #[test]
    fn a_live_lease_is_held_and_a_run_out_or_missing_one_is_not() {
        let live =
            doc! { "_id": LEASE_ID, "holder": "other", "until": mongodb::bson::DateTime::from_millis(1_000_001) };
        assert_eq!(
            held_by(Some(&live), &claim()).unwrap(),
            Some(LeaseState::Held { holder: "other".into(), until_ms: 1_000_001 })
        );
        let out = doc! { "_id": LEASE_ID, "holder": "other", "until": mongodb::bson::DateTime::from_millis(999_999) };
        assert_eq!(held_by(Some(&out), &claim()).unwrap(), None);
        assert_eq!(held_by(None, &claim()).unwrap(), None);
        assert!(held_by(Some(&doc! { "_id": LEASE_ID, "until": 5 }), &claim()).is_err());
    }
}
