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

use super::index::{LogIndex, NONE};
use crate::fxhash::FxHashMap;
use crate::history::{History, Micro, Outcome, F};
use crate::report::{Anomalies, Example, OpView};

fn committed(h: &History, idx: &LogIndex, i: usize) -> bool {
    match h.ops[i].outcome {
        Outcome::Ok => true,
        Outcome::Fail => false,
        Outcome::Info => idx.op_sends(i).iter().any(|s| idx.is_ok_read(s.vid)),
    }
}

pub(crate) fn check(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    // input value id → committed transform transactions that consumed it
    let mut consumers: FxHashMap<u32, Vec<u32>> = FxHashMap::default();
    for (i, op) in h.ops.iter().enumerate() {
        if op.f != F::Txn || !committed(h, idx, i) {
            continue;
        }
        let polls = h.micros(op).iter().any(|m| matches!(m, Micro::Poll { .. }));
        let sends = idx.op_sends(i);
        if polls && !sends.is_empty() {
            for r in idx.op_reads(i) {
                let list = consumers.entry(r.vid).or_default();
                if list.last() != Some(&(i as u32)) {
                    list.push(i as u32);
                }
            }
        }
        let n_seen = sends.iter().filter(|s| idx.is_ok_read(s.vid)).count();
        if n_seen > 0 && n_seen < sends.len() {
            let value = |s: &&crate::log::index::SendRec| idx.values[s.vid as usize];
            let seen: Vec<i64> = sends.iter().filter(|s| idx.is_ok_read(s.vid)).map(|s| value(&s)).collect();
            let missing: Vec<i64> = sends.iter().filter(|s| !idx.is_ok_read(s.vid)).map(|s| value(&s)).collect();
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
    let mut dups: Vec<(i64, u32, Vec<u32>)> = consumers
        .into_iter()
        .filter(|(_, l)| l.len() > 1)
        .map(|(vid, l)| (idx.values[vid as usize], vid, l))
        .collect();
    dups.sort_unstable();
    for (v, vid, txns) in dups {
        let first_line = h.invoke_event(&h.ops[txns[0] as usize]).line;
        let k = idx.send_key[vid as usize];
        let key = (k != NONE).then(|| h.key_name(k).to_string());
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
