//! `dlog-groups`, the operator's view of consumer groups, against the real
//! broker with kcat's balanced consumer as the group: `list` shows the
//! groups and their states, `describe` a live member and its partition,
//! `lag` each partition's committed offset, end and lag.
#![cfg(not(madsim))]

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use dlog_tests::{free_port, start_standalone_broker, workspace_binary};

fn kcat_produce(bootstrap: &str, topic: &str, count: usize) {
    let mut child = Command::new("kcat").args(["-b", bootstrap, "-P", "-t", topic]).stdin(Stdio::piped()).spawn().expect("kcat runs");
    let mut stdin = child.stdin.take().expect("stdin");
    for i in 0..count {
        writeln!(stdin, "v{i}").unwrap();
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

fn groups(bootstrap: &str, args: &[&str]) -> String {
    let output = Command::new(workspace_binary("dlog-groups")).arg("--bootstrap").arg(bootstrap).args(args).output().expect("dlog-groups runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "dlog-groups {args:?} failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    stdout
}

#[test]
fn list_describe_and_lag_show_what_the_group_did() {
    let data_dir = std::env::temp_dir().join(format!("dlog-groups-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data_dir);
    let port = free_port();
    let bootstrap = format!("127.0.0.1:{port}");
    let _broker = start_standalone_broker(port, &data_dir);
    kcat_produce(&bootstrap, "lagged", 10);
    // A group reads all 10 and commits; 3 more arrive after.
    let read = Command::new("timeout")
        .args(["60", "kcat", "-b", &bootstrap, "-G", "done", "-X", "auto.offset.reset=earliest", "-e", "lagged"])
        .output()
        .expect("kcat runs");
    assert!(read.status.success(), "{}", String::from_utf8_lossy(&read.stderr));
    kcat_produce(&bootstrap, "lagged", 3);
    let lag = groups(&bootstrap, &["lag", "done"]);
    let row = lag.lines().find(|l| l.starts_with("lagged")).unwrap_or_else(|| panic!("no row for lagged:\n{lag}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields, ["lagged", "0", "10", "13", "3"], "committed 10 of 13:\n{lag}");
    assert!(lag.contains("total lag 3"), "{lag}");

    // A live member: described with its partition while it runs.
    let mut live = Command::new("kcat")
        .args(["-b", &bootstrap, "-G", "live", "-X", "auto.offset.reset=earliest", "lagged"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kcat runs");
    let mut described = String::new();
    for _ in 0..100 {
        described = groups(&bootstrap, &["describe", "live"]);
        if described.contains("state Stable") && described.contains("lagged-0") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = live.kill();
    let _ = live.wait();
    assert!(described.contains("state Stable, assignor range, 1 member(s)"), "{described}");
    assert!(described.lines().any(|l| l.starts_with("rdkafka-") && l.trim_end().ends_with("lagged-0")), "{described}");

    let listed = groups(&bootstrap, &["list"]);
    assert!(listed.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["done", "Empty", "consumer"]), "{listed}");
    assert!(listed.lines().any(|l| l.starts_with("live ")), "{listed}");
    assert!(groups(&bootstrap, &["describe", "never-seen"]).contains("state Dead"), "a group never seen is Dead, as in Kafka");
    let _ = std::fs::remove_dir_all(&data_dir);
}
