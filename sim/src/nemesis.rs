//! The fault schedule: every fault of a run, drawn from its seed before the
//! run starts and printed first, so a failure can be read and replayed.
//!
//! Faults are laid out one after another over the fault phase, each lasting
//! a drawn duration and separated by a drawn quiet gap. After the fault
//! phase everything is healed and the run drains without faults.
//!
//! # The schedule file (`dlog-sim run --schedule FILE`)
//!
//! A plan can be written out ([`FaultPlan::to_file_text`]) and read back
//! ([`FaultPlan::parse`]): `dlog-sim shrink` writes the schedule it shrank
//! that way, and `dlog-sim run --schedule FILE` runs a seed with that
//! schedule in place of the one the seed would draw (the seed still decides
//! everything else). Version 1 is plain text, one item per line:
//!
//! ```text
//! # comments and blank lines are ignored
//! dlog-sim-schedule 1
//! seed 7
//! healed-at-ms 15000
//! at 1200 crash node=broker-1 down_ms=850
//! at 2500 pause node=broker-1 pause_ms=300
//! at 3100 cut-link client=client-2 node=broker-1 cut_ms=400
//! at 4000 isolate node=broker-2 isolate_ms=1200
//! at 5600 power-loss nodes=broker-1,broker-2 down_ms=700
//! at 6400 clock-skew node=broker-1 skew_ms=-2500
//! at 7000 disk-errors node=broker-1 error_probability_pct=20 window_ms=600
//! at 7800 disk-full node=broker-1 window_ms=500
//! at 8500 read-corruption node=broker-1 corruption_probability_pct=5 window_ms=900
//! ```
//!
//! - `dlog-sim-schedule 1` comes first: the format and its version. A
//!   later, incompatible format gets a new number; this parser refuses any
//!   other.
//! - `seed N`: the seed the plan was drawn from (a record of where it came
//!   from; the run's seed is the `--seed` of the command).
//! - `healed-at-ms N`: the end of the fault phase (`fault_phase_ms`). It must
//!   be the scenario's own, which `dlog-sim run` checks.
//! - `at MS KIND FIELD=VALUE...`: one fault starting `MS` ms after the run
//!   began. Every field of the kind must be given once, in any order:
//!   `node` (a node name), `client` (a client node), `nodes` (names joined
//!   by commas), and the numbers of [`Fault`]: `down_ms`, `pause_ms`,
//!   `cut_ms`, `isolate_ms`, `window_ms`, `skew_ms` (signed),
//!   `error_probability_pct` and `corruption_probability_pct` (0..=100).
//!   Faults come in start order, each starting before `healed-at-ms` and
//!   after the one before has ended (they never overlap: the runner carries
//!   them out one after another).
//!
//! - `members listed`, then `member MS KIND process=N FIELD=VALUE` lines
//!   (optional, `group-chaos` only): the member schedule, replacing the one
//!   the seed draws. Kinds: `crash` and `leave` (`down_ms`), `pause`
//!   (`pause_ms`); `process` is the member's process id in the history.
//!   Member faults come in time order. Without `members listed` the
//!   scenario draws its member schedule from the seed; with it and no
//!   `member` line, members have no faults.
//!
//! ```text
//! members listed
//! member 6020 leave process=2 down_ms=2303
//! member 18463 pause process=3 pause_ms=8811
//! ```
//!
//! Any mistake is an error naming its line ([`ScheduleError`]).

use std::collections::BTreeMap;
use std::fmt;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Mixed into the run seed so the schedule's random stream is independent
/// of every other stream drawn from the same seed.
const SCHEDULE_STREAM: u64 = 0x5eed_0f_fa17;

/// One fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Kill the node (unsynced disk data is lost), restart it after `down_ms`.
    Crash {
        /// Target node name.
        node: String,
        /// How long it stays down.
        down_ms: u64,
    },
    /// Freeze the node's tasks for `pause_ms`, then let them run again.
    Pause {
        /// Target node name.
        node: String,
        /// How long it stays frozen.
        pause_ms: u64,
    },
    /// Cut the links between a client and a node for `cut_ms`.
    CutLink {
        /// Client node name.
        client: String,
        /// Server node name.
        node: String,
        /// How long the link stays cut.
        cut_ms: u64,
    },
    /// Crash every server node at once (a power loss: all unsynced data
    /// everywhere is lost), restart them all after `down_ms`.
    PowerLoss {
        /// Every node that loses power.
        nodes: Vec<String>,
        /// How long they stay down.
        down_ms: u64,
    },
    /// Cut every link between the node and all others for `isolate_ms`.
    Isolate {
        /// Target node name.
        node: String,
        /// How long it stays cut off.
        isolate_ms: u64,
    },
    /// Move the node's wall clock by `skew_ms` (stays until healed).
    ClockSkew {
        /// Target node name.
        node: String,
        /// Offset from true virtual time.
        skew_ms: i64,
    },
    /// Fill the node's disk: no byte more can be written for `window_ms`
    /// (ENOSPC), then the space comes back.
    DiskFull {
        /// Target node name.
        node: String,
        /// How long the disk stays full.
        window_ms: u64,
    },
    /// Make the node's disk return flipped bits on reads for `window_ms`
    /// (the stored data stays intact; checksums must catch every flip).
    ReadCorruption {
        /// Target node name.
        node: String,
        /// Probability that one read returns a flipped bit.
        corruption_probability_pct: u32,
        /// How long reads misbehave.
        window_ms: u64,
    },
    /// Make the node's disk fail writes and fsyncs with EIO for `window_ms`.
    DiskErrors {
        /// Target node name.
        node: String,
        /// Probability that one write or fsync fails.
        error_probability_pct: u32,
        /// How long the disk misbehaves.
        window_ms: u64,
    },
}

impl Fault {
    /// How long the fault lasts before it is undone.
    pub fn duration_ms(&self) -> u64 {
        match self {
            Fault::Crash { down_ms, .. } => *down_ms,
            Fault::Pause { pause_ms, .. } => *pause_ms,
            Fault::CutLink { cut_ms, .. } => *cut_ms,
            Fault::Isolate { isolate_ms, .. } => *isolate_ms,
            Fault::PowerLoss { down_ms, .. } => *down_ms,
            Fault::ClockSkew { .. } => 0,
            Fault::DiskErrors { window_ms, .. }
            | Fault::DiskFull { window_ms, .. }
            | Fault::ReadCorruption { window_ms, .. } => *window_ms,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Crash { node, down_ms } => write!(f, "crash {node}, restart after {down_ms} ms"),
            Fault::Pause { node, pause_ms } => write!(f, "pause {node} for {pause_ms} ms"),
            Fault::CutLink { client, node, cut_ms } => write!(f, "cut {client} <-> {node} for {cut_ms} ms"),
            Fault::PowerLoss { nodes, down_ms } => write!(f, "power loss on {}, restart after {down_ms} ms", nodes.join(", ")),
            Fault::Isolate { node, isolate_ms } => write!(f, "isolate {node} from every node for {isolate_ms} ms"),
            Fault::ClockSkew { node, skew_ms } => write!(f, "skew {node}'s clock by {skew_ms:+} ms"),
            Fault::DiskErrors {
                node,
                error_probability_pct,
                window_ms,
            } => write!(f, "disk errors on {node} ({error_probability_pct}% of writes/fsyncs) for {window_ms} ms"),
            Fault::DiskFull { node, window_ms } => write!(f, "fill {node}'s disk for {window_ms} ms"),
            Fault::ReadCorruption {
                node,
                corruption_probability_pct,
                window_ms,
            } => write!(f, "flip bits in {corruption_probability_pct}% of {node}'s reads for {window_ms} ms"),
        }
    }
}

/// A fault at a point of virtual time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFault {
    /// When it starts, in ms since the run began.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// Which faults a scenario wants and over how long.
#[derive(Debug, Clone)]
pub struct NemesisConfig {
    /// Server nodes faults may target.
    pub nodes: Vec<String>,
    /// Client nodes whose links may be cut.
    pub clients: Vec<String>,
    /// When the first fault may start.
    pub start_ms: u64,
    /// When faults stop; the run heals and drains after this.
    pub fault_phase_ms: u64,
    /// Quiet time between faults, drawn from this range.
    pub gap_ms: (u64, u64),
    /// Weight of each kind: crash, pause, cut link, clock skew, disk
    /// errors, full disk, read corruption, isolation, power loss.
    pub weights: [u32; 9],
}

/// What happens to one client process that is a group member (the
/// member schedule of `group-chaos`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberFault {
    /// Torn down at its next step, without leaving; back after `down_ms`
    /// as a new member.
    Crash {
        /// How long it stays away.
        down_ms: u64,
    },
    /// Stops between a fetch and processing it for `pause_ms`, longer than
    /// its session: the group moves on without it.
    Pause {
        /// How long it stops.
        pause_ms: u64,
    },
    /// Leaves the group cleanly; back after `down_ms`.
    Leave {
        /// How long it stays away.
        down_ms: u64,
    },
}

/// A member fault at a point of virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduledMemberFault {
    /// When it is due, in ms since the run began (the member acts on it at
    /// its next step).
    pub at_ms: u64,
    /// The member's process id in the history.
    pub process: u64,
    /// What happens.
    pub fault: MemberFault,
}

/// The whole schedule of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The faults, in start order; they do not overlap.
    pub faults: Vec<ScheduledFault>,
    /// When faults stop.
    pub fault_phase_ms: u64,
    /// The member schedule, when the plan gives one (a scenario with group
    /// members draws its own from the seed when this is `None`).
    pub members: Option<Vec<ScheduledMemberFault>>,
}

impl FaultPlan {
    /// Draws a schedule from `seed`.
    pub fn generate(seed: u64, config: &NemesisConfig) -> Self {
        assert!(!config.nodes.is_empty(), "a fault plan needs a node to target");
        assert!(config.gap_ms.0 <= config.gap_ms.1);
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ SCHEDULE_STREAM);
        let weight_total: u32 = config.weights.iter().sum();
        let mut faults = Vec::new();
        let mut now_ms = config.start_ms;
        while weight_total > 0 && now_ms < config.fault_phase_ms {
            now_ms += rng.gen_range(config.gap_ms.0..=config.gap_ms.1);
            if now_ms >= config.fault_phase_ms {
                break;
            }
            let node = config.nodes[rng.gen_range(0..config.nodes.len())].clone();
            let mut pick = rng.gen_range(0..weight_total);
            let kind = config
                .weights
                .iter()
                .position(|&w| {
                    if pick < w {
                        true
                    } else {
                        pick -= w;
                        false
                    }
                })
                .expect("pick < total weight");
            let fault = match kind {
                0 => Fault::Crash {
                    node,
                    down_ms: rng.gen_range(100..=3_000),
                },
                1 => Fault::Pause {
                    node,
                    pause_ms: rng.gen_range(100..=3_000),
                },
                2 if !config.clients.is_empty() => Fault::CutLink {
                    client: config.clients[rng.gen_range(0..config.clients.len())].clone(),
                    node,
                    cut_ms: rng.gen_range(100..=4_000),
                },
                3 => Fault::ClockSkew {
                    node,
                    skew_ms: rng.gen_range(-30_000..=30_000),
                },
                4 => Fault::DiskErrors {
                    node,
                    error_probability_pct: rng.gen_range(5..=50),
                    window_ms: rng.gen_range(100..=2_000),
                },
                5 => Fault::DiskFull {
                    node,
                    window_ms: rng.gen_range(100..=2_000),
                },
                6 => Fault::ReadCorruption {
                    node,
                    corruption_probability_pct: rng.gen_range(1..=20),
                    window_ms: rng.gen_range(100..=2_000),
                },
                7 => Fault::Isolate {
                    node,
                    isolate_ms: rng.gen_range(200..=5_000),
                },
                8 => Fault::PowerLoss {
                    nodes: config.nodes.clone(),
                    down_ms: rng.gen_range(100..=2_000),
                },
                _ => continue,
            };
            let duration_ms = fault.duration_ms();
            faults.push(ScheduledFault { at_ms: now_ms, fault });
            now_ms += duration_ms;
        }
        let plan = Self {
            seed,
            faults,
            fault_phase_ms: config.fault_phase_ms,
            members: None,
        };
        debug_assert!(plan.faults.windows(2).all(|w| w[0].at_ms + w[0].fault.duration_ms() <= w[1].at_ms));
        plan
    }
}

impl fmt::Display for FaultPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "fault schedule (seed {}, {} faults, healed at {} ms):", self.seed, self.faults.len(), self.fault_phase_ms)?;
        for scheduled in &self.faults {
            writeln!(f, "  at {:>6} ms: {}", scheduled.at_ms, scheduled.fault)?;
        }
        Ok(())
    }
}

/// The first line of a schedule file, with its version.
pub const SCHEDULE_HEADER: &str = "dlog-sim-schedule 1";

/// A schedule file that did not parse: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ScheduleError {
    /// 1-based line number (the line after the last one for what is missing at the end).
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

impl Fault {
    /// The kind's name in a schedule file.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Fault::Crash { .. } => "crash",
            Fault::Pause { .. } => "pause",
            Fault::CutLink { .. } => "cut-link",
            Fault::PowerLoss { .. } => "power-loss",
            Fault::Isolate { .. } => "isolate",
            Fault::ClockSkew { .. } => "clock-skew",
            Fault::DiskFull { .. } => "disk-full",
            Fault::ReadCorruption { .. } => "read-corruption",
            Fault::DiskErrors { .. } => "disk-errors",
        }
    }

    /// The same fault lasting `ms` instead (a clock skew has no duration
    /// and stays as it is).
    pub fn with_duration_ms(&self, ms: u64) -> Fault {
        let mut fault = self.clone();
        match &mut fault {
            Fault::Crash { down_ms: d, .. } | Fault::PowerLoss { down_ms: d, .. } => *d = ms,
            Fault::Pause { pause_ms: d, .. } => *d = ms,
            Fault::CutLink { cut_ms: d, .. } => *d = ms,
            Fault::Isolate { isolate_ms: d, .. } => *d = ms,
            Fault::DiskFull { window_ms: d, .. } | Fault::ReadCorruption { window_ms: d, .. } | Fault::DiskErrors { window_ms: d, .. } => {
                *d = ms
            }
            Fault::ClockSkew { .. } => {}
        }
        fault
    }

    /// Every node the fault names (servers and clients).
    pub fn nodes(&self) -> Vec<&str> {
        match self {
            Fault::CutLink { client, node, .. } => vec![client.as_str(), node.as_str()],
            Fault::PowerLoss { nodes, .. } => nodes.iter().map(String::as_str).collect(),
            Fault::Crash { node, .. }
            | Fault::Pause { node, .. }
            | Fault::Isolate { node, .. }
            | Fault::ClockSkew { node, .. }
            | Fault::DiskFull { node, .. }
            | Fault::ReadCorruption { node, .. }
            | Fault::DiskErrors { node, .. } => vec![node.as_str()],
        }
    }

    /// The fault's fields as a schedule file writes them.
    fn file_fields(&self) -> String {
        match self {
            Fault::Crash { node, down_ms } => format!("node={node} down_ms={down_ms}"),
            Fault::Pause { node, pause_ms } => format!("node={node} pause_ms={pause_ms}"),
            Fault::CutLink { client, node, cut_ms } => format!("client={client} node={node} cut_ms={cut_ms}"),
            Fault::PowerLoss { nodes, down_ms } => format!("nodes={} down_ms={down_ms}", nodes.join(",")),
            Fault::Isolate { node, isolate_ms } => format!("node={node} isolate_ms={isolate_ms}"),
            Fault::ClockSkew { node, skew_ms } => format!("node={node} skew_ms={skew_ms}"),
            Fault::DiskFull { node, window_ms } => format!("node={node} window_ms={window_ms}"),
            Fault::ReadCorruption { node, corruption_probability_pct, window_ms } => {
                format!("node={node} corruption_probability_pct={corruption_probability_pct} window_ms={window_ms}")
            }
            Fault::DiskErrors { node, error_probability_pct, window_ms } => {
                format!("node={node} error_probability_pct={error_probability_pct} window_ms={window_ms}")
            }
        }
    }
}

/// The `FIELD=VALUE` words of one fault line, each taken at most once.
struct Fields<'a> {
    fields: BTreeMap<&'a str, &'a str>,
}

impl<'a> Fields<'a> {
    fn parse(words: &[&'a str]) -> Result<Self, String> {
        let mut fields = BTreeMap::new();
        for word in words {
            let (key, value) = word.split_once('=').ok_or_else(|| format!("expected FIELD=VALUE, got {word:?}"))?;
            if fields.insert(key, value).is_some() {
                return Err(format!("field {key} given twice"));
            }
        }
        Ok(Self { fields })
    }

    fn text(&mut self, key: &str) -> Result<String, String> {
        let value = self.fields.remove(key).ok_or_else(|| format!("missing field {key}"))?;
        if value.is_empty() || value.contains(',') {
            return Err(format!("field {key} wants one node name, got {value:?}"));
        }
        Ok(value.to_string())
    }

    fn list(&mut self, key: &str) -> Result<Vec<String>, String> {
        let value = self.fields.remove(key).ok_or_else(|| format!("missing field {key}"))?;
        let names: Vec<String> = value.split(',').map(str::to_string).collect();
        if names.iter().any(String::is_empty) {
            return Err(format!("field {key} wants node names joined by commas, got {value:?}"));
        }
        Ok(names)
    }

    fn number<T: std::str::FromStr>(&mut self, key: &str) -> Result<T, String> {
        let value = self.fields.remove(key).ok_or_else(|| format!("missing field {key}"))?;
        value.parse().map_err(|_| format!("field {key}: {value:?} is not a valid number"))
    }

    fn percent(&mut self, key: &str) -> Result<u32, String> {
        let pct: u32 = self.number(key)?;
        if pct > 100 {
            return Err(format!("field {key}: {pct} is more than 100"));
        }
        Ok(pct)
    }

    /// Fails on any field the kind does not have.
    fn finish(self, kind: &str) -> Result<(), String> {
        match self.fields.keys().next() {
            Some(key) => Err(format!("{kind} has no field {key}")),
            None => Ok(()),
        }
    }
}

fn parse_fault(kind: &str, words: &[&str]) -> Result<Fault, String> {
    let mut f = Fields::parse(words)?;
    let fault = match kind {
        "crash" => Fault::Crash { node: f.text("node")?, down_ms: f.number("down_ms")? },
        "pause" => Fault::Pause { node: f.text("node")?, pause_ms: f.number("pause_ms")? },
        "cut-link" => Fault::CutLink { client: f.text("client")?, node: f.text("node")?, cut_ms: f.number("cut_ms")? },
        "power-loss" => Fault::PowerLoss { nodes: f.list("nodes")?, down_ms: f.number("down_ms")? },
        "isolate" => Fault::Isolate { node: f.text("node")?, isolate_ms: f.number("isolate_ms")? },
        "clock-skew" => Fault::ClockSkew { node: f.text("node")?, skew_ms: f.number("skew_ms")? },
        "disk-full" => Fault::DiskFull { node: f.text("node")?, window_ms: f.number("window_ms")? },
        "read-corruption" => Fault::ReadCorruption {
            node: f.text("node")?,
            corruption_probability_pct: f.percent("corruption_probability_pct")?,
            window_ms: f.number("window_ms")?,
        },
        "disk-errors" => Fault::DiskErrors {
            node: f.text("node")?,
            error_probability_pct: f.percent("error_probability_pct")?,
            window_ms: f.number("window_ms")?,
        },
        other => {
            return Err(format!(
                "unknown fault kind {other:?} (crash, pause, cut-link, power-loss, isolate, clock-skew, disk-full, \
                 read-corruption, disk-errors)"
            ))
        }
    };
    f.finish(kind)?;
    Ok(fault)
}

impl FaultPlan {
    /// The plan as a schedule file (format in the module docs); [`FaultPlan::parse`]
    /// reads it back to an equal plan.
    pub fn to_file_text(&self) -> String {
        let mut text = String::from("# dlog-sim fault schedule (format: sim/src/nemesis.rs)\n");
        text.push_str(SCHEDULE_HEADER);
        text.push('\n');
        text.push_str(&format!("seed {}\nhealed-at-ms {}\n", self.seed, self.fault_phase_ms));
        for scheduled in &self.faults {
            text.push_str(&format!("at {} {} {}\n", scheduled.at_ms, scheduled.fault.kind_name(), scheduled.fault.file_fields()));
        }
        if let Some(members) = &self.members {
            text.push_str("members listed\n");
            for m in members {
                let (kind, field) = match m.fault {
                    MemberFault::Crash { down_ms } => ("crash", format!("down_ms={down_ms}")),
                    MemberFault::Pause { pause_ms } => ("pause", format!("pause_ms={pause_ms}")),
                    MemberFault::Leave { down_ms } => ("leave", format!("down_ms={down_ms}")),
                };
                text.push_str(&format!("member {} {kind} process={} {field}\n", m.at_ms, m.process));
            }
        }
        text
    }

    /// Reads a schedule file (format in the module docs).
    pub fn parse(text: &str) -> Result<FaultPlan, ScheduleError> {
        let mut header_seen = false;
        let mut seed: Option<u64> = None;
        let mut healed: Option<(u64, usize)> = None;
        // Each fault with its line, for the checks at the end.
        let mut faults: Vec<(ScheduledFault, usize)> = Vec::new();
        let mut members: Option<Vec<ScheduledMemberFault>> = None;
        let mut lines = 0;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            lines = line;
            let error = |message: String| ScheduleError { line, message };
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let words: Vec<&str> = content.split_whitespace().collect();
            if !header_seen {
                if words.first() == Some(&"dlog-sim-schedule") && words.len() == 2 && words[1] != "1" {
                    return Err(error(format!("schedule format version {} is not known (this dlog-sim reads version 1)", words[1])));
                }
                if words.join(" ") != SCHEDULE_HEADER {
                    return Err(error(format!("expected the header `{SCHEDULE_HEADER}` first, got {content:?}")));
                }
                header_seen = true;
                continue;
            }
            match words[0] {
                "seed" | "healed-at-ms" => {
                    let [key, value] = words[..] else {
                        return Err(error(format!("expected `{} N`, got {content:?}", words[0])));
                    };
                    let value: u64 = value.parse().map_err(|_| error(format!("{key}: {value:?} is not a valid number")))?;
                    let taken = if key == "seed" { seed.replace(value).is_some() } else { healed.replace((value, line)).is_some() };
                    if taken {
                        return Err(error(format!("{key} given twice")));
                    }
                }
                "at" => {
                    if words.len() < 3 {
                        return Err(error(format!("expected `at MS KIND FIELD=VALUE...`, got {content:?}")));
                    }
                    let at_ms: u64 = words[1].parse().map_err(|_| error(format!("at: {:?} is not a valid time in ms", words[1])))?;
                    let fault = parse_fault(words[2], &words[3..]).map_err(error)?;
                    if let Some((previous, _)) = faults.last() {
                        let previous_end = previous.at_ms + previous.fault.duration_ms();
                        if at_ms < previous_end {
                            return Err(error(format!(
                                "this fault starts at {at_ms} ms, before the one before it ended ({previous_end} ms): \
                                 faults must be in start order and must not overlap"
                            )));
                        }
                    }
                    faults.push((ScheduledFault { at_ms, fault }, line));
                }
                "members" => {
                    if words[..] != ["members", "listed"] {
                        return Err(error(format!("expected `members listed`, got {content:?}")));
                    }
                    if members.replace(Vec::new()).is_some() {
                        return Err(error("`members listed` given twice".into()));
                    }
                }
                "member" => {
                    let Some(listed) = members.as_mut() else {
                        return Err(error("a `member` line before `members listed`".into()));
                    };
                    if words.len() < 3 {
                        return Err(error(format!("expected `member MS KIND process=N FIELD=VALUE`, got {content:?}")));
                    }
                    let at_ms: u64 = words[1].parse().map_err(|_| error(format!("member: {:?} is not a valid time in ms", words[1])))?;
                    let mut f = Fields::parse(&words[3..]).map_err(error)?;
                    let process: u64 = f.number("process").map_err(error)?;
                    let fault = match words[2] {
                        "crash" => MemberFault::Crash { down_ms: f.number("down_ms").map_err(error)? },
                        "pause" => MemberFault::Pause { pause_ms: f.number("pause_ms").map_err(error)? },
                        "leave" => MemberFault::Leave { down_ms: f.number("down_ms").map_err(error)? },
                        other => return Err(error(format!("unknown member fault kind {other:?} (crash, pause, leave)"))),
                    };
                    f.finish(words[2]).map_err(error)?;
                    if listed.last().is_some_and(|previous| previous.at_ms > at_ms) {
                        return Err(error(format!("member faults must come in time order; this one is due at {at_ms} ms")));
                    }
                    listed.push(ScheduledMemberFault { at_ms, process, fault });
                }
                other => return Err(error(format!("unknown item {other:?} (expected seed, healed-at-ms, at, members or member)"))),
            }
        }
        let end = lines + 1;
        if !header_seen {
            return Err(ScheduleError { line: end, message: format!("empty schedule: expected the header `{SCHEDULE_HEADER}`") });
        }
        let seed = seed.ok_or_else(|| ScheduleError { line: end, message: "missing `seed N`".into() })?;
        let (fault_phase_ms, _) = healed.ok_or_else(|| ScheduleError { line: end, message: "missing `healed-at-ms N`".into() })?;
        if let Some((late, line)) = faults.iter().find(|(f, _)| f.at_ms >= fault_phase_ms) {
            return Err(ScheduleError {
                line: *line,
                message: format!("this fault starts at {} ms, not before healed-at-ms {fault_phase_ms}", late.at_ms),
            });
        }
        Ok(FaultPlan { seed, faults: faults.into_iter().map(|(f, _)| f).collect(), fault_phase_ms, members })
    }

    /// Checks the plan fits a scenario: it heals when the scenario does and
    /// names only nodes the scenario has (servers where a server is meant,
    /// clients where a client is). The message names the first misfit.
    pub fn check_fits(&self, config: &NemesisConfig) -> Result<(), String> {
        if self.fault_phase_ms != config.fault_phase_ms {
            return Err(format!(
                "the schedule heals at {} ms, this scenario at {} ms (healed-at-ms must be {})",
                self.fault_phase_ms, config.fault_phase_ms, config.fault_phase_ms
            ));
        }
        for (position, scheduled) in self.faults.iter().enumerate() {
            let misfit = |what: &str, name: &str, known: &[String]| {
                Err(format!("fault {} (at {} ms) names {what} {name:?}; this scenario has {}", position + 1, scheduled.at_ms, known.join(", ")))
            };
            let (servers, clients): (Vec<&str>, Vec<&str>) = match &scheduled.fault {
                Fault::CutLink { client, node, .. } => (vec![node.as_str()], vec![client.as_str()]),
                other => (other.nodes(), Vec::new()),
            };
            for name in servers {
                if !config.nodes.iter().any(|n| n == name) {
                    return misfit("node", name, &config.nodes);
                }
            }
            for name in clients {
                if !config.clients.iter().any(|n| n == name) {
                    return misfit("client", name, &config.clients);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NemesisConfig {
        NemesisConfig {
            nodes: vec!["broker-1".into()],
            clients: vec!["client-0".into(), "client-1".into()],
            start_ms: 500,
            fault_phase_ms: 20_000,
            gap_ms: (200, 1_500),
            weights: [3, 2, 2, 1, 1, 1, 1, 2, 1],
        }
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        let a = FaultPlan::generate(7, &config());
        assert_eq!(a, FaultPlan::generate(7, &config()));
        assert_ne!(a, FaultPlan::generate(8, &config()));
        assert!(!a.faults.is_empty());
    }

    #[test]
    fn faults_do_not_overlap_and_start_inside_the_fault_phase() {
        for seed in 0..50 {
            let plan = FaultPlan::generate(seed, &config());
            for w in plan.faults.windows(2) {
                assert!(w[0].at_ms + w[0].fault.duration_ms() <= w[1].at_ms);
            }
            assert!(plan.faults.iter().all(|f| f.at_ms >= 500 && f.at_ms < 20_000));
        }
    }

    #[test]
    fn a_plan_survives_its_file() {
        for seed in 0..50 {
            let plan = FaultPlan::generate(seed, &config());
            assert_eq!(FaultPlan::parse(&plan.to_file_text()), Ok(plan));
        }
    }

    #[test]
    fn every_kind_survives_its_file() {
        let text = "dlog-sim-schedule 1\nseed 7\nhealed-at-ms 15000\n\
                    at 100 crash node=b down_ms=10\nat 200 pause node=b pause_ms=10\n\
                    at 300 cut-link client=c node=b cut_ms=10\nat 400 power-loss nodes=a,b down_ms=10\n\
                    at 500 isolate node=b isolate_ms=10\nat 600 clock-skew node=b skew_ms=-20\n\
                    at 700 disk-full node=b window_ms=10\n\
                    at 800 read-corruption node=b corruption_probability_pct=3 window_ms=10\n\
                    at 900 disk-errors window_ms=10 error_probability_pct=4 node=b\n";
        let plan = FaultPlan::parse(text).expect("parses");
        assert_eq!(plan.faults.len(), 9);
        assert_eq!(plan.members, None);
        assert_eq!(FaultPlan::parse(&plan.to_file_text()), Ok(plan.clone()));
        let with_members = format!("{text}members listed\nmember 10 crash process=2 down_ms=5\nmember 20 pause pause_ms=7000 process=3\n");
        let plan = FaultPlan::parse(&with_members).expect("parses");
        assert_eq!(plan.members.as_ref().map(Vec::len), Some(2));
        assert_eq!(FaultPlan::parse(&plan.to_file_text()), Ok(plan));
    }

    #[test]
    fn mistakes_name_their_line() {
        let line_of = |text: &str| FaultPlan::parse(text).unwrap_err().line;
        let head = "dlog-sim-schedule 1\nseed 1\nhealed-at-ms 1000\n";
        assert_eq!(line_of("# hi\ndlog-sim-schedule 2\n"), 2);
        assert_eq!(line_of(&format!("{head}at 10 crash node=b\n")), 4);
        assert_eq!(line_of(&format!("{head}\nat 10 crush node=b down_ms=1\n")), 5);
        assert_eq!(line_of(&format!("{head}at 10 crash node=b down_ms=x\n")), 4);
        assert_eq!(line_of(&format!("{head}at 10 crash node=b down_ms=100\nat 50 pause node=b pause_ms=1\n")), 5);
        assert_eq!(line_of(&format!("{head}at 2000 crash node=b down_ms=1\n")), 4);
        assert_eq!(line_of("dlog-sim-schedule 1\nseed 1\n"), 3);
        assert_eq!(line_of(&format!("{head}member 10 crash process=2 down_ms=5\n")), 4);
        assert_eq!(line_of(&format!("{head}members listed\nmember 10 jump process=2\n")), 5);
        let error = FaultPlan::parse(&format!("{head}at 10 crash node=b down_ms=1 extra=2\n")).unwrap_err();
        assert_eq!(error.to_string(), "line 4: crash has no field extra");
    }
}
