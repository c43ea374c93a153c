//! Simulation harness for DistributedLog.

pub mod disk;
