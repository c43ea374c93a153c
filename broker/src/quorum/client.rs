//! How a broker talks to the controller quorum: find the leader, send, and
//! classify the outcome.
//!
//! A `NotLeader` answer means nothing was proposed, so the client follows
//! the hint (or tries the next voter) and sends again. A timeout or broken
//! connection after sending leaves the outcome unknown: reads are retried,
//! writes are reported as [`QuorumCallError::Unknown`] so the caller does not
//! apply them twice.

use std::collections::BTreeMap;
use std::time::Duration;

use super::protocol::{read_json, write_json, ControllerRequest, ControllerResponse};
use crate::raft::NodeId;

/// Why a call produced no definite answer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum QuorumCallError {
    /// No controller accepted the request: it certainly had no effect.
    #[error("no controller leader reachable: {0}")]
    NoLeader(String),
    /// The request may or may not have taken effect.
    #[error("outcome unknown: {0}")]
    Unknown(String),
}

/// A client of the controller API.
pub struct QuorumClient {
    voters: BTreeMap<NodeId, String>,
    leader_guess: Option<NodeId>,
    connections: BTreeMap<NodeId, tokio::net::TcpStream>,
    timeout_ms: u64,
    next_voter: usize,
}

impl QuorumClient {
    /// A client of the voters' API addresses (`id → host:port`).
    pub fn new(voters: BTreeMap<NodeId, String>, timeout_ms: u64) -> Self {
        assert!(!voters.is_empty(), "a quorum needs voters");
        Self {
            voters,
            leader_guess: None,
            connections: BTreeMap::new(),
            timeout_ms,
            next_voter: 0,
        }
    }

    /// Parses `1@host:port,2@host:port` into voters.
    pub fn parse_voters(text: &str) -> Result<BTreeMap<NodeId, String>, String> {
        text.split(',')
            .filter(|part| !part.trim().is_empty())
            .map(|part| {
                let (id, addr) = part.trim().split_once('@').ok_or_else(|| format!("expected ID@HOST:PORT, got {part:?}"))?;
                let id: NodeId = id.parse().map_err(|_| format!("bad voter id {id:?}"))?;
                Ok((id, addr.to_string()))
            })
            .collect()
    }

    fn pick(&mut self) -> NodeId {
        if let Some(leader) = self.leader_guess.filter(|l| self.voters.contains_key(l)) {
            return leader;
        }
        let ids: Vec<NodeId> = self.voters.keys().copied().collect();
        let id = ids[self.next_voter % ids.len()];
        self.next_voter += 1;
        id
    }

    async fn exchange(&mut self, voter: NodeId, request: &ControllerRequest) -> Result<ControllerResponse, (bool, String)> {
        let timeout = Duration::from_millis(self.timeout_ms);
        if !self.connections.contains_key(&voter) {
            let addr = self.voters[&voter].clone();
            let failure = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr.clone())).await {
                Ok(Ok(stream)) => {
                    self.connections.insert(voter, stream);
                    None
                }
                Ok(Err(error)) => Some(format!("connect {addr}: {error}")),
                Err(_) => Some(format!("connect {addr}: timed out")),
            };
            if let Some(reason) = failure {
                // An unreachable guess must not be tried again and again.
                if self.leader_guess == Some(voter) {
                    self.leader_guess = None;
                }
                return Err((false, reason));
            }
        }
        let stream = self.connections.get_mut(&voter).expect("connected above");
        let sent = matches!(tokio::time::timeout(timeout, write_json(stream, request)).await, Ok(Ok(())));
        let result = if sent {
            match tokio::time::timeout(timeout, read_json::<_, ControllerResponse>(stream)).await {
                Ok(Ok(Some(response))) => Ok(response),
                Ok(Ok(None)) => Err((true, "connection closed".to_string())),
                Ok(Err(error)) => Err((true, error.to_string())),
                Err(_) => Err((true, "timed out".to_string())),
            }
        } else {
            // A partly written frame may still be read by the peer.
            Err((true, "send failed".to_string()))
        };
        if result.is_err() {
            self.connections.remove(&voter);
            self.leader_guess = None;
        }
        result
    }

    /// Sends `request` to the leader, following redirects, within
    /// `attempts_max` tries.
    pub async fn call(&mut self, request: &ControllerRequest, attempts_max: usize) -> Result<ControllerResponse, QuorumCallError> {
        let mut last = String::from("no attempt made");
        let mut maybe_applied = false;
        for _ in 0..attempts_max.max(1) {
            let voter = self.pick();
            let outcome = self.exchange(voter, request).await;
            tracing::debug!(voter, ?outcome, "controller call attempt");
            match outcome {
                Ok(ControllerResponse::NotLeader { leader_hint }) => {
                    self.leader_guess = leader_hint.filter(|hint| *hint != voter);
                    last = format!("controller {voter} is not the leader");
                    if self.leader_guess.is_none() {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(ControllerResponse::Unknown { reason }) if !request.is_read() => return Err(QuorumCallError::Unknown(reason)),
                Ok(ControllerResponse::Unknown { reason }) => last = reason,
                Ok(response) => {
                    self.leader_guess = Some(voter);
                    return Ok(response);
                }
                Err((sent, reason)) => {
                    last = format!("controller {voter}: {reason}");
                    if sent && !request.is_read() {
                        maybe_applied = true;
                        break;
                    }
                }
            }
        }
        if maybe_applied {
            Err(QuorumCallError::Unknown(last))
        } else {
            Err(QuorumCallError::NoLeader(last))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voters_parse_and_reject_garbage() {
        let voters = QuorumClient::parse_voters("1@10.0.2.1:9094, 2@10.0.2.2:9094").unwrap();
        assert_eq!(voters.len(), 2);
        assert_eq!(voters[&2], "10.0.2.2:9094");
        assert!(QuorumClient::parse_voters("1=10.0.2.1").is_err());
        assert!(QuorumClient::parse_voters("x@h:1").is_err());
    }
}
