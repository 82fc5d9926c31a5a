//! `numaperf info --json` against a node tree (`/sys/devices/system/node`): node ids,
//! CPUs, MemTotal, memory-only nodes and distances. Shared by the guests' CLI cases and
//! `tests/cli.rs`.

use std::fs;

use numaperf::numa_core::parse::{parse_distance_row, parse_list, parse_meminfo_kb};
use numaperf::{CpuSet, NodeMask};
use serde_json::Value;

fn read(root: &str, rel: &str) -> Result<String, String> {
    fs::read_to_string(format!("{root}/{rel}")).map_err(|e| format!("{rel}: {e}"))
}

fn mask(root: &str, rel: &str) -> Result<NodeMask, String> {
    parse_list(&read(root, rel)?).map_err(|e| format!("{rel}: {e}"))
}

fn ids(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

fn mask_ids(m: &NodeMask) -> Vec<u64> {
    m.iter().map(|n| u64::from(n.get())).collect()
}

/// Checks `json` (the whole output of `numaperf info --json`) against the tree at
/// `root`; says what agreed, or the first difference.
pub fn json_matches_sysfs(json: &[u8], root: &str) -> Result<String, String> {
    let j: Value = serde_json::from_slice(json).map_err(|e| format!("JSON: {e}"))?;
    let online = mask(root, "online")?;
    let has_memory = mask(root, "has_memory")?;
    let has_cpu = mask(root, "has_cpu")?;
    let nodes = j["nodes"].as_array().ok_or("no \"nodes\" array")?;
    let json_ids: Vec<u64> = nodes.iter().filter_map(|n| n["id"].as_u64()).collect();
    if json_ids != mask_ids(&online) {
        return Err(format!("node ids {json_ids:?}, sysfs online {online}"));
    }
    let mut rows = Vec::new();
    for (n, node) in online.iter().zip(nodes) {
        let cpus: CpuSet = parse_list(&read(root, &format!("node{n}/cpulist"))?)
            .map_err(|e| format!("node{n}/cpulist: {e}"))?;
        let want: Vec<u64> = cpus.iter().map(|c| c as u64).collect();
        if ids(&node["cpus"]) != want {
            return Err(format!("node {n} cpus {}, sysfs {cpus}", node["cpus"]));
        }
        let total = parse_meminfo_kb(&read(root, &format!("node{n}/meminfo"))?, "MemTotal:")
            .ok_or(format!("node{n}/meminfo: no MemTotal"))?;
        let (jt, jf) = (
            node["memory_total_bytes"].as_u64(),
            node["memory_free_bytes"].as_u64(),
        );
        if jt != Some(total) || jf.is_none_or(|f| f > total) {
            return Err(format!(
                "node {n}: total {jt:?} free {jf:?}, sysfs MemTotal {total}"
            ));
        }
        if node["has_memory"].as_bool() != Some(has_memory.contains(n))
            || node["has_cpus"].as_bool() != Some(has_cpu.contains(n))
        {
            return Err(format!("node {n}: has_memory/has_cpus {node}"));
        }
        let mut row = [0u8; 64];
        let k = parse_distance_row(&read(root, &format!("node{n}/distance"))?, &mut row)
            .map_err(|e| format!("node{n}/distance: {e}"))?;
        rows.push(row[..k].iter().map(|&d| u64::from(d)).collect::<Vec<u64>>());
    }
    let json_rows: Vec<Vec<u64>> = j["distances"]
        .as_array()
        .ok_or("no \"distances\"")?
        .iter()
        .map(ids)
        .collect();
    if json_rows != rows {
        return Err(format!("distances {json_rows:?}, sysfs {rows:?}"));
    }
    let memory_only = has_memory.difference(&has_cpu);
    if ids(&j["memory_only_nodes"]) != mask_ids(&memory_only) {
        return Err(format!(
            "memory_only_nodes {}, sysfs {memory_only}",
            j["memory_only_nodes"]
        ));
    }
    let memory_only = if memory_only.is_empty() {
        "none".to_string()
    } else {
        memory_only.to_string()
    };
    Ok(format!(
        "{} nodes, memory-only {memory_only}, distances {rows:?}",
        online.count()
    ))
}
