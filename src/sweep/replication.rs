//! Deletes that wait for the replicas: `CLEANUP_MAX_REPLICATION_LAG_SECONDS`.
//!
//! Production MongoDB is a replica set. A sweep that deletes as fast as the primary allows makes the secondaries
//! lag: reads from a secondary then see revoked tokens that are gone on the primary (or, worse for a blacklist,
//! miss revocations written since), and flow control then slows every writer (`flowControlTargetLagSeconds`, 10 s
//! by default). So, with a bound set, the sweep reads the members' optimes (`replSetGetStatus`) between batches, at
//! most once per [`CHECK_INTERVAL`], and while the worst secondary is further behind the primary than the bound it
//! pauses and checks again every [`CHECK_INTERVAL`] (pt-archiver's `--check-slave-lag`, `--max-lag` and
//! `--check-interval`). The pauses count against the time budget; a run that spends its budget waiting ends
//! partial, its warning naming the replication lag.
//!
//! The lag of a member is the primary's `optimeDate` less its own. Only healthy secondaries count: an arbiter holds
//! no data, and a member that is down would hold every run forever (the write concern, not the sweep, is what
//! waits for a majority). Where the command is refused (no `clusterMonitor` role, not a replica set, the Data API,
//! which has no admin commands), the run says so once and relies on `CLEANUP_WRITE_CONCERN`. The backend reads the
//! lag from its own admin answer (`store::replication`); the sweep only sees a lag.

use std::time::Duration;

/// How often the lag is read, and how long each pause lasts.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
