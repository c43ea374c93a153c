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

/// The options of one run of `scenario`.
#[cfg(madsim)]
pub fn scenario_options(scenario: &str, seed: u64, config: &[&str]) -> scenarios::run::RunOptions {
    scenarios::run::RunOptions {
        scenario: scenario.into(),
        seed,
        config: config.iter().map(|s| s.to_string()).collect(),
        schedule: None,
    }
}

/// Runs seeds of a scenario on two threads (see `scenarios::run::sweep`);
/// `visit` sees each outcome and returns true to stop early. Returns the
/// runs that failed outright, each with its replay command.
#[cfg(madsim)]
pub fn sweep_scenario(
    scenario: &str,
    seeds: std::ops::RangeInclusive<u64>,
    config: &[&str],
    visit: impl Fn(u64, &scenarios::run::RunOutcome) -> bool + Sync,
) -> Vec<String> {
    let failures = std::sync::Mutex::new(Vec::new());
    let options_for = |seed| scenario_options(scenario, seed, config);
    scenarios::run::sweep(seeds, 2, options_for, |options, result| match result {
        Ok(outcome) => visit(options.seed, &outcome),
        Err(error) => {
            let line = format!("seed {}: {error} (replay: {})", options.seed, scenarios::run::replay_command(options));
            failures.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            false
        }
    });
    failures.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Runs seeds of a scenario (see [`sweep_scenario`]) and asserts that no
/// run failed and every verdict is valid, naming each bad seed with its
/// replay command; `inspect` sees every outcome first, for extra checks.
#[cfg(madsim)]
pub fn assert_every_seed_valid(
    scenario: &str,
    seeds: std::ops::RangeInclusive<u64>,
    config: &[&str],
    inspect: impl Fn(u64, &scenarios::run::RunOutcome) + Sync,
) {
    let invalid = std::sync::Mutex::new(Vec::new());
    let failures = sweep_scenario(scenario, seeds, config, |seed, outcome| {
        inspect(seed, outcome);
        if outcome.report.valid != checker::Validity::Valid {
            let replay = scenarios::run::replay_command(&scenario_options(scenario, seed, config));
            let line = format!("seed {seed}: {:?} (replay: {replay})", outcome.report.disallowed());
            invalid.lock().unwrap_or_else(|e| e.into_inner()).push(line);
        }
        false
    });
    assert!(failures.is_empty(), "{scenario}: runs failed (a liveness failure is one):\n{}", failures.join("\n"));
    let invalid = invalid.into_inner().unwrap_or_else(|e| e.into_inner());
    assert!(invalid.is_empty(), "{scenario} with {config:?}: anomalies:\n{}", invalid.join("\n"));
}

/// Sweeps `seeds` of `scenario` with `config` until the checker reports
/// one of `anomalies`; returns the smallest such seed seen (a teaching
/// knob's test: the knob must be caught in a bounded set of seeds).
#[cfg(madsim)]
pub fn first_seed_showing(scenario: &str, seeds: std::ops::RangeInclusive<u64>, config: &[&str], anomalies: &[&str]) -> u64 {
    let caught = std::sync::Mutex::new(None);
    let failures = sweep_scenario(scenario, seeds.clone(), config, |seed, outcome| {
        let found = outcome.report.disallowed().iter().any(|a| anomalies.contains(a));
        if found {
            let mut caught = caught.lock().unwrap_or_else(|e| e.into_inner());
            *caught = Some(caught.map_or(seed, |s: u64| s.min(seed)));
        }
        found
    });
    caught
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .unwrap_or_else(|| panic!("{scenario}: no seed in {seeds:?} with {config:?} showed any of {anomalies:?}; failures: {failures:?}"))
}

/// A standalone `dlog-broker` process, killed when dropped (tests that run
/// real clients against the real binary).
#[cfg(not(madsim))]
pub struct BrokerProcess(pub std::process::Child);

#[cfg(not(madsim))]
impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A local port nobody listens on now.
#[cfg(not(madsim))]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a standalone broker on `127.0.0.1:port` over `data_dir` and waits
/// (up to 20 s) until it accepts connections.
#[cfg(not(madsim))]
pub fn start_standalone_broker(port: u16, data_dir: &std::path::Path) -> BrokerProcess {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let child = Command::new(workspace_binary("dlog-broker"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dlog-broker starts");
    #[allow(clippy::disallowed_methods)] // a real process needs real time
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        #[allow(clippy::disallowed_methods)]
        let now = Instant::now();
        assert!(now < deadline, "dlog-broker did not listen on {port} within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    BrokerProcess(child)
}
