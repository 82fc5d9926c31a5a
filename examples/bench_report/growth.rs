//! How each cost grows with its size: populate and `placement()` with the region size,
//! `discover()` with the number of nodes of a captured tree, and a worker pool's start,
//! spawn and stop with the number of nodes of a simulated machine.
//!
//! Every table prints the cost per unit (per byte, per node) at each size relative to the
//! smallest size's: 1.00 all the way down is linear growth; a ratio that climbs is a cost
//! that grows faster than linearly; one that falls is a fixed cost being spread.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use numaperf::{
    LinuxBackend, MemPolicy, NodeId, NodeMask, NumaRegion, Prefault, RegionOptions, Topology,
    WorkerPool, WorkerPoolConfig,
};
use numaperf_sim::SimMachine;

use super::fmt;

/// Median, fastest and slowest of `rounds` runs of each of `fs`, after one warm-up run
/// each; the order rotates every round so no case always runs on a warmer machine.
fn medians(rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<[Duration; 3]> {
    fs.iter_mut().for_each(|f| f());
    let mut runs = vec![Vec::with_capacity(rounds); fs.len()];
    for i in 0..rounds {
        for k in 0..fs.len() {
            let j = (k + i) % fs.len();
            let t = Instant::now();
            fs[j]();
            runs[j].push(t.elapsed());
        }
    }
    runs.into_iter()
        .map(|mut v| {
            v.sort();
            [v[v.len() / 2], v[0], v[v.len() - 1]]
        })
        .collect()
}

fn size_label(bytes: usize) -> String {
    match bytes {
        b if b >= 1 << 30 => format!("{} GiB", b >> 30),
        b if b >= 1 << 20 => format!("{} MiB", b >> 20),
        b => format!("{} KiB", b >> 10),
    }
}

fn gibs(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / d.as_secs_f64()
}

/// Cost per unit at `units` relative to the first row's (`base`: its time and units).
fn per_unit_ratio(base: (Duration, usize), d: Duration, units: usize) -> f64 {
    (d.as_secs_f64() / units as f64) / (base.0.as_secs_f64() / base.1 as f64)
}

fn bind0() -> MemPolicy {
    MemPolicy::Bind(NodeMask::single(NodeId::new(0)))
}

/// A region bound to node 0 with `Prefault::Populate` and default options (automatic
/// populate threads).
fn populated(size: usize) -> Result<NumaRegion, numaperf::NumaError> {
    NumaRegion::anon(size, bind0(), RegionOptions::new(), Prefault::Populate)
}

/// [`populated`], created and dropped.
fn lib_populate(size: usize) {
    black_box(populated(size).expect("populated region").as_ptr());
}

/// Whether a populated region of `size` can be made now; if not, says why the size and
/// the larger ones are skipped (numaperf checks the node's free memory first).
fn fits(size: usize) -> bool {
    match populated(size) {
        Ok(_) => true,
        Err(e) => {
            println!("  {:>8} SKIPPED: {e}", size_label(size));
            false
        }
    }
}

/// Populate from 64 KiB to 4 GiB (1 GiB with `--quick`), numaperf and the raw baseline.
fn populate(quick: bool) {
    let top = if quick { 1 << 30 } else { 4 << 30 };
    let sizes: Vec<usize> = (0..)
        .map(|i| (64 << 10) << (2 * i))
        .take_while(|&s| s <= top)
        .collect();
    println!("populate, bind0, default options (medians; per-byte x: cost per byte / at 64 KiB):");
    println!(
        "  {:>8} {:>11} {:>7} {:>11} {:>9} {:>11}",
        "size", "numaperf", "GiB/s", "per-byte x", "raw GiB/s", "per-byte x"
    );
    let mut base = None;
    for &size in sizes.iter().take_while(|&&s| fits(s)) {
        let rounds = match size {
            s if s >= 1 << 30 => 3,
            s if s >= 64 << 20 => 5,
            _ if quick => 21,
            _ => 101,
        };
        let r = medians(
            rounds,
            &mut [&mut || lib_populate(size), &mut || {
                crate::common::raw_region(
                    size,
                    crate::common::Policy::Bind0,
                    Prefault::Populate,
                    false,
                )
            }],
        );
        let (lib, raw) = (r[0][0], r[1][0]);
        let (bl, br) = *base.get_or_insert(((lib, size), (raw, size)));
        println!(
            "  {:>8} {:>11} {:>7.2} {:>11.2} {:>9.2} {:>11.2}",
            size_label(size),
            fmt(lib),
            gibs(size, lib),
            per_unit_ratio(bl, lib, size),
            gibs(size, raw),
            per_unit_ratio(br, raw, size),
        );
    }
}

/// The raw query `placement()` makes: `move_pages` with no target nodes over every page
/// of the region, 512 pages a call, the statuses only counted.
fn raw_query(region: &NumaRegion, page: usize) {
    const BATCH: usize = 512;
    let base = region.as_ptr() as usize;
    let pages = region.len().div_ceil(page);
    let mut addrs = [std::ptr::null::<u8>(); BATCH];
    let mut status = [0i32; BATCH];
    let mut present = 0usize;
    for first in (0..pages).step_by(BATCH) {
        let n = BATCH.min(pages - first);
        for (i, a) in addrs[..n].iter_mut().enumerate() {
            *a = (base + (first + i) * page) as *const u8;
        }
        numaperf_linux::mempolicy::move_pages_query(&addrs[..n], &mut status[..n])
            .expect("move_pages");
        present += status[..n].iter().filter(|&&s| s >= 0).count();
    }
    black_box(present);
}

/// `placement()` of a populated region from 16 MiB to 4 GiB (1 GiB with `--quick`),
/// beside the raw `move_pages` query it is made of.
fn placement(quick: bool) {
    let top = if quick { 1 << 30 } else { 4 << 30 };
    let sizes: Vec<usize> = (0..)
        .map(|i| (16 << 20) << (2 * i))
        .take_while(|&s| s <= top)
        .collect();
    println!("placement() of a populated bind0 region (medians; per-byte x as above, vs 16 MiB):");
    println!(
        "  {:>8} {:>11} {:>12} {:>11} {:>12} {:>11}",
        "size", "placement", "ns per page", "per-byte x", "raw ns/page", "per-byte x"
    );
    let page = rustix::param::page_size();
    let mut base = None;
    for &size in &sizes {
        let Ok(region) = populated(size) else {
            fits(size);
            break;
        };
        let rounds = if size >= 1 << 30 { 5 } else { 11 };
        let r = medians(
            rounds,
            &mut [
                &mut || {
                    black_box(region.placement().expect("placement"));
                },
                &mut || raw_query(&region, page),
            ],
        );
        drop(region);
        let (d, raw) = (r[0][0], r[1][0]);
        let (b, br) = *base.get_or_insert(((d, size), (raw, size)));
        let per_page = |d: Duration| d.as_nanos() as f64 / (size / page) as f64;
        println!(
            "  {:>8} {:>11} {:>12.1} {:>11.2} {:>12.1} {:>11.2}",
            size_label(size),
            fmt(d),
            per_page(d),
            per_unit_ratio(b, d, size),
            per_page(raw),
            per_unit_ratio(br, raw, size),
        );
    }
}

/// A simulated machine of `nodes` nodes, one CPU and 64 MiB each, distances 10/21.
fn sim(nodes: usize) -> SimMachine {
    SimMachine::from_spec(&format!("{nodes} nodes x 1 cpus x 64 MiB")).expect("sim spec")
}

/// `discover()` through the Linux backend's captured-tree constructor, on trees the
/// simulator writes, of 1, 8, 64 and 1024 nodes.
fn discover() {
    let dir = std::env::temp_dir().join(format!("numaperf-growth-{}", std::process::id()));
    let tree = |nodes: usize| -> PathBuf {
        let d = dir.join(format!("{nodes}"));
        sim(nodes).write_sysfs_tree(&d).expect("write a sysfs tree");
        d
    };
    let read = |root: &Path| {
        let backend = LinuxBackend::with_sysfs_root(root).expect("captured tree");
        black_box(
            Topology::of_backend(&backend)
                .expect("topology")
                .node_count(),
        );
    };
    println!("discover() of a captured tree: LinuxBackend::with_sysfs_root + Topology::of_backend");
    println!(
        "  (per-node x: cost per node / at 1 node; the tree has N distance rows of N entries)"
    );
    println!(
        "  {:>6} {:>11} {:>12} {:>11}",
        "nodes", "discover", "per node", "per-node x"
    );
    let mut base = None;
    for nodes in [1usize, 8, 64, 1024] {
        let root = tree(nodes);
        let rounds = if nodes >= 1024 { 5 } else { 51 };
        let d = medians(rounds, &mut [&mut || read(&root)])[0][0];
        let b = *base.get_or_insert((d, nodes));
        println!(
            "  {:>6} {:>11} {:>12} {:>11.2}",
            nodes,
            fmt(d),
            fmt(d / nodes as u32),
            per_unit_ratio(b, d, nodes),
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `WorkerPool::new` (one worker per node), a spawn -> join round trip to the last node,
/// and the pool's drop, on simulated machines of 1, 8, 64 and 256 nodes.
fn worker_pool() {
    println!("WorkerPool on a simulated machine, one worker per node (per-node x vs 1 node):");
    println!(
        "  {:>6} {:>11} {:>11} {:>13} {:>11} {:>11}",
        "nodes", "new", "per-node x", "spawn+join", "drop", "per-node x"
    );
    let config = WorkerPoolConfig::default();
    let mut base: Option<((Duration, usize), (Duration, usize))> = None;
    for nodes in [1usize, 8, 64, 256] {
        let machine = Arc::new(sim(nodes));
        let rounds = if nodes >= 64 { 7 } else { 21 };
        let (mut new, mut stop) = (Vec::new(), Vec::new());
        for i in 0..=rounds {
            let t = Instant::now();
            let pool = WorkerPool::new(machine.clone(), config).expect("worker pool");
            let made = t.elapsed();
            let t = Instant::now();
            drop(pool);
            if i > 0 {
                // Round 0 is the warm-up.
                new.push(made);
                stop.push(t.elapsed());
            }
        }
        let pool = WorkerPool::new(machine.clone(), config).expect("worker pool");
        let last = NodeId::new(nodes as u32 - 1);
        let trip = medians(
            201,
            &mut [&mut || {
                let h = pool.spawn_on(last, || black_box(1)).expect("spawn");
                black_box(h.join().expect("join"));
            }],
        )[0][0];
        drop(pool);
        new.sort();
        stop.sort();
        let (n, s) = (new[new.len() / 2], stop[stop.len() / 2]);
        let (bn, bs) = *base.get_or_insert(((n, nodes), (s, nodes)));
        println!(
            "  {:>6} {:>11} {:>11.2} {:>13} {:>11} {:>11.2}",
            nodes,
            fmt(n),
            per_unit_ratio(bn, n, nodes),
            fmt(trip),
            fmt(s),
            per_unit_ratio(bs, s, nodes),
        );
    }
}

/// Every growth table.
pub fn report(quick: bool) {
    println!("how costs grow (1.00 = linear; above 1 = faster than linear):");
    populate(quick);
    println!();
    placement(quick);
    println!();
    discover();
    println!();
    worker_pool();
}
