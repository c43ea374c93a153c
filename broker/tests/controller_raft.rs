//! End to end, synchronously: three controller replicas, each a `RaftNode`
//! persisting through `RaftStorage` on a real directory and applying
//! committed entries to a `MetadataImage`. This is the driver contract of
//! `broker::raft` written out as the simplest possible driver, as a reference
//! for the async one.
//!
//! Run: `cargo test -p dlog-broker --test controller_raft`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use broker::controller::{ControllerConfig, MetadataImage, MetadataRecord};
use broker::disk::{Disk, RealDisk};
use broker::raft::storage::{RaftStorage, StorageOptions};
use broker::raft::{EntryKind, Message, NodeId, RaftConfig, RaftNode};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

struct Replica {
    node: RaftNode,
    storage: RaftStorage,
    image: MetadataImage,
}

impl Replica {
    /// Boot (or reboot) from the directory: recover storage, rebuild the
    /// image from the snapshot, start the node.
    fn boot(id: NodeId, dir: &Path) -> Self {
        let disk: Arc<dyn Disk> = Arc::new(RealDisk);
        let (storage, recovered) = RaftStorage::open(disk, dir, StorageOptions::default()).expect("open storage");
        let image = match &recovered.snapshot {
            Some(snapshot) => MetadataImage::restore(&snapshot.data).expect("snapshot decodes"),
            None => MetadataImage::new(ControllerConfig::default()),
        };
        let mut config = RaftConfig::new(id, vec![1, 2, 3]);
        config.election_tick = 10;
        let node = RaftNode::new(config, recovered, ChaCha8Rng::seed_from_u64(id)).expect("node");
        Self { node, storage, image }
    }

    /// Steps 1-8 of the driver contract. Returns the messages to send.
    fn handle_ready(&mut self) -> Vec<Message> {
        let mut outbox = Vec::new();
        while let Some(ready) = self.node.ready() {
            // 1-4: snapshot, hard state, entries, synced.
            self.storage.persist_ready(&ready).expect("persist");
            // 5: send (here: hand back to the test network).
            outbox.extend(ready.messages);
            // 6: restore, then apply.
            if ready.restore_snapshot {
                let snapshot = ready.snapshot.as_ref().expect("restore carries a snapshot");
                self.image = MetadataImage::restore(&snapshot.data).expect("snapshot decodes");
            }
            for entry in &ready.committed_entries {
                if entry.kind == EntryKind::Noop {
                    continue;
                }
                let record = MetadataRecord::decode(&entry.data).expect("valid record");
                // Rejections are deterministic outcomes, not driver errors.
                let _outcome = self.image.apply(entry.index, entry.term, &record);
            }
            // 7: read states would be answered here. 8: advance.
            self.node.advance();
        }
        outbox
    }
}

struct Controllers {
    dirs: BTreeMap<NodeId, PathBuf>,
    replicas: BTreeMap<NodeId, Option<Replica>>,
}

impl Controllers {
    fn new(name: &str) -> Self {
        let mut dirs = BTreeMap::new();
        let mut replicas = BTreeMap::new();
        for id in [1, 2, 3] {
            let dir = std::env::temp_dir().join(format!("dlog-controller-{name}-{}-{id}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            replicas.insert(id, Some(Replica::boot(id, &dir)));
            dirs.insert(id, dir);
        }
        Self { dirs, replicas }
    }

    fn round(&mut self) {
        let mut network = Vec::new();
        for replica in self.replicas.values_mut().flatten() {
            replica.node.tick();
            network.extend(replica.handle_ready());
        }
        while !network.is_empty() {
            let message = network.remove(0);
            if let Some(Some(replica)) = self.replicas.get_mut(&message.to) {
                replica.node.step(message);
                network.extend(replica.handle_ready());
            }
        }
    }

    fn leader(&mut self) -> NodeId {
        for _ in 0..200 {
            if let Some((&id, _)) = self.replicas.iter().find(|(_, r)| r.as_ref().is_some_and(|r| r.node.is_leader())) {
                return id;
            }
            self.round();
        }
        panic!("no controller leader");
    }

    fn propose(&mut self, record: MetadataRecord) {
        let leader = self.leader();
        let replica = self.replicas.get_mut(&leader).unwrap().as_mut().unwrap();
        replica.node.propose(record.encode()).expect("leader accepts");
        for _ in 0..3 {
            self.round();
        }
    }

    fn images(&self) -> Vec<Vec<u8>> {
        self.replicas.values().flatten().map(|r| r.image.snapshot()).collect()
    }
}

impl Drop for Controllers {
    fn drop(&mut self) {
        for dir in self.dirs.values() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[test]
fn controller_replicas_agree_through_restart_and_snapshot_install() {
    let mut c = Controllers::new("e2e");
    for broker_id in 1..=3 {
        c.propose(MetadataRecord::RegisterBroker {
            broker_id,
            incarnation_id: 40 + broker_id as u64,
            listener: format!("b{broker_id}:9092"),
            rack: None,
            now_ms: 0,
            clean_shutdown: true,
        });
        let leader = c.leader();
        let epoch = c.replicas[&leader].as_ref().unwrap().image.broker(broker_id).unwrap().broker_epoch;
        c.propose(MetadataRecord::BrokerHeartbeat { broker_id, broker_epoch: epoch, now_ms: 10, metadata_offset: 0 });
    }
    // One replica goes down (its directory stays).
    let leader = c.leader();
    let down = [1, 2, 3].into_iter().find(|&id| id != leader).unwrap();
    c.replicas.insert(down, None);
    c.propose(MetadataRecord::CreateTopic { name: "orders".into(), partitions: 4, replication_factor: 3, configs: Default::default() });
    c.propose(MetadataRecord::CreateTopic { name: "audit".into(), partitions: 1, replication_factor: 2, configs: Default::default() });
    // The live replicas snapshot their images and compact, so the returning
    // replica can only catch up by InstallSnapshot.
    for replica in c.replicas.values_mut().flatten() {
        let applied = replica.node.log().applied();
        // The image reflects every entry up to `applied` (no-ops change nothing).
        assert!(replica.image.last_applied_offset() <= applied);
        replica.node.compact(applied, replica.image.snapshot()).expect("compact");
        replica.handle_ready();
    }
    // Reboot every replica from disk, including the one that was down.
    for id in [1, 2, 3] {
        let dir = c.dirs[&id].clone();
        c.replicas.insert(id, Some(Replica::boot(id, &dir)));
    }
    let leader = c.leader();
    let topic_id = c.replicas[&leader].as_ref().unwrap().image.topic("audit").unwrap().topic_id;
    c.propose(MetadataRecord::DeleteTopic { name: "audit".into(), topic_id });
    for _ in 0..20 {
        c.round();
    }
    let images = c.images();
    assert_eq!(images.len(), 3);
    assert!(images.windows(2).all(|w| w[0] == w[1]), "all replicas hold the same metadata image");
    let image = MetadataImage::restore(&images[0]).unwrap();
    assert_eq!(image.topic("orders").unwrap().partitions.len(), 4);
    assert!(image.topic("audit").is_none());
    assert_eq!(image.live_brokers(), vec![1, 2, 3]);
    let returned = c.replicas[&down].as_ref().unwrap();
    assert!(returned.node.snapshot().is_some(), "the returning replica got the leader's snapshot");
}
