//! `status --chart FILE.svg`: the recent runs over time, drawn with plotters' SVG backend, one panel for the run
//! and one per target (`CLEANUP_TARGETS`). In each, above, the backlog after each run (one point per run; a failed
//! run, which measured none, is a red point on the axis); below, the entries each run cleaned (a bar per run, red
//! for a failed run).

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::StatusReport;
use crate::history::{Outcome, RunRecord};

/// The picture's size, in pixels.
const SIZE: (u32, u32) = (900, 520);

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn failed(error: impl std::fmt::Display) -> ChartError {
    ChartError(error.to_string())
}

/// The chart of `report`'s runs, as SVG text: one panel for the run, and with `CLEANUP_TARGETS` one more per target
/// (its own backlog and cleaned entries, from its sections of the records).
pub fn svg(report: &StatusReport) -> Result<String, ChartError> {
    let mut runs: Vec<RunRecord> = report.runs.iter().map(|r| r.run.clone()).collect();
    runs.reverse();
    let mut panels = vec![(format!("verdict: {}", report.verdict.as_str()), runs.clone())];
    for target in &report.targets {
        let caption = format!("target {}: {}", crate::untrusted::printable(&target.name), target.verdict.as_str());
        panels.push((caption, super::runs_of(&target.name, &runs)));
    }
    let times: Vec<i64> = runs.iter().map(|r| r.started_at.timestamp()).collect();
    let (first, last) = match (times.first(), times.last()) {
        (Some(&first), Some(&last)) => (first, last.max(first + 1)),
        _ => {
            let now = Utc::now().timestamp();
            (now - 3600, now)
        }
    };
    let pad = (last - first) / 20 + 1;
    let axis = Axis {
        x: (first - pad)..(last + pad),
        // Bars a third of the closest gap between two runs wide, so that they never overlap.
        half: (times.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0).min().unwrap_or(last - first) / 3).max(1),
        format: if last - first < 3 * 3600 { "%H:%M:%S" } else { "%m-%d %H:%M" },
    };
    let mut text = String::new();
    {
        let height = SIZE.1 * u32::try_from(panels.len()).unwrap_or(1);
        let root = SVGBackend::with_string(&mut text, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        for (area, (caption, runs)) in root.split_evenly((panels.len(), 1)).iter().zip(&panels) {
            panel(area, caption, runs, &axis)?;
        }
        root.present().map_err(failed)?;
    }
    Ok(text)
}

/// The time axis every panel shares.
struct Axis {
    x: std::ops::Range<i64>,
    half: i64,
    format: &'static str,
}

/// One panel: above, the backlog after each run (one point per run; a failed run, which measured none, is a red
/// point on the axis); below, the entries each run cleaned (a bar per run, red for a failed run).
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    caption: &str,
    runs: &[RunRecord],
    axis: &Axis,
) -> Result<(), ChartError> {
    let backlog_of = |r: &RunRecord| r.backlog.map_or(0, |b| b.expired);
    let top = runs.iter().map(backlog_of).max().unwrap_or(0).max(1);
    let cleaned_top = runs.iter().map(|r| r.cleaned_count).max().unwrap_or(0).max(1);
    let label =
        |t: &i64| DateTime::from_timestamp(*t, 0).map_or_else(String::new, |d| d.format(axis.format).to_string());
    let half = axis.half;
    let (upper, lower) = area.split_vertically(area.dim_in_pixel().1 * 11 / 20);

    let mut chart = ChartBuilder::on(&upper)
        .caption(format!("Backlog after each run ({caption})"), ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(axis.x.clone(), 0u64..top + top / 10 + 1)
        .map_err(failed)?;
    chart.configure_mesh().x_label_formatter(&label).y_desc("expired entries").draw().map_err(failed)?;
    let worked: Vec<(i64, u64)> =
        runs.iter().filter(|r| r.outcome.worked()).map(|r| (r.started_at.timestamp(), backlog_of(r))).collect();
    chart.draw_series(LineSeries::new(worked.iter().copied(), &BLUE)).map_err(failed)?;
    // Skipped runs (the lease held) did nothing to draw: they are left out, and a stretch of them shows as a gap.
    let runs: Vec<&RunRecord> = runs.iter().filter(|r| r.outcome != Outcome::Skipped).collect();
    chart
        .draw_series(runs.iter().map(|r| {
            let style = if r.outcome.worked() { BLUE.filled() } else { RED.filled() };
            Circle::new((r.started_at.timestamp(), backlog_of(r)), 4, style)
        }))
        .map_err(failed)?;

    let mut chart = ChartBuilder::on(&lower)
        .caption("Entries cleaned per run (red: failed)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(60)
        .build_cartesian_2d(axis.x.clone(), 0u64..cleaned_top + cleaned_top / 10 + 1)
        .map_err(failed)?;
    chart.configure_mesh().x_label_formatter(&label).y_desc("cleaned").draw().map_err(failed)?;
    chart
        .draw_series(runs.iter().map(|r| {
            let t = r.started_at.timestamp();
            // A failed run is a pale red band the height of the chart: it usually cleaned nothing to draw.
            match r.outcome.worked() {
                true => Rectangle::new([(t - half, 0), (t + half, r.cleaned_count)], GREEN.mix(0.7).filled()),
                false => Rectangle::new([(t - half, 0), (t + half, cleaned_top)], RED.mix(0.25).filled()),
            }
        }))
        .map_err(failed)?;
    Ok(())
}
