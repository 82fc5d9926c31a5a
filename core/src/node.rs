//! Node and CPU identifiers, and fixed-size sets of them that never allocate.
//! `NodeMask` holds 1024 nodes (the kernel's MAX_NUMNODES), `CpuSet` 4096 CPUs.

use core::fmt;
use core::marker::PhantomData;

use crate::error::NumaError;

/// Highest node count the kernel supports (`MAX_NUMNODES` with `NODES_SHIFT = 10`).
pub const MAX_NUMNODES: usize = 1024;
/// Highest CPU count a [`CpuSet`] can hold.
pub const MAX_CPUS: usize = 4096;

/// A NUMA node id.
///
/// `NodeId::new` never panics: an id beyond 1023 is representable so that the
/// error surfaces as a typed [`NumaError::InvalidNode`] where the id is used
/// (a mask that was asked to hold it, a policy, a region constructor).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NodeId(u32);

impl NodeId {
    /// The highest valid node id (1023).
    pub const MAX: u32 = MAX_NUMNODES as u32 - 1;

    /// A node id; not checked here (see [`NodeId::try_new`] and [`NodeId::is_valid`]).
    pub const fn new(id: u32) -> Self {
        NodeId(id)
    }

    /// A node id, or [`NumaError::InvalidNode`] when it is beyond 1023.
    ///
    /// # Errors
    /// [`NumaError::InvalidNode`] beyond 1023.
    pub const fn try_new(id: u32) -> Result<Self, NumaError> {
        if id <= Self::MAX {
            Ok(NodeId(id))
        } else {
            Err(NumaError::InvalidNode(id))
        }
    }

    /// The raw id.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Whether the id fits the kernel's node range (0..=1023).
    pub const fn is_valid(self) -> bool {
        self.0 <= Self::MAX
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Something that can be a member of an [`IdSet`]: a node id or a CPU number.
pub trait SetMember: Copy {
    /// The bit index of this member.
    fn index(self) -> u32;
    /// The member at a bit index.
    fn from_index(index: u32) -> Self;
}

impl SetMember for NodeId {
    fn index(self) -> u32 {
        self.0
    }
    fn from_index(index: u32) -> Self {
        NodeId(index)
    }
}

impl SetMember for usize {
    fn index(self) -> u32 {
        u32::try_from(self).unwrap_or(u32::MAX)
    }
    fn from_index(index: u32) -> Self {
        index as usize
    }
}

/// A fixed-capacity bit set of `64 * W` members.
///
/// Adding a member beyond the capacity does not panic: the set remembers the
/// first such id ([`IdSet::out_of_range`]) and carries it through set algebra,
/// so policy validation reports it as a typed error.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdSet<I, const W: usize> {
    words: [u64; W],
    overflow: Option<u32>,
    _member: PhantomData<I>,
}

/// A set of NUMA nodes (1024 bits).
///
/// ```
/// use numaperf_core::{NodeId, NodeMask};
/// let mut m = NodeMask::single(NodeId::new(0));
/// m.add(NodeId::new(2));
/// m.add(NodeId::new(3));
/// assert_eq!(m.to_string(), "0,2-3"); // the kernel's list form
/// assert_eq!(m.iter().map(|n| n.get()).collect::<Vec<_>>(), [0, 2, 3]);
/// let parsed: NodeMask = numaperf_core::parse::parse_list("0,2-3")?;
/// assert_eq!(parsed, m);
/// // An id beyond 1023 does not panic: it is carried and reported by validation.
/// m.add(NodeId::new(5000));
/// assert_eq!(m.out_of_range(), Some(5000));
/// # Ok::<(), numaperf_core::ParseError>(())
/// ```
pub type NodeMask = IdSet<NodeId, { MAX_NUMNODES / 64 }>;
/// A set of CPUs (4096 bits).
pub type CpuSet = IdSet<usize, { MAX_CPUS / 64 }>;

impl<I: SetMember, const W: usize> Default for IdSet<I, W> {
    fn default() -> Self {
        Self::new()
    }
}

impl<I: SetMember, const W: usize> IdSet<I, W> {
    /// How many members the set can hold.
    pub const CAPACITY: usize = 64 * W;

    /// The empty set.
    pub const fn new() -> Self {
        IdSet {
            words: [0; W],
            overflow: None,
            _member: PhantomData,
        }
    }

    /// A set holding one member.
    pub fn single(id: I) -> Self {
        let mut s = Self::new();
        s.add(id);
        s
    }

    /// The set `0..n` (clamped to the capacity).
    pub fn first_n(n: usize) -> Self {
        let mut s = Self::new();
        for i in 0..n.min(Self::CAPACITY) {
            s.words[i / 64] |= 1 << (i % 64);
        }
        s
    }

    /// Adds a member; an id beyond the capacity is remembered as out of range.
    pub fn add(&mut self, id: I) {
        let i = id.index() as usize;
        if i < Self::CAPACITY {
            self.words[i / 64] |= 1 << (i % 64);
        } else if self.overflow.is_none() {
            self.overflow = Some(id.index());
        }
    }

    /// Adds a member, or returns the id if it is beyond the capacity.
    ///
    /// # Errors
    /// The id, when it is beyond the set's capacity.
    pub fn try_add(&mut self, id: I) -> Result<(), u32> {
        if (id.index() as usize) < Self::CAPACITY {
            self.add(id);
            Ok(())
        } else {
            Err(id.index())
        }
    }

    /// Removes a member (no effect if absent or out of range).
    pub fn remove(&mut self, id: I) {
        let i = id.index() as usize;
        if i < Self::CAPACITY {
            self.words[i / 64] &= !(1 << (i % 64));
        }
    }

    /// Whether `id` is a member.
    pub fn contains(&self, id: I) -> bool {
        let i = id.index() as usize;
        i < Self::CAPACITY && self.words[i / 64] & (1 << (i % 64)) != 0
    }

    /// The number of members.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set has no members.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// The smallest member.
    pub fn first(&self) -> Option<I> {
        self.iter().next()
    }

    /// The largest member.
    pub fn last(&self) -> Option<I> {
        let (wi, w) = self.words.iter().enumerate().rev().find(|(_, &w)| w != 0)?;
        Some(I::from_index(
            (wi * 64 + 63 - w.leading_zeros() as usize) as u32,
        ))
    }

    /// The `n`-th smallest member (0-based).
    pub fn nth(&self, n: usize) -> Option<I> {
        self.iter().nth(n)
    }

    /// The first id that was added beyond the capacity, if any.
    pub fn out_of_range(&self) -> Option<u32> {
        self.overflow
    }

    /// Members in ascending order.
    pub fn iter(&self) -> Iter<'_, I, W> {
        Iter {
            set: self,
            word: 0,
            bits: if W > 0 { self.words[0] } else { 0 },
        }
    }

    /// Members of either set.
    pub fn union(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a | b)
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a & b)
    }

    /// Members of `self` that are not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        self.zip(other, |a, b| a & !b)
    }

    /// Whether every member of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.difference(other).is_empty()
    }

    /// The raw 64-bit words, least significant member first.
    pub fn words(&self) -> &[u64; W] {
        &self.words
    }

    /// A set from raw 64-bit words.
    pub const fn from_words(words: [u64; W]) -> Self {
        IdSet {
            words,
            overflow: None,
            _member: PhantomData,
        }
    }

    fn zip(&self, other: &Self, f: impl Fn(u64, u64) -> u64) -> Self {
        let mut out = Self::new();
        for (o, (a, b)) in out
            .words
            .iter_mut()
            .zip(self.words.iter().zip(&other.words))
        {
            *o = f(*a, *b);
        }
        out.overflow = self.overflow.or(other.overflow);
        out
    }
}

/// Ascending iterator over an [`IdSet`].
pub struct Iter<'a, I, const W: usize> {
    set: &'a IdSet<I, W>,
    word: usize,
    bits: u64,
}

impl<I: SetMember, const W: usize> Iterator for Iter<'_, I, W> {
    type Item = I;
    fn next(&mut self) -> Option<I> {
        loop {
            if self.bits != 0 {
                let b = self.bits.trailing_zeros();
                self.bits &= self.bits - 1;
                return Some(I::from_index(self.word as u32 * 64 + b));
            }
            self.word += 1;
            if self.word >= W {
                return None;
            }
            self.bits = self.set.words[self.word];
        }
    }
}

impl<'a, I: SetMember, const W: usize> IntoIterator for &'a IdSet<I, W> {
    type Item = I;
    type IntoIter = Iter<'a, I, W>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<I: SetMember, const W: usize> FromIterator<I> for IdSet<I, W> {
    fn from_iter<T: IntoIterator<Item = I>>(iter: T) -> Self {
        let mut s = Self::new();
        for i in iter {
            s.add(i);
        }
        s
    }
}

impl<I: SetMember, const W: usize> Extend<I> for IdSet<I, W> {
    fn extend<T: IntoIterator<Item = I>>(&mut self, iter: T) {
        for i in iter {
            self.add(i);
        }
    }
}

impl<I: SetMember, const W: usize> core::ops::BitOr for IdSet<I, W> {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(&rhs)
    }
}

impl<I: SetMember, const W: usize> core::ops::BitAnd for IdSet<I, W> {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        self.intersection(&rhs)
    }
}

impl<I: SetMember, const W: usize> core::ops::Sub for IdSet<I, W> {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        self.difference(&rhs)
    }
}

/// Kernel list form: `0-3,8`; the empty set prints as an empty string.
impl<I: SetMember, const W: usize> fmt::Display for IdSet<I, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut run: Option<(u32, u32)> = None;
        let mut first = true;
        let mut flush = |f: &mut fmt::Formatter<'_>, (a, b): (u32, u32)| {
            let sep = if first { "" } else { "," };
            first = false;
            if a == b {
                write!(f, "{sep}{a}")
            } else {
                write!(f, "{sep}{a}-{b}")
            }
        };
        for i in self.iter().map(SetMember::index) {
            run = match run {
                Some((a, b)) if b + 1 == i => Some((a, i)),
                Some(r) => {
                    flush(f, r)?;
                    Some((i, i))
                }
                None => Some((i, i)),
            };
        }
        if let Some(r) = run {
            flush(f, r)?;
        }
        Ok(())
    }
}

impl<I: SetMember, const W: usize> fmt::Debug for IdSet<I, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{{{self}}}")?;
        if let Some(bad) = self.overflow {
            write!(f, " (out of range: {bad})")?;
        }
        Ok(())
    }
}

/// Number of `unsigned long` words a kernel node mask of [`MAX_NUMNODES`] bits needs.
pub const KERNEL_MASK_WORDS: usize = MAX_NUMNODES / usize::BITS as usize;

/// A node mask in the form `mbind`/`set_mempolicy` take: `unsigned long` words and `maxnode`.
///
/// The kernel reads only `maxnode - 1` bits, so `maxnode` is the highest member + 2:
/// node 1023 gives `maxnode == 1025`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelNodeMask {
    words: [usize; KERNEL_MASK_WORDS],
    maxnode: usize,
}

impl KernelNodeMask {
    /// The words, least significant node first.
    pub fn words(&self) -> &[usize] {
        &self.words
    }

    /// Words actually covered by `maxnode` (may be empty for the empty mask).
    pub fn used_words(&self) -> &[usize] {
        let bits = self.maxnode.saturating_sub(1);
        &self.words[..bits.div_ceil(usize::BITS as usize)]
    }

    /// The `maxnode` argument: the kernel reads `maxnode - 1` bits.
    pub fn maxnode(&self) -> usize {
        self.maxnode
    }
}

impl NodeMask {
    /// The mask in the kernel's `unsigned long` + `maxnode` form.
    pub fn to_kernel(&self) -> KernelNodeMask {
        let mut words = [0usize; KERNEL_MASK_WORDS];
        for n in self.iter() {
            let i = n.0 as usize;
            words[i / usize::BITS as usize] |= 1 << (i % usize::BITS as usize);
        }
        let maxnode = self.last().map_or(1, |n| n.0 as usize + 2);
        KernelNodeMask { words, maxnode }
    }

    /// A mask from kernel words of which the first `maxnode - 1` bits are read
    /// (the form `get_mempolicy` fills in).
    pub fn from_kernel(words: &[usize], maxnode: usize) -> Self {
        let bits = maxnode
            .saturating_sub(1)
            .min(words.len() * usize::BITS as usize);
        (0..bits)
            .filter(|&i| words[i / usize::BITS as usize] & (1 << (i % usize::BITS as usize)) != 0)
            .map(|i| NodeId(i as u32))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;
    use std::format;
    use std::vec::Vec;

    fn model(ids: &[u16]) -> (NodeMask, BTreeSet<u32>) {
        let m: NodeMask = ids.iter().map(|&i| NodeId::new(i as u32 % 1024)).collect();
        let s = ids.iter().map(|&i| i as u32 % 1024).collect();
        (m, s)
    }

    fn ids(m: &NodeMask) -> BTreeSet<u32> {
        m.iter().map(NodeId::get).collect()
    }

    #[test]
    fn node_1023_survives_kernel_conversion() {
        let m = NodeMask::single(NodeId::new(1023));
        let k = m.to_kernel();
        assert_eq!(k.maxnode(), 1025);
        assert_eq!(k.used_words().len(), KERNEL_MASK_WORDS);
        assert_eq!(*k.words().last().unwrap(), 1usize << (usize::BITS - 1));
        assert_eq!(NodeMask::from_kernel(k.words(), k.maxnode()), m);
        // Reading one bit fewer (the classic off-by-one) loses node 1023.
        assert!(NodeMask::from_kernel(k.words(), 1024).is_empty());
    }

    #[test]
    fn kernel_form_of_small_masks() {
        let m: NodeMask = [0, 2].into_iter().map(NodeId::new).collect();
        let k = m.to_kernel();
        assert_eq!(k.maxnode(), 4);
        assert_eq!(k.used_words(), &[0b101]);
        let e = NodeMask::new().to_kernel();
        assert_eq!(e.maxnode(), 1);
        assert!(e.used_words().is_empty());
    }

    #[test]
    fn out_of_range_is_remembered_not_panicking() {
        let mut m = NodeMask::new();
        m.add(NodeId::new(5000));
        assert!(m.is_empty());
        assert_eq!(m.out_of_range(), Some(5000));
        assert_eq!(m.try_add(NodeId::new(1024)), Err(1024));
        let u = NodeMask::single(NodeId::new(1)).union(&m);
        assert_eq!(u.out_of_range(), Some(5000));
        let mut c = CpuSet::new();
        c.add(4095);
        c.add(4096);
        assert_eq!(c.count(), 1);
        assert_eq!(c.out_of_range(), Some(4096));
    }

    #[test]
    fn display_is_kernel_list_form() {
        let m: NodeMask = [0, 1, 2, 3, 8, 10, 11]
            .into_iter()
            .map(NodeId::new)
            .collect();
        assert_eq!(format!("{m}"), "0-3,8,10-11");
        assert_eq!(format!("{}", NodeMask::new()), "");
        assert_eq!(format!("{:?}", NodeMask::single(NodeId::new(4))), "{4}");
    }

    proptest! {
        #[test]
        fn algebra_matches_btreeset(a in proptest::collection::vec(any::<u16>(), 0..40),
                                    b in proptest::collection::vec(any::<u16>(), 0..40)) {
            let (ma, sa) = model(&a);
            let (mb, sb) = model(&b);
            prop_assert_eq!(ids(&ma.union(&mb)), sa.union(&sb).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(ids(&ma.intersection(&mb)), sa.intersection(&sb).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(ids(&ma.difference(&mb)), sa.difference(&sb).copied().collect::<BTreeSet<_>>());
            prop_assert_eq!(ma.count(), sa.len());
            prop_assert_eq!(ma.is_empty(), sa.is_empty());
            prop_assert_eq!(ma.first().map(NodeId::get), sa.iter().next().copied());
            prop_assert_eq!(ma.last().map(NodeId::get), sa.iter().next_back().copied());
            prop_assert_eq!(ma.is_subset(&mb), sa.is_subset(&sb));
            for x in 0..1024u32 {
                prop_assert_eq!(ma.contains(NodeId::new(x)), sa.contains(&x));
            }
            let iterated: Vec<u32> = ma.iter().map(NodeId::get).collect();
            prop_assert_eq!(iterated, sa.iter().copied().collect::<Vec<_>>());
        }

        #[test]
        fn add_remove_matches_btreeset(ops in proptest::collection::vec((any::<bool>(), 0u32..1024), 0..64)) {
            let mut m = NodeMask::new();
            let mut s = BTreeSet::new();
            for (add, id) in ops {
                if add { m.add(NodeId::new(id)); s.insert(id); } else { m.remove(NodeId::new(id)); s.remove(&id); }
            }
            prop_assert_eq!(ids(&m), s);
        }

        #[test]
        fn kernel_round_trip(a in proptest::collection::vec(0u32..1024, 0..40)) {
            let m: NodeMask = a.iter().copied().map(NodeId::new).collect();
            let k = m.to_kernel();
            prop_assert_eq!(NodeMask::from_kernel(k.used_words(), k.maxnode()), m);
        }
    }
}
