//! `status --chart FILE.svg`: the recent runs over time, drawn with plotters' SVG backend. Above, the backlog
//! after each run (one point per run; a failed run, which measured none, is a red point on the axis); below, the
//! entries each run cleaned (a bar per run, red for a failed run).

use chrono::{DateTime, Utc};
use plotters::prelude::*;

use super::StatusReport;
use crate::history::RunRecord;

/// The picture's size, in pixels.
const SIZE: (u32, u32) = (900, 520);

/// Why the chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw the chart: {0}")]
pub struct ChartError(String);

fn failed(error: impl std::fmt::Display) -> ChartError {
    ChartError(error.to_string())
}

/// The chart of `report`'s runs, as SVG text.
pub fn svg(report: &StatusReport) -> Result<String, ChartError> {
    let mut runs: Vec<&RunRecord> = report.runs.iter().map(|r| &r.run).collect();
    runs.reverse();
    let times: Vec<i64> = runs.iter().map(|r| r.started_at.timestamp()).collect();
    let (first, last) = match (times.first(), times.last()) {
        (Some(&first), Some(&last)) => (first, last.max(first + 1)),
        _ => {
            let now = Utc::now().timestamp();
            (now - 3600, now)
        }
    };
    let pad = (last - first) / 20 + 1;
    let x = (first - pad)..(last + pad);
    // Bars a third of the closest gap between two runs wide, so that they never overlap.
    let gap = times.windows(2).map(|w| w[1] - w[0]).filter(|g| *g > 0).min().unwrap_or(last - first);
    let half = (gap / 3).max(1);
    let format = if last - first < 3 * 3600 { "%H:%M:%S" } else { "%m-%d %H:%M" };
    let backlog_of = |r: &RunRecord| r.backlog.map_or(0, |b| b.expired);
    let top = runs.iter().map(|r| backlog_of(r)).max().unwrap_or(0).max(1);
    let cleaned_top = runs.iter().map(|r| r.cleaned_count).max().unwrap_or(0).max(1);
    let label = |t: &i64| DateTime::from_timestamp(*t, 0).map_or_else(String::new, |d| d.format(format).to_string());

    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(failed)?;
        let (upper, lower) = root.split_vertically(SIZE.1 * 11 / 20);

        let mut chart = ChartBuilder::on(&upper)
            .caption(format!("Backlog after each run (verdict: {})", report.verdict.as_str()), ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(x.clone(), 0u64..top + top / 10 + 1)
            .map_err(failed)?;
        chart.configure_mesh().x_label_formatter(&label).y_desc("expired entries").draw().map_err(failed)?;
        let worked: Vec<(i64, u64)> =
            runs.iter().filter(|r| r.outcome.worked()).map(|r| (r.started_at.timestamp(), backlog_of(r))).collect();
        chart.draw_series(LineSeries::new(worked.iter().copied(), &BLUE)).map_err(failed)?;
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
            .build_cartesian_2d(x, 0u64..cleaned_top + cleaned_top / 10 + 1)
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
        root.present().map_err(failed)?;
    }
    Ok(text)
}
