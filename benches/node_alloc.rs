//! `NodeAlloc` against the system allocator: small (16 B .. 4 KiB) allocate+free on one
//! thread, and a large allocation against a `NumaRegion` of the same size. Before the
//! criterion cases, each pair runs alternately in rounds and the ratios are printed
//! (median and the range over the rounds).

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::time::{Duration, Instant};

use allocator_api2::alloc::Allocator;
use criterion::{criterion_group, Criterion};
use numaperf::{
    DefaultBackend, MemPolicy, NodeAlloc, NumaRegion, PlacementBackend, Prefault, TopologyInfo,
};

/// The small sizes, cycled through so every class in the range is used.
const SMALL: [usize; 9] = [16, 24, 48, 100, 256, 640, 1024, 2500, 4096];
/// The large allocation's size.
const LARGE: usize = 8 << 20;

/// Bound to the first memory node the process may use.
fn policy() -> MemPolicy {
    let b = DefaultBackend::shared().expect("the backend");
    let t = b.topology();
    let node = t
        .memory_nodes()
        .intersection(t.allowed_nodes())
        .first()
        .expect("a memory node");
    MemPolicy::Bind(numaperf::NodeMask::single(node))
}

/// `iters` allocate+free pairs through the system allocator, sizes cycled.
fn system_small(iters: u64) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        let l = Layout::from_size_align(SMALL[i as usize % SMALL.len()], 8).unwrap();
        // SAFETY: a non-zero layout; the block is freed with it right away.
        unsafe {
            let p = System.alloc(black_box(l));
            black_box(p);
            System.dealloc(p, l);
        }
    }
    t.elapsed()
}

/// The same through a NodeAlloc.
fn node_small(a: &NodeAlloc, iters: u64) -> Duration {
    let t = Instant::now();
    for i in 0..iters {
        let l = Layout::from_size_align(SMALL[i as usize % SMALL.len()], 8).unwrap();
        let p = a.allocate(black_box(l)).expect("a block");
        black_box(p);
        // SAFETY: allocated just above with `l`.
        unsafe { a.deallocate(p.cast(), l) };
    }
    t.elapsed()
}

/// A large block: allocate, write one byte per page, free.
fn node_large(a: &NodeAlloc, iters: u64) -> Duration {
    let l = Layout::from_size_align(LARGE, 8).unwrap();
    let t = Instant::now();
    for _ in 0..iters {
        let p = a.allocate(l).expect("a large block");
        let base = p.cast::<u8>().as_ptr();
        for off in (0..LARGE).step_by(4096) {
            // SAFETY: inside the block, which is ours.
            unsafe { base.add(off).write(1) };
        }
        // SAFETY: allocated just above with `l`.
        unsafe { a.deallocate(p.cast(), l) };
    }
    t.elapsed()
}

/// A region of the same size, policy and touch.
fn region_large(policy: &MemPolicy, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let mut r = NumaRegion::anon(LARGE, policy.clone(), Default::default(), Prefault::None)
            .expect("a region");
        let s = r.as_mut_slice();
        for off in (0..LARGE).step_by(4096) {
            s[off] = 1;
        }
        black_box(&r);
    }
    t.elapsed()
}

/// Median and range of `ours / theirs` over rounds that alternate the two.
fn ratio(
    rounds: usize,
    mut ours: impl FnMut() -> Duration,
    mut theirs: impl FnMut() -> Duration,
) -> (f64, f64, f64, Duration, Duration) {
    let mut r = Vec::with_capacity(rounds);
    let (mut o_sum, mut t_sum) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let t = theirs();
        let o = ours();
        o_sum += o;
        t_sum += t;
        r.push(o.as_secs_f64() / t.as_secs_f64());
    }
    r.sort_by(f64::total_cmp);
    (r[rounds / 2], r[0], r[rounds - 1], o_sum, t_sum)
}

fn report() {
    let policy = policy();
    let a = NodeAlloc::new(policy.clone()).expect("an allocator");
    // Warm the classes (their first slab).
    node_small(&a, 10_000);
    let iters = 1_000_000;
    let (med, lo, hi, o, t) = ratio(11, || node_small(&a, iters), || system_small(iters));
    println!(
        "small alloc+free (16 B .. 4 KiB, one thread): NodeAlloc {:.1} ns, system {:.1} ns, \
         ratio {med:.2} (range {lo:.2} .. {hi:.2}; target <= 1.5)",
        o.as_nanos() as f64 / (11 * iters) as f64,
        t.as_nanos() as f64 / (11 * iters) as f64,
    );
    let (med, lo, hi, o, t) = ratio(11, || node_large(&a, 4), || region_large(&policy, 4));
    println!(
        "large 8 MiB allocate+touch+free: NodeAlloc {:.0} us, NumaRegion {:.0} us, ratio \
         {med:.2} (range {lo:.2} .. {hi:.2}; target ~1)",
        o.as_micros() as f64 / 44.0,
        t.as_micros() as f64 / 44.0,
    );
}

fn bench(c: &mut Criterion) {
    let policy = policy();
    let a = NodeAlloc::new(policy.clone()).expect("an allocator");
    let mut g = c.benchmark_group("small_alloc_free");
    g.bench_function("node_alloc", |b| b.iter_custom(|n| node_small(&a, n)));
    g.bench_function("system", |b| b.iter_custom(system_small));
    g.finish();
    let mut g = c.benchmark_group("large_8MiB");
    g.sample_size(10);
    g.bench_function("node_alloc", |b| b.iter_custom(|n| node_large(&a, n)));
    g.bench_function("numa_region", |b| {
        b.iter_custom(|n| region_large(&policy, n))
    });
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    report();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
