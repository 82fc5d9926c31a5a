//! The body of the pools bench: its peer, numaperf 0.1.0, builds on Linux only.

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::Criterion;
use crossbeam_queue::ArrayQueue;
use numaperf::pool::{BufferPoolConfig, Steal, WorkerPoolConfig};
use numaperf::{
    BufferPool, DefaultBackend, MemPolicy, NodeId, NodeMask, NumaRegion, Prefault, WorkerPool,
};

const BUF: usize = 4096;
const COUNT: usize = 64;
const TASKS: usize = 200_000;
const WORKERS: usize = 2;

fn pool() -> BufferPool<DefaultBackend> {
    let config = BufferPoolConfig {
        buffer_size: BUF,
        initial_per_node: COUNT,
        max_per_node: COUNT,
        grow: false,
        fallback: false,
        hard: false,
    };
    let b = DefaultBackend::shared().expect("the default backend");
    BufferPool::on_nodes(b, &NodeMask::single(NodeId::new(0)), config).expect("a pool on node 0")
}

/// The baseline: the same number of buffers in one bound region, pointers in an ArrayQueue.
struct Baseline {
    _region: NumaRegion,
    queue: ArrayQueue<Ptr>,
}

#[derive(Clone, Copy)]
struct Ptr(NonNull<u8>);
// SAFETY: the pointers are only stored and handed back, never dereferenced by two threads.
unsafe impl Send for Ptr {}

fn baseline() -> Arc<Baseline> {
    let mut region = NumaRegion::anon(
        BUF * COUNT,
        MemPolicy::Bind(NodeMask::single(NodeId::new(0))),
        Default::default(),
        Prefault::Populate,
    )
    .expect("a region");
    let queue = ArrayQueue::new(COUNT);
    for chunk in region.as_mut_slice().chunks_mut(BUF) {
        let _ = queue.push(Ptr(NonNull::from(&mut chunk[0])));
    }
    Arc::new(Baseline {
        _region: region,
        queue,
    })
}

/// Runs `op` `iters` times on each of two threads started together; the time per op of
/// the slower thread.
fn two_threads(iters: u64, op: impl Fn() + Send + Sync + 'static) -> Duration {
    let op = Arc::new(op);
    let start = Arc::new(Barrier::new(2));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (op, start) = (op.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let t = Instant::now();
                for _ in 0..iters {
                    op();
                }
                t.elapsed()
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

/// What the worker benchmarks run on: our pool and rayon's. The peer's executor is
/// started only for its own measurements (its idle workers poll every 100 us, which
/// would tax everything else measured beside it on two CPUs).
struct Runners {
    ours: WorkerPool<DefaultBackend>,
    rayon: rayon::ThreadPool,
}

type Peer = numaperf_skelf::NumaExecutor;

fn peer() -> Option<Peer> {
    let t = numaperf_skelf::Topology::discover().ok()?;
    numaperf_skelf::NumaExecutor::builder(Arc::new(t))
        .workers_per_node(WORKERS)
        .build()
        .ok()
}

fn runners() -> Runners {
    let b = DefaultBackend::shared().expect("the default backend");
    let config = WorkerPoolConfig {
        workers_per_node: WORKERS,
        steal: Steal::Nearest,
    };
    Runners {
        ours: WorkerPool::new(b, config).expect("a worker pool"),
        rayon: rayon::ThreadPoolBuilder::new()
            .num_threads(WORKERS)
            .build()
            .expect("a rayon pool"),
    }
}

const N0: NodeId = NodeId::new(0);

fn scope_ours(r: &Runners, n: usize) -> Duration {
    let t = Instant::now();
    r.ours.scope(|s| {
        for i in 0..n {
            s.execute_on(N0, move || {
                black_box(i);
            })
            .expect("spawn");
        }
    });
    t.elapsed()
}

fn scope_rayon(r: &Runners, n: usize) -> Duration {
    let t = Instant::now();
    r.rayon.scope(|s| {
        for i in 0..n {
            s.spawn(move |_| {
                black_box(i);
            });
        }
    });
    t.elapsed()
}

fn trip_ours(r: &Runners) -> Duration {
    let t = Instant::now();
    let h = r.ours.spawn_on(N0, || black_box(1u64)).expect("spawn");
    black_box(h.join().expect("join"));
    t.elapsed()
}

fn trip_rayon(r: &Runners) -> Duration {
    let (tx, rx) = mpsc::sync_channel(1);
    let t = Instant::now();
    r.rayon.spawn(move || {
        let _ = tx.send(black_box(1u64));
    });
    black_box(rx.recv().expect("recv"));
    t.elapsed()
}

fn trip_peer(peer: &Peer) -> Duration {
    let (tx, rx) = mpsc::sync_channel(1);
    let t = Instant::now();
    peer.submit_to_node(numaperf_skelf::NodeId::new(0), move || {
        let _ = tx.send(black_box(1u64));
    });
    black_box(rx.recv().expect("recv"));
    t.elapsed()
}

/// `n` fire-and-forget tasks to node 0, timed until the last has run.
fn submit_ours(r: &Runners, n: u64) -> Duration {
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    for _ in 0..n {
        let d = done.clone();
        r.ours
            .execute_on(N0, move || {
                d.fetch_add(1, Ordering::Relaxed);
            })
            .expect("spawn");
    }
    while done.load(Ordering::Relaxed) < n {
        std::thread::yield_now();
    }
    t.elapsed()
}

fn submit_peer(peer: &Peer, n: u64) -> Duration {
    let done = Arc::new(AtomicU64::new(0));
    let t = Instant::now();
    for _ in 0..n {
        let d = done.clone();
        peer.submit_to_node(numaperf_skelf::NodeId::new(0), move || {
            d.fetch_add(1, Ordering::Relaxed);
        });
    }
    while done.load(Ordering::Relaxed) < n {
        std::thread::yield_now();
    }
    t.elapsed()
}

fn p99(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn criterion_benches(c: &mut Criterion, r: &Runners) {
    let node = N0;
    let mut g = c.benchmark_group("buffer get+put");
    let p = pool();
    g.bench_function("1 thread/pool", |b| {
        b.iter(|| drop(black_box(p.get(node).expect("a buffer"))))
    });
    let q = baseline();
    g.bench_function("1 thread/ArrayQueue", |b| {
        b.iter(|| {
            let x = q.queue.pop().expect("a buffer");
            let _ = q.queue.push(Ptr(black_box(x.0)));
        })
    });
    g.bench_function("2 threads/pool", |b| {
        b.iter_custom(|iters| {
            let p = p.clone();
            two_threads(iters, move || {
                drop(black_box(p.get(node).expect("a buffer")))
            })
        })
    });
    g.bench_function("2 threads/ArrayQueue", |b| {
        b.iter_custom(|iters| {
            let q = q.clone();
            two_threads(iters, move || {
                let x = q.queue.pop().expect("a buffer");
                let _ = q.queue.push(Ptr(black_box(x.0)));
            })
        })
    });
    g.finish();

    let mut g = c.benchmark_group("200k tiny tasks in a scope");
    g.sample_size(10);
    g.bench_function("numaperf", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| scope_ours(r, TASKS)).sum())
    });
    g.bench_function("rayon", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| scope_rayon(r, TASKS)).sum())
    });
    g.finish();

    let mut g = c.benchmark_group("spawn->join round trip");
    g.bench_function("numaperf", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| trip_ours(r)).sum())
    });
    g.bench_function("rayon", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| trip_rayon(r)).sum())
    });
    if let Some(p) = peer() {
        g.bench_function("numaperf 0.1.0", |b| {
            b.iter_custom(|iters| (0..iters).map(|_| trip_peer(&p)).sum())
        });
        p.shutdown();
    }
    g.finish();
}

/// Median and range of a sample.
fn spread(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    (v[v.len() / 2], v[0], v[v.len() - 1])
}

/// Prints one comparison: ns per op of ours and theirs per round, and the speed ratio
/// (theirs / ours time; above 1 means we are faster).
fn report(name: &str, target: &str, ours: Vec<f64>, theirs: Vec<f64>, unit: &str) {
    let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(o, t)| t / o).collect();
    let (om, olo, ohi) = spread(ours);
    let (tm, tlo, thi) = spread(theirs);
    let (rm, rlo, rhi) = spread(ratios);
    println!(
        "{name:<44} ours {om:>9.1} {unit} [{olo:.1}..{ohi:.1}]  theirs {tm:>9.1} {unit} [{tlo:.1}..{thi:.1}]  \
         speed ratio {rm:.2}x [{rlo:.2}..{rhi:.2}] (target {target})"
    );
}

fn ratio_report(r: &Runners, rounds: usize, quick: bool) {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\n== pools: ratios, median of {rounds} alternating rounds after a warm-up [min..max]; load {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let iters: u64 = if quick { 200_000 } else { 2_000_000 };
    let p = pool();
    let q = baseline();
    let (mut a, mut b, mut c, mut d) = (vec![], vec![], vec![], vec![]);
    for round in 0..=rounds {
        let t = Instant::now();
        for _ in 0..iters {
            drop(black_box(p.get(N0).expect("a buffer")));
        }
        let pool1 = t.elapsed().as_nanos() as f64 / iters as f64;
        let t = Instant::now();
        for _ in 0..iters {
            let x = q.queue.pop().expect("a buffer");
            let _ = q.queue.push(Ptr(black_box(x.0)));
        }
        let queue1 = t.elapsed().as_nanos() as f64 / iters as f64;
        let pp = p.clone();
        let pool2 = two_threads(iters / 2, move || drop(black_box(pp.get(N0).expect("buf"))))
            .as_nanos() as f64
            / (iters / 2) as f64;
        let qq = q.clone();
        let queue2 = two_threads(iters / 2, move || {
            let x = qq.queue.pop().expect("a buffer");
            let _ = qq.queue.push(Ptr(black_box(x.0)));
        })
        .as_nanos() as f64
            / (iters / 2) as f64;
        if round > 0 {
            a.push(pool1);
            b.push(queue1);
            c.push(pool2);
            d.push(queue2);
        }
    }
    report(
        "buffer get+put, 1 thread vs ArrayQueue",
        ">= 0.67x",
        a,
        b,
        "ns",
    );
    report(
        "buffer get+put, 2 threads vs ArrayQueue",
        ">= 1.0x",
        c,
        d,
        "ns",
    );

    let (mut a, mut b) = (vec![], vec![]);
    for round in 0..=rounds {
        let o = scope_ours(r, TASKS).as_nanos() as f64 / TASKS as f64;
        let t = scope_rayon(r, TASKS).as_nanos() as f64 / TASKS as f64;
        if round > 0 {
            a.push(o);
            b.push(t);
        }
    }
    report(
        "200k tiny tasks in a scope vs rayon",
        ">= 1.0x",
        a,
        b,
        "ns/task",
    );

    let samples = if quick { 500 } else { 3000 };
    let (mut a, mut b, mut c) = (vec![], vec![], vec![]);
    let mut peer_ok = true;
    for round in 0..=rounds {
        let mut o = Vec::with_capacity(samples);
        let mut t = Vec::with_capacity(samples);
        for _ in 0..samples {
            o.push(trip_ours(r));
            t.push(trip_rayon(r));
        }
        let pe = peer().map(|p| {
            let v: Vec<Duration> = (0..samples).map(|_| trip_peer(&p)).collect();
            p.shutdown();
            v
        });
        peer_ok &= pe.is_some();
        if round > 0 {
            a.push(p99(o).as_nanos() as f64 / 1000.0);
            b.push(p99(t).as_nanos() as f64 / 1000.0);
            if let Some(pe) = pe {
                c.push(p99(pe).as_nanos() as f64 / 1000.0);
            }
        }
    }
    report(
        "spawn->join round trip p99 vs rayon",
        "p99 <= rayon's (>= 1.0x)",
        a.clone(),
        b,
        "us",
    );
    if peer_ok {
        report(
            "spawn->join round trip p99 vs numaperf 0.1.0",
            "-",
            a,
            c,
            "us",
        );
    }

    if peer_ok {
        let n: u64 = if quick { 20_000 } else { 100_000 };
        let (mut a, mut b) = (vec![], vec![]);
        for round in 0..=rounds {
            let o = submit_ours(r, n).as_nanos() as f64 / n as f64;
            let p = peer().expect("the peer started before");
            let t = submit_peer(&p, n).as_nanos() as f64 / n as f64;
            p.shutdown();
            if round > 0 {
                a.push(o);
                b.push(t);
            }
        }
        report(
            "submit to node 0 vs numaperf 0.1.0",
            ">= 1.5x",
            a,
            b,
            "ns/task",
        );
    } else {
        println!("numaperf 0.1.0: its executor did not start here; no peer figures");
    }
}

pub fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let r = runners();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_benches(&mut c, &r);
    c.final_summary();
    // A name filter runs only the criterion benchmarks it names.
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with("--"));
    if !filtered {
        ratio_report(&r, if quick { 5 } else { 9 }, quick);
    }
}
