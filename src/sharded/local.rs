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

#[derive(Clone, Copy)]
struct Entry {
    /// The owning instance's id (0: empty).
    owner: u64,
    /// What the owner computed from the thread's CPU (an address inside the owner).
    value: *const (),
    /// Calls left before the CPU is read again.
    left: u32,
}

const EMPTY: Entry = Entry {
    owner: 0,
    value: core::ptr::null(),
    left: 0,
};

/// Entries per thread, chosen by owner id: eight sharded values used in turn by one
/// thread each keep their entry; a ninth shares one with the first (both still correct,
/// each then reads the CPU more often).
const ENTRIES: usize = 8;

thread_local! {
    // Const-initialised and without a destructor: no lazy-init check on the hot path, and
    // reachable during thread exit too.
    static CACHE: [Cell<Entry>; ENTRIES] = const { [const { Cell::new(EMPTY) }; ENTRIES] };
}

/// Forgets every cached value of the calling thread (its next calls read the CPU again).
pub(crate) fn forget_all() {
    let _ = CACHE.try_with(|c| c.iter().for_each(|e| e.set(EMPTY)));
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
            let cell = &c[self.owner as usize % ENTRIES];
            let e = cell.get();
            if e.owner == self.owner && e.left > 0 {
                cell.set(Entry {
                    left: e.left - 1,
                    ..e
                });
                Some(e.value)
            } else {
                None
            }
        });
        match hit {
            Ok(Some(v)) => v,
            _ => self.refresh(read),
        }
    }

    /// Computes the value now with `read(previous)`, stores it for this thread's next
    /// [`REFRESH_EVERY`]` - 1` calls, and returns it.
    #[cold]
    pub(crate) fn refresh(&self, read: impl FnOnce(Option<*const ()>) -> *const ()) -> *const () {
        let slot = self.owner as usize % ENTRIES;
        let previous = CACHE
            .try_with(|c| {
                let e = c[slot].get();
                (e.owner == self.owner).then_some(e.value)
            })
            .ok()
            .flatten();
        let value = read(previous);
        let _ = CACHE.try_with(|c| {
            c[slot].set(Entry {
                owner: self.owner,
                value,
                left: REFRESH_EVERY - 1,
            })
        });
        value
    }
}

/// The shard index for a thread at `loc` by `route` (0: a node the route lacks).
pub(crate) fn shard_at(route: &BTreeMap<NodeId, usize>, loc: CpuLocation) -> usize {
    route.get(&loc.node).copied().unwrap_or(0)
}
