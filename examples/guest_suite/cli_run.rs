//! Guest cases of `numaperf run` and `numaperf stat` (issue 15): the command, run as
//! `/bin/numaperf` (the payload, dispatched by its name), places `placement-probe`'s pages
//! as asked, `--verify` accepts a bound run and rejects one whose pages strayed, and
//! `stat` sees a probe's known placement. Only as the guests' `/payload` (it links
//! `/bin/numaperf` and `/bin/placement-probe` to itself when they are missing).

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};

use numaperf::{LinuxBackend, NodeId, NodeMask, PlacementBackend, TopologyInfo};

use super::Verdict;

/// MiB each probe allocates.
const PROBE_MIB: u64 = 16;

fn link_tools() -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    for name in ["/bin/numaperf", "/bin/placement-probe"] {
        if std::fs::symlink_metadata(name).is_err() {
            std::os::unix::fs::symlink(&me, name).map_err(|e| format!("{name}: {e}"))?;
        }
    }
    Ok(())
}

fn numaperf(args: &[&str]) -> Output {
    Command::new("/bin/numaperf")
        .args(args)
        .env("PATH", "/bin")
        .output()
        .unwrap_or_else(|e| panic!("/bin/numaperf: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().replace('\n', " | ")
}

/// `run FLAGS -- placement-probe MIB EXPECT EXTRA`: exit code, stdout, stderr.
fn probe_run(flags: &[&str], expect: &str, extra: &[&str]) -> (Option<i32>, String, String) {
    let mib = PROBE_MIB.to_string();
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--", "placement-probe", &mib, expect]);
    args.extend_from_slice(extra);
    let out = numaperf(&args);
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The cases, by name.
pub fn cases(b: &LinuxBackend) -> Vec<(String, Verdict)> {
    let mut out = Vec::new();
    let on_guest = std::env::current_exe().is_ok_and(|p| p == std::path::Path::new("/payload"));
    if !on_guest {
        out.push((
            "cli/run".into(),
            Verdict::Skip("not the guests' /payload".into()),
        ));
        return out;
    }
    if let Err(e) = link_tools() {
        out.push(("cli/run".into(), Verdict::Fail(e)));
        return out;
    }
    let topo = b.topology();
    let mem: NodeMask = topo.memory_nodes().intersection(topo.allowed_nodes());
    let (Some(first), Some(last)) = (mem.first(), mem.last()) else {
        out.push(("cli/run".into(), Verdict::Fail("no memory node".into())));
        return out;
    };
    if first == last {
        out.push(("cli/run".into(), Verdict::Skip("one memory node".into())));
        return out;
    }
    let (n, all) = (last.to_string(), mem.to_string());
    let f = first.to_string();

    // --membind LAST: every page on LAST (the probe checks with move_pages).
    let (code, so, se) = probe_run(&["--membind", &n], &n, &[]);
    out.push((
        format!("cli/run_membind_{n}"),
        verdict(code == Some(0) && so.contains("match=yes"), &so, &se),
    ));

    // --interleave all memory nodes: within one page per node.
    let (code, so, se) = probe_run(&["--interleave", &all], &all, &["--even"]);
    out.push((
        "cli/run_interleave_all".into(),
        verdict(code == Some(0) && so.contains("match=yes"), &so, &se),
    ));

    // --verify accepts the bound run and names the node.
    let (code, so, se) = probe_run(&["--verify", "--membind", &n], &n, &[]);
    let ok = code == Some(0) && se.contains("verify: passed") && se.contains(&format!("N{n}="));
    out.push(("cli/verify_accepts_bound".into(), verdict(ok, &so, &se)));

    // ... and rejects a run whose probe moved one page in eight to FIRST.
    let (code, so, se) = probe_run(&["--verify", "--membind", &n], &n, &["--stray", &f]);
    let ok = code == Some(1)
        && se.contains("verify failed")
        && se.contains(&format!("on nodes {f}, outside {n}"));
    out.push(("cli/verify_rejects_stray".into(), verdict(ok, &so, &se)));

    out.push(("cli/stat_known_placement".into(), stat_case(last)));
    out.push((
        "cli/run_weighted_interleave".into(),
        weighted_case(b, &all, last),
    ));
    out
}

/// `--weighted-interleave` over every memory node with the kernel's own weights places
/// every page on them; asking other weights is refused (exit 2, naming the kernel's)
/// and the kernel's table is left as it was.
fn weighted_case(b: &LinuxBackend, all: &str, last: NodeId) -> Verdict {
    let table = match b.kernel_weights() {
        Ok(Some(k)) => k,
        Ok(None) => return Verdict::Skip("no weighted interleave on this kernel".into()),
        Err(e) => return Verdict::Fail(e.to_string()),
    };
    let (code, so, se) = probe_run(&["--weighted-interleave", all], all, &[]);
    if code != Some(0) || !so.contains("match=yes") {
        return verdict(false, &so, &se);
    }
    let other = table.weights.weight(last).max(1) % 250 + 1;
    let spec = format!("{all},{last}:{other}");
    let out = numaperf(&["run", "--weighted-interleave", &spec, "--", "true"]);
    let refused = text(&out.stderr);
    let after = b.kernel_weights().ok().flatten();
    let ok = out.status.code() == Some(2)
        && refused.contains("kernel's weights are")
        && after == Some(table);
    verdict(ok, &so, &refused)
}

fn verdict(ok: bool, stdout: &str, stderr: &str) -> Verdict {
    let d = format!("{stdout} || {stderr}");
    if ok {
        Verdict::Pass(d)
    } else {
        Verdict::Fail(d)
    }
}

/// A probe held under `--membind node`; `stat --json PID` must show its anonymous
/// memory on `node` and none elsewhere.
fn stat_case(node: NodeId) -> Verdict {
    let n = node.to_string();
    let child = Command::new("/bin/numaperf")
        .args(["run", "--membind", &n, "--", "placement-probe"])
        .args([&PROBE_MIB.to_string(), &n, "--hold"])
        .env("PATH", "/bin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Verdict::Fail(e.to_string()),
    };
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.trim() == "ready"));
    let pid = child.id().to_string();
    let out = numaperf(&["stat", "--json", &pid]);
    drop(child.stdin.take());
    let _ = child.wait();
    if !ready || !out.status.success() {
        return Verdict::Fail(format!("ready {ready}: {}", text(&out.stderr)));
    }
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => return Verdict::Fail(format!("not JSON: {e}")),
    };
    let mut on = 0i64;
    let mut off = 0i64;
    for e in v["processes"][0]["nodes"].as_array().into_iter().flatten() {
        let anon: i64 = ["anon_bytes", "heap_bytes", "stack_bytes"]
            .iter()
            .map(|k| e[*k].as_i64().unwrap_or(0))
            .sum();
        if e["node"].as_u64() == Some(u64::from(node.get())) {
            on += anon;
        } else {
            off += anon;
        }
    }
    let d = format!("anonymous bytes on node {n}: {on}, elsewhere: {off}");
    if on >= (PROBE_MIB << 20) as i64 && off == 0 {
        Verdict::Pass(d)
    } else {
        Verdict::Fail(d)
    }
}
