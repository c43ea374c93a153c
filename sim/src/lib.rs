//! Simulation harness for DistributedLog: the faulty implementations of the
//! broker's seams (disk, clock), the seeded fault schedule, the trace hash,
//! and (in a `--cfg madsim` build) clusters of named nodes on madsim.

pub mod clock;
#[cfg(madsim)]
pub mod cluster;
pub mod disk;
pub mod nemesis;
pub mod trace;
