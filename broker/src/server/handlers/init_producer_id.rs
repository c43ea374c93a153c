//! InitProducerId (v0–4).
//!
//! - **Without a `transactional_id`** (an idempotent producer): a fresh
//!   producer id at epoch 0, as Kafka's coordinator answers a
//!   non-transactional producer (it ignores the `producer_id`/
//!   `producer_epoch` of v3+, which only matter to a transactional id's
//!   epoch bump: a client bumping after OUT_OF_ORDER_SEQUENCE_NUMBER or
//!   UNKNOWN_PRODUCER_ID, KIP-360, gets a new id, which serves it as well).
//!   When no id can be handed out (the block file cannot be read or
//!   written) the answer is KAFKA_STORAGE_ERROR, which clients retry.
//! - **With a `transactional_id`**: the transaction coordinator decides
//!   (`crate::txn`): a new id gets a fresh producer id at epoch 0, a known
//!   one its epoch bumped (fencing the previous producer instance), once
//!   the transition's record is durable. A fenced producer is told
//!   PRODUCER_FENCED from v4, INVALID_PRODUCER_EPOCH before (KIP-588).

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader};

use crate::error_codes::KafkaErrorCode;
use crate::server::producer_ids::InitProducerIdError;
use crate::server::Broker;
use crate::txn::InitProducerIdRequest as TxnInit;

/// The first InitProducerId version whose clients know PRODUCER_FENCED.
const FIRST_FENCED_VERSION: i16 = 4;

fn allocate(broker: &Broker) -> Result<i64, InitProducerIdError> {
    let mut ids = broker.producer_ids.lock().unwrap_or_else(|e| e.into_inner());
    Ok(ids.allocate()?)
}

fn refused(code: i16) -> InitProducerIdResponse {
    InitProducerIdResponse::default().with_error_code(code).with_producer_id(ProducerId(-1)).with_producer_epoch(-1)
}

pub(super) async fn init_producer_id(broker: &Broker, header: &RequestHeader, request: InitProducerIdRequest) -> InitProducerIdResponse {
    if let Some(id) = &request.transactional_id {
        let init = TxnInit {
            transactional_id: id.as_str().to_string(),
            transaction_timeout_ms: request.transaction_timeout_ms,
            producer_id: request.producer_id.0,
            producer_epoch: request.producer_epoch,
        };
        let transactional_id = init.transactional_id.clone();
        let answer = broker
            .txn_request(&transactional_id, |core, now_ms, waiter| core.init_producer_id(now_ms, waiter, init, &mut || broker.allocate_producer_id()))
            .await;
        return match answer {
            Ok((producer_id, epoch)) => {
                tracing::debug!(%transactional_id, producer_id, epoch, "transactional producer initialised");
                InitProducerIdResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(epoch)
            }
            Err(error) => {
                tracing::debug!(%transactional_id, %error, "InitProducerId refused");
                refused(error.for_version(header.request_api_version, FIRST_FENCED_VERSION).kafka_error_code())
            }
        };
    }
    match allocate(broker) {
        Ok(producer_id) => {
            tracing::debug!(producer_id, "producer id handed out");
            InitProducerIdResponse::default().with_producer_id(ProducerId(producer_id)).with_producer_epoch(0)
        }
        Err(error) => {
            tracing::warn!(%error, "InitProducerId refused");
            refused(error.kafka_error_code())
        }
    }
}
