//! `trace::follow_to_exit` on real commands. Its own test binary with one test: the
//! children of the process are part of what is tested.
#![cfg(target_os = "linux")]

use std::collections::BTreeSet;
use std::process::Command;

use numaperf_linux::trace::{follow_to_exit, trace_on_exec, Ending};

/// Runs `sh -c script` traced; returns how it ended and every pid seen exiting, in order.
/// `Ok(None)` (after saying why) when this machine does not let a child be traced.
fn traced(script: &str, pause: std::time::Duration) -> Result<Option<(Ending, Vec<u32>)>, String> {
    let mut cmd = Command::new("sh");
    trace_on_exec(cmd.args(["-c", script]));
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("skipped: a child cannot be traced here: {e}");
            return Ok(None);
        }
    };
    let mut exits = Vec::new();
    let ending = follow_to_exit(child.id(), |pid| {
        exits.push(pid);
        std::thread::sleep(pause);
    })
    .map_err(|e| e.to_string())?;
    Ok(Some((ending, exits)))
}

#[test]
fn only_the_followed_are_reaped_and_early_exits_do_not_stall_the_wait() {
    // Short-lived children race their parent's fork event: the kernel reports the newest
    // tracee first, so a child can stop, exit and be reaped before the event of its
    // parent (a subshell: the command itself, a real child, is always reported first) is
    // waited for. Pausing at each exit lets the others run ahead; repeated to make the
    // race likely.
    let children = 40;
    let list: Vec<String> = (0..children).map(|i| i.to_string()).collect();
    // A literal list: `$(seq ..)` would fork one more process.
    let script = format!(
        "(for i in {}; do /bin/true & done; wait); exit 5",
        list.join(" ")
    );
    //
    // In the first round another child of the caller has ended and is not yet waited
    // for: its status must be left for it (and the followed processes polled).
    let mut other = Command::new("sh").args(["-c", "exit 7"]).spawn().unwrap();
    let other_pid = rustix::process::Pid::from_child(&other);
    let ended = rustix::process::WaitIdOptions::EXITED | rustix::process::WaitIdOptions::NOWAIT;
    rustix::process::waitid(rustix::process::WaitId::Pid(other_pid), ended).unwrap();
    for round in 0..5 {
        let Some((ending, exits)) = traced(&script, std::time::Duration::from_millis(2))
            .unwrap_or_else(|e| panic!("round {round}: {e}"))
        else {
            return drop(other.wait());
        };
        assert_eq!(ending, Ending::Exited(5), "round {round}");
        let distinct: BTreeSet<u32> = exits.iter().copied().collect();
        // The command, its subshell and the children.
        assert_eq!(exits.len(), children + 2, "round {round}: {exits:?}");
        assert_eq!(distinct.len(), exits.len(), "round {round}: {exits:?}");
        if round == 0 {
            let status = other
                .wait()
                .expect("the other child's status was left for it");
            assert_eq!(status.code(), Some(7));
        }
    }
}
