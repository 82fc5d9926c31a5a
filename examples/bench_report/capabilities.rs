//! The bench_report section for `Capabilities`: the one-time cost of a detection (on a
//! fresh backend, so the cgroup mounts are read too; target <= 1 ms), a later one, and a
//! fresh memory-cgroup reading (what a large populate's capacity check adds).

use std::time::{Duration, Instant};

use numaperf::{Capabilities, LinuxBackend, PlacementBackend};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn us(d: Duration) -> String {
    format!("{:.1} us", d.as_secs_f64() * 1e6)
}

/// Prints the section.
pub fn report(quick: bool) {
    let rounds = if quick { 21 } else { 101 };
    let (mut first, mut later, mut limit) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let Ok(b) = LinuxBackend::new() else {
            println!("capabilities: SKIPPED (no Linux backend here)");
            return;
        };
        let t = Instant::now();
        std::hint::black_box(Capabilities::of(&b));
        first.push(t.elapsed());
        let t = Instant::now();
        std::hint::black_box(Capabilities::of(&b));
        later.push(t.elapsed());
        let t = Instant::now();
        let _ = std::hint::black_box(b.memory_limit(true));
        limit.push(t.elapsed());
    }
    let first = median(first);
    println!(
        "Capabilities::detect, medians of {rounds}: first on a fresh backend {} ({}), later {}; \
         a fresh cgroup limit reading {}",
        us(first),
        if first <= Duration::from_millis(1) {
            "within the 1 ms target"
        } else {
            "OVER the 1 ms target"
        },
        us(median(later)),
        us(median(limit)),
    );
}
