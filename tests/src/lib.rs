//! End-to-end tests of DistributedLog; the tests live in `tests/tests/`.
//! This library holds what they share: finding the binaries the Makefile
//! built next to the test executables.

use std::path::PathBuf;

/// The path of a workspace binary built into the same target directory as
/// the running test (`make test` builds them first). `DLOG_BIN_DIR`
/// overrides the directory.
pub fn workspace_binary(name: &str) -> PathBuf {
    if let Ok(dir) = std::env::var("DLOG_BIN_DIR") {
        return PathBuf::from(dir).join(name);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("test executable lives in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} not found: build the binaries first (make test does: cargo build --bins)",
        path.display()
    );
    path
}
