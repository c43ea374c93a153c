//! What a client knows of the cluster: where each partition's leader is,
//! and one open connection per broker. Metadata is fetched lazily and
//! refreshed whenever a broker says it is not the leader, a partition is
//! unknown, or a connection fails.

use std::collections::BTreeMap;

use kafka_protocol::messages::{
    create_topics_request::CreatableTopic, metadata_request::MetadataRequestTopic, CreateTopicsRequest,
    FindCoordinatorRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::{ClientError, Connection, TopicPartition};

/// Metadata request version this client speaks.
pub const METADATA_VERSION: i16 = 7;
/// CreateTopics request version this client speaks.
pub const CREATE_TOPICS_VERSION: i16 = 4;
/// FindCoordinator request version this client speaks (one key per request).
pub const FIND_COORDINATOR_VERSION: i16 = 3;

/// Connections and leader metadata shared by the producer and the consumer.
pub struct Cluster {
    /// The bootstrap servers (`host:port`, comma-separated in the config);
    /// metadata is asked of the first that answers.
    bootstrap: Vec<String>,
    /// Which bootstrap server to ask first: the last one that answered.
    bootstrap_next: usize,
    client_id: String,
    timeout_ms: u64,
    connections: BTreeMap<String, Connection>,
    leaders: BTreeMap<TopicPartition, String>,
    partition_counts: BTreeMap<String, i32>,
    /// Every broker's address, by node id, from the last metadata.
    brokers: BTreeMap<i32, String>,
}

impl Cluster {
    /// A client of the cluster reachable at `bootstrap` (`host:port`, or
    /// several separated by commas).
    pub fn new(bootstrap: &str, client_id: &str, timeout_ms: u64) -> Self {
        let servers: Vec<String> = bootstrap.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        Self {
            bootstrap: if servers.is_empty() { vec![bootstrap.to_string()] } else { servers },
            bootstrap_next: 0,
            client_id: client_id.into(),
            timeout_ms,
            connections: BTreeMap::new(),
            leaders: BTreeMap::new(),
            partition_counts: BTreeMap::new(),
            brokers: BTreeMap::new(),
        }
    }

    /// The per-request timeout.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms
    }

    /// An open connection to `addr`, connecting if needed.
    pub async fn connection(&mut self, addr: &str) -> Result<&mut Connection, ClientError> {
        if !self.connections.contains_key(addr) {
            let connection = Connection::connect(addr, &self.client_id, self.timeout_ms).await?;
            self.connections.insert(addr.into(), connection);
        }
        Ok(self.connections.get_mut(addr).expect("inserted above"))
    }

    /// Forgets the connection to `addr` (after a timeout or socket error)
    /// and the leaders learnt through it.
    pub fn drop_connection(&mut self, addr: &str) {
        self.connections.remove(addr);
        self.leaders.retain(|_, leader| leader != addr);
    }

    /// Forgets the leader of `tp`, so the next lookup asks for metadata.
    pub fn invalidate(&mut self, tp: &TopicPartition) {
        self.leaders.remove(tp);
    }

    /// How many partitions `topic` has, if known.
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        self.partition_counts.get(topic).copied()
    }

    /// Asks a bootstrap broker for metadata of `topics`: each in turn,
    /// starting with the one that answered last, until one answers.
    pub async fn refresh(&mut self, topics: &[String]) -> Result<(), ClientError> {
        let request = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.clone())))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        let timeout_ms = self.timeout_ms;
        let mut last_error = None;
        let mut answer = None;
        for attempt in 0..self.bootstrap.len() {
            let index = (self.bootstrap_next + attempt) % self.bootstrap.len();
            let server = self.bootstrap[index].clone();
            let result = match self.connection(&server).await {
                Ok(connection) => connection.request(&request, METADATA_VERSION, timeout_ms).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(response) => {
                    self.bootstrap_next = index;
                    answer = Some(response);
                    break;
                }
                Err(error) => {
                    self.drop_connection(&server);
                    last_error = Some(error);
                }
            }
        }
        let Some(response) = answer else {
            return Err(last_error.unwrap_or(ClientError::BadResponse("no bootstrap server".into())));
        };
        let brokers: BTreeMap<i32, String> = response
            .brokers
            .iter()
            .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
            .collect();
        self.brokers.clone_from(&brokers);
        for topic in response.topics {
            let Some(name) = topic.name.map(|n| n.0.as_str().to_string()) else {
                continue;
            };
            if topic.error_code != 0 {
                continue;
            }
            self.partition_counts.insert(name.clone(), topic.partitions.len() as i32);
            for partition in topic.partitions {
                let tp = TopicPartition::new(name.clone(), partition.partition_index);
                match brokers.get(&partition.leader_id.0) {
                    Some(addr) if partition.error_code == 0 => {
                        self.leaders.insert(tp, addr.clone());
                    }
                    _ => {
                        self.leaders.remove(&tp);
                    }
                }
            }
        }
        Ok(())
    }

    /// Asks a bootstrap broker (each in turn, as [`Cluster::refresh`] does)
    /// which broker coordinates `key`: a group (`key_type` 0) or a
    /// transactional id (1). `Ok(Err(code))` is the broker's error code
    /// (COORDINATOR_NOT_AVAILABLE while the internal topic has no leader).
    pub async fn find_coordinator(&mut self, key: &str, key_type: i8) -> Result<Result<String, i16>, ClientError> {
        let request = FindCoordinatorRequest::default().with_key(StrBytes::from_string(key.into())).with_key_type(key_type);
        let timeout_ms = self.timeout_ms;
        let mut last_error = None;
        for attempt in 0..self.bootstrap.len() {
            let index = (self.bootstrap_next + attempt) % self.bootstrap.len();
            let server = self.bootstrap[index].clone();
            let result = match self.connection(&server).await {
                Ok(connection) => connection.request(&request, FIND_COORDINATOR_VERSION, timeout_ms).await,
                Err(error) => Err(error),
            };
            match result {
                Ok(response) if response.error_code != 0 => return Ok(Err(response.error_code)),
                Ok(response) => {
                    self.bootstrap_next = index;
                    return Ok(Ok(format!("{}:{}", response.host.as_str(), response.port)));
                }
                Err(error) => {
                    self.drop_connection(&server);
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or(ClientError::BadResponse("no bootstrap server".into())))
    }

    /// Every broker's address from the last metadata (by node id).
    pub fn brokers(&self) -> Vec<String> {
        self.brokers.values().cloned().collect()
    }

    /// The address of `tp`'s leader, asking for metadata if unknown.
    pub async fn leader(&mut self, tp: &TopicPartition) -> Result<Option<String>, ClientError> {
        if !self.leaders.contains_key(tp) {
            self.refresh(std::slice::from_ref(&tp.topic)).await?;
        }
        Ok(self.leaders.get(tp).cloned())
    }

    /// Creates a topic through the bootstrap broker; an existing topic is not an error.
    pub async fn create_topic(&mut self, name: &str, partitions: i32) -> Result<(), ClientError> {
        self.create_topic_replicated(name, partitions, 1).await
    }

    /// Creates a topic with `replication_factor` replicas per partition
    /// through the first bootstrap broker; an existing topic is not an error.
    pub async fn create_topic_replicated(&mut self, name: &str, partitions: i32, replication_factor: i16) -> Result<(), ClientError> {
        let request = CreateTopicsRequest::default()
            .with_topics(vec![CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_string(name.into())))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor)])
            .with_timeout_ms(self.timeout_ms as i32);
        let bootstrap = self.bootstrap[self.bootstrap_next].clone();
        let timeout_ms = self.timeout_ms;
        let result = match self.connection(&bootstrap).await {
            Ok(connection) => connection.request(&request, CREATE_TOPICS_VERSION, timeout_ms).await,
            Err(error) => Err(error),
        };
        let response = result.inspect_err(|_| {
            self.drop_connection(&bootstrap);
            self.bootstrap_next = (self.bootstrap_next + 1) % self.bootstrap.len();
        })?;
        for topic in response.topics {
            if topic.error_code != 0 && topic.error_code != ResponseError::TopicAlreadyExists.code() {
                return Err(ClientError::BadResponse(format!(
                    "create topic {name}: error code {}",
                    topic.error_code
                )));
            }
        }
        Ok(())
    }
}
