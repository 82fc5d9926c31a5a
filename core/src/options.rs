//! How a region is made: prefault mode, huge pages, hard enforcement and the kernel's
//! mode flags. `RegionOptions::default()` is the seed's `Default::default()` argument.

use crate::node::NodeId;

/// When physical pages are allocated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Prefault {
    /// Lazily, on first access (by the accessing thread, under the region's policy).
    #[default]
    None,
    /// Now: one byte per page is written from the calling thread.
    Touch,
    /// Now, by the kernel: `MADV_POPULATE_WRITE` (Linux 5.14+), else a touch loop.
    Populate,
}

/// What the region promises about placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Enforcement {
    /// The policy was applied; the kernel may fall back or migrate; nothing was promised.
    #[default]
    Soft,
    /// Strict `Bind`, memory populated, and every page verified on an allowed node.
    Hard,
}

/// `Soft` or `Hard`.
impl core::fmt::Display for Enforcement {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Enforcement::Soft => "Soft",
            Enforcement::Hard => "Hard",
        })
    }
}

/// Page size backing a region.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HugePages {
    /// Base pages (4 KiB on x86_64). When the system's THP mode is `always` the kernel may
    /// still back aligned 2 MiB blocks with huge pages; the Linux backend prevents that
    /// (`MADV_NOHUGEPAGE`) for interleaving policies, whose unit would otherwise become
    /// 2 MiB, and leaves it for the others, where it changes only how pages are grouped.
    #[default]
    None,
    /// Transparent huge pages, asked for with `MADV_HUGEPAGE` (region aligned to 2 MiB).
    Transparent,
    /// Explicit hugetlb 2 MiB pages (`MAP_HUGETLB | MAP_HUGE_2MB`); must be reserved.
    Explicit2M,
    /// Explicit hugetlb 1 GiB pages (`MAP_HUGETLB | MAP_HUGE_1GB`); must be reserved.
    Explicit1G,
}

impl HugePages {
    /// The unit a mapping's length is rounded up to, given the base page size.
    pub fn unit(self, base_page: usize) -> usize {
        match self {
            HugePages::None | HugePages::Transparent => base_page,
            HugePages::Explicit2M => 2 << 20,
            HugePages::Explicit1G => 1 << 30,
        }
    }

    /// Whether these are hugetlb pages from a reserved pool (2 MiB or 1 GiB).
    pub fn is_explicit(self) -> bool {
        matches!(self, HugePages::Explicit2M | HugePages::Explicit1G)
    }
}

/// How node ids in a policy's mask are read (the kernel's mode flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NodeMode {
    /// Ids are physical and follow cpuset changes (no flag).
    #[default]
    Default,
    /// Ids are physical and never remapped (`MPOL_F_STATIC_NODES`); ids outside the
    /// cpuset are allowed and used once the cpuset includes them.
    Static,
    /// Ids are indices into the allowed nodes (`MPOL_F_RELATIVE_NODES`).
    Relative,
}

/// Options for making a region; `Default` gives base pages, `Soft` enforcement, no flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RegionOptions {
    /// Page size backing the region.
    pub huge_pages: HugePages,
    /// Ask for `Enforcement::Hard` (only `MemPolicy::Bind` can be hard).
    pub hard: bool,
    /// How the policy's node ids are read.
    pub node_mode: NodeMode,
    /// `MPOL_F_NUMA_BALANCING`: let NUMA balancing migrate within the nodes (Bind, PreferredMany).
    pub numa_balancing: bool,
    /// `set_mempolicy_home_node` (Linux 5.17): where Bind/PreferredMany allocations start.
    pub home_node: Option<NodeId>,
    /// The most threads `Prefault::Populate` may use, and releasing the pages when the
    /// region is dropped (0: automatic; 1: the calling thread alone, no thread started).
    /// See `numaperf_core::populate::plan_populate` and `plan_release` for the automatic
    /// choice.
    pub populate_threads: usize,
}

impl RegionOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for hard enforcement.
    pub fn hard(mut self) -> Self {
        self.hard = true;
        self
    }

    /// Back the region with these pages.
    pub fn huge_pages(mut self, h: HugePages) -> Self {
        self.huge_pages = h;
        self
    }

    /// `MPOL_F_STATIC_NODES`.
    pub fn static_nodes(mut self) -> Self {
        self.node_mode = NodeMode::Static;
        self
    }

    /// `MPOL_F_RELATIVE_NODES`.
    pub fn relative_nodes(mut self) -> Self {
        self.node_mode = NodeMode::Relative;
        self
    }

    /// At most `n` threads for `Prefault::Populate` and for releasing the pages at drop
    /// (0: automatic; 1: single-threaded).
    pub fn populate_threads(mut self, n: usize) -> Self {
        self.populate_threads = n;
        self
    }

    /// How the policy's node ids are read.
    pub fn node_mode(mut self, mode: NodeMode) -> Self {
        self.node_mode = mode;
        self
    }

    /// `MPOL_F_NUMA_BALANCING`.
    pub fn numa_balancing(mut self) -> Self {
        self.numa_balancing = true;
        self
    }

    /// A home node for Bind/PreferredMany.
    pub fn home_node(mut self, node: NodeId) -> Self {
        self.home_node = Some(node);
        self
    }
}
