//! Capabilities: what detection reports agrees with independent sources (procfs, sysfs
//! files read here directly) and with what regions do; detection changes nothing; the
//! simulator's capabilities follow its machine, its missing features and fault injection;
//! the memory cgroup's headroom refuses a populate that would not fit.

use numaperf::numa_core::capabilities::{MempolicyCalls, ThpMode};
use numaperf::{
    Capabilities, HardModeBlocker, KernelFeature, MemPolicy, NodeId, NodeMask, NumaError,
    NumaRegion, PlacementBackend, Prefault, RegionOptions,
};
use numaperf_sim::{FaultInjector, SimMachine};

const MIB: usize = 1 << 20;

fn sim4() -> SimMachine {
    SimMachine::from_spec("4 nodes x 2 cpus x 1 GiB").unwrap()
}

#[test]
fn the_simulator_reports_its_machine() {
    let sim = sim4();
    let c = Capabilities::of(&sim);
    assert_eq!(c.backend, "sim");
    assert_eq!(c.allowed_nodes.count(), 4);
    assert_eq!(c.allowed_cpus.count(), 8);
    assert!(c.supports_hard_mode(), "{c}");
    for f in [
        KernelFeature::PreferredMany,
        KernelFeature::HomeNode,
        KernelFeature::WeightedInterleave,
        KernelFeature::PopulateWrite,
        KernelFeature::BalancingFlag,
    ] {
        assert!(c.supports(f), "{f} missing on the sim:\n{c}");
    }
    assert_eq!(c.thp, Some(ThpMode::Madvise));
    assert_eq!(c.memory_cgroup, None);
    // Denied mempolicy calls: nothing can be verified.
    sim.deny_mempolicy_calls(true);
    let denied = Capabilities::of(&sim);
    assert!(denied
        .hard_mode_blockers()
        .contains(&HardModeBlocker::MempolicyCalls(MempolicyCalls::Denied)));
}

#[test]
fn a_feature_the_sim_lacks_is_missing_and_its_regions_are_unsupported() {
    let sim = sim4();
    sim.kernel_lacks(KernelFeature::PreferredMany);
    let c = Capabilities::of(&sim);
    assert!(!c.supports(KernelFeature::PreferredMany));
    let policy = MemPolicy::PreferredMany(NodeMask::first_n(2));
    let o = RegionOptions::new();
    let predicted = c.check_region(&policy, &o).unwrap_err();
    let got = NumaRegion::anon_in(&sim, MIB, policy.clone(), o, Prefault::Touch).unwrap_err();
    assert_eq!(got, predicted);
    assert_eq!(got, KernelFeature::PreferredMany.unsupported());
    // The Display says so.
    assert!(
        c.to_string().contains("MPOL_PREFERRED_MANY            no"),
        "{c}"
    );
}

#[test]
fn fault_injection_turns_features_off_over_any_backend() {
    let sim = FaultInjector::new(sim4());
    sim.disable_feature(KernelFeature::HomeNode);
    sim.disable_feature(KernelFeature::WeightedInterleave);
    let c = Capabilities::of(&sim);
    assert!(!c.supports(KernelFeature::HomeNode));
    assert!(!c.supports(KernelFeature::WeightedInterleave));
    assert!(c.supports(KernelFeature::PreferredMany));
    let home = RegionOptions::new().home_node(NodeId::new(1));
    let bind = MemPolicy::Bind(NodeMask::first_n(2));
    let e = NumaRegion::anon_in(&sim, MIB, bind.clone(), home, Prefault::None).unwrap_err();
    assert_eq!(e, KernelFeature::HomeNode.unsupported());
    assert_eq!(c.check_region(&bind, &home), Err(e));
    // Without the kernel's weighted interleave the weights read as absent.
    assert_eq!(sim.kernel_weights(), Ok(None));
    assert!(sim.inner().kernel_weights().unwrap().is_some());
    // The same wrapper over the real kernel.
    #[cfg(target_os = "linux")]
    {
        use numaperf::TopologyInfo;
        let linux = FaultInjector::new(numaperf::LinuxBackend::new().unwrap());
        linux.disable_feature(KernelFeature::PreferredMany);
        assert!(!Capabilities::of(&linux).supports(KernelFeature::PreferredMany));
        let node = linux.topology().memory_nodes().first().unwrap();
        let pm = MemPolicy::PreferredMany(NodeMask::single(node));
        let e = NumaRegion::anon_in(&linux, MIB, pm, RegionOptions::new(), Prefault::None);
        assert_eq!(e.unwrap_err(), KernelFeature::PreferredMany.unsupported());
    }
}

#[test]
fn a_populate_beyond_the_cgroup_headroom_is_refused_on_the_sim() {
    let sim = sim4();
    sim.set_memory_limit(Some(64 << 20));
    let bind = MemPolicy::Bind(NodeMask::single(NodeId::new(1)));
    let o = RegionOptions::new();
    // Node 1 has 1 GiB free: only the cgroup stands in the way.
    let e = NumaRegion::anon_in(&sim, 128 * MIB, bind.clone(), o, Prefault::Populate).unwrap_err();
    assert_eq!(
        e,
        NumaError::InsufficientMemory {
            requested: 128 << 20,
            available: 64 << 20
        }
    );
    let r = NumaRegion::anon_in(&sim, 32 * MIB, bind.clone(), o, Prefault::Populate).unwrap();
    let c = Capabilities::of(&sim);
    assert_eq!(c.memory_headroom(), Some(32 << 20), "{c}");
    // Now 48 MiB does not fit either (32 MiB are charged), 16 MiB does.
    let e = NumaRegion::anon_in(&sim, 48 * MIB, bind.clone(), o, Prefault::Populate).unwrap_err();
    assert!(matches!(e, NumaError::InsufficientMemory { available, .. } if available == 32 << 20));
    drop(NumaRegion::anon_in(&sim, 16 * MIB, bind.clone(), o, Prefault::Touch).unwrap());
    drop(r);
    assert_eq!(Capabilities::of(&sim).memory_headroom(), Some(64 << 20));
    // A lazy region is not charged until touched, so it is not refused.
    drop(NumaRegion::anon_in(&sim, 128 * MIB, bind, o, Prefault::None).unwrap());
}

#[test]
fn the_portable_backend_claims_nothing_it_cannot_observe() {
    let p = numaperf::PortableBackend::new().unwrap();
    let c = Capabilities::of(&p);
    assert_eq!(
        (c.backend, c.kernel, c.placement_query),
        ("portable", None, false)
    );
    assert!(c.features.is_empty());
    assert!(c
        .hard_mode_blockers()
        .contains(&HardModeBlocker::NoPlacementQuery));
    assert!(
        c.to_string().contains("hard mode         not supported"),
        "{c}"
    );
}

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod linux {
    use super::*;
    use numaperf::numa_core::capabilities::NumaBalancing;
    use numaperf::TopologyInfo;
    use std::fs;

    fn status_field(name: &str) -> String {
        let s = fs::read_to_string("/proc/self/status").unwrap();
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no {name} in /proc/self/status"))
    }

    #[test]
    fn detect_agrees_with_procfs_and_sysfs() {
        let c = Capabilities::detect();
        assert_eq!(c.backend, "linux");
        assert!(c.problems.is_empty(), "{:?}", c.problems);
        let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        assert_eq!(
            c.kernel,
            Some(numaperf::KernelVersion::parse(&release).unwrap())
        );
        assert_eq!(
            c.allowed_cpus.to_string(),
            status_field("Cpus_allowed_list:")
        );
        assert_eq!(
            c.allowed_nodes.to_string(),
            status_field("Mems_allowed_list:")
        );
        let cap_eff = u64::from_str_radix(&status_field("CapEff:"), 16).unwrap();
        assert_eq!(c.cap_sys_nice, Some(cap_eff & (1 << 23) != 0));
        match fs::read_to_string("/proc/sys/kernel/numa_balancing") {
            Ok(t) => assert_eq!(c.numa_balancing, Some(NumaBalancing::parse(&t).unwrap())),
            Err(_) => assert_eq!(c.numa_balancing, None),
        }
        let thp = fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").ok();
        assert_eq!(c.thp, thp.map(|t| ThpMode::parse(&t).unwrap()));
        let sizes = fs::read_dir("/sys/kernel/mm/transparent_hugepage")
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("hugepages-"))
                    // A size without an anonymous-memory mode (6.18's 8 kB) is not one.
                    .filter(|e| e.path().join("enabled").exists())
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(c.thp_sizes.len(), sizes);
        assert_eq!(c.supports(KernelFeature::MultiSizeThp), sizes > 0);
        // Max locked memory, from /proc/self/limits ("unlimited" or bytes).
        let limits = fs::read_to_string("/proc/self/limits").unwrap();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max locked memory"))
            .unwrap();
        let soft = line.split_whitespace().nth(3).unwrap();
        let memlock = c.memlock.unwrap();
        assert_eq!(memlock.soft, soft.parse().ok(), "{line}");
        // Huge pages per node: node0's 2 MiB pool, read directly.
        let pool = "/sys/devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages";
        if let Ok(t) = fs::read_to_string(pool) {
            let have = c
                .huge_pages
                .iter()
                .find(|p| p.node == Some(NodeId::new(0)) && p.page_size == 2 << 20)
                .unwrap_or_else(|| panic!("no node0 2 MiB pool in\n{c}"));
            assert_eq!(have.total, t.trim().parse::<u64>().unwrap());
        }
        assert_eq!(c.mempolicy, MempolicyCalls::Available);
        assert!(c.supports_hard_mode(), "{c}");
        println!("{c}");
    }

    #[test]
    fn each_feature_reported_is_what_the_kernel_does() {
        let b = numaperf::LinuxBackend::new().unwrap();
        let c = Capabilities::of(&b);
        let node = b.topology().memory_nodes().first().unwrap();
        let one = NodeMask::single(node);
        let cases = [
            (
                KernelFeature::PreferredMany,
                MemPolicy::PreferredMany(one),
                RegionOptions::new(),
            ),
            (
                KernelFeature::HomeNode,
                MemPolicy::Bind(one),
                RegionOptions::new().home_node(node),
            ),
            (
                KernelFeature::BalancingFlag,
                MemPolicy::Bind(one),
                RegionOptions::new().numa_balancing(),
            ),
        ];
        for (f, policy, o) in cases {
            let r = NumaRegion::anon_in(&b, MIB, policy, o, Prefault::Touch);
            match (c.supports(f), r) {
                (true, Ok(_)) => {}
                (false, Err(e)) => assert_eq!(e, f.unsupported()),
                (has, r) => panic!("{f}: reported {has}, region {:?}", r.err()),
            }
        }
        // Weighted interleave: the probe agrees with the kernel's table being there.
        let table = std::path::Path::new("/sys/kernel/mm/mempolicy/weighted_interleave");
        assert_eq!(
            c.supports(KernelFeature::WeightedInterleave),
            table.exists()
        );
        let auto = table.join("auto").exists() || table.join("__auto_type").exists();
        assert_eq!(c.supports(KernelFeature::WeightedInterleaveAuto), auto);
    }

    #[test]
    fn detection_changes_nothing() {
        use numaperf_linux::mempolicy as mp;
        let policy = || {
            let (mut mode, mut words) = (-1i32, [0usize; 16]);
            mp::get_mempolicy(&mut mode, &mut words, 1025, std::ptr::null(), 0).unwrap();
            (mode, words)
        };
        let table = || {
            let dir = "/sys/kernel/mm/mempolicy/weighted_interleave";
            let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(dir)
                .map(|d| {
                    d.flatten()
                        .map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            (n, fs::read(e.path()).unwrap_or_default())
                        })
                        .collect()
                })
                .unwrap_or_default();
            files.sort();
            files
        };
        let maps = || {
            fs::read_to_string("/proc/self/maps")
                .unwrap()
                .lines()
                .count()
        };
        let b = numaperf::LinuxBackend::new().unwrap();
        let _ = Capabilities::of(&b); // first use: the mounts are read

        // The mapping count is the process's: the other tests of this binary map and
        // unmap concurrently (thread stacks, malloc arenas). A detection that left a
        // mapping behind would add one in every attempt; a neighbour's does not in all
        // (five attempts were once not enough while the neighbours ran).
        let mut counts = Vec::new();
        for _ in 0..50 {
            std::thread::sleep(std::time::Duration::from_millis(2));
            let (p0, t0, m0) = (policy(), table(), maps());
            let a = Capabilities::of(&b);
            let again = Capabilities::of(&b);
            assert_eq!((policy(), table()), (p0, t0));
            assert_eq!((a.features, a.kernel), (again.features, again.kernel));
            let m1 = maps();
            counts.push((m0, m1));
            if m1 == m0 {
                return;
            }
        }
        panic!("every detection changed the mapping count: {counts:?}");
    }
}
