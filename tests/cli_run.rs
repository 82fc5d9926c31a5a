//! `numaperf run` and `numaperf stat` on this host, through the built binary: the child's
//! policy and CPUs as the kernel reports them, --verify's report, exit codes, and stat's
//! figures for a child with known placement.
#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_numaperf");
/// The helper below allocates this much and waits.
const HELPER_MIB: u64 = 32;

fn numaperf(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The first allowed memory node, or `None` (with the reason printed) when there is none.
fn first_node() -> Option<String> {
    let has = std::fs::read_to_string("/sys/devices/system/node/has_memory").ok()?;
    let first = has.trim().split([',', '-']).next()?.to_string();
    if first.is_empty() {
        eprintln!("skipped: no memory node listed");
        return None;
    }
    Some(first)
}

/// The policy column of the child's first `numa_maps` line (its task policy).
fn child_policy(flags: &[&str]) -> String {
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "head", "-1", "/proc/self/numa_maps"]);
    let out = numaperf(&args);
    assert!(out.status.success(), "{flags:?}: {}", text(&out.stderr));
    let line = text(&out.stdout);
    let policy = line.split(' ').nth(1).unwrap_or("").to_string();
    // Two-word policies (`prefer (many)`, `weighted interleave`) keep their second word.
    match policy.as_str() {
        "prefer" | "weighted" => line
            .split(' ')
            .skip(1)
            .take(2)
            .collect::<Vec<_>>()
            .join(" "),
        _ => policy,
    }
}

#[test]
fn each_policy_reaches_the_child() {
    let Some(n) = first_node() else { return };
    let cases = [
        (vec!["--membind", &n], format!("bind:{n}")),
        (
            vec!["--membind", &n, "--balancing"],
            format!("bind=balancing:{n}"),
        ),
        (vec!["--preferred", &n], format!("prefer:{n}")),
        (vec!["--preferred-many", &n], format!("prefer (many):{n}")),
        (vec!["--interleave", &n], format!("interleave:{n}")),
        (vec!["--localalloc"], "local".to_string()),
    ];
    for (flags, want) in &cases {
        assert_eq!(&child_policy(flags), want, "{flags:?}");
    }
    // Without a memory flag the child keeps numaperf's (the default).
    assert_eq!(child_policy(&[]), "default");
}

#[test]
fn weighted_interleave_uses_the_kernel_table_and_never_writes_it() {
    let Some(n) = first_node() else { return };
    let file = format!("/sys/kernel/mm/mempolicy/weighted_interleave/node{n}");
    let Ok(before) = std::fs::read_to_string(&file) else {
        eprintln!("skipped: {file} is missing (no weighted interleave on this kernel)");
        return;
    };
    let kernel: u8 = before.trim().parse().unwrap();
    assert_eq!(
        child_policy(&["--weighted-interleave", &n]),
        format!("weighted interleave:{n}")
    );
    let same = format!("{n}:{kernel}");
    assert_eq!(
        child_policy(&["--weighted-interleave", &same]),
        format!("weighted interleave:{n}")
    );
    let other = format!("{n}:{}", if kernel == 7 { 3 } else { 7 });
    let out = numaperf(&["run", "--weighted-interleave", &other, "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("kernel's weights are {n}:{kernel}")),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn cpu_flags_bind_the_child() {
    let Some(n) = first_node() else { return };
    let node_cpus =
        std::fs::read_to_string(format!("/sys/devices/system/node/node{n}/cpulist")).unwrap();
    let allowed = |flags: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "grep", "Cpus_allowed_list", "/proc/self/status"]);
        let out = numaperf(&args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    if node_cpus.trim().is_empty() {
        eprintln!("skipped: node {n} has no CPUs");
        return;
    }
    assert_eq!(allowed(&["--cpunodebind", &n]), node_cpus.trim());
    let first_cpu = node_cpus
        .trim()
        .split([',', '-'])
        .next()
        .unwrap()
        .to_string();
    assert_eq!(allowed(&["--physcpubind", &first_cpu]), first_cpu);
}

#[test]
fn verify_passes_a_bound_command_and_names_its_node() {
    let Some(n) = first_node() else { return };
    let out = numaperf(&[
        "run",
        "--membind",
        &n,
        "--verify",
        "--",
        "sh",
        "-c",
        "exit 0",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(&format!("against nodes {n}")), "{err}");
    assert!(err.contains(&format!("N{n}=")), "{err}");
    assert!(err.contains("verify: passed"), "{err}");
    // Forks are followed: a shell running two commands reports three processes.
    let out = numaperf(&[
        "run",
        "--membind",
        &n,
        "--verify",
        "--",
        "sh",
        "-c",
        "true & wait; /bin/true",
    ]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches(": process ").count(), 3, "{err}");
}

#[test]
fn the_child_exit_status_passes_through() {
    let Some(n) = first_node() else { return };
    for verify in [false, true] {
        let mut args = vec!["run", "--membind", &n];
        if verify {
            args.push("--verify");
        }
        let mut exit7 = args.clone();
        exit7.extend_from_slice(&["--", "sh", "-c", "exit 7"]);
        assert_eq!(numaperf(&exit7).status.code(), Some(7), "verify {verify}");
        let mut killed = args.clone();
        killed.extend_from_slice(&["--", "sh", "-c", "kill -9 $$"]);
        let st = numaperf(&killed).status;
        if verify {
            assert_eq!(st.code(), Some(128 + 9));
        } else {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(st.signal(), Some(9));
        }
    }
}

/// Exit `code` and exactly one line on stderr.
fn fails_with_one_line(args: &[&str], code: i32) -> String {
    let out = numaperf(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    err
}

#[test]
fn bad_runs_fail_clearly() {
    let online = std::fs::read_to_string("/sys/devices/system/node/online").unwrap();
    let last: u32 = online
        .trim()
        .rsplit([',', '-'])
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let absent = (last + 1).to_string();
    let err = fails_with_one_line(&["run", "--membind", &absent, "--", "true"], 2);
    assert!(err.contains(&absent), "{err}");
    fails_with_one_line(&["run", "--interleave", "!all", "--", "true"], 2);
    fails_with_one_line(&["run", "--membind", "0-", "--", "true"], 2);
    fails_with_one_line(&["run", "--balancing", "--", "true"], 2);
    let err = fails_with_one_line(&["run", "--", "numaperf-no-such-command"], 127);
    assert!(err.contains("not found"), "{err}");
    fails_with_one_line(&["run", "--verify", "--", "numaperf-no-such-command"], 127);
    let dir = std::env::temp_dir().join(format!("numaperf-cli-run-{}", std::process::id()));
    std::fs::write(&dir, "#!/bin/sh\n").unwrap(); // not executable (mode 0644)
    fails_with_one_line(&["run", "--", dir.to_str().unwrap()], 126);
    let _ = std::fs::remove_file(&dir);
}

/// Not a test: the child `stat_shows_a_child_with_known_placement` starts. Allocates and
/// touches HELPER_MIB MiB, says `ready`, and waits for its stdin to close.
#[test]
#[ignore = "a helper process for the stat test, started by it"]
fn helper_touch_and_wait() {
    let mut block = vec![0u8; (HELPER_MIB << 20) as usize];
    for i in (0..block.len()).step_by(4096) {
        block[i] = 1;
    }
    println!("ready");
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_line(&mut String::new());
    assert_eq!(
        block.iter().step_by(4096).filter(|&&b| b == 1).count() as u64,
        HELPER_MIB << 8
    );
}

/// A child killed and waited for when the test ends, passed or not.
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stat_shows_a_child_with_known_placement() {
    let Some(n) = first_node() else { return };
    let child = Command::new(BIN)
        .args(["run", "--membind", &n, "--"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_touch_and_wait",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaped(child);
    let child = &mut child.0;
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().trim_end().ends_with("ready")));
    let pid = child.id().to_string();
    let out = numaperf(&["stat", "--json", &pid]);
    let text_out = numaperf(&["stat", &pid]);
    drop(child.stdin.take());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs[0]["pid"].as_u64(), Some(child.id() as u64));
    let nodes = procs[0]["nodes"].as_array().unwrap();
    let node: u64 = n.parse().unwrap();
    let mut on_node = 0;
    for e in nodes {
        let anon = e["anon_bytes"].as_i64().unwrap() + e["heap_bytes"].as_i64().unwrap();
        if e["node"].as_u64() == Some(node) {
            on_node = anon;
        } else {
            assert_eq!(anon, 0, "anonymous pages off node {n}: {e}");
        }
    }
    assert!(
        on_node as u64 >= HELPER_MIB << 20,
        "{on_node} bytes on node {n}"
    );
    // The system's counters, every field of every memory node.
    let sys = v["system"].as_array().unwrap();
    assert!(sys.iter().any(|e| e["node"].as_u64() == Some(node)));
    assert!(sys
        .iter()
        .all(|e| e["numa_hit"].is_u64() && e["other_node"].is_u64()));
    let table = text(&text_out.stdout);
    assert!(
        table.contains(&format!("pid {pid}")) && table.contains("numa_hit"),
        "{table}"
    );
}

#[test]
fn stat_errors_and_watch() {
    let err = fails_with_one_line(&["stat", "4194304"], 1);
    assert!(err.contains("no process 4194304"), "{err}");
    assert_eq!(numaperf(&["stat", "notapid"]).status.code(), Some(2));
    let me = std::process::id().to_string();
    let out = numaperf(&["stat", "--json", "--watch", "0.1", "--count", "2", &me]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["interval_seconds"].as_f64(), Some(0.1));
        assert!(v["processes"][0]["nodes"].is_array());
    }
}
