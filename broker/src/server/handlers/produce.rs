//! Produce: appends each partition's batches and answers per partition.

use crate::error_codes::KafkaErrorCode;

use kafka_protocol::messages::{
    produce_response::{PartitionProduceResponse, TopicProduceResponse},
    ProduceRequest, ProduceResponse,
};
use kafka_protocol::ResponseError;

use crate::server::Broker;

pub(super) fn produce(broker: &Broker, request: ProduceRequest) -> ProduceResponse {
    let valid_acks = matches!(request.acks, -1..=1);
    let responses = request
        .topic_data
        .into_iter()
        .map(|topic_data| {
            let topic_name = topic_data.name.0.as_str().to_string();
            let partition_responses = topic_data
                .partition_data
                .into_iter()
                .map(|data| {
                    let response = PartitionProduceResponse::default()
                        .with_index(data.index)
                        .with_base_offset(-1)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(-1);
                    if !valid_acks {
                        return response.with_error_code(ResponseError::InvalidRequiredAcks.code());
                    }
                    let log = match broker.partition_log(&topic_name, data.index) {
                        Ok(log) => log,
                        Err(code) => return response.with_error_code(code),
                    };
                    let Some(records) = data.records.filter(|r| !r.is_empty()) else {
                        return response.with_error_code(ResponseError::InvalidRecord.code());
                    };
                    let mut log = log.lock().unwrap_or_else(|e| e.into_inner());
                    match log.append(&records) {
                        Ok(info) => {
                            broker.appended.notify_waiters();
                            response
                                .with_base_offset(info.base_offset)
                                .with_log_start_offset(log.log_start_offset())
                        }
                        Err(error) => {
                            tracing::debug!(%error, "append failed");
                            response.with_error_code(error.kafka_error_code())
                        }
                    }
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
