//! The run's trace hash: every frame the brokers receive and send, every
//! fault, and (folded in at the end) every disk operation. Two runs of one
//! seed must produce the same hash; `--check-determinism` compares them.

use std::sync::{Arc, Mutex};

/// FNV-1a 64-bit offset basis.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Folds bytes into an FNV-1a state.
pub fn fnv1a(mut state: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        state ^= u64::from(*byte);
        state = state.wrapping_mul(FNV_PRIME);
    }
    state
}

/// A shared, order-sensitive hash of events.
#[derive(Debug, Clone)]
pub struct TraceHash {
    inner: Arc<Mutex<(u64, u64)>>,
}

impl Default for TraceHash {
    fn default() -> Self {
        Self {
            inner: Arc::new(Mutex::new((FNV_OFFSET, 0))),
        }
    }
}

impl TraceHash {
    /// A fresh trace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one event (a tag and its bytes) into the hash.
    pub fn record(&self, tag: &str, bytes: &[u8]) {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let state = fnv1a(guard.0, tag.as_bytes());
        let state = fnv1a(state, &(bytes.len() as u64).to_le_bytes());
        guard.0 = fnv1a(state, bytes);
        guard.1 += 1;
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    /// How many events were folded in.
    pub fn events(&self) -> u64 {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_matters_and_equal_inputs_hash_equal() {
        let (a, b, c) = (TraceHash::new(), TraceHash::new(), TraceHash::new());
        a.record("x", b"1");
        a.record("y", b"2");
        b.record("x", b"1");
        b.record("y", b"2");
        c.record("y", b"2");
        c.record("x", b"1");
        assert_eq!(a.value(), b.value());
        assert_ne!(a.value(), c.value());
    }
}
