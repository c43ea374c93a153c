//! Unit tests of the cluster-metadata state machine (`broker::controller`).
//! Run: `cargo test -p dlog-broker --test controller_metadata`.

use broker::controller::{
    ApplyOutcome, BrokerId, ControllerConfig, MetadataError, MetadataImage, MetadataRecord, TopicId,
};

/// Applies records at consecutive offsets, like committed Raft entries.
struct Log {
    image: MetadataImage,
    offset: u64,
    term: u64,
}

impl Log {
    fn new() -> Self {
        Self::with_config(ControllerConfig::default())
    }

    fn with_config(config: ControllerConfig) -> Self {
        Self { image: MetadataImage::new(config), offset: 0, term: 1 }
    }

    fn apply(&mut self, record: MetadataRecord) -> Result<ApplyOutcome, MetadataError> {
        self.offset += 1;
        // Records go through their Raft payload encoding, as in production.
        let decoded = MetadataRecord::decode(&record.encode()).expect("round trip");
        assert_eq!(decoded, record);
        self.image.apply(self.offset, self.term, &decoded)
    }

    fn register(&mut self, broker_id: BrokerId, incarnation_id: u64, now_ms: i64) -> Result<u64, MetadataError> {
        match self.apply(MetadataRecord::RegisterBroker {
            broker_id,
            incarnation_id,
            listener: format!("broker-{broker_id}:9092"),
            rack: None,
            now_ms,
            clean_shutdown: false,
        })? {
            ApplyOutcome::BrokerRegistered { broker_epoch } => Ok(broker_epoch),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn heartbeat(&mut self, broker_id: BrokerId, now_ms: i64) {
        self.heartbeat_acting_on(broker_id, now_ms, 0);
    }

    /// A heartbeat saying the broker has acted on metadata up to `metadata_offset`.
    fn heartbeat_acting_on(&mut self, broker_id: BrokerId, now_ms: i64, metadata_offset: u64) {
        let broker_epoch = self.image.broker(broker_id).expect("registered").broker_epoch;
        self.apply(MetadataRecord::BrokerHeartbeat { broker_id, broker_epoch, now_ms, metadata_offset }).expect("heartbeat");
    }

    /// Registers and unfences brokers 1..=n at time 0.
    fn with_brokers(n: BrokerId) -> Self {
        Self::with_brokers_and_config(n, ControllerConfig::default())
    }

    fn with_brokers_and_config(n: BrokerId, config: ControllerConfig) -> Self {
        let mut log = Self::with_config(config);
        for id in 1..=n {
            log.register(id, 100 + id as u64, 0).unwrap();
            log.heartbeat(id, 0);
        }
        log
    }

    fn create(&mut self, name: &str, partitions: u32, replication_factor: u16) -> TopicId {
        match self.apply(MetadataRecord::CreateTopic { name: name.into(), partitions, replication_factor, configs: Default::default() }) {
            Ok(ApplyOutcome::TopicCreated { topic_id }) => topic_id,
            other => panic!("create {name}: {other:?}"),
        }
    }

    /// Fences every broker whose session expired at `now_ms`, as the
    /// controller leader would.
    fn expire_sessions(&mut self, now_ms: i64) -> Vec<BrokerId> {
        let mut fenced = Vec::new();
        for record in self.image.expired_sessions(now_ms) {
            if let MetadataRecord::FenceBroker { broker_id, .. } = record {
                fenced.push(broker_id);
            }
            self.apply(record).expect("fence");
        }
        fenced
    }

    fn alter(&self, topic_id: TopicId, partition: u32, broker_id: BrokerId, new_isr: Vec<BrokerId>) -> MetadataRecord {
        let p = &self.image.topic_by_id(topic_id).unwrap().partitions[partition as usize];
        MetadataRecord::AlterPartition {
            topic_id,
            partition,
            broker_id,
            broker_epoch: self.image.broker(broker_id).unwrap().broker_epoch,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr,
        }
    }
}

#[test]
fn controller_registration_epochs_and_reregistration() {
    let mut log = Log::new();
    let epoch = log.register(1, 7, 1_000).unwrap();
    assert_eq!(epoch, 1, "the broker epoch is the registration record's offset");
    assert!(log.image.broker(1).unwrap().fenced, "registered brokers start fenced");
    log.heartbeat(1, 1_500);
    assert!(!log.image.broker(1).unwrap().fenced, "first heartbeat unfences");
    // A retry by the same process is idempotent.
    assert_eq!(log.register(1, 7, 2_000).unwrap(), epoch);
    // Another process with the same id while the first is alive: refused.
    assert_eq!(log.register(1, 8, 2_000), Err(MetadataError::DuplicateBrokerRegistration(1)));
    // After the session expired, the new process gets a new, larger epoch.
    let new_epoch = log.register(1, 8, 1_500 + 9_000).unwrap();
    assert!(new_epoch > epoch);
    // The old process's heartbeat is fenced by the epoch.
    let stale = log.apply(MetadataRecord::BrokerHeartbeat { broker_id: 1, broker_epoch: epoch, now_ms: 11_000, metadata_offset: 0 });
    assert_eq!(stale, Err(MetadataError::StaleBrokerEpoch { broker_id: 1, given: epoch, current: new_epoch }));
    assert!(log.image.broker(1).unwrap().fenced);
}

#[test]
fn controller_round_robin_assignment_over_live_brokers() {
    let mut log = Log::with_brokers(3);
    let topic_id = log.create("orders", 6, 2);
    let topic = log.image.topic_by_id(topic_id).unwrap();
    let mut leaders = [0; 4];
    for p in &topic.partitions {
        assert_eq!(p.replicas.len(), 2);
        assert_ne!(p.replicas[0], p.replicas[1]);
        assert_eq!(p.isr, p.replicas);
        assert_eq!(p.leader, Some(p.replicas[0]));
        leaders[p.leader.unwrap() as usize] += 1;
    }
    assert_eq!(&leaders[1..], &[2, 2, 2], "leadership spread evenly");
    // Fenced brokers get no new replicas; too few live brokers is an error.
    log.expire_sessions(20_000);
    log.heartbeat(1, 20_000);
    assert_eq!(
        log.apply(MetadataRecord::CreateTopic { name: "more".into(), partitions: 1, replication_factor: 2, configs: Default::default() }),
        Err(MetadataError::InvalidReplicationFactor { requested: 2, live_brokers: 1 })
    );
    let single = log.create("single", 2, 1);
    assert!(log.image.topic_by_id(single).unwrap().partitions.iter().all(|p| p.replicas == vec![1]));
    assert_eq!(
        log.apply(MetadataRecord::CreateTopic { name: "orders".into(), partitions: 1, replication_factor: 1, configs: Default::default() }),
        Err(MetadataError::TopicAlreadyExists("orders".into()))
    );
    assert!(matches!(
        log.apply(MetadataRecord::CreateTopic { name: "bad/name".into(), partitions: 1, replication_factor: 1, configs: Default::default() }),
        Err(MetadataError::InvalidTopicName(_))
    ));
}

#[test]
fn controller_fencing_moves_leadership_and_shrinks_isr() {
    let mut log = Log::with_brokers(3);
    let topic_id = log.create("t", 3, 3);
    // Brokers 1 and 2 keep heartbeating; 3 goes silent.
    log.heartbeat(1, 8_000);
    log.heartbeat(2, 8_000);
    assert!(log.expire_sessions(8_999).is_empty(), "nobody expired yet");
    let before = log.image.topic_by_id(topic_id).unwrap().clone();
    assert_eq!(log.expire_sessions(9_000), vec![3]);
    let after = log.image.topic_by_id(topic_id).unwrap();
    for (old, new) in before.partitions.iter().zip(&after.partitions) {
        assert!(!new.isr.contains(&3), "fenced broker left the ISR");
        assert_ne!(new.leader, Some(3), "fenced broker leads nothing");
        assert_eq!(new.partition_epoch, old.partition_epoch + 1);
        if old.leader == Some(3) {
            assert_eq!(new.leader_epoch, old.leader_epoch + 1);
            assert_eq!(new.leader, old.replicas.iter().copied().find(|&b| b != 3), "next ISR member in replica order");
        } else {
            assert_eq!(new.leader_epoch, old.leader_epoch);
        }
    }
    // Broker 3 comes back with its old epoch: unfenced, rejoins no ISR by itself.
    log.heartbeat(3, 9_500);
    assert!(!log.image.broker(3).unwrap().fenced);
    assert!(log.image.topic_by_id(topic_id).unwrap().partitions.iter().all(|p| !p.isr.contains(&3)));
}

#[test]
fn controller_stale_fence_decision_is_rejected() {
    let mut log = Log::with_brokers(2);
    // The leader decides to fence broker 2 at 9000 ...
    let decisions = log.image.expired_sessions(9_000);
    assert_eq!(decisions.len(), 2);
    // ... but broker 2's heartbeat is committed first.
    log.heartbeat(2, 8_900);
    assert_eq!(log.apply(decisions[0].clone()), Ok(ApplyOutcome::BrokerFenced));
    assert_eq!(log.apply(decisions[1].clone()), Err(MetadataError::SessionNotExpired(2)));
    assert!(!log.image.broker(2).unwrap().fenced);
}

#[test]
fn controller_alter_partition_is_fenced_by_epochs() {
    let mut log = Log::with_brokers(3);
    let topic_id = log.create("t", 1, 3);
    let leader = log.image.topic_by_id(topic_id).unwrap().partitions[0].leader.unwrap();
    let follower = log.image.topic_by_id(topic_id).unwrap().partitions[0].replicas[1];
    let shrink = log.alter(topic_id, 0, leader, vec![leader, follower]);
    assert_eq!(log.apply(shrink.clone()), Ok(ApplyOutcome::PartitionAltered { partition_epoch: 1 }));
    // The same request again carries a stale partition epoch.
    assert_eq!(log.apply(shrink), Err(MetadataError::InvalidUpdateVersion { given: 0, current: 1 }));
    // A wrong leader epoch, a non-leader, a stale broker epoch, a bad ISR.
    let MetadataRecord::AlterPartition { broker_epoch, .. } = log.alter(topic_id, 0, leader, vec![leader]) else {
        unreachable!()
    };
    let mut wrong_leader_epoch = log.alter(topic_id, 0, leader, vec![leader]);
    if let MetadataRecord::AlterPartition { leader_epoch, .. } = &mut wrong_leader_epoch {
        *leader_epoch = 5;
    }
    assert_eq!(log.apply(wrong_leader_epoch), Err(MetadataError::FencedLeaderEpoch { given: 5, current: 0 }));
    let by_follower = log.alter(topic_id, 0, follower, vec![follower]);
    assert_eq!(log.apply(by_follower), Err(MetadataError::NotLeader(follower)));
    let mut stale_broker = log.alter(topic_id, 0, leader, vec![leader]);
    if let MetadataRecord::AlterPartition { broker_epoch: e, .. } = &mut stale_broker {
        *e = broker_epoch - 1;
    }
    assert!(matches!(log.apply(stale_broker), Err(MetadataError::StaleBrokerEpoch { .. })));
    let without_leader = log.alter(topic_id, 0, leader, vec![follower]);
    assert!(matches!(log.apply(without_leader), Err(MetadataError::InvalidIsr(_))));
    // Expanding the ISR with a fenced broker is refused.
    let third = log.image.topic_by_id(topic_id).unwrap().partitions[0].replicas[2];
    for id in [leader, follower] {
        log.heartbeat(id, 9_000);
    }
    assert_eq!(log.expire_sessions(9_000), vec![third]);
    let expand = log.alter(topic_id, 0, leader, vec![leader, follower, third]);
    assert!(matches!(log.apply(expand), Err(MetadataError::InvalidIsr(_))));
    // A partition epoch that is current still works, and the image is unchanged by rejections.
    let ok = log.alter(topic_id, 0, leader, vec![leader]);
    assert_eq!(log.apply(ok), Ok(ApplyOutcome::PartitionAltered { partition_epoch: 2 }));
}

#[test]
fn controller_leader_election_from_isr_and_unclean_knob() {
    for unclean_from_start in [false, true] {
        let mut log = Log::with_brokers(3);
        if unclean_from_start {
            log.apply(MetadataRecord::SetUncleanLeaderElection { enabled: true }).unwrap();
        }
        let topic_id = log.create("t", 1, 3);
        let replicas = log.image.topic_by_id(topic_id).unwrap().partitions[0].replicas.clone();
        let (a, b, c) = (replicas[0], replicas[1], replicas[2]);
        // The leader drops c from the ISR: c is out of sync.
        let shrink = log.alter(topic_id, 0, a, vec![a, b]);
        log.apply(shrink).unwrap();
        // a dies: b (in the ISR) takes over, not c.
        for id in [b, c] {
            log.heartbeat(id, 9_000);
        }
        assert_eq!(log.expire_sessions(9_000), vec![a]);
        let p = log.image.topic_by_id(topic_id).unwrap().partitions[0].clone();
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (Some(b), vec![b], 1));
        // b dies too: only c is alive, and it is not in the ISR.
        log.heartbeat(c, 18_000);
        assert_eq!(log.expire_sessions(18_000), vec![b]);
        let p = log.image.topic_by_id(topic_id).unwrap().partitions[0].clone();
        if unclean_from_start {
            assert_eq!((p.leader, p.isr.clone()), (Some(c), vec![c]), "unclean election picks the live replica");
        } else {
            assert_eq!((p.leader, p.isr.clone()), (None, vec![b]), "offline, last ISR member kept");
            assert_eq!(p.leader_epoch, 2);
            // Turning the knob on elects c, losing b's committed data.
            log.apply(MetadataRecord::SetUncleanLeaderElection { enabled: true }).unwrap();
            let p = log.image.topic_by_id(topic_id).unwrap().partitions[0].clone();
            assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (Some(c), vec![c], 3));
        }
    }
}

#[test]
fn controller_offline_partition_recovers_when_last_isr_member_returns() {
    let mut log = Log::with_brokers(2);
    let topic_id = log.create("t", 1, 2);
    let replicas = log.image.topic_by_id(topic_id).unwrap().partitions[0].replicas.clone();
    let (a, b) = (replicas[0], replicas[1]);
    let shrink = log.alter(topic_id, 0, a, vec![a]);
    log.apply(shrink).unwrap();
    log.heartbeat(b, 9_000);
    assert_eq!(log.expire_sessions(9_000), vec![a]);
    assert_eq!(log.image.topic_by_id(topic_id).unwrap().partitions[0].leader, None);
    // a re-registers as a new process, then heartbeats: clean leader again.
    log.register(a, 999, 9_100).unwrap();
    assert_eq!(log.image.topic_by_id(topic_id).unwrap().partitions[0].leader, None, "still fenced");
    log.heartbeat(a, 9_200);
    let p = &log.image.topic_by_id(topic_id).unwrap().partitions[0];
    assert_eq!((p.leader, p.isr.clone()), (Some(a), vec![a]));
}

#[test]
fn controller_reregistration_moves_leadership_off_old_incarnation() {
    let mut log = Log::with_brokers(3);
    let topic_id = log.create("t", 3, 2);
    let led_by_1 = |log: &Log| {
        log.image.topic_by_id(topic_id).unwrap().partitions.iter().filter(|p| p.leader == Some(1)).count()
    };
    assert!(led_by_1(&log) > 0);
    // Broker 1's process restarts, its old session expires, the new one registers.
    for id in [2, 3] {
        log.heartbeat(id, 9_000);
    }
    log.register(1, 555, 9_000).unwrap();
    assert_eq!(led_by_1(&log), 0, "the old incarnation's leaderships moved");
}

#[test]
fn controller_delete_topic_is_fenced_by_topic_id() {
    let mut log = Log::with_brokers(1);
    let old_id = log.create("t", 1, 1);
    log.apply(MetadataRecord::DeleteTopic { name: "t".into(), topic_id: old_id }).unwrap();
    let deleted_at = log.image.last_applied_offset();
    log.heartbeat_acting_on(1, 1, deleted_at);
    let new_id = log.create("t", 1, 1);
    assert_ne!(old_id, new_id);
    // A delete aimed at the old topic must not delete the new one.
    assert_eq!(
        log.apply(MetadataRecord::DeleteTopic { name: "t".into(), topic_id: old_id }),
        Err(MetadataError::TopicIdMismatch { name: "t".into(), given: old_id, current: new_id })
    );
    assert!(log.image.topic("t").is_some());
    assert_eq!(
        log.apply(MetadataRecord::DeleteTopic { name: "nope".into(), topic_id: 1 }),
        Err(MetadataError::UnknownTopic("nope".into()))
    );
}

#[test]
fn controller_snapshot_restore_and_determinism() {
    let build = || {
        let mut log = Log::with_brokers(4);
        log.create("a", 5, 3);
        log.create("b", 2, 2);
        log.heartbeat(1, 9_000);
        log.heartbeat(2, 9_000);
        log.expire_sessions(9_500);
        log
    };
    let (one, two) = (build(), build());
    assert_eq!(one.image.snapshot(), two.image.snapshot(), "same records, same bytes");
    let restored = MetadataImage::restore(&one.image.snapshot()).unwrap();
    assert_eq!(restored, one.image);
    assert_eq!(restored.last_applied_offset(), one.offset);
    assert!(matches!(MetadataImage::restore(b"{not json"), Err(MetadataError::BadSnapshot(_))));
    assert!(matches!(MetadataRecord::decode(b"\x00\x01"), Err(MetadataError::Decode(_))));
}

#[test]
fn controller_holds_a_deleted_name_back_until_every_replica_broker_has_seen_the_deletion() {
    let mut log = Log::with_brokers(3);
    let old_id = log.create("t", 3, 2);
    let holders: Vec<BrokerId> = {
        let mut ids: Vec<BrokerId> = log.image.topic("t").unwrap().partitions.iter().flat_map(|p| p.replicas.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    };
    assert_eq!(holders, [1, 2, 3]);
    log.apply(MetadataRecord::DeleteTopic { name: "t".into(), topic_id: old_id }).unwrap();
    let deleted_at = log.image.last_applied_offset();
    let create_again = |log: &mut Log| log.apply(MetadataRecord::CreateTopic { name: "t".into(), partitions: 1, replication_factor: 1, configs: Default::default() });

    // A broker still on older metadata would take records for a new "t"
    // into the old incarnation's log.
    assert_eq!(create_again(&mut log), Err(MetadataError::TopicMarkedForDeletion("t".into())));
    log.heartbeat_acting_on(1, 1, deleted_at);
    log.heartbeat_acting_on(2, 1, deleted_at - 1);
    assert_eq!(create_again(&mut log), Err(MetadataError::TopicMarkedForDeletion("t".into())), "broker 2 and 3 lag");
    log.heartbeat_acting_on(2, 2, deleted_at + 5);
    // Broker 3 never says so, but a fenced broker leads nothing of a new topic.
    let fenced = log.expire_sessions(100_000);
    assert!(fenced.contains(&3), "broker 3's session expired: {fenced:?}");
    log.heartbeat_acting_on(1, 100_000, deleted_at);
    log.heartbeat_acting_on(2, 100_000, deleted_at);
    assert!(matches!(create_again(&mut log), Ok(ApplyOutcome::TopicCreated { .. })));
    // Other names are never held back.
    assert!(matches!(
        log.apply(MetadataRecord::CreateTopic { name: "other".into(), partitions: 1, replication_factor: 1, configs: Default::default() }),
        Ok(ApplyOutcome::TopicCreated { .. })
    ));
}

/// KIP-966 with min.insync.replicas=2: a replica that leaves an ISR of two
/// becomes an eligible leader replica (it holds every record acknowledged
/// with acks=all, since none can be acknowledged with a smaller ISR); when
/// the last ISR member then fails, the eligible replica leads instead of
/// the partition waiting for the last member, whose unsynced records an
/// unclean shutdown may have lost.
#[test]
fn controller_eligible_leader_replicas_lead_when_the_last_isr_member_fails() {
    for last_member_restarts_uncleanly in [false, true] {
        let config = ControllerConfig { min_insync_replicas: 2, ..ControllerConfig::default() };
        let mut log = Log::with_brokers_and_config(3, config);
        let topic_id = log.create("t", 1, 3);
        let partition = |log: &Log| log.image.topic_by_id(topic_id).unwrap().partitions[0].clone();
        let replicas = partition(&log).replicas;
        let (a, b, c) = (replicas[0], replicas[1], replicas[2]);
        // c dies: the ISR {a, b} is still at min.insync.replicas, so records
        // go on being acknowledged without c, which is not eligible.
        for id in [a, b] {
            log.heartbeat(id, 9_000);
        }
        assert_eq!(log.expire_sessions(9_000), vec![c]);
        assert_eq!((partition(&log).isr, partition(&log).elr), (vec![a, b], vec![]));
        // b dies: the ISR {a} is below it; b is eligible.
        log.heartbeat(a, 18_000);
        assert_eq!(log.expire_sessions(18_000), vec![b]);
        assert_eq!((partition(&log).isr, partition(&log).elr), (vec![a], vec![b]));
        // a, the last ISR member, dies: no leader.
        assert_eq!(log.expire_sessions(27_000), vec![a]);
        assert_eq!((partition(&log).leader, partition(&log).isr.clone()), (None, vec![a]));
        if last_member_restarts_uncleanly {
            // a comes back after an unclean shutdown: b takes its place.
            log.register(a, 777, 27_100).unwrap();
            log.heartbeat(a, 27_200);
            let p = partition(&log);
            assert_eq!((p.leader, p.isr, p.elr), (None, vec![b], vec![]), "a lost its tail; b holds what was acknowledged");
        }
        // b comes back (the same process, after a pause): it leads.
        log.heartbeat(b, 27_300);
        let p = partition(&log);
        assert_eq!(p.leader, Some(b));
        assert_eq!(p.isr, vec![b]);
        assert!(!p.elr.contains(&b), "an ISR member is not also eligible");
    }
}

#[test]
fn controller_create_partitions_adds_partitions_with_the_topic_replication_factor() {
    let mut log = Log::with_brokers(3);
    let topic_id = log.create("t", 2, 2);
    let grow = |count| MetadataRecord::CreatePartitions { name: "t".into(), topic_id, count };
    assert_eq!(log.apply(grow(2)), Err(MetadataError::InvalidPartitions(2)), "no partition added");
    assert_eq!(log.apply(grow(5)), Ok(ApplyOutcome::PartitionsCreated { count: 5 }));
    let topic = log.image.topic_by_id(topic_id).unwrap();
    assert_eq!(topic.partitions.len(), 5);
    for p in &topic.partitions[2..] {
        assert_eq!(p.replicas.len(), 2, "the topic's replication factor");
        assert_eq!((p.leader, p.isr.clone(), p.leader_epoch), (Some(p.replicas[0]), p.replicas.clone(), 0));
    }
    let stale = MetadataRecord::CreatePartitions { name: "t".into(), topic_id: topic_id + 1, count: 9 };
    assert!(matches!(log.apply(stale), Err(MetadataError::TopicIdMismatch { .. })), "aimed at another incarnation");
}
