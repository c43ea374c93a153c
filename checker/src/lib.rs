//! DistributedLog's history checker: the Kafka-style log anomaly catalogue,
//! exactly-once checks, consumer-group commit and assignment checks, and
//! register/kv linearizability, in one tool.
//!
//! ```no_run
//! let text = std::fs::read_to_string("history.jsonl").unwrap();
//! let history = checker::history::parse_jsonl(&text).unwrap();
//! let report = checker::check(&history);
//! println!("{}", report.render_text());
//! ```
//!
//! The history format, every anomaly and the output are documented in
//! `checker/HISTORY.md`, the one source of truth.

pub mod epoch;
pub mod fxhash;
pub mod gen;
pub mod groups;
pub mod history;
mod history_json;
pub mod html;
pub mod linear;
pub mod log;
mod par;
mod parse;
mod profile;
pub mod report;
mod wire;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

pub use history::{parse_jsonl, History, ParseError};
pub use report::{AnomalyEntry, Example, OpView, Report, Validity};

/// How a check runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Wall-clock budget for the linearizability search of a history; past
    /// it the verdict is unknown rather than wrong. It is measured with
    /// `std::time::Instant` on the checker's worker threads. Inside a madsim
    /// simulation no worker thread can start and `Instant` is virtual (it does
    /// not advance while the check runs), so there the budget cannot fire:
    /// check histories after the simulation, outside its runtime.
    pub time_budget: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            time_budget: Duration::from_secs(5),
        }
    }
}

/// Checks a history with default options, choosing the model from its
/// operations: log operations get the log checks, register operations
/// (read/write/cas/append) get linearizability, `epoch` reads (part of
/// the register model) the `epoch-regression` check, and consumer-group
/// operations (`commit`, `assignment`; part of the log model) the
/// `commit-regression` and `assignment-conflict` checks.
pub fn check(h: &History) -> Report {
    check_with(h, &Options::default())
}

/// Checks a history with the given options.
pub fn check_with(h: &History, opts: &Options) -> Report {
    let has_log = h.ops.iter().any(|o| o.f.is_log());
    let has_linear = h.ops.iter().any(|o| o.f.is_register());
    let has_epoch = h.ops.iter().any(|o| o.f == history::F::Epoch);
    let has_register = has_linear || has_epoch;
    let has_group = h.ops.iter().any(|o| o.f.is_group());
    // Consumer-group operations belong to the log model, though the log
    // checks ignore them (see checker/HISTORY.md, "Choosing the model").
    let has_log_model = has_log || has_group;
    let mut stats: BTreeMap<String, Value> = BTreeMap::new();
    stats.insert("events".into(), Value::from(h.events.len()));
    stats.insert("ops".into(), Value::from(h.ops.len()));
    stats.insert("keys".into(), Value::from(h.keys.len()));
    stats.insert("nemesis_events".into(), Value::from(h.nemesis.len()));
    let mut anomalies = report::Anomalies::default();
    let mut allowed = Vec::new();
    let mut unknown_reasons = Vec::new();
    if has_log_model || !has_register {
        let (found, log_stats) = log::check(h);
        anomalies.merge(found);
        stats.insert("graph_nodes".into(), Value::from(log_stats.graph_nodes));
        stats.insert("graph_edges".into(), Value::from(log_stats.graph_edges));
        allowed.extend(log::allowed(h));
        // How many transactions the exactly-once checks judged, by outcome
        // (a history with none has not exercised them).
        let txns = h.ops.iter().filter(|o| o.f == history::F::Txn);
        let (mut ok, mut fail, mut info) = (0usize, 0usize, 0usize);
        for op in txns {
            match op.outcome {
                history::Outcome::Ok => ok += 1,
                history::Outcome::Fail => fail += 1,
                history::Outcome::Info => info += 1,
            }
        }
        if ok + fail + info > 0 {
            stats.insert("txn_ops".into(), Value::from(ok + fail + info));
            stats.insert("txn_ok".into(), Value::from(ok));
            stats.insert("txn_fail".into(), Value::from(fail));
            stats.insert("txn_info".into(), Value::from(info));
        }
    }
    if has_linear {
        let lin = linear::check(h, opts.time_budget);
        anomalies.merge(lin.anomalies);
        unknown_reasons.extend(lin.unknown_reasons);
        stats.insert("register_keys".into(), Value::from(lin.keys_checked));
        stats.insert("register_ops".into(), Value::from(lin.ops_checked));
    }
    if has_epoch {
        let ep = epoch::check(h);
        anomalies.merge(ep.anomalies);
        stats.insert("epoch_keys".into(), Value::from(ep.keys_checked));
        stats.insert("epoch_ops".into(), Value::from(ep.ops_checked));
    }
    if has_group {
        let gr = groups::check(h);
        anomalies.merge(gr.anomalies);
        stats.insert("groups".into(), Value::from(gr.groups));
        stats.insert("commit_ops".into(), Value::from(gr.commit_ops));
        stats.insert("assignment_ops".into(), Value::from(gr.assignment_ops));
    }
    let model = match (has_log_model, has_register) {
        (true, true) => "log+register",
        (false, true) => "register",
        _ => "log",
    };
    allowed.sort();
    allowed.dedup();
    let anomalies = anomalies.map;
    let invalid = anomalies.keys().any(|k| !allowed.contains(k));
    let valid = if invalid {
        Validity::Invalid
    } else if !unknown_reasons.is_empty() {
        Validity::Unknown
    } else {
        Validity::Valid
    };
    Report {
        valid,
        model: model.to_string(),
        anomalies,
        allowed,
        unknown_reasons,
        stats,
    }
}
