//! The controller quorum as running processes: the async driver around the
//! sans-IO [`crate::raft::RaftNode`] and [`crate::controller::MetadataImage`],
//! the controller API that brokers call, and the client brokers use.
//!
//! Each controller listens on two ports:
//!
//! | port            | traffic                                    | frames                       |
//! |-----------------|--------------------------------------------|------------------------------|
//! | raft (9093)     | Raft messages between controllers, one way | JSON [`crate::raft::Message`] |
//! | api  (9094)     | broker → controller requests and replies   | JSON [`ControllerRequest`] / [`ControllerResponse`] |
//!
//! Frames are the Kafka framing (`i32` big-endian length, then payload), so
//! one size-checked reader serves every port. JSON keeps the controller
//! protocol readable in traces; it is internal to the cluster.
//!
//! Membership is static (the voters are configured); membership change is
//! not implemented yet.

pub mod client;
pub mod controller;
pub mod protocol;

pub use client::QuorumClient;
pub use controller::{check_ledgers, run_controller, AppliedLedger, ControllerNodeConfig, ControllerStats};
pub use protocol::{ClusterView, ControllerRequest, ControllerResponse};
