//! WriteTxnMarkers: the transaction coordinator asks a partition's leader
//! to write a transaction's commit or abort marker.

use kafka_protocol::messages::write_txn_markers_response::{WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};

use crate::server::Broker;

// Placeholder: replaced by the partition-side handler.
pub(crate) async fn write_txn_markers(broker: &Broker, request: WriteTxnMarkersRequest) -> WriteTxnMarkersResponse {
    let _ = broker;
    let markers = request
        .markers
        .iter()
        .map(|marker| {
            WritableTxnMarkerResult::default().with_producer_id(marker.producer_id).with_topics(
                marker
                    .topics
                    .iter()
                    .map(|topic| {
                        WritableTxnMarkerTopicResult::default().with_name(topic.name.clone()).with_partitions(
                            topic.partition_indexes.iter().map(|&index| WritableTxnMarkerPartitionResult::default().with_partition_index(index)).collect(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    WriteTxnMarkersResponse::default().with_markers(markers)
}
