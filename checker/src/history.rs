//! History format v1: typed events, and pairing each invocation with its
//! completion into operations (parsing is in `parse`, JSON output in
//! `history_json`).
//!
//! The format itself is documented in `checker/HISTORY.md`, the one source of
//! truth; this module enforces it and names the line of the first violation.

use serde_json::Value;

pub use crate::parse::parse_jsonl;

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
    /// A read of a system-written, never-decreasing integer (e.g. a
    /// partition's leader epoch); judged by the `epoch` module.
    Epoch,
    /// A consumer group's offset commit; judged by the `groups` module.
    Commit,
    /// A group member learning its assignment for a generation (the end of a
    /// SyncGroup); judged by the `groups` module.
    Assignment,
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
            F::Epoch => "epoch",
            F::Commit => "commit",
            F::Assignment => "assignment",
            F::Nemesis => "nemesis",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<F> {
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
            "epoch" => F::Epoch,
            "commit" => F::Commit,
            "assignment" => F::Assignment,
            _ => return None,
        })
    }

    /// Operations checked by the log checks (consumer-group operations are
    /// not among them: see [`F::is_group`]).
    pub fn is_log(self) -> bool {
        matches!(self, F::Send | F::Poll | F::Txn | F::Assign | F::Subscribe)
    }

    /// Operations checked for linearizability by the register model's search.
    pub fn is_register(self) -> bool {
        matches!(self, F::Read | F::Write | F::Cas | F::Append)
    }

    /// Operations of the register model: the linearizable register operations
    /// and `epoch` reads. They may carry a `key`; a history with any gets model
    /// "register" (or "log+register").
    pub fn is_keyed(self) -> bool {
        self.is_register() || self == F::Epoch
    }

    /// Consumer-group operations (`commit`, `assignment`): part of the log
    /// model (a history with any gets model "log" or "log+register"), judged
    /// by the `groups` module only. They are neither reads nor writes, and
    /// stay out of the dependency graph and its real-time edges.
    pub fn is_group(self) -> bool {
        matches!(self, F::Commit | F::Assignment)
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

/// The payload of a consumer-group operation. Key ids name partitions, in
/// the same table as the log operations' keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupValue {
    /// `{"group", "generation", "offsets": {KEY: OFFSET, ...}}`, plus an
    /// optional `"member"` the checks ignore. Offsets are the next offset
    /// the group will consume, one per key, sorted by key name.
    Commit {
        group: String,
        generation: i64,
        member: Option<String>,
        offsets: Vec<(KeyId, i64)>,
    },
    /// `{"group", "generation", "member"}`, plus `"keys"` on an ok
    /// completion only: the keys assigned to the member for the generation,
    /// in the order given.
    Assignment {
        group: String,
        generation: i64,
        member: String,
        keys: Option<Vec<KeyId>>,
    },
}

impl GroupValue {
    pub fn group(&self) -> &str {
        match self {
            GroupValue::Commit { group, .. } | GroupValue::Assignment { group, .. } => group,
        }
    }

    pub fn generation(&self) -> i64 {
        match self {
            GroupValue::Commit { generation, .. } | GroupValue::Assignment { generation, .. } => *generation,
        }
    }

    /// Every key id the value names.
    pub fn key_ids(&self) -> Vec<KeyId> {
        match self {
            GroupValue::Commit { offsets, .. } => offsets.iter().map(|(k, _)| *k).collect(),
            GroupValue::Assignment { keys, .. } => keys.clone().unwrap_or_default(),
        }
    }
}

/// The typed `value` of an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Micros(Vec<Micro>),
    Keys(Vec<KeyId>),
    Register(RegValue),
    /// The payload of an `epoch` operation: `None` on invocations, and on
    /// fail/info completions that carry no value; the epoch observed on an ok
    /// completion.
    Epoch(Option<i64>),
    /// The payload of a `commit` or `assignment`: `None` on a fail/info
    /// completion whose value is null.
    Group(Option<GroupValue>),
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

pub(crate) fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
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
                    Payload::Group(Some(g)) => g.key_ids().into_iter().any(bad),
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
    pub(crate) fn pair(events: Vec<Event>, keys: Vec<String>) -> Result<History, ParseError> {
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
                if e.f.is_group() {
                    check_group_invoke(e)?;
                }
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
                    if ops[open].f.is_group() {
                        check_group_aligned(&events[ops[open].invoke as usize], e)?;
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


/// A consumer-group invocation carries its whole value (an assignment's
/// keys excepted: the member does not know them yet).
fn check_group_invoke(invoke: &Event) -> Result<(), ParseError> {
    match &invoke.value {
        Payload::Group(Some(GroupValue::Assignment { keys: Some(_), .. })) => {
            err(invoke.line, "an invoked assignment cannot know its keys yet")
        }
        Payload::Group(Some(_)) => Ok(()),
        _ => err(invoke.line, format!("an invoked {} must carry its value object", invoke.f.as_str())),
    }
}

/// A consumer-group completion repeats its invocation's value: an ok one
/// always (an ok assignment adding its keys), a fail or info one unless its
/// value is null.
fn check_group_aligned(invoke: &Event, completion: &Event) -> Result<(), ParseError> {
    let f = completion.f.as_str();
    let (Payload::Group(Some(a)), Payload::Group(b)) = (&invoke.value, &completion.value) else {
        return err(completion.line, format!("the {f} on line {} has no value object", invoke.line));
    };
    let Some(b) = b else {
        if completion.ty == EventType::Ok {
            return err(completion.line, format!("an ok {f} must repeat its invocation's value, not null"));
        }
        return Ok(());
    };
    let same = match (a, b) {
        (GroupValue::Commit { .. }, GroupValue::Commit { .. }) => a == b,
        (
            GroupValue::Assignment { group: g1, generation: n1, member: m1, .. },
            GroupValue::Assignment { group: g2, generation: n2, member: m2, keys },
        ) => {
            match (completion.ty, keys) {
                (EventType::Ok, None) => {
                    return err(completion.line, "an ok assignment must list the keys assigned (\"keys\")")
                }
                (EventType::Fail | EventType::Info, Some(_)) => {
                    return err(
                        completion.line,
                        format!("a {} assignment learned no keys: its value must be null or the invocation's", completion.ty.as_str()),
                    )
                }
                _ => {}
            }
            g1 == g2 && n1 == n2 && m1 == m2
        }
        _ => false,
    };
    if !same {
        let what = if completion.f == F::Commit { "group, generation, member or offsets" } else { "group, generation or member" };
        return err(
            completion.line,
            format!("the completed {f}'s {what} differ from its invocation's on line {}", invoke.line),
        );
    }
    Ok(())
}
