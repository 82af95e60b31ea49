//! Sorted-set commands: ZADD (NX/XX/GT/LT/CH/INCR), ZREM, ZCARD, ZSCORE, ZRANGE (by rank or
//! BYSCORE, REV, LIMIT, WITHSCORES), ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE,
//! ZREMRANGEBYRANK. Replies are RESP2's, which the API's connections speak: scores are bulk
//! strings.

use redis::{ServerError, Value};

use super::commands::is;
use super::keyspace::{Data, Keyspace};
use super::protocol::{
    Reply, SYNTAX, bulk, error, format_score, int_arg, parse_float, score_range,
};
use super::zset::{Score, SortedSet, rank_range};

pub(super) fn zadd(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let key = args[1];
    let (mut nx, mut xx, mut gt, mut lt, mut ch, mut incr) =
        (false, false, false, false, false, false);
    let mut first = 2;
    while let Some(option) = args.get(first) {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            b"CH" => ch = true,
            b"INCR" => incr = true,
            _ => break,
        }
        first += 1;
    }
    let elements = &args[first..];
    if elements.is_empty() || !elements.len().is_multiple_of(2) {
        return Err(error(SYNTAX));
    }
    if nx && xx {
        return Err(error(
            "ERR XX and NX options at the same time are not compatible",
        ));
    }
    if (nx && (gt || lt)) || (gt && lt) {
        return Err(error(
            "ERR GT, LT, and/or NX options at the same time are not compatible",
        ));
    }
    if incr && elements.len() > 2 {
        return Err(error(
            "ERR INCR option supports a single increment-element pair",
        ));
    }
    let pairs = elements
        .chunks_exact(2)
        .map(|pair| {
            parse_float(pair[0])
                .map(|score| (score, pair[1]))
                .ok_or_else(|| error("ERR value is not a valid float"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nothing = if incr { Value::Nil } else { Value::Int(0) };
    match keyspace.get(key) {
        Some(entry) => {
            entry.sorted()?;
        }
        None if xx => return Ok(nothing),
        None => {
            keyspace.insert(key, Data::Sorted(SortedSet::default()))?;
        }
    }
    let set = sorted_set(keyspace, key)?;
    let (mut added, mut updated, mut processed) = (0, 0, 0);
    let mut new_score = 0.0;
    for (score, member) in pairs {
        let nan = || error("ERR resulting score is not a number (NaN)");
        match set.score(member) {
            Some(_) if nx => {}
            Some(current) => {
                let score = if incr { score + current } else { score };
                let score = Score::new(score).ok_or_else(nan)?;
                if (gt && score.get() <= current) || (lt && score.get() >= current) {
                    continue;
                }
                processed += 1;
                new_score = score.get();
                if score.get() != current {
                    set.insert(member, score);
                    updated += 1;
                }
            }
            None if xx => {}
            None => {
                set.insert(member, Score::new(score).ok_or_else(nan)?);
                added += 1;
                processed += 1;
                // The reply shows the score as given (`-0`), the set stores it as `0`.
                new_score = score;
            }
        }
    }
    Ok(match (incr, processed) {
        (true, 0) => Value::Nil,
        (true, _) => bulk(format_score(new_score)),
        (false, _) if ch => Value::Int(added + updated),
        (false, _) => Value::Int(added),
    })
}

/// The sorted set at `key`, which the caller has just seen or made.
fn sorted_set<'a>(
    keyspace: &'a mut Keyspace,
    key: &[u8],
) -> Result<&'a mut SortedSet, ServerError> {
    keyspace
        .get(key)
        .ok_or_else(|| error("ERR the key vanished while being written"))?
        .sorted()
}

pub(super) fn zrem(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let key = args[1];
    let Some(entry) = keyspace.get(key) else {
        return Ok(Value::Int(0));
    };
    let set = entry.sorted()?;
    let removed = args[2..].iter().filter(|member| set.remove(member)).count();
    let emptied = set.is_empty();
    if emptied {
        keyspace.remove(key);
    }
    Ok(Value::Int(i64::try_from(removed).unwrap_or(i64::MAX)))
}

pub(super) fn zcard(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let len = match keyspace.get(args[1]) {
        Some(entry) => entry.sorted()?.len(),
        None => 0,
    };
    Ok(Value::Int(i64::try_from(len).unwrap_or(i64::MAX)))
}

pub(super) fn zscore(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let score = match keyspace.get(args[1]) {
        Some(entry) => entry.sorted()?.score(args[2]),
        None => None,
    };
    Ok(score.map_or(Value::Nil, |score| bulk(format_score(score))))
}

/// How a range command selects members.
#[derive(Clone, Copy, PartialEq, Eq)]
enum By {
    /// Not said yet (ZRANGE without BYSCORE or BYLEX): by rank.
    Auto,
    Rank,
    Score,
    Lex,
}

pub(super) fn zrange(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    range(keyspace, args, By::Auto, None)
}

pub(super) fn zrevrange(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    range(keyspace, args, By::Rank, Some(true))
}

pub(super) fn zrangebyscore(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    range(keyspace, args, By::Score, Some(false))
}

pub(super) fn zrevrangebyscore(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    range(keyspace, args, By::Score, Some(true))
}

/// The range commands, parsed as Redis 7.0's `zrangeGenericCommand` parses them.
fn range(keyspace: &mut Keyspace, args: &[&[u8]], mut by: By, mut reverse: Option<bool>) -> Reply {
    let (mut with_scores, mut offset, mut limit) = (false, 0i64, -1i64);
    let mut index = 4;
    while let Some(option) = args.get(index) {
        let left = args.len() - index - 1;
        if is(option, "WITHSCORES") {
            with_scores = true;
        } else if is(option, "LIMIT") && left >= 2 {
            offset = int_arg(args[index + 1])?;
            limit = int_arg(args[index + 2])?;
            index += 2;
        } else if reverse.is_none() && is(option, "REV") {
            reverse = Some(true);
        } else if by == By::Auto && is(option, "BYSCORE") {
            by = By::Score;
        } else if by == By::Auto && is(option, "BYLEX") {
            by = By::Lex;
        } else {
            return Err(error(SYNTAX));
        }
        index += 1;
    }
    let reverse = reverse.unwrap_or(false);
    if by == By::Auto {
        by = By::Rank;
    }
    if limit != -1 && by == By::Rank {
        return Err(error(
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
        ));
    }
    if by == By::Lex {
        return Err(error("ERR BYLEX is not supported by the in-process store"));
    }
    // Reversed score ranges are written max first.
    let (min, max) = if reverse && by == By::Score {
        (args[3], args[2])
    } else {
        (args[2], args[3])
    };
    let selection = if by == By::Rank {
        Selection::Rank(int_arg(min)?, int_arg(max)?)
    } else {
        Selection::Score(score_range(min, max)?)
    };
    let Some(entry) = keyspace.get(args[1]) else {
        return Ok(Value::Array(Vec::new()));
    };
    let set = entry.sorted()?;
    let members = match selection {
        Selection::Rank(start, stop) => match rank_range(set.len(), start, stop) {
            Some((start, stop)) => set.by_rank(start, stop, reverse),
            None => Vec::new(),
        },
        Selection::Score(_) if offset < 0 => Vec::new(),
        Selection::Score(range) => set.by_score(
            range,
            reverse,
            usize::try_from(offset).unwrap_or(usize::MAX),
            usize::try_from(limit).ok(),
        ),
    };
    let mut reply = Vec::with_capacity(members.len() * if with_scores { 2 } else { 1 });
    for (member, score) in members {
        reply.push(bulk(member));
        if with_scores {
            reply.push(bulk(format_score(score)));
        }
    }
    Ok(Value::Array(reply))
}

enum Selection {
    Rank(i64, i64),
    Score(super::zset::ScoreRange),
}

pub(super) fn zremrangebyrank(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let key = args[1];
    let (start, stop) = (int_arg(args[2])?, int_arg(args[3])?);
    let Some(entry) = keyspace.get(key) else {
        return Ok(Value::Int(0));
    };
    let set = entry.sorted()?;
    let removed = match rank_range(set.len(), start, stop) {
        Some((start, stop)) => set.remove_by_rank(start, stop),
        None => 0,
    };
    if set.is_empty() {
        keyspace.remove(key);
    }
    Ok(Value::Int(i64::try_from(removed).unwrap_or(i64::MAX)))
}

#[cfg(test)]
mod tests {
    use super::super::commands::{err, keyspace, run};
    use super::*;

    /// The bulk strings of an array reply, joined by spaces.
    fn words(reply: Value) -> String {
        let Value::Array(items) = reply else {
            panic!("expected an array, got {reply:?}");
        };
        items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(bytes) => String::from_utf8(bytes).expect("utf-8"),
                other => panic!("expected a bulk string, got {other:?}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn text(bytes: &str) -> Value {
        Value::BulkString(bytes.as_bytes().to_vec())
    }

    // Every expected reply below was checked against redis-server 7.0.15.

    #[test]
    fn zadd_counts_added_or_changed_members() {
        let mut ks = keyspace();
        assert_eq!(run(&mut ks, "zadd f 1.5 a 0 z0 -0 z1"), Value::Int(3));
        assert_eq!(run(&mut ks, "zscore f z1"), text("0"));
        assert_eq!(run(&mut ks, "zadd f ch 2 a 3 new 2 a"), Value::Int(2));
        assert_eq!(run(&mut ks, "zadd f 2 a"), Value::Int(0));
        assert_eq!(run(&mut ks, "zadd f incr 1 a"), text("3"));
        assert_eq!(run(&mut ks, "zadd f nx incr 1 a"), Value::Nil);
        assert_eq!(run(&mut ks, "zadd f xx incr 1 zz"), Value::Nil);
        assert_eq!(run(&mut ks, "zadd f xx 1 zz"), Value::Int(0));
        assert_eq!(run(&mut ks, "zadd f incr -0 neg"), text("-0"));
        assert_eq!(run(&mut ks, "zscore f neg"), text("0"));
        assert_eq!(run(&mut ks, "zrem f neg"), Value::Int(1));
        assert_eq!(run(&mut ks, "zadd nope xx 1 zz"), Value::Int(0));
        assert_eq!(run(&mut ks, "exists nope"), Value::Int(0));
        assert_eq!(run(&mut ks, "zadd f gt ch 1 a 4 new"), Value::Int(1));
        assert_eq!(run(&mut ks, "zadd f lt ch 1 a"), Value::Int(1));
        assert_eq!(run(&mut ks, "zadd f inf p"), Value::Int(1));
        assert_eq!(
            err(&mut ks, "zadd f incr -inf p"),
            "ERR resulting score is not a number (NaN)"
        );
        assert_eq!(run(&mut ks, "zcard f"), Value::Int(5));
        assert_eq!(run(&mut ks, "zscore f nope"), Value::Nil);
        assert_eq!(run(&mut ks, "zscore nope a"), Value::Nil);
        assert_eq!(run(&mut ks, "zcard nope"), Value::Int(0));
    }

    #[test]
    fn zadd_rejects_bad_arguments_like_redis() {
        let mut ks = keyspace();
        assert_eq!(
            err(&mut ks, "zadd z nan x"),
            "ERR value is not a valid float"
        );
        assert_eq!(err(&mut ks, "zadd z 1 a 2"), "ERR syntax error");
        assert_eq!(err(&mut ks, "zadd z nx 1"), "ERR syntax error");
        assert_eq!(
            err(&mut ks, "zadd z xx nx 1 a"),
            "ERR XX and NX options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut ks, "zadd z gt lt 1 a"),
            "ERR GT, LT, and/or NX options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut ks, "zadd z nx gt 1 a"),
            "ERR GT, LT, and/or NX options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut ks, "zadd z incr 1 a 2 b"),
            "ERR INCR option supports a single increment-element pair"
        );
        run(&mut ks, "set s x");
        for line in [
            "zadd s 1 a",
            "zrem s a",
            "zcard s",
            "zscore s a",
            "zrange s 0 -1",
            "zremrangebyrank s 0 1",
        ] {
            assert_eq!(
                err(&mut ks, line),
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                "{line}"
            );
        }
    }

    #[test]
    fn scores_are_replied_like_redis_7_0() {
        let mut ks = keyspace();
        run(
            &mut ks,
            "zadd f 0 z0 1.5 a 9007199254740993 b 1e17 c 123.456 d 1e-5 e 0.0001 g 100000000000000000000000 h",
        );
        assert_eq!(
            words(run(&mut ks, "zrange f 0 -1 withscores")),
            "z0 0 e 1.0000000000000001e-05 g 0.0001 a 1.5 d 123.456 \
             b 9007199254740992 c 1e+17 h 9.9999999999999992e+22"
        );
    }

    #[test]
    fn ranges_by_rank_and_by_score() {
        let mut ks = keyspace();
        run(&mut ks, "zadd f 1 a 2 b 2 c 3 d +inf floor:1");
        assert_eq!(words(run(&mut ks, "zrange f 0 -1")), "a b c d floor:1");
        assert_eq!(words(run(&mut ks, "zrange f 0 0")), "a");
        assert_eq!(words(run(&mut ks, "zrange f 5 2")), "");
        assert_eq!(
            words(run(&mut ks, "zrange f -100 100 rev")),
            "floor:1 d c b a"
        );
        assert_eq!(
            words(run(&mut ks, "zrevrange f 0 1 withscores")),
            "floor:1 inf d 3"
        );
        assert_eq!(words(run(&mut ks, "zrangebyscore f +inf +inf")), "floor:1");
        assert_eq!(words(run(&mut ks, "zrangebyscore f (1 2")), "b c");
        assert_eq!(words(run(&mut ks, "zrangebyscore f 3 1")), "");
        assert_eq!(words(run(&mut ks, "zrangebyscore f (+inf +inf")), "");
        assert_eq!(words(run(&mut ks, "zrangebyscore f -inf (-inf")), "");
        assert_eq!(words(run(&mut ks, "zrangebyscore f (1 inf limit -1 5")), "");
        assert_eq!(
            words(run(&mut ks, "zrangebyscore f -inf +inf limit 1 -1")),
            "b c d floor:1"
        );
        assert_eq!(
            words(run(&mut ks, "zrevrangebyscore f (+inf -inf LIMIT 0 3")),
            "d c b"
        );
        assert_eq!(
            words(run(&mut ks, "zrevrangebyscore f (3 -inf limit 1 10")),
            "b a"
        );
        assert_eq!(
            words(run(
                &mut ks,
                "zrange f (3 -inf byscore rev limit 0 2 withscores"
            )),
            "c 2 b 2"
        );
        assert_eq!(words(run(&mut ks, "zrange nope 0 -1")), "");
    }

    #[test]
    fn ranges_reject_bad_arguments_like_redis() {
        let mut ks = keyspace();
        run(&mut ks, "zadd f 1 a");
        assert_eq!(
            err(&mut ks, "zrangebyscore f a b"),
            "ERR min or max is not a float"
        );
        assert_eq!(
            err(&mut ks, "zrange f 0 1 limit 0 1"),
            "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX"
        );
        assert_eq!(
            err(&mut ks, "zrangebyscore f 1 3 limit 0"),
            "ERR syntax error"
        );
        assert_eq!(
            err(
                &mut ks,
                "zrevrangebyscore f +inf -inf withscores limit 0 2 foo"
            ),
            "ERR syntax error"
        );
        assert_eq!(err(&mut ks, "zrangebyscore f 1 3 rev"), "ERR syntax error");
        assert_eq!(
            err(&mut ks, "zrange f a 1"),
            "ERR value is not an integer or out of range"
        );
    }

    #[test]
    fn removals_delete_the_key_once_empty() {
        let mut ks = keyspace();
        run(&mut ks, "zadd f 1 a 2 b 3 c 4 d 5 e");
        assert_eq!(run(&mut ks, "zremrangebyrank f 0 1"), Value::Int(2));
        assert_eq!(run(&mut ks, "zremrangebyrank f -2 -1"), Value::Int(2));
        assert_eq!(run(&mut ks, "zremrangebyrank f 5 9"), Value::Int(0));
        assert_eq!(words(run(&mut ks, "zrange f 0 -1")), "c");
        assert_eq!(run(&mut ks, "zrem f c nope c"), Value::Int(1));
        assert_eq!(run(&mut ks, "exists f"), Value::Int(0));
        run(&mut ks, "zadd f 1 a");
        assert_eq!(run(&mut ks, "zremrangebyrank f 0 -1"), Value::Int(1));
        assert_eq!(run(&mut ks, "exists f"), Value::Int(0));
        assert_eq!(run(&mut ks, "zrem nope a"), Value::Int(0));
        assert_eq!(run(&mut ks, "zremrangebyrank nope 0 -1"), Value::Int(0));
    }
}
