//! Tests of Raft storage (`broker::raft::storage`): round trips, recovery
//! rules, crash behaviour with and without fsync, power loss at every disk
//! operation inside `persist_ready` (proptest; `PROPTEST_CASES` for more),
//! and the format fixtures.
//!
//! Regenerate the fixtures (only when deliberately adding a format version):
//! `DLOG_WRITE_RAFT_FIXTURES=1 cargo test -p dlog-broker --test raft_storage`.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use broker::disk::{Disk, DiskFile, OpenMode, RealDisk};
use broker::raft::storage::{RaftStorage, StorageError, StorageOptions, FORMAT_VERSION, LOG_FILE};
use broker::raft::{Entry, EntryKind, HardState, Ready, Snapshot, SnapshotMeta};

// ----- a tiny in-memory disk with pending vs durable bytes -------------------

#[derive(Default)]
struct MemFileData {
    current: Vec<u8>,
    durable: Vec<u8>,
}

/// Mutating operations left before the power fails (`None`: unlimited).
type PowerBudget = Arc<Mutex<Option<u64>>>;

fn spend(budget: &PowerBudget) -> io::Result<()> {
    let mut left = budget.lock().unwrap();
    match *left {
        Some(0) => Err(io::Error::other("power lost")),
        Some(n) => {
            *left = Some(n - 1);
            Ok(())
        }
        None => Ok(()),
    }
}

struct MemFile(Arc<Mutex<MemFileData>>, PowerBudget);

impl DiskFile for MemFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let data = self.0.lock().unwrap();
        let start = (offset as usize).min(data.current.len());
        let n = buf.len().min(data.current.len() - start);
        buf[..n].copy_from_slice(&data.current[start..start + n]);
        Ok(n)
    }
    fn write_at(&self, bytes: &[u8], offset: u64) -> io::Result<()> {
        spend(&self.1)?;
        let mut data = self.0.lock().unwrap();
        let end = offset as usize + bytes.len();
        if data.current.len() < end {
            data.current.resize(end, 0);
        }
        data.current[offset as usize..end].copy_from_slice(bytes);
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        spend(&self.1)?;
        let mut data = self.0.lock().unwrap();
        data.durable = data.current.clone();
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.lock().unwrap().current.len() as u64)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        spend(&self.1)?;
        self.0.lock().unwrap().current.resize(len as usize, 0);
        Ok(())
    }
}

/// Names are durable at once (a simplification); contents only on sync.
#[derive(Default)]
struct MemDisk {
    files: Mutex<BTreeMap<PathBuf, Arc<Mutex<MemFileData>>>>,
    power: PowerBudget,
}

impl MemDisk {
    /// Power loss: every file keeps only its synced bytes.
    fn crash(&self) {
        self.crash_keeping_tail(0);
    }
    /// Power loss that keeps up to `keep` bytes of each file's unsynced
    /// appended tail (a torn write), then restores the power.
    fn crash_keeping_tail(&self, keep: usize) {
        for file in self.files.lock().unwrap().values() {
            let mut data = file.lock().unwrap();
            let durable_len = data.durable.len();
            let appended = data.current.len() > durable_len && data.current[..durable_len] == data.durable[..];
            if appended {
                let end = (durable_len + keep).min(data.current.len());
                data.durable = data.current[..end].to_vec();
            }
            data.current = data.durable.clone();
        }
        *self.power.lock().unwrap() = None;
    }
    fn fail_power_after(&self, ops: u64) {
        *self.power.lock().unwrap() = Some(ops);
    }
    fn bytes(&self, path: &Path) -> Vec<u8> {
        self.files.lock().unwrap()[path].lock().unwrap().current.clone()
    }
    fn set_bytes(&self, path: &Path, bytes: Vec<u8>) {
        let files = self.files.lock().unwrap();
        let mut data = files[path].lock().unwrap();
        data.current = bytes.clone();
        data.durable = bytes;
    }
}

impl Disk for MemDisk {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn DiskFile>> {
        if mode != OpenMode::Existing {
            spend(&self.power)?;
        }
        let mut files = self.files.lock().unwrap();
        let file = match (mode, files.get(path)) {
            (OpenMode::Existing, None) => return Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
            (OpenMode::Truncate, _) | (_, None) => {
                let file = Arc::new(Mutex::new(MemFileData::default()));
                files.insert(path.to_path_buf(), file.clone());
                file
            }
            (_, Some(file)) => file.clone(),
        };
        Ok(Arc::new(MemFile(file, self.power.clone())))
    }
    fn create_dir_all(&self, _path: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .keys()
            .filter(|p| p.parent() == Some(path))
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect())
    }
    fn exists(&self, path: &Path) -> bool {
        self.files.lock().unwrap().contains_key(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        spend(&self.power)?;
        self.files.lock().unwrap().remove(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        spend(&self.power)?;
        let mut files = self.files.lock().unwrap();
        let file = files.remove(from).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such file"))?;
        files.insert(to.to_path_buf(), file);
        Ok(())
    }
    fn sync_dir(&self, _path: &Path) -> io::Result<()> {
        spend(&self.power)
    }
}

// ----- helpers -------------------------------------------------------------------

fn entry(index: u64, term: u64, data: &str) -> Entry {
    Entry { term, index, kind: EntryKind::Normal, data: data.as_bytes().to_vec() }
}

fn dir() -> PathBuf {
    PathBuf::from("/raft")
}

fn open(disk: &Arc<MemDisk>, fsync: bool) -> Result<(RaftStorage, broker::raft::RecoveredState), StorageError> {
    RaftStorage::open(disk.clone(), &dir(), StorageOptions { fsync })
}

fn ready_with(hard_state: Option<HardState>, entries: Vec<Entry>) -> Ready {
    Ready { hard_state, entries, ..Ready::default() }
}

// ----- tests ---------------------------------------------------------------------------

#[test]
fn raft_storage_round_trip_and_conflict_truncation() {
    let disk = Arc::new(MemDisk::default());
    let (mut storage, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered, Default::default());
    let hs = HardState { term: 2, voted_for: Some(3) };
    storage
        .persist_ready(&ready_with(Some(hs), (1..=5).map(|i| entry(i, 1 + i / 3, "x")).collect()))
        .unwrap();
    // A follower's conflicting suffix from index 3 is replaced.
    storage.persist_ready(&ready_with(None, vec![entry(3, 2, "new3"), entry(4, 2, "new4")])).unwrap();
    drop(storage);
    let (storage, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered.hard_state, hs);
    let indices: Vec<(u64, u64)> = recovered.entries.iter().map(|e| (e.index, e.term)).collect();
    assert_eq!(indices, vec![(1, 1), (2, 1), (3, 2), (4, 2)]);
    assert_eq!(recovered.entries[2].data, b"new3");
    assert_eq!(storage.last_index(), 4);
}

#[test]
fn raft_storage_snapshot_compaction_and_restore() {
    let disk = Arc::new(MemDisk::default());
    let (mut storage, _) = open(&disk, true).unwrap();
    storage.persist_ready(&ready_with(None, (1..=6).map(|i| entry(i, 1, "x")).collect())).unwrap();
    let snapshot = Snapshot { meta: SnapshotMeta { last_index: 4, last_term: 1 }, data: b"state@4".to_vec() };
    storage
        .persist_ready(&Ready { snapshot: Some(snapshot.clone()), ..Ready::default() })
        .unwrap();
    let (mut storage, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered.snapshot, Some(snapshot));
    assert_eq!(recovered.entries.iter().map(|e| e.index).collect::<Vec<_>>(), vec![5, 6]);
    // A leader's snapshot replaces everything.
    let leader_snapshot = Snapshot { meta: SnapshotMeta { last_index: 10, last_term: 3 }, data: b"state@10".to_vec() };
    storage
        .persist_ready(&Ready {
            snapshot: Some(leader_snapshot.clone()),
            restore_snapshot: true,
            entries: vec![entry(11, 3, "after")],
            ..Ready::default()
        })
        .unwrap();
    let (_, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered.snapshot, Some(leader_snapshot));
    assert_eq!(recovered.entries, vec![entry(11, 3, "after")]);
}

#[test]
fn raft_storage_truncates_a_torn_tail() {
    let disk = Arc::new(MemDisk::default());
    let (mut storage, _) = open(&disk, true).unwrap();
    storage.persist_ready(&ready_with(None, (1..=3).map(|i| entry(i, 1, "payload")).collect())).unwrap();
    drop(storage);
    let log = dir().join(LOG_FILE);
    let bytes = disk.bytes(&log);
    // Cut the last record in half, as a torn write would.
    disk.set_bytes(&log, bytes[..bytes.len() - 7].to_vec());
    let (mut storage, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered.entries.len(), 2);
    // The tail is gone from the file too, so appending continues cleanly.
    storage.persist_ready(&ready_with(None, vec![entry(3, 2, "again")])).unwrap();
    let (_, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered.entries.last(), Some(&entry(3, 2, "again")));
    // A damaged checksum on the final record is a torn tail as well.
    let mut bytes = disk.bytes(&log);
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    disk.set_bytes(&log, bytes);
    let (_, recovered) = open(&disk, true).unwrap();
    assert_eq!(recovered.entries.len(), 2);
}

#[test]
fn raft_storage_corruption_before_the_tail_is_an_error() {
    let disk = Arc::new(MemDisk::default());
    let (mut storage, _) = open(&disk, true).unwrap();
    storage.persist_ready(&ready_with(None, (1..=3).map(|i| entry(i, 1, "payload")).collect())).unwrap();
    drop(storage);
    let log = dir().join(LOG_FILE);
    let mut bytes = disk.bytes(&log);
    bytes[32 + 8 + 3] ^= 0x01; // inside the first record's payload
    disk.set_bytes(&log, bytes);
    match open(&disk, true) {
        Err(StorageError::Corrupt { offset, .. }) => assert_eq!(offset, 32),
        other => panic!("expected Corrupt, got {:?}", other.map(|(_, r)| r)),
    }
}

#[test]
fn raft_storage_rejects_unknown_versions() {
    let disk = Arc::new(MemDisk::default());
    drop(open(&disk, true).unwrap());
    let log = dir().join(LOG_FILE);
    let mut bytes = disk.bytes(&log);
    bytes[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..28]);
    bytes[28..32].copy_from_slice(&crc.to_le_bytes());
    disk.set_bytes(&log, bytes);
    assert!(matches!(open(&disk, true), Err(StorageError::UnsupportedVersion { version, .. }) if version == FORMAT_VERSION + 1));
}

#[test]
fn raft_storage_fsync_knob_decides_what_survives_a_crash() {
    for fsync in [true, false] {
        let disk = Arc::new(MemDisk::default());
        let (mut storage, _) = open(&disk, fsync).unwrap();
        let hs = HardState { term: 5, voted_for: Some(2) };
        storage.persist_ready(&ready_with(Some(hs), vec![entry(1, 5, "acked")])).unwrap();
        // persist_ready returned: a driver now sends the vote and the ack.
        disk.crash();
        match open(&disk, true) {
            Ok((_, recovered)) if fsync => {
                assert_eq!(recovered.hard_state, hs);
                assert_eq!(recovered.entries, vec![entry(1, 5, "acked")]);
            }
            Ok((_, recovered)) => {
                // The promise made to peers is gone.
                assert_ne!(recovered.hard_state, hs, "fsync=false keeps the vote only by luck");
                assert!(recovered.entries.is_empty(), "fsync=false loses the acknowledged entry");
            }
            Err(error) => {
                assert!(!fsync, "fsync=true must recover: {error}");
                // Without syncs even the renamed-into-place files can be
                // empty: recovery refuses them instead of guessing.
                assert!(matches!(error, StorageError::Corrupt { .. }), "{error}");
            }
        }
    }
}

// ----- format fixtures -------------------------------------------------------------------

fn fixture_dir(version: u16) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/raft/v{version}"))
}

fn fixture_snapshot() -> Snapshot {
    Snapshot { meta: SnapshotMeta { last_index: 2, last_term: 1 }, data: b"metadata image at 2".to_vec() }
}

fn fixture_hard_state() -> HardState {
    HardState { term: 3, voted_for: Some(2) }
}

fn fixture_entries() -> Vec<Entry> {
    vec![
        entry(3, 2, "create topic orders"),
        Entry { term: 3, index: 4, kind: EntryKind::Noop, data: Vec::new() },
        entry(5, 3, "register broker 7"),
    ]
}

/// Writes the fixture content through the storage API into `dir`.
fn write_fixture(dir: &Path) {
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let (mut storage, _) = RaftStorage::open(disk, dir, StorageOptions::default()).unwrap();
    storage
        .persist_ready(&ready_with(None, vec![entry(1, 1, "a"), entry(2, 1, "b")]))
        .unwrap();
    storage
        .persist_ready(&Ready {
            snapshot: Some(fixture_snapshot()),
            hard_state: Some(fixture_hard_state()),
            entries: fixture_entries(),
            ..Ready::default()
        })
        .unwrap();
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dlog-raft-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn raft_storage_reads_v1_fixture_and_writes_identical_bytes() {
    let fixture = fixture_dir(1);
    if std::env::var_os("DLOG_WRITE_RAFT_FIXTURES").is_some() {
        let _ = std::fs::remove_dir_all(&fixture);
        std::fs::create_dir_all(&fixture).unwrap();
        write_fixture(&fixture);
    }
    // Recover from a copy (recovery may repair files in place).
    let copy = temp_dir("fixture-v1");
    for name in ["hard_state", "log", "snapshot"] {
        std::fs::copy(fixture.join(name), copy.join(name)).unwrap();
    }
    let disk: Arc<dyn Disk> = Arc::new(RealDisk);
    let (_, recovered) = RaftStorage::open(disk, &copy, StorageOptions::default()).unwrap();
    assert_eq!(recovered.hard_state, fixture_hard_state());
    assert_eq!(recovered.snapshot, Some(fixture_snapshot()));
    assert_eq!(recovered.entries, fixture_entries());
    // Today's writer produces the same bytes: the format did not drift.
    let fresh = temp_dir("fixture-v1-fresh");
    write_fixture(&fresh);
    for name in ["hard_state", "log", "snapshot"] {
        assert_eq!(
            std::fs::read(fresh.join(name)).unwrap(),
            std::fs::read(fixture.join(name)).unwrap(),
            "{name} bytes changed: bump FORMAT_VERSION and add a new fixture"
        );
    }
    let _ = std::fs::remove_dir_all(&copy);
    let _ = std::fs::remove_dir_all(&fresh);
}

// ----- power loss in the middle of persisting ------------------------------------

use proptest::prelude::*;

/// What storage should hold: the content of completed `persist_ready`s.
#[derive(Debug, Clone, Default, PartialEq)]
struct Model {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Model {
    fn from_recovered(r: &broker::raft::RecoveredState) -> Self {
        Self { hard_state: r.hard_state, snapshot: r.snapshot.clone(), entries: r.entries.clone() }
    }
    fn last(&self) -> (u64, u64) {
        match self.entries.last() {
            Some(e) => (e.index, e.term),
            None => self.snapshot.as_ref().map_or((0, 0), |s| (s.meta.last_index, s.meta.last_term)),
        }
    }
    fn apply_snapshot(&mut self, ready: &Ready) {
        if let Some(snapshot) = &ready.snapshot {
            if ready.restore_snapshot {
                self.entries.clear();
            } else {
                self.entries.retain(|e| e.index > snapshot.meta.last_index);
            }
            self.snapshot = Some(snapshot.clone());
        }
    }
    fn apply_hard_state(&mut self, ready: &Ready) {
        if let Some(hs) = ready.hard_state {
            self.hard_state = hs;
        }
    }
    /// Entries step, cut after `keep` of the new entries.
    fn apply_entries(&mut self, ready: &Ready, keep: usize) {
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().take(keep).cloned());
        }
    }
    /// Every state a crash during `persist_ready(ready)` may leave.
    fn crash_outcomes(&self, ready: &Ready) -> Vec<Model> {
        let mut outcomes = vec![self.clone()];
        let mut state = self.clone();
        state.apply_snapshot(ready);
        outcomes.push(state.clone());
        state.apply_hard_state(ready);
        outcomes.push(state.clone());
        for keep in 0..=ready.entries.len() {
            let mut cut = state.clone();
            cut.apply_entries(ready, keep);
            outcomes.push(cut);
        }
        outcomes
    }
}

#[derive(Debug, Clone)]
struct Step {
    vote: bool,
    compact: bool,
    restore: bool,
    truncate: u8,
    new_entries: u8,
    new_term: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (any::<bool>(), prop::bool::weighted(0.2), prop::bool::weighted(0.1), 0u8..3, 0u8..4, any::<bool>()).prop_map(
        |(vote, compact, restore, truncate, new_entries, new_term)| Step {
            vote,
            compact,
            restore,
            truncate,
            new_entries,
            new_term,
        },
    )
}

/// A Ready a node could produce from this durable state.
fn ready_for(model: &Model, step: &Step) -> Ready {
    let mut ready = Ready::default();
    let mut term = model.hard_state.term;
    if step.vote || step.new_term {
        term += 1;
        ready.hard_state = Some(HardState { term, voted_for: step.vote.then_some(2) });
    }
    let (mut last_index, mut last_term) = model.last();
    let base = model.snapshot.as_ref().map_or(0, |s| s.meta.last_index);
    if step.restore {
        let meta = SnapshotMeta { last_index: last_index + 3, last_term: term.max(1) };
        ready.snapshot = Some(Snapshot { meta, data: format!("leader state {}", meta.last_index).into_bytes() });
        ready.restore_snapshot = true;
        (last_index, last_term) = (meta.last_index, meta.last_term);
    } else if step.compact && last_index > base {
        let index = base + 1 + (last_index - base) / 2;
        let term_at = model.entries.iter().find(|e| e.index == index).map_or(0, |e| e.term);
        let meta = SnapshotMeta { last_index: index, last_term: term_at };
        ready.snapshot = Some(Snapshot { meta, data: format!("state {index}").into_bytes() });
    }
    let floor = ready.snapshot.as_ref().map_or(base, |s| s.meta.last_index);
    let first = (last_index + 1).saturating_sub(u64::from(step.truncate)).max(floor + 1);
    let entry_term = term.max(last_term).max(1);
    ready.entries = (0..u64::from(step.new_entries))
        .map(|i| Entry { term: entry_term, index: first + i, kind: EntryKind::Normal, data: vec![i as u8; 20] })
        .collect();
    ready
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// Power fails at a random disk operation inside `persist_ready`, maybe
    /// tearing the last write. Recovery must succeed and yield the state of
    /// the completed Readies plus some prefix of the interrupted one's steps
    /// (snapshot, hard state, entries); nothing acknowledged is lost.
    #[test]
    fn raft_storage_survives_power_loss_mid_persist(
        steps in prop::collection::vec((step(), prop::option::weighted(0.3, 0u64..12), 0usize..64), 1..25),
    ) {
        let disk = Arc::new(MemDisk::default());
        let (mut storage, recovered) = open(&disk, true).unwrap();
        let mut model = Model::from_recovered(&recovered);
        for (step, power_fails_after, torn_bytes) in steps {
            let ready = ready_for(&model, &step);
            match power_fails_after {
                None => {
                    storage.persist_ready(&ready).unwrap();
                    model.apply_snapshot(&ready);
                    model.apply_hard_state(&ready);
                    model.apply_entries(&ready, ready.entries.len());
                }
                Some(ops) => {
                    disk.fail_power_after(ops);
                    let completed = storage.persist_ready(&ready).is_ok();
                    disk.crash_keeping_tail(torn_bytes);
                    let (reopened, recovered) = open(&disk, true).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    let got = Model::from_recovered(&recovered);
                    if completed {
                        let mut after = model.clone();
                        after.apply_snapshot(&ready);
                        after.apply_hard_state(&ready);
                        after.apply_entries(&ready, ready.entries.len());
                        prop_assert_eq!(&got, &after, "a completed persist_ready must survive");
                    } else {
                        prop_assert!(
                            model.crash_outcomes(&ready).contains(&got),
                            "recovered {:?}\nnot a crash outcome of {:?}\nfrom {:?}", got, ready, model
                        );
                    }
                    storage = reopened;
                    model = got;
                }
            }
        }
    }
}
