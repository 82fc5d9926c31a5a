//! Following a command with ptrace just far enough to look at its memory before it goes:
//! the child asks to be traced ([`trace_on_exec`]), the parent stops it at each exit
//! ([`follow_to_exit`]) and lets it finish. Nothing else about the command is changed: the
//! signals blocked from the trace request to the `execve` are unblocked at the exec stop,
//! so one sent in between is delivered after the exec.

use std::collections::BTreeSet;

use linux_raw_sys::general::__WALL;
use linux_raw_sys::ptrace as k;
use rustix::io::Errno;
use rustix::process::{kill_process, waitpid, Pid, Signal, WaitOptions};

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

/// The calling thread's blocked signals (bit `n - 1` for signal `n`): what a command it
/// starts inherits.
fn blocked_signals() -> Result<u64, Errno> {
    let mut old = 0u64;
    sigprocmask(linux_raw_sys::general::SIG_BLOCK, None, Some(&mut old))?;
    Ok(old)
}

/// `rt_sigprocmask(how, set, old, 8)`. Async-signal-safe.
fn sigprocmask(how: u32, set: Option<&u64>, old: Option<&mut u64>) -> Result<(), Errno> {
    let set = set.map_or(0, |s| s as *const u64 as usize);
    let old = old.map_or(0, |o| o as *mut u64 as usize);
    // SAFETY: `set` is null or a readable u64, `old` null or a writable one, both live for
    // the call; 8 is the kernel's sigset size (64 signals) on every architecture with a
    // system call layer here.
    check(unsafe { syscall6(nr::RT_SIGPROCMASK, [how as usize, set, old, 8, 0, 0]) }).map(drop)
}

/// Every signal but `SIGTRAP` (`SIGKILL` and `SIGSTOP` cannot be blocked anyway).
const ALL_BUT_SIGTRAP: u64 = !(1 << (SIGTRAP - 1));

/// Makes `cmd`'s child ask its parent to trace it just before its `execve`, which then
/// stops it with `SIGTRAP` for [`follow_to_exit`]. The child first blocks every signal but
/// `SIGTRAP`: a signal arriving before the exec would otherwise stop it for its tracer,
/// which is still waiting for the exec inside `Command::spawn`, and neither would ever go
/// on. [`follow_to_exit`] unblocks them at the exec stop, and what arrived meanwhile is
/// then delivered. `spawn` fails with `EPERM` where the child may not be traced (already
/// traced, or forbidden by seccomp or a container).
pub fn trace_on_exec(cmd: &mut std::process::Command) -> &mut std::process::Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec; it makes two raw system calls
    // (rt_sigprocmask, ptrace) and builds an io::Error from an errno, which allocates
    // nothing: async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| trace_me().map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error())))
    }
}

/// Every signal but `SIGTRAP` blocked, then `ptrace(PTRACE_TRACEME)`. Async-signal-safe.
fn trace_me() -> Result<(), Errno> {
    sigprocmask(
        linux_raw_sys::general::SIG_SETMASK,
        Some(&ALL_BUT_SIGTRAP),
        None,
    )?;
    ptrace(k::PTRACE_TRACEME, 0, 0).map(drop)
}

/// `ptrace(PTRACE_SETSIGMASK)`: `pid`'s blocked signals become `mask` (Linux 3.11).
fn set_signal_mask(pid: i32, mask: u64) -> Result<(), Errno> {
    let args = [
        k::PTRACE_SETSIGMASK as usize,
        pid as usize,
        8,
        core::ptr::addr_of!(mask) as usize,
        0,
        0,
    ];
    // SAFETY: SETSIGMASK reads `addr` (8, the sigset size) bytes at `data`, which points
    // at `mask`, live for the whole call.
    check(unsafe { syscall6(nr::PTRACE, args) }).map(drop)
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

/// Waits for `pid` to change state; returns its raw status.
fn wait_for(pid: Pid) -> Result<i32, NumaError> {
    let opts = WaitOptions::from_bits_retain(__WALL);
    loop {
        match waitpid(Some(pid), opts) {
            Ok(Some((_, status))) => return Ok(status.as_raw()),
            Ok(None) | Err(Errno::INTR) => continue,
            Err(e) => return Err(os("waitpid")(e)),
        }
    }
}

/// The id of a child or tracee with a state change to report, which stays reportable
/// (`waitid(P_ALL, 0, .., WEXITED | WSTOPPED | WNOWAIT | __WALL, NULL)`).
fn peek_any() -> Result<i32, Errno> {
    use linux_raw_sys::general::{siginfo_t, P_ALL, WEXITED, WNOWAIT, WSTOPPED};
    let mut info = core::mem::MaybeUninit::<siginfo_t>::zeroed();
    let options = WEXITED | WSTOPPED | WNOWAIT | __WALL;
    let out = info.as_mut_ptr() as usize;
    let args = [P_ALL as usize, 0, out, options as usize, 0, 0];
    // SAFETY: waitid writes one `siginfo_t` at `out`, which points at `info`, live and
    // writable for the whole call; the rusage pointer is NULL (none written).
    check(unsafe { syscall6(nr::WAITID, args) })?;
    // SAFETY: `info` was zeroed and the kernel wrote a `siginfo_t`; its fields are plain
    // integers (any bit pattern is valid), and a SIGCHLD's carries the `_sigchld` fields.
    Ok(unsafe {
        let info = info.assume_init();
        info.__bindgen_anon_1
            .__bindgen_anon_1
            ._sifields
            ._sigchld
            ._pid
    })
}

/// Whether `pid` is a child of the calling process (its parent in `/proc/PID/stat`).
/// `false` when it is gone.
fn is_own_child(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // `pid (comm) state ppid ...`; the name may hold spaces and parentheses.
    let ppid = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<i32>().ok());
    ppid == Some(rustix::process::getpid().as_raw_nonzero().get())
}

/// Waits for the next state change of a followed process (one in `live`, or one not yet
/// announced by its parent's fork event) and returns its id and raw status. Other
/// children of the caller are left alone: while one has a status to report (which
/// `waitid` keeps returning first), the followed ones are polled.
fn wait_followed(live: &BTreeSet<i32>) -> Result<(i32, i32), NumaError> {
    let poll = WaitOptions::from_bits_retain(__WALL) | WaitOptions::NOHANG;
    loop {
        let pid = match peek_any() {
            Ok(pid) => pid,
            Err(Errno::INTR) => continue,
            Err(e) => return Err(os("waitid")(e)),
        };
        // The tracees the caller did not fork are not its children; the command is both.
        if live.contains(&pid) || (pid > 0 && !is_own_child(pid)) {
            if let Some(p) = Pid::from_raw(pid) {
                return Ok((pid, wait_for(p)?));
            }
        }
        for &traced in live {
            let Some(p) = Pid::from_raw(traced) else {
                continue;
            };
            match waitpid(Some(p), poll) {
                Ok(Some((_, status))) => return Ok((traced, status.as_raw())),
                Ok(None) | Err(Errno::INTR) => {}
                Err(e) => return Err(os("waitpid")(e)),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
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

/// What to do with the followed command's first stop, before its exec has been seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum First {
    /// Its exec's `SIGTRAP`: tracing starts.
    Exec,
    /// A signal that came before the exec (a traced process stops even for ignored
    /// ones): resume it with that signal (0: none) and wait again.
    Deliver(i32),
    /// It ended before its exec.
    Ended(Ending),
}

fn first_stop(status: Status) -> First {
    match status {
        Status::Stopped(SIGTRAP, 0) => First::Exec,
        Status::Stopped(sig, 0) => First::Deliver(sig),
        // No event is asked for before the exec; none is delivered as a signal.
        Status::Stopped(_, _) => First::Deliver(0),
        Status::Exited(code) => First::Ended(Ending::Exited(code)),
        Status::Killed(sig) => First::Ended(Ending::Killed(sig)),
    }
}

/// The processes being followed.
#[derive(Default)]
struct Traced {
    /// Those not yet reaped (a forked one from its first stop or its parent's fork event,
    /// whichever comes first).
    live: BTreeSet<i32>,
    /// Those whose first stop has been seen (a forked one's is a `SIGSTOP`).
    seen: BTreeSet<i32>,
    /// Those reaped before their parent's fork event was: that late event must not make
    /// them live again.
    ended: BTreeSet<i32>,
}

impl Traced {
    /// Kills every followed process and reaps it, so that none is left stopped or a
    /// zombie when following fails. Errors are ignored: this is the way out of one.
    fn kill_all(&mut self) {
        for &pid in &self.live {
            if let Some(p) = Pid::from_raw(pid) {
                let _ = kill_process(p, Signal::KILL);
            }
        }
        for pid in core::mem::take(&mut self.live) {
            let Some(p) = Pid::from_raw(pid) else {
                continue;
            };
            // A killed tracee may still stop once (at its exit event); it is let go on.
            while let Ok(raw) = wait_for(p) {
                match decode(raw) {
                    Status::Stopped(_, _) => {
                        if resume(pid, 0).is_err() {
                            break;
                        }
                    }
                    Status::Exited(_) | Status::Killed(_) => break,
                }
            }
        }
    }
}

/// Follows `child` (started with [`trace_on_exec`] by the calling thread, its tracer; its
/// first stop is its exec's `SIGTRAP`) and every process it and they fork, until all have ended. Each one,
/// about to exit with its memory still mapped, is stopped and `at_exit(pid)` is called;
/// then it goes on. At the exec stop `child`'s blocked signals become the calling
/// thread's, which `child` inherited at its fork. Signals are passed through (one that
/// came before the exec is delivered after it), except that stop signals do not stop a
/// followed process (a ptrace limitation without `PTRACE_SEIZE`). Threads are not followed one by one: they share their process's
/// memory, which is looked at when it exits.
///
/// Only the followed processes are reaped: another child of the caller that ends
/// meanwhile is left for the caller to wait for (while one such waits, the followed ones
/// are polled every millisecond). No other thread of the caller may wait for any child
/// (`waitpid(-1)`) meanwhile: it could take a followed process's status.
///
/// Returns how `child` itself ended (a `child` not started with [`trace_on_exec`] is just
/// waited for, and `at_exit` is not called). On an error every followed process known by
/// then (`child` included) has been killed with `SIGKILL` and reaped; one forked but not
/// yet announced dies when the caller does (`PTRACE_O_EXITKILL`).
///
/// # Errors
/// [`NumaError::Os`] for a failed `waitid`, `waitpid` or `ptrace`.
pub fn follow_to_exit(child: u32, mut at_exit: impl FnMut(u32)) -> Result<Ending, NumaError> {
    let main = child as i32;
    let pid = Pid::from_raw(main).ok_or(os("waitpid")(Errno::INVAL))?;
    let mut traced = Traced {
        live: BTreeSet::from([main]),
        ..Traced::default()
    };
    let out = follow(main, pid, &mut traced, &mut at_exit);
    if out.is_err() {
        traced.kill_all();
    }
    out
}

fn follow(
    main: i32,
    pid: Pid,
    t: &mut Traced,
    at_exit: &mut impl FnMut(u32),
) -> Result<Ending, NumaError> {
    loop {
        let raw = wait_for(pid)?;
        match first_stop(decode(raw)) {
            First::Exec => break,
            First::Ended(ending) => {
                t.live.clear();
                return Ok(ending);
            }
            First::Deliver(sig) => resume(main, sig)?,
        }
    }
    let mask = blocked_signals().map_err(os("rt_sigprocmask"))?;
    set_signal_mask(main, mask).map_err(os("ptrace(SETSIGMASK)"))?;
    ptrace(k::PTRACE_SETOPTIONS, main, OPTIONS as usize).map_err(os("ptrace(SETOPTIONS)"))?;
    resume(main, 0)?;
    t.seen.insert(main);
    let mut ending = None;
    while !t.live.is_empty() {
        let (pid, raw) = wait_followed(&t.live)?;
        let stopped = match decode(raw) {
            Status::Exited(code) => Err(Ending::Exited(code)),
            Status::Killed(sig) => Err(Ending::Killed(sig)),
            Status::Stopped(sig, event) => Ok((sig, event)),
        };
        let (sig, event) = match stopped {
            Err(end) => {
                t.live.remove(&pid);
                t.seen.remove(&pid);
                if pid == main {
                    ending = Some(end);
                } else {
                    t.ended.insert(pid);
                }
                continue;
            }
            Ok(stop) => stop,
        };
        t.live.insert(pid);
        let signal = if t.seen.insert(pid) && sig == SIGSTOP {
            // A process attached at its fork, at its first stop.
            0
        } else if sig == SIGTRAP && event == k::PTRACE_EVENT_EXIT {
            at_exit(pid as u32);
            0
        } else if sig == SIGTRAP && event != 0 {
            if event == k::PTRACE_EVENT_FORK || event == k::PTRACE_EVENT_VFORK {
                // Waited for from now on, even if its first stop comes late; unless it
                // has come and gone already.
                if let Ok(new) = event_message(pid) {
                    let new = new as i32;
                    if !t.ended.remove(&new) {
                        t.live.insert(new);
                    }
                }
            }
            // fork, vfork, exec: nothing to deliver.
            0
        } else {
            sig
        };
        resume(pid, signal)?;
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

    #[test]
    fn a_signal_before_the_exec_is_delivered_and_waited_past() {
        let sigwinch = linux_raw_sys::general::SIGWINCH as i32;
        let sigint = linux_raw_sys::general::SIGINT as i32;
        assert_eq!(first_stop(Status::Stopped(SIGTRAP, 0)), First::Exec);
        assert_eq!(
            first_stop(Status::Stopped(sigwinch, 0)),
            First::Deliver(sigwinch)
        );
        assert_eq!(
            first_stop(Status::Stopped(sigint, 0)),
            First::Deliver(sigint)
        );
        assert_eq!(
            first_stop(Status::Stopped(SIGTRAP, k::PTRACE_EVENT_EXIT)),
            First::Deliver(0)
        );
        assert_eq!(
            first_stop(Status::Killed(sigint)),
            First::Ended(Ending::Killed(sigint))
        );
        assert_eq!(
            first_stop(Status::Exited(4)),
            First::Ended(Ending::Exited(4))
        );
    }

    /// Runs `cmd` with [`trace_on_exec`], then `then` in a second pre-exec hook, and
    /// follows it; its stdout, how it ended, or `None` (after saying why) where tracing
    /// is refused.
    fn run_traced(
        mut cmd: std::process::Command,
        then: fn() -> Result<(), Errno>,
    ) -> Option<(Ending, String)> {
        use std::io::Read;
        use std::os::unix::process::CommandExt;
        cmd.stdout(std::process::Stdio::piped());
        trace_on_exec(&mut cmd);
        // SAFETY: `then` makes raw system calls only, and the hook builds an io::Error
        // from an errno: async-signal-safe.
        unsafe {
            cmd.pre_exec(move || {
                then().map_err(|e| std::io::Error::from_raw_os_error(e.raw_os_error()))
            });
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                eprintln!("skipped: a child cannot be traced here: {e}");
                return None;
            }
        };
        let ending = follow_to_exit(child.id(), |_| {}).unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        Some((ending, out))
    }

    #[test]
    fn a_signal_before_the_exec_is_delivered_after_it_and_the_mask_comes_back() {
        let usr1 = linux_raw_sys::general::SIGUSR1 as i32;
        let usr2 = linux_raw_sys::general::SIGUSR2;
        // On a thread of its own: it blocks SIGUSR2 (the mask the command must get back,
        // not trace_me's), and a spawn that never returns fails the test by the timeout.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let blocked = 1u64 << (usr2 - 1);
            sigprocmask(linux_raw_sys::general::SIG_BLOCK, Some(&blocked), None).unwrap();
            let mut status = std::process::Command::new("cat");
            status.arg("/proc/self/status");
            let shown = run_traced(status, || Ok(()));
            // Sent between trace_me and the exec: it used to stop the child for a tracer
            // that was still inside spawn, waiting for the exec.
            let signalled = run_traced(std::process::Command::new("true"), || {
                kill_process(rustix::process::getpid(), Signal::USR1)
            });
            let _ = tx.send((blocked, shown, signalled));
        });
        let (blocked, shown, signalled) = rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the traced command neither started nor ended in 60 s");
        let Some(((ending, status), (killed, _))) = shown.zip(signalled) else {
            return;
        };
        assert_eq!(ending, Ending::Exited(0));
        let line = status.lines().find(|l| l.starts_with("SigBlk:")).unwrap();
        let mask = u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap();
        assert_eq!(mask, blocked, "the command's blocked signals: {line}");
        assert_eq!(
            killed,
            Ending::Killed(usr1),
            "the signal sent before the exec"
        );
    }
}
