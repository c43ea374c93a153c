//! What became of each send: `lost-write`, `unseen`, `garbage-read`, `G1a`,
//! `precommitted-read`, and the ordering of one process's sends
//! (`nonmonotonic-send`, `int-send-skip`, `int-nonmonotonic-send`).

use serde_json::json;

use super::index::{LogIndex, NONE};
use crate::fxhash::FxHashMap;
use crate::history::{History, KeyId, Outcome, F};
use crate::report::{Anomalies, Example, OpView};

fn line_of(h: &History, op: usize) -> usize {
    h.invoke_event(&h.ops[op]).line
}

/// `lost-write` and `unseen`: acknowledged sends that no ok operation read.
/// A value below the highest position some ok poll reached is lost; any other
/// is unseen. The two are disjoint so each missing value is counted once.
pub(crate) fn check_acknowledged(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    for (i, op) in h.ops.iter().enumerate() {
        if op.outcome != Outcome::Ok || !matches!(op.f, F::Send | F::Txn) {
            continue;
        }
        for s in idx.op_sends(i) {
            if idx.is_ok_read(s.vid) {
                continue;
            }
            let (k, v, offset) = (s.key, idx.values[s.vid as usize], s.offset);
            let key = h.key_name(k);
            let order = &idx.orders[k as usize];
            let pos = idx.send_pos(s);
            let max = order.max_ok_read;
            let at = match (offset, pos) {
                (Some(o), _) => format!("at offset {o} of {key}"),
                (None, Some(p)) => format!("to {key} (it stands at offset {})", order.offsets[p as usize]),
                (None, None) => format!("to {key} at an unknown offset"),
            };
            match (pos, max) {
                (Some(p), Some((m, reader))) if p < m => {
                    let reader = reader as usize;
                    out.add("lost-write", (2, line_of(h, i)), || Example {
                        text: format!(
                            "value {v} was acknowledged {at} by process {} but no poll ever returned it, while process {} read up to offset {}",
                            op.process,
                            h.ops[reader].process,
                            order.offsets[m as usize]
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, i), OpView::new(h, reader)],
                        detail: json!({"key": key, "value": v, "offset": order.offsets[p as usize],
                                       "max_read_offset": order.offsets[m as usize]}),
                    });
                }
                _ => {
                    let highest = match max {
                        Some((m, _)) => format!("the highest offset of {key} any ok poll read was {}", order.offsets[m as usize]),
                        None => format!("no ok poll read {key} at all"),
                    };
                    out.add("unseen", (1, line_of(h, i)), || Example {
                        text: format!(
                            "value {v} was acknowledged {at} by process {} but no ok operation read it by the end of the history; {highest}",
                            op.process
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, i)],
                        detail: json!({"key": key, "value": v, "offset": offset}),
                    });
                }
            }
        }
    }
}

/// `garbage-read`, `G1a` and `precommitted-read`: reads whose value has no
/// proper origin.
pub(crate) fn check_read_origins(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    for (i, op) in h.ops.iter().enumerate() {
        let ok = op.outcome == Outcome::Ok;
        for r in idx.op_reads(i) {
            let w = idx.sender[r.vid as usize];
            if w != NONE && (w as usize != i || op.f != F::Txn) && (!ok || h.ops[w as usize].outcome != Outcome::Fail) {
                continue; // the common case: a read of someone's committed send
            }
            let (k, o, v) = (r.key, r.offset, idx.values[r.vid as usize]);
            let key = h.key_name(k);
            if w == NONE {
                out.add("garbage-read", (1, line_of(h, i)), || Example {
                    text: format!(
                        "process {} read value {v} at offset {o} of {key}, but no operation ever sent {v}",
                        op.process
                    ),
                    key: Some(key.to_string()),
                    ops: vec![OpView::new(h, i)],
                    detail: json!({"key": key, "offset": o, "value": v}),
                });
                continue;
            }
            let w = w as usize;
            let writer = &h.ops[w];
            if ok && writer.outcome == Outcome::Fail && w != i {
                let what = if writer.f == F::Txn { "transaction" } else { "send" };
                out.add("G1a", (2, line_of(h, w.min(i))), || Example {
                    text: format!(
                        "process {} read value {v} at offset {o} of {key}, but the {what} of {v} by process {} failed",
                        op.process, writer.process
                    ),
                    key: Some(key.to_string()),
                    ops: vec![OpView::new(h, w), OpView::new(h, i)],
                    detail: json!({"key": key, "offset": o, "value": v}),
                });
            }
            if w == i && op.f == F::Txn {
                out.add("precommitted-read", (1, line_of(h, i)), || Example {
                    text: format!(
                        "the transaction of process {} read value {v} at offset {o} of {key}, which it wrote itself before committing",
                        op.process
                    ),
                    key: Some(key.to_string()),
                    ops: vec![OpView::new(h, i)],
                    detail: json!({"key": key, "offset": o, "value": v}),
                });
            }
        }
    }
}

/// Ordering of each process's ok sends to a key, across and inside operations.
/// Only ok sends count: an indeterminate send of a torn-down client may land
/// arbitrarily late.
pub(crate) fn check_send_order(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    // (process, key) → (position, op) of the process's last ok send to the key
    let mut last: FxHashMap<(u32, KeyId), (u32, u32)> = FxHashMap::default();
    let mut in_op: Vec<(KeyId, u32, i64)> = Vec::new();
    for (i, op) in h.ops.iter().enumerate() {
        if op.outcome != Outcome::Ok || !matches!(op.f, F::Send | F::Txn) {
            continue;
        }
        in_op.clear();
        for s in idx.op_sends(i) {
            let (k, v) = (s.key, idx.values[s.vid as usize]);
            let Some(p) = idx.send_pos(s) else { continue };
            let key = h.key_name(k);
            let off = |p: u32| idx.orders[k as usize].offsets[p as usize];
            if let Some(prev) = in_op.iter_mut().find(|e| e.0 == k) {
                let (pp, pv) = (prev.1, prev.2);
                if p <= pp {
                    out.add("int-nonmonotonic-send", (1, line_of(h, i)), || Example {
                        text: format!(
                            "inside one operation process {} sent {pv} then {v} to {key}, but {v} landed at offset {} at or before {pv}'s offset {}",
                            op.process, off(p), off(pp)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, i)],
                        detail: json!({"key": key, "values": [pv, v], "offsets": [off(pp), off(p)]}),
                    });
                } else if p > pp + 1 {
                    out.add("int-send-skip", (1, line_of(h, i)), || Example {
                        text: format!(
                            "inside one operation process {} sent {pv} then {v} to {key}, but they landed {} positions apart (offsets {} and {})",
                            op.process, p - pp, off(pp), off(p)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, i)],
                        detail: json!({"key": key, "values": [pv, v], "offsets": [off(pp), off(p)]}),
                    });
                }
                prev.1 = p;
                prev.2 = v;
                continue;
            }
            in_op.push((k, p, v));
            if let Some(&(lp, lop)) = last.get(&(op.process, k)) {
                if p <= lp {
                    let lop = lop as usize;
                    out.add("nonmonotonic-send", (2, line_of(h, lop)), || Example {
                        text: format!(
                            "process {} sent value {v} to {key} after its earlier send landed at offset {}, but {v} landed at offset {}, at or before it",
                            op.process, off(lp), off(p)
                        ),
                        key: Some(key.to_string()),
                        ops: vec![OpView::new(h, lop), OpView::new(h, i)],
                        detail: json!({"key": key, "value": v, "offsets": [off(lp), off(p)]}),
                    });
                }
            }
        }
        for &(k, p, _) in &in_op {
            last.insert((op.process, k), (p, i as u32));
        }
    }
}
