//! Parsers for the text the kernel and numactl users speak: sysfs lists ("0-3,8-11"),
//! node `distance` rows, and libnuma's node syntax ("all", "!2", "+0-1"). None of them panics.

use core::fmt;

use crate::node::{IdSet, NodeId, NodeMask, SetMember};

/// What went wrong while parsing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseErrorKind {
    /// The text was empty where something was required.
    Empty,
    /// A number was expected.
    ExpectedNumber,
    /// A number does not fit (beyond the set's capacity, or a distance above 255).
    NumberTooLarge,
    /// A range whose end is below its start ("5-2").
    ReversedRange,
    /// A character that does not belong here.
    UnexpectedChar(char),
    /// `!` is only allowed at the very start of a node list.
    MisplacedInversion,
    /// The node is not among the nodes this process may use.
    NodeNotAvailable(u32),
    /// More entries than the output buffer holds.
    TooManyEntries,
}

/// A parse failure: what, and at which byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseError {
    /// What went wrong.
    pub kind: ParseErrorKind,
    /// Byte offset into the input where it went wrong.
    pub pos: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "parse error at byte {}: ", self.pos)?;
        match self.kind {
            ParseErrorKind::Empty => write!(f, "empty input"),
            ParseErrorKind::ExpectedNumber => write!(f, "expected a number"),
            ParseErrorKind::NumberTooLarge => write!(f, "number too large"),
            ParseErrorKind::ReversedRange => write!(f, "range end is below its start"),
            ParseErrorKind::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            ParseErrorKind::MisplacedInversion => {
                write!(f, "'!' may only start the list (it inverts the whole list)")
            }
            ParseErrorKind::NodeNotAvailable(n) => {
                write!(f, "node {n} is not available to this process")
            }
            ParseErrorKind::TooManyEntries => write!(f, "more entries than fit"),
        }
    }
}

fn err(kind: ParseErrorKind, pos: usize) -> ParseError {
    ParseError { kind, pos }
}

/// A cursor over ASCII bytes.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn unexpected(&self) -> ParseError {
        match self.peek() {
            Some(c) => err(ParseErrorKind::UnexpectedChar(c as char), self.pos),
            None => err(ParseErrorKind::ExpectedNumber, self.pos),
        }
    }

    /// A decimal number, at most `max`.
    fn decimal(&mut self, max: u64) -> Result<u64, ParseError> {
        self.number(10, max)
    }

    /// A number in `radix`, at most `max`; at least one digit.
    fn number(&mut self, radix: u32, max: u64) -> Result<u64, ParseError> {
        let start = self.pos;
        let mut v: u64 = 0;
        while let Some(d) = self.peek().and_then(|c| (c as char).to_digit(radix)) {
            v = v
                .checked_mul(radix as u64)
                .and_then(|v| v.checked_add(d as u64))
                .filter(|&v| v <= max)
                .ok_or(err(ParseErrorKind::NumberTooLarge, start))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.unexpected());
        }
        Ok(v)
    }

    /// A number as C's `strtoul(s, &end, 0)` reads it: `0x` hex, leading-`0` octal, else decimal.
    fn c_number(&mut self, max: u64) -> Result<u64, ParseError> {
        let rest = &self.b[self.pos..];
        if rest.len() > 2
            && rest[0] == b'0'
            && (rest[1] | 0x20) == b'x'
            && rest[2].is_ascii_hexdigit()
        {
            self.pos += 2;
            self.number(16, max)
        } else if rest.len() > 1 && rest[0] == b'0' && rest[1].is_ascii_digit() {
            self.number(8, max)
        } else {
            self.number(10, max)
        }
    }
}

/// Parses the sysfs list syntax (`"0-3,8-11"`, `""`, trailing newline allowed) into a set.
///
/// Used for `online`, `possible`, `has_memory`, `nodeN/cpulist`, `Cpus_allowed_list`.
///
/// # Errors
/// A [`ParseError`] for a character that does not belong, a missing number, a reversed
/// range, or an id beyond the set's capacity.
pub fn parse_list<I: SetMember, const W: usize>(text: &str) -> Result<IdSet<I, W>, ParseError> {
    let trimmed = text.trim_end_matches(['\n', ' ', '\t']);
    let mut set = IdSet::new();
    if trimmed.is_empty() {
        return Ok(set);
    }
    let max = IdSet::<I, W>::CAPACITY as u64 - 1;
    let mut c = Cursor {
        b: trimmed.as_bytes(),
        pos: 0,
    };
    loop {
        let start = c.pos;
        let a = c.decimal(max)?;
        let b = if c.eat(b'-') { c.decimal(max)? } else { a };
        if b < a {
            return Err(err(ParseErrorKind::ReversedRange, start));
        }
        for i in a..=b {
            set.add(I::from_index(i as u32));
        }
        match c.peek() {
            None => return Ok(set),
            Some(b',') => c.pos += 1,
            Some(_) => return Err(c.unexpected()),
        }
    }
}

/// Parses one `nodeN/distance` row ("10 21 31\n") into `out`; returns how many entries.
///
/// The row is ordered by the *online* node list, not by node id.
///
/// # Errors
/// A [`ParseError`] for an empty row, an entry that is not a number of at most 255, or
/// more entries than `out` holds.
pub fn parse_distance_row(text: &str, out: &mut [u8]) -> Result<usize, ParseError> {
    let mut n = 0;
    let mut c = Cursor {
        b: text.as_bytes(),
        pos: 0,
    };
    loop {
        while matches!(c.peek(), Some(b' ' | b'\t' | b'\n')) {
            c.pos += 1;
        }
        if c.peek().is_none() {
            break;
        }
        let pos = c.pos;
        let d = c.decimal(255)?;
        if !matches!(c.peek(), None | Some(b' ' | b'\t' | b'\n')) {
            return Err(c.unexpected());
        }
        let slot = out
            .get_mut(n)
            .ok_or(err(ParseErrorKind::TooManyEntries, pos))?;
        *slot = d as u8;
        n += 1;
    }
    if n == 0 {
        return Err(err(ParseErrorKind::Empty, 0));
    }
    Ok(n)
}

/// Parses libnuma/numactl node syntax the way `numa_parse_nodestring` does.
///
/// - lists and ranges: `"0-3,8"`; numbers as C's `strtoul` base 0 reads them (`0x10`, `010`);
/// - `"all"`: every node in `available` (alone, as in libnuma);
/// - a leading `!` inverts the whole list within `available` (`"!2"`, `"!0-1"`);
///   a `!` anywhere else (`"0-3,!2"`) is an error, as in libnuma;
/// - a leading `+` makes ids relative to `available` (`"+0-1"`: its first two nodes).
///
/// `available` is the set the user may name (libnuma: the allowed memory nodes): a single
/// id or a range end outside it is an error; a range only takes its members that are in it.
/// Deviation from libnuma: inversion is within `available`, not `0..configured_nodes`, so a
/// sparse machine never gets absent ids.
///
/// # Errors
/// A [`ParseError`] for empty or malformed text, a misplaced `!`, or a node outside
/// `available` ([`ParseErrorKind::NodeNotAvailable`]).
pub fn parse_node_spec(text: &str, available: &NodeMask) -> Result<NodeMask, ParseError> {
    let mut c = Cursor {
        b: text.as_bytes(),
        pos: 0,
    };
    if text.is_empty() {
        return Err(err(ParseErrorKind::Empty, 0));
    }
    let invert = c.eat(b'!');
    let relative = c.eat(b'+');
    let mut mask = NodeMask::new();
    if &c.b[c.pos..] == b"all" {
        mask = *available;
    } else {
        loop {
            let a = node_number(&mut c, available, relative)?;
            mask.add(a);
            if c.eat(b'-') {
                let b = node_number(&mut c, available, relative)?;
                for i in a.get()..=b.get() {
                    if available.contains(NodeId::new(i)) {
                        mask.add(NodeId::new(i));
                    }
                }
            }
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.pos += 1;
                    if c.peek() == Some(b'!') {
                        return Err(err(ParseErrorKind::MisplacedInversion, c.pos));
                    }
                }
                Some(b'!') => return Err(err(ParseErrorKind::MisplacedInversion, c.pos)),
                Some(_) => return Err(c.unexpected()),
            }
        }
    }
    Ok(if invert {
        available.difference(&mask)
    } else {
        mask
    })
}

fn node_number(
    c: &mut Cursor<'_>,
    available: &NodeMask,
    relative: bool,
) -> Result<NodeId, ParseError> {
    let pos = c.pos;
    let n = c.c_number(u32::MAX as u64)? as u32;
    let id = if relative {
        available
            .nth(n as usize)
            .ok_or(err(ParseErrorKind::NodeNotAvailable(n), pos))?
    } else {
        NodeId::new(n)
    };
    if !available.contains(id) {
        return Err(err(ParseErrorKind::NodeNotAvailable(id.get()), pos));
    }
    Ok(id)
}

/// Parses a `kB` value from a meminfo line such as `"Node 0 MemFree:   3822944 kB"`,
/// looking for `key` (e.g. `"MemFree:"`); returns bytes.
pub fn parse_meminfo_kb(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = &line[line.find(key)? + key.len()..];
        let mut c = Cursor {
            b: rest.trim_start().as_bytes(),
            pos: 0,
        };
        let kb = c.decimal(u64::MAX / 1024).ok()?;
        Some(kb * 1024)
    })
}

/// A `kB` field of meminfo text, read strictly: `None` when no line holds `key`, else the
/// value in bytes, or the error for a value that is not `<decimal> kB` (the first line
/// holding `key` decides). [`parse_meminfo_kb`] is the lenient form.
pub fn meminfo_field(text: &str, key: &str) -> Option<Result<u64, ParseError>> {
    let mut offset = 0;
    for line in text.split('\n') {
        if let Some(at) = line.find(key) {
            let rest = &line[at + key.len()..];
            let value = rest.trim_start();
            let base = offset + at + key.len() + (rest.len() - value.len());
            let mut c = Cursor {
                b: value.as_bytes(),
                pos: 0,
            };
            let shift = |e: ParseError| ParseError {
                pos: base + e.pos,
                ..e
            };
            return Some(c.decimal(u64::MAX / 1024).map_err(shift).and_then(|kb| {
                let tail = value[c.pos..].trim();
                match tail.chars().next() {
                    _ if tail == "kB" => Ok(kb * 1024),
                    Some(ch) => Err(shift(err(ParseErrorKind::UnexpectedChar(ch), c.pos))),
                    None => Err(shift(err(ParseErrorKind::Empty, c.pos))),
                }
            }));
        }
        offset += line.len() + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::node::CpuSet;
    use proptest::prelude::*;
    use std::format;
    use std::string::String;

    fn nodes(ids: &[u32]) -> NodeMask {
        ids.iter().copied().map(NodeId::new).collect()
    }

    #[test]
    fn sysfs_lists() {
        assert_eq!(
            parse_list::<NodeId, 16>("0-3,8-11\n").unwrap(),
            nodes(&[0, 1, 2, 3, 8, 9, 10, 11])
        );
        assert_eq!(parse_list::<NodeId, 16>("").unwrap(), NodeMask::new());
        assert_eq!(parse_list::<NodeId, 16>("\n").unwrap(), NodeMask::new());
        assert_eq!(parse_list::<NodeId, 16>("5").unwrap(), nodes(&[5]));
        let c: CpuSet = parse_list("0-1\n").unwrap();
        assert_eq!(c.count(), 2);
    }

    #[test]
    fn sysfs_list_errors_say_what_and_where() {
        let e = parse_list::<NodeId, 16>("0-3,x").unwrap_err();
        assert_eq!(
            e,
            ParseError {
                kind: ParseErrorKind::UnexpectedChar('x'),
                pos: 4
            }
        );
        let e = parse_list::<NodeId, 16>("5-2").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::ReversedRange);
        let e = parse_list::<NodeId, 16>("1024").unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::NumberTooLarge);
        let e = parse_list::<NodeId, 16>("1,").unwrap_err();
        assert_eq!(
            e,
            ParseError {
                kind: ParseErrorKind::ExpectedNumber,
                pos: 2
            }
        );
        assert!(format!("{e}").contains("byte 2"));
    }

    #[test]
    fn distance_rows() {
        let mut out = [0u8; 4];
        assert_eq!(parse_distance_row("10 21 31 41\n", &mut out), Ok(4));
        assert_eq!(out, [10, 21, 31, 41]);
        assert_eq!(
            parse_distance_row("10 21 31 41 51", &mut out)
                .unwrap_err()
                .kind,
            ParseErrorKind::TooManyEntries
        );
        assert_eq!(
            parse_distance_row("10 256", &mut out).unwrap_err().kind,
            ParseErrorKind::NumberTooLarge
        );
        assert_eq!(
            parse_distance_row("", &mut out).unwrap_err().kind,
            ParseErrorKind::Empty
        );
        assert_eq!(
            parse_distance_row("10,21", &mut out).unwrap_err().kind,
            ParseErrorKind::UnexpectedChar(',')
        );
    }

    #[test]
    fn libnuma_node_syntax() {
        let avail = nodes(&[0, 1, 2, 3]);
        assert_eq!(parse_node_spec("all", &avail).unwrap(), avail);
        assert_eq!(parse_node_spec("!2", &avail).unwrap(), nodes(&[0, 1, 3]));
        assert_eq!(parse_node_spec("!0-1", &avail).unwrap(), nodes(&[2, 3]));
        assert_eq!(
            parse_node_spec("+0-1", &nodes(&[2, 3, 5])).unwrap(),
            nodes(&[2, 3])
        );
        assert_eq!(parse_node_spec("1,3", &avail).unwrap(), nodes(&[1, 3]));
        assert_eq!(parse_node_spec("0x2", &avail).unwrap(), nodes(&[2]));
        assert_eq!(
            parse_node_spec("0-3,!2", &avail).unwrap_err().kind,
            ParseErrorKind::MisplacedInversion
        );
        assert_eq!(
            parse_node_spec("", &avail).unwrap_err().kind,
            ParseErrorKind::Empty
        );
        assert_eq!(
            parse_node_spec("7", &avail).unwrap_err().kind,
            ParseErrorKind::NodeNotAvailable(7)
        );
        assert_eq!(
            parse_node_spec("+4", &avail).unwrap_err().kind,
            ParseErrorKind::NodeNotAvailable(4)
        );
        assert_eq!(
            parse_node_spec("all,1", &avail).unwrap_err().kind,
            ParseErrorKind::UnexpectedChar('a')
        );
        // Sparse machine {0, 2}: a range takes only the nodes that exist.
        assert_eq!(
            parse_node_spec("0-2", &nodes(&[0, 2])).unwrap(),
            nodes(&[0, 2])
        );
        assert_eq!(
            parse_node_spec("1", &nodes(&[0, 2])).unwrap_err().kind,
            ParseErrorKind::NodeNotAvailable(1)
        );
    }

    #[test]
    fn meminfo_fields_are_strict() {
        let text = "Node 0 MemTotal:       3893024 kB\nNode 0 MemFree: zz kB\nNode 0 X: 5 MB\n";
        assert_eq!(meminfo_field(text, "MemTotal:"), Some(Ok(3893024 * 1024)));
        assert_eq!(meminfo_field(text, "Nope:"), None);
        let e = meminfo_field(text, "MemFree:").unwrap().unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UnexpectedChar('z'));
        assert_eq!(&text[e.pos..e.pos + 2], "zz");
        let e = meminfo_field(text, "X:").unwrap().unwrap_err();
        assert_eq!(e.kind, ParseErrorKind::UnexpectedChar('M'));
        assert!(meminfo_field("MemTotal: 5", "MemTotal:").unwrap().is_err());
        assert!(
            meminfo_field("MemTotal: 99999999999999999999 kB", "MemTotal:")
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn meminfo_values() {
        let text = "Node 0 MemTotal:        3893024 kB\nNode 0 MemFree:         3822944 kB\n";
        assert_eq!(parse_meminfo_kb(text, "MemFree:"), Some(3822944 * 1024));
        assert_eq!(parse_meminfo_kb(text, "MemTotal:"), Some(3893024 * 1024));
        assert_eq!(parse_meminfo_kb(text, "Nope:"), None);
    }

    proptest! {
        #[test]
        fn list_round_trip(ids in proptest::collection::vec(0u32..1024, 0..60)) {
            let m = nodes(&ids);
            let text = format!("{m}\n");
            prop_assert_eq!(parse_list::<NodeId, 16>(&text).unwrap(), m);
        }

        #[test]
        fn parsers_never_panic(s in ".{0,40}", b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let lossy = String::from_utf8_lossy(&b);
            for t in [s.as_str(), &*lossy] {
                let _ = parse_list::<NodeId, 16>(t);
                let _ = parse_list::<usize, 64>(t);
                let _ = parse_distance_row(t, &mut [0u8; 8]);
                let _ = parse_node_spec(t, &nodes(&[0, 1, 2, 3]));
                let _ = parse_meminfo_kb(t, "MemFree:");
            }
        }

        #[test]
        fn list_like_text_never_panics(s in "[0-9,\\-!+x\n ]{0,30}") {
            let _ = parse_list::<NodeId, 16>(&s);
            let _ = parse_node_spec(&s, &nodes(&[0, 2, 5]));
        }
    }
}
