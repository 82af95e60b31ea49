//! The command table of the in-process store, and the commands on keys of any type: DEL,
//! EXISTS, EXPIRE/PEXPIRE, TTL/PTTL, PERSIST, plus PING, DBSIZE, FLUSHALL and EVALSHA.

use redis::Value;

use super::keyspace::Keyspace;
use super::protocol::{Reply, error, int_arg, unknown_command, wrong_arity};
use super::{sorted_sets, strings};

type Handler = fn(&mut Keyspace, &[&[u8]]) -> Reply;

/// Name, arity (as in `COMMAND INFO`: negative means "at least") and handler of each command.
const COMMANDS: &[(&str, i64, Handler)] = &[
    ("get", 2, strings::get),
    ("mget", -2, strings::mget),
    ("set", -3, strings::set),
    ("incr", 2, strings::incr),
    ("incrby", 3, strings::incrby),
    ("decr", 2, strings::decr),
    ("decrby", 3, strings::decrby),
    ("del", -2, del),
    ("exists", -2, exists),
    ("expire", -3, expire),
    ("pexpire", -3, pexpire),
    ("ttl", 2, ttl),
    ("pttl", 2, pttl),
    ("persist", 2, persist),
    ("zadd", -4, sorted_sets::zadd),
    ("zrem", -3, sorted_sets::zrem),
    ("zcard", 2, sorted_sets::zcard),
    ("zscore", 3, sorted_sets::zscore),
    ("zrange", -4, sorted_sets::zrange),
    ("zrevrange", -4, sorted_sets::zrevrange),
    ("zrangebyscore", -4, sorted_sets::zrangebyscore),
    ("zrevrangebyscore", -4, sorted_sets::zrevrangebyscore),
    ("zremrangebyrank", 4, sorted_sets::zremrangebyrank),
    ("ping", -1, ping),
    ("dbsize", 1, dbsize),
    ("flushall", -1, flushall),
    ("evalsha", -3, evalsha),
];

impl Keyspace {
    /// Runs one command (`args[0]` is its name, in any case) and returns Redis's reply.
    pub(super) fn dispatch(&mut self, args: &[&[u8]]) -> Reply {
        let Some((name, rest)) = args.split_first() else {
            return Err(unknown_command(b"", &[]));
        };
        let Some((command, arity, handler)) = COMMANDS
            .iter()
            .find(|(command, _, _)| command.as_bytes().eq_ignore_ascii_case(name))
        else {
            return Err(unknown_command(name, rest));
        };
        let count = i64::try_from(args.len()).unwrap_or(i64::MAX);
        if (*arity >= 0 && count != *arity) || count < arity.abs() {
            return Err(wrong_arity(command));
        }
        handler(self, args)
    }
}

/// Whether `option` is `expected`, in any case.
pub(super) fn is(option: &[u8], expected: &str) -> bool {
    option.eq_ignore_ascii_case(expected.as_bytes())
}

fn del(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let mut deleted = 0;
    for key in &args[1..] {
        if keyspace.get(key).is_some() {
            keyspace.remove(key);
            deleted += 1;
        }
    }
    Ok(Value::Int(deleted))
}

fn exists(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let count = args[1..]
        .iter()
        .filter(|key| keyspace.get(key).is_some())
        .count();
    Ok(Value::Int(i64::try_from(count).unwrap_or(i64::MAX)))
}

fn expire(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    expire_in(keyspace, args, 1000, "expire")
}

fn pexpire(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    expire_in(keyspace, args, 1, "pexpire")
}

/// EXPIRE and PEXPIRE with NX, XX, GT and LT, in Redis 7.0's order of checks.
fn expire_in(keyspace: &mut Keyspace, args: &[&[u8]], unit_ms: i64, name: &str) -> Reply {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in &args[3..] {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => nx = true,
            b"XX" => xx = true,
            b"GT" => gt = true,
            b"LT" => lt = true,
            _ => {
                return Err(error(&format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(option)
                )));
            }
        }
    }
    if nx && (xx || gt || lt) {
        return Err(error(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(error(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    let invalid = || error(&format!("ERR invalid expire time in '{name}' command"));
    let now = i64::try_from(keyspace.now()).unwrap_or(i64::MAX);
    let when = int_arg(args[2])?
        .checked_mul(unit_ms)
        .and_then(|ms| ms.checked_add(now))
        .ok_or_else(invalid)?;
    let key = args[1];
    let Some(entry) = keyspace.get(key) else {
        return Ok(Value::Int(0));
    };
    let current = entry
        .deadline()
        .map(|at| i64::try_from(at).unwrap_or(i64::MAX));
    // A key without a TTL counts as expiring never: GT never raises it, LT always lowers it.
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.is_none_or(|at| when <= at))
        || (lt && current.is_some_and(|at| when >= at));
    if refused {
        return Ok(Value::Int(0));
    }
    if when <= now {
        keyspace.remove(key);
    } else {
        keyspace.set_deadline(key, u64::try_from(when).ok());
    }
    Ok(Value::Int(1))
}

fn ttl(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    Ok(Value::Int(match remaining_ms(keyspace, args[1]) {
        Ok(ms) => (ms + 500) / 1000,
        Err(code) => code,
    }))
}

fn pttl(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    Ok(Value::Int(match remaining_ms(keyspace, args[1]) {
        Ok(ms) | Err(ms) => ms,
    }))
}

/// Milliseconds left, or TTL's -2 (no key) or -1 (no TTL).
fn remaining_ms(keyspace: &mut Keyspace, key: &[u8]) -> Result<i64, i64> {
    let now = keyspace.now();
    let entry = keyspace.get(key).ok_or(-2)?;
    let deadline = entry.deadline().ok_or(-1)?;
    Ok(i64::try_from(deadline.saturating_sub(now)).unwrap_or(i64::MAX))
}

fn persist(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    let had_ttl = keyspace
        .get(args[1])
        .is_some_and(|entry| entry.deadline().is_some());
    if had_ttl {
        keyspace.set_deadline(args[1], None);
    }
    Ok(Value::Int(i64::from(had_ttl)))
}

fn ping(_: &mut Keyspace, args: &[&[u8]]) -> Reply {
    match args {
        [_] => Ok(Value::SimpleString("PONG".to_owned())),
        [_, message] => Ok(Value::BulkString(message.to_vec())),
        _ => Err(wrong_arity("ping")),
    }
}

fn dbsize(keyspace: &mut Keyspace, _: &[&[u8]]) -> Reply {
    Ok(Value::Int(
        i64::try_from(keyspace.len()).unwrap_or(i64::MAX),
    ))
}

/// FLUSHALL [SYNC|ASYNC]: drops every key (scripts stay loaded, as in Redis 7).
fn flushall(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    match args {
        [_] => {}
        [_, mode] if mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async") => {}
        _ => return Err(error("ERR syntax error")),
    }
    keyspace.clear();
    Ok(Value::Okay)
}

/// EVALSHA of a script registered with its in-process body (see `MemoryStore::load_script`).
fn evalsha(keyspace: &mut Keyspace, args: &[&[u8]]) -> Reply {
    if keyspace.in_script {
        return Err(error("ERR This Redis command is not allowed from script"));
    }
    let no_script = || error("NOSCRIPT No matching script. Please use EVAL.");
    let hash = std::str::from_utf8(args[1]).map_err(|_| no_script())?;
    if hash.len() != 40 {
        return Err(no_script());
    }
    let keys = int_arg(args[2])?;
    let available = i64::try_from(args.len() - 3).unwrap_or(i64::MAX);
    if keys > available {
        return Err(error(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if keys < 0 {
        return Err(error("ERR Number of keys can't be negative"));
    }
    let script = keyspace.script(hash).ok_or_else(no_script)?;
    let (keys, script_args) = args[3..].split_at(keys as usize);
    keyspace.in_script = true;
    let reply = script(keyspace, keys, script_args);
    keyspace.in_script = false;
    match reply {
        Value::ServerError(error) => Err(error),
        value => Ok(value),
    }
}

/// Runs a whitespace-separated command line on `keyspace` (for tests).
#[cfg(test)]
pub(super) fn run(keyspace: &mut Keyspace, line: &str) -> Value {
    let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    keyspace.dispatch(&args).unwrap_or_else(Value::ServerError)
}

/// A keyspace for tests, its clock at 10 s.
#[cfg(test)]
pub(super) fn keyspace() -> Keyspace {
    let mut keyspace = Keyspace::new(100);
    keyspace.begin(10_000);
    keyspace
}

/// The error line `line` answers (for tests); panics on any other reply.
#[cfg(test)]
pub(super) fn err(keyspace: &mut Keyspace, line: &str) -> String {
    let reply = run(keyspace, line);
    error_line(&reply).unwrap_or_else(|| panic!("{line}: expected an error, got {reply:?}"))
}

/// The error line of a reply, as `CODE detail` (for tests).
#[cfg(test)]
pub(super) fn error_line(value: &Value) -> Option<String> {
    match value {
        Value::ServerError(error) => Some(match error.details() {
            Some(details) => format!("{} {details}", error.code()),
            None => error.code().to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every expected reply below was checked against redis-server 7.0.15.

    #[test]
    fn unknown_commands_and_wrong_arity_are_refused_like_redis() {
        let mut ks = keyspace();
        assert_eq!(
            err(&mut ks, "foo a b"),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
        assert_eq!(
            err(&mut ks, "foo"),
            "ERR unknown command 'foo', with args beginning with: "
        );
        assert_eq!(
            err(&mut ks, "GET"),
            "ERR wrong number of arguments for 'get' command"
        );
        assert_eq!(
            err(&mut ks, "zadd z 1"),
            "ERR wrong number of arguments for 'zadd' command"
        );
        assert_eq!(
            err(&mut ks, "ping a b"),
            "ERR wrong number of arguments for 'ping' command"
        );
        assert_eq!(run(&mut ks, "PING"), Value::SimpleString("PONG".into()));
        run(&mut ks, "SET a 1");
        assert_eq!(run(&mut ks, "FLUSHALL"), Value::Okay);
        assert_eq!(run(&mut ks, "DBSIZE"), Value::Int(0));
        assert_eq!(run(&mut ks, "ping hi"), Value::BulkString(b"hi".to_vec()));
    }

    #[test]
    fn del_and_exists_count_keys() {
        let mut ks = keyspace();
        run(&mut ks, "set a 1");
        run(&mut ks, "zadd z 1 m");
        assert_eq!(run(&mut ks, "exists a a z nope"), Value::Int(3));
        assert_eq!(run(&mut ks, "del a a nope"), Value::Int(1));
        assert_eq!(run(&mut ks, "del z"), Value::Int(1));
        assert_eq!(run(&mut ks, "exists a z"), Value::Int(0));
        assert_eq!(run(&mut ks, "dbsize"), Value::Int(0));
    }

    #[test]
    fn expire_sets_and_reports_ttls() {
        let mut ks = keyspace();
        assert_eq!(run(&mut ks, "expire nope 10"), Value::Int(0));
        assert_eq!(run(&mut ks, "ttl nope"), Value::Int(-2));
        run(&mut ks, "set k v");
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(-1));
        assert_eq!(run(&mut ks, "expire k 10"), Value::Int(1));
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(10));
        assert_eq!(run(&mut ks, "pttl k"), Value::Int(10_000));
        ks.begin(10_000 + 9_400);
        // TTL rounds to the nearest second.
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(1));
        assert_eq!(run(&mut ks, "pttl k"), Value::Int(600));
        ks.begin(10_000 + 10_001);
        assert_eq!(run(&mut ks, "get k"), Value::Nil);
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(-2));
    }

    #[test]
    fn expire_options_follow_redis() {
        let mut ks = keyspace();
        run(&mut ks, "set k v");
        assert_eq!(run(&mut ks, "expire k 100 xx"), Value::Int(0));
        assert_eq!(run(&mut ks, "expire k 100 gt"), Value::Int(0));
        assert_eq!(run(&mut ks, "expire k 100 nx"), Value::Int(1));
        assert_eq!(run(&mut ks, "expire k 50 NX"), Value::Int(0));
        assert_eq!(run(&mut ks, "expire k 50 gt"), Value::Int(0));
        assert_eq!(run(&mut ks, "expire k 200 gt"), Value::Int(1));
        assert_eq!(run(&mut ks, "expire k 300 lt"), Value::Int(0));
        assert_eq!(run(&mut ks, "expire k 20 lt"), Value::Int(1));
        assert_eq!(run(&mut ks, "expire k 30 xx"), Value::Int(1));
        assert_eq!(run(&mut ks, "ttl k"), Value::Int(30));
        assert_eq!(run(&mut ks, "persist k"), Value::Int(1));
        assert_eq!(run(&mut ks, "persist k"), Value::Int(0));
        assert_eq!(run(&mut ks, "expire k 5 lt"), Value::Int(1));
        // A time already past deletes the key and still answers 1.
        assert_eq!(run(&mut ks, "expire k 0"), Value::Int(1));
        assert_eq!(run(&mut ks, "exists k"), Value::Int(0));
        run(&mut ks, "set k v");
        assert_eq!(run(&mut ks, "pexpire k -5"), Value::Int(1));
        assert_eq!(run(&mut ks, "exists k"), Value::Int(0));
    }

    #[test]
    fn expire_rejects_bad_arguments_like_redis() {
        let mut ks = keyspace();
        run(&mut ks, "set k v");
        assert_eq!(
            err(&mut ks, "expire k abc foo"),
            "ERR Unsupported option foo"
        );
        assert_eq!(
            err(&mut ks, "expire k 10 nx xx"),
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut ks, "expire k 10 gt lt"),
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(
            err(&mut ks, "expire nope abc"),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&mut ks, "expire k 9223372036854775807"),
            "ERR invalid expire time in 'expire' command"
        );
    }

    #[test]
    fn evalsha_of_an_unknown_script_is_noscript() {
        let mut ks = keyspace();
        let sha = "0123456789012345678901234567890123456789";
        assert_eq!(
            err(&mut ks, "evalsha abc 1 k"),
            "NOSCRIPT No matching script. Please use EVAL."
        );
        assert_eq!(
            err(&mut ks, &format!("evalsha {sha} 1 k")),
            "NOSCRIPT No matching script. Please use EVAL."
        );
        assert_eq!(
            err(&mut ks, &format!("evalsha {sha} x k")),
            "ERR value is not an integer or out of range"
        );
        assert_eq!(
            err(&mut ks, &format!("evalsha {sha} 2 k")),
            "ERR Number of keys can't be greater than number of args"
        );
        assert_eq!(
            err(&mut ks, &format!("evalsha {sha} -1 k")),
            "ERR Number of keys can't be negative"
        );
    }

    #[test]
    fn evalsha_runs_the_registered_body_with_its_keys_and_arguments() {
        fn echo(keyspace: &mut Keyspace, keys: &[&[u8]], args: &[&[u8]]) -> Value {
            for key in keys {
                let mut set: Vec<&[u8]> = vec![b"SET", key];
                set.extend_from_slice(args);
                if let Err(error) = keyspace.call(&set) {
                    return Value::ServerError(error);
                }
            }
            Value::Int(7)
        }
        let mut ks = keyspace();
        let sha = "ABCDEF6789012345678901234567890123456789";
        ks.register_script(sha, echo);
        assert_eq!(
            run(&mut ks, &format!("evalsha {} 1 k v", sha.to_lowercase())),
            Value::Int(7)
        );
        assert_eq!(run(&mut ks, "get k"), Value::BulkString(b"v".to_vec()));
        // Every key, then the arguments.
        assert_eq!(
            run(&mut ks, &format!("evalsha {sha} 2 a b w")),
            Value::Int(7)
        );
        assert_eq!(run(&mut ks, "get a"), Value::BulkString(b"w".to_vec()));
        assert_eq!(run(&mut ks, "get b"), Value::BulkString(b"w".to_vec()));
        // An error inside the script is the script's reply.
        assert_eq!(
            err(&mut ks, &format!("evalsha {sha} 1 k v ex 0")),
            "ERR invalid expire time in 'set' command"
        );
    }
}
