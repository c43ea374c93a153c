//! The Wing–Gong/Lowe linearizability search for one key, as in Porcupine:
//! a doubly linked list of call and return entries in history order, a stack
//! of linearized calls for backtracking, and a memo of (set of linearized
//! operations, state) already explored.
//!
//! Indeterminate operations (info, or never completed) have a call entry and
//! no return entry: they may be linearized at any point after their call, or
//! never, so the search succeeds once every return entry is gone.
//!
//! Sets of linearized operations are fingerprinted with two 64-bit Zobrist
//! hashes (128 bits) instead of stored as bitsets, so a memo entry costs 20
//! bytes whatever the history's length; a wrong memo hit would need a 128-bit
//! collision.

use std::time::Instant;

use super::model::{Interner, State, Step};
use crate::fxhash::FxHashSet;

/// One operation of the key, in the search's terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LinOp {
    pub step: Step,
    /// Event index of the invocation.
    pub call: u32,
    /// Event index of the completion, for operations that certainly completed.
    pub ret: Option<u32>,
}

pub(crate) enum Outcome {
    Linearizable,
    /// The longest linearizable prefix found (indices into the ops), the state
    /// after it, and the operation whose completion was reached unplaced.
    Not { prefix: Vec<u32>, state: State, stuck: u32 },
    /// The deadline passed first.
    Unknown,
}

const NONE: u32 = u32::MAX;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Iterations between two looks at the clock.
const CLOCK_EVERY: u64 = 4096;

pub(crate) fn search(ops: &[LinOp], values: &mut Interner, deadline: Instant, aborted: &dyn Fn() -> bool) -> Outcome {
    // Entries: (event index, op, is_return); list nodes 1..=n, 0 is the head.
    let mut entries: Vec<(u32, u32, bool)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        entries.push((op.call, i as u32, false));
        if let Some(r) = op.ret {
            entries.push((r, i as u32, true));
        }
    }
    entries.sort_unstable_by_key(|e| (e.0, e.2));
    let n = entries.len();
    if n == 0 {
        return Outcome::Linearizable;
    }
    let mut next: Vec<u32> = (0..=n as u32).map(|i| if (i as usize) < n { i + 1 } else { NONE }).collect();
    let mut prev: Vec<u32> = (0..=n as u32).map(|i| i.wrapping_sub(1)).collect();
    prev[0] = NONE;
    // node of each op's return entry
    let mut ret_node = vec![NONE; ops.len()];
    for (k, &(_, op, is_ret)) in entries.iter().enumerate() {
        if is_ret {
            ret_node[op as usize] = k as u32 + 1;
        }
    }
    let node_op = |node: u32| entries[node as usize - 1].1;
    let node_is_ret = |node: u32| entries[node as usize - 1].2;

    let mut seed = 0x5EED_u64;
    let zob: Vec<(u64, u64)> = (0..ops.len()).map(|_| (splitmix(&mut seed), splitmix(&mut seed))).collect();
    let mut returns_left = ops.iter().filter(|o| o.ret.is_some()).count();
    let mut memo: FxHashSet<(u64, u64, State)> = FxHashSet::default();
    let mut stack: Vec<(u32, State)> = Vec::new();
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut state: State = 0;
    let mut best: Option<(Vec<u32>, State, u32)> = None;
    let mut best_depth = 0usize;
    let mut iterations = 0u64;
    let mut entry = next[0];

    // Unlinks an entry from the list.
    fn lift(next: &mut [u32], prev: &mut [u32], node: u32) {
        let (p, nx) = (prev[node as usize], next[node as usize]);
        next[p as usize] = nx;
        if nx != NONE {
            prev[nx as usize] = p;
        }
    }
    // Puts an entry back where it was (entries are restored in reverse order of removal).
    fn unlift(next: &mut [u32], prev: &mut [u32], node: u32) {
        let (p, nx) = (prev[node as usize], next[node as usize]);
        next[p as usize] = node;
        if nx != NONE {
            prev[nx as usize] = node;
        }
    }

    while returns_left > 0 {
        iterations += 1;
        if iterations % CLOCK_EVERY == 0 {
            // A time budget is wall-clock by nature: the checker runs outside the simulation.
            #[allow(clippy::disallowed_methods)]
            let now = Instant::now();
            if now >= deadline || aborted() {
                return Outcome::Unknown;
            }
        }
        if entry == NONE {
            // Only indeterminate calls remain ahead, yet a return is pending
            // behind: cannot happen, since returns are always reached first.
            break;
        }
        if !node_is_ret(entry) {
            let op = node_op(entry);
            let o = &ops[op as usize];
            if let Some(new_state) = values.apply(state, o.step) {
                let (z1, z2) = zob[op as usize];
                let (n1, n2) = (h1 ^ z1, h2 ^ z2);
                if memo.insert((n1, n2, new_state)) {
                    stack.push((entry, state));
                    state = new_state;
                    h1 = n1;
                    h2 = n2;
                    lift(&mut next, &mut prev, entry);
                    if ret_node[op as usize] != NONE {
                        lift(&mut next, &mut prev, ret_node[op as usize]);
                        returns_left -= 1;
                    }
                    entry = next[0];
                    continue;
                }
            }
            entry = next[entry as usize];
        } else {
            // The completion of an unplaced operation: backtrack.
            if stack.len() >= best_depth && best.as_ref().is_none_or(|b| b.0.len() < stack.len()) {
                best_depth = stack.len();
                let prefix: Vec<u32> = stack.iter().map(|(node, _)| node_op(*node)).collect();
                best = Some((prefix, state, node_op(entry)));
            }
            let Some((node, old_state)) = stack.pop() else {
                let (prefix, state, stuck) = best.unwrap_or((Vec::new(), state, node_op(entry)));
                return Outcome::Not { prefix, state, stuck };
            };
            let op = node_op(node);
            if ret_node[op as usize] != NONE {
                unlift(&mut next, &mut prev, ret_node[op as usize]);
                returns_left += 1;
            }
            unlift(&mut next, &mut prev, node);
            let (z1, z2) = zob[op as usize];
            h1 ^= z1;
            h2 ^= z2;
            state = old_state;
            entry = next[node as usize];
        }
    }
    Outcome::Linearizable
}
