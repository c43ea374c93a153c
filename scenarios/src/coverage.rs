//! Coverage over many runs: which marks (and BUGGIFY sites) a seed range
//! reached, for `dlog-sim sweep --marks` and for the tests that require a
//! scenario to reach its rare paths (`tests/tests/sim_marks.rs`).

use std::collections::{BTreeMap, BTreeSet};

use broker::testbed::{RunCoverage, BUGGIFY_SITES, MARKS};

/// Marks and BUGGIFY sites seen over a set of runs, by seed.
#[derive(Debug, Clone, Default)]
pub struct CoverageTally {
    /// Runs added.
    pub runs: u64,
    /// For each mark reached, the seeds whose run reached it.
    pub marks: BTreeMap<&'static str, BTreeSet<u64>>,
    /// For each BUGGIFY site that fired, the seeds whose run it fired in.
    pub fired: BTreeMap<&'static str, BTreeSet<u64>>,
    /// For each BUGGIFY site enabled, the seeds that enabled it.
    pub enabled: BTreeMap<&'static str, BTreeSet<u64>>,
}

impl CoverageTally {
    /// Adds one run's coverage.
    pub fn add(&mut self, seed: u64, coverage: &RunCoverage) {
        self.runs += 1;
        for name in coverage.marks.keys() {
            self.marks.entry(name).or_default().insert(seed);
        }
        for site in coverage.fired.keys() {
            self.fired.entry(site).or_default().insert(seed);
        }
        for site in &coverage.enabled_sites {
            self.enabled.entry(site).or_default().insert(seed);
        }
    }

    /// The names in `required` that no run reached, in the order given.
    /// Panics on a name that is not a mark at all (a typo would otherwise
    /// read as "missed").
    pub fn missing<'a>(&self, required: &[&'a str]) -> Vec<&'a str> {
        for name in required {
            assert!(MARKS.iter().any(|(known, _)| known == name), "{name:?} is not a mark (see broker::testbed::MARKS)");
        }
        required.iter().copied().filter(|name| !self.marks.contains_key(name)).collect()
    }

    /// A table of every mark (runs that reached it, first seed) and, if any
    /// site was enabled, of every BUGGIFY site; one line each.
    pub fn render(&self) -> String {
        let mut text = format!("marks over {} runs ({} of {} reached):\n", self.runs, self.marks.len(), MARKS.len());
        for (name, _) in MARKS {
            match self.marks.get(name) {
                Some(seeds) => text.push_str(&format!(
                    "  {name:<50} {:>5} runs  (first seed {})\n",
                    seeds.len(),
                    seeds.first().expect("non-empty")
                )),
                None => text.push_str(&format!("  {name:<50}     - never reached\n")),
            }
        }
        if !self.enabled.is_empty() {
            text.push_str(&format!("buggify sites over {} runs (enabled in / fired in):\n", self.runs));
            for (site, _) in BUGGIFY_SITES {
                let count = |map: &BTreeMap<&'static str, BTreeSet<u64>>| map.get(site).map_or(0, BTreeSet::len);
                text.push_str(&format!("  {site:<50} {:>5} / {:>5} runs\n", count(&self.enabled), count(&self.fired)));
            }
        }
        text
    }
}

/// One line naming a run's marks (with counts), for `dlog-sim run`.
pub fn marks_line(coverage: &RunCoverage) -> String {
    if coverage.marks.is_empty() {
        return "marks: none reached".to_string();
    }
    let names: Vec<String> = coverage.marks.iter().map(|(name, count)| format!("{name} ({count})")).collect();
    format!("marks: {} reached: {}", coverage.marks.len(), names.join(", "))
}

/// The header line of a run with BUGGIFY on: the sites this seed enables.
pub fn buggify_header(seed: u64) -> String {
    let sites = broker::testbed::enabled_sites(seed);
    let listed = if sites.is_empty() { "none".to_string() } else { sites.join(", ") };
    format!("buggify: on, sites enabled for seed {seed}: {listed}")
}

/// The line after a run with BUGGIFY on: the sites that fired, how often.
pub fn buggify_fired_line(coverage: &RunCoverage) -> String {
    if coverage.fired.is_empty() {
        return "buggify fired: none".to_string();
    }
    let sites: Vec<String> = coverage.fired.iter().map(|(site, count)| format!("{site} ({count})")).collect();
    format!("buggify fired: {}", sites.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_names_missed_marks_and_renders_every_mark() {
        let mut tally = CoverageTally::default();
        let mut run = RunCoverage::default();
        run.marks.insert("raft.leader.elected", 3);
        tally.add(5, &run);
        tally.add(6, &RunCoverage::default());
        assert_eq!(tally.missing(&["raft.leader.elected", "replication.isr.shrink"]), vec!["replication.isr.shrink"]);
        let text = tally.render();
        assert!(text.contains("marks over 2 runs (1 of"), "{text}");
        assert!(text.lines().any(|l| l.contains("raft.leader.elected") && l.contains("1 runs") && l.contains("first seed 5")), "{text}");
        assert!(text.lines().any(|l| l.contains("replication.isr.shrink") && l.contains("never reached")), "{text}");
        assert_eq!(marks_line(&run), "marks: 1 reached: raft.leader.elected (3)");
    }

    #[test]
    #[should_panic(expected = "is not a mark")]
    fn an_unknown_mark_name_is_refused() {
        CoverageTally::default().missing(&["raft.leader.elcted"]);
    }
}
