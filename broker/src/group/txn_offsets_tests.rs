//! Transactional offsets in the core: pending until their producer's
//! marker, then committed or dropped; a reload from the records and
//! markers rebuilds the same state; and the commit's checks.

use bytes::Bytes;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::records::OffsetsRecord;
use super::*;

const GROUP: &str = "g";
const PRODUCER: i64 = 7;

fn coordinator() -> GroupCoordinator {
    let mut c = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() }, 4, ChaCha8Rng::seed_from_u64(7));
    for p in 0..4 {
        c.begin_load(p);
        c.finish_load(p, 0);
    }
    c
}

fn offset(offset: i64) -> CommittedOffset {
    CommittedOffset { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 }
}

fn txn_commit(producer_id: i64, producer_epoch: i16, partition: i32, at: i64) -> TxnCommitRequest {
    TxnCommitRequest {
        transactional_id: format!("txn-{producer_id}"),
        producer_id,
        producer_epoch,
        group_id: GROUP.into(),
        generation_id: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![(("t".into(), partition), offset(at))],
    }
}

fn committed(c: &GroupCoordinator, partition: i32) -> Option<i64> {
    c.fetch_offsets(GROUP, None).expect("coordinator").get(&("t".to_string(), partition)).map(|o| o.offset)
}

/// Commits through the core: (the records to append, in order).
fn commit_txn(c: &mut GroupCoordinator, request: TxnCommitRequest) -> Vec<OffsetsRecord> {
    let plan = c.prepare_txn_commit(1, request);
    assert!(plan.results.iter().all(|(_, r)| r.is_ok()), "{:?}", plan.results);
    let records = plan.records.clone();
    c.txn_commit_appended(plan);
    records
}

#[test]
fn pending_offsets_are_invisible_until_the_commit_marker() {
    let mut c = coordinator();
    let p = c.partition_of(GROUP);
    commit_txn(&mut c, txn_commit(PRODUCER, 0, 0, 10));
    assert_eq!(committed(&c, 0), None, "pending: OffsetFetch does not see it");
    assert!(c.unstable_partitions(GROUP).contains(&("t".to_string(), 0)), "require_stable sees it pending");
    // A marker of another producer, or on another partition, changes nothing.
    c.txn_marker_written(p, PRODUCER + 1, true);
    c.txn_marker_written((p + 1) % 4, PRODUCER, true);
    assert_eq!(committed(&c, 0), None);
    assert_eq!(c.txn_marker_written(p, PRODUCER, true), vec![GROUP.to_string()]);
    assert_eq!(committed(&c, 0), Some(10), "the commit marker makes it the committed offset");
    assert!(c.unstable_partitions(GROUP).is_empty());
    assert!(c.txn_marker_written(p, PRODUCER, true).is_empty(), "a second marker finds nothing pending");
}

#[test]
fn an_abort_marker_drops_pending_offsets_and_keeps_the_committed_ones() {
    let mut c = coordinator();
    let p = c.partition_of(GROUP);
    let plain = c.prepare_commit(1, CommitRequest { group_id: GROUP.into(), generation_id: -1, member_id: String::new(), group_instance_id: None, member_epoch: false, offsets: vec![(("t".into(), 0), offset(3))] });
    c.commit_appended(plain);
    commit_txn(&mut c, txn_commit(PRODUCER, 0, 0, 10));
    commit_txn(&mut c, txn_commit(PRODUCER, 0, 1, 20));
    assert_eq!((committed(&c, 0), committed(&c, 1)), (Some(3), None), "the last committed offset stays visible");
    c.txn_marker_written(p, PRODUCER, false);
    assert_eq!((committed(&c, 0), committed(&c, 1)), (Some(3), None), "aborted offsets are dropped");
    assert!(c.pending_txn_offsets(GROUP).is_empty());
}

#[test]
fn a_plain_commit_after_the_transactions_offsets_stays_after_its_marker() {
    let plain = |c: &mut GroupCoordinator, at: i64| {
        let plan = c.prepare_commit(1, CommitRequest { group_id: GROUP.into(), generation_id: -1, member_id: String::new(), group_instance_id: None, member_epoch: false, offsets: vec![(("t".into(), 0), offset(at))] });
        let records = plan.records.clone();
        c.commit_appended(plan);
        records
    };
    let mut c = coordinator();
    let p = c.partition_of(GROUP);
    let before = plain(&mut c, 5);
    let txn = commit_txn(&mut c, txn_commit(PRODUCER, 0, 0, 10));
    let after = plain(&mut c, 20);
    c.txn_marker_written(p, PRODUCER, true);
    assert_eq!(committed(&c, 0), Some(20), "the later plain commit stays");
    // The log in the same order, replayed.
    let mut d = GroupCoordinator::new(GroupConfig::default(), 4, ChaCha8Rng::seed_from_u64(8));
    d.begin_load(p);
    before.into_iter().for_each(|r| d.load_record(p, r, 0));
    txn.into_iter().for_each(|r| d.load_txn_record(p, PRODUCER, 0, r, 0));
    after.into_iter().for_each(|r| d.load_record(p, r, 0));
    d.txn_marker_written(p, PRODUCER, true);
    d.finish_load(p, 0);
    assert_eq!(committed(&d, 0), Some(20));
    // A transaction whose offsets come after the plain commit wins.
    commit_txn(&mut c, txn_commit(PRODUCER, 0, 0, 30));
    c.txn_marker_written(p, PRODUCER, true);
    assert_eq!(committed(&c, 0), Some(30));
}

#[test]
fn two_producers_pend_apart_and_resolve_apart() {
    let mut c = coordinator();
    let p = c.partition_of(GROUP);
    commit_txn(&mut c, txn_commit(1, 0, 0, 10));
    commit_txn(&mut c, txn_commit(2, 0, 1, 20));
    c.txn_marker_written(p, 2, true);
    assert_eq!((committed(&c, 0), committed(&c, 1)), (None, Some(20)));
    assert_eq!(c.pending_txn_offsets(GROUP).keys().copied().collect::<Vec<_>>(), vec![1]);
}

#[test]
fn a_reload_from_records_and_markers_gives_the_same_offsets() {
    let mut c = coordinator();
    let p = c.partition_of(GROUP);
    // The log: txn(1) offsets, txn(2) offsets, COMMIT(1), txn(3) offsets, ABORT(2); txn 3 still open.
    enum Entry {
        Txn(i64, Vec<OffsetsRecord>),
        Marker(i64, bool),
    }
    let mut log = Vec::new();
    log.push(Entry::Txn(1, commit_txn(&mut c, txn_commit(1, 0, 0, 10))));
    log.push(Entry::Txn(2, commit_txn(&mut c, txn_commit(2, 0, 1, 20))));
    c.txn_marker_written(p, 1, true);
    log.push(Entry::Marker(1, true));
    log.push(Entry::Txn(3, commit_txn(&mut c, txn_commit(3, 0, 2, 30))));
    c.txn_marker_written(p, 2, false);
    log.push(Entry::Marker(2, false));

    let mut d = GroupCoordinator::new(GroupConfig::default(), 4, ChaCha8Rng::seed_from_u64(8));
    d.begin_load(p);
    for entry in log {
        match entry {
            Entry::Txn(producer_id, records) => records.into_iter().for_each(|r| d.load_txn_record(p, producer_id, 0, r, 0)),
            Entry::Marker(producer_id, commit) => {
                d.txn_marker_written(p, producer_id, commit);
            }
        }
    }
    d.finish_load(p, 0);
    assert_eq!(d.fetch_offsets(GROUP, None), c.fetch_offsets(GROUP, None), "the same committed offsets");
    assert_eq!(d.pending_txn_offsets(GROUP).keys().copied().collect::<Vec<_>>(), vec![3], "the open transaction is still pending");
    assert_eq!(d.pending_txn_offsets(GROUP), c.pending_txn_offsets(GROUP));
    d.txn_marker_written(p, 3, true);
    assert_eq!(committed(&d, 2), Some(30));
}

#[test]
fn the_commit_is_checked_like_kafkas() {
    let mut c = coordinator();
    // An older epoch of a producer that already committed is fenced.
    commit_txn(&mut c, txn_commit(PRODUCER, 3, 0, 10));
    let stale = c.prepare_txn_commit(2, txn_commit(PRODUCER, 2, 0, 11));
    assert_eq!(stale.results[0].1, Err(GroupError::InvalidProducerEpoch));
    assert!(stale.records.is_empty(), "nothing to append for a refusal");
    // No group id; no producer.
    assert_eq!(c.prepare_txn_commit(2, TxnCommitRequest { group_id: String::new(), ..txn_commit(PRODUCER, 3, 0, 1) }).results[0].1, Err(GroupError::InvalidGroupId));
    assert_eq!(c.prepare_txn_commit(2, txn_commit(-1, 0, 0, 1)).results[0].1, Err(GroupError::InvalidRequest));
    // v3 with a member: it must be in the group's generation.
    let Reply::Now(required) = c.join(0, 1, JoinRequest {
        group_id: GROUP.into(),
        member_id: String::new(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"sub") }],
        require_known_member_id: true,
    }) else { panic!("answered at once") };
    let member = required.member_id;
    let as_member = |generation_id: i32, member_id: &str| TxnCommitRequest { generation_id, member_id: member_id.into(), ..txn_commit(PRODUCER, 3, 0, 12) };
    assert_eq!(c.prepare_txn_commit(2, as_member(0, "nobody")).results[0].1, Err(GroupError::UnknownMemberId));
    // Without member information the commit is accepted whatever the group's state.
    assert_eq!(c.prepare_txn_commit(2, txn_commit(PRODUCER, 3, 0, 12)).results[0].1, Ok(()));
    // Not this coordinator's partition.
    let p = c.partition_of(GROUP);
    c.unload(p);
    assert_eq!(c.prepare_txn_commit(2, txn_commit(PRODUCER, 3, 0, 12)).results[0].1, Err(GroupError::NotCoordinator));
    let _ = member;
}
