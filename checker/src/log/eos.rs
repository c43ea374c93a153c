//! Exactly-once extras for consume-transform-produce workloads.
//!
//! A transform transaction is a `txn` with at least one `poll` micro-op
//! (reading input keys) and at least one `send` micro-op (writing output
//! values). A transaction is committed when it completed ok, or completed info
//! and some ok operation read one of its writes.
//! - `duplicate-consume`: one input value read by two or more committed
//!   transform transactions (it was forwarded more than once).
//! - `torn-txn`: a committed transaction some of whose writes an ok operation
//!   read and some of whose writes none did, by the end of the history (which
//!   should end with a final drain of every key).

use serde_json::json;

use super::index::{for_each_read, for_each_send, LogIndex};
use crate::fxhash::FxHashMap;
use crate::history::{History, Micro, Outcome, F};
use crate::report::{Anomalies, Example, OpView};

fn committed(h: &History, idx: &LogIndex, i: usize) -> bool {
    let op = &h.ops[i];
    match op.outcome {
        Outcome::Ok => true,
        Outcome::Fail => false,
        Outcome::Info => {
            let mut any = false;
            for_each_send(h, op, |_, v, _| any |= idx.ok_read.contains_key(&v));
            any
        }
    }
}

pub(crate) fn check(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    // input value → committed transform transactions that consumed it
    let mut consumers: FxHashMap<i64, Vec<u32>> = FxHashMap::default();
    for (i, op) in h.ops.iter().enumerate() {
        if op.f != F::Txn || !committed(h, idx, i) {
            continue;
        }
        let micros = h.micros(op);
        let polls = micros.iter().any(|m| matches!(m, Micro::Poll { .. }));
        let sends: Vec<i64> = micros
            .iter()
            .filter_map(|m| match m {
                Micro::Send { value, .. } => Some(*value),
                _ => None,
            })
            .collect();
        if polls && !sends.is_empty() {
            for_each_read(h, op, |_, _, v| {
                let list = consumers.entry(v).or_default();
                if list.last() != Some(&(i as u32)) {
                    list.push(i as u32);
                }
            });
        }
        let seen: Vec<i64> = sends.iter().copied().filter(|v| idx.ok_read.contains_key(v)).collect();
        if !seen.is_empty() && seen.len() < sends.len() {
            let missing: Vec<i64> = sends.iter().copied().filter(|v| !idx.ok_read.contains_key(v)).collect();
            out.add("torn-txn", (1, h.invoke_event(op).line), || Example {
                text: format!(
                    "the committed transaction of process {} wrote {} values, but only {} were ever read: {:?} were read, {:?} never were",
                    op.process,
                    sends.len(),
                    seen.len(),
                    seen,
                    missing
                ),
                key: None,
                ops: vec![OpView::new(h, i)],
                detail: json!({"visible": seen, "missing": missing}),
            });
        }
    }
    let mut dups: Vec<(i64, Vec<u32>)> = consumers.into_iter().filter(|(_, l)| l.len() > 1).collect();
    dups.sort_unstable();
    for (v, txns) in dups {
        let first_line = h.invoke_event(&h.ops[txns[0] as usize]).line;
        let key = idx.sent.get(&v).map(|s| h.key_name(s.key).to_string());
        out.add("duplicate-consume", (txns.len(), first_line), || {
            let procs: Vec<String> = txns.iter().map(|&t| h.ops[t as usize].process.to_string()).collect();
            Example {
                text: format!(
                    "input value {v}{} was consumed and forwarded by {} committed transactions (processes {})",
                    key.as_ref().map(|k| format!(" of {k}")).unwrap_or_default(),
                    txns.len(),
                    procs.join(", ")
                ),
                key: key.clone(),
                ops: txns.iter().map(|&t| OpView::new(h, t as usize)).collect(),
                detail: json!({"value": v}),
            }
        });
    }
}
