//! Unit tests of the epoch cache, fencing and single-partition leader rules.

use std::collections::BTreeSet;

use super::*;

fn cache(entries: &[(LeaderEpoch, Offset)]) -> LeaderEpochCache {
    let entries = entries.iter().map(|&(epoch, start_offset)| EpochEntry { epoch, start_offset }).collect();
    LeaderEpochCache::from_entries(entries).expect("monotonic")
}

fn eo(epoch: LeaderEpoch, end_offset: Offset) -> EpochEndOffset {
    EpochEndOffset { epoch, end_offset }
}

#[test]
fn end_offset_for_follows_kafka() {
    let c = cache(&[(1, 0), (3, 10), (5, 20)]);
    // Latest epoch: still being written, ends at the log end.
    assert_eq!(c.end_offset_for(5, 27), eo(5, 27));
    // Known epoch: ends where the next starts.
    assert_eq!(c.end_offset_for(1, 27), eo(1, 10));
    assert_eq!(c.end_offset_for(3, 27), eo(3, 20));
    // Unknown epoch between known ones: the largest epoch below it, and the
    // start of the next one.
    assert_eq!(c.end_offset_for(2, 27), eo(1, 10));
    assert_eq!(c.end_offset_for(4, 27), eo(3, 20));
    // Older than everything: the requested epoch and the first start.
    assert_eq!(c.end_offset_for(0, 27), eo(0, 0));
    // Newer than everything, or undefined: undefined.
    assert_eq!(c.end_offset_for(6, 27), EpochEndOffset::UNDEFINED);
    assert_eq!(c.end_offset_for(UNDEFINED_EPOCH, 27), EpochEndOffset::UNDEFINED);
    assert_eq!(LeaderEpochCache::new().end_offset_for(0, 0), EpochEndOffset::UNDEFINED);
}

#[test]
fn assign_and_truncate() {
    let mut c = LeaderEpochCache::new();
    c.assign(1, 0);
    c.assign(1, 5); // same epoch, later start: no-op
    c.assign(2, 5);
    c.assign(4, 9);
    assert_eq!(c, cache(&[(1, 0), (2, 5), (4, 9)]));
    // A start before existing ones drops them (they were truncated away).
    c.assign(5, 6);
    assert_eq!(c, cache(&[(1, 0), (2, 5), (5, 6)]));
    c.truncate_from_end(6);
    assert_eq!(c, cache(&[(1, 0), (2, 5)]));
    c.truncate_from_end(100);
    assert_eq!(c, cache(&[(1, 0), (2, 5)]));
    c.truncate_from_start(3);
    assert_eq!(c, cache(&[(1, 3), (2, 5)]));
    c.truncate_from_start(5);
    assert_eq!(c, cache(&[(2, 5)]));
    c.truncate_from_start(7);
    assert_eq!(c, cache(&[(2, 7)]));
    assert!(LeaderEpochCache::from_entries(vec![EpochEntry { epoch: 2, start_offset: 0 }, EpochEntry { epoch: 1, start_offset: 3 }]).is_none());
}

#[test]
fn fencing() {
    assert_eq!(check_leader_epoch(Some(3), Some(3)), Ok(()));
    assert_eq!(check_leader_epoch(Some(3), None), Ok(()));
    assert_eq!(check_leader_epoch(Some(3), Some(2)), Err(ReplicationError::FencedLeaderEpoch { request: 2, current: 3 }));
    assert_eq!(check_leader_epoch(Some(3), Some(4)), Err(ReplicationError::UnknownLeaderEpoch { request: 4, current: 3 }));
    assert_eq!(check_leader_epoch(None, Some(4)), Err(ReplicationError::NotLeaderOrFollower));
}

fn set(ids: &[ReplicaId]) -> BTreeSet<ReplicaId> {
    ids.iter().copied().collect()
}

fn leader(config: ReplicationConfig, isr: &[ReplicaId]) -> LeaderState {
    let metadata = PartitionMetadata { leader: Some(1), leader_epoch: 0, partition_epoch: 0, isr: set(isr) };
    LeaderState::new(config, 1, set(&[1, 2, 3]), &metadata, LocalLog::empty(), 0)
}

fn fetch(replica_id: ReplicaId, fetch_offset: Offset) -> FollowerFetch {
    FollowerFetch { replica_id, fetch_offset, last_fetched_epoch: Some(0), current_leader_epoch: Some(0) }
}

#[test]
fn high_watermark_waits_for_the_whole_isr_and_completes_produce() {
    let mut l = leader(ReplicationConfig::default(), &[1, 2, 3]);
    l.on_local_append(2);
    l.check_enough_replicas(2).unwrap();
    l.try_append_acks_all(7, 2, 2, 1_000).unwrap();
    assert_eq!(l.high_watermark(), 0);
    l.on_follower_fetch(&fetch(2, 2), 10).unwrap();
    assert_eq!(l.high_watermark(), 0, "replica 3 has not fetched");
    l.on_follower_fetch(&fetch(3, 1), 10).unwrap();
    assert_eq!(l.high_watermark(), 1);
    l.on_follower_fetch(&fetch(3, 2), 20).unwrap();
    assert_eq!(l.high_watermark(), 2);
    let effects = l.drain_effects();
    assert!(effects.contains(&LeaderEffect::CompleteProduce { request_id: 7, result: Ok(()) }), "{effects:?}");
    assert_eq!(l.delayed_produce_len(), 0);
}

#[test]
fn lagging_follower_is_shrunk_then_expanded() {
    let config = ReplicationConfig { replica_lag_time_max_ms: 100, ..ReplicationConfig::default() };
    let mut l = leader(config, &[1, 2, 3]);
    l.on_local_append(5);
    l.on_follower_fetch(&fetch(2, 5), 10).unwrap();
    l.tick(100);
    assert!(l.drain_effects().iter().all(|e| !matches!(e, LeaderEffect::ProposeIsr { .. })));
    l.tick(101);
    let effects = l.drain_effects();
    assert!(effects.contains(&LeaderEffect::ProposeIsr { new_isr: set(&[1, 2]), partition_epoch: 0 }), "{effects:?}");
    // Pending shrink: the HW still waits for replica 3.
    assert_eq!(l.high_watermark(), 0);
    l.on_isr_committed(set(&[1, 2]), 1);
    assert_eq!(l.high_watermark(), 5);
    l.on_follower_fetch(&fetch(3, 5), 200).unwrap();
    let effects = l.drain_effects();
    assert!(effects.contains(&LeaderEffect::ProposeIsr { new_isr: set(&[1, 2, 3]), partition_epoch: 1 }), "{effects:?}");
}

#[test]
fn produce_times_out_fails_on_resign_and_is_bounded() {
    let config = ReplicationConfig { delayed_produce_max: 2, ..ReplicationConfig::default() };
    let mut l = leader(config, &[1, 2]);
    l.on_local_append(3);
    l.try_append_acks_all(1, 1, 1, 50).unwrap();
    l.try_append_acks_all(2, 3, 1, 500).unwrap();
    assert_eq!(l.try_append_acks_all(3, 3, 1, 500), Err(ReplicationError::DelayedProduceQueueFull { max: 2 }));
    l.tick(50);
    assert_eq!(
        l.drain_effects(),
        vec![LeaderEffect::CompleteProduce { request_id: 1, result: Err(ReplicationError::RequestTimedOut) }]
    );
    let (_, effects) = l.resign();
    assert_eq!(
        effects,
        vec![LeaderEffect::CompleteProduce { request_id: 2, result: Err(ReplicationError::NotLeaderOrFollower) }]
    );
}

#[test]
fn not_enough_replicas_before_and_after_append() {
    let mut l = leader(ReplicationConfig::default(), &[1]);
    assert_eq!(l.check_enough_replicas(2), Err(ReplicationError::NotEnoughReplicas { isr_size: 1, min_insync_replicas: 2 }));
    l.on_local_append(1);
    l.try_append_acks_all(9, 1, 2, 100).unwrap();
    assert_eq!(
        l.drain_effects().last(),
        Some(&LeaderEffect::CompleteProduce {
            request_id: 9,
            result: Err(ReplicationError::NotEnoughReplicasAfterAppend { isr_size: 1, min_insync_replicas: 2 })
        })
    );
}

#[test]
fn follower_truncates_across_epochs_like_kafka() {
    // Leader epochs: 0@0, 1@3, 3@8, log end 10. Follower: 0@0, 2@5, log end 9.
    let mut local = LocalLog::empty();
    local.append(BatchInfo { base_offset: 0, last_offset: 4, leader_epoch: 0 });
    local.append(BatchInfo { base_offset: 5, last_offset: 8, leader_epoch: 2 });
    let (mut f, truncated) = FollowerState::new(ReplicationConfig::default(), 2, 1, 3, local);
    assert_eq!(truncated, None, "KIP-101: no truncation on becoming follower");
    let request = f.fetch_request();
    assert_eq!((request.fetch_offset, request.last_fetched_epoch), (9, Some(2)));
    let leader_cache = cache(&[(0, 0), (1, 3), (3, 8)]);
    let answer = leader_cache.end_offset_for(2, 10);
    assert_eq!(answer, eo(1, 8));
    let response = |fetch_offset, diverging| FetchResponse {
        leader_epoch: 3,
        fetch_offset,
        high_watermark: 0,
        diverging_epoch: Some(diverging),
        batches: vec![],
    };
    // We never had epoch 1: cut at the end of our epoch 0 (5), not at 8.
    assert_eq!(f.on_fetch_response(&response(9, answer)), FollowerDecision::TruncateTo { offset: 5 });
    let request = f.fetch_request();
    assert_eq!((request.fetch_offset, request.last_fetched_epoch), (5, Some(0)));
    let answer = leader_cache.end_offset_for(0, 10);
    assert_eq!(f.on_fetch_response(&response(5, answer)), FollowerDecision::TruncateTo { offset: 3 });
    // A duplicate of the first answer is stale now.
    assert_eq!(f.on_fetch_response(&response(9, eo(1, 8))), FollowerDecision::Ignore);
}

#[test]
fn last_caught_up_time_follows_kafka_update_fetch_state() {
    let mut l = leader(ReplicationConfig::default(), &[1, 2, 3]);
    l.on_local_append(5);
    l.on_follower_fetch(&fetch(2, 3), 10).unwrap();
    assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, 0, "behind the log end, no earlier fetch");
    l.on_local_append(8);
    // Reached the leader's log end as of the previous fetch (5): caught up
    // at that previous fetch's time, not now.
    l.on_follower_fetch(&fetch(2, 5), 20).unwrap();
    assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, 10);
    l.on_follower_fetch(&fetch(2, 8), 30).unwrap();
    assert_eq!(l.follower(2).unwrap().last_caught_up_time_ms, 30);
}

#[test]
fn fetches_are_fenced_and_diverging_fetches_acknowledge_nothing() {
    let mut l = leader(ReplicationConfig::default(), &[1, 2, 3]);
    l.on_local_append(4);
    let stale = FollowerFetch { current_leader_epoch: Some(-1), ..fetch(2, 4) };
    assert!(matches!(l.on_follower_fetch(&stale, 1), Err(ReplicationError::FencedLeaderEpoch { .. })));
    let future = FollowerFetch { current_leader_epoch: Some(1), ..fetch(2, 4) };
    assert!(matches!(l.on_follower_fetch(&future, 1), Err(ReplicationError::UnknownLeaderEpoch { .. })));
    assert!(matches!(l.on_follower_fetch(&fetch(7, 0), 1), Err(ReplicationError::UnknownReplica(7))));
    // Past the leader's log end in the leader's own epoch: diverging.
    let answer = l.on_follower_fetch(&fetch(2, 6), 1).unwrap();
    assert_eq!(answer, FetchAnswer::Diverging { diverging_epoch: eo(0, 4), high_watermark: 0 });
    assert_eq!(l.follower(2).unwrap().log_end_offset, None);
}
