//! A process's pages read from its `numa_maps`: summed per node and per kind of mapping
//! (what `numastat -p` shows), and checked against the nodes its memory policy allows
//! (what `numaperf run --verify` reports).

use alloc::vec::Vec;

use crate::locality::{MappingKind, MappingPages};
use crate::node::{NodeId, NodeMask};

/// The kinds of mapping `numaperf stat` counts pages of, as `numastat -p` groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PageClass {
    /// The initial heap (`brk`).
    Heap,
    /// The main thread's stack.
    Stack,
    /// Private anonymous memory (`mmap` arenas, thread stacks, numaperf regions).
    Anon,
    /// Ordinary files: page cache, placed where the file was read, and private copies.
    File,
    /// Shared memory: memfd, `/dev/shm`, System V segments, shared anonymous mappings.
    Shmem,
    /// hugetlb pages.
    Huge,
}

impl PageClass {
    /// Every class, in the order tables print them.
    pub const ALL: [PageClass; 6] = [
        PageClass::Heap,
        PageClass::Stack,
        PageClass::Anon,
        PageClass::File,
        PageClass::Shmem,
        PageClass::Huge,
    ];

    /// The class of one mapping.
    pub fn of(m: &MappingPages) -> PageClass {
        if m.hugetlb {
            return PageClass::Huge;
        }
        match m.kind {
            MappingKind::Heap => PageClass::Heap,
            MappingKind::Stack => PageClass::Stack,
            MappingKind::Anon => PageClass::Anon,
            MappingKind::File => {
                let path = m.file.as_deref().unwrap_or("");
                let shared = ["/memfd:", "/SYSV", "/dev/shm/", "/dev/zero"];
                if shared.iter().any(|p| path.starts_with(p)) {
                    PageClass::Shmem
                } else {
                    PageClass::File
                }
            }
        }
    }

    /// The name tables and JSON use (`heap`, `stack`, `anon`, `file`, `shmem`, `huge`).
    pub fn name(self) -> &'static str {
        match self {
            PageClass::Heap => "heap",
            PageClass::Stack => "stack",
            PageClass::Anon => "anon",
            PageClass::File => "file",
            PageClass::Shmem => "shmem",
            PageClass::Huge => "huge",
        }
    }

    /// Whether new pages of this class follow the faulting task's memory policy (file and
    /// shared pages go where the page cache or the shared object puts them).
    pub fn follows_task_policy(self) -> bool {
        matches!(
            self,
            PageClass::Heap | PageClass::Stack | PageClass::Anon | PageClass::Huge
        )
    }
}

/// Resident bytes per node and class of a process, ascending by node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcessPages {
    /// `(node, bytes per class in PageClass::ALL order)`, ascending by node.
    pub nodes: Vec<(NodeId, [u64; 6])>,
}

impl ProcessPages {
    /// Sums `maps` (a process's `numa_maps`).
    pub fn sum(maps: &[MappingPages]) -> Self {
        let mut out = ProcessPages::default();
        for m in maps {
            let class = PageClass::of(m) as usize;
            for &(n, _) in &m.nodes {
                let i = match out.nodes.binary_search_by_key(&n, |&(k, _)| k) {
                    Ok(i) => i,
                    Err(i) => {
                        out.nodes.insert(i, (n, [0; 6]));
                        i
                    }
                };
                let slot = &mut out.nodes[i].1[class];
                *slot = slot.saturating_add(m.bytes_on(n));
            }
        }
        out
    }

    /// Bytes of `class` on `node`.
    pub fn bytes(&self, node: NodeId, class: PageClass) -> u64 {
        self.nodes
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(0, |(_, b)| b[class as usize])
    }

    /// Bytes of every class on `node`.
    pub fn node_total(&self, node: NodeId) -> u64 {
        self.nodes
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(0, |(_, b)| b.iter().fold(0u64, |a, &x| a.saturating_add(x)))
    }
}

/// Where a process's policy-governed pages are, against the nodes its policy allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PlacementCheck {
    /// Pages checked, per node, ascending by node: those of heap, stack, anonymous and
    /// hugetlb mappings that follow the task's policy.
    pub checked: Vec<(NodeId, u64)>,
    /// How many of them are on a node outside the allowed ones.
    pub outside: u64,
    /// The nodes holding those.
    pub outside_nodes: NodeMask,
    /// Pages not checked: of files and shared memory (placed by the page cache or the
    /// shared object), or of mappings with a policy of their own (`mbind`).
    pub unchecked: u64,
}

impl PlacementCheck {
    /// Checks `maps` (a process's `numa_maps`) against `allowed`. The task's policy is the
    /// one `numa_maps` prints on the `[stack]` line (a mapping without a policy of its own
    /// shows the task's); a mapping that prints another was given its own and is not
    /// checked. Without a stack line every policy-following mapping is checked.
    pub fn of(maps: &[MappingPages], allowed: &NodeMask) -> Self {
        let task_policy = maps
            .iter()
            .find(|m| m.kind == MappingKind::Stack)
            .map(|m| m.policy.as_str());
        let mut out = PlacementCheck::default();
        for m in maps {
            let own = task_policy.is_some_and(|p| p != m.policy);
            if own || !PageClass::of(m).follows_task_policy() {
                out.unchecked = out.unchecked.saturating_add(m.resident());
                continue;
            }
            for &(n, pages) in &m.nodes {
                match out.checked.binary_search_by_key(&n, |&(k, _)| k) {
                    Ok(i) => out.checked[i].1 = out.checked[i].1.saturating_add(pages),
                    Err(i) => out.checked.insert(i, (n, pages)),
                }
                if !allowed.contains(n) {
                    out.outside = out.outside.saturating_add(pages);
                    out.outside_nodes.add(n);
                }
            }
        }
        out
    }

    /// Whether every checked page is on an allowed node.
    pub fn passed(&self) -> bool {
        self.outside == 0
    }

    /// Pages checked on all nodes.
    pub fn total(&self) -> u64 {
        self.checked
            .iter()
            .fold(0u64, |a, &(_, p)| a.saturating_add(p))
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::locality_parse::parse_numa_maps;
    use proptest::prelude::*;

    const MAPS: &str = "\
55d000000000 bind:0 file=/usr/bin/probe mapped=2 N0=1 N1=1 kernelpagesize_kB=4
55d000100000 bind:0 heap anon=3 dirty=3 N0=3 kernelpagesize_kB=4
7f0000000000 bind:0 anon=8 dirty=8 N0=6 N1=2 kernelpagesize_kB=4
7f0000100000 interleave:0-1 anon=4 dirty=4 N0=2 N1=2 kernelpagesize_kB=4
7f0000200000 bind:0 file=/memfd:x\\040(deleted) dirty=1 N1=1 kernelpagesize_kB=4
7f0000400000 bind:0 file=/anon_hugepage\\040(deleted) huge anon=1 dirty=1 N1=1 kernelpagesize_kB=2048
7ffd00000000 bind:0 stack anon=2 dirty=2 N0=2 kernelpagesize_kB=4
";

    #[test]
    fn classes_and_sums() {
        let maps = parse_numa_maps(MAPS).unwrap();
        let classes: std::vec::Vec<_> = maps.iter().map(PageClass::of).collect();
        use PageClass::*;
        assert_eq!(classes, [File, Heap, Anon, Anon, Shmem, Huge, Stack]);
        let p = ProcessPages::sum(&maps);
        let (n0, n1) = (NodeId::new(0), NodeId::new(1));
        assert_eq!(p.bytes(n0, Anon), 8 * 4096);
        assert_eq!(p.bytes(n1, Huge), 2 << 20);
        assert_eq!(p.bytes(n1, Shmem), 4096);
        assert_eq!(p.node_total(n0), (1 + 3 + 6 + 2 + 2) * 4096);
        assert_eq!(p.node_total(NodeId::new(5)), 0);
    }

    #[test]
    fn the_check_counts_only_pages_under_the_task_policy() {
        let maps = parse_numa_maps(MAPS).unwrap();
        let c = PlacementCheck::of(&maps, &NodeMask::single(NodeId::new(0)));
        // heap 3 + anon 6+2 + huge 1 + stack 2; the interleaved mapping, the file and the
        // memfd are not checked.
        assert_eq!(c.total(), 14);
        assert_eq!((c.outside, c.unchecked), (3, 4 + 2 + 1));
        assert_eq!(c.outside_nodes, NodeMask::single(NodeId::new(1)));
        assert!(!c.passed());
        let both = PlacementCheck::of(&maps, &NodeMask::first_n(2));
        assert!(both.passed());
    }

    #[test]
    fn huge_counts_saturate_instead_of_overflowing() {
        let line = "7ffd00000000 default stack anon=1 N0=18446744073709551615 N1=1 kernelpagesize_kB=4\n\
                    7f0000000000 default file=/usr/lib/x N0=18446744073709551615 N2=7 kernelpagesize_kB=4\n";
        let maps = parse_numa_maps(line).unwrap();
        assert_eq!(maps[0].resident(), u64::MAX);
        let c = PlacementCheck::of(&maps, &NodeMask::single(NodeId::new(0)));
        assert_eq!((c.total(), c.outside, c.unchecked), (u64::MAX, 1, u64::MAX));
        let p = ProcessPages::sum(&maps);
        assert_eq!(p.node_total(NodeId::new(0)), u64::MAX);
    }

    proptest! {
        #[test]
        fn outside_is_what_lies_beyond_the_allowed_nodes(
            pages in proptest::collection::vec((0u32..8, 0u64..1000), 0..12),
            allowed in 0u64..256,
        ) {
            let mut m = MappingPages { policy: "default".into(), page_size: 4096, ..Default::default() };
            let mut per_node = std::collections::BTreeMap::new();
            for (n, p) in &pages {
                *per_node.entry(*n).or_insert(0u64) += *p;
            }
            m.nodes = per_node.into_iter().map(|(n, p)| (NodeId::new(n), p)).collect();
            let mask: NodeMask = (0..8).filter(|i| allowed >> i & 1 == 1).map(NodeId::new).collect();
            let c = PlacementCheck::of(core::slice::from_ref(&m), &mask);
            let beyond: u64 = pages.iter().filter(|(n, _)| !mask.contains(NodeId::new(*n))).map(|p| p.1).sum();
            prop_assert_eq!(c.outside, beyond);
            prop_assert_eq!(c.total(), pages.iter().map(|p| p.1).sum::<u64>());
            prop_assert_eq!(c.passed(), beyond == 0);
        }
    }
}
