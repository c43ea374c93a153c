//! Unit tests of the producer-state rules, one rule each. The property
//! tests against a model are in `broker/tests/producer_state.rs`.

use super::*;

fn batch(pid: ProducerId, epoch: ProducerEpoch, first_seq: i32, count: i32, base_offset: i64) -> ProducerBatch {
    ProducerBatch {
        producer_id: pid,
        producer_epoch: epoch,
        first_seq,
        last_seq: last_sequence(first_seq, count - 1),
        base_offset,
        last_offset: base_offset + i64::from(count) - 1,
        max_timestamp_ms: 1_000,
        transactional: false,
    }
}

fn check(state: &ProducerStateManager, b: &ProducerBatch) -> Result<AppendCheck, ProducerStateError> {
    state.check_append(b.producer_id, b.producer_epoch, b.first_seq, b.last_seq, b.transactional)
}

fn append(state: &mut ProducerStateManager, b: &ProducerBatch) {
    assert_eq!(check(state, b), Ok(AppendCheck::Append));
    state.record_append(b);
}

#[test]
fn in_order_batches_append_and_retries_of_the_last_five_are_duplicates() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    let batches: Vec<_> = (0..7).map(|i| batch(7, 0, i * 3, 3, 100 + i64::from(i) * 10)).collect();
    for b in &batches {
        append(&mut state, b);
    }
    for b in &batches[2..] {
        assert_eq!(check(&state, b), Ok(AppendCheck::Duplicate { base_offset: b.base_offset, last_offset: b.last_offset }));
    }
    // Older than the last five: no longer known, and out of order.
    assert!(matches!(check(&state, &batches[1]), Err(ProducerStateError::OutOfOrderSequence { expected_seq: 21, .. })));
    assert_eq!(state.entry(7).unwrap().batches().count(), BATCHES_RETAINED);
}

#[test]
fn a_gap_is_out_of_order() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &batch(1, 0, 0, 2, 0));
    assert_eq!(
        check(&state, &batch(1, 0, 3, 1, 5)),
        Err(ProducerStateError::OutOfOrderSequence { producer_id: 1, epoch: 0, first_seq: 3, expected_seq: 2 })
    );
    // The same first sequence with another length is not the retried batch.
    assert!(matches!(check(&state, &batch(1, 0, 0, 1, 5)), Err(ProducerStateError::OutOfOrderSequence { .. })));
}

#[test]
fn an_unknown_producer_must_start_at_sequence_zero() {
    let state = ProducerStateManager::new(ProducerStateConfig::default());
    assert_eq!(check(&state, &batch(4, 0, 0, 1, 0)), Ok(AppendCheck::Append));
    assert_eq!(check(&state, &batch(4, 0, 5, 1, 0)), Err(ProducerStateError::UnknownProducerId { producer_id: 4, first_seq: 5 }));
}

#[test]
fn epochs_fence_older_ones_and_a_new_epoch_starts_at_zero() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &batch(2, 3, 0, 1, 0));
    assert_eq!(
        check(&state, &batch(2, 2, 1, 1, 1)),
        Err(ProducerStateError::InvalidProducerEpoch { producer_id: 2, epoch: 2, current_epoch: 3 })
    );
    assert!(matches!(check(&state, &batch(2, 4, 1, 1, 1)), Err(ProducerStateError::OutOfOrderSequence { expected_seq: 0, .. })));
    append(&mut state, &batch(2, 4, 0, 1, 1));
    // The old epoch's batch is no duplicate any more: that epoch is fenced.
    assert!(matches!(check(&state, &batch(2, 3, 0, 1, 0)), Err(ProducerStateError::InvalidProducerEpoch { .. })));
}

#[test]
fn sequences_wrap_after_i32_max() {
    assert_eq!(next_sequence(i32::MAX), 0);
    assert_eq!(last_sequence(i32::MAX - 1, 3), 1);
    assert_eq!(last_sequence(i32::MAX, 0), i32::MAX);
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    let mut seed = batch(9, 0, 0, 1, 0);
    seed.first_seq = 0;
    state.apply_replicated(&ProducerBatch { first_seq: i32::MAX - 4, last_seq: i32::MAX - 2, base_offset: 0, last_offset: 2, ..seed });
    let wrapping = ProducerBatch { first_seq: i32::MAX - 1, last_seq: 1, base_offset: 3, last_offset: 6, ..seed };
    append(&mut state, &wrapping);
    assert_eq!(check(&state, &batch(9, 0, 2, 1, 7)), Ok(AppendCheck::Append));
    assert_eq!(check(&state, &wrapping), Ok(AppendCheck::Duplicate { base_offset: 3, last_offset: 6 }));
}

#[test]
fn negative_epochs_or_sequences_are_invalid() {
    let state = ProducerStateManager::new(ProducerStateConfig::default());
    assert!(matches!(state.check_append(1, -1, 0, 0, false), Err(ProducerStateError::InvalidBatch(_))));
    assert!(matches!(state.check_append(1, 0, -1, 0, false), Err(ProducerStateError::InvalidBatch(_))));
}

#[test]
fn idle_producers_expire_by_their_last_timestamp() {
    let config = ProducerStateConfig { producer_id_expiration_ms: 100, expiration_check_interval_ms: 0 };
    let mut state = ProducerStateManager::new(config);
    append(&mut state, &ProducerBatch { max_timestamp_ms: 50, ..batch(1, 0, 0, 1, 0) });
    append(&mut state, &ProducerBatch { max_timestamp_ms: 120, ..batch(2, 0, 0, 1, 1) });
    assert_eq!(state.tick(149), 0);
    assert_eq!(state.tick(150), 1);
    assert!(state.entry(1).is_none() && state.entry(2).is_some());
    // Expired: a retry of its sequence 1 is now an unknown producer.
    assert!(matches!(state.check_append(1, 0, 1, 1, false), Err(ProducerStateError::UnknownProducerId { .. })));
}

#[test]
fn the_check_interval_bounds_how_often_tick_scans() {
    let config = ProducerStateConfig { producer_id_expiration_ms: 10, expiration_check_interval_ms: 1_000 };
    let mut state = ProducerStateManager::new(config);
    append(&mut state, &ProducerBatch { max_timestamp_ms: 0, ..batch(1, 0, 0, 1, 0) });
    assert_eq!(state.tick(5), 0);
    assert_eq!(state.tick(500), 0, "next scan at 1005");
    assert_eq!(state.tick(1_005), 1);
}

#[test]
fn truncate_head_forgets_batches_below_the_log_start() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &batch(1, 0, 0, 2, 0));
    append(&mut state, &batch(2, 0, 0, 2, 2));
    append(&mut state, &batch(1, 0, 2, 2, 4));
    state.truncate_head(4);
    assert!(state.entry(2).is_none());
    assert_eq!(state.entry(1).unwrap().batches().count(), 1);
    assert_eq!(check(&state, &batch(1, 0, 4, 1, 6)), Ok(AppendCheck::Append));
}

#[test]
fn rebuild_skips_control_and_plain_batches() {
    let header = |pid: i64, attributes: i16, base_offset: i64| BatchHeader {
        base_offset,
        batch_length: 100,
        partition_leader_epoch: 0,
        magic: 2,
        crc: 0,
        attributes,
        last_offset_delta: 0,
        base_timestamp: 0,
        max_timestamp: 0,
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: if pid < 0 { -1 } else { 0 },
        records_count: 1,
    };
    let headers = [header(-1, 0, 0), header(5, 1 << 5, 1), header(6, 0, 2)];
    // A control batch whose marker did not decode is skipped too.
    let logged: Vec<LoggedBatch> = headers.iter().map(|&header| LoggedBatch { header, marker: None }).collect();
    let state = ProducerStateManager::rebuild(ProducerStateConfig::default(), logged.iter(), 0);
    assert_eq!(state.producers().keys().copied().collect::<Vec<_>>(), vec![6]);
}

fn txn_batch(pid: ProducerId, epoch: ProducerEpoch, first_seq: i32, count: i32, base_offset: i64) -> ProducerBatch {
    ProducerBatch { transactional: true, ..batch(pid, epoch, first_seq, count, base_offset) }
}

fn marker(pid: ProducerId, epoch: ProducerEpoch, commit: bool, coordinator_epoch: i32, offset: i64) -> TxnMarker {
    TxnMarker { producer_id: pid, producer_epoch: epoch, commit, coordinator_epoch, offset, timestamp_ms: 1_000 }
}

fn end(state: &mut ProducerStateManager, m: &TxnMarker) -> Option<CompletedTxn> {
    assert_eq!(state.check_marker(m.producer_id, m.producer_epoch, m.coordinator_epoch), Ok(()));
    state.record_marker(m)
}

#[test]
fn a_transaction_holds_the_last_stable_offset_until_its_marker() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &batch(1, 0, 0, 2, 0));
    assert_eq!(state.last_stable_offset(2), 2);
    append(&mut state, &txn_batch(2, 0, 0, 2, 2));
    append(&mut state, &txn_batch(3, 0, 0, 1, 4));
    append(&mut state, &txn_batch(2, 0, 2, 1, 5));
    assert_eq!(state.first_unstable_offset(), Some(2));
    assert_eq!(state.last_stable_offset(6), 2);
    assert_eq!(state.last_stable_offset(1), 1, "never above the high watermark");
    // Commit of 2: the transaction of 3 (from 4) now holds it.
    assert_eq!(end(&mut state, &marker(2, 0, true, 0, 6)), Some(CompletedTxn { producer_id: 2, first_offset: 2, last_offset: 6, commit: true }));
    assert_eq!(state.last_stable_offset(7), 4);
    assert_eq!(state.aborted().count(), 0);
    // Abort of 3: nothing open, the last stable offset is the marker's + 1.
    assert_eq!(end(&mut state, &marker(3, 0, false, 0, 7)).map(|t| t.commit), Some(false));
    assert_eq!(state.last_stable_offset(8), 8);
    assert_eq!(state.aborted().copied().collect::<Vec<_>>(), vec![AbortedTxn { producer_id: 3, first_offset: 4, last_offset: 7, last_stable_offset: 8 }]);
    // A marker without an open transaction ends nothing.
    assert_eq!(end(&mut state, &marker(3, 0, false, 0, 8)), None);
    assert_eq!(state.aborted().count(), 1);
}

#[test]
fn an_aborts_last_stable_offset_is_the_next_open_transaction() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &txn_batch(1, 0, 0, 1, 0));
    append(&mut state, &txn_batch(2, 0, 0, 1, 1));
    end(&mut state, &marker(1, 0, false, 0, 2));
    assert_eq!(state.aborted().next().unwrap().last_stable_offset, 1);
    assert_eq!(state.aborted_overlapping(0, 3).len(), 1);
    assert_eq!(state.aborted_overlapping(3, 10).len(), 0, "ended before the fetch offset");
    assert_eq!(state.aborted_overlapping(2, 10).len(), 1, "the marker itself is in range");
    assert_eq!(state.aborted_overlapping(0, 0).len(), 0, "starts at or after the data returned");
}

#[test]
fn markers_are_fenced_by_producer_and_coordinator_epochs() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &txn_batch(1, 2, 0, 1, 0));
    assert_eq!(state.check_marker(1, 1, 0), Err(ProducerStateError::InvalidProducerEpoch { producer_id: 1, epoch: 1, current_epoch: 2 }));
    end(&mut state, &marker(1, 2, true, 5, 1));
    assert_eq!(
        state.check_marker(1, 2, 4),
        Err(ProducerStateError::TransactionCoordinatorFenced { producer_id: 1, coordinator_epoch: 4, current_coordinator_epoch: 5 })
    );
    assert_eq!(state.check_marker(1, 2, 5), Ok(()));
    assert_eq!(state.check_marker(7, 0, 0), Ok(()), "an unknown producer's marker is fine");
    assert!(matches!(state.check_marker(-1, 0, 0), Err(ProducerStateError::InvalidBatch(_))));
}

#[test]
fn a_plain_batch_inside_a_transaction_is_invalid_and_a_marker_of_a_new_epoch_resets_sequences() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &txn_batch(1, 0, 0, 2, 0));
    assert_eq!(check(&state, &batch(1, 0, 2, 1, 2)), Err(ProducerStateError::InvalidTxnState { producer_id: 1, first_offset: 0 }));
    // A retry of the transactional batch is still a duplicate.
    assert_eq!(check(&state, &txn_batch(1, 0, 0, 2, 2)), Ok(AppendCheck::Duplicate { base_offset: 0, last_offset: 1 }));
    // The coordinator aborts with a bumped epoch: sequences restart at 0.
    end(&mut state, &marker(1, 1, false, 0, 2));
    assert_eq!(state.entry(1).unwrap().epoch, 1);
    assert!(matches!(check(&state, &batch(1, 1, 2, 1, 3)), Err(ProducerStateError::OutOfOrderSequence { expected_seq: 0, .. })));
    append(&mut state, &batch(1, 1, 0, 1, 3));
}

#[test]
fn an_epoch_bump_keeps_the_open_transaction() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &txn_batch(1, 0, 0, 1, 0));
    append(&mut state, &txn_batch(1, 1, 0, 1, 1));
    assert_eq!(state.first_unstable_offset(), Some(0));
    end(&mut state, &marker(1, 1, true, 0, 2));
    assert_eq!(state.first_unstable_offset(), None);
}

#[test]
fn a_producer_in_a_transaction_does_not_expire() {
    let config = ProducerStateConfig { producer_id_expiration_ms: 100, expiration_check_interval_ms: 0 };
    let mut state = ProducerStateManager::new(config);
    append(&mut state, &ProducerBatch { max_timestamp_ms: 0, ..txn_batch(1, 0, 0, 1, 0) });
    assert_eq!(state.tick(10_000), 0);
    state.record_marker(&TxnMarker { timestamp_ms: 10_000, ..marker(1, 0, false, 3, 1) });
    assert_eq!(state.tick(10_099), 0);
    assert_eq!(state.tick(10_100), 1);
}

#[test]
fn truncate_head_drops_aborts_and_coordinator_epochs_below_the_log_start() {
    let mut state = ProducerStateManager::new(ProducerStateConfig::default());
    append(&mut state, &txn_batch(1, 0, 0, 1, 0));
    end(&mut state, &marker(1, 0, false, 4, 1));
    append(&mut state, &batch(1, 0, 1, 1, 2));
    state.truncate_head(2);
    assert_eq!(state.aborted().count(), 0);
    assert_eq!(state.entry(1).unwrap().coordinator_epoch, NO_COORDINATOR_EPOCH);
    state.truncate_head(3);
    assert!(state.entry(1).is_none());
}
