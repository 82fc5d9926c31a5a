//! Grading measured locality: the figures of a period (counter increases, pages of
//! watched regions, pool counters), the share of each that went where it should, a
//! [`LocalityHealth`] with documented thresholds, and [`Recommendation`]s derived from them.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::locality::{BalancingStat, NumaStat};
use crate::node::{NodeId, NodeMask};

/// A share at or above this (percent) is [`LocalityHealth::Excellent`].
pub const EXCELLENT_PERCENT: u64 = 90;
/// A share at or above this (percent) is [`LocalityHealth::Good`].
pub const GOOD_PERCENT: u64 = 70;
/// A share at or above this (percent) is [`LocalityHealth::Fair`]; below it, `Poor`.
pub const FAIR_PERCENT: u64 = 50;
/// Fewer allocations, hint faults or tasks than this in a period are not graded (too few
/// to tell locality from noise).
pub const MIN_EVENTS: u64 = 64;
/// A watched region with fewer resident pages than this is not graded.
pub const MIN_REGION_PAGES: u64 = 8;
/// A figure whose share is below this (percent) gets a recommendation: anything short of
/// excellent.
pub const ADVISE_BELOW_PERCENT: u64 = EXCELLENT_PERCENT;

/// How well memory and the tasks using it stayed together; the worst graded figure
/// decides (see the `*_PERCENT` thresholds and [`MIN_EVENTS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LocalityHealth {
    /// Below [`FAIR_PERCENT`].
    Poor,
    /// [`FAIR_PERCENT`] to below [`GOOD_PERCENT`].
    Fair,
    /// [`GOOD_PERCENT`] to below [`EXCELLENT_PERCENT`].
    Good,
    /// [`EXCELLENT_PERCENT`] or above.
    Excellent,
    /// Nothing in the period was large enough to grade.
    Unmeasured,
}

impl LocalityHealth {
    /// The grade of `good` out of `total` (`Unmeasured` for a total of 0).
    pub fn of_share(good: u64, total: u64) -> LocalityHealth {
        match percent(good, total) {
            None => LocalityHealth::Unmeasured,
            Some(p) if p >= EXCELLENT_PERCENT => LocalityHealth::Excellent,
            Some(p) if p >= GOOD_PERCENT => LocalityHealth::Good,
            Some(p) if p >= FAIR_PERCENT => LocalityHealth::Fair,
            Some(_) => LocalityHealth::Poor,
        }
    }

    /// Whether it is `Excellent`, `Good` or `Unmeasured`.
    pub fn is_acceptable(self) -> bool {
        matches!(
            self,
            LocalityHealth::Excellent | LocalityHealth::Good | LocalityHealth::Unmeasured
        )
    }
}

impl fmt::Display for LocalityHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LocalityHealth::Excellent => "EXCELLENT",
            LocalityHealth::Good => "GOOD",
            LocalityHealth::Fair => "FAIR",
            LocalityHealth::Poor => "POOR",
            LocalityHealth::Unmeasured => "UNMEASURED",
        })
    }
}

/// `part` of `whole` in whole percent, rounded down (`None` for a whole of 0). Rounding
/// down keeps 89.9% below the 90% threshold.
pub fn percent(part: u64, whole: u64) -> Option<u64> {
    (whole > 0).then(|| (u128::from(part.min(whole)) * 100 / u128::from(whole)) as u64)
}

/// Counters of one pool on one node over a period, filled by the pool's owner from the
/// pool's own statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolNodeCounters {
    /// Tasks this node's workers took from this node's queues.
    pub tasks_local: u64,
    /// Tasks this node's workers took from other nodes' queues.
    pub tasks_stolen: u64,
    /// Buffers asked of this node that came from another node: it was exhausted.
    pub fallback_exhausted: u64,
    /// ... : growing it failed for lack of memory.
    pub fallback_no_memory: u64,
}

impl PoolNodeCounters {
    /// The counts made after `earlier`.
    pub fn since(&self, earlier: &PoolNodeCounters) -> PoolNodeCounters {
        PoolNodeCounters {
            tasks_local: self.tasks_local.saturating_sub(earlier.tasks_local),
            tasks_stolen: self.tasks_stolen.saturating_sub(earlier.tasks_stolen),
            fallback_exhausted: self
                .fallback_exhausted
                .saturating_sub(earlier.fallback_exhausted),
            fallback_no_memory: self
                .fallback_no_memory
                .saturating_sub(earlier.fallback_no_memory),
        }
    }
}

/// A watched region: where its resident pages are and the node it is used from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegionFigures {
    /// The name it was watched under.
    pub name: String,
    /// The node its tasks run on.
    pub used_from: NodeId,
    /// Resident pages per node, ascending by node.
    pub pages: Vec<(NodeId, u64)>,
}

impl RegionFigures {
    /// Resident pages.
    pub fn resident(&self) -> u64 {
        self.pages.iter().fold(0, |t, &(_, p)| t.saturating_add(p))
    }

    /// Resident pages on `node`.
    pub fn on(&self, node: NodeId) -> u64 {
        self.pages
            .iter()
            .find(|(n, _)| *n == node)
            .map_or(0, |&(_, p)| p)
    }
}

/// A watched pool's counters over the period, per node.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolFigures {
    /// The name it was watched under.
    pub name: String,
    /// Its counters' increases per node, ascending by node.
    pub nodes: Vec<(NodeId, PoolNodeCounters)>,
}

/// What the machine measured between two points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalityFigures {
    /// Each node's `numastat` increases (system-wide: every process and the kernel).
    pub nodes: Vec<(NodeId, NumaStat)>,
    /// NUMA balancing's counter increases, when balancing was on.
    pub balancing: Option<BalancingStat>,
    /// Watched regions, as they are at the end of the period.
    pub regions: Vec<RegionFigures>,
    /// Watched pools' counter increases.
    pub pools: Vec<PoolFigures>,
    /// The nodes with CPUs (`None`: unknown, taken as every node).
    pub cpu_nodes: Option<NodeMask>,
}

/// What a graded share is of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Measure {
    /// Allocations made on the allocating task's node (`local_node` of all nodes'
    /// `local_node + other_node`).
    AllocationsLocal,
    /// Allocations meant for this node that were placed on it (`numa_hit` of
    /// `numa_hit + numa_foreign`).
    PlacedAsMeant(NodeId),
    /// NUMA hint faults on pages already on the faulting task's node.
    HintFaultsLocal,
    /// A watched region's resident pages on the node it is used from.
    RegionOnItsNode {
        /// The region's name.
        region: String,
        /// The node it is used from.
        node: NodeId,
    },
    /// Tasks a pool's workers on `node` took from their own node's queues.
    PoolTasksLocal {
        /// The pool's name.
        pool: String,
        /// The workers' node.
        node: NodeId,
    },
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measure::AllocationsLocal => {
                f.write_str("allocations on the allocating task's node (local_node)")
            }
            Measure::PlacedAsMeant(n) => {
                write!(f, "allocations meant for node {n} placed there (numa_hit)")
            }
            Measure::HintFaultsLocal => f.write_str("NUMA hint faults that were local"),
            Measure::RegionOnItsNode { region, node } => {
                write!(
                    f,
                    "region {region}'s pages on node {node}, where it is used"
                )
            }
            Measure::PoolTasksLocal { pool, node } => {
                write!(
                    f,
                    "pool {pool}: tasks node {node}'s workers took from node {node}"
                )
            }
        }
    }
}

/// One graded figure: `good` of `total`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measured {
    /// What it is of.
    pub measure: Measure,
    /// The part that went where it should.
    pub good: u64,
    /// The whole.
    pub total: u64,
}

impl Measured {
    /// Its grade.
    pub fn health(&self) -> LocalityHealth {
        LocalityHealth::of_share(self.good, self.total)
    }

    /// Its share in whole percent (rounded down).
    pub fn percent(&self) -> u64 {
        percent(self.good, self.total).unwrap_or(100)
    }
}

/// `good / total: 97% (970 of 1000) EXCELLENT`
impl fmt::Display for Measured {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}% ({} of {}) {}",
            self.measure,
            self.percent(),
            self.good,
            self.total,
            self.health()
        )
    }
}

impl LocalityFigures {
    /// Whether `node` has CPUs (true when unknown).
    fn has_cpus(&self, node: NodeId) -> bool {
        self.cpu_nodes.is_none_or(|m| m.contains(node))
    }

    /// Every figure large enough to grade ([`MIN_EVENTS`], [`MIN_REGION_PAGES`]).
    pub fn measured(&self) -> Vec<Measured> {
        let mut out = Vec::new();
        let mut push = |measure, good, total, min| {
            if total >= min {
                out.push(Measured {
                    measure,
                    good,
                    total,
                });
            }
        };
        let local: u64 = self
            .nodes
            .iter()
            .fold(0, |t, (_, s)| t.saturating_add(s.local_node));
        let other: u64 = self
            .nodes
            .iter()
            .fold(0, |t, (_, s)| t.saturating_add(s.other_node));
        push(
            Measure::AllocationsLocal,
            local,
            local.saturating_add(other),
            MIN_EVENTS,
        );
        for &(n, s) in &self.nodes {
            push(
                Measure::PlacedAsMeant(n),
                s.numa_hit,
                s.intended(),
                MIN_EVENTS,
            );
        }
        if let Some(b) = &self.balancing {
            push(
                Measure::HintFaultsLocal,
                b.hint_faults_local,
                b.hint_faults,
                MIN_EVENTS,
            );
        }
        for r in &self.regions {
            let measure = Measure::RegionOnItsNode {
                region: r.name.clone(),
                node: r.used_from,
            };
            push(measure, r.on(r.used_from), r.resident(), MIN_REGION_PAGES);
        }
        for p in &self.pools {
            for &(n, c) in &p.nodes {
                let measure = Measure::PoolTasksLocal {
                    pool: p.name.clone(),
                    node: n,
                };
                let total = c.tasks_local.saturating_add(c.tasks_stolen);
                push(measure, c.tasks_local, total, MIN_EVENTS);
            }
        }
        out
    }

    /// The worst grade of [`Self::measured`] (`Unmeasured` when nothing was graded).
    pub fn health(&self) -> LocalityHealth {
        self.measured()
            .iter()
            .map(Measured::health)
            .min()
            .unwrap_or(LocalityHealth::Unmeasured)
    }

    /// What the figures suggest, worst first within each kind: every graded figure below
    /// [`ADVISE_BELOW_PERCENT`], numa_miss where allocations landed that were meant
    /// elsewhere, and every buffer-pool fallback.
    pub fn recommendations(&self) -> Vec<Recommendation> {
        let mut out = Vec::new();
        let advise = |good: u64, total: u64, min: u64| {
            total >= min && percent(good, total).is_some_and(|p| p < ADVISE_BELOW_PERCENT)
        };
        for &(node, s) in &self.nodes {
            if advise(s.numa_hit, s.intended(), MIN_EVENTS) {
                out.push(Recommendation::NodeShort {
                    node,
                    foreign: s.numa_foreign,
                    meant: s.intended(),
                });
            }
        }
        for &(node, s) in &self.nodes {
            if advise(s.numa_hit, s.placed(), MIN_EVENTS) {
                out.push(Recommendation::MissedElsewhere {
                    node,
                    miss: s.numa_miss,
                    placed: s.placed(),
                });
            }
        }
        for &(node, s) in &self.nodes {
            let placed = s.local_node.saturating_add(s.other_node);
            if advise(s.local_node, placed, MIN_EVENTS) {
                out.push(Recommendation::AllocatedFromElsewhere {
                    node,
                    other: s.other_node,
                    placed,
                    node_has_cpus: self.has_cpus(node),
                });
            }
        }
        if let Some(b) = &self.balancing {
            if advise(b.hint_faults_local, b.hint_faults, MIN_EVENTS) {
                out.push(Recommendation::RemoteHintFaults {
                    remote: b.hint_faults_remote(),
                    faults: b.hint_faults,
                    migrated: b.pages_migrated,
                });
            }
        }
        for r in &self.regions {
            let resident = r.resident();
            if !advise(r.on(r.used_from), resident, MIN_REGION_PAGES) {
                continue;
            }
            let (node, pages) = r
                .pages
                .iter()
                .copied()
                .filter(|(n, _)| *n != r.used_from)
                .max_by_key(|&(n, p)| (p, core::cmp::Reverse(n)))
                .unwrap_or((r.used_from, 0));
            out.push(Recommendation::RegionAway {
                region: r.name.clone(),
                used_from: r.used_from,
                node,
                pages,
                away: resident.saturating_sub(r.on(r.used_from)),
                resident,
                node_has_cpus: self.has_cpus(node),
            });
        }
        for p in &self.pools {
            for &(node, c) in &p.nodes {
                let total = c.tasks_local.saturating_add(c.tasks_stolen);
                if advise(c.tasks_local, total, MIN_EVENTS) {
                    out.push(Recommendation::TasksStolen {
                        pool: p.name.clone(),
                        node,
                        stolen: c.tasks_stolen,
                        tasks: total,
                    });
                }
                if c.fallback_exhausted > 0 || c.fallback_no_memory > 0 {
                    out.push(Recommendation::BufferFallbacks {
                        pool: p.name.clone(),
                        node,
                        exhausted: c.fallback_exhausted,
                        no_memory: c.fallback_no_memory,
                    });
                }
            }
        }
        out
    }
}

/// Something to change, with the figures that call for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recommendation {
    /// Allocations meant for `node` were placed elsewhere (`numa_foreign`): it ran short
    /// of free memory.
    NodeShort {
        /// The node.
        node: NodeId,
        /// Allocations meant for it placed elsewhere.
        foreign: u64,
        /// Allocations meant for it.
        meant: u64,
    },
    /// Allocations placed on `node` were meant for another node (`numa_miss`).
    MissedElsewhere {
        /// The node.
        node: NodeId,
        /// Allocations placed on it meant for another.
        miss: u64,
        /// Allocations placed on it.
        placed: u64,
    },
    /// Allocations placed on `node` were made by tasks on other nodes (`other_node`).
    AllocatedFromElsewhere {
        /// The node.
        node: NodeId,
        /// Allocations made from other nodes.
        other: u64,
        /// Allocations placed on it.
        placed: u64,
        /// Whether the node has CPUs (a memory-only node's allocations all come from
        /// other nodes).
        node_has_cpus: bool,
    },
    /// NUMA balancing's hint faults found pages away from their tasks.
    RemoteHintFaults {
        /// Remote hint faults.
        remote: u64,
        /// All hint faults.
        faults: u64,
        /// Pages balancing moved.
        migrated: u64,
    },
    /// A watched region's pages are away from the node it is used from.
    RegionAway {
        /// The region's name.
        region: String,
        /// The node it is used from.
        used_from: NodeId,
        /// The other node holding most of its pages.
        node: NodeId,
        /// Its pages on `node`.
        pages: u64,
        /// Its pages on any node but `used_from`.
        away: u64,
        /// Its resident pages.
        resident: u64,
        /// Whether `node` has CPUs its tasks could run on.
        node_has_cpus: bool,
    },
    /// A pool's workers on `node` ran tasks stolen from other nodes' queues.
    TasksStolen {
        /// The pool's name.
        pool: String,
        /// The workers' node.
        node: NodeId,
        /// Tasks they stole.
        stolen: u64,
        /// Tasks they ran.
        tasks: u64,
    },
    /// A buffer pool handed out buffers of another node than the one asked for.
    BufferFallbacks {
        /// The pool's name.
        pool: String,
        /// The node asked for.
        node: NodeId,
        /// Because the node had every buffer it may have in use.
        exhausted: u64,
        /// Because growing it failed for lack of memory.
        no_memory: u64,
    },
}

impl fmt::Display for Recommendation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The share of `part` in `whole`, as 100 minus the rest's share rounded down (so it
        // agrees with the grade of the rest).
        let pct =
            |part: u64, whole: u64| 100 - percent(whole.saturating_sub(part), whole).unwrap_or(100);
        match self {
            Recommendation::NodeShort {
                node,
                foreign,
                meant,
            } => write!(
                f,
                "{}% of the allocations meant for node {node} were placed on other nodes \
                 (numa_foreign {foreign} of {meant}): node {node} ran short of free memory; \
                 free memory there or let the work use more nodes",
                pct(*foreign, *meant)
            ),
            Recommendation::MissedElsewhere { node, miss, placed } => write!(
                f,
                "numa_miss is {}% of allocations on node {node} ({miss} of {placed}): they \
                 were meant for nodes that were full",
                pct(*miss, *placed)
            ),
            Recommendation::AllocatedFromElsewhere {
                node,
                other,
                placed,
                node_has_cpus,
            } => {
                write!(
                    f,
                    "{}% of the allocations on node {node} came from tasks on other nodes \
                     (other_node {other} of {placed})",
                    pct(*other, *placed)
                )?;
                if *node_has_cpus {
                    write!(
                        f,
                        ": run those tasks on node {node}, or place their memory on their \
                         own node"
                    )
                } else {
                    write!(
                        f,
                        ": node {node} has no CPUs, so all its memory is remote; keep there \
                         only memory that is seldom or sequentially used"
                    )
                }
            }
            Recommendation::RemoteHintFaults {
                remote,
                faults,
                migrated,
            } => write!(
                f,
                "{}% of NUMA hint faults were remote ({remote} of {faults}; {migrated} pages \
                 migrated): tasks run away from their memory; pin them to its node or bind \
                 the memory to theirs",
                pct(*remote, *faults)
            ),
            Recommendation::RegionAway {
                region,
                used_from,
                node,
                pages,
                away,
                resident,
                node_has_cpus,
            } => {
                write!(
                    f,
                    "{}% of region {region}'s pages are on node {node} while it is used \
                     from node {used_from}",
                    pct(*pages, *resident)
                )?;
                if away > pages {
                    write!(
                        f,
                        " ({}% off node {used_from} in all)",
                        pct(*away, *resident)
                    )?;
                }
                write!(f, ": bind it to node {used_from} (or migrate it there)")?;
                if *node_has_cpus {
                    write!(f, ", or run its tasks on node {node}")?;
                }
                Ok(())
            }
            Recommendation::TasksStolen {
                pool,
                node,
                stolen,
                tasks,
            } => write!(
                f,
                "pool {pool}: {}% of the tasks node {node}'s workers ran were stolen from \
                 other nodes ({stolen} of {tasks}): submit work to the node whose memory it \
                 touches (spawn_on), or give that node more workers",
                pct(*stolen, *tasks)
            ),
            Recommendation::BufferFallbacks {
                pool,
                node,
                exhausted,
                no_memory,
            } => {
                write!(
                    f,
                    "pool {pool}: buffers asked of node {node} came from other nodes"
                )?;
                if *exhausted > 0 {
                    write!(
                        f,
                        "; {exhausted} because all its buffers were in use (raise \
                         max_per_node or return buffers sooner)"
                    )?;
                }
                if *no_memory > 0 {
                    write!(
                        f,
                        "; {no_memory} because node {node} had no memory for more"
                    )?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    fn n(i: u32) -> NodeId {
        NodeId::new(i)
    }

    #[test]
    fn thresholds_are_the_documented_ones() {
        use LocalityHealth::*;
        assert_eq!(LocalityHealth::of_share(90, 100), Excellent);
        assert_eq!(LocalityHealth::of_share(899, 1000), Good);
        assert_eq!(LocalityHealth::of_share(70, 100), Good);
        assert_eq!(LocalityHealth::of_share(69, 100), Fair);
        assert_eq!(LocalityHealth::of_share(50, 100), Fair);
        assert_eq!(LocalityHealth::of_share(49, 100), Poor);
        assert_eq!(LocalityHealth::of_share(0, 0), Unmeasured);
        assert!(Poor < Fair && Fair < Good && Good < Excellent);
        assert!(!Fair.is_acceptable() && Good.is_acceptable());
        assert_eq!(percent(u64::MAX, u64::MAX), Some(100));
    }

    #[test]
    fn nothing_measured_is_unmeasured_not_excellent() {
        let f = LocalityFigures {
            nodes: vec![(n(0), NumaStat::default())],
            ..Default::default()
        };
        assert_eq!(f.health(), LocalityHealth::Unmeasured);
        assert!(f.recommendations().is_empty());
        // Too few to grade.
        let f = LocalityFigures {
            nodes: vec![(
                n(0),
                NumaStat {
                    numa_hit: 3,
                    other_node: 3,
                    ..Default::default()
                },
            )],
            ..Default::default()
        };
        assert_eq!(f.health(), LocalityHealth::Unmeasured);
    }

    /// Node 0 ran short: 12% of what was meant for it went to node 1.
    fn short_node0() -> LocalityFigures {
        LocalityFigures {
            nodes: vec![
                (
                    n(0),
                    NumaStat {
                        numa_hit: 880,
                        numa_foreign: 120,
                        local_node: 880,
                        ..Default::default()
                    },
                ),
                (
                    n(1),
                    NumaStat {
                        numa_hit: 1000,
                        numa_miss: 120,
                        local_node: 1000,
                        other_node: 120,
                        ..Default::default()
                    },
                ),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn a_short_node_is_named() {
        let f = short_node0();
        let r = f.recommendations();
        assert_eq!(
            r[0],
            Recommendation::NodeShort {
                node: n(0),
                foreign: 120,
                meant: 1000
            }
        );
        assert!(r[0]
            .to_string()
            .starts_with("12% of the allocations meant for node 0 were placed on other nodes"));
        assert!(r.iter().any(|r| matches!(r,
            Recommendation::MissedElsewhere { node, miss: 120, .. } if *node == n(1))));
        assert!(r.iter().any(|r| r
            .to_string()
            .starts_with("numa_miss is 11% of allocations on node 1 (120 of 1120)")));
        // 88% meant-and-placed on node 0 is the worst: Good.
        assert_eq!(f.health(), LocalityHealth::Good);
    }

    #[test]
    fn a_remote_region_is_named_with_its_nodes() {
        let f = LocalityFigures {
            regions: vec![RegionFigures {
                name: "X".to_string(),
                used_from: n(0),
                pages: vec![(n(0), 62), (n(1), 38)],
            }],
            ..Default::default()
        };
        let r = f.recommendations();
        assert_eq!(r.len(), 1);
        assert_eq!(
            r[0].to_string(),
            "38% of region X's pages are on node 1 while it is used from node 0: bind it \
             to node 0 (or migrate it there), or run its tasks on node 1"
        );
        // Node 1 without CPUs: no advice to run tasks there.
        let memory_only = LocalityFigures {
            cpu_nodes: Some(NodeMask::single(n(0))),
            ..f.clone()
        };
        assert_eq!(
            memory_only.recommendations()[0].to_string(),
            "38% of region X's pages are on node 1 while it is used from node 0: bind it \
             to node 0 (or migrate it there)"
        );
        assert_eq!(f.health(), LocalityHealth::Fair);
        // Spread over two other nodes: the larger is named, the total said.
        let f = LocalityFigures {
            regions: vec![RegionFigures {
                name: "Y".to_string(),
                used_from: n(2),
                pages: vec![(n(0), 30), (n(1), 50), (n(2), 20)],
            }],
            ..Default::default()
        };
        let s = f.recommendations()[0].to_string();
        assert!(s.starts_with("50% of region Y's pages are on node 1 while it is used from node 2 (80% off node 2 in all)"), "{s}");
        assert_eq!(f.health(), LocalityHealth::Poor);
    }

    #[test]
    fn pools_and_balancing_are_graded() {
        let f = LocalityFigures {
            balancing: Some(BalancingStat {
                mode: 1,
                hint_faults: 100,
                hint_faults_local: 40,
                pages_migrated: 7,
                ..Default::default()
            }),
            pools: vec![PoolFigures {
                name: "w".to_string(),
                nodes: vec![(
                    n(1),
                    PoolNodeCounters {
                        tasks_local: 70,
                        tasks_stolen: 30,
                        fallback_exhausted: 2,
                        fallback_no_memory: 0,
                    },
                )],
            }],
            ..Default::default()
        };
        assert_eq!(f.health(), LocalityHealth::Poor);
        let r = f.recommendations();
        assert_eq!(r.len(), 3, "{r:?}");
        assert!(r[0]
            .to_string()
            .starts_with("60% of NUMA hint faults were remote (60 of 100"));
        assert!(r[1]
            .to_string()
            .starts_with("pool w: 30% of the tasks node 1's workers ran were stolen"));
        assert!(r[2]
            .to_string()
            .contains("2 because all its buffers were in use"));
    }

    proptest! {
        #[test]
        fn health_is_the_worst_figure_and_advice_follows_it(
            stats in prop::collection::vec(prop::array::uniform6(0u64..10_000), 1..5),
        ) {
            let f = LocalityFigures {
                nodes: stats.iter().enumerate().map(|(i, v)| (n(i as u32), NumaStat {
                    numa_hit: v[0], numa_miss: v[1], numa_foreign: v[2],
                    interleave_hit: v[3], local_node: v[4], other_node: v[5],
                })).collect(),
                ..Default::default()
            };
            let m = f.measured();
            let worst = m.iter().map(Measured::health).min().unwrap_or(LocalityHealth::Unmeasured);
            prop_assert_eq!(f.health(), worst);
            // A figure short of excellent always comes with advice.
            if m.iter().any(|x| x.percent() < ADVISE_BELOW_PERCENT) {
                prop_assert!(!f.recommendations().is_empty());
            }
            for r in f.recommendations() {
                let _ = r.to_string();
            }
        }
    }
}
