//! A Kafka client on the same protocol crate as the broker: a producer and
//! a consumer that run both inside the simulation and over real TCP.
//!
//! Real clients (librdkafka, kafka-python) cannot run inside madsim; this
//! one can, so the simulation's workloads drive the broker through exactly
//! the bytes a real client would send.

pub mod assignors;
mod cluster;
mod connection;
mod consumer;
mod group;
mod group_consumer;
mod producer;
mod transaction;

pub use cluster::Cluster;
pub use connection::{ClientError, Connection};
pub use consumer::{Consumer, ConsumerConfig, ConsumedRecord};
pub use assignors::{range_assign, Assignor, MemberSubscription, RebalanceProtocol};
pub use group::{list_groups, CommitOutcome, GroupClientError, GroupDescription, GroupMember, GroupMemberConfig, Joined, MemberDescription, RANGE_ASSIGNOR};
pub use group_consumer::{GroupConsumer, GroupConsumerConfig, GroupConsumerError, OffsetReset, Rebalance};
pub use producer::{Producer, ProducerConfig, SendError, SendOutcome};
pub use transaction::{TransactionError, TransactionalProducer, TransactionalProducerConfig};

/// A topic and partition number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
}

impl TopicPartition {
    /// A topic-partition.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}
