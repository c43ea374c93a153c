//! Parallel map over a lazily built thread pool, falling back to the calling
//! thread when no thread can be started: inside a madsim simulation thread
//! creation is refused, and a checker called there must still work.

use std::sync::OnceLock;

use rayon::prelude::*;

static POOL: OnceLock<rayon::ThreadPool> = OnceLock::new();

/// The pool, built on first use; `None` when threads cannot be started here
/// (tried again on the next call).
fn pool() -> Option<&'static rayon::ThreadPool> {
    if let Some(p) = POOL.get() {
        return Some(p);
    }
    let built = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("checker-{i}")).build().ok()?;
    // Another thread may have won the race; either pool will do.
    let _ = POOL.set(built);
    POOL.get()
}

/// `items.map(f)`, in parallel when a pool is available, in order either way.
pub(crate) fn map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    match pool() {
        Some(p) => p.install(|| items.par_iter().map(&f).collect()),
        None => items.iter().map(f).collect(),
    }
}
