//! A small builder for test histories in format v1.
#![allow(dead_code)]

use checker::{History, Report};
use serde_json::{json, Value};

#[derive(Default)]
pub struct B {
    pub lines: Vec<String>,
    t: u64,
}

pub type Reads<'a> = &'a [(&'a str, &'a [(i64, i64)])];

pub fn reads_json(reads: Reads) -> Value {
    let mut m = serde_json::Map::new();
    for (k, pairs) in reads {
        m.insert(k.to_string(), json!(pairs.iter().map(|(o, v)| json!([o, v])).collect::<Vec<_>>()));
    }
    Value::Object(m)
}

impl B {
    pub fn new() -> B {
        B::default()
    }

    pub fn ev(&mut self, p: Value, ty: &str, f: &str, value: Value) -> &mut Self {
        self.t += 10;
        self.lines.push(json!({"process": p, "type": ty, "f": f, "value": value, "time": self.t}).to_string());
        self
    }

    pub fn reg(&mut self, p: u32, ty: &str, f: &str, key: Option<&str>, value: Value) -> &mut Self {
        self.t += 10;
        let mut o = json!({"process": p, "type": ty, "f": f, "value": value, "time": self.t});
        if let Some(k) = key {
            o["key"] = json!(k);
        }
        self.lines.push(o.to_string());
        self
    }

    pub fn invoke_send(&mut self, p: u32, sends: &[(&str, i64)]) -> &mut Self {
        let v: Vec<Value> = sends.iter().map(|(k, v)| json!(["send", k, v])).collect();
        self.ev(json!(p), "invoke", "send", json!(v))
    }

    /// A send of several values completing ok at the given offsets.
    pub fn send_many(&mut self, p: u32, sends: &[(&str, i64, Option<i64>)]) -> &mut Self {
        let inv: Vec<(&str, i64)> = sends.iter().map(|(k, v, _)| (*k, *v)).collect();
        self.invoke_send(p, &inv);
        let v: Vec<Value> = sends.iter().map(|(k, v, o)| json!(["send", k, [o, v]])).collect();
        self.ev(json!(p), "ok", "send", json!(v))
    }

    pub fn send_ok(&mut self, p: u32, key: &str, value: i64, offset: i64) -> &mut Self {
        self.send_many(p, &[(key, value, Some(offset))])
    }

    /// A send that completes with `ty` ("fail" or "info") and no offset.
    pub fn send_not_ok(&mut self, p: u32, key: &str, value: i64, ty: &str) -> &mut Self {
        self.invoke_send(p, &[(key, value)]);
        self.ev(json!(p), ty, "send", json!([["send", key, value]]))
    }

    pub fn poll_ty(&mut self, p: u32, ty: &str, reads: Reads) -> &mut Self {
        self.ev(json!(p), "invoke", "poll", json!([["poll"]]));
        self.ev(json!(p), ty, "poll", json!([["poll", reads_json(reads)]]))
    }

    pub fn poll(&mut self, p: u32, reads: Reads) -> &mut Self {
        self.poll_ty(p, "ok", reads)
    }

    pub fn assign(&mut self, p: u32, keys: &[&str]) -> &mut Self {
        self.ev(json!(p), "invoke", "assign", json!(keys));
        self.ev(json!(p), "ok", "assign", json!(keys))
    }

    pub fn subscribe(&mut self, p: u32, keys: &[&str]) -> &mut Self {
        self.ev(json!(p), "invoke", "subscribe", json!(keys));
        self.ev(json!(p), "ok", "subscribe", json!(keys))
    }

    /// A transaction: `micros` are invoke micro-ops, `done` the completion's.
    pub fn txn(&mut self, p: u32, ty: &str, micros: Value, done: Value) -> &mut Self {
        self.ev(json!(p), "invoke", "txn", micros);
        self.ev(json!(p), ty, "txn", done)
    }

    pub fn nemesis(&mut self, f: &str, value: Value) -> &mut Self {
        self.ev(json!("nemesis"), "info", f, value)
    }

    pub fn text(&self) -> String {
        self.lines.join("\n") + "\n"
    }

    pub fn history(&self) -> History {
        checker::parse_jsonl(&self.text()).expect("test history parses")
    }

    pub fn check(&self) -> Report {
        checker::check(&self.history())
    }
}

/// Asserts the report contains the anomaly (allowed or not) and returns its count.
pub fn has(r: &Report, name: &str) -> usize {
    match r.anomalies.get(name) {
        Some(e) => e.count,
        None => panic!("expected {name} in report:\n{}", r.render_text()),
    }
}

pub fn lacks(r: &Report, name: &str) {
    assert!(!r.anomalies.contains_key(name), "did not expect {name}:\n{}", r.render_text());
}
