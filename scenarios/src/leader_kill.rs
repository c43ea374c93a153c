//! The leader killer: a nemesis that watches the controller quorum and
//! crashes each new leader soon after it is elected, restarting the
//! controller it crashed before. With three controllers one is always down
//! and the two others must elect a leader between them, so leadership keeps
//! moving, often before a new leader has replicated its first entries.
//!
//! This is the history that Figure 8 of the Raft paper draws: a leader
//! appends an entry that only it holds and dies; another leader appends a
//! different entry at that index and dies; the first comes back, copies its
//! old entry to a majority and dies again; the second comes back and
//! overwrites it. A correct Raft never counts the old entry as committed
//! (§5.4.2), so nothing applied is lost. With
//! `raft.commit_old_term_entries_by_count=true` it does, some node applies
//! it, and the controllers' ledgers of applied entries disagree: the run
//! reports `state-machine-safety`.
//!
//! How fast the killer strikes is drawn from the run's seed: most kills come
//! within a few network delays of the election (before the new leader's
//! first entries reach a follower), the rest after a while, so clients also
//! make progress.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use sim::cluster::SimCluster;

use crate::history::Recorder;

/// How the killer behaves.
#[derive(Debug, Clone)]
pub struct LeaderKill {
    /// When it starts watching (virtual ms since the start).
    pub start_ms: u64,
    /// When it stops and restarts the controller it left down.
    pub stop_ms: u64,
    /// Share of kills that strike fast (per mille).
    pub fast_kill_per_mille: u32,
    /// A fast kill strikes this long after the election, at most.
    pub fast_kill_max_ms: u64,
    /// A slow kill strikes in this range after the election.
    pub slow_kill_ms: (u64, u64),
    /// How often the killer looks for a new leader.
    pub poll_ms: u64,
}

impl LeaderKill {
    /// The killer of `controller-leader-kill`, active in `[start_ms, stop_ms)`.
    pub fn new(start_ms: u64, stop_ms: u64) -> Self {
        Self {
            start_ms,
            stop_ms,
            fast_kill_per_mille: 700,
            fast_kill_max_ms: 15,
            slow_kill_ms: (50, 500),
            poll_ms: 1,
        }
    }

    /// The policy in words: the schedule a run prints first (the kill times
    /// themselves depend on when leaders are elected).
    pub fn describe(&self) -> String {
        format!(
            "leader-kill from {} ms to {} ms: crash each new controller leader {}.{}% of the time within {} ms of its \
             election, otherwise {}..{} ms after it; restart the controller crashed before at the same moment\n",
            self.start_ms,
            self.stop_ms,
            self.fast_kill_per_mille / 10,
            self.fast_kill_per_mille % 10,
            self.fast_kill_max_ms,
            self.slow_kill_ms.0,
            self.slow_kill_ms.1,
        )
    }

    /// Runs until `stop_ms`, recording each kill as `crash-start`/`crash-stop`
    /// nemesis events; returns how many leaders it killed. Every controller
    /// is up again when it returns.
    pub async fn run(&self, cluster: &SimCluster, seed: u64, history: &Recorder) -> u64 {
        let now_ms = || sim::clock::elapsed_ns() / 1_000_000;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x1ead_e7c1_11e7_0001);
        if now_ms() < self.start_ms {
            tokio::time::sleep(Duration::from_millis(self.start_ms - now_ms())).await;
        }
        let mut down: Option<usize> = None;
        // Leaderships of each controller already dealt with (none: the
        // leader in office when the killer starts is its first target).
        let mut seen: Vec<u64> = vec![0; cluster.controllers.len()];
        let mut kills = 0;
        while now_ms() < self.stop_ms {
            tokio::time::sleep(Duration::from_millis(self.poll_ms)).await;
            let Some(leader) = cluster.controller_leader(|i| Some(i) != down) else { continue };
            let leaderships = cluster.controllers[leader].stats.leaderships.load(std::sync::atomic::Ordering::Relaxed);
            if leaderships == seen[leader] {
                continue;
            }
            seen[leader] = leaderships;
            let delay_ms = if rng.gen_ratio(self.fast_kill_per_mille, 1_000) {
                rng.gen_range(0..=self.fast_kill_max_ms)
            } else {
                rng.gen_range(self.slow_kill_ms.0..=self.slow_kill_ms.1)
            };
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            if now_ms() >= self.stop_ms {
                break;
            }
            let name = cluster.controllers[leader].name.clone();
            history.nemesis("crash-start", json!(name));
            cluster.crash(&name);
            kills += 1;
            if let Some(previous) = down.replace(leader) {
                let name = &cluster.controllers[previous].name;
                cluster.restart(name);
                history.nemesis("crash-stop", json!(name));
            }
        }
        if let Some(previous) = down {
            let name = &cluster.controllers[previous].name;
            cluster.restart(name);
            history.nemesis("crash-stop", json!(name));
        }
        kills
    }
}
