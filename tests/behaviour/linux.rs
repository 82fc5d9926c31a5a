//! Cases for the Linux backend alone (the kernel's own answers: getcpu, sysfs, lazy faults,
//! the possible-node limit), run on this host and in the multi-node guests; plus the
//! Linux harness's checks around every case (the kernel's weighted-interleave table).

use std::collections::BTreeMap;
use std::fs;

use numaperf::numa_core::parse::parse_list;
use numaperf::{
    thread, CpuSet, Enforcement, HugePages, LinuxBackend, MemPolicy, NodeId, NodeMask, NodeWeights,
    NumaError, NumaRegion, PlacementBackend, Prefault, TopologyInfo,
};
use numaperf_linux::mempolicy as mp;
use numaperf_sim::{CallKind, Tracer};

use super::{all_on, check, err, first_absent, memory_nodes, run_case, Case, CaseResult, Outcome};

const MIB: usize = 1 << 20;
/// The kernel's weighted-interleave table (Linux 6.9): global state no case may change.
pub const WEIGHTS_DIR: &str = "/sys/kernel/mm/mempolicy/weighted_interleave";

/// `get_mempolicy(MPOL_F_ADDR)` at `addr`, as a `MemPolicy` (`None`: MPOL_DEFAULT).
pub fn kernel_policy_at(b: &LinuxBackend, addr: *const u8) -> Result<Option<MemPolicy>, String> {
    let (mut mode, mut words) = (-1i32, [0usize; 1024 / usize::BITS as usize]);
    // maxnode 1025 reads the whole 1024-bit mask; any kernel accepts a maxnode beyond
    // its own node count and clears the bits past it.
    mp::get_mempolicy(&mut mode, &mut words, 1025, addr, mp::MPOL_F_ADDR)
        .map_err(|e| format!("get_mempolicy(MPOL_F_ADDR) at {addr:?}: {e}"))?;
    let flags = mp::MPOL_F_STATIC_NODES | mp::MPOL_F_RELATIVE_NODES | mp::MPOL_F_NUMA_BALANCING;
    let mask = NodeMask::from_kernel(&words, 1025);
    Ok(Some(match mode as u32 & !flags {
        mp::MPOL_DEFAULT => return Ok(None),
        mp::MPOL_LOCAL => MemPolicy::Local,
        // Before 5.12 MPOL_LOCAL read back as PREFERRED with an empty mask.
        mp::MPOL_PREFERRED => mask.first().map_or(MemPolicy::Local, MemPolicy::Preferred),
        mp::MPOL_BIND => MemPolicy::Bind(mask),
        mp::MPOL_INTERLEAVE => MemPolicy::Interleave(mask),
        mp::MPOL_PREFERRED_MANY => MemPolicy::PreferredMany(mask),
        mp::MPOL_WEIGHTED_INTERLEAVE => {
            // The weights are the kernel's global ones.
            let k = b
                .kernel_weights()
                .map_err(err)?
                .ok_or("no kernel weights")?;
            MemPolicy::WeightedInterleave(mask.iter().fold(NodeWeights::new(), |w, n| {
                w.with(n, k.weights.weight(n).max(1))
            }))
        }
        m => return Err(format!("unknown mode {m:#x} from get_mempolicy")),
    }))
}

/// The bytes of every `node*` and `auto` / `__auto_type` file of the weighted-interleave
/// table (empty: a kernel without one).
pub fn weight_files() -> BTreeMap<String, Vec<u8>> {
    let Ok(dir) = fs::read_dir(WEIGHTS_DIR) else {
        return BTreeMap::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let ours = name.starts_with("node") || name == "auto" || name == "__auto_type";
            ours.then(|| {
                (
                    name,
                    fs::read(e.path()).unwrap_or_else(|e| e.to_string().into()),
                )
            })
        })
        .collect()
}

/// Runs a case and fails it if the kernel's weighted-interleave table changed meanwhile.
pub fn run_checked<B>(case: &Case<B>, b: &B) -> CaseResult {
    let before = weight_files();
    let result = run_case(case, b);
    let after = weight_files();
    if before != after {
        let changed: Vec<String> = before
            .keys()
            .chain(after.keys())
            .filter(|k| before.get(*k) != after.get(*k))
            .map(|k| {
                let show =
                    |v: Option<&Vec<u8>>| v.map(|v| String::from_utf8_lossy(v).trim().to_string());
                format!("{k}: {:?} -> {:?}", show(before.get(k)), show(after.get(k)))
            })
            .collect();
        return Err(format!(
            "{WEIGHTS_DIR} changed during the case: {}",
            changed.join(", ")
        ));
    }
    result
}

/// The node ids the kernel can ever have: `/sys/devices/system/node/possible` (its
/// NODES_SHIFT limit, 16 on arm64 defaults, 1024 on x86_64 distribution kernels).
fn possible_nodes() -> Result<NodeMask, String> {
    let path = format!("{}/possible", LinuxBackend::SYSFS_ROOT);
    let text = fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_list::<NodeId, 16>(&text).map_err(|e| format!("{path}: {e}"))
}

/// Every policy on each memory node alone, prefaulted by touch and by populate: every
/// page present (a touch loop folded into loads would map the zero page) and on the node.
fn prefault_every_policy(b: &LinuxBackend) -> CaseResult {
    let mut seen = 0;
    for n in memory_nodes(b).iter() {
        let one = NodeMask::single(n);
        // Local on this node needs a CPU of it (memory-only nodes have none).
        let cpu = b
            .topology()
            .node_cpus(n)
            .and_then(|c| c.intersection(b.topology().allowed_cpus()).first());
        let mut policies = vec![
            MemPolicy::Bind(one),
            MemPolicy::Preferred(n),
            MemPolicy::Interleave(one),
            MemPolicy::PreferredMany(one),
        ];
        if cpu.is_some() {
            policies.push(MemPolicy::Local);
        }
        let _pin = match cpu {
            Some(c) => Some(thread::pin_to_cpus(b, &CpuSet::single(c)).map_err(err)?),
            None => None,
        };
        for policy in policies {
            for prefault in [Prefault::Touch, Prefault::Populate] {
                let r = match NumaRegion::anon_in(
                    b,
                    4 * MIB,
                    policy.clone(),
                    Default::default(),
                    prefault,
                ) {
                    Err(NumaError::Unsupported { .. }) => continue,
                    r => r.map_err(err)?,
                };
                check(r.enforcement() == Enforcement::Soft, || {
                    format!("{policy:?}: not Soft")
                })?;
                all_on(&r, &one).map_err(|e| format!("{policy:?} {prefault:?}: {e}"))?;
                seen += 1;
            }
        }
    }
    Ok(Outcome::Pass(format!(
        "{seen} regions of 4 MiB, every page present on its node"
    )))
}

/// A lazy region has no page until touched; one write faults exactly one page, on the node.
fn lazy_until_touched(b: &LinuxBackend) -> CaseResult {
    let n = memory_nodes(b).last().ok_or("no memory node")?;
    let mut r = NumaRegion::anon_in(
        b,
        MIB,
        MemPolicy::Bind(NodeMask::single(n)),
        Default::default(),
        Prefault::None,
    )
    .map_err(err)?;
    let pages = r.layout().page_count() as u64;
    let p = r.placement().map_err(err)?;
    check(p.not_present() == pages && p.present() == 0, || {
        format!("untouched: {p}")
    })?;
    r.as_mut_slice()[0] = 1;
    let q = r.placement().map_err(err)?;
    check((q.on(n), q.not_present()) == (1, pages - 1), || {
        format!("one byte written: {q}")
    })?;
    Ok(Outcome::Pass(format!("{p}, then {q}")))
}

/// Pinning to each allowed CPU: getcpu reports that CPU and the topology's node for it;
/// pinning to a node runs there; the affinity comes back; an absent node is refused.
fn pinning_follows_and_restores(b: &LinuxBackend) -> CaseResult {
    let before = b.thread_affinity().map_err(err)?;
    for cpu in before.iter() {
        let want = b
            .topology()
            .cpu_node(cpu)
            .ok_or(format!("cpu {cpu} on no node"))?;
        let _g = thread::pin_to_cpus(b, &CpuSet::single(cpu)).map_err(err)?;
        let here = thread::current_location(b).map_err(err)?;
        check(here.cpu == cpu && here.node == want, || {
            format!(
                "pinned to cpu {cpu} (node {want}), getcpu says cpu {} node {}",
                here.cpu, here.node
            )
        })?;
        let _n = thread::pin_to_node(b, want).map_err(err)?;
        let there = thread::current_location(b).map_err(err)?;
        check(there.node == want, || {
            format!("pinned to node {want}, on {}", there.node)
        })?;
    }
    check(b.thread_affinity().map_err(err)? == before, || {
        "affinity not restored".into()
    })?;
    let absent = first_absent(b).ok_or("all node ids online")?;
    let got = thread::pin_to_node(b, absent).map(drop);
    check(got == Err(NumaError::NodeNotFound(absent)), || {
        format!("pin to node {absent}: {got:?}")
    })?;
    Ok(Outcome::Pass(format!(
        "{} cpus, node {absent} refused",
        before.count()
    )))
}

/// Node ids that are not online, below and beyond the kernel's possible-node limit, are
/// refused by numaperf before any system call (a mask bit beyond NODES_SHIFT would be
/// EINVAL in the kernel); online nodes are all possible ones.
fn absent_nodes_refused_before_the_kernel(b: &LinuxBackend) -> CaseResult {
    let possible = possible_nodes()?;
    let online = *b.topology().nodes();
    check(online.is_subset(&possible), || {
        format!("online {{{online}}} not within possible {{{possible}}}")
    })?;
    let limit = possible.last().map_or(0, |n| n.get() + 1);
    let mut ids: Vec<NodeId> = first_absent(b).into_iter().collect();
    // Possible but not online (a node that could be hot-added), and the first id the
    // kernel cannot have.
    ids.extend(possible.difference(&online).first());
    ids.extend((limit < 1024).then(|| NodeId::new(limit)));
    let t = Tracer::new(b);
    let mut r = NumaRegion::anon_in(
        b,
        MIB,
        MemPolicy::Local,
        Default::default(),
        Prefault::Touch,
    )
    .map_err(err)?;
    for &n in &ids {
        for p in [
            MemPolicy::Bind(NodeMask::single(n)),
            MemPolicy::Preferred(n),
        ] {
            let got = NumaRegion::anon_in(&t, MIB, p.clone(), Default::default(), Prefault::Touch)
                .map(drop);
            check(got == Err(NumaError::NodeNotFound(n)), || {
                format!("{p:?}: {got:?}")
            })?;
        }
        let got = r.migrate(&NodeMask::single(n));
        check(got == Err(NumaError::NodeNotFound(n)), || {
            format!("migrate to {n}: {got:?}")
        })?;
    }
    check(t.calls().get(CallKind::Map) == 0, || {
        "an absent node reached mmap".into()
    })?;
    Ok(Outcome::Pass(format!(
        "possible {{{possible}}} (limit {limit}), refused {:?}",
        ids.iter().map(|n| n.get()).collect::<Vec<_>>()
    )))
}

/// Beyond a node's free memory, a lazy region still maps (nothing is touched; the size is
/// within the kernel's overcommit heuristic) and drops cleanly.
fn over_capacity_lazily_maps(b: &LinuxBackend) -> CaseResult {
    let n = memory_nodes(b).last().ok_or("no memory node")?;
    let free = b.free_memory(n, HugePages::None).map_err(err)? as usize;
    let r = NumaRegion::anon_in(
        b,
        free + 64 * MIB,
        MemPolicy::Bind(NodeMask::single(n)),
        Default::default(),
        Prefault::None,
    )
    .map_err(err)?;
    let p = r.placement().map_err(err)?;
    check(p.present() == 0, || format!("lazy region has pages: {p}"))?;
    Ok(Outcome::Pass(format!(
        "node {n}: {} MiB free, {} MiB mapped lazily",
        free >> 20,
        r.len() >> 20
    )))
}

/// `MemFree` in bytes from a meminfo file (`/proc/meminfo` or a node's).
fn mem_free(path: &str) -> Option<u64> {
    numaperf::numa_core::sysfs::node_free_bytes(&fs::read_to_string(path).ok()?)
}

/// With one memory node, its free memory is what /proc/meminfo reports: a kernel booted
/// with `deferred_init=lazy` hands memory to a node's zones only when an allocation needs
/// it, so the node's own meminfo shows a fraction and a check based on it would refuse
/// regions the kernel serves.
fn the_only_memory_node_has_the_systems_free_memory(b: &LinuxBackend) -> CaseResult {
    let memory = *b.topology().memory_nodes();
    if memory.count() != 1 {
        return Ok(Outcome::Skip(format!(
            "{} memory nodes: each node's free memory is its own meminfo's",
            memory.count()
        )));
    }
    let n = memory.first().ok_or("no memory node")?;
    let system = mem_free("/proc/meminfo").ok_or("no MemFree in /proc/meminfo")?;
    let ours = b.free_memory(n, HugePages::None).map_err(err)?;
    check(ours.abs_diff(system) < 256 * MIB as u64, || {
        format!("free_memory({n}) = {ours}, /proc/meminfo MemFree = {system}")
    })?;
    let node_file = format!("{}/node{n}/meminfo", LinuxBackend::SYSFS_ROOT);
    let Some(node) = mem_free(&node_file) else {
        return Ok(Outcome::Pass(format!(
            "{} MiB free; no {node_file}",
            ours >> 20
        )));
    };
    if system < node + (2 << 30) {
        return Ok(Outcome::Pass(format!(
            "{} MiB free as /proc/meminfo says; the populate beyond {node_file}'s MemFree not \
             run: the node holds all but {} MiB of the system's free memory",
            ours >> 20,
            system.saturating_sub(node) >> 20
        )));
    }
    // 1 GiB more than the node's file says is free: the kernel serves it, so must we.
    let len = (node as usize + (1 << 30)) & !(2 * MIB - 1);
    let r = NumaRegion::anon_in(
        b,
        len,
        MemPolicy::Bind(memory),
        Default::default(),
        Prefault::Populate,
    )
    .map_err(|e| format!("{} MiB bound to node {n}: {e}", len >> 20))?;
    Ok(Outcome::Pass(format!(
        "{} MiB beyond {node_file}: {}",
        len >> 20,
        all_on(&r, &memory)?
    )))
}

/// Memory bound to a node the thread is not on, populated: the kernel counts its
/// allocations on that node as made from another node (`other_node`, at least one per
/// 2 MiB: a transparent huge page counts once), and the locality report names the region,
/// its node and the thread's.
fn remote_allocation_is_reported(b: &LinuxBackend) -> CaseResult {
    use numaperf::locality::Recommendation;
    use numaperf::{LocalityHealth, LocalityReport, LocalitySnapshot};
    let (memory, topo) = (memory_nodes(b), b.topology());
    let Some(here) = topo
        .cpu_nodes()
        .iter()
        .find(|&a| memory.iter().any(|t| t != a))
    else {
        return Ok(Outcome::Skip("one memory node: nothing is remote".into()));
    };
    let _pin = thread::pin_to_node(b, here).map_err(err)?;
    let far = memory
        .iter()
        .filter(|&t| t != here)
        .max_by_key(|&t| (topo.distance(here, t), std::cmp::Reverse(t)))
        .ok_or("no other memory node")?;
    let before = LocalitySnapshot::take().map_err(err)?;
    let bind = MemPolicy::Bind(NodeMask::single(far));
    let r = NumaRegion::anon_in(b, 16 * MIB, bind, Default::default(), Prefault::Populate)
        .map_err(err)?;
    let before = before.watch_region("remote", &r).map_err(err)?;
    let report = LocalityReport::since(&before).map_err(err)?;
    let pages = r.layout().page_count() as u64;
    let s = report
        .numastat(far)
        .ok_or(format!("no numastat for node {far}"))?;
    check(
        s.other_node >= pages / 512 && s.numa_hit >= pages / 512,
        || format!("node {far} after {pages} pages bound there from node {here}: {s:?}"),
    )?;
    let region = report
        .figures()
        .regions
        .first()
        .ok_or("no region figures")?;
    check(
        region.on(far) == pages && region.resident() == pages,
        || {
            format!(
                "region pages per node {:?}, expected {pages} on {far}",
                region.pages
            )
        },
    )?;
    let named = report.recommendations().iter().any(|x| {
        matches!(x, Recommendation::RegionAway { region, used_from, node, .. }
            if region == "remote" && *used_from == here && *node == far)
    });
    let text = report.to_string();
    let line = format!(
        "100% of region remote's pages are on node {far} while it is used from node {here}"
    );
    check(named && text.contains(&line), || {
        format!("the report does not say so:\n{text}")
    })?;
    check(report.health() == LocalityHealth::Poor, || {
        format!("graded {}", report.health())
    })?;
    Ok(Outcome::Pass(format!(
        "node {far}: other_node +{} numa_hit +{} for {pages} pages from node {here}; {}",
        s.other_node,
        s.numa_hit,
        report.health()
    )))
}

/// The Linux-only cases.
pub fn cases() -> Vec<Case<LinuxBackend>> {
    vec![
        Case {
            name: "device_map_matches_sysfs",
            run: super::devices::device_map_matches_sysfs,
        },
        Case {
            name: "prefault_every_policy",
            run: prefault_every_policy,
        },
        Case {
            name: "lazy_until_touched",
            run: lazy_until_touched,
        },
        Case {
            name: "pinning_follows_and_restores",
            run: pinning_follows_and_restores,
        },
        Case {
            name: "absent_nodes_refused_before_the_kernel",
            run: absent_nodes_refused_before_the_kernel,
        },
        Case {
            name: "over_capacity_lazily_maps",
            run: over_capacity_lazily_maps,
        },
        Case {
            name: "the_only_memory_node_has_the_systems_free_memory",
            run: the_only_memory_node_has_the_systems_free_memory,
        },
        Case {
            name: "remote_allocation_is_reported",
            run: remote_allocation_is_reported,
        },
        Case {
            name: "vec_pages_follow_thread_policy",
            run: super::thread_policy::vec_pages_follow_thread_policy,
        },
        Case {
            name: "node_alloc_bound_vec_and_boxes",
            run: super::node_alloc::node_alloc_bound_vec_and_boxes,
        },
        Case {
            name: "node_alloc_interleave_spreads",
            run: super::node_alloc::node_alloc_interleave_spreads,
        },
        Case {
            name: "memory_attributes_match_sysfs",
            run: super::memattrs::memory_attributes_match_sysfs,
        },
    ]
}
