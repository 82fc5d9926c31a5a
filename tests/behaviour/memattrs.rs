//! The memory-attributes case of the Linux backend: the topology's HMAT figures and memory
//! tiers agree with the kernel's files, read here independently, and the weights derived
//! from them lay out a region in their proportion (the x86_64 4node-cxl guest has QEMU
//! HMAT figures; elsewhere the kernel exposes none and the case says so).

use std::fs;
use std::path::Path;

use numaperf::numa_core::memattrs::{AccessClass, AccessFigures, TargetMetric};
use numaperf::numa_core::parse::parse_list;
use numaperf::{
    LinuxBackend, MemPolicy, NodeId, NodeMask, NumaRegion, PlacementBackend, Prefault,
    RegionOptions, Topology, TopologyInfo,
};

use super::{check, err, CaseResult, Outcome};

const NODES: &str = "/sys/devices/system/node";
const TIERS: &str = "/sys/devices/virtual/memory_tiering";

/// `nodeN/accessC/initiators` as the kernel shows it (`None`: no such directory).
fn raw_figures(node: NodeId, class: AccessClass) -> Result<Option<AccessFigures>, String> {
    let dir = Path::new(NODES).join(format!("node{node}/{}/initiators", class.dir_name()));
    let Ok(entries) = fs::read_dir(&dir) else {
        return Ok(None);
    };
    let mut f = AccessFigures::default();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(id) = name.strip_prefix("node").and_then(|i| i.parse().ok()) {
            f.initiators.add(NodeId::new(id));
            continue;
        }
        let slot = match name.as_str() {
            "read_bandwidth" => &mut f.read_bandwidth,
            "write_bandwidth" => &mut f.write_bandwidth,
            "read_latency" => &mut f.read_latency,
            "write_latency" => &mut f.write_latency,
            _ => continue,
        };
        let text = fs::read_to_string(e.path()).map_err(|e| format!("{name}: {e}"))?;
        *slot = Some(text.trim().parse().map_err(|e| format!("{name}: {e}"))?);
    }
    Ok(Some(f))
}

/// `(tier, nodes)` of every `memory_tierN` (empty: a kernel without tiers).
fn raw_tiers() -> Result<Vec<(u32, NodeMask)>, String> {
    let Ok(entries) = fs::read_dir(TIERS) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(tier) = name
            .strip_prefix("memory_tier")
            .and_then(|t| t.parse().ok())
        else {
            continue;
        };
        let text = fs::read_to_string(e.path().join("nodelist")).map_err(|e| format!("{e}"))?;
        out.push((
            tier,
            parse_list(text.trim()).map_err(|e| format!("{name}: {e}"))?,
        ));
    }
    Ok(out)
}

/// Every memory node's figures of both access classes and its tier as the kernel's files
/// say; the best node by latency for each CPU node no slower than any node it reaches;
/// and, on a kernel with weighted interleave, a region laid out by the bandwidth weights
/// of a CPU node and the memory-only node it reaches best, in their exact proportion.
pub fn memory_attributes_match_sysfs(b: &LinuxBackend) -> CaseResult {
    let topo = b.topology();
    let mut seen = Vec::new();
    for n in topo.memory_nodes().iter() {
        let have = topo.memory_attributes(n);
        for class in AccessClass::ALL {
            let raw = raw_figures(n, class)?;
            let got = have.and_then(|a| a.figures(class)).copied();
            check(got == raw, || {
                format!(
                    "node {n} {}: read {got:?}, the kernel says {raw:?}",
                    class.dir_name()
                )
            })?;
            if let Some(f) = raw {
                seen.push(format!(
                    "node{n}/{} from {}: {:?} MB/s {:?} ns",
                    class.dir_name(),
                    f.initiators,
                    f.read_bandwidth,
                    f.read_latency
                ));
            }
        }
    }
    let tiers = raw_tiers()?;
    for n in topo.memory_nodes().iter() {
        let raw = tiers.iter().find(|(_, m)| m.contains(n)).map(|(t, _)| *t);
        let got = topo.memory_attributes(n).and_then(|a| a.tier);
        check(got == raw, || {
            format!("node {n}: tier {got:?}, the kernel says {raw:?}")
        })?;
    }
    let tiers_seen: Vec<String> = tiers.iter().map(|(t, m)| format!("tier{t}={m}")).collect();
    if seen.is_empty() {
        return Ok(Outcome::Skip(format!(
            "this kernel exposes no memory access figures (no ACPI HMAT: no \
             node*/access0/initiators); tiers agree ({})",
            tiers_seen.join(" ")
        )));
    }
    // The best node by latency for a CPU node's CPUs is no slower than any node whose
    // figures name that CPU node as an initiator.
    for i in topo.cpu_nodes().iter() {
        let cpus = topo.node_cpus(i).copied().unwrap_or_default();
        let Some(best) = topo_best(b, &cpus)? else {
            continue;
        };
        for n in topo
            .memory_nodes()
            .intersection(topo.allowed_nodes())
            .iter()
        {
            let f = topo
                .memory_attributes(n)
                .and_then(|a| a.figures_from(&NodeMask::single(i)));
            if let Some(lat) = f.and_then(AccessFigures::latency) {
                check(best.value <= u64::from(lat), || {
                    format!(
                        "best for node {i} is node {} at {} ns; node {n} is {lat} ns",
                        best.node, best.value
                    )
                })?;
            }
        }
    }
    let layout = weighted_region(b)?;
    Ok(Outcome::Pass(format!(
        "{}; {}; {layout}",
        seen.join(", "),
        tiers_seen.join(" ")
    )))
}

fn topo_best(
    b: &LinuxBackend,
    cpus: &numaperf::CpuSet,
) -> Result<Option<numaperf::numa_core::memattrs::BestTarget>, String> {
    let t = Topology::of_backend(b).map_err(err)?;
    Ok(t.best_target(cpus, TargetMetric::Latency))
}

/// A region over a CPU node and a memory-only node with figures, by bandwidth weights.
fn weighted_region(b: &LinuxBackend) -> Result<String, String> {
    let t = Topology::of_backend(b).map_err(err)?;
    let usable = t.memory_nodes().intersection(&t.allowed_nodes());
    let far = usable.iter().find(|&n| {
        t.node_cpus(n).is_some_and(|c| c.is_empty())
            && t.memory_attributes(n)
                .and_then(|a| a.figures(AccessClass::CpuInitiator))
                .and_then(AccessFigures::bandwidth)
                .is_some()
    });
    let Some(far) = far else {
        return Ok("no memory-only node with a bandwidth figure: no weighted region".into());
    };
    let near = t
        .memory_attributes(far)
        .and_then(|a| a.figures(AccessClass::CpuInitiator))
        .and_then(|f| f.initiators.first())
        .filter(|n| usable.contains(*n))
        .ok_or("the memory-only node's initiator is not a usable memory node")?;
    let pair: NodeMask = [near, far].into_iter().collect();
    let w = t.bandwidth_weights(&pair).ok_or("no bandwidth weights")?;
    let (wn, wf) = (w.weight(near) as usize, w.weight(far) as usize);
    let page = b.base_page_size();
    let pages = (wn + wf) * 4;
    let policy = MemPolicy::WeightedInterleave(w);
    let r = match NumaRegion::anon_in(
        b,
        pages * page,
        policy,
        RegionOptions::new(),
        Prefault::Touch,
    ) {
        Ok(r) => r,
        Err(e @ numaperf::NumaError::Unsupported { .. }) => {
            return Ok(format!(
                "weights {near}={wn} {far}={wf}; no weighted region: {e}"
            ))
        }
        Err(e) => return Err(err(e)),
    };
    let p = r.placement().map_err(err)?;
    check(
        p.on(near) == (wn * 4) as u64 && p.on(far) == (wf * 4) as u64,
        || format!("weights {near}={wn} {far}={wf} over {pages} pages, placed {p}"),
    )?;
    Ok(format!("weights {near}={wn} {far}={wf}: {p}"))
}
