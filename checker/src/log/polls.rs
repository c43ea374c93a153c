//! Ordering of each process's ok reads of a key: `poll-skip`,
//! `nonmonotonic-poll` (between operations) and `int-poll-skip`,
//! `int-nonmonotonic-poll` (inside one operation).
//!
//! An assign or subscribe that drops a key forgets where the process was in
//! it, and so does a crash (the client that read it is gone).

use serde_json::json;

use super::index::{LogIndex, NONE};
use crate::fxhash::FxHashMap;
use crate::history::{History, KeyId, Outcome, Payload, F};
use crate::report::{Anomalies, Example, OpView};

fn line_of(h: &History, op: usize) -> usize {
    h.invoke_event(&h.ops[op]).line
}

/// The offsets holding values strictly between two positions (a few of them).
fn skipped(idx: &LogIndex, k: KeyId, from: u32, to: u32) -> String {
    let offs = &idx.orders[k as usize].offsets;
    let range = (from + 1) as usize..to as usize;
    let n = range.len();
    let shown: Vec<String> = offs[range].iter().take(5).map(|o| o.to_string()).collect();
    let more = if n > 5 { ", ..." } else { "" };
    format!("{n} value(s) at offset(s) {}{more}", shown.join(", "))
}

pub(crate) fn check(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    // process → [(key, last position read, op that read it)]
    let mut last: FxHashMap<u32, Vec<(KeyId, u32, u32)>> = FxHashMap::default();
    // key → (first position, last position, last value) of this operation's reads
    let mut in_op: Vec<(KeyId, u32, u32, i64)> = Vec::new();
    for (i, op) in h.ops.iter().enumerate() {
        match op.f {
            F::Assign | F::Subscribe => {
                if let Payload::Keys(keys) = &h.invoke_event(op).value {
                    if let Some(list) = last.get_mut(&op.process) {
                        list.retain(|e| keys.contains(&e.0));
                    }
                }
                continue;
            }
            F::Crash => {
                last.remove(&op.process);
                continue;
            }
            F::Poll | F::Txn if op.outcome == Outcome::Ok => {}
            _ => continue,
        }
        in_op.clear();
        for r in idx.op_reads(i) {
            let (k, p, v) = (r.key, r.pos, idx.values[r.vid as usize]);
            if p == NONE {
                continue;
            }
            let key = h.key_name(k);
            let off = |p: u32| idx.orders[k as usize].offsets[p as usize];
            if let Some(e) = in_op.iter_mut().find(|e| e.0 == k) {
                let (pp, pv) = (e.2, e.3);
                if p <= pp {
                    out.add("int-nonmonotonic-poll", (1, line_of(h, i)), || Example {
                        text: format!(
                            "inside one operation process {} read {pv} at offset {} of {key} and then {v} at offset {}, at or before it",
                            op.process, off(pp), off(p)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, i)],
                        detail: json!({"key": key, "offsets": [off(pp), off(p)], "values": [pv, v]}),
                    });
                } else if p > pp + 1 {
                    out.add("int-poll-skip", (1, line_of(h, i)), || Example {
                        text: format!(
                            "inside one operation process {} read {pv} at offset {} of {key} and then {v} at offset {}, skipping {}",
                            op.process, off(pp), off(p), skipped(idx, k, pp, p)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, i)],
                        detail: json!({"key": key, "offsets": [off(pp), off(p)], "values": [pv, v]}),
                    });
                }
                e.2 = p;
                e.3 = v;
            } else {
                in_op.push((k, p, p, v));
            }
        }
        let list = last.entry(op.process).or_default();
        for &(k, first, end, _) in &in_op {
            let key = h.key_name(k);
            let off = |p: u32| idx.orders[k as usize].offsets[p as usize];
            if let Some(e) = list.iter_mut().find(|e| e.0 == k) {
                let (lp, lop) = (e.1, e.2 as usize);
                if first <= lp {
                    out.add("nonmonotonic-poll", (2, line_of(h, lop)), || Example {
                        text: format!(
                            "process {} read {key} up to offset {}, then its next read of {key} began at offset {}, at or before it",
                            op.process, off(lp), off(first)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, lop), OpView::new(h, i)],
                        detail: json!({"key": key, "previous_end_offset": off(lp), "next_start_offset": off(first)}),
                    });
                } else if first > lp + 1 {
                    out.add("poll-skip", (2, line_of(h, lop)), || Example {
                        text: format!(
                            "process {} read {key} up to offset {}, then its next read of {key} began at offset {}, skipping {}",
                            op.process, off(lp), off(first), skipped(idx, k, lp, first)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, lop), OpView::new(h, i)],
                        detail: json!({"key": key, "previous_end_offset": off(lp), "next_start_offset": off(first)}),
                    });
                }
                e.1 = end;
                e.2 = i as u32;
            } else {
                list.push((k, end, i as u32));
            }
        }
    }
}
