//! One run at a time, across every instance: the lease a run takes before it sweeps. This module owns the whole
//! protocol; a backend offers three primitives ([`RunHistory::write_lease`], [`RunHistory::read_lease`],
//! [`RunHistory::release_lease`]) and knows nothing of what they mean.
//!
//! Runs overlap when one outlasts its timer interval, when a manual invoke meets a timer run, when FC retries a
//! failed asynchronous invocation, and when two functions (two regions, a staging copy) share one database. They
//! would be safe (nothing is claimed twice), but they double the load and race each other's windows. So a run
//! first takes the lease; a run that finds it held does not sweep, and answers 200 with `skipped: true`, the holder
//! and when its lease runs out, so that FC does not retry it. Dry runs and `status` never take it;
//! `CLEANUP_LEASE=false` turns it off.
//!
//! **The document.** `{_id: "lease", holder, token, until, taken_at}` in the run history collection, beside the
//! run records (which carry a `kind` marker, so that reading the history never sees it). `holder` is the run's
//! request id, `token` a random value of this run alone: a reused request id is another run, and neither sweeps
//! nor releases.
//!
//! **Taking it** is one upsert whose filter matches a lease that ran out, or this very run's own ([`take_filter`]):
//! with no document it inserts one, with a matching one it takes it over, and otherwise the insert collides with
//! the live document's `_id` (a duplicate key; through the Data API a refused request). Matching its own lease
//! matters when a write was applied but its answer came too late: the fallback chain then repeats it through the
//! direct connection, which must find the lease this run already holds, not skip the run. After a collision the
//! document is read ([`judge`]): a live lease is held by its holder (two round trips in all); a lease that no
//! real run could have written (an `until` later than the [`longest`] lease from now, a missing or non-Date
//! `until`, a holder that is not a request id) is stale, and is taken over with a compare-and-swap on what was read,
//! with a warning naming it (three round trips). A forged lease therefore costs one run a warning, never every run.
//!
//! **Releasing** is one delete filtered on the holder and its token, so a run whose lease ran out and was taken over
//! never deletes its successor's.
//!
//! **Clocks.** The holder writes `until` with its own clock and the next taker compares it with its own. A holder
//! whose clock is behind by `d` (or a taker whose clock is ahead by `d`) sees the lease run out `d` early: the
//! lease still outlasts the holder's run while `d` is below [`SLACK`] (30 s). FC's instances keep NTP time, well
//! within that. Beyond it, two runs may overlap, which is safe, only wasteful; and a lease stamped more than
//! [`SLACK`] beyond the longest lease is judged stale.

use std::time::Duration;

use chrono::{DateTime, Utc};
use mongodb::bson::{doc, Bson, Document};
use serde::Serialize;

use crate::clock::RunClock;
use crate::config::MAX_TIME_BUDGET_SECONDS;
use crate::store::{LeaseWrite, RunHistory, StoreError};
use crate::untrusted::{is_request_id, printable};

/// What the lease adds to the longest run, and the clock skew between instances it tolerates.
pub const SLACK: Duration = Duration::from_secs(30);
/// The lease document's `_id`.
pub const LEASE_ID: &str = "lease";
/// How many writes a take tries: the first, one more when the lease was released or ran out between a collision
/// and the read, and a take-over of a stale lease.
const ATTEMPTS: usize = 3;

/// How long a run with `budget` holds the lease: its budget, the call margin, and the slack.
pub fn duration(budget: Duration) -> Duration {
    RunClock::longest_run(budget) + SLACK
}

/// The furthest ahead of a taker's clock a real lease can run out: the longest lease (the largest budget's), plus
/// the slack for the writer's clock being ahead. A lease beyond it was written by no run.
pub fn longest() -> Duration {
    duration(Duration::from_secs(MAX_TIME_BUDGET_SECONDS)) + SLACK
}

/// A run's claim: `holder` (its request id, with this run's own `token`) wants the lease from `now_ms` until
/// `until_ms` (its own clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Who asks: the run's request id.
    pub holder: String,
    /// This run alone's: a reused request id is another run.
    token: String,
    /// The taker's clock, in milliseconds since the epoch.
    pub now_ms: i64,
    /// When the lease it takes runs out.
    pub until_ms: i64,
}

impl Claim {
    /// The claim of run `request_id`, with `budget`, at `now`.
    pub fn new(request_id: &str, budget: Duration, now: DateTime<Utc>) -> Self {
        let now_ms = now.timestamp_millis();
        let hold_ms = i64::try_from(duration(budget).as_millis()).unwrap_or(i64::MAX);
        Self {
            holder: request_id.to_string(),
            token: uuid::Uuid::new_v4().to_string(),
            now_ms,
            until_ms: now_ms.saturating_add(hold_ms),
        }
    }

    /// Matches a lease that ran out, and this run's own.
    fn take_filter(&self) -> Document {
        let now = mongodb::bson::DateTime::from_millis(self.now_ms);
        doc! { "_id": LEASE_ID, "$or": [
            { "until": { "$lt": now } },
            { "holder": &self.holder, "token": &self.token },
        ] }
    }

    /// The lease, as this claim holds it.
    fn update(&self) -> Document {
        doc! { "$set": {
            "holder": &self.holder,
            "token": &self.token,
            "until": mongodb::bson::DateTime::from_millis(self.until_ms),
            "taken_at": mongodb::bson::DateTime::from_millis(self.now_ms),
        } }
    }

    /// The lease while this run holds it (the release).
    fn own_filter(&self) -> Document {
        doc! { "_id": LEASE_ID, "holder": &self.holder, "token": &self.token }
    }
}

/// What a take found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseState {
    /// The claim holds the lease; `took_over` says why a stale lease it replaced was stale.
    Taken {
        /// Why the lease found was stale, when one was taken over.
        took_over: Option<String>,
    },
    /// Another run holds it.
    Held {
        /// The holder's request id (checked: see [`crate::untrusted`]).
        holder: String,
        /// When its lease runs out, in milliseconds since the epoch.
        until_ms: i64,
    },
}

/// What a lease document says, at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// It ran out: anyone may take it.
    RanOut,
    /// A run holds it.
    Live {
        /// Its request id.
        holder: String,
        /// Its token, when it has one.
        token: Option<String>,
        /// When it runs out.
        until_ms: i64,
    },
    /// No real run could have written it: why, printable.
    Stale(String),
}

/// Judges the lease `document` at `now_ms` (see the module doc).
pub fn judge(document: &Document, now_ms: i64) -> Judged {
    let holder = match document.get("holder") {
        Some(Bson::String(holder)) if is_request_id(holder) => holder.clone(),
        Some(Bson::String(holder)) => {
            return Judged::Stale(format!("its holder \"{}\" is not a request id", printable(&clip(holder))))
        }
        Some(other) => return Judged::Stale(format!("its holder is a {:?}, not a request id", other.element_type())),
        None => return Judged::Stale("it has no holder".to_string()),
    };
    let until_ms = match document.get("until") {
        Some(Bson::DateTime(until)) => until.timestamp_millis(),
        Some(other) => return Judged::Stale(format!("its until is a {:?}, not a Date", other.element_type())),
        None => return Judged::Stale("it has no until".to_string()),
    };
    let token = match document.get("token") {
        Some(Bson::String(token)) => Some(token.clone()),
        _ => None,
    };
    let longest = i64::try_from(longest().as_millis()).unwrap_or(i64::MAX);
    if until_ms < now_ms {
        Judged::RanOut
    } else if until_ms - now_ms > longest {
        Judged::Stale(format!("{holder}'s lease runs until {}, later than any run could hold it", shown(until_ms)))
    } else {
        Judged::Live { holder, token, until_ms }
    }
}

/// `until_ms` as RFC 3339 (or the number, outside chrono's range).
fn shown(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), crate::sweep::report::rfc3339)
}

/// The first 64 characters of a stored text, for a message.
fn clip(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Matches the lease document exactly as it was read (a compare-and-swap): only the stale lease [`judge`] saw is
/// taken over, never one another run wrote since. `$eq` keeps a stored value from being read as an operator, and
/// `$eq: null` matches a missing field.
fn as_read(document: &Document) -> Document {
    let mut filter = doc! { "_id": LEASE_ID };
    for field in ["holder", "token", "until"] {
        let value = document.get(field).cloned().unwrap_or(Bson::Null);
        filter.insert(field, doc! { "$eq": value });
    }
    filter
}

/// Takes the lease for `claim` through `history` (see the module doc).
pub async fn take(history: &dyn RunHistory, claim: &Claim) -> Result<LeaseState, StoreError> {
    let mut filter = claim.take_filter();
    let mut took_over = None;
    let mut refused = None;
    for _ in 0..ATTEMPTS {
        match history.write_lease(&filter, &claim.update()).await? {
            LeaseWrite::Written => return Ok(LeaseState::Taken { took_over }),
            LeaseWrite::Refused(error) => refused = Some(error),
        }
        let found = history.read_lease(&doc! { "_id": LEASE_ID }).await?;
        (filter, took_over) = match found.as_ref().map(|document| (document, judge(document, claim.now_ms))) {
            // Released or run out between the two calls: the plain take once more.
            None | Some((_, Judged::RanOut)) => (claim.take_filter(), None),
            Some((_, Judged::Live { holder, token, .. }))
                if holder == claim.holder && token.as_deref() == Some(claim.token.as_str()) =>
            {
                return Ok(LeaseState::Taken { took_over: None })
            }
            Some((_, Judged::Live { holder, until_ms, .. })) => return Ok(LeaseState::Held { holder, until_ms }),
            Some((document, Judged::Stale(why))) => (as_read(document), Some(why)),
        };
    }
    // A write refused while no lease stood in the way was refused for its own reason: that is the error (the
    // server's own message, not ours).
    Err(refused.unwrap_or_else(|| StoreError::query("the lease changed hands while it was being taken")))
}

/// Releases the lease if `claim`'s run still holds it.
pub async fn release(history: &dyn RunHistory, claim: &Claim) -> Result<(), StoreError> {
    history.release_lease(&claim.own_filter()).await
}

/// The lease as `status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaseView {
    /// Its holder (printable), or null when it is stale for its holder.
    pub holder: Option<String>,
    /// When it runs out, when it has a Date `until`.
    pub until: Option<String>,
    /// Why no real run could have written it: the next run takes it over.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stale: Option<String>,
}

/// Reads the lease for `status`: `None` when there is none or it ran out.
pub async fn inspect(history: &dyn RunHistory, now: DateTime<Utc>) -> Result<Option<LeaseView>, StoreError> {
    let Some(document) = history.read_lease(&doc! { "_id": LEASE_ID }).await? else { return Ok(None) };
    let until = match document.get("until") {
        Some(Bson::DateTime(until)) => Some(shown(until.timestamp_millis())),
        _ => None,
    };
    Ok(match judge(&document, now.timestamp_millis()) {
        Judged::RanOut => None,
        Judged::Live { holder, .. } => Some(LeaseView { holder: Some(holder), until, stale: None }),
        Judged::Stale(why) => {
            let holder = document.get_str("holder").ok().filter(|h| is_request_id(h)).map(str::to_string);
            Some(LeaseView { holder, until, stale: Some(why) })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Bson {
        Bson::DateTime(mongodb::bson::DateTime::from_millis(ms))
    }

    #[test]
    fn the_lease_outlasts_the_longest_run_by_the_slack() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let claim = Claim::new("r1", Duration::from_secs(60), now);
        assert_eq!(claim.holder, "r1");
        assert_eq!(claim.now_ms, 1_700_000_000_000);
        assert_eq!(claim.until_ms - claim.now_ms, (60 + 5 + 30) * 1000);
        assert_ne!(claim.token, Claim::new("r1", Duration::from_secs(60), now).token, "a reused id is another run");
        assert_eq!(longest(), Duration::from_secs(900 + 5 + 30 + 30));
    }

    #[test]
    fn live_run_out_and_stale_leases() {
        let now = 1_000_000_000;
        let live = doc! { "_id": LEASE_ID, "holder": "other", "token": "t", "until": at(now + 1) };
        assert_eq!(
            judge(&live, now),
            Judged::Live { holder: "other".into(), token: Some("t".into()), until_ms: now + 1 }
        );
        let out = doc! { "_id": LEASE_ID, "holder": "other", "until": at(now - 1) };
        assert_eq!(judge(&out, now), Judged::RanOut);
        let longest = i64::try_from(longest().as_millis()).unwrap();
        let edge = doc! { "_id": LEASE_ID, "holder": "other", "until": at(now + longest) };
        assert!(matches!(judge(&edge, now), Judged::Live { .. }));
        for stale in [
            doc! { "_id": LEASE_ID, "holder": "attacker", "until": at(now + longest + 1) },
            doc! { "_id": LEASE_ID, "holder": "attacker", "until": "9999-01-01" },
            doc! { "_id": LEASE_ID, "holder": "attacker" },
            doc! { "_id": LEASE_ID, "holder": 5, "until": at(now + 1) },
            doc! { "_id": LEASE_ID, "until": at(now + 1) },
            doc! { "_id": LEASE_ID, "holder": "evil\u{1b}[31m\n2026 INFO sweep finished", "until": at(now + 1) },
        ] {
            let Judged::Stale(why) = judge(&stale, now) else { panic!("not stale: {stale}") };
            assert!(!why.chars().any(|c| c.is_control()), "{why:?}");
        }
    }

    #[test]
    fn a_take_over_matches_only_what_was_read() {
        let read = doc! { "_id": LEASE_ID, "holder": { "$gt": "" }, "until": "x" };
        assert_eq!(
            as_read(&read),
            doc! { "_id": LEASE_ID, "holder": { "$eq": { "$gt": "" } }, "token": { "$eq": Bson::Null },
            "until": { "$eq": "x" } }
        );
    }
}
