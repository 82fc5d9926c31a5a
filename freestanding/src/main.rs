//! # numaperf-freestanding: the core run without std, alloc or libc
//!
//! `numaperf-core` claims to be `no_std` with no allocator; the cross builds of CI prove
//! only that it compiles. This program proves it *runs* that way and shows what a real
//! no_std user must write: a static, non-PIE x86_64 ELF with its own `_start`, two raw
//! system calls (write, exit_group), `panic = "abort"`, no libc, no heap.
//!
//! Its backend ([`machine::FirmwareMachine`]) is what a unikernel or kernel-adjacent
//! allocator knows: a memory map of four nodes (two with CPUs, two memory-only "CXL"
//! nodes), each owning physical ranges of one static arena, as an ACPI SRAT describes
//! them ([`memmap`]), a SLIT-like distance table and an HMAT-like interleave weight
//! table. Pages get their frames when faulted in, by the core's own placement logic
//! (`allocation_order`, `interleave_index`, `WeightedChunks` through `create_region`).
//!
//! Every region is made through `numaperf_core::region::create_region`, and its
//! placement is read back with `numaperf_core::backend::placement`: each page's node is
//! derived from the address of the frame behind it through the memory map. One line per
//! check (`FREESTANDING <check> PASS|FAIL <observed>`), then
//! `FREESTANDING DONE <n> passed, <m> failed`; the exit status is 0 only if all passed.
//!
//! Build and run: `bash freestanding/run.sh` (CI does).
#![no_std]
#![no_main]

mod checks;
mod machine;
mod memmap;
mod sys;

use core::fmt::Display;

use numaperf_core::{
    CpuSet, FixedTopology, KernelWeights, NodeId, NodeWeights, NumaError, TopologyInfo,
};

use machine::{FirmwareMachine, NODES};

/// CPUs per node: nodes 2 and 3 are memory-only (CXL expanders).
const CPUS: [&[usize]; NODES] = [&[0, 1], &[2, 3], &[], &[]];

/// Distances (a SLIT): node 2 hangs off node 0, node 3 off node 1.
const SLIT: [[u8; NODES]; NODES] = [
    [10, 21, 24, 31],
    [21, 10, 31, 24],
    [24, 31, 10, 41],
    [31, 24, 41, 10],
];

/// Interleave weights by bandwidth, as firmware (HMAT) gives the kernel's `auto` mode.
fn firmware_weights() -> KernelWeights {
    KernelWeights {
        weights: NodeWeights::new()
            .with(NodeId::new(0), 2)
            .with(NodeId::new(1), 2)
            .with(NodeId::new(2), 1)
            .with(NodeId::new(3), 1),
        auto: Some(true),
    }
}

/// The topology from the tables: memory per node from the memory map.
fn topology() -> Result<FixedTopology<NODES>, NumaError> {
    let cpus: [CpuSet; NODES] = core::array::from_fn(|i| CPUS[i].iter().copied().collect());
    let memory: [u64; NODES] = core::array::from_fn(|i| memmap::node_bytes(i as u32));
    FixedTopology::from_tables(cpus, memory, SLIT)
}

/// Passed and failed checks.
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    /// Prints `FREESTANDING <name> PASS|FAIL <observed>` and counts it.
    pub fn check(&mut self, name: impl Display, pass: bool, observed: impl Display) {
        if pass {
            self.passed += 1;
        } else {
            self.failed += 1;
        }
        let verdict = if pass { "PASS" } else { "FAIL" };
        say!("FREESTANDING {name} {verdict} {observed}");
    }
}

fn run() -> Result<Report, NumaError> {
    let machine = FirmwareMachine::take(topology()?, Some(firmware_weights()))?;
    for r in memmap::SRAT.iter() {
        let (start, end) = memmap::span(r);
        say!(
            "FREESTANDING memory node{} {start:#x}-{end:#x} ({} KiB)",
            r.node,
            r.len / 1024
        );
    }
    let t = numaperf_core::PlacementBackend::topology(&machine);
    say!(
        "FREESTANDING topology nodes={} with-cpus={} memory={}",
        t.nodes(),
        t.cpu_nodes(),
        t.memory_nodes()
    );
    let mut report = Report {
        passed: 0,
        failed: 0,
    };
    checks::run(&machine, &mut report)?;
    Ok(report)
}

/// Called by `_start`; never returns.
extern "C" fn main() -> ! {
    let code = match run() {
        Ok(r) => {
            say!("FREESTANDING DONE {} passed, {} failed", r.passed, r.failed);
            i32::from(r.failed > 0 || r.passed == 0)
        }
        Err(e) => {
            say!("FREESTANDING ABORTED: {e}");
            2
        }
    };
    sys::exit(code)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    say!("FREESTANDING PANIC {info}");
    sys::exit(101)
}
