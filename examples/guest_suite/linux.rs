//! The Linux body of the `guest_suite` example (it needs the Linux backend).

use crate::behaviour;

#[path = "cgroup_limit.rs"]
mod cgroup_limit;
#[path = "cli_bench.rs"]
mod cli_bench;
#[path = "cli.rs"]
mod cli_cases;
#[path = "cli_run.rs"]
mod cli_run;

use std::collections::BTreeMap;
use std::fs;

use behaviour::{Case, CaseResult, Outcome};
use numaperf::{LinuxBackend, MemPolicy, NumaRegion, PlacementBackend, Prefault, TopologyInfo};
use numaperf_sim::{KernelFeature, SimMachine};

/// Scenarios whose histograms are exact on a kernel booted with numa_balancing=disable.
const EXACT: [&str; 19] = [
    "bind_every_node",
    "preferred_every_node",
    "local_follows_pinned_cpu",
    "interleave_exact",
    "preferred_many",
    "weighted_interleave",
    "weighted_interleave_kernel_weights",
    "migrate_every_page",
    "hard_mode_verified",
    "transparent_huge_pages_placed",
    "ltp_mbind03",
    "ltp_mbind04",
    "ltp_set_mempolicy01",
    "ltp_set_mempolicy02",
    "ltp_move_pages01_04",
    "ltp_move_pages02_09",
    "shared_bind_every_node",
    "shared_interleave",
    "shared_hard_bind",
];

/// What a case came to, as the markers print it.
#[derive(Clone, Debug, PartialEq)]
enum Verdict {
    Pass(String),
    Skip(String),
    Fail(String),
}

#[derive(Default)]
struct Report {
    passed: u32,
    failed: u32,
    skipped: u32,
}

impl Report {
    fn case(&mut self, name: &str, v: &Verdict) {
        let (word, d) = match v {
            Verdict::Pass(d) => {
                self.passed += 1;
                ("PASS", d)
            }
            Verdict::Skip(d) => {
                self.skipped += 1;
                ("SKIP", d)
            }
            Verdict::Fail(d) => {
                self.failed += 1;
                ("FAIL", d)
            }
        };
        println!("NUMAPERF-CASE {name} {word} {d}");
    }

    fn done(&self) {
        println!(
            "NUMAPERF-DONE {} {} {}",
            self.passed, self.failed, self.skipped
        );
    }
}

/// Runs every case on `b` with `run`, reporting each; returns the verdicts by case name.
fn run<B>(
    b: &B,
    label: &str,
    cases: Vec<Case<B>>,
    run: fn(&Case<B>, &B) -> CaseResult,
    report: &mut Report,
    out: &mut BTreeMap<&'static str, Verdict>,
) {
    for case in cases {
        let v = match run(&case, b) {
            Ok(Outcome::Pass(d)) => Verdict::Pass(d),
            Ok(Outcome::Skip(d)) => Verdict::Skip(d),
            Err(d) => Verdict::Fail(d),
        };
        report.case(&format!("{label}/{}", case.name), &v);
        out.insert(case.name, v);
    }
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
            &match r {
                Ok((true, p))
                    if p.present() + p.not_present() == p.total()
                        && p.nodes().is_subset(&nodes) =>
                {
                    Verdict::Pass(p.to_string())
                }
                Ok((_, p)) => Verdict::Fail(format!("content or placement off: {p}")),
                Err(e) => Verdict::Fail(e.to_string()),
            },
        );
    }
}

pub fn main() {
    // The second process of `shared_second_process`: this payload, run again.
    if let Some(code) = behaviour::shared::child_if_asked() {
        std::process::exit(code);
    }
    let mode = std::env::args().nth(1).unwrap_or_else(|| "full".into());
    if mode == "hold-pages" {
        let node = std::env::args().nth(2).unwrap_or_default();
        std::process::exit(cli_cases::hold_pages(&node));
    }
    let root = numaperf::LinuxBackend::SYSFS_ROOT.to_string();
    print_sysfs(&root);
    let mut report = Report::default();
    let b = match LinuxBackend::shared() {
        Ok(b) => b,
        Err(e) => {
            report.case("setup", &Verdict::Fail(e.to_string()));
            report.done();
            return;
        }
    };
    if mode == "soft" {
        soft_only(&b, &mut report);
        report.done();
        return;
    }
    // The kernel: every case, each checked for leaving the weighted-interleave table as
    // it found it.
    let mut kernel = BTreeMap::new();
    let check = behaviour::linux::run_checked::<LinuxBackend>;
    run(
        &b,
        "kernel",
        behaviour::cases(),
        check,
        &mut report,
        &mut kernel,
    );
    run(
        &b,
        "kernel",
        behaviour::linux::cases(),
        check,
        &mut report,
        &mut kernel,
    );

    // Capabilities (issue 13.3): features against the version, the cgroup limit.
    report.case(
        "kernel/capabilities_match_version",
        &cgroup_limit::features_match_version(&b),
    );
    report.case(
        "kernel/cgroup_memory_limit",
        &cgroup_limit::cgroup_limit(&b),
    );

    // The numaperf command (issue 15), as /bin/numaperf.
    for (name, v) in cli_cases::cases(&b) {
        report.case(name, &v);
    }

    // numaperf bench (issue 15.5): the full matrix, placement checked.
    for (name, verdict) in cli_bench::cases(&b) {
        report.case(name, &verdict);
    }

    // Weighted interleave: the kernel's table exists from 6.9 on, and then the kernel's
    // own mode places pages (on older kernels numaperf lays out chunks itself).
    let (major, minor) = kernel_version();
    let has_weighted = (major, minor) >= (6, 9);
    let table = b.kernel_weights().map(|k| k.is_some());
    let own = kernel.get("weighted_interleave_kernel_weights");
    let verdict = match (has_weighted, table, own) {
        (true, Ok(true), Some(Verdict::Pass(d))) if d.starts_with("kernel mode") => {
            Verdict::Pass(format!("{major}.{minor}: {d}"))
        }
        (false, Ok(false), Some(Verdict::Skip(d))) => {
            Verdict::Pass(format!("{major}.{minor}: {d}"))
        }
        (w, t, o) => Verdict::Fail(format!(
            "{major}.{minor}: weighted interleave expected {w}, table {t:?}, case {o:?}"
        )),
    };
    report.case("kernel/weighted_interleave_matches_version", &verdict);

    // The command-line tool (issue 15): run, --verify and stat, the payload as numaperf.
    for (name, v) in cli_run::cases(&b) {
        report.case(&name, &v);
    }

    // The same scenarios on the sim replaying this guest's sysfs tree, in the kernel's base
    // page size (64 KiB on Debian's 6.1 ppc64el), so that page counts compare.
    let sim = match SimMachine::from_sysfs_dir_with_page_size(&root, b.base_page_size()) {
        Ok(s) => s,
        Err(e) => {
            report.case("sim/replay_guest_sysfs", &Verdict::Fail(e.to_string()));
            report.done();
            return;
        }
    };
    if !has_weighted {
        sim.kernel_lacks(KernelFeature::WeightedInterleave);
    }
    let mut simulated = BTreeMap::new();
    run(
        &sim,
        "sim",
        behaviour::cases(),
        behaviour::run_case,
        &mut report,
        &mut simulated,
    );
    for name in EXACT {
        let verdict = match (kernel.get(name), simulated.get(name)) {
            (Some(Verdict::Pass(k)), Some(Verdict::Pass(s))) if k == s => Verdict::Pass(k.clone()),
            (Some(Verdict::Skip(k)), Some(Verdict::Skip(_))) => Verdict::Skip(k.clone()),
            (k, s) => Verdict::Fail(format!("kernel: {k:?} / sim: {s:?}")),
        };
        report.case(&format!("fidelity/{name}"), &verdict);
    }
    report.done();
}
