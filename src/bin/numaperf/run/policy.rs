//! From `numaperf run`'s flags to the library's types: node lists and device forms to
//! masks, the memory policy, the CPU set, and which library errors are the user's.

use numaperf::numa_core::parse::{parse_device_spec, parse_list, parse_node_spec};
use numaperf::{
    CpuSet, DeviceMap, KernelWeights, MemPolicy, NodeMask, NodeWeights, NumaError,
    PlacementBackend, ThreadPolicy, TopologyInfo,
};

use super::RunArgs;
use crate::CliError;

/// Whether a library error is about what the user typed (exit 2) or the system (exit 1).
pub fn classify(flag: &str, value: &str, e: NumaError) -> CliError {
    use NumaError::*;
    let msg = format!("{flag} {value}: {e}");
    match e {
        Parse(_)
        | InvalidNode(_)
        | NodeNotFound(_)
        | NodeNotAllowed(_)
        | NoMemoryOnNode(_)
        | NoUsableNode
        | EmptyNodeMask
        | IncompatibleOption(_)
        | InvalidCpu(_)
        | EmptyCpuSet
        | CpuNotAllowed(_)
        | NoCpusOnNode(_)
        | NoUsableCpu
        | InvalidWeight { .. }
        | DeviceNotFound(_)
        | DeviceLocalityUnknown(_) => CliError::usage(msg),
        _ => CliError::runtime(msg),
    }
}

/// Nodes in numactl's syntax (`0-3,!2`, `+0-1`, `all`) within the allowed nodes, or a
/// device form (`netdev:eth0`, `block:nvme0n1`, `pci:0000:3b:00.0`, `file:PATH`).
pub fn nodes(flag: &str, spec: &str, allowed: &NodeMask) -> Result<NodeMask, CliError> {
    let is_device = parse_device_spec(spec).map_err(|e| classify(flag, spec, e.into()))?;
    let mask = match is_device {
        Some(_) => DeviceMap::discover()
            .and_then(|d| d.nodes_for(spec))
            .map_err(|e| classify(flag, spec, e))?,
        None => parse_node_spec(spec, allowed).map_err(|e| classify(flag, spec, e.into()))?,
    };
    if mask.is_empty() {
        return Err(CliError::usage(format!("{flag} {spec}: no nodes")));
    }
    Ok(mask)
}

/// `--weighted-interleave N[:W],..`: nodes (each entry a node list) with optional weights.
/// A thread's policy uses the kernel's global weight table, which numaperf never writes:
/// an entry without a weight takes the kernel's, and asked weights that differ from the
/// kernel's are refused, naming the kernel's.
fn weighted(
    spec: &str,
    allowed: &NodeMask,
    kernel: Option<KernelWeights>,
) -> Result<MemPolicy, CliError> {
    const FLAG: &str = "--weighted-interleave";
    let Some(kernel) = kernel else {
        return Err(CliError::usage(format!(
            "{FLAG} {spec}: this kernel has no weighted interleave (Linux 6.9)"
        )));
    };
    let mut asked = NodeWeights::new();
    let mut mask = NodeMask::new();
    for entry in spec.split(',') {
        let (nodes_text, weight) = match entry.split_once(':') {
            Some((n, w)) => {
                let w: u8 = w.trim().parse().ok().filter(|&w| w > 0).ok_or_else(|| {
                    CliError::usage(format!("{FLAG} {spec}: weight {w:?} is not 1..=255"))
                })?;
                (n, Some(w))
            }
            None => (entry, None),
        };
        for n in nodes(FLAG, nodes_text, allowed)?.iter() {
            let w = weight.unwrap_or(kernel.weights.weight(n).max(1));
            asked.set(n, w).map_err(|e| classify(FLAG, spec, e))?;
            mask.add(n);
        }
    }
    if !kernel.matches(&asked, &mask) {
        let theirs: Vec<String> = mask
            .iter()
            .map(|n| format!("{n}:{}", kernel.weights.weight(n).max(1)))
            .collect();
        return Err(CliError::usage(format!(
            "{FLAG} {spec}: the kernel's weights are {} (/sys/kernel/mm/mempolicy/\
             weighted_interleave); a process policy uses them, and numaperf never changes \
             them: ask for those, or set them yourself",
            theirs.join(",")
        )));
    }
    Ok(MemPolicy::WeightedInterleave(asked))
}

/// The memory policy the flags ask for (`None`: no memory flag, the policy is inherited).
pub fn memory_policy<B: PlacementBackend>(
    a: &RunArgs,
    backend: &B,
) -> Result<Option<ThreadPolicy>, CliError> {
    let allowed = *backend.topology().allowed_nodes();
    let policy = if let Some(s) = &a.membind {
        MemPolicy::Bind(nodes("--membind", s, &allowed)?)
    } else if let Some(s) = &a.preferred {
        let mask = nodes("--preferred", s, &allowed)?;
        let Some(n) = mask.first().filter(|_| mask.count() == 1) else {
            return Err(CliError::usage(format!(
                "--preferred {s}: one node, not {mask} (use --preferred-many)"
            )));
        };
        if a.balancing {
            // MPOL_F_NUMA_BALANCING takes MPOL_PREFERRED_MANY (6.9), not MPOL_PREFERRED.
            MemPolicy::PreferredMany(NodeMask::single(n))
        } else {
            MemPolicy::Preferred(n)
        }
    } else if let Some(s) = &a.preferred_many {
        MemPolicy::PreferredMany(nodes("--preferred-many", s, &allowed)?)
    } else if let Some(s) = &a.interleave {
        MemPolicy::Interleave(nodes("--interleave", s, &allowed)?)
    } else if let Some(s) = &a.weighted_interleave {
        let kernel = backend
            .kernel_weights()
            .map_err(|e| classify("--weighted-interleave", s, e))?;
        weighted(s, &allowed, kernel)?
    } else if a.localalloc {
        MemPolicy::Local
    } else if a.balancing {
        return Err(CliError::usage(
            "--balancing: needs --membind or --preferred (MPOL_F_NUMA_BALANCING)",
        ));
    } else {
        return Ok(None);
    };
    let mut tp = ThreadPolicy::new(policy);
    tp.numa_balancing = a.balancing;
    let (flag, value) = shown(a);
    tp.policy
        .validate(&tp.options(), backend.topology())
        .map_err(|e| classify(flag, value, e))?;
    Ok(Some(tp))
}

/// The memory flag and its value, for messages.
pub fn shown(a: &RunArgs) -> (&'static str, &str) {
    let pairs = [
        ("--membind", &a.membind),
        ("--preferred", &a.preferred),
        ("--preferred-many", &a.preferred_many),
        ("--interleave", &a.interleave),
        ("--weighted-interleave", &a.weighted_interleave),
    ];
    pairs
        .into_iter()
        .find_map(|(f, v)| v.as_deref().map(|v| (f, v)))
        .unwrap_or(if a.localalloc {
            ("--localalloc", "")
        } else {
            ("--balancing", "")
        })
}

/// The CPUs the flags ask for (`None`: no CPU flag, the affinity is inherited).
pub fn cpus<B: PlacementBackend>(a: &RunArgs, backend: &B) -> Result<Option<CpuSet>, CliError> {
    let topo = backend.topology();
    if let Some(s) = &a.cpunodebind {
        let mut cpus = CpuSet::new();
        for n in nodes("--cpunodebind", s, topo.allowed_nodes())?.iter() {
            let c = numaperf::thread::node_cpus(backend, n)
                .map_err(|e| classify("--cpunodebind", s, e))?;
            cpus = cpus.union(&c);
        }
        return Ok(Some(cpus));
    }
    let Some(s) = &a.physcpubind else {
        return Ok(None);
    };
    let cpus: CpuSet = if s == "all" {
        *topo.allowed_cpus()
    } else {
        parse_list(s).map_err(|e| classify("--physcpubind", s, e.into()))?
    };
    if cpus.is_empty() {
        return Err(CliError::usage(format!("--physcpubind {s}: no CPUs")));
    }
    if let Some(bad) = cpus.difference(topo.allowed_cpus()).first() {
        return Err(classify(
            "--physcpubind",
            s,
            NumaError::CpuNotAllowed(bad as u32),
        ));
    }
    Ok(Some(cpus))
}

/// The nodes `--verify` accepts pages on: the policy's nodes; for local allocation (or no
/// memory flag) the nodes of the CPUs the command is bound to, else every memory node.
#[cfg(target_os = "linux")]
pub fn verified_nodes<B: PlacementBackend>(
    policy: Option<&ThreadPolicy>,
    cpus: Option<&CpuSet>,
    backend: &B,
) -> NodeMask {
    let topo = backend.topology();
    let memory = topo.memory_nodes().intersection(topo.allowed_nodes());
    match policy.map(|p| &p.policy) {
        Some(MemPolicy::Local) | None => match cpus {
            Some(c) => {
                let near: NodeMask = c.iter().filter_map(|cpu| topo.cpu_node(cpu)).collect();
                near.intersection(&memory)
            }
            None => memory,
        },
        Some(p) => numaperf::numa_core::policy::effective_nodes(p, policy_mode(policy), topo),
    }
}

#[cfg(target_os = "linux")]
fn policy_mode(p: Option<&ThreadPolicy>) -> numaperf::NodeMode {
    p.map_or(numaperf::NodeMode::Default, |p| p.node_mode)
}
