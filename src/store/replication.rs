//! The replication lag, as a backend reads it: the worst healthy secondary's distance behind the primary, from
//! `replSetGetStatus` (see `sweep::replication` for what the sweep does with it). The sweep sees a lag, never the
//! admin command's reply.
//!
//! The lag of a member is the primary's `optimeDate` less its own. Only healthy secondaries count: an arbiter holds
//! no data, and a member that is down would hold every run forever.

use std::time::Duration;

use mongodb::bson::{Bson, Document};

/// What a backend can say of the replicas' lag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplicationLag {
    /// This backend cannot read it (the Data API has no admin commands).
    Unavailable,
    /// The reply could not be read: why.
    Unreadable(String),
    /// How far the worst healthy secondary is behind the primary; `None` when there is no secondary to wait for.
    Worst(Option<Duration>),
}

impl ReplicationLag {
    /// The lag a `replSetGetStatus` reply shows.
    pub fn of_status(status: &Document) -> Self {
        match worst_lag(status) {
            Ok(lag) => ReplicationLag::Worst(lag),
            Err(why) => ReplicationLag::Unreadable(why),
        }
    }
}

/// `SECONDARY` in `replSetGetStatus.members[].state`.
const SECONDARY: i32 = 2;
/// `PRIMARY`.
const PRIMARY: i32 = 1;

/// How far the worst healthy secondary is behind the primary, by `status` (a `replSetGetStatus` reply); `None`
/// when there is no secondary to wait for. An error says what in the reply could not be read.
fn worst_lag(status: &Document) -> Result<Option<Duration>, String> {
    let members = status.get_array("members").map_err(|_| "replSetGetStatus has no members".to_string())?;
    let members: Vec<&Document> = members.iter().filter_map(Bson::as_document).collect();
    let state = |m: &Document| match m.get("state") {
        Some(Bson::Int32(s)) => Some(*s),
        Some(Bson::Int64(s)) => i32::try_from(*s).ok(),
        _ => None,
    };
    let healthy = |m: &Document| match m.get("health") {
        Some(Bson::Double(h)) => *h > 0.0,
        Some(Bson::Int32(h)) => *h > 0,
        Some(Bson::Int64(h)) => *h > 0,
        _ => false,
    };
    let optime = |m: &Document| m.get_datetime("optimeDate").map(|d| d.timestamp_millis());
    let Some(primary) = members.iter().find(|m| state(m) == Some(PRIMARY)) else {
        return Err("replSetGetStatus shows no primary".to_string());
    };
    let primary_ms = optime(primary).map_err(|_| "the primary has no optimeDate".to_string())?;
    let mut worst: Option<Duration> = None;
    for member in members.iter().filter(|m| state(m) == Some(SECONDARY) && healthy(m)) {
        let ms = optime(member).map_err(|_| "a secondary has no optimeDate".to_string())?;
        let lag = Duration::from_millis(u64::try_from(primary_ms.saturating_sub(ms)).unwrap_or(0));
        worst = Some(worst.map_or(lag, |w| w.max(lag)));
    }
    Ok(worst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `replSetGetStatus` reply captured from the test server (2026-12-03): one member, the primary.
    const CAPTURED: &str = include_str!("../../tests/fixtures/repl_set_get_status.json");
    /// The same reply edited to show lag: secondaries 3 s and 12 s behind, an arbiter an hour behind, and an
    /// unreachable member two hours behind.
    const LAGGING: &str = include_str!("../../tests/fixtures/repl_set_get_status_lagging.json");

    fn parse(text: &str) -> Document {
        let value: serde_json::Value = serde_json::from_str(text).expect("JSON");
        match Bson::try_from(value).expect("Extended JSON") {
            Bson::Document(document) => document,
            other => panic!("not a document: {other}"),
        }
    }

    #[test]
    fn a_one_member_set_has_no_lag_to_wait_for() {
        assert_eq!(worst_lag(&parse(CAPTURED)), Ok(None));
    }

    #[test]
    fn the_worst_healthy_secondary_is_the_lag() {
        assert_eq!(worst_lag(&parse(LAGGING)), Ok(Some(Duration::from_secs(12))), "not the arbiter, not the dead one");
    }

    #[test]
    fn a_reply_without_members_or_primary_says_so() {
        assert!(worst_lag(&mongodb::bson::doc! { "ok": 1 }).unwrap_err().contains("no members"));
        let mut no_primary = parse(LAGGING);
        no_primary.insert("members", Bson::Array(Vec::new()));
        assert!(worst_lag(&no_primary).unwrap_err().contains("no primary"));
    }
}
