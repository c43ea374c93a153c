//! Unit tests of single nodes and tiny hand-driven clusters. The randomized
//! cluster tests live in `broker/tests/raft_cluster.rs`.

use std::collections::BTreeMap;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::*;

fn config(id: NodeId, voters: &[NodeId]) -> RaftConfig {
    let mut config = RaftConfig::new(id, voters.to_vec());
    config.election_tick = 10;
    config.heartbeat_tick = 2;
    config
}

fn node_with(config: RaftConfig, recovered: RecoveredState) -> RaftNode {
    let seed = config.id;
    RaftNode::new(config, recovered, ChaCha8Rng::seed_from_u64(seed)).expect("valid")
}

fn node(id: NodeId, voters: &[NodeId]) -> RaftNode {
    node_with(config(id, voters), RecoveredState::default())
}

fn entries(terms: &[Term]) -> Vec<Entry> {
    terms
        .iter()
        .enumerate()
        .map(|(i, &term)| Entry { term, index: i as u64 + 1, kind: EntryKind::Normal, data: vec![i as u8] })
        .collect()
}

/// Handles all of a node's readies like a driver with perfect storage;
/// returns the messages and the committed entries.
fn drain(node: &mut RaftNode) -> (Vec<Message>, Vec<Entry>) {
    let (mut messages, mut committed) = (Vec::new(), Vec::new());
    while let Some(ready) = node.ready() {
        messages.extend(ready.messages);
        committed.extend(ready.committed_entries);
        node.advance();
    }
    (messages, committed)
}

/// Delivers messages among `nodes` until quiet; returns every message sent.
fn pump(nodes: &mut BTreeMap<NodeId, RaftNode>) -> Vec<Message> {
    let mut log = Vec::new();
    let mut queue: Vec<Message> = Vec::new();
    for node in nodes.values_mut() {
        queue.extend(drain(node).0);
    }
    while !queue.is_empty() {
        let message = queue.remove(0);
        log.push(message.clone());
        if let Some(node) = nodes.get_mut(&message.to) {
            node.step(message);
            queue.extend(drain(node).0);
        }
    }
    log
}

#[test]
fn raft_single_node_elects_itself_commits_and_reads() {
    let mut n = node(1, &[1]);
    n.campaign();
    assert!(n.is_leader());
    assert_eq!(n.term(), 1);
    let id = n.propose(b"x".to_vec()).unwrap();
    let (_, committed) = drain(&mut n);
    assert_eq!(committed.iter().map(|e| (e.index, e.kind)).collect::<Vec<_>>(), vec![(1, EntryKind::Noop), (2, EntryKind::Normal)]);
    assert_eq!(id, EntryId { term: 1, index: 2 });
    n.read_index(b"r".to_vec()).unwrap();
    let ready = n.ready().unwrap();
    assert_eq!(ready.read_states, vec![ReadState { ctx: b"r".to_vec(), index: 2 }]);
    n.advance();
}

#[test]
fn raft_rejects_bad_config_and_bad_recovered_logs() {
    assert!(matches!(RaftNode::new(config(9, &[1, 2]), RecoveredState::default(), ChaCha8Rng::seed_from_u64(0)), Err(RaftError::InvalidConfig(_))));
    let mut gap = entries(&[1, 1, 1]);
    gap.remove(1);
    let recovered = RecoveredState { entries: gap, ..Default::default() };
    assert!(matches!(
        RaftNode::new(config(1, &[1]), recovered, ChaCha8Rng::seed_from_u64(0)),
        Err(RaftError::InvalidRecoveredState(_))
    ));
}

#[test]
fn raft_followers_refuse_proposals_and_reads() {
    let mut n = node(2, &[1, 2, 3]);
    assert_eq!(n.propose(vec![1]), Err(RaftError::NotLeader { leader_hint: None }));
    assert_eq!(n.read_index(vec![1]), Err(RaftError::NotLeader { leader_hint: None }));
}

#[test]
fn raft_three_nodes_elect_and_replicate() {
    let mut nodes: BTreeMap<NodeId, RaftNode> = [1, 2, 3].iter().map(|&id| (id, node(id, &[1, 2, 3]))).collect();
    nodes.get_mut(&1).unwrap().campaign();
    pump(&mut nodes);
    assert!(nodes[&1].is_leader());
    nodes.get_mut(&1).unwrap().propose(b"hello".to_vec()).unwrap();
    pump(&mut nodes);
    for n in nodes.values() {
        assert_eq!(n.log().committed(), 2, "node {}", n.id());
        assert_eq!(n.leader_id(), Some(1));
    }
}

#[test]
fn raft_stale_term_messages_are_answered_not_obeyed() {
    let recovered = RecoveredState { hard_state: HardState { term: 5, voted_for: None }, ..Default::default() };
    let mut n = node_with(config(2, &[1, 2, 3]), recovered);
    n.step(Message {
        from: 1,
        to: 2,
        term: 3,
        body: MessageBody::AppendEntries { prev_log_index: 0, prev_log_term: 0, entries: entries(&[3]), leader_commit: 1 },
    });
    assert_eq!(n.log().last_index(), 0, "stale leader's entries ignored");
    assert_eq!(n.term(), 5);
    let (messages, _) = drain(&mut n);
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0].term, &messages[0].body), (5, &MessageBody::HeartbeatResponse { round: 0 }));
}

#[test]
fn raft_votes_once_per_term_and_only_for_up_to_date_logs() {
    let recovered = RecoveredState { entries: entries(&[1, 2]), ..Default::default() };
    let mut cfg = config(2, &[1, 2, 3]);
    cfg.check_quorum = false;
    let mut n = node_with(cfg, recovered);
    let vote = |from: NodeId, term: Term, last_log_index: LogIndex, last_log_term: Term| Message {
        from,
        to: 2,
        term,
        body: MessageBody::VoteRequest { last_log_index, last_log_term },
    };
    n.step(vote(1, 3, 1, 2)); // shorter log with the same last term: up to date? no (index 1 < 2)
    n.step(vote(3, 3, 5, 1)); // longer log but older last term: not up to date
    n.step(vote(1, 4, 2, 2)); // equal log, new term: granted
    n.step(vote(3, 4, 9, 9)); // already voted in term 4
    let (messages, _) = drain(&mut n);
    let grants: Vec<(NodeId, Term, bool)> = messages
        .iter()
        .map(|m| match m.body {
            MessageBody::VoteResponse { granted } => (m.to, m.term, granted),
            _ => panic!("unexpected {m:?}"),
        })
        .collect();
    assert_eq!(grants, vec![(1, 3, false), (3, 3, false), (1, 4, true), (3, 4, false)]);
    assert_eq!(n.voted_for(), Some(1));
}

#[test]
fn raft_fast_backtracking_skips_whole_terms() {
    // Figure 7 (f)-like: the follower holds a long run of stale terms.
    let leader_log = entries(&[1, 1, 1, 4, 4, 5, 5, 6, 6, 6]);
    let follower_log = entries(&[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3]);
    let mut nodes = BTreeMap::new();
    for (id, log) in [(1, leader_log.clone()), (2, follower_log), (3, leader_log)] {
        let mut cfg = config(id, &[1, 2, 3]);
        cfg.prevote = false;
        let recovered = RecoveredState { hard_state: HardState { term: 6, voted_for: None }, entries: log, snapshot: None };
        nodes.insert(id, node_with(cfg, recovered));
    }
    nodes.get_mut(&1).unwrap().campaign();
    let sent = pump(&mut nodes);
    assert!(nodes[&1].is_leader());
    let rejections = sent
        .iter()
        .filter(|m| m.from == 2 && matches!(m.body, MessageBody::AppendEntriesResponse { result: Err(_) }))
        .count();
    assert!(rejections <= 3, "one rejection per conflicting term at most, got {rejections}");
    let (l, f) = (nodes[&1].log(), nodes[&2].log());
    assert_eq!(f.entries(1, f.last_index()), l.entries(1, l.last_index()));
    assert_eq!(f.committed(), l.committed());
}

#[test]
fn raft_check_quorum_leader_steps_down_when_isolated() {
    for check_quorum in [true, false] {
        let mut nodes = BTreeMap::new();
        for id in [1, 2, 3] {
            let mut cfg = config(id, &[1, 2, 3]);
            cfg.check_quorum = check_quorum;
            nodes.insert(id, node_with(cfg, RecoveredState::default()));
        }
        nodes.get_mut(&1).unwrap().campaign();
        pump(&mut nodes);
        let mut leader = nodes.remove(&1).unwrap();
        assert!(leader.is_leader());
        // Nobody answers any more.
        for _ in 0..25 {
            leader.tick();
            drain(&mut leader);
        }
        assert_eq!(leader.is_leader(), !check_quorum, "check_quorum={check_quorum}");
    }
}

#[test]
fn raft_read_index_waits_for_current_term_commit_and_quorum() {
    let mut nodes: BTreeMap<NodeId, RaftNode> = [1, 2, 3].iter().map(|&id| (id, node(id, &[1, 2, 3]))).collect();
    nodes.get_mut(&1).unwrap().campaign();
    // Deliver votes until node 1 leads, but not its no-op yet.
    let mut queue: Vec<Message> = drain(nodes.get_mut(&1).unwrap()).0;
    while !nodes[&1].is_leader() {
        let m = queue.remove(0);
        let to = m.to;
        nodes.get_mut(&to).unwrap().step(m);
        if !nodes[&1].is_leader() {
            queue.extend(drain(nodes.get_mut(&to).unwrap()).0);
        }
    }
    let leader = nodes.get_mut(&1).unwrap();
    leader.read_index(b"q".to_vec()).unwrap();
    let mut pending = Vec::new();
    while let Some(ready) = leader.ready() {
        pending.extend(ready.read_states);
        queue.extend(ready.messages);
        leader.advance();
    }
    assert!(pending.is_empty(), "no answer before the no-op commits");
    // Let everything flow: the no-op commits, the read is confirmed.
    for m in queue {
        let to = m.to;
        nodes.get_mut(&to).unwrap().step(m);
    }
    let mut answered = Vec::new();
    for _ in 0..5 {
        let mut queue = Vec::new();
        for node in nodes.values_mut() {
            while let Some(ready) = node.ready() {
                queue.extend(ready.messages);
                answered.extend(ready.read_states);
                node.advance();
            }
        }
        for m in queue {
            let to = m.to;
            nodes.get_mut(&to).unwrap().step(m);
        }
    }
    assert_eq!(answered, vec![ReadState { ctx: b"q".to_vec(), index: 1 }]);
}

#[test]
fn raft_leadership_loss_drops_pending_reads() {
    let mut nodes: BTreeMap<NodeId, RaftNode> = [1, 2, 3].iter().map(|&id| (id, node(id, &[1, 2, 3]))).collect();
    nodes.get_mut(&1).unwrap().campaign();
    pump(&mut nodes);
    let leader = nodes.get_mut(&1).unwrap();
    leader.read_index(b"lost".to_vec()).unwrap();
    drain(leader);
    // A higher term shows up before any heartbeat response.
    leader.step(Message { from: 2, to: 1, term: 9, body: MessageBody::HeartbeatResponse { round: 0 } });
    let ready = leader.ready().unwrap();
    assert_eq!(ready.dropped_reads, vec![b"lost".to_vec()]);
    leader.advance();
    assert!(!leader.is_leader());
}

#[test]
#[should_panic(expected = "Ready is outstanding")]
fn raft_input_between_ready_and_advance_is_a_driver_bug() {
    let mut n = node(1, &[1]);
    n.campaign();
    let _ready = n.ready();
    n.tick();
}

#[test]
fn raft_compaction_requires_applied_entries() {
    let mut n = node(1, &[1]);
    n.campaign();
    n.propose(b"a".to_vec()).unwrap();
    assert_eq!(n.compact(2, vec![]), Err(RaftError::CompactBeyondApplied { requested: 2, applied: 0 }));
    drain(&mut n);
    assert_eq!(n.compact(2, b"state".to_vec()), Ok(true));
    let ready = n.ready().unwrap();
    assert_eq!(ready.snapshot.as_ref().map(|s| s.meta), Some(SnapshotMeta { last_index: 2, last_term: 1 }));
    assert!(!ready.restore_snapshot);
    n.advance();
    assert_eq!(n.log().first_index(), 3);
    assert_eq!(n.compact(1, vec![]), Ok(false));
}

// ----- garbage from the network never panics -----------------------------------

fn arb_entry() -> impl Strategy<Value = Entry> {
    (0u64..8, 0u64..40, any::<bool>()).prop_map(|(term, index, noop)| Entry {
        term,
        index,
        kind: if noop { EntryKind::Noop } else { EntryKind::Normal },
        data: vec![],
    })
}

fn arb_body() -> impl Strategy<Value = MessageBody> {
    prop_oneof![
        (0u64..40, 0u64..8).prop_map(|(i, t)| MessageBody::PreVoteRequest { last_log_index: i, last_log_term: t }),
        any::<bool>().prop_map(|granted| MessageBody::PreVoteResponse { granted }),
        (0u64..40, 0u64..8).prop_map(|(i, t)| MessageBody::VoteRequest { last_log_index: i, last_log_term: t }),
        any::<bool>().prop_map(|granted| MessageBody::VoteResponse { granted }),
        (0u64..40, 0u64..8, prop::collection::vec(arb_entry(), 0..4), 0u64..40).prop_map(|(p, t, e, c)| {
            MessageBody::AppendEntries { prev_log_index: p, prev_log_term: t, entries: e, leader_commit: c }
        }),
        (0u64..40).prop_map(|i| MessageBody::AppendEntriesResponse { result: Ok(i) }),
        (0u64..40, prop::option::of(0u64..8), 0u64..40).prop_map(|(r, t, c)| MessageBody::AppendEntriesResponse {
            result: Err(RejectHint { rejected_prev_index: r, conflict_term: t, conflict_index: c })
        }),
        (0u64..40, 0u64..5).prop_map(|(commit, round)| MessageBody::Heartbeat { commit, round }),
        (0u64..5).prop_map(|round| MessageBody::HeartbeatResponse { round }),
        (0u64..40, 0u64..8).prop_map(|(i, t)| MessageBody::InstallSnapshot {
            snapshot: Snapshot { meta: SnapshotMeta { last_index: i, last_term: t }, data: vec![] }
        }),
    ]
}

fn arb_message() -> impl Strategy<Value = Message> {
    (0u64..5, 0u64..5, 0u64..8, arb_body()).prop_map(|(from, to, term, body)| Message { from, to, term, body })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, .. ProptestConfig::default() })]

    /// A node, leader or follower, survives arbitrary (even Byzantine-looking)
    /// messages without panicking, and keeps its own invariants.
    #[test]
    fn raft_arbitrary_messages_never_panic(
        lead in any::<bool>(),
        messages in prop::collection::vec(arb_message(), 1..60),
        ticks in prop::collection::vec(any::<bool>(), 60),
    ) {
        let mut n = node_with(config(1, &[1, 2, 3]), RecoveredState {
            hard_state: HardState { term: 2, voted_for: None },
            entries: entries(&[1, 1, 2, 2]),
            snapshot: None,
        });
        if lead {
            n.campaign();
            drain(&mut n);
            for from in [2, 3] {
                n.step(Message { from, to: 1, term: 3, body: MessageBody::PreVoteResponse { granted: true } });
                n.step(Message { from, to: 1, term: n.term(), body: MessageBody::VoteResponse { granted: true } });
            }
            drain(&mut n);
        }
        let mut last_term = n.term();
        let mut last_commit = n.log().committed();
        for (message, tick) in messages.into_iter().zip(ticks) {
            n.step(message);
            if tick {
                n.tick();
            }
            drain(&mut n);
            prop_assert!(n.term() >= last_term);
            prop_assert!(n.log().committed() >= last_commit);
            last_term = n.term();
            last_commit = n.log().committed();
        }
    }
}
