//! Running one seed of a scenario: build the runtime from the seed, run the
//! scenario, check its history, and report.

use std::time::Duration;

use broker::config::BrokerConfig;
use broker::controller::ControllerConfig;
use broker::raft::RaftConfig;
use checker::{Report, Validity};
use sim::cluster::QuorumSettings;
use sim::nemesis::{FaultPlan, NemesisConfig};

use crate::controller_chaos::Faults;
use crate::history::Recorder;

/// Client settings a run can override with `--config client.KEY=VALUE`.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// `client.request.timeout.ms`: per-request timeout.
    pub request_timeout_ms: u64,
    /// `client.retries`: retries of definite failures.
    pub retries: u32,
    /// `client.retry.ambiguous`: also retry sends whose outcome is unknown
    /// (a teaching knob: without idempotence this duplicates records).
    pub retry_ambiguous: bool,
    /// `client.acks`: the producers' acks (-1 = all, the default; 1 is a
    /// teaching knob in replicated scenarios).
    pub acks: i16,
    /// `client.commit.before.process`: group members commit what they
    /// fetched before processing it (a teaching knob: a crash in between
    /// loses those records for the group).
    pub commit_before_process: bool,
    /// `client.enable.idempotence`: producers send with a producer id and
    /// sequence numbers, so retrying an ambiguous send cannot duplicate it.
    pub enable_idempotence: bool,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            request_timeout_ms: 1_000,
            retries: 3,
            retry_ambiguous: false,
            acks: -1,
            commit_before_process: false,
            enable_idempotence: false,
        }
    }
}

/// Everything a scenario needs to start.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The run's seed.
    pub seed: u64,
    /// Broker settings (defaults plus `--config` overrides).
    pub broker: BrokerConfig,
    /// Client settings.
    pub client: ClientSettings,
    /// Controller quorum settings (`raft.*`, `broker.session.timeout.ms`).
    pub quorum: QuorumSettings,
    /// Fault-schedule overrides (`nemesis.*`), for scenarios that honour them.
    pub nemesis: NemesisSettings,
    /// `buggify=true` (`--buggify`): BUGGIFY sites in broker code may fire
    /// (see `broker::testbed`).
    pub buggify: bool,
    /// A fault schedule that replaces the one the seed would draw
    /// (`--schedule FILE`), already checked to fit the scenario.
    pub schedule: Option<FaultPlan>,
}

impl Setup {
    /// The fault schedule of the run: the one given with `--schedule`, or
    /// else the one the seed draws for `config`.
    pub fn fault_plan(&self, config: &NemesisConfig) -> FaultPlan {
        self.schedule.clone().unwrap_or_else(|| FaultPlan::generate(self.seed, config))
    }
}

/// The `--config` pair that `--buggify` stands for.
pub const BUGGIFY_PAIR: &str = "buggify=true";

/// `--config nemesis.KEY=VALUE` overrides of a scenario's fault schedule.
#[derive(Debug, Clone, Default)]
pub struct NemesisSettings {
    /// `nemesis.gap_ms=MIN-MAX`: quiet time between faults. Shorter than a
    /// scenario's default, it lets a second fault strike before the first
    /// was repaired.
    pub gap_ms: Option<(u64, u64)>,
    /// `nemesis.power_loss=true`: also draw power losses of every node at
    /// once (with no fsync per batch, the writes that only page caches
    /// held die with them).
    pub power_loss: bool,
}

/// What a scenario hands back besides its history.
#[derive(Debug, Clone)]
pub struct ScenarioRun {
    /// The fault schedule, as printed.
    pub schedule: String,
    /// Hash of every frame, fault and disk operation.
    pub trace_hash: u64,
    /// Figures worth printing (e.g. elections per run).
    pub notes: Vec<String>,
    /// Invariants the run saw broken, beyond what its history shows.
    pub violations: Vec<Violation>,
}

/// An invariant the scenario checked itself (not from the history) and saw
/// broken; it makes the run invalid like an anomaly the checker finds.
#[derive(Debug, Clone)]
pub struct Violation {
    /// Name, reported like an anomaly name.
    pub name: &'static str,
    /// What broke, in plain words.
    pub text: String,
}

/// A finished run.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The seed.
    pub seed: u64,
    /// The fault schedule, as printed.
    pub schedule: String,
    /// The history, JSON Lines.
    pub history: String,
    /// Hash of every frame, fault and disk operation.
    pub trace_hash: u64,
    /// The checker's verdict.
    pub report: Report,
    /// Figures the scenario measured.
    pub notes: Vec<String>,
    /// Virtual time the run lasted, in nanoseconds.
    pub simulated_ns: u64,
    /// Coverage marks the run reached and BUGGIFY sites that were on and
    /// fired (see `broker::testbed`).
    pub coverage: broker::testbed::RunCoverage,
}

/// Why a run produced no verdict.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// No scenario by that name.
    #[error("unknown scenario {0:?} (see `dlog-sim list`)")]
    UnknownScenario(String),
    /// A `--config` pair was rejected.
    #[error("invalid --config: {0}")]
    Config(String),
    /// The scenario itself failed (setup, liveness, a panic).
    #[error("run failed: {reason}")]
    Failed {
        /// What went wrong.
        reason: String,
        /// The schedule, if it was drawn.
        schedule: String,
        /// The history so far.
        history: String,
        /// Virtual time until it failed, in nanoseconds (None if the run
        /// died where the time could not be read).
        simulated_ns: Option<u64>,
    },
    /// The recorded history did not parse (a bug in the recorder).
    #[error("history did not parse: {0}")]
    History(String),
}

/// Settings for one run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Scenario name.
    pub scenario: String,
    /// Seed.
    pub seed: u64,
    /// `KEY=VALUE` overrides: `client.*` for clients, the rest for brokers.
    pub config: Vec<String>,
    /// `--schedule FILE`: this fault schedule instead of the seed's (the
    /// seed still decides everything else). Only for scenarios driven by a
    /// [`FaultPlan`] (see [`nemesis_config`]).
    pub schedule: Option<FaultPlan>,
}

/// Why `controller-leader-kill` takes no schedule.
pub const LEADER_KILL_NO_SCHEDULE: &str = "controller-leader-kill has no fault schedule to replace or shrink: its nemesis \
     is a policy that crashes each new controller leader as the run goes (see scenarios/src/leader_kill.rs), not a \
     plan drawn before the run";

/// The fault mix of a scenario driven by a [`FaultPlan`] (what its plan is
/// drawn from and what a `--schedule` must fit); `None` for a scenario whose
/// nemesis decides as the run goes (`controller-leader-kill`).
pub fn nemesis_config(scenario: &str, setup: &Setup) -> Option<NemesisConfig> {
    match scenario {
        "single-node-crash" => Some(crate::single_node_crash::nemesis_config()),
        "controller-chaos" => Some(crate::controller_chaos::nemesis_config(setup.quorum.controllers)),
        "replication-chaos" => Some(crate::replication_chaos::nemesis_config(setup)),
        "group-chaos" => Some(crate::group_chaos::nemesis_config(setup)),
        "txn-chaos" => Some(crate::txn_chaos::nemesis_config(setup)),
        _ => None,
    }
}

/// The fault schedule a run of `options` uses: its `schedule`, or the one
/// its seed draws.
pub fn fault_plan(options: &RunOptions) -> Result<FaultPlan, RunError> {
    crate::find(&options.scenario).ok_or_else(|| RunError::UnknownScenario(options.scenario.clone()))?;
    let setup = setup(options)?;
    let config = nemesis_config(&options.scenario, &setup).ok_or_else(|| RunError::Config(LEADER_KILL_NO_SCHEDULE.into()))?;
    let mut plan = setup.fault_plan(&config);
    if options.scenario == "group-chaos" && plan.members.is_none() {
        // The member schedule is part of the plan too (listed, so that a
        // shrinker can drop member faults).
        plan.members = Some(crate::group_chaos::member_faults(setup.seed));
    }
    Ok(plan)
}

/// Builds the setup from options, applying overrides.
pub fn setup(options: &RunOptions) -> Result<Setup, RunError> {
    let mut broker = BrokerConfig {
        log_segment_bytes: 64 * 1024,
        ..BrokerConfig::default()
    };
    let mut client = ClientSettings::default();
    let mut nemesis = NemesisSettings::default();
    let mut buggify = false;
    let mut quorum = QuorumSettings {
        controllers: 3,
        raft: RaftConfig::new(0, Vec::new()),
        fsync: true,
        tick_ms: 100,
        metadata: ControllerConfig::default(),
    };
    if options.scenario.starts_with("controller-") {
        // Fence a broker after 2 s without heartbeats (not 9 s), so the
        // brokers' faults move partition leaders within a run.
        quorum.metadata.broker_session_timeout_ms = 2_000;
    }
    if ["replication-chaos", "group-chaos", "txn-chaos"].contains(&options.scenario.as_str()) {
        // As in controller-chaos, a silent broker is fenced (and leaves
        // every ISR) after 2 s.
        quorum.metadata.broker_session_timeout_ms = 2_000;
        // Kafka's default flush policy: durability comes from replication.
        broker.log_flush = broker::config::FlushPolicy::Never;
        broker.min_insync_replicas = 2;
        // A follower cut off from its leader (but not from the quorum)
        // leaves the ISR after 5 s, not Kafka's 30 s: runs are 20 s long.
        broker.replica_lag_time_max_ms = 5_000;
        broker.replica_fetch_backoff_ms = 200;
    }
    if options.scenario == "group-chaos" || options.scenario == "txn-chaos" {
        // Three `__consumer_offsets` partitions, replicated on every broker.
        broker.offsets_topic_num_partitions = 3;
    }
    if options.scenario == "txn-chaos" {
        // Three `__transaction_state` partitions, replicated on every broker.
        broker.transaction_state_log_num_partitions = 3;
        // Kafka's producer at its defaults: idempotent, retrying every failure.
        client.enable_idempotence = true;
        client.retry_ambiguous = true;
    }
    if options.scenario == "controller-leader-kill" {
        // One entry per AppendEntries: a new leader then copies an old
        // entry to a follower on its own, before its own no-op, which is
        // the step of Raft's Figure 8 that batching would hide.
        quorum.raft.max_entries_per_append = 1;
        // Elections in 100..200 ms rather than 1..2 s: more leaders to kill.
        quorum.tick_ms = 10;
    }
    for pair in &options.config {
        let (key, value) = pair.split_once('=').ok_or_else(|| RunError::Config(format!("expected KEY=VALUE, got {pair:?}")))?;
        let bad = || RunError::Config(format!("invalid value {value:?} for {key}"));
        match key {
            "client.request.timeout.ms" => client.request_timeout_ms = value.parse().map_err(|_| bad())?,
            "client.retries" => client.retries = value.parse().map_err(|_| bad())?,
            "client.retry.ambiguous" => client.retry_ambiguous = value.parse().map_err(|_| bad())?,
            "client.acks" => client.acks = value.parse().ok().filter(|a| matches!(a, -1..=1)).ok_or_else(bad)?,
            "client.commit.before.process" => client.commit_before_process = value.parse().map_err(|_| bad())?,
            "client.enable.idempotence" => client.enable_idempotence = value.parse().map_err(|_| bad())?,
            _ if key.starts_with("client.") => return Err(RunError::Config(format!("unknown client setting {key:?}"))),
            "raft.prevote" => quorum.raft.prevote = value.parse().map_err(|_| bad())?,
            "raft.check_quorum" => quorum.raft.check_quorum = value.parse().map_err(|_| bad())?,
            "raft.commit_old_term_entries_by_count" => {
                quorum.raft.commit_old_term_entries_by_count = value.parse().map_err(|_| bad())?
            }
            "raft.fsync" => quorum.fsync = value.parse().map_err(|_| bad())?,
            "raft.election_tick" => quorum.raft.election_tick = value.parse().map_err(|_| bad())?,
            "raft.heartbeat_tick" => quorum.raft.heartbeat_tick = value.parse().map_err(|_| bad())?,
            "raft.tick.ms" => quorum.tick_ms = value.parse().map_err(|_| bad())?,
            "raft.controllers" => quorum.controllers = value.parse().map_err(|_| bad())?,
            "raft.max_entries_per_append" => quorum.raft.max_entries_per_append = value.parse().map_err(|_| bad())?,
            "broker.session.timeout.ms" => quorum.metadata.broker_session_timeout_ms = value.parse().map_err(|_| bad())?,
            "unclean.leader.election.enable" => {
                quorum.metadata.unclean_leader_election_enable = value.parse().map_err(|_| bad())?
            }
            _ if key.starts_with("raft.") => return Err(RunError::Config(format!("unknown raft setting {key:?}"))),
            "nemesis.gap_ms" => {
                let (min, max) = value.split_once('-').ok_or_else(bad)?;
                let (min, max): (u64, u64) = (min.parse().map_err(|_| bad())?, max.parse().map_err(|_| bad())?);
                if min > max {
                    return Err(bad());
                }
                nemesis.gap_ms = Some((min, max));
            }
            "nemesis.power_loss" => nemesis.power_loss = value.parse().map_err(|_| bad())?,
            _ if key.starts_with("nemesis.") => return Err(RunError::Config(format!("unknown nemesis setting {key:?}"))),
            "buggify" => buggify = value.parse().map_err(|_| bad())?,
            _ => broker.set(pair).map_err(|e| RunError::Config(e.to_string()))?,
        }
    }
    // One `min.insync.replicas` for brokers (acks=all) and controllers
    // (eligible leader replicas), as in a Kafka cluster.
    quorum.metadata.min_insync_replicas = broker.min_insync_replicas;
    if !(quorum.controllers == 3 || quorum.controllers == 5) {
        return Err(RunError::Config("raft.controllers must be 3 or 5".into()));
    }
    if quorum.raft.max_entries_per_append == 0 {
        return Err(RunError::Config("raft.max_entries_per_append must be at least 1".into()));
    }
    let mut setup = Setup {
        seed: options.seed,
        broker,
        client,
        quorum,
        nemesis,
        buggify,
        schedule: None,
    };
    if let Some(plan) = &options.schedule {
        let config = nemesis_config(&options.scenario, &setup).ok_or_else(|| {
            if options.scenario == "controller-leader-kill" {
                RunError::Config(LEADER_KILL_NO_SCHEDULE.into())
            } else {
                RunError::UnknownScenario(options.scenario.clone())
            }
        })?;
        let misfit = |e: String| RunError::Config(format!("the schedule does not fit {}: {e}", options.scenario));
        plan.check_fits(&config).map_err(misfit)?;
        match (&plan.members, options.scenario.as_str()) {
            (Some(members), "group-chaos") => crate::group_chaos::check_members(members).map_err(misfit)?,
            (Some(_), _) => return Err(misfit("it lists member faults, which only group-chaos has".into())),
            (None, _) => {}
        }
        setup.schedule = Some(plan.clone());
    }
    Ok(setup)
}

/// Runs one seed to a verdict. Each call builds its own runtime, so runs
/// in different threads do not share anything.
pub fn run_seed(options: &RunOptions) -> Result<RunOutcome, RunError> {
    crate::find(&options.scenario).ok_or_else(|| RunError::UnknownScenario(options.scenario.clone()))?;
    let setup = setup(options)?;
    // Marks and BUGGIFY state are per thread; this run owns this thread
    // until `block_on` returns (madsim runs every task on it).
    broker::testbed::begin_run(options.seed, setup.buggify);
    let history = Recorder::new();
    let mut runtime = madsim::runtime::Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    // A bound on virtual time: a run that has not ended by then is stuck.
    runtime.set_time_limit(Duration::from_secs(600));
    let scenario = options.scenario.clone();
    let recorder = history.clone();
    let elapsed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(ELAPSED_UNKNOWN));
    let stopwatch = VirtualStopwatch(elapsed.clone());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async move {
            // Dropped when the scenario ends (or unwinds), inside the runtime.
            let _stopwatch = stopwatch;
            match scenario.as_str() {
                "single-node-crash" => crate::single_node_crash::run(setup, recorder).await,
                "controller-chaos" => crate::controller_chaos::run(setup, recorder, Faults::Plan).await,
                "controller-leader-kill" => crate::controller_chaos::run(setup, recorder, Faults::LeaderKill).await,
                "replication-chaos" => crate::replication_chaos::run(setup, recorder).await,
                "group-chaos" => crate::group_chaos::run(setup, recorder).await,
                "txn-chaos" => crate::txn_chaos::run(setup, recorder).await,
                other => Err(format!("scenario {other} has no runner")),
            }
        })
    }));
    let coverage = broker::testbed::end_run();
    let history_text = history.to_jsonl();
    let simulated_ns = Some(elapsed.load(std::sync::atomic::Ordering::SeqCst)).filter(|ns| *ns != ELAPSED_UNKNOWN);
    let run = match result {
        Ok(Ok(run)) => run,
        Ok(Err(reason)) => {
            return Err(RunError::Failed {
                reason,
                schedule: String::new(),
                history: history_text,
                simulated_ns,
            })
        }
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            return Err(RunError::Failed {
                reason: format!("panicked: {reason}"),
                schedule: String::new(),
                history: history_text,
                simulated_ns,
            });
        }
    };
    let parsed = checker::parse_jsonl(&history_text).map_err(|e| RunError::History(e.to_string()))?;
    let mut report = checker::check(&parsed);
    add_violations(&mut report, &run.violations);
    Ok(RunOutcome {
        seed: options.seed,
        schedule: run.schedule,
        history: history_text,
        trace_hash: run.trace_hash,
        report,
        notes: run.notes,
        simulated_ns: simulated_ns.expect("a scenario that returned ended inside the runtime"),
        coverage,
    })
}

/// `VirtualStopwatch`'s value until it has read the clock.
const ELAPSED_UNKNOWN: u64 = u64::MAX;

/// Reads the runtime's virtual time when dropped. Reading the clock draws
/// no randomness and schedules nothing, so a run with it is the same run.
struct VirtualStopwatch(std::sync::Arc<std::sync::atomic::AtomicU64>);

impl Drop for VirtualStopwatch {
    fn drop(&mut self) {
        if let Some(time) = madsim::time::TimeHandle::try_current() {
            let ns = u64::try_from(time.elapsed().as_nanos()).unwrap_or(ELAPSED_UNKNOWN - 1);
            self.0.store(ns, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

/// The command that replays a run. A run with a `schedule` is replayed with
/// `--schedule FILE`: see [`replay_command_with_schedule`] to name the file.
pub fn replay_command(options: &RunOptions) -> String {
    replay_command_with_schedule(options, options.schedule.as_ref().map(|_| "FILE"))
}

/// The command that replays a run whose schedule is in `schedule_file`.
pub fn replay_command_with_schedule(options: &RunOptions, schedule_file: Option<&str>) -> String {
    let mut command = format!("dlog-sim run --scenario {} --seed {}", options.scenario, options.seed);
    for pair in &options.config {
        if pair == BUGGIFY_PAIR {
            command.push_str(" --buggify");
        } else {
            command.push_str(&format!(" --config {pair}"));
        }
    }
    if let Some(file) = schedule_file {
        command.push_str(&format!(" --schedule {file}"));
    }
    command
}

/// Folds the scenario's own invariant violations into the checker's report.
fn add_violations(report: &mut Report, violations: &[Violation]) {
    if violations.is_empty() {
        return;
    }
    let mut found = checker::report::Anomalies::default();
    for (position, violation) in violations.iter().enumerate() {
        found.add(violation.name, (0, position), || checker::Example {
            text: violation.text.clone(),
            key: None,
            ops: Vec::new(),
            detail: serde_json::Value::Null,
        });
    }
    for (name, entry) in found.map {
        report.allowed.retain(|allowed| *allowed != name);
        report.anomalies.insert(name, entry);
    }
    report.valid = Validity::Invalid;
}

/// The fault schedule a run will use, without running it (the policy, for
/// a nemesis that decides as the run goes).
pub fn schedule(options: &RunOptions) -> Result<String, RunError> {
    let setup = setup(options)?;
    match options.scenario.as_str() {
        "single-node-crash" => Ok(setup.fault_plan(&crate::single_node_crash::nemesis_config()).to_string()),
        "controller-chaos" => Ok(crate::controller_chaos::schedule(&setup, Faults::Plan)),
        "controller-leader-kill" => Ok(crate::controller_chaos::schedule(&setup, Faults::LeaderKill)),
        "replication-chaos" => Ok(crate::replication_chaos::schedule(&setup)),
        "group-chaos" => Ok(crate::group_chaos::schedule(&setup)),
        "txn-chaos" => Ok(crate::txn_chaos::schedule(&setup)),
        other => Err(RunError::UnknownScenario(other.to_string())),
    }
}

/// Runs `seeds` (both ends included) on `jobs` threads, each seed in its own
/// runtime, handing every result to `visit` as it arrives; `visit` returns
/// true to stop early (seeds already started still finish).
pub fn sweep(
    seeds: std::ops::RangeInclusive<u64>,
    jobs: usize,
    options_for: impl Fn(u64) -> RunOptions + Sync,
    visit: impl Fn(&RunOptions, Result<RunOutcome, RunError>) -> bool + Sync,
) {
    let (first, last) = seeds.into_inner();
    if first > last {
        return;
    }
    let seeds = crate::shard::Shard::WHOLE.seeds(first, last);
    sweep_seeds(seeds, jobs, options_for, |options, result, _wall| visit(options, result));
}

/// As [`sweep`], over one shard's seeds (taken in increasing order), also
/// handing `visit` the host time each run took. That time is measured
/// outside the runtime and never enters it: it is a report, not an input.
pub fn sweep_seeds(
    seeds: crate::shard::ShardSeeds,
    jobs: usize,
    options_for: impl Fn(u64) -> RunOptions + Sync,
    visit: impl Fn(&RunOptions, Result<RunOutcome, RunError>, Duration) -> bool + Sync,
) {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..jobs.max(1) {
            scope.spawn(|| loop {
                let Some(seed) = seeds.nth(next.fetch_add(1, Ordering::SeqCst)) else { break };
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let options = options_for(seed);
                #[allow(clippy::disallowed_methods)] // host time, for the report only
                let started = std::time::Instant::now();
                let result = run_seed(&options);
                let wall = started.elapsed();
                if visit(&options, result, wall) {
                    stop.store(true, Ordering::SeqCst);
                }
            });
        }
    });
}
