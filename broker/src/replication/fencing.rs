//! Leader-epoch fencing of requests (KIP-320): a request names the leader
//! epoch its sender believes current, so a zombie leader's or a lagging
//! client's request cannot act on a newer epoch's state, and vice versa.

use std::cmp::Ordering;

use super::types::{LeaderEpoch, ReplicationError};

/// Checks `request_epoch` against the partition's `current_epoch`
/// (`None`: this replica neither leads nor follows the partition). A request
/// without an epoch (old clients) is not checked.
pub fn check_leader_epoch(
    current_epoch: Option<LeaderEpoch>,
    request_epoch: Option<LeaderEpoch>,
) -> Result<(), ReplicationError> {
    let Some(current) = current_epoch else {
        return Err(ReplicationError::NotLeaderOrFollower);
    };
    let Some(request) = request_epoch else {
        return Ok(());
    };
    match request.cmp(&current) {
        Ordering::Equal => Ok(()),
        Ordering::Less => {
            crate::mark!("replication.fenced_leader_epoch");
            Err(ReplicationError::FencedLeaderEpoch { request, current })
        }
        Ordering::Greater => {
            crate::mark!("replication.unknown_leader_epoch");
            Err(ReplicationError::UnknownLeaderEpoch { request, current })
        }
    }
}
