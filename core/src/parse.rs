//! Parsers for the text the kernel and numactl users speak: sysfs lists ("0-3,8-11"),
//! node `distance` rows, libnuma's node syntax ("all", "!2", "+0-1"), numactl's device forms
//! ("netdev:eth0", "pci:0000:3b:00.0") and the PCI device files. None of them panics.

use core::fmt;

use crate::device::{DevNumber, PciAddress};
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
    /// `word:` before a colon that is none of numactl's device forms (`netdev:`,
    /// `block:`, `pci:`, `file:`).
    UnknownDeviceForm,
    /// A device name longer than the kernel allows (this many bytes).
    NameTooLong(u8),
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
            ParseErrorKind::UnknownDeviceForm => {
                write!(f, "not a device form (netdev:, block:, pci: or file:)")
            }
            ParseErrorKind::NameTooLong(max) => write!(f, "name longer than {max} bytes"),
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

/// Parses libnuma/numactl node syntax the way libnuma's `numa_parse_nodestring` does.
///
/// The syntax (what `numactl --membind`, `--interleave`, `migratepages` take):
///
/// - a comma-separated list of node ids and ranges: `"0-3,8"`; a range takes only its
///   members that are in `available`, but both of its ends must be in it;
/// - numbers as C's `strtoul` base 0 reads them: decimal, `0x10` hex, `010` octal;
/// - whitespace (space, tab, newline, `\v`, `\f`, `\r`) is allowed right before a number
///   and nowhere else (`"0, 1"`, `" 0"`, `"0- 1"`, but not `"0 ,1"` or `"0 "`);
/// - `"all"`: every node in `available`; as the whole list, after a leading `!`/`+`, or as
///   the last entry (`"0,all"` is `"all"`), never followed by anything;
/// - a leading `!` inverts the whole list within `available` (`"!2"`, `"!0-1"`); a `!`
///   anywhere else (`"0-3,!2"`) is an error, as in libnuma;
/// - a leading `+` makes ids relative to `available` (`"+0-1"`: its first two nodes);
/// - the empty string is the empty set (callers that need a node reject an empty mask).
///
/// `available` is the set the user may name (libnuma: the allowed memory nodes): a single
/// id or a range end outside it is an error.
///
/// Deviations from libnuma 2.0.16, all stricter or safer: inversion is within
/// `available`, not `0..configured_nodes`, so a sparse machine never gets absent ids; a
/// sign before a number (`"0,+1"`, `"-1"`) is an error (`strtoul` would accept it, and
/// negate); an id of 2^32 or more is [`ParseErrorKind::NumberTooLarge`] (libnuma
/// truncates it to 32 bits and may name another node). numactl's device forms
/// (`netdev:eth0`) are read by `DeviceMap::nodes_for`, not here.
///
/// # Errors
/// A [`ParseError`] for malformed text, a misplaced `!`, a sign, a number of 2^32 or more,
/// or a node outside `available` ([`ParseErrorKind::NodeNotAvailable`]).
pub fn parse_node_spec(text: &str, available: &NodeMask) -> Result<NodeMask, ParseError> {
    let mut c = Cursor {
        b: text.as_bytes(),
        pos: 0,
    };
    if text.is_empty() {
        return Ok(NodeMask::new());
    }
    let invert = c.eat(b'!');
    let relative = c.eat(b'+');
    let mut mask = NodeMask::new();
    loop {
        if &c.b[c.pos..] == b"all" {
            mask = available.union(&mask);
            break;
        }
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
    Ok(if invert {
        available.difference(&mask)
    } else {
        mask
    })
}

/// C's `isspace` in the C locale: what `strtoul` skips before a number.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn node_number(
    c: &mut Cursor<'_>,
    available: &NodeMask,
    relative: bool,
) -> Result<NodeId, ParseError> {
    while c.peek().is_some_and(is_c_space) {
        c.pos += 1;
    }
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

/// One of numactl's device forms, which stand for the nodes near a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSpec<'a> {
    /// `netdev:NAME`: the network interface `NAME`.
    NetDev(&'a str),
    /// `block:NAME`: the block device (disk or partition) `NAME`.
    Block(&'a str),
    /// `pci:[DOMAIN:]BUS:SLOT[.FUNCTION]`: a PCI function.
    Pci(PciAddress),
    /// `file:PATH`: the block device holding the filesystem of `PATH` (or `PATH` itself
    /// when it is a block device node).
    File(&'a str),
}

/// The longest interface name Linux takes (`IFNAMSIZ` - 1).
const MAX_NETDEV: usize = 15;
/// The longest disk name Linux takes (`DISK_NAME_LEN` - 1).
const MAX_BLOCK: usize = 31;

/// Reads numactl's device forms: `netdev:eth0`, `block:nvme0n1`, `pci:0000:3b:00.0`,
/// `file:/data`. `Ok(None)`: the text is no device form (a node list such as `"0-3"`).
///
/// A form is a word of ASCII letters before the first `:`. Names follow the kernel's
/// rules: not empty, not `.` or `..`, no `/`, no whitespace, interfaces at most 15 bytes
/// and no `:`, disks at most 31 bytes (numactl also refuses `.`, which VLAN interfaces
/// such as `eth0.100` have; this does not). `pci:` takes hex fields as numactl does:
/// the domain is optional (0), the function too (0). `ip:` (numactl's route lookup) is
/// not taken.
///
/// # Errors
/// [`ParseErrorKind::UnknownDeviceForm`] for another word, [`ParseErrorKind::Empty`] for
/// no name, [`ParseErrorKind::NameTooLong`], [`ParseErrorKind::UnexpectedChar`] at a
/// character a name may not hold, and the errors of [`parse_pci_address`] (positions
/// count from the start of `text`).
pub fn parse_device_spec(text: &str) -> Result<Option<DeviceSpec<'_>>, ParseError> {
    let Some((form, rest)) = text.split_once(':') else {
        return Ok(None);
    };
    if form.is_empty() || !form.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Ok(None);
    }
    let at = form.len() + 1;
    let shift = |e: ParseError| ParseError {
        pos: at + e.pos,
        ..e
    };
    Ok(Some(match form {
        "netdev" => DeviceSpec::NetDev(device_name(rest, MAX_NETDEV, true).map_err(shift)?),
        "block" => DeviceSpec::Block(device_name(rest, MAX_BLOCK, false).map_err(shift)?),
        "pci" => DeviceSpec::Pci(parse_pci_address(rest).map_err(shift)?),
        "file" if rest.is_empty() => return Err(err(ParseErrorKind::Empty, at)),
        "file" => DeviceSpec::File(rest),
        _ => return Err(err(ParseErrorKind::UnknownDeviceForm, 0)),
    }))
}

/// A device name as the kernel allows it (see [`parse_device_spec`]).
fn device_name(name: &str, max: usize, no_colon: bool) -> Result<&str, ParseError> {
    if name.is_empty() {
        return Err(err(ParseErrorKind::Empty, 0));
    }
    if name.len() > max {
        return Err(err(ParseErrorKind::NameTooLong(max as u8), max));
    }
    if let Some((i, c)) = name
        .char_indices()
        .find(|&(_, c)| c == '/' || c.is_whitespace() || (no_colon && c == ':'))
    {
        return Err(err(ParseErrorKind::UnexpectedChar(c), i));
    }
    if name == "." || name == ".." {
        return Err(err(ParseErrorKind::UnexpectedChar('.'), 0));
    }
    Ok(name)
}

/// Reads a PCI address: `DOMAIN:BUS:SLOT.FUNCTION` in hex (`0000:3b:00.0`), with the
/// domain or the function left out as numactl allows (`3b:00.0`, `0000:3b:00`, `3b:00`).
///
/// # Errors
/// A [`ParseError`]: a field that is not hex, a bus beyond `ff`, a slot beyond `1f`, a
/// function beyond 7, a domain beyond `ffffffff` ([`ParseErrorKind::NumberTooLarge`]),
/// or anything after the address.
pub fn parse_pci_address(text: &str) -> Result<PciAddress, ParseError> {
    let mut c = Cursor {
        b: text.as_bytes(),
        pos: 0,
    };
    if text.is_empty() {
        return Err(err(ParseErrorKind::Empty, 0));
    }
    let colons = text.bytes().filter(|&b| b == b':').count();
    let domain = if colons == 2 {
        let d = c.number(16, u32::MAX as u64)? as u32;
        if !c.eat(b':') {
            return Err(c.unexpected());
        }
        d
    } else {
        0
    };
    let bus = c.number(16, 0xff)? as u8;
    if !c.eat(b':') {
        return Err(c.unexpected());
    }
    let slot = c.number(16, 0x1f)? as u8;
    let function = if c.eat(b'.') {
        c.number(16, 7)? as u8
    } else {
        0
    };
    if c.peek().is_some() {
        return Err(c.unexpected());
    }
    // The fields were checked against the limits `new` checks.
    PciAddress::new(domain, bus, slot, function).ok_or(err(ParseErrorKind::NumberTooLarge, 0))
}

/// Reads a PCI `class` file (`"0x020000\n"`): the 24-bit class code.
///
/// # Errors
/// A [`ParseError`] for text that is not `0x` and at most six hex digits.
pub fn parse_pci_class(text: &str) -> Result<u32, ParseError> {
    let t = text.trim_end_matches('\n');
    let Some(hex) = t.strip_prefix("0x") else {
        return Err(Cursor {
            b: t.as_bytes(),
            pos: 0,
        }
        .unexpected());
    };
    let mut c = Cursor {
        b: hex.as_bytes(),
        pos: 0,
    };
    let shift = |e: ParseError| ParseError {
        pos: e.pos + 2,
        ..e
    };
    let code = c.number(16, 0xff_ffff).map_err(shift)? as u32;
    if c.peek().is_some() {
        return Err(shift(c.unexpected()));
    }
    Ok(code)
}

/// Reads a device's `numa_node` file (`"1\n"`): `None` for `-1`, the kernel's "no node"
/// (which is not node 0).
///
/// # Errors
/// A [`ParseError`] for text that is neither `-1` nor a node id of at most 1023.
pub fn parse_numa_node(text: &str) -> Result<Option<NodeId>, ParseError> {
    let t = text.trim_end_matches('\n');
    if t == "-1" {
        return Ok(None);
    }
    let mut c = Cursor {
        b: t.as_bytes(),
        pos: 0,
    };
    let n = c.decimal(crate::node::MAX_NUMNODES as u64 - 1)? as u32;
    if c.peek().is_some() {
        return Err(c.unexpected());
    }
    Ok(Some(NodeId::new(n)))
}

/// Reads a block device's `dev` file (`"259:0\n"`).
///
/// # Errors
/// A [`ParseError`] for text that is not `major:minor` in decimal, each at most
/// `u32::MAX`.
pub fn parse_dev_number(text: &str) -> Result<DevNumber, ParseError> {
    let mut c = Cursor {
        b: text.trim_end_matches('\n').as_bytes(),
        pos: 0,
    };
    let major = c.decimal(u32::MAX as u64)? as u32;
    if !c.eat(b':') {
        return Err(c.unexpected());
    }
    let minor = c.decimal(u32::MAX as u64)? as u32;
    if c.peek().is_some() {
        return Err(c.unexpected());
    }
    Ok(DevNumber { major, minor })
}

#[cfg(test)]
mod libnuma_model;

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
        // What libnuma accepts and an earlier version of this parser did not.
        assert_eq!(parse_node_spec("", &avail).unwrap(), NodeMask::new());
        assert_eq!(parse_node_spec("0, 1", &avail).unwrap(), nodes(&[0, 1]));
        assert_eq!(parse_node_spec(" 0", &avail).unwrap(), nodes(&[0]));
        assert_eq!(parse_node_spec("\t1-\n2", &avail).unwrap(), nodes(&[1, 2]));
        assert_eq!(parse_node_spec("0,all", &avail).unwrap(), avail);
        assert_eq!(parse_node_spec("!0,all", &avail).unwrap(), NodeMask::new());
        assert_eq!(parse_node_spec("!+all", &avail).unwrap(), NodeMask::new());
        // Whitespace only right before a number.
        for bad in ["0 ", "0 ,1", " all", "0, all", " !1", "! 0-"] {
            assert!(parse_node_spec(bad, &avail).is_err(), "{bad:?}");
        }
        // Signs and ids of 2^32 or more stay errors (libnuma negates or truncates them).
        assert_eq!(
            parse_node_spec("0,+1", &avail).unwrap_err().kind,
            ParseErrorKind::UnexpectedChar('+')
        );
        assert_eq!(
            parse_node_spec("-1", &avail).unwrap_err().kind,
            ParseErrorKind::UnexpectedChar('-')
        );
        assert_eq!(
            parse_node_spec("4294967296", &avail).unwrap_err().kind,
            ParseErrorKind::NumberTooLarge
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

    fn pci(d: u32, b: u8, s: u8, f: u8) -> PciAddress {
        PciAddress::new(d, b, s, f).unwrap()
    }

    #[test]
    fn device_forms() {
        let spec = |t| parse_device_spec(t).unwrap().unwrap();
        assert_eq!(spec("netdev:eth0"), DeviceSpec::NetDev("eth0"));
        assert_eq!(spec("netdev:eth0.100"), DeviceSpec::NetDev("eth0.100"));
        assert_eq!(spec("block:nvme0n1"), DeviceSpec::Block("nvme0n1"));
        assert_eq!(
            spec("pci:0000:3b:00.0"),
            DeviceSpec::Pci(pci(0, 0x3b, 0, 0))
        );
        assert_eq!(spec("pci:3b:00.1"), DeviceSpec::Pci(pci(0, 0x3b, 0, 1)));
        assert_eq!(spec("pci:3B:1f"), DeviceSpec::Pci(pci(0, 0x3b, 0x1f, 0)));
        assert_eq!(
            spec("pci:10000:01:00.7"),
            DeviceSpec::Pci(pci(0x10000, 1, 0, 7))
        );
        assert_eq!(spec("file:/a:b c"), DeviceSpec::File("/a:b c"));
        for list in ["0-3", "all", "!2", "+0-1", "", "0,1"] {
            assert_eq!(parse_device_spec(list), Ok(None), "{list}");
        }
    }

    #[test]
    fn malformed_device_forms_say_what_and_where() {
        let e = |t| parse_device_spec(t).unwrap_err();
        let at = |kind, pos| ParseError { kind, pos };
        assert_eq!(e("ip:10.0.0.1"), at(ParseErrorKind::UnknownDeviceForm, 0));
        assert_eq!(e("netdevs:eth0"), at(ParseErrorKind::UnknownDeviceForm, 0));
        assert_eq!(e("netdev:"), at(ParseErrorKind::Empty, 7));
        assert_eq!(e("file:"), at(ParseErrorKind::Empty, 5));
        assert_eq!(e("netdev:a/b"), at(ParseErrorKind::UnexpectedChar('/'), 8));
        assert_eq!(e("netdev:a:b"), at(ParseErrorKind::UnexpectedChar(':'), 8));
        assert_eq!(e("block:a b"), at(ParseErrorKind::UnexpectedChar(' '), 7));
        assert_eq!(e("block:.."), at(ParseErrorKind::UnexpectedChar('.'), 6));
        let long = "netdev:0123456789abcdef";
        assert_eq!(e(long), at(ParseErrorKind::NameTooLong(15), 22));
        assert!(parse_device_spec("block:0123456789abcdef0123456789abcde").is_ok());
        assert_eq!(
            e("pci:0000:3b:20.0"),
            at(ParseErrorKind::NumberTooLarge, 12)
        );
        assert_eq!(e("pci:3b:00.8"), at(ParseErrorKind::NumberTooLarge, 10));
        assert_eq!(e("pci:100:00.0"), at(ParseErrorKind::NumberTooLarge, 4));
        assert_eq!(e("pci:3b"), at(ParseErrorKind::ExpectedNumber, 6));
        assert_eq!(
            e("pci:3b:00.0x"),
            at(ParseErrorKind::UnexpectedChar('x'), 11)
        );
        assert_eq!(e("pci:"), at(ParseErrorKind::Empty, 4));
        assert!(format!("{}", e("ip:x")).contains("netdev:"));
    }

    #[test]
    fn pci_files() {
        assert_eq!(parse_pci_class("0x020000\n"), Ok(0x020000));
        assert_eq!(parse_pci_class("0x010802"), Ok(0x010802));
        assert!(parse_pci_class("020000\n").is_err());
        assert!(parse_pci_class("0x1000000\n").is_err());
        assert_eq!(parse_pci_class("0x02z000").unwrap_err().pos, 4);
        assert_eq!(parse_numa_node("-1\n"), Ok(None));
        assert_eq!(parse_numa_node("1\n"), Ok(Some(NodeId::new(1))));
        assert_eq!(parse_numa_node("0"), Ok(Some(NodeId::new(0))));
        for bad in ["-2\n", "1024\n", "", "x", "1 \n"] {
            assert!(parse_numa_node(bad).is_err(), "{bad:?}");
        }
        let d = parse_dev_number("259:3\n").unwrap();
        assert_eq!((d.major, d.minor), (259, 3));
        for bad in ["259\n", "259:", ":3", "259:3:1", "a:b"] {
            assert!(parse_dev_number(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn pci_addresses_round_trip(d in any::<u32>(), b in any::<u8>(), s in 0u8..32, f in 0u8..8) {
            let a = pci(d, b, s, f);
            prop_assert_eq!(parse_pci_address(&format!("{a}")), Ok(a));
            let spec = format!("pci:{a}");
            prop_assert_eq!(parse_device_spec(&spec), Ok(Some(DeviceSpec::Pci(a))));
        }

        #[test]
        fn device_names_round_trip(name in "[a-z0-9._-]{1,15}") {
            prop_assume!(name != "." && name != "..");
            let net = format!("netdev:{name}");
            prop_assert_eq!(parse_device_spec(&net), Ok(Some(DeviceSpec::NetDev(&name))));
            let block = format!("block:{name}");
            prop_assert_eq!(parse_device_spec(&block), Ok(Some(DeviceSpec::Block(&name))));
        }

        #[test]
        fn device_parsers_never_panic(s in ".{0,40}", form in "(netdev|block|pci|file|ip|x):[0-9a-f:./ ]{0,20}") {
            for t in [s.as_str(), form.as_str()] {
                if let Err(e) = parse_device_spec(t) {
                    prop_assert!(e.pos <= t.len());
                }
                let _ = parse_pci_address(t);
                let _ = parse_pci_class(t);
                let _ = parse_numa_node(t);
                let _ = parse_dev_number(t);
            }
        }

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
