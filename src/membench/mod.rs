//! Memory latency and bandwidth between every CPU node and every memory node, measured
//! the way Intel MLC's matrices are: buffers bound to the memory node (and verified there),
//! threads pinned to CPUs of the CPU node (and checked there). Generic over the backend.
//!
//! On a simulated four-node machine (the simulator's memory is real memory, so the
//! figures are real, though they say nothing about NUMA):
//! ```
//! use std::time::Duration;
//! use numaperf::membench::{self, BenchConfig};
//! let sim = numaperf_sim::SimMachine::from_spec("4 nodes x 1 cpus x 64 MiB")?;
//! let config = BenchConfig::new(256 << 10).duration(Duration::from_millis(1));
//! let report = membench::run_in(&sim, &config, &mut |_| {})?;
//! assert_eq!(report.latency_ns.len(), 4); // 4 CPU nodes x
//! assert_eq!(report.latency_ns[0].len(), 4); //   4 memory nodes
//! assert!(report.memory.iter().all(|m| m.verified));
//! # Ok::<(), numaperf::NumaError>(())
//! ```

mod chase;
mod clock;
mod gate;
mod stream;

use std::thread;
use std::time::Duration;

use numaperf_core::{
    CpuSet, Enforcement, HugePages, MemPolicy, NodeId, NodeMask, NumaError, PlacementBackend,
    Prefault, RegionOptions, TopologyInfo,
};

pub use stream::Traffic;

use crate::thread::{node_cpus, pin_to_cpus};
use crate::NumaRegion;
use gate::StartGate;

/// The smallest buffer a bench takes.
pub const MIN_SIZE: usize = 4096;
/// The default buffer size when the last-level cache is small or unknown.
pub const DEFAULT_MIN_SIZE: usize = 256 << 20;

/// What to measure and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BenchConfig {
    /// Bytes of the buffer on each memory node (the pointer chase's cycle covers all of
    /// it; the bandwidth threads split it into one slice each).
    pub size: usize,
    /// Bandwidth threads per CPU node, each pinned to a CPU of its own (`None`: one per
    /// CPU of the node this process may use; more than the node has: as many as it has;
    /// never so many that a thread's slice is under two cache lines).
    pub threads: Option<usize>,
    /// How long each figure is measured (at least one full pass for bandwidth), in each
    /// measuring thread's own CPU time on Linux, wall-clock time elsewhere.
    pub duration: Duration,
    /// Seeds the chase's random cycle (the same seed lays the same cycle).
    pub seed: u64,
}

impl BenchConfig {
    /// `size` bytes per memory node, every allowed CPU, 500 ms per figure.
    pub fn new(size: usize) -> Self {
        BenchConfig {
            size,
            threads: None,
            duration: Duration::from_millis(500),
            seed: 0x6e75_6d61_7065_7266,
        }
    }

    /// Sets the bandwidth threads per CPU node.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Sets the time per figure.
    pub fn duration(mut self, d: Duration) -> Self {
        self.duration = d;
        self
    }

    /// Whether this configuration can run (before any memory is mapped).
    ///
    /// # Errors
    /// [`NumaError::InvalidConfig`] for `threads` 0, a size below [`MIN_SIZE`], or a size
    /// that leaves a thread less than two cache lines.
    pub fn validate(&self) -> Result<(), NumaError> {
        if self.threads == Some(0) {
            return Err(NumaError::InvalidConfig {
                field: "threads",
                reason: "must be > 0",
            });
        }
        if self.size < MIN_SIZE {
            return Err(NumaError::InvalidConfig {
                field: "size",
                reason: "must be at least 4096 bytes",
            });
        }
        if self.size / self.threads.unwrap_or(1) < 2 * chase::SLOT_BYTES {
            return Err(NumaError::InvalidConfig {
                field: "size",
                reason: "leaves a thread less than two cache lines",
            });
        }
        Ok(())
    }
}

/// Which figure a [`Progress`] report is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    /// The idle latency (pointer chase).
    Latency,
    /// A bandwidth.
    Bandwidth(Traffic),
}

/// Reported after each figure is measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Figures measured so far.
    pub done: usize,
    /// Figures in all: CPU nodes x memory nodes x 4.
    pub total: usize,
    /// The CPU node just measured.
    pub cpu_node: NodeId,
    /// The memory node just measured.
    pub memory_node: NodeId,
    /// The figure just measured.
    pub figure: Figure,
}

/// Where one memory node's buffer was, checked after all its figures were measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryCheck {
    /// The memory node.
    pub node: NodeId,
    /// `Hard`: bound strictly, populated and every page verified on the node when made;
    /// `Soft` where the backend cannot verify (the portable backend).
    pub enforcement: Enforcement,
    /// Pages of the buffer.
    pub pages: u64,
    /// Of them, on the node (after the measurements).
    pub pages_on_node: u64,
    /// Every page present and on the node after the measurements.
    pub verified: bool,
}

/// The matrices: row `i` is `cpu_nodes[i]`, column `j` is `memory_nodes[j]`.
///
/// `numaperf bench --json` prints it as one object whose keys are stable:
/// `cpu_nodes`, `memory_nodes` (arrays of node ids), `latency_ns` (the latency matrix),
/// `bandwidth_mb_s` (an object with the `read`, `write` and `copy` matrices), `size_bytes`,
/// `threads` (per CPU node), `duration_ms`, `llc_bytes` (`null` when unknown), `placement`
/// (per memory node: `node`, `enforcement` `"hard"`/`"soft"`, `pages`, `pages_on_node`,
/// `verified`), `cpus_verified` and `optimized`.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchReport {
    /// Nodes with CPUs this process may use, by id.
    pub cpu_nodes: Vec<NodeId>,
    /// Nodes with memory this process may use, by id.
    pub memory_nodes: Vec<NodeId>,
    /// Bytes of each buffer.
    pub size: usize,
    /// Bandwidth threads used per CPU node.
    pub threads: Vec<usize>,
    /// Time per figure.
    pub duration: Duration,
    /// The last-level cache the default size was derived from, if sysfs tells it.
    pub llc_bytes: Option<u64>,
    /// Idle latency in nanoseconds per dependent load.
    pub latency_ns: Vec<Vec<f64>>,
    /// Read bandwidth in MB/s (10^6 bytes per second).
    pub read_mb_s: Vec<Vec<f64>>,
    /// Write bandwidth in MB/s.
    pub write_mb_s: Vec<Vec<f64>>,
    /// Copy bandwidth in MB/s (bytes read plus bytes written).
    pub copy_mb_s: Vec<Vec<f64>>,
    /// One check per memory node, in `memory_nodes` order.
    pub memory: Vec<MemoryCheck>,
    /// Every measuring thread, once pinned, found itself on a CPU of its CPU node.
    pub cpus_verified: bool,
    /// Built with optimisations (`false`: a debug build, whose figures mean little).
    pub optimized: bool,
}

impl BenchReport {
    /// The bandwidth matrix of one kind of traffic.
    pub fn bandwidth(&self, traffic: Traffic) -> &[Vec<f64>] {
        match traffic {
            Traffic::Read => &self.read_mb_s,
            Traffic::Write => &self.write_mb_s,
            Traffic::Copy => &self.copy_mb_s,
        }
    }

    fn bandwidth_mut(&mut self, traffic: Traffic) -> &mut Vec<Vec<f64>> {
        match traffic {
            Traffic::Read => &mut self.read_mb_s,
            Traffic::Write => &mut self.write_mb_s,
            Traffic::Copy => &mut self.copy_mb_s,
        }
    }
}

/// The size in bytes of the last-level cache (the largest data or unified cache of the
/// highest level in `/sys/devices/system/cpu`); `None` where it is not told.
pub fn last_level_cache() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        numaperf_linux::last_level_cache(numaperf_linux::SYSFS_CPU_ROOT)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The default buffer size: four times the last-level cache, at least
/// [`DEFAULT_MIN_SIZE`] (256 MiB).
pub fn default_size() -> usize {
    let llc = last_level_cache().map_or(0, |b| usize::try_from(b).unwrap_or(usize::MAX));
    llc.saturating_mul(4).max(DEFAULT_MIN_SIZE)
}

/// Measures every (CPU node, memory node) pair on this machine.
///
/// # Errors
/// As [`run_in`].
pub fn run(
    config: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BenchReport, NumaError> {
    run_in(&crate::DefaultBackend::shared()?, config, progress)
}

/// Measures every (CPU node, memory node) pair on `backend`: for each memory node one
/// buffer of `config.size` bytes, bound there (hard mode where the backend verifies pages,
/// transparent huge pages asked for so the chase measures memory more than page walks),
/// linked into one random cycle of 64-byte slots; from each CPU node, a thread pinned to
/// one of its CPUs chases the cycle (idle latency), then the bandwidth threads, each
/// pinned to a CPU of the node and given its own slice, read, write and copy.
/// `progress` is called on this thread after each figure.
///
/// # Errors
/// [`BenchConfig::validate`]'s, [`NumaError::NoUsableCpu`] / [`NumaError::NoUsableNode`]
/// when no node has CPUs / memory this process may use, the region's errors (e.g.
/// [`NumaError::InsufficientMemory`] when a node cannot hold the buffer,
/// [`NumaError::PlacementViolated`]), and the backend's pinning errors.
pub fn run_in<B: PlacementBackend + Sync>(
    backend: &B,
    config: &BenchConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<BenchReport, NumaError> {
    config.validate()?;
    let topo = backend.topology();
    let mut cpu_nodes = Vec::new();
    let mut cpus = Vec::new();
    // Every thread gets at least two slots of its own.
    let most = config.size / (2 * chase::SLOT_BYTES);
    for n in topo.cpu_nodes().iter() {
        if let Ok(set) = node_cpus(backend, n) {
            let all: Vec<usize> = set.iter().collect();
            let want = config.threads.unwrap_or(all.len()).min(all.len()).min(most);
            cpu_nodes.push(n);
            cpus.push(all[..want].to_vec());
        }
    }
    let memory_nodes: Vec<NodeId> = topo
        .memory_nodes()
        .intersection(topo.allowed_nodes())
        .iter()
        .collect();
    if cpu_nodes.is_empty() {
        return Err(NumaError::NoUsableCpu);
    }
    if memory_nodes.is_empty() {
        return Err(NumaError::NoUsableNode);
    }
    let (rows, cols) = (cpu_nodes.len(), memory_nodes.len());
    let matrix = vec![vec![0.0; cols]; rows];
    let mut report = BenchReport {
        threads: cpus.iter().map(Vec::len).collect(),
        size: config.size,
        duration: config.duration,
        llc_bytes: last_level_cache(),
        latency_ns: matrix.clone(),
        read_mb_s: matrix.clone(),
        write_mb_s: matrix.clone(),
        copy_mb_s: matrix,
        memory: Vec::with_capacity(cols),
        cpus_verified: true,
        optimized: !cfg!(debug_assertions),
        cpu_nodes,
        memory_nodes,
    };
    let total = rows * cols * 4;
    let mut done = 0;
    let mut step = |report: &BenchReport, r: usize, c: usize, figure: Figure| {
        done += 1;
        progress(&Progress {
            done,
            total,
            cpu_node: report.cpu_nodes[r],
            memory_node: report.memory_nodes[c],
            figure,
        });
    };
    for c in 0..cols {
        let node = report.memory_nodes[c];
        let mut region = bound_region(backend, node, config.size)?;
        let words = as_words(&mut region);
        chase::link_cycle(words, config.seed ^ u64::from(node.get()));
        for (r, threads) in cpus.iter().enumerate() {
            let cpu_node = report.cpu_nodes[r];
            let (ns, on_node) = latency(backend, threads[0], cpu_node, words, config)?;
            report.latency_ns[r][c] = ns;
            report.cpus_verified &= on_node;
            step(&report, r, c, Figure::Latency);
        }
        for (r, threads) in cpus.iter().enumerate() {
            let cpu_node = report.cpu_nodes[r];
            for traffic in Traffic::ALL {
                let (mb_s, on_node) =
                    bandwidth(backend, threads, cpu_node, words, traffic, config.duration)?;
                report.bandwidth_mut(traffic)[r][c] = mb_s;
                report.cpus_verified &= on_node;
                step(&report, r, c, Figure::Bandwidth(traffic));
            }
        }
        let placed = region.placement()?;
        report.memory.push(MemoryCheck {
            node,
            enforcement: region.enforcement(),
            pages: placed.total(),
            pages_on_node: placed.on(node),
            verified: placed.total() > 0 && placed.on(node) == placed.total(),
        });
    }
    Ok(report)
}

/// `size` bytes bound to `node`, populated: hard mode with transparent huge pages where
/// the backend does both, else a plain bound region (the portable backend cannot verify).
fn bound_region<B: PlacementBackend>(
    backend: &B,
    node: NodeId,
    size: usize,
) -> Result<NumaRegion<&B>, NumaError> {
    let policy = MemPolicy::Bind(NodeMask::single(node));
    let hard = RegionOptions::new()
        .hard()
        .huge_pages(HugePages::Transparent);
    match NumaRegion::anon_in(backend, size, policy, hard, Prefault::Populate) {
        Err(
            NumaError::Unsupported { .. }
            | NumaError::IncompatibleOption(_)
            | NumaError::HugePagesUnavailable { .. },
        ) => NumaRegion::anon_in(
            backend,
            size,
            MemPolicy::Bind(NodeMask::single(node)),
            RegionOptions::new(),
            Prefault::Populate,
        ),
        r => r,
    }
}

/// The region's memory as 64-bit words (a trailing partial word left out).
fn as_words<B: PlacementBackend>(region: &mut NumaRegion<B>) -> &mut [u64] {
    let bytes = region.as_mut_slice();
    // SAFETY: every bit pattern is a valid `u64`, and `align_to_mut` puts only suitably
    // aligned, whole words in the middle slice; the borrow of the region is carried over.
    let (head, words, _) = unsafe { bytes.align_to_mut::<u64>() };
    debug_assert!(head.is_empty(), "a region starts on a page boundary");
    words
}

/// Pins a thread to `cpu` and chases the cycle there; returns ns per load and whether the
/// thread found itself on `cpu_node`.
fn latency<B: PlacementBackend + Sync>(
    backend: &B,
    cpu: usize,
    cpu_node: NodeId,
    words: &[u64],
    config: &BenchConfig,
) -> Result<(f64, bool), NumaError> {
    thread::scope(|s| {
        let worker = thread::Builder::new()
            .name("numaperf-bench".into())
            .spawn_scoped(s, || {
                let _pin = pin_to_cpus(backend, &CpuSet::single(cpu))?;
                let on_node = backend.current_cpu()?.node == cpu_node;
                Ok((chase::chase(words, config.duration), on_node))
            })
            .map_err(|e| spawn_error(&e))?;
        worker
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// A thread that could not be started (a pids cgroup, `RLIMIT_NPROC`), as a typed error.
fn spawn_error(e: &std::io::Error) -> NumaError {
    NumaError::Os {
        op: "pthread_create",
        // EAGAIN when the OS gave no code.
        errno: numaperf_core::Errno::from_raw(e.raw_os_error().unwrap_or(11)),
    }
}

/// One thread per CPU of `cpus`, each pinned to its CPU with a slice of its own, all
/// started together; returns the summed MB/s and whether every thread found itself on
/// `cpu_node`.
fn bandwidth<B: PlacementBackend + Sync>(
    backend: &B,
    cpus: &[usize],
    cpu_node: NodeId,
    words: &mut [u64],
    traffic: Traffic,
    budget: Duration,
) -> Result<(f64, bool), NumaError> {
    let per = words.len() / cpus.len() / 8 * 8; // whole slots; validate() keeps it > 0
    let start = StartGate::new(cpus.len());
    let results: Vec<Result<(u64, Duration, bool), NumaError>> = thread::scope(|s| {
        let mut workers = Vec::with_capacity(cpus.len());
        let mut failed = None;
        for (slice, &cpu) in words.chunks_mut(per).zip(cpus) {
            let start = &start;
            let spawned = thread::Builder::new()
                .name("numaperf-bench".into())
                .spawn_scoped(s, move || {
                    let pinned = pin_to_cpus(backend, &CpuSet::single(cpu))
                        .and_then(|g| Ok((g, backend.current_cpu()?)));
                    // Everyone waits, even a thread that failed to pin, so all start
                    // together; an aborted start (a sibling never started) ends here.
                    if !start.arrive_and_wait() {
                        // Not a figure: the caller reports the spawn failure instead.
                        return Ok((0, Duration::ZERO, false));
                    }
                    let (_pin, at) = pinned?;
                    let (bytes, took) = stream::stream(traffic, slice, budget);
                    Ok((bytes, took, at.node == cpu_node))
                });
            match spawned {
                Ok(w) => workers.push(w),
                Err(e) => {
                    // The threads already started must not wait for one that never will.
                    start.abort();
                    failed = Some(spawn_error(&e));
                    break;
                }
            }
        }
        let joined: Vec<_> = workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        match failed {
            Some(e) => vec![Err(e)],
            None => joined,
        }
    });
    let mut mb_s = 0.0;
    let mut on_node = true;
    for r in results {
        let (bytes, took, here) = r?;
        mb_s += bytes as f64 / took.as_secs_f64() / 1e6;
        on_node &= here;
    }
    Ok((mb_s, on_node))
}
