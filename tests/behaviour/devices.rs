//! The device-locality case of the Linux backend: the `DeviceMap` read from `/sys` agrees
//! with the kernel's files, read here independently, on this host and in the guests (the
//! x86_64 2-node guest has an e1000 behind a PCI expander bridge on node 1).

use std::fs;

use numaperf::numa_core::parse::parse_list;
use numaperf::TopologyInfo;
use numaperf::{CpuSet, DeviceMap, LinuxBackend, Locality, NodeId, NodeMask, PlacementBackend};

use super::{check, err, CaseResult, Outcome};

/// Every PCI function's node as its `numa_node` file says (-1: none, and then the nodes
/// of its `local_cpulist`), every interface on the PCI function its sysfs path runs
/// through, and the `pci:` and `netdev:` forms resolving to the same nodes.
pub fn device_map_matches_sysfs(b: &LinuxBackend) -> CaseResult {
    let Ok(dir) = fs::read_dir("/sys/bus/pci/devices") else {
        return Ok(Outcome::Skip(
            "no /sys/bus/pci/devices: no PCI bus here".into(),
        ));
    };
    let map = DeviceMap::of(b).map_err(err)?;
    let topo = b.topology();
    let (mut count, mut unknown, mut placed) = (0, 0, Vec::new());
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let raw = match fs::read_to_string(path.join("numa_node")) {
            Ok(t) => t
                .trim()
                .parse::<i64>()
                .map_err(|e| format!("{name}/numa_node: {e}"))?,
            Err(_) => -1,
        };
        let locality = map
            .locality_of(&name)
            .ok_or(format!("{name} is not in the map"))?;
        if raw >= 0 {
            let node = NodeId::new(raw as u32);
            check(locality == Locality::Node(node), || {
                format!("{name}: numa_node {raw}, the map says {locality}")
            })?;
            let form = map.nodes_for(&format!("pci:{name}")).map_err(err)?;
            check(form == NodeMask::single(node), || {
                format!("pci:{name} gave {form}")
            })?;
            let d = map.pci_device_of(&name).ok_or("no PCI device")?;
            let names: Vec<&str> = map.names_on(d.address).collect();
            placed.push(format!("{name} {} node {node} {names:?}", d.class()));
        } else {
            let cpus = fs::read_to_string(path.join("local_cpulist")).unwrap_or_default();
            let cpus: CpuSet = parse_list(&cpus).map_err(|e| format!("{name}: {e}"))?;
            let nodes: NodeMask = cpus.iter().filter_map(|c| topo.cpu_node(c)).collect();
            let want = if nodes.is_empty() {
                Locality::Unknown
            } else {
                Locality::NearCpusOf(nodes)
            };
            check(locality == want, || {
                format!("{name}: numa_node -1, local CPUs {cpus}: want {want}, got {locality}")
            })?;
            check(map.node_of(&name).is_none(), || {
                format!("{name}: -1 read as a node")
            })?;
            unknown += 1;
        }
        count += 1;
    }
    let listed = map.pci_devices().count();
    check(listed == count, || {
        format!("{count} PCI functions, the map has {listed}")
    })?;
    let mut interfaces = Vec::new();
    for entry in fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let real = fs::canonicalize(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        let real = real.to_string_lossy().into_owned();
        match map.pci_device_of(&name) {
            Some(d) => {
                let a = d.address.to_string();
                check(real.contains(&format!("/{a}/")), || {
                    format!("{name} at {real}, not {a}")
                })?;
                let by_name = map.nodes_for(&format!("netdev:{name}")).ok();
                let by_pci = map.nodes_for(&format!("pci:{a}")).ok();
                check(by_name == by_pci, || {
                    format!("netdev:{name} {by_name:?}, pci:{a} {by_pci:?}")
                })?;
                interfaces.push(format!("{name}@{a}"));
            }
            None => check(!real.starts_with("/sys/devices/pci"), || {
                format!("{name} is under {real} but on no PCI function")
            })?,
        }
    }
    Ok(Outcome::Pass(format!(
        "{count} PCI functions, {unknown} with numa_node -1; on a node: {placed:?}; \
         interfaces on PCI: {interfaces:?}"
    )))
}
