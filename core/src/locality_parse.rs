//! Parsers for the kernel's locality files: a node's `numastat`, `/proc/vmstat`'s NUMA
//! balancing lines, `/proc/sys/kernel/numa_balancing` and `/proc/<pid>/numa_maps`. Pure,
//! never panicking; an error says what is wrong and where (a byte offset).

use alloc::string::ToString;
use alloc::vec::Vec;

use crate::error::FileProblem;
use crate::locality::{BalancingStat, MappingKind, MappingPages, NumaStat};
use crate::node::{NodeId, MAX_NUMNODES};
use crate::parse::{ParseError, ParseErrorKind};

fn err(kind: ParseErrorKind, pos: usize) -> ParseError {
    ParseError { kind, pos }
}

/// A number in `radix` that is all of `s` (at byte `pos` of the input), at most `max`.
fn number(s: &str, pos: usize, radix: u32, max: u64) -> Result<u64, ParseError> {
    if s.is_empty() {
        return Err(err(ParseErrorKind::ExpectedNumber, pos));
    }
    let mut v: u64 = 0;
    for (i, c) in s.char_indices() {
        let d = c
            .to_digit(radix)
            .ok_or(err(ParseErrorKind::UnexpectedChar(c), pos + i))?;
        v = v
            .checked_mul(u64::from(radix))
            .and_then(|v| v.checked_add(u64::from(d)))
            .filter(|&v| v <= max)
            .ok_or(err(ParseErrorKind::NumberTooLarge, pos))?;
    }
    Ok(v)
}

/// `(key, value, offset of value)` for each `key value` line of `text` (one space or tab
/// between them); blank lines skipped, lines without a value give an empty value.
fn key_value_lines(text: &str) -> impl Iterator<Item = (&str, &str, usize)> {
    let mut offset = 0;
    text.split('\n').filter_map(move |line| {
        let at = offset;
        offset += line.len() + 1;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            return None;
        }
        match trimmed.find([' ', '\t']) {
            Some(i) => {
                let value = trimmed[i..].trim_start();
                let vpos = at + trimmed.len() - value.len();
                Some((&trimmed[..i], value, vpos))
            }
            None => Some((trimmed, "", at + trimmed.len())),
        }
    })
}

/// The counters of a node's `numastat` file that [`NumaStat`] holds, in its field order
/// (as `numastat` prints them).
pub const NUMASTAT_FIELDS: [&str; 6] = [
    "numa_hit",
    "numa_miss",
    "numa_foreign",
    "interleave_hit",
    "local_node",
    "other_node",
];

/// Reads a node's `numastat` text (`numa_hit 123` per line). Every one of the six
/// counters must be there; other lines are ignored (a later kernel may add some).
///
/// # Errors
/// [`FileProblem::Malformed`] for a value that is not a decimal number,
/// [`FileProblem::MissingField`] naming the first counter that is absent.
pub fn parse_numastat(text: &str) -> Result<NumaStat, FileProblem> {
    const KEYS: [&str; 6] = NUMASTAT_FIELDS;
    let mut found = [None; 6];
    for (key, value, pos) in key_value_lines(text) {
        if let Some(i) = KEYS.iter().position(|k| *k == key) {
            let v = number(value, pos, 10, u64::MAX).map_err(FileProblem::Malformed)?;
            found[i].get_or_insert(v);
        }
    }
    let mut v = [0u64; 6];
    for (i, f) in found.iter().enumerate() {
        v[i] = f.ok_or(FileProblem::MissingField(KEYS[i]))?;
    }
    Ok(NumaStat {
        numa_hit: v[0],
        numa_miss: v[1],
        numa_foreign: v[2],
        interleave_hit: v[3],
        local_node: v[4],
        other_node: v[5],
    })
}

/// Reads `/proc/sys/kernel/numa_balancing` (`0` off, `1` normal, `2` memory tiering,
/// `3` both).
///
/// # Errors
/// [`FileProblem::Malformed`] for text that is not one decimal number.
pub fn parse_balancing_mode(text: &str) -> Result<u32, FileProblem> {
    let t = text.trim_end();
    number(t, 0, 10, u64::from(u32::MAX))
        .map(|v| v as u32)
        .map_err(FileProblem::Malformed)
}

/// Reads NUMA balancing's counters from `/proc/vmstat` text; `mode` is the balancing mode
/// read beside it. `None` when the kernel has no `numa_hint_faults` line (built without
/// `CONFIG_NUMA_BALANCING`).
///
/// # Errors
/// [`FileProblem::Malformed`] for a balancing value that is not a decimal number,
/// [`FileProblem::MissingField`] for a balancing counter absent beside
/// `numa_hint_faults`.
pub fn parse_vmstat_balancing(text: &str, mode: u32) -> Result<Option<BalancingStat>, FileProblem> {
    const KEYS: [&str; 6] = [
        "numa_pte_updates",
        "numa_huge_pte_updates",
        "numa_hint_faults",
        "numa_hint_faults_local",
        "numa_pages_migrated",
        "pgpromote_success",
    ];
    let mut found = [None; 6];
    for (key, value, pos) in key_value_lines(text) {
        if let Some(i) = KEYS.iter().position(|k| *k == key) {
            let v = number(value, pos, 10, u64::MAX).map_err(FileProblem::Malformed)?;
            found[i].get_or_insert(v);
        }
    }
    if found[2].is_none() {
        return Ok(None);
    }
    let need = |i: usize| found[i].ok_or(FileProblem::MissingField(KEYS[i]));
    Ok(Some(BalancingStat {
        mode,
        pte_updates: need(0)?,
        huge_pte_updates: need(1)?,
        hint_faults: need(2)?,
        hint_faults_local: need(3)?,
        pages_migrated: need(4)?,
        promoted: found[5],
    }))
}

/// The numeric fields of a `numa_maps` line other than per-node counts; checked, not kept.
const COUNT_FIELDS: [&str; 7] = [
    "anon",
    "dirty",
    "mapped",
    "mapmax",
    "swapcache",
    "active",
    "writeback",
];

/// Reads one `numa_maps` line, as `show_numa_map` in the kernel writes it:
/// `<start> <policy> [file=<path>|heap|stack] [huge] [anon=N] ... [N<node>=<pages>]...
/// kernelpagesize_kB=N`. The policy may hold one space (`prefer (many):0-1`,
/// `weighted interleave:0-3`). Unknown `key=value` fields and words are skipped (later
/// kernels may add some); error positions are byte offsets in `line`.
///
/// # Errors
/// A [`ParseError`] for a start that is not hex, an empty policy or file, a count that is
/// not a decimal number, a node beyond 1023, or a page size that overflows.
pub fn parse_numa_maps_line(line: &str) -> Result<MappingPages, ParseError> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let mut tokens = Tokens { rest: line, pos: 0 };
    let (addr, at) = tokens.next().unwrap_or(("", 0));
    let start = number(addr, at, 16, u64::MAX)?;
    let (policy, ppos) = tokens
        .next()
        .ok_or(err(ParseErrorKind::Empty, line.len()))?;
    if policy.is_empty() {
        return Err(err(ParseErrorKind::Empty, ppos));
    }
    let mut out = MappingPages {
        start,
        policy: policy.to_string(),
        ..MappingPages::default()
    };
    let joined = match policy {
        "weighted" => Some("interleave"),
        "prefer" => Some("(many)"),
        _ => None,
    };
    if let Some(second) = joined {
        if tokens.peek().is_some_and(|t| t.starts_with(second)) {
            let (t, _) = tokens.next().unwrap_or_default();
            out.policy.push(' ');
            out.policy.push_str(t);
        }
    }
    for (tok, pos) in tokens {
        match tok {
            "" => {}
            "heap" => out.kind = MappingKind::Heap,
            "stack" => out.kind = MappingKind::Stack,
            "huge" => out.hugetlb = true,
            _ => {
                let Some((key, value)) = tok.split_once('=') else {
                    continue;
                };
                let vpos = pos + key.len() + 1;
                if key == "file" {
                    if value.is_empty() {
                        return Err(err(ParseErrorKind::Empty, vpos));
                    }
                    out.kind = MappingKind::File;
                    out.file = Some(value.to_string());
                } else if key == "kernelpagesize_kB" {
                    out.page_size = number(value, vpos, 10, u64::MAX / 1024)? * 1024;
                } else if COUNT_FIELDS.contains(&key) {
                    number(value, vpos, 10, u64::MAX)?;
                } else if let Some(id) = key.strip_prefix('N') {
                    let id = number(id, pos + 1, 10, MAX_NUMNODES as u64 - 1)? as u32;
                    let pages = number(value, vpos, 10, u64::MAX)?;
                    add_pages(&mut out.nodes, NodeId::new(id), pages);
                }
            }
        }
    }
    Ok(out)
}

/// Adds `pages` on `node` to an ascending per-node list.
fn add_pages(nodes: &mut Vec<(NodeId, u64)>, node: NodeId, pages: u64) {
    match nodes.binary_search_by_key(&node, |&(n, _)| n) {
        Ok(i) => nodes[i].1 = nodes[i].1.saturating_add(pages),
        Err(i) => nodes.insert(i, (node, pages)),
    }
}

/// Reads a whole `numa_maps` file; error positions are byte offsets in `text`.
///
/// # Errors
/// The first line's [`ParseError`] (see [`parse_numa_maps_line`]).
pub fn parse_numa_maps(text: &str) -> Result<Vec<MappingPages>, ParseError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for line in text.split('\n') {
        if !line.trim().is_empty() {
            let m = parse_numa_maps_line(line).map_err(|e| ParseError {
                pos: offset + e.pos,
                ..e
            })?;
            out.push(m);
        }
        offset += line.len() + 1;
    }
    Ok(out)
}

/// Space-separated tokens with their byte offsets.
struct Tokens<'a> {
    rest: &'a str,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn peek(&self) -> Option<&'a str> {
        (!self.rest.is_empty()).then(|| self.rest.split(' ').next().unwrap_or(""))
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = (&'a str, usize);
    fn next(&mut self) -> Option<(&'a str, usize)> {
        if self.rest.is_empty() {
            return None;
        }
        let at = self.pos;
        let (tok, rest, used) = match self.rest.find(' ') {
            Some(i) => (&self.rest[..i], &self.rest[i + 1..], i + 1),
            None => (self.rest, "", self.rest.len()),
        };
        self.rest = rest;
        self.pos += used;
        Some((tok, at))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::String;
    use alloc::vec;
    use core::fmt::Write;
    use proptest::prelude::*;

    const NUMASTAT: &str = "numa_hit 283175822\nnuma_miss 7\nnuma_foreign 3\n\
        interleave_hit 389235\nlocal_node 283175800\nother_node 29\n";

    #[test]
    fn numastat_of_a_kernel() {
        let s = parse_numastat(NUMASTAT).unwrap();
        assert_eq!(s.numa_hit, 283175822);
        assert_eq!((s.numa_miss, s.numa_foreign, s.other_node), (7, 3, 29));
        assert_eq!(s.interleave_hit, 389235);
    }

    #[test]
    fn numastat_errors_name_what_is_wrong() {
        let missing = NUMASTAT.replace("other_node 29\n", "");
        assert_eq!(
            parse_numastat(&missing),
            Err(FileProblem::MissingField("other_node"))
        );
        let bad = NUMASTAT.replace("numa_miss 7", "numa_miss 7x");
        let at = bad.find("7x").unwrap() + 1;
        assert_eq!(
            parse_numastat(&bad),
            Err(FileProblem::Malformed(err(
                ParseErrorKind::UnexpectedChar('x'),
                at
            )))
        );
        let big = NUMASTAT.replace("numa_miss 7", "numa_miss 99999999999999999999");
        assert!(matches!(
            parse_numastat(&big),
            Err(FileProblem::Malformed(ParseError {
                kind: ParseErrorKind::NumberTooLarge,
                ..
            }))
        ));
        let empty = NUMASTAT.replace("numa_miss 7", "numa_miss");
        assert!(matches!(
            parse_numastat(&empty),
            Err(FileProblem::Malformed(ParseError {
                kind: ParseErrorKind::ExpectedNumber,
                ..
            }))
        ));
        assert_eq!(
            parse_numastat(""),
            Err(FileProblem::MissingField("numa_hit"))
        );
    }

    #[test]
    fn vmstat_balancing() {
        let text = "nr_free_pages 100\nnuma_hit 5\nnuma_pte_updates 10\n\
            numa_huge_pte_updates 1\nnuma_hint_faults 8\nnuma_hint_faults_local 6\n\
            numa_pages_migrated 2\npgpromote_success 4\n";
        let b = parse_vmstat_balancing(text, 1).unwrap().unwrap();
        assert_eq!(
            (b.mode, b.pte_updates, b.hint_faults, b.hint_faults_local),
            (1, 10, 8, 6)
        );
        assert_eq!((b.pages_migrated, b.promoted), (2, Some(4)));
        assert_eq!(parse_vmstat_balancing("nr_free_pages 1\n", 1), Ok(None));
        let partial = "numa_hint_faults 8\n";
        assert_eq!(
            parse_vmstat_balancing(partial, 1),
            Err(FileProblem::MissingField("numa_pte_updates"))
        );
        let bad = text.replace("numa_hint_faults 8", "numa_hint_faults -8");
        assert!(matches!(
            parse_vmstat_balancing(&bad, 0),
            Err(FileProblem::Malformed(_))
        ));
        assert_eq!(parse_balancing_mode("3\n"), Ok(3));
        assert!(parse_balancing_mode("on\n").is_err());
        assert!(parse_balancing_mode("").is_err());
    }

    #[test]
    fn numa_maps_lines_of_a_kernel() {
        let m = parse_numa_maps_line(
            "55ff93e9e000 default file=/usr/bin/head anon=1 dirty=1 active=0 N0=1 kernelpagesize_kB=4",
        )
        .unwrap();
        assert_eq!(m.start, 0x55ff93e9e000);
        assert_eq!(m.kind, MappingKind::File);
        assert_eq!(m.file.as_deref(), Some("/usr/bin/head"));
        assert_eq!(
            (m.page_size, m.nodes.clone()),
            (4096, vec![(NodeId::new(0), 1)])
        );

        let m = parse_numa_maps_line(
            "55ffaf44b000 default heap anon=4 dirty=4 N0=4 kernelpagesize_kB=4\n",
        )
        .unwrap();
        assert_eq!(m.kind, MappingKind::Heap);
        let m =
            parse_numa_maps_line("7ffc1000 default stack anon=3 dirty=3 N1=3 kernelpagesize_kB=4")
                .unwrap();
        assert_eq!((m.kind, m.on(NodeId::new(1))), (MappingKind::Stack, 3));
        let m = parse_numa_maps_line(
            "7f0000000000 prefer (many):0-1 anon=512 dirty=512 N0=256 N1=256 kernelpagesize_kB=4",
        )
        .unwrap();
        assert_eq!(m.policy, "prefer (many):0-1");
        assert_eq!((m.kind, m.resident()), (MappingKind::Anon, 512));
        let m = parse_numa_maps_line(
            "7f0000000000 weighted interleave:0,2 anon=3 N0=2 N2=1 kernelpagesize_kB=4",
        )
        .unwrap();
        assert_eq!(m.policy, "weighted interleave:0,2");
        let m = parse_numa_maps_line("7f0000200000 bind=static:1 file=/dev/hugepages/x\\040y huge dirty=1 N1=1 kernelpagesize_kB=2048").unwrap();
        assert_eq!(m.policy, "bind=static:1");
        assert!(m.hugetlb);
        assert_eq!(m.bytes_on(NodeId::new(1)), 2 << 20);
        // No pages: the line stops after the policy.
        let m = parse_numa_maps_line("7f95b7c6c000 default").unwrap();
        assert_eq!((m.resident(), m.page_size), (0, 0));
        // A field a later kernel might add is skipped.
        let m =
            parse_numa_maps_line("1000 default anon=1 shiny=7 N3=1 kernelpagesize_kB=4").unwrap();
        assert_eq!(m.on(NodeId::new(3)), 1);
    }

    #[test]
    fn numa_maps_errors_say_where() {
        let e = |l: &str| parse_numa_maps_line(l).unwrap_err();
        assert_eq!(e("zz default"), err(ParseErrorKind::UnexpectedChar('z'), 0));
        assert_eq!(e(""), err(ParseErrorKind::ExpectedNumber, 0));
        assert_eq!(e("1000"), err(ParseErrorKind::Empty, 4));
        assert_eq!(e("1000 "), err(ParseErrorKind::Empty, 5));
        assert_eq!(
            e("1000 default N0=x"),
            err(ParseErrorKind::UnexpectedChar('x'), 16)
        );
        assert_eq!(
            e("1000 default N1024=1"),
            err(ParseErrorKind::NumberTooLarge, 14)
        );
        assert_eq!(
            e("1000 default anon=1y"),
            err(ParseErrorKind::UnexpectedChar('y'), 19)
        );
        assert_eq!(e("1000 default file="), err(ParseErrorKind::Empty, 18));
        assert_eq!(
            e("1000 default kernelpagesize_kB=99999999999999999999"),
            err(ParseErrorKind::NumberTooLarge, 31)
        );
        // In a file, the offset counts from the file's start.
        let text = "1000 default N0=1 kernelpagesize_kB=4\n2000 default N0=q\n";
        let at = text.find('q').unwrap();
        assert_eq!(
            parse_numa_maps(text).unwrap_err(),
            err(ParseErrorKind::UnexpectedChar('q'), at)
        );
        assert_eq!(parse_numa_maps("\n\n").unwrap(), vec![]);
    }

    /// A line as the kernel writes it.
    fn kernel_line(m: &MappingPages) -> String {
        let mut s = String::new();
        let _ = write!(s, "{:08x} {}", m.start, m.policy);
        match (m.kind, &m.file) {
            (MappingKind::File, Some(f)) => {
                let _ = write!(s, " file={f}");
            }
            (MappingKind::Heap, _) => s.push_str(" heap"),
            (MappingKind::Stack, _) => s.push_str(" stack"),
            _ => {}
        }
        if m.hugetlb {
            s.push_str(" huge");
        }
        if m.nodes.is_empty() {
            return s;
        }
        let _ = write!(s, " anon={} dirty={}", m.resident(), m.resident());
        for (n, p) in &m.nodes {
            let _ = write!(s, " N{n}={p}");
        }
        let _ = write!(s, " kernelpagesize_kB={}", m.page_size / 1024);
        s
    }

    fn mapping() -> impl Strategy<Value = MappingPages> {
        let policy = prop::sample::select(vec![
            "default",
            "bind:0-1",
            "interleave:0-3",
            "prefer:1",
            "prefer (many):0,2",
            "weighted interleave:0-1",
            "local",
            "bind=static|balancing:1",
        ]);
        let kind = prop::sample::select(vec![
            MappingKind::Anon,
            MappingKind::Heap,
            MappingKind::Stack,
            MappingKind::File,
        ]);
        (
            any::<u64>(),
            policy,
            kind,
            "[a-z/._-]{1,20}",
            any::<bool>(),
            prop::collection::btree_map(0u32..1024, 1u64..u64::MAX / 2048, 0..6),
            prop::sample::select(vec![4u64, 64, 2048, 1048576]),
        )
            .prop_map(
                |(start, policy, kind, file, huge, nodes, kb)| MappingPages {
                    start,
                    policy: policy.to_string(),
                    kind,
                    file: (kind == MappingKind::File).then_some(file),
                    hugetlb: huge,
                    page_size: if nodes.is_empty() { 0 } else { kb * 1024 },
                    nodes: nodes
                        .into_iter()
                        .map(|(n, p)| (NodeId::new(n), p))
                        .collect(),
                },
            )
    }

    proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = parse_numastat(&s);
            let _ = parse_vmstat_balancing(&s, 1);
            let _ = parse_balancing_mode(&s);
            let _ = parse_numa_maps(&s);
        }

        #[test]
        fn numa_maps_like_text_never_panics(
            s in "[0-9a-f]{0,12}( [a-zN0-9=:_()-]{0,12}){0,8}",
        ) {
            let _ = parse_numa_maps_line(&s);
        }

        #[test]
        fn numa_maps_lines_read_back(ms in prop::collection::vec(mapping(), 0..8)) {
            let text: String = ms.iter().map(|m| kernel_line(m) + "\n").collect();
            prop_assert_eq!(parse_numa_maps(&text).unwrap(), ms);
        }

        #[test]
        fn numastat_reads_back(v in prop::array::uniform6(any::<u64>()), extra in any::<bool>()) {
            let mut text = std::format!(
                "numa_hit {}\nnuma_miss {}\nnuma_foreign {}\ninterleave_hit {}\nlocal_node {}\nother_node {}\n",
                v[0], v[1], v[2], v[3], v[4], v[5]
            );
            if extra {
                text.push_str("future_counter 1\n");
            }
            let s = parse_numastat(&text).unwrap();
            prop_assert_eq!(
                [s.numa_hit, s.numa_miss, s.numa_foreign, s.interleave_hit, s.local_node, s.other_node],
                v
            );
        }
    }
}
