//! Byte sizes as people and sysfs write them: `4096`, `64K`, `256M`, `1GiB`, and the
//! kernel's cache sizes (`/sys/devices/system/cpu/cpu0/cache/index3/size`: `"32768K\n"`).
//! Suffixes are binary (K = 1024) and case-insensitive; `B`, `iB` may follow them.

use crate::parse::{ParseError, ParseErrorKind};

/// Parses a byte size: decimal digits, then optionally one of `K`, `M`, `G`, `T` (powers
/// of 1024, either case) followed by an optional `B` or `iB`, or a bare `B`. Surrounding
/// ASCII whitespace (the newline of a sysfs file) is ignored.
///
/// ```
/// use numaperf_core::byte_size::parse_byte_size;
/// assert_eq!(parse_byte_size("32768K\n"), Ok(32 << 20));
/// assert_eq!(parse_byte_size("256MiB"), Ok(256 << 20));
/// assert_eq!(parse_byte_size("4096"), Ok(4096));
/// assert!(parse_byte_size("12 parsecs").is_err());
/// ```
///
/// # Errors
/// [`ParseErrorKind::Empty`] for blank text, [`ParseErrorKind::ExpectedNumber`] when it
/// does not start with a digit, [`ParseErrorKind::NumberTooLarge`] beyond `u64`, and
/// [`ParseErrorKind::UnexpectedChar`] for anything else after the number.
pub fn parse_byte_size(text: &str) -> Result<u64, ParseError> {
    let lead = text.len() - text.trim_start().len();
    let t = text.trim();
    if t.is_empty() {
        return Err(ParseError {
            kind: ParseErrorKind::Empty,
            pos: 0,
        });
    }
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(ParseError {
            kind: ParseErrorKind::ExpectedNumber,
            pos: lead,
        });
    }
    let too_large = ParseError {
        kind: ParseErrorKind::NumberTooLarge,
        pos: lead,
    };
    let mut n: u64 = 0;
    for b in t[..digits].bytes() {
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(too_large)?;
    }
    let suffix = &t[digits..];
    let shift = match suffix.as_bytes().first().map(u8::to_ascii_uppercase) {
        None => return Ok(n),
        Some(b'K') => 10,
        Some(b'M') => 20,
        Some(b'G') => 30,
        Some(b'T') => 40,
        Some(b'B') if suffix.len() == 1 => return Ok(n),
        Some(_) => return Err(unexpected(suffix, lead + digits)),
    };
    match &suffix[1..] {
        "" | "B" | "b" | "iB" | "ib" | "IB" | "Ib" => {}
        rest => return Err(unexpected(rest, lead + digits + 1)),
    }
    if n.leading_zeros() < shift {
        return Err(too_large);
    }
    Ok(n << shift)
}

/// The error for the first character of `rest` (at byte `pos` of the input).
fn unexpected(rest: &str, pos: usize) -> ParseError {
    ParseError {
        kind: ParseErrorKind::UnexpectedChar(rest.chars().next().unwrap_or(' ')),
        pos,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::format;

    #[test]
    fn sysfs_cache_sizes() {
        assert_eq!(parse_byte_size("32K\n"), Ok(32 * 1024));
        assert_eq!(parse_byte_size("1024K\n"), Ok(1 << 20));
        assert_eq!(parse_byte_size("32768K\n"), Ok(32 << 20));
    }

    #[test]
    fn suffixes() {
        assert_eq!(parse_byte_size("1g"), Ok(1 << 30));
        assert_eq!(parse_byte_size("2GB"), Ok(2 << 30));
        assert_eq!(parse_byte_size("3TiB"), Ok(3 << 40));
        assert_eq!(parse_byte_size("512B"), Ok(512));
        assert_eq!(parse_byte_size(" 7 "), Ok(7));
    }

    #[test]
    fn refusals() {
        let kind = |s| parse_byte_size(s).map_err(|e| e.kind);
        assert_eq!(kind(""), Err(ParseErrorKind::Empty));
        assert_eq!(kind("  \n"), Err(ParseErrorKind::Empty));
        assert_eq!(kind("K"), Err(ParseErrorKind::ExpectedNumber));
        assert_eq!(kind("-1"), Err(ParseErrorKind::ExpectedNumber));
        assert_eq!(kind("1X"), Err(ParseErrorKind::UnexpectedChar('X')));
        assert_eq!(kind("1KX"), Err(ParseErrorKind::UnexpectedChar('X')));
        assert_eq!(kind("1 K"), Err(ParseErrorKind::UnexpectedChar(' ')));
        assert_eq!(kind("1BB"), Err(ParseErrorKind::UnexpectedChar('B')));
        assert_eq!(
            kind("18446744073709551616"),
            Err(ParseErrorKind::NumberTooLarge)
        );
        assert_eq!(kind("16777216T"), Err(ParseErrorKind::NumberTooLarge));
        assert_eq!(parse_byte_size("16777215T"), Ok(16_777_215u64 << 40));
    }

    proptest! {
        #[test]
        fn round_trip(n in 0u64..(1 << 23), unit in 0usize..5, tail in 0usize..3) {
            let letters = ["", "K", "m", "G", "t"];
            let tails = ["", "B", "iB"];
            let text = if unit == 0 {
                format!("{n}{}", ["", "B", ""][tail])
            } else {
                format!("{n}{}{}", letters[unit], tails[tail])
            };
            prop_assert_eq!(parse_byte_size(&text), Ok(n << (10 * unit as u32)));
        }

        #[test]
        fn never_panics(s in ".{0,24}") {
            let _ = parse_byte_size(&s);
        }
    }
}
