//! The fast path for parsing log micro-operations: typed, borrowing
//! deserialization straight from the line's text, no intermediate JSON tree.
//! Keys are borrowed, so a key with JSON escapes is not read here. Anything
//! this path cannot read falls back to the slow path in `history`, which
//! reads it or explains the problem in words.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// A send's payload: `VALUE` or `[OFFSET, VALUE]`.
pub(crate) enum SendPayload {
    Plain(i64),
    Pair(Option<i64>, i64),
}

/// Per key, the (offset, value) records a poll returned.
pub(crate) type RawReads<'a> = Vec<(&'a str, Vec<(i64, i64)>)>;

pub(crate) enum RawMicro<'a> {
    Send { key: &'a str, payload: SendPayload },
    /// `None`: `["poll"]` or `["poll", null]`.
    Poll(Option<RawReads<'a>>),
}

impl<'de> Deserialize<'de> for SendPayload {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SendPayload;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("VALUE or [OFFSET, VALUE]")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SendPayload, E> {
                Ok(SendPayload::Plain(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SendPayload, E> {
                i64::try_from(v).map(SendPayload::Plain).map_err(|_| E::custom("value out of range"))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<SendPayload, A::Error> {
                let o: Option<i64> = s.next_element()?.ok_or_else(|| de::Error::custom("missing offset"))?;
                let v: i64 = s.next_element()?.ok_or_else(|| de::Error::custom("missing value"))?;
                if s.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("extra element"));
                }
                Ok(SendPayload::Pair(o, v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `{KEY: [[OFFSET, VALUE], ...], ...}` in document order.
struct Reads<'a>(RawReads<'a>);

impl<'de> Deserialize<'de> for Reads<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Reads<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of keys to [[OFFSET, VALUE], ...]")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Reads<'de>, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<&'de str>()? {
                    let pairs: Vec<(i64, i64)> = m.next_value()?;
                    out.push((k, pairs));
                }
                Ok(Reads(out))
            }
        }
        d.deserialize_map(V)
    }
}

impl<'de> Deserialize<'de> for RawMicro<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawMicro<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a micro-operation")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<RawMicro<'de>, A::Error> {
                let tag: &'de str = s.next_element()?.ok_or_else(|| de::Error::custom("empty micro-operation"))?;
                let m = match tag {
                    "send" => {
                        let key: &'de str = s.next_element()?.ok_or_else(|| de::Error::custom("missing key"))?;
                        let payload: SendPayload = s.next_element()?.ok_or_else(|| de::Error::custom("missing value"))?;
                        RawMicro::Send { key, payload }
                    }
                    "poll" => {
                        let reads: Option<Option<Reads<'de>>> = s.next_element()?;
                        RawMicro::Poll(reads.flatten().map(|r| r.0))
                    }
                    _ => return Err(de::Error::custom("unknown micro-operation")),
                };
                if s.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("extra element"));
                }
                Ok(m)
            }
        }
        d.deserialize_seq(V)
    }
}

use crate::history::{EventType, Micro, F};
use crate::parse::KeyTable;

/// Parses a send/poll/txn value on the fast path; `None` sends the caller to
/// the slow path (for its error message, or for keys with escapes).
pub(crate) fn micros(f: F, ty: EventType, text: &str, keys: &mut KeyTable) -> Option<Vec<Micro>> {
    let raw: Vec<RawMicro> = serde_json::from_str(text).ok()?;
    let mut out = Vec::with_capacity(raw.len());
    for m in raw {
        match m {
            RawMicro::Send { key, payload } => {
                if f == F::Poll {
                    return None;
                }
                let (offset, value) = match payload {
                    SendPayload::Plain(_) if ty == EventType::Ok => return None,
                    SendPayload::Plain(v) => (None, v),
                    SendPayload::Pair(Some(_), _) if ty == EventType::Invoke => return None,
                    SendPayload::Pair(o, v) => (o, v),
                };
                out.push(Micro::Send { key: keys.intern(key), value, offset });
            }
            RawMicro::Poll(reads) => {
                if f == F::Send {
                    return None;
                }
                let reads = reads.unwrap_or_default();
                if ty == EventType::Invoke && !reads.is_empty() {
                    return None;
                }
                out.push(Micro::Poll {
                    reads: reads.into_iter().map(|(k, pairs)| (keys.intern(k), pairs)).collect(),
                });
            }
        }
    }
    Some(out)
}
