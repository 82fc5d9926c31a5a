//! The Linux body of the `bench_report` example (it needs the Linux backend).

use crate::common;

#[path = "capabilities.rs"]
mod capabilities;

#[path = "growth.rs"]
mod growth;
#[path = "peer_prefault.rs"]
mod peer_prefault;

use std::time::{Duration, Instant};

use common::{Policy, SIZES};
use numaperf::Prefault;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time(f: &mut (impl FnMut() + ?Sized)) -> Duration {
    let t = Instant::now();
    f();
    t.elapsed()
}

/// Medians of `lib` and `raw`, run alternately `rounds` times after one warm-up each.
fn pair(rounds: usize, mut lib: impl FnMut(), mut raw: impl FnMut()) -> (Duration, Duration) {
    lib();
    raw();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for i in 0..rounds {
        // Alternate which goes first, so neither always runs on a warmer machine.
        if i % 2 == 0 {
            a.push(time(&mut lib));
            b.push(time(&mut raw));
        } else {
            b.push(time(&mut raw));
            a.push(time(&mut lib));
        }
    }
    (median(a), median(b))
}

fn rounds_for(size: usize, quick: bool) -> usize {
    match (size, quick) {
        (s, _) if s >= 1 << 30 => 7,
        (s, true) if s >= 64 << 20 => 5,
        (s, false) if s >= 64 << 20 => 21,
        (_, true) => 51,
        (_, false) => 301,
    }
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e9 {
        format!("{:.3} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} us", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn gibs(size: usize, d: Duration) -> String {
    format!("{:.2}", size as f64 / (1u64 << 30) as f64 / d.as_secs_f64())
}

fn row(case: &str, lib: Duration, raw: Duration, rate: Option<usize>) {
    let speed = raw.as_secs_f64() / lib.as_secs_f64();
    let (gl, gr) = rate.map_or((String::new(), String::new()), |s| {
        (gibs(s, lib), gibs(s, raw))
    });
    println!(
        "{case:<34} {:>11} {:>11} {speed:>7.2} {gl:>9} {gr:>9}",
        fmt(lib),
        fmt(raw)
    );
}

/// Medians and spreads of several functions run in turn, `rounds` times after a warm-up.
fn rounds_of(rounds: usize, fs: &mut [&mut dyn FnMut()]) -> Vec<(Duration, Duration, Duration)> {
    fs.iter_mut().for_each(|f| f());
    let mut runs = vec![Vec::new(); fs.len()];
    for i in 0..rounds {
        for k in 0..fs.len() {
            // Rotate the order, so no function always runs on a warmer machine.
            let j = (k + i) % fs.len();
            runs[j].push(time(fs[j]));
        }
    }
    runs.into_iter()
        .map(|mut v| {
            v.sort();
            (v[v.len() / 2], v[0], v[v.len() - 1])
        })
        .collect()
}

/// Parallel populate: numaperf's automatic thread count against its single-threaded
/// populate and a raw baseline populating the same halves from two threads.
fn parallel_populate(quick: bool) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    // 1 GiB in the quick table too: at 256 MiB a round lasts 50 ms, and this VM's noise
    // moved the quick table's medians by a third from run to run.
    let size = 1 << 30;
    let label = "1G";
    let rounds = if quick { 7 } else { 9 };
    let r = rounds_of(
        rounds,
        &mut [
            &mut || common::lib_populate_threads(size, 0),
            &mut || common::lib_populate_threads(size, 1),
            &mut || common::raw_populate_split(size, cpus.min(2)),
        ],
    );
    let show = |(m, lo, hi): (Duration, Duration, Duration)| {
        format!("{} ({}..{})", fmt(m), fmt(lo), fmt(hi))
    };
    println!("parallel populate, {label} bind0, {cpus} CPUs, medians of {rounds} (spread):");
    println!("  numaperf, automatic threads  {}", show(r[0]));
    println!("  numaperf, one thread         {}", show(r[1]));
    println!(
        "  raw, {} threads on halves     {}",
        cpus.min(2),
        show(r[2])
    );
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "  speed vs one thread {:.2}, vs raw split {:.2}",
        ratio(r[0].0, r[1].0),
        ratio(r[0].0, r[2].0)
    );
}

/// The sections `--only` can name, in the order they run.
const SECTIONS: [&str; 7] = [
    "regions",
    "parallel",
    "placement",
    "discover",
    "capabilities",
    "peer",
    "growth",
];

/// `--quick` for fewer sizes and rounds; `--only a,b` for some of [`SECTIONS`].
pub fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let only: Option<Vec<&str>> = args.iter().position(|a| a == "--only").map(|i| {
        args.get(i + 1)
            .map_or("", |s| s.as_str())
            .split(',')
            .collect()
    });
    if let Some(bad) = only.iter().flatten().find(|s| !SECTIONS.contains(s)) {
        eprintln!("bench_report: unknown section {bad:?}; the sections are {SECTIONS:?}");
        std::process::exit(2);
    }
    let wanted = |name: &str| only.as_ref().is_none_or(|o| o.contains(&name));
    let mut populate_1g = None;
    if wanted("regions") {
        populate_1g = regions(quick);
    }
    if wanted("parallel") {
        parallel_populate(quick);
        println!();
    }
    if wanted("placement") {
        placement(quick, populate_1g);
    }
    if wanted("discover") {
        discover();
    }
    if wanted("capabilities") {
        capabilities::report(quick);
        println!();
    }
    if wanted("peer") {
        peer_prefault::report(quick);
        println!();
    }
    if wanted("growth") {
        growth::report(quick);
    }
}

/// Every region case against its raw baseline, then THP populate; returns the 1 GiB
/// bound populate's median when it was measured.
fn regions(quick: bool) -> Option<Duration> {
    let sizes: Vec<_> = SIZES
        .iter()
        .copied()
        .filter(|&(s, _)| !quick || s < 1 << 30)
        .collect();
    println!(
        "{:<34} {:>11} {:>11} {:>7} {:>9} {:>9}",
        "case (create + drop)", "numaperf", "raw", "speed", "GiB/s", "raw GiB/s"
    );
    let mut populate_1g = None;
    for &(size, label) in &sizes {
        for prefault in [Prefault::None, Prefault::Touch, Prefault::Populate] {
            for policy in [Policy::Local, Policy::Bind0] {
                let (lib, raw) = pair(
                    rounds_for(size, quick),
                    || common::lib_region(size, policy, prefault, false),
                    || common::raw_region(size, policy, prefault, false),
                );
                let case = format!(
                    "{label} {} {}",
                    policy.name(),
                    common::prefault_name(prefault)
                );
                let rate = (prefault != Prefault::None).then_some(size);
                row(&case, lib, raw, rate);
                if size == 1 << 30 && prefault == Prefault::Populate && policy == Policy::Bind0 {
                    populate_1g = Some(lib);
                }
            }
        }
    }
    println!();
    for &(size, label) in sizes.iter().filter(|&&(s, _)| s >= 2 << 20) {
        let (lib, raw) = pair(
            rounds_for(size, quick),
            || common::lib_region(size, Policy::Bind0, Prefault::Populate, true),
            || common::raw_region(size, Policy::Bind0, Prefault::Populate, true),
        );
        row(&format!("{label} bind0 populate THP"), lib, raw, Some(size));
        let (base, _) = pair(
            rounds_for(size, quick),
            || common::lib_region(size, Policy::Bind0, Prefault::Populate, false),
            || {},
        );
        println!(
            "{:<34} THP populate is {:.2}x faster than 4 KiB pages",
            "",
            base.as_secs_f64() / lib.as_secs_f64()
        );
    }
    println!();
    populate_1g
}

/// `placement()` of a populated region, against its populate time.
fn placement(quick: bool, populate_1g: Option<Duration>) {
    let size = if quick { 64 << 20 } else { 1 << 30 };
    let region = common::bound_populated(size);
    let mut runs = Vec::new();
    for _ in 0..rounds_for(size, quick) {
        runs.push(time(&mut || {
            std::hint::black_box(region.placement().expect("placement"));
        }));
    }
    let placement = median(runs);
    let populate = populate_1g.unwrap_or_else(|| {
        pair(
            rounds_for(size, quick),
            || common::lib_region(size, Policy::Bind0, Prefault::Populate, false),
            || {},
        )
        .0
    });
    println!(
        "placement() of {} MiB: {} = {:.1}% of its populate time ({})",
        size >> 20,
        fmt(placement),
        100.0 * placement.as_secs_f64() / populate.as_secs_f64(),
        fmt(populate)
    );
    println!();
}

/// `discover()` of this host and of a captured 8-node tree, against the raw reads.
fn discover() {
    let live = std::path::Path::new(numaperf::LinuxBackend::SYSFS_ROOT);
    let eight = common::eight_node_tree();
    let (lib, raw) = pair(
        201,
        || common::lib_discover(None),
        || common::raw_discover(live),
    );
    row("discover() this host", lib, raw, None);
    let (lib, raw) = pair(
        201,
        || common::lib_discover(Some(&eight)),
        || common::raw_discover(&eight),
    );
    row("discover() captured 8-node tree", lib, raw, None);
    println!(
        "(discover's raw column makes the same syscalls, without parsing or building anything)"
    );
    println!();
}
