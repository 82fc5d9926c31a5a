//! Our 1 GiB `Prefault::Populate` beside the published numaperf 0.1.0's (`numaperf-skelf`)
//! `Prefault::ParallelTouch` and `Prefault::Touch`, bound to node 0, in one run: medians
//! of alternating rounds after a warm-up, with the spread (this VM is noisy).

use std::hint::black_box;
use std::time::{Duration, Instant};

use numaperf::{MemPolicy, NodeId, NodeMask, NumaRegion, Prefault, RegionOptions};

use super::fmt;

const SIZE: usize = 1 << 30;

fn ours() {
    let policy = MemPolicy::Bind(NodeMask::single(NodeId::new(0)));
    let r = NumaRegion::anon(SIZE, policy, RegionOptions::new(), Prefault::Populate)
        .expect("our region");
    black_box(r.as_ptr());
}

fn peer(prefault: numaperf_skelf::Prefault) {
    let policy = numaperf_skelf::MemPolicy::bind_single(numaperf_skelf::NodeId::new(0));
    let r = numaperf_skelf::NumaRegion::anon(
        SIZE,
        policy,
        numaperf_skelf::HugePageMode::None,
        prefault,
    )
    .expect("peer region");
    black_box(r.as_ptr());
}

/// The rows, `rounds` alternating rounds (the order rotates) after one warm-up each.
pub fn report(quick: bool) {
    let rounds = if quick { 7 } else { 9 };
    let cases: [(&str, fn()); 3] = [
        ("numaperf Populate", ours),
        ("numaperf 0.1.0 ParallelTouch", || {
            peer(numaperf_skelf::Prefault::ParallelTouch)
        }),
        ("numaperf 0.1.0 Touch", || {
            peer(numaperf_skelf::Prefault::Touch)
        }),
    ];
    cases.iter().for_each(|c| c.1());
    let mut runs: Vec<Vec<Duration>> = vec![Vec::new(); cases.len()];
    for i in 0..rounds {
        for k in 0..cases.len() {
            let j = (k + i) % cases.len();
            let t = Instant::now();
            cases[j].1();
            runs[j].push(t.elapsed());
        }
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "1 GiB bind0 prefault at creation vs the peer, {cpus} CPUs, medians of {rounds} (spread):"
    );
    let ours = {
        let mut v = runs[0].clone();
        v.sort();
        v[v.len() / 2]
    };
    for (c, mut v) in cases.iter().zip(runs) {
        v.sort();
        let m = v[v.len() / 2];
        println!(
            "  {:<30} {:>10} ({}..{})  ours / it speed {:.2}",
            c.0,
            fmt(m),
            fmt(v[0]),
            fmt(v[v.len() - 1]),
            m.as_secs_f64() / ours.as_secs_f64()
        );
    }
}
