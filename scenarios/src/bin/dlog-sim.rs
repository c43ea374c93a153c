//! `dlog-sim`: run scenarios in the deterministic simulation.
//!
//! ```text
//! dlog-sim list
//! dlog-sim run --scenario single-node-crash --seed 7 [--history FILE] [--trace FILE]
//!              [--config KEY=VALUE]... [--check-determinism]
//! dlog-sim sweep --scenario single-node-crash --seeds 1..200 [--jobs 2] [--all]
//! ```
//! Exit status: 0 valid, 1 anomalies found (invalid), 2 the run itself
//! failed (or this is not a simulation build).

use clap::{Parser, Subcommand};

/// Run DistributedLog scenarios in the deterministic simulation.
#[derive(Parser, Debug)]
#[command(name = "dlog-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List scenarios with a one-line description each.
    List,
    /// Run one seed of a scenario and check its history.
    Run {
        /// Scenario name (see `list`).
        #[arg(long)]
        scenario: String,
        /// The seed: decides faults, client choices, delays and interleavings.
        #[arg(long)]
        seed: u64,
        /// Write the recorded history (format v1, JSON Lines) here.
        #[arg(long)]
        history: Option<std::path::PathBuf>,
        /// Write the run's log (schedule, trace hash, broker events) here.
        #[arg(long)]
        trace: Option<std::path::PathBuf>,
        /// Override a broker setting, or a client one with `client.` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Run the seed twice; fail unless trace hash and history match.
        #[arg(long)]
        check_determinism: bool,
        /// Also write the checker's HTML report here.
        #[arg(long)]
        html: Option<std::path::PathBuf>,
    },
    /// Run a range of seeds and summarise.
    Sweep {
        /// Scenario name (see `list`).
        #[arg(long)]
        scenario: String,
        /// Seeds as A..B, both ends included (1..10 is ten seeds).
        #[arg(long)]
        seeds: String,
        /// Seeds run at once (threads); default: the number of cores.
        #[arg(long)]
        jobs: Option<usize>,
        /// Override a setting for every seed (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// Print a line for every seed, not just the failing ones.
        #[arg(long)]
        all: bool,
    },
}

fn parse_seeds(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once("..")
        .ok_or_else(|| format!("--seeds wants A..B, got {text:?}"))?;
    let b = b.strip_prefix('=').unwrap_or(b);
    let a: u64 = a.parse().map_err(|_| format!("bad seed {a:?}"))?;
    let b: u64 = b.parse().map_err(|_| format!("bad seed {b:?}"))?;
    if a > b {
        return Err(format!("empty seed range {text}"));
    }
    Ok((a, b))
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::List => {
            for scenario in scenarios::SCENARIOS {
                println!("{:<24} {}", scenario.name, scenario.description);
            }
            0
        }
        #[cfg(madsim)]
        Command::Run {
            scenario,
            seed,
            history,
            trace,
            config,
            check_determinism,
            html,
        } => sim_build::run(scenario, seed, history, trace, config, check_determinism, html),
        #[cfg(madsim)]
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            config,
            all,
        } => match parse_seeds(&seeds) {
            Ok(range) => sim_build::sweep(scenario, range, jobs, config, all),
            Err(message) => {
                eprintln!("{message}");
                2
            }
        },
        #[cfg(not(madsim))]
        Command::Run { .. } | Command::Sweep { .. } => {
            let _ = parse_seeds;
            eprintln!(
                "this dlog-sim was built without the simulation runtime.\n\
                 Build the simulation with: RUSTFLAGS=\"--cfg madsim\" cargo build --release -p dlog-scenarios --target-dir target/sim\n\
                 or simply: make sim SCENARIO=single-node-crash SEED=7"
            );
            2
        }
    };
    std::process::exit(code);
}

#[cfg(madsim)]
mod sim_build {
    use std::path::PathBuf;
    use std::sync::Mutex;

    use checker::Validity;
    use scenarios::run::{replay_command, run_seed, schedule, RunError, RunOptions};

    fn write(path: &PathBuf, text: &str) -> bool {
        match std::fs::write(path, text) {
            Ok(()) => true,
            Err(error) => {
                eprintln!("cannot write {}: {error}", path.display());
                false
            }
        }
    }

    /// Stamps trace lines with the simulation's virtual time, so two runs
    /// of one seed write the same trace.
    struct VirtualTime;

    impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
        fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
            let ns = sim::clock::elapsed_ns();
            write!(w, "{:>6}.{:06}", ns / 1_000_000_000, (ns % 1_000_000_000) / 1_000)
        }
    }

    fn install_trace(path: &PathBuf) -> bool {
        let file = match std::fs::File::create(path) {
            Ok(file) => file,
            Err(error) => {
                eprintln!("cannot write {}: {error}", path.display());
                return false;
            }
        };
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "debug".into()))
            .with_timer(VirtualTime)
            .with_ansi(false)
            .with_writer(Mutex::new(file))
            .init();
        true
    }

    pub fn run(
        scenario: String,
        seed: u64,
        history: Option<PathBuf>,
        trace: Option<PathBuf>,
        config: Vec<String>,
        check_determinism: bool,
        html: Option<PathBuf>,
    ) -> i32 {
        let options = RunOptions { scenario, seed, config };
        let plan = match schedule(&options) {
            Ok(plan) => plan,
            Err(error) => {
                eprintln!("{error}");
                return 2;
            }
        };
        println!("scenario {} seed {seed}", options.scenario);
        print!("{plan}");
        if let Some(path) = &trace {
            if !install_trace(path) {
                return 2;
            }
            tracing::info!(seed, scenario = %options.scenario, "run starts\n{plan}");
        }
        let outcome = match run_seed(&options) {
            Ok(outcome) => outcome,
            Err(error) => {
                eprintln!("{error}");
                if let (RunError::Failed { history: text, .. }, Some(path)) = (&error, &history) {
                    write(path, text);
                }
                eprintln!("replay: {}", replay_command(&options));
                return 2;
            }
        };
        let events = outcome.history.lines().count();
        println!("ran: {events} history events, trace hash {:016x}", outcome.trace_hash);
        for note in &outcome.notes {
            println!("{note}");
        }
        if check_determinism {
            match run_seed(&options) {
                Ok(again) if again.trace_hash == outcome.trace_hash && again.history == outcome.history => {
                    println!("determinism: OK (two runs, same trace hash {:016x}, same history)", again.trace_hash);
                }
                Ok(again) => {
                    eprintln!(
                        "determinism: FAILED: trace hash {:016x} vs {:016x}, histories {}",
                        outcome.trace_hash,
                        again.trace_hash,
                        if again.history == outcome.history { "equal" } else { "differ" }
                    );
                    eprintln!("replay: {} --check-determinism", replay_command(&options));
                    return 2;
                }
                Err(error) => {
                    eprintln!("determinism: second run failed: {error}");
                    return 2;
                }
            }
        }
        if let Some(path) = &history {
            if !write(path, &outcome.history) {
                return 2;
            }
        }
        if let Some(path) = &html {
            let parsed = checker::parse_jsonl(&outcome.history).expect("parsed once already");
            if !write(path, &checker::html::render(&parsed, &outcome.report)) {
                return 2;
            }
        }
        print!("{}", outcome.report.render_text());
        println!("replay: {}", replay_command(&options));
        match outcome.report.valid {
            Validity::Valid => 0,
            Validity::Invalid => 1,
            Validity::Unknown => 2,
        }
    }

    /// Adds a run's numeric figures ("elections: 7") into per-name totals.
    fn add_figures(totals: &Mutex<std::collections::BTreeMap<String, (u64, u64)>>, notes: &[String]) {
        let mut totals = totals.lock().unwrap_or_else(|e| e.into_inner());
        for note in notes {
            let Some((name, rest)) = note.split_once(": ") else { continue };
            let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()) else { continue };
            let entry = totals.entry(name.to_string()).or_insert((0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
    }

    /// One seed's result in a sweep.
    enum SeedResult {
        Valid,
        Invalid(Vec<String>),
        Failed(String),
    }

    pub fn sweep(scenario: String, (first, last): (u64, u64), jobs: Option<usize>, config: Vec<String>, all: bool) -> i32 {
        if scenarios::find(&scenario).is_none() {
            eprintln!("unknown scenario {scenario:?} (see `dlog-sim list`)");
            return 2;
        }
        let jobs = jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let results: Mutex<Vec<(u64, SeedResult)>> = Mutex::new(Vec::new());
        let print_lock = Mutex::new(());
        let figures = Mutex::new(std::collections::BTreeMap::new());
        let options_for = |seed| RunOptions {
            scenario: scenario.clone(),
            seed,
            config: config.clone(),
        };
        scenarios::run::sweep(first..=last, jobs, options_for, |options, outcome| {
            let seed = options.seed;
            let result = match outcome {
                Ok(outcome) => {
                    add_figures(&figures, &outcome.notes);
                    match outcome.report.valid {
                        Validity::Valid => SeedResult::Valid,
                        Validity::Invalid => SeedResult::Invalid(outcome.report.disallowed().iter().map(|s| s.to_string()).collect()),
                        Validity::Unknown => SeedResult::Failed("checker verdict unknown".into()),
                    }
                }
                Err(error) => SeedResult::Failed(error.to_string()),
            };
            let line = match &result {
                SeedResult::Valid => all.then(|| format!("seed {seed:>6}: valid")),
                SeedResult::Invalid(names) => Some(format!("seed {seed:>6}: INVALID ({})  replay: {}", names.join(", "), replay_command(options))),
                SeedResult::Failed(reason) => Some(format!("seed {seed:>6}: RUN FAILED ({reason})  replay: {}", replay_command(options))),
            };
            if let Some(line) = line {
                let _guard = print_lock.lock().unwrap_or_else(|e| e.into_inner());
                println!("{line}");
            }
            results.lock().unwrap_or_else(|e| e.into_inner()).push((seed, result));
            false
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let valid = results.iter().filter(|(_, r)| matches!(r, SeedResult::Valid)).count();
        let invalid = results.iter().filter(|(_, r)| matches!(r, SeedResult::Invalid(_))).count();
        let failed = results.iter().filter(|(_, r)| matches!(r, SeedResult::Failed(_))).count();
        println!(
            "sweep {scenario} seeds {first}..{last}: {} runs, {valid} valid, {invalid} invalid, {failed} failed",
            results.len()
        );
        for (name, (total, runs)) in figures.into_inner().unwrap_or_else(|e| e.into_inner()) {
            println!("  {name}: {total} over {runs} runs ({:.1} per run)", total as f64 / runs.max(1) as f64);
        }
        if invalid > 0 {
            1
        } else if failed > 0 {
            2
        } else {
            0
        }
    }
}
