//! Guest cases of the `numaperf` command (issue 15): `/bin/numaperf info --json` against
//! the guest's own sysfs files, and `/bin/numaperf migrate` of a child's pages from one
//! memory node to another, checked by the child with `move_pages`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use numaperf::{
    LinuxBackend, MemPolicy, NodeId, NodeMask, NumaRegion, PlacementBackend, Prefault, TopologyInfo,
};

use super::Verdict;

#[path = "info_check.rs"]
mod info_check;

const NODE_ROOT: &str = "/sys/devices/system/node";
const NUMAPERF: &str = "/bin/numaperf";

/// The command's cases, each with its name.
pub fn cases(b: &LinuxBackend) -> Vec<(&'static str, Verdict)> {
    vec![
        ("cli/info_json_matches_sysfs", info_json_matches_sysfs()),
        ("cli/migrate_child", migrate_child(b)),
    ]
}

/// `numaperf info --json`: node ids, CPUs, MemTotal, memory/CPU-less nodes and the
/// distance matrix equal to what the kernel's files say.
fn info_json_matches_sysfs() -> Verdict {
    let out = match Command::new(NUMAPERF).args(["info", "--json"]).output() {
        Ok(o) => o,
        Err(e) => return Verdict::Fail(format!("{NUMAPERF}: {e}")),
    };
    if !out.status.success() {
        return Verdict::Fail(format!(
            "exit {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    match info_check::json_matches_sysfs(&out.stdout, NODE_ROOT) {
        Ok(d) => Verdict::Pass(d),
        Err(e) => Verdict::Fail(e),
    }
}

/// Pages of a child bound to the first memory node, moved by `numaperf migrate` to the
/// last: every page is then there, as the child itself sees with `move_pages`.
fn migrate_child(b: &LinuxBackend) -> Verdict {
    let t = b.topology();
    let nodes = t.memory_nodes().intersection(t.allowed_nodes());
    let (Some(from), Some(to)) = (nodes.first(), nodes.last()) else {
        return Verdict::Skip("no memory node".into());
    };
    if from == to {
        return Verdict::Skip(format!("one memory node ({nodes})"));
    }
    match migrate(from, to) {
        Ok(d) => Verdict::Pass(d),
        Err(e) => Verdict::Fail(e),
    }
}

fn migrate(from: NodeId, to: NodeId) -> Result<String, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut child = Command::new(exe)
        .args(["hold-pages", &from.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("spawn: {e}"))?;
    let mut lines = BufReader::new(child.stdout.take().ok_or("no stdout")?).lines();
    let ready = lines.next().and_then(Result::ok).unwrap_or_default();
    let result = (|| {
        if !ready.starts_with("READY") {
            return Err(format!("child said {ready:?}"));
        }
        let out = Command::new(NUMAPERF)
            .args([
                "migrate",
                &child.id().to_string(),
                &from.to_string(),
                &to.to_string(),
            ])
            .output()
            .map_err(|e| format!("{NUMAPERF}: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !out.status.success() {
            return Err(format!(
                "migrate exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        writeln!(stdin, "{to}").map_err(|e| format!("child stdin: {e}"))?;
        let placed = lines.next().and_then(Result::ok).unwrap_or_default();
        // "PLACED <on target> <present> <total> <histogram>"
        let f: Vec<&str> = placed.split_whitespace().collect();
        match f.as_slice() {
            ["PLACED", on, present, total, ..] if on == total && present == total => Ok(format!(
                "node {from} -> {to}: {total} of {total} pages moved ({said}); {ready}"
            )),
            _ => Err(format!("after migrate ({said}) the child says {placed:?}")),
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// The child (`payload hold-pages NODE`): 16 MiB bound to NODE and populated; says
/// `READY`, waits for a node id on stdin, and says how many of its pages are there.
pub fn hold_pages(node: &str) -> i32 {
    let Ok(n) = node.parse::<u32>() else {
        println!("bad node {node:?}");
        return 2;
    };
    let policy = MemPolicy::Bind(NodeMask::single(NodeId::new(n)));
    let region = match NumaRegion::anon(16 << 20, policy, Default::default(), Prefault::Populate) {
        Ok(r) => r,
        Err(e) => {
            println!("region: {e}");
            return 1;
        }
    };
    match region.placement() {
        Ok(p) => println!("READY {p}"),
        Err(e) => println!("placement: {e}"),
    }
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return 1;
    }
    let Ok(to) = line.trim().parse::<u32>() else {
        return 2;
    };
    match region.placement() {
        Ok(p) => {
            println!(
                "PLACED {} {} {} {p}",
                p.on(NodeId::new(to)),
                p.present(),
                p.total()
            );
            0
        }
        Err(e) => {
            println!("placement: {e}");
            1
        }
    }
}
