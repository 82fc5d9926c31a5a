//! `numaperf info`: the machine as `numactl --hardware` and `numactl --show` see it, and
//! more (memory-only nodes, capabilities, devices per node, weighted-interleave weights);
//! as text or as one JSON object ([`JSON_SCHEMA`]).

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use numaperf::{
    thread, Capabilities, DefaultBackend, DeviceMap, Locality, MemPolicy, NodeMask, Topology,
    TopologyInfo, TopologyPart,
};
use serde_json::{json, Value};

use super::CliError;

/// The JSON object `numaperf info --json` prints; this text is also its `--help`.
pub const JSON_SCHEMA: &str = "\
JSON (--json): one object. \"schema\" and \"nodes\" are always there; the other keys
are those of the section asked for (all: every key). Sizes are bytes, ids numbers.
  schema             1, raised only if a key changes meaning or goes away  (always)
  nodes              [{id, cpus: [cpu], memory_total_bytes, memory_free_bytes,
                       has_memory, has_cpus}], by id                        (always)
  memory_only_nodes  [id]: nodes with memory and no CPU (CXL, HBM)         (topology)
  cpu_only_nodes     [id]: nodes with CPUs and no memory                   (topology)
  distances          [[distance]]: rows and columns in the order of nodes (distances)
  affinity           {policy, policy_nodes: [id], allowed_nodes: [id],
                      allowed_cpus: [cpu], cpubind_nodes: [id], membind_nodes: [id],
                      cpu, node}: what numactl --show prints                 (affinity)
  capabilities       {backend, kernel, features: {NAME: bool}, thp, numa_balancing,
                      cap_sys_nice, memory_headroom_bytes, hard_mode,
                      hard_mode_blockers: [text], problems: [text]}      (capabilities)
  devices            [{address, class, class_code, node, near_nodes: [id],
                       names: [name]}]: PCI functions; node null = unknown     (devices)
  weights            {auto, weights: [{node, weight}]}, or null before Linux 6.9 (weights)";

/// Which part of the machine `numaperf info` shows.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    /// Nodes, CPUs, memory (numactl --hardware), memory-only and CPU-only nodes.
    Topology,
    /// The node distance matrix (numactl --hardware).
    Distances,
    /// Kernel features, THP, huge pages, NUMA balancing, cgroup, privileges, hard mode.
    Capabilities,
    /// This process's policy, allowed nodes and CPUs (numactl --show).
    Affinity,
    /// PCI devices, their nodes and names, and the devices of each node.
    Devices,
    /// The kernel's weighted-interleave weights.
    Weights,
    /// Everything above.
    All,
}

/// Arguments of `numaperf info`.
#[derive(Args, Debug)]
#[command(after_long_help = JSON_SCHEMA)]
pub struct InfoArgs {
    /// What to show.
    #[arg(value_enum, default_value_t = Section::All)]
    section: Section,
    /// Print one JSON object instead of text (schema in --help).
    #[arg(long)]
    json: bool,
}

impl Section {
    fn shows(self, s: Section) -> bool {
        self == Section::All || self == s
    }
}

/// Runs `numaperf info`.
pub fn exec(args: &InfoArgs) -> Result<ExitCode, CliError> {
    let topo = Topology::discover()?;
    let sec = args.section;
    let devices = if sec.shows(Section::Devices) {
        Some(DeviceMap::discover()?)
    } else {
        None
    };
    if args.json {
        println!("{}", json_object(&topo, sec, devices.as_ref())?);
    } else {
        print_text(&topo, sec, devices.as_ref())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn ids(m: &NodeMask) -> Vec<u32> {
    m.iter().map(|n| n.get()).collect()
}

fn memory_only(topo: &Topology) -> NodeMask {
    topo.memory_nodes().difference(topo.cpu_nodes())
}

fn cpu_only(topo: &Topology) -> NodeMask {
    topo.cpu_nodes().difference(&topo.memory_nodes())
}

/// What numactl --show derives from the process: (policy name, its nodes, the nodes
/// with allowed CPUs, membind).
struct Affinity {
    policy: &'static str,
    policy_nodes: NodeMask,
    cpubind: NodeMask,
    membind: NodeMask,
    here: Option<(usize, u32)>,
}

fn affinity(topo: &Topology) -> Result<Affinity, CliError> {
    let b = DefaultBackend::shared()?;
    // A backend that cannot read the policy (the portable one) says so in the name.
    let read = thread::current_policy(&b);
    let policy = read
        .as_ref()
        .ok()
        .and_then(|p| p.as_ref())
        .map(|p| p.policy.clone());
    let name = match &policy {
        None if read.is_err() => "unknown",
        None => "default",
        Some(MemPolicy::Local) => "local",
        Some(MemPolicy::Bind(_)) => "bind",
        Some(MemPolicy::Preferred(_)) => "preferred",
        Some(MemPolicy::PreferredMany(_)) => "preferred-many",
        Some(MemPolicy::Interleave(_)) => "interleave",
        Some(MemPolicy::WeightedInterleave(_)) => "weighted-interleave",
    };
    let policy_nodes = policy.as_ref().map(MemPolicy::nodes).unwrap_or_default();
    let allowed = topo.allowed_cpus();
    let cpubind = topo
        .numa_nodes()
        .iter()
        .filter(|n| n.cpus().iter().any(|c| allowed.contains(c)))
        .map(|n| n.id())
        .collect();
    // libnuma's numa_get_membind: the policy's nodes under MPOL_BIND, else Mems_allowed.
    let membind = match &policy {
        Some(MemPolicy::Bind(m)) => *m,
        _ => topo.allowed_nodes(),
    };
    let here = thread::current_location(&b)
        .ok()
        .map(|l| (l.cpu, l.node.get()));
    Ok(Affinity {
        policy: name,
        policy_nodes,
        cpubind,
        membind,
        here,
    })
}

fn print_text(topo: &Topology, sec: Section, devices: Option<&DeviceMap>) -> Result<(), CliError> {
    if sec.shows(Section::Topology) {
        print!("{}", topo.text(TopologyPart::Nodes));
        println!("memory-only nodes: {}", or_none(&memory_only(topo)));
        println!("cpu-only nodes: {}", or_none(&cpu_only(topo)));
        print!("{}", topo.text(TopologyPart::MemoryAttributes));
    }
    if sec.shows(Section::Distances) {
        print!("{}", topo.text(TopologyPart::Distances));
    }
    if sec.shows(Section::Affinity) {
        let a = affinity(topo)?;
        println!("policy: {}", a.policy);
        match a.policy {
            "default" | "local" => println!("preferred node: current"),
            _ => println!("policy nodes: {}", or_none(&a.policy_nodes)),
        }
        let cpus: Vec<String> = topo.allowed_cpus().iter().map(|c| c.to_string()).collect();
        println!("physcpubind: {}", cpus.join(" "));
        println!("cpubind: {}", spaced(&a.cpubind));
        println!("nodebind: {}", spaced(&a.cpubind));
        println!("membind: {}", spaced(&a.membind));
        println!("allowed nodes: {}", or_none(&topo.allowed_nodes()));
        println!("allowed cpus: {}", topo.allowed_cpus());
        if let Some((cpu, node)) = a.here {
            println!("this thread: cpu {cpu} on node {node}");
        }
    }
    if sec.shows(Section::Capabilities) {
        println!("{}", Capabilities::detect());
    }
    if let Some(d) = devices {
        let text = d.to_string();
        if text.is_empty() {
            println!("devices: none on PCI");
        } else {
            print!("{text}");
        }
        for n in topo.numa_nodes() {
            let on = node_devices(d, |l| matches!(l, Locality::Node(m) if *m == n.id()));
            let near = node_devices(
                d,
                |l| matches!(l, Locality::NearCpusOf(m) if m.contains(n.id())),
            );
            print!("node {} devices: {}", n.id(), none_if_empty(&on.join(", ")));
            if !near.is_empty() {
                print!(" (numa_node unknown, near its CPUs: {})", near.join(", "));
            }
            println!();
        }
    }
    if sec.shows(Section::Weights) {
        let w = topo.text(TopologyPart::Weights).to_string();
        if w.is_empty() {
            println!(
                "weighted interleave weights: none (the kernel has no table before Linux 6.9)"
            );
        } else {
            print!("{w}");
        }
    }
    Ok(())
}

/// Names of the PCI functions whose locality `pick` takes (their interfaces and disks;
/// the address of a function without any).
fn node_devices(d: &DeviceMap, pick: impl Fn(&Locality) -> bool) -> Vec<String> {
    d.pci_devices()
        .filter(|(_, l)| pick(l))
        .flat_map(|(p, _)| {
            let names: Vec<String> = d.names_on(p.address).map(str::to_string).collect();
            if names.is_empty() {
                vec![p.address.to_string()]
            } else {
                names
            }
        })
        .collect()
}

fn or_none(m: &NodeMask) -> String {
    if m.is_empty() {
        "none".into()
    } else {
        m.to_string()
    }
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "none"
    } else {
        s
    }
}

/// A mask as numactl --show prints it: ids separated by spaces.
fn spaced(m: &NodeMask) -> String {
    let v: Vec<String> = m.iter().map(|n| n.to_string()).collect();
    v.join(" ")
}

fn json_object(
    topo: &Topology,
    sec: Section,
    devices: Option<&DeviceMap>,
) -> Result<Value, CliError> {
    let nodes: Vec<Value> = topo
        .numa_nodes()
        .iter()
        .map(|n| {
            json!({
                "id": n.id().get(),
                "cpus": n.cpus().iter().collect::<Vec<usize>>(),
                "memory_total_bytes": n.mem_total(),
                "memory_free_bytes": n.mem_free(),
                "has_memory": topo.memory_nodes().contains(n.id()),
                "has_cpus": !n.cpus().is_empty(),
            })
        })
        .collect();
    let mut o = serde_json::Map::new();
    o.insert("schema".into(), json!(1));
    o.insert("nodes".into(), Value::Array(nodes));
    if sec.shows(Section::Topology) {
        o.insert("memory_only_nodes".into(), json!(ids(&memory_only(topo))));
        o.insert("cpu_only_nodes".into(), json!(ids(&cpu_only(topo))));
    }
    if sec.shows(Section::Distances) {
        let rows: Vec<Vec<u8>> = topo
            .numa_nodes()
            .iter()
            .map(|a| {
                topo.numa_nodes()
                    .iter()
                    .map(|b| topo.distance(a.id(), b.id()).unwrap_or(0))
                    .collect()
            })
            .collect();
        o.insert("distances".into(), json!(rows));
    }
    if sec.shows(Section::Affinity) {
        let a = affinity(topo)?;
        o.insert(
            "affinity".into(),
            json!({
                "policy": a.policy,
                "policy_nodes": ids(&a.policy_nodes),
                "allowed_nodes": ids(&topo.allowed_nodes()),
                "allowed_cpus": topo.allowed_cpus().iter().collect::<Vec<usize>>(),
                "cpubind_nodes": ids(&a.cpubind),
                "membind_nodes": ids(&a.membind),
                "cpu": a.here.map(|h| h.0),
                "node": a.here.map(|h| h.1),
            }),
        );
    }
    if sec.shows(Section::Capabilities) {
        o.insert(
            "capabilities".into(),
            capabilities_json(&Capabilities::detect()),
        );
    }
    if let Some(d) = devices {
        let list: Vec<Value> = d
            .pci_devices()
            .map(|(p, l)| {
                let (node, near) = match l {
                    Locality::Node(n) => (Some(n.get()), vec![n.get()]),
                    Locality::NearCpusOf(m) => (None, ids(&m)),
                    Locality::Unknown => (None, Vec::new()),
                };
                json!({
                    "address": p.address.to_string(),
                    "class": p.class().to_string(),
                    "class_code": p.class_code,
                    "node": node,
                    "near_nodes": near,
                    "names": d.names_on(p.address).collect::<Vec<&str>>(),
                })
            })
            .collect();
        o.insert("devices".into(), Value::Array(list));
    }
    if sec.shows(Section::Weights) {
        let w = topo.kernel_weights().map(|k| {
            let per: Vec<Value> = topo
                .numa_nodes()
                .iter()
                .map(|n| json!({"node": n.id().get(), "weight": k.weights.weight(n.id()).max(1)}))
                .collect();
            json!({"auto": k.auto, "weights": per})
        });
        o.insert("weights".into(), w.unwrap_or(Value::Null));
    }
    Ok(Value::Object(o))
}

fn capabilities_json(c: &Capabilities) -> Value {
    use numaperf::KernelFeature;
    let features: serde_json::Map<String, Value> = KernelFeature::ALL
        .iter()
        .map(|&f| (f.name().to_string(), json!(c.features.contains(f))))
        .collect();
    json!({
        "backend": c.backend,
        "kernel": c.kernel.map(|k| k.to_string()),
        "features": features,
        "thp": c.thp.map(|m| m.name()),
        "numa_balancing": c.numa_balancing.map(|b| b.to_string()),
        "cap_sys_nice": c.cap_sys_nice,
        "memory_headroom_bytes": c.memory_headroom(),
        "hard_mode": c.supports_hard_mode(),
        "hard_mode_blockers": c.hard_mode_blockers().iter().map(|b| b.to_string()).collect::<Vec<_>>(),
        "problems": c.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
    })
}
