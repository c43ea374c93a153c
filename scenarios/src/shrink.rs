//! Shrinking a failing run's fault schedule (`dlog-sim shrink`).
//!
//! A failing seed comes with a schedule of a dozen or more faults, most of
//! which have nothing to do with the failure. The shrinker replays the seed
//! with smaller schedules (the seed still decides everything else: client
//! choices, message delays, interleavings) and keeps a smaller one whenever
//! the run still fails the same way:
//!
//! 1. **Drop faults**: delta debugging (Zeller's ddmin) over the list of
//!    faults: try the empty schedule, then halves, quarters, ... of the
//!    list and their complements, keeping the first that still fails.
//! 2. **Shorten**: for each fault, halve its window (down time, pause,
//!    cut, isolation, disk window) while the run still fails, down to
//!    [`DURATION_MS_MIN`]. Clock skews have no window and stay as they are.
//! 3. **Move later**: for each fault, last first, try starting it as late
//!    as the next fault (or the end of the fault phase) allows, then half
//!    way there.
//!
//! "Fails the same way": for a run that the checker found invalid, it is
//! invalid again with at least one of the original disallowed anomaly
//! names; for a run that failed outright (a liveness bound, a panic), it
//! fails again with the same kind of reason (the reason with its numbers
//! blanked out, [`failure_kind`]).
//!
//! Every candidate is a whole run of the seed. Runs are independent (each
//! has its own runtime), so a batch of candidates runs on `jobs` threads
//! at once, as `sweep` does; the shrinker always takes the first candidate
//! of a batch, in its fixed order, that still fails, so the result does not
//! depend on which thread finished first. Candidates already tried are not
//! run again. The total number of runs is bounded by `max_tries`.
//!
//! The member schedule of `group-chaos` (crashes, pauses and leaves of
//! group members) is part of its plan: after the broker faults, ddmin drops
//! member faults too (they are not shortened or moved).
//! `controller-leader-kill` has no plan to shrink (its nemesis is a policy).

use std::collections::{BTreeMap, BTreeSet};

use checker::Validity;
use sim::nemesis::{FaultPlan, ScheduledFault};

use crate::run::{fault_plan, run_seed, RunError, RunOptions, RunOutcome};

/// Windows are not shortened below this.
pub const DURATION_MS_MIN: u64 = 10;

/// What a shrunk run must still show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Invalid, with at least one of these disallowed anomalies.
    Anomalies(BTreeSet<String>),
    /// Failed outright, with a reason of this kind ([`failure_kind`]).
    Failure(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Anomalies(names) => {
                write!(f, "invalid with one of {}", names.iter().cloned().collect::<Vec<_>>().join(", "))
            }
            Target::Failure(kind) => write!(f, "run failed: {kind}"),
        }
    }
}

/// A run's failure reason with every number blanked out: "drain did not
/// finish within 60000 ms" and "... within 20000 ms" are one kind.
pub fn failure_kind(reason: &str) -> String {
    let mut kind = String::with_capacity(reason.len());
    let mut in_number = false;
    for c in reason.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                kind.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            kind.push(c);
        }
    }
    kind
}

/// What one run showed, in short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The checker found nothing.
    Valid,
    /// The checker found these disallowed anomalies.
    Invalid(BTreeSet<String>),
    /// The run failed; the kind of reason.
    Failed(String),
    /// The checker could not decide.
    Unknown,
}

impl Verdict {
    fn of(result: &Result<RunOutcome, RunError>) -> Verdict {
        match result {
            Ok(outcome) => match outcome.report.valid {
                Validity::Valid => Verdict::Valid,
                Validity::Invalid => Verdict::Invalid(outcome.report.disallowed().iter().map(|s| s.to_string()).collect()),
                Validity::Unknown => Verdict::Unknown,
            },
            Err(RunError::Failed { reason, .. }) => Verdict::Failed(failure_kind(reason)),
            Err(other) => Verdict::Failed(failure_kind(&other.to_string())),
        }
    }

    /// Does this run fail as `target` asks?
    pub fn matches(&self, target: &Target) -> bool {
        match (self, target) {
            (Verdict::Invalid(found), Target::Anomalies(wanted)) => found.intersection(wanted).next().is_some(),
            (Verdict::Failed(kind), Target::Failure(wanted)) => kind == wanted,
            _ => false,
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Valid => write!(f, "valid"),
            Verdict::Invalid(names) => write!(f, "INVALID ({})", names.iter().cloned().collect::<Vec<_>>().join(", ")),
            Verdict::Failed(kind) => write!(f, "RUN FAILED ({kind})"),
            Verdict::Unknown => write!(f, "unknown"),
        }
    }
}

/// What to shrink and how hard.
#[derive(Debug, Clone)]
pub struct ShrinkOptions {
    /// The failing run (its `schedule`, if any, is where shrinking starts;
    /// else the seed's own).
    pub run: RunOptions,
    /// Runs at once (threads).
    pub jobs: usize,
    /// Most runs to spend, the first (original) run included.
    pub max_tries: usize,
}

/// The result of a shrink.
#[derive(Debug, Clone)]
pub struct Shrunk {
    /// What every kept schedule still showed.
    pub target: Target,
    /// The original run's verdict.
    pub original_verdict: Verdict,
    /// The schedule shrinking started from.
    pub original: FaultPlan,
    /// The smallest schedule found that still fails as `target` asks.
    pub shrunk: FaultPlan,
    /// Its run's verdict.
    pub verdict: Verdict,
    /// Runs made, the original included.
    pub tries: usize,
    /// True if shrinking stopped because it reached `max_tries`.
    pub out_of_tries: bool,
}

/// Why there is nothing to shrink.
#[derive(Debug, thiserror::Error)]
pub enum ShrinkError {
    /// The options did not make a run (unknown scenario, bad config, a
    /// scenario without a plan).
    #[error("{0}")]
    Run(#[from] RunError),
    /// The run does not fail: nothing to keep.
    #[error("the run is {0}: there is no failure to keep while shrinking")]
    NotFailing(Verdict),
}

/// One candidate schedule and what it is.
struct Candidate {
    plan: FaultPlan,
    what: String,
}

/// The shrinker's state: the runs so far and the best schedule.
struct Shrinker<'a> {
    options: &'a ShrinkOptions,
    target: Target,
    best: FaultPlan,
    best_verdict: Verdict,
    tries: usize,
    /// Verdicts of schedules already run, by their file text.
    seen: BTreeMap<String, Verdict>,
    progress: &'a mut dyn FnMut(&str),
}

impl Shrinker<'_> {
    fn out_of_tries(&self) -> bool {
        self.tries >= self.options.max_tries
    }

    /// Runs the candidates (in batches of `jobs`, skipping schedules seen
    /// before) until one fails as the target asks; returns its index and
    /// makes it the best. None if none does (or tries ran out).
    fn first_failing(&mut self, candidates: Vec<Candidate>) -> Option<usize> {
        let jobs = self.options.jobs.max(1);
        let mut index = 0;
        while index < candidates.len() {
            // A batch: the next candidates not seen before, as many as
            // there are threads and tries left.
            let mut batch = Vec::new();
            let mut cursor = index;
            while cursor < candidates.len() && batch.len() < jobs && self.tries + batch.len() < self.options.max_tries {
                if !self.seen.contains_key(&candidates[cursor].plan.to_file_text()) {
                    batch.push(cursor);
                }
                cursor += 1;
            }
            let verdicts = self.run_batch(batch.iter().map(|&i| &candidates[i]).collect());
            for (&i, verdict) in batch.iter().zip(verdicts) {
                self.tries += 1;
                let candidate = &candidates[i];
                let keeps = verdict.matches(&self.target);
                (self.progress)(&format!(
                    "try {:>3}: {:>2} faults{} ({}): {}{}",
                    self.tries,
                    candidate.plan.faults.len(),
                    member_count(&candidate.plan),
                    candidate.what,
                    verdict,
                    if keeps { ", still fails" } else { "" }
                ));
                self.seen.insert(candidate.plan.to_file_text(), verdict.clone());
            }
            // The first candidate in order (seen before or run now) that
            // fails as wanted.
            for i in index..cursor {
                let verdict = &self.seen[&candidates[i].plan.to_file_text()];
                if verdict.matches(&self.target) {
                    (self.progress)(&format!(
                        "  kept: {} ({} faults{})",
                        candidates[i].what,
                        candidates[i].plan.faults.len(),
                        member_count(&candidates[i].plan)
                    ));
                    self.best = candidates[i].plan.clone();
                    self.best_verdict = verdict.clone();
                    return Some(i);
                }
            }
            if cursor == index || (self.out_of_tries() && cursor < candidates.len()) {
                return None;
            }
            index = cursor;
        }
        None
    }

    /// Runs each candidate's schedule on its own thread, verdicts in order.
    fn run_batch(&self, batch: Vec<&Candidate>) -> Vec<Verdict> {
        let run = |candidate: &Candidate| {
            let options = RunOptions {
                schedule: Some(candidate.plan.clone()),
                ..self.options.run.clone()
            };
            Verdict::of(&run_seed(&options))
        };
        if batch.len() <= 1 {
            return batch.into_iter().map(run).collect();
        }
        std::thread::scope(|scope| {
            let handles: Vec<_> = batch.iter().map(|candidate| scope.spawn(|| run(candidate))).collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap_or_else(|_| Verdict::Failed("shrinker thread panicked".into())))
                .collect()
        })
    }

    fn with_faults(&self, faults: Vec<ScheduledFault>) -> FaultPlan {
        FaultPlan { faults, ..self.best.clone() }
    }

    /// Phase 1: ddmin over the list of faults, then over the member
    /// schedule (when the plan lists one).
    fn drop_faults(&mut self) {
        self.ddmin("faults", |plan| plan.faults.clone(), |plan, faults| FaultPlan { faults, ..plan.clone() });
        if self.best.members.is_some() {
            self.ddmin(
                "member faults",
                |plan| plan.members.clone().unwrap_or_default(),
                |plan, members| FaultPlan { members: Some(members), ..plan.clone() },
            );
        }
    }

    /// ddmin over one list of the plan: `get` reads it, `set` makes the
    /// plan with another list.
    fn ddmin<T: Clone>(&mut self, label: &str, get: fn(&FaultPlan) -> Vec<T>, set: fn(&FaultPlan, Vec<T>) -> FaultPlan) {
        if get(&self.best).is_empty() {
            return;
        }
        let empty = Candidate { plan: set(&self.best, Vec::new()), what: format!("drop every one of the {label}") };
        if self.first_failing(vec![empty]).is_some() {
            return;
        }
        let mut granularity = 2;
        while get(&self.best).len() >= 2 && !self.out_of_tries() {
            let items = get(&self.best);
            let n = granularity.min(items.len());
            let chunk_bounds: Vec<(usize, usize)> = (0..n).map(|i| (i * items.len() / n, (i + 1) * items.len() / n)).collect();
            let mut candidates = Vec::new();
            for &(from, to) in &chunk_bounds {
                candidates.push(Candidate {
                    plan: set(&self.best, items[from..to].to_vec()),
                    what: format!("keep {label} {}..{} of {}", from + 1, to, items.len()),
                });
            }
            // With two chunks each complement is the other chunk.
            if n > 2 {
                for &(from, to) in &chunk_bounds {
                    let rest: Vec<T> = items[..from].iter().chain(&items[to..]).cloned().collect();
                    candidates.push(Candidate {
                        plan: set(&self.best, rest),
                        what: format!("drop {label} {}..{} of {}", from + 1, to, items.len()),
                    });
                }
            }
            match self.first_failing(candidates) {
                Some(i) if i < n => granularity = 2,
                Some(_) => granularity = (n - 1).max(2),
                None if n >= items.len() => break,
                None => granularity = (n * 2).min(items.len()),
            }
        }
    }

    /// Phase 2: halve each fault's window while the run still fails.
    fn shorten(&mut self) {
        let jobs = self.options.jobs.max(1) as u32;
        for position in 0..self.best.faults.len() {
            while !self.out_of_tries() {
                let duration = self.best.faults[position].fault.duration_ms();
                // The shortest first: duration / 2^jobs, ..., duration / 2.
                let candidates: Vec<Candidate> = (1..=jobs)
                    .rev()
                    .map(|k| duration >> k)
                    .filter(|&ms| ms >= DURATION_MS_MIN && ms < duration)
                    .map(|ms| {
                        let mut faults = self.best.faults.clone();
                        faults[position].fault = faults[position].fault.with_duration_ms(ms);
                        Candidate { plan: self.with_faults(faults), what: format!("fault {} lasts {ms} ms, not {duration}", position + 1) }
                    })
                    .collect();
                if candidates.is_empty() {
                    break;
                }
                // The shortest tried still fails: try shorter yet.
                if self.first_failing(candidates) != Some(0) {
                    break;
                }
            }
        }
    }

    /// Phase 3: start each fault (last first) as late as the next fault, or
    /// the end of the fault phase, allows; else half way there.
    fn move_later(&mut self) {
        for position in (0..self.best.faults.len()).rev() {
            if self.out_of_tries() {
                break;
            }
            let faults = &self.best.faults;
            let at_ms = faults[position].at_ms;
            let latest_ms = match faults.get(position + 1) {
                Some(next) => next.at_ms.saturating_sub(faults[position].fault.duration_ms()),
                None => self.best.fault_phase_ms.saturating_sub(1),
            };
            if latest_ms <= at_ms {
                continue;
            }
            let halfway_ms = at_ms + (latest_ms - at_ms) / 2;
            let candidates: Vec<Candidate> = [latest_ms, halfway_ms]
                .into_iter()
                .filter(|&ms| ms > at_ms)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .rev()
                .map(|ms| {
                    let mut faults = self.best.faults.clone();
                    faults[position].at_ms = ms;
                    Candidate { plan: self.with_faults(faults), what: format!("fault {} starts at {ms} ms, not {at_ms}", position + 1) }
                })
                .collect();
            self.first_failing(candidates);
        }
    }
}

/// ", N member faults" for a plan that lists a member schedule.
fn member_count(plan: &FaultPlan) -> String {
    plan.members.as_ref().map(|m| format!(", {} member faults", m.len())).unwrap_or_default()
}

/// Shrinks the schedule of a failing run; `progress` gets a line per run.
pub fn shrink(options: &ShrinkOptions, progress: &mut dyn FnMut(&str)) -> Result<Shrunk, ShrinkError> {
    let original = fault_plan(&options.run)?;
    let first = RunOptions { schedule: Some(original.clone()), ..options.run.clone() };
    let result = run_seed(&first);
    if let Err(error @ (RunError::UnknownScenario(_) | RunError::Config(_))) = result {
        return Err(ShrinkError::Run(error));
    }
    let original_verdict = Verdict::of(&result);
    let target = match &original_verdict {
        Verdict::Invalid(names) => Target::Anomalies(names.clone()),
        Verdict::Failed(kind) => Target::Failure(kind.clone()),
        other => return Err(ShrinkError::NotFailing(other.clone())),
    };
    progress(&format!("try   1: {:>2} faults{} (the original schedule): {original_verdict}", original.faults.len(), member_count(&original)));
    progress(&format!("keeping schedules that fail as the original does: {target}"));
    let mut shrinker = Shrinker {
        options,
        target: target.clone(),
        best: original.clone(),
        best_verdict: original_verdict.clone(),
        tries: 1,
        seen: BTreeMap::from([(original.to_file_text(), original_verdict.clone())]),
        progress,
    };
    shrinker.drop_faults();
    let after_drop = shrinker.best.faults.len();
    (shrinker.progress)(&format!(
        "dropping faults: {} -> {after_drop} faults{}",
        original.faults.len(),
        original
            .members
            .as_ref()
            .map(|m| format!(", {} -> {} member faults", m.len(), shrinker.best.members.as_ref().map_or(0, Vec::len)))
            .unwrap_or_default()
    ));
    shrinker.shorten();
    (shrinker.progress)(&format!("shortening windows: done after {} tries", shrinker.tries));
    shrinker.move_later();
    (shrinker.progress)(&format!("moving faults later: done after {} tries", shrinker.tries));
    Ok(Shrunk {
        target,
        original_verdict,
        original,
        shrunk: shrinker.best.clone(),
        verdict: shrinker.best_verdict.clone(),
        tries: shrinker.tries,
        out_of_tries: shrinker.out_of_tries(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_ignore_numbers() {
        assert_eq!(failure_kind("drain did not finish within 60000 ms of healing"), "drain did not finish within N ms of healing");
        assert_eq!(failure_kind("a1b22"), "aNbN");
    }

    #[test]
    fn a_shrunk_run_must_keep_one_original_anomaly() {
        let target = Target::Anomalies(["lost-write".to_string(), "unseen".to_string()].into());
        assert!(Verdict::Invalid(["unseen".to_string()].into()).matches(&target));
        assert!(!Verdict::Invalid(["duplicate".to_string()].into()).matches(&target));
        assert!(!Verdict::Valid.matches(&target));
        assert!(!Verdict::Failed("x".into()).matches(&target));
        assert!(Verdict::Failed("x N".into()).matches(&Target::Failure("x N".into())));
    }
}
