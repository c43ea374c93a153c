//! The HTML report: self-contained, and (when Chromium is installed) renders
//! in a real browser without script errors, for log, register and
//! consumer-group histories.

mod common;
use std::path::Path;
use std::process::Command;

use common::B;
use serde_json::json;

fn log_page() -> String {
    let mut b = B::new();
    b.nemesis("partition", json!({"phase": "start", "nodes": ["n1"]}));
    b.send_ok(0, "t-0", 17, 3).send_ok(2, "t-0", 18, 9);
    b.nemesis("kill", json!("n1"));
    b.poll(4, &[("t-0", &[(9, 18)])]);
    b.nemesis("partition", json!({"phase": "stop"}));
    b.nemesis("clock-skew-start", json!(null));
    b.poll(4, &[("t-0", &[(9, 18)])]);
    // A value containing "</script>" must not break the page.
    b.ev(json!("nemesis"), "info", "note", json!("</script><b>x</b>"));
    let h = b.history();
    let r = checker::check(&h);
    checker::html::render(&h, &r)
}

fn register_page() -> String {
    let mut b = B::new();
    for (p, f, v, ty, done) in [
        (0, "write", json!(1), "ok", json!(1)),
        (1, "write", json!(2), "ok", json!(2)),
        (2, "read", json!(null), "ok", json!(1)),
    ] {
        b.reg(p, "invoke", f, Some("x"), v);
        b.reg(p, ty, f, Some("x"), done);
    }
    let h = b.history();
    let r = checker::check(&h);
    assert_eq!(r.valid, checker::Validity::Invalid);
    checker::html::render(&h, &r)
}

/// Sends and polls with consumer-group commits and assignments, both group
/// anomalies present.
fn group_page() -> String {
    let mut b = B::new();
    let assignment = |b: &mut B, p: u32, member: &str| {
        let v = json!({"group": "g", "generation": 4, "member": member});
        let mut done = v.clone();
        done["keys"] = json!(["t-0"]);
        b.ev(json!(p), "invoke", "assignment", v);
        b.ev(json!(p), "ok", "assignment", done);
    };
    let commit = |b: &mut B, p: u32, offset: i64| {
        let v = json!({"group": "g", "generation": 4, "offsets": {"t-0": offset}});
        b.ev(json!(p), "invoke", "commit", v.clone());
        b.ev(json!(p), "ok", "commit", v);
    };
    assignment(&mut b, 1, "m-1");
    b.send_ok(0, "t-0", 17, 0);
    b.poll(1, &[("t-0", &[(0, 17)])]);
    commit(&mut b, 1, 1);
    b.nemesis("kill", json!("coordinator"));
    assignment(&mut b, 2, "m-2");
    commit(&mut b, 2, 0);
    let h = b.history();
    let r = checker::check(&h);
    assert_eq!(r.disallowed(), vec![checker::groups::ASSIGNMENT_CONFLICT, checker::groups::COMMIT_REGRESSION]);
    checker::html::render(&h, &r)
}

#[test]
fn page_is_self_contained() {
    for page in [log_page(), register_page(), group_page()] {
        // The SVG namespace is an identifier, not a fetch.
        let stripped = page.replace("http://www.w3.org/2000/svg", "");
        for needle in ["http://", "https://", "<link", "@import", "url(", " src="] {
            assert!(!stripped.contains(needle), "page contains {needle:?}");
        }
        assert!(page.contains("id=\"render-status\""));
        assert!(!page.contains("</script><b>"), "embedded data must not close the script element");
        // The embedded data is valid JSON.
        let start = page.find("id=\"data\">").unwrap() + "id=\"data\">".len();
        let end = start + page[start..].find("</script>").unwrap();
        let data: serde_json::Value = serde_json::from_str(&page[start..end].replace("<\\/", "</")).unwrap();
        assert!(data["report"]["valid"].is_boolean());
    }
}

#[test]
fn page_carries_grid_timeline_and_linearization_data() {
    let page = log_page();
    assert!(page.contains("\"grids\":[{"), "a key with anomalies gets a grid");
    assert!(page.contains("\"nemesis_intervals\":[{"), "nemesis intervals are drawn");
    assert!(page.contains("\"name\":\"partition\"") && page.contains("\"name\":\"clock-skew\""));
    let page = register_page();
    assert!(page.contains("\"linearizations\":[{"));
}

/// Renders a page in headless Chromium and returns the DOM after scripts ran.
fn chromium_dom(page: &str, name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("checker-html-{}-{name}", std::process::id()));
    let profile = dir.join("profile");
    std::fs::create_dir_all(&profile).unwrap();
    let file = dir.join("report.html");
    std::fs::write(&file, page).unwrap();
    let out = Command::new("timeout")
        .arg("120")
        .arg("/usr/bin/chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", file.display()))
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn renders_in_headless_chromium() {
    if !Path::new("/usr/bin/chromium").exists() {
        println!("SKIPPED renders_in_headless_chromium: /usr/bin/chromium is not installed");
        return;
    }
    let dom = chromium_dom(&log_page(), "log");
    assert!(dom.contains("<div id=\"render-status\">rendered</div>"), "log page did not render cleanly:\n{}", &dom[dom.len().saturating_sub(2000)..]);
    assert!(dom.contains("INVALID") && dom.contains("lost-write") && dom.contains("key t-0"));
    assert!(dom.contains("<svg"), "the timeline is drawn");
    let dom = chromium_dom(&register_page(), "register");
    assert!(dom.contains("<div id=\"render-status\">rendered</div>"), "register page did not render cleanly");
    assert!(dom.contains("Non-linearizable keys") && dom.contains("#2"));
    let dom = chromium_dom(&group_page(), "group");
    assert!(dom.contains("<div id=\"render-status\">rendered</div>"), "group page did not render cleanly");
    assert!(dom.contains("commit-regression") && dom.contains("assignment-conflict") && dom.contains("<svg"));
}
