//! Which shard is the calling thread's: CPU nodes routed to shard nodes (the kernel's
//! fallback order), and a per-thread cache so that asking costs no system call.

use core::cell::Cell;
use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::BTreeMap;

use numaperf_core::policy::fallback_order;
use numaperf_core::{CpuLocation, NodeId, TopologyInfo, MAX_NUMNODES};

/// How many calls on one thread one reading of the thread's CPU serves: the cache asks
/// the backend again on the call after this many.
pub(crate) const REFRESH_EVERY: u32 = 1024;
const _: () = assert!(REFRESH_EVERY.is_power_of_two()); // the counter tests a bit boundary

/// For every node of a machine, the shard its threads use: its own when it has one, else
/// the first shard node in the kernel's fallback order from it (what the kernel gives a
/// CPU-only node's local allocations), else the nearest shard node by distance.
pub(crate) fn route_nodes(
    topo: &(impl TopologyInfo + ?Sized),
    shard_of: impl Fn(NodeId) -> Option<usize>,
) -> BTreeMap<NodeId, usize> {
    let mut order = [NodeId::new(0); MAX_NUMNODES];
    let shard_nodes: Vec<(NodeId, usize)> = topo
        .nodes()
        .iter()
        .filter_map(|n| shard_of(n).map(|s| (n, s)))
        .collect();
    topo.nodes()
        .iter()
        .filter_map(|n| {
            if let Some(s) = shard_of(n) {
                return Some((n, s));
            }
            let k = fallback_order(topo, n, &mut order);
            let by_order = order[..k].iter().find_map(|&m| shard_of(m));
            let nearest = || {
                shard_nodes
                    .iter()
                    .min_by_key(|(m, _)| (topo.distance(n, *m).unwrap_or(u8::MAX), *m))
                    .map(|&(_, s)| s)
            };
            by_order.or_else(nearest).map(|s| (n, s))
        })
        .collect()
}

/// One cache entry. Separate cells, so that a hit writes only the countdown.
struct Entry {
    /// The owning instance's id (0: empty).
    owner: Cell<u64>,
    /// What the owner computed from the thread's CPU (an address inside the owner).
    value: Cell<*const ()>,
    /// Calls left before the CPU is read again.
    left: Cell<u32>,
}

#[allow(clippy::declare_interior_mutable_const)] // a template for the array below
const EMPTY: Entry = Entry {
    owner: Cell::new(0),
    value: Cell::new(core::ptr::null()),
    left: Cell::new(0),
};

impl Entry {
    fn clear(&self) {
        self.owner.set(0);
        self.value.set(core::ptr::null());
        self.left.set(0);
    }
}

/// Entries per thread, chosen by owner id: eight sharded values used in turn by one
/// thread each keep their entry; a ninth shares one with the first (both still correct,
/// each then reads the CPU more often).
const ENTRIES: usize = 8;

thread_local! {
    // Const-initialised and without a destructor: no lazy-init check on the hot path, and
    // reachable during thread exit too.
    static CACHE: [Entry; ENTRIES] = const { [EMPTY; ENTRIES] };
}

/// Forgets every cached value of the calling thread (its next calls read the CPU again).
pub(crate) fn forget_all() {
    let _ = CACHE.try_with(|c| c.iter().for_each(Entry::clear));
}

/// One instance's key into every thread's cache. Ids are never reused, so an entry
/// left by a dropped instance is never mistaken for a live one's.
#[derive(Debug)]
pub(crate) struct LocalCache {
    owner: u64,
}

impl LocalCache {
    /// A key no other instance ever had.
    pub(crate) fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        LocalCache {
            owner: NEXT.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The instance's id (for other per-thread tables).
    pub(crate) fn id(&self) -> u64 {
        self.owner
    }

    /// The calling thread's cached value; `read(previous)` (a backend query) computes a
    /// new one on the thread's first call and every [`REFRESH_EVERY`] calls after.
    #[inline]
    pub(crate) fn get(&self, read: impl FnOnce(Option<*const ()>) -> *const ()) -> *const () {
        let hit = CACHE.try_with(|c| {
            let e = &c[self.owner as usize % ENTRIES];
            let left = e.left.get();
            if e.owner.get() == self.owner && left > 0 {
                e.left.set(left - 1);
                Some(e.value.get())
            } else {
                None
            }
        });
        match hit {
            Ok(Some(v)) => v,
            _ => self.refresh(read),
        }
    }

    /// Like [`LocalCache::get`], without counting the call: for callers that decide
    /// themselves when the value is stale ([`LocalCache::expire`], [`LocalCache::count_down`]).
    #[inline]
    pub(crate) fn peek(&self, read: impl FnOnce(Option<*const ()>) -> *const ()) -> *const () {
        let hit = CACHE.try_with(|c| {
            let e = &c[self.owner as usize % ENTRIES];
            (e.owner.get() == self.owner && e.left.get() > 0).then(|| e.value.get())
        });
        match hit {
            Ok(Some(v)) => v,
            _ => self.refresh(read),
        }
    }

    /// Counts one call against the calling thread's entry, as [`LocalCache::get`] does.
    #[inline]
    pub(crate) fn count_down(&self) {
        let _ = CACHE.try_with(|c| {
            let e = &c[self.owner as usize % ENTRIES];
            if e.owner.get() == self.owner {
                e.left.set(e.left.get().saturating_sub(1));
            }
        });
    }

    /// Makes the calling thread's next call compute its value again.
    #[cold]
    pub(crate) fn expire(&self) {
        let _ = CACHE.try_with(|c| {
            let e = &c[self.owner as usize % ENTRIES];
            if e.owner.get() == self.owner {
                e.left.set(0);
            }
        });
    }

    /// Computes the value now with `read(previous)`, stores it for this thread's next
    /// [`REFRESH_EVERY`]` - 1` calls, and returns it.
    #[cold]
    pub(crate) fn refresh(&self, read: impl FnOnce(Option<*const ()>) -> *const ()) -> *const () {
        let slot = self.owner as usize % ENTRIES;
        let previous = CACHE
            .try_with(|c| {
                let e = &c[slot];
                (e.owner.get() == self.owner).then(|| e.value.get())
            })
            .ok()
            .flatten();
        let value = read(previous);
        let _ = CACHE.try_with(|c| {
            let e = &c[slot];
            e.owner.set(self.owner);
            e.value.set(value);
            e.left.set(REFRESH_EVERY - 1);
        });
        value
    }
}

/// The shard index for a thread at `loc` by `route` (0: a node the route lacks).
pub(crate) fn shard_at(route: &BTreeMap<NodeId, usize>, loc: CpuLocation) -> usize {
    route.get(&loc.node).copied().unwrap_or(0)
}
