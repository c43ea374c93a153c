//! Recording a run's history in format v1 (see `checker/HISTORY.md`): one
//! JSON object per line, in the order events happened, with virtual time.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

/// Who did something: a client process, or the nemesis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// Client process number.
    Process(u64),
    /// The fault injector.
    Nemesis,
}

#[derive(Serialize)]
struct Line<'a> {
    process: Value,
    #[serde(rename = "type")]
    kind: &'a str,
    f: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<&'a str>,
    value: &'a Value,
    time: u64,
}

/// A shared, append-only history.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    lines: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one event at the current virtual time.
    pub fn record(&self, actor: Actor, kind: &str, f: &str, value: Value) {
        self.record_keyed(actor, kind, f, None, value);
    }

    /// Appends one event of a register operation on `key`.
    pub fn record_keyed(&self, actor: Actor, kind: &str, f: &str, key: Option<&str>, value: Value) {
        let process = match actor {
            Actor::Process(p) => Value::from(p),
            Actor::Nemesis => Value::from("nemesis"),
        };
        let line = Line {
            process,
            kind,
            f,
            key,
            value: &value,
            time: sim::clock::elapsed_ns(),
        };
        let text = serde_json::to_string(&line).expect("history lines are plain JSON");
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).push(text);
    }

    /// An invocation by a client process.
    pub fn invoke(&self, process: u64, f: &str, value: Value) {
        self.record(Actor::Process(process), "invoke", f, value);
    }

    /// A completion (`ok`, `fail` or `info`) by a client process.
    pub fn complete(&self, process: u64, kind: &str, f: &str, value: Value) {
        debug_assert!(matches!(kind, "ok" | "fail" | "info"));
        self.record(Actor::Process(process), kind, f, value);
    }

    /// A fault event.
    pub fn nemesis(&self, f: &str, value: Value) {
        self.record(Actor::Nemesis, "info", f, value);
    }

    /// The history as JSON Lines text.
    pub fn to_jsonl(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for line in lines.iter() {
            text.push_str(line);
            text.push('\n');
        }
        text
    }

    /// How many events so far.
    pub fn len(&self) -> usize {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
