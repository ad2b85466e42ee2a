//! The revocation set's UUID tokens alone (`scripts/bench revocation-set`): resident bytes per entry, the peak
//! while it grows, lookups (hits and misses), and the rate at which new revocations are applied, at 100,000 to
//! 10,000,000 entries, for the table auth-api keeps (`revocation_cache::uuid_table`) and the `HashMap` it replaced.
//!
//! Each measurement is a child process of its own (this binary with `--one N --design D`), so that each starts
//! from the same resident memory and its peak (`VmHWM`) is its own. Bytes per entry: resident memory with the
//! entries loaded, less the memory before the first, divided by the entries. Peak: the high-water mark less the
//! same base, divided by the loaded memory less it. Lookups are timed 32 at a time (reading the clock here costs
//! more than a lookup), and their p50 and p99 are over those batches' means.

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
    let (base, _) = memory();
    let mut set = D::default();
    for i in 0..n {
        set.insert(key(i), far);
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
    serde_json::json!({
        "bytes_per_entry": (loaded - base) as f64 / n as f64,
        "allocated_per_entry": allocated,
        "peak_ratio": (peak - base) as f64 / (loaded - base).max(1) as f64,
        "hit_p50_ns": hit50, "hit_p99_ns": hit99, "miss_p50_ns": miss50, "miss_p99_ns": miss99,
        "apply_per_s": rate,
    })
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
            _ => measure::<UuidTable>(n),
        };
        println!("{result}");
        return;
    }
    let mut report = format!(
        "Command: `scripts/bench revocation-set --entries {}`; measured {} on {} cores.\n\n\
         | entries | design | bytes per entry | peak while growing | hit p50 / p99 | miss p50 / p99 | applied per second |\n\
         |---|---|---|---|---|---|---|\n",
        args.sizes.iter().map(u64::to_string).collect::<Vec<_>>().join(","),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    for &n in &args.sizes {
        for (design, name) in [("table", "sorted runs (today)"), ("hashmap", "HashMap (before)")] {
            eprintln!("revocation-set: {n} entries, {name}");
            let r = child(n, design);
            let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
            let _ = writeln!(
                report,
                "| {n} | {name} | {:.1} | {:.2}x | {:.0} / {:.0} ns | {:.0} / {:.0} ns | {:.0} |",
                f("bytes_per_entry"),
                f("peak_ratio"),
                f("hit_p50_ns"),
                f("hit_p99_ns"),
                f("miss_p50_ns"),
                f("miss_p99_ns"),
                f("apply_per_s")
            );
        }
    }
    if let Some(out) = &args.out {
        jtc_test_support::splice_report(out, "revocation-set", &report);
    }
    println!("{report}");
}
