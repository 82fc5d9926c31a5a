//! Buffer pool get/put latency, single-threaded and with two threads contending for the
//! same node, against `crossbeam_queue::ArrayQueue` holding the same buffers (the
//! baseline: a lock-free bounded queue of pointers, no placement, no RAII).

use std::hint::black_box;
use std::ptr::NonNull;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_queue::ArrayQueue;
use numaperf::pool::BufferPoolConfig;
use numaperf::{BufferPool, DefaultBackend, MemPolicy, NodeId, NodeMask, NumaRegion, Prefault};

const BUF: usize = 4096;
const COUNT: usize = 64;

fn pool() -> BufferPool<DefaultBackend> {
    let config = BufferPoolConfig {
        buffer_size: BUF,
        initial_per_node: COUNT,
        max_per_node: COUNT,
        grow: false,
        fallback: false,
        hard: false,
    };
    let b = DefaultBackend::shared().expect("the Linux backend");
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

fn get_put(c: &mut Criterion) {
    let node = NodeId::new(0);
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
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_millis(500)).measurement_time(Duration::from_secs(2));
    targets = get_put
}
criterion_main!(benches);
