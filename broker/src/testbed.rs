//! Testbed hooks in broker code: coverage marks and BUGGIFY points.
//!
//! **Marks** (TigerBeetle's coverage marks): `mark!("raft.leader.elected")`
//! on a rare path records, in a simulation run, that the path was reached.
//! A test then asserts that a scenario over a seed range reached the marks
//! it claims to exercise, so a scenario that silently stopped reaching its
//! rare path (a changed timeout, a fault that no longer bites) fails.
//!
//! **BUGGIFY** (FoundationDB's): `if buggify!("storage.read.short") { .. }`
//! takes a legal but rare path. In a simulation run with BUGGIFY on
//! (`dlog-sim run --buggify`), each site is switched on for the whole run
//! with probability [`BUGGIFY_SITE_ENABLED_PERCENT`], drawn from the seed
//! and the site's name; an enabled site then fires with probability
//! [`BUGGIFY_FIRE_PERCENT`] each time it is reached, drawn from a stream
//! seeded the same way. So each seed explores a different mix of rare
//! paths, and a seed replays exactly. A buggified path must keep the broker
//! correct: it is a behaviour the broker must handle anyway (a short read,
//! an early segment roll, a slow disk), never a bug.
//!
//! Both macros take a string literal that must be listed in [`MARKS`] or
//! [`BUGGIFY_SITES`] (a simulation run panics on an unlisted name, so the
//! catalogue stays the one list of what exists).
//!
//! In the production build (without `--cfg madsim`) `mark!` expands to
//! nothing and `buggify!` to `false`. In the simulation build neither draws
//! from the runtime's randomness, reads a clock or schedules anything, so a
//! run without `--buggify` is the same run, byte for byte, as before the
//! marks were added.
//!
//! State is per run: a madsim runtime runs all its tasks on the thread that
//! calls `block_on`, so the registry is thread-local, and
//! [`begin_run`] (called by the scenario runner before each run on that
//! thread) resets it. A sweep on several threads therefore keeps each
//! run's marks apart.

/// Every coverage mark: its name and the rare path it stands for.
pub const MARKS: &[(&str, &str)] = &[
    ("raft.leader.elected", "a controller won an election and became Raft leader"),
    ("raft.log.truncate_conflict", "a Raft follower dropped uncommitted entries that conflict with the leader's"),
    ("raft.append.reject_conflict_term", "a Raft follower rejected an append whose previous entry has another term (fast backtracking hint)"),
    ("raft.snapshot.install", "a Raft follower replaced its log with the leader's snapshot"),
    ("raft.check_quorum.step_down", "a Raft leader that lost contact with a quorum stepped down (check-quorum)"),
    ("controller.broker.fenced", "the controller fenced a broker whose session expired"),
    ("controller.partition.leader_moved", "the controller moved a partition's leadership off a fenced broker"),
    ("controller.elect.eligible_replica", "a partition leader was elected from the eligible leader replicas (KIP-966), not the ISR"),
    ("controller.elect.unclean", "an unclean leader election picked an out-of-sync replica"),
    ("controller.alter_partition.fenced_leader_epoch", "the controller refused an AlterPartition from an old leader epoch"),
    ("controller.alter_partition.stale_partition_epoch", "the controller refused an AlterPartition built on a stale partition epoch (stale view)"),
    ("controller.stale_broker_epoch", "the controller refused a request carrying an old broker epoch"),
    ("replication.isr.shrink", "a partition leader proposed removing lagging followers from the ISR"),
    ("replication.isr.expand", "a partition leader proposed adding a caught-up follower to the ISR"),
    ("replication.leader.diverging_epoch", "a partition leader told a follower its log diverged (KIP-320 diverging epoch)"),
    ("replication.follower.truncate_by_epoch", "a follower truncated its log to the end of the epoch it shares with the leader"),
    ("replication.fenced_leader_epoch", "a request was refused because it named an older leader epoch (FENCED_LEADER_EPOCH)"),
    ("replication.unknown_leader_epoch", "a request was refused because it named a newer leader epoch (UNKNOWN_LEADER_EPOCH)"),
    ("replication.leader.stale_metadata", "a partition leader ignored metadata older than what it knows (stale view)"),
    ("replication.produce.timed_out", "an acks=all produce timed out waiting for the ISR"),
    ("storage.recovery.unclean_tail_scan", "log recovery after an unclean shutdown scanned the last segment in full"),
    ("storage.recovery.torn_tail", "log recovery truncated a torn or corrupt tail of a segment"),
    ("storage.recovery.rebuild_index", "log recovery rebuilt a segment's index from the log"),
    ("storage.append.rollback", "a failed append (EIO, full disk) was rolled back"),
    ("storage.reload_after_failure", "a log rebuilt its state from disk after an operation failed half-way"),
    ("storage.read.reread_after_bad_crc", "a read saw a bad CRC and read the batch again (a transient bit flip)"),
    ("storage.read.corrupt", "a batch failed its CRC twice and the read reported corruption"),
    ("storage.truncate", "a partition log was truncated (follower divergence or a failed append)"),
    ("storage.compaction.segment", "compaction rewrote a segment"),
    ("storage.retention.delete_segment", "retention deleted a segment"),
    ("group.coordinator.unloaded", "a broker stopped leading a __consumer_offsets partition and unloaded its groups (coordinator failover)"),
    ("group.coordinator.loaded_groups", "a coordinator loaded a __consumer_offsets partition that already held groups (it took over from another)"),
    ("group.generation.voided", "a generation's record did not become durable, so the generation was voided and its members rejoin"),
    ("group.commit.fenced", "a commit from a member outside the group's current generation was refused (a zombie)"),
    ("producer_state.duplicate_answered", "a partition leader recognised a retried idempotent batch and answered with its original offsets"),
    ("group.member.session_expired", "a member that stopped heartbeating was removed when its session expired"),
    ("group.txn_offsets.committed", "a commit marker made a transaction's pending offsets (TxnOffsetCommit) the group's committed offsets"),
    ("group.txn_offsets.aborted", "an abort marker dropped a transaction's pending offsets"),
    ("txn.coordinator.append_failed", "a transaction coordinator's __transaction_state record did not become durable, so its transition was dropped"),
    ("txn.coordinator.expired_id", "a transactional id idle past transactional.id.expiration.ms was forgotten"),
    ("txn.coordinator.fence_ongoing", "InitProducerId found its id's transaction open: the epoch was bumped and the transaction aborted (zombie fencing)"),
    ("txn.coordinator.loaded_ids", "a transaction coordinator loaded a __transaction_state partition that already held ids (it took over from another)"),
    ("txn.coordinator.markers_retried", "writing a transaction's markers failed on some partition and was retried"),
    ("txn.coordinator.resumed_prepared", "a coordinator that took over found a transaction prepared and wrote its markers again"),
    ("txn.partition.verification_refused", "a partition leader refused a transactional batch its coordinator did not have in the producer's ongoing transaction (KIP-890 part 1: a late produce)"),
    ("txn.coordinator.timed_out", "an open transaction passed its timeout and the coordinator aborted it"),
    ("txn.coordinator.unloaded", "a broker stopped leading a __transaction_state partition and unloaded its transactional ids (coordinator failover)"),
];

/// Every BUGGIFY site: its name and the legal behaviour it forces.
pub const BUGGIFY_SITES: &[(&str, &str)] = &[
    ("storage.read.short", "a log read returns only its first batch (a short fetch, at a batch boundary)"),
    ("storage.roll.early", "an append rolls the active segment at an odd size, before it is full"),
    ("quorum.ready.slow", "a controller waits 50 ms before persisting and applying a Raft ready (a slow fsync, a slow apply)"),
    ("raft.append.single_entry", "a Raft leader sends at most one entry in an AppendEntries"),
];

/// The chance (percent) that a BUGGIFY site is enabled for a run.
pub const BUGGIFY_SITE_ENABLED_PERCENT: u32 = 25;

/// The chance (percent) that an enabled site fires each time it is reached.
pub const BUGGIFY_FIRE_PERCENT: u32 = 5;

/// Records that a rare path was reached (nothing in the production build).
/// The name must be listed in [`MARKS`].
#[cfg(madsim)]
#[macro_export]
macro_rules! mark {
    ($name:literal) => {
        $crate::testbed::mark_hit($name)
    };
}

/// Records that a rare path was reached (nothing in the production build).
#[cfg(not(madsim))]
#[macro_export]
macro_rules! mark {
    ($name:literal) => {{}};
}

/// Whether this BUGGIFY site fires now (always `false` in the production
/// build). The name must be listed in [`BUGGIFY_SITES`].
#[cfg(madsim)]
#[macro_export]
macro_rules! buggify {
    ($site:literal) => {
        $crate::testbed::buggify_fires($site)
    };
}

/// Whether this BUGGIFY site fires now (always `false` in the production
/// build).
#[cfg(not(madsim))]
#[macro_export]
macro_rules! buggify {
    ($site:literal) => {
        false
    };
}

/// The BUGGIFY sites a run of `seed` enables, in catalogue order. Each
/// site's draw depends only on the seed and its name, so adding a site
/// leaves the others' draws alone.
pub fn enabled_sites(seed: u64) -> Vec<&'static str> {
    use rand::Rng;
    BUGGIFY_SITES
        .iter()
        .map(|(site, _)| *site)
        .filter(|site| site_rng(seed, site, ENABLE_SALT).gen_range(0..100) < BUGGIFY_SITE_ENABLED_PERCENT)
        .collect()
}

/// Distinguishes the "is it enabled" draw from the "does it fire" stream.
const ENABLE_SALT: u64 = 0x6275_6767_6966_7901;
#[cfg(madsim)]
const FIRE_SALT: u64 = 0x6275_6767_6966_7902;

fn site_rng(seed: u64, site: &str, salt: u64) -> rand_chacha::ChaCha8Rng {
    use rand::SeedableRng;
    // FNV-1a of the name: stable across builds and platforms.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in site.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ salt ^ hash)
}

/// What a run reached: marks (with how often) and BUGGIFY sites.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCoverage {
    /// Marks reached, with the number of times each was.
    pub marks: std::collections::BTreeMap<&'static str, u64>,
    /// Whether BUGGIFY was on for the run.
    pub buggify: bool,
    /// The sites enabled for the run (empty with BUGGIFY off).
    pub enabled_sites: Vec<&'static str>,
    /// Sites that fired, with the number of times each did.
    pub fired: std::collections::BTreeMap<&'static str, u64>,
}

#[cfg(madsim)]
pub use sim_state::{begin_run, buggify_fires, end_run, mark_hit};

#[cfg(madsim)]
mod sim_state {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use rand::Rng;
    use rand_chacha::ChaCha8Rng;

    use super::{RunCoverage, BUGGIFY_FIRE_PERCENT, BUGGIFY_SITES, FIRE_SALT, MARKS};

    #[derive(Default)]
    struct RunState {
        coverage: RunCoverage,
        /// One firing stream per enabled site.
        streams: BTreeMap<&'static str, ChaCha8Rng>,
    }

    thread_local! {
        static RUN: RefCell<RunState> = RefCell::new(RunState::default());
    }

    /// Starts a run on this thread: forgets the previous run's marks and
    /// draws which BUGGIFY sites are on (none unless `buggify`).
    pub fn begin_run(seed: u64, buggify: bool) {
        let enabled = if buggify { super::enabled_sites(seed) } else { Vec::new() };
        let streams = enabled.iter().map(|site| (*site, super::site_rng(seed, site, FIRE_SALT))).collect();
        RUN.with(|run| {
            *run.borrow_mut() = RunState {
                coverage: RunCoverage { buggify, enabled_sites: enabled, ..RunCoverage::default() },
                streams,
            }
        });
    }

    /// Ends the run on this thread and hands back what it reached.
    pub fn end_run() -> RunCoverage {
        RUN.with(|run| std::mem::take(&mut *run.borrow_mut()).coverage)
    }

    /// `mark!`: counts the mark for the current run.
    pub fn mark_hit(name: &'static str) {
        assert!(MARKS.iter().any(|(known, _)| *known == name), "mark {name:?} is not listed in broker::testbed::MARKS");
        RUN.with(|run| *run.borrow_mut().coverage.marks.entry(name).or_insert(0) += 1);
    }

    /// `buggify!`: whether the site fires now. Draws only from the site's
    /// own stream, and only if the site is enabled for this run.
    pub fn buggify_fires(site: &'static str) -> bool {
        assert!(BUGGIFY_SITES.iter().any(|(known, _)| *known == site), "buggify site {site:?} is not listed in broker::testbed::BUGGIFY_SITES");
        RUN.with(|run| {
            let mut run = run.borrow_mut();
            let Some(stream) = run.streams.get_mut(site) else { return false };
            let fires = stream.gen_range(0..100) < BUGGIFY_FIRE_PERCENT;
            if fires {
                *run.coverage.fired.entry(site).or_insert(0) += 1;
            }
            fires
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_names_are_unique() {
        let mut names: Vec<&str> = MARKS.iter().chain(BUGGIFY_SITES).map(|(n, _)| *n).collect();
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a mark or site is listed twice");
    }

    #[test]
    fn enabled_sites_depend_on_the_seed_only() {
        assert_eq!(enabled_sites(7), enabled_sites(7));
        let differ = (1..50).any(|seed| enabled_sites(seed) != enabled_sites(seed + 1));
        assert!(differ, "different seeds enable different sites");
        let some = (1..50).filter(|seed| !enabled_sites(*seed).is_empty()).count();
        assert!(some > 10 && some < 49, "about 1 - 0.75^{} of seeds enable a site: {some} of 49", BUGGIFY_SITES.len());
    }

    #[test]
    fn production_build_macros_are_inert() {
        // In the plain build buggify! is the constant false and mark! nothing.
        #[cfg(not(madsim))]
        {
            crate::mark!("raft.leader.elected");
            assert!(!crate::buggify!("storage.read.short"));
        }
    }

    #[cfg(madsim)]
    #[test]
    fn a_run_counts_its_own_marks_and_fires_only_enabled_sites() {
        let seed = (1..1000).find(|s| enabled_sites(*s).contains(&"storage.read.short")).expect("some seed enables it");
        begin_run(seed, true);
        crate::mark!("raft.leader.elected");
        crate::mark!("raft.leader.elected");
        let fired = (0..1000).filter(|_| crate::buggify!("storage.read.short")).count();
        assert!(fired > 10 && fired < 150, "about 5% of 1000: {fired}");
        let coverage = end_run();
        assert_eq!(coverage.marks.get("raft.leader.elected"), Some(&2));
        assert_eq!(coverage.fired.get("storage.read.short").copied(), Some(fired as u64));
        begin_run(seed, false);
        assert!(!(0..1000).any(|_| crate::buggify!("storage.read.short")), "off without --buggify");
        assert!(end_run().marks.is_empty(), "a new run starts with no marks");
    }
}
