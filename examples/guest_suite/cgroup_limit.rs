//! Guest-only cases of the capabilities (issue 13.3): the features detected on this kernel
//! against its version and against what regions do, and the memory cgroup's limit in the
//! capacity check: in a child cgroup with `memory.max` = 64 MiB a 128 MiB populate bound
//! to a node with room is `InsufficientMemory` (not the cgroup's OOM killer), a 32 MiB
//! one succeeds. The cgroup case runs only as the guests' payload (`/payload`, started by
//! their `/init`, PID 1): never on a host.

use std::fs;
use std::path::Path;

use numaperf::{
    Capabilities, KernelFeature, LinuxBackend, MemPolicy, NodeMask, NumaError, NumaRegion,
    PlacementBackend, Prefault, RegionOptions, TopologyInfo,
};

use super::Verdict;

const MIB: usize = 1 << 20;
const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CHILD: &str = "/sys/fs/cgroup/numaperf-limit";

/// Each feature is there exactly from its first release on (Debian's 6.1 and 6.12 kernels
/// backport none of them), and a region that needs one is made or refused accordingly.
pub fn features_match_version(b: &LinuxBackend) -> Verdict {
    let c = Capabilities::of(b);
    println!("NUMAPERF-CAPABILITIES\n{c}\nNUMAPERF-CAPABILITIES-END");
    let Some(v) = c.kernel else {
        return Verdict::Fail("no kernel version".into());
    };
    let mut off = Vec::new();
    for f in [
        KernelFeature::PreferredMany,
        KernelFeature::HomeNode,
        KernelFeature::WeightedInterleave,
        KernelFeature::WeightedInterleaveAuto,
        KernelFeature::PopulateWrite,
        KernelFeature::BalancingFlag,
    ] {
        if c.supports(f) != (v >= f.since()) {
            off.push(format!("{f}: reported {}, Linux {v}", c.supports(f)));
        }
    }
    // Multi-size THP needs THP compiled in as well (Debian's kernels have it).
    let mthp = c.thp.is_some() && v >= KernelFeature::MultiSizeThp.since();
    if c.supports(KernelFeature::MultiSizeThp) != mthp {
        off.push(format!("multi-size THP: reported {}", !mthp));
    }
    let Some(node) = b.topology().memory_nodes().first() else {
        return Verdict::Fail("no memory node".into());
    };
    let pm = MemPolicy::PreferredMany(NodeMask::single(node));
    match (
        c.supports(KernelFeature::PreferredMany),
        NumaRegion::anon_in(b, MIB, pm, RegionOptions::new(), Prefault::Touch),
    ) {
        (true, Ok(_)) => {}
        (false, Err(e)) if e == KernelFeature::PreferredMany.unsupported() => {}
        (has, r) => off.push(format!(
            "PreferredMany reported {has}, region {:?}",
            r.err()
        )),
    }
    if !c.supports_hard_mode() {
        off.push(format!("no hard mode: {:?}", c.hard_mode_blockers()));
    }
    if off.is_empty() {
        Verdict::Pass(format!("Linux {v}: {:?}", c.features))
    } else {
        Verdict::Fail(off.join("; "))
    }
}

/// Moves this process back to the root cgroup and removes the child, also on panic.
struct BackToRoot;

impl Drop for BackToRoot {
    fn drop(&mut self) {
        let pid = std::process::id().to_string();
        let _ = fs::write(Path::new(CGROUP_ROOT).join("cgroup.procs"), &pid);
        let _ = fs::remove_dir(CHILD);
    }
}

/// Whether this process is the guests' payload: `/payload`, a child of PID 1 (the
/// initramfs's `/init`), as tests/guest/run.sh starts it.
fn in_guest() -> bool {
    let exe = std::env::current_exe().ok();
    let child_of_init = rustix::process::getppid().is_some_and(|p| p.is_init());
    exe.as_deref() == Some(Path::new("/payload")) && child_of_init
}

/// The cgroup case (see the module's doc).
pub fn cgroup_limit(b: &LinuxBackend) -> Verdict {
    if !in_guest() {
        return Verdict::Skip(
            "not the guests' /payload under their /init: a host's cgroups are never touched".into(),
        );
    }
    let root = Path::new(CGROUP_ROOT);
    let controllers = fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "memory") {
        return Verdict::Skip(format!(
            "no cgroup2 with the memory controller at {CGROUP_ROOT} (controllers: {controllers:?})"
        ));
    }
    let Some(node) = b
        .topology()
        .memory_nodes()
        .iter()
        .find(|&n| b.free_memory(n, Default::default()).unwrap_or(0) >= 256 << 20)
    else {
        return Verdict::Skip("no node has 256 MiB free".into());
    };
    let setup = || -> std::io::Result<()> {
        fs::write(root.join("cgroup.subtree_control"), "+memory")?;
        if !Path::new(CHILD).exists() {
            fs::create_dir(CHILD)?;
        }
        fs::write(Path::new(CHILD).join("memory.max"), (64 << 20).to_string())?;
        fs::write(
            Path::new(CHILD).join("cgroup.procs"),
            std::process::id().to_string(),
        )
    };
    let _back = BackToRoot;
    if let Err(e) = setup() {
        return Verdict::Fail(format!("cgroup setup: {e}"));
    }
    // The shared backend was made before the move: its fresh reading must see it.
    let bind = MemPolicy::Bind(NodeMask::single(node));
    let o = RegionOptions::new();
    let big = NumaRegion::anon_in(b, 128 * MIB, bind.clone(), o, Prefault::Populate);
    let refused = match big {
        Err(e @ NumaError::InsufficientMemory { available, .. }) if available <= 64 << 20 => e,
        Err(e) => return Verdict::Fail(format!("128 MiB in a 64 MiB cgroup: {e}")),
        Ok(_) => return Verdict::Fail("128 MiB in a 64 MiB cgroup was populated".into()),
    };
    let small =
        NumaRegion::anon_in(b, 32 * MIB, bind, o, Prefault::Populate).and_then(|r| r.placement());
    let placed = match small {
        Ok(p) if p.on(node) == (32 * MIB / b.base_page_size()) as u64 => p,
        Ok(p) => return Verdict::Fail(format!("32 MiB on node{node}: {p}")),
        Err(e) => return Verdict::Fail(format!("32 MiB in a 64 MiB cgroup: {e}")),
    };
    let cg = Capabilities::of(b).memory_cgroup.clone();
    let shown = match &cg {
        Some(c) if c.limited_by.as_deref() == Some("/numaperf-limit") => {
            format!("{} {}, limit {:?}", c.version, c.path, c.limit)
        }
        other => return Verdict::Fail(format!("capabilities' cgroup: {other:?}")),
    };
    Verdict::Pass(format!("128 MiB: {refused}; 32 MiB: {placed}; {shown}"))
}
