//! InitProducerId, for idempotent producers only: every request with a null
//! `transactional_id` gets a fresh producer id at epoch 0, as Kafka's
//! coordinator answers a non-transactional producer (it ignores the
//! `producer_id`/`producer_epoch` of v3+, which only matter to a
//! transactional id's epoch bump: a client bumping after
//! OUT_OF_ORDER_SEQUENCE_NUMBER or UNKNOWN_PRODUCER_ID, KIP-360, gets a new
//! id, which serves it as well).
//!
//! A request naming a `transactional_id` is answered UNSUPPORTED_VERSION:
//! transactions are not implemented, and that is the code Kafka uses for a
//! feature a broker lacks. Clients treat it as fatal and say so
//! (kafka-python: "Unexpected error in InitProducerIdResponse:
//! UnsupportedVersionError"). COORDINATOR_NOT_AVAILABLE would make them look
//! for a coordinator and retry forever; TRANSACTIONAL_ID_AUTHORIZATION_FAILED
//! would send the user after ACLs that do not exist.
//!
//! When no id can be handed out (the block file cannot be read or
//! written) the answer is KAFKA_STORAGE_ERROR, which clients retry.

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::error_codes::KafkaErrorCode;
use crate::server::producer_ids::InitProducerIdError;
use crate::server::Broker;

fn allocate(broker: &Broker, request: &InitProducerIdRequest) -> Result<i64, InitProducerIdError> {
    if let Some(id) = &request.transactional_id {
        return Err(InitProducerIdError::TransactionsUnsupported(id.0.to_string()));
    }
    let mut ids = broker.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
    Ok(ids.allocate()?)
}

pub(super) fn init_producer_id(broker: &Broker, request: InitProducerIdRequest) -> InitProducerIdResponse {
    match allocate(broker, &request) {
        Ok(producer_id) => {
            tracing::debug!(producer_id, "producer id handed out");
            InitProducerIdResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(0)
        }
        Err(error) => {
            tracing::warn!(%error, "InitProducerId refused");
            InitProducerIdResponse::default()
                .with_error_code(error.kafka_error_code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
