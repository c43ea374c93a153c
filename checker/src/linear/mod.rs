//! Register/kv linearizability: each key is checked on its own
//! (P-compositionality), keys in parallel across cores, each with the
//! Wing–Gong/Lowe search of the `wgl` module under one shared deadline.

mod model;
mod refute;
mod wgl;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::history::{History, KeyId, Outcome, Payload, RegValue, F};
use crate::report::{Anomalies, Example, OpView};
use model::Interner;
use wgl::LinOp;

/// How many operations of the prefix a witness lists in full (the last ones).
const PREFIX_OPS_SHOWN: usize = 4;

/// What the linearizability check found.
#[derive(Debug, Default)]
pub struct LinearResult {
    pub anomalies: Anomalies,
    pub unknown_reasons: Vec<String>,
    pub keys_checked: usize,
    pub ops_checked: usize,
}

enum KeyVerdict {
    Ok,
    Unknown,
    Not {
        prefix: Vec<usize>,
        state: String,
        stuck: usize,
    },
}

fn reg(h: &History, e: Option<u32>) -> Option<&RegValue> {
    match e.map(|i| &h.events[i as usize].value) {
        Some(Payload::Register(r)) => Some(r),
        _ => None,
    }
}

/// Checks one key's operations (indices into `h.ops`, in invocation order).
fn check_key(h: &History, ops: &[usize], deadline: Instant, aborted: &AtomicBool) -> KeyVerdict {
    let string_mode = ops.iter().any(|&i| h.ops[i].f == F::Append);
    let mut values = Interner::new(string_mode);
    let mut lin: Vec<LinOp> = Vec::with_capacity(ops.len());
    let mut origin: Vec<usize> = Vec::with_capacity(ops.len());
    for &i in ops {
        let op = &h.ops[i];
        let Some(inv) = reg(h, Some(op.invoke)) else { continue };
        let comp = reg(h, op.completion);
        let (step, ret) = match op.outcome {
            Outcome::Ok => (values.step(inv, comp, true), op.completion),
            // A failed cas compared and found another value; any other failed
            // operation certainly had no effect.
            Outcome::Fail if op.f == F::Cas => (values.step(inv, comp, false), op.completion),
            Outcome::Fail => (None, None),
            // An indeterminate read constrains nothing.
            Outcome::Info if op.f == F::Read => (None, None),
            Outcome::Info => (values.step(inv, comp, true), None),
        };
        if let Some(step) = step {
            lin.push(LinOp {
                step,
                call: op.invoke,
                ret,
            });
            origin.push(i);
        }
    }
    let stop = || aborted.load(Ordering::Relaxed);
    // A read proven impossible up front settles the verdict; the search then
    // only has to find a witness prefix, within a short budget.
    let refuted = refute::impossible_read(&lin, string_mode);
    let deadline = match refuted {
        // A time budget is wall-clock by nature: the checker runs outside the simulation.
        #[allow(clippy::disallowed_methods)]
        Some(_) => deadline.min(Instant::now() + WITNESS_BUDGET),
        None => deadline,
    };
    let not = |prefix: Vec<u32>, state, stuck: u32, values: &Interner| KeyVerdict::Not {
        prefix: prefix.iter().map(|&p| origin[p as usize]).collect(),
        state: values.show(state),
        stuck: origin[stuck as usize],
    };
    match (wgl::search(&lin, &mut values, deadline, &stop), refuted) {
        // A read proven impossible names the culprit better than the deepest point of the search.
        (wgl::Outcome::Not { prefix, state, .. }, Some(r)) => not(prefix, state, r, &values),
        (wgl::Outcome::Not { prefix, state, stuck }, None) => not(prefix, state, stuck, &values),
        (wgl::Outcome::Unknown { best: Some((prefix, state, _)) }, Some(r)) => not(prefix, state, r, &values),
        (wgl::Outcome::Unknown { .. }, Some(r)) => not(Vec::new(), 0, r, &values),
        (wgl::Outcome::Unknown { .. }, None) => KeyVerdict::Unknown,
        // The refutation is sound, so a found linearization cannot happen with it.
        (wgl::Outcome::Linearizable, _) => KeyVerdict::Ok,
    }
}

/// Time spent looking for a witness prefix once a read is proven impossible.
const WITNESS_BUDGET: Duration = Duration::from_millis(300);

fn describe(h: &History, i: usize) -> String {
    let op = &h.ops[i];
    let inv = h.event_json(h.invoke_event(op));
    let comp = h.completion_event(op).map(|e| h.event_json(e));
    let what = match (op.f, &comp) {
        (F::Read, Some(c)) => format!("read of {}", c["value"]),
        (F::Cas, _) => format!("cas {}", inv["value"]),
        (f, _) => format!("{} of {}", f.as_str(), inv["value"]),
    };
    format!("process {}'s {what} ({})", op.process, op.outcome.as_str())
}

/// Checks every register operation of the history.
pub fn check(h: &History, time_budget: Duration) -> LinearResult {
    // The deadline is read on the first thread that searches: the pool's
    // threads always see the real clock, even when the caller runs inside a
    // simulation whose clock is virtual.
    let deadline: OnceLock<Instant> = OnceLock::new();
    // A time budget is wall-clock by nature: the checker runs outside the simulation.
    #[allow(clippy::disallowed_methods)]
    let deadline = || *deadline.get_or_init(|| Instant::now() + time_budget);
    let mut by_key: BTreeMap<Option<KeyId>, Vec<usize>> = BTreeMap::new();
    for (i, op) in h.ops.iter().enumerate() {
        if op.f.is_register() {
            by_key.entry(h.invoke_event(op).key).or_default().push(i);
        }
    }
    let keys: Vec<(Option<KeyId>, Vec<usize>)> = by_key.into_iter().collect();
    let aborted = AtomicBool::new(false);
    let verdicts: Vec<KeyVerdict> = crate::par::map(&keys, |(_, ops)| {
        let v = check_key(h, ops, deadline(), &aborted);
        if matches!(v, KeyVerdict::Unknown) {
            // Past the deadline every other key is unknown too: stop them.
            aborted.store(true, Ordering::Relaxed);
        }
        v
    });
    let mut out = LinearResult {
        keys_checked: keys.len(),
        ops_checked: keys.iter().map(|k| k.1.len()).sum(),
        ..Default::default()
    };
    // Report in key-name order whatever order the threads finished in.
    let mut named: Vec<(String, &Vec<usize>, KeyVerdict)> = keys
        .iter()
        .zip(verdicts)
        .map(|((k, ops), v)| (k.map(|k| h.key_name(k).to_string()).unwrap_or_default(), ops, v))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let mut unknown_keys = 0;
    for (key, ops, verdict) in named {
        let shown = if key.is_empty() { "the shared key".to_string() } else { format!("key {key:?}") };
        match verdict {
            KeyVerdict::Ok => {}
            KeyVerdict::Unknown => unknown_keys += 1,
            KeyVerdict::Not { prefix, state, stuck } => {
                let first_line = h.invoke_event(&h.ops[ops[0]]).line;
                out.anomalies.add("nonlinearizable", (prefix.len() + 1, first_line), || {
                    let mut shown_ops: Vec<OpView> = prefix
                        .iter()
                        .skip(prefix.len().saturating_sub(PREFIX_OPS_SHOWN))
                        .map(|&i| OpView::new(h, i))
                        .collect();
                    shown_ops.push(OpView::new(h, stuck));
                    Example {
                        text: format!(
                            "{shown} is not linearizable: the longest linearizable prefix found has {} of its {} operations and leaves the value {state}; {} cannot be placed after it",
                            prefix.len(),
                            ops.len(),
                            describe(h, stuck)
                        ),
                        key: Some(key.clone()),
                        ops: shown_ops,
                        detail: json!({"key": key, "linearized": prefix, "value_after": state,
                                       "stuck": stuck, "ops": ops}),
                    }
                });
            }
        }
    }
    if unknown_keys > 0 {
        out.unknown_reasons.push(format!(
            "the linearizability search of {unknown_keys} key(s) ran past the {} ms time budget",
            time_budget.as_millis()
        ));
    }
    out
}

