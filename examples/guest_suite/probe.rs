//! `placement-probe`: a program that allocates, touches and checks its own pages, for the
//! CLI's guest cases (`numaperf run --membind 3 -- placement-probe ...`).
//!
//! `placement-probe MIB EXPECT [--even] [--stray NODE] [--hold]`: maps MIB MiB of
//! anonymous memory (no policy of its own, no transparent huge pages, so the task's policy
//! places every 4 KiB page), touches it, asks the kernel where each page is
//! (`move_pages` without target nodes) and prints
//! `probe: pages=N N0=a N3=b ... expect=EXPECT match=yes|no`. `EXPECT` is a node list;
//! the pages match when every page is on one of its nodes and, with `--even`, every node
//! of it holds the same count within one page (interleaving). `--stray NODE` then moves
//! one page in eight to NODE (what `--verify` must catch). `--hold` prints `ready` and
//! waits for stdin to close before exiting (so `numaperf stat` can look); the memory
//! stays mapped until the exit (so `--verify` sees it). Exit 0 when
//! the pages match, 1 when not, 2 for bad arguments.

use numaperf::numa_core::parse::parse_list;
use numaperf::{NodeId, NodeMask};
use numaperf_linux::mempolicy::{move_pages_move, move_pages_query, MPOL_MF_MOVE};
use rustix::mm::{madvise, mmap_anonymous, Advice, MapFlags, ProtFlags};

/// The kernel's base page on the probe's targets (x86_64, and the 4 KiB arm64 guests).
fn page_size() -> usize {
    rustix::param::page_size()
}

struct Args {
    mib: usize,
    expect: NodeMask,
    even: bool,
    stray: Option<i32>,
    hold: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut it = args.iter().skip(1);
    let mib = it
        .next()
        .and_then(|s| s.parse().ok())
        .filter(|&m: &usize| m > 0)
        .ok_or("usage: placement-probe MIB EXPECT [--even] [--stray NODE] [--hold]")?;
    let expect_text = it.next().ok_or("missing EXPECT (a node list)")?;
    let expect = parse_list(expect_text).map_err(|e| format!("EXPECT {expect_text}: {e}"))?;
    let mut a = Args {
        mib,
        expect,
        even: false,
        stray: None,
        hold: false,
    };
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--even" => a.even = true,
            "--hold" => a.hold = true,
            "--stray" => {
                let n = it.next().and_then(|s| s.parse().ok());
                a.stray = Some(n.ok_or("--stray needs a node")?);
            }
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(a)
}

/// Each page's node (negative: an errno, such as -ENOENT for a page not present).
fn nodes_of(base: *const u8, pages: usize) -> Result<Vec<i32>, String> {
    let addrs: Vec<*const u8> = (0..pages)
        .map(|i| base.wrapping_add(i * page_size()))
        .collect();
    let mut status = vec![0i32; pages];
    move_pages_query(&addrs, &mut status).map_err(|e| format!("move_pages: {e}"))?;
    Ok(status)
}

/// Runs the probe; returns its exit code.
pub fn main(args: &[String]) -> i32 {
    let a = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("placement-probe: {e}");
            return 2;
        }
    };
    let len = a.mib << 20;
    let pages = len / page_size();
    // SAFETY: a fresh private anonymous mapping at an address the kernel picks; it is only
    // used through `mem` below, and never unmapped (the exit frees it).
    let base = match unsafe {
        mmap_anonymous(
            core::ptr::null_mut(),
            len,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
    } {
        Ok(p) => p.cast::<u8>(),
        Err(e) => {
            eprintln!("placement-probe: mmap: {e}");
            return 1;
        }
    };
    // SAFETY: advice on the mapping just made; NOHUGEPAGE changes only its page size.
    let _ = unsafe { madvise(base.cast(), len, Advice::LinuxNoHugepage) };
    // SAFETY: `base..base + len` is the mapping above, readable and writable, and nothing
    // else refers to it.
    let mem = unsafe { core::slice::from_raw_parts_mut(base, len) };
    for i in (0..len).step_by(page_size()) {
        mem[i] = 1;
    }
    if let Some(node) = a.stray {
        let addrs: Vec<*const u8> = (0..pages)
            .step_by(8)
            .map(|i| base.wrapping_add(i * page_size()).cast_const())
            .collect();
        let targets = vec![node; addrs.len()];
        let mut status = vec![0i32; addrs.len()];
        // SAFETY: the pages are this probe's own; moving them keeps their contents.
        if let Err(e) = unsafe { move_pages_move(&addrs, &targets, &mut status, MPOL_MF_MOVE) } {
            eprintln!("placement-probe: move_pages to {node}: {e}");
        }
    }
    let code = match nodes_of(base, pages) {
        Ok(status) => report(&a, &status),
        Err(e) => {
            eprintln!("placement-probe: {e}");
            1
        }
    };
    if a.hold {
        println!("ready");
        let _ = std::io::stdin().read_line(&mut String::new());
    }
    // The mapping is left for the exit to free, so that `numaperf run --verify`, which
    // looks at the probe's pages as it exits, sees them.
    code
}

/// Prints the per-node counts and whether they match; returns the exit code.
fn report(a: &Args, status: &[i32]) -> i32 {
    let mut counts = std::collections::BTreeMap::<i32, u64>::new();
    for &s in status {
        *counts.entry(s).or_default() += 1;
    }
    let outside: u64 = counts
        .iter()
        .filter(|&(&n, _)| n < 0 || !a.expect.contains(NodeId::new(n as u32)))
        .map(|(_, &c)| c)
        .sum();
    let on: Vec<u64> = a
        .expect
        .iter()
        .map(|n| counts.get(&(n.get() as i32)).copied().unwrap_or(0))
        .collect();
    let spread = on.iter().max().unwrap_or(&0) - on.iter().min().unwrap_or(&0);
    let ok = outside == 0 && (!a.even || spread <= 1);
    let per_node: Vec<String> = counts
        .iter()
        .map(|(n, c)| {
            if *n < 0 {
                format!("errno{}={c}", -n)
            } else {
                format!("N{n}={c}")
            }
        })
        .collect();
    println!(
        "probe: pages={} {} expect={} match={}",
        status.len(),
        per_node.join(" "),
        a.expect,
        if ok { "yes" } else { "no" }
    );
    if ok {
        0
    } else {
        1
    }
}
