//! Phase timings on stderr when CHECKER_PROFILE is set, for tuning.

use std::time::Instant;

pub(crate) struct Phases {
    last: Option<Instant>,
}

// Profiling measures wall-clock time by definition; the checker runs outside the simulation.
#[allow(clippy::disallowed_methods)]
fn now() -> Instant {
    Instant::now()
}

impl Phases {
    pub fn new() -> Phases {
        Phases {
            last: std::env::var_os("CHECKER_PROFILE").map(|_| now()),
        }
    }

    pub fn mark(&mut self, what: &str) {
        if let Some(t) = self.last {
            let n = now();
            eprintln!("profile: {what}: {:.1} ms", (n - t).as_secs_f64() * 1000.0);
            self.last = Some(n);
        }
    }
}
