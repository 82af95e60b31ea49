//! String commands: GET, MGET, SET (with NX/XX, GET, EX/PX/EXAT/PXAT/KEEPTTL), INCR, INCRBY,
//! DECR, DECRBY.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::{ServerError, Value};

use super::commands::is;
use super::keyspace::{Data, Keyspace};
use super::protocol::{NOT_AN_INTEGER, Reply, SYNTAX, bulk, error, parse_int};

pub(super) fn get(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    match keyspace.get(args[1]) {
        Some(entry) => Ok(bulk(entry.bytes()?.clone())),
        None => Ok(Value::Nil),
    }
}

/// MGET: each key's string, nil for a missing key and (unlike GET) for a key of another type.
pub(super) fn mget(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let values = args[1..]
        .iter()
        .map(|key| match keyspace.get(key).map(|entry| entry.bytes()) {
            Some(Ok(bytes)) => bulk(bytes.clone()),
            Some(Err(_)) | None => Value::Nil,
        })
        .collect();
    Ok(Value::Array(values))
}

/// When SET's key expires.
enum Expiry {
    /// Clear any TTL (plain SET).
    Clear,
    /// Keep the TTL the key has (KEEPTTL).
    Keep,
    /// After this amount of time units (EX, PX) or at this Unix time (EXAT, PXAT).
    After(Vec<u8>, Unit),
}

/// Milliseconds per unit of SET's expiry option, and whether it is a Unix time.
type Unit = (i64, bool);

pub(super) fn set(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let (key, value) = (args[1], args[2]);
    let (mut nx, mut xx, mut get) = (false, false, false);
    let mut expiry = Expiry::Clear;
    let mut options = args[3..].iter();
    while let Some(option) = options.next() {
        // An expiry option may repeat (the last one counts) but not mix with another kind.
        if is(option, "NX") && !xx {
            nx = true;
        } else if is(option, "XX") && !nx {
            xx = true;
        } else if is(option, "GET") {
            get = true;
        } else if is(option, "KEEPTTL") && matches!(expiry, Expiry::Clear | Expiry::Keep) {
            expiry = Expiry::Keep;
        } else if let Some(unit) = expiry_unit(option)
            && match &expiry {
                Expiry::Clear => true,
                Expiry::Keep => false,
                Expiry::After(_, given) => *given == unit,
            }
        {
            let amount = options.next().ok_or_else(|| error(SYNTAX))?;
            expiry = Expiry::After(amount.to_vec(), unit);
        } else {
            return Err(error(SYNTAX));
        }
    }
    // Redis checks the expiry once every option has been read.
    let when = match &expiry {
        Expiry::After(amount, unit) => Some(expiry_time(keyspace, amount, *unit)?),
        Expiry::Clear | Expiry::Keep => None,
    };
    let (old, kept) = match keyspace.get(key) {
        Some(entry) => {
            let old = if get {
                Some(entry.bytes()?.clone())
            } else {
                None
            };
            (Some(old), entry.deadline())
        }
        None => (None, None),
    };
    let reply = match &old {
        Some(Some(bytes)) => bulk(bytes.clone()),
        _ if get => Value::Nil,
        _ => Value::Okay,
    };
    if (nx && old.is_some()) || (xx && old.is_none()) {
        return Ok(if get { reply } else { Value::Nil });
    }
    keyspace.insert(key, Data::Bytes(value.to_vec()))?;
    match (expiry, when) {
        (Expiry::Keep, _) => keyspace.set_deadline(key, kept),
        (_, Some(when)) if when > i64::try_from(keyspace.now()).unwrap_or(i64::MAX) => {
            keyspace.set_deadline(key, u64::try_from(when).ok());
        }
        // A Unix time already past: the key is written and gone at once.
        (_, Some(_)) => {
            keyspace.remove(key);
        }
        (_, None) => keyspace.set_deadline(key, None),
    }
    Ok(reply)
}

fn expiry_unit(option: &[u8]) -> Option<Unit> {
    match option.to_ascii_uppercase().as_slice() {
        b"EX" => Some((1000, false)),
        b"PX" => Some((1, false)),
        b"EXAT" => Some((1000, true)),
        b"PXAT" => Some((1, true)),
        _ => None,
    }
}

/// The time SET's key expires, on the store's clock; Redis's errors for a bad amount.
fn expiry_time(
    keyspace: &Keyspace,
    amount: &[u8],
    (unit_ms, absolute): Unit,
) -> Result<i64, ServerError> {
    let invalid = || error("ERR invalid expire time in 'set' command");
    let amount = parse_int(amount).ok_or_else(|| error(NOT_AN_INTEGER))?;
    if amount <= 0 {
        return Err(invalid());
    }
    let ms = amount.checked_mul(unit_ms).ok_or_else(invalid)?;
    let now = i64::try_from(keyspace.now()).unwrap_or(i64::MAX);
    if absolute {
        // The store's clock is monotonic: move the Unix time onto it.
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| {
                i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
            });
        Ok(now.saturating_add(ms.saturating_sub(unix_now)))
    } else {
        now.checked_add(ms).ok_or_else(invalid)
    }
}

pub(super) fn incr(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    add(keyspace, args[1], 1)
}

pub(super) fn decr(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    add(keyspace, args[1], -1)
}

pub(super) fn incrby(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let delta = parse_int(args[2]).ok_or_else(|| error(NOT_AN_INTEGER))?;
    add(keyspace, args[1], delta)
}

pub(super) fn decrby(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let delta = parse_int(args[2]).ok_or_else(|| error(NOT_AN_INTEGER))?;
    let delta = delta
        .checked_neg()
        .ok_or_else(|| error("ERR decrement would overflow"))?;
    add(keyspace, args[1], delta)
}

/// Adds `delta` to the integer at `key` (0 when missing), keeping its TTL.
fn add(keyspace: &mut Keyspace, key: &[u8], delta: i64) -> Reply {
    let current = match keyspace.get(key) {
        Some(entry) => Some(parse_int(entry.bytes()?).ok_or_else(|| error(NOT_AN_INTEGER))?),
        None => None,
    };
    let value = current
        .unwrap_or(0)
        .checked_add(delta)
        .ok_or_else(|| error("ERR increment or decrement would overflow"))?;
    keyspace.insert(key, Data::Bytes(value.to_string().into_bytes()))?;
    Ok(Value::Int(value))
}

#[cfg(test)]
mod tests {
    use super::super::commands::{err, keyspace, run};
    use super::*;

    fn text(bytes: &str) -> Value {
        Value::BulkString(bytes.as_bytes().to_vec())
    }

    // Every expected reply below was checked against redis-server 7.0.15.

    #[test]
    fn set_then_get() {
        let mut ks = keyspace();
        assert_eq!(run(&mut ks, "get k"), Value::Nil);
        assert_eq!(run(&mut ks, "set k v"), Value::Okay);
        assert_eq!(run(&mut ks, "get k"), text("v"));
        assert_eq!(run(&mut ks, "set k w get"), text("v"));
        assert_eq!(run(&mut ks, "get k"), text("w"));
    }

    #[test]
    fn mget_answers_nil_for_missing_keys_and_other_types() {
        let mut ks = keyspace();
        run(&mut ks, "set a 1");
        run(&mut ks, "zadd z 1 m");
        assert_eq!(
            run(&mut ks, "mget a missing z a"),
            Value::Array(vec![text("1"), Value::Nil, Value::Nil, text("1")])
        );
        assert_eq!(
            err(&mut ks, "mget"),
            "ERR wrong number of arguments for 'mget' command"
        );
    }

    #[test]
    fn set_with_ex_expires_and_a_plain_set_clears_the_ttl() {
        let mut ks = keyspace();
        assert_eq!(run(&mut ks, "set k v EX 10"), Value::Okay);
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(10));
        assert_eq!(run(&mut ks, "set k v px 2500"), Value::Okay);
        assert_eq!(run(&mut ks, "pttl k"), Value::Int(2500));
        assert_eq!(run(&mut ks, "set k w keepttl keepttl"), Value::Okay);
        assert_eq!(run(&mut ks, "pttl k"), Value::Int(2500));
        assert_eq!(run(&mut ks, "set k v"), Value::Okay);
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(-1));
        // A repeated expiry option: the last one counts.
        assert_eq!(run(&mut ks, "set k v ex 100 ex 1"), Value::Okay);
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(1));
        ks.begin(11_001);
        assert_eq!(run(&mut ks, "get k"), Value::Nil);
    }

    #[test]
    fn set_nx_and_xx_depend_on_the_key() {
        let mut ks = keyspace();
        assert_eq!(run(&mut ks, "set k v xx"), Value::Nil);
        assert_eq!(run(&mut ks, "set k v nx"), Value::Okay);
        assert_eq!(run(&mut ks, "set k w nx"), Value::Nil);
        assert_eq!(run(&mut ks, "set k w nx get"), text("v"));
        assert_eq!(run(&mut ks, "set k w xx"), Value::Okay);
        assert_eq!(run(&mut ks, "get k"), text("w"));
    }

    #[test]
    fn set_rejects_bad_options_like_redis() {
        let mut ks = keyspace();
        assert_eq!(
            err(&mut ks, "set k v ex 0"),
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            err(&mut ks, "set k v ex abc"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err(&mut ks, "set k v px 10 ex 10"), "ERR syntax error");
        assert_eq!(err(&mut ks, "set k v ex 10 keepttl"), "ERR syntax error");
        assert_eq!(err(&mut ks, "set k v keepttl px 10"), "ERR syntax error");
        assert_eq!(
            err(&mut ks, "set k v ex 10 ex x"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(err(&mut ks, "set k v nx xx"), "ERR syntax error");
        assert_eq!(err(&mut ks, "set k v foo"), "ERR syntax error");
        assert_eq!(err(&mut ks, "set k v ex"), "ERR syntax error");
        assert_eq!(err(&mut ks, "set k v ex abc foo"), "ERR syntax error");
        assert_eq!(run(&mut ks, "set k v pxat 1"), Value::Okay);
        assert_eq!(run(&mut ks, "exists k"), Value::Int(0));
        run(&mut ks, "zadd z 1 a");
        assert_eq!(
            err(&mut ks, "set z v get"),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        // Without GET, SET replaces a value of any type.
        assert_eq!(run(&mut ks, "set z v"), Value::Okay);
    }

    #[test]
    fn incr_counts_from_zero_and_keeps_the_ttl() {
        let mut ks = keyspace();
        assert_eq!(run(&mut ks, "incr n"), Value::Int(1));
        assert_eq!(run(&mut ks, "expire n 60 nx"), Value::Int(1));
        assert_eq!(run(&mut ks, "incrby n 41"), Value::Int(42));
        assert_eq!(run(&mut ks, "incrby n -2"), Value::Int(40));
        assert_eq!(run(&mut ks, "decr n"), Value::Int(39));
        assert_eq!(run(&mut ks, "decrby n 9"), Value::Int(30));
        assert_eq!(run(&mut ks, "get n"), text("30"));
        assert_eq!(run(&mut ks, "ttl n"), Value::Int(60));
    }

    #[test]
    fn incr_refuses_what_is_not_an_integer() {
        let mut ks = keyspace();
        let not_an_integer = "ERR value is not an integer or out of range";
        run(&mut ks, "set s abc");
        assert_eq!(err(&mut ks, "incr s"), not_an_integer);
        run(&mut ks, "set s 01");
        assert_eq!(err(&mut ks, "incr s"), not_an_integer);
        run(&mut ks, "set n 5");
        assert_eq!(err(&mut ks, "incrby n +1"), not_an_integer);
        assert_eq!(err(&mut ks, "incrby n 01"), not_an_integer);
        run(&mut ks, "set n 9223372036854775807");
        assert_eq!(
            err(&mut ks, "incr n"),
            "ERR increment or decrement would overflow"
        );
        run(&mut ks, "zadd z 1 a");
        assert_eq!(
            err(&mut ks, "incr z"),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        assert_eq!(
            err(&mut ks, "get z"),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
    }
}
