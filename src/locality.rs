//! Measured locality: [`LocalitySnapshot`] reads what the kernel counted (per-node
//! `numastat`, NUMA balancing's hint faults, this process's pages per node per mapping, and
//! the counters of pools it is given); [`LocalityReport::since`] grades what changed.
//!
//! numaperf 0.1.0's `LocalityReport` grades counters the application increments itself;
//! this one grades what the machine measured between two points.

use std::fmt;
use std::time::{Duration, Instant};

pub use numaperf_core::locality::{
    BalancingStat, LocalitySource, MappingKind, MappingPages, NumaStat,
};
use numaperf_core::locality_grade::{LocalityFigures, PoolFigures, RegionFigures};
pub use numaperf_core::locality_grade::{
    LocalityHealth, Measure, Measured, PoolNodeCounters, Recommendation, ADVISE_BELOW_PERCENT,
    EXCELLENT_PERCENT, FAIR_PERCENT, GOOD_PERCENT, MIN_EVENTS, MIN_REGION_PAGES,
};
use numaperf_core::{NodeId, NumaError, PlacementBackend};

use crate::pool::{BufferPool, WorkerPool};
use crate::NumaRegion;

/// Where [`LocalitySnapshot::take`] reads: the kernel's files.
#[cfg(all(target_os = "linux", not(feature = "portable")))]
pub type DefaultLocality = numaperf_linux::LinuxLocality;
/// Where [`LocalitySnapshot::take`] reads: nowhere without the Linux backend.
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
pub type DefaultLocality = NoLocality;

/// A pool's own per-node counters, for a [`LocalitySnapshot`] to compare: the worker
/// pool's local and stolen tasks, the buffer pool's fallbacks.
pub trait PoolCounters {
    /// The counters now, per node, ascending by node.
    fn pool_counters(&self) -> Vec<(NodeId, PoolNodeCounters)>;
}

impl<B: PlacementBackend> PoolCounters for WorkerPool<B> {
    fn pool_counters(&self) -> Vec<(NodeId, PoolNodeCounters)> {
        self.stats()
            .into_iter()
            .map(|(n, s)| {
                let c = PoolNodeCounters {
                    tasks_local: s.local,
                    tasks_stolen: s.stolen,
                    ..PoolNodeCounters::default()
                };
                (n, c)
            })
            .collect()
    }
}

impl<B: PlacementBackend + Clone + 'static> PoolCounters for BufferPool<B> {
    fn pool_counters(&self) -> Vec<(NodeId, PoolNodeCounters)> {
        self.all_stats()
            .into_iter()
            .map(|(n, s)| {
                let c = PoolNodeCounters {
                    fallback_exhausted: s.fallback_exhausted,
                    fallback_no_memory: s.fallback_no_memory,
                    ..PoolNodeCounters::default()
                };
                (n, c)
            })
            .collect()
    }
}

/// A region watched by a snapshot: its address range and the node it is used from.
#[derive(Clone, Debug)]
struct WatchedRegion {
    name: String,
    start: u64,
    end: u64,
    used_from: NodeId,
}

struct WatchedPool<'p> {
    name: String,
    pool: &'p dyn PoolCounters,
    at_start: Vec<(NodeId, PoolNodeCounters)>,
}

/// The machine's locality counters at one point, to compare a later point with
/// ([`LocalityReport::since`]).
///
/// ```no_run
/// use numaperf::{LocalityReport, LocalitySnapshot};
/// let before = LocalitySnapshot::take()?;
/// // ... the work to measure ...
/// let report = LocalityReport::since(&before)?;
/// println!("{report}");
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct LocalitySnapshot<'p, S: LocalitySource = DefaultLocality> {
    source: S,
    at: Instant,
    numastat: Vec<(NodeId, NumaStat)>,
    balancing: Option<BalancingStat>,
    process: Vec<(NodeId, u64)>,
    regions: Vec<WatchedRegion>,
    pools: Vec<WatchedPool<'p>>,
}

/// Where there is no Linux backend: no locality counters, every read is `Unsupported`.
#[cfg(any(not(target_os = "linux"), feature = "portable"))]
#[derive(Clone, Copy, Debug, Default)]
pub struct NoLocality;

#[cfg(any(not(target_os = "linux"), feature = "portable"))]
impl NoLocality {
    /// The (only) value.
    pub fn new() -> Self {
        NoLocality
    }
}

#[cfg(any(not(target_os = "linux"), feature = "portable"))]
const UNSUPPORTED: NumaError = NumaError::Unsupported {
    feature: "kernel locality counters (numastat, numa_maps)",
    since: "Linux",
};

#[cfg(any(not(target_os = "linux"), feature = "portable"))]
impl LocalitySource for NoLocality {
    fn numastat(&self) -> Result<Vec<(NodeId, NumaStat)>, NumaError> {
        Err(UNSUPPORTED)
    }
    fn balancing(&self) -> Result<Option<BalancingStat>, NumaError> {
        Err(UNSUPPORTED)
    }
    fn mappings(&self) -> Result<Vec<MappingPages>, NumaError> {
        Err(UNSUPPORTED)
    }
    fn current_node(&self) -> Result<NodeId, NumaError> {
        Err(UNSUPPORTED)
    }
    fn cpu_nodes(&self) -> Result<Option<numaperf_core::NodeMask>, NumaError> {
        Err(UNSUPPORTED)
    }
}

impl LocalitySnapshot<'static, DefaultLocality> {
    /// Reads the live kernel's counters now.
    ///
    /// # Errors
    /// [`NumaError::Unsupported`] where there is no Linux backend; on Linux
    /// [`NumaError::Sysfs`] naming a `numastat`, `/proc/vmstat`, `numa_balancing` or
    /// `/proc/self/numa_maps` file that cannot be read or does not parse.
    pub fn take() -> Result<Self, NumaError> {
        Self::take_in(DefaultLocality::new())
    }
}

/// Resident bytes per node of all `maps`, ascending by node.
fn bytes_per_node<'a>(maps: impl IntoIterator<Item = &'a MappingPages>) -> Vec<(NodeId, u64)> {
    let mut out: Vec<(NodeId, u64)> = Vec::new();
    for m in maps {
        for &(n, _) in &m.nodes {
            let b = m.bytes_on(n);
            match out.binary_search_by_key(&n, |&(k, _)| k) {
                Ok(i) => out[i].1 = out[i].1.saturating_add(b),
                Err(i) => out.insert(i, (n, b)),
            }
        }
    }
    out
}

impl<'p, S: LocalitySource> LocalitySnapshot<'p, S> {
    /// Reads `source`'s counters now (the simulator, or a [`DefaultLocality`] pointed at
    /// captured files).
    ///
    /// # Errors
    /// The source's reading errors.
    pub fn take_in(source: S) -> Result<Self, NumaError> {
        let numastat = source.numastat()?;
        let balancing = source.balancing()?;
        let process = bytes_per_node(&source.mappings()?);
        Ok(LocalitySnapshot {
            source,
            at: Instant::now(),
            numastat,
            balancing,
            process,
            regions: Vec::new(),
            pools: Vec::new(),
        })
    }

    /// Watches `region` under `name`, used from the calling thread's node: the report
    /// says where its pages are and grades them against that node.
    ///
    /// # Errors
    /// The source's refusal to tell the calling thread's node.
    pub fn watch_region<B: PlacementBackend>(
        self,
        name: &str,
        region: &NumaRegion<B>,
    ) -> Result<Self, NumaError> {
        let node = self.source.current_node()?;
        Ok(self.watch_region_used_from(name, region, node))
    }

    /// Watches `region` under `name`, used from `node`.
    pub fn watch_region_used_from<B: PlacementBackend>(
        mut self,
        name: &str,
        region: &NumaRegion<B>,
        node: NodeId,
    ) -> Self {
        let l = region.layout();
        let start = l.as_ptr() as u64;
        self.regions.push(WatchedRegion {
            name: name.to_string(),
            start,
            end: start.saturating_add(l.mapped_len() as u64),
            used_from: node,
        });
        self
    }

    /// Watches a pool's own counters under `name` (read now, and again by the report).
    pub fn watch_pool(mut self, name: &str, pool: &'p dyn PoolCounters) -> Self {
        self.pools.push(WatchedPool {
            name: name.to_string(),
            at_start: pool.pool_counters(),
            pool,
        });
        self
    }

    /// Each memory node's `numastat` counters when the snapshot was taken.
    pub fn numastat(&self) -> &[(NodeId, NumaStat)] {
        &self.numastat
    }

    /// NUMA balancing's counters when the snapshot was taken (`None`: balancing off).
    pub fn balancing(&self) -> Option<&BalancingStat> {
        self.balancing.as_ref()
    }
}

/// What the machine measured between a [`LocalitySnapshot`] and now, graded.
#[derive(Clone, Debug)]
pub struct LocalityReport {
    elapsed: Duration,
    figures: LocalityFigures,
    balancing_on: bool,
    process_before: Vec<(NodeId, u64)>,
    process_now: Vec<(NodeId, u64)>,
    mappings: Vec<MappingPages>,
    /// For each of `mappings`, the watched region it belongs to (index into regions).
    region_of: Vec<Option<usize>>,
    health: LocalityHealth,
    recommendations: Vec<Recommendation>,
}

impl LocalityReport {
    /// Reads the counters again through the snapshot's source and grades the change:
    /// each node's allocations, hint faults, the watched regions' pages as they are now,
    /// and the watched pools' counters.
    ///
    /// # Errors
    /// The source's reading errors.
    pub fn since<S: LocalitySource>(
        snapshot: &LocalitySnapshot<'_, S>,
    ) -> Result<LocalityReport, NumaError> {
        let src = &snapshot.source;
        let numastat = src.numastat()?;
        let balancing = src.balancing()?;
        let mappings = src.mappings()?;
        let elapsed = snapshot.at.elapsed();
        let nodes = numastat
            .iter()
            .map(|&(n, now)| {
                let before = snapshot
                    .numastat
                    .iter()
                    .find(|(k, _)| *k == n)
                    .map_or_else(NumaStat::default, |&(_, s)| s);
                (n, now.since(&before))
            })
            .collect();
        let balancing_delta = match (&balancing, &snapshot.balancing) {
            (Some(now), Some(before)) => Some(now.since(before)),
            // Turned on in between: no earlier reading to compare with.
            _ => None,
        };
        let region_of: Vec<Option<usize>> = mappings
            .iter()
            .map(|m| {
                snapshot
                    .regions
                    .iter()
                    .position(|r| (r.start..r.end).contains(&m.start))
            })
            .collect();
        let regions = snapshot
            .regions
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut pages: Vec<(NodeId, u64)> = Vec::new();
                for (m, _) in mappings
                    .iter()
                    .zip(&region_of)
                    .filter(|(_, o)| **o == Some(i))
                {
                    for &(n, p) in &m.nodes {
                        match pages.binary_search_by_key(&n, |&(k, _)| k) {
                            Ok(j) => pages[j].1 += p,
                            Err(j) => pages.insert(j, (n, p)),
                        }
                    }
                }
                RegionFigures {
                    name: r.name.clone(),
                    used_from: r.used_from,
                    pages,
                }
            })
            .collect();
        let pools = snapshot
            .pools
            .iter()
            .map(|p| PoolFigures {
                name: p.name.clone(),
                nodes: p
                    .pool
                    .pool_counters()
                    .into_iter()
                    .map(|(n, now)| {
                        let before = p
                            .at_start
                            .iter()
                            .find(|(k, _)| *k == n)
                            .map_or_else(PoolNodeCounters::default, |&(_, c)| c);
                        (n, now.since(&before))
                    })
                    .collect(),
            })
            .collect();
        let figures = LocalityFigures {
            nodes,
            balancing: balancing_delta,
            regions,
            pools,
            cpu_nodes: src.cpu_nodes()?,
        };
        Ok(LocalityReport {
            elapsed,
            health: figures.health(),
            recommendations: figures.recommendations(),
            figures,
            balancing_on: balancing.is_some(),
            process_before: snapshot.process.clone(),
            process_now: bytes_per_node(&mappings),
            mappings,
            region_of,
        })
    }

    /// The grade: the worst of [`Self::measured`] (see [`LocalityHealth`]'s thresholds).
    pub fn health(&self) -> LocalityHealth {
        self.health
    }

    /// What the figures suggest (empty when every graded figure is excellent).
    pub fn recommendations(&self) -> &[Recommendation] {
        &self.recommendations
    }

    /// Every figure large enough to grade, with its share and grade.
    pub fn measured(&self) -> Vec<Measured> {
        self.figures.measured()
    }

    /// The raw figures: counter increases per node, hint faults, watched regions and pools.
    pub fn figures(&self) -> &LocalityFigures {
        &self.figures
    }

    /// This node's `numastat` increases over the period.
    pub fn numastat(&self, node: NodeId) -> Option<NumaStat> {
        self.figures
            .nodes
            .iter()
            .find(|(n, _)| *n == node)
            .map(|&(_, s)| s)
    }

    /// This process's mappings now, with their resident pages per node.
    pub fn mappings(&self) -> &[MappingPages] {
        &self.mappings
    }

    /// The watched region a mapping of [`Self::mappings`] belongs to.
    pub fn region_of(&self, mapping: usize) -> Option<&str> {
        let i = (*self.region_of.get(mapping)?)?;
        Some(self.figures.regions.get(i)?.name.as_str())
    }

    /// This process's resident bytes per node now.
    pub fn process_bytes(&self) -> &[(NodeId, u64)] {
        &self.process_now
    }

    /// Time between the snapshot and the report.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }
}

/// `12.0 MiB`
struct Bytes(u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut v = self.0 as f64;
        let mut u = 0;
        while v >= 1024.0 && u + 1 < UNITS.len() {
            v /= 1024.0;
            u += 1;
        }
        if u == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{v:.1} {}", UNITS[u])
        }
    }
}

fn write_per_node(f: &mut fmt::Formatter<'_>, per_node: &[(NodeId, u64)]) -> fmt::Result {
    if per_node.is_empty() {
        return f.write_str("none");
    }
    for (i, &(n, b)) in per_node.iter().enumerate() {
        let sep = if i == 0 { "" } else { " " };
        write!(f, "{sep}node{n}={}", Bytes(b))?;
    }
    Ok(())
}

/// Mappings listed by the report besides the watched regions' ones.
const LARGEST_MAPPINGS: usize = 6;

impl fmt::Display for LocalityReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "Locality over {:.3} s: {}",
            self.elapsed.as_secs_f64(),
            self.health
        )?;
        writeln!(
            f,
            "Allocations per node (numastat increases; every process and the kernel count):"
        )?;
        writeln!(
            f,
            "  {:>4} {:>10} {:>10} {:>12} {:>14} {:>10} {:>10}",
            "node",
            "numa_hit",
            "numa_miss",
            "numa_foreign",
            "interleave_hit",
            "local_node",
            "other_node"
        )?;
        for (n, s) in &self.figures.nodes {
            writeln!(
                f,
                "  {:>4} {:>10} {:>10} {:>12} {:>14} {:>10} {:>10}",
                n.get(),
                s.numa_hit,
                s.numa_miss,
                s.numa_foreign,
                s.interleave_hit,
                s.local_node,
                s.other_node
            )?;
        }
        match &self.figures.balancing {
            Some(b) => writeln!(
                f,
                "NUMA balancing (mode {}): {} hint faults, {} local, {} remote; {} pages migrated",
                b.mode,
                b.hint_faults,
                b.hint_faults_local,
                b.hint_faults_remote(),
                b.pages_migrated
            )?,
            None if self.balancing_on => writeln!(
                f,
                "NUMA balancing: turned on during the period (not compared)"
            )?,
            None => writeln!(f, "NUMA balancing: off")?,
        }
        f.write_str("This process, resident: ")?;
        write_per_node(f, &self.process_now)?;
        f.write_str(" (at the snapshot: ")?;
        write_per_node(f, &self.process_before)?;
        writeln!(f, ")")?;
        for kind in [
            MappingKind::Anon,
            MappingKind::Heap,
            MappingKind::Stack,
            MappingKind::File,
        ] {
            let per = bytes_per_node(self.mappings.iter().filter(|m| m.kind == kind));
            if !per.is_empty() {
                write!(f, "  {kind:<5} ")?;
                write_per_node(f, &per)?;
                writeln!(f)?;
            }
        }
        let mut order: Vec<usize> = (0..self.mappings.len()).collect();
        order.sort_by_key(|&i| {
            let m = &self.mappings[i];
            (
                self.region_of[i].is_none(),
                std::cmp::Reverse(m.resident().saturating_mul(m.page_size)),
            )
        });
        let watched = self.region_of.iter().filter(|r| r.is_some()).count();
        writeln!(f, "Mappings (watched regions, then the largest):")?;
        for &i in order.iter().take(watched + LARGEST_MAPPINGS) {
            let m = &self.mappings[i];
            if m.resident() == 0 && self.region_of[i].is_none() {
                continue;
            }
            write!(f, "  {:012x} {:<5} {:<16} ", m.start, m.kind, m.policy)?;
            let per: Vec<(NodeId, u64)> =
                m.nodes.iter().map(|&(n, _)| (n, m.bytes_on(n))).collect();
            write_per_node(f, &per)?;
            if let Some(r) = self.region_of(i) {
                write!(f, "  region {r}")?;
            } else if let Some(file) = &m.file {
                write!(f, "  {file}")?;
            }
            writeln!(f)?;
        }
        let measured = self.measured();
        if measured.is_empty() {
            writeln!(
                f,
                "Graded: nothing (fewer than {MIN_EVENTS} allocations, faults or tasks)"
            )?;
        } else {
            writeln!(f, "Graded:")?;
            for m in &measured {
                writeln!(f, "  {m}")?;
            }
        }
        if self.recommendations.is_empty() {
            return f.write_str("Recommendations: none");
        }
        f.write_str("Recommendations:")?;
        for r in &self.recommendations {
            write!(f, "\n  - {r}")?;
        }
        Ok(())
    }
}
