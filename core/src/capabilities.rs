//! What a machine's kernel and this process let numaperf do: the kernel version and each
//! feature numaperf uses, huge pages, NUMA balancing, cpuset, memory cgroup, privileges and
//! limits; the parsers for their kernel text, and the hard-mode verdict with its reasons.

use core::fmt;

use crate::error::NumaError;
use crate::options::RegionOptions;
use crate::parse::{ParseError, ParseErrorKind};
use crate::policy::MemPolicy;

/// A Linux kernel release, `major.minor.patch` (what `uname -r` starts with).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KernelVersion {
    /// `6` of 6.12.3.
    pub major: u16,
    /// `12` of 6.12.3.
    pub minor: u16,
    /// `3` of 6.12.3 (0 when the release names none).
    pub patch: u16,
}

impl KernelVersion {
    /// A version.
    pub const fn new(major: u16, minor: u16, patch: u16) -> Self {
        KernelVersion {
            major,
            minor,
            patch,
        }
    }

    /// Reads the version at the start of a release string: `6.1.0-27-cloud-amd64`,
    /// `6.18.0-rc1+`, `5.15.0-1034-azure`, `6.12` (the patch defaults to 0). What follows
    /// the numbers (a `-` or `+` suffix) is the distribution's and is ignored.
    ///
    /// # Errors
    /// A [`ParseError`] when the text does not start with `major.minor`, or a number
    /// exceeds 65535.
    pub fn parse(release: &str) -> Result<Self, ParseError> {
        let b = release.trim().as_bytes();
        let mut pos = 0;
        let number = |pos: &mut usize| -> Result<u16, ParseError> {
            let start = *pos;
            let mut v: u32 = 0;
            while let Some(d) = b.get(*pos).filter(|c| c.is_ascii_digit()) {
                v = v * 10 + u32::from(d - b'0');
                if v > u32::from(u16::MAX) {
                    return Err(err(ParseErrorKind::NumberTooLarge, start));
                }
                *pos += 1;
            }
            if *pos == start {
                let kind = match b.get(start) {
                    None => ParseErrorKind::Empty,
                    Some(_) => ParseErrorKind::ExpectedNumber,
                };
                return Err(err(kind, start));
            }
            Ok(v as u16)
        };
        let major = number(&mut pos)?;
        if b.get(pos) != Some(&b'.') {
            return Err(err(ParseErrorKind::ExpectedNumber, pos));
        }
        pos += 1;
        let minor = number(&mut pos)?;
        let patch = if b.get(pos) == Some(&b'.') {
            pos += 1;
            number(&mut pos)?
        } else {
            0
        };
        Ok(KernelVersion::new(major, minor, patch))
    }
}

/// `6.12.3`
impl fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A kernel feature numaperf uses, each detected without side effects. How the Linux
/// backend detects each is said per variant: a probe is a system call with arguments that
/// cannot change anything (an empty range), whose answer tells a known mode or call from
/// an unknown one; the rest are sysfs files that exist only on kernels with the feature.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFeature {
    /// `MPOL_PREFERRED_MANY` (Linux 5.15). Probe: `mbind` of an empty range with the mode
    /// (0, or `EINVAL` for a mode the kernel does not know).
    PreferredMany,
    /// `set_mempolicy_home_node` (Linux 5.17). Probe: the call on an empty range
    /// (0, or `ENOSYS`).
    HomeNode,
    /// `MPOL_WEIGHTED_INTERLEAVE` (Linux 6.9). Probe: `mbind` of an empty range.
    WeightedInterleave,
    /// The kernel's `auto` mode of the weighted-interleave weights, derived from firmware
    /// bandwidths (Linux 6.16). Sysfs: `weighted_interleave/auto` exists (read, never
    /// written; 6.18 names it `__auto_type`).
    WeightedInterleaveAuto,
    /// `MADV_POPULATE_WRITE` (Linux 5.14). Probe: `madvise` of an empty range with it
    /// (0, or `EINVAL` for an unknown advice).
    PopulateWrite,
    /// Multi-size transparent huge pages for anonymous memory (Linux 6.8). Sysfs:
    /// `transparent_hugepage/hugepages-<size>kB` directories exist.
    MultiSizeThp,
    /// `MPOL_F_NUMA_BALANCING` with `MPOL_BIND` (Linux 5.12). Probe: `mbind` of an empty
    /// range with the flag.
    BalancingFlag,
}

impl KernelFeature {
    /// Every feature, in the order reports list them.
    pub const ALL: [KernelFeature; 7] = [
        KernelFeature::PreferredMany,
        KernelFeature::HomeNode,
        KernelFeature::WeightedInterleave,
        KernelFeature::WeightedInterleaveAuto,
        KernelFeature::PopulateWrite,
        KernelFeature::MultiSizeThp,
        KernelFeature::BalancingFlag,
    ];

    /// The kernel's name for it, e.g. `"MPOL_PREFERRED_MANY"`.
    pub const fn name(self) -> &'static str {
        match self {
            KernelFeature::PreferredMany => "MPOL_PREFERRED_MANY",
            KernelFeature::HomeNode => "set_mempolicy_home_node",
            KernelFeature::WeightedInterleave => "MPOL_WEIGHTED_INTERLEAVE",
            KernelFeature::WeightedInterleaveAuto => "weighted interleave auto mode",
            KernelFeature::PopulateWrite => "MADV_POPULATE_WRITE",
            KernelFeature::MultiSizeThp => "multi-size THP",
            KernelFeature::BalancingFlag => "MPOL_F_NUMA_BALANCING",
        }
    }

    /// The first Linux release that has it.
    pub const fn since(self) -> KernelVersion {
        let (major, minor) = match self {
            KernelFeature::PreferredMany => (5, 15),
            KernelFeature::HomeNode => (5, 17),
            KernelFeature::WeightedInterleave => (6, 9),
            KernelFeature::WeightedInterleaveAuto => (6, 16),
            KernelFeature::PopulateWrite => (5, 14),
            KernelFeature::MultiSizeThp => (6, 8),
            KernelFeature::BalancingFlag => (5, 12),
        };
        KernelVersion::new(major, minor, 0)
    }

    const fn since_text(self) -> &'static str {
        match self {
            KernelFeature::PreferredMany => "Linux 5.15",
            KernelFeature::HomeNode => "Linux 5.17",
            KernelFeature::WeightedInterleave => "Linux 6.9",
            KernelFeature::WeightedInterleaveAuto => "Linux 6.16",
            KernelFeature::PopulateWrite => "Linux 5.14",
            KernelFeature::MultiSizeThp => "Linux 6.8",
            KernelFeature::BalancingFlag => "Linux 5.12",
        }
    }

    /// The error for a kernel without it: [`NumaError::Unsupported`] naming it.
    pub const fn unsupported(self) -> NumaError {
        NumaError::Unsupported {
            feature: self.name(),
            since: self.since_text(),
        }
    }

    /// The kernel features a region with `policy` and `opts` cannot be made without:
    /// the policy's mode, a home node, the balancing flag. (Weighted interleave is laid
    /// out without the kernel's mode where the kernel lacks it: see `region::apply_policy`;
    /// populate falls back to touching without `MADV_POPULATE_WRITE`.)
    pub fn required_by(policy: &MemPolicy, opts: &RegionOptions) -> FeatureSet {
        let mut f = FeatureSet::EMPTY;
        if let MemPolicy::PreferredMany(_) = policy {
            f.insert(KernelFeature::PreferredMany);
        }
        if opts.home_node.is_some() {
            f.insert(KernelFeature::HomeNode);
        }
        if opts.numa_balancing {
            f.insert(KernelFeature::BalancingFlag);
        }
        f
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for KernelFeature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of [`KernelFeature`]s.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct FeatureSet(u16);

impl FeatureSet {
    /// No feature.
    pub const EMPTY: FeatureSet = FeatureSet(0);
    /// Every feature.
    pub const ALL: FeatureSet = FeatureSet((1 << KernelFeature::ALL.len()) - 1);

    /// Whether `f` is in the set.
    pub const fn contains(self, f: KernelFeature) -> bool {
        self.0 & f.bit() != 0
    }

    /// Adds `f`.
    pub fn insert(&mut self, f: KernelFeature) {
        self.0 |= f.bit();
    }

    /// Removes `f`.
    pub fn remove(&mut self, f: KernelFeature) {
        self.0 &= !f.bit();
    }

    /// The set with `f` set as `on` says.
    pub fn with(mut self, f: KernelFeature, on: bool) -> Self {
        if on {
            self.insert(f);
        } else {
            self.remove(f);
        }
        self
    }

    /// The features of both sets.
    pub const fn intersection(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & other.0)
    }

    /// The features of `self` not in `other`.
    pub const fn difference(self, other: FeatureSet) -> FeatureSet {
        FeatureSet(self.0 & !other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The features in the set, in [`KernelFeature::ALL`]'s order.
    pub fn iter(self) -> impl Iterator<Item = KernelFeature> {
        KernelFeature::ALL
            .into_iter()
            .filter(move |f| self.contains(*f))
    }
}

impl FromIterator<KernelFeature> for FeatureSet {
    fn from_iter<T: IntoIterator<Item = KernelFeature>>(iter: T) -> Self {
        let mut s = FeatureSet::EMPTY;
        iter.into_iter().for_each(|f| s.insert(f));
        s
    }
}

/// `{MPOL_PREFERRED_MANY, MADV_POPULATE_WRITE}`
impl fmt::Debug for FeatureSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// The system-wide transparent huge page mode (`transparent_hugepage/enabled`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThpMode {
    /// Every anonymous mapping may get huge pages.
    Always,
    /// Only ranges advised `MADV_HUGEPAGE` (what `HugePages::Transparent` does).
    Madvise,
    /// None.
    Never,
    /// A size's mode only: follow the system mode (`hugepages-<size>kB/enabled`).
    Inherit,
}

impl ThpMode {
    /// Reads the selected word of a THP mode file: `always [madvise] never`, or a size's
    /// `always inherit [madvise] never`.
    ///
    /// # Errors
    /// A [`ParseError`] when no word is in brackets, or the word is not a mode.
    pub fn parse(text: &str) -> Result<ThpMode, ParseError> {
        let open = text
            .find('[')
            .ok_or(err(ParseErrorKind::Empty, text.len()))?;
        let close = text[open..]
            .find(']')
            .ok_or(err(ParseErrorKind::UnexpectedChar('['), open))?;
        Ok(match &text[open + 1..open + close] {
            "always" => ThpMode::Always,
            "madvise" => ThpMode::Madvise,
            "never" => ThpMode::Never,
            "inherit" => ThpMode::Inherit,
            w => {
                let c = w.chars().next().unwrap_or(']');
                return Err(err(ParseErrorKind::UnexpectedChar(c), open + 1));
            }
        })
    }

    /// The word the kernel uses.
    pub const fn name(self) -> &'static str {
        match self {
            ThpMode::Always => "always",
            ThpMode::Madvise => "madvise",
            ThpMode::Never => "never",
            ThpMode::Inherit => "inherit",
        }
    }
}

/// One multi-size THP size and its mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThpSize {
    /// The folio size in bytes (`hugepages-64kB`: 65536).
    pub size: u64,
    /// Its mode (`Inherit`: the system mode).
    pub mode: ThpMode,
}

/// The explicit (hugetlb) huge pages of one size on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HugePagePool {
    /// The node (`None`: the system-wide pool of a kernel without a node tree).
    pub node: Option<crate::node::NodeId>,
    /// The huge page size in bytes.
    pub page_size: u64,
    /// Pages reserved (`nr_hugepages`).
    pub total: u64,
    /// Pages free (`free_hugepages`).
    pub free: u64,
}

/// What `/proc/sys/kernel/numa_balancing` says: automatic NUMA balancing's modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumaBalancing {
    /// Bit 0 (`NUMA_BALANCING_NORMAL`): pages of unbound memory may migrate toward the
    /// CPUs using them.
    pub normal: bool,
    /// Bit 1 (`NUMA_BALANCING_MEMORY_TIERING`, Linux 5.18): hot pages may be promoted from
    /// slow-tier (CXL, PMEM) nodes.
    pub memory_tiering: bool,
}

impl NumaBalancing {
    /// Reads the file's number (`0` off, `1` normal, `2` tiering, `3` both; other bits,
    /// which no kernel defines yet, are ignored).
    ///
    /// # Errors
    /// A [`ParseError`] for text that is not a decimal number.
    pub fn parse(text: &str) -> Result<NumaBalancing, ParseError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(err(ParseErrorKind::Empty, 0));
        }
        if let Some(i) = t.bytes().position(|b| !b.is_ascii_digit()) {
            return Err(err(ParseErrorKind::ExpectedNumber, i));
        }
        let v: u64 = t
            .parse()
            .map_err(|_| err(ParseErrorKind::NumberTooLarge, 0))?;
        Ok(NumaBalancing {
            normal: v & 1 != 0,
            memory_tiering: v & 2 != 0,
        })
    }

    /// Whether any mode is on.
    pub const fn is_on(self) -> bool {
        self.normal || self.memory_tiering
    }
}

impl fmt::Display for NumaBalancing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.normal, self.memory_tiering) {
            (false, false) => "off",
            (true, false) => "on",
            (false, true) => "memory tiering only",
            (true, true) => "on, with memory tiering",
        })
    }
}

/// An `RLIMIT_MEMLOCK`: bytes this process may lock (`None`: unlimited).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemlockLimit {
    /// The soft limit (what applies).
    pub soft: Option<u64>,
    /// The hard limit (the most the soft one may be raised to without privilege).
    pub hard: Option<u64>,
}

/// Whether the mempolicy system calls (`mbind`, `move_pages`) answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MempolicyCalls {
    /// They answer.
    Available,
    /// `ENOSYS`: a kernel without `CONFIG_NUMA`, or an architecture without numaperf's
    /// raw system call layer.
    Missing,
    /// `EPERM`: refused, as a seccomp profile (a container's default) does.
    Denied,
    /// The backend has none (the portable backend) or did not say.
    NotApplicable,
}

/// Why hard (verified) placement cannot be had here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HardModeBlocker {
    /// The backend cannot see which node a page is on, so nothing can be verified.
    NoPlacementQuery,
    /// The mempolicy system calls are missing or refused (see [`MempolicyCalls`]).
    MempolicyCalls(MempolicyCalls),
    /// No node this process may use has memory.
    NoUsableMemoryNode,
}

impl fmt::Display for HardModeBlocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HardModeBlocker::NoPlacementQuery => f.write_str(
                "this backend cannot see which node a page is on (no move_pages), so placement cannot be verified",
            ),
            HardModeBlocker::MempolicyCalls(MempolicyCalls::Missing) => f.write_str(
                "the kernel has no mempolicy system calls (ENOSYS: no CONFIG_NUMA, or an unsupported architecture)",
            ),
            HardModeBlocker::MempolicyCalls(MempolicyCalls::Denied) => f.write_str(
                "the mempolicy system calls are refused (EPERM: a seccomp profile?)",
            ),
            HardModeBlocker::MempolicyCalls(_) => {
                f.write_str("this backend has no mempolicy system calls")
            }
            HardModeBlocker::NoUsableMemoryNode => {
                f.write_str("no node this process may use has memory")
            }
        }
    }
}

/// The `CapEff:` mask of `/proc/self/status` text (`None`: no such line).
///
/// # Errors
/// A [`ParseError`] for a value that is not hexadecimal.
pub fn parse_cap_eff(status: &str) -> Option<Result<u64, ParseError>> {
    let line = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    let hex = line.trim();
    Some(u64::from_str_radix(hex, 16).map_err(|_| err(ParseErrorKind::ExpectedNumber, 0)))
}

/// The bit of `CAP_SYS_NICE` in a capability mask.
pub const CAP_SYS_NICE: u32 = 23;

const fn err(kind: ParseErrorKind, pos: usize) -> ParseError {
    ParseError { kind, pos }
}

#[cfg(feature = "alloc")]
mod report;
#[cfg(feature = "alloc")]
pub use report::{Capabilities, MemoryCgroup};

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::node::{NodeId, NodeMask};
    use std::string::ToString;

    #[test]
    fn kernel_releases_read_as_distributions_write_them() {
        let v = |s| KernelVersion::parse(s);
        assert_eq!(v("6.1.0-27-cloud-amd64"), Ok(KernelVersion::new(6, 1, 0)));
        assert_eq!(v("6.18.0-rc1+\n"), Ok(KernelVersion::new(6, 18, 0)));
        assert_eq!(v("5.15.0-1034-azure"), Ok(KernelVersion::new(5, 15, 0)));
        assert_eq!(v("4.19.325"), Ok(KernelVersion::new(4, 19, 325)));
        assert_eq!(v("6.12"), Ok(KernelVersion::new(6, 12, 0)));
        assert_eq!(v("6.12-foo"), Ok(KernelVersion::new(6, 12, 0)));
        assert_eq!(v("").unwrap_err().kind, ParseErrorKind::Empty);
        assert_eq!(v("6").unwrap_err(), err(ParseErrorKind::ExpectedNumber, 1));
        assert_eq!(
            v("6.x").unwrap_err(),
            err(ParseErrorKind::ExpectedNumber, 2)
        );
        assert_eq!(
            v("70000.1").unwrap_err().kind,
            ParseErrorKind::NumberTooLarge
        );
        assert!(KernelVersion::new(6, 9, 0) > KernelVersion::new(5, 17, 3));
        assert_eq!(KernelVersion::new(6, 12, 3).to_string(), "6.12.3");
    }

    #[test]
    fn features_name_their_first_kernel() {
        assert_eq!(
            KernelFeature::WeightedInterleave.unsupported(),
            NumaError::Unsupported {
                feature: "MPOL_WEIGHTED_INTERLEAVE",
                since: "Linux 6.9"
            }
        );
        for f in KernelFeature::ALL {
            let NumaError::Unsupported { since, .. } = f.unsupported() else {
                unreachable!()
            };
            let v = f.since();
            assert_eq!(since, std::format!("Linux {}.{}", v.major, v.minor));
        }
        let all: FeatureSet = KernelFeature::ALL.into_iter().collect();
        assert_eq!(all, FeatureSet::ALL);
        assert_eq!(FeatureSet::ALL.iter().count(), 7);
        let s = FeatureSet::EMPTY.with(KernelFeature::HomeNode, true);
        assert!(s.contains(KernelFeature::HomeNode) && !s.contains(KernelFeature::PreferredMany));
        assert!(s.with(KernelFeature::HomeNode, false).is_empty());
        assert_eq!(
            FeatureSet::ALL.difference(s).iter().count(),
            6,
            "{:?}",
            FeatureSet::ALL.difference(s)
        );
    }

    #[test]
    fn a_region_needs_the_features_of_its_mode_and_options() {
        let one = NodeMask::single(NodeId::new(0));
        let o = RegionOptions::new();
        assert!(KernelFeature::required_by(&MemPolicy::Bind(one), &o).is_empty());
        let pm = KernelFeature::required_by(
            &MemPolicy::PreferredMany(one),
            &o.home_node(NodeId::new(0)),
        );
        assert!(pm.contains(KernelFeature::PreferredMany) && pm.contains(KernelFeature::HomeNode));
        let bal = KernelFeature::required_by(&MemPolicy::Bind(one), &o.numa_balancing());
        assert_eq!(
            bal.iter().collect::<std::vec::Vec<_>>(),
            [KernelFeature::BalancingFlag]
        );
    }

    #[test]
    fn thp_modes_are_the_bracketed_word() {
        assert_eq!(
            ThpMode::parse("always [madvise] never\n"),
            Ok(ThpMode::Madvise)
        );
        assert_eq!(
            ThpMode::parse("[always] madvise never"),
            Ok(ThpMode::Always)
        );
        assert_eq!(
            ThpMode::parse("always [inherit] madvise never"),
            Ok(ThpMode::Inherit)
        );
        assert_eq!(
            ThpMode::parse("always madvise never").unwrap_err().kind,
            ParseErrorKind::Empty
        );
        assert_eq!(ThpMode::parse("[always madvise").unwrap_err().pos, 0);
        assert_eq!(
            ThpMode::parse("[sometimes]").unwrap_err().kind,
            ParseErrorKind::UnexpectedChar('s')
        );
    }

    #[test]
    fn balancing_modes_are_bits() {
        let b = |s| NumaBalancing::parse(s).unwrap();
        assert!(!b("0\n").is_on());
        assert_eq!(b("1\n").to_string(), "on");
        assert_eq!(b("2").to_string(), "memory tiering only");
        assert_eq!(b("3").to_string(), "on, with memory tiering");
        assert!(NumaBalancing::parse("").is_err());
        assert!(NumaBalancing::parse("on").is_err());
    }

    #[test]
    fn cap_eff_is_read_from_status() {
        // This host's: every capability up to 40 but CAP_SYS_RESOURCE (24).
        let status = "Name:\tx\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n";
        let caps = parse_cap_eff(status).unwrap().unwrap();
        assert!(caps & (1 << CAP_SYS_NICE) != 0 && caps & (1 << 24) == 0);
        assert_eq!(parse_cap_eff("CapEff:\t0000000000000000\n"), Some(Ok(0)));
        assert_eq!(parse_cap_eff("Name:\tx\n"), None);
        assert!(parse_cap_eff("CapEff:\tzz\n").unwrap().is_err());
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(s in "\\PC{0,40}") {
            let _ = KernelVersion::parse(&s);
            let _ = ThpMode::parse(&s);
            let _ = NumaBalancing::parse(&s);
            let _ = parse_cap_eff(&s);
        }
    }
}
