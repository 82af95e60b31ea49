//! The `Range` header of media downloads (RFC 9110 §14): one byte range, so video players
//! can seek and browsers that insist on ranges (Safari) can play.

/// What a `Range` header asks of an object of a known size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole object: no header, a unit other than bytes, several ranges or a header
    /// that does not parse (a server may ignore such a header and answer 200).
    Whole,
    /// Bytes `first..=last` (206).
    Part {
        /// First byte.
        first: u64,
        /// Last byte, included.
        last: u64,
    },
    /// No byte of the range exists (416).
    Unsatisfiable,
}

/// Reads `header` (the `Range` value, if any) for an object of `size` bytes.
pub fn byte_range(header: Option<&str>, size: u64) -> ByteRange {
    let Some(spec) = header.and_then(|value| value.trim().strip_prefix("bytes=")) else {
        return ByteRange::Whole;
    };
    if spec.contains(',') {
        return ByteRange::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return ByteRange::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let parse = |text: &str| text.parse::<u64>().ok();
    match (start.is_empty(), end.is_empty()) {
        // `bytes=-N`: the last N bytes.
        (true, false) => match parse(end) {
            Some(0) => ByteRange::Unsatisfiable,
            Some(suffix) if size > 0 => ByteRange::Part {
                first: size.saturating_sub(suffix),
                last: size - 1,
            },
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        // `bytes=N-`: from N to the end.
        (false, true) => match parse(start) {
            Some(first) if first < size => ByteRange::Part {
                first,
                last: size - 1,
            },
            Some(_) => ByteRange::Unsatisfiable,
            None => ByteRange::Whole,
        },
        // `bytes=N-M`: M past the end means the end.
        (false, false) => match (parse(start), parse(end)) {
            (Some(first), Some(last)) if first > last => ByteRange::Whole,
            (Some(first), Some(last)) if first < size => ByteRange::Part {
                first,
                last: last.min(size - 1),
            },
            (Some(_), Some(_)) => ByteRange::Unsatisfiable,
            _ => ByteRange::Whole,
        },
        (true, true) => ByteRange::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_byte_ranges_are_read_as_rfc_9110_says() {
        assert_eq!(byte_range(None, 10), ByteRange::Whole);
        assert_eq!(
            byte_range(Some("bytes=2-5"), 10),
            ByteRange::Part { first: 2, last: 5 }
        );
        assert_eq!(
            byte_range(Some("bytes=4-"), 10),
            ByteRange::Part { first: 4, last: 9 }
        );
        assert_eq!(
            byte_range(Some("bytes=-3"), 10),
            ByteRange::Part { first: 7, last: 9 }
        );
        assert_eq!(
            byte_range(Some("bytes=-30"), 10),
            ByteRange::Part { first: 0, last: 9 }
        );
        assert_eq!(
            byte_range(Some("bytes=8-100"), 10),
            ByteRange::Part { first: 8, last: 9 }
        );
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable_and_odd_ones_serve_everything() {
        assert_eq!(byte_range(Some("bytes=10-"), 10), ByteRange::Unsatisfiable);
        assert_eq!(
            byte_range(Some("bytes=12-20"), 10),
            ByteRange::Unsatisfiable
        );
        assert_eq!(byte_range(Some("bytes=-0"), 10), ByteRange::Unsatisfiable);
        assert_eq!(byte_range(Some("bytes=0-1,4-5"), 10), ByteRange::Whole);
        assert_eq!(byte_range(Some("items=0-1"), 10), ByteRange::Whole);
        assert_eq!(byte_range(Some("bytes=5-2"), 10), ByteRange::Whole);
        assert_eq!(byte_range(Some("bytes=x-2"), 10), ByteRange::Whole);
        assert_eq!(byte_range(Some("bytes=-"), 10), ByteRange::Whole);
    }
}
