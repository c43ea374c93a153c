//! `checker-bench [--log-events N] [--seeds N]`: prints `BENCH <name> <value> <unit>` lines.
//!
//! - log checks on a generated history (1,000,000 events, 100 keys, 50
//!   processes by default): parse and check rates on one core, and the whole
//!   dlog-check path (read file, parse, check, render) in seconds;
//! - peak memory (VmHWM) after the log benchmark;
//! - linearizability on generated single-register histories of 1,000 and
//!   10,000 operations, 10 and 50 processes, 10% info: mean ms per history.
//!
//! Figures, not assertions: run it in release mode on an idle machine.

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use checker::gen::{log_history, register_history, LogGen, RegisterGen};

#[derive(Parser)]
#[command(name = "checker-bench")]
struct Args {
    /// Events in the generated log history.
    #[arg(long, default_value_t = 1_000_000)]
    log_events: usize,
    /// Register histories generated per configuration.
    #[arg(long, default_value_t = 5)]
    seeds: u64,
    /// Linearizability time budget per history, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    time_budget_ms: u64,
    /// Only write the generated log history (--log-events events) to this file and exit.
    #[arg(long)]
    write_log_history: Option<std::path::PathBuf>,
    /// Only write a generated single-register history (--register-ops,
    /// --register-processes, 10% info) to this file and exit.
    #[arg(long)]
    write_register_history: Option<std::path::PathBuf>,
    /// Values per send in the generated log history (above 1, concurrent
    /// multi-key sends form allowed G0 cycles that the cycle search must explain).
    #[arg(long, default_value_t = 1)]
    sends_per_op: usize,
    #[arg(long, default_value_t = 1000)]
    register_ops: usize,
    #[arg(long, default_value_t = 10)]
    register_processes: u32,
}

// Benchmarks measure wall-clock time by definition; the determinism rule
// against Instant::now is for simulated code.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

/// Peak resident memory of this process so far, from /proc/self/status.
fn vm_hwm_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time all threads of this process have run, in seconds, from
/// /proc/self/task/*/schedstat: on a shared machine it measures the work
/// done whatever else runs. (Threads that have exited are not counted; the
/// checker's pool threads live as long as the process.)
fn process_cpu_s() -> Option<f64> {
    let mut total_ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total_ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total_ns as f64 / 1e9)
}

fn bench(name: &str, value: f64, unit: &str) {
    println!("BENCH {name} {value:.3} {unit}");
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(path) = &args.write_register_history {
        let text = register_history(&RegisterGen {
            ops: args.register_ops,
            processes: args.register_processes,
            ..Default::default()
        });
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let n = args.log_events;
    let tag = if n == 1_000_000 { "1m".to_string() } else { format!("{n}") };

    // Log: generate, write to a file, then time the dlog-check path on it.
    let text = log_history(&LogGen {
        events: n,
        keys: 100,
        processes: 50,
        sends_per_op: args.sends_per_op,
        ..Default::default()
    });
    if let Some(path) = &args.write_log_history {
        std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
        return Ok(());
    }
    let events = text.lines().count();
    let dir = std::env::temp_dir().join(format!("checker-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("log.jsonl");
    std::fs::write(&path, &text)?;
    drop(text);
    bench(&format!("log_history_{tag}_events"), events as f64, "events");

    let t0 = now();
    let text = std::fs::read_to_string(&path).context("reading generated history")?;
    let t_read = now();
    let cpu_read = process_cpu_s();
    let history = checker::parse_jsonl(&text).context("parsing generated history")?;
    drop(text);
    let t_parse = now();
    let cpu_parse = process_cpu_s();
    let report = checker::check(&history);
    let t_check = now();
    let cpu_check = process_cpu_s();
    let rendered = report.render_text();
    let t_end = now();
    anyhow::ensure!(
        report.valid == checker::Validity::Valid,
        "generated log history should be valid:\n{rendered}"
    );
    let secs = |d: Duration| d.as_secs_f64();
    bench(&format!("log_parse_{tag}"), events as f64 / secs(t_parse - t_read), "events/s");
    bench(&format!("log_check_{tag}"), events as f64 / secs(t_check - t_parse), "events/s");
    bench(&format!("log_check_{tag}_time"), secs(t_check - t_parse), "s");
    if let (Some(a), Some(b), Some(c)) = (cpu_read, cpu_parse, cpu_check) {
        // The parse runs on every core; the log checks on one thread.
        bench(&format!("log_parse_{tag}_cpu"), events as f64 / (b - a), "events/cpu-s");
        bench(&format!("log_check_{tag}_cpu"), events as f64 / (c - b), "events/cpu-s");
    }
    bench(&format!("dlog_check_path_{tag}"), secs(t_end - t0), "s");
    if let Some(kib) = vm_hwm_kib() {
        bench(&format!("log_peak_memory_{tag}"), kib as f64 / 1024.0, "MiB");
    }
    drop(history);
    let _ = std::fs::remove_dir_all(&dir);

    // Linearizability: single register, the hardest shape (no key parallelism).
    let opts = checker::Options {
        time_budget: Duration::from_millis(args.time_budget_ms),
    };
    for ops in [1_000usize, 10_000] {
        for processes in [10u32, 50] {
            let mut total = Duration::ZERO;
            let mut worst = Duration::ZERO;
            let mut unknown = 0;
            for seed in 0..args.seeds {
                let text = register_history(&RegisterGen {
                    ops,
                    processes,
                    info_fraction: 0.1,
                    keys: 1,
                    values: 5,
                    seed: seed + 1,
                });
                let h = checker::parse_jsonl(&text)?;
                let t = now();
                let r = checker::check_with(&h, &opts);
                let d = now() - t;
                total += d;
                worst = worst.max(d);
                match r.valid {
                    checker::Validity::Valid => {}
                    checker::Validity::Unknown => unknown += 1,
                    checker::Validity::Invalid => anyhow::bail!("generated register history judged invalid:\n{}", r.render_text()),
                }
            }
            let name = format!("linearizability_{ops}ops_{processes}procs_10pct_info");
            bench(&name, secs(total) * 1000.0 / args.seeds as f64, "ms/history");
            bench(&format!("{name}_worst"), secs(worst) * 1000.0, "ms");
            bench(&format!("{name}_unknown"), unknown as f64, "histories");
        }
    }
    Ok(())
}
