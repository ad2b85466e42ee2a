//! The verdicts, with a pinned clock.

use super::*;
use crate::history::{BacklogRecord, Trigger};

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

/// A run that started `ago` before [`now`], with `outcome` and a backlog of `backlog` after it.
fn run(ago: chrono::Duration, outcome: Outcome, backlog: Option<u64>) -> RunRecord {
    let started_at = now() - ago;
    RunRecord {
        started_at,
        ended_at: started_at + chrono::Duration::seconds(2),
        duration_ms: 2000,
        trigger: Trigger::Timer,
        request_id: "r".into(),
        dry_run: false,
        backend: "mongodb".into(),
        fallback_reason: None,
        outcome,
        cleaned_count: 100,
        memory_saved_bytes: 1000,
        expired_remaining: backlog,
        complete: outcome == Outcome::Success,
        backlog: backlog.map(|expired| BacklogRecord {
            expired,
            expired_at_least: false,
            oldest_expired_age_seconds: None,
        }),
        error: (outcome == Outcome::Error).then(|| "database unreachable: x".into()),
        version: "0".into(),
        targets: Vec::new(),
        held_by: (outcome == Outcome::Skipped).then(|| "holder-1".into()),
    }
}

#[test]
fn a_stretch_of_skipped_runs_longer_than_the_maximum_age_is_failing_and_names_the_holder() {
    // Skipped every 20 minutes for three hours, after a success: the lease never freed.
    let mut runs: Vec<RunRecord> =
        (0..9).map(|i| run(chrono::Duration::minutes(20 * i + 1), Outcome::Skipped, None)).collect();
    runs.push(run(hours(3) + chrono::Duration::minutes(10), Outcome::Success, Some(0)));
    let report = judge(runs.clone(), None, &StatusQuery::default(), now());
    assert_eq!(report.verdict, Verdict::Failing, "{:?}", report.reasons);
    assert_eq!(report.outcomes.skipped, 9);
    assert!(
        report.reasons.iter().any(|r| r.contains("were skipped: the lease is held by holder-1")),
        "{:?}",
        report.reasons
    );
    assert_eq!(report.last_success.as_ref().map(|r| r.run.outcome), Some(Outcome::Success), "a skip is not a success");

    // A few skipped runs between successes are no outage: a manual invoke met a timer run.
    let mut runs: Vec<RunRecord> = vec![run(chrono::Duration::minutes(5), Outcome::Skipped, None)];
    runs.push(run(chrono::Duration::minutes(6), Outcome::Success, Some(0)));
    runs.push(run(chrono::Duration::minutes(65), Outcome::Skipped, None));
    let report = judge(runs, None, &StatusQuery::default(), now());
    assert_eq!(report.verdict, Verdict::Ok, "{:?}", report.reasons);

    // Skipped runs do not hide failures: the runs that did run all failed.
    let mut runs: Vec<RunRecord> =
        (0..3).map(|h| run(hours(h) + chrono::Duration::minutes(1), Outcome::Error, None)).collect();
    runs.push(run(chrono::Duration::minutes(30), Outcome::Skipped, None));
    let report = judge(runs, None, &StatusQuery::default(), now());
    assert!(report.reasons.iter().any(|r| r.contains("all failed")), "{:?}", report.reasons);
}

fn hours(h: i64) -> chrono::Duration {
    chrono::Duration::hours(h)
}

fn verdict(runs: Vec<RunRecord>) -> (Verdict, Vec<Reason>) {
    let report = judge(runs, None, &StatusQuery::default(), now());
    (report.verdict, report.reasons)
}

#[test]
fn an_empty_history_never_ran() {
    let (v, why) = verdict(Vec::new());
    assert_eq!((v, v.exit_code()), (Verdict::NeverRan, 3));
    assert_eq!(why, ["no run is recorded"]);
    let mut dry = run(hours(1), Outcome::Success, Some(0));
    dry.dry_run = true;
    assert_eq!(verdict(vec![dry]).0, Verdict::NeverRan, "dry runs do not count");
}

#[test]
fn hourly_successes_are_ok() {
    let runs = (0..5).map(|h| run(hours(h) + chrono::Duration::minutes(5), Outcome::Success, Some(0))).collect();
    let (v, why) = verdict(runs);
    assert_eq!((v, v.exit_code()), (Verdict::Ok, 0), "{why:?}");
}

#[test]
fn a_cleaner_that_stopped_3_hours_ago_is_failing() {
    let runs = (3..8).map(|h| run(hours(h), Outcome::Success, Some(0))).collect();
    let (v, why) = verdict(runs);
    assert_eq!((v, v.exit_code()), (Verdict::Failing, 2));
    assert_eq!(why, ["no successful run within 2.0 h (the last one ended 3.0 h ago)"]);
}

#[test]
fn runs_that_all_fail_are_failing_even_when_recent() {
    let mut runs: Vec<RunRecord> = (0..3).map(|h| run(hours(h), Outcome::Error, None)).collect();
    runs.push(run(chrono::Duration::minutes(30) + hours(2), Outcome::Success, Some(0)));
    let (v, why) = verdict(runs);
    assert_eq!(v, Verdict::Failing);
    assert!(why.iter().any(|w| w.starts_with("the last 3 run(s) all failed: database unreachable")), "{why:?}");
}

#[test]
fn a_growing_backlog_is_behind() {
    let runs = vec![
        run(chrono::Duration::minutes(10), Outcome::Partial, Some(900)),
        run(chrono::Duration::minutes(70), Outcome::Partial, Some(600)),
        run(chrono::Duration::minutes(130), Outcome::Partial, Some(300)),
    ];
    let report = judge(runs, None, &StatusQuery::default(), now());
    assert_eq!((report.verdict, report.exit_code()), (Verdict::Behind, 1));
    assert_eq!(report.trend.direction, Direction::Growing);
    assert_eq!(report.trend.points, [300, 600, 900]);
    assert!(report.reasons[0].contains("300 → 600 → 900"), "{:?}", report.reasons);
    // The JSON keeps the exit code beside the verdict, derived from it.
    let json = serde_json::to_string(&report).unwrap();
    assert!(json.starts_with(r#"{"verdict":"behind","exit_code":1,"reasons":["#), "{json}");
}

#[test]
fn a_shrinking_backlog_is_ok() {
    let runs = vec![
        run(chrono::Duration::minutes(10), Outcome::Partial, Some(100)),
        run(chrono::Duration::minutes(70), Outcome::Partial, Some(600)),
        run(chrono::Duration::minutes(130), Outcome::Partial, Some(900)),
    ];
    let report = judge(runs, None, &StatusQuery::default(), now());
    assert_eq!((report.verdict, report.trend.direction), (Verdict::Ok, Direction::Shrinking));
}

#[test]
fn an_old_expired_entry_is_behind() {
    let runs = vec![run(chrono::Duration::minutes(10), Outcome::Success, Some(0))];
    let live = Backlog {
        expired: 1,
        expired_at_least: false,
        oldest_expired_age_seconds: Some(2 * 86_400),
        lanes: Vec::new(),
    };
    let report = judge(runs, Some(live), &StatusQuery::default(), now());
    assert_eq!(report.verdict, Verdict::Behind);
    assert!(report.reasons[0].contains("expired 2.0 d ago, more than 24.0 h"), "{:?}", report.reasons);
    let relaxed = StatusQuery { max_backlog_age: Duration::from_secs(3 * 86_400), ..StatusQuery::default() };
    let live = report.backlog.clone();
    let runs = vec![run(chrono::Duration::minutes(10), Outcome::Success, Some(0))];
    assert_eq!(judge(runs, live, &relaxed, now()).verdict, Verdict::Ok);
}

#[test]
fn failing_outranks_behind_and_runs_come_newest_first() {
    let runs = vec![
        run(hours(5), Outcome::Partial, Some(300)),
        run(hours(3), Outcome::Partial, Some(900)),
        run(hours(4), Outcome::Partial, Some(600)),
    ];
    let report = judge(runs, None, &StatusQuery::default(), now());
    assert_eq!(report.verdict, Verdict::Failing);
    assert!(report.reasons.iter().any(|r| r.contains("grew")), "behind's reason is kept: {:?}", report.reasons);
    let starts: Vec<i64> = report.runs.iter().map(|r| r.run.started_at.timestamp()).collect();
    assert!(starts.windows(2).all(|w| w[0] > w[1]), "{starts:?}");
    assert_eq!(report.last_run.as_ref().map(|r| r.age_seconds), Some(3 * 3600));
}

/// With targets: each is judged on its own sections, and the chart has a panel for it.
#[test]
fn each_target_has_its_runs_and_its_panel() {
    use crate::history::TargetRecord;
    let section = |name: &str, error: Option<&str>| TargetRecord {
        name: name.into(),
        cleaned_count: 7,
        complete: error.is_none(),
        backlog: error.is_none().then_some(BacklogRecord {
            expired: 3,
            expired_at_least: false,
            oldest_expired_age_seconds: None,
        }),
        error: error.map(String::from),
    };
    let runs: Vec<RunRecord> = (0..3)
        .map(|h| RunRecord {
            targets: vec![section("auth", None), section("resets", Some("refused"))],
            ..run(hours(h), Outcome::Partial, Some(3))
        })
        .collect();
    let resets = runs_of("resets", &runs);
    assert!(resets.iter().all(|r| r.outcome == Outcome::Error && r.error.as_deref() == Some("refused")));
    let auth = runs_of("auth", &runs);
    assert!(auth.iter().all(|r| r.outcome == Outcome::Success && r.cleaned_count == 7 && r.backlog.is_some()));
    assert!(runs_of("other", &runs).is_empty());

    let mut report = judge(runs, None, &StatusQuery::default(), now());
    for (name, verdict) in [("auth", Verdict::Ok), ("resets", Verdict::Failing)] {
        report.targets.push(TargetStatus { name: name.into(), verdict, reasons: Vec::new(), backlog: None });
    }
    let svg = chart::svg(&report).expect("the chart");
    assert!(svg.contains("target auth: ok") && svg.contains("target resets: failing"), "a panel per target");
    // Three panels of three runs: a point per run in each.
    assert_eq!(svg.matches("<circle").count(), 9, "{svg}");
}

#[test]
fn a_worse_verdict_takes_keeping_up_away_and_keeps_the_rest() {
    let mut report =
        judge(vec![run(chrono::Duration::minutes(5), Outcome::Success, Some(0))], None, &Default::default(), now());
    assert_eq!(report.reasons, [Reason::KeepingUp]);
    report.reasons.push("a note".into());
    report.worsen(Verdict::Behind);
    assert_eq!((report.verdict, report.exit_code()), (Verdict::Behind, 1));
    assert_eq!(report.reasons, ["a note"]);
}
