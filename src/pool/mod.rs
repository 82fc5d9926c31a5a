//! Per-node pools: fixed-size buffers placed on each node, and workers pinned per node.
//! Both are generic over the backend, so they run on the simulator as on the kernel.

mod barrier;
mod buffer;
mod cache;
mod deque;
mod fork;
mod task;
mod worker;

pub use buffer::{Buffer, BufferPool, BufferPoolConfig, FallbackReason, NodeStats};
pub use task::{JoinHandle, TaskError};
pub use worker::{Scope, Shutdown, Steal, WorkerPool, WorkerPoolConfig, WorkerStats};
