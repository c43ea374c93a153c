//! Consumer-group operations: offset commits (`commit`) and the assignments
//! members learn at the end of a SyncGroup (`assignment`), and the two
//! anomalies they can show.
//!
//! **`commit-regression`.** The coordinator keeps, per group and key, the
//! last committed offset; an ok commit took effect at one point between its
//! invocation and its completion. Members commit the offset after what they
//! processed, and a member that takes a key over resumes from the committed
//! offset, so the committed offset of a key should never go backwards: if
//! ok commit `a` completed before ok commit `b` was invoked (both naming key
//! K in one group), `a` took effect first and `b` must not commit a smaller
//! offset for K. A regression means the group would consume again what it
//! had already committed as processed (e.g. a zombie member of an old
//! generation that the coordinator failed to fence, or a coordinator
//! failover that lost a commit and let a member resume from an older one).
//! Overlapping commits may land in either order, so they constrain nothing,
//! and `fail`/`info` commits (which may or may not have landed) constrain
//! nothing either. This is the `epoch` module's rule on the sequence of
//! committed offsets of each (group, key), and is checked the same way: each
//! (group, key)'s ok commits sorted by completion, swept in invocation order
//! against the largest offset among the commits completed before the
//! current one's invocation, O(n log n). Each (commit, key) pair below that
//! maximum counts once; its witness names the earliest-completed commit that
//! committed the maximum.
//!
//! **`assignment-conflict`.** Within one generation of one group, each key
//! has at most one owner: two ok assignments with the same group and
//! generation, for different members, that both list key K are a conflict.
//! The count is the number of (group, generation, key) triples with more
//! than one owner; the witness names the first ok assignment of each owner.
//! The same key owned by different members in different generations is a
//! rebalance, not a conflict, and so is the same member learning its
//! assignment twice. Fail/info assignments constrain nothing.
//!
//! "Completed before invoked" is the file order of the two events, as
//! everywhere in the checker. These operations are not reads or writes of
//! the log: the log checks, the dependency graph and its real-time edges
//! leave them out.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::history::{GroupValue, History, Outcome, Payload, F};
use crate::report::{Anomalies, Example, OpView};

/// The anomaly's name in reports: a group's committed offset for a key went
/// backwards between two ok commits in real-time order.
pub const COMMIT_REGRESSION: &str = "commit-regression";
/// The anomaly's name in reports: one key owned by two members in one
/// generation of a group.
pub const ASSIGNMENT_CONFLICT: &str = "assignment-conflict";

/// What the consumer-group checks found.
#[derive(Debug, Default)]
pub struct GroupsResult {
    pub anomalies: Anomalies,
    /// Distinct group names among the `commit` and `assignment` operations.
    pub groups: usize,
    /// `commit` operations (any outcome).
    pub commit_ops: usize,
    /// `assignment` operations (any outcome).
    pub assignment_ops: usize,
}

/// One ok commit's offset for one key: event indices of its invocation and
/// completion.
#[derive(Clone, Copy)]
struct Commit {
    call: u32,
    ret: u32,
    offset: i64,
    generation: i64,
    op: usize,
}

/// The ok completion's value of a group operation, if it completed ok.
fn ok_value<'a>(h: &'a History, i: usize) -> Option<&'a GroupValue> {
    let op = &h.ops[i];
    if op.outcome != Outcome::Ok {
        return None;
    }
    match h.completion_event(op).map(|e| &e.value) {
        Some(Payload::Group(Some(g))) => Some(g),
        _ => None,
    }
}

fn lines(h: &History, i: usize) -> String {
    let op = &h.ops[i];
    let inv = h.invoke_event(op).line;
    let comp = h.completion_event(op).map(|e| e.line).unwrap_or(inv);
    format!("lines {inv}-{comp}")
}

/// Checks every `commit` and `assignment` operation of the history.
pub fn check(h: &History) -> GroupsResult {
    let mut out = GroupsResult::default();
    // (group, key name) → ok commits naming the key, in invocation order
    let mut commits: BTreeMap<(&str, &str), Vec<Commit>> = BTreeMap::new();
    // (group, generation, key name) → member → first ok assignment listing the key
    let mut owners: BTreeMap<(&str, i64, &str), BTreeMap<&str, usize>> = BTreeMap::new();
    let mut groups: BTreeSet<&str> = BTreeSet::new();
    for (i, op) in h.ops.iter().enumerate() {
        match op.f {
            F::Commit => out.commit_ops += 1,
            F::Assignment => out.assignment_ops += 1,
            _ => continue,
        }
        if let Payload::Group(Some(g)) = &h.invoke_event(op).value {
            groups.insert(g.group());
        }
        let Some(g) = ok_value(h, i) else { continue };
        let ret = op.completion.expect("an ok operation has a completion");
        debug_assert!(ret > op.invoke);
        match g {
            GroupValue::Commit { group, generation, offsets, .. } => {
                for &(k, offset) in offsets {
                    commits.entry((group, h.key_name(k))).or_default().push(Commit {
                        call: op.invoke,
                        ret,
                        offset,
                        generation: *generation,
                        op: i,
                    });
                }
            }
            GroupValue::Assignment { group, generation, member, keys } => {
                for &k in keys.as_deref().unwrap_or_default() {
                    owners.entry((group, *generation, h.key_name(k))).or_default().entry(member).or_insert(i);
                }
            }
        }
    }
    out.groups = groups.len();
    for ((group, key), by_call) in &commits {
        regressions(h, group, key, by_call, &mut out.anomalies);
    }
    for ((group, generation, key), members) in &owners {
        if members.len() < 2 {
            continue;
        }
        conflict(h, group, *generation, key, members, &mut out.anomalies);
    }
    out
}

/// The sweep of one (group, key)'s ok commits, `by_call` in invocation order.
fn regressions(h: &History, group: &str, key: &str, by_call: &[Commit], out: &mut Anomalies) {
    // Several entries of one commit only if an in-memory history named a
    // key twice; the sweep does not mind.
    debug_assert!(by_call.windows(2).all(|w| w[0].call <= w[1].call));
    let mut by_ret = by_call.to_vec();
    by_ret.sort_unstable_by_key(|c| c.ret);
    let mut done = 0;
    // The commit with the largest offset among those completed so far (the
    // earliest completed, among equals).
    let mut max: Option<Commit> = None;
    for b in by_call {
        while done < by_ret.len() && by_ret[done].ret < b.call {
            let c = by_ret[done];
            if max.is_none_or(|m| c.offset > m.offset) {
                max = Some(c);
            }
            done += 1;
        }
        let Some(a) = max else { continue };
        if b.offset >= a.offset {
            continue;
        }
        debug_assert!(a.ret < b.call && a.op != b.op);
        let first_line = h.invoke_event(&h.ops[a.op]).line;
        out.add(COMMIT_REGRESSION, (2, first_line), || Example {
            text: format!(
                "group {group:?}'s committed offset of key {key:?} went backwards: process {}'s commit ({}, generation {}) committed offset {}, then process {}'s commit ({}, generation {}), invoked after that commit completed, committed the lower offset {}",
                h.ops[a.op].process,
                lines(h, a.op),
                a.generation,
                a.offset,
                h.ops[b.op].process,
                lines(h, b.op),
                b.generation,
                b.offset
            ),
            key: Some(key.to_string()),
            ops: vec![OpView::new(h, a.op), OpView::new(h, b.op)],
            detail: json!({
                "group": group,
                "key": key,
                "earlier_op": a.op,
                "earlier_offset": a.offset,
                "earlier_generation": a.generation,
                "later_op": b.op,
                "later_offset": b.offset,
                "later_generation": b.generation,
            }),
        });
    }
}

/// One (group, generation, key) with two or more owners; `members` maps each
/// owner to its first ok assignment listing the key.
fn conflict(h: &History, group: &str, generation: i64, key: &str, members: &BTreeMap<&str, usize>, out: &mut Anomalies) {
    debug_assert!(members.len() >= 2);
    // The ops in the order they were invoked (ops are in invocation order).
    let mut ops: Vec<(usize, &str)> = members.iter().map(|(m, &i)| (i, *m)).collect();
    ops.sort_unstable();
    let first_line = h.invoke_event(&h.ops[ops[0].0]).line;
    out.add(ASSIGNMENT_CONFLICT, (ops.len(), first_line), || {
        let who: Vec<String> = ops
            .iter()
            .map(|&(i, m)| format!("member {m:?} (process {}'s assignment, {})", h.ops[i].process, lines(h, i)))
            .collect();
        Example {
            text: format!(
                "key {key:?} has {} owners in generation {generation} of group {group:?}: {}",
                ops.len(),
                who.join(", ")
            ),
            key: Some(key.to_string()),
            ops: ops.iter().map(|&(i, _)| OpView::new(h, i)).collect(),
            detail: json!({
                "group": group,
                "generation": generation,
                "key": key,
                "members": ops.iter().map(|&(_, m)| m).collect::<Vec<_>>(),
                "ops": ops.iter().map(|&(i, _)| i).collect::<Vec<_>>(),
            }),
        }
    });
}
