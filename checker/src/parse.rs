//! Parsing history format v1 (JSON Lines) into typed events, in parallel
//! chunks; `history` pairs them into operations. The format is documented in
//! `checker/HISTORY.md`.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::Value;

use crate::history::{err, Event, EventType, GroupValue, History, KeyId, Micro, ParseError, Payload, Process, RegValue, F};

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
        Payload::Group(Some(GroupValue::Commit { offsets, .. })) => {
            for (k, _) in offsets {
                *k = remap[*k as usize];
            }
        }
        Payload::Group(Some(GroupValue::Assignment { keys: Some(ks), .. })) => {
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
        Some(Value::String(s)) if f.is_keyed() => Some(keys.intern(&s)),
        Some(Value::String(_)) => return err(line, format!("only register and epoch operations carry a key, not {f_name}")),
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
        F::Epoch => match (ty, v) {
            (_, Value::Null) if ty != EventType::Ok => Ok(Payload::Epoch(None)),
            (EventType::Invoke, other) => Err(format!("an invoked epoch read cannot have read anything yet: value must be null, not {other}")),
            (_, other) => match other.as_i64() {
                Some(e) => Ok(Payload::Epoch(Some(e))),
                None if ty == EventType::Ok => Err(format!("ok epoch value must be an integer (the epoch observed), not {other}")),
                None => Err(format!("epoch value must be null or an integer, not {other}")),
            },
        },
        F::Append => match v {
            Value::Null => Ok(Payload::Register(RegValue::Append(None))),
            Value::String(s) => Ok(Payload::Register(RegValue::Append(Some(s.clone())))),
            other => Err(format!("append value must be a string, not {other}")),
        },
        F::Commit | F::Assignment => parse_group(f, ty, v, keys).map(Payload::Group),
    }
}

/// The value of a `commit` or `assignment`. Shape rules that compare an
/// event with its invocation (or need to know it is one) are in
/// `history::check_group_*`, so in-memory histories get them too.
fn parse_group(f: F, ty: EventType, v: &Value, keys: &mut KeyTable) -> Result<Option<GroupValue>, String> {
    let name = f.as_str();
    let obj = match v {
        Value::Null if matches!(ty, EventType::Fail | EventType::Info) => return Ok(None),
        Value::Object(o) => o,
        other => return Err(format!("{name} value must be an object, not {other}")),
    };
    let allowed: &[&str] = if f == F::Commit {
        &["group", "generation", "member", "offsets"]
    } else {
        &["group", "generation", "member", "keys"]
    };
    if let Some(extra) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("{name} value has an unknown field {extra:?} (fields: {})", allowed.join(", ")));
    }
    let group = match obj.get("group") {
        Some(Value::String(g)) => g.clone(),
        Some(other) => return Err(format!("{name} group must be a string, not {other}")),
        None => return Err(format!("{name} value must name its \"group\"")),
    };
    let generation = match obj.get("generation") {
        Some(g) => as_int(g, &format!("{name} generation"))?,
        None => return Err(format!("{name} value must carry its \"generation\"")),
    };
    let member = match obj.get("member") {
        Some(Value::String(m)) => Some(m.clone()),
        Some(other) => return Err(format!("{name} member must be a string, not {other}")),
        None => None,
    };
    if f == F::Commit {
        let offsets = match obj.get("offsets") {
            Some(Value::Object(m)) => m,
            Some(other) => return Err(format!("commit offsets must be an object {{KEY: OFFSET, ...}}, not {other}")),
            None => return Err("commit value must carry its \"offsets\"".into()),
        };
        let mut named: Vec<(&str, i64)> = Vec::with_capacity(offsets.len());
        for (k, o) in offsets {
            named.push((k.as_str(), as_int(o, &format!("commit offset of {k:?}"))?));
        }
        // Key-name order, so that equality does not depend on key numbering.
        named.sort_unstable_by(|a, b| a.0.cmp(b.0));
        named.dedup_by(|a, b| a.0 == b.0);
        let offsets = named.into_iter().map(|(k, o)| (keys.intern(k), o)).collect();
        return Ok(Some(GroupValue::Commit { group, generation, member, offsets }));
    }
    let Some(member) = member else {
        return Err("assignment value must name its \"member\"".into());
    };
    let keys = match obj.get("keys") {
        None => None,
        Some(Value::Array(list)) => {
            let mut ks = Vec::with_capacity(list.len());
            for k in list {
                let k = k.as_str().ok_or_else(|| format!("assignment keys must be strings, not {k}"))?;
                ks.push(keys.intern(k));
            }
            Some(ks)
        }
        Some(other) => return Err(format!("assignment keys must be a list of keys, not {other}")),
    };
    Ok(Some(GroupValue::Assignment { group, generation, member, keys }))
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

