//! Bad or strange input never panics: arbitrary text is either parsed or
//! rejected with a line number, and any well-formed history (log,
//! consumer-group and register operations) can be checked and rendered in
//! every format.

use checker::{check, parse_jsonl};
use proptest::prelude::*;
use serde_json::{json, Value};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("t-0".to_string()), Just("t-1".to_string()), Just("t\"2".to_string())]
}

fn micro(ty: &'static str) -> impl Strategy<Value = Value> {
    let send = (key(), 0i64..6, prop::option::of(0i64..8)).prop_map(move |(k, v, o)| {
        if ty == "invoke" {
            json!(["send", k, v])
        } else {
            json!(["send", k, [o, v]])
        }
    });
    let poll = prop::collection::vec((key(), prop::collection::vec((0i64..8, 0i64..8), 0..4)), 0..3).prop_map(move |reads| {
        if ty == "invoke" {
            json!(["poll"])
        } else {
            let mut m = serde_json::Map::new();
            for (k, pairs) in reads {
                m.insert(k, json!(pairs.iter().map(|(o, v)| json!([o, v])).collect::<Vec<_>>()));
            }
            json!(["poll", m])
        }
    });
    prop_oneof![send, poll]
}

/// A consumer-group value: (group, generation, member, per-key offsets).
fn group_value() -> impl Strategy<Value = (&'static str, i64, &'static str, Vec<(String, i64)>)> {
    (prop_oneof![Just("g"), Just("h")], -1i64..3, prop_oneof![Just("m-1"), Just("m-2")], prop::collection::vec((key(), 0i64..8), 0..3))
}

/// A random operation of one process: invoke plus maybe a completion.
fn op() -> impl Strategy<Value = Vec<Value>> {
    let f = prop_oneof![
        Just("send"),
        Just("poll"),
        Just("txn"),
        Just("assign"),
        Just("subscribe"),
        Just("crash"),
        Just("commit"),
        Just("assignment")
    ];
    let done = prop_oneof![Just("ok"), Just("fail"), Just("info"), Just("none")];
    (0u32..4, f, done, prop::collection::vec(micro("invoke"), 1..3), prop::collection::vec(micro("ok"), 1..3), prop::collection::vec(key(), 0..3), group_value())
        .prop_map(|(p, f, done, inv, comp, keys, (group, generation, member, offsets))| {
            let (inv_v, comp_v) = match f {
                "assign" | "subscribe" => (json!(keys), json!(keys)),
                "commit" => {
                    let offsets: serde_json::Map<String, Value> = offsets.into_iter().map(|(k, o)| (k, json!(o))).collect();
                    let v = json!({"group": group, "generation": generation, "offsets": offsets});
                    (v.clone(), v)
                }
                "assignment" => {
                    let v = json!({"group": group, "generation": generation, "member": member});
                    let mut done_v = v.clone();
                    if done == "ok" {
                        done_v["keys"] = json!(keys);
                    }
                    (v, done_v)
                }
                "crash" => return vec![json!({"process": p, "type": "info", "f": "crash", "value": null, "time": 0})],
                _ => (json!(inv), json!(comp)),
            };
            let mut evs = vec![json!({"process": p, "type": "invoke", "f": f, "value": inv_v, "time": 0})];
            if done != "none" {
                evs.push(json!({"process": p, "type": done, "f": f, "value": comp_v, "time": 0}));
            }
            evs
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}(\n\\PC{0,80}){0,4}") {
        let _ = parse_jsonl(&text);
    }

    #[test]
    fn arbitrary_log_histories_check_and_render(ops in prop::collection::vec(op(), 1..25)) {
        let mut lines = Vec::new();
        let mut t = 0u64;
        for evs in ops {
            for mut e in evs {
                t += 1;
                e["time"] = json!(t);
                lines.push(e.to_string());
            }
        }
        // Histories breaking the pairing rules are rejected, never a panic.
        if let Ok(h) = parse_jsonl(&lines.join("\n")) {
            let r = check(&h);
            let _ = r.render_text();
            let _ = r.to_json().to_string();
            let page = checker::html::render(&h, &r);
            prop_assert!(page.contains("render-status"));
        }
    }
}

fn reg_op() -> impl Strategy<Value = Vec<Value>> {
    let f = prop_oneof![Just("read"), Just("write"), Just("cas"), Just("append")];
    let done = prop_oneof![Just("ok"), Just("fail"), Just("info"), Just("none")];
    (0u32..4, f, done, 0i64..3, 0i64..3, prop::option::of(prop_oneof![Just("a"), Just("b")])).prop_map(|(p, f, done, x, y, key)| {
        let (inv, comp) = match f {
            "read" => (json!(null), if x == 0 { json!(null) } else { json!(x) }),
            "write" => (json!(x), json!(x)),
            "cas" => (json!([x, y]), json!([x, y])),
            _ => (json!(x.to_string()), json!(x.to_string())),
        };
        let mut a = json!({"process": p, "type": "invoke", "f": f, "value": inv, "time": 0});
        let mut b = json!({"process": p, "type": done, "f": f, "value": comp, "time": 0});
        if let Some(k) = key {
            a["key"] = json!(k);
            b["key"] = json!(k);
        }
        if done == "none" {
            vec![a]
        } else {
            vec![a, b]
        }
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_register_histories_check_and_render(ops in prop::collection::vec(reg_op(), 1..12)) {
        let mut lines = Vec::new();
        for (t, mut e) in ops.into_iter().flatten().enumerate() {
            e["time"] = json!(t);
            lines.push(e.to_string());
        }
        if let Ok(h) = parse_jsonl(&lines.join("\n")) {
            let r = check(&h);
            let _ = r.render_text();
            let page = checker::html::render(&h, &r);
            prop_assert!(page.contains("render-status"));
        }
    }
}
