//! The simulated wall clock: the simulation's virtual time, shifted by a
//! per-node skew the fault schedule can change.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use broker::clock::Clock;

/// Wall-clock milliseconds at virtual time zero: 2026-01-01T00:00:00Z. A
/// fixed epoch keeps timestamps, and so histories, identical across runs.
pub const SIM_EPOCH_MS: i64 = 1_767_225_600_000;

/// A node's clock in the simulation.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    skew_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// A clock with no skew.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets this clock's skew (positive: ahead of virtual time).
    pub fn set_skew_ms(&self, skew_ms: i64) {
        self.skew_ms.store(skew_ms, Ordering::SeqCst);
    }

    /// The current skew.
    pub fn skew_ms(&self) -> i64 {
        self.skew_ms.load(Ordering::SeqCst)
    }
}

/// Virtual time since the run started, in nanoseconds (0 outside a simulation).
pub fn elapsed_ns() -> u64 {
    #[cfg(madsim)]
    {
        madsim::time::TimeHandle::try_current()
            .map(|t| t.elapsed().as_nanos() as u64)
            .unwrap_or(0)
    }
    #[cfg(not(madsim))]
    {
        0
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> i64 {
        SIM_EPOCH_MS + (elapsed_ns() / 1_000_000) as i64 + self.skew_ms()
    }
}
