//! A sorted set ordered like Redis's: by score, then by member bytes (memcmp order).
//!
//! A hash map gives a member's score in O(1); an ordered set of `(score, member)` gives
//! ranges by score in O(log n). Ranges by rank walk the ordered set (O(rank)): the API's sets
//! are feeds, trimmed to the feed cap, and read from the top.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// A score: never NaN (Redis refuses NaN scores), and `-0` is stored as `0`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Score(f64);

impl Score {
    /// `None` for NaN.
    pub(super) fn new(value: f64) -> Option<Self> {
        // `+ 0.0` turns -0 into 0, which Redis reports as `0` too.
        (!value.is_nan()).then_some(Self(value + 0.0))
    }

    pub(super) fn get(self) -> f64 {
        self.0
    }
}

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Score {}

impl PartialOrd for Score {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Score {
    fn cmp(&self, other: &Self) -> Ordering {
        // A total order that agrees with `<` on everything but NaN and -0, never stored.
        self.0.total_cmp(&other.0)
    }
}

/// Scores between `min` and `max`, both included (exclusive bounds are turned into the next
/// representable score, so `(5` is `next_up(5.0)`).
#[derive(Debug, Clone, Copy)]
pub(super) struct ScoreRange {
    pub(super) min: f64,
    pub(super) max: f64,
}

/// Members and their scores.
#[derive(Debug, Default)]
pub(super) struct SortedSet {
    scores: HashMap<Vec<u8>, Score>,
    order: BTreeSet<(Score, Vec<u8>)>,
}

impl SortedSet {
    pub(super) fn len(&self) -> usize {
        self.scores.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.scores.is_empty()
    }

    pub(super) fn score(&self, member: &[u8]) -> Option<f64> {
        self.scores.get(member).map(|score| score.get())
    }

    /// Sets `member`'s score and returns its previous one.
    pub(super) fn insert(&mut self, member: &[u8], score: Score) -> Option<f64> {
        let previous = self.scores.insert(member.to_vec(), score);
        if let Some(previous) = previous {
            if previous == score {
                return Some(previous.get());
            }
            self.order.remove(&(previous, member.to_vec()));
        }
        self.order.insert((score, member.to_vec()));
        previous.map(Score::get)
    }

    /// Removes `member`; whether it was there.
    pub(super) fn remove(&mut self, member: &[u8]) -> bool {
        match self.scores.remove(member) {
            Some(score) => {
                self.order.remove(&(score, member.to_vec()));
                true
            }
            None => false,
        }
    }

    /// Members from rank `start` to rank `stop` (both included, already within bounds),
    /// counted from the lowest score, or from the highest with `reverse`.
    pub(super) fn by_rank(&self, start: usize, stop: usize, reverse: bool) -> Vec<(&[u8], f64)> {
        let count = stop.saturating_sub(start) + 1;
        let entries = self
            .order
            .iter()
            .map(|(score, member)| (member.as_slice(), score.get()));
        if reverse {
            entries.rev().skip(start).take(count).collect()
        } else {
            entries.skip(start).take(count).collect()
        }
    }

    /// Members within `range`, lowest first (highest first with `reverse`), after skipping
    /// `offset` of them, at most `limit` (`None`: all).
    pub(super) fn by_score(
        &self,
        range: ScoreRange,
        reverse: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Vec<(&[u8], f64)> {
        let (Some(min), Some(max)) = (Score::new(range.min), Score::new(range.max)) else {
            return Vec::new();
        };
        if min > max {
            return Vec::new();
        }
        // The empty member sorts before every other, so `(score, [])` starts that score.
        let start = Bound::Included((min, Vec::new()));
        let end = if max.get() == f64::INFINITY {
            Bound::Unbounded
        } else {
            Bound::Excluded((Score(max.get().next_up()), Vec::new()))
        };
        let entries = self
            .order
            .range((start, end))
            .map(|(score, member)| (member.as_slice(), score.get()));
        let limit = limit.unwrap_or(usize::MAX);
        if reverse {
            entries.rev().skip(offset).take(limit).collect()
        } else {
            entries.skip(offset).take(limit).collect()
        }
    }

    /// Removes the members from rank `start` to rank `stop` (both included, already within
    /// bounds) and returns how many went.
    pub(super) fn remove_by_rank(&mut self, start: usize, stop: usize) -> usize {
        let doomed: Vec<Vec<u8>> = self
            .by_rank(start, stop, false)
            .into_iter()
            .map(|(member, _)| member.to_vec())
            .collect();
        for member in &doomed {
            self.remove(member);
        }
        doomed.len()
    }
}

/// Turns Redis rank arguments (negative counts from the end) into an included range within a
/// set of `len` members, or `None` when it selects nothing, as `ZRANGE` does.
pub(super) fn rank_range(len: usize, start: i64, stop: i64) -> Option<(usize, usize)> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    let stop = stop.min(len - 1);
    Some((usize::try_from(start).ok()?, usize::try_from(stop).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(entries: &[(f64, &str)]) -> SortedSet {
        let mut set = SortedSet::default();
        for (score, member) in entries {
            set.insert(member.as_bytes(), Score::new(*score).expect("a number"));
        }
        set
    }

    fn members(entries: Vec<(&[u8], f64)>) -> Vec<String> {
        entries
            .into_iter()
            .map(|(member, _)| String::from_utf8_lossy(member).into_owned())
            .collect()
    }

    #[test]
    fn equal_scores_order_by_member_bytes() {
        let set = set(&[
            (1.0, "b"),
            (1.0, "a"),
            (0.5, "z"),
            (1.0, "ab"),
            (f64::INFINITY, "floor:1"),
        ]);
        assert_eq!(
            members(set.by_rank(0, 4, false)),
            ["z", "a", "ab", "b", "floor:1"]
        );
        assert_eq!(members(set.by_rank(0, 1, true)), ["floor:1", "b"]);
    }

    #[test]
    fn score_ranges_include_or_exclude_their_bounds() {
        let set = set(&[(1.0, "a"), (2.0, "b"), (2.0, "c"), (3.0, "d")]);
        let all =
            |min: f64, max: f64| members(set.by_score(ScoreRange { min, max }, false, 0, None));
        assert_eq!(all(2.0, 2.0), ["b", "c"]);
        assert_eq!(all(2.0_f64.next_up(), f64::INFINITY), ["d"]);
        assert_eq!(all(f64::NEG_INFINITY, 2.0_f64.next_down()), ["a"]);
        assert!(all(3.0, 1.0).is_empty());
        let page = set.by_score(
            ScoreRange {
                min: f64::NEG_INFINITY,
                max: f64::INFINITY,
            },
            true,
            1,
            Some(2),
        );
        assert_eq!(members(page), ["c", "b"]);
    }

    #[test]
    fn rescoring_a_member_moves_it() {
        let mut set = set(&[(1.0, "a"), (2.0, "b")]);
        assert_eq!(
            set.insert(b"a", Score::new(3.0).expect("a number")),
            Some(1.0)
        );
        assert_eq!(members(set.by_rank(0, 1, false)), ["b", "a"]);
        assert_eq!(set.len(), 2);
        assert_eq!(set.remove_by_rank(0, 0), 1);
        assert_eq!(members(set.by_rank(0, 0, false)), ["a"]);
    }

    #[test]
    fn ranks_normalise_like_zrange() {
        assert_eq!(rank_range(5, 0, -1), Some((0, 4)));
        assert_eq!(rank_range(5, -100, 100), Some((0, 4)));
        assert_eq!(rank_range(5, -2, -1), Some((3, 4)));
        assert_eq!(rank_range(5, 5, 10), None);
        assert_eq!(rank_range(5, 3, 2), None);
        assert_eq!(rank_range(0, 0, -1), None);
    }

    #[test]
    fn negative_zero_is_zero() {
        assert_eq!(
            Score::new(-0.0).map(|s| s.get().to_bits()),
            Some(0.0_f64.to_bits())
        );
        assert!(Score::new(f64::NAN).is_none());
    }
}
