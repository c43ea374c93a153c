//! `dlog-check FILE [--format text|json] [--html FILE] [--time-budget-ms N]`
//!
//! Exit status: 0 valid, 1 anomalies that make the history invalid, 2 unknown
//! (a search ran out of time), 3 malformed input (the message names the line),
//! 4 the file could not be read or written.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Parser)]
#[command(name = "dlog-check", about = "Check a DistributedLog history (format v1, JSON Lines)")]
struct Args {
    /// The history file (JSON Lines, format v1; see checker/HISTORY.md).
    file: std::path::PathBuf,
    /// Output format on stdout.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Also write a self-contained HTML report to this file.
    #[arg(long)]
    html: Option<std::path::PathBuf>,
    /// Wall-clock budget per linearizability search, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    time_budget_ms: u64,
}

fn run(args: &Args) -> anyhow::Result<u8> {
    let text = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let history = match checker::parse_jsonl(&text) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("dlog-check: malformed history {}: {e}", args.file.display());
            return Ok(3);
        }
    };
    drop(text);
    let opts = checker::Options {
        time_budget: Duration::from_millis(args.time_budget_ms),
    };
    let report = checker::check_with(&history, &opts);
    match args.format {
        Format::Text => print!("{}", report.render_text()),
        Format::Json => println!("{}", report.to_json()),
    }
    if let Some(path) = &args.html {
        let page = checker::html::render(&history, &report);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    // Freeing a million small allocations one by one takes a noticeable
    // share of the run; the process is about to exit and the OS takes it all back.
    std::mem::forget(history);
    Ok(match report.valid {
        checker::Validity::Valid => 0,
        checker::Validity::Invalid => 1,
        checker::Validity::Unknown => 2,
    })
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("dlog-check: {e:#}");
            ExitCode::from(4)
        }
    }
}
