//! The Wing–Gong/Lowe linearizability search for one key, with memoization
//! of (set of linearized operations, state) as in Lowe's and Porcupine's.
//!
//! At each step the candidates are the unlinearized operations invoked before
//! the earliest pending completion `R` (any other must follow the operation
//! completing at `R`). Unlike the classic list walk in invocation order, the
//! operation completing at `R` is tried first: it is the most constrained,
//! and in the common case it is really next. Only when it cannot go next are
//! the others listed, those after which it could go first leading (e.g. the
//! write of the value a stuck read returned), then the rest: completed ones by
//! completion, then indeterminate ones by invocation. Every candidate is still
//! tried at every level, so the search stays exhaustive; the order only makes
//! valid histories need little backtracking.
//!
//! Indeterminate operations (info, or never completed) have no completion:
//! they may be linearized at any point after their invocation, or never, so
//! the search succeeds once every completed operation is linearized.
//!
//! Sets of linearized completed operations are fingerprinted with two 64-bit
//! Zobrist hashes (128 bits) instead of stored as bitsets, so a memo entry is
//! small whatever the history's length; a wrong memo hit would need a 128-bit
//! collision. Indeterminate operations are counted per kind instead, which
//! lets the memo prune dominated configurations (see `Memo`).

use std::time::Instant;

use super::model::{Interner, State, Step};
use crate::fxhash::FxHashMap;

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
    /// after it, and the operation that could not be placed after it.
    Not { prefix: Vec<u32>, state: State, stuck: u32 },
    /// The deadline passed first; the longest prefix found so far, if any
    /// (with the state after it and the operation that could not follow).
    Unknown { best: Option<(Vec<u32>, State, u32)> },
}

const NONE: u32 = u32::MAX;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Steps between two looks at the clock.
const CLOCK_EVERY: u64 = 1024;

/// A doubly linked list over operations in invocation order, from which
/// linearized operations are unlinked (and relinked in reverse order on
/// backtracking), so walking the unlinearized ones skips the rest.
struct List {
    next: Vec<u32>,
    prev: Vec<u32>,
    head: u32,
}

impl List {
    /// `order`: operation indices in invocation order. Nodes are op indices;
    /// `n` is a sentinel head.
    fn new(n: usize, order: &[u32]) -> List {
        let head = n as u32;
        let mut next = vec![NONE; n + 1];
        let mut prev = vec![NONE; n + 1];
        let mut last = head;
        for &o in order {
            next[last as usize] = o;
            prev[o as usize] = last;
            last = o;
        }
        List { next, prev, head }
    }

    fn first(&self) -> u32 {
        self.next[self.head as usize]
    }

    fn lift(&mut self, node: u32) {
        let (p, nx) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = nx;
        if nx != NONE {
            self.prev[nx as usize] = p;
        }
    }

    fn unlift(&mut self, node: u32) {
        let (p, nx) = (self.prev[node as usize], self.next[node as usize]);
        self.next[p as usize] = node;
        if nx != NONE {
            self.prev[nx as usize] = node;
        }
    }
}

struct Frame {
    op: u32,
    /// Rank of `op` among the candidates at its level.
    rank: u32,
    state: State,
    ret_ptr: u32,
}

/// Explored configurations. A configuration is the set of completed
/// operations linearized (a 128-bit Zobrist fingerprint), the state, and how
/// many indeterminate operations of each kind (same step) are linearized:
/// interchangeable ones are always used earliest-invoked first, so the counts
/// say exactly which. A configuration is dominated by an explored one with the
/// same set and state and no more of any kind (that one has every option this
/// one has, and more), so it need not be explored.
#[derive(Default)]
struct Memo {
    map: FxHashMap<ConfigKey, Vec<Box<[u16]>>>,
}

/// Fingerprint of the completed operations linearized, and the state.
type ConfigKey = (u64, u64, State);

impl Memo {
    /// Records the configuration `key` with `counts` (plus one of `kind`, if
    /// it is not NONE); false when an explored configuration dominates it.
    fn visit(&mut self, key: ConfigKey, counts: &mut [u16], kind: u32) -> bool {
        if kind != NONE {
            counts[kind as usize] += 1;
        }
        let list = self.map.entry(key).or_default();
        let le = |a: &[u16], b: &[u16]| a.iter().zip(b).all(|(x, y)| x <= y);
        let fresh = !list.iter().any(|e| le(e, counts));
        if fresh {
            // Entries the new one dominates will never prune anything it would not.
            list.retain(|e| !le(counts, e));
            list.push(counts.into());
        }
        if kind != NONE {
            counts[kind as usize] -= 1;
        }
        fresh
    }
}

/// True when linearizing `op` next (going from `state` to `new_state`) leads
/// to a configuration that another branch reaches with fewer indeterminate
/// operations, and so can do everything this one can:
/// - an indeterminate `op` that changes nothing is better never linearized;
/// - when the last operation linearized was indeterminate and `op` would
///   reach the same state without it (e.g. a write overwriting it), the
///   sibling branch that linearizes `op` in its place covers this one.
///
/// Indeterminate operations never change which operations are candidates
/// (that depends only on completed ones), so the sibling branch exists.
/// This keeps pending info operations, which never expire, from multiplying
/// the configurations to explore.
#[inline]
fn dominated(ops: &[LinOp], values: &mut Interner, stack: &[Frame], state: State, op: u32, new_state: State) -> bool {
    if ops[op as usize].ret.is_none() && new_state == state {
        return true;
    }
    match stack.last() {
        Some(f) if ops[f.op as usize].ret.is_none() => values.apply(f.state, ops[op as usize].step) == Some(new_state),
        _ => false,
    }
}

pub(crate) fn search(ops: &[LinOp], values: &mut Interner, deadline: Instant, aborted: &dyn Fn() -> bool) -> Outcome {
    let n = ops.len();
    let mut by_call: Vec<u32> = (0..n as u32).collect();
    by_call.sort_unstable_by_key(|&o| ops[o as usize].call);
    let done_order: Vec<u32> = by_call.iter().copied().filter(|&o| ops[o as usize].ret.is_some()).collect();
    // completed operations by completion time
    let mut by_ret: Vec<u32> = done_order.clone();
    by_ret.sort_unstable_by_key(|&o| ops[o as usize].ret);
    let total_done = by_ret.len();
    if total_done == 0 {
        return Outcome::Linearizable;
    }
    let mut done_list = List::new(n, &done_order);
    let mut linearized = vec![false; n];

    let mut seed = 0x5EED_u64;
    // Completed operations are fingerprinted; indeterminate ones are counted
    // per kind instead (see Memo).
    let zob: Vec<(u64, u64)> = (0..n)
        .map(|i| {
            let z = (splitmix(&mut seed), splitmix(&mut seed));
            if ops[i].ret.is_some() {
                z
            } else {
                (0, 0)
            }
        })
        .collect();
    let mut kinds: Vec<Step> = Vec::new();
    let kind_of: Vec<u32> = ops
        .iter()
        .map(|o| {
            if o.ret.is_some() {
                return NONE;
            }
            match kinds.iter().position(|k| *k == o.step) {
                Some(k) => k as u32,
                None => {
                    kinds.push(o.step);
                    kinds.len() as u32 - 1
                }
            }
        })
        .collect();
    let mut counts: Vec<u16> = vec![0; kinds.len()];
    // per kind, its members in invocation order
    let mut kind_members: Vec<Vec<u32>> = vec![Vec::new(); kinds.len()];
    for &o in &by_call {
        if kind_of[o as usize] != NONE {
            kind_members[kind_of[o as usize] as usize].push(o);
        }
    }
    let mut memo = Memo::default();
    let mut stack: Vec<Frame> = Vec::new();
    let (mut h1, mut h2) = (0u64, 0u64);
    let mut state: State = 0;
    // index into by_ret of the earliest unlinearized completed operation
    let mut ret_ptr = 0u32;
    let mut linearized_done = 0usize;
    let mut best: Option<(Vec<u32>, State, u32)> = None;
    let mut steps = 0u64;
    let mut start_rank = 0u32;
    let mut candidates: Vec<u32> = Vec::new();

    loop {
        if linearized_done == total_done {
            return Outcome::Linearizable;
        }
        steps += 1;
        if steps.is_multiple_of(CLOCK_EVERY) {
            // A time budget is wall-clock by nature: the checker runs outside the simulation.
            #[allow(clippy::disallowed_methods)]
            let now = Instant::now();
            if now >= deadline || aborted() {
                return Outcome::Unknown { best };
            }
        }
        let stuck = by_ret[ret_ptr as usize];
        let r = ops[stuck as usize].ret.unwrap_or(u32::MAX);
        // Rank 0 is the operation completing first. Only if it cannot go
        // next are the other candidates listed: those after which it could go
        // first, then the rest (completed ones by completion, then the
        // indeterminate ones by invocation).
        let mut chosen = None;
        let mut rank = start_rank;
        if rank == 0 {
            if let Some(new_state) = values.apply(state, ops[stuck as usize].step) {
                let (z1, z2) = zob[stuck as usize];
                if !dominated(ops, values, &stack, state, stuck, new_state)
                    && memo.visit((h1 ^ z1, h2 ^ z2, new_state), &mut counts, kind_of[stuck as usize])
                {
                    chosen = Some((stuck, new_state));
                }
            }
            if chosen.is_none() {
                rank = 1;
            }
        }
        if chosen.is_none() {
            candidates.clear();
            let mut node = done_list.first();
            while node != NONE && ops[node as usize].call < r {
                if node != stuck {
                    candidates.push(node);
                }
                node = done_list.next[node as usize];
            }
            candidates.sort_unstable_by_key(|&o| ops[o as usize].ret);
            // Pending indeterminate operations with the same step are
            // interchangeable (swap them in any linearization), so only the
            // earliest invoked of each kind is a candidate: the next unused
            // member of the kind.
            let first_info = candidates.len();
            for (k, members) in kind_members.iter().enumerate() {
                if let Some(&o) = members.get(counts[k] as usize) {
                    if ops[o as usize].call < r {
                        candidates.push(o);
                    }
                }
            }
            candidates[first_info..].sort_unstable_by_key(|&o| ops[o as usize].call);
            let stuck_step = ops[stuck as usize].step;
            let mut enables = |o: u32| -> bool {
                match values.apply(state, ops[o as usize].step) {
                    Some(s1) => values.apply(s1, stuck_step).is_some(),
                    None => false,
                }
            };
            let (mut first, rest): (Vec<u32>, Vec<u32>) = candidates.iter().partition(|&&o| enables(o));
            first.extend(rest);
            candidates = first;
            while let Some(&op) = candidates.get(rank as usize - 1) {
                if let Some(new_state) = values.apply(state, ops[op as usize].step) {
                    let (z1, z2) = zob[op as usize];
                    if !dominated(ops, values, &stack, state, op, new_state)
                        && memo.visit((h1 ^ z1, h2 ^ z2, new_state), &mut counts, kind_of[op as usize])
                    {
                        chosen = Some((op, new_state));
                        break;
                    }
                }
                rank += 1;
            }
        }
        match chosen {
            Some((op, new_state)) => {
                stack.push(Frame {
                    op,
                    rank,
                    state,
                    ret_ptr,
                });
                let (z1, z2) = zob[op as usize];
                h1 ^= z1;
                h2 ^= z2;
                state = new_state;
                linearized[op as usize] = true;
                if ops[op as usize].ret.is_some() {
                    done_list.lift(op);
                    linearized_done += 1;
                    while (ret_ptr as usize) < total_done && linearized[by_ret[ret_ptr as usize] as usize] {
                        ret_ptr += 1;
                    }
                } else {
                    counts[kind_of[op as usize] as usize] += 1;
                }
                start_rank = 0;
            }
            None => {
                // Nothing can be placed next: remember the deepest point, backtrack.
                if best.as_ref().is_none_or(|b| b.0.len() < stack.len()) {
                    best = Some((stack.iter().map(|f| f.op).collect(), state, stuck));
                }
                let Some(f) = stack.pop() else {
                    let (prefix, state, stuck) = best.unwrap_or((Vec::new(), state, stuck));
                    return Outcome::Not { prefix, state, stuck };
                };
                let (z1, z2) = zob[f.op as usize];
                h1 ^= z1;
                h2 ^= z2;
                state = f.state;
                linearized[f.op as usize] = false;
                if ops[f.op as usize].ret.is_some() {
                    done_list.unlift(f.op);
                    linearized_done -= 1;
                } else {
                    counts[kind_of[f.op as usize] as usize] -= 1;
                }
                ret_ptr = f.ret_ptr;
                start_rank = f.rank + 1;
            }
        }
    }
}
