//! SIGPIPE back to its default action, for command-line programs: Rust starts every
//! program with SIGPIPE ignored, so `numaperf stat | head` would see `EPIPE` and its
//! `println!` would panic; with the default action the program ends quietly, as C tools do.

use rustix::io::Errno;

use crate::sys::{check, numbers as nr, syscall6};

/// Sets SIGPIPE's action to the default (end the process) for the whole process. Meant
/// for a program's `main` before it prints; a library must not call it behind its
/// caller's back.
///
/// # Errors
/// The kernel's `rt_sigaction` error (`ENOSYS` where numaperf has no system call layer).
pub fn restore_default_sigpipe() -> Result<(), Errno> {
    // A kernel `struct sigaction` with every field zero: handler SIG_DFL (0), no flags,
    // no restorer, an empty mask. Its layout differs by architecture (a restorer field or
    // not), but all zeros mean the same in each; 32 bytes cover the largest.
    let action = [0u64; 4];
    // SAFETY: `action` is a readable, aligned kernel `struct sigaction` that lives across
    // the call; the old action is not asked for (null); 8 is the kernel's sigset size
    // (64 signals) on every architecture with a system call layer here.
    let ret = unsafe {
        syscall6(
            nr::RT_SIGACTION,
            [
                linux_raw_sys::general::SIGPIPE as usize,
                action.as_ptr() as usize,
                0,
                8,
                0,
                0,
            ],
        )
    };
    check(ret).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigpipe_is_no_longer_ignored() {
        // The test harness ignores SIGPIPE like every Rust program; after the call the
        // kernel's SigIgn mask for this process no longer has it.
        let ignored = |status: &str| -> Option<bool> {
            let line = status.lines().find(|l| l.starts_with("SigIgn:"))?;
            let mask = u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()?;
            Some(mask & (1 << (linux_raw_sys::general::SIGPIPE - 1)) != 0)
        };
        let read = || std::fs::read_to_string("/proc/thread-self/status").unwrap();
        assert_eq!(
            ignored(&read()),
            Some(true),
            "Rust ignores SIGPIPE at start"
        );
        restore_default_sigpipe().unwrap();
        assert_eq!(ignored(&read()), Some(false));
    }
}
