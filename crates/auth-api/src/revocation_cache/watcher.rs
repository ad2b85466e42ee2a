//! Keeping the set current: load it, then follow a change stream on the blacklist; where change streams are
//! unavailable (a standalone server), poll by write time instead.
//!
//! - **Load**: every unexpired entry, through the expiry index (a Date lane and a numeric lane), plus the few
//!   entries whose expiry is neither (kept: they revoke for as long as they exist). The change stream is opened
//!   before the load, so nothing written meanwhile is missed (an entry seen twice is harmless).
//! - **Change stream**: inserts, updates and replaces carry the whole entry (`fullDocument: updateLookup`); a
//!   delete names only the `_id`, which is the jti in every entry auth-api writes, so it leaves the set too. The
//!   getMore waits at most a quarter of the staleness bound, so an idle stream still proves itself well within it.
//!   Proof: an empty batch (on the test server its resume token does not advance, so the arrival of the answer is
//!   what counts), and a batch shorter than `BATCH_SIZE` once all of it is applied: it held everything the server
//!   had, so the set is current as of its getMore. Before the latter, a stream busy with the cleaner's deletes was
//!   never proven, and `/health` said `degraded` in 18 of 52 samples while the cleaner deleted 20,000 entries. After an error the stream resumes from the last resume token; when that fails
//!   (the token fell out of the oplog: `ChangeStreamHistoryLost`, or anything else) the set is loaded anew.
//! - **Polling**: every `REVOCATION_POLL_MS`, the entries new since the last poll, found by a stamp the poller
//!   itself writes with the database's clock (`poll`); each completed poll is proof, and the set is loaded anew
//!   every `RECONCILE_EVERY`.
//! - Every `REVOCATION_EVICT_SECONDS` (30), expired entries leave the set.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::change_stream::event::{ChangeStreamEvent, OperationType, ResumeToken};
use mongodb::change_stream::ChangeStream;
use mongodb::error::{Error as MongoError, ErrorKind};
use mongodb::options::FullDocumentType;
use mongodb::{Collection, IndexModel};

use super::set::{Entry, RevokedSet};
use super::{CacheSettings, Mode, RevocationCache};
use jtc_shared::blacklist::SEEN_FIELD;
use jtc_shared::names::FieldPath;

/// How far back a poll looks beyond the latest stamp it saw, for stamps written while it read.
const POLL_OVERLAP_MS: i64 = 5_000;
/// How often polling mode loads the whole set anew.
const RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// The most events a change-stream batch holds (a batch shorter than this is all the server had).
const BATCH_SIZE: u32 = 1000;
/// The pause before trying again after an error.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// `The $changeStream stage is only supported on replica sets` (40573), and servers that do not know the stage.
const NO_CHANGE_STREAMS: [i32; 3] = [40573, 40324, 115];

/// Follows `blacklist` into `cache` for ever (spawn it).
pub async fn run(
    cache: Arc<RevocationCache>,
    blacklist: Collection<Document>,
    field: FieldPath,
    settings: CacheSettings,
) {
    let await_time = (settings.max_staleness / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut resume: Option<ResumeToken> = None;
    loop {
        match follow(&cache, &blacklist, &field, await_time, settings.evict, &mut resume).await {
            Err(e) if is_no_change_streams(&e) => {
                tracing::info!("change streams are unavailable here ({e}); polling the blacklist instead");
                poll(&cache, &blacklist, &field, settings.poll, settings.evict).await;
            }
            Err(e) => {
                tracing::warn!(error = %jtc_shared::redact::scrub_registered(&e.to_string()), "revocation watcher: retrying");
                tokio::time::sleep(RETRY_AFTER).await;
            }
            Ok(()) => tokio::time::sleep(RETRY_AFTER).await,
        }
    }
}

fn is_no_change_streams(e: &MongoError) -> bool {
    matches!(&*e.kind, ErrorKind::Command(c) if NO_CHANGE_STREAMS.contains(&c.code))
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

use super::mono_ms;

/// Opens the stream (resuming from `resume` when there is one, loading the set anew when there is not) and
/// follows it until an error.
async fn follow(
    cache: &RevocationCache,
    blacklist: &Collection<Document>,
    field: &FieldPath,
    await_time: Duration,
    evict_every: Duration,
    resume: &mut Option<ResumeToken>,
) -> Result<(), MongoError> {
    let mut stream = open(cache, blacklist, field, await_time, resume.take()).await?;
    let mut evicted_at = Instant::now();
    // The batch being applied: when its getMore was sent, and how many of its events came out so far.
    let mut batch: Option<(i64, u32)> = None;
    loop {
        let sent = mono_ms();
        // Whether this call went to the server: the driver answers from the batch it holds at once, and only a
        // getMore waits (the first poll of the call is then pending).
        let mut asked = None;
        let next = {
            let mut call = std::pin::pin!(stream.next_if_any());
            std::future::poll_fn(|cx| {
                let polled = call.as_mut().poll(cx);
                asked.get_or_insert(polled.is_pending());
                polled
            })
            .await
        };
        if let Some(token) = stream.resume_token() {
            *resume = Some(token);
        }
        let next = next?;
        if asked == Some(true) {
            // A getMore: the batch before it is applied whole. A batch shorter than BATCH_SIZE held everything
            // the server had when it answered, so the set is proven as of that batch's getMore.
            if let Some((batch_sent, events)) = batch.take() {
                if events < BATCH_SIZE {
                    cache.proved(batch_sent);
                }
            }
            if next.is_some() {
                batch = Some((sent, 0));
            }
        }
        match next {
            Some(event) => {
                if let Some((_, events)) = &mut batch {
                    *events += 1;
                }
                if !apply(cache, event, field) {
                    *resume = None;
                    return Ok(());
                }
            }
            // An empty batch proves the set as of its getMore; one the driver held already proves nothing new.
            None if asked == Some(true) => cache.proved(sent),
            None => {}
        }
        if evicted_at.elapsed() >= evict_every {
            cache.evict_expired();
            evicted_at = Instant::now();
        }
    }
}

/// The change stream, resumed after `resume` when it still can be; otherwise opened now and the set loaded whole
/// (after the stream is open, so that nothing written between the two is missed).
async fn open(
    cache: &RevocationCache,
    blacklist: &Collection<Document>,
    field: &FieldPath,
    await_time: Duration,
    resume: Option<ResumeToken>,
) -> Result<ChangeStream<ChangeStreamEvent<Document>>, MongoError> {
    let watch = |token: Option<ResumeToken>| {
        let mut watch = blacklist
            .watch()
            .full_document(FullDocumentType::UpdateLookup)
            .max_await_time(await_time)
            .batch_size(BATCH_SIZE);
        if let Some(token) = token {
            watch = watch.start_after(token);
        }
        watch
    };
    if let Some(token) = resume {
        match watch(Some(token)).await {
            Ok(stream) => return Ok(stream),
            Err(e) => tracing::warn!(error = %e, "revocation watcher: cannot resume the change stream; loading anew"),
        }
    }
    let stream = watch(None).await?;
    load(cache, blacklist, field, Mode::ChangeStream, mono_ms()).await?;
    Ok(stream)
}

/// Applies one event; false when the set must be loaded anew (the collection was dropped or renamed).
fn apply(cache: &RevocationCache, event: ChangeStreamEvent<Document>, field: &FieldPath) -> bool {
    match event.operation_type {
        OperationType::Insert | OperationType::Update | OperationType::Replace => {
            if let Some(document) = event.full_document {
                learn(cache, &document, field);
            }
            true
        }
        // Only the `_id` is known: the entries auth-api writes have their jti as `_id`; others (an ObjectId) stay
        // until they expire (see the module doc of the cache).
        OperationType::Delete => {
            if let Some(mongodb::bson::Bson::String(jti)) = event.document_key.as_ref().and_then(|key| key.get("_id")) {
                cache.remove(jti);
            }
            true
        }
        OperationType::Drop | OperationType::Rename | OperationType::DropDatabase | OperationType::Invalidate => false,
        _ => true,
    }
}

/// Adds the entry `document` holds; a malformed one is skipped and logged, never fatal.
fn learn(cache: &RevocationCache, document: &Document, field: &FieldPath) {
    match Entry::from_document(document, field) {
        Ok(entry) => cache.insert(entry),
        Err(why) => tracing::warn!(%why, id = ?document.get("_id"), "skipped a malformed blacklist entry"),
    }
}

/// Loads every unexpired entry (see the module doc) and replaces the set, proven current as of `proof`
/// ([`mono_ms`], taken before anything the load relies on was sent).
async fn load(
    cache: &RevocationCache,
    blacklist: &Collection<Document>,
    field: &FieldPath,
    mode: Mode,
    proof: i64,
) -> Result<(), MongoError> {
    let started = now_ms();
    let now = DateTime::from_millis(started);
    let field = &**field;
    let filters = [
        doc! { field: { "$gt": now } },
        doc! { field: { "$gt": started / 1000 } },
        doc! { field: { "$not": { "$type": ["date", "number"] } } },
    ];
    let mut set = RevokedSet::default();
    let mut skipped = 0u64;
    for filter in filters {
        let mut cursor =
            blacklist.find(filter).projection(doc! { "_id": 0, "jti": 1, "revoked_before": 1, field: 1 }).await?;
        while let Some(document) = cursor.try_next().await? {
            match Entry::from_document(&document, field) {
                Ok(entry) => set.insert(entry, started),
                Err(why) => {
                    skipped += 1;
                    tracing::debug!(%why, "skipped a malformed blacklist entry");
                }
            }
        }
    }
    if skipped > 0 {
        tracing::warn!(skipped, "skipped malformed blacklist entries (no jti, or not a string)");
    }
    tracing::info!(entries = set.len(), took_ms = now_ms() - started, mode = ?mode, "revocations loaded");
    cache.replace(set, proof, mode);
    give_back_freed_memory();
    Ok(())
}

/// The load's buffers (the driver's batches, the documents read) are freed by now, but glibc keeps freed blocks in
/// its arenas, where they stayed as a fifth again of the set's own memory (BENCHMARKS.md, "auth-api end to end"):
/// they go back to the system.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system, and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Polls for ever (change streams are unavailable); errors are retried.
///
/// Each poll first stamps every entry without `SEEN_FIELD` with the database's clock (one `updateMany` through
/// the index on the stamp; it matches nothing when nothing was written), then reads the entries stamped since the
/// latest stamp it saw, less `POLL_OVERLAP_MS` for stamps still being written. So an entry is found whatever
/// fields its writer set and whatever the writer's clock said (entries without `created_at`, or from a clock a few
/// seconds behind, were once never learnt, and the revoked tokens were accepted). Every instance stamps; an
/// entry is stamped once, by whichever instance comes first, and every instance reads it by its stamp. Proof: a
/// poll proves the set current as of the moment its stamp was sent. Every `RECONCILE_EVERY`, the set is loaded
/// anew, for what stamps cannot show (an update by another writer to an entry already stamped, a server clock
/// stepped back).
async fn poll(
    cache: &RevocationCache,
    blacklist: &Collection<Document>,
    field: &FieldPath,
    every: Duration,
    evict_every: Duration,
) {
    let index = IndexModel::builder().keys(doc! { SEEN_FIELD: 1 }).build();
    if let Err(e) = blacklist.create_index(index).await {
        tracing::warn!(error = %e, "could not index the blacklist on {SEEN_FIELD}: polls will scan");
    }
    let mut since = None;
    let mut loaded_at = Instant::now();
    let mut evicted_at = Instant::now();
    let mut poll_now = false;
    loop {
        if !cache.is_loaded() || loaded_at.elapsed() >= RECONCILE_EVERY {
            match reload(cache, blacklist, field).await {
                Ok(latest) => {
                    since = latest.or(since);
                    loaded_at = Instant::now();
                }
                Err(e) => {
                    tracing::warn!(error = %e, "revocation watcher: load failed; retrying");
                    tokio::time::sleep(RETRY_AFTER).await;
                    continue;
                }
            }
        }
        if poll_now {
            tokio::time::sleep(every).await;
        }
        poll_now = true;
        let sent = super::mono_ms();
        match changed_since(blacklist, since).await {
            Ok((documents, server_now)) => {
                let mut future = 0u64;
                for document in &documents {
                    learn(cache, document, field);
                    if let Ok(stamped) = document.get_datetime(SEEN_FIELD) {
                        future += u64::from(*stamped > ahead(server_now));
                        since = Some(since.map_or(*stamped, |latest: DateTime| latest.max(*stamped)).min(server_now));
                    }
                }
                if future > 0 {
                    // No poller wrote these stamps (a copied entry, a foreign writer, a clock stepped back): they
                    // are stamped again with the database's clock, and the set is loaded anew at once.
                    match restamp_future(blacklist, server_now).await {
                        Ok(restamped) => tracing::warn!(
                            future,
                            restamped,
                            "revocation entries stamped in the future: stamped again with the database's clock; \
                             reloading the set"
                        ),
                        Err(e) => tracing::warn!(error = %e, future, "could not stamp future entries again"),
                    }
                    loaded_at = Instant::now().checked_sub(RECONCILE_EVERY).unwrap_or(loaded_at);
                }
                cache.proved(sent);
            }
            Err(e) => tracing::warn!(error = %e, "revocation poll failed; retrying"),
        }
        if evicted_at.elapsed() >= evict_every {
            cache.evict_expired();
            evicted_at = Instant::now();
        }
    }
}

/// Loads the set whole for polling; the latest stamp before the load. Stamped first, so that the latest stamp
/// afterwards marks everything the load is about to read.
async fn reload(
    cache: &RevocationCache,
    blacklist: &Collection<Document>,
    field: &FieldPath,
) -> Result<Option<DateTime>, MongoError> {
    let started = super::mono_ms();
    stamp(blacklist).await?;
    let latest = latest_stamp(blacklist).await?;
    load(cache, blacklist, field, Mode::Polling, started).await?;
    Ok(latest)
}

/// One poll: the entries stamped since `since` (every stamped one the first time), and the database's clock read
/// with it, which the poll never starts past (see `poll_from`).
async fn changed_since(
    blacklist: &Collection<Document>,
    since: Option<DateTime>,
) -> Result<(Vec<Document>, DateTime), MongoError> {
    stamp(blacklist).await?;
    let server_now = jtc_shared::mongo::server_time(blacklist.client()).await?;
    let filter = match since {
        Some(latest) => doc! { SEEN_FIELD: { "$gte": poll_from(latest, server_now) } },
        None => doc! { SEEN_FIELD: { "$type": "date" } },
    };
    let documents = blacklist.find(filter).await?.try_collect::<Vec<Document>>().await?;
    Ok((documents, server_now))
}

/// Where a poll starts: the latest stamp it saw, less [`POLL_OVERLAP_MS`], and never past the database's clock
/// `server_now` (less the overlap). One entry stamped a day ahead once moved the start a day ahead, and every
/// revocation stamped by the real clock waited for the next full load, while `/health` said fresh.
fn poll_from(latest: DateTime, server_now: DateTime) -> DateTime {
    DateTime::from_millis(latest.min(server_now).timestamp_millis() - POLL_OVERLAP_MS)
}

/// A stamp past this was written by no poller: `server_now` plus [`POLL_OVERLAP_MS`] (another instance may stamp
/// between this poll's clock read and its find).
fn ahead(server_now: DateTime) -> DateTime {
    DateTime::from_millis(server_now.timestamp_millis() + POLL_OVERLAP_MS)
}

/// Stamps again, with the database's clock, every entry stamped past [`ahead`]; returns how many.
async fn restamp_future(blacklist: &Collection<Document>, server_now: DateTime) -> Result<u64, MongoError> {
    let future = doc! { SEEN_FIELD: { "$gt": ahead(server_now) } };
    let updated = blacklist.update_many(future, doc! { "$currentDate": { SEEN_FIELD: true } }).await?;
    Ok(updated.modified_count)
}

/// Stamps every entry without `SEEN_FIELD` with the database's clock.
async fn stamp(blacklist: &Collection<Document>) -> Result<(), MongoError> {
    let unseen = doc! { SEEN_FIELD: { "$exists": false } };
    blacklist.update_many(unseen, doc! { "$currentDate": { SEEN_FIELD: true } }).await.map(|_| ())
}

/// The latest stamp in the blacklist, if any.
async fn latest_stamp(blacklist: &Collection<Document>) -> Result<Option<DateTime>, MongoError> {
    let latest = blacklist
        .find_one(doc! { SEEN_FIELD: { "$type": "date" } })
        .sort(doc! { SEEN_FIELD: -1 })
        .projection(doc! { SEEN_FIELD: 1 })
        .await?;
    Ok(latest.and_then(|document| document.get_datetime(SEEN_FIELD).ok().copied()))
}
