//! Scenarios: named compositions of a workload, a fault plan and checks.
//!
//! A scenario runs inside one madsim runtime seeded by the run's seed: the
//! seed decides the fault schedule, every client's choices, message delays,
//! task interleavings and disk faults, so a seed replays a run exactly.
//! The run produces a history (format v1) that `checker` judges.

pub mod corpus;
pub mod coverage;
pub mod history;
pub mod shard;
pub mod sweep_report;
#[cfg(madsim)]
mod controller_chaos;
#[cfg(madsim)]
mod group_chaos;
#[cfg(madsim)]
mod leader_kill;
#[cfg(madsim)]
mod nemesis_runner;
#[cfg(madsim)]
mod replication_chaos;
#[cfg(madsim)]
pub mod run;
#[cfg(madsim)]
pub mod shrink;
#[cfg(madsim)]
mod single_node_crash;
#[cfg(madsim)]
mod txn_chaos;

/// A scenario's name and what it shows.
#[derive(Debug, Clone, Copy)]
pub struct ScenarioInfo {
    /// Name used on the command line.
    pub name: &'static str,
    /// One line on what it does and why it matters.
    pub description: &'static str,
}

/// Every scenario, in the order `dlog-sim list` shows them.
pub const SCENARIOS: &[ScenarioInfo] = &[
    ScenarioInfo {
        name: "single-node-crash",
        description: "clients send unique integers to 3 partitions of one broker and poll them back while it is crashed, \
                      restarted, paused, cut off and given failing disks; acknowledged writes must survive",
    },
    ScenarioInfo {
        name: "controller-chaos",
        description: "clients create topics and read metadata through 2 brokers while 3 Raft controllers are crashed, \
                      paused, isolated and given failing disks; metadata must stay linearizable and recover",
    },
    ScenarioInfo {
        name: "controller-leader-kill",
        description: "the controller-chaos workload while a nemesis crashes each new Raft leader soon after its \
                      election (one entry per append); the controllers must never apply different entries at one index \
                      (with raft.commit_old_term_entries_by_count=true some seed shows Raft's Figure 8)",
    },
    ScenarioInfo {
        name: "replication-chaos",
        description: "clients send unique integers with acks=all to a topic replicated on 3 brokers (min.insync.replicas=2, \
                      no fsync per batch) and poll them back while brokers and controllers crash, pause, are cut off \
                      and get failing disks; no acknowledged write may be lost",
    },
    ScenarioInfo {
        name: "group-chaos",
        description: "a consumer group of 3 members polls, processes and commits a replicated topic while members crash, \
                      pause past their session and leave, and brokers (so the group coordinator) and controllers fail; \
                      every acknowledged record must be consumed, no committed offset may go back, no partition may have \
                      two owners in one generation",
    },
    ScenarioInfo {
        name: "txn-chaos",
        description: "transactional producers commit and abort transactions across 4 partitions of 2 topics, a \
                      consume-transform-produce job forwards a topic with its offsets inside each transaction and is \
                      replaced while frozen (a zombie), and read_committed consumers read, while brokers (so transaction \
                      and group coordinators) and controllers fail; no duplicate, lost write, aborted read, torn \
                      transaction or double-forwarded input",
    },
];

/// Looks a scenario up by name.
pub fn find(name: &str) -> Option<&'static ScenarioInfo> {
    SCENARIOS.iter().find(|s| s.name == name)
}
