//! Quick, sound refutations of single reads, run before the search: a read
//! no linearization can place proves the key nonlinearizable without
//! exploring every configuration, which for a long history with many pending
//! indeterminate operations can take longer than any budget.
//!
//! For an ok read R of value v (register mode only; writes and successful
//! cas set values, every other step keeps them):
//! - *no source*: v is not the initial value and no write of v, and no cas to
//!   v, that may have taken effect was invoked before R completed;
//! - *overwritten*: every source of v certainly completed (none is
//!   indeterminate) before some ok write or cas X of another value was
//!   invoked, and X completed before R was invoked. Every source then comes
//!   before X, and nothing after X can set v again, so R cannot read v.

use super::model::{State, Step};
use super::wgl::LinOp;
use crate::fxhash::FxHashMap;

/// Index (into `ops`) of a read that no linearization can place, if one is found.
pub(crate) fn impossible_read(ops: &[LinOp], string_mode: bool) -> Option<u32> {
    if string_mode {
        return None;
    }
    const INITIAL: State = 0;
    // Per value: the latest completion of its sources, or None when some
    // source is indeterminate (it may take effect at any time).
    let mut latest_source: FxHashMap<State, Option<u32>> = FxHashMap::default();
    // Per value: invocation of its earliest source.
    let mut earliest_call: FxHashMap<State, u32> = FxHashMap::default();
    // Ok setters: (value set, call, ret).
    let mut setters: Vec<(State, u32, u32)> = Vec::new();
    for o in ops {
        let set = match o.step {
            Step::Write(v) | Step::CasOk(_, v) => v,
            _ => continue,
        };
        let e = latest_source.entry(set).or_insert(Some(0));
        *e = match (*e, o.ret) {
            (Some(a), Some(r)) => Some(a.max(r)),
            _ => None,
        };
        let c = earliest_call.entry(set).or_insert(o.call);
        *c = (*c).min(o.call);
        if let Some(r) = o.ret {
            setters.push((set, o.call, r));
        }
    }
    setters.sort_unstable_by_key(|s| s.1);
    // Earliest completion among setters invoked at or after each position
    // (whatever they set), and the same excluding each value is computed on
    // demand below by scanning from the first candidate.
    for (i, o) in ops.iter().enumerate() {
        let (Step::Read(v), Some(r_ret)) = (o.step, o.ret) else { continue };
        if v == INITIAL {
            continue;
        }
        let first_source = earliest_call.get(&v).copied();
        if first_source.is_none_or(|c| c > r_ret) {
            return Some(i as u32);
        }
        let Some(Some(m)) = latest_source.get(&v).copied() else { continue };
        // An ok setter of another value invoked after m that completed before R was invoked.
        let from = setters.partition_point(|s| s.1 <= m);
        let overwritten = setters[from..]
            .iter()
            .take_while(|s| s.1 < o.call)
            .any(|s| s.0 != v && s.2 < o.call);
        if overwritten {
            return Some(i as u32);
        }
    }
    None
}
