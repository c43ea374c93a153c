//! The clock seam: wall-clock time for timestamps, retention and segment age.
//!
//! Timers and timeouts use `tokio::time`, which the simulation virtualises;
//! wall-clock readings go through [`Clock`] so the simulation can skew each
//! node's clock on purpose. Broker code never calls `SystemTime::now`.

use std::sync::Arc;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// Milliseconds since the Unix epoch, as this node believes.
    fn now_ms(&self) -> i64;
}

/// The production clock: the operating system's wall clock.
#[derive(Debug, Default, Clone)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place the real wall clock is read
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that returns whatever it was last set to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: std::sync::atomic::AtomicI64,
}

impl ManualClock {
    /// A clock reading `now_ms`.
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            now_ms: std::sync::atomic::AtomicI64::new(now_ms),
        })
    }
    /// Moves the clock to `now_ms`.
    pub fn set(&self, now_ms: i64) {
        self.now_ms.store(now_ms, std::sync::atomic::Ordering::SeqCst);
    }
    /// Moves the clock forward by `delta_ms`.
    pub fn advance(&self, delta_ms: i64) {
        self.now_ms.fetch_add(delta_ms, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(std::sync::atomic::Ordering::SeqCst)
    }
}
