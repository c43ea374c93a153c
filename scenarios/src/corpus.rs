//! The seed corpus: seeds that once failed, kept per scenario in
//! `scenarios/seeds/<scenario>.seeds` and replayed by `make test`. The
//! format is documented in `scenarios/seeds/README.md`.

use std::path::{Path, PathBuf};

/// One seed of the corpus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusEntry {
    /// The scenario (the file's name).
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// `KEY=VALUE` overrides of the run.
    pub config: Vec<String>,
    /// What it found when it failed.
    pub note: String,
    /// `file:line`, for messages.
    pub origin: String,
}

/// Why a corpus file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// The folder or a file could not be read.
    #[error("reading {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A line is not `SEED [KEY=VALUE ...] # note`.
    #[error("{origin}: {reason}")]
    Malformed { origin: String, reason: String },
    /// A file names a scenario that does not exist.
    #[error("{path}: no scenario is called {scenario:?}")]
    UnknownScenario { path: PathBuf, scenario: String },
}

/// The corpus folder of this source tree.
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds")
}

/// Parses one corpus file's text.
pub fn parse(scenario: &str, file_name: &str, text: &str) -> Result<Vec<CorpusEntry>, CorpusError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let origin = format!("{file_name}:{}", index + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (run, note) = line.split_once('#').map_or((line, ""), |(r, n)| (r, n.trim()));
        let mut words = run.split_whitespace();
        let seed_word = words.next().expect("a non-blank line has a word");
        let seed = seed_word
            .parse::<u64>()
            .map_err(|_| CorpusError::Malformed { origin: origin.clone(), reason: format!("{seed_word:?} is not a seed") })?;
        let config: Vec<String> = words.map(str::to_string).collect();
        if let Some(bad) = config.iter().find(|c| !c.contains('=')) {
            return Err(CorpusError::Malformed { origin, reason: format!("{bad:?} is not KEY=VALUE") });
        }
        if note.is_empty() {
            return Err(CorpusError::Malformed { origin, reason: "every entry says what it found (`# ...`)".into() });
        }
        entries.push(CorpusEntry { scenario: scenario.to_string(), seed, config, note: note.to_string(), origin });
    }
    Ok(entries)
}

/// Every entry of every `*.seeds` file in `dir`, files in name order.
pub fn load(dir: &Path) -> Result<Vec<CorpusEntry>, CorpusError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CorpusError::Io { path, source }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "seeds"))
        .collect();
    files.sort();
    let mut entries = Vec::new();
    for path in files {
        let scenario = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        if crate::find(&scenario).is_none() {
            return Err(CorpusError::UnknownScenario { path, scenario });
        }
        let text = std::fs::read_to_string(&path).map_err(io(&path))?;
        let file_name = path.file_name().and_then(|s| s.to_str()).unwrap_or_default().to_string();
        entries.extend(parse(&scenario, &file_name, &text)?);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seeds_configs_and_notes() {
        let text = "# header\n\n7 # lost\n9 log.flush=never client.acks=1 # two knobs\n";
        let entries = parse("single-node-crash", "x.seeds", text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].seed, entries[0].config.len(), entries[0].note.as_str()), (7, 0, "lost"));
        assert_eq!(entries[1].config, vec!["log.flush=never", "client.acks=1"]);
        assert_eq!(entries[1].origin, "x.seeds:4");
    }

    #[test]
    fn refuses_entries_without_a_note_or_with_a_bad_seed() {
        assert!(matches!(parse("s", "x", "7\n"), Err(CorpusError::Malformed { .. })));
        assert!(matches!(parse("s", "x", "seven # note\n"), Err(CorpusError::Malformed { .. })));
        assert!(matches!(parse("s", "x", "7 flush # note\n"), Err(CorpusError::Malformed { .. })));
    }

    #[test]
    fn the_corpus_of_this_tree_parses() {
        let entries = load(&corpus_dir()).unwrap();
        assert!(entries.iter().any(|e| e.scenario == "single-node-crash" && e.seed == 1529));
    }
}
