//! Splitting a sweep's seed range among the jobs of a CI matrix.
//!
//! `--shard I/N` takes every N-th seed of the range, starting with the I-th:
//! seed `s` of `A..B` belongs to shard `((s - A) mod N) + 1`. So N jobs with
//! shards `1/N`, ..., `N/N` run every seed of the range exactly once, each
//! job gets seeds from the whole range (a slow stretch of seeds is shared
//! out, not handed to one job), and a seed's shard depends only on the
//! range's first seed and N, never on how long runs take.

use std::fmt;
use std::str::FromStr;

/// One shard of N: which seeds of a range a job runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based: 1..=count.
    index: u64,
    /// How many shards the range is split into; at least 1.
    count: u64,
}

/// Why a `--shard` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    /// Not two decimal numbers around one `/`.
    #[error("--shard wants I/N with 1 <= I <= N (e.g. 2/3), got {0:?}")]
    Malformed(String),
    /// `I/0`: a range cannot be split into no shards.
    #[error("--shard {0}: the number of shards must be at least 1")]
    NoShards(String),
    /// `0/N` or `I/N` with I > N: shards are numbered 1..=N.
    #[error("--shard {text}: shards are numbered 1 to {count}, so the first number must be in 1..={count}")]
    OutOfRange {
        /// The value as given.
        text: String,
        /// N.
        count: u64,
    },
}

impl Shard {
    /// The whole range as one shard (no `--shard`).
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// Shard `index` of `count` (1-based).
    pub fn new(index: u64, count: u64) -> Result<Shard, ShardError> {
        let text = format!("{index}/{count}");
        if count == 0 {
            return Err(ShardError::NoShards(text));
        }
        if index == 0 || index > count {
            return Err(ShardError::OutOfRange { text, count });
        }
        Ok(Shard { index, count })
    }

    /// I, 1-based.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// N.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether this is the whole range (`1/1`).
    pub fn is_whole(&self) -> bool {
        self.count == 1
    }

    /// The seeds of `first..=last` that belong to this shard.
    pub fn seeds(&self, first: u64, last: u64) -> ShardSeeds {
        assert!(first <= last, "seed range {first}..{last} is empty");
        assert!(self.index >= 1 && self.index <= self.count);
        let offset = self.index - 1;
        // Seeds first+offset, first+offset+N, ... up to last.
        let len = match (last - first).checked_sub(offset) {
            None => 0,
            Some(span) => span / self.count + 1,
        };
        ShardSeeds { start: first + offset.min(last - first), step: self.count, len }
    }

    /// Which shard `seed` of a range starting at `first` belongs to.
    pub fn of(seed: u64, first: u64, count: u64) -> u64 {
        assert!(seed >= first && count >= 1);
        (seed - first) % count + 1
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let malformed = || ShardError::Malformed(text.to_string());
        let (index, count) = text.split_once('/').ok_or_else(malformed)?;
        let number = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            part.parse::<u64>().map_err(|_| malformed())
        };
        let (index, count) = (number(index)?, number(count)?);
        Shard::new(index, count).map_err(|error| match error {
            // Name the value as it was given, not as it was read back.
            ShardError::NoShards(_) => ShardError::NoShards(text.to_string()),
            ShardError::OutOfRange { count, .. } => ShardError::OutOfRange { text: text.to_string(), count },
            other => other,
        })
    }
}

/// The seeds of one shard of a range, in increasing order: `start`,
/// `start + step`, ... (`len` of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSeeds {
    start: u64,
    step: u64,
    len: u64,
}

impl ShardSeeds {
    /// How many seeds.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the shard has no seed (a range shorter than N).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `n`-th seed (0-based), if there is one.
    pub fn nth(&self, n: u64) -> Option<u64> {
        (n < self.len).then(|| self.start + n * self.step)
    }

    /// Where `seed` stands among these seeds, if it is one of them.
    pub fn position(&self, seed: u64) -> Option<u64> {
        let distance = seed.checked_sub(self.start)?;
        let n = distance / self.step;
        (distance % self.step == 0 && n < self.len).then_some(n)
    }

    /// Every seed, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.len).map(|n| self.start + n * self.step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_the_range_exactly_once() {
        for (first, last) in [(1, 12), (1, 1), (5, 6), (0, 100), (7, 3000)] {
            for count in 1..=7 {
                let mut seen = Vec::new();
                for index in 1..=count {
                    let shard = Shard::new(index, count).unwrap();
                    let seeds = shard.seeds(first, last);
                    let list: Vec<u64> = seeds.iter().collect();
                    assert_eq!(list.len() as u64, seeds.len());
                    for (n, seed) in list.iter().enumerate() {
                        assert_eq!(Shard::of(*seed, first, count), index);
                        assert_eq!(seeds.nth(n as u64), Some(*seed));
                        assert_eq!(seeds.position(*seed), Some(n as u64));
                    }
                    assert_eq!(seeds.nth(seeds.len()), None);
                    seen.extend(list);
                }
                seen.sort_unstable();
                assert_eq!(seen, (first..=last).collect::<Vec<_>>(), "{first}..{last} in {count} shards");
            }
        }
    }

    #[test]
    fn a_shard_of_a_short_range_may_be_empty() {
        let seeds = Shard::new(3, 3).unwrap().seeds(1, 2);
        assert!(seeds.is_empty());
        assert_eq!(seeds.position(1), None);
        assert_eq!(seeds.position(2), None);
        assert_eq!(Shard::new(2, 3).unwrap().seeds(1, 2).iter().collect::<Vec<_>>(), vec![2]);
    }

    #[test]
    fn the_last_seed_of_u64_is_reachable_without_overflow() {
        let seeds = Shard::new(2, 2).unwrap().seeds(u64::MAX - 3, u64::MAX);
        assert_eq!(seeds.iter().collect::<Vec<_>>(), vec![u64::MAX - 2, u64::MAX]);
        assert_eq!(Shard::WHOLE.seeds(u64::MAX, u64::MAX).len(), 1);
    }

    #[test]
    fn parses_i_of_n_and_refuses_the_rest() {
        assert_eq!("2/3".parse::<Shard>(), Ok(Shard::new(2, 3).unwrap()));
        assert_eq!("1/1".parse::<Shard>().unwrap(), Shard::WHOLE);
        assert_eq!("0/3".parse::<Shard>(), Err(ShardError::OutOfRange { text: "0/3".into(), count: 3 }));
        assert_eq!("4/3".parse::<Shard>(), Err(ShardError::OutOfRange { text: "4/3".into(), count: 3 }));
        assert_eq!("1/0".parse::<Shard>(), Err(ShardError::NoShards("1/0".into())));
        for bad in ["", "3", "1/", "/3", "a/3", "1/b", "1/3/4", " 1/3", "+1/3", "-1/3", "1.0/3", "99999999999999999999/3"] {
            assert_eq!(bad.parse::<Shard>(), Err(ShardError::Malformed(bad.into())), "{bad:?}");
        }
        let message = "4/3".parse::<Shard>().unwrap_err().to_string();
        assert!(message.contains("1..=3"), "{message}");
    }
}
