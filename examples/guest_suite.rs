//! The payload of the multi-node QEMU guests (tests/guest/run.sh). Runs the behaviour
//! suite on the guest kernel (LinuxBackend), then the same exact-placement scenarios on a
//! SimMachine replaying the guest's own sysfs tree, and fails on any histogram difference.
//! Prints `NUMAPERF-CASE`, `NUMAPERF-SYSFS` and `NUMAPERF-DONE` lines for the runner.
//!
//! Arguments: `full` (default) or `soft` (NUMA balancing on: checks only what Soft promises).

#[path = "../tests/behaviour/mod.rs"]
mod behaviour;

use std::collections::BTreeMap;
use std::fs;

use behaviour::Outcome;
use numaperf::{LinuxBackend, MemPolicy, NumaRegion, PlacementBackend, Prefault, TopologyInfo};
use numaperf_sim::{KernelFeature, SimMachine};

/// Scenarios whose histograms are exact on a kernel booted with numa_balancing=disable.
const EXACT: [&str; 14] = [
    "bind_every_node",
    "preferred_every_node",
    "local_follows_pinned_cpu",
    "interleave_exact",
    "preferred_many",
    "weighted_interleave",
    "migrate_every_page",
    "hard_mode_verified",
    "ltp_mbind03",
    "ltp_mbind04",
    "ltp_set_mempolicy01",
    "ltp_set_mempolicy02",
    "ltp_move_pages01_04",
    "ltp_move_pages02_09",
];

struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    fn case(&mut self, name: &str, ok: Result<String, String>) {
        match ok {
            Ok(d) => {
                self.passed += 1;
                println!("NUMAPERF-CASE {name} PASS {d}");
            }
            Err(d) => {
                self.failed += 1;
                println!("NUMAPERF-CASE {name} FAIL {d}");
            }
        }
    }
}

/// Runs every case on `b`, reporting each; returns the pass details by case name.
fn run<B: PlacementBackend>(
    b: &B,
    label: &str,
    report: &mut Report,
) -> BTreeMap<&'static str, String> {
    let mut details = BTreeMap::new();
    for case in behaviour::cases::<B>() {
        let name = format!("{label}/{}", case.name);
        match (case.run)(b) {
            Ok(Outcome::Pass(d)) => {
                details.insert(case.name, d.clone());
                report.case(&name, Ok(d));
            }
            Ok(Outcome::Skip(d)) => println!("NUMAPERF-CASE {name} SKIP {d}"),
            Err(d) => report.case(&name, Err(d)),
        }
    }
    details
}

/// The kernel release as (major, minor).
fn kernel_version() -> (u32, u32) {
    let r = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = r
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|s| s.parse().ok());
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Prints the guest's node tree so the runner can keep it.
fn print_sysfs(root: &str) {
    let mut files = vec![
        "online".to_string(),
        "possible".into(),
        "has_memory".into(),
        "has_cpu".into(),
    ];
    let online = fs::read_to_string(format!("{root}/online")).unwrap_or_default();
    if let Ok(nodes) = numaperf::numa_core::parse::parse_list::<numaperf::NodeId, 16>(&online) {
        for n in nodes.iter() {
            for f in ["cpulist", "distance", "meminfo"] {
                files.push(format!("node{n}/{f}"));
            }
        }
    }
    for f in files {
        if let Ok(text) = fs::read_to_string(format!("{root}/{f}")) {
            let hex: String = text.bytes().map(|b| format!("{b:02x}")).collect();
            println!("NUMAPERF-SYSFS {f} {hex}");
        }
    }
}

fn soft_only(b: &LinuxBackend, report: &mut Report) {
    // With NUMA balancing on, Soft promises only that the memory exists and is usable.
    let nodes = b
        .topology()
        .memory_nodes()
        .intersection(b.topology().allowed_nodes());
    for policy in [
        MemPolicy::Local,
        MemPolicy::Preferred(nodes.last().unwrap_or_default()),
        MemPolicy::Interleave(nodes),
    ] {
        let name = format!("balancing/soft_{}", policy.mode_name());
        let r = NumaRegion::anon_in(b, 4 << 20, policy, Default::default(), Prefault::Touch)
            .and_then(|mut r| {
                r.as_mut_slice().iter_mut().for_each(|x| *x = 7);
                let p = r.placement()?;
                Ok((r.as_slice().iter().all(|&x| x == 7), p))
            });
        report.case(
            &name,
            match r {
                Ok((true, p))
                    if p.present() + p.not_present() == p.total()
                        && p.nodes().is_subset(&nodes) =>
                {
                    Ok(p.to_string())
                }
                Ok((_, p)) => Err(format!("content or placement off: {p}")),
                Err(e) => Err(e.to_string()),
            },
        );
    }
}

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_else(|| "full".into());
    let root = numaperf::LinuxBackend::SYSFS_ROOT.to_string();
    print_sysfs(&root);
    let mut report = Report {
        passed: 0,
        failed: 0,
    };
    let b = match LinuxBackend::shared() {
        Ok(b) => b,
        Err(e) => {
            println!("NUMAPERF-CASE setup FAIL {e}");
            println!("NUMAPERF-DONE 0 1");
            return;
        }
    };
    if mode == "soft" {
        soft_only(&b, &mut report);
        println!("NUMAPERF-DONE {} {}", report.passed, report.failed);
        return;
    }
    let kernel = run(&b, "kernel", &mut report);

    // Weighted interleave: unsupported before 6.9, placed by weights from 6.9 on.
    let (major, minor) = kernel_version();
    let has_weighted = (major, minor) >= (6, 9);
    let weighted = kernel
        .get("weighted_interleave")
        .cloned()
        .unwrap_or_default();
    let expect = if has_weighted {
        "placed"
    } else {
        "unsupported"
    };
    report.case(
        "kernel/weighted_interleave_matches_version",
        if weighted.starts_with(expect) {
            Ok(format!("{major}.{minor}: {weighted}"))
        } else {
            Err(format!(
                "{major}.{minor}: expected {expect}, got {weighted}"
            ))
        },
    );

    // The same scenarios on the sim replaying this guest's sysfs tree.
    let sim = match SimMachine::from_sysfs_dir(&root) {
        Ok(s) => s,
        Err(e) => {
            report.case("sim/replay_guest_sysfs", Err(e.to_string()));
            println!("NUMAPERF-DONE {} {}", report.passed, report.failed);
            return;
        }
    };
    if !has_weighted {
        sim.kernel_lacks(KernelFeature::WeightedInterleave);
    }
    let simulated = run(&sim, "sim", &mut report);
    for name in EXACT {
        let (k, s) = (kernel.get(name), simulated.get(name));
        let verdict = match (k, s) {
            (Some(k), Some(s)) if k == s => Ok(k.clone()),
            _ => Err(format!("kernel: {k:?} / sim: {s:?}")),
        };
        report.case(&format!("fidelity/{name}"), verdict);
    }
    println!("NUMAPERF-DONE {} {}", report.passed, report.failed);
}
