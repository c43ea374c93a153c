//! Cluster-level tests of the sans-IO Raft core: an in-test network that
//! drops, delays, duplicates and reorders messages, partitions nodes and
//! crashes them, with Raft's safety properties checked after every step.
//!
//! Crash model: a node's durable state is exactly what was in the `Ready`
//! bundles it acknowledged (`advance`); a crash throws away the node object,
//! including anything it changed in memory since its last `Ready`.
//!
//! Run: `cargo test -p dlog-broker --test raft_cluster`. The property test
//! runs 256 cases by default (about 10 s in debug); for a longer search:
//! `PROPTEST_CASES=4000 cargo test -p dlog-broker --test raft_cluster raft_random`.
//! Set `RAFT_COMMIT_OLD_TERM_BY_COUNT=1` to turn on the Figure 8 knob in the
//! random search and watch it find (and shrink) a violation;
//! `RAFT_TEST_STATS=1` prints per-case coverage numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use broker::raft::{
    Entry, EntryKind, HardState, LogIndex, Message, NodeId, RaftConfig, RaftNode, Ready, RecoveredState, Snapshot,
    Term,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

// ----- the model of durable storage and of the application ------------------

/// What survives a crash: the content of acknowledged `Ready`s.
#[derive(Debug, Clone, Default)]
struct Durable {
    hard_state: HardState,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
}

impl Durable {
    fn persist(&mut self, ready: &Ready) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(snapshot) = &ready.snapshot {
            if ready.restore_snapshot {
                self.entries.clear();
            } else {
                self.entries.retain(|e| e.index > snapshot.meta.last_index);
            }
            self.snapshot = Some(snapshot.clone());
        }
        if let Some(hard_state) = ready.hard_state {
            if hard_state.term < self.hard_state.term {
                problems.push(format!("durable term decreased {} -> {}", self.hard_state.term, hard_state.term));
            }
            if hard_state.term == self.hard_state.term
                && self.hard_state.voted_for.is_some()
                && hard_state.voted_for != self.hard_state.voted_for
            {
                problems.push(format!("vote changed within term {}", hard_state.term));
            }
            self.hard_state = hard_state;
        }
        if let Some(first) = ready.entries.first() {
            self.entries.retain(|e| e.index < first.index);
            self.entries.extend(ready.entries.iter().cloned());
        }
        problems
    }

    fn recovered(&self) -> RecoveredState {
        RecoveredState {
            hard_state: self.hard_state,
            snapshot: self.snapshot.clone(),
            entries: self.entries.clone(),
        }
    }
}

/// The application: remembers every applied entry. Its snapshot is that list.
#[derive(Debug, Clone, Default)]
struct App {
    applied: Vec<(LogIndex, Term, Vec<u8>)>,
    last_applied: LogIndex,
}

impl App {
    fn from_snapshot(snapshot: &Snapshot) -> Self {
        let applied: Vec<(LogIndex, Term, Vec<u8>)> =
            serde_json::from_slice(&snapshot.data).expect("test snapshot decodes");
        Self { applied, last_applied: snapshot.meta.last_index }
    }
    fn snapshot_data(&self) -> Vec<u8> {
        serde_json::to_vec(&self.applied).expect("encodes")
    }
}

// ----- invariants ------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Violation {
    ElectionSafety { term: Term, leaders: (NodeId, NodeId) },
    LogMatching { nodes: (NodeId, NodeId), index: LogIndex },
    LeaderCompleteness { leader: NodeId, term: Term, index: LogIndex },
    StateMachineSafety { index: LogIndex, first: (NodeId, Term), second: (NodeId, Term) },
    StaleRead { node: NodeId, index: LogIndex, required: LogIndex },
    Durability { node: NodeId, problem: String },
    Monotonicity { node: NodeId, problem: String },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::ElectionSafety { term, leaders } => {
                write!(f, "election safety: nodes {} and {} both led term {term}", leaders.0, leaders.1)
            }
            Violation::LogMatching { nodes, index } => write!(
                f,
                "log matching: nodes {} and {} agree on a later entry but differ at index {index}",
                nodes.0, nodes.1
            ),
            Violation::LeaderCompleteness { leader, term, index } => {
                write!(f, "leader completeness: leader {leader} of term {term} lacks committed index {index}")
            }
            Violation::StateMachineSafety { index, first, second } => write!(
                f,
                "state machine safety: at index {index} node {} applied an entry of term {} but node {} applied one of term {}",
                first.0, first.1, second.0, second.1
            ),
            Violation::StaleRead { node, index, required } => {
                write!(f, "linearizability: read on {node} at index {index}, but {required} was committed before it")
            }
            Violation::Durability { node, problem } => write!(f, "durability on {node}: {problem}"),
            Violation::Monotonicity { node, problem } => write!(f, "monotonicity on {node}: {problem}"),
        }
    }
}

#[derive(Debug, Default)]
struct Checker {
    leader_of_term: BTreeMap<Term, NodeId>,
    /// Every applied entry: index -> (term, data, first node that applied it).
    applied: BTreeMap<LogIndex, (Term, Vec<u8>, NodeId)>,
    /// Term in which each node last was seen as leader (detects new terms).
    seen_leading: BTreeMap<NodeId, Term>,
    /// Per node since its last restart: (term, commit).
    last_seen: BTreeMap<NodeId, (Term, LogIndex)>,
    /// Read ctx -> the highest index committed when the read started.
    read_required: BTreeMap<Vec<u8>, LogIndex>,
    violations: Vec<Violation>,
}

impl Checker {
    fn report(&mut self, violation: Violation) {
        if !self.violations.contains(&violation) {
            self.violations.push(violation);
        }
    }

    fn on_apply(&mut self, node: NodeId, index: LogIndex, term: Term, data: &[u8]) {
        match self.applied.get(&index) {
            Some((t, d, first)) => {
                if *t != term || d.as_slice() != data {
                    let violation =
                        Violation::StateMachineSafety { index, first: (*first, *t), second: (node, term) };
                    self.report(violation);
                }
            }
            None => {
                self.applied.insert(index, (term, data.to_vec(), node));
            }
        }
    }

    fn check_nodes(&mut self, nodes: &BTreeMap<NodeId, &RaftNode>) {
        for (&id, node) in nodes {
            // Monotonic term and commit while the node lives.
            let now = (node.term(), node.log().committed());
            if let Some(&(term, commit)) = self.last_seen.get(&id) {
                if now.0 < term || now.1 < commit {
                    self.report(Violation::Monotonicity {
                        node: id,
                        problem: format!("(term, commit) went from ({term}, {commit}) to {now:?}"),
                    });
                }
            }
            self.last_seen.insert(id, now);
            if node.is_leader() {
                let term = node.term();
                match self.leader_of_term.get(&term) {
                    Some(&other) if other != id => {
                        self.report(Violation::ElectionSafety { term, leaders: (other, id) })
                    }
                    _ => {
                        self.leader_of_term.insert(term, id);
                    }
                }
                if self.seen_leading.get(&id) != Some(&term) {
                    self.seen_leading.insert(id, term);
                    // A new leader must hold every entry known committed.
                    let log = node.log();
                    let missing: Vec<LogIndex> = self
                        .applied
                        .iter()
                        .filter(|(&index, (t, _, _))| {
                            index > log.snapshot_index() && log.term(index) != Some(*t)
                        })
                        .map(|(&index, _)| index)
                        .collect();
                    for index in missing {
                        self.report(Violation::LeaderCompleteness { leader: id, term, index });
                    }
                }
            }
        }
        // Log matching on every pair of live nodes.
        let ids: Vec<NodeId> = nodes.keys().copied().collect();
        for (i, &a) in ids.iter().enumerate() {
            for &b in &ids[i + 1..] {
                let (la, lb) = (nodes[&a].log(), nodes[&b].log());
                let low = la.first_index().max(lb.first_index());
                let high = la.last_index().min(lb.last_index());
                let mut agreed = false;
                let mut index = high;
                while index >= low && index > 0 {
                    let (ea, eb) = (la.entry(index), lb.entry(index));
                    if ea.map(|e| e.term) == eb.map(|e| e.term) {
                        agreed = true;
                    }
                    if agreed && ea != eb {
                        self.report(Violation::LogMatching { nodes: (a, b), index });
                        break;
                    }
                    index -= 1;
                }
            }
        }
    }
}

// ----- the cluster -------------------------------------------------------------

struct Slot {
    node: Option<RaftNode>,
    durable: Durable,
    app: App,
    boots: u64,
}

struct Cluster {
    ids: Vec<NodeId>,
    config: RaftConfig,
    seed: u64,
    slots: BTreeMap<NodeId, Slot>,
    network: Vec<Message>,
    /// Directed links that currently drop messages.
    cut: BTreeSet<(NodeId, NodeId)>,
    checker: Checker,
    next_read: u64,
    delivered: u64,
    snapshots_restored: u64,
    reads_confirmed: u64,
    /// False models `raft.fsync=false` at its worst: nothing written since
    /// boot reaches the disk before a crash.
    fsync: bool,
}

impl Cluster {
    fn new(size: u64, seed: u64, configure: impl Fn(&mut RaftConfig)) -> Self {
        let ids: Vec<NodeId> = (1..=size).collect();
        let mut config = RaftConfig::new(1, ids.clone());
        config.election_tick = 6;
        config.heartbeat_tick = 2;
        configure(&mut config);
        let mut cluster = Self {
            ids: ids.clone(),
            config,
            seed,
            slots: BTreeMap::new(),
            network: Vec::new(),
            cut: BTreeSet::new(),
            checker: Checker::default(),
            next_read: 0,
            delivered: 0,
            snapshots_restored: 0,
            reads_confirmed: 0,
            fsync: true,
        };
        for id in ids {
            cluster.slots.insert(id, Slot { node: None, durable: Durable::default(), app: App::default(), boots: 0 });
            cluster.restart(id);
        }
        cluster
    }

    fn node(&self, id: NodeId) -> &RaftNode {
        self.slots[&id].node.as_ref().expect("node is up")
    }

    fn node_mut(&mut self, id: NodeId) -> Option<&mut RaftNode> {
        self.slots.get_mut(&id).and_then(|s| s.node.as_mut())
    }

    fn restart(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).expect("slot");
        if slot.node.is_some() {
            return;
        }
        slot.boots += 1;
        let mut config = self.config.clone();
        config.id = id;
        let rng = ChaCha8Rng::seed_from_u64(self.seed ^ (id << 32) ^ slot.boots);
        let node = RaftNode::new(config, slot.durable.recovered(), rng).expect("recovered state is valid");
        slot.app = slot.durable.snapshot.as_ref().map(App::from_snapshot).unwrap_or_default();
        slot.node = Some(node);
        self.checker.last_seen.remove(&id);
        self.checker.seen_leading.remove(&id);
    }

    fn crash(&mut self, id: NodeId) {
        self.slots.get_mut(&id).expect("slot").node = None;
    }

    /// Handles every pending `Ready` of `id` as a driver would.
    fn flush(&mut self, id: NodeId) {
        loop {
            let slot = self.slots.get_mut(&id).expect("slot");
            let Some(node) = slot.node.as_mut() else { return };
            let Some(ready) = node.ready() else { return };
            if self.fsync {
                for problem in slot.durable.persist(&ready) {
                    self.checker.report(Violation::Durability { node: id, problem });
                }
            }
            self.network.extend(ready.messages.iter().cloned());
            if ready.restore_snapshot {
                let snapshot = ready.snapshot.as_ref().expect("restore has a snapshot");
                slot.app = App::from_snapshot(snapshot);
                self.snapshots_restored += 1;
                for (index, term, data) in slot.app.applied.clone() {
                    self.checker.on_apply(id, index, term, &data);
                }
            }
            for entry in &ready.committed_entries {
                assert_eq!(entry.index, slot.app.last_applied + 1, "node {id} applies in order");
                slot.app.last_applied = entry.index;
                let data = if entry.kind == EntryKind::Noop { b"<noop>".to_vec() } else { entry.data.clone() };
                slot.app.applied.push((entry.index, entry.term, data.clone()));
                self.checker.on_apply(id, entry.index, entry.term, &data);
            }
            for read in &ready.read_states {
                let required = self.checker.read_required.remove(&read.ctx).unwrap_or(0);
                self.reads_confirmed += 1;
                if read.index < required {
                    self.checker.report(Violation::StaleRead { node: id, index: read.index, required });
                }
            }
            for ctx in &ready.dropped_reads {
                self.checker.read_required.remove(ctx);
            }
            self.slots.get_mut(&id).and_then(|s| s.node.as_mut()).expect("up").advance();
        }
    }

    fn flush_all(&mut self) {
        for id in self.ids.clone() {
            self.flush(id);
        }
    }

    fn deliver_message(&mut self, message: Message) {
        if self.cut.contains(&(message.from, message.to)) {
            return;
        }
        let to = message.to;
        if let Some(node) = self.node_mut(to) {
            node.step(message);
            self.delivered += 1;
        }
    }

    fn deliver(&mut self, position: usize) {
        if self.network.is_empty() {
            return;
        }
        let message = self.network.remove(position % self.network.len());
        self.deliver_message(message);
    }

    /// Delivers in FIFO order, flushing the receiver each time, until the
    /// network is empty, `stop` holds, or `budget` messages went by.
    fn deliver_until(&mut self, budget: usize, stop: impl Fn(&Cluster) -> bool) -> bool {
        for _ in 0..budget {
            if stop(self) {
                return true;
            }
            if self.network.is_empty() {
                return stop(self);
            }
            let message = self.network.remove(0);
            let to = message.to;
            self.deliver_message(message);
            self.flush(to);
            self.check();
        }
        stop(self)
    }

    fn deliver_all(&mut self) {
        self.deliver_until(20_000, |_| false);
    }

    fn tick(&mut self, id: NodeId) {
        if let Some(node) = self.node_mut(id) {
            node.tick();
        }
    }

    /// One synchronous round: everyone ticks, then the network drains.
    fn round(&mut self) {
        for id in self.ids.clone() {
            self.tick(id);
        }
        self.flush_all();
        self.check();
        self.deliver_all();
    }

    fn propose(&mut self, id: NodeId, data: Vec<u8>) -> Option<broker::raft::EntryId> {
        self.node_mut(id).and_then(|n| n.propose(data).ok())
    }

    fn read(&mut self, id: NodeId) {
        self.next_read += 1;
        let ctx = self.next_read.to_le_bytes().to_vec();
        let required = self.checker.applied.keys().next_back().copied().unwrap_or(0);
        let accepted = self.node_mut(id).is_some_and(|n| n.read_index(ctx.clone()).is_ok());
        if accepted {
            self.checker.read_required.insert(ctx, required);
        }
    }

    fn compact(&mut self, id: NodeId) {
        let slot = self.slots.get_mut(&id).expect("slot");
        let Some(node) = slot.node.as_mut() else { return };
        let applied = node.log().applied();
        if applied > node.log().snapshot_index() {
            assert_eq!(applied, slot.app.last_applied);
            node.compact(applied, slot.app.snapshot_data()).expect("compact at applied index");
        }
    }

    /// Splits the cluster: links between different groups are cut.
    fn partition(&mut self, groups: &[&[NodeId]]) {
        self.cut.clear();
        for &a in &self.ids {
            for &b in &self.ids {
                let same = groups.iter().any(|g| g.contains(&a) && g.contains(&b));
                if a != b && !same {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    fn heal(&mut self) {
        self.cut.clear();
    }

    fn live_nodes(&self) -> BTreeMap<NodeId, &RaftNode> {
        self.slots.iter().filter_map(|(&id, s)| s.node.as_ref().map(|n| (id, n))).collect()
    }

    fn check(&mut self) {
        let mut checker = std::mem::take(&mut self.checker);
        checker.check_nodes(&self.live_nodes());
        self.checker = checker;
    }

    /// The live leader with the highest term, if any.
    fn leader(&self) -> Option<NodeId> {
        self.live_nodes().into_iter().filter(|(_, n)| n.is_leader()).max_by_key(|(_, n)| n.term()).map(|(id, _)| id)
    }

    fn total_elections(&self) -> u64 {
        self.live_nodes().values().map(|n| n.elections_started()).sum()
    }

    fn max_term(&self) -> Term {
        self.live_nodes().values().map(|n| n.term()).max().unwrap_or(0)
    }

    fn assert_safe(&self) {
        if !self.checker.violations.is_empty() {
            let list: Vec<String> = self.checker.violations.iter().map(|v| v.to_string()).collect();
            panic!("raft invariants violated:\n  {}", list.join("\n  "));
        }
    }

    /// After faults stop: rounds until a leader exists and a fresh proposal
    /// is applied by a majority. Returns (rounds to leader, rounds to commit).
    fn converge(&mut self, max_rounds: u32) -> Result<(u32, u32), String> {
        self.heal();
        for id in self.ids.clone() {
            self.restart(id);
        }
        let mut rounds = 0;
        loop {
            if let Some(leader) = self.leader() {
                // A stale leader may linger in memory until it hears the new
                // term; insist on one a majority follows.
                let term = self.node(leader).term();
                let followers = self
                    .live_nodes()
                    .values()
                    .filter(|n| n.term() == term && n.leader_id() == Some(leader))
                    .count();
                if followers >= self.config.quorum() {
                    break;
                }
            }
            if rounds >= max_rounds {
                return Err(format!("no leader after {rounds} rounds"));
            }
            self.round();
            rounds += 1;
        }
        let to_leader = rounds;
        let marker = format!("liveness-{}", self.seed).into_bytes();
        let mut proposed: Option<(NodeId, broker::raft::EntryId)> = None;
        loop {
            // A client retries on the current leader if its proposal was lost
            // in a leader change.
            if let Some(leader) = self.leader() {
                let lost = match proposed {
                    None => true,
                    Some((at, id)) => {
                        at != leader && self.node(leader).log().term(id.index) != Some(id.term)
                    }
                };
                if lost {
                    proposed = self.propose(leader, marker.clone()).map(|id| (leader, id));
                    self.flush_all();
                    self.deliver_all();
                }
            }
            let appliers = self
                .slots
                .values()
                .filter(|s| s.app.applied.iter().any(|(_, _, d)| *d == marker))
                .count();
            if appliers >= self.config.quorum() {
                return Ok((to_leader, rounds - to_leader));
            }
            if rounds >= max_rounds {
                let states: Vec<String> = self
                    .live_nodes()
                    .iter()
                    .map(|(id, n)| {
                        format!(
                            "{id}: {:?} term {} leader {:?} last {} commit {}",
                            n.role(),
                            n.term(),
                            n.leader_id(),
                            n.log().last_index(),
                            n.log().committed()
                        )
                    })
                    .collect();
                return Err(format!("proposal {proposed:?} not applied by a majority after {rounds} rounds: {states:?}"));
            }
            self.round();
            rounds += 1;
        }
    }
}

// ----- random fault schedules ----------------------------------------------------

#[derive(Debug, Clone)]
enum Action {
    /// Everyone ticks and flushes, then every message in flight *now* is
    /// delivered (replies wait for the next round): one network hop.
    Round,
    TickAll,
    Tick(u64),
    Deliver(usize),
    DeliverAll,
    Drop(usize),
    Duplicate(usize),
    Flush(u64),
    FlushAll,
    Propose(u64, u8),
    ProposeToLeader(u8),
    Read(u64),
    Partition(u8),
    Heal,
    Crash(u64),
    Restart(u64),
    Compact(u64),
    /// An election timeout fires on this node now (adversarial timing).
    Campaign(u64),
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        15 => Just(Action::Round),
        5 => Just(Action::TickAll),
        4 => any::<u64>().prop_map(Action::Tick),
        20 => any::<usize>().prop_map(Action::Deliver),
        3 => Just(Action::DeliverAll),
        4 => any::<usize>().prop_map(Action::Drop),
        3 => any::<usize>().prop_map(Action::Duplicate),
        6 => any::<u64>().prop_map(Action::Flush),
        6 => Just(Action::FlushAll),
        2 => (any::<u64>(), any::<u8>()).prop_map(|(n, v)| Action::Propose(n, v)),
        8 => any::<u8>().prop_map(Action::ProposeToLeader),
        3 => any::<u64>().prop_map(Action::Read),
        3 => any::<u8>().prop_map(Action::Partition),
        3 => Just(Action::Heal),
        3 => any::<u64>().prop_map(Action::Crash),
        4 => any::<u64>().prop_map(Action::Restart),
        3 => any::<u64>().prop_map(Action::Compact),
        3 => any::<u64>().prop_map(Action::Campaign),
    ]
}

fn apply_action(cluster: &mut Cluster, action: &Action) {
    let pick = |n: u64| 1 + n % cluster.ids.len() as u64;
    match *action {
        Action::Round => {
            for id in cluster.ids.clone() {
                cluster.tick(id);
            }
            cluster.flush_all();
            for message in std::mem::take(&mut cluster.network) {
                let to = message.to;
                cluster.deliver_message(message);
                cluster.flush(to);
            }
        }
        Action::TickAll => {
            for id in cluster.ids.clone() {
                cluster.tick(id);
            }
        }
        Action::Tick(n) => cluster.tick(pick(n)),
        Action::Deliver(i) => cluster.deliver(i),
        Action::DeliverAll => {
            let pending = std::mem::take(&mut cluster.network);
            for message in pending {
                cluster.deliver_message(message);
            }
        }
        Action::Drop(i) => {
            if !cluster.network.is_empty() {
                let len = cluster.network.len();
                cluster.network.remove(i % len);
            }
        }
        Action::Duplicate(i) => {
            if !cluster.network.is_empty() {
                let len = cluster.network.len();
                let copy = cluster.network[i % len].clone();
                cluster.network.push(copy);
            }
        }
        Action::Flush(n) => cluster.flush(pick(n)),
        Action::FlushAll => cluster.flush_all(),
        Action::Propose(n, v) => {
            let id = pick(n);
            cluster.propose(id, vec![v, (id as u8)]);
        }
        Action::ProposeToLeader(v) => {
            if let Some(id) = cluster.leader() {
                cluster.propose(id, vec![v, (id as u8)]);
            }
        }
        Action::Read(n) => {
            // On any node that believes it leads (deposed leaders included:
            // that is where stale reads would come from); sometimes on
            // whoever, to exercise NotLeader.
            let leaders: Vec<NodeId> =
                cluster.live_nodes().iter().filter(|(_, node)| node.is_leader()).map(|(&id, _)| id).collect();
            let id = if n % 4 == 0 || leaders.is_empty() { pick(n) } else { leaders[(n / 4) as usize % leaders.len()] };
            cluster.read(id);
        }
        Action::Partition(mask) => {
            let (a, b): (Vec<NodeId>, Vec<NodeId>) = cluster.ids.iter().partition(|&&id| mask & (1 << (id - 1)) != 0);
            cluster.partition(&[&a, &b]);
        }
        Action::Heal => cluster.heal(),
        Action::Crash(n) => {
            // Keep a majority runnable most of the time; crashes still pile up.
            cluster.crash(pick(n));
        }
        Action::Restart(n) => cluster.restart(pick(n)),
        Action::Compact(n) => cluster.compact(pick(n)),
        Action::Campaign(n) => {
            if let Some(node) = cluster.node_mut(pick(n)) {
                node.campaign();
            }
        }
    }
}

fn proptest_cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(256)
}

/// Liveness bound: rounds (each one tick of every node plus a full network
/// drain) allowed after faults stop, for a leader plus one commit.
const LIVENESS_ROUNDS: u32 = 60;

proptest! {
    #![proptest_config(ProptestConfig {
        cases: proptest_cases(),
        failure_persistence: None,
        max_shrink_iters: 2000,
        .. ProptestConfig::default()
    })]

    /// Safety under random faults, then liveness once they stop.
    #[test]
    fn raft_random_faults_keep_safety_and_recover(
        size in prop::sample::select(vec![3u64, 5]),
        seed in any::<u64>(),
        prevote in any::<bool>(),
        check_quorum in any::<bool>(),
        max_entries_per_append in 1usize..=3,
        actions in prop::collection::vec(action(), 100..500),
    ) {
        let mut cluster = Cluster::new(size, seed, |c| {
            c.prevote = prevote;
            c.check_quorum = check_quorum;
            c.max_entries_per_append = max_entries_per_append;
            // Teaching experiment: with this set the search should fail
            // and shrink to a Figure 8 counterexample.
            c.commit_old_term_entries_by_count = std::env::var_os("RAFT_COMMIT_OLD_TERM_BY_COUNT").is_some();
        });
        for action in &actions {
            apply_action(&mut cluster, action);
            cluster.check();
            if !cluster.checker.violations.is_empty() {
                break;
            }
        }
        cluster.assert_safe();
        if std::env::var_os("RAFT_TEST_STATS").is_some() {
            eprintln!(
                "stats: nodes {size} prevote {prevote} check_quorum {check_quorum} actions {} delivered {} terms-with-leader {} committed {} snapshots-restored {} reads {}",
                actions.len(),
                cluster.delivered,
                cluster.checker.leader_of_term.len(),
                cluster.checker.applied.len(),
                cluster.snapshots_restored,
                cluster.reads_confirmed
            );
        }
        let outcome = cluster.converge(LIVENESS_ROUNDS);
        cluster.assert_safe();
        if std::env::var_os("RAFT_TEST_STATS").is_some() {
            eprintln!("liveness-rounds: {outcome:?}");
        }
        prop_assert!(outcome.is_ok(), "liveness: {:?}", outcome);
    }
}

// ----- scripted scenarios -----------------------------------------------------------

/// Figure 8 of the Raft paper, scripted. Returns the violations seen.
fn figure8(commit_old_term_entries_by_count: bool) -> Vec<Violation> {
    let mut c = Cluster::new(5, 8, |cfg| {
        cfg.prevote = false;
        cfg.check_quorum = false;
        cfg.max_entries_per_append = 1;
        cfg.election_tick = 1000; // nothing times out: elections are scripted
        cfg.heartbeat_tick = 500;
        cfg.commit_old_term_entries_by_count = commit_old_term_entries_by_count;
    });
    // (a) S1 leads term 1; its no-op (index 1) commits everywhere.
    c.node_mut(1).expect("up").campaign();
    c.flush(1);
    c.deliver_all();
    assert!(c.node(1).is_leader() && c.node(1).term() == 1);
    // S1 appends A at index 2 but only S2 gets it.
    c.partition(&[&[1, 2], &[3], &[4], &[5]]);
    c.propose(1, b"A".to_vec()).expect("S1 leads");
    c.flush(1);
    c.deliver_all();
    assert_eq!(c.node(2).log().last_index(), 2);
    // (b) S1 crashes; S5 wins term 2 with S3 and S4, appends its no-op at
    // index 2 and B at index 3 locally, then crashes before replicating.
    c.crash(1);
    c.partition(&[&[2], &[3, 4, 5]]);
    c.node_mut(5).expect("up").campaign();
    c.flush(5);
    assert!(c.deliver_until(100, |c| c.node(5).is_leader()));
    c.partition(&[&[2], &[3, 4], &[5]]);
    c.propose(5, b"B".to_vec()).expect("S5 leads");
    c.flush(5);
    c.deliver_all();
    c.crash(5);
    // (c) S1 restarts and wins term 3 (S3 already voted in term 2, so it
    // takes two campaigns). It replicates A (index 2, term 1) to S3 but the
    // link drops its own no-op (index 3, term 3) right after.
    c.restart(1);
    c.partition(&[&[1, 2, 3], &[4], &[5]]);
    for _ in 0..2 {
        c.node_mut(1).expect("up").campaign();
        c.flush(1);
        c.deliver_until(100, |c| c.node(1).is_leader());
    }
    assert!(c.node(1).is_leader(), "S1 leads term {}", c.node(1).term());
    assert!(c.deliver_until(100, |c| c.node(3).log().last_index() == 2));
    c.cut.insert((1, 3));
    c.deliver_all();
    // A is on S1, S2, S3: a majority, but from an old term. With the
    // teaching knob S1 commits and applies it now.
    // (d) S1 crashes; S5 restarts and wins term 4 with S3 and S4, then
    // overwrites index 2 with its own term-2 entry and commits it.
    c.crash(1);
    c.restart(5);
    c.partition(&[&[2], &[3, 4, 5], &[1]]);
    for _ in 0..2 {
        c.node_mut(5).expect("up").campaign();
        c.flush(5);
        c.deliver_until(100, |c| c.node(5).is_leader());
    }
    assert!(c.node(5).is_leader(), "S5 leads term {}", c.node(5).term());
    c.deliver_all();
    assert!(c.node(5).log().committed() >= 3, "S5 committed its entries");
    c.checker.violations.clone()
}

#[test]
fn raft_figure8_old_term_commit_by_count_breaks_state_machine_safety() {
    let violations = figure8(true);
    let broken = violations.iter().any(|v| matches!(v, Violation::StateMachineSafety { index: 2, .. }));
    let report: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
    assert!(broken, "expected a state machine safety violation at index 2, got: {report:?}");
    eprintln!("figure 8 with commit_old_term_entries_by_count=true:\n  {}", report.join("\n  "));
}

#[test]
fn raft_figure8_default_commit_rule_is_safe() {
    let violations = figure8(false);
    assert!(violations.is_empty(), "{violations:?}");
}

/// Runs a 5-node cluster, isolates node 3 for `isolated_rounds`, rejoins it,
/// and returns (elections started after the cluster settled, term growth,
/// whether the original leader kept leading).
fn partition_rejoin(prevote: bool, seed: u64, isolated_rounds: u32) -> (u64, Term, bool) {
    let mut c = Cluster::new(5, seed, |cfg| cfg.prevote = prevote);
    c.converge(200).expect("initial election");
    let mut leader = c.leader().expect("leader");
    if leader == 3 {
        // Isolate a follower, not the leader.
        c.crash(3);
        for _ in 0..50 {
            c.round();
        }
        c.restart(3);
        for _ in 0..10 {
            c.round();
        }
        leader = c.leader().expect("leader");
    }
    let elections_before = c.total_elections();
    let term_before = c.max_term();
    c.partition(&[&[3], &[1, 2, 4, 5]]);
    for _ in 0..isolated_rounds {
        c.round();
    }
    c.heal();
    for _ in 0..60 {
        c.round();
    }
    c.assert_safe();
    let kept = c.leader() == Some(leader);
    (c.total_elections() - elections_before, c.max_term() - term_before, kept)
}

#[test]
fn raft_prevote_prevents_disruption_on_rejoin() {
    let (mut with_prevote, mut without_prevote) = ((0, 0), (0, 0));
    for seed in 0..5 {
        let (elections, term_growth, kept) = partition_rejoin(true, seed, 100);
        assert!(kept, "seed {seed}: with prevote the healthy leader keeps leading");
        assert_eq!(term_growth, 0, "seed {seed}: with prevote the isolated node does not inflate the term");
        with_prevote.0 += elections;
        with_prevote.1 += term_growth;
        let (elections, term_growth, _) = partition_rejoin(false, seed, 100);
        assert!(elections > 0 && term_growth > 1, "seed {seed}: without prevote the rejoin disrupts");
        without_prevote.0 += elections;
        without_prevote.1 += term_growth;
    }
    eprintln!(
        "partition-rejoin, 5 seeds, 100 isolated rounds: prevote on: {} elections, term +{}; prevote off: {} elections, term +{}",
        with_prevote.0, with_prevote.1, without_prevote.0, without_prevote.1
    );
    assert!(without_prevote.0 > with_prevote.0);
}

#[test]
fn raft_liveness_after_faults_within_bound() {
    // A fixed harsh history: partitions, crashes, drops, then quiet.
    let mut worst = (0, 0);
    for seed in 0..20u64 {
        let mut c = Cluster::new(5, seed, |_| {});
        for step in 0..300u64 {
            match (step + seed) % 37 {
                0 => c.partition(&[&[1, 2], &[3, 4, 5]]),
                9 => c.crash(1 + (step % 5)),
                17 => c.heal(),
                23 => c.restart(1 + ((step + 2) % 5)),
                29 => {
                    let len = c.network.len();
                    c.network.truncate(len / 2);
                }
                _ => {}
            }
            if step % 3 == 0 {
                let leader = c.leader();
                if let Some(id) = leader {
                    c.propose(id, vec![step as u8]);
                }
            }
            c.round();
        }
        c.assert_safe();
        let (to_leader, to_commit) = c.converge(LIVENESS_ROUNDS).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        worst = (worst.0.max(to_leader), worst.1.max(to_commit));
        c.assert_safe();
    }
    eprintln!("liveness: worst rounds to leader {}, to commit after that {}", worst.0, worst.1);
}

#[test]
fn raft_read_index_and_snapshots_in_a_healthy_cluster() {
    let mut c = Cluster::new(3, 7, |_| {});
    c.converge(100).expect("leader");
    let leader = c.leader().expect("leader");
    let lagging = c.ids.iter().copied().find(|&id| id != leader).expect("follower");
    c.crash(lagging);
    for i in 0..30u8 {
        c.propose(leader, vec![i]);
        c.round();
    }
    c.compact(leader);
    assert!(c.node(leader).log().snapshot_index() > 20);
    c.restart(lagging);
    for _ in 0..20 {
        c.round();
    }
    let caught_up = c.node(lagging).log().committed();
    assert_eq!(caught_up, c.node(leader).log().committed(), "follower caught up via InstallSnapshot");
    assert!(c.node(lagging).snapshot().is_some(), "follower restored the leader's snapshot");
    c.read(leader);
    c.round();
    assert!(c.checker.read_required.is_empty(), "read confirmed");
    c.assert_safe();
}

/// The `raft.fsync=false` knob at cluster level: a vote that was sent but
/// never synced is forgotten in a crash, and the voter votes again in the
/// same term, electing a second leader.
#[test]
fn raft_fsync_off_forgets_votes_and_elects_two_leaders_in_one_term() {
    for fsync in [true, false] {
        let mut c = Cluster::new(3, 11, |cfg| {
            cfg.prevote = false;
            cfg.check_quorum = false;
            cfg.election_tick = 1000;
            cfg.heartbeat_tick = 500;
        });
        c.fsync = fsync;
        // Node 1 wins term 1 with node 2's vote; node 3 hears nothing.
        c.partition(&[&[1, 2], &[3]]);
        c.node_mut(1).expect("up").campaign();
        c.flush(1);
        c.deliver_all();
        assert!(c.node(1).is_leader() && c.node(1).term() == 1);
        // Node 2 crashes and restarts.
        c.crash(2);
        c.restart(2);
        // Node 3 campaigns for term 1 and asks node 2.
        c.partition(&[&[1], &[2, 3]]);
        c.node_mut(3).expect("up").campaign();
        c.flush(3);
        c.deliver_all();
        let two_leaders = c.checker.violations.iter().any(|v| matches!(v, Violation::ElectionSafety { term: 1, .. }));
        assert_eq!(two_leaders, !fsync, "fsync={fsync}: {:?}", c.checker.violations);
        if !fsync {
            eprintln!("fsync=false: {}", c.checker.violations[0]);
        }
    }
}

/// A leader cut off with a minority keeps believing it leads; a read on it
/// must not be answered with its stale commit index while the majority has
/// moved on.
#[test]
fn raft_read_index_on_a_deposed_leader_is_never_stale() {
    let mut c = Cluster::new(5, 21, |cfg| {
        cfg.check_quorum = false; // keep the old leader believing it leads
        cfg.prevote = false; // no timers run here, so pre-votes would be refused
        cfg.election_tick = 1000;
        cfg.heartbeat_tick = 500;
    });
    c.node_mut(1).expect("up").campaign();
    c.flush(1);
    c.deliver_all();
    assert!(c.node(1).is_leader());
    // Node 1 keeps only node 2; the majority elects node 3 and commits.
    c.partition(&[&[1, 2], &[3, 4, 5]]);
    c.node_mut(3).expect("up").campaign();
    c.flush(3);
    c.deliver_all();
    assert!(c.node(3).is_leader() && c.node(1).is_leader());
    c.propose(3, b"written by the new leader".to_vec()).expect("leads");
    c.flush(3);
    c.deliver_all();
    let committed = c.node(3).log().committed();
    assert!(committed > c.node(1).log().committed());
    // The read on the deposed leader: node 2 still answers its heartbeats.
    c.read(1);
    c.flush(1);
    c.deliver_all();
    assert!(c.checker.read_required.len() == 1, "read must stay unanswered while only a minority confirms");
    // Healing deposes node 1; the read is dropped, not answered stale.
    c.heal();
    for _ in 0..500 {
        c.tick(3); // until node 3 heartbeats
    }
    c.flush_all();
    c.deliver_all();
    assert!(!c.node(1).is_leader());
    assert!(c.checker.read_required.is_empty(), "the read was dropped when node 1 stepped down");
    c.assert_safe();
}
