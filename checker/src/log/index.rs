//! Per-key version orders, built once and shared by every log check.
//!
//! A key's version order is the dense sequence of offsets that hold values,
//! from every poll (ok, info or fail: a read is a read) and from every send
//! that must have committed (ok sends with an offset, and info sends whose
//! value some ok operation read). Offsets that hold no value (transaction
//! markers, compacted records) never appear, so positions skip them.

use crate::fxhash::{map_with_capacity, FxHashMap};
use crate::history::{History, KeyId, Micro, Op, Outcome, F};

/// Who sent a value.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub key: KeyId,
    /// Index into `History::ops`.
    pub op: u32,
}

/// One key's version order.
#[derive(Debug, Default)]
pub(crate) struct KeyOrder {
    /// Distinct offsets that hold a value, ascending; a value's position is its index here.
    pub offsets: Vec<i64>,
    /// The value at each position (the smallest one, when the offset is inconsistent).
    pub values: Vec<i64>,
    /// The highest position an ok operation read: (position, op index).
    pub max_ok_read: Option<(u32, u32)>,
}

impl KeyOrder {
    #[inline]
    pub fn pos(&self, offset: i64) -> Option<u32> {
        self.offsets.binary_search(&offset).ok().map(|p| p as u32)
    }
}

/// An offset holding several values.
#[derive(Debug)]
pub(crate) struct Inconsistent {
    pub key: KeyId,
    pub offset: i64,
    pub values: Vec<i64>,
}

/// A value standing at several offsets of one key.
#[derive(Debug)]
pub(crate) struct Duplicate {
    pub key: KeyId,
    pub value: i64,
    pub offsets: Vec<i64>,
}

pub(crate) struct LogIndex {
    /// Every value any operation tried to send, with its sender.
    pub sent: FxHashMap<i64, Sent>,
    /// Values read by an ok operation → the first ok operation that read it.
    pub ok_read: FxHashMap<i64, u32>,
    /// Per key, its version order.
    pub orders: Vec<KeyOrder>,
    /// Value → (key, lowest position) in the version orders.
    pub value_pos: FxHashMap<i64, (KeyId, u32)>,
    pub inconsistent: Vec<Inconsistent>,
    pub duplicates: Vec<Duplicate>,
}

/// Calls `f(key, offset, value)` for every record an operation's completion returned.
#[inline]
pub(crate) fn for_each_read(h: &History, op: &Op, mut f: impl FnMut(KeyId, i64, i64)) {
    if !matches!(op.f, F::Poll | F::Txn) {
        return;
    }
    let Some(c) = h.completion_event(op) else { return };
    if let crate::history::Payload::Micros(ms) = &c.value {
        for m in ms {
            if let Micro::Poll { reads } = m {
                for (k, pairs) in reads {
                    for &(o, v) in pairs {
                        f(*k, o, v);
                    }
                }
            }
        }
    }
}

/// Calls `f(key, value, offset)` for every send of an operation, in order, with
/// the offset its completion reported (if any).
#[inline]
pub(crate) fn for_each_send(h: &History, op: &Op, mut f: impl FnMut(KeyId, i64, Option<i64>)) {
    if !matches!(op.f, F::Send | F::Txn) {
        return;
    }
    for m in h.micros(op) {
        if let Micro::Send { key, value, offset } = m {
            f(*key, *value, *offset);
        }
    }
}

impl LogIndex {
    pub fn build(h: &History) -> LogIndex {
        let n_keys = h.keys.len();
        let mut sent: FxHashMap<i64, Sent> = map_with_capacity(h.ops.len());
        let mut ok_read: FxHashMap<i64, u32> = map_with_capacity(h.ops.len());
        let mut obs: Vec<Vec<(i64, i64)>> = vec![Vec::new(); n_keys];

        for (i, op) in h.ops.iter().enumerate() {
            if matches!(op.f, F::Send | F::Txn) {
                if let crate::history::Payload::Micros(ms) = &h.invoke_event(op).value {
                    for m in ms {
                        if let Micro::Send { key, value, .. } = m {
                            sent.entry(*value).or_insert(Sent { key: *key, op: i as u32 });
                        }
                    }
                }
            }
            let ok = op.outcome == Outcome::Ok;
            for_each_read(h, op, |k, o, v| {
                obs[k as usize].push((o, v));
                if ok {
                    ok_read.entry(v).or_insert(i as u32);
                }
            });
        }
        for op in &h.ops {
            let counts = match op.outcome {
                Outcome::Ok => true,
                Outcome::Info => true,
                Outcome::Fail => false,
            };
            if !counts {
                continue;
            }
            for_each_send(h, op, |k, v, o| {
                if let Some(o) = o {
                    if op.outcome == Outcome::Ok || ok_read.contains_key(&v) {
                        obs[k as usize].push((o, v));
                    }
                }
            });
        }

        let mut orders = Vec::with_capacity(n_keys);
        let mut value_pos: FxHashMap<i64, (KeyId, u32)> = map_with_capacity(sent.len());
        let mut inconsistent = Vec::new();
        let mut dup_map: FxHashMap<(KeyId, i64), Vec<i64>> = FxHashMap::default();
        for (k, mut pairs) in obs.into_iter().enumerate() {
            let k = k as KeyId;
            pairs.sort_unstable();
            pairs.dedup();
            let mut order = KeyOrder::default();
            let mut i = 0;
            while i < pairs.len() {
                let offset = pairs[i].0;
                let mut j = i + 1;
                while j < pairs.len() && pairs[j].0 == offset {
                    j += 1;
                }
                let pos = order.offsets.len() as u32;
                order.offsets.push(offset);
                order.values.push(pairs[i].1);
                if j - i > 1 {
                    inconsistent.push(Inconsistent {
                        key: k,
                        offset,
                        values: pairs[i..j].iter().map(|p| p.1).collect(),
                    });
                }
                for &(o, v) in &pairs[i..j] {
                    match value_pos.get(&v) {
                        None => {
                            value_pos.insert(v, (k, pos));
                        }
                        Some(&(k0, p0)) => {
                            if k0 == k {
                                let e = dup_map.entry((k, v)).or_insert_with(|| vec![orders_offset(&order, p0)]);
                                e.push(o);
                            }
                        }
                    }
                }
                i = j;
            }
            orders.push(order);
        }
        let mut duplicates: Vec<Duplicate> = dup_map
            .into_iter()
            .map(|((key, value), offsets)| Duplicate { key, value, offsets })
            .collect();
        duplicates.sort_by_key(|d| (d.key, d.value));

        // The highest position each key was read at by an ok operation.
        for (i, op) in h.ops.iter().enumerate() {
            if op.outcome != Outcome::Ok {
                continue;
            }
            for_each_read(h, op, |k, o, _| {
                let order = &mut orders[k as usize];
                if let Some(p) = order.pos(o) {
                    if order.max_ok_read.is_none_or(|(m, _)| p > m) {
                        order.max_ok_read = Some((p, i as u32));
                    }
                }
            });
        }
        LogIndex {
            sent,
            ok_read,
            orders,
            value_pos,
            inconsistent,
            duplicates,
        }
    }

    /// Position of a read or acknowledged record, by its offset.
    #[inline]
    pub fn pos(&self, key: KeyId, offset: i64) -> Option<u32> {
        self.orders.get(key as usize).and_then(|o| o.pos(offset))
    }
}

fn orders_offset(order: &KeyOrder, pos: u32) -> i64 {
    order.offsets[pos as usize]
}
