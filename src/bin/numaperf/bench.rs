//! `numaperf bench`: idle latency and bandwidth between every CPU node and memory node,
//! printed as matrices like Intel MLC's. The measuring is `numaperf::membench`'s; this
//! file parses the arguments, draws the progress bar and prints.
//!
//! # JSON (`--json`): one object, stable
//! ```text
//! {
//!   "cpu_nodes": [0, 1],              nodes with CPUs this process may use (rows)
//!   "memory_nodes": [0, 1, 2],        nodes with memory it may use (columns)
//!   "latency_ns": [[..], [..]],       idle latency, ns per dependent load, [row][column]
//!   "bandwidth_mb_s": {               MB/s (10^6 bytes/s), [row][column]
//!     "read": [[..]], "write": [[..]], "copy": [[..]]
//!   },
//!   "size_bytes": 268435456,          buffer per memory node
//!   "threads": [8, 8],                bandwidth threads per CPU node (row)
//!   "duration_ms": 500,               time per figure
//!   "llc_bytes": 33554432,            last-level cache (null: unknown)
//!   "placement": [{"node": 0, "enforcement": "hard", "pages": 65536,
//!                  "pages_on_node": 65536, "verified": true}, ..],   per memory node
//!   "cpus_verified": true,            every thread ran on a CPU of its row's node
//!   "optimized": true                 false: a debug build, figures mean little
//! }
//! ```

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use numaperf::membench::{self, BenchConfig, BenchReport, Figure, Progress, Traffic};
use numaperf::numa_core::byte_size::parse_byte_size;
use numaperf::{Enforcement, NodeId, NumaError};
use serde_json::json;

use crate::CliError;

const FIGURES: &str = "\
Figures (rows: nodes with CPUs, columns: nodes with memory):
  latency    idle latency, ns per load: one thread pinned to a CPU of the row's node
             follows a random cycle through every 64-byte line of a buffer bound to the
             column's node, each load's address read by the load before it
  read       MB/s (10^6 bytes/s) summing the buffer, summed over the threads
  write      MB/s filling the buffer (bytes stored; the kernel may read lines too)
  copy       MB/s copying one half of each thread's slice onto the other (bytes read
             plus bytes written, as STREAM counts)
Each buffer is bound to its node (hard mode: populated and every page verified there,
transparent huge pages asked for) and checked again after its figures; each bandwidth
thread is pinned to a CPU of its own with a slice of its own. Time is each thread's own
CPU time on Linux (time spent descheduled on a busy machine does not count). Build with
--release: a debug build's figures mean little.
";

/// Arguments of `numaperf bench`.
#[derive(Args, Debug)]
#[command(after_help = FIGURES)]
pub struct BenchArgs {
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    json: bool,
    /// Buffer bytes per memory node (K, M, G suffixes: powers of 1024) [default: the
    /// larger of 4 x the last-level cache and 256M; 16M with --quick].
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    size: Option<usize>,
    /// Bandwidth threads per CPU node, one per CPU [default: every CPU of the node this
    /// process may use; a node with fewer CPUs uses all it has].
    #[arg(long, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,
    /// 50 ms per figure instead of 500, and 16M buffers unless --size says otherwise.
    #[arg(long)]
    quick: bool,
}

fn parse_size(text: &str) -> Result<usize, String> {
    let n = parse_byte_size(text).map_err(|e| e.to_string())?;
    match usize::try_from(n) {
        Ok(n) if n >= membench::MIN_SIZE => Ok(n),
        Ok(_) => Err(format!("must be at least {} bytes", membench::MIN_SIZE)),
        Err(_) => Err("too large for this machine".into()),
    }
}

fn parse_threads(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs `numaperf bench`.
pub fn exec(args: &BenchArgs) -> Result<ExitCode, CliError> {
    let size = args.size.unwrap_or_else(|| {
        if args.quick {
            16 << 20
        } else {
            membench::default_size()
        }
    });
    let mut config = BenchConfig::new(size);
    config.threads = args.threads;
    if args.quick {
        config = config.duration(Duration::from_millis(50));
    }
    config.validate().map_err(usage)?;
    if cfg!(debug_assertions) {
        eprintln!("numaperf bench: a debug build: build with --release for real figures");
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = ProgressBar::new(0);
        if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} {elapsed}") {
            bar.set_style(style);
        }
        bar
    } else {
        ProgressBar::hidden()
    };
    let report = membench::run(&config, &mut |p: &Progress| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
        bar.set_message(format!(
            "cpu node {} -> memory node {}: {}",
            p.cpu_node,
            p.memory_node,
            figure_name(p.figure)
        ));
    });
    bar.finish_and_clear();
    let report = report.map_err(usage)?;
    if args.json {
        println!("{}", to_json(&report));
    } else {
        print!("{}", to_text(&report));
    }
    for m in report.memory.iter().filter(|m| !m.verified) {
        eprintln!(
            "numaperf bench: node {}'s buffer not verified: {} of {} pages seen on it",
            m.node, m.pages_on_node, m.pages
        );
    }
    if !report.cpus_verified {
        eprintln!("numaperf bench: a measuring thread ran outside its CPU node");
    }
    Ok(ExitCode::SUCCESS)
}

/// Configuration errors are usage errors (exit 2); the rest are runtime errors.
fn usage(e: NumaError) -> CliError {
    match e {
        NumaError::InvalidConfig { field, reason } => {
            CliError::usage(format!("bench: --{field} {reason}"))
        }
        e => CliError::from(e),
    }
}

fn figure_name(f: Figure) -> &'static str {
    match f {
        Figure::Latency => "latency",
        Figure::Bandwidth(t) => t.name(),
    }
}

fn ids(nodes: &[NodeId]) -> Vec<u32> {
    nodes.iter().map(|n| n.get()).collect()
}

fn enforcement(e: Enforcement) -> &'static str {
    match e {
        Enforcement::Hard => "hard",
        Enforcement::Soft => "soft",
    }
}

/// The report as the JSON object the module documentation describes.
fn to_json(r: &BenchReport) -> serde_json::Value {
    let placement: Vec<_> = r
        .memory
        .iter()
        .map(|m| {
            json!({
                "node": m.node.get(),
                "enforcement": enforcement(m.enforcement),
                "pages": m.pages,
                "pages_on_node": m.pages_on_node,
                "verified": m.verified,
            })
        })
        .collect();
    json!({
        "cpu_nodes": ids(&r.cpu_nodes),
        "memory_nodes": ids(&r.memory_nodes),
        "latency_ns": r.latency_ns,
        "bandwidth_mb_s": {
            "read": r.read_mb_s,
            "write": r.write_mb_s,
            "copy": r.copy_mb_s,
        },
        "size_bytes": r.size,
        "threads": r.threads,
        "duration_ms": r.duration.as_millis() as u64,
        "llc_bytes": r.llc_bytes,
        "placement": placement,
        "cpus_verified": r.cpus_verified,
        "optimized": r.optimized,
    })
}

/// The report as MLC prints its matrices: one table per figure.
fn to_text(r: &BenchReport) -> String {
    let mut out = format!(
        "numaperf bench: {} per memory node{}, {} ms per figure\n",
        bytes(r.size as u64),
        r.llc_bytes
            .map(|l| format!(" (last-level cache {})", bytes(l)))
            .unwrap_or_default(),
        r.duration.as_millis()
    );
    out += &matrix(r, "Idle latency (ns per load)", &r.latency_ns, 1);
    let threads: Vec<String> = r
        .cpu_nodes
        .iter()
        .zip(&r.threads)
        .map(|(n, t)| format!("{t} on node {n}"))
        .collect();
    for t in Traffic::ALL {
        let title = format!(
            "{} bandwidth (MB/s; threads: {})",
            cap(t.name()),
            threads.join(", ")
        );
        out += &matrix(r, &title, r.bandwidth(t), 0);
    }
    out += "\nMemory placement (pages on the node / pages, checked after the figures)\n";
    for m in &r.memory {
        out += &format!(
            "  node {}: {}/{} {}{}\n",
            m.node,
            m.pages_on_node,
            m.pages,
            enforcement(m.enforcement),
            if m.verified { "" } else { " NOT VERIFIED" }
        );
    }
    out
}

fn matrix(r: &BenchReport, title: &str, m: &[Vec<f64>], decimals: usize) -> String {
    let mut out = format!("\n{title}\n{:>10}  Memory node\n{:>10}", "", "CPU node");
    for n in &r.memory_nodes {
        out += &format!("{n:>10}");
    }
    out.push('\n');
    for (node, row) in r.cpu_nodes.iter().zip(m) {
        out += &format!("{node:>10}");
        for x in row {
            out += &format!("{x:>10.decimals$}");
        }
        out.push('\n');
    }
    out
}

fn cap(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 && n % (1 << 30) == 0 => format!("{} GiB", n >> 30),
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => format!("{n} bytes"),
    }
}
