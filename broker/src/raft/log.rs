//! The in-memory view of the replicated log: a snapshot offset followed by
//! the entries after it, plus the commit, apply and persistence cursors.
//!
//! Kept separate from the protocol so its invariants are checked in one place:
//! indices are contiguous, terms never decrease along the log, the commit
//! index never decreases, and nothing at or below the commit index is ever
//! truncated.

use super::types::{Entry, LogIndex, Snapshot, SnapshotMeta, Term};

/// The log of one node.
#[derive(Debug, Clone)]
pub struct RaftLog {
    /// The prefix folded into the latest snapshot.
    snapshot_meta: SnapshotMeta,
    /// Entries `snapshot_meta.last_index + 1 ..= last_index()`.
    entries: Vec<Entry>,
    /// Highest index known committed.
    committed: LogIndex,
    /// Highest index handed to the state machine and acknowledged.
    applied: LogIndex,
    /// Highest index known durable (as an entry or inside the snapshot).
    /// Entries above it go into the next `Ready`.
    persisted: LogIndex,
}

impl RaftLog {
    /// A log recovered from storage: everything given is durable, and only
    /// the snapshot is known committed.
    pub(crate) fn recovered(snapshot_meta: SnapshotMeta, entries: Vec<Entry>) -> Result<Self, String> {
        let mut prev_term = snapshot_meta.last_term;
        for (expected, entry) in (snapshot_meta.last_index + 1..).zip(entries.iter()) {
            if entry.index != expected {
                return Err(format!("entry index {} where {} expected", entry.index, expected));
            }
            if entry.term < prev_term {
                return Err(format!("term decreases at index {}", entry.index));
            }
            prev_term = entry.term;
        }
        let log = Self {
            snapshot_meta,
            entries,
            committed: snapshot_meta.last_index,
            applied: snapshot_meta.last_index,
            persisted: 0,
        };
        Ok(Self { persisted: log.last_index(), ..log })
    }

    /// Index of the last entry folded into the snapshot (0 if none).
    pub fn snapshot_index(&self) -> LogIndex {
        self.snapshot_meta.last_index
    }

    /// Metadata of the snapshot the log starts after.
    pub fn snapshot_meta(&self) -> SnapshotMeta {
        self.snapshot_meta
    }

    /// First index still held as an entry.
    pub fn first_index(&self) -> LogIndex {
        self.snapshot_meta.last_index + 1
    }

    /// Index of the last entry (or of the snapshot if no entries follow it).
    pub fn last_index(&self) -> LogIndex {
        self.snapshot_meta.last_index + self.entries.len() as u64
    }

    /// Term of the last entry.
    pub fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_meta.last_term, |e| e.term)
    }

    /// Highest committed index.
    pub fn committed(&self) -> LogIndex {
        self.committed
    }

    /// Highest applied (and acknowledged) index.
    pub fn applied(&self) -> LogIndex {
        self.applied
    }

    /// Highest durable index.
    pub fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// The term at `index`, if known: the snapshot's last term at its index,
    /// the entry's term above it, `None` below the snapshot or past the end.
    pub fn term(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_meta.last_index {
            return Some(self.snapshot_meta.last_term);
        }
        self.entry(index).map(|e| e.term)
    }

    /// The entry at `index`, if held.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot_meta.last_index {
            return None;
        }
        self.entries.get((index - self.first_index()) as usize)
    }

    /// Entries in `lo..=hi`, clamped to what is held.
    pub fn entries(&self, lo: LogIndex, hi: LogIndex) -> &[Entry] {
        let lo = lo.max(self.first_index());
        let hi = hi.min(self.last_index());
        if lo > hi {
            return &[];
        }
        let start = (lo - self.first_index()) as usize;
        let end = (hi - self.first_index()) as usize + 1;
        &self.entries[start..end]
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (§5.4.1).
    pub fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }

    /// The first index holding `term`, searching down from `from` and not
    /// below the commit index + 1 (entries at or below it agree with any
    /// leader).
    pub(crate) fn first_index_of_term(&self, term: Term, from: LogIndex) -> LogIndex {
        let floor = (self.committed + 1).max(self.first_index());
        let mut index = from;
        while index > floor && self.term(index - 1) == Some(term) {
            index -= 1;
        }
        index
    }

    /// The last index holding `term` at or below `from`, if any.
    pub(crate) fn last_index_of_term(&self, term: Term, from: LogIndex) -> Option<LogIndex> {
        let mut index = from.min(self.last_index());
        loop {
            match self.term(index) {
                Some(t) if t == term => return Some(index),
                Some(t) if t < term => return None,
                Some(_) if index > self.snapshot_meta.last_index => index -= 1,
                _ => return None,
            }
        }
    }

    /// Appends one entry at the end (leader path).
    pub(crate) fn append(&mut self, entry: Entry) {
        assert_eq!(entry.index, self.last_index() + 1, "raft log: append must be contiguous");
        assert!(entry.term >= self.last_term(), "raft log: term must not decrease along the log");
        self.entries.push(entry);
    }

    /// Follower path: stores `entries` (contiguous, already checked to follow
    /// a matching prefix), skipping those already present with the same term
    /// and truncating at the first conflict. Returns the first index that was
    /// truncated, if any.
    pub(crate) fn merge(&mut self, entries: &[Entry]) -> Option<LogIndex> {
        let mut truncated = None;
        for (position, entry) in entries.iter().enumerate() {
            if entry.index <= self.snapshot_meta.last_index {
                continue; // folded into our snapshot: committed, so it matches
            }
            match self.term(entry.index) {
                Some(term) if term == entry.term => continue,
                Some(_) => {
                    assert!(
                        entry.index > self.committed,
                        "raft log: committed entry {} would change (commit {})",
                        entry.index,
                        self.committed
                    );
                    crate::mark!("raft.log.truncate_conflict");
                    self.entries.truncate((entry.index - self.first_index()) as usize);
                    self.persisted = self.persisted.min(entry.index - 1);
                    truncated = Some(entry.index);
                }
                None => {}
            }
            for rest in &entries[position..] {
                self.append(rest.clone());
            }
            break;
        }
        truncated
    }

    /// Raises the commit index (never lowers it).
    pub(crate) fn commit_to(&mut self, index: LogIndex) {
        if index <= self.committed {
            return;
        }
        assert!(
            index <= self.last_index(),
            "raft log: commit {index} beyond last index {}",
            self.last_index()
        );
        self.committed = index;
    }

    /// Committed entries not yet handed to the state machine.
    pub(crate) fn unapplied(&self) -> &[Entry] {
        self.entries(self.applied + 1, self.committed)
    }

    /// Entries not yet durable.
    pub(crate) fn unpersisted(&self) -> &[Entry] {
        self.entries(self.persisted + 1, self.last_index())
    }

    /// Records that the driver made everything up to `index` durable.
    pub(crate) fn persisted_to(&mut self, index: LogIndex) {
        if index > self.persisted {
            self.persisted = index.min(self.last_index());
        }
    }

    /// Records that the driver applied everything up to `index`.
    pub(crate) fn applied_to(&mut self, index: LogIndex) {
        assert!(index <= self.committed, "raft log: applied {index} beyond commit {}", self.committed);
        debug_assert!(index >= self.applied, "raft log: applied index went backwards");
        self.applied = self.applied.max(index);
    }

    /// Local compaction: forgets the entries up to `index` (which the state
    /// machine has applied), keeping the ones after it.
    pub(crate) fn compact_to(&mut self, index: LogIndex) -> SnapshotMeta {
        assert!(index <= self.applied && index > self.snapshot_meta.last_index);
        let term = self.term(index).expect("raft log: compacting to an index that is held");
        let drop = (index - self.snapshot_meta.last_index) as usize;
        self.entries.drain(..drop);
        self.snapshot_meta = SnapshotMeta { last_index: index, last_term: term };
        self.snapshot_meta
    }

    /// Follower path: replaces the whole log with a leader's snapshot.
    pub(crate) fn restore(&mut self, snapshot: &Snapshot) {
        assert!(
            snapshot.meta.last_index > self.committed,
            "raft log: restoring a snapshot at or below the commit index"
        );
        self.entries.clear();
        self.snapshot_meta = snapshot.meta;
        self.committed = snapshot.meta.last_index;
        self.persisted = 0; // the snapshot itself is pending until advance
    }

    /// After the driver persisted a restored snapshot.
    pub(crate) fn restored_snapshot_persisted(&mut self) {
        self.persisted = self.persisted.max(self.snapshot_meta.last_index);
        self.applied = self.applied.max(self.snapshot_meta.last_index);
    }
}
