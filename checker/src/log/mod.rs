//! The log checks: keys are partitions, values are unique integers.
//! Anomaly names and definitions are documented in `checker/HISTORY.md`.

mod cycles;
mod eos;
mod graph;
mod index;
mod offsets;
mod polls;
mod writes;

use crate::history::History;
use crate::report::Anomalies;

pub(crate) use index::LogIndex;

/// Anomalies that never make a history invalid: Kafka does not promise
/// contiguous offsets for one producer batch, and its transactions do not
/// isolate writes from each other.
pub const ALWAYS_ALLOWED: &[&str] = &["int-send-skip", "G0", "G0-process", "G0-realtime"];

/// Allowed when the history contains a subscribe: rebalances move consumers.
pub const ALLOWED_WITH_SUBSCRIBE: &[&str] = &["poll-skip", "nonmonotonic-poll"];

/// Sizes of what the log checks built, for the report's stats.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogStats {
    pub graph_nodes: usize,
    pub graph_edges: usize,
}

/// Runs every log check over a history.
pub fn check(h: &History) -> (Anomalies, LogStats) {
    let mut phases = crate::profile::Phases::new();
    let idx = LogIndex::build(h);
    phases.mark("log index");
    let mut out = Anomalies::default();
    offsets::check(h, &idx, &mut out);
    writes::check_acknowledged(h, &idx, &mut out);
    phases.mark("acknowledged");
    writes::check_read_origins(h, &idx, &mut out);
    phases.mark("read origins");
    writes::check_send_order(h, &idx, &mut out);
    phases.mark("send order");
    polls::check(h, &idx, &mut out);
    phases.mark("poll order");
    eos::check(h, &idx, &mut out);
    phases.mark("exactly-once");
    let (graph_nodes, graph_edges) = cycles::check(h, &idx, &mut out);
    phases.mark("cycles");
    (out, LogStats { graph_nodes, graph_edges })
}

/// Names allowed in this history.
pub fn allowed(h: &History) -> Vec<String> {
    let mut v: Vec<String> = ALWAYS_ALLOWED.iter().map(|s| s.to_string()).collect();
    if h.has_subscribe() {
        v.extend(ALLOWED_WITH_SUBSCRIBE.iter().map(|s| s.to_string()));
    }
    v.sort();
    v
}
