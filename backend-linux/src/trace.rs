//! Following a command with ptrace just far enough to look at its memory before it goes:
//! the child asks to be traced ([`trace_me`]), the parent stops it at each exit
//! ([`follow_to_exit`]) and lets it finish. Nothing else about the command is changed.

use std::collections::BTreeSet;

use linux_raw_sys::general::__WALL;
use linux_raw_sys::ptrace as k;
use rustix::io::Errno;
use rustix::process::{waitpid, Pid, WaitOptions};

use numaperf_core::NumaError;

use crate::sys::{check, numbers as nr, syscall6};

/// `SIGTRAP` (the signal of every ptrace event stop).
const SIGTRAP: i32 = linux_raw_sys::general::SIGTRAP as i32;
/// `SIGSTOP` (the first stop of a process attached at its fork).
const SIGSTOP: i32 = linux_raw_sys::general::SIGSTOP as i32;

/// How a traced command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// It exited with this status (0..=255).
    Exited(i32),
    /// A signal killed it.
    Killed(i32),
}

/// `ptrace(request, pid, 0, data)` for the requests that take no pointer.
fn ptrace(request: u32, pid: i32, data: usize) -> Result<usize, Errno> {
    let args = [request as usize, pid as usize, 0, data, 0, 0];
    // SAFETY: the requests made through here (TRACEME, SETOPTIONS, CONT) read `data` as
    // an integer (options, a signal number) and ignores `addr`; no memory is passed.
    check(unsafe { syscall6(nr::PTRACE, args) })
}

/// `ptrace(PTRACE_GETEVENTMSG)`: the new process's id at a fork event stop.
fn event_message(pid: i32) -> Result<u64, Errno> {
    let mut msg: core::ffi::c_ulong = 0;
    let out = core::ptr::addr_of_mut!(msg) as usize;
    let args = [k::PTRACE_GETEVENTMSG as usize, pid as usize, 0, out, 0, 0];
    // SAFETY: GETEVENTMSG writes one `unsigned long` at `data`, which points at `msg`,
    // live and writable for the whole call.
    check(unsafe { syscall6(nr::PTRACE, args) })?;
    Ok(msg as u64)
}

/// `ptrace(PTRACE_TRACEME)`: the calling process asks its parent to trace it; its next
/// `execve` stops it with `SIGTRAP`. Async-signal-safe (one system call, no allocation),
/// so it may run between `fork` and `exec` (`CommandExt::pre_exec`).
///
/// # Errors
/// The kernel's errno (`EPERM` when the process is already traced).
pub fn trace_me() -> Result<(), Errno> {
    ptrace(k::PTRACE_TRACEME, 0, 0).map(drop)
}

/// The options of a followed process: stop at exit and at exec, follow forks, and kill
/// everything traced if the tracer dies.
const OPTIONS: u32 = k::PTRACE_O_TRACEEXIT
    | k::PTRACE_O_EXITKILL
    | k::PTRACE_O_TRACEEXEC
    | k::PTRACE_O_TRACEFORK
    | k::PTRACE_O_TRACEVFORK;

fn os(op: &'static str) -> impl Fn(Errno) -> NumaError {
    move |e| NumaError::from_errno(op, numaperf_core::Errno::from_raw(e.raw_os_error()))
}

fn wait_any() -> Result<(i32, i32), NumaError> {
    let opts = WaitOptions::from_bits_retain(__WALL);
    loop {
        match waitpid(None, opts) {
            Ok(Some((pid, status))) => return Ok((pid.as_raw_nonzero().get(), status.as_raw())),
            Ok(None) => continue,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(os("waitpid")(e)),
        }
    }
}

/// Resumes a stopped tracee, delivering `signal` (0: none).
fn resume(pid: i32, signal: i32) -> Result<(), NumaError> {
    match ptrace(k::PTRACE_CONT, pid, signal as usize) {
        // It was killed meanwhile (SIGKILL is not stopped for): its end is waited for.
        Ok(_) | Err(Errno::SRCH) => Ok(()),
        Err(e) => Err(os("ptrace(PTRACE_CONT)")(e)),
    }
}

/// Follows `child` (which called [`trace_me`] and then `exec`; its first stop is that
/// exec's `SIGTRAP`) and every process it and they fork, until all have ended. Each one,
/// about to exit with its memory still mapped, is stopped and `at_exit(pid)` is called;
/// then it goes on. Signals are passed through, except that stop signals do not stop a
/// followed process (a ptrace limitation without `PTRACE_SEIZE`). Threads are not followed
/// one by one: they share their process's memory, which is looked at when it exits.
///
/// Returns how `child` itself ended.
///
/// # Errors
/// [`NumaError::Os`] for a failed `waitpid` or `ptrace`, or when `child` was not
/// stopped at its exec (it did not call [`trace_me`]).
pub fn follow_to_exit(child: u32, mut at_exit: impl FnMut(u32)) -> Result<Ending, NumaError> {
    let main = child as i32;
    let pid = Pid::from_raw(main).ok_or(os("waitpid")(Errno::INVAL))?;
    let first = waitpid(Some(pid), WaitOptions::from_bits_retain(__WALL))
        .map_err(os("waitpid"))?
        .map(|(_, s)| s.as_raw());
    match first.map(decode) {
        Some(Status::Stopped(SIGTRAP, 0)) => {}
        Some(Status::Exited(code)) => return Ok(Ending::Exited(code)),
        Some(Status::Killed(sig)) => return Ok(Ending::Killed(sig)),
        _ => return Err(os("ptrace(PTRACE_TRACEME)")(Errno::INVAL)),
    }
    ptrace(k::PTRACE_SETOPTIONS, main, OPTIONS as usize).map_err(os("ptrace(SETOPTIONS)"))?;
    resume(main, 0)?;
    let mut live: BTreeSet<i32> = BTreeSet::from([main]);
    // The processes whose first stop has been seen (a forked one's is a SIGSTOP).
    let mut seen: BTreeSet<i32> = BTreeSet::from([main]);
    let mut ending = None;
    while !live.is_empty() {
        let (pid, raw) = wait_any()?;
        match decode(raw) {
            Status::Exited(code) => {
                live.remove(&pid);
                seen.remove(&pid);
                if pid == main {
                    ending = Some(Ending::Exited(code));
                }
            }
            Status::Killed(sig) => {
                live.remove(&pid);
                seen.remove(&pid);
                if pid == main {
                    ending = Some(Ending::Killed(sig));
                }
            }
            Status::Stopped(sig, event) => {
                live.insert(pid);
                let signal = if seen.insert(pid) && sig == SIGSTOP {
                    // A process attached at its fork, at its first stop.
                    0
                } else if sig == SIGTRAP && event == k::PTRACE_EVENT_EXIT {
                    at_exit(pid as u32);
                    0
                } else if sig == SIGTRAP && event != 0 {
                    if event == k::PTRACE_EVENT_FORK || event == k::PTRACE_EVENT_VFORK {
                        // Waited for from now on, even if its first stop comes late.
                        if let Ok(new) = event_message(pid) {
                            live.insert(new as i32);
                        }
                    }
                    // fork, vfork, exec: nothing to deliver.
                    0
                } else {
                    sig
                };
                resume(pid, signal)?;
            }
        }
    }
    ending.ok_or(os("waitpid")(Errno::CHILD))
}

/// What a wait status says, for this module's purpose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Exited(i32),
    Killed(i32),
    /// Stopped by a signal, with the ptrace event (0: none) of an event stop.
    Stopped(i32, u32),
}

/// Decodes a raw wait status (`<sys/wait.h>`'s layout, the same on every architecture).
fn decode(raw: i32) -> Status {
    let low = raw & 0x7f;
    if low == 0 {
        Status::Exited((raw >> 8) & 0xff)
    } else if raw & 0xff == 0x7f {
        Status::Stopped((raw >> 8) & 0xff, ((raw >> 16) & 0xff) as u32)
    } else {
        Status::Killed(low)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(decode(3 << 8), Status::Exited(3));
        assert_eq!(decode(9), Status::Killed(9));
        assert_eq!(decode(9 | 0x80), Status::Killed(9)); // with a core dump
        let exit_event = 0x7f | (SIGTRAP << 8) | ((k::PTRACE_EVENT_EXIT as i32) << 16);
        assert_eq!(
            decode(exit_event),
            Status::Stopped(SIGTRAP, k::PTRACE_EVENT_EXIT)
        );
        assert_eq!(decode(0x7f | (SIGSTOP << 8)), Status::Stopped(SIGSTOP, 0));
    }
}
