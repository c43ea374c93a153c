//! Tests of the KIP-848 core. Goal: revocation before reassignment holds
//! at every step (no partition owned by two live members at once), every
//! subscribed partition is owned once the group settles, and epochs only
//! grow. Method: unit tests of the assignors and of the reconciliation
//! steps, then a property test that drives the coordinator with modelled
//! clients (they own exactly what the last answer gave them) through
//! random joins, leaves, heartbeats, crashes and clock jumps.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::consumer_protocol::*;
use super::types::{GroupConfig, GroupError};
use super::GroupCoordinator;

const GROUP: &str = "g";

fn config() -> GroupConfig {
    GroupConfig { consumer_session_timeout_ms: 1000, consumer_heartbeat_interval_ms: 100, ..GroupConfig::default() }
}

fn coordinator() -> GroupCoordinator {
    let mut c = GroupCoordinator::new(config(), 1, ChaCha8Rng::seed_from_u64(3));
    c.begin_load(0);
    c.finish_load(0, 0);
    c
}

fn topics(counts: &[(&str, i32)]) -> TopicCounts {
    counts.iter().map(|(t, n)| (t.to_string(), *n)).collect()
}

fn join(member_id: &str, subscribed: &[&str]) -> ConsumerHeartbeat {
    ConsumerHeartbeat {
        group_id: GROUP.into(),
        member_id: member_id.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5000,
        subscribed_topic_names: Some(subscribed.iter().map(|s| s.to_string()).collect()),
        owned: Some(Assignment::new()),
        ..ConsumerHeartbeat::default()
    }
}

fn beat(member_id: &str, epoch: i32, owned: &Assignment) -> ConsumerHeartbeat {
    ConsumerHeartbeat { group_id: GROUP.into(), member_id: member_id.into(), member_epoch: epoch, rebalance_timeout_ms: -1, owned: Some(owned.clone()), ..ConsumerHeartbeat::default() }
}

fn all(topic: &str, n: i32) -> Assignment {
    (0..n).map(|p| (topic.to_string(), p)).collect()
}

#[test]
fn range_gives_contiguous_ranges_first_members_one_more() {
    let subs: BTreeMap<String, BTreeSet<String>> = ["a", "b", "c"].iter().map(|m| (m.to_string(), ["t".to_string()].into())).collect();
    let target = range_assign(&subs, &topics(&[("t", 7)]));
    assert_eq!(target["a"], [0, 1, 2].iter().map(|&p| ("t".to_string(), p)).collect());
    assert_eq!(target["b"], [3, 4].iter().map(|&p| ("t".to_string(), p)).collect());
    assert_eq!(target["c"], [5, 6].iter().map(|&p| ("t".to_string(), p)).collect());
}

#[test]
fn uniform_is_balanced_and_sticky() {
    let mut subs: BTreeMap<String, BTreeSet<String>> = ["a", "b"].iter().map(|m| (m.to_string(), ["t".to_string()].into())).collect();
    let first = uniform_assign(&subs, &topics(&[("t", 6)]), &BTreeMap::new());
    assert_eq!((first["a"].len(), first["b"].len()), (3, 3));
    subs.insert("c".into(), ["t".to_string()].into());
    let second = uniform_assign(&subs, &topics(&[("t", 6)]), &first);
    assert_eq!((second["a"].len(), second["b"].len(), second["c"].len()), (2, 2, 2));
    assert!(second["a"].is_subset(&first["a"]), "a keeps what it can: {:?} then {:?}", first["a"], second["a"]);
    assert!(second["b"].is_subset(&first["b"]), "b keeps what it can");
}

#[test]
fn a_partition_moves_only_after_its_owner_revoked_it() {
    let mut c = coordinator();
    let t = topics(&[("t", 6)]);
    let a = c.consumer_heartbeat(0, join("", &["t"]), &t).unwrap();
    assert_eq!(a.member_epoch, 1);
    assert_eq!(a.assignment, Some(all("t", 6)));
    let a_owned = all("t", 6);
    let b = c.consumer_heartbeat(1, join("", &["t"]), &t).unwrap();
    assert_eq!(b.member_epoch, 2, "b joins at the new assignment epoch");
    assert_eq!(b.assignment, Some(Assignment::new()), "nothing is free yet: a still holds all six");
    // a is told to give three up; its epoch stays until it has.
    let a2 = c.consumer_heartbeat(2, beat(&a.member_id, 1, &a_owned), &t).unwrap();
    assert_eq!(a2.member_epoch, 1);
    let a_kept = a2.assignment.clone().expect("revocation is an assignment change");
    assert_eq!(a_kept.len(), 3);
    let b2 = c.consumer_heartbeat(3, beat(&b.member_id, 2, &Assignment::new()), &t).unwrap();
    assert_eq!(b2.assignment.unwrap_or_default(), Assignment::new(), "still pending revocation: b gets nothing");
    let a3 = c.consumer_heartbeat(4, beat(&a.member_id, 1, &a_kept), &t).unwrap();
    assert_eq!(a3.member_epoch, 2, "revoked: a catches up");
    let b3 = c.consumer_heartbeat(5, beat(&b.member_id, 2, &Assignment::new()), &t).unwrap();
    let b_got = b3.assignment.expect("released partitions arrive");
    assert_eq!(b_got.len(), 3);
    assert!(b_got.is_disjoint(&a_kept));
    let described = c.consumer_describe(GROUP).unwrap();
    assert_eq!(described.state, ConsumerGroupState::Stable);
    assert_eq!((described.group_epoch, described.assignment_epoch), (2, 2));
}

#[test]
fn epochs_are_checked() {
    let mut c = coordinator();
    let t = topics(&[("t", 2)]);
    let a = c.consumer_heartbeat(0, join("", &["t"]), &t).unwrap();
    let owned = a.assignment.clone().unwrap();
    assert_eq!(c.consumer_heartbeat(1, beat(&a.member_id, 7, &owned), &t), Err(GroupError::FencedMemberEpoch));
    assert_eq!(c.consumer_heartbeat(1, beat("nobody", 1, &owned), &t), Err(GroupError::UnknownMemberId));
    let mut bad = join("", &["t"]);
    bad.server_assignor = Some("sticky".into());
    assert_eq!(c.consumer_heartbeat(1, bad, &t), Err(GroupError::UnsupportedAssignor));
    let mut bad = join("", &["t"]);
    bad.subscribed_topic_names = None;
    assert_eq!(c.consumer_heartbeat(1, bad, &t), Err(GroupError::InvalidRequest));
    // Commits: the member's epoch, older is stale, unknown members refused.
    let core = |c: &GroupCoordinator, id: &str, epoch: i32| c.check_fetch_member(GROUP, Some(id), epoch);
    assert_eq!(core(&c, &a.member_id, 1), Ok(()));
    assert_eq!(core(&c, &a.member_id, 0), Err(GroupError::StaleMemberEpoch));
    assert_eq!(core(&c, "nobody", 1), Err(GroupError::UnknownMemberId));
}

#[test]
fn one_protocol_per_group_id() {
    let mut c = coordinator();
    let t = topics(&[("t", 2)]);
    c.consumer_heartbeat(0, join("", &["t"]), &t).unwrap();
    let classic = super::JoinRequest {
        group_id: GROUP.into(),
        member_id: String::new(),
        group_instance_id: None,
        client_id: "c".into(),
        client_host: String::new(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 10_000,
        protocol_type: "consumer".into(),
        protocols: vec![super::Protocol { name: "range".into(), metadata: Default::default() }],
        require_known_member_id: true,
    };
    match c.join(1, 1, classic) {
        super::Reply::Now(response) => assert_eq!(response.error, Some(GroupError::InconsistentGroupProtocol)),
        super::Reply::Later => panic!("a classic join to a KIP-848 group must be refused"),
    }
}

#[test]
fn a_silent_member_is_removed_after_the_session_timeout() {
    let mut c = coordinator();
    let t = topics(&[("t", 4)]);
    let a = c.consumer_heartbeat(0, join("", &["t"]), &t).unwrap();
    let b = c.consumer_heartbeat(0, join("", &["t"]), &t).unwrap();
    // a revokes as asked; b keeps heartbeating, a goes silent.
    let a_kept = c.consumer_heartbeat(10, beat(&a.member_id, 1, &all("t", 4)), &t).unwrap().assignment.unwrap();
    c.consumer_heartbeat(20, beat(&a.member_id, 1, &a_kept), &t).unwrap();
    let mut b_owned = Assignment::new();
    let mut epoch = b.member_epoch;
    for now in (100..=1500).step_by(100) {
        c.tick(now);
        let r = c.consumer_heartbeat(now, beat(&b.member_id, epoch, &b_owned), &t).unwrap();
        epoch = r.member_epoch;
        if let Some(a) = r.assignment {
            b_owned = a;
        }
    }
    assert_eq!(b_owned, all("t", 4), "b owns everything once a's session is over");
    assert_eq!(c.consumer_describe(GROUP).unwrap().members.len(), 1);
}

#[test]
fn a_regex_subscribes_to_every_matching_topic_but_internal_ones() {
    let mut c = coordinator();
    let t = topics(&[("kip-a", 2), ("kip-b", 1), ("other", 3), ("__kip", 50)]);
    let mut request = join("", &[]);
    request.subscribed_topic_regex = Some("(kip|__kip).*".into());
    let a = c.consumer_heartbeat(0, request, &t).unwrap();
    let expected: Assignment = [("kip-a", 0), ("kip-a", 1), ("kip-b", 0)].iter().map(|(t, p)| (t.to_string(), *p)).collect();
    assert_eq!(a.assignment, Some(expected));
    // A matching topic created later joins the subscription at the next heartbeat.
    let t2 = topics(&[("kip-a", 2), ("kip-b", 1), ("kip-c", 1), ("other", 3)]);
    let owned = c.consumer_heartbeat(1, beat(&a.member_id, 1, &Assignment::new()), &t).unwrap();
    let next = c.consumer_heartbeat(2, beat(&a.member_id, owned.member_epoch, &owned.assignment.unwrap()), &t2).unwrap();
    assert!(next.assignment.unwrap().contains(&("kip-c".to_string(), 0)));
    let mut bad = join("", &[]);
    bad.subscribed_topic_regex = Some("(".into());
    assert_eq!(c.consumer_heartbeat(3, bad, &t), Err(GroupError::InvalidRegularExpression));
}

#[test]
fn members_choose_the_range_assignor() {
    let mut c = coordinator();
    let t = topics(&[("t", 3)]);
    let mut request = join("", &["t"]);
    request.server_assignor = Some("range".into());
    c.consumer_heartbeat(0, request, &t).unwrap();
    let described = c.consumer_describe(GROUP).unwrap();
    assert_eq!(described.assignor_name, "range");
    assert_eq!(described.members[0].target_assignment, all("t", 3));
}

#[test]
fn a_static_instance_is_held_until_released_and_comes_back_with_its_partitions() {
    let mut c = coordinator();
    let t = topics(&[("t", 2)]);
    let mut request = join("", &["t"]);
    request.instance_id = Some("i-1".into());
    let a = c.consumer_heartbeat(0, request.clone(), &t).unwrap();
    assert_eq!(c.consumer_heartbeat(1, request.clone(), &t), Err(GroupError::UnreleasedInstanceId));
    let mut leave = beat(&a.member_id, STATIC_LEAVE_EPOCH, &Assignment::new());
    leave.instance_id = Some("i-1".into());
    assert_eq!(c.consumer_heartbeat(2, leave, &t).unwrap().member_epoch, STATIC_LEAVE_EPOCH);
    let back = c.consumer_heartbeat(3, request, &t).unwrap();
    assert_ne!(back.member_id, a.member_id);
    assert_eq!(back.assignment, Some(all("t", 2)), "the instance's partitions came back with it");
    assert_eq!(c.consumer_describe(GROUP).unwrap().members.len(), 1);
}

#[test]
fn a_full_group_refuses_new_members_and_a_member_that_does_not_revoke_is_removed() {
    let mut c = GroupCoordinator::new(GroupConfig { consumer_max_size: 2, ..config() }, 1, ChaCha8Rng::seed_from_u64(5));
    c.begin_load(0);
    c.finish_load(0, 0);
    let t = topics(&[("t", 2)]);
    let mut slow = join("", &["t"]);
    slow.rebalance_timeout_ms = 300;
    let a = c.consumer_heartbeat(0, slow, &t).unwrap();
    let b = c.consumer_heartbeat(0, join("", &["t"]), &t).unwrap();
    assert_eq!(c.consumer_heartbeat(0, join("", &["t"]), &t), Err(GroupError::GroupMaxSizeReached));
    // a is asked to revoke one partition and never reports it did.
    let asked = c.consumer_heartbeat(10, beat(&a.member_id, 1, &all("t", 2)), &t).unwrap();
    assert_eq!(asked.assignment.map(|a| a.len()), Some(1));
    c.consumer_heartbeat(200, beat(&a.member_id, 1, &all("t", 2)), &t).unwrap();
    c.consumer_heartbeat(200, beat(&b.member_id, b.member_epoch, &Assignment::new()), &t).unwrap();
    c.tick(400);
    let described = c.consumer_describe(GROUP).unwrap();
    assert_eq!(described.members.len(), 1, "past its rebalance timeout, the member that held on was removed");
    assert_eq!(described.members[0].member_id, b.member_id);
}

// ----- the property test -----

#[derive(Debug, Clone)]
enum Op {
    Join(usize, bool),
    Heartbeat(usize),
    Leave(usize),
    Crash(usize),
    Advance(u64),
    Resize(i32),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0usize..4, any::<bool>()).prop_map(|(i, both)| Op::Join(i, both)),
        8 => (0usize..4).prop_map(Op::Heartbeat),
        1 => (0usize..4).prop_map(Op::Leave),
        1 => (0usize..4).prop_map(Op::Crash),
        2 => (1u64..700).prop_map(Op::Advance),
        1 => (1i32..8).prop_map(Op::Resize),
    ]
}

/// A client as librdkafka behaves: it owns what the last answer gave it,
/// reports that on every heartbeat, and starts over when fenced.
#[derive(Debug, Clone, Default)]
struct Client {
    joined: bool,
    member_id: String,
    epoch: i32,
    owned: Assignment,
    subscribed: Vec<String>,
    epochs_seen: Vec<i32>,
    /// When its last heartbeat was answered.
    last_ok_ms: u64,
}

struct Model {
    c: GroupCoordinator,
    now_ms: u64,
    clients: Vec<Client>,
    topics: TopicCounts,
    group_epochs: Vec<i32>,
}

impl Model {
    fn new() -> Self {
        Self { c: coordinator(), now_ms: 0, clients: vec![Client::default(); 4], topics: topics(&[("t", 6), ("u", 3)]), group_epochs: Vec::new() }
    }

    fn heartbeat(&mut self, i: usize) {
        let client = &self.clients[i];
        if !client.joined {
            return;
        }
        let request = if client.epoch == 0 {
            let names: Vec<&str> = client.subscribed.iter().map(String::as_str).collect();
            join(&client.member_id, &names)
        } else {
            beat(&client.member_id, client.epoch, &client.owned)
        };
        let answer = self.c.consumer_heartbeat(self.now_ms, request, &self.topics);
        let client = &mut self.clients[i];
        match answer {
            Ok(r) => {
                client.member_id = r.member_id;
                client.epoch = r.member_epoch;
                if let Some(assignment) = r.assignment {
                    client.owned = assignment;
                }
                client.epochs_seen.push(r.member_epoch);
                client.last_ok_ms = self.now_ms;
            }
            Err(GroupError::FencedMemberEpoch) => {
                client.owned.clear();
                client.epoch = 0;
            }
            Err(GroupError::UnknownMemberId) => {
                client.owned.clear();
                client.epoch = 0;
                client.member_id.clear();
                client.epochs_seen.clear();
            }
            Err(other) => panic!("unexpected heartbeat error {other:?} for client {i}"),
        }
        self.check_safety();
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Join(i, both) => {
                if !self.clients[i].joined {
                    self.clients[i] = Client { joined: true, subscribed: if both { vec!["t".into(), "u".into()] } else { vec!["t".into()] }, last_ok_ms: self.now_ms, ..Client::default() };
                    self.heartbeat(i);
                }
            }
            Op::Heartbeat(i) => self.heartbeat(i),
            Op::Leave(i) => {
                let client = std::mem::take(&mut self.clients[i]);
                if client.joined && !client.member_id.is_empty() && client.epoch > 0 {
                    let request = ConsumerHeartbeat { member_epoch: LEAVE_EPOCH, ..beat(&client.member_id, LEAVE_EPOCH, &Assignment::new()) };
                    let _ = self.c.consumer_heartbeat(self.now_ms, request, &self.topics);
                }
            }
            // A crashed client owns nothing any more; the coordinator finds
            // out only when its session ends.
            Op::Crash(i) => self.clients[i] = Client::default(),
            Op::Advance(ms) => self.advance(ms),
            Op::Resize(n) => {
                // Partitions are only ever added, as in Kafka.
                let current = self.topics["u"];
                self.topics.insert("u".into(), current.max(n));
            }
        }
        if let Some((group_epoch, assignment_epoch)) = self.c.consumer_epochs(GROUP) {
            assert!(assignment_epoch <= group_epoch);
            if let Some(&last) = self.group_epochs.last() {
                assert!(group_epoch >= last, "group epoch went back from {last} to {group_epoch}");
            }
            self.group_epochs.push(group_epoch);
        }
        for client in &self.clients {
            assert!(client.epochs_seen.windows(2).all(|w| w[0] <= w[1]), "member epochs went back: {:?}", client.epochs_seen);
        }
        self.check_safety();
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        // A client that had no answer for a whole session knows the
        // coordinator may have removed it: it gives its partitions up
        // (the Java client and librdkafka do the same).
        let session = u64::from(config().consumer_session_timeout_ms.unsigned_abs());
        for client in &mut self.clients {
            if client.joined && self.now_ms.saturating_sub(client.last_ok_ms) >= session {
                client.owned.clear();
            }
        }
        self.c.tick(self.now_ms);
    }

    fn check_safety(&self) {
        let mut owner: BTreeMap<&(String, i32), usize> = BTreeMap::new();
        for (i, client) in self.clients.iter().enumerate() {
            for tp in &client.owned {
                if let Some(j) = owner.insert(tp, i) {
                    panic!("partition {tp:?} owned by clients {j} and {i} at once (now {} ms)", self.now_ms);
                }
            }
        }
    }

    /// Every live client heartbeats well within its session until the
    /// group is stable; then every subscribed partition has one owner.
    fn settle(&mut self) {
        for _ in 0..50 {
            self.advance(100);
            for i in 0..self.clients.len() {
                self.heartbeat(i);
            }
        }
        let live: Vec<&Client> = self.clients.iter().filter(|c| c.joined).collect();
        let mut wanted = Assignment::new();
        for client in &live {
            for topic in &client.subscribed {
                wanted.extend(all(topic, self.topics[topic]));
            }
        }
        let owned: Assignment = live.iter().flat_map(|c| c.owned.iter().cloned()).collect();
        assert_eq!(owned, wanted, "not every subscribed partition is owned once the group settled");
        if !live.is_empty() {
            let state = self.c.consumer_describe(GROUP).unwrap().state;
            assert_eq!(state, ConsumerGroupState::Stable, "group not stable after settling");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn reconciliation_never_double_assigns_and_converges(ops in proptest::collection::vec(op(), 1..120)) {
        let mut model = Model::new();
        for op in &ops {
            model.step(op);
        }
        model.settle();
    }
}
