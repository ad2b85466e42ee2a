//! `auth-api` against its floors, in one run. Run it with `scripts/bench auth` (it starts the test database and a
//! Redis unless `MONGODB_TEST_URI` / `REDIS_TEST_URL` are set and passes the arguments here):
//!
//!   scripts/bench auth [--entries 100000] [--requests 2000] [--out BENCHMARKS.md]
//!
//! With a blacklist of `--entries` revoked tokens (indexed on `jti`, as the API makes it), it measures, each
//! against what it cannot beat:
//! 1. the revocation lookup floor: the driver's `find_one({jti})` (`_id` only), sequential, then 16 at a time;
//! 2. `GET /protected` over HTTP (keep-alive), sequential and 16 at a time, in-memory rate limits (a generous
//!    limit: counted, never refused): with the revocation set (the default), with the lookup per request
//!    (`REVOCATION_CACHE=false`), and with the counters in Redis; against the floors of a check without any
//!    revocation lookup: `GET /health` (the HTTP stack) and the token's HMAC verification in-process; the
//!    database's query count during the set's requests (`serverStatus.opcounters`);
//! 3. the blacklist write floor (the driver's upsert of a random jti) against `POST /logout`, interleaved;
//! 4. one argon2id verification (the floor of a login) against `POST /login`, sequential and 4 at a time.
//!
//! 5. propagation: a logout on instance A, then instance B polled every 2 ms until it refuses the token, for
//!    `--requests / 10` logouts (at least 200);
//! 6. the set's memory: bytes per entry at `--entries` UUID entries, measured as the process's resident growth,
//!    against the same entries kept as `String` keys.
//!
//! Each route runs interleaved with its floor (rounds of 100 calls, 4 for logins), so both meet the same state.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auth_api::config::AuthSettings;
use auth_api::server::Application;
use auth_api::tokens::{TokenKeys, TokenKind};
use auth_api::users::{verify_password, UserStore, Username};
use chrono::Utc;
use futures_util::future::BoxFuture;
use jtc_shared::Secret;
use mongodb::bson::{doc, DateTime, Document};
use mongodb::Client;
use serde_json::json;

const SECRET: &str = "bench-only-secret-0123456789abcdef0123456789";
const PASSWORD: &str = "a long bench pass phrase";

/// `scripts/bench auth [--entries N] [--requests N]`.
#[derive(clap::Parser)]
struct Args {
    /// Revocations seeded.
    #[arg(long, default_value_t = 100_000)]
    entries: u64,
    /// Requests per measurement.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Only the revocation set's memory.
    #[arg(long)]
    set_memory_only: bool,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn args() -> Args {
    jtc_test_support::bench_args()
}

/// Latencies of one measurement.
struct Sample {
    name: String,
    latencies: Vec<Duration>,
    wall: Duration,
    concurrency: usize,
}

impl Sample {
    fn percentile(&self, p: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
    }

    fn per_second(&self) -> f64 {
        self.latencies.len() as f64 / self.wall.as_secs_f64()
    }
}

/// One operation to time; `i` numbers the calls from 0.
type Op = Arc<dyn Fn(usize) -> BoxFuture<'static, ()> + Send + Sync>;

fn op<F, Fut>(f: F) -> Op
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    Arc::new(move |i| Box::pin(f(i)))
}

/// Runs `op(i)` for i in `range`, `concurrency` at a time, timing each call; returns the latencies and the wall time.
async fn run(op: &Op, range: std::ops::Range<usize>, concurrency: usize) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let workers = (0..concurrency).map(|w| {
        let op = op.clone();
        let range = range.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in (range.start + w..range.end).step_by(concurrency) {
                let t = Instant::now();
                op(i).await;
                latencies.push(t.elapsed());
            }
            latencies
        })
    });
    let mut latencies = Vec::with_capacity(range.len());
    for worker in futures_util::future::join_all(workers).await {
        latencies.extend(worker.expect("worker"));
    }
    (latencies, started.elapsed())
}

/// Runs each of `ops` `n` times, `concurrency` at a time, interleaved in rounds of `round` calls per op, so that all
/// of them meet the same server and machine state (cache, index size, background work): a floor and the route
/// measured against it are compared on equal terms.
async fn interleaved(n: usize, concurrency: usize, round: usize, ops: &[(&str, Op)]) -> Vec<Sample> {
    let mut samples: Vec<Sample> = ops
        .iter()
        .map(|(name, _)| Sample { name: name.to_string(), latencies: vec![], wall: Duration::ZERO, concurrency })
        .collect();
    for start in (0..n).step_by(round) {
        for ((_, op), sample) in ops.iter().zip(samples.iter_mut()) {
            let (latencies, wall) = run(op, start..(start + round).min(n), concurrency).await;
            sample.latencies.extend(latencies);
            sample.wall += wall;
        }
    }
    samples
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = args();
    if args.set_memory_only {
        println!("{}", set_memory(args.entries));
        return;
    }
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench auth sets it)");
    let redis = std::env::var("REDIS_TEST_URL").ok();
    let client = Client::with_uri_str(&uri).await.expect("database");
    let db_name = format!("auth_bench_{}", &mongodb::bson::oid::ObjectId::new().to_hex()[12..]);
    let database = client.database(&db_name);
    let blacklist = database.collection::<Document>("jwt_blacklist");

    eprintln!("auth bench: seeding {} revoked entries", args.entries);
    let far = DateTime::from_millis(Utc::now().timestamp_millis() + 86_400_000);
    let mut next = 0;
    while next < args.entries {
        let end = (next + 10_000).min(args.entries);
        let docs: Vec<Document> = (next..end)
            .map(|i| doc! { "jti": seed_jti(i), "expires_at": far, "type": "access", "user": "seed", "created_at": DateTime::now() })
            .collect();
        blacklist.insert_many(docs).await.expect("seed");
        next = end;
    }

    let env = |extra: &[(&str, &str)]| {
        let mut vars: Vec<(String, String)> = [
            ("DB_URI", uri.as_str()),
            ("DB_NAME", db_name.as_str()),
            ("JWT_SECRET_KEY", SECRET),
            ("PORT", "0"),
            ("RATE_LIMIT_LOGIN", "1000000/minute"),
            ("RATE_LIMIT_PROTECTED", "1000000/minute"),
            ("RATE_LIMIT_LOGOUT", "1000000/minute"),
            ("RATE_LIMIT_REFRESH", "1000000/minute"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        vars.reverse(); // extra wins
        AuthSettings::from_lookup(|k| vars.iter().find(|(name, _)| name == k).map(|(_, v)| v.clone()))
            .expect("settings")
    };
    let settings = env(&[]);
    let users = UserStore::new(database.collection("users"), std::time::Duration::ZERO).await.expect("users");
    users.ensure_indexes().await.expect("index");
    users.add(&Username::parse("bench").expect("name"), Secret::new(PASSWORD), false, 1).await.expect("user");

    let loads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let spawn = |settings: AuthSettings| {
        let loads = Arc::clone(&loads);
        async move {
            let started = Instant::now();
            let app = Application::build(&settings).await.expect("build");
            let address = format!("http://127.0.0.1:{}", app.port());
            tokio::spawn(app.run_until_stopped(std::future::pending()));
            // Measured only once the revocation set is loaded (the server may start before, on lookups).
            if settings.revocation_cache.enabled {
                loop {
                    let health: serde_json::Value =
                        reqwest::get(format!("{address}/health")).await.expect("health").json().await.expect("json");
                    if health["revocations"]["mode"] != "loading" {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                loads.lock().expect("loads").push(started.elapsed());
            }
            address
        }
    };
    let address = spawn(settings.clone()).await;
    let keys = Arc::new(TokenKeys::new(&settings.jwt));
    let http = reqwest::Client::new();
    let n = args.requests;
    let mut samples = Vec::new();

    // 1 and 2: lookups, against the API with in-memory counters and (when given) with counters in Redis.
    let redis_address = match &redis {
        Some(redis) => {
            let prefix = format!("auth-bench-{}", uuid::Uuid::new_v4());
            // Without the set: what Redis adds to the lookup per request (and one load of the set fewer).
            Some(
                spawn(env(&[("REDIS_URL", redis), ("RATE_LIMIT_KEY_PREFIX", &prefix), ("REVOCATION_CACHE", "false")]))
                    .await,
            )
        }
        None => None,
    };
    let (access, _) = keys.issue("bench", TokenKind::Access, true).expect("token");
    let protected = |address: &str| {
        let (http, url, access) = (http.clone(), format!("{address}/protected"), access.clone());
        op(move |_| {
            let request = http.get(&url).bearer_auth(&access);
            async move {
                let response = request.send().await.expect("protected");
                assert_eq!(response.status(), 200);
                response.bytes().await.expect("body");
            }
        })
    };
    let coll = blacklist.clone();
    let entries = args.entries.max(1);
    let lookup = op(move |i| {
        let coll = coll.clone();
        async move {
            let jti = seed_jti((i as u64 * 7919) % entries);
            let found = coll.find_one(doc! { "jti": jti }).projection(doc! { "_id": 1 }).await.expect("find");
            assert!(found.is_some());
        }
    });
    let plain_address = spawn(env(&[("REVOCATION_CACHE", "false")])).await;
    let (h, url) = (http.clone(), format!("{address}/health"));
    let health = op(move |_| {
        let request = h.get(&url);
        async move {
            let response = request.send().await.expect("health");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body");
        }
    });
    let (verify_keys, verify_token) = (Arc::clone(&keys), access.clone());
    let hmac = op(move |_| {
        let (keys, token) = (Arc::clone(&verify_keys), verify_token.clone());
        async move {
            keys.verify(&token, TokenKind::Access).expect("verify");
        }
    });
    let mut queries_with_set = Vec::new();
    for concurrency in [1, 16] {
        let mut ops = vec![
            ("(1) find_one({jti}) through the driver", lookup.clone()),
            ("(2) GET /protected, revocation set in memory", protected(&address)),
            ("(2) GET /protected, lookup per request (REVOCATION_CACHE=false)", protected(&plain_address)),
            ("(2f) GET /health: the HTTP stack, no token", health.clone()),
            ("(2f) TokenKeys::verify in-process: the HMAC", hmac.clone()),
        ];
        if let Some(redis_address) = &redis_address {
            ops.push(("(2) GET /protected, Redis rate limit, lookup per request", protected(redis_address)));
        }
        samples.extend(interleaved(n, concurrency, 100, &ops).await);
        // The set's requests alone, counted at the server: no query is the claim.
        let before = query_count(&client).await;
        run(&protected(&address), 0..n, concurrency).await;
        queries_with_set.push((concurrency, query_count(&client).await - before));
    }

    // 5: propagation, instance A to instance B.
    let a_address = address.clone();
    let b_address = spawn(env(&[])).await;
    let logouts = (n / 10).max(200);
    let mut propagation = Vec::with_capacity(logouts);
    for _ in 0..logouts {
        let (token, _) = keys.issue("bench", TokenKind::Access, true).expect("token");
        let response = http.post(format!("{a_address}/logout")).bearer_auth(&token).send().await.expect("logout");
        assert_eq!(response.status(), 200);
        let revoked_at = Instant::now();
        loop {
            let status =
                http.get(format!("{b_address}/protected")).bearer_auth(&token).send().await.expect("b").status();
            if status == 401 {
                break;
            }
            assert!(revoked_at.elapsed() < Duration::from_secs(30), "B never refused the token");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        propagation.push(revoked_at.elapsed());
    }
    samples.push(Sample {
        name: "(5) logout on A until B refuses the token".into(),
        wall: propagation.iter().sum(),
        latencies: propagation,
        concurrency: 1,
    });

    // 3: writes. Each logout needs a token of its own, made beforehand.
    let tokens: Arc<Vec<String>> =
        Arc::new((0..n).map(|_| keys.issue("bench", TokenKind::Access, true).expect("token").0).collect());
    let coll = blacklist.clone();
    let upsert = op(move |_| {
        let coll = coll.clone();
        async move {
            // Random ids, like real jtis: sequential keys would only ever touch the end of the index.
            let jti = uuid::Uuid::new_v4().to_string();
            let entry = doc! { "type": "access", "user": "bench", "expires_at": far, "created_at": DateTime::now() };
            coll.update_one(doc! { "jti": jti }, doc! { "$setOnInsert": entry }).upsert(true).await.expect("upsert");
        }
    });
    let (h, url) = (http.clone(), format!("{address}/logout"));
    let logout = op(move |i| {
        let request = h.post(&url).bearer_auth(&tokens[i]);
        async move {
            let response = request.send().await.expect("logout");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body");
        }
    });
    samples.extend(
        interleaved(n, 1, 100, &[("(3) upsert of one entry through the driver", upsert), ("(3) POST /logout", logout)])
            .await,
    );

    // 4: logins, dominated by argon2 on purpose; the floor is one verification, sequential.
    let logins = (n / 20).clamp(20, 200);
    let hash = users_hash(&database).await;
    // The server's default: argon2's memory kept between verifications.
    let memory = auth_api::password_memory::BlockPool::new(std::time::Duration::from_secs(1));
    let verify = op(move |_| {
        let (hash, memory) = (hash.clone(), std::sync::Arc::clone(&memory));
        async move { assert!(verify_password(memory, Secret::new(PASSWORD), hash).await) }
    });
    let (h, url) = (http.clone(), format!("{address}/login"));
    let login = op(move |_| {
        let request = h.post(&url).json(&json!({ "username": "bench", "password": PASSWORD }));
        async move {
            let response = request.send().await.expect("login");
            assert_eq!(response.status(), 200);
            response.bytes().await.expect("body");
        }
    });
    samples.extend(
        interleaved(logins, 1, 4, &[("(4) one argon2id verification", verify), ("(4) POST /login", login.clone())])
            .await,
    );
    samples.extend(interleaved(logins, 4, logins, &[("(4) POST /login", login)]).await);

    let memory = set_memory(args.entries);
    let mut report = report(&args, &samples, redis.is_some());
    for (concurrency, queries) in queries_with_set {
        let _ = writeln!(
            report,
            "\nDatabase queries during {n} `GET /protected` with the set, {concurrency} at a time: {queries} (serverStatus)."
        );
    }
    let _ = writeln!(report, "\n{memory}");
    let loads: Vec<String> = loads.lock().expect("loads").iter().map(|d| format!("{:.1} s", d.as_secs_f64())).collect();
    let _ = writeln!(
        report,
        "\nStart-up with the set, until it was loaded ({} entries): {}.",
        args.entries,
        loads.join(", ")
    );
    println!("{report}");
    if let Some(out) = &args.out {
        jtc_test_support::splice_report(out, "auth-bench", &report);
    }
    database.drop().await.expect("drop");
}

/// The jti of seed entry `i`: a UUID, as every real token's.
fn seed_jti(i: u64) -> String {
    uuid::Uuid::from_u128(u128::from(i) | (0x4000_8000u128 << 64)).to_string()
}

/// `opcounters.query` of the server.
async fn query_count(client: &Client) -> i64 {
    let status = client.database("admin").run_command(doc! { "serverStatus": 1 }).await.expect("serverStatus");
    let counters = status.get_document("opcounters").expect("opcounters");
    counters.get_i64("query").or_else(|_| counters.get_i32("query").map(i64::from)).expect("query")
}

/// Bytes per entry of the revocation set at `entries` UUID entries, as this process's resident growth (the set's
/// table is a mapping of its own, which an allocator's count would not see), beside the same entries with a
/// `String` key each.
fn set_memory(entries: u64) -> String {
    use auth_api::revocation_cache::set::{Entry, RevokedSet};
    let resident = || jtc_test_support::rss_bytes(std::process::id()).unwrap_or(0);
    let far = i64::MAX / 2;
    let before = resident();
    let mut set = RevokedSet::default();
    for i in 0..entries {
        set.insert(Entry::Token { jti: seed_jti(i), expires_ms: far }, 0);
    }
    let compact = resident().saturating_sub(before);
    drop(set);
    let before = resident();
    let strings: std::collections::HashMap<String, i64> = (0..entries).map(|i| (seed_jti(i), far)).collect();
    let plain = resident().saturating_sub(before);
    drop(strings);
    let per = |bytes: u64| bytes as f64 / entries.max(1) as f64;
    format!(
        "Revocation set at {entries} UUID entries: {:.0} resident bytes per entry, against {:.0} with a `String` key \
         per entry.",
        per(compact),
        per(plain)
    )
}

async fn users_hash(database: &mongodb::Database) -> String {
    let user = database.collection::<Document>("users").find_one(doc! { "username": "bench" }).await.expect("find");
    user.and_then(|u| u.get_str("password_hash").ok().map(str::to_string)).expect("hash")
}

fn report(args: &Args, samples: &[Sample], with_redis: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Command: `scripts/bench auth --entries {} --requests {}`\n", args.entries, args.requests);
    let _ = writeln!(
        out,
        "Machine: {} cores; {} revoked entries in the blacklist, indexed on `jti`; Redis: {}; measured {} UTC.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        args.entries,
        if with_redis { "yes" } else { "not given" },
        Utc::now().format("%Y-%m-%d %H:%M")
    );
    let _ =
        writeln!(out, "| measurement | at once | requests | p50 | p99 | mean | per second | p50 ratio to its floor |");
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    for s in samples {
        let floor = floor_of(s, samples);
        let ratio = floor.map(|f| format!("{:.2}x", s.percentile(0.5).as_secs_f64() / f.as_secs_f64()));
        let mean = s.latencies.iter().sum::<Duration>() / s.latencies.len().max(1) as u32;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0} | {} |",
            s.name,
            s.concurrency,
            s.latencies.len(),
            ms(s.percentile(0.5)),
            ms(s.percentile(0.99)),
            ms(mean),
            s.per_second(),
            ratio.unwrap_or_else(|| "(floor)".into())
        );
    }
    out
}

/// The floor a measurement is compared with: the driver-level sample of its group at the same concurrency (the
/// sequential one for logins, whose floor is one verification).
fn floor_of(s: &Sample, samples: &[Sample]) -> Option<Duration> {
    let (group, floor_name) = match s.name.get(..3)? {
        "(2)" if s.name.contains("revocation set") => ("(2f) GET /health", None),
        "(2)" => ("(1)", None),
        "(3)" if s.name.contains("/logout") => ("(3)", Some("upsert")),
        "(4)" if s.name.contains("/login") => ("(4)", Some("argon2id")),
        _ => return None,
    };
    samples
        .iter()
        .find(|f| {
            f.name.starts_with(group)
                && floor_name.is_none_or(|n| f.name.contains(n))
                && (floor_name.is_some() || f.concurrency == s.concurrency)
        })
        .map(|f| f.percentile(0.5))
}
