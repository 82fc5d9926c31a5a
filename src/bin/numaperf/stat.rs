//! `numaperf stat`: pages per node of processes by kind of mapping (like `numastat -p`)
//! and the system's per-node allocation counters (like `numastat`); `--watch` prints what
//! changed each interval. Everything is read by the library's locality reader.

use std::process::ExitCode;

use clap::Args;

use crate::CliError;

/// Arguments of `numaperf stat`.
#[derive(Args, Debug)]
#[command(
    after_help = "Process figures are resident memory in MiB per node and kind \
    (heap, stack, anon, file, shmem, huge) from /proc/PID/numa_maps; system figures are \
    the kernel's per-node allocation counters (pages, from boot) from \
    /sys/devices/system/node/nodeN/numastat. With --watch, each figure is the change over \
    the interval. --json prints one object (one per interval with --watch), sizes in bytes."
)]
pub struct StatArgs {
    /// Processes to show (none: only the system's counters).
    #[arg(value_name = "PID")]
    pub pids: Vec<u32>,
    /// One JSON object instead of tables.
    #[arg(long)]
    pub json: bool,
    /// Print the changes every SECONDS instead of the totals once.
    #[arg(long, value_name = "SECONDS")]
    pub watch: Option<f64>,
    /// With --watch: stop after N intervals (default: run until interrupted).
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
}

/// Runs `numaperf stat`.
///
/// # Errors
/// A process that does not exist or cannot be read, unreadable kernel counters.
#[cfg(target_os = "linux")]
pub fn exec(args: &StatArgs) -> Result<ExitCode, CliError> {
    linux::exec(args)
}

/// Runs `numaperf stat`.
///
/// # Errors
/// Always: the counters are Linux's.
#[cfg(not(target_os = "linux"))]
pub fn exec(_args: &StatArgs) -> Result<ExitCode, CliError> {
    Err(CliError::runtime(
        "stat: needs Linux (numa_maps and numastat)",
    ))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::process::ExitCode;
    use std::time::Duration;

    use numaperf::locality::{LocalitySource, NumaStat};
    use numaperf::numa_core::process_pages::{PageClass, ProcessPages};
    use numaperf::{FileProblem, NodeId, NumaError};
    use numaperf_linux::LinuxLocality;
    use serde_json::{json, Value};

    use super::StatArgs;
    use crate::CliError;

    /// One reading: the system's counters and each process's pages.
    struct Reading {
        system: Vec<(NodeId, NumaStat)>,
        processes: Vec<(u32, ProcessPages)>,
    }

    fn read(pids: &[u32]) -> Result<Reading, CliError> {
        let system = LinuxLocality::new().numastat()?;
        let mut processes = Vec::with_capacity(pids.len());
        for &pid in pids {
            let maps = LinuxLocality::of_process(pid)
                .mappings()
                .map_err(|e| match e {
                    NumaError::Sysfs {
                        problem: FileProblem::Missing,
                        ..
                    } => CliError::runtime(format!("stat: no process {pid}")),
                    e => CliError::runtime(format!("stat: process {pid}: {e}")),
                })?;
            processes.push((pid, ProcessPages::sum(&maps)));
        }
        Ok(Reading { system, processes })
    }

    const FIELDS: [&str; 6] = numaperf::numa_core::locality_parse::NUMASTAT_FIELDS;

    fn fields(s: &NumaStat) -> [u64; 6] {
        [
            s.numa_hit,
            s.numa_miss,
            s.numa_foreign,
            s.interleave_hit,
            s.local_node,
            s.other_node,
        ]
    }

    /// The process's bytes per node and class (`signed` deltas when `earlier` is given).
    fn process_rows(p: &ProcessPages, earlier: Option<&ProcessPages>) -> Vec<(NodeId, [i128; 6])> {
        let mut nodes: Vec<NodeId> = p.nodes.iter().map(|&(n, _)| n).collect();
        if let Some(e) = earlier {
            nodes.extend(e.nodes.iter().map(|&(n, _)| n));
        }
        nodes.sort();
        nodes.dedup();
        nodes
            .into_iter()
            .map(|n| {
                let mut row = [0i128; 6];
                for (i, c) in PageClass::ALL.iter().enumerate() {
                    let now = i128::from(p.bytes(n, *c));
                    let then = earlier.map_or(0, |e| i128::from(e.bytes(n, *c)));
                    row[i] = now - then;
                }
                (n, row)
            })
            .collect()
    }

    fn system_rows(now: &Reading, earlier: Option<&Reading>) -> Vec<(NodeId, [u64; 6])> {
        now.system
            .iter()
            .map(|(n, s)| {
                let base = earlier.and_then(|e| e.system.iter().find(|(m, _)| m == n));
                (*n, fields(&base.map_or(*s, |(_, b)| s.since(b))))
            })
            .collect()
    }

    fn to_json(now: &Reading, earlier: Option<&Reading>, interval: Option<f64>) -> Value {
        let system: Vec<Value> = system_rows(now, earlier)
            .iter()
            .map(|(n, f)| {
                let mut o = serde_json::Map::new();
                o.insert("node".into(), json!(n.get()));
                for (k, v) in FIELDS.iter().zip(f) {
                    o.insert((*k).into(), json!(v));
                }
                Value::Object(o)
            })
            .collect();
        let processes: Vec<Value> = now
            .processes
            .iter()
            .enumerate()
            .map(|(i, (pid, p))| {
                let before = earlier.map(|e| &e.processes[i].1);
                let nodes: Vec<Value> = process_rows(p, before)
                    .iter()
                    .map(|(n, row)| {
                        let mut o = serde_json::Map::new();
                        o.insert("node".into(), json!(n.get()));
                        for (c, v) in PageClass::ALL.iter().zip(row) {
                            o.insert(format!("{}_bytes", c.name()), json!(v));
                        }
                        o.insert("total_bytes".into(), json!(row.iter().sum::<i128>()));
                        Value::Object(o)
                    })
                    .collect();
                json!({"pid": pid, "nodes": nodes})
            })
            .collect();
        let mut o = json!({"system": system, "processes": processes});
        if let Some(s) = interval {
            o["interval_seconds"] = json!(s);
        }
        o
    }

    fn mib(bytes: i128) -> String {
        format!("{:.2}", bytes as f64 / (1024.0 * 1024.0))
    }

    fn print_tables(now: &Reading, earlier: Option<&Reading>) {
        let sys = system_rows(now, earlier);
        let heading = if earlier.is_some() { " (change)" } else { "" };
        print!("{:<16}", format!("system{heading}"));
        for (n, _) in &sys {
            print!(" {:>14}", format!("node{n}"));
        }
        println!();
        for (i, k) in FIELDS.iter().enumerate() {
            print!("{k:<16}");
            for (_, f) in &sys {
                print!(" {:>14}", f[i]);
            }
            println!();
        }
        for (i, (pid, p)) in now.processes.iter().enumerate() {
            let rows = process_rows(p, earlier.map(|e| &e.processes[i].1));
            println!();
            print!("{:<16}", format!("pid {pid} (MiB){heading}"));
            for (n, _) in &rows {
                print!(" {:>10}", format!("node{n}"));
            }
            println!(" {:>10}", "total");
            for (c_i, c) in PageClass::ALL.iter().enumerate() {
                print!("{:<16}", c.name());
                for (_, row) in &rows {
                    print!(" {:>10}", mib(row[c_i]));
                }
                println!(" {:>10}", mib(rows.iter().map(|(_, r)| r[c_i]).sum()));
            }
            print!("{:<16}", "total");
            for (_, row) in &rows {
                print!(" {:>10}", mib(row.iter().sum()));
            }
            println!(
                " {:>10}",
                mib(rows.iter().map(|(_, r)| r.iter().sum::<i128>()).sum())
            );
        }
    }

    pub fn exec(args: &StatArgs) -> Result<ExitCode, CliError> {
        let first = read(&args.pids)?;
        let Some(secs) = args.watch else {
            if args.json {
                println!("{}", to_json(&first, None, None));
            } else {
                print_tables(&first, None);
            }
            return Ok(ExitCode::SUCCESS);
        };
        if !(secs.is_finite() && secs > 0.0) {
            return Err(CliError::usage(format!(
                "--watch {secs}: not a positive number of seconds"
            )));
        }
        let mut earlier = first;
        let mut done = 0u64;
        while args.count.is_none_or(|n| done < n) {
            std::thread::sleep(Duration::from_secs_f64(secs));
            let now = read(&args.pids)?;
            if args.json {
                println!("{}", to_json(&now, Some(&earlier), Some(secs)));
            } else {
                if done > 0 {
                    println!();
                }
                print_tables(&now, Some(&earlier));
            }
            earlier = now;
            done += 1;
        }
        Ok(ExitCode::SUCCESS)
    }
}
