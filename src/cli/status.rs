//! `status`: is the cleaner keeping up? The text (or `--json`), an optional chart, and the verdict's exit code.

use std::process::ExitCode;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::status::StatusQuery;

use super::runner;

/// `status`: the text (or `--json`), an optional chart, and the verdict's exit code.
pub(crate) async fn run(
    settings: &Settings,
    query: StatusQuery,
    json: bool,
    chart: Option<std::path::PathBuf>,
) -> ExitCode {
    let Some(runner) = runner(settings) else { return ExitCode::from(3) };
    let report = runner.status(&query, chrono::Utc::now()).await;
    runner.backends.shutdown().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
    } else {
        print!("{}", jwt_token_cleaner::status::text::render(&report));
    }
    if let Some(path) = chart {
        let written = jwt_token_cleaner::status::chart::svg(&report)
            .map_err(|e| e.to_string())
            .and_then(|svg| std::fs::write(&path, svg).map_err(|e| e.to_string()));
        match written {
            Ok(()) => eprintln!("chart written to {}", path.display()),
            Err(e) => {
                eprintln!("jwt-token-cleaner: cannot write the chart to {}: {e}", path.display());
                return ExitCode::from(3);
            }
        }
    }
    ExitCode::from(report.exit_code())
}

/// `90s`, `30m`, `2h`, `1d` (a bare number is seconds): a positive duration.
pub(crate) fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 2h or 1d"))?;
    let seconds = match unit {
        "" | "s" => number,
        "m" => number.saturating_mul(60),
        "h" => number.saturating_mul(3600),
        "d" => number.saturating_mul(86_400),
        _ => return Err(format!("{text:?} is not a duration like 90s, 30m, 2h or 1d")),
    };
    if seconds == 0 {
        return Err("the duration must be positive".into());
    }
    Ok(std::time::Duration::from_secs(seconds))
}
