//! The search agrees with brute force on small random register histories:
//! every subset of indeterminate operations, every order that respects real
//! time.

use checker::{check, parse_jsonl, Validity};
use proptest::prelude::*;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Read(Option<u8>),
    Write(u8),
    Cas(u8, u8),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum End {
    Ok,
    Fail,
    Info,
    Never,
}

#[derive(Debug, Clone)]
struct GenOp {
    process: u32,
    kind: Kind,
    end: End,
}

fn op_strategy() -> impl Strategy<Value = GenOp> {
    let kind = prop_oneof![
        prop::option::of(0u8..3).prop_map(Kind::Read),
        (0u8..3).prop_map(Kind::Write),
        (0u8..3, 0u8..3).prop_map(|(a, b)| Kind::Cas(a, b)),
    ];
    let end = prop_oneof![4 => Just(End::Ok), 1 => Just(End::Fail), 1 => Just(End::Info), 1 => Just(End::Never)];
    (0u32..3, kind, end).prop_map(|(process, kind, end)| GenOp { process, kind, end })
}

/// Event positions of each op's invoke and completion after interleaving.
struct Placed {
    op: GenOp,
    invoke: usize,
    done: Option<usize>,
}

fn build(ops: &[GenOp], schedule: &[u32]) -> (String, Vec<Placed>) {
    // Per process: its ops, each as two steps (invoke, completion).
    let mut queues: Vec<Vec<(usize, bool)>> = vec![Vec::new(); 3];
    for (i, o) in ops.iter().enumerate() {
        queues[o.process as usize].push((i, false));
        queues[o.process as usize].push((i, true));
    }
    // A process stops after an op that never completes.
    for q in queues.iter_mut() {
        if let Some(cut) = q.iter().position(|&(i, done)| done && ops[i].end == End::Never) {
            q.truncate(cut);
        }
    }
    let mut heads = [0usize; 3];
    let mut lines = Vec::new();
    let mut placed: Vec<Option<Placed>> = (0..ops.len()).map(|_| None).collect();
    let mut s = schedule.iter().cycle();
    while heads.iter().zip(&queues).any(|(h, q)| *h < q.len()) {
        let mut p = *s.next().unwrap() as usize % 3;
        while heads[p] >= queues[p].len() {
            p = (p + 1) % 3;
        }
        let (i, is_done) = queues[p][heads[p]];
        heads[p] += 1;
        let o = &ops[i];
        let (f, inv, done_value) = match o.kind {
            Kind::Read(r) => ("read", json!(null), json!(r)),
            Kind::Write(v) => ("write", json!(v), json!(v)),
            Kind::Cas(a, b) => ("cas", json!([a, b]), json!([a, b])),
        };
        let pos = lines.len();
        if !is_done {
            lines.push(json!({"process": o.process, "type": "invoke", "f": f, "value": inv, "time": pos}));
            placed[i] = Some(Placed { op: o.clone(), invoke: pos, done: None });
        } else {
            let ty = match o.end {
                End::Ok => "ok",
                End::Fail => "fail",
                _ => "info",
            };
            lines.push(json!({"process": o.process, "type": ty, "f": f, "value": done_value, "time": pos}));
            if let Some(pl) = placed[i].as_mut() {
                pl.done = Some(pos);
            }
        }
    }
    let text = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n");
    (text, placed.into_iter().flatten().collect())
}

fn apply(state: Option<u8>, k: Kind, ok: bool) -> Option<Option<u8>> {
    match (k, ok) {
        (Kind::Read(r), _) => (state == r).then_some(state),
        (Kind::Write(v), _) => Some(Some(v)),
        (Kind::Cas(a, b), true) => (state == Some(a)).then_some(Some(b)),
        (Kind::Cas(a, _), false) => (state != Some(a)).then_some(state),
    }
}

fn brute(ops: &[Placed]) -> bool {
    // (op index, completed?) of the operations that must or may be placed
    let mut must = Vec::new();
    let mut may = Vec::new();
    for (i, p) in ops.iter().enumerate() {
        let completed = p.done.is_some() && matches!(p.op.end, End::Ok | End::Fail);
        match (p.op.kind, p.op.end, completed) {
            (_, End::Ok, true) => must.push(i),
            (Kind::Cas(..), End::Fail, true) => must.push(i),
            (_, End::Fail, _) => {}
            (Kind::Read(_), _, _) => {}
            _ => may.push(i),
        }
    }
    for subset in 0u32..(1 << may.len()) {
        let mut chosen = must.clone();
        for (b, &i) in may.iter().enumerate() {
            if subset & (1 << b) != 0 {
                chosen.push(i);
            }
        }
        if search(ops, &chosen, &mut vec![false; chosen.len()], None, 0) {
            return true;
        }
    }
    false
}

fn search(ops: &[Placed], chosen: &[usize], used: &mut Vec<bool>, state: Option<u8>, depth: usize) -> bool {
    if depth == chosen.len() {
        return true;
    }
    for j in 0..chosen.len() {
        if used[j] {
            continue;
        }
        let p = &ops[chosen[j]];
        // Every unplaced op that completed before p was invoked must come first.
        let blocked = (0..chosen.len()).any(|k| {
            !used[k] && k != j && ops[chosen[k]].done.is_some_and(|d| matches!(ops[chosen[k]].op.end, End::Ok | End::Fail) && d < p.invoke)
        });
        if blocked {
            continue;
        }
        let ok = p.op.end != End::Fail;
        if let Some(next) = apply(state, p.op.kind, ok) {
            used[j] = true;
            if search(ops, chosen, used, next, depth + 1) {
                used[j] = false;
                return true;
            }
            used[j] = false;
        }
    }
    false
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn search_agrees_with_brute_force(ops in prop::collection::vec(op_strategy(), 1..7), schedule in prop::collection::vec(0u32..3, 1..20)) {
        let (text, placed) = build(&ops, &schedule);
        let r = check(&parse_jsonl(&text).unwrap());
        let expected = brute(&placed);
        prop_assert_eq!(r.valid == Validity::Valid, expected, "history:\n{}\n{}", text, r.render_text());
    }
}
