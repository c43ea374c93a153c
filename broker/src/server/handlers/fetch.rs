//! Fetch: reads up to the high watermark, long-polling until data arrives
//! or `max_wait_ms` passes.

use crate::error_codes::KafkaErrorCode;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{
    fetch_response::{FetchableTopicResponse, PartitionData},
    FetchRequest, FetchResponse,
};
use kafka_protocol::ResponseError;

use super::READ_COMMITTED;
use crate::server::Broker;

/// Reads what a fetch asks for, without waiting; returns the response and
/// how many record bytes it carries.
fn fetch_once(broker: &Broker, request: &FetchRequest) -> (FetchResponse, usize) {
    let mut bytes_left = (request.max_bytes.max(0) as usize).min(broker.config.fetch_response_bytes_max);
    let mut total_bytes = 0;
    let read_committed = request.isolation_level == READ_COMMITTED;
    let responses = request
        .topics
        .iter()
        .map(|fetch_topic| {
            let topic_name = fetch_topic.topic.0.as_str();
            let partitions = fetch_topic
                .partitions
                .iter()
                .map(|fetch_partition| {
                    let mut data = PartitionData::default()
                        .with_partition_index(fetch_partition.partition)
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1)
                        .with_log_start_offset(-1)
                        .with_aborted_transactions(read_committed.then(Vec::new));
                    let log = match broker.partition_log(topic_name, fetch_partition.partition) {
                        Ok(log) => log,
                        Err(code) => return data.with_error_code(code),
                    };
                    let log = log.lock().unwrap_or_else(|e| e.into_inner());
                    // Single node: everything appended is committed, so the
                    // high watermark is the log end, and with no transactions
                    // yet the last stable offset equals the high watermark.
                    let high_watermark = log.log_end_offset();
                    let log_start = log.log_start_offset();
                    data = data
                        .with_high_watermark(high_watermark)
                        .with_last_stable_offset(high_watermark)
                        .with_log_start_offset(log_start);
                    let offset = fetch_partition.fetch_offset;
                    if offset < log_start || offset > high_watermark {
                        return data.with_error_code(ResponseError::OffsetOutOfRange.code());
                    }
                    if offset == high_watermark || bytes_left == 0 {
                        return data.with_records(Some(Bytes::new()));
                    }
                    let max_bytes = (fetch_partition.partition_max_bytes.max(0) as usize).min(bytes_left);
                    match log.read_bounded(offset, max_bytes.max(1), high_watermark) {
                        Ok(read) => {
                            let records = read.records;
                            bytes_left = bytes_left.saturating_sub(records.len());
                            total_bytes += records.len();
                            data.with_records(Some(records))
                        }
                        Err(error) => {
                            tracing::debug!(%error, "read failed");
                            data.with_error_code(error.kafka_error_code())
                        }
                    }
                })
                .collect();
            FetchableTopicResponse::default()
                .with_topic(fetch_topic.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    (FetchResponse::default().with_responses(responses), total_bytes)
}

pub(super) async fn fetch(broker: &Broker, request: FetchRequest) -> FetchResponse {
    let wait_ms = (request.max_wait_ms.max(0) as u64).min(broker.config.fetch_wait_ms_max);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait_ms);
    let min_bytes = request.min_bytes.max(1) as usize;
    loop {
        // Register for the wake-up before reading, so an append between the
        // read and the wait is not missed.
        let appended = broker.appended.notified();
        let (response, total_bytes) = fetch_once(broker, &request);
        let now = tokio::time::Instant::now();
        let has_error = response.responses.iter().flat_map(|t| &t.partitions).any(|p| p.error_code != 0);
        if total_bytes >= min_bytes || has_error || now >= deadline {
            return response;
        }
        let _ = tokio::time::timeout(deadline - now, appended).await;
    }
}
