//! Dependency cycles among operations: `G0`, `G1c` and their `-process` and
//! `-realtime` variants.
//!
//! Edges: write-write (consecutive values of a key written by different
//! operations), write-read (writer to an ok reader), process order (consecutive
//! ok operations of one process) and real-time order (an ok operation completed
//! before another was invoked). Real-time order is encoded with one "time node"
//! per ok completion, chained in history order, so it costs O(n) edges instead
//! of O(n × concurrency); a cycle's path through time nodes is reported as one
//! real-time edge.

use serde_json::json;

use super::graph::{find_cycle, Graph, Tarjan, PROC, RT, WR, WW};
use super::index::{LogIndex, NONE};
use crate::fxhash::FxHashMap;
use crate::history::{EventType, History, Outcome, F};
use crate::report::{Anomalies, Example, OpView};

/// (name, edge types allowed, edge types the cycle must use)
const CLASSES: &[(&str, u8, u8)] = &[
    ("G0", WW, 0),
    ("G1c", WW | WR, WR),
    ("G0-process", WW | PROC, PROC),
    ("G1c-process", WW | WR | PROC, WR | PROC),
    ("G0-realtime", WW | PROC | RT, RT),
    ("G1c-realtime", WW | WR | PROC | RT, WR | RT),
];

/// Starting edges tried per component when looking for a witness cycle.
const ATTEMPTS_PER_COMPONENT: usize = 8;

fn is_graph_op(f: F) -> bool {
    matches!(f, F::Send | F::Poll | F::Txn)
}

fn build(h: &History, idx: &LogIndex) -> Graph {
    let n_ops = h.ops.len();
    let mut edges: Vec<(u32, u32, u8)> = Vec::with_capacity(n_ops * 4);
    // write-write, from each key's version order
    for order in &idx.orders {
        let mut prev = NONE;
        for &vid in &order.vids {
            let w = idx.sender[vid as usize];
            if prev != NONE && w != NONE && prev != w {
                edges.push((prev, w, WW));
            }
            prev = w;
        }
    }
    // write-read, and process order
    let mut last_of_process: FxHashMap<u32, u32> = FxHashMap::default();
    for (i, op) in h.ops.iter().enumerate() {
        if op.outcome != Outcome::Ok || !is_graph_op(op.f) {
            if op.f == F::Crash {
                last_of_process.remove(&op.process);
            }
            continue;
        }
        let i = i as u32;
        let mut last_writer = NONE;
        for r in idx.op_reads(i as usize) {
            let w = idx.sender[r.vid as usize];
            if w != NONE && w != i && w != last_writer {
                edges.push((w, i, WR));
                last_writer = w;
            }
        }
        if let Some(p) = last_of_process.insert(op.process, i) {
            edges.push((p, i, PROC));
        }
    }
    // real time, through a chain of time nodes numbered after the ops
    const NO_OP: u32 = u32::MAX;
    let mut op_of_event = vec![NO_OP; h.events.len()];
    for (i, op) in h.ops.iter().enumerate() {
        if is_graph_op(op.f) {
            op_of_event[op.invoke as usize] = i as u32;
            if let Some(c) = op.completion {
                if op.outcome == Outcome::Ok {
                    op_of_event[c as usize] = i as u32;
                }
            }
        }
    }
    let mut next_node = n_ops as u32;
    let mut last_time: Option<u32> = None;
    for (e, &op) in h.events.iter().zip(&op_of_event) {
        if op == NO_OP {
            continue;
        }
        match e.ty {
            EventType::Invoke => {
                if let Some(t) = last_time {
                    edges.push((t, op, RT));
                }
            }
            EventType::Ok => {
                let t = next_node;
                next_node += 1;
                edges.push((op, t, RT));
                if let Some(prev) = last_time {
                    edges.push((prev, t, RT));
                }
                last_time = Some(t);
            }
            _ => {}
        }
    }
    Graph::from_edges(next_node as usize, edges)
}

/// Plain words for the edge a → b of the given kind.
fn explain(h: &History, idx: &LogIndex, a: usize, b: usize, kind: u8) -> (String, serde_json::Value) {
    let (oa, ob) = (&h.ops[a], &h.ops[b]);
    match kind {
        WW => {
            let found = idx.op_sends(a).iter().find_map(|s| {
                let p = idx.pos_in(s.vid, s.key)?;
                let next = *idx.orders[s.key as usize].vids.get(p as usize + 1)?;
                (idx.sender[next as usize] as usize == b)
                    .then(|| (s.key, idx.values[s.vid as usize], idx.values[next as usize]))
            });
            match found {
                Some((k, v, next)) => (
                    format!("ww on {}: value {v} is followed by {next}", h.key_name(k)),
                    json!({"type": "ww", "key": h.key_name(k), "values": [v, next]}),
                ),
                None => ("ww".into(), json!({"type": "ww"})),
            }
        }
        WR => {
            let found = idx
                .op_reads(b)
                .iter()
                .find(|r| idx.sender[r.vid as usize] as usize == a)
                .map(|r| (r.key, r.offset, idx.values[r.vid as usize]));
            match found {
                Some((k, o, v)) => (
                    format!("wr on {}: process {} read value {v} at offset {o}", h.key_name(k), ob.process),
                    json!({"type": "wr", "key": h.key_name(k), "value": v, "offset": o}),
                ),
                None => ("wr".into(), json!({"type": "wr"})),
            }
        }
        PROC => (
            format!("process order: process {} did one then the other", oa.process),
            json!({"type": "process"}),
        ),
        _ => {
            let done = h.completion_event(oa).map(|e| e.line).unwrap_or(0);
            let start = h.invoke_event(ob).line;
            (
                format!("real time: the first completed (line {done}) before the second was invoked (line {start})"),
                json!({"type": "realtime"}),
            )
        }
    }
}

pub(crate) fn check(h: &History, idx: &LogIndex, out: &mut Anomalies) -> (usize, usize) {
    let mut phases = crate::profile::Phases::new();
    let g = build(h, idx);
    phases.mark("cycles: graph");
    let n_ops = h.ops.len() as u32;
    let all: Vec<u32> = (0..g.n_nodes() as u32).collect();
    let mut tarjan = Tarjan::new(g.n_nodes());
    let components = tarjan.sccs(&g, &all, WW | WR | PROC | RT, &|_| true);
    phases.mark("cycles: scc");
    if std::env::var_os("CHECKER_PROFILE").is_some() {
        let biggest = components.iter().map(Vec::len).max().unwrap_or(0);
        eprintln!("profile: {} nontrivial components, largest {biggest} nodes", components.len());
    }
    // Membership marks: node → number of the component (or sub-component) it is in.
    let mut comp_mark = vec![0u32; g.n_nodes()];
    let mut sub_mark = vec![0u32; g.n_nodes()];
    let mut sub_stamp = 0u32;
    for (c, comp) in components.iter().enumerate() {
        let stamp = c as u32 + 1;
        for &v in comp {
            comp_mark[v as usize] = stamp;
        }
        // Edge kinds inside the component: a class needing a kind absent here has no cycle here.
        let mut kinds = 0u8;
        for &v in comp {
            for (w, k) in g.out(v) {
                if comp_mark[w as usize] == stamp {
                    kinds |= k;
                }
            }
        }
        for &(name, mask, required) in CLASSES {
            if required & !kinds != 0 || (required == 0 && mask & kinds == 0) {
                continue;
            }
            // Time nodes only carry real-time edges.
            let keep = |v: u32| comp_mark[v as usize] == stamp && (v < n_ops || mask & RT != 0);
            let subs = tarjan.sccs(&g, comp, mask, &keep);
            for sub in subs {
                sub_stamp += 1;
                for &v in &sub {
                    sub_mark[v as usize] = sub_stamp;
                }
                let inside = |v: u32| sub_mark[v as usize] == sub_stamp;
                let Some(cycle) = find_cycle(&g, &sub, &inside, mask, required, ATTEMPTS_PER_COMPONENT) else {
                    continue;
                };
                report_cycle(h, idx, name, n_ops, &cycle, out);
            }
        }
    }
    (g.n_nodes(), g.n_edges())
}

/// Collapses time nodes out of a cycle: op → time … time → op becomes one real-time edge.
fn op_steps(n_ops: u32, cycle: &[(u32, u8)]) -> Vec<(usize, u8)> {
    // rotate so the cycle starts at an operation
    let start = cycle.iter().position(|(v, _)| *v < n_ops).unwrap_or(0);
    let mut steps: Vec<(usize, u8)> = Vec::new();
    for i in 0..cycle.len() {
        let (v, k) = cycle[(start + i) % cycle.len()];
        if v < n_ops {
            steps.push((v as usize, k));
        }
    }
    steps
}

fn report_cycle(h: &History, idx: &LogIndex, name: &str, n_ops: u32, cycle: &[(u32, u8)], out: &mut Anomalies) {
    let steps = op_steps(n_ops, cycle);
    let first_line = steps.iter().map(|(o, _)| h.invoke_event(&h.ops[*o]).line).min().unwrap_or(0);
    out.add(name, (steps.len(), first_line), || {
        let mut parts = Vec::new();
        let mut edges = Vec::new();
        for (i, &(a, k)) in steps.iter().enumerate() {
            let b = steps[(i + 1) % steps.len()].0;
            let (text, detail) = explain(h, idx, a, b, k);
            parts.push(format!(
                "op {} (process {}, line {}) -[{text}]-> op {}",
                i + 1,
                h.ops[a].process,
                h.invoke_event(&h.ops[a]).line,
                (i + 1) % steps.len() + 1
            ));
            edges.push(json!({"from": a, "to": b, "edge": detail}));
        }
        Example {
            text: format!("cycle of {} operations: {}", steps.len(), parts.join("; ")),
            key: None,
            ops: steps.iter().map(|(o, _)| OpView::new(h, *o)).collect(),
            detail: json!({"cycle": edges}),
        }
    });
}
