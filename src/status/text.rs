//! The status for people: a few aligned lines, with a one-line sparkline of the backlog across recent runs.

use std::fmt::Write as _;

use super::{human, RunAt, StatusReport};
use crate::untrusted::printable;

/// The eight heights of a sparkline.
const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];

/// `points` as a sparkline, lowest as `▁` and highest as `█` (all `▁` when they are equal).
pub fn sparkline(points: &[u64]) -> String {
    let (Some(&low), Some(&high)) = (points.iter().min(), points.iter().max()) else { return String::new() };
    points
        .iter()
        .map(|&p| {
            let step = if high == low { 0 } else { ((p - low) as u128 * 7 / (high - low) as u128) as usize };
            BARS[step.min(7)]
        })
        .collect()
}

fn run_line(run: &RunAt) -> String {
    let r = &run.run;
    let mut line = format!(
        "{} ({} ago), {}{}, cleaned {}, {} ms, {}, {}",
        crate::sweep::report::rfc3339(r.started_at),
        human(run.age_seconds),
        r.outcome.as_str(),
        if r.dry_run { " (dry run)" } else { "" },
        r.cleaned_count,
        r.duration_ms,
        r.backend,
        r.trigger.as_str()
    );
    if let Some(error) = &r.error {
        let _ = write!(line, ": {error}");
    }
    printable(&line)
}

/// The whole status as text.
pub fn render(report: &StatusReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "jwt-token-cleaner status: {} (exit {})", report.verdict.as_str(), report.exit_code());
    for reason in &report.reasons {
        let _ = writeln!(out, "  - {}", printable(reason));
    }
    for target in &report.targets {
        let backlog = target.backlog.as_ref().map_or_else(|| "unknown".to_string(), |b| b.expired.to_string());
        let _ =
            writeln!(out, "target {}: {} (expired now: {backlog})", printable(&target.name), target.verdict.as_str());
    }
    let none = || "none recorded".to_string();
    let _ = writeln!(out, "last run:      {}", report.last_run.as_ref().map_or_else(none, run_line));
    let _ = writeln!(out, "last success:  {}", report.last_success.as_ref().map_or_else(none, run_line));
    let o = &report.outcomes;
    let _ = writeln!(
        out,
        "recent runs:   {} success, {} partial, {} error, {} skipped, {} dry run (the last {})",
        o.success,
        o.partial,
        o.error,
        o.skipped,
        o.dry_run,
        report.runs.len()
    );
    match &report.backlog {
        Some(backlog) => {
            let lanes: Vec<String> = backlog
                .lanes
                .iter()
                .map(|l| format!("{}: {}{}", l.lane, if l.at_least { "at least " } else { "" }, l.expired))
                .collect();
            let oldest = backlog
                .oldest_expired_age_seconds
                .map_or_else(|| "none".to_string(), |age| format!("expired {} ago", human(age)));
            let _ =
                writeln!(out, "backlog now:   {} expired ({}); oldest {}", backlog.expired, lanes.join(", "), oldest);
        }
        None => {
            let _ = writeln!(out, "backlog now:   unknown");
        }
    }
    let _ = writeln!(
        out,
        "trend:         {} {} (backlog after each of the last {} runs, oldest first)",
        report.trend.direction,
        sparkline(&report.trend.points),
        report.trend.points.len()
    );
    match &report.lease {
        Some(lease) => {
            let holder = lease.holder.as_deref().unwrap_or("no valid holder");
            let until = lease.until.as_deref().unwrap_or("no valid end");
            let stale = lease.stale.as_ref().map_or_else(String::new, |why| format!(" (stale: {})", printable(why)));
            let _ = writeln!(out, "lease:         held by {holder} until {until}{stale}");
        }
        None => {
            let _ = writeln!(out, "lease:         free");
        }
    }
    if report.skipped_documents > 0 {
        let _ = writeln!(
            out,
            "skipped:       {} foreign or malformed document(s) in the history",
            report.skipped_documents
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparklines_span_the_range() {
        assert_eq!(sparkline(&[]), "");
        assert_eq!(sparkline(&[5, 5, 5]), "▁▁▁");
        assert_eq!(sparkline(&[0, 7, 14]), "▁▄█");
        assert_eq!(sparkline(&[u64::MAX, 0]), "█▁");
    }
}
