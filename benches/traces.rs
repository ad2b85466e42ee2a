//! What traces cost a sweep, and what a run's trace looks like. Run it with `scripts/bench traces` (it starts the
//! test server unless `MONGODB_TEST_URI` is set, installs the OTLP receiver, builds the release binary):
//!
//!   scripts/bench traces [--entries 200000] [--rounds 3] [--baseline-bin PATH]
//!
//! On identical data (the expired half put back before every run), interleaved rounds of `jwt-token-cleaner sweep`:
//! the binary from before traces (`--baseline-bin`, when given), this binary with no endpoint, and this binary
//! exporting to a local receiver (PyPI's oteltap). Per variant: the median wall time, its ratio, the peak RSS, and
//! the spans one run exported. The binaries' sizes. And one exported run drawn as a waterfall
//! (`docs/images/trace-waterfall.svg`), from the spans the receiver decoded.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::run_binary;
use jtc_test_support::otlp::{Receiver, Span};
use mongodb::bson::{doc, Document};
use mongodb::{Client, IndexModel};
use plotters::prelude::*;

/// `scripts/bench traces [--entries N] [--rounds N] [--baseline-bin PATH]`.
#[derive(clap::Parser)]
struct Args {
    /// Entries seeded, half of them expired.
    #[arg(long, default_value_t = 200_000)]
    entries: u64,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The binary from before traces, built from an earlier commit, for the "no endpoint" comparison.
    #[arg(long)]
    baseline_bin: Option<PathBuf>,
    /// Where the table is written (BENCHMARKS.md).
    #[arg(long)]
    out: Option<PathBuf>,
}

const DB: &str = "jtc_bench_traces";

struct Variant {
    name: &'static str,
    bin: PathBuf,
    env: Vec<(&'static str, String)>,
    walls: Vec<Duration>,
    cpu: Vec<Duration>,
    peak_kb: u64,
}

#[tokio::main]
async fn main() {
    let args: Args = jtc_test_support::bench_args();
    let uri = std::env::var("MONGODB_TEST_URI").expect("MONGODB_TEST_URI (scripts/bench sets it)");
    let bin = PathBuf::from(std::env::var("JTC_BIN").unwrap_or_else(|_| "target/release/jwt-token-cleaner".into()));
    let receiver = Receiver::start();
    let client = Client::with_uri_str(&uri).await.expect("MONGODB_TEST_URI");
    let db = client.database(DB);
    db.drop().await.expect("drop");
    let collection = db.collection::<Document>("jwt_blacklist");
    collection.create_index(IndexModel::builder().keys(doc! { "expires_at": 1 }).build()).await.unwrap();
    let expired = common::seed_half_expired(&collection, args.entries).await;

    let base =
        [("DB_URI", uri.clone()), ("DB_NAME", DB.to_string()), ("CLEANUP_TIME_BUDGET_SECONDS", "900".to_string())];
    let with = |extra: &[(&'static str, String)]| base.iter().cloned().chain(extra.iter().cloned()).collect();
    let mut variants = Vec::new();
    if let Some(baseline) = &args.baseline_bin {
        variants.push(Variant {
            name: "before traces",
            bin: baseline.clone(),
            env: with(&[]),
            walls: vec![],
            cpu: vec![],
            peak_kb: 0,
        });
    }
    variants.push(Variant {
        name: "no endpoint",
        bin: bin.clone(),
        env: with(&[]),
        walls: vec![],
        cpu: vec![],
        peak_kb: 0,
    });
    let endpoint = [("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint())];
    variants.push(Variant {
        name: "exporting (local oteltap)",
        bin: bin.clone(),
        env: with(&endpoint),
        walls: vec![],
        cpu: vec![],
        peak_kb: 0,
    });

    let mut first = true;
    for round in 0..args.rounds {
        for variant in &mut variants {
            if !first {
                common::restore(&collection, &expired).await;
            }
            first = false;
            let child = run_binary(&variant.bin, &["sweep"], &variant.env);
            assert_eq!(child.report["data"]["cleaned_count"], expired.len() as u64, "{}", child.report);
            eprintln!("bench: round {round} {}: {:.2?}", variant.name, child.wall);
            variant.walls.push(child.wall);
            variant.cpu.push(child.cpu);
            variant.peak_kb = variant.peak_kb.max(child.peak_rss_kb);
        }
    }

    // The spans of one run: the last exporting run's trace (each CLI run is a trace of its own).
    let spans = receiver.spans();
    let last_trace = spans.iter().find(|s| s.name == "run").map(|s| s.trace_id.clone()).unwrap_or_default();
    let traces: HashMap<&str, usize> = spans.iter().fold(HashMap::new(), |mut m, s| {
        *m.entry(s.trace_id.as_str()).or_default() += 1;
        m
    });
    let per_run: Vec<usize> = traces.values().copied().collect();
    let run: Vec<&Span> = spans.iter().filter(|s| s.trace_id == last_trace).collect();
    let picture = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/images/trace-waterfall.svg");
    waterfall(&run, &picture);

    let reference = median(&variants[0].walls);
    let mut text = format!(
        "{} entries (half expired, indexed), `jwt-token-cleaner sweep`, {} interleaved rounds, one binary at a time \
         on the machine; medians:\n\n| variant | median | ratio to the first | our CPU (median) | peak RSS |\n|---|---|---|---|---|\n",
        args.entries, args.rounds
    );
    for v in &variants {
        let m = median(&v.walls);
        let all: Vec<String> = v.walls.iter().map(|w| format!("{:.2}", w.as_secs_f64())).collect();
        text += &format!(
            "| {} | {:.2} s ({}) | {:.3}x | {:.2} s | {:.1} MB |\n",
            v.name,
            m.as_secs_f64(),
            all.join(", "),
            m.as_secs_f64() / reference.as_secs_f64(),
            median(&v.cpu).as_secs_f64(),
            v.peak_kb as f64 / 1024.0
        );
    }
    text += &format!(
        "\nSpans exported per run: {:?} (a run's batches past 50 per target are counted on the target's span, not \
         drawn one by one). Binary: {:.2} MB",
        per_run,
        size_mb(&bin)
    );
    if let Some(baseline) = &args.baseline_bin {
        text += &format!(", before traces {:.2} MB", size_mb(baseline));
    }
    text += ".\n";
    println!("{text}");
    if let Some(out) = &args.out {
        jtc_test_support::splice_report(out, "traces", &text);
    }
}

fn median(walls: &[Duration]) -> Duration {
    let mut sorted = walls.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn size_mb(bin: &Path) -> f64 {
    std::fs::metadata(bin).map(|m| m.len() as f64 / 1_048_576.0).unwrap_or(0.0)
}

/// One trace as a waterfall: a row per span (depth-first, children under their parent, indented), its bar from its
/// start to its end on the run's clock.
fn waterfall(spans: &[&Span], out: &Path) {
    let by_parent = spans.iter().fold(HashMap::<&str, Vec<&Span>>::new(), |mut m, s| {
        m.entry(s.parent_span_id.as_str()).or_default().push(s);
        m
    });
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut rows: Vec<(usize, &Span)> = Vec::new();
    fn walk<'a>(
        span: &'a Span,
        depth: usize,
        by_parent: &HashMap<&str, Vec<&'a Span>>,
        rows: &mut Vec<(usize, &'a Span)>,
    ) {
        rows.push((depth, span));
        let mut children = by_parent.get(span.span_id.as_str()).cloned().unwrap_or_default();
        children.sort_by_key(|c| c.start_ns);
        for child in children {
            walk(child, depth + 1, by_parent, rows);
        }
    }
    for root in spans.iter().filter(|s| !ids.contains(s.parent_span_id.as_str())) {
        walk(root, 0, &by_parent, &mut rows);
    }
    let Some(t0) = spans.iter().map(|s| s.start_ns).min() else { return };
    let t1 = spans.iter().map(|s| s.end_ns).max().unwrap_or(t0 + 1);
    let seconds = |ns: u64| (ns - t0) as f64 / 1e9;
    let total = seconds(t1).max(0.001);
    let height = 60 + 18 * rows.len() as u32;
    let _ = std::fs::create_dir_all(out.parent().unwrap_or(Path::new(".")));
    let root = SVGBackend::new(out, (1000, height)).into_drawing_area();
    root.fill(&WHITE).expect("fill");
    let (labels, bars) = root.split_horizontally(260);
    let mut chart = ChartBuilder::on(&bars)
        .margin(10)
        .x_label_area_size(30)
        .build_cartesian_2d(0f64..total * 1.01, 0f64..rows.len() as f64)
        .expect("chart");
    chart
        .configure_mesh()
        .disable_y_mesh()
        .disable_y_axis()
        .x_desc("seconds since the run started")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()
        .expect("mesh");
    let shades = [RGBColor(31, 78, 121), RGBColor(46, 117, 182), RGBColor(91, 155, 213), RGBColor(157, 195, 230)];
    for (i, (depth, span)) in rows.iter().enumerate() {
        let y = (rows.len() - i) as f64;
        let colour = if span.status == 2 { RED } else { shades[(*depth).min(shades.len() - 1)] };
        let (from, to) = (seconds(span.start_ns), seconds(span.end_ns).max(seconds(span.start_ns) + total / 400.0));
        chart.draw_series([Rectangle::new([(from, y - 0.8), (to, y - 0.2)], colour.filled())]).expect("bar");
        // Rows line up with the chart's: 10 px of margin, then one row every (height - 10 - 10 - 30) / rows px.
        let row = (height - 50) as f64 / rows.len() as f64;
        let top = 10.0 + row * i as f64 + row * 0.55;
        let label = format!("{}{}", "· ".repeat(*depth), span.name);
        labels.draw(&Text::new(label, (10, top as i32), ("monospace", 12))).expect("label");
    }
    root.present().expect("write the SVG");
}
