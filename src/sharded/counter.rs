//! `ShardedCounter`: a counter that many threads add to without sharing a cache line:
//! cache-padded slots per node (per thread, else per CPU), in memory bound to the node.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use numaperf_core::{NodeId, NumaError, PlacementBackend, TopologyInfo};

use super::lease::{self, LeaseTable};
use super::local::{self, LocalCache, REFRESH_EVERY};
use super::store::{shard_nodes, NodeStore, ShardMemory};
use crate::{DefaultBackend, Topology};

/// A `u64` counter split into cache-padded slots, grouped per node in node-bound memory.
///
/// Every memory node (as [`crate::NumaSharded`] chooses them) holds, in a region bound to
/// it, one [`CachePadded`]`<AtomicU64>` per allowed CPU whose threads it serves (its own
/// CPUs and those of CPU-only nodes routed to it; at least one) plus twice as many
/// *thread slots* (at least 8). A thread adding for the first time on a node claims a free
/// thread slot there and from then on adds to it alone, with a plain load and store (no
/// locked instruction, no shared line); the slot is released when the thread exits (or
/// moves to another node's slots). When a node's thread slots are all taken, further
/// threads add with `fetch_add` to the slot of the CPU they run on, so threads on
/// different CPUs still do not share a line. The thread's node is re-read about every
/// [`crate::NumaSharded::REFRESH_EVERY`] calls, as [`crate::NumaSharded::local`] does:
/// when the slot's count crosses a multiple of it (so an add costs one store, not two),
/// adds of that much or more counting as one call each.
/// Every add is counted exactly, whichever slot it lands in.
///
/// ```
/// use numaperf::{ShardedCounter, Topology};
/// use numaperf_sim::SimMachine;
///
/// let sim = SimMachine::from_spec("4 nodes x 1 cpus x 64 MiB")?;
/// let c = ShardedCounter::new_in(&sim, &Topology::of_backend(&sim)?)?;
/// std::thread::scope(|s| {
///     for cpu in 0..4 {
///         let (c, sim) = (&c, &sim);
///         s.spawn(move || sim.run_on_cpu(cpu, || (0..1000).for_each(|_| c.increment())));
///     }
/// });
/// assert_eq!(c.sum(), 4000);
/// // Each thread counted on its own CPU's node.
/// assert!(c.iter().all(|(_, n)| n == 1000));
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct ShardedCounter<B: PlacementBackend = DefaultBackend> {
    store: NodeStore<CachePadded<AtomicU64>, B>,
    /// Per shard: its CPU slots (first) and thread slots (after them).
    layout: Vec<Slots>,
    /// Every node of the backend -> the shard index its threads use.
    route: BTreeMap<NodeId, usize>,
    /// Allowed CPUs -> their CPU slot in their shard.
    cpu_slots: BTreeMap<usize, usize>,
    leases: Arc<LeaseTable>,
    cache: LocalCache,
}

/// One shard's slots: `cpus` CPU slots, then `threads` thread slots, whose leases are
/// `lease_first..` in the lease table.
#[derive(Clone, Copy, Debug)]
struct Slots {
    cpus: usize,
    threads: usize,
    lease_first: usize,
}

/// The tag bit of a cached slot address that says the thread holds the slot alone
/// (slot addresses are aligned to a cache line, so bit 0 is free).
const EXCLUSIVE: usize = 1;

impl ShardedCounter<DefaultBackend> {
    /// A counter at 0 with slots on every memory node of `topology` this process may
    /// allocate from, on this machine.
    ///
    /// # Errors
    /// As [`crate::NumaSharded::new`].
    pub fn new(topology: &Topology) -> Result<Self, NumaError> {
        Self::new_in(DefaultBackend::shared()?, topology)
    }
}

impl<B: PlacementBackend + Clone> ShardedCounter<B> {
    /// Like [`ShardedCounter::new`], on an explicit backend; `topology`'s nodes must be
    /// `backend`'s.
    ///
    /// # Errors
    /// As [`crate::NumaSharded::new`].
    pub fn new_in(backend: B, topology: &Topology) -> Result<Self, NumaError> {
        let nodes = shard_nodes(&backend, topology)?;
        let index = |n: NodeId| nodes.iter().position(|m| m == n);
        let theirs = backend.topology();
        let route = local::route_nodes(theirs, index);
        // Number the allowed CPUs within the shard their node routes to.
        let mut per_shard = vec![0usize; nodes.count()];
        let mut cpu_slots = BTreeMap::new();
        for cpu in theirs.allowed_cpus().iter() {
            let node = theirs.cpu_node(cpu);
            if let Some(&s) = node.as_ref().and_then(|n| route.get(n)) {
                cpu_slots.insert(cpu, per_shard[s]);
                per_shard[s] += 1;
            }
        }
        let mut lease_first = 0;
        let layout: Vec<Slots> = per_shard
            .iter()
            .map(|&c| {
                let cpus = c.max(1);
                let threads = (2 * cpus).max(8);
                let s = Slots {
                    cpus,
                    threads,
                    lease_first,
                };
                lease_first += threads;
                s
            })
            .collect();
        let count = |n: NodeId| index(n).map_or(1, |s| layout[s].cpus + layout[s].threads);
        let store = NodeStore::build(backend, topology, count, |_, _| {
            CachePadded::new(AtomicU64::new(0))
        })?;
        Ok(ShardedCounter {
            store,
            layout,
            route,
            cpu_slots,
            leases: LeaseTable::new(lease_first),
            cache: LocalCache::new(),
        })
    }
}

impl<B: PlacementBackend> ShardedCounter<B> {
    /// Adds `n` (wrapping at `u64::MAX`) to the calling thread's slot. `Relaxed`: a
    /// count, not a synchronisation point.
    #[inline]
    pub fn add(&self, n: u64) {
        let p = self.cache.peek(|previous| self.read_slot(previous));
        // SAFETY (both arms): this thread's cache entry for this counter's id (never
        // reused) was written only by `read_slot` of this counter: the address of one of
        // its slots (initialised, not dropped while `self` is borrowed), tagged in bit 0.
        let old = if p.addr() & EXCLUSIVE != 0 {
            // Untagged by an offset, so the slot is addressed from one register (which
            // lets the CPU forward the previous add's store to this load at once).
            let slot: &AtomicU64 = unsafe { &*p.wrapping_byte_sub(EXCLUSIVE).cast() };
            // Only this thread writes a leased slot (see `lease`), so this is exact.
            let old = slot.load(Ordering::Relaxed);
            slot.store(old.wrapping_add(n), Ordering::Relaxed);
            old
        } else {
            let slot: &AtomicU64 = unsafe { &*p.cast::<CachePadded<AtomicU64>>() };
            slot.fetch_add(n, Ordering::Relaxed)
        };
        // The slot's own count is the call counter (no second store per call): the thread
        // reads its CPU again when the count crosses a multiple of REFRESH_EVERY. Adds that
        // large count as one call each.
        if n >= u64::from(REFRESH_EVERY) {
            self.cache.count_down();
        } else if (old ^ old.wrapping_add(n)) >> REFRESH_EVERY.trailing_zeros() != 0 {
            self.cache.expire();
        }
    }

    /// Adds 1.
    #[inline]
    pub fn increment(&self) {
        self.add(1);
    }

    /// The sum of every slot (wrapping), each read with a `Relaxed` load. Not a
    /// snapshot: adds that run meanwhile may or may not be in it; once every adding
    /// thread has been joined (or otherwise synchronised with), it is exact.
    pub fn sum(&self) -> u64 {
        self.iter().fold(0, |a, (_, n)| a.wrapping_add(n))
    }

    /// Per node with slots, the sum of its slots (as [`ShardedCounter::sum`] reads them).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (NodeId, u64)> + '_ {
        self.store.shards().iter().map(|s| {
            let n = s
                .values()
                .iter()
                .fold(0u64, |a, v| a.wrapping_add(v.load(Ordering::Relaxed)));
            (s.node(), n)
        })
    }

    /// `(CPU slots, thread slots)` on `node` (`None`: no slots there).
    pub fn slots_on(&self, node: NodeId) -> Option<(usize, usize)> {
        let s = self.layout[self.store.index_of(node)?];
        Some((s.cpus, s.threads))
    }

    /// Where `node`'s slots' memory is (`None`: no slots there).
    pub fn memory(&self, node: NodeId) -> Option<ShardMemory<'_, B>> {
        let i = self.store.index_of(node)?;
        Some(self.store.shards()[i].memory())
    }

    /// The tagged address of the calling thread's slot: a thread slot of its node's shard
    /// held alone if one is free, else its CPU's slot there. When the CPU cannot be read,
    /// the previous answer (shard 0's first CPU slot if none).
    fn read_slot(&self, previous: Option<*const ()>) -> *const () {
        let shards = self.store.shards();
        let Ok(loc) = self.store.backend().current_cpu() else {
            return previous.unwrap_or_else(|| shards[0].as_ptr().cast());
        };
        let shard = local::shard_at(&self.route, loc);
        let s = self.layout[shard];
        let base = shards[shard].as_ptr();
        let leases = s.lease_first..s.lease_first + s.threads;
        if let Some(i) = lease::lease(self.cache.id(), &self.leases, leases) {
            let at = s.cpus + (i - s.lease_first);
            // SAFETY: `at < cpus + threads`, the shard's length.
            let p = unsafe { base.add(at) };
            return p.cast::<()>().map_addr(|a| a | EXCLUSIVE);
        }
        let at = match self.cpu_slots.get(&loc.cpu) {
            Some(&c) if c < s.cpus => c,
            _ => loc.cpu % s.cpus,
        };
        // SAFETY: `at < cpus <= ` the shard's length.
        unsafe { base.add(at) }.cast()
    }
}

impl<B: PlacementBackend> Drop for ShardedCounter<B> {
    fn drop(&mut self) {
        // Threads still holding leases prune them instead of releasing into a dead table.
        self.leases.retire();
    }
}

impl<B: PlacementBackend> core::fmt::Debug for ShardedCounter<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}
