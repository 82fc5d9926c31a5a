//! A model of libnuma 2.0.16's `__numa_parse_nodestring` (and `get_nr`, C's `strtoul`
//! base 0) step by step over bytes, to check [`super::parse_node_spec`] against it.

use proptest::prelude::*;

use super::parse_node_spec;
use crate::node::{NodeId, NodeMask};

/// What libnuma makes of a string.
#[derive(Debug, PartialEq, Eq)]
enum Libnuma {
    /// It returns this mask.
    Accepts(NodeMask),
    /// It returns NULL.
    Rejects,
    /// Where numaperf deviates on purpose: a sign before a number, an id of 2^32 or
    /// more, a device form.
    Deviates,
}

/// `strtoul(s + at, &end, 0)`: (value, end, whether a sign or overflow was seen).
fn strtoul(s: &[u8], at: usize) -> (u64, usize, bool) {
    let mut i = at;
    while matches!(s.get(i), Some(b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')) {
        i += 1;
    }
    let mut odd = false;
    if matches!(s.get(i), Some(b'+' | b'-')) {
        odd = true;
        i += 1;
    }
    let (radix, mut j) = match (s.get(i), s.get(i + 1), s.get(i + 2)) {
        (Some(b'0'), Some(b'x' | b'X'), Some(h)) if h.is_ascii_hexdigit() => (16, i + 2),
        (Some(b'0'), ..) => (8, i),
        _ => (10, i),
    };
    let digits = j;
    let mut v: u64 = 0;
    while let Some(d) = s.get(j).and_then(|&c| (c as char).to_digit(radix)) {
        v = v.saturating_mul(radix as u64).saturating_add(d as u64);
        j += 1;
    }
    if j == digits {
        return (0, at, false); // no conversion: end = s
    }
    (v, j, odd || v > u32::MAX as u64)
}

/// `get_nr`: a number, or the index of the n-th available node when `relative`.
fn get_nr(s: &[u8], at: usize, avail: &NodeMask, relative: bool) -> (u64, usize, bool) {
    let (nr, end, odd) = strtoul(s, at);
    if !relative || end == at {
        return (nr, end, odd);
    }
    // The n-th set bit; past the last one, an id no mask holds.
    let id = avail
        .nth(nr as usize)
        .map_or(u64::from(u32::MAX), |n| n.get() as u64);
    (id, end, odd)
}

fn isset(avail: &NodeMask, id: u64) -> bool {
    id < 1024 && avail.contains(NodeId::new(id as u32))
}

/// The loop of `__numa_parse_nodestring`, inverting within `avail` (numaperf's
/// documented choice; the same as libnuma's when `avail` is `0..configured`).
fn libnuma(s: &[u8], avail: &NodeMask) -> Libnuma {
    if s.is_empty() {
        return Libnuma::Accepts(NodeMask::new());
    }
    let mut i = 0;
    let invert = s[0] == b'!';
    i += invert as usize;
    let relative = s.get(i) == Some(&b'+');
    i += relative as usize;
    let mut mask = NodeMask::new();
    loop {
        if s.get(i).is_some_and(u8::is_ascii_alphabetic) {
            if &s[i..] == b"all" {
                mask = *avail;
                i = s.len() + 1;
                break;
            }
            for form in [&b"netdev:"[..], b"pci:", b"file:", b"block:", b"ip:"] {
                if s[i..].starts_with(form) {
                    return Libnuma::Deviates;
                }
            }
        }
        let (arg, end, odd) = get_nr(s, i, avail, relative);
        if end == i {
            return Libnuma::Rejects;
        }
        if odd {
            return Libnuma::Deviates;
        }
        if !isset(avail, arg) {
            return Libnuma::Rejects;
        }
        mask.add(NodeId::new(arg as u32));
        i = end;
        if s.get(i) == Some(&b'-') {
            i += 1;
            let (arg2, end2, odd) = get_nr(s, i, avail, relative);
            if end2 == i {
                return Libnuma::Rejects;
            }
            if odd {
                return Libnuma::Deviates;
            }
            if !isset(avail, arg2) {
                return Libnuma::Rejects;
            }
            for id in arg..=arg2 {
                if isset(avail, id) {
                    mask.add(NodeId::new(id as u32));
                }
            }
            i = end2;
        }
        // `while (*s++ == ',')`
        let c = s.get(i).copied().unwrap_or(0);
        i += 1;
        if c != b',' {
            break;
        }
    }
    // `if (s[-1] != '\0')`
    if s.get(i - 1).copied().unwrap_or(0) != 0 {
        return Libnuma::Rejects;
    }
    Libnuma::Accepts(if invert {
        avail.difference(&mask)
    } else {
        mask
    })
}

fn agree(s: &str, avail: &NodeMask) -> Result<(), TestCaseError> {
    let ours = parse_node_spec(s, avail);
    match libnuma(s.as_bytes(), avail) {
        Libnuma::Accepts(m) => prop_assert_eq!(ours, Ok(m), "{:?}", s),
        Libnuma::Rejects => prop_assert!(ours.is_err(), "{:?}: {:?}", s, ours),
        Libnuma::Deviates => prop_assert!(ours.is_err(), "{:?}: {:?}", s, ours),
    }
    Ok(())
}

fn machines() -> [NodeMask; 3] {
    let m = |ids: &[u32]| ids.iter().copied().map(NodeId::new).collect::<NodeMask>();
    [m(&[0, 1, 2, 3]), m(&[0, 2, 5]), m(&[1])]
}

#[test]
fn the_model_is_libnuma() {
    let [four, ..] = machines();
    for (s, want) in [
        ("", Libnuma::Accepts(NodeMask::new())),
        (
            "0, 1",
            Libnuma::Accepts([0, 1].map(NodeId::new).into_iter().collect()),
        ),
        ("0,all", Libnuma::Accepts(four)),
        ("0 ", Libnuma::Rejects),
        ("all,1", Libnuma::Rejects),
        ("0,+1", Libnuma::Deviates),
        ("4294967296", Libnuma::Deviates),
    ] {
        assert_eq!(libnuma(s.as_bytes(), &four), want, "{s:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// Node-list-shaped text: every accepted string, and most ways to get one wrong.
    #[test]
    fn parse_node_spec_is_libnuma(
        s in "[!+]{0,2}([ \t]{0,2}(0x[0-9a-fA-F]|0[0-9]|[0-9]|all|[+-][0-9])(-[ \t]?[0-9])?[, ]{0,2}){0,3}(all)?",
        t in "[0-9x,\\-!+ a-l\t]{0,10}",
    ) {
        for avail in &machines() {
            agree(&s, avail)?;
            agree(&t, avail)?;
        }
    }
}
