//! Cluster mode: a broker whose metadata comes from the controller quorum.
//!
//! The broker registers (getting a broker epoch), heartbeats, and keeps the
//! last metadata view it read. Client Metadata requests are answered from a
//! fresh linearizable read of the quorum (so clients never see metadata go
//! back in time), CreateTopics and DeleteTopics are forwarded, and
//! Produce/Fetch are served only for partitions the view says this broker
//! leads; the local log of such a partition is opened on first use, for
//! the topic id the view names. Every view read also closes the open
//! partitions of topics that left it or changed id (see
//! `Broker::reconcile_topics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::Broker;
use crate::quorum::client::QuorumCallError;
use crate::quorum::{ClusterView, ControllerRequest, ControllerResponse, QuorumClient};

/// How many controllers a call may try (redirects included).
const CALL_ATTEMPTS_MAX: usize = 6;

/// A broker's link to the quorum.
pub struct ClusterLink {
    /// Shared by request handlers.
    pub(crate) client: tokio::sync::Mutex<QuorumClient>,
    /// The last view read from the quorum.
    pub(crate) view: Mutex<Option<ClusterView>>,
    /// This broker's registration epoch (0 until registered).
    pub(crate) broker_epoch: AtomicU64,
    /// The newest view (`metadata_offset`) this broker has acted on: its
    /// cached view is at least this new and its open topics match it. Sent
    /// in heartbeats; the quorum holds a deleted name back until every
    /// broker is past the deletion. Raised under the broker's topics lock.
    pub(crate) acted_on_offset: AtomicU64,
    voters: std::collections::BTreeMap<u64, String>,
}

impl ClusterLink {
    /// A link to the voters in `voters_text` (`ID@HOST:PORT,...`).
    pub fn new(voters_text: &str, timeout_ms: u64) -> Result<Self, String> {
        let voters = QuorumClient::parse_voters(voters_text)?;
        if voters.is_empty() {
            return Err("controller.quorum.voters names no voter".into());
        }
        Ok(Self {
            client: tokio::sync::Mutex::new(QuorumClient::new(voters.clone(), timeout_ms)),
            view: Mutex::new(None),
            broker_epoch: AtomicU64::new(0),
            acted_on_offset: AtomicU64::new(0),
            voters,
        })
    }

    /// Calls the quorum with the shared client.
    pub async fn call(&self, request: &ControllerRequest) -> Result<ControllerResponse, QuorumCallError> {
        self.client.lock().await.call(request, CALL_ATTEMPTS_MAX).await
    }

    /// A linearizable read of the metadata; remembers it for data requests.
    pub async fn describe(&self) -> Result<ClusterView, QuorumCallError> {
        match self.call(&ControllerRequest::DescribeCluster).await? {
            ControllerResponse::Cluster(view) => {
                self.remember(&view);
                Ok(view)
            }
            other => Err(QuorumCallError::NoLeader(format!("unexpected answer {other:?}"))),
        }
    }

    fn remember(&self, view: &ClusterView) {
        let mut guard = self.view.lock().unwrap_or_else(|e| e.into_inner());
        // Keep the newest view: a slow read must not replace a later one.
        if guard.as_ref().is_none_or(|old| old.metadata_offset <= view.metadata_offset) {
            *guard = Some(view.clone());
        }
    }

    /// Drops a topic the quorum said is gone from the cached view, so data
    /// requests stop at once instead of at the next read.
    pub(crate) fn forget_topic(&self, name: &str) {
        let mut guard = self.view.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(view) = guard.as_mut() {
            view.topics.retain(|t| t.name != name);
        }
    }

    /// The last view read, if any.
    pub fn cached_view(&self) -> Option<ClusterView> {
        self.view.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Registers, then heartbeats and refreshes the view forever; registers
/// again when the controller no longer accepts our epoch.
pub async fn run_membership(broker: Arc<Broker>) {
    let Some(link) = broker.cluster.as_ref() else { return };
    let config = &broker.config;
    let mut client = QuorumClient::new(link.voters.clone(), config.controller_request_timeout_ms);
    let incarnation_id = ChaCha8Rng::seed_from_u64(config.seed ^ 0x1ca7_1a7e).next_u64();
    let listener = format!("{}:{}", config.advertised_host, config.advertised_port);
    let interval = Duration::from_millis(config.broker_heartbeat_interval_ms);
    loop {
        let register = ControllerRequest::RegisterBroker {
            broker_id: config.node_id,
            incarnation_id,
            listener: listener.clone(),
            clean_shutdown: broker.clean_shutdown,
        };
        let broker_epoch = match client.call(&register, CALL_ATTEMPTS_MAX).await {
            Ok(ControllerResponse::Registered { broker_epoch }) => broker_epoch,
            outcome => {
                tracing::debug!(?outcome, "registration not accepted yet");
                tokio::time::sleep(interval).await;
                continue;
            }
        };
        link.broker_epoch.store(broker_epoch, Ordering::SeqCst);
        tracing::info!(node_id = config.node_id, broker_epoch, "registered with the controller quorum");
        loop {
            tokio::time::sleep(interval).await;
            let heartbeat = ControllerRequest::BrokerHeartbeat {
                broker_id: config.node_id,
                broker_epoch,
                metadata_offset: link.acted_on_offset.load(Ordering::SeqCst),
            };
            match client.call(&heartbeat, CALL_ATTEMPTS_MAX).await {
                Ok(ControllerResponse::HeartbeatAccepted) | Err(_) => {}
                Ok(ControllerResponse::Rejected { message, .. }) => {
                    tracing::warn!(%message, "heartbeat rejected: registering again");
                    break;
                }
                Ok(other) => tracing::debug!(?other, "heartbeat answer"),
            }
            if let Ok(ControllerResponse::Cluster(view)) = client.call(&ControllerRequest::DescribeCluster, CALL_ATTEMPTS_MAX).await {
                link.remember(&view);
                broker.reconcile_topics(&view);
            }
        }
    }
}
