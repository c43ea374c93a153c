//! `epoch` reads: reads of a value that only the system writes and that only
//! ever grows, such as a partition's leader epoch read through metadata.
//!
//! Clients never write the value, so the register model has no writes to
//! explain a read with; what linearizability still implies is this. Every
//! ok read takes effect at one point between its invocation and its
//! completion, and the value it returns is the value at that point. If read
//! `a` completed before read `b` was invoked, `a`'s point precedes `b`'s, and
//! since the value never decreases, `value(b) >= value(a)`. So
//!
//! > for two ok `epoch` reads `a` and `b` of one key, if `a` completed
//! > before `b` was invoked and `value(b) < value(a)`, the history is not
//! > linearizable (anomaly `epoch-regression`).
//!
//! Conversely, if no such pair exists the reads can always be linearized,
//! with the system's writes stepping the value up between them: take the
//! reads by value, equal values in invocation order, and place each at its
//! invocation or just after the previous read's point, whichever is later.
//! A read placed past its completion would lie behind the invocation of a
//! read placed earlier, which saw a smaller value (an equal one was invoked
//! before it) and was invoked after this one completed: exactly a forbidden
//! pair. So the rule is exact: reads that overlap may see the epochs in
//! either order, and `fail`/`info` reads (whose value never came back)
//! constrain nothing. Keys are independent, as for the register operations.
//!
//! "Completed before invoked" is the file order of the two events, as
//! everywhere in the checker: the file lists events in the order they
//! happened, so with distinct timestamps it is the completion's `time` being
//! smaller than the invocation's.
//!
//! The check sorts each key's ok reads by completion and sweeps them in
//! invocation order with the largest value among the reads already completed:
//! O(n log n). Each read below that maximum counts once, its witness naming
//! the earliest-completed read that saw the maximum.

use std::collections::BTreeMap;

use serde_json::json;

use crate::history::{History, KeyId, Outcome, Payload, F};
use crate::report::{Anomalies, Example, OpView};

/// The anomaly's name in reports.
pub const EPOCH_REGRESSION: &str = "epoch-regression";

/// What the epoch check found.
#[derive(Debug, Default)]
pub struct EpochResult {
    pub anomalies: Anomalies,
    pub keys_checked: usize,
    pub ops_checked: usize,
}

/// One ok epoch read: event indices of its invocation and completion.
#[derive(Clone, Copy)]
struct Read {
    call: u32,
    ret: u32,
    value: i64,
    op: usize,
}

fn describe(h: &History, r: &Read) -> String {
    let op = &h.ops[r.op];
    let inv = h.invoke_event(op).line;
    let comp = h.completion_event(op).map(|e| e.line).unwrap_or(inv);
    format!("process {}'s epoch read (lines {inv}-{comp})", op.process)
}

/// Checks every `epoch` operation of the history.
pub fn check(h: &History) -> EpochResult {
    let mut by_key: BTreeMap<Option<KeyId>, Vec<Read>> = BTreeMap::new();
    let mut out = EpochResult::default();
    for (i, op) in h.ops.iter().enumerate() {
        if op.f != F::Epoch {
            continue;
        }
        out.ops_checked += 1;
        let reads = by_key.entry(h.invoke_event(op).key).or_default();
        if op.outcome != Outcome::Ok {
            continue;
        }
        let (Some(ret), Some(Payload::Epoch(Some(value)))) = (op.completion, h.completion_event(op).map(|e| &e.value))
        else {
            continue;
        };
        reads.push(Read {
            call: op.invoke,
            ret,
            value: *value,
            op: i,
        });
    }
    out.keys_checked = by_key.len();
    // Report in key-name order.
    let mut keys: Vec<(String, Vec<Read>)> = by_key
        .into_iter()
        .map(|(k, reads)| (k.map(|k| h.key_name(k).to_string()).unwrap_or_default(), reads))
        .collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, by_call) in keys {
        // `h.ops` is in invocation order, so `by_call` already is.
        let mut by_ret = by_call.clone();
        by_ret.sort_unstable_by_key(|r| r.ret);
        let shown = if key.is_empty() { "the shared key".to_string() } else { format!("key {key:?}") };
        let mut done = 0;
        // The read with the largest value among those completed so far (the
        // earliest completed, among equals).
        let mut max: Option<Read> = None;
        for b in &by_call {
            while done < by_ret.len() && by_ret[done].ret < b.call {
                let r = by_ret[done];
                if max.is_none_or(|m| r.value > m.value) {
                    max = Some(r);
                }
                done += 1;
            }
            let Some(a) = max else { continue };
            if b.value >= a.value {
                continue;
            }
            let first_line = h.invoke_event(&h.ops[a.op]).line;
            out.anomalies.add(EPOCH_REGRESSION, (2, first_line), || Example {
                text: format!(
                    "the epoch of {shown} went backwards: {} saw epoch {}, then {}, invoked after that read completed, saw the lower epoch {}",
                    describe(h, &a),
                    a.value,
                    describe(h, b),
                    b.value
                ),
                key: Some(key.clone()),
                ops: vec![OpView::new(h, a.op), OpView::new(h, b.op)],
                detail: json!({
                    "key": key,
                    "earlier_op": a.op,
                    "earlier_value": a.value,
                    "later_op": b.op,
                    "later_value": b.value,
                }),
            });
        }
    }
    out
}
