//! The verdict and its witnesses, as a structure, as text and as JSON.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::history::{History, Op};

/// How many witnesses each anomaly keeps (the smallest ones).
pub const MAX_EXAMPLES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    Valid,
    Invalid,
    /// A search ran out of its time budget before reaching a verdict.
    Unknown,
}

impl Validity {
    pub fn as_json(self) -> Value {
        match self {
            Validity::Valid => Value::Bool(true),
            Validity::Invalid => Value::Bool(false),
            Validity::Unknown => Value::from("unknown"),
        }
    }
}

/// An operation as shown in a witness: where it is in the file and what it did.
#[derive(Debug, Clone, PartialEq)]
pub struct OpView {
    /// Index into [`History::ops`].
    pub op: usize,
    pub process: u32,
    pub f: String,
    pub outcome: String,
    pub invoke_line: usize,
    pub completion_line: Option<usize>,
    pub invoke: Value,
    pub completion: Option<Value>,
}

impl OpView {
    pub fn new(h: &History, op_index: usize) -> OpView {
        let op: &Op = &h.ops[op_index];
        let inv = h.invoke_event(op);
        let comp = h.completion_event(op);
        OpView {
            op: op_index,
            process: op.process,
            f: op.f.as_str().to_string(),
            outcome: op.outcome.as_str().to_string(),
            invoke_line: inv.line,
            completion_line: comp.map(|c| c.line),
            invoke: h.event_json(inv),
            completion: comp.map(|c| h.event_json(c)),
        }
    }

    fn text(&self) -> String {
        let lines = match self.completion_line {
            Some(c) if c != self.invoke_line => format!("lines {}-{}", self.invoke_line, c),
            _ => format!("line {}", self.invoke_line),
        };
        let value = |v: &Value| v.get("value").cloned().unwrap_or(Value::Null).to_string();
        let mut s = format!("process {} {} ({}, {lines}): invoked {}", self.process, self.f, self.outcome, value(&self.invoke));
        match &self.completion {
            Some(c) if self.completion_line != Some(self.invoke_line) => {
                s.push_str(&format!(", completed {}", value(c)));
            }
            Some(_) => {}
            None => s.push_str(", never completed"),
        }
        s
    }

    pub fn to_json(&self) -> Value {
        json!({
            "op": self.op,
            "process": self.process,
            "f": self.f,
            "type": self.outcome,
            "invoke_line": self.invoke_line,
            "completion_line": self.completion_line,
            "invoke": self.invoke,
            "completion": self.completion,
        })
    }
}

/// One witness of an anomaly.
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    /// The witness in plain words.
    pub text: String,
    /// The key (partition or register) it concerns, if one.
    pub key: Option<String>,
    /// The operations involved, in the order the text names them.
    pub ops: Vec<OpView>,
    /// Structured details (offsets, values, cycle edges...).
    pub detail: Value,
}

impl Example {
    pub fn to_json(&self) -> Value {
        json!({
            "text": self.text,
            "key": self.key,
            "ops": self.ops.iter().map(OpView::to_json).collect::<Vec<_>>(),
            "detail": self.detail,
        })
    }
}

/// All witnesses of one anomaly type: the count, and the smallest few.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnomalyEntry {
    pub count: usize,
    pub examples: Vec<Example>,
    /// Ranks of `examples`, kept to choose the smallest witnesses.
    ranks: Vec<(usize, usize)>,
}

impl AnomalyEntry {
    pub fn to_json(&self) -> Value {
        json!({
            "count": self.count,
            "examples": self.examples.iter().map(Example::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Collects anomalies, keeping the [`MAX_EXAMPLES`] smallest witnesses of each.
#[derive(Debug, Default)]
pub struct Anomalies {
    pub map: BTreeMap<String, AnomalyEntry>,
}

impl Anomalies {
    /// Records one anomaly. `rank` orders witnesses, smallest first (number of
    /// operations, then first line); `make` builds the witness only if it is kept,
    /// so a history with a million unseen values does not format a million strings.
    pub fn add(&mut self, name: &str, rank: (usize, usize), make: impl FnOnce() -> Example) {
        let entry = match self.map.get_mut(name) {
            Some(e) => e,
            None => self.map.entry(name.to_string()).or_default(),
        };
        entry.count += 1;
        let pos = entry.ranks.partition_point(|r| *r <= rank);
        if pos >= MAX_EXAMPLES {
            return;
        }
        entry.ranks.insert(pos, rank);
        entry.examples.insert(pos, make());
        entry.ranks.truncate(MAX_EXAMPLES);
        entry.examples.truncate(MAX_EXAMPLES);
    }

    pub fn merge(&mut self, other: Anomalies) {
        for (name, e) in other.map {
            let mine = self.map.entry(name).or_default();
            mine.count += e.count;
            for (r, ex) in e.ranks.into_iter().zip(e.examples) {
                let pos = mine.ranks.partition_point(|x| *x <= r);
                if pos < MAX_EXAMPLES {
                    mine.ranks.insert(pos, r);
                    mine.examples.insert(pos, ex);
                    mine.ranks.truncate(MAX_EXAMPLES);
                    mine.examples.truncate(MAX_EXAMPLES);
                }
            }
        }
    }
}

/// The result of checking a history.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub valid: Validity,
    /// "log", "register", or "log+register" for a history with both.
    pub model: String,
    /// Every anomaly found, allowed or not, by name.
    pub anomalies: BTreeMap<String, AnomalyEntry>,
    /// Names of anomalies that do not make the history invalid (sorted).
    pub allowed: Vec<String>,
    /// Why the verdict is unknown, when it is.
    pub unknown_reasons: Vec<String>,
    /// Counts and timings.
    pub stats: BTreeMap<String, Value>,
}

impl Report {
    /// Anomalies found that make the history invalid.
    pub fn disallowed(&self) -> Vec<&str> {
        self.anomalies
            .keys()
            .filter(|k| !self.allowed.contains(k))
            .map(String::as_str)
            .collect()
    }

    pub fn to_json(&self) -> Value {
        let anomalies: serde_json::Map<String, Value> =
            self.anomalies.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
        let stats: serde_json::Map<String, Value> = self.stats.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        json!({
            "valid": self.valid.as_json(),
            "model": self.model,
            "anomalies": anomalies,
            "allowed": self.allowed,
            "unknown_reasons": self.unknown_reasons,
            "stats": stats,
        })
    }

    /// The verdict, a line per anomaly with its count, then the smallest
    /// witnesses of each in plain words with their full operations.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let verdict = match self.valid {
            Validity::Valid => "VALID",
            Validity::Invalid => "INVALID",
            Validity::Unknown => "UNKNOWN",
        };
        s.push_str(&format!("{verdict} ({} model)\n", self.model));
        for r in &self.unknown_reasons {
            s.push_str(&format!("unknown because: {r}\n"));
        }
        if self.anomalies.is_empty() {
            s.push_str("no anomalies found\n");
        } else {
            s.push_str("anomalies:\n");
            for (name, e) in &self.anomalies {
                let tag = if self.allowed.contains(name) { "  (allowed)" } else { "" };
                s.push_str(&format!("  {name:<24} {:>8}{tag}\n", e.count));
            }
        }
        for (name, e) in &self.anomalies {
            s.push_str(&format!(
                "\n{name}: {} found, {} smallest shown\n",
                e.count,
                e.examples.len()
            ));
            for (i, ex) in e.examples.iter().enumerate() {
                s.push_str(&format!("  {}. {}\n", i + 1, ex.text));
                for op in &ex.ops {
                    s.push_str(&format!("       - {}\n", op.text()));
                }
            }
        }
        if !self.stats.is_empty() {
            s.push_str("\nstats:");
            for (k, v) in &self.stats {
                s.push_str(&format!(" {k}={v}"));
            }
            s.push('\n');
        }
        s
    }
}
