//! The consumer-side partition assignors of Kafka's classic group protocol
//! (`partition.assignment.strategy`): pure functions from the members'
//! subscriptions and the topics' partition counts to an assignment. The
//! group leader runs the one the coordinator chose (the protocol every
//! member offered, by vote) and sends the result in SyncGroup.
//!
//! | name                 | rebalance protocol | what it does |
//! |----------------------|--------------------|--------------|
//! | `range`              | eager              | per topic, contiguous ranges over the subscribed members in member-id order |
//! | `roundrobin`         | eager              | every partition (topic, then partition order) dealt in turn to the next subscribed member |
//! | `cooperative-sticky` | cooperative        | keeps partitions with their owners, moves only what balance needs, and never hands a partition to a new owner in the generation that takes it from the old one (KIP-429) |
//!
//! # Eager and cooperative rebalancing
//!
//! - **Eager** (range, roundrobin): a member gives up *all* its partitions
//!   before it rejoins (committing first when auto-commit is on), and
//!   starts from nothing in the new generation.
//! - **Cooperative** (KIP-429): a member keeps its partitions across the
//!   rejoin and lists them in its subscription (`owned_partitions`,
//!   ConsumerProtocolSubscription version 1 and up). The leader computes a
//!   sticky target, then withholds every partition that changes owner: the
//!   old owner's assignment no longer lists it, the new owner's does not
//!   list it yet. The old owner revokes only those partitions and rejoins;
//!   in the next generation nobody claims them and they go to their new
//!   owner. Partitions that stay put are never revoked.

use std::collections::{BTreeMap, BTreeSet};

use super::TopicPartition;

/// An assignor a member can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Assignor {
    /// Kafka's `RangeAssignor`.
    Range,
    /// Kafka's `RoundRobinAssignor`.
    RoundRobin,
    /// Kafka's `CooperativeStickyAssignor`.
    CooperativeSticky,
}

/// How members give up partitions in a rebalance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RebalanceProtocol {
    /// Revoke everything before rejoining.
    Eager,
    /// Revoke only what moves, then rejoin once more.
    Cooperative,
}

/// A `partition.assignment.strategy` that names no known assignor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown partition.assignment.strategy {0:?} (known: range, roundrobin, cooperative-sticky)")]
pub struct UnknownAssignor(pub String);

impl Assignor {
    /// Every assignor, in the order of the table above.
    pub const ALL: [Assignor; 3] = [Assignor::Range, Assignor::RoundRobin, Assignor::CooperativeSticky];

    /// The protocol name in JoinGroup (the same as Java's and librdkafka's).
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
            Assignor::CooperativeSticky => "cooperative-sticky",
        }
    }

    /// The assignor of a protocol name, or of a Java class name
    /// (`org.apache.kafka.clients.consumer.RangeAssignor`, ...).
    pub fn from_name(name: &str) -> Option<Assignor> {
        let short = name.trim().rsplit('.').next().unwrap_or_default();
        match short {
            "range" | "RangeAssignor" => Some(Assignor::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(Assignor::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => Some(Assignor::CooperativeSticky),
            _ => None,
        }
    }

    /// A `partition.assignment.strategy` value: comma-separated names, most
    /// preferred first.
    pub fn parse_strategy(value: &str) -> Result<Vec<Assignor>, UnknownAssignor> {
        let mut assignors = Vec::new();
        for name in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let assignor = Assignor::from_name(name).ok_or_else(|| UnknownAssignor(name.to_string()))?;
            if !assignors.contains(&assignor) {
                assignors.push(assignor);
            }
        }
        Ok(assignors)
    }

    /// How a member using this assignor rebalances.
    pub fn rebalance_protocol(self) -> RebalanceProtocol {
        match self {
            Assignor::Range | Assignor::RoundRobin => RebalanceProtocol::Eager,
            Assignor::CooperativeSticky => RebalanceProtocol::Cooperative,
        }
    }
}

/// One member's subscription, as the leader reads it from JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSubscription {
    /// The member id.
    pub member_id: String,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The partitions it owns now (cooperative members only; empty for eager ones).
    pub owned: Vec<TopicPartition>,
    /// The generation in which it got `owned` (-1 when unknown).
    pub generation_id: i32,
}

/// Member id → its partitions, in partition order.
pub type Assignment = BTreeMap<String, Vec<TopicPartition>>;

/// Runs `assignor` over `members`. For the cooperative assignor this is
/// the assignment of this generation: partitions that change owner are
/// withheld (see the module docs).
pub fn assign(assignor: Assignor, members: &[MemberSubscription], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let topics_of: Vec<(String, Vec<String>)> = members.iter().map(|m| (m.member_id.clone(), m.topics.clone())).collect();
    let assignment = match assignor {
        Assignor::Range => range_assign(&topics_of, partition_counts),
        Assignor::RoundRobin => round_robin_assign(&topics_of, partition_counts),
        Assignor::CooperativeSticky => cooperative_assign(members, partition_counts),
    };
    debug_assert!(members.iter().all(|m| assignment.contains_key(&m.member_id)), "every member has an entry");
    assignment
}

/// Every partition of the topics subscribed to by anyone, in order.
fn subscribed_partitions(members: &[(String, Vec<String>)], partition_counts: &BTreeMap<String, i32>) -> Vec<TopicPartition> {
    let topics: BTreeSet<&String> = members.iter().flat_map(|(_, topics)| topics).collect();
    topics.into_iter().filter_map(|t| partition_counts.get(t).map(|&count| (t, count))).flat_map(|(t, count)| (0..count).map(move |p| TopicPartition::new(t.clone(), p))).collect()
}

/// Kafka's range assignor: per topic, partitions in order split into
/// contiguous ranges over the members subscribed to it, sorted by member
/// id; the first `partitions % members` get one more.
pub fn range_assign(members: &[(String, Vec<String>)], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let mut assignment: Assignment = members.iter().map(|(id, _)| (id.clone(), Vec::new())).collect();
    for (topic, &count) in partition_counts {
        let mut subscribed: Vec<&String> = members.iter().filter(|(_, topics)| topics.contains(topic)).map(|(id, _)| id).collect();
        subscribed.sort();
        if subscribed.is_empty() {
            continue;
        }
        let (per_member, extra) = (count / subscribed.len() as i32, count % subscribed.len() as i32);
        let mut next = 0;
        for (i, member) in subscribed.iter().enumerate() {
            let take = per_member + i32::from((i as i32) < extra);
            let partitions = assignment.get_mut(*member).expect("every member has an entry");
            partitions.extend((next..next + take).map(|p| TopicPartition::new(topic.clone(), p)));
            next += take;
        }
        debug_assert_eq!(next, count, "every partition assigned once");
    }
    assignment
}

/// Kafka's round-robin assignor: members sorted by id in a circle; every
/// partition (topics in name order, partitions in order) goes to the next
/// member in the circle subscribed to its topic.
pub fn round_robin_assign(members: &[(String, Vec<String>)], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let mut assignment: Assignment = members.iter().map(|(id, _)| (id.clone(), Vec::new())).collect();
    let mut circle: Vec<&(String, Vec<String>)> = members.iter().collect();
    circle.sort_by(|a, b| a.0.cmp(&b.0));
    let mut next = 0;
    for tp in subscribed_partitions(members, partition_counts) {
        // Some member subscribes to the topic (that is why it is listed),
        // so this finds one within one turn of the circle.
        for _ in 0..circle.len() {
            let (member, topics) = circle[next % circle.len()];
            next += 1;
            if topics.contains(&tp.topic) {
                assignment.get_mut(member).expect("every member has an entry").push(tp);
                break;
            }
        }
    }
    assignment
}

/// The sticky target: every subscribed partition exactly once; each member
/// keeps what it owns (a partition claimed twice stays with the claim of
/// the higher generation, else the lower member id), and partitions move
/// only while some member holds two more than a member that could take
/// one. With equal subscriptions the result is balanced within one, and
/// an owner keeps at least as many of its partitions as the balanced
/// share lets it.
pub fn sticky_assign(members: &[MemberSubscription], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let topics_of: Vec<(String, Vec<String>)> = members.iter().map(|m| (m.member_id.clone(), m.topics.clone())).collect();
    let all = subscribed_partitions(&topics_of, partition_counts);
    let all_set: BTreeSet<&TopicPartition> = all.iter().collect();
    let subscribed = |member: &str, tp: &TopicPartition| members.iter().any(|m| m.member_id == member && m.topics.contains(&tp.topic));
    // Valid claims: the partition exists and the claimant still subscribes.
    let mut owner: BTreeMap<TopicPartition, (i32, &str)> = BTreeMap::new();
    let mut by_id: Vec<&MemberSubscription> = members.iter().collect();
    by_id.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    for member in &by_id {
        for tp in &member.owned {
            if !all_set.contains(tp) || !subscribed(&member.member_id, tp) {
                continue;
            }
            let claim = (member.generation_id, member.member_id.as_str());
            match owner.get(tp) {
                Some(&(generation, _)) if generation >= claim.0 => {}
                _ => {
                    owner.insert(tp.clone(), claim);
                }
            }
        }
    }
    let mut assignment: BTreeMap<String, BTreeSet<TopicPartition>> = members.iter().map(|m| (m.member_id.clone(), BTreeSet::new())).collect();
    for (tp, (_, member)) in &owner {
        assignment.get_mut(*member).expect("claimants are members").insert(tp.clone());
    }
    // Unowned partitions to the least loaded member subscribed to them.
    for tp in all.iter().filter(|tp| !owner.contains_key(*tp)) {
        let least = by_id.iter().filter(|m| m.topics.contains(&tp.topic)).min_by_key(|m| (assignment[&m.member_id].len(), m.member_id.as_str())).expect("a subscriber exists");
        assignment.get_mut(&least.member_id).expect("every member has an entry").insert(tp.clone());
    }
    // Balance: move one partition at a time from the most loaded member to
    // the least loaded one that can take it, while they differ by two or
    // more. Each move lowers the sum of squared loads, so this ends; the
    // bound is a backstop.
    let moves_max = all.len() * all.len() + 1;
    for _ in 0..moves_max {
        let mut best: Option<(usize, String, String, TopicPartition)> = None;
        for giver in &by_id {
            let given = &assignment[&giver.member_id];
            for taker in &by_id {
                let taken = assignment[&taker.member_id].len();
                if given.len() < taken + 2 {
                    continue;
                }
                // A partition the giver did not own before goes first.
                let movable = given.iter().filter(|tp| taker.topics.contains(&tp.topic));
                let Some(tp) = movable.clone().find(|tp| owner.get(*tp).is_none_or(|(_, o)| *o != giver.member_id)).or_else(|| movable.last()) else { continue };
                let gap = given.len() - taken;
                if best.as_ref().is_none_or(|(best_gap, ..)| gap > *best_gap) {
                    best = Some((gap, giver.member_id.clone(), taker.member_id.clone(), tp.clone()));
                }
            }
        }
        let Some((_, giver, taker, tp)) = best else { break };
        assert!(assignment.get_mut(&giver).expect("member").remove(&tp), "the giver held it");
        assert!(assignment.get_mut(&taker).expect("member").insert(tp), "the taker did not");
    }
    let assignment: Assignment = assignment.into_iter().map(|(member, partitions)| (member, partitions.into_iter().collect())).collect();
    debug_assert_eq!(assignment.values().map(Vec::len).sum::<usize>(), all.len(), "every partition assigned once");
    assignment
}

/// KIP-429's cooperative step over [`sticky_assign`]: a partition whose
/// sticky owner is not the member that owns it now goes to nobody in this
/// generation (its owner revokes it and rejoins; the next generation hands
/// it on).
pub fn cooperative_assign(members: &[MemberSubscription], partition_counts: &BTreeMap<String, i32>) -> Assignment {
    let mut target = sticky_assign(members, partition_counts);
    let owned_by: BTreeMap<&TopicPartition, &str> = members.iter().flat_map(|m| m.owned.iter().map(move |tp| (tp, m.member_id.as_str()))).collect();
    let claimed: BTreeSet<&TopicPartition> = owned_by.keys().copied().collect();
    for (member, partitions) in &mut target {
        // Withheld: owned by someone, but not by this member.
        partitions.retain(|tp| !claimed.contains(tp) || members.iter().any(|m| &m.member_id == member && m.owned.contains(tp)));
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counts(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|(t, c)| (t.to_string(), *c)).collect()
    }

    fn subscriber(id: &str, topics: &[&str], owned: &[(&str, i32)]) -> MemberSubscription {
        MemberSubscription { member_id: id.into(), topics: topics.iter().map(|t| t.to_string()).collect(), owned: owned.iter().map(|(t, p)| TopicPartition::new(*t, *p)).collect(), generation_id: 1 }
    }

    fn partitions(assignment: &Assignment, member: &str) -> Vec<(String, i32)> {
        assignment[member].iter().map(|tp| (tp.topic.clone(), tp.partition)).collect()
    }

    #[test]
    fn range_assignment_is_kafkas() {
        let members = vec![("b".to_string(), vec!["t".to_string()]), ("a".to_string(), vec!["t".to_string()]), ("c".to_string(), vec!["t".to_string()])];
        let assigned = range_assign(&members, &counts(&[("t", 7)]));
        let numbers = |m: &str| assigned[m].iter().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!((numbers("a"), numbers("b"), numbers("c")), (vec![0, 1, 2], vec![3, 4], vec![5, 6]));
    }

    #[test]
    fn round_robin_deals_partitions_across_topics_in_turn() {
        let members = vec![("b".to_string(), vec!["t".to_string(), "u".to_string()]), ("a".to_string(), vec!["t".to_string(), "u".to_string()])];
        let assigned = round_robin_assign(&members, &counts(&[("t", 3), ("u", 2)]));
        let s = |t: &str, p| (t.to_string(), p);
        assert_eq!(partitions(&assigned, "a"), vec![s("t", 0), s("t", 2), s("u", 1)]);
        assert_eq!(partitions(&assigned, "b"), vec![s("t", 1), s("u", 0)]);
    }

    #[test]
    fn round_robin_skips_members_not_subscribed() {
        let members = vec![("a".to_string(), vec!["t".to_string()]), ("b".to_string(), vec!["u".to_string()])];
        let assigned = round_robin_assign(&members, &counts(&[("t", 2), ("u", 1)]));
        assert_eq!(assigned["a"].len(), 2);
        assert_eq!(assigned["b"], vec![TopicPartition::new("u", 0)]);
    }

    #[test]
    fn a_joining_member_gets_partitions_only_after_their_owner_revoked_them() {
        let topics = counts(&[("t", 4)]);
        let owner = subscriber("a", &["t"], &[("t", 0), ("t", 1), ("t", 2), ("t", 3)]);
        let first = cooperative_assign(&[owner.clone(), subscriber("b", &["t"], &[])], &topics);
        assert_eq!(first["a"].len(), 2, "a keeps two and revokes two: {first:?}");
        assert!(first["b"].is_empty(), "b gets nothing while a still owns them: {first:?}");
        let kept: Vec<(&str, i32)> = first["a"].iter().map(|tp| ("t", tp.partition)).collect();
        let second = cooperative_assign(&[subscriber("a", &["t"], &kept), subscriber("b", &["t"], &[])], &topics);
        assert_eq!(second["a"], first["a"], "a keeps what it kept");
        assert_eq!(second["b"].len(), 2, "the revoked partitions go to b: {second:?}");
    }

    #[test]
    fn a_claim_of_a_later_generation_wins() {
        let mut stale = subscriber("a", &["t"], &[("t", 0)]);
        stale.generation_id = 1;
        let mut fresh = subscriber("b", &["t"], &[("t", 0)]);
        fresh.generation_id = 2;
        let target = sticky_assign(&[stale, fresh], &counts(&[("t", 2)]));
        assert_eq!(partitions(&target, "b"), vec![("t".to_string(), 0)]);
    }

    #[test]
    fn strategies_parse_like_kafkas() {
        assert_eq!(Assignor::parse_strategy("cooperative-sticky, range"), Ok(vec![Assignor::CooperativeSticky, Assignor::Range]));
        assert_eq!(Assignor::parse_strategy("org.apache.kafka.clients.consumer.RoundRobinAssignor"), Ok(vec![Assignor::RoundRobin]));
        assert_eq!(Assignor::parse_strategy("sticky"), Err(UnknownAssignor("sticky".into())));
        for assignor in Assignor::ALL {
            assert_eq!(Assignor::from_name(assignor.name()), Some(assignor));
        }
    }

    /// Members `m0..mN` all subscribed to the same topics, each owning a
    /// random (disjoint) share of the partitions.
    fn group_strategy() -> impl Strategy<Value = (Vec<MemberSubscription>, BTreeMap<String, i32>)> {
        (1usize..6, prop::collection::vec(0i32..9, 1..4), prop::collection::vec(any::<u8>(), 40)).prop_map(|(members, topic_counts, owners)| {
            let topics: BTreeMap<String, i32> = topic_counts.iter().enumerate().map(|(i, &c)| (format!("t{i}"), c)).collect();
            let names: Vec<String> = topics.keys().cloned().collect();
            let mut subscriptions: Vec<MemberSubscription> =
                (0..members).map(|i| MemberSubscription { member_id: format!("m{i}"), topics: names.clone(), owned: Vec::new(), generation_id: 1 }).collect();
            let mut draw = owners.into_iter().cycle();
            for (topic, &count) in &topics {
                for p in 0..count {
                    // members + 1 choices: one of them leaves it unowned.
                    let pick = usize::from(draw.next().expect("cycle")) % (members + 1);
                    if let Some(member) = subscriptions.get_mut(pick) {
                        member.owned.push(TopicPartition::new(topic.clone(), p));
                    }
                }
            }
            (subscriptions, topics)
        })
    }

    fn check_complete_and_balanced(assignment: &Assignment, topics: &BTreeMap<String, i32>) -> Result<(), TestCaseError> {
        let mut seen = BTreeSet::new();
        for partitions in assignment.values() {
            for tp in partitions {
                prop_assert!(seen.insert(tp.clone()), "{tp} assigned twice: {assignment:?}");
            }
        }
        let total: i32 = topics.values().sum();
        prop_assert_eq!(seen.len(), total as usize, "every partition assigned: {:?}", assignment);
        let loads: Vec<usize> = assignment.values().map(Vec::len).collect();
        let (min, max) = (loads.iter().min().copied().unwrap_or(0), loads.iter().max().copied().unwrap_or(0));
        prop_assert!(max - min <= 1, "balanced within one: {:?}", assignment);
        Ok(())
    }

    proptest! {
        #[test]
        fn every_eager_assignor_assigns_each_partition_once_and_balances((members, topics) in group_strategy()) {
            let topics_of: Vec<(String, Vec<String>)> = members.iter().map(|m| (m.member_id.clone(), m.topics.clone())).collect();
            check_complete_and_balanced(&round_robin_assign(&topics_of, &topics), &topics)?;
            // Range balances per topic, not overall: only completeness.
            let range = range_assign(&topics_of, &topics);
            prop_assert_eq!(range.values().map(Vec::len).sum::<usize>(), topics.values().sum::<i32>() as usize);
        }

        #[test]
        fn sticky_is_complete_balanced_and_keeps_owners((members, topics) in group_strategy()) {
            let target = sticky_assign(&members, &topics);
            check_complete_and_balanced(&target, &topics)?;
            let total: usize = topics.values().sum::<i32>() as usize;
            let floor = total / members.len();
            for member in &members {
                let kept = member.owned.iter().filter(|tp| target[&member.member_id].contains(tp)).count();
                prop_assert!(kept >= member.owned.len().min(floor), "{} kept {kept} of {:?} (share {floor}): {target:?}", member.member_id, member.owned);
            }
            // An owner set that is already complete and balanced stays as it is.
            let loads: Vec<usize> = members.iter().map(|m| m.owned.len()).collect();
            let balanced = loads.iter().max().zip(loads.iter().min()).is_some_and(|(max, min)| max - min <= 1);
            if balanced && loads.iter().sum::<usize>() == total {
                for member in &members {
                    let mut owned = member.owned.clone();
                    owned.sort();
                    prop_assert_eq!(&target[&member.member_id], &owned);
                }
            }
            // The cooperative round never gives a partition owned by one member to another.
            let round = cooperative_assign(&members, &topics);
            for (member, partitions) in &round {
                for tp in partitions {
                    let owner = members.iter().find(|m| m.owned.contains(tp));
                    prop_assert!(owner.is_none_or(|o| &o.member_id == member), "{tp} handed from its owner to {member}");
                    prop_assert!(target[member].contains(tp), "the round is part of the target");
                }
            }
        }
    }
}
