//! How the in-process store reads arguments and writes replies the way Redis 7.0 does: its
//! integer and float parsing, its error lines and its `%.17g` scores.

use redis::{ServerError, Value};

use super::zset::ScoreRange;

/// What a command answers: a value, or the error line Redis would send.
pub(super) type Reply = Result<Value, ServerError>;

/// Redis's reply to an operation on a key of another type.
pub(super) const WRONGTYPE: &str =
    "WRONGTYPE Operation against a key holding the wrong kind of value";
/// Redis's reply to a malformed integer argument.
pub(super) const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";
/// Redis's reply to a malformed option list.
pub(super) const SYNTAX: &str = "ERR syntax error";
/// Redis's reply (with `maxmemory-policy volatile-lru`) to a write when nothing can be evicted.
pub(super) const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// An error reply, parsed from its RESP line exactly as a Redis connection would parse it.
pub(super) fn error(line: &str) -> ServerError {
    // Redis replaces line breaks in error lines (they would end the reply early).
    let line = line.replace(['\r', '\n'], " ");
    match redis::parse_redis_value(format!("-{line}\r\n").as_bytes()) {
        Ok(Value::ServerError(error)) => error,
        other => panic!("a `-` line without CR or LF is a RESP error, got {other:?}"),
    }
}

/// An error reply (`CODE message`) as a Redis connection would parse it: what an in-process
/// script returns where its Lua would raise an error.
pub fn error_reply(line: &str) -> ServerError {
    error(line)
}

/// Redis's reply to a command called with too few or too many arguments.
pub(super) fn wrong_arity(name: &str) -> ServerError {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

/// Redis's reply to a command it does not know, quoting its first arguments like Redis.
pub(super) fn unknown_command(name: &[u8], args: &[&[u8]]) -> ServerError {
    let mut quoted = String::new();
    for arg in args {
        if quoted.len() >= 128 {
            break;
        }
        let room = 128 - quoted.len();
        let text = String::from_utf8_lossy(arg);
        quoted.push('\'');
        quoted.extend(text.chars().scan(0, |used, c| {
            *used += c.len_utf8();
            (*used <= room).then_some(c)
        }));
        quoted.push_str("' ");
    }
    let name = String::from_utf8_lossy(name);
    let name: String = name.chars().take(128).collect();
    error(&format!(
        "ERR unknown command '{name}', with args beginning with: {quoted}"
    ))
}

/// An integer as Redis's `string2ll` reads it: an optional `-`, no `+`, no leading zeros, no
/// spaces, within `i64`.
pub(super) fn parse_int(bytes: &[u8]) -> Option<i64> {
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        value = value
            .checked_mul(10)?
            .checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

/// An integer argument, or Redis's error for a malformed one.
pub(super) fn int_arg(bytes: &[u8]) -> Result<i64, ServerError> {
    parse_int(bytes).ok_or_else(|| error(NOT_AN_INTEGER))
}

/// A float as Redis's `string2d` reads it (`strtod` over the whole argument): `inf`, `+inf`
/// and `-inf` are accepted; NaN, leading spaces, overflow and underflow are not.
pub(super) fn parse_float(bytes: &[u8]) -> Option<f64> {
    let value = parse_float_lenient(bytes)?;
    let text = std::str::from_utf8(bytes).ok()?.to_ascii_lowercase();
    let unsigned = text.trim_start_matches(['+', '-']);
    if value.is_infinite() && unsigned != "inf" && unsigned != "infinity" {
        // strtod sets ERANGE on overflow, which Redis refuses.
        return None;
    }
    let mantissa = unsigned.split('e').next().unwrap_or_default();
    if value == 0.0 && mantissa.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        // ...and on underflow to zero.
        return None;
    }
    Some(value)
}

/// A float as `strtod` reads it where Redis does not check for overflow (range bounds).
fn parse_float_lenient(bytes: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(bytes).ok()?;
    if text.starts_with(|c: char| c.is_ascii_whitespace()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| !value.is_nan())
}

/// Parses `ZRANGEBYSCORE`-style bounds (`5`, `(5`, `-inf`, `+inf`) into an included range,
/// or Redis's error when either is not a float.
pub(super) fn score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, ServerError> {
    let invalid = || error("ERR min or max is not a float");
    let (min_exclusive, min) = split_exclusive(min);
    let (max_exclusive, max) = split_exclusive(max);
    let mut min = parse_float_lenient(min).ok_or_else(invalid)?;
    let mut max = parse_float_lenient(max).ok_or_else(invalid)?;
    if min_exclusive {
        // Nothing is above +inf: an empty range, as min > max.
        min = if min == f64::INFINITY {
            f64::NAN
        } else {
            min.next_up()
        };
    }
    if max_exclusive {
        max = if max == f64::NEG_INFINITY {
            f64::NAN
        } else {
            max.next_down()
        };
    }
    Ok(ScoreRange { min, max })
}

fn split_exclusive(bound: &[u8]) -> (bool, &[u8]) {
    match bound.split_first() {
        Some((b'(', rest)) => (true, rest),
        _ => (false, bound),
    }
}

/// A score as Redis 7.0 writes it in replies (`%.17g`): `1`, `0.5`, `1e+20`, `inf`.
pub(super) fn format_score(value: f64) -> Vec<u8> {
    if value.is_infinite() {
        return if value > 0.0 {
            b"inf".to_vec()
        } else {
            b"-inf".to_vec()
        };
    }
    if value == 0.0 {
        // Stored scores are never -0, but ZADD INCR answers with the score it computed.
        return if value.is_sign_negative() {
            b"-0".to_vec()
        } else {
            b"0".to_vec()
        };
    }
    // 17 significant digits, then %g's choice: scientific when the exponent is below -4 or
    // at least the precision, fixed otherwise; trailing zeros dropped either way.
    let scientific = format!("{value:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let text = if !(-4..17).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!(
            "{}e{sign}{:02}",
            trim_fraction(mantissa),
            exponent.unsigned_abs()
        )
    } else {
        let decimals = usize::try_from(16 - exponent).unwrap_or(0);
        trim_fraction(&format!("{value:.decimals$}")).to_owned()
    };
    text.into_bytes()
}

fn trim_fraction(number: &str) -> &str {
    if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    }
}

/// A bulk string reply.
pub(super) fn bulk(bytes: impl Into<Vec<u8>>) -> Value {
    Value::BulkString(bytes.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_int(b"0"), Some(0));
        assert_eq!(parse_int(b"-12"), Some(-12));
        assert_eq!(parse_int(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_int(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [
            &b"01"[..],
            b"+1",
            b"-0",
            b" 1",
            b"1 ",
            b"",
            b"-",
            b"1.0",
            b"9223372036854775808",
        ] {
            assert_eq!(parse_int(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn floats_parse_like_string2d() {
        assert_eq!(parse_float(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_float(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_float(b"1.5"), Some(1.5));
        assert_eq!(parse_float(b"1e3"), Some(1000.0));
        assert_eq!(parse_float(b"0"), Some(0.0));
        for bad in [&b"nan"[..], b"abc", b" 1", b"1e400", b"1e-400", b""] {
            assert_eq!(parse_float(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn scores_are_written_like_redis_7_0() {
        // Each pair was read back from redis-server 7.0.15 with ZADD then ZSCORE.
        for (score, text) in [
            (1.0, "1"),
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (123.456, "123.456"),
            (0.0001, "0.0001"),
            (1e-5, "1.0000000000000001e-05"),
            (1e-7, "9.9999999999999995e-08"),
            (1e17, "1e+17"),
            (1e20, "1e+20"),
            (1e23, "9.9999999999999992e+22"),
            (123_456_789_012_345_678.0, "1.2345678901234568e+17"),
            (9_007_199_254_740_993.0, "9007199254740992"),
            (-2.0, "-2"),
            (-0.0, "-0"),
            (f64::INFINITY, "inf"),
            (f64::NEG_INFINITY, "-inf"),
        ] {
            assert_eq!(String::from_utf8(format_score(score)).expect("ascii"), text);
        }
    }

    #[test]
    fn exclusive_bounds_exclude_their_score() {
        let range = score_range(b"(1", b"(+inf").expect("valid bounds");
        assert_eq!(range.min, 1.0_f64.next_up());
        assert_eq!(range.max, f64::MAX);
        let empty = score_range(b"(+inf", b"+inf").expect("valid bounds");
        assert!(empty.min.is_nan());
        assert!(score_range(b"a", b"1").is_err());
    }

    #[test]
    fn errors_keep_their_code() {
        assert_eq!(error(WRONGTYPE).code(), "WRONGTYPE");
        assert_eq!(error(OOM).code(), "OOM");
        let unknown = unknown_command(b"foo", &[b"a", b"b"]);
        assert_eq!(unknown.code(), "ERR");
        assert_eq!(
            unknown.details(),
            Some("unknown command 'foo', with args beginning with: 'a' 'b' ")
        );
    }
}
