//! The group coordinator against the protocol's rules: examples, record
//! fixtures, and a property test that drives random clients through joins,
//! syncs, heartbeats, leaves, crashes, commits and time.

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::records::{GroupMetadataValue, MemberRecord, OffsetsRecord};
use super::*;

const GROUP: &str = "g";

fn coordinator() -> GroupCoordinator {
    let mut c = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 0, ..GroupConfig::default() }, 4, ChaCha8Rng::seed_from_u64(7));
    for p in 0..4 {
        c.begin_load(p);
        c.finish_load(p, 0);
    }
    c
}

fn join_request(member_id: &str) -> JoinRequest {
    JoinRequest {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        group_instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![Protocol { name: "range".into(), metadata: Bytes::from_static(b"sub") }],
        require_known_member_id: true,
    }
}

fn sync_request(generation_id: i32, member_id: &str, assignments: Vec<(String, Bytes)>) -> SyncRequest {
    SyncRequest {
        group_id: GROUP.into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        protocol_type: None,
        protocol_name: None,
        assignments,
    }
}

fn commit(generation_id: i32, member_id: &str, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: GROUP.into(),
        generation_id,
        member_id: member_id.into(),
        group_instance_id: None,
        member_epoch: false,
        offsets: vec![(("t".into(), 0), CommittedOffset { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp_ms: 0 })],
    }
}

fn joins(outputs: &[GroupOutput]) -> BTreeMap<Waiter, JoinResponse> {
    outputs
        .iter()
        .filter_map(|o| match o {
            GroupOutput::Join { waiter, response } => Some((*waiter, response.clone())),
            _ => None,
        })
        .collect()
}

/// A member id is handed out first (KIP-394), then the join completes.
fn first_member(c: &mut GroupCoordinator, now_ms: u64, waiter: Waiter) -> String {
    let Reply::Now(response) = c.join(now_ms, waiter, join_request("")) else { panic!("answered at once") };
    assert_eq!(response.error, Some(GroupError::MemberIdRequired));
    assert!(response.member_id.starts_with("client-"));
    response.member_id
}

#[test]
fn two_members_form_a_generation_and_a_third_triggers_a_rebalance() {
    let mut c = coordinator();
    let a = first_member(&mut c, 0, 1);
    assert_eq!(c.join(0, 2, join_request(&a)), Reply::Later);
    c.tick(1);
    let out = joins(&c.take_outputs());
    let a_join = &out[&2];
    assert_eq!(a_join.error, None);
    assert_eq!((a_join.generation_id, a_join.leader.as_str()), (1, a.as_str()));
    assert_eq!(a_join.members.len(), 1);
    assert_eq!(c.sync(1, 3, sync_request(1, &a, vec![(a.clone(), Bytes::from_static(b"all"))])), Reply::Later);
    let appended: Vec<_> = c.take_outputs();
    assert!(appended.iter().any(|o| matches!(o, GroupOutput::Append { .. })), "the generation is written to __consumer_offsets");
    assert!(!appended.iter().any(|o| matches!(o, GroupOutput::Sync { .. })), "no assignment before the generation is durable");
    assert_eq!(c.generation(GROUP), Some((1, GroupState::CompletingRebalance)));
    c.generation_stored(1, GROUP, 1);
    let synced: Vec<_> = c.take_outputs();
    assert!(synced.iter().any(|o| matches!(o, GroupOutput::Sync { waiter: 3, response } if response.assignment == Bytes::from_static(b"all"))));
    assert_eq!(c.generation(GROUP), Some((1, GroupState::Stable)));

    // B arrives: A hears REBALANCE_IN_PROGRESS on its heartbeat and rejoins.
    let b = first_member(&mut c, 10, 4);
    assert_eq!(c.join(10, 5, join_request(&b)), Reply::Later);
    assert_eq!(c.heartbeat(11, GROUP, &a, None, 1), Err(GroupError::RebalanceInProgress));
    assert_eq!(c.join(12, 6, join_request(&a)), Reply::Later);
    let out = joins(&c.take_outputs());
    assert_eq!(out[&6].generation_id, 2);
    assert_eq!(out[&6].members.len(), 2, "the leader sees both members");
    assert!(out[&5].members.is_empty());
    // A commit of generation 1 is now refused: it came from a zombie.
    let plan = c.prepare_commit(13, commit(1, &a, 5));
    assert_eq!(plan.results[0].1, Err(GroupError::IllegalGeneration));
    assert!(plan.records.is_empty());
}

#[test]
fn a_member_that_stops_heartbeating_is_removed_after_its_session_timeout() {
    let mut c = coordinator();
    let a = first_member(&mut c, 0, 1);
    c.join(0, 2, join_request(&a));
    c.tick(0);
    c.sync(0, 3, sync_request(1, &a, vec![]));
    c.generation_stored(0, GROUP, 1);
    c.take_outputs();
    c.tick(9_999);
    assert_eq!(c.generation(GROUP), Some((1, GroupState::Stable)));
    c.tick(10_000);
    assert_eq!(c.generation(GROUP), Some((2, GroupState::Empty)));
    assert_eq!(c.heartbeat(10_001, GROUP, &a, None, 1), Err(GroupError::UnknownMemberId));
}

#[test]
fn commits_become_visible_only_once_appended_and_survive_a_reload() {
    let mut c = coordinator();
    let plan = c.prepare_commit(5, commit(-1, "", 42));
    assert_eq!(plan.results[0].1, Ok(()));
    assert!(c.fetch_offsets(GROUP, None).unwrap().is_empty());
    let records = plan.records.clone();
    c.commit_appended(plan);
    assert_eq!(c.fetch_offsets(GROUP, None).unwrap()[&("t".to_string(), 0)].offset, 42);

    // Another coordinator replays the partition's records.
    let mut d = GroupCoordinator::new(GroupConfig::default(), 4, ChaCha8Rng::seed_from_u64(8));
    let p = d.partition_of(GROUP);
    d.begin_load(p);
    assert_eq!(d.fetch_offsets(GROUP, None), Err(GroupError::CoordinatorLoadInProgress));
    for r in records {
        d.load_record(p, r, 0);
    }
    d.finish_load(p, 0);
    assert_eq!(d.fetch_offsets(GROUP, None).unwrap()[&("t".to_string(), 0)].offset, 42);
    d.unload(p);
    assert_eq!(d.fetch_offsets(GROUP, None), Err(GroupError::NotCoordinator));
}

#[test]
fn a_group_with_members_refuses_commits_outside_its_generation_unless_the_knob_is_off() {
    for fence in [true, false] {
        let mut c = GroupCoordinator::new(GroupConfig { initial_rebalance_delay_ms: 0, fence_generations: fence, ..GroupConfig::default() }, 1, ChaCha8Rng::seed_from_u64(1));
        c.begin_load(0);
        c.finish_load(0, 0);
        let a = first_member(&mut c, 0, 1);
        c.join(0, 2, join_request(&a));
        c.tick(0);
        let plan = c.prepare_commit(1, commit(-1, "", 1));
        assert_eq!(plan.results[0].1.is_ok(), !fence, "fence_generations={fence}");
        let plan = c.prepare_commit(1, commit(0, "zombie", 1));
        assert_eq!(plan.results[0].1.is_ok(), !fence, "fence_generations={fence}");
    }
}

#[test]
fn delete_group_only_when_empty() {
    let mut c = coordinator();
    assert_eq!(c.delete_group(GROUP), Err(GroupError::GroupIdNotFound));
    let a = first_member(&mut c, 0, 1);
    c.join(0, 2, join_request(&a));
    assert_eq!(c.delete_group(GROUP), Err(GroupError::NonEmptyGroup));
    let left = c.leave(1, GROUP, &[LeavingMember { member_id: a.clone(), group_instance_id: None }]).unwrap();
    assert_eq!(left, vec![Ok(a)]);
    let tombstones = c.delete_group(GROUP).unwrap();
    assert!(matches!(tombstones.last(), Some(OffsetsRecord::Group { value: None, .. })));
}

#[test]
fn a_static_member_rejoining_fences_its_old_member_id() {
    let mut c = coordinator();
    let mut request = join_request("");
    request.group_instance_id = Some("i1".into());
    assert_eq!(c.join(0, 1, request.clone()), Reply::Later);
    c.tick(0);
    let old = joins(&c.take_outputs())[&1].member_id.clone();
    assert_eq!(c.join(1, 2, request), Reply::Later);
    c.tick(1);
    let new = joins(&c.take_outputs())[&2].member_id.clone();
    assert_ne!(old, new);
    assert_eq!(c.heartbeat(2, GROUP, &old, Some("i1"), 2), Err(GroupError::FencedInstanceId));
}

#[test]
fn the_offsets_of_a_long_empty_group_expire() {
    let config = GroupConfig { offsets_retention_ms: 1000, offsets_retention_check_interval_ms: 100, ..GroupConfig::default() };
    let mut c = GroupCoordinator::new(config, 1, ChaCha8Rng::seed_from_u64(1));
    c.begin_load(0);
    c.finish_load(0, 0);
    let plan = c.prepare_commit(0, commit(-1, "", 3));
    c.commit_appended(plan);
    c.tick(500);
    assert_eq!(c.fetch_offsets(GROUP, None).unwrap().len(), 1);
    c.tick(1100);
    assert!(c.fetch_offsets(GROUP, None).unwrap().is_empty());
    assert!(c.take_outputs().iter().any(|o| matches!(o, GroupOutput::Append { records, .. } if matches!(records[0], OffsetsRecord::Offset { value: None, .. }))));
}

#[test]
fn groups_map_to_partitions_as_kafka_does() {
    // Java: "hello".hashCode() == 99162322.
    assert_eq!(partition_for_group("hello", 50), 99_162_322 % 50);
    assert_eq!(partition_for_group("hello", 1), 0);
    // A negative hash keeps only its low 31 bits, as Kafka's Utils.abs.
    let negative = "polygenelubricants"; // hashCode == Integer.MIN_VALUE
    assert_eq!(partition_for_group(negative, 50), 0);
}

fn fixture_records() -> Vec<(&'static str, OffsetsRecord)> {
    vec![
        (
            "offset-commit-key1-value3",
            OffsetsRecord::Offset {
                group_id: "group-a".into(),
                partition: ("orders".into(), 3),
                value: Some(CommittedOffset { offset: 1234, leader_epoch: 7, metadata: "meta".into(), commit_timestamp_ms: 1_700_000_000_000 }),
            },
        ),
        (
            "group-metadata-key2-value3",
            OffsetsRecord::Group {
                group_id: "group-a".into(),
                value: Some(GroupMetadataValue {
                    protocol_type: "consumer".into(),
                    generation_id: 5,
                    protocol_name: Some("range".into()),
                    leader: Some("c-1".into()),
                    current_state_timestamp_ms: 1_700_000_000_000,
                    members: vec![MemberRecord {
                        member_id: "c-1".into(),
                        group_instance_id: Some("i-1".into()),
                        client_id: "c".into(),
                        client_host: "/10.0.0.1".into(),
                        rebalance_timeout_ms: 300_000,
                        session_timeout_ms: 45_000,
                        subscription: Bytes::from_static(b"\x00\x01sub"),
                        assignment: Bytes::from_static(b"\x00\x01asg"),
                    }],
                }),
            },
        ),
    ]
}

/// Each fixture is `<name>.key` and `<name>.value`; with
/// `DLOG_WRITE_FIXTURES=1` the test writes them (once, per new version).
#[test]
fn record_fixtures_decode_and_encode_to_the_same_bytes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/consumer_offsets");
    for (name, record) in fixture_records() {
        let (key, value) = record.encode();
        let value = value.expect("fixtures have values");
        if std::env::var_os("DLOG_WRITE_FIXTURES").is_some() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("{name}.key")), &key).unwrap();
            std::fs::write(dir.join(format!("{name}.value")), &value).unwrap();
        }
        let stored_key = std::fs::read(dir.join(format!("{name}.key"))).unwrap();
        let stored_value = std::fs::read(dir.join(format!("{name}.value"))).unwrap();
        assert_eq!(OffsetsRecord::decode(Some(&stored_key), Some(&stored_value)).unwrap(), Some(record.clone()), "{name}");
        assert_eq!((key, value), (stored_key, stored_value), "{name}: encoding changed; a new version needs a new fixture");
    }
}

#[test]
fn tombstones_and_unknown_keys_decode() {
    let (key, _) = fixture_records()[0].1.encode();
    assert!(matches!(OffsetsRecord::decode(Some(&key), None).unwrap(), Some(OffsetsRecord::Offset { value: None, .. })));
    assert_eq!(OffsetsRecord::decode(Some(&[0, 9, 0, 0]), None).unwrap(), None);
    assert!(OffsetsRecord::decode(Some(&[0, 1, 0]), None).is_err());
    assert!(OffsetsRecord::decode(None, None).is_err());
}

proptest! {
    /// Whatever bytes a record holds, decoding returns, never panics.
    #[test]
    fn decoding_arbitrary_records_never_panics(key in proptest::collection::vec(any::<u8>(), 0..64), value in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = OffsetsRecord::decode(Some(&key), Some(&value));
    }
}

// ----- the property test: random clients against the protocol's rules -----

#[derive(Debug, Clone)]
enum Action {
    /// Client i joins (with the id it has, or asks for one).
    Join(usize),
    /// Client i syncs its generation (as leader: assigns partitions).
    Sync(usize),
    /// Client i heartbeats.
    Heartbeat(usize),
    /// Client i commits offset `n` for its partitions with its generation.
    Commit(usize, i64),
    /// Client i leaves.
    Leave(usize),
    /// Client i crashes: forgets its member id and stops talking.
    Crash(usize),
    /// Time passes.
    Tick(u64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..4usize).prop_map(Action::Join),
        3 => (0..4usize).prop_map(Action::Sync),
        3 => (0..4usize).prop_map(Action::Heartbeat),
        2 => (0..4usize, 0..100i64).prop_map(|(i, n)| Action::Commit(i, n)),
        1 => (0..4usize).prop_map(Action::Leave),
        1 => (0..4usize).prop_map(Action::Crash),
        3 => (0..15_000u64).prop_map(Action::Tick),
    ]
}

#[derive(Debug, Default, Clone)]
struct Client {
    member_id: String,
    generation_id: i32,
    leader: bool,
    members: Vec<String>,
    join_waiter: Option<Waiter>,
    sync_waiter: Option<Waiter>,
}

struct Harness {
    c: GroupCoordinator,
    clients: Vec<Client>,
    now_ms: u64,
    next_waiter: Waiter,
    /// generation → partition → the member given it by a successful sync.
    owners: BTreeMap<i32, BTreeMap<i32, String>>,
    last_generation: i32,
    waiters: BTreeMap<Waiter, usize>,
}

const PARTITIONS: i32 = 6;

impl Harness {
    fn waiter(&mut self, client: usize) -> Waiter {
        self.next_waiter += 1;
        self.waiters.insert(self.next_waiter, client);
        self.next_waiter
    }

    fn on_join(&mut self, i: usize, response: JoinResponse) {
        let client = &mut self.clients[i];
        match response.error {
            None => {
                let (generation, _) = self.c.generation(GROUP).expect("a group answered");
                assert_eq!(response.generation_id, generation, "a join is answered with the current generation");
                client.member_id = response.member_id.clone();
                client.generation_id = response.generation_id;
                client.leader = response.leader == response.member_id;
                client.members = response.members.iter().map(|m| m.member_id.clone()).collect();
                assert_eq!(client.leader, !client.members.is_empty(), "only the leader gets the member list");
            }
            Some(GroupError::MemberIdRequired) => client.member_id = response.member_id,
            Some(GroupError::UnknownMemberId | GroupError::FencedInstanceId) => *client = Client::default(),
            Some(_) => {}
        }
    }

    fn on_sync(&mut self, i: usize, response: SyncResponse) {
        let client = &self.clients[i];
        if response.error.is_some() {
            return;
        }
        let (generation, state) = self.c.generation(GROUP).expect("a group answered");
        assert_eq!(state, GroupState::Stable, "a sync succeeds only once the group is stable");
        assert_eq!(client.generation_id, generation);
        let owners = self.owners.entry(generation).or_default();
        for p in response.assignment.iter() {
            let p = i32::from(*p);
            if let Some(owner) = owners.insert(p, client.member_id.clone()) {
                assert_eq!(owner, client.member_id, "partition {p} owned by two members in generation {generation}");
            }
        }
    }

    fn drain(&mut self) {
        let mut outputs = self.c.take_outputs();
        while !outputs.is_empty() {
            self.deliver(outputs);
            outputs = self.c.take_outputs();
        }
        if let Some((generation, _)) = self.c.generation(GROUP) {
            assert!(generation >= self.last_generation, "generations only grow");
            self.last_generation = generation;
        }
    }

    fn deliver(&mut self, outputs: Vec<GroupOutput>) {
        for output in outputs {
            match output {
                GroupOutput::Join { waiter, response } => {
                    let i = self.waiters.remove(&waiter).expect("a waiter is answered once");
                    if self.clients[i].join_waiter == Some(waiter) {
                        self.clients[i].join_waiter = None;
                        self.on_join(i, response);
                    }
                }
                GroupOutput::Sync { waiter, response } => {
                    let i = self.waiters.remove(&waiter).expect("a waiter is answered once");
                    if self.clients[i].sync_waiter == Some(waiter) {
                        self.clients[i].sync_waiter = None;
                        self.on_sync(i, response);
                    }
                }
                // The driver stores a generation's record, then says so.
                GroupOutput::Append { group_id, records } => {
                    for record in records {
                        if let OffsetsRecord::Group { value: Some(value), .. } = record {
                            self.c.generation_stored(self.now_ms, &group_id, value.generation_id);
                        }
                    }
                }
            }
        }
    }

    fn step(&mut self, action: Action) {
        match action {
            Action::Join(i) => {
                if self.clients[i].join_waiter.is_some() || self.clients[i].sync_waiter.is_some() {
                    return;
                }
                let waiter = self.waiter(i);
                let request = join_request(&self.clients[i].member_id.clone());
                match self.c.join(self.now_ms, waiter, request) {
                    Reply::Now(response) => {
                        self.waiters.remove(&waiter);
                        self.on_join(i, response);
                    }
                    Reply::Later => self.clients[i].join_waiter = Some(waiter),
                }
            }
            Action::Sync(i) => {
                let client = self.clients[i].clone();
                if client.member_id.is_empty() || client.join_waiter.is_some() || client.sync_waiter.is_some() || client.generation_id == 0 {
                    return;
                }
                // The leader deals the partitions round robin to the members it was given.
                let assignments = if client.leader {
                    let mut by_member: BTreeMap<String, Vec<u8>> = BTreeMap::new();
                    for p in 0..PARTITIONS {
                        let m = &client.members[p as usize % client.members.len()];
                        by_member.entry(m.clone()).or_default().push(p as u8);
                    }
                    by_member.into_iter().map(|(m, ps)| (m, Bytes::from(ps))).collect()
                } else {
                    Vec::new()
                };
                let waiter = self.waiter(i);
                match self.c.sync(self.now_ms, waiter, sync_request(client.generation_id, &client.member_id, assignments)) {
                    Reply::Now(response) => {
                        self.waiters.remove(&waiter);
                        self.on_sync(i, response);
                    }
                    Reply::Later => self.clients[i].sync_waiter = Some(waiter),
                }
            }
            Action::Heartbeat(i) => {
                let client = self.clients[i].clone();
                if !client.member_id.is_empty() {
                    let _ = self.c.heartbeat(self.now_ms, GROUP, &client.member_id, None, client.generation_id);
                }
            }
            Action::Commit(i, n) => {
                let client = self.clients[i].clone();
                let generation_before = self.c.generation(GROUP);
                let plan = self.c.prepare_commit(self.now_ms, commit(client.generation_id, &client.member_id, n));
                if plan.results[0].1.is_ok() {
                    let (generation, state) = generation_before.expect("accepted by a known group");
                    assert_eq!(client.generation_id, generation, "a commit from another generation was accepted");
                    assert!(matches!(state, GroupState::Stable | GroupState::PreparingRebalance), "commit accepted in {state:?}");
                }
                self.c.commit_appended(plan);
            }
            Action::Leave(i) => {
                let client = self.clients[i].clone();
                if !client.member_id.is_empty() {
                    let _ = self.c.leave(self.now_ms, GROUP, &[LeavingMember { member_id: client.member_id, group_instance_id: None }]);
                    self.clients[i] = Client::default();
                }
            }
            Action::Crash(i) => self.clients[i] = Client::default(),
            Action::Tick(ms) => {
                self.now_ms += ms;
                self.c.tick(self.now_ms);
            }
        }
        self.drain();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// At most one generation is current at a time and generations only
    /// grow; within a generation the leader's assignment is disjoint and
    /// every member gets only its own part; a commit is accepted only from
    /// the current generation.
    #[test]
    fn random_clients_never_break_the_group_protocol(actions in proptest::collection::vec(action(), 1..200)) {
        let mut h = Harness {
            c: coordinator(),
            clients: vec![Client::default(); 4],
            now_ms: 0,
            next_waiter: 0,
            owners: BTreeMap::new(),
            last_generation: 0,
            waiters: BTreeMap::new(),
        };
        for action in actions {
            h.step(action);
        }
        // Liveness: with every live client taking part, the group settles.
        for _ in 0..3 {
            for i in 0..4 {
                h.step(Action::Join(i));
            }
            h.step(Action::Tick(31_000));
            for i in 0..4 {
                h.step(Action::Sync(i));
            }
        }
        for i in 0..4 { h.step(Action::Sync(i)); }
        let (_, state) = h.c.generation(GROUP).expect("group exists");
        prop_assert!(matches!(state, GroupState::Stable | GroupState::Empty), "group did not settle: {state:?}");
    }
}
