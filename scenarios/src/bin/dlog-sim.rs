//! `dlog-sim`: run scenarios in the deterministic simulation.
//!
//! ```text
//! dlog-sim list
//! dlog-sim run --scenario single-node-crash --seed 7 [--history FILE] [--trace FILE]
//!              [--config KEY=VALUE]... [--check-determinism] [--buggify] [--schedule FILE]
//! dlog-sim sweep --scenario single-node-crash --seeds 1..200 [--jobs 2] [--all]
//!                [--config KEY=VALUE]... [--shard I/N] [--json FILE] [--junit FILE]
//!                [--buggify] [--marks] [--schedule FILE]
//! dlog-sim shrink --scenario single-node-crash --seed 7 [--config KEY=VALUE]... [--buggify]
//!                 [--schedule FILE] [--out FILE] [--jobs 2] [--max-tries 400]
//! ```
//! `--schedule FILE` runs the fault schedule in FILE (format in
//! `sim::nemesis`) in place of the one the seed draws, for the scenarios
//! driven by a fault plan (all but `controller-leader-kill`); the seed
//! still decides everything else. `shrink` replays a failing seed with ever
//! smaller schedules (see `scenarios::shrink`), keeps the smallest that
//! still fails the same way, writes it (default
//! `shrunk-<scenario>-<seed>.schedule`) and prints the command that replays
//! it.
//! `--buggify` lets the BUGGIFY sites of broker code fire (the same as
//! `--config buggify=true`; see `broker::testbed`); `--marks` ends a sweep
//! with the coverage marks its runs reached.
//! `--shard I/N` runs the seeds `s` of the range with `(s - first) mod N ==
//! I - 1` (see `scenarios::shard`); `--json` writes a line per seed and
//! `--junit` a JUnit XML report (see `scenarios::sweep_report`). On a
//! terminal, a sweep shows a progress bar on stderr.
//! Exit status: 0 valid, 1 anomalies found (invalid), 2 the run itself
//! failed (or this is not a simulation build). `shrink` exits 0 once it has
//! written a failing schedule, 2 if there is nothing to shrink (the run
//! passes, or the scenario has no plan).

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
        /// Let BUGGIFY sites in broker code fire (sites enabled by the seed).
        #[arg(long)]
        buggify: bool,
        /// Run this fault schedule (a file `dlog-sim shrink` writes) instead
        /// of the one the seed draws.
        #[arg(long, value_name = "FILE")]
        schedule: Option<std::path::PathBuf>,
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
        /// Run only shard I of N: the seeds s with (s - first) mod N = I - 1,
        /// so N jobs with 1/N ... N/N cover the range exactly once.
        #[arg(long, value_name = "I/N")]
        shard: Option<scenarios::shard::Shard>,
        /// Write one JSON line per seed here (in seed order).
        #[arg(long, value_name = "FILE")]
        json: Option<std::path::PathBuf>,
        /// Write a JUnit XML report here: a testcase per seed.
        #[arg(long, value_name = "FILE")]
        junit: Option<std::path::PathBuf>,
        /// Let BUGGIFY sites in broker code fire (sites enabled by each seed).
        #[arg(long)]
        buggify: bool,
        /// End with the coverage marks reached (and BUGGIFY sites fired) over the sweep.
        #[arg(long)]
        marks: bool,
        /// Run this fault schedule with every seed instead of each seed's own.
        #[arg(long, value_name = "FILE")]
        schedule: Option<std::path::PathBuf>,
    },
    /// Shrink a failing seed's fault schedule: drop faults, shorten them,
    /// move them later, while the run still fails the same way.
    Shrink {
        /// Scenario name (see `list`; not controller-leader-kill).
        #[arg(long)]
        scenario: String,
        /// The failing seed.
        #[arg(long)]
        seed: u64,
        /// Override a setting, as for `run` (repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE")]
        config: Vec<String>,
        /// As for `run`.
        #[arg(long)]
        buggify: bool,
        /// Start from this schedule instead of the seed's own.
        #[arg(long, value_name = "FILE")]
        schedule: Option<std::path::PathBuf>,
        /// Where to write the shrunk schedule [default: shrunk-<scenario>-<seed>.schedule].
        #[arg(long, value_name = "FILE")]
        out: Option<std::path::PathBuf>,
        /// Runs at once (threads); default: the number of cores.
        #[arg(long)]
        jobs: Option<usize>,
        /// Most runs to spend.
        #[arg(long, default_value_t = 400)]
        max_tries: usize,
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

/// `--buggify` is the config pair `buggify=true` (so a sweep's config, its
/// JSON lines and its replay commands carry it like any other setting).
fn with_buggify(mut config: Vec<String>, buggify: bool) -> Vec<String> {
    if buggify && !config.iter().any(|pair| pair == "buggify=true") {
        config.push("buggify=true".to_string());
    }
    config
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
            buggify,
            schedule,
        } => sim_build::run(sim_build::RunArgs {
            scenario,
            seed,
            history,
            trace,
            config: with_buggify(config, buggify),
            check_determinism,
            html,
            schedule,
        }),
        #[cfg(madsim)]
        Command::Sweep {
            scenario,
            seeds,
            jobs,
            config,
            all,
            shard,
            json,
            junit,
            buggify,
            marks,
            schedule,
        } => match parse_seeds(&seeds) {
            Ok(range) => sim_build::sweep(sim_build::SweepArgs {
                scenario,
                range,
                jobs,
                config: with_buggify(config, buggify),
                all,
                marks,
                shard: shard.unwrap_or(scenarios::shard::Shard::WHOLE),
                json,
                junit,
                schedule,
            }),
            Err(message) => {
                eprintln!("{message}");
                2
            }
        },
        #[cfg(madsim)]
        Command::Shrink {
            scenario,
            seed,
            config,
            buggify,
            schedule,
            out,
            jobs,
            max_tries,
        } => sim_build::shrink(sim_build::ShrinkArgs {
            scenario,
            seed,
            config: with_buggify(config, buggify),
            schedule,
            out,
            jobs,
            max_tries,
        }),
        #[cfg(not(madsim))]
        Command::Run { .. } | Command::Sweep { .. } | Command::Shrink { .. } => {
            let _ = (parse_seeds, with_buggify);
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
    use std::io::{IsTerminal, Write};
    use std::path::PathBuf;
    use std::sync::Mutex;

    use checker::Validity;
    use scenarios::run::{replay_command_with_schedule, run_seed, schedule, RunError, RunOptions, RunOutcome};
    use sim::nemesis::FaultPlan;
    use scenarios::shard::Shard;
    use scenarios::sweep_report::{junit_xml, InOrder, SeedRecord, SweepInfo, Verdict};

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

    /// Reads a schedule file, or says why not (naming the line).
    fn read_schedule(path: &PathBuf) -> Result<FaultPlan, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        FaultPlan::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Reads `--schedule`, if given; prints why not and returns None on error.
    fn optional_schedule(path: &Option<PathBuf>) -> Result<Option<FaultPlan>, ()> {
        match path.as_ref().map(read_schedule).transpose() {
            Ok(plan) => Ok(plan),
            Err(message) => {
                eprintln!("{message}");
                Err(())
            }
        }
    }

    /// What `dlog-sim run` was asked to do.
    pub struct RunArgs {
        pub scenario: String,
        pub seed: u64,
        pub history: Option<PathBuf>,
        pub trace: Option<PathBuf>,
        pub config: Vec<String>,
        pub check_determinism: bool,
        pub html: Option<PathBuf>,
        pub schedule: Option<PathBuf>,
    }

    pub fn run(args: RunArgs) -> i32 {
        let RunArgs { scenario, seed, history, trace, config, check_determinism, html, schedule: schedule_path } = args;
        let Ok(plan) = optional_schedule(&schedule_path) else { return 2 };
        let options = RunOptions { scenario, seed, config, schedule: plan };
        let schedule_file = schedule_path.as_ref().map(|p| p.display().to_string());
        let replay_command = |options: &RunOptions| replay_command_with_schedule(options, schedule_file.as_deref());
        let plan = match schedule(&options) {
            Ok(plan) => plan,
            Err(error) => {
                eprintln!("{error}");
                return 2;
            }
        };
        println!("scenario {} seed {seed}", options.scenario);
        if let Some(path) = &schedule_file {
            println!("schedule from {path} (instead of the seed's)");
        }
        print!("{plan}");
        let buggify = scenarios::run::setup(&options).map(|setup| setup.buggify).unwrap_or(false);
        if buggify {
            println!("{}", scenarios::coverage::buggify_header(seed));
        }
        if let Some(path) = &trace {
            if !install_trace(path) {
                return 2;
            }
            tracing::info!(seed, scenario = %options.scenario, "run starts\n{plan}");
            if buggify {
                tracing::info!("{}", scenarios::coverage::buggify_header(seed));
            }
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
        println!("{}", scenarios::coverage::marks_line(&outcome.coverage));
        if buggify {
            println!("{}", scenarios::coverage::buggify_fired_line(&outcome.coverage));
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
    fn add_figures(totals: &mut std::collections::BTreeMap<String, (u64, u64)>, notes: &[String]) {
        for note in notes {
            let Some((name, rest)) = note.split_once(": ") else { continue };
            let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()) else { continue };
            let entry = totals.entry(name.to_string()).or_insert((0, 0));
            entry.0 += value;
            entry.1 += 1;
        }
    }

    /// What `dlog-sim sweep` was asked to do.
    pub struct SweepArgs {
        pub scenario: String,
        /// First and last seed, both included.
        pub range: (u64, u64),
        pub jobs: Option<usize>,
        pub config: Vec<String>,
        /// A line for every seed, not just failing ones.
        pub all: bool,
        /// End with the marks reached over the sweep.
        pub marks: bool,
        pub shard: Shard,
        pub json: Option<PathBuf>,
        pub junit: Option<PathBuf>,
        /// `--schedule`: one fault schedule for every seed.
        pub schedule: Option<PathBuf>,
    }

    /// How a sweep shows how far it got: a bar on stderr when stderr is a
    /// terminal; otherwise nothing beyond the per-seed lines on stdout.
    enum Progress {
        Bar(indicatif::ProgressBar),
        Lines,
    }

    impl Progress {
        fn new(seeds: u64) -> Progress {
            if !std::io::stderr().is_terminal() {
                return Progress::Lines;
            }
            let bar = indicatif::ProgressBar::new(seeds);
            let style = indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} seeds, eta {eta}  {msg}")
                .map(|style| style.progress_chars("=> "))
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            bar.set_style(style);
            Progress::Bar(bar)
        }

        /// Prints a line on stdout, out of the bar's way.
        fn println(&self, line: &str) {
            match self {
                Progress::Bar(bar) => bar.suspend(|| println!("{line}")),
                Progress::Lines => println!("{line}"),
            }
        }

        fn advance(&self, invalid: usize, failed: usize) {
            if let Progress::Bar(bar) = self {
                bar.set_message(format!("{invalid} invalid, {failed} failed"));
                bar.inc(1);
            }
        }

        fn finish(&self) {
            if let Progress::Bar(bar) = self {
                bar.finish_and_clear();
            }
        }
    }

    /// What the threads of a sweep share, behind one lock.
    struct SweepState {
        records: Vec<SeedRecord>,
        figures: std::collections::BTreeMap<String, (u64, u64)>,
        /// Marks and BUGGIFY sites over the runs so far.
        coverage: scenarios::coverage::CoverageTally,
        /// `--json`: the file and the lines waiting for an earlier seed.
        json: Option<(std::fs::File, InOrder<String>)>,
        /// The first error writing `--json`, reported at the end.
        json_error: Option<String>,
    }

    /// A seed's outcome as a record for `--json` and `--junit`.
    fn record_of(
        options: &RunOptions,
        outcome: &Result<RunOutcome, RunError>,
        wall: std::time::Duration,
        schedule_file: Option<&str>,
    ) -> SeedRecord {
        let seconds = |ns: u64| ns as f64 / 1e9;
        let (verdict, anomalies, reason, simulated_seconds, events) = match outcome {
            Ok(outcome) => {
                let (verdict, anomalies, reason) = match outcome.report.valid {
                    Validity::Valid => (Verdict::Valid, Vec::new(), None),
                    Validity::Invalid => (Verdict::Invalid, outcome.report.disallowed().iter().map(|s| s.to_string()).collect(), None),
                    Validity::Unknown => (Verdict::Failed, Vec::new(), Some("checker verdict unknown".to_string())),
                };
                (verdict, anomalies, reason, Some(seconds(outcome.simulated_ns)), outcome.history.lines().count())
            }
            Err(error) => {
                let (simulated, events) = match error {
                    RunError::Failed { simulated_ns, history, .. } => (simulated_ns.map(seconds), history.lines().count()),
                    _ => (None, 0),
                };
                (Verdict::Failed, Vec::new(), Some(error.to_string()), simulated, events)
            }
        };
        SeedRecord {
            scenario: options.scenario.clone(),
            seed: options.seed,
            verdict,
            anomalies,
            reason,
            simulated_seconds,
            wall_ms: u64::try_from(wall.as_millis()).unwrap_or(u64::MAX),
            events: events as u64,
            config: options.config.clone(),
            replay: replay_command_with_schedule(options, schedule_file),
        }
    }

    /// Creates (truncates) an output file before any seed runs, so a bad
    /// path fails at once rather than after the sweep.
    fn create(path: &PathBuf) -> Option<std::fs::File> {
        match std::fs::File::create(path) {
            Ok(file) => Some(file),
            Err(error) => {
                eprintln!("cannot write {}: {error}", path.display());
                None
            }
        }
    }

    pub fn sweep(args: SweepArgs) -> i32 {
        let SweepArgs { scenario, range: (first, last), jobs, config, all, marks, shard, json, junit, schedule: schedule_path } = args;
        if scenarios::find(&scenario).is_none() {
            eprintln!("unknown scenario {scenario:?} (see `dlog-sim list`)");
            return 2;
        }
        let Ok(plan) = optional_schedule(&schedule_path) else { return 2 };
        let schedule_file = schedule_path.as_ref().map(|p| p.display().to_string());
        if plan.is_some() {
            // A schedule that does not fit the scenario is refused once, before any seed runs.
            let options = RunOptions { scenario: scenario.clone(), seed: first, config: config.clone(), schedule: plan.clone() };
            if let Err(error) = scenarios::run::setup(&options) {
                eprintln!("{error}");
                return 2;
            }
        }
        let jobs = jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let json_file = match &json {
            Some(path) => match create(path) {
                Some(file) => Some(file),
                None => return 2,
            },
            None => None,
        };
        let junit_file = match &junit {
            Some(path) => match create(path) {
                Some(file) => Some(file),
                None => return 2,
            },
            None => None,
        };
        let seeds = shard.seeds(first, last);
        if !shard.is_whole() {
            let which = match (seeds.nth(0), seeds.nth(seeds.len().saturating_sub(1))) {
                (Some(a), Some(b)) => format!("{a} to {b}, one in {}", shard.count()),
                _ => "none".to_string(),
            };
            println!("shard {shard} of seeds {first}..{last}: {} seeds ({which})", seeds.len());
        }
        let progress = Progress::new(seeds.len());
        let state = Mutex::new(SweepState {
            records: Vec::new(),
            figures: std::collections::BTreeMap::new(),
            coverage: scenarios::coverage::CoverageTally::default(),
            json: json_file.map(|file| (file, InOrder::default())),
            json_error: None,
        });
        let options_for = |seed| RunOptions {
            scenario: scenario.clone(),
            seed,
            config: config.clone(),
            schedule: plan.clone(),
        };
        scenarios::run::sweep_seeds(seeds, jobs, options_for, |options, outcome, wall| {
            let seed = options.seed;
            let record = record_of(options, &outcome, wall, schedule_file.as_deref());
            let line = match record.verdict {
                Verdict::Valid => all.then(|| format!("seed {seed:>6}: valid")),
                Verdict::Invalid => Some(format!("seed {seed:>6}: INVALID ({})  replay: {}", record.anomalies.join(", "), record.replay)),
                Verdict::Failed => Some(format!(
                    "seed {seed:>6}: RUN FAILED ({})  replay: {}",
                    record.reason.as_deref().unwrap_or_default(),
                    record.replay
                )),
            };
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(outcome) = &outcome {
                add_figures(&mut state.figures, &outcome.notes);
                state.coverage.add(seed, &outcome.coverage);
            }
            if let Some(line) = line {
                progress.println(&line);
            }
            let position = seeds.position(seed).expect("the sweep runs only the shard's seeds");
            let json_line = record.to_json_line();
            state.records.push(record);
            let state = &mut *state;
            if let Some((file, order)) = &mut state.json {
                for due in order.push(position, json_line) {
                    if let Err(error) = file.write_all(due.as_bytes()) {
                        state.json_error.get_or_insert_with(|| error.to_string());
                    }
                }
            }
            let invalid = state.records.iter().filter(|r| r.verdict == Verdict::Invalid).count();
            let failed = state.records.iter().filter(|r| r.verdict == Verdict::Failed).count();
            progress.advance(invalid, failed);
            false
        });
        progress.finish();
        let mut state = state.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut status_on_write = 0;
        if let Some((mut file, order)) = state.json.take() {
            // Lines held back for a seed that never ran (none unless a run
            // stopped the sweep early).
            for due in order.rest() {
                if let Err(error) = file.write_all(due.as_bytes()) {
                    state.json_error.get_or_insert_with(|| error.to_string());
                }
            }
            if let Some(error) = &state.json_error {
                eprintln!("cannot write {}: {error}", json.as_ref().map_or_else(String::new, |p| p.display().to_string()));
                status_on_write = 2;
            }
        }
        state.records.sort_by_key(|r| r.seed);
        let records = &state.records;
        if let (Some(mut file), Some(path)) = (junit_file, &junit) {
            let info = SweepInfo {
                scenario: scenario.clone(),
                seeds: (first, last),
                shard: (!shard.is_whole()).then(|| shard.to_string()),
                config: config.clone(),
            };
            if let Err(error) = file.write_all(junit_xml(&info, records).as_bytes()) {
                eprintln!("cannot write {}: {error}", path.display());
                status_on_write = 2;
            }
        }
        let valid = records.iter().filter(|r| r.verdict == Verdict::Valid).count();
        let invalid = records.iter().filter(|r| r.verdict == Verdict::Invalid).count();
        let failed = records.iter().filter(|r| r.verdict == Verdict::Failed).count();
        println!(
            "sweep {scenario} seeds {first}..{last}: {} runs, {valid} valid, {invalid} invalid, {failed} failed",
            records.len()
        );
        for (name, (total, runs)) in &state.figures {
            println!("  {name}: {total} over {runs} runs ({:.1} per run)", *total as f64 / (*runs).max(1) as f64);
        }
        if marks {
            print!("{}", state.coverage.render());
        }
        if invalid > 0 {
            1
        } else if failed > 0 || status_on_write != 0 {
            2
        } else {
            0
        }
    }

    /// What `dlog-sim shrink` was asked to do.
    pub struct ShrinkArgs {
        pub scenario: String,
        pub seed: u64,
        pub config: Vec<String>,
        pub schedule: Option<PathBuf>,
        pub out: Option<PathBuf>,
        pub jobs: Option<usize>,
        pub max_tries: usize,
    }

    pub fn shrink(args: ShrinkArgs) -> i32 {
        let ShrinkArgs { scenario, seed, config, schedule: schedule_path, out, jobs, max_tries } = args;
        if scenario == "controller-leader-kill" {
            eprintln!("cannot shrink: {}", scenarios::run::LEADER_KILL_NO_SCHEDULE);
            return 2;
        }
        let Ok(plan) = optional_schedule(&schedule_path) else { return 2 };
        let jobs = jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let run = RunOptions { scenario: scenario.clone(), seed, config, schedule: plan };
        let out = out.unwrap_or_else(|| PathBuf::from(format!("shrunk-{scenario}-{seed}.schedule")));
        println!("shrink {}", replay_command_with_schedule(&run, schedule_path.as_ref().map(|p| p.display().to_string()).as_deref()));
        let options = scenarios::shrink::ShrinkOptions { run: run.clone(), jobs, max_tries };
        let mut progress = |line: &str| {
            println!("{line}");
            let _ = std::io::stdout().flush();
        };
        let shrunk = match scenarios::shrink::shrink(&options, &mut progress) {
            Ok(shrunk) => shrunk,
            Err(error) => {
                eprintln!("cannot shrink: {error}");
                return 2;
            }
        };
        println!(
            "shrunk in {} tries{}: {} faults -> {} faults",
            shrunk.tries,
            if shrunk.out_of_tries { " (stopped at --max-tries)" } else { "" },
            shrunk.original.faults.len(),
            shrunk.shrunk.faults.len()
        );
        if let (Some(before), Some(after)) = (&shrunk.original.members, &shrunk.shrunk.members) {
            println!("member schedule: {} member faults -> {}", before.len(), after.len());
        }
        print!("{}", shrunk.shrunk);
        for m in shrunk.shrunk.members.iter().flatten() {
            println!("  member fault at {:>6} ms: process {}: {:?}", m.at_ms, m.process, m.fault);
        }
        println!("verdict: {} (originally {})", shrunk.verdict, shrunk.original_verdict);
        if !write(&out, &shrunk.shrunk.to_file_text()) {
            return 2;
        }
        println!("wrote {}", out.display());
        println!("replay: {}", replay_command_with_schedule(&run, Some(&out.display().to_string())));
        0
    }
}
