//! The `numaperf` command on this host, run as a program: `info` (text and `--json`)
//! against sysfs and, when installed, `numactl --hardware` / `--show` figure by figure;
//! `migrate` of a child process; one line and the right exit code for every bad input.
#![cfg(target_os = "linux")]

#[path = "../examples/guest_suite/info_check.rs"]
mod info_check;

use std::collections::BTreeMap;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_numaperf");
const NODE_ROOT: &str = "/sys/devices/system/node";

fn numaperf(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().expect("run numaperf")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).expect("UTF-8")
}

#[test]
fn info_json_agrees_with_sysfs() {
    let out = numaperf(&["info", "--json"]);
    let said = info_check::json_matches_sysfs(stdout(&out).as_bytes(), NODE_ROOT);
    println!("{said:?}");
    said.unwrap();
}

#[test]
fn info_json_sections_keep_nodes_and_add_their_keys() {
    for (section, key) in [
        ("topology", "memory_only_nodes"),
        ("distances", "distances"),
        ("affinity", "affinity"),
        ("capabilities", "capabilities"),
        ("devices", "devices"),
        ("weights", "weights"),
    ] {
        let j: serde_json::Value =
            serde_json::from_str(&stdout(&numaperf(&["info", section, "--json"]))).unwrap();
        let o = j.as_object().unwrap();
        assert!(
            o.contains_key("nodes") && o.contains_key(key),
            "{section}: {j}"
        );
        let others = ["distances", "affinity", "capabilities", "devices"];
        for k in others.iter().filter(|&&k| k != key) {
            assert!(!o.contains_key(*k), "{section} has {k}");
        }
    }
}

/// `node N cpus|size|free` figures and the distance rows of numactl --hardware's layout.
#[derive(Debug, Default)]
struct Hardware {
    available: String,
    cpus: BTreeMap<u32, String>,
    size_mb: BTreeMap<u32, u64>,
    free_mb: BTreeMap<u32, u64>,
    distances: Vec<Vec<u32>>,
}

fn hardware(text: &str) -> Hardware {
    let mut h = Hardware::default();
    let mut in_distances = false;
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.as_slice() {
            ["available:", rest @ ..] => h.available = rest.join(" "),
            ["node", "distances:"] => in_distances = true,
            ["node", n, "cpus:", cpus @ ..] => {
                h.cpus.insert(n.parse().unwrap(), cpus.join(" "));
            }
            ["node", n, "size:", mb, "MB"] => {
                h.size_mb.insert(n.parse().unwrap(), mb.parse().unwrap());
            }
            ["node", n, "free:", mb, "MB"] => {
                h.free_mb.insert(n.parse().unwrap(), mb.parse().unwrap());
            }
            [row, ds @ ..] if in_distances && row.ends_with(':') => {
                h.distances
                    .push(ds.iter().map(|d| d.parse().unwrap()).collect());
            }
            ["node", ..] if in_distances => {}
            _ => in_distances = false,
        }
    }
    h
}

fn numactl(arg: &str) -> Option<String> {
    match Command::new("numactl").arg(arg).output() {
        Ok(o) if o.status.success() => Some(String::from_utf8(o.stdout).unwrap()),
        Ok(o) => {
            println!(
                "SKIPPED: numactl {arg} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            println!(
                "SKIPPED: numactl is not installed ({e}); `apt-get install numactl` to compare"
            );
            None
        }
    }
}

#[test]
fn info_text_agrees_with_sysfs() {
    let h = hardware(&stdout(&numaperf(&["info", "topology"])));
    let online = std::fs::read_to_string(format!("{NODE_ROOT}/online")).unwrap();
    assert!(
        h.available.ends_with(&format!("({})", online.trim())),
        "{h:?}"
    );
    assert!(!h.cpus.is_empty());
    for (n, cpus) in &h.cpus {
        let list = std::fs::read_to_string(format!("{NODE_ROOT}/node{n}/cpulist")).unwrap();
        let set: numaperf::CpuSet = numaperf::numa_core::parse::parse_list(&list).unwrap();
        let want: Vec<String> = set.iter().map(|c| c.to_string()).collect();
        assert_eq!(cpus, &want.join(" "), "node {n}");
        let meminfo = std::fs::read_to_string(format!("{NODE_ROOT}/node{n}/meminfo")).unwrap();
        let total = numaperf::numa_core::parse::parse_meminfo_kb(&meminfo, "MemTotal:").unwrap();
        assert_eq!(h.size_mb[n], total >> 20, "node {n}");
        assert!(h.free_mb[n] <= h.size_mb[n], "node {n}");
    }
}

#[test]
fn info_agrees_with_numactl_hardware() {
    let Some(theirs) = numactl("--hardware") else {
        return;
    };
    let t = hardware(&theirs);
    let ours =
        stdout(&numaperf(&["info", "topology"])) + &stdout(&numaperf(&["info", "distances"]));
    let o = hardware(&ours);
    assert_eq!(o.available, t.available);
    assert_eq!(o.cpus, t.cpus);
    assert_eq!(o.size_mb, t.size_mb);
    assert_eq!(o.distances, t.distances);
    assert!(!t.distances.is_empty(), "{theirs}");
    // Free memory moves between the two reads: within 1 % of the node or 64 MB.
    for (n, free) in &t.free_mb {
        let slack = (t.size_mb[n] / 100).max(64);
        assert!(
            o.free_mb[n].abs_diff(*free) <= slack,
            "node {n}: {} vs {free}",
            o.free_mb[n]
        );
    }
    println!("numactl --hardware and numaperf info agree: {t:?}");
}

#[test]
fn info_agrees_with_numactl_show() {
    let Some(theirs) = numactl("--show") else {
        return;
    };
    let ours = stdout(&numaperf(&["info", "affinity"]));
    let fields = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    };
    let (t, o) = (fields(&theirs), fields(&ours));
    let mut compared = 0;
    for key in [
        "policy",
        "preferred node",
        "physcpubind",
        "cpubind",
        "nodebind",
        "membind",
    ] {
        if let Some(v) = t.get(key) {
            assert_eq!(
                o.get(key),
                Some(v),
                "{key}: numactl {theirs}\nnumaperf {ours}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 5, "numactl --show said {theirs}");
}

/// A child that sleeps; killed on drop.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sleeper() -> Child {
    Child(
        Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn sleep"),
    )
}

/// The one node every process here may use (or the first of several).
fn first_allowed_node() -> String {
    let j: serde_json::Value =
        serde_json::from_str(&stdout(&numaperf(&["info", "affinity", "--json"]))).unwrap();
    j["affinity"]["allowed_nodes"][0].to_string()
}

#[test]
fn migrate_a_child_process() {
    let child = sleeper();
    let node = first_allowed_node();
    let out = numaperf(&["migrate", &child.0.id().to_string(), &node, &node]);
    let text = stdout(&out);
    let n: u64 = text
        .trim()
        .strip_prefix("pages not moved: ")
        .unwrap_or_else(|| panic!("{text:?}"))
        .parse()
        .unwrap();
    println!("migrate {node} -> {node}: {n} pages not moved");
}

/// Exit code and the one line on stderr; nothing on stdout, never a panic.
fn fails_in_one_line(args: &[&str], code: i32) -> String {
    let o = numaperf(args);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
    assert!(o.stdout.is_empty(), "{args:?}: stdout {:?}", o.stdout);
    assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
    assert!(
        err.starts_with("numaperf: ") && !err.contains("panicked"),
        "{err}"
    );
    err
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["--bogus"][..],
        &[],
        &["frobnicate"],
        &["info", "bogus"],
        &["info", "--bogus"],
        &["migrate"],
        &["migrate", "1"],
        &["migrate", "x", "0", "0"],
        &["migrate", "-5", "0", "0"],
        &["migrate", "1", "0,", "0"],
        &["migrate", "1", "0", "1023"],
        &["migrate", "1", "", "0"],
        &["migrate", "1", "0", "+1"],
        &["migrate", "1", "0", "4294967296"],
    ] {
        let line = fails_in_one_line(args, 2);
        println!("{args:?}: {}", line.trim_end());
    }
}

#[test]
fn absent_process_is_one_line_and_exit_1() {
    // A PID that existed and is gone (reused within a moment only on a very busy host).
    let mut c = sleeper();
    let pid = c.0.id().to_string();
    c.0.kill().unwrap();
    c.0.wait().unwrap();
    let line = fails_in_one_line(&["migrate", &pid, "0", "0"], 1);
    assert!(line.contains("no process"), "{line}");
}

#[test]
fn migrate_without_the_privilege_is_one_line_and_exit_1() {
    // As nobody, another user's process (PID 1) is off limits.
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
        .args(["migrate", "1", "0", "0"])
        .output();
    let o = match o {
        Ok(o) if o.status.code() != Some(127) && !o.stderr.starts_with(b"setpriv") => o,
        other => {
            println!("SKIPPED: setpriv cannot drop to nobody here ({other:?})");
            return;
        }
    };
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err:?}");
    assert!(
        err.contains("not permitted") && err.contains("CAP_SYS_NICE"),
        "{err}"
    );
}

/// Output into a pipe nobody reads (`numaperf info | head -0`): the command ends by
/// SIGPIPE, or succeeds when it wrote before the reader went away, and never panics.
#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    use std::os::unix::process::ExitStatusExt;
    for _ in 0..3 {
        let mut child = Command::new(BIN)
            .args(["info"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("numaperf runs");
        drop(child.stdout.take()); // the reader goes away before the command prints
        let out = child.wait_with_output().expect("numaperf ends");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "a panic on EPIPE: {err}");
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{:?}: {err}",
            out.status
        );
    }
}
