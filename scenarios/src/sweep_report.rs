//! What a sweep leaves for CI: one JSON line per seed (`--json`) and a
//! JUnit XML report (`--junit`).
//!
//! Both list seeds in increasing order, whatever order runs finished in,
//! and hold nothing that depends on the host except the wall time of each
//! run (`wall_ms`, JUnit's `time`): two sweeps of one range write the same
//! files but for those figures.
//!
//! A JSON line:
//!
//! ```text
//! {"scenario":"single-node-crash","seed":7,"verdict":"invalid","anomalies":["lost-write"],
//!  "reason":null,"simulated_seconds":21.4,"wall_ms":812,"events":2731,
//!  "config":["log.flush=never"],"replay":"dlog-sim run --scenario single-node-crash --seed 7 --config log.flush=never"}
//! ```
//!
//! (on one line). `verdict` is `valid`, `invalid` (the checker or a
//! scenario invariant found anomalies, named in `anomalies`) or `failed`
//! (the run gave no verdict: `reason` says why). `simulated_seconds` is the
//! virtual time the run lasted (null if a run died before it could be
//! read), `events` the number of history events recorded, `config` the
//! `--config` overrides of the sweep.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// A seed's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// The checker found the history valid.
    Valid,
    /// Anomalies were found.
    Invalid,
    /// The run produced no verdict (setup, liveness, a panic, an unknown
    /// verdict).
    Failed,
}

/// One seed of a sweep, as `--json` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedRecord {
    /// Scenario name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The verdict.
    pub verdict: Verdict,
    /// Anomaly names that make it invalid (empty unless invalid).
    pub anomalies: Vec<String>,
    /// Why a failed run failed (None unless failed).
    pub reason: Option<String>,
    /// Virtual time the run lasted, in seconds.
    pub simulated_seconds: Option<f64>,
    /// Host time the run took, in milliseconds (the one figure that varies
    /// between two sweeps of the same seeds).
    pub wall_ms: u64,
    /// History events recorded.
    pub events: u64,
    /// `KEY=VALUE` overrides the run had.
    pub config: Vec<String>,
    /// The command that replays the run.
    pub replay: String,
}

impl SeedRecord {
    /// The record as one JSON line, newline included.
    pub fn to_json_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("a seed record always serialises");
        assert!(!line.contains('\n'), "JSON Lines: one record per line");
        line.push('\n');
        line
    }
}

/// One sweep, for its JUnit test suite.
#[derive(Debug, Clone)]
pub struct SweepInfo {
    /// Scenario name.
    pub scenario: String,
    /// First and last seed of the range (both included).
    pub seeds: (u64, u64),
    /// The shard, as `I/N`, if the range was split.
    pub shard: Option<String>,
    /// The `--config` overrides.
    pub config: Vec<String>,
}

impl SweepInfo {
    /// The test suite's name: `single-node-crash seeds 1..3000 shard 2/3`.
    pub fn suite_name(&self) -> String {
        let mut name = format!("{} seeds {}..{}", self.scenario, self.seeds.0, self.seeds.1);
        if let Some(shard) = &self.shard {
            write!(name, " shard {shard}").expect("writing to a String");
        }
        name
    }
}

/// A JUnit XML report of one sweep: a `<testsuite>` whose `<testcase>`s are
/// the seeds (`name="seed-N"`, `classname` the scenario). An invalid or
/// failed seed's case holds a `<failure>` whose message names the anomalies
/// or the reason and whose text is the replay command. `records` must be in
/// seed order.
pub fn junit_xml(sweep: &SweepInfo, records: &[SeedRecord]) -> String {
    assert!(records.windows(2).all(|w| w[0].seed < w[1].seed), "records in seed order, each seed once");
    let failures = records.iter().filter(|r| r.verdict != Verdict::Valid).count();
    let seconds = |ms: u64| format!("{}.{:03}", ms / 1000, ms % 1000);
    let total_ms: u64 = records.iter().map(|r| r.wall_ms).sum();
    let mut xml = String::new();
    let mut line = |text: String| {
        xml.push_str(&text);
        xml.push('\n');
    };
    line(r#"<?xml version="1.0" encoding="UTF-8"?>"#.to_string());
    line(format!(
        r#"<testsuites name="dlog-sim sweep" tests="{}" failures="{failures}" errors="0" time="{}">"#,
        records.len(),
        seconds(total_ms)
    ));
    line(format!(
        r#"  <testsuite name="{}" tests="{}" failures="{failures}" errors="0" skipped="0" time="{}">"#,
        attribute(&sweep.suite_name()),
        records.len(),
        seconds(total_ms)
    ));
    line("    <properties>".to_string());
    let mut properties = vec![
        ("scenario", sweep.scenario.clone()),
        ("seeds", format!("{}..{}", sweep.seeds.0, sweep.seeds.1)),
    ];
    if let Some(shard) = &sweep.shard {
        properties.push(("shard", shard.clone()));
    }
    properties.extend(sweep.config.iter().map(|pair| ("config", pair.clone())));
    for (name, value) in properties {
        line(format!(r#"      <property name="{}" value="{}"/>"#, attribute(name), attribute(&value)));
    }
    line("    </properties>".to_string());
    for record in records {
        let open = format!(
            r#"    <testcase name="seed-{}" classname="{}" time="{}""#,
            record.seed,
            attribute(&record.scenario),
            seconds(record.wall_ms)
        );
        let simulated = record.simulated_seconds.map_or("unknown".to_string(), |s| format!("{s:.3}"));
        let out = format!("simulated {simulated} s, {} history events\nreplay: {}", record.events, record.replay);
        let failure = match record.verdict {
            Verdict::Valid => None,
            Verdict::Invalid => Some(("invalid", format!("INVALID ({})", record.anomalies.join(", ")))),
            Verdict::Failed => Some(("run-failed", format!("RUN FAILED ({})", record.reason.as_deref().unwrap_or("no reason given")))),
        };
        line(format!("{open}>"));
        if let Some((kind, message)) = failure {
            line(format!(
                r#"      <failure type="{kind}" message="{}">{}</failure>"#,
                attribute(&format!("{message}  replay: {}", record.replay)),
                text(&format!("{message}\nreplay: {}\n", record.replay))
            ));
        }
        line(format!("      <system-out>{}</system-out>", text(&out)));
        line("    </testcase>".to_string());
    }
    line("  </testsuite>".to_string());
    line("</testsuites>".to_string());
    xml
}

/// `value` escaped for a double-quoted XML attribute. Line breaks and tabs
/// become character references (a parser would otherwise turn them into
/// spaces); characters XML 1.0 cannot carry at all become U+FFFD.
pub fn attribute(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(xml_char(c)),
        }
    }
    out
}

/// `value` escaped for XML character data.
pub fn text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            // `]]>` may not appear in text; escaping every `>` rules it out.
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            '\n' | '\t' => out.push(c),
            c => out.push(xml_char(c)),
        }
    }
    out
}

/// `c` if XML 1.0 allows it in a document, else U+FFFD.
fn xml_char(c: char) -> char {
    let allowed = matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}');
    if allowed {
        c
    } else {
        '\u{FFFD}'
    }
}

/// Hands items given out of order back in order: an item tagged with its
/// position comes out once every earlier position has (the `--json` lines
/// of a sweep on several threads are written in seed order as runs end).
#[derive(Debug)]
pub struct InOrder<T> {
    next: u64,
    waiting: std::collections::BTreeMap<u64, T>,
}

impl<T> Default for InOrder<T> {
    fn default() -> Self {
        Self { next: 0, waiting: std::collections::BTreeMap::new() }
    }
}

impl<T> InOrder<T> {
    /// Takes the item at `position` (each position once) and returns every
    /// item that is now due, in order.
    pub fn push(&mut self, position: u64, item: T) -> Vec<T> {
        assert!(position >= self.next, "position {position} was already handed out");
        let replaced = self.waiting.insert(position, item);
        assert!(replaced.is_none(), "position {position} given twice");
        let mut due = Vec::new();
        while let Some(item) = self.waiting.remove(&self.next) {
            due.push(item);
            self.next += 1;
        }
        due
    }

    /// Items still waiting for an earlier one (a sweep stopped early), in
    /// order.
    pub fn rest(self) -> Vec<T> {
        self.waiting.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seed: u64, verdict: Verdict) -> SeedRecord {
        SeedRecord {
            scenario: "single-node-crash".into(),
            seed,
            verdict,
            anomalies: if verdict == Verdict::Invalid { vec!["lost-write".into()] } else { Vec::new() },
            reason: (verdict == Verdict::Failed).then(|| "no progress: <stuck> & \"gone\"\n\u{1}".to_string()),
            simulated_seconds: Some(20.5),
            wall_ms: 1234,
            events: 99,
            config: vec!["log.flush=never".into()],
            replay: format!("dlog-sim run --scenario single-node-crash --seed {seed} --config log.flush=never"),
        }
    }

    #[test]
    fn escapes_what_xml_needs_escaped() {
        assert_eq!(attribute(r#"a<b>&"c"'d'"#), "a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;");
        assert_eq!(attribute("x\ny\tz\r"), "x&#10;y&#9;z&#13;");
        assert_eq!(text("a]]>b & <c>\nd"), "a]]&gt;b &amp; &lt;c&gt;\nd");
        assert_eq!(text("nul\u{0}esc\u{1b}"), "nul\u{FFFD}esc\u{FFFD}");
        assert_eq!(attribute("\u{FFFE}ok é 🦀"), "\u{FFFD}ok é 🦀");
    }

    #[test]
    fn a_json_line_reads_back_as_the_record() {
        let original = record(7, Verdict::Failed);
        let line = original.to_json_line();
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["verdict"], "failed");
        assert_eq!(serde_json::from_value::<SeedRecord>(value).unwrap(), original);
    }

    #[test]
    fn junit_names_each_seed_and_carries_the_replay_of_failures() {
        let sweep = SweepInfo {
            scenario: "single-node-crash".into(),
            seeds: (1, 3),
            shard: Some("1/1".into()),
            config: vec!["log.flush=never".into()],
        };
        let xml = junit_xml(&sweep, &[record(1, Verdict::Valid), record(2, Verdict::Invalid), record(3, Verdict::Failed)]);
        assert_eq!(xml.matches("<testcase ").count(), 3);
        assert_eq!(xml.matches("<failure ").count(), 2);
        assert!(xml.contains(r#"name="seed-2" classname="single-node-crash""#), "{xml}");
        assert!(xml.contains("INVALID (lost-write)  replay: dlog-sim run --scenario single-node-crash --seed 2 --config log.flush=never"), "{xml}");
        assert!(xml.contains("RUN FAILED (no progress: &lt;stuck&gt; &amp; &quot;gone&quot;&#10;\u{FFFD})"), "{xml}");
        assert!(xml.contains(r#"<testsuite name="single-node-crash seeds 1..3 shard 1/1" tests="3" failures="2""#), "{xml}");
    }

    #[test]
    fn in_order_holds_items_back_until_their_turn() {
        let mut order = InOrder::default();
        assert!(order.push(1, 'b').is_empty());
        assert!(order.push(3, 'd').is_empty());
        assert_eq!(order.push(0, 'a'), vec!['a', 'b']);
        assert_eq!(order.push(2, 'c'), vec!['c', 'd']);
        assert!(order.push(5, 'f').is_empty());
        assert_eq!(order.rest(), vec!['f']);
    }
}
