//! The fault schedule: every fault of a run, drawn from its seed before the
//! run starts and printed first, so a failure can be read and replayed.
//!
//! Faults are laid out one after another over the fault phase, each lasting
//! a drawn duration and separated by a drawn quiet gap. After the fault
//! phase everything is healed and the run drains without faults.

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

/// The whole schedule of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// The seed it was drawn from.
    pub seed: u64,
    /// The faults, in start order; they do not overlap.
    pub faults: Vec<ScheduledFault>,
    /// When faults stop.
    pub fault_phase_ms: u64,
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
}
