//! Kernel-measured locality: the counters a machine keeps as it places pages (per-node
//! `numastat`, NUMA-balancing hint faults) and where a process's pages are per mapping
//! (`numa_maps`), plus the [`LocalitySource`] trait a backend implements to read them.

use alloc::string::String;
use alloc::vec::Vec;

use crate::error::NumaError;
use crate::node::{NodeId, NodeMask};

/// One node's allocation counters, as `/sys/devices/system/node/nodeN/numastat` has them.
///
/// The kernel counts allocations (a transparent huge page is one), system-wide, from boot:
/// compare two readings ([`NumaStat::since`]) to see what happened in between.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NumaStat {
    /// Allocations placed on this node that were meant for it.
    pub numa_hit: u64,
    /// Allocations placed on this node that were meant for another (that node was short).
    pub numa_miss: u64,
    /// Allocations meant for this node that were placed on another.
    pub numa_foreign: u64,
    /// Interleaved allocations placed on the node the interleave chose.
    pub interleave_hit: u64,
    /// Allocations placed on this node by a task running on it.
    pub local_node: u64,
    /// Allocations placed on this node by a task running on another node.
    pub other_node: u64,
}

impl NumaStat {
    /// The counts made after `earlier` (each counter's increase; 0 where it went down,
    /// which only a counter reset could do).
    pub fn since(&self, earlier: &NumaStat) -> NumaStat {
        NumaStat {
            numa_hit: self.numa_hit.saturating_sub(earlier.numa_hit),
            numa_miss: self.numa_miss.saturating_sub(earlier.numa_miss),
            numa_foreign: self.numa_foreign.saturating_sub(earlier.numa_foreign),
            interleave_hit: self.interleave_hit.saturating_sub(earlier.interleave_hit),
            local_node: self.local_node.saturating_sub(earlier.local_node),
            other_node: self.other_node.saturating_sub(earlier.other_node),
        }
    }

    /// Allocations placed on this node (`numa_hit + numa_miss`).
    pub fn placed(&self) -> u64 {
        self.numa_hit.saturating_add(self.numa_miss)
    }

    /// Allocations meant for this node (`numa_hit + numa_foreign`).
    pub fn intended(&self) -> u64 {
        self.numa_hit.saturating_add(self.numa_foreign)
    }

    /// Counts one allocation the way the kernel's `zone_statistics` does: `placed` is the
    /// node the page went to, `preferred` the node the allocation was meant for, `running`
    /// the node of the allocating task; `interleave` for an interleaving policy. Call it on
    /// the table of every node involved: each counts only what concerns it.
    pub fn count(
        &mut self,
        this: NodeId,
        placed: NodeId,
        preferred: NodeId,
        running: NodeId,
        interleave: bool,
    ) {
        if placed == this {
            if placed == preferred {
                self.numa_hit = self.numa_hit.wrapping_add(1);
                if interleave {
                    self.interleave_hit = self.interleave_hit.wrapping_add(1);
                }
            } else {
                self.numa_miss = self.numa_miss.wrapping_add(1);
            }
            if placed == running {
                self.local_node = self.local_node.wrapping_add(1);
            } else {
                self.other_node = self.other_node.wrapping_add(1);
            }
        }
        if preferred == this && placed != preferred {
            self.numa_foreign = self.numa_foreign.wrapping_add(1);
        }
    }
}

/// Automatic NUMA balancing's counters from `/proc/vmstat`, and the mode it runs in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BalancingStat {
    /// `/proc/sys/kernel/numa_balancing`: bit 0 normal balancing, bit 1 memory tiering.
    pub mode: u32,
    /// `numa_pte_updates`: base pages marked for a hint fault.
    pub pte_updates: u64,
    /// `numa_huge_pte_updates`: huge pages marked for a hint fault.
    pub huge_pte_updates: u64,
    /// `numa_hint_faults`: hint faults taken.
    pub hint_faults: u64,
    /// `numa_hint_faults_local`: hint faults on a page already on the faulting task's node.
    pub hint_faults_local: u64,
    /// `numa_pages_migrated`: pages balancing moved.
    pub pages_migrated: u64,
    /// `pgpromote_success`: pages promoted to a faster tier (memory tiering, Linux 5.18).
    pub promoted: Option<u64>,
}

impl BalancingStat {
    /// The counts made after `earlier` (the mode is this reading's).
    pub fn since(&self, earlier: &BalancingStat) -> BalancingStat {
        let d = |a: u64, b: u64| a.saturating_sub(b);
        BalancingStat {
            mode: self.mode,
            pte_updates: d(self.pte_updates, earlier.pte_updates),
            huge_pte_updates: d(self.huge_pte_updates, earlier.huge_pte_updates),
            hint_faults: d(self.hint_faults, earlier.hint_faults),
            hint_faults_local: d(self.hint_faults_local, earlier.hint_faults_local),
            pages_migrated: d(self.pages_migrated, earlier.pages_migrated),
            promoted: match (self.promoted, earlier.promoted) {
                (Some(a), Some(b)) => Some(d(a, b)),
                (a, _) => a,
            },
        }
    }

    /// Hint faults on a page that was on another node than the faulting task.
    pub fn hint_faults_remote(&self) -> u64 {
        self.hint_faults.saturating_sub(self.hint_faults_local)
    }
}

/// What backs a mapping, as `numa_maps` tells it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum MappingKind {
    /// Anonymous memory (numaperf regions and pools, `mmap` arenas, thread stacks).
    #[default]
    Anon,
    /// The process's initial heap (`brk`).
    Heap,
    /// The main thread's stack.
    Stack,
    /// A mapped file (private copies of its pages count here too).
    File,
}

impl core::fmt::Display for MappingKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            MappingKind::Anon => "anon",
            MappingKind::Heap => "heap",
            MappingKind::Stack => "stack",
            MappingKind::File => "file",
        })
    }
}

/// One mapping of a process and its resident pages per node (a `numa_maps` line).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MappingPages {
    /// Its first address.
    pub start: u64,
    /// Its memory policy as the kernel prints it (`default`, `bind:1`, `interleave:0-3`).
    pub policy: String,
    /// What backs it.
    pub kind: MappingKind,
    /// The file's path for a file mapping (as the kernel escapes it).
    pub file: Option<String>,
    /// Whether it is hugetlb memory.
    pub hugetlb: bool,
    /// Bytes per page counted in `nodes` (`kernelpagesize_kB`; 0 when it has no pages).
    pub page_size: u64,
    /// Resident pages per node (`N0=12`), ascending by node, nodes without pages left out.
    pub nodes: Vec<(NodeId, u64)>,
}

impl MappingPages {
    /// Resident pages on `node`.
    pub fn on(&self, node: NodeId) -> u64 {
        self.nodes
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(0, |&(_, p)| p)
    }

    /// Resident pages on all nodes (saturating: `numa_maps` counts come from outside).
    pub fn resident(&self) -> u64 {
        self.nodes
            .iter()
            .fold(0u64, |a, &(_, p)| a.saturating_add(p))
    }

    /// Resident bytes on `node`.
    pub fn bytes_on(&self, node: NodeId) -> u64 {
        self.on(node).saturating_mul(self.page_size)
    }
}

/// Where a machine's measured locality comes from: the Linux kernel's files, or the
/// simulator's own counters. Read-only; nothing here changes the machine.
pub trait LocalitySource {
    /// Every memory node's counters, ascending by node.
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming a `numastat` file that is missing, unreadable or
    /// malformed.
    fn numastat(&self) -> Result<Vec<(NodeId, NumaStat)>, NumaError>;

    /// NUMA balancing's counters when balancing is on; `None` when it is off (or the
    /// kernel lacks it).
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming `/proc/vmstat` or the mode file when malformed.
    fn balancing(&self) -> Result<Option<BalancingStat>, NumaError>;

    /// This process's mappings and their resident pages per node, by address.
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming `/proc/self/numa_maps` when it cannot be read or a line
    /// does not parse.
    fn mappings(&self) -> Result<Vec<MappingPages>, NumaError>;

    /// The calling thread's node now.
    ///
    /// # Errors
    /// The machine's refusal (in practice never).
    fn current_node(&self) -> Result<NodeId, NumaError>;

    /// The nodes with CPUs (`None`: unknown), so advice never says to run tasks on a
    /// memory-only node.
    ///
    /// # Errors
    /// [`NumaError::Sysfs`] naming a node list that is unreadable or malformed.
    fn cpu_nodes(&self) -> Result<Option<NodeMask>, NumaError>;
}

/// Implements `LocalitySource` for a handle type that derefs to a source.
macro_rules! forward_locality_source {
    ($($handle:ty),*) => {$(
        impl<T: LocalitySource + ?Sized> LocalitySource for $handle {
            fn numastat(&self) -> Result<Vec<(NodeId, NumaStat)>, NumaError> {
                (**self).numastat()
            }
            fn balancing(&self) -> Result<Option<BalancingStat>, NumaError> {
                (**self).balancing()
            }
            fn mappings(&self) -> Result<Vec<MappingPages>, NumaError> {
                (**self).mappings()
            }
            fn current_node(&self) -> Result<NodeId, NumaError> {
                (**self).current_node()
            }
            fn cpu_nodes(&self) -> Result<Option<NodeMask>, NumaError> {
                (**self).cpu_nodes()
            }
        }
    )*};
}

forward_locality_source!(&T, alloc::sync::Arc<T>);

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u32) -> NodeId {
        NodeId::new(i)
    }

    /// Counts one allocation on every node's table, as the kernel does.
    fn count(t: &mut [NumaStat; 3], placed: u32, preferred: u32, running: u32, il: bool) {
        for (i, s) in t.iter_mut().enumerate() {
            s.count(n(i as u32), n(placed), n(preferred), n(running), il);
        }
    }

    #[test]
    fn counting_follows_zone_statistics() {
        let mut t = [NumaStat::default(); 3];
        // Bound to node 1 from a task on node 0: a hit on node 1, made from elsewhere.
        count(&mut t, 1, 1, 0, false);
        assert_eq!((t[1].numa_hit, t[1].other_node, t[1].local_node), (1, 1, 0));
        assert_eq!(t[0], NumaStat::default());
        // Meant for node 0 (full), placed on node 2, task on node 0.
        count(&mut t, 2, 0, 0, false);
        assert_eq!((t[2].numa_miss, t[2].other_node), (1, 1));
        assert_eq!(t[0].numa_foreign, 1);
        assert_eq!(t[0].placed(), 0);
        assert_eq!(t[0].intended(), 1);
        // An interleave hit, local.
        count(&mut t, 2, 2, 2, true);
        assert_eq!(
            (t[2].interleave_hit, t[2].local_node, t[2].numa_hit),
            (1, 1, 1)
        );
        // Every allocation is placed once, local or other once.
        let placed: u64 = t.iter().map(NumaStat::placed).sum();
        let lo: u64 = t.iter().map(|s| s.local_node + s.other_node).sum();
        let foreign: u64 = t.iter().map(|s| s.numa_foreign).sum();
        let miss: u64 = t.iter().map(|s| s.numa_miss).sum();
        assert_eq!((placed, lo, foreign), (3, 3, miss));
    }

    #[test]
    fn since_is_the_increase() {
        let a = NumaStat {
            numa_hit: 10,
            other_node: 4,
            ..Default::default()
        };
        let b = NumaStat {
            numa_hit: 25,
            other_node: 3,
            ..Default::default()
        };
        let d = b.since(&a);
        assert_eq!((d.numa_hit, d.other_node), (15, 0));
        let x = BalancingStat {
            hint_faults: 10,
            hint_faults_local: 4,
            promoted: Some(3),
            ..Default::default()
        };
        let y = BalancingStat {
            mode: 1,
            hint_faults: 30,
            hint_faults_local: 9,
            promoted: Some(5),
            ..Default::default()
        };
        let d = y.since(&x);
        assert_eq!((d.mode, d.hint_faults, d.hint_faults_remote()), (1, 20, 15));
        assert_eq!(d.promoted, Some(2));
    }

    #[test]
    fn mapping_pages_sums() {
        let m = MappingPages {
            page_size: 4096,
            nodes: alloc::vec![(n(0), 3), (n(2), 5)],
            ..Default::default()
        };
        assert_eq!((m.on(n(2)), m.on(n(1)), m.resident()), (5, 0, 8));
        assert_eq!(m.bytes_on(n(0)), 3 * 4096);
    }
}
