//! Events back to format-v1 JSON, for reports.

use serde_json::Value;

use crate::history::{Event, GroupValue, History, Micro, Payload, Process, RegValue};

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
            Payload::Epoch(v) => v.map(Value::from).unwrap_or(Value::Null),
            Payload::Group(None) => Value::Null,
            Payload::Group(Some(g)) => self.group_json(g),
            Payload::Opaque(v) => v.clone(),
            Payload::Nemesis { value, .. } => value.clone(),
        }
    }

    fn group_json(&self, g: &GroupValue) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("group".into(), Value::from(g.group()));
        obj.insert("generation".into(), Value::from(g.generation()));
        match g {
            GroupValue::Commit { member, offsets, .. } => {
                if let Some(m) = member {
                    obj.insert("member".into(), Value::from(m.as_str()));
                }
                let offsets: serde_json::Map<String, Value> =
                    offsets.iter().map(|(k, o)| (self.key_name(*k).to_string(), Value::from(*o))).collect();
                obj.insert("offsets".into(), Value::Object(offsets));
            }
            GroupValue::Assignment { member, keys, .. } => {
                obj.insert("member".into(), Value::from(member.as_str()));
                if let Some(ks) = keys {
                    obj.insert("keys".into(), ks.iter().map(|k| Value::from(self.key_name(*k))).collect());
                }
            }
        }
        Value::Object(obj)
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
