//! History format v1: parsing JSON Lines into typed events, and pairing each
//! invocation with its completion into operations.
//!
//! The format itself is documented in `checker/HISTORY.md`, the one source of
//! truth; this module enforces it and names the line of the first violation.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

/// Index of an interned key (topic-partition or register key) in [`History::keys`].
pub type KeyId = u32;

/// Who produced an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Process {
    Client(u32),
    Nemesis,
}

/// The `type` field of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Invoke,
    Ok,
    Fail,
    Info,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Invoke => "invoke",
            EventType::Ok => "ok",
            EventType::Fail => "fail",
            EventType::Info => "info",
        }
    }
}

/// The `f` field of a client event. Nemesis events keep their free-form `f`
/// in [`Payload::Nemesis`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum F {
    Send,
    Poll,
    Txn,
    Assign,
    Subscribe,
    Crash,
    Read,
    Write,
    Cas,
    Append,
    Nemesis,
}

impl F {
    pub fn as_str(self) -> &'static str {
        match self {
            F::Send => "send",
            F::Poll => "poll",
            F::Txn => "txn",
            F::Assign => "assign",
            F::Subscribe => "subscribe",
            F::Crash => "crash",
            F::Read => "read",
            F::Write => "write",
            F::Cas => "cas",
            F::Append => "append",
            F::Nemesis => "nemesis",
        }
    }

    fn parse(s: &str) -> Option<F> {
        Some(match s {
            "send" => F::Send,
            "poll" => F::Poll,
            "txn" => F::Txn,
            "assign" => F::Assign,
            "subscribe" => F::Subscribe,
            "crash" => F::Crash,
            "read" => F::Read,
            "write" => F::Write,
            "cas" => F::Cas,
            "append" => F::Append,
            _ => return None,
        })
    }

    /// Operations checked by the log checks.
    pub fn is_log(self) -> bool {
        matches!(self, F::Send | F::Poll | F::Txn | F::Assign | F::Subscribe)
    }

    /// Operations checked for linearizability.
    pub fn is_register(self) -> bool {
        matches!(self, F::Read | F::Write | F::Cas | F::Append)
    }
}

/// One micro-operation of a `send`, `poll` or `txn`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Micro {
    /// `offset` is known only on completions (and may be null there too).
    Send {
        key: KeyId,
        value: i64,
        offset: Option<i64>,
    },
    /// `reads` is empty on invocations: per key, `(offset, value)` in the order returned.
    Poll { reads: Vec<(KeyId, Vec<(i64, i64)>)> },
}

/// The payload of a register operation (`read`, `write`, `cas`, `append`).
#[derive(Debug, Clone, PartialEq)]
pub enum RegValue {
    /// `None` is JSON null: on an invocation, or a read of an empty key.
    Read(Option<Value>),
    Write(Value),
    Cas(Value, Value),
    /// `None` (null) appends nothing, like "".
    Append(Option<String>),
}

/// The typed `value` of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Micros(Vec<Micro>),
    Keys(Vec<KeyId>),
    Register(RegValue),
    /// `crash` events: the value is kept but means nothing to the checks.
    Opaque(Value),
    /// Nemesis events keep their free-form `f` and `value`.
    Nemesis { f: String, value: Value },
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// 1-based line number in the source file (or position, for in-memory histories).
    pub line: usize,
    pub process: Process,
    pub ty: EventType,
    pub f: F,
    pub value: Payload,
    pub time_ns: u64,
    /// Register key; `None` means the one shared key.
    pub key: Option<KeyId>,
}

/// How an operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    Ok,
    Fail,
    /// Completed with `info`, or never completed: may or may not have taken effect.
    Info,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// An invocation paired with its completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub process: u32,
    pub f: F,
    /// Index into [`History::events`].
    pub invoke: u32,
    /// Index into [`History::events`]; `None` when the history ended first or a
    /// crash tore the client down.
    pub completion: Option<u32>,
    pub outcome: Outcome,
}

/// A parsed, validated history.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub events: Vec<Event>,
    /// Client operations in invocation order.
    pub ops: Vec<Op>,
    /// Indices into `events` of nemesis events.
    pub nemesis: Vec<u32>,
    /// Interned key names; [`KeyId`] indexes this.
    pub keys: Vec<String>,
}

/// Malformed input: the line it was found on and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    process: Value,
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    f: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    value: Option<&'a serde_json::value::RawValue>,
    time: Value,
    #[serde(default)]
    key: Option<Value>,
}

/// Interns key strings so the checks compare integers, not strings.
#[derive(Default)]
pub(crate) struct KeyTable {
    ids: HashMap<String, KeyId>,
    names: Vec<String>,
}

impl KeyTable {
    pub(crate) fn intern(&mut self, name: &str) -> KeyId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as KeyId;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
}

/// Parses a whole JSON Lines history. Blank lines are skipped.
///
/// Lines are parsed in parallel, in chunks; the result (key numbering
/// included) does not depend on the chunking. The error returned is the one
/// on the earliest line.
pub fn parse_jsonl(text: &str) -> Result<History, ParseError> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let chunks = split_lines(text, threads * 4, 1 << 16);
    let parsed: Vec<Chunk> = crate::par::map(&chunks, |&(first_line, part)| parse_chunk(part, first_line));
    // Merge, renumbering each chunk's keys into one table in file order.
    let mut keys = KeyTable::default();
    let mut events = Vec::with_capacity(parsed.iter().map(|c| c.events.len()).sum());
    let mut parse_error = None;
    for chunk in parsed {
        let remap: Vec<KeyId> = chunk.keys.iter().map(|k| keys.intern(k)).collect();
        for mut e in chunk.events {
            renumber(&mut e, &remap);
            events.push(e);
        }
        if chunk.error.is_some() {
            parse_error = chunk.error;
            break;
        }
    }
    match parse_error {
        // A pairing error on an earlier line is the first problem in the file.
        Some(e) => Err(History::pair(events, keys.names).err().unwrap_or(e)),
        None => History::pair(events, keys.names),
    }
}

struct Chunk {
    events: Vec<Event>,
    keys: Vec<String>,
    error: Option<ParseError>,
}

/// Splits text into about `parts` pieces at line boundaries, none smaller than
/// `min_bytes` (but the last), each with the number of its first line.
fn split_lines(text: &str, parts: usize, min_bytes: usize) -> Vec<(usize, &str)> {
    let target = (text.len() / parts.max(1)).max(min_bytes);
    let mut out = Vec::new();
    let (mut start, mut line) = (0usize, 1usize);
    let bytes = text.as_bytes();
    while start < text.len() {
        let mut end = (start + target).min(text.len());
        while end < text.len() && bytes[end - 1] != b'\n' {
            end += 1;
        }
        let part = &text[start..end];
        out.push((line, part));
        line += bytes[start..end].iter().filter(|&&b| b == b'\n').count();
        start = end;
    }
    out
}

fn parse_chunk(text: &str, first_line: usize) -> Chunk {
    let mut keys = KeyTable::default();
    let mut events = Vec::new();
    for (i, raw_line) in text.lines().enumerate() {
        let line = first_line + i;
        if raw_line.trim().is_empty() {
            continue;
        }
        match parse_line(raw_line, line, &mut keys) {
            Ok(e) => events.push(e),
            Err(error) => {
                return Chunk {
                    events,
                    keys: keys.names,
                    error: Some(error),
                }
            }
        }
    }
    Chunk {
        events,
        keys: keys.names,
        error: None,
    }
}

/// Rewrites an event's key ids through `remap` (chunk-local → global).
fn renumber(e: &mut Event, remap: &[KeyId]) {
    if let Some(k) = e.key.as_mut() {
        *k = remap[*k as usize];
    }
    match &mut e.value {
        Payload::Micros(ms) => {
            for m in ms {
                match m {
                    Micro::Send { key, .. } => *key = remap[*key as usize],
                    Micro::Poll { reads } => {
                        for (k, _) in reads {
                            *k = remap[*k as usize];
                        }
                    }
                }
            }
        }
        Payload::Keys(ks) => {
            for k in ks {
                *k = remap[*k as usize];
            }
        }
        _ => {}
    }
}

/// Parses one line of a history. `keys` interns key names across lines.
fn parse_line(text: &str, line: usize, keys: &mut KeyTable) -> Result<Event, ParseError> {
    let raw: RawEvent = match serde_json::from_str(text) {
        Ok(r) => r,
        // serde numbers lines within the one-line text; only the column helps.
        Err(e) => {
            let msg = e.to_string().replace(" at line 1 column ", " at column ");
            return err(line, format!("not a valid event object: {msg}"));
        }
    };
    let process = match &raw.process {
        Value::String(s) if s == "nemesis" => Process::Nemesis,
        Value::Number(n) => match n.as_u64().and_then(|v| u32::try_from(v).ok()) {
            Some(p) => Process::Client(p),
            None => return err(line, format!("process {n} is not an integer in 0..2^32")),
        },
        other => return err(line, format!("process must be an integer or \"nemesis\", not {other}")),
    };
    let ty = match raw.ty.as_ref() {
        "invoke" => EventType::Invoke,
        "ok" => EventType::Ok,
        "fail" => EventType::Fail,
        "info" => EventType::Info,
        other => return err(line, format!("unknown type {other:?}")),
    };
    let time_ns = match raw.time.as_u64() {
        Some(t) => t,
        None => return err(line, format!("time must be a non-negative integer, not {}", raw.time)),
    };
    let f_name = raw.f;
    let raw_value = raw.value.map(|r| r.get()).unwrap_or("null");
    let slow_value = || -> Result<Value, ParseError> {
        serde_json::from_str(raw_value).or_else(|e| err(line, format!("value is not valid JSON: {e}")))
    };
    if process == Process::Nemesis {
        return Ok(Event {
            line,
            process,
            ty,
            f: F::Nemesis,
            value: Payload::Nemesis {
                f: f_name.into_owned(),
                value: slow_value()?,
            },
            time_ns,
            key: None,
        });
    }
    let f = match F::parse(&f_name) {
        Some(f) => f,
        None => return err(line, format!("unknown operation f {f_name:?}")),
    };
    let key = match raw.key {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if f.is_register() => Some(keys.intern(&s)),
        Some(Value::String(_)) => return err(line, format!("only register operations carry a key, not {f_name}")),
        Some(other) => return err(line, format!("key must be a string, not {other}")),
    };
    let fast = match f {
        F::Send | F::Poll | F::Txn => crate::wire::micros(f, ty, raw_value, keys).map(Payload::Micros),
        _ => None,
    };
    let value = match fast {
        Some(v) => v,
        None => parse_payload(f, ty, &slow_value()?, keys).or_else(|m| err(line, m))?,
    };
    Ok(Event {
        line,
        process,
        ty,
        f,
        value,
        time_ns,
        key,
    })
}

fn as_int(v: &Value, what: &str) -> Result<i64, String> {
    v.as_i64().ok_or_else(|| format!("{what} must be an integer, not {v}"))
}

fn parse_payload(f: F, ty: EventType, v: &Value, keys: &mut KeyTable) -> Result<Payload, String> {
    match f {
        F::Send | F::Poll | F::Txn => {
            // A failed or indeterminate completion may omit the micro-ops.
            if v.is_null() && matches!(ty, EventType::Fail | EventType::Info) {
                return Ok(Payload::Micros(Vec::new()));
            }
            let list = v
                .as_array()
                .ok_or_else(|| format!("{} value must be a list of micro-operations, not {v}", f.as_str()))?;
            let mut micros = Vec::with_capacity(list.len());
            for m in list {
                micros.push(parse_micro(m, ty, keys)?);
            }
            if f == F::Send && micros.iter().any(|m| matches!(m, Micro::Poll { .. })) {
                return Err("a send operation may contain only send micro-operations".into());
            }
            if f == F::Poll && micros.iter().any(|m| matches!(m, Micro::Send { .. })) {
                return Err("a poll operation may contain only poll micro-operations".into());
            }
            Ok(Payload::Micros(micros))
        }
        F::Assign | F::Subscribe => {
            if v.is_null() && ty != EventType::Invoke {
                return Ok(Payload::Keys(Vec::new()));
            }
            let list = v
                .as_array()
                .ok_or_else(|| format!("{} value must be a list of keys, not {v}", f.as_str()))?;
            let mut ks = Vec::with_capacity(list.len());
            for k in list {
                let name = k.as_str().ok_or_else(|| format!("keys must be strings, not {k}"))?;
                ks.push(keys.intern(name));
            }
            Ok(Payload::Keys(ks))
        }
        F::Crash | F::Nemesis => Ok(Payload::Opaque(v.clone())),
        F::Read => Ok(Payload::Register(RegValue::Read(if v.is_null() {
            None
        } else {
            Some(v.clone())
        }))),
        F::Write => Ok(Payload::Register(RegValue::Write(v.clone()))),
        F::Cas => match v.as_array().map(|a| a.as_slice()) {
            Some([e, n]) => Ok(Payload::Register(RegValue::Cas(e.clone(), n.clone()))),
            _ => Err(format!("cas value must be [EXPECTED, NEW], not {v}")),
        },
        F::Append => match v {
            Value::Null => Ok(Payload::Register(RegValue::Append(None))),
            Value::String(s) => Ok(Payload::Register(RegValue::Append(Some(s.clone())))),
            other => Err(format!("append value must be a string, not {other}")),
        },
    }
}

fn parse_micro(m: &Value, ty: EventType, keys: &mut KeyTable) -> Result<Micro, String> {
    let parts = m
        .as_array()
        .ok_or_else(|| format!("a micro-operation must be a list, not {m}"))?;
    match parts.first().and_then(Value::as_str) {
        Some("send") => {
            let (key, payload) = match parts.as_slice() {
                [_, k, p] => (k, p),
                _ => return Err(format!("send micro-operation must be [\"send\", KEY, VALUE], not {m}")),
            };
            let key = keys.intern(key.as_str().ok_or_else(|| format!("send key must be a string, not {key}"))?);
            // Invocations carry VALUE; completions carry [OFFSET, VALUE], but a
            // failed or indeterminate one may repeat the plain VALUE.
            let (offset, value) = match payload {
                Value::Array(pair) if pair.len() == 2 => {
                    let offset = if pair[0].is_null() {
                        None
                    } else {
                        Some(as_int(&pair[0], "offset")?)
                    };
                    (offset, as_int(&pair[1], "value")?)
                }
                Value::Number(_) if ty != EventType::Ok => (None, as_int(payload, "value")?),
                _ if ty == EventType::Ok => {
                    return Err(format!("ok send micro-operation must carry [OFFSET, VALUE], not {payload}"))
                }
                _ => return Err(format!("send value must be an integer, not {payload}")),
            };
            if ty == EventType::Invoke && offset.is_some() {
                return Err("an invoked send cannot know its offset yet".into());
            }
            Ok(Micro::Send { key, value, offset })
        }
        Some("poll") => {
            let mut reads = Vec::new();
            match parts.as_slice() {
                [_] => {}
                [_, Value::Null] => {}
                [_, Value::Object(map)] => {
                    for (k, list) in map {
                        let key = keys.intern(k);
                        let list = list
                            .as_array()
                            .ok_or_else(|| format!("poll of {k:?} must be a list of [OFFSET, VALUE], not {list}"))?;
                        let mut pairs = Vec::with_capacity(list.len());
                        for p in list {
                            match p.as_array().map(|a| a.as_slice()) {
                                Some([o, v]) => pairs.push((as_int(o, "offset")?, as_int(v, "value")?)),
                                _ => return Err(format!("a polled record must be [OFFSET, VALUE], not {p}")),
                            }
                        }
                        reads.push((key, pairs));
                    }
                }
                _ => return Err(format!("poll micro-operation must be [\"poll\"] or [\"poll\", {{KEY: [[OFFSET, VALUE], ...]}}], not {m}")),
            }
            if ty == EventType::Invoke && !reads.is_empty() {
                return Err("an invoked poll cannot have read anything yet".into());
            }
            Ok(Micro::Poll { reads })
        }
        _ => Err(format!("unknown micro-operation {m}")),
    }
}

impl History {
    /// Builds a history from events already in memory (e.g. from a simulation),
    /// checking the same rules as [`parse_jsonl`]. `keys` names every [`KeyId`] used.
    pub fn from_parts(events: Vec<Event>, keys: Vec<String>) -> Result<History, ParseError> {
        for e in &events {
            let bad = |k: KeyId| (k as usize) >= keys.len();
            let any_bad = e.key.is_some_and(bad)
                || match &e.value {
                    Payload::Micros(ms) => ms.iter().any(|m| match m {
                        Micro::Send { key, .. } => bad(*key),
                        Micro::Poll { reads } => reads.iter().any(|(k, _)| bad(*k)),
                    }),
                    Payload::Keys(ks) => ks.iter().any(|k| bad(*k)),
                    _ => false,
                };
            if any_bad {
                return err(e.line, "a key id has no name in the key table");
            }
        }
        History::pair(events, keys)
    }

    /// Pairs invocations with completions, checking the rules of the format.
    /// Key ids are trusted.
    fn pair(events: Vec<Event>, keys: Vec<String>) -> Result<History, ParseError> {
        let mut ops: Vec<Op> = Vec::with_capacity(events.len() / 2 + 1);
        let mut nemesis = Vec::new();
        // process → index in `ops` of its operation in flight
        let mut pending: crate::fxhash::FxHashMap<u32, usize> = Default::default();
        let mut last_time_ns = 0u64;
        for (idx, e) in events.iter().enumerate() {
            if e.time_ns < last_time_ns {
                return err(
                    e.line,
                    format!("time {} is earlier than the previous event's {last_time_ns}", e.time_ns),
                );
            }
            last_time_ns = e.time_ns;
            let idx32 = u32::try_from(idx).map_err(|_| ParseError {
                line: e.line,
                message: "history too long (over 2^32 events)".into(),
            })?;
            let p = match e.process {
                Process::Nemesis => {
                    nemesis.push(idx32);
                    continue;
                }
                Process::Client(p) => p,
            };
            if e.ty == EventType::Invoke {
                if let Some(&open) = pending.get(&p) {
                    let open_line = events[ops[open].invoke as usize].line;
                    return err(
                        e.line,
                        format!("process {p} invokes {} while its {} from line {open_line} has not completed", e.f.as_str(), ops[open].f.as_str()),
                    );
                }
                pending.insert(p, ops.len());
                ops.push(Op {
                    process: p,
                    f: e.f,
                    invoke: idx32,
                    completion: None,
                    outcome: Outcome::Info,
                });
                continue;
            }
            let outcome = match e.ty {
                EventType::Ok => Outcome::Ok,
                EventType::Fail => Outcome::Fail,
                _ => Outcome::Info,
            };
            match pending.get(&p).copied() {
                Some(open) if ops[open].f == e.f => {
                    pending.remove(&p);
                    if ops[open].f.is_log() {
                        check_aligned(&events[ops[open].invoke as usize], e)?;
                    }
                    ops[open].completion = Some(idx32);
                    ops[open].outcome = outcome;
                }
                Some(open) if e.f == F::Crash => {
                    // The client was torn down with an operation in flight: that
                    // operation stays indeterminate (info, no completion).
                    pending.remove(&p);
                    let _ = open;
                    ops.push(Op {
                        process: p,
                        f: F::Crash,
                        invoke: idx32,
                        completion: Some(idx32),
                        outcome: Outcome::Info,
                    });
                }
                None if e.f == F::Crash => ops.push(Op {
                    process: p,
                    f: F::Crash,
                    invoke: idx32,
                    completion: Some(idx32),
                    outcome: Outcome::Info,
                }),
                Some(open) => {
                    let open_line = events[ops[open].invoke as usize].line;
                    return err(
                        e.line,
                        format!("process {p} completes {} but its operation in flight is the {} from line {open_line}", e.f.as_str(), ops[open].f.as_str()),
                    );
                }
                None => {
                    return err(
                        e.line,
                        format!("process {p} completes {} with no operation in flight", e.f.as_str()),
                    )
                }
            }
        }
        Ok(History {
            events,
            ops,
            nemesis,
            keys,
        })
    }

    pub fn key_name(&self, k: KeyId) -> &str {
        self.keys.get(k as usize).map(String::as_str).unwrap_or("?")
    }

    pub fn invoke_event(&self, op: &Op) -> &Event {
        &self.events[op.invoke as usize]
    }

    pub fn completion_event(&self, op: &Op) -> Option<&Event> {
        op.completion.map(|c| &self.events[c as usize])
    }

    /// The micro-operations an operation is known to have performed: the
    /// completion's when it has them, else the invocation's.
    pub fn micros<'a>(&'a self, op: &Op) -> &'a [Micro] {
        if let Some(Payload::Micros(ms)) = self.completion_event(op).map(|e| &e.value) {
            if !ms.is_empty() {
                return ms;
            }
        }
        match &self.invoke_event(op).value {
            Payload::Micros(ms) => ms,
            _ => &[],
        }
    }

    /// True when any process ever subscribed (consumer-group rebalances may move it).
    pub fn has_subscribe(&self) -> bool {
        self.ops.iter().any(|o| o.f == F::Subscribe)
    }
}

/// A completion's micro-operations must match its invocation's one for one:
/// same kind, and for sends the same key and value. Fail and info completions
/// may leave them out entirely.
fn check_aligned(invoke: &Event, completion: &Event) -> Result<(), ParseError> {
    let (Payload::Micros(a), Payload::Micros(b)) = (&invoke.value, &completion.value) else {
        return Ok(());
    };
    if b.is_empty() && completion.ty != EventType::Ok {
        return Ok(());
    }
    if a.len() != b.len() {
        return err(
            completion.line,
            format!("completion has {} micro-operations but its invocation on line {} has {}", b.len(), invoke.line, a.len()),
        );
    }
    for (x, y) in a.iter().zip(b) {
        match (x, y) {
            (Micro::Send { key: k1, value: v1, .. }, Micro::Send { key: k2, value: v2, .. }) => {
                if k1 != k2 || v1 != v2 {
                    return err(
                        completion.line,
                        format!("completed send of value {v2} differs from the invoked send of value {v1} on line {}", invoke.line),
                    );
                }
            }
            (Micro::Poll { .. }, Micro::Poll { .. }) => {}
            _ => {
                return err(
                    completion.line,
                    format!("completion's micro-operations differ in kind from its invocation on line {}", invoke.line),
                )
            }
        }
    }
    Ok(())
}

impl History {
    /// The event as a format-v1 JSON object again (for reports).
    pub fn event_json(&self, e: &Event) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert(
            "process".into(),
            match e.process {
                Process::Client(p) => Value::from(p),
                Process::Nemesis => Value::from("nemesis"),
            },
        );
        obj.insert("type".into(), Value::from(e.ty.as_str()));
        let (f, value) = match &e.value {
            Payload::Nemesis { f, value } => (f.clone(), value.clone()),
            other => (e.f.as_str().to_string(), self.payload_json(other)),
        };
        obj.insert("f".into(), Value::from(f));
        obj.insert("value".into(), value);
        obj.insert("time".into(), Value::from(e.time_ns));
        if let Some(k) = e.key {
            obj.insert("key".into(), Value::from(self.key_name(k)));
        }
        Value::Object(obj)
    }

    fn payload_json(&self, p: &Payload) -> Value {
        match p {
            Payload::Micros(ms) => Value::Array(ms.iter().map(|m| self.micro_json(m)).collect()),
            Payload::Keys(ks) => Value::Array(ks.iter().map(|k| Value::from(self.key_name(*k))).collect()),
            Payload::Register(r) => match r {
                RegValue::Read(v) => v.clone().unwrap_or(Value::Null),
                RegValue::Write(v) => v.clone(),
                RegValue::Cas(a, b) => Value::Array(vec![a.clone(), b.clone()]),
                RegValue::Append(s) => s.clone().map(Value::from).unwrap_or(Value::Null),
            },
            Payload::Opaque(v) => v.clone(),
            Payload::Nemesis { value, .. } => value.clone(),
        }
    }

    pub(crate) fn micro_json(&self, m: &Micro) -> Value {
        match m {
            Micro::Send { key, value, offset } => {
                let payload = match offset {
                    Some(o) => Value::Array(vec![Value::from(*o), Value::from(*value)]),
                    None => Value::from(*value),
                };
                Value::Array(vec![Value::from("send"), Value::from(self.key_name(*key)), payload])
            }
            Micro::Poll { reads } => {
                if reads.is_empty() {
                    return Value::Array(vec![Value::from("poll")]);
                }
                let mut map = serde_json::Map::new();
                for (k, pairs) in reads {
                    map.insert(
                        self.key_name(*k).to_string(),
                        Value::Array(
                            pairs
                                .iter()
                                .map(|(o, v)| Value::Array(vec![Value::from(*o), Value::from(*v)]))
                                .collect(),
                        ),
                    );
                }
                Value::Array(vec![Value::from("poll"), Value::Object(map)])
            }
        }
    }
}
