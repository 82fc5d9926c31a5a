//! The Linux body of the regions bench (raw baselines need Linux system calls).

use crate::common;

use std::time::Duration;

use common::{Policy, SIZES};
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use numaperf::Prefault;

fn create_drop(c: &mut Criterion) {
    for &(size, label) in &SIZES {
        let mut g = c.benchmark_group(format!("create+drop {label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 64 << 20 {
            g.sample_size(10);
        }
        for prefault in [Prefault::None, Prefault::Touch, Prefault::Populate] {
            for policy in [Policy::Local, Policy::Bind0] {
                let name = format!("{} {}", policy.name(), common::prefault_name(prefault));
                g.bench_function(BenchmarkId::new("numaperf", &name), |b| {
                    b.iter(|| common::lib_region(size, policy, prefault, false))
                });
                g.bench_function(BenchmarkId::new("raw", &name), |b| {
                    b.iter(|| common::raw_region(size, policy, prefault, false))
                });
            }
        }
        g.finish();
    }
}

fn thp_populate(c: &mut Criterion) {
    for &(size, label) in SIZES.iter().filter(|&&(s, _)| s >= 2 << 20) {
        let mut g = c.benchmark_group(format!("populate THP vs 4K {label}"));
        g.throughput(Throughput::Bytes(size as u64));
        if size >= 64 << 20 {
            g.sample_size(10);
        }
        g.bench_function("numaperf THP", |b| {
            b.iter(|| common::lib_region(size, Policy::Bind0, Prefault::Populate, true))
        });
        g.bench_function("raw THP", |b| {
            b.iter(|| common::raw_region(size, Policy::Bind0, Prefault::Populate, true))
        });
        g.bench_function("numaperf 4K", |b| {
            b.iter(|| common::lib_region(size, Policy::Bind0, Prefault::Populate, false))
        });
        g.finish();
    }
}

fn placement(c: &mut Criterion) {
    let size = 1 << 30;
    let mut g = c.benchmark_group("placement 1G");
    g.sample_size(10);
    let region = common::bound_populated(size);
    g.bench_function("placement()", |b| {
        b.iter(|| region.placement().expect("placement"))
    });
    drop(region);
    g.bench_function("populate (for the ratio)", |b| {
        b.iter(|| common::lib_region(size, Policy::Bind0, Prefault::Populate, false))
    });
    g.finish();
}

fn discover(c: &mut Criterion) {
    let mut g = c.benchmark_group("discover");
    let live = std::path::Path::new(numaperf::LinuxBackend::SYSFS_ROOT);
    let eight = common::eight_node_tree();
    g.bench_function("numaperf host", |b| b.iter(|| common::lib_discover(None)));
    g.bench_function("raw syscalls host", |b| {
        b.iter(|| common::raw_discover(live))
    });
    g.bench_function("numaperf 8-node tree", |b| {
        b.iter(|| common::lib_discover(Some(&eight)))
    });
    g.bench_function("raw syscalls 8-node tree", |b| {
        b.iter(|| common::raw_discover(&eight))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    targets = create_drop, thp_populate, placement, discover
}
/// What `criterion_main!` would generate, public so the crate root can use it.
pub fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
