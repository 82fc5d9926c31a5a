//! `NumaSharded::local()` against a `thread_local!` lookup of the same kind of value, and
//! two threads incrementing a `ShardedCounter` against one shared `AtomicU64`. Before the
//! criterion cases, both pairs run alternately in rounds and the ratios are printed
//! (median and the range over the rounds).

use std::cell::Cell;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use numaperf::thread::pin_to_cpus;
use numaperf::{CpuSet, DefaultBackend, NumaSharded, ShardedCounter, Topology};

thread_local! {
    /// The baseline: the index of the thread's value, kept in a thread-local.
    static MINE: Cell<usize> = const { Cell::new(0) };
}

fn sharded() -> NumaSharded<AtomicU64> {
    let topo = Topology::discover().expect("the topology");
    NumaSharded::new(&topo, |n| AtomicU64::new(n.get().into())).expect("shards")
}

fn counter() -> ShardedCounter {
    ShardedCounter::new(&Topology::discover().expect("the topology")).expect("a counter")
}

/// `local()`: one load of the calling thread's shard.
fn via_local(s: &NumaSharded<AtomicU64>, iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        black_box(black_box(s).local().load(Ordering::Relaxed));
    }
    t.elapsed()
}

/// The same load through a `thread_local!` index into a plain array.
fn via_thread_local(values: &[AtomicU64], iters: u64) -> Duration {
    let t = Instant::now();
    for _ in 0..iters {
        let i = MINE.with(|m| m.get());
        black_box(black_box(values)[i].load(Ordering::Relaxed));
    }
    t.elapsed()
}

/// Runs `op` `iters` times on each of two threads started together, pinned to two
/// different CPUs where the process has two; the slower thread's time.
fn two_threads(iters: u64, op: impl Fn() + Sync) -> Duration {
    let start = Barrier::new(2);
    let cpus: Vec<usize> = Topology::discover()
        .map(|t| t.allowed_cpus().iter().take(2).collect())
        .unwrap_or_default();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..2)
            .map(|i| {
                let (start, op, cpu) = (&start, &op, cpus.get(i).copied());
                s.spawn(move || {
                    let _pin = cpu.and_then(|c| {
                        let b = DefaultBackend::shared().ok()?;
                        pin_to_cpus(b, &CpuSet::single(c)).ok()
                    });
                    start.wait();
                    let t = Instant::now();
                    for _ in 0..iters {
                        op();
                    }
                    t.elapsed()
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `a / b` per round, alternating, printed as median [min .. max].
fn ratio(
    name: &str,
    rounds: usize,
    mut a: impl FnMut() -> Duration,
    mut b: impl FnMut() -> Duration,
) {
    let (mut ta, mut tb, mut r) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (x, y) = (a().as_secs_f64(), b().as_secs_f64());
        ta.push(x);
        tb.push(y);
        r.push(x / y);
    }
    let (ma, mb, mr) = (median(&mut ta), median(&mut tb), median(&mut r));
    println!(
        "{name}: {mr:.2}x (median of {rounds} rounds; range {:.2}x .. {:.2}x; medians {:.3} s / {:.3} s)",
        r[0],
        r[r.len() - 1],
        ma,
        mb
    );
}

fn print_ratios() {
    let s = sharded();
    let values: Vec<AtomicU64> = (0..s.len() as u64).map(AtomicU64::new).collect();
    const LOOKUPS: u64 = 10_000_000;
    ratio(
        "local() time / thread_local! lookup time (target <= 2)",
        21,
        || via_local(&s, LOOKUPS),
        || via_thread_local(&values, LOOKUPS),
    );
    let c = counter();
    let shared = AtomicU64::new(0);
    const INCS: u64 = 5_000_000;
    ratio(
        "1 thread: AtomicU64 fetch_add time / ShardedCounter time (no contention)",
        11,
        || {
            let t = Instant::now();
            for _ in 0..INCS {
                black_box(&shared).fetch_add(1, Ordering::Relaxed);
            }
            t.elapsed()
        },
        || {
            let t = Instant::now();
            for _ in 0..INCS {
                black_box(&c).increment();
            }
            t.elapsed()
        },
    );
    ratio(
        "2 threads: shared AtomicU64 time / ShardedCounter time = throughput ratio (target >= 5)",
        11,
        || {
            two_threads(INCS, || {
                shared.fetch_add(1, Ordering::Relaxed);
            })
        },
        || two_threads(INCS, || c.increment()),
    );
    assert_eq!(c.sum(), 3 * 11 * INCS, "the counter is exact");
}

fn cases(c: &mut Criterion) {
    let mut g = c.benchmark_group("local lookup");
    let s = sharded();
    let values: Vec<AtomicU64> = (0..s.len() as u64).map(AtomicU64::new).collect();
    g.bench_function("NumaSharded::local", |b| {
        b.iter_custom(|iters| via_local(&s, iters))
    });
    g.bench_function("thread_local! index", |b| {
        b.iter_custom(|iters| via_thread_local(&values, iters))
    });
    g.finish();

    let mut g = c.benchmark_group("2 threads incrementing");
    let counter = counter();
    let shared = AtomicU64::new(0);
    g.bench_function("ShardedCounter", |b| {
        b.iter_custom(|iters| two_threads(iters, || counter.increment()))
    });
    g.bench_function("shared AtomicU64", |b| {
        b.iter_custom(|iters| {
            two_threads(iters, || {
                shared.fetch_add(1, Ordering::Relaxed);
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = cases
}

fn main() {
    // `cargo test --benches` runs benches with `--bench` absent: keep that quick.
    if std::env::args().any(|a| a == "--bench") {
        print_ratios();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
