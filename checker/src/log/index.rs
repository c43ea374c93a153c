//! Per-key version orders and per-value facts, built once and shared by every
//! log check.
//!
//! A key's version order is the dense sequence of offsets that hold values,
//! from every poll (ok, info or fail: a read is a read) and from every send
//! that must have committed (ok sends with an offset, and info sends whose
//! value some ok operation read). Offsets that hold no value (transaction
//! markers, compacted records) never appear, so positions skip them.
//!
//! Values are mapped once to dense ids, and every read and send is copied
//! into flat arrays with its value id and position resolved, so the checks
//! that follow index arrays instead of hashing each value again.

use crate::fxhash::{map_with_capacity, FxHashMap};
use crate::history::{History, KeyId, Micro, Op, Outcome, Payload, F};

/// "None" in the dense arrays.
pub(crate) const NONE: u32 = u32::MAX;

/// One record an operation's completion returned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadRec {
    pub key: KeyId,
    pub vid: u32,
    pub offset: i64,
    /// Position in the key's version order.
    pub pos: u32,
}

/// One send of an operation, with the offset its completion reported.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendRec {
    pub key: KeyId,
    pub vid: u32,
    pub offset: Option<i64>,
}

/// One key's version order.
#[derive(Debug, Default)]
pub(crate) struct KeyOrder {
    /// Distinct offsets that hold a value, ascending; a value's position is its index here.
    pub offsets: Vec<i64>,
    /// The value id at each position (the first, when the offset is inconsistent).
    pub vids: Vec<u32>,
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
    /// Sorted.
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
    vid_of: FxHashMap<i64, u32>,
    /// vid → value.
    pub values: Vec<i64>,
    /// vid → the operation that sent it (the first, if several), or NONE.
    pub sender: Vec<u32>,
    /// vid → the key it was sent to, or NONE.
    pub send_key: Vec<KeyId>,
    /// vid → the first ok operation that read it, or NONE.
    pub ok_reader: Vec<u32>,
    /// vid → (key, lowest position) in the version orders, or (NONE, NONE).
    pub vpos: Vec<(KeyId, u32)>,
    reads: Vec<ReadRec>,
    read_start: Vec<u32>,
    sends: Vec<SendRec>,
    send_start: Vec<u32>,
    pub orders: Vec<KeyOrder>,
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
    if let Payload::Micros(ms) = &c.value {
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
    fn vid(&mut self, v: i64) -> u32 {
        let next = self.values.len() as u32;
        let id = *self.vid_of.entry(v).or_insert(next);
        if id == next {
            self.values.push(v);
            self.sender.push(NONE);
            self.send_key.push(NONE);
            self.ok_reader.push(NONE);
        }
        id
    }

    pub fn build(h: &History) -> LogIndex {
        let n_ops = h.ops.len();
        let mut idx = LogIndex {
            vid_of: map_with_capacity(n_ops),
            values: Vec::with_capacity(n_ops),
            sender: Vec::with_capacity(n_ops),
            send_key: Vec::with_capacity(n_ops),
            ok_reader: Vec::with_capacity(n_ops),
            vpos: Vec::new(),
            reads: Vec::with_capacity(n_ops * 2),
            read_start: Vec::with_capacity(n_ops + 1),
            sends: Vec::with_capacity(n_ops),
            send_start: Vec::with_capacity(n_ops + 1),
            orders: Vec::new(),
            inconsistent: Vec::new(),
            duplicates: Vec::new(),
        };
        // Flatten every send and read, resolving value ids.
        for (i, op) in h.ops.iter().enumerate() {
            idx.read_start.push(idx.reads.len() as u32);
            idx.send_start.push(idx.sends.len() as u32);
            let ok = op.outcome == Outcome::Ok;
            if matches!(op.f, F::Send | F::Txn) {
                for m in h.micros(op) {
                    if let Micro::Send { key, value, offset } = m {
                        let vid = idx.vid(*value);
                        if idx.sender[vid as usize] == NONE {
                            idx.sender[vid as usize] = i as u32;
                            idx.send_key[vid as usize] = *key;
                        }
                        idx.sends.push(SendRec { key: *key, vid, offset: *offset });
                    }
                }
            }
            if matches!(op.f, F::Poll | F::Txn) {
                if let Some(Payload::Micros(ms)) = h.completion_event(op).map(|e| &e.value) {
                    for m in ms {
                        if let Micro::Poll { reads } = m {
                            for (k, pairs) in reads {
                                for &(o, v) in pairs {
                                    let vid = idx.vid(v);
                                    if ok && idx.ok_reader[vid as usize] == NONE {
                                        idx.ok_reader[vid as usize] = i as u32;
                                    }
                                    idx.reads.push(ReadRec { key: *k, vid, offset: o, pos: NONE });
                                }
                            }
                        }
                    }
                }
            }
        }
        idx.read_start.push(idx.reads.len() as u32);
        idx.send_start.push(idx.sends.len() as u32);

        // Observations per key: (offset, vid).
        let mut obs: Vec<Vec<(i64, u32)>> = vec![Vec::new(); h.keys.len()];
        for r in &idx.reads {
            obs[r.key as usize].push((r.offset, r.vid));
        }
        for (i, op) in h.ops.iter().enumerate() {
            if op.outcome == Outcome::Fail {
                continue;
            }
            for s in idx.op_sends(i) {
                if let Some(o) = s.offset {
                    if op.outcome == Outcome::Ok || idx.ok_reader[s.vid as usize] != NONE {
                        obs[s.key as usize].push((o, s.vid));
                    }
                }
            }
        }

        let mut vpos = vec![(NONE, NONE); idx.values.len()];
        let mut dup_map: FxHashMap<(KeyId, u32), Vec<i64>> = FxHashMap::default();
        let mut orders = Vec::with_capacity(h.keys.len());
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
                order.vids.push(pairs[i].1);
                if j - i > 1 {
                    let mut values: Vec<i64> = pairs[i..j].iter().map(|p| idx.values[p.1 as usize]).collect();
                    values.sort_unstable();
                    idx.inconsistent.push(Inconsistent { key: k, offset, values });
                }
                for &(o, vid) in &pairs[i..j] {
                    let slot = &mut vpos[vid as usize];
                    if slot.0 == NONE {
                        *slot = (k, pos);
                    } else if slot.0 == k {
                        let first = order.offsets[slot.1 as usize];
                        dup_map.entry((k, vid)).or_insert_with(|| vec![first]).push(o);
                    }
                }
                i = j;
            }
            orders.push(order);
        }
        let mut duplicates: Vec<Duplicate> = dup_map
            .into_iter()
            .map(|((key, vid), offsets)| Duplicate { key, value: idx.values[vid as usize], offsets })
            .collect();
        duplicates.sort_by_key(|d| (d.key, d.value));
        idx.duplicates = duplicates;

        // Resolve each read's position, and the highest one each key was read at by an ok op.
        for (i, op) in h.ops.iter().enumerate() {
            let ok = op.outcome == Outcome::Ok;
            let (a, b) = (idx.read_start[i] as usize, idx.read_start[i + 1] as usize);
            for r in &mut idx.reads[a..b] {
                let order = &mut orders[r.key as usize];
                let p = order.pos(r.offset).unwrap_or(NONE);
                r.pos = p;
                if ok && p != NONE && order.max_ok_read.is_none_or(|(m, _)| p > m) {
                    order.max_ok_read = Some((p, i as u32));
                }
            }
        }
        idx.orders = orders;
        idx.vpos = vpos;
        idx
    }

    #[inline]
    pub fn op_reads(&self, op: usize) -> &[ReadRec] {
        &self.reads[self.read_start[op] as usize..self.read_start[op + 1] as usize]
    }

    #[inline]
    pub fn op_sends(&self, op: usize) -> &[SendRec] {
        &self.sends[self.send_start[op] as usize..self.send_start[op + 1] as usize]
    }

    /// Position of a value in the version order of `key`, if it stands there.
    #[inline]
    pub fn pos_in(&self, vid: u32, key: KeyId) -> Option<u32> {
        let (k, p) = self.vpos[vid as usize];
        (k == key && p != NONE).then_some(p)
    }

    /// Position of a send: from its offset, or failing that from a read of its value.
    #[inline]
    pub fn send_pos(&self, s: &SendRec) -> Option<u32> {
        match s.offset {
            Some(o) => self.orders[s.key as usize].pos(o),
            None => self.pos_in(s.vid, s.key),
        }
    }

    #[inline]
    pub fn is_ok_read(&self, vid: u32) -> bool {
        self.ok_reader[vid as usize] != NONE
    }
}
