//! The revocation set's UUID tokens alone (`scripts/bench revocation-set`): resident bytes per entry, the peak
//! while it grows, lookups (hits and misses), and the rate at which new revocations are applied, at 100,000 to
//! 10,000,000 entries, for the table auth-api keeps (`revocation_cache::uuid_table`) and the `HashMap` it replaced.
//!
//! Each measurement is a child process of its own (this binary with `--one N --design D`), so that each starts
//! from the same resident memory and its peak (`VmHWM`) is its own. Bytes per entry: resident memory with the
//! entries loaded, less the memory before the first, divided by the entries. Peak: the high-water mark less the
//! same base, divided by the loaded memory less it. Lookups are timed 32 at a time (reading the clock here costs
//! more than a lookup), and their p50 and p99 are over those batches' means. The floor beside them: one read of
//! eight bytes at a random place in an array as large as the table, on huge pages as the table is.
//!
//! `--served N[,N...]`: auth-api end to end (the release binary, `AUTH_API_BIN`, and `--baseline-bin`, one built
//! before this table, when given): its resident memory serving an empty blacklist and with N UUID entries loaded
//! from the test server, and how long the load took.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use auth_api::revocation_cache::uuid_table::UuidTable;

/// `scripts/bench revocation-set [--entries N[,N...]]`.
#[derive(clap::Parser)]
struct Args {
    /// The sizes measured, in entries.
    #[arg(long = "entries", value_delimiter = ',', default_values_t = [100_000u64, 240_000, 1_000_000, 10_000_000])]
    sizes: Vec<u64>,
    /// Measure this many entries with `--design`, in this process, and print the result as JSON.
    #[arg(long)]
    one: Option<u64>,
    /// `table` (today's) or `hashmap` (the old `HashMap<[u64; 2], i64>`).
    #[arg(long, default_value = "table")]
    design: String,
    /// auth-api end to end at these sizes (instead of the set alone).
    #[arg(long, value_delimiter = ',')]
    served: Vec<u64>,
    /// An auth-api built before this table, measured beside it with `--served`.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// The `i`-th key: SplitMix64 twice, so that keys are spread like random UUIDs and any one can be made again.
fn key(i: u64) -> u128 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (u128::from(mix(i)) << 64) | u128::from(mix(i ^ 0xDEAD_BEEF_CAFE_F00D))
}

/// `VmRSS` and `VmHWM` of this process, in bytes.
fn memory() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name)).expect("a memory field");
        line.split_whitespace().nth(1).and_then(|kb| kb.parse::<u64>().ok()).expect("kB") * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

trait Design: Default {
    fn insert(&mut self, key: u128, expires_ms: i64);
    fn contains(&self, key: u128) -> bool;
    /// What it asked the allocator for, when it knows.
    fn allocated(&self) -> Option<usize> {
        None
    }
}

impl Design for UuidTable {
    fn insert(&mut self, key: u128, expires_ms: i64) {
        UuidTable::insert(self, key, expires_ms);
    }
    fn contains(&self, key: u128) -> bool {
        UuidTable::contains(self, key)
    }
    fn allocated(&self) -> Option<usize> {
        Some(self.allocated_bytes())
    }
}

/// The design before: two words of key and an `i64` expiry in a `HashMap`.
#[derive(Default)]
struct Old(HashMap<[u64; 2], i64>);

impl Design for Old {
    fn insert(&mut self, key: u128, expires_ms: i64) {
        self.0.insert([(key >> 64) as u64, key as u64], expires_ms);
    }
    fn contains(&self, key: u128) -> bool {
        self.0.contains_key(&[(key >> 64) as u64, key as u64])
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize].as_nanos() as f64
}

fn measure<D: Design>(n: u64) -> serde_json::Value {
    let far = 4_000_000_000_000i64;
    // Warm up first: the code's pages, faulted in by a first use, and the buffer that reads this process's status
    // would otherwise count as the set's (about 130 KB, 1.3 bytes an entry at 100,000).
    {
        let mut warm = D::default();
        (0..50_000).for_each(|i| warm.insert(key(u64::MAX - i), far));
        assert!(warm.contains(key(u64::MAX)));
    }
    let _ = memory();
    let (base, _) = memory();
    let mut set = D::default();
    // The longest insert is the longest the set is held by a writer: a growth, which moves every entry.
    let mut longest = Duration::ZERO;
    for i in 0..n {
        let at = Instant::now();
        set.insert(key(i), far);
        longest = longest.max(at.elapsed());
    }
    let allocated = set.allocated().map(|bytes| bytes as f64 / n as f64);
    let (_, peak) = memory();
    let (loaded, _) = memory();
    let lookups = 200_000u64;
    // Timed 32 lookups at a time (the clock costs more than a lookup on this machine): p50 and p99 over the
    // batches' means.
    let timed = |offset: u64| {
        let mut times: Vec<Duration> = (0..lookups / 32)
            .map(|batch| {
                let keys: Vec<u128> =
                    (0..32).map(|j| key(offset + ((batch * 32 + j).wrapping_mul(2_654_435_761) % n))).collect();
                let at = Instant::now();
                let found = keys.iter().filter(|&&k| set.contains(std::hint::black_box(k))).count();
                let took = at.elapsed() / 32;
                assert_eq!(found, if offset == 0 { 32 } else { 0 });
                took
            })
            .collect();
        times.sort_unstable();
        (percentile(&times, 0.5), percentile(&times, 0.99))
    };
    let (hit50, hit99) = timed(0);
    let (miss50, miss99) = timed(u64::MAX / 2);
    let applied = 100_000u64;
    let at = Instant::now();
    for i in 0..applied {
        set.insert(key(n + i), far);
    }
    let rate = applied as f64 / at.elapsed().as_secs_f64();
    let huge = std::fs::read_to_string("/proc/self/smaps_rollup").ok().and_then(|s| {
        let line = s.lines().find(|l| l.starts_with("AnonHugePages:"))?.to_owned();
        line.split_whitespace().nth(1)?.parse::<u64>().ok()
    });
    serde_json::json!({
        "bytes_per_entry": (loaded - base) as f64 / n as f64,
        "allocated_per_entry": allocated,
        "peak_ratio": (peak - base) as f64 / (loaded - base).max(1) as f64,
        "hit_p50_ns": hit50, "hit_p99_ns": hit99, "miss_p50_ns": miss50, "miss_p99_ns": miss99,
        "apply_per_s": rate,
        "huge_pages_kb": huge,
        "longest_insert_ms": longest.as_secs_f64() * 1000.0,
    })
}

/// Random 8-byte reads in an array of `bytes` on huge pages (as the table's), timed as the lookups are: the floor
/// under any lookup that reads memory once.
fn floor(bytes: usize) -> f64 {
    let words = bytes / 8;
    let mut array = vec![0u64; words];
    // SAFETY: advice on this vector's own pages, made before they are touched; a refusal changes nothing.
    unsafe { libc::madvise(array.as_mut_ptr().cast(), bytes & !((2 << 20) - 1), libc::MADV_HUGEPAGE) };
    array.iter_mut().enumerate().for_each(|(i, w)| *w = i as u64);
    // Each read's place depends on the value read before it, so that the reads wait for each other as a lookup's
    // reads do (32 independent reads overlap, and measure the memory's throughput instead).
    let mut times: Vec<Duration> = (0..200_000u64 / 32)
        .map(|batch| {
            let at: Vec<usize> = (0..32).map(|j| (key(batch * 32 + j) as usize) % words).collect();
            let started = Instant::now();
            let mut last = 0u64;
            for &i in &at {
                last = array[(i ^ (last as usize & 1)) % words];
            }
            std::hint::black_box(last);
            started.elapsed() / 32
        })
        .collect();
    times.sort_unstable();
    percentile(&times, 0.5)
}

fn child(n: u64, design: &str) -> serde_json::Value {
    let out = Command::new(std::env::current_exe().expect("this benchmark"))
        .args(["--one", &n.to_string(), "--design", design])
        .output()
        .expect("run the measurement");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("the measurement's JSON")
}

fn main() {
    let args: Args = jtc_test_support::bench_args();
    if let Some(n) = args.one {
        let result = match args.design.as_str() {
            "hashmap" => measure::<Old>(n),
            "floor" => serde_json::json!({ "floor_p50_ns": floor(n as usize * 22) }),
            _ => measure::<UuidTable>(n),
        };
        println!("{result}");
        return;
    }
    if !args.served.is_empty() {
        let runtime = tokio::runtime::Runtime::new().expect("a runtime");
        let report = runtime.block_on(served::measure(&args.served, args.baseline_bin.as_deref()));
        if let Some(out) = &args.out {
            jtc_test_support::splice_report(out, "revocation-served", &report);
        }
        println!("{report}");
        return;
    }
    let mut report = format!(
        "Command: `scripts/bench revocation-set --entries {}`; measured {} on {} cores.\n\n\
         | entries | design | bytes per entry | peak while growing | hit p50 / p99 | miss p50 / p99 | applied per second | longest insert |\n\
         |---|---|---|---|---|---|---|---|\n",
        args.sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    for &n in &args.sizes {
        for (design, name) in [("table", "ordered table (today)"), ("hashmap", "HashMap (before)")] {
            eprintln!("revocation-set: {n} entries, {name}");
            let r = child(n, design);
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                report,
                "| {n} | {name} | {:.1} | {:.2}x | {:.0} / {:.0} ns | {:.0} / {:.0} ns | {:.0} | {:.1} ms |",
                f("bytes_per_entry"),
                f("peak_ratio"),
                f("hit_p50_ns"),
                f("hit_p99_ns"),
                f("miss_p50_ns"),
                f("miss_p99_ns"),
                f("apply_per_s"),
                f("longest_insert_ms")
            );
        }
        let floor = child(n, "floor");
        let _ = writeln!(
            report,
            "| {n} | floor: one random read in as many bytes | | | {:.0} ns | | | |",
            floor["floor_p50_ns"].as_f64().unwrap_or(f64::NAN)
        );
    }
    if let Some(out) = &args.out {
        jtc_test_support::splice_report(out, "revocation-set", &report);
    }
    println!("{report}");
}

/// auth-api end to end, serving a blacklist of UUID entries from the test server.
mod served {
    use std::path::Path;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use jtc_test_support::{free_port, rss_bytes, stop, TestDb};
    use mongodb::bson::{doc, DateTime, Document};

    /// One server's figures: resident memory once healthy and loaded, and how long the load took.
    struct Served {
        rss: u64,
        load: Duration,
    }

    async fn seed(db: &TestDb, n: u64) {
        let far = DateTime::from_millis(chrono::Utc::now().timestamp_millis() + 86_400_000);
        let blacklist = db.client.database(&db.name).collection::<Document>("jwt_blacklist");
        let mut next = 0;
        while next < n {
            let end = (next + 10_000).min(n);
            let docs: Vec<Document> = (next..end)
                .map(|i| {
                    let jti = uuid::Uuid::from_u128(super::key(i)).to_string();
                    doc! { "_id": &jti, "jti": jti, "expires_at": far, "type": "access", "created_at": DateTime::now() }
                })
                .collect();
            blacklist.insert_many(docs).await.expect("seed");
            next = end;
        }
    }

    async fn serve(bin: &Path, db: &TestDb, n: u64) -> Served {
        let port = free_port();
        let started = Instant::now();
        let mut server = Command::new(bin)
            .arg("serve")
            .env("DB_URI", &db.uri)
            .env("DB_NAME", &db.name)
            .env("JWT_SECRET_KEY", "bench-only-secret-0123456789abcdef0123456789")
            .env("PORT", port.to_string())
            .env("RUST_LOG", "warn")
            .stderr(Stdio::null())
            .spawn()
            .expect("serve");
        // Not `wait_healthy`: a server loading a large blacklist from the test server answers later than it allows.
        let url = format!("http://127.0.0.1:{port}/health");
        let load = loop {
            let health = match reqwest::get(&url).await {
                Ok(answer) if answer.status() == 200 => answer.json::<serde_json::Value>().await.ok(),
                _ => None,
            };
            let revocations = health.as_ref().map(|h| &h["revocations"]);
            if revocations.is_some_and(|r| r["mode"] != "loading" && r["size"].as_u64() >= Some(n)) {
                break started.elapsed();
            }
            assert!(started.elapsed() < Duration::from_secs(1800), "not loaded in 30 minutes: {health:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let rss = rss_bytes(server.id()).expect("the server's resident memory");
        stop(&mut server, Duration::from_secs(10));
        Served { rss, load }
    }

    pub(super) async fn measure(sizes: &[u64], baseline: Option<&Path>) -> String {
        let today = std::env::var("AUTH_API_BIN").expect("AUTH_API_BIN (scripts/bench sets it)");
        let mut bins = vec![("ordered table (today)", std::path::PathBuf::from(today))];
        if let Some(baseline) = baseline {
            bins.push(("baseline (`--baseline-bin`)", baseline.to_path_buf()));
        }
        let empty = TestDb::new().await;
        let mut report = format!(
            "Command: `scripts/bench revocation-set --served {}`; measured {} on {} cores.\n\n\
             | entries | auth-api | resident, empty blacklist | resident, loaded (each round) | bytes per entry | load |\n\
             |---|---|---|---|---|---|\n",
            sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
        );
        for &n in sizes {
            let db = TestDb::new().await;
            eprintln!("revocation-set: seeding {n} entries");
            seed(&db, n).await;
            // The first load after the seeding took twice as long as the next, whichever binary ran it (the
            // server is still writing the entries out, and a read of them all through the driver did not absorb
            // it): one load first, not counted.
            serve(&bins[0].1, &db, n).await;
            // Two rounds, each binary first in one of them: the server is slower right after the seeding.
            let mut loaded: Vec<Vec<Served>> = bins.iter().map(|_| Vec::new()).collect();
            for round in 0..2 {
                for i in 0..bins.len() {
                    let i = if round % 2 == 0 { i } else { bins.len() - 1 - i };
                    eprintln!("revocation-set: auth-api ({}) at {n} entries, round {round}", bins[i].0);
                    loaded[i].push(serve(&bins[i].1, &db, n).await);
                }
            }
            for ((name, bin), runs) in bins.iter().zip(&loaded) {
                let base = serve(bin, &empty, 0).await;
                let each = |f: &dyn Fn(&Served) -> String| runs.iter().map(f).collect::<Vec<_>>().join(", ");
                report.push_str(&format!(
                    "| {n} | {name} | {:.1} MB | {} MB | {} | {} s |\n",
                    base.rss as f64 / 1e6,
                    each(&|r| format!("{:.1}", r.rss as f64 / 1e6)),
                    each(&|r| format!("{:.1}", (r.rss as f64 - base.rss as f64) / n as f64)),
                    each(&|r| format!("{:.1}", r.load.as_secs_f64()))
                ));
            }
        }
        report
    }
}
