//! Pool benchmarks, each beside its baseline or peer, and a ratio report at the end
//! (medians of alternating rounds after a warm-up round, with their spread):
//! - buffer get+put, one thread and two contending, against `crossbeam_queue::ArrayQueue`
//!   holding the same buffers (a lock-free bounded queue of pointers, no placement, no RAII);
//! - 200k tiny tasks in a scope against rayon's `scope` + `spawn`;
//! - spawn->join round trip (p99) against rayon (`spawn` + a channel) and the published
//!   numaperf 0.1.0 executor (`submit_to_node` + a channel);
//! - fire-and-forget submit throughput to node 0 against that executor's `submit_to_node`.
//!
//! `cargo bench --bench pools -- --quick` runs everything briefly.

#[cfg(target_os = "linux")]
#[path = "pools/linux.rs"]
mod linux;

#[cfg(target_os = "linux")]
use linux::main;

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: the pools bench's peer (numaperf 0.1.0) builds on Linux only");
}
