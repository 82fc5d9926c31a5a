//! `WorkerPool`: workers pinned to each node's CPUs, a queue per node, and stealing from
//! the nearest nodes by distance when idle. Tasks return results; panics stay in the task.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard};
use std::thread;

use numaperf_core::policy::fallback_order;
use numaperf_core::{NodeId, NodeMask, NumaError, PlacementBackend, TopologyInfo, MAX_NUMNODES};

use crate::thread::node_cpus;

/// Where idle workers look for work beyond their own node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steal {
    /// Only their own node's queue.
    Never,
    /// Then the nodes at the smallest distance from theirs.
    Nearest,
    /// Then every other node, nearest first.
    Any,
}

/// How a worker pool is shaped.
#[derive(Clone, Copy, Debug)]
pub struct WorkerPoolConfig {
    /// Workers per node with CPUs (at least 1).
    pub workers_per_node: usize,
    /// Stealing policy.
    pub steal: Steal,
}

impl Default for WorkerPoolConfig {
    fn default() -> Self {
        WorkerPoolConfig {
            workers_per_node: 1,
            steal: Steal::Nearest,
        }
    }
}

/// What to do with queued tasks at shutdown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    /// Run every queued task, then stop.
    Finish,
    /// Drop queued tasks (their handles report `Cancelled`), finish running ones, stop.
    Cancel,
}

/// Why a task gave no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// The task panicked with this message; the pool lives on.
    Panicked(String),
    /// The pool shut down with `Shutdown::Cancel` before the task ran.
    Cancelled,
}

/// Tasks run per node: on that node's workers, and stolen by other nodes' workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Tasks this node's workers took from this node's queue.
    pub local: u64,
    /// Tasks this node's workers took from other nodes' queues.
    pub stolen: u64,
}

/// A queued task. Run, it fills its handle's slot; dropped unrun, it fills it with
/// [`TaskError::Cancelled`] (see [`Completion`]).
type Job = Box<dyn FnOnce() + Send + 'static>;

/// One worker node's queue and who of its workers is asleep.
#[derive(Default)]
struct NodeQueue {
    jobs: VecDeque<Job>,
    /// Workers waiting on the node's condvar.
    sleeping: usize,
    /// Wake-ups sent to the node and not yet taken by a waking worker.
    waking: usize,
}

impl NodeQueue {
    /// Workers asleep that no wake-up is on its way to.
    fn available(&self) -> usize {
        self.sleeping.saturating_sub(self.waking)
    }
}

struct State {
    queues: BTreeMap<NodeId, NodeQueue>,
    shutdown: Option<Shutdown>,
}

struct Shared {
    state: Mutex<State>,
    /// One condvar per worker node, so a task wakes a worker of its own node.
    wake: BTreeMap<NodeId, Condvar>,
    /// For each worker node: the other nodes to steal from, in order.
    victims: BTreeMap<NodeId, Vec<NodeId>>,
    /// For each worker node: the nodes whose workers may steal from it, nearest first.
    thieves: BTreeMap<NodeId, Vec<NodeId>>,
    /// Every online node -> the worker node its tasks go to.
    route: BTreeMap<NodeId, NodeId>,
    stats: BTreeMap<NodeId, (AtomicU64, AtomicU64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections only move jobs between queues; a poisoned lock is still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a task's result lands, and the condvar its handle waits on.
type Slot<T> = Arc<(Mutex<Option<Result<T, TaskError>>>, Condvar)>;

/// The result of a spawned task.
pub struct JoinHandle<T> {
    slot: Slot<T>,
}

impl<T> JoinHandle<T> {
    /// Waits for the task: its value, or why there is none.
    ///
    /// A worker that waits does not run other tasks: joining from inside a task of the
    /// same pool deadlocks when no other worker can run the awaited task (say, one worker
    /// per node, `Steal::Never`, and a task waiting for another on its own node).
    ///
    /// # Errors
    /// [`TaskError::Panicked`] when the task panicked, [`TaskError::Cancelled`] when it was
    /// dropped unrun.
    pub fn join(self) -> Result<T, TaskError> {
        let (m, c) = &*self.slot;
        let mut g = lock(m);
        loop {
            if let Some(r) = g.take() {
                return r;
            }
            g = c.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Whether the task has finished (or was cancelled).
    pub fn is_finished(&self) -> bool {
        lock(&self.slot.0).is_some()
    }
}

fn panic_message(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "task panicked".into())
}

/// Fills a task's slot exactly once: with the task's outcome, or, when dropped first,
/// with `Cancelled` (a job dropped unrun, at `Shutdown::Cancel` or with its pool), so no
/// handle waits for a job that no longer exists.
struct Completion<T> {
    slot: Slot<T>,
    done: bool,
}

impl<T> Completion<T> {
    fn set(&mut self, r: Result<T, TaskError>) {
        if !self.done {
            self.done = true;
            *lock(&self.slot.0) = Some(r);
            self.slot.1.notify_all();
        }
    }
}

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        self.set(Err(TaskError::Cancelled));
    }
}

/// A job that fills a slot with `f`'s result (a panic caught as `Panicked`), plus the
/// handle to that slot.
fn package<'a, T: Send + 'a>(
    f: impl FnOnce() -> T + Send + 'a,
) -> (Box<dyn FnOnce() + Send + 'a>, JoinHandle<T>) {
    let slot: Slot<T> = Arc::new((Mutex::new(None), Condvar::new()));
    let mut done = Completion {
        slot: slot.clone(),
        done: false,
    };
    let job = Box::new(move || {
        let r =
            catch_unwind(AssertUnwindSafe(f)).map_err(|p| TaskError::Panicked(panic_message(p)));
        done.set(r);
    });
    (job, JoinHandle { slot })
}

/// Workers pinned per node. Dropping it finishes queued tasks and joins every thread.
///
/// On a simulated two-node machine (the workers are real threads; their simulated CPUs
/// are their node's):
/// ```
/// use numaperf::{NodeId, WorkerPool, WorkerPoolConfig};
/// use numaperf_sim::SimMachine;
/// use std::sync::Arc;
///
/// let sim = Arc::new(SimMachine::from_spec("2 nodes x 1 cpus x 64 MiB")?);
/// let pool = WorkerPool::new(sim, WorkerPoolConfig::default())?;
/// let h = pool.spawn_on(NodeId::new(1), || 6 * 7)?;
/// assert_eq!(h.join(), Ok(42));
/// let total: u64 = pool.scope(|s| {
///     let a = s.spawn_on(NodeId::new(0), || 1u64).unwrap();
///     let b = s.spawn_on(NodeId::new(1), || 2u64).unwrap();
///     a.join().unwrap() + b.join().unwrap()
/// });
/// assert_eq!(total, 3);
/// # Ok::<(), numaperf::NumaError>(())
/// ```
pub struct WorkerPool<B: PlacementBackend> {
    backend: B,
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl<B: PlacementBackend + Clone + Send + 'static> WorkerPool<B> {
    /// Starts `workers_per_node` workers on every node with CPUs this process may use,
    /// each pinned to its node's CPUs. Memory-only nodes get no workers: their tasks go
    /// to the nearest node with workers (by the kernel's fallback order).
    ///
    /// # Errors
    /// [`NumaError::InvalidConfig`], [`NumaError::NoUsableCpu`], and the system's refusal
    /// to start or pin a thread.
    pub fn new(backend: B, config: WorkerPoolConfig) -> Result<Self, NumaError> {
        if config.workers_per_node == 0 {
            return Err(NumaError::InvalidConfig {
                field: "workers_per_node",
                reason: "must be at least 1",
            });
        }
        let topo = backend.topology();
        let worker_nodes: NodeMask = topo
            .cpu_nodes()
            .iter()
            .filter(|&n| node_cpus(&backend, n).is_ok())
            .collect();
        if worker_nodes.is_empty() {
            return Err(NumaError::NoUsableCpu);
        }
        // The other worker nodes, nearest to `n` first.
        let by_distance = |n: NodeId| -> Vec<NodeId> {
            let mut v: Vec<NodeId> = worker_nodes.iter().filter(|&m| m != n).collect();
            v.sort_by_key(|&m| (topo.distance(n, m).unwrap_or(u8::MAX), m));
            v
        };
        let mut order = [NodeId::new(0); MAX_NUMNODES];
        let mut route = BTreeMap::new();
        for n in topo.nodes().iter() {
            let target = if worker_nodes.contains(n) {
                n
            } else {
                // A node without workers: the kernel's fallback order from it, else (a
                // node the order does not reach) the nearest worker node. `worker_nodes`
                // is not empty, so there is one.
                let k = fallback_order(topo, n, &mut order);
                match order[..k]
                    .iter()
                    .copied()
                    .find(|m| worker_nodes.contains(*m))
                {
                    Some(m) => m,
                    None => by_distance(n)[0],
                }
            };
            route.insert(n, target);
        }
        let victims = worker_nodes
            .iter()
            .map(|n| {
                let mut v = by_distance(n);
                let nearest = v.first().and_then(|&m| topo.distance(n, m));
                match config.steal {
                    Steal::Never => v.clear(),
                    Steal::Nearest => v.retain(|&m| topo.distance(n, m) == nearest),
                    Steal::Any => {}
                }
                (n, v)
            })
            .collect();
        let victims: BTreeMap<NodeId, Vec<NodeId>> = victims;
        let mut thieves: BTreeMap<NodeId, Vec<NodeId>> =
            worker_nodes.iter().map(|n| (n, Vec::new())).collect();
        for (&thief, vs) in &victims {
            for v in vs {
                thieves.entry(*v).or_default().push(thief);
            }
        }
        for (v, ts) in thieves.iter_mut() {
            ts.sort_by_key(|&t| (topo.distance(t, *v).unwrap_or(u8::MAX), t));
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queues: worker_nodes
                    .iter()
                    .map(|n| (n, NodeQueue::default()))
                    .collect(),
                shutdown: None,
            }),
            wake: worker_nodes.iter().map(|n| (n, Condvar::new())).collect(),
            victims,
            thieves,
            route,
            stats: worker_nodes
                .iter()
                .map(|n| (n, (AtomicU64::new(0), AtomicU64::new(0))))
                .collect(),
        });
        let mut pool = WorkerPool {
            backend,
            shared,
            threads: Vec::new(),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        for n in worker_nodes.iter() {
            let cpus = node_cpus(&pool.backend, n)?;
            for i in 0..config.workers_per_node {
                let (shared, backend, ready) =
                    (pool.shared.clone(), pool.backend.clone(), ready_tx.clone());
                let spawned = thread::Builder::new()
                    .name(format!("numaperf-n{n}-w{i}"))
                    .spawn(move || {
                        let pinned = backend.set_thread_affinity(&cpus);
                        let ok = pinned.is_ok();
                        let _ = ready.send(pinned);
                        drop(ready); // the pool counts reports until every sender is gone
                        if ok {
                            worker_loop(&shared, n);
                        }
                    });
                match spawned {
                    Ok(h) => pool.threads.push(h),
                    Err(e) => {
                        return Err(NumaError::Os {
                            op: "pthread_create",
                            errno: numaperf_core::Errno::from_raw(e.raw_os_error().unwrap_or(11)), // EAGAIN
                        });
                    }
                }
            }
        }
        drop(ready_tx);
        for r in ready_rx.iter() {
            r?; // On error, dropping `pool` stops and joins the workers already started.
        }
        Ok(pool)
    }
}

impl Shared {
    /// Wakes one idle worker for a task queued on `node`: one of its own, else (when all
    /// of them are busy) one of a node allowed to steal from it, nearest first. Returns
    /// whether anyone was woken. Called with the state locked.
    fn wake_for(&self, st: &mut State, node: NodeId) -> bool {
        let candidates = std::iter::once(node).chain(self.thieves[&node].iter().copied());
        for n in candidates {
            let q = st
                .queues
                .get_mut(&n)
                .expect("every worker node has a queue");
            if q.available() > 0 {
                q.waking += 1;
                self.wake[&n].notify_one();
                return true;
            }
        }
        false
    }
}

fn worker_loop(shared: &Shared, node: NodeId) {
    let (local, stolen) = &shared.stats[&node];
    let mut st = lock(&shared.state);
    loop {
        let own = st
            .queues
            .get_mut(&node)
            .expect("every worker node has a queue");
        let job = if let Some(j) = own.jobs.pop_front() {
            local.fetch_add(1, Ordering::Relaxed);
            // More queued here than the wake-ups on their way will take: let an idle
            // sibling (or, when none is left, a thief) help.
            let q = &st.queues[&node];
            if q.jobs.len() > q.waking {
                shared.wake_for(&mut st, node);
            }
            j
        } else if let Some(j) = shared.victims[&node]
            .iter()
            // Steal only from nodes whose own workers are all busy, and only jobs that
            // no woken worker of theirs is about to take (locality first).
            .find_map(|v| {
                st.queues
                    .get_mut(v)
                    .filter(|q| q.available() == 0 && q.jobs.len() > q.waking)
                    .and_then(|q| q.jobs.pop_front())
            })
        {
            stolen.fetch_add(1, Ordering::Relaxed);
            j
        } else if st.shutdown.is_some() {
            return;
        } else {
            st.queues.get_mut(&node).expect("queue").sleeping += 1;
            st = shared.wake[&node]
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
            let q = st.queues.get_mut(&node).expect("queue");
            q.sleeping -= 1;
            q.waking = q.waking.saturating_sub(1);
            continue;
        };
        drop(st);
        // The task's own panic is caught inside the job; this catches one from dropping
        // what it left behind (a result whose handle is gone, a panic payload), so the
        // worker lives on. Its slot is filled either way.
        let mut ran = catch_unwind(AssertUnwindSafe(job));
        while let Err(payload) = ran {
            // Dropping a panic's payload may panic in turn; catch that too.
            ran = catch_unwind(AssertUnwindSafe(move || drop(payload)));
        }
        st = lock(&shared.state);
    }
}

impl<B: PlacementBackend> WorkerPool<B> {
    /// The nodes that have workers.
    pub fn worker_nodes(&self) -> NodeMask {
        self.shared.stats.keys().copied().collect()
    }

    /// The worker node tasks aimed at `node` run on (itself, or for a memory-only node the
    /// nearest node with workers).
    ///
    /// # Errors
    /// [`NumaError::InvalidNode`], [`NumaError::NodeNotFound`].
    pub fn route(&self, node: NodeId) -> Result<NodeId, NumaError> {
        if !node.is_valid() {
            return Err(NumaError::InvalidNode(node.get()));
        }
        self.shared
            .route
            .get(&node)
            .copied()
            .ok_or(NumaError::NodeNotFound(node))
    }

    fn push(&self, node: NodeId, job: Job) -> Result<(), NumaError> {
        let target = self.route(node)?;
        let mut st = lock(&self.shared.state);
        if st.shutdown.is_some() {
            return Err(NumaError::PoolShutDown);
        }
        st.queues
            .get_mut(&target)
            .ok_or(NumaError::NodeNotFound(target))?
            .jobs
            .push_back(job);
        self.shared.wake_for(&mut st, target);
        Ok(())
    }

    /// Runs `f` on a worker of `node` (see [`WorkerPool::route`]).
    ///
    /// # Errors
    /// As [`WorkerPool::route`], and [`NumaError::PoolShutDown`].
    pub fn spawn_on<T: Send + 'static>(
        &self,
        node: NodeId,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, NumaError> {
        let (job, handle) = package(f);
        self.push(node, job)?;
        Ok(handle)
    }

    /// Runs `f` on a worker of the calling thread's node.
    ///
    /// # Errors
    /// As [`WorkerPool::spawn_on`], and the backend's `getcpu` error.
    pub fn spawn_local<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, NumaError> {
        let here = self.backend.current_cpu()?.node;
        self.spawn_on(here, f)
    }

    /// Runs `f` with a scope whose tasks may borrow from the caller; returns after every
    /// task spawned in it has finished (also if `f` panics). Like [`JoinHandle::join`],
    /// not meant to be called from inside a task of the same pool.
    pub fn scope<'env, R>(&'env self, f: impl FnOnce(&Scope<'env, B>) -> R) -> R {
        let scope = Scope {
            pool: self,
            pending: Arc::new((Mutex::new(0), Condvar::new())),
            _env: PhantomData,
        };
        struct WaitAll<'a>(&'a (Mutex<usize>, Condvar));
        impl Drop for WaitAll<'_> {
            fn drop(&mut self) {
                let mut n = lock(&self.0 .0);
                while *n > 0 {
                    n = self.0 .1.wait(n).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
        let _wait = WaitAll(&scope.pending);
        f(&scope)
    }

    /// Tasks run per worker node.
    pub fn stats(&self) -> BTreeMap<NodeId, WorkerStats> {
        self.shared
            .stats
            .iter()
            .map(|(&n, (l, s))| {
                (
                    n,
                    WorkerStats {
                        local: l.load(Ordering::Relaxed),
                        stolen: s.load(Ordering::Relaxed),
                    },
                )
            })
            .collect()
    }

    /// Number of worker threads.
    pub fn thread_count(&self) -> usize {
        self.threads.len()
    }

    /// Stops the pool as asked and joins every worker.
    pub fn shutdown(mut self, how: Shutdown) {
        self.stop(how);
    }

    fn stop(&mut self, how: Shutdown) {
        if self.threads.is_empty() {
            return; // already stopped (`shutdown` and then `Drop`)
        }
        let cancelled: Vec<Job> = {
            let mut st = lock(&self.shared.state);
            st.shutdown = Some(how);
            match how {
                Shutdown::Finish => Vec::new(),
                Shutdown::Cancel => st
                    .queues
                    .values_mut()
                    .flat_map(|q| q.jobs.drain(..))
                    .collect(),
            }
        };
        self.shared.wake.values().for_each(Condvar::notify_all);
        drop(cancelled); // each handle reports `Cancelled`
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl<B: PlacementBackend> Drop for WorkerPool<B> {
    fn drop(&mut self) {
        self.stop(Shutdown::Finish);
    }
}

/// Spawns tasks that may borrow from the enclosing [`WorkerPool::scope`] call.
pub struct Scope<'env, B: PlacementBackend> {
    pool: &'env WorkerPool<B>,
    pending: Arc<(Mutex<usize>, Condvar)>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'env, B: PlacementBackend> Scope<'env, B> {
    /// Runs `f` on a worker of `node`; `f` may borrow anything that outlives the scope.
    ///
    /// # Errors
    /// As [`WorkerPool::spawn_on`].
    pub fn spawn_on<T: Send + 'env>(
        &self,
        node: NodeId,
        f: impl FnOnce() -> T + Send + 'env,
    ) -> Result<JoinHandle<T>, NumaError> {
        let (job, handle) = package(f);
        *lock(&self.pending.0) += 1;
        let counted = CountedJob {
            job: Some(job),
            _count: CountDown(self.pending.clone()),
        };
        let counted: Box<dyn FnOnce() + Send + 'env> = Box::new(move || {
            let mut c = counted; // the whole value, so the count travels with the job
            if let Some(job) = c.job.take() {
                job();
            }
        });
        // SAFETY: the job may borrow data of lifetime 'env. `pending` counts it down only
        // in `CountDown::drop`, after everything it holds has been dropped, whether it ran,
        // panicked, or was dropped unrun (cancelled, refused by `push`, or left with the
        // pool). `WorkerPool::scope` does not return (nor unwind past its frame) until
        // `pending` is back to 0, so nothing of 'env is touched after 'env ends. The pool
        // cannot shut down meanwhile: `scope` holds `&self` for all of 'env.
        let job: Job =
            unsafe { std::mem::transmute::<Box<dyn FnOnce() + Send + 'env>, Job>(counted) };
        self.pool.push(node, job)?;
        Ok(handle)
    }
}

/// A scoped job and the scope's count of jobs not yet finished. Fields drop in order, and
/// the rest still drop if one panics: the job (run or not) and all it borrowed are gone
/// before the count goes down.
struct CountedJob<'env> {
    job: Option<Box<dyn FnOnce() + Send + 'env>>,
    _count: CountDown,
}

/// Counts a scope's job down when dropped.
struct CountDown(Arc<(Mutex<usize>, Condvar)>);

impl Drop for CountDown {
    fn drop(&mut self) {
        *lock(&self.0 .0) -= 1;
        self.0 .1.notify_all();
    }
}
