//! `WorkerPool`: workers pinned to each node's CPUs, an injector queue per node, a deque
//! per worker, and stealing from the nearest nodes by distance when idle. No global lock.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread::{self, Thread};

use crossbeam_deque::{Injector, Steal as Stolen};
use crossbeam_utils::CachePadded;

use numaperf_core::policy::fallback_order;
use numaperf_core::{NodeId, NodeMask, NumaError, PlacementBackend, TopologyInfo, MAX_NUMNODES};

use super::deque::{steal_batch_into, Deque, Stealer};
use super::fork;
use super::task::{cell, Job, JoinHandle, Outcome, ScopeState};
use crate::thread::node_cpus;

/// Where idle workers look for work beyond their own node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steal {
    /// Only their own node's queues.
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

/// Tasks run per node: on that node's workers, and stolen by other nodes' workers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Tasks this node's workers took from this node's queues.
    pub local: u64,
    /// Tasks this node's workers took from other nodes' queues.
    pub stolen: u64,
}

/// Rounds an idle worker spins (half) and yields (half) before it sleeps.
const SPIN_ROUNDS: u32 = 64;

/// Rounds a thread that is not a worker spins (half) and yields (half) in a join.
const JOIN_SPIN_ROUNDS: u32 = 24;

const RUNNING: u8 = 0;
const FINISH: u8 = 1;
const CANCEL: u8 = 2;

/// One node with workers.
struct Node {
    id: NodeId,
    /// Tasks sent to the node from outside its workers.
    injector: Injector<Job>,
    /// Its workers' indices in `Shared::workers`.
    workers: std::ops::Range<usize>,
    /// How many of its workers are asleep (or about to be).
    sleepers: CachePadded<AtomicUsize>,
    /// How many of its workers are idle but still looking for work (spinning).
    searching: CachePadded<AtomicUsize>,
    /// Nodes (indices) its workers steal from, in order.
    victims: Vec<usize>,
    /// Nodes whose workers may steal from it, nearest first.
    thieves: Vec<usize>,
}

/// What other threads see of one worker.
struct Slot {
    stealer: Stealer<Job>,
    thread: OnceLock<Thread>,
    sleeping: AtomicBool,
    local: AtomicU64,
    stolen: AtomicU64,
}

struct Shared {
    nodes: Vec<Node>,
    workers: Vec<CachePadded<Slot>>,
    /// Node id -> index in `nodes` of the node its tasks run on (u16::MAX: not a node).
    route: Vec<u16>,
    shutdown: AtomicU8,
    /// The fork generation the pool was made in (see `fork`).
    born: u64,
}

/// A worker's own state, on its thread's stack while it runs.
struct Context {
    shared: Arc<Shared>,
    index: usize,
    node: usize,
    deque: Deque<Job>,
}

thread_local! {
    /// The worker this thread is, if it is one (null otherwise).
    static CURRENT: Cell<*const Context> = const { Cell::new(std::ptr::null()) };
}

/// The calling thread's worker context, if it is a worker.
fn with_current<R>(f: impl FnOnce(Option<&Context>) -> R) -> R {
    let p = CURRENT.with(Cell::get);
    // SAFETY: CURRENT is non-null only while `worker_main`'s frame owning the Context is
    // live on this very thread (it resets the pointer before the Context drops), and
    // thread-locals are not shared, so the reference cannot outlive the Context.
    f(unsafe { p.as_ref() })
}

/// Waits until `done()`: a worker runs other tasks meanwhile (and sleeps as an idle
/// worker when there are none); any other thread parks. Whoever makes `done()` true
/// unparks the waiting thread.
pub(crate) fn help_until(done: &dyn Fn() -> bool) {
    with_current(|ctx| match ctx {
        Some(ctx) => ctx.run_until(done),
        None => {
            // A short spin, then a few yields first: a tiny task is often done by then,
            // and neither side pays for a futex wait and wake.
            for round in 0..JOIN_SPIN_ROUNDS {
                if done() {
                    return;
                }
                if round < JOIN_SPIN_ROUNDS / 2 {
                    for _ in 0..(1 << round.min(5)) {
                        std::hint::spin_loop();
                    }
                } else {
                    thread::yield_now();
                }
            }
            while !done() {
                thread::park();
            }
        }
    })
}

impl Shared {
    /// Wakes one sleeping worker for work queued on `node`: one of its own, else one of a
    /// node allowed to steal from it, nearest first. The caller has fenced (SeqCst) after
    /// queueing, pairing with the fence of a worker going to sleep.
    #[inline]
    fn wake_for(&self, node: usize) {
        let n = &self.nodes[node];
        // A worker of the node (or of a thief node) that is looking for work will find
        // it: no wake-up needed. Else wake a sleeping one, own node first.
        if n.searching.load(Ordering::Relaxed) > 0 {
            return;
        }
        if n.sleepers.load(Ordering::Relaxed) > 0 && self.wake_one(node) {
            return;
        }
        for &m in &n.thieves {
            let t = &self.nodes[m];
            if t.searching.load(Ordering::Relaxed) > 0
                || (t.sleepers.load(Ordering::Relaxed) > 0 && self.wake_one(m))
            {
                return;
            }
        }
    }

    fn wake_one(&self, node: usize) -> bool {
        let n = &self.nodes[node];
        for w in n.workers.clone() {
            let s = &self.workers[w];
            if s.sleeping.load(Ordering::Relaxed)
                && s.sleeping
                    .compare_exchange(true, false, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                n.sleepers.fetch_sub(1, Ordering::AcqRel);
                if let Some(t) = s.thread.get() {
                    t.unpark();
                }
                return true;
            }
        }
        false
    }

    fn wake_all(&self) {
        for s in &self.workers {
            if let Some(t) = s.thread.get() {
                t.unpark();
            }
        }
    }

    fn push(&self, target: usize, job: Job) -> Result<(), NumaError> {
        if self.shutdown.load(Ordering::Relaxed) != RUNNING && !self.is_own_worker() {
            return Err(NumaError::PoolShutDown);
        }
        if fork::generation() != self.born {
            // A forked child: the workers stayed in the parent.
            return Err(NumaError::PoolShutDown);
        }
        let job = with_current(|ctx| match ctx {
            Some(ctx) if std::ptr::eq(&*ctx.shared, self) && ctx.node == target => {
                ctx.deque.push(job);
                None
            }
            _ => Some(job),
        });
        if let Some(job) = job {
            self.nodes[target].injector.push(job);
        }
        // Pairs with the fence of a worker going to sleep (and of `stop`): either it sees
        // our task, or we see it asleep (or the pool stopping). A real fence on both
        // sides: an asymmetric one (membarrier) made the sleeper wait for IPIs, which in
        // a VM took milliseconds at p99.
        fence(Ordering::SeqCst);
        if self.shutdown.load(Ordering::Relaxed) == CANCEL && !self.is_own_worker() {
            // Raced with `stop`: it may have drained already; cancel what is left.
            self.drain_injectors();
        }
        self.wake_for(target);
        Ok(())
    }

    fn is_own_worker(&self) -> bool {
        with_current(|c| c.is_some_and(|c| std::ptr::eq(&*c.shared, self)))
    }

    fn drain_injectors(&self) {
        for n in &self.nodes {
            loop {
                match n.injector.steal() {
                    Stolen::Success(job) => drop(job),
                    Stolen::Retry => continue,
                    Stolen::Empty => break,
                }
            }
        }
    }

    fn index(&self, node: NodeId) -> Result<usize, NumaError> {
        if !node.is_valid() {
            return Err(NumaError::InvalidNode(node.get()));
        }
        match self.route.get(node.get() as usize) {
            Some(&i) if i != u16::MAX => Ok(i as usize),
            _ => Err(NumaError::NodeNotFound(node)),
        }
    }
}

fn steal_one(s: impl Fn() -> Stolen<Job>) -> Option<Job> {
    loop {
        match s() {
            Stolen::Success(j) => return Some(j),
            Stolen::Empty => return None,
            Stolen::Retry => std::hint::spin_loop(),
        }
    }
}

impl Context {
    /// A task: own deque, own node's injector and siblings, then (as the policy allows,
    /// and only from nodes whose own workers are all awake) other nodes, nearest first.
    fn find_work(&self) -> Option<Job> {
        let sh = &*self.shared;
        let slot = &sh.workers[self.index];
        let own = &sh.nodes[self.node];
        let local = self
            .deque
            .pop()
            .or_else(|| steal_one(|| steal_batch_into(&own.injector, &self.deque)))
            .or_else(|| {
                own.workers
                    .clone()
                    .filter(|&w| w != self.index)
                    .find_map(|w| {
                        steal_one(|| sh.workers[w].stealer.steal_batch_and_pop(&self.deque))
                    })
            });
        if let Some(j) = local {
            // Only this worker writes its counters: no read-modify-write needed.
            let n = slot.local.load(Ordering::Relaxed);
            slot.local.store(n + 1, Ordering::Relaxed);
            return Some(j);
        }
        let ending = sh.shutdown.load(Ordering::Relaxed) != RUNNING;
        let stolen = own.victims.iter().find_map(|&v| {
            let victim = &sh.nodes[v];
            if !ending && victim.sleepers.load(Ordering::Relaxed) > 0 {
                return None; // locality first: its own idle worker will take it
            }
            steal_one(|| victim.injector.steal()).or_else(|| {
                victim
                    .workers
                    .clone()
                    .find_map(|w| steal_one(|| sh.workers[w].stealer.steal()))
            })
        });
        if stolen.is_some() {
            let n = slot.stolen.load(Ordering::Relaxed);
            slot.stolen.store(n + 1, Ordering::Relaxed);
        }
        stolen
    }

    /// Whether any queue this worker may take from has something (for the sleep check).
    fn work_visible(&self) -> bool {
        let sh = &*self.shared;
        let own = &sh.nodes[self.node];
        let queued = |n: &Node| {
            !n.injector.is_empty() || n.workers.clone().any(|w| !sh.workers[w].stealer.is_empty())
        };
        !self.deque.is_empty() || queued(own) || own.victims.iter().any(|&v| queued(&sh.nodes[v]))
    }

    /// Runs tasks until `done()`, sleeping when there are none.
    fn run_until(&self, done: &dyn Fn() -> bool) {
        while !done() {
            match self.find_work() {
                Some(job) => {
                    // More where that came from: let an idle worker help, as a push would
                    // (pushes that saw us searching woke nobody).
                    let sh = &*self.shared;
                    if !self.deque.is_empty() || !sh.nodes[self.node].injector.is_empty() {
                        sh.wake_for(self.node);
                    }
                    job.run();
                }
                None => self.sleep(done),
            }
        }
    }

    /// Sleeps unless work or `done()` shows up; woken by a push or by whoever makes
    /// `done()` true (or the pool stopping).
    fn sleep(&self, done: &dyn Fn() -> bool) {
        let sh = &*self.shared;
        let slot = &sh.workers[self.index];
        let node = &sh.nodes[self.node];
        // Spin, then yield, a while first (as rayon's workers do), counted as searching
        // so pushes skip the wake-up: a burst of tasks then costs no syscalls, and a
        // yield lets the thread that feeds us run.
        node.searching.fetch_add(1, Ordering::SeqCst);
        for round in 0..SPIN_ROUNDS {
            if self.work_visible() || done() {
                node.searching.fetch_sub(1, Ordering::SeqCst);
                return;
            }
            if round < SPIN_ROUNDS / 2 {
                for _ in 0..(1 << round.min(6)) {
                    std::hint::spin_loop();
                }
            } else {
                thread::yield_now();
            }
        }
        // Asleep first, then no longer searching, then the fence and one more look: a
        // push that saw us searching (and woke nobody) is visible to that look.
        slot.sleeping.store(true, Ordering::Relaxed);
        node.sleepers.fetch_add(1, Ordering::SeqCst);
        node.searching.fetch_sub(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !(self.work_visible() || done()) {
            thread::park();
        }
        if slot.sleeping.swap(false, Ordering::AcqRel) {
            node.sleepers.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

fn worker_main(ctx: Context) {
    CURRENT.with(|c| c.set(&ctx));
    let sh = ctx.shared.clone();
    ctx.run_until(&|| sh.shutdown.load(Ordering::Acquire) != RUNNING);
    if sh.shutdown.load(Ordering::Acquire) == FINISH {
        // Finish: run what is left anywhere (a task may queue more on any node).
        while let Some(job) = ctx.find_work() {
            job.run();
        }
    }
    // Cancel: what is left in our deque is dropped with it (each reports Cancelled).
    while let Some(job) = ctx.deque.pop() {
        drop(job);
    }
    CURRENT.with(|c| c.set(std::ptr::null()));
}

/// Workers pinned per node. Dropping it finishes queued tasks and joins every thread
/// (dropped on one of its own workers, it stops them without waiting for itself).
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
        let worker_nodes: Vec<NodeId> = topo
            .cpu_nodes()
            .iter()
            .filter(|&n| node_cpus(&backend, n).is_ok())
            .collect();
        if worker_nodes.is_empty() {
            return Err(NumaError::NoUsableCpu);
        }
        let mask: NodeMask = worker_nodes.iter().copied().collect();
        let top = topo
            .nodes()
            .iter()
            .map(|n| n.get() as usize + 1)
            .max()
            .unwrap_or(0);
        // Worker node id -> its index, by table: a lookup per victim of every node would
        // otherwise make building the victim lists cubic in the node count.
        let mut index = vec![0usize; top];
        for (i, n) in worker_nodes.iter().enumerate() {
            index[n.get() as usize] = i;
        }
        let at = |n: NodeId| index.get(n.get() as usize).copied().unwrap_or(0);
        // The other worker nodes, nearest to `n` first.
        let by_distance = |n: NodeId| -> Vec<NodeId> {
            let mut v: Vec<NodeId> = worker_nodes.iter().copied().filter(|&m| m != n).collect();
            v.sort_by_key(|&m| (topo.distance(n, m).unwrap_or(u8::MAX), m));
            v
        };
        let mut order = [NodeId::new(0); MAX_NUMNODES];
        let mut route = vec![u16::MAX; top];
        for n in topo.nodes().iter() {
            let target = if mask.contains(n) {
                n
            } else {
                // A node without workers: the kernel's fallback order from it, else (a
                // node the order does not reach) the nearest worker node.
                let k = fallback_order(topo, n, &mut order);
                match order[..k].iter().copied().find(|m| mask.contains(*m)) {
                    Some(m) => m,
                    None => by_distance(n)[0],
                }
            };
            route[n.get() as usize] = at(target) as u16;
        }
        let victims: Vec<Vec<usize>> = worker_nodes
            .iter()
            .map(|&n| {
                let mut v = by_distance(n);
                let nearest = v.first().and_then(|&m| topo.distance(n, m));
                match config.steal {
                    Steal::Never => v.clear(),
                    Steal::Nearest => v.retain(|&m| topo.distance(n, m) == nearest),
                    Steal::Any => {}
                }
                v.into_iter().map(at).collect()
            })
            .collect();
        let mut thieves: Vec<Vec<usize>> = vec![Vec::new(); worker_nodes.len()];
        for (thief, vs) in victims.iter().enumerate() {
            for &v in vs {
                thieves[v].push(thief);
            }
        }
        for (v, ts) in thieves.iter_mut().enumerate() {
            let vid = worker_nodes[v];
            ts.sort_by_key(|&t| (topo.distance(worker_nodes[t], vid).unwrap_or(u8::MAX), t));
        }
        let per = config.workers_per_node;
        let deques: Vec<Deque<Job>> = (0..worker_nodes.len() * per)
            .map(|_| Deque::new_lifo())
            .collect();
        let shared = Arc::new(Shared {
            nodes: worker_nodes
                .iter()
                .enumerate()
                .map(|(i, &id)| Node {
                    id,
                    injector: Injector::new(),
                    workers: i * per..(i + 1) * per,
                    sleepers: CachePadded::new(AtomicUsize::new(0)),
                    searching: CachePadded::new(AtomicUsize::new(0)),
                    victims: victims[i].clone(),
                    thieves: thieves[i].clone(),
                })
                .collect(),
            workers: deques
                .iter()
                .map(|d| {
                    CachePadded::new(Slot {
                        stealer: d.stealer(),
                        thread: OnceLock::new(),
                        sleeping: AtomicBool::new(false),
                        local: AtomicU64::new(0),
                        stolen: AtomicU64::new(0),
                    })
                })
                .collect(),
            route,
            shutdown: AtomicU8::new(RUNNING),
            born: fork::generation(),
        });
        let mut pool = WorkerPool {
            backend,
            shared,
            threads: Vec::new(),
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        for (index, deque) in deques.into_iter().enumerate() {
            let node = index / per;
            let n = worker_nodes[node];
            let cpus = node_cpus(&pool.backend, n)?;
            let (shared, backend, ready) =
                (pool.shared.clone(), pool.backend.clone(), ready_tx.clone());
            let spawned = thread::Builder::new()
                .name(format!("numaperf-n{n}-w{}", index % per))
                .spawn(move || {
                    let _ = shared.workers[index].thread.set(thread::current());
                    let pinned = backend.set_thread_affinity(&cpus);
                    let ok = pinned.is_ok();
                    drop(backend);
                    let _ = ready.send(pinned);
                    drop(ready); // the pool counts reports until every sender is gone
                    if ok {
                        worker_main(Context {
                            shared,
                            index,
                            node,
                            deque,
                        });
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
        drop(ready_tx);
        for r in ready_rx.iter() {
            r?; // On error, dropping `pool` stops and joins the workers already started.
        }
        Ok(pool)
    }
}

impl<B: PlacementBackend> WorkerPool<B> {
    /// The nodes that have workers.
    pub fn worker_nodes(&self) -> NodeMask {
        self.shared.nodes.iter().map(|n| n.id).collect()
    }

    /// The worker node tasks aimed at `node` run on (itself, or for a memory-only node the
    /// nearest node with workers).
    ///
    /// # Errors
    /// [`NumaError::InvalidNode`], [`NumaError::NodeNotFound`].
    pub fn route(&self, node: NodeId) -> Result<NodeId, NumaError> {
        Ok(self.shared.nodes[self.shared.index(node)?].id)
    }

    /// Runs `f` on a worker of `node` (see [`WorkerPool::route`]) and returns its handle.
    /// From a worker of this pool aimed at its own node, the task goes on the worker's own
    /// deque (its siblings may take it); elsewhere on the node's injector queue.
    ///
    /// # Errors
    /// As [`WorkerPool::route`], and [`NumaError::PoolShutDown`] (also in a child process
    /// after `fork`, where the workers do not exist).
    pub fn spawn_on<T: Send + 'static>(
        &self,
        node: NodeId,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<JoinHandle<T>, NumaError> {
        let target = self.shared.index(node)?;
        let c = cell(f, None);
        let handle = JoinHandle::new(c.clone());
        // SAFETY: `f` is 'static: it borrows nothing; `c` makes no other job.
        self.shared.push(target, unsafe { Job::task(c) })?;
        Ok(handle)
    }

    /// Runs `f` on a worker of `node` without a handle (no allocation for a closure of up
    /// to two words, else one).
    ///
    /// # Errors
    /// As [`WorkerPool::spawn_on`].
    pub fn execute_on(
        &self,
        node: NodeId,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), NumaError> {
        let target = self.shared.index(node)?;
        // SAFETY: `f` is 'static: it borrows nothing.
        self.shared.push(target, unsafe { Job::once(f, None) })
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

    /// Runs `f` with a scope whose tasks may borrow from the caller (and spawn more tasks
    /// into the same scope); returns after every task spawned in it has finished (also if
    /// `f` panics, whose panic it then resumes).
    ///
    /// `f` itself runs on a worker of this pool (of the caller's node, or its route), so
    /// its spawns for that node go to the worker's own deque, as in rayon; called on a
    /// worker of this pool, it runs right there, and while it waits for its tasks the
    /// worker runs other tasks instead of blocking.
    ///
    /// # Panics
    /// Resumes the body's panic (after every task of the scope finished). If the pool
    /// stops between the check for workers and the body's start, the body never runs and
    /// `scope` panics saying so.
    pub fn scope<'env, F, R>(&'env self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env, B>) -> R + Send,
        R: Send,
        B: Sync,
    {
        let sh = &self.shared;
        let stopped = sh.shutdown.load(Ordering::Relaxed) != RUNNING;
        if sh.is_own_worker() || stopped || fork::generation() != sh.born {
            // Here (or, with no workers to run it, on this thread: its spawns then
            // report `PoolShutDown`).
            return self.scope_here(f);
        }
        let target = self
            .backend
            .current_cpu()
            .ok()
            .and_then(|c| self.shared.index(c.node).ok())
            .unwrap_or(0);
        let body = move || catch_unwind(AssertUnwindSafe(|| self.scope_here(f)));
        let c = cell(body, None);
        let outcome: Arc<dyn Outcome<std::thread::Result<R>> + '_> = c.clone();
        // SAFETY: the job and the handle borrow `self` and `f` ('env). This call does
        // not return before the handle's `join` saw the task complete, and completing
        // comes after the closure was taken out of the cell and dropped: what the cell
        // still holds afterwards (an `Option` of the closure that is `None`, a result
        // slot that `join` emptied) touches nothing of 'env when dropped. A job that
        // never runs (refused by `push`) is cancelled before `push` returns.
        let (outcome, job) = unsafe {
            (
                std::mem::transmute::<
                    Arc<dyn Outcome<std::thread::Result<R>> + '_>,
                    Arc<dyn Outcome<std::thread::Result<R>>>,
                >(outcome),
                Job::task(c),
            )
        };
        let handle = JoinHandle::new(outcome);
        if self.shared.push(target, job).is_err() {
            // No workers to run it (shut down, or a forked child): the job was cancelled
            // unrun, so `f` is gone with it; run nothing and report as a cancelled task.
            let _ = handle.join();
            panic!("WorkerPool::scope: the pool has no workers (shut down, or left by fork)");
        }
        match handle.join() {
            Ok(Ok(r)) => r,
            Ok(Err(payload)) => resume_unwind(payload),
            Err(e) => panic!("WorkerPool::scope: the body did not run: {e:?}"),
        }
    }

    /// `scope` with the body on the calling thread.
    fn scope_here<'env, F, R>(&'env self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env, B>) -> R,
    {
        let scope = Scope {
            pool: self,
            state: ScopeState::new(),
            _scope: PhantomData,
            _env: PhantomData,
        };
        struct WaitAll<'a>(&'a ScopeState);
        impl Drop for WaitAll<'_> {
            fn drop(&mut self) {
                self.0.finish_body();
            }
        }
        let _wait = WaitAll(&scope.state);
        f(&scope)
    }

    /// Tasks run per worker node.
    pub fn stats(&self) -> BTreeMap<NodeId, WorkerStats> {
        let sh = &self.shared;
        sh.nodes
            .iter()
            .map(|n| {
                let mut s = WorkerStats::default();
                for w in n.workers.clone() {
                    s.local += sh.workers[w].local.load(Ordering::Relaxed);
                    s.stolen += sh.workers[w].stolen.load(Ordering::Relaxed);
                }
                (n.id, s)
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
        let sh = &self.shared;
        let code = match how {
            Shutdown::Finish => FINISH,
            Shutdown::Cancel => CANCEL,
        };
        let _ = sh
            .shutdown
            .compare_exchange(RUNNING, code, Ordering::SeqCst, Ordering::SeqCst);
        // Pairs with a pusher's fence: it sees the flag, or we see its task.
        fence(Ordering::SeqCst);
        if how == Shutdown::Cancel {
            sh.drain_injectors(); // each handle reports `Cancelled`
        }
        if fork::generation() != sh.born {
            // A forked child: the threads are the parent's; there is nobody to join.
            sh.drain_injectors();
            std::mem::forget(std::mem::take(&mut self.threads));
            return;
        }
        sh.wake_all();
        if sh.is_own_worker() {
            // Dropped on one of our own workers: it cannot join itself. The workers stop
            // on their own (this one once its task returns); they hold what they need.
            self.threads.clear();
            return;
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        // Anything queued after the workers left (a race with a concurrent spawn).
        sh.drain_injectors();
    }
}

impl<B: PlacementBackend> Drop for WorkerPool<B> {
    fn drop(&mut self) {
        self.stop(Shutdown::Finish);
    }
}

/// Spawns tasks that may borrow from the enclosing [`WorkerPool::scope`] call. Tasks may
/// capture the `&Scope` and spawn more.
pub struct Scope<'scope, 'env: 'scope, B: PlacementBackend> {
    pool: &'env WorkerPool<B>,
    state: ScopeState,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

impl<'scope, 'env, B: PlacementBackend> Scope<'scope, 'env, B> {
    /// Runs `f` on a worker of `node`; `f` may borrow anything that outlives the scope.
    ///
    /// # Errors
    /// As [`WorkerPool::spawn_on`].
    pub fn spawn_on<T: Send + 'scope>(
        &'scope self,
        node: NodeId,
        f: impl FnOnce() -> T + Send + 'scope,
    ) -> Result<JoinHandle<T>, NumaError> {
        let target = self.pool.shared.index(node)?;
        // SAFETY: `scope_here` does not return before `finish_body` saw every count
        // dropped; the task's job holds this one.
        let count = unsafe { self.state.count() };
        let c = cell(f, Some(count));
        let outcome: Arc<dyn Outcome<T> + 'scope> = c.clone();
        // SAFETY: the handle may outlive 'scope when `T` does (a `JoinHandle<u64>`
        // returned from the scope's body). By then the scope has waited for the task,
        // whose run or cancel took the closure out of the cell: what the cell still holds
        // of 'scope is an `Option<F>` that is `None`, whose drop touches nothing, and the
        // handle only reaches the state and the result (`T`, which it names itself).
        let outcome: Arc<dyn Outcome<T>> = unsafe {
            std::mem::transmute::<Arc<dyn Outcome<T> + 'scope>, Arc<dyn Outcome<T>>>(outcome)
        };
        let handle = JoinHandle::new(outcome);
        // SAFETY: the task may borrow data of lifetime 'scope. The job holds the only
        // other owner of it next to handles (whose `T: 'scope` keeps them inside 'scope)
        // and drops it before the scope's count, whether the task ran, panicked, or was
        // dropped unrun (cancelled, refused by `push`, left behind with the pool).
        // `WorkerPool::scope` does not return (nor unwind past its frame) until the
        // count is back to 0, so nothing of 'scope is touched after 'scope ends. The pool
        // cannot be dropped meanwhile: the scope borrows it for 'env.
        let job = unsafe { Job::task(c) };
        self.pool.shared.push(target, job)?;
        Ok(handle)
    }

    /// Runs `f` on a worker of `node` without a handle; the scope still waits for it.
    ///
    /// # Errors
    /// As [`WorkerPool::spawn_on`].
    pub fn execute_on(
        &'scope self,
        node: NodeId,
        f: impl FnOnce() + Send + 'scope,
    ) -> Result<(), NumaError> {
        let target = self.pool.shared.index(node)?;
        // SAFETY: `scope_here` does not return before `finish_body` saw every count
        // dropped; the job holds this one.
        let count = unsafe { self.state.count() };
        // SAFETY: the closure may borrow data of lifetime 'scope; the job owns it alone
        // and drops it (run or not) before the scope's count goes down, and the scope
        // does not end before that (as in `spawn_on`).
        let job = unsafe { Job::once(f, Some(count)) };
        self.pool.shared.push(target, job)
    }
}
