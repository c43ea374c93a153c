//! The one mapping from the broker's internal errors to Kafka error codes.
//!
//! Every layer reports its own typed error ([`StorageError`], [`TopicError`],
//! [`MetadataError`], [`ReplicationError`], [`ProducerStateError`],
//! [`InitProducerIdError`], [`TxnError`]); the handlers turn them into the
//! `error_code` of a response here and nowhere else, so a client sees the
//! code Kafka itself would send for the same condition. A client relies on
//! the code to decide what to do: retriable codes (NOT_LEADER_OR_FOLLOWER,
//! NOT_ENOUGH_REPLICAS, KAFKA_STORAGE_ERROR, CORRUPT_MESSAGE, …) make it
//! refresh metadata and retry, the others end the request.

use kafka_protocol::ResponseError as E;

use crate::controller::MetadataError;
use crate::group::GroupError;
use crate::producer_state::ProducerStateError;
use crate::replication::ReplicationError;
use crate::server::producer_ids::{InitProducerIdError, ProducerIdError};
use crate::server::TopicError;
use crate::storage::StorageError;
use crate::txn::TxnError;

/// An error that has a Kafka error code.
pub trait KafkaErrorCode {
    /// The `error_code` a response carries for this error.
    fn kafka_error_code(&self) -> i16;
}

impl KafkaErrorCode for StorageError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            StorageError::Io { .. } | StorageError::StorageFull { .. } | StorageError::Offline(_) => E::KafkaStorageError.code(),
            StorageError::CorruptMiddle { .. } | StorageError::Config(_) => E::KafkaStorageError.code(),
            // Retriable for clients: a transient bit flip on read clears.
            StorageError::Corrupt { .. } | StorageError::CorruptBatch { .. } => E::CorruptMessage.code(),
            StorageError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
            StorageError::InvalidRecord { .. } => E::InvalidRecord.code(),
            StorageError::UnsupportedMagic { .. } => E::UnsupportedForMessageFormat.code(),
            StorageError::RecordTooLarge { .. } => E::MessageTooLarge.code(),
        }
    }
}

impl KafkaErrorCode for TopicError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            TopicError::InvalidName(_) => E::InvalidTopicException.code(),
            TopicError::AlreadyExists(_) => E::TopicAlreadyExists.code(),
            TopicError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            TopicError::InvalidConfig(_) => E::InvalidConfig.code(),
            TopicError::Storage { source, .. } => source.kafka_error_code(),
            TopicError::BadMeta { .. } | TopicError::BadPartitionMetadata { .. } | TopicError::Io(_) => E::KafkaStorageError.code(),
            TopicError::StaleTopicId { .. } => E::LeaderNotAvailable.code(),
        }
    }
}

impl KafkaErrorCode for MetadataError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            // As Kafka answered a create of a topic marked for deletion.
            MetadataError::TopicAlreadyExists(_) | MetadataError::TopicMarkedForDeletion(_) => E::TopicAlreadyExists.code(),
            MetadataError::InvalidTopicName(_) => E::InvalidTopicException.code(),
            MetadataError::InvalidPartitions(_) => E::InvalidPartitions.code(),
            MetadataError::InvalidReplicationFactor { .. } => E::InvalidReplicationFactor.code(),
            MetadataError::UnknownTopic(_) | MetadataError::UnknownTopicId(_) | MetadataError::TopicIdMismatch { .. } => {
                E::UnknownTopicOrPartition.code()
            }
            MetadataError::StaleBrokerEpoch { .. } | MetadataError::UnknownBroker(_) | MetadataError::BrokerFenced(_) => {
                E::StaleBrokerEpoch.code()
            }
            MetadataError::DuplicateBrokerRegistration(_) => E::DuplicateBrokerRegistration.code(),
            _ => E::UnknownServerError.code(),
        }
    }
}

impl KafkaErrorCode for ReplicationError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            ReplicationError::NotLeaderOrFollower | ReplicationError::UnknownReplica(_) => E::NotLeaderOrFollower.code(),
            ReplicationError::FencedLeaderEpoch { .. } => E::FencedLeaderEpoch.code(),
            ReplicationError::UnknownLeaderEpoch { .. } => E::UnknownLeaderEpoch.code(),
            ReplicationError::NotEnoughReplicas { .. } => E::NotEnoughReplicas.code(),
            ReplicationError::NotEnoughReplicasAfterAppend { .. } => E::NotEnoughReplicasAfterAppend.code(),
            // Kafka answers a produce whose acks=all wait expired, or that
            // cannot be queued, with REQUEST_TIMED_OUT: the outcome is unknown.
            ReplicationError::RequestTimedOut | ReplicationError::DelayedProduceQueueFull { .. } => E::RequestTimedOut.code(),
            ReplicationError::OffsetOutOfRange { .. } => E::OffsetOutOfRange.code(),
            ReplicationError::InvalidRecoveredState(_) => E::KafkaStorageError.code(),
        }
    }
}

impl KafkaErrorCode for GroupError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            GroupError::UnknownMemberId => E::UnknownMemberId.code(),
            GroupError::IllegalGeneration => E::IllegalGeneration.code(),
            GroupError::RebalanceInProgress => E::RebalanceInProgress.code(),
            GroupError::MemberIdRequired => E::MemberIdRequired.code(),
            GroupError::InconsistentGroupProtocol => E::InconsistentGroupProtocol.code(),
            GroupError::InvalidSessionTimeout => E::InvalidSessionTimeout.code(),
            GroupError::InvalidGroupId => E::InvalidGroupId.code(),
            GroupError::GroupIdNotFound => E::GroupIdNotFound.code(),
            GroupError::NonEmptyGroup => E::NonEmptyGroup.code(),
            GroupError::FencedInstanceId => E::FencedInstanceId.code(),
            GroupError::NotCoordinator => E::NotCoordinator.code(),
            GroupError::CoordinatorLoadInProgress => E::CoordinatorLoadInProgress.code(),
            GroupError::CoordinatorNotAvailable => E::CoordinatorNotAvailable.code(),
            GroupError::StaleMemberEpoch => E::StaleMemberEpoch.code(),
            GroupError::FencedMemberEpoch => E::FencedMemberEpoch.code(),
            GroupError::UnreleasedInstanceId => E::UnreleasedInstanceId.code(),
            GroupError::UnsupportedAssignor => E::UnsupportedAssignor.code(),
            GroupError::GroupMaxSizeReached => E::GroupMaxSizeReached.code(),
            GroupError::InvalidRequest => E::InvalidRequest.code(),
            GroupError::InvalidRegularExpression => E::InvalidRegularExpression.code(),
            GroupError::UnsupportedVersion => E::UnsupportedVersion.code(),
            GroupError::OffsetMetadataTooLarge => E::OffsetMetadataTooLarge.code(),
        }
    }
}

impl KafkaErrorCode for ProducerStateError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            // Clients bump their epoch or reset their id on these (KIP-360).
            ProducerStateError::OutOfOrderSequence { .. } => E::OutOfOrderSequenceNumber.code(),
            ProducerStateError::InvalidProducerEpoch { .. } => E::InvalidProducerEpoch.code(),
            ProducerStateError::UnknownProducerId { .. } => E::UnknownProducerId.code(),
            ProducerStateError::InvalidBatch(_) => E::InvalidRecord.code(),
        }
    }
}

impl KafkaErrorCode for InitProducerIdError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            InitProducerIdError::Allocate(error) => error.kafka_error_code(),
        }
    }
}

impl KafkaErrorCode for TxnError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            // Retriable: the client looks the coordinator up again.
            TxnError::NotCoordinator => E::NotCoordinator.code(),
            TxnError::CoordinatorLoadInProgress => E::CoordinatorLoadInProgress.code(),
            TxnError::CoordinatorNotAvailable | TxnError::ProducerIdUnavailable => E::CoordinatorNotAvailable.code(),
            // Retriable: the client retries the same request.
            TxnError::ConcurrentTransactions => E::ConcurrentTransactions.code(),
            // Fatal for the producer instance: another one took over.
            TxnError::ProducerFenced => E::ProducerFenced.code(),
            TxnError::InvalidProducerEpoch => E::InvalidProducerEpoch.code(),
            TxnError::InvalidProducerIdMapping => E::InvalidProducerIdMapping.code(),
            TxnError::InvalidTxnState => E::InvalidTxnState.code(),
            TxnError::InvalidTransactionTimeout => E::InvalidTransactionTimeout.code(),
            TxnError::InvalidRequest => E::InvalidRequest.code(),
            TxnError::TransactionalIdNotFound => E::TransactionalIdNotFound.code(),
        }
    }
}

impl KafkaErrorCode for ProducerIdError {
    fn kafka_error_code(&self) -> i16 {
        match self {
            // Retriable: the client asks again.
            ProducerIdError::Read { .. } | ProducerIdError::Corrupt { .. } | ProducerIdError::Persist(_) => E::KafkaStorageError.code(),
            ProducerIdError::Exhausted { .. } | ProducerIdError::BadNamespace(_) => E::UnknownServerError.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The codes clients act on, pinned to Kafka's numbers.
    #[test]
    fn codes_are_kafkas_own() {
        assert_eq!(StorageError::OffsetOutOfRange { offset: 7, log_start_offset: 0, log_end_offset: 3 }.kafka_error_code(), 1);
        assert_eq!(StorageError::Offline("x".into()).kafka_error_code(), 56);
        assert_eq!(ReplicationError::NotLeaderOrFollower.kafka_error_code(), 6);
        assert_eq!(ReplicationError::RequestTimedOut.kafka_error_code(), 7);
        assert_eq!(ReplicationError::NotEnoughReplicas { isr_size: 1, min_insync_replicas: 2 }.kafka_error_code(), 19);
        assert_eq!(ReplicationError::NotEnoughReplicasAfterAppend { isr_size: 1, min_insync_replicas: 2 }.kafka_error_code(), 20);
        assert_eq!(ReplicationError::FencedLeaderEpoch { request: 1, current: 2 }.kafka_error_code(), 74);
        assert_eq!(ReplicationError::UnknownLeaderEpoch { request: 3, current: 2 }.kafka_error_code(), 75);
        assert_eq!(TxnError::InvalidProducerEpoch.kafka_error_code(), 47);
        assert_eq!(TxnError::InvalidTxnState.kafka_error_code(), 48);
        assert_eq!(TxnError::InvalidProducerIdMapping.kafka_error_code(), 49);
        assert_eq!(TxnError::InvalidTransactionTimeout.kafka_error_code(), 50);
        assert_eq!(TxnError::ConcurrentTransactions.kafka_error_code(), 51);
        assert_eq!(TxnError::ProducerFenced.kafka_error_code(), 90);
        assert_eq!(TxnError::NotCoordinator.kafka_error_code(), 16);
        assert_eq!(TxnError::CoordinatorNotAvailable.kafka_error_code(), 15);
        assert_eq!(GroupError::IllegalGeneration.kafka_error_code(), 22);
        assert_eq!(GroupError::UnknownMemberId.kafka_error_code(), 25);
        assert_eq!(GroupError::RebalanceInProgress.kafka_error_code(), 27);
        assert_eq!(GroupError::NotCoordinator.kafka_error_code(), 16);
        assert_eq!(GroupError::CoordinatorLoadInProgress.kafka_error_code(), 14);
        assert_eq!(GroupError::MemberIdRequired.kafka_error_code(), 79);
        assert_eq!(GroupError::FencedInstanceId.kafka_error_code(), 82);
        assert_eq!(ProducerStateError::OutOfOrderSequence { producer_id: 1, epoch: 0, first_seq: 3, expected_seq: 1 }.kafka_error_code(), 45);
        assert_eq!(ProducerStateError::InvalidProducerEpoch { producer_id: 1, epoch: 0, current_epoch: 1 }.kafka_error_code(), 47);
        assert_eq!(ProducerStateError::UnknownProducerId { producer_id: 1, first_seq: 3 }.kafka_error_code(), 59);
        assert_eq!(ProducerStateError::InvalidBatch("x".into()).kafka_error_code(), 87);
    }
}
