//! `numaperf bench`, the built binary: its tables and its JSON have one row per node with
//! CPUs and one column per node with memory of this host (read through the library, not
//! typed here), every figure positive; bad input is one line on stderr and exit 2.

use std::process::{Command, Output};

use numaperf::Topology;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_numaperf"))
        .arg("bench")
        .args(args)
        .output()
        .expect("the numaperf binary runs")
}

/// (nodes with CPUs, nodes with memory) this process may use, by id.
fn shape() -> (Vec<u32>, Vec<u32>) {
    let t = Topology::discover().unwrap();
    let cpus = t
        .numa_nodes()
        .iter()
        .filter(|n| !n.cpus().intersection(&t.allowed_cpus()).is_empty())
        .map(|n| n.id().get())
        .collect();
    let mems = t
        .memory_nodes()
        .intersection(&t.allowed_nodes())
        .iter()
        .map(|n| n.get())
        .collect();
    (cpus, mems)
}

/// What stderr may hold on success when piped: no progress bar, at most the debug-build
/// warning.
fn assert_quiet_stderr(out: &Output) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\r') && !err.contains('\x1b'),
        "a progress bar: {err:?}"
    );
    for line in err.lines() {
        assert!(
            cfg!(debug_assertions) && line.contains("debug build"),
            "unexpected stderr: {err}"
        );
    }
}

#[test]
fn text_tables_have_a_row_per_cpu_node_and_a_column_per_memory_node() {
    let out = bench(&["--quick", "--size", "4M"]);
    assert!(out.status.success(), "{out:?}");
    assert_quiet_stderr(&out);
    let text = String::from_utf8(out.stdout).unwrap();
    let (cpus, mems) = shape();
    let lines: Vec<&str> = text.lines().collect();
    let titles = [
        "Idle latency",
        "Read bandwidth",
        "Write bandwidth",
        "Copy bandwidth",
    ];
    for title in titles {
        let at = lines
            .iter()
            .position(|l| l.starts_with(title))
            .unwrap_or_else(|| panic!("no {title} table in:\n{text}"));
        let header: Vec<u32> = lines[at + 2]
            .split_whitespace()
            .skip(2) // "CPU node"
            .map(|w| w.parse().unwrap())
            .collect();
        assert_eq!(header, mems, "{title}: columns");
        for (i, node) in cpus.iter().enumerate() {
            let cells: Vec<f64> = lines[at + 3 + i]
                .split_whitespace()
                .map(|w| w.parse().unwrap())
                .collect();
            assert_eq!(cells[0], f64::from(*node), "{title}: row {i}");
            assert_eq!(cells.len(), 1 + mems.len(), "{title}: row {i}");
            assert!(cells[1..].iter().all(|&x| x > 0.0), "{title}: {cells:?}");
        }
    }
    for m in &mems {
        let line = format!("  node {m}: ");
        let placed = lines.iter().find(|l| l.starts_with(&line)).unwrap();
        assert!(!placed.contains("NOT VERIFIED"), "{placed}");
    }
}

#[test]
fn json_has_the_full_matrix_and_its_checks() {
    let out = bench(&["--json", "--quick", "--size", "2M", "--threads", "1"]);
    assert!(out.status.success(), "{out:?}");
    assert_quiet_stderr(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let (cpus, mems) = shape();
    let ids = |k: &str| -> Vec<u32> {
        v[k].as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as u32)
            .collect()
    };
    assert_eq!(ids("cpu_nodes"), cpus);
    assert_eq!(ids("memory_nodes"), mems);
    let full = |m: &serde_json::Value| {
        let rows = m.as_array().unwrap();
        rows.len() == cpus.len()
            && rows.iter().all(|r| {
                let r = r.as_array().unwrap();
                r.len() == mems.len() && r.iter().all(|x| x.as_f64().unwrap() > 0.0)
            })
    };
    assert!(full(&v["latency_ns"]), "{}", v["latency_ns"]);
    for k in ["read", "write", "copy"] {
        assert!(
            full(&v["bandwidth_mb_s"][k]),
            "{k}: {}",
            v["bandwidth_mb_s"]
        );
    }
    assert_eq!(v["size_bytes"], 2 << 20);
    assert!(v["threads"].as_array().unwrap().iter().all(|t| t == 1));
    assert_eq!(v["cpus_verified"], true);
    assert_eq!(v["optimized"], !cfg!(debug_assertions));
    let placement = v["placement"].as_array().unwrap();
    assert_eq!(placement.len(), mems.len());
    for (p, m) in placement.iter().zip(&mems) {
        assert_eq!(p["node"], *m);
        assert_eq!(p["verified"], true, "{p}");
        assert_eq!(p["pages"], p["pages_on_node"], "{p}");
        assert_eq!(p["enforcement"], "hard", "{p}");
    }
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for args in [
        &["--size", "0"][..],
        &["--size", "4095"],
        &["--size", "lots"],
        &["--size", "-1"],
        &["--size", "99999999999999999999"],
        &["--threads", "0"],
        &["--threads", "-2"],
        &["--threads", "two"],
        &["--size", "4096", "--threads", "64"],
        &["--frobnicate"],
        &["extra"],
    ] {
        let out = bench(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err:?}");
        assert!(
            err.starts_with("error: ") || err.starts_with("numaperf: "),
            "{err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}
