//! `inconsistent-offsets` and `duplicate`: what the version orders themselves say.

use serde_json::json;

use super::index::{for_each_read, for_each_send, LogIndex};
use crate::fxhash::{FxHashMap, FxHashSet};
use crate::history::{History, KeyId, Outcome};
use crate::report::{Anomalies, Example, OpView};

/// Up to this many operations are named per value in a witness.
const OPS_PER_VALUE: usize = 2;

/// For each (key, offset) of interest, the operations that saw or placed a value there.
fn observers(h: &History, wanted: &FxHashSet<(KeyId, i64)>) -> FxHashMap<(KeyId, i64), Vec<(i64, usize)>> {
    let mut out: FxHashMap<(KeyId, i64), Vec<(i64, usize)>> = FxHashMap::default();
    if wanted.is_empty() {
        return out;
    }
    let mut note = |k: KeyId, o: i64, v: i64, i: usize| {
        if wanted.contains(&(k, o)) {
            let list = out.entry((k, o)).or_default();
            let same_value = list.iter().filter(|(x, _)| *x == v).count();
            if same_value < OPS_PER_VALUE && !list.contains(&(v, i)) {
                list.push((v, i));
            }
        }
    };
    for (i, op) in h.ops.iter().enumerate() {
        for_each_read(h, op, |k, o, v| note(k, o, v, i));
        if op.outcome != Outcome::Fail {
            for_each_send(h, op, |k, v, o| {
                if let Some(o) = o {
                    note(k, o, v, i)
                }
            });
        }
    }
    out
}

fn who(h: &History, v: i64, list: &[(i64, usize)]) -> String {
    let names: Vec<String> = list
        .iter()
        .filter(|(x, _)| *x == v)
        .map(|(_, i)| {
            let op = &h.ops[*i];
            let verb = if matches!(op.f, crate::history::F::Send) { "acknowledged to" } else { "read by" };
            format!("{verb} process {} at line {}", op.process, h.invoke_event(op).line)
        })
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

pub(crate) fn check(h: &History, idx: &LogIndex, out: &mut Anomalies) {
    let mut wanted: FxHashSet<(KeyId, i64)> = FxHashSet::default();
    for inc in &idx.inconsistent {
        wanted.insert((inc.key, inc.offset));
    }
    for d in &idx.duplicates {
        for &o in &d.offsets {
            wanted.insert((d.key, o));
        }
    }
    let seen = observers(h, &wanted);
    let empty = Vec::new();

    for inc in &idx.inconsistent {
        let list = seen.get(&(inc.key, inc.offset)).unwrap_or(&empty);
        let mut ops: Vec<usize> = list.iter().map(|(_, i)| *i).collect();
        ops.sort_unstable();
        ops.dedup();
        let first_line = ops.first().map(|&i| h.invoke_event(&h.ops[i]).line).unwrap_or(0);
        let key = h.key_name(inc.key);
        out.add("inconsistent-offsets", (ops.len(), first_line), || {
            let parts: Vec<String> = inc.values.iter().map(|v| format!("{v}{}", who(h, *v, list))).collect();
            Example {
                text: format!(
                    "offset {} of {key} holds {} different values: {}",
                    inc.offset,
                    inc.values.len(),
                    parts.join(" and ")
                ),
                key: Some(key.to_string()),
                ops: ops.iter().map(|&i| OpView::new(h, i)).collect(),
                detail: json!({"key": key, "offset": inc.offset, "values": inc.values}),
            }
        });
    }

    for d in &idx.duplicates {
        let mut ops: Vec<usize> = d
            .offsets
            .iter()
            .flat_map(|o| seen.get(&(d.key, *o)).unwrap_or(&empty).iter())
            .filter(|(v, _)| *v == d.value)
            .map(|(_, i)| *i)
            .collect();
        ops.sort_unstable();
        ops.dedup();
        let first_line = ops.first().map(|&i| h.invoke_event(&h.ops[i]).line).unwrap_or(0);
        let key = h.key_name(d.key);
        out.add("duplicate", (ops.len(), first_line), || {
            let offs: Vec<String> = d.offsets.iter().map(|o| o.to_string()).collect();
            Example {
                text: format!(
                    "value {} stands at {} offsets of {key}: {}",
                    d.value,
                    d.offsets.len(),
                    offs.join(", ")
                ),
                key: Some(key.to_string()),
                ops: ops.iter().map(|&i| OpView::new(h, i)).collect(),
                detail: json!({"key": key, "value": d.value, "offsets": d.offsets}),
            }
        });
    }
}
