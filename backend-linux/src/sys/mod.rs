//! The raw system call layer: one file per architecture holds the asm, numbers come
//! from linux-raw-sys, and `check` turns a raw return into `Result<usize, Errno>`.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(all(target_arch = "powerpc64", target_endian = "little"))]
mod powerpc64;
#[cfg(target_arch = "riscv64")]
mod riscv64;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    all(target_arch = "powerpc64", target_endian = "little")
)))]
mod unsupported;
#[cfg(target_arch = "x86_64")]
mod x86_64;

#[cfg(target_arch = "aarch64")]
pub(crate) use aarch64::syscall6;
#[cfg(all(target_arch = "powerpc64", target_endian = "little"))]
pub(crate) use powerpc64::syscall6;
#[cfg(target_arch = "riscv64")]
pub(crate) use riscv64::syscall6;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "riscv64",
    all(target_arch = "powerpc64", target_endian = "little")
)))]
pub(crate) use unsupported::syscall6;
#[cfg(target_arch = "x86_64")]
pub(crate) use x86_64::syscall6;

use linux_raw_sys::general as nr;
use rustix::io::Errno;

/// System call numbers we use, from linux-raw-sys (they differ by architecture).
pub(crate) mod numbers {
    use super::nr;
    pub const MBIND: usize = nr::__NR_mbind as usize;
    pub const SET_MEMPOLICY: usize = nr::__NR_set_mempolicy as usize;
    pub const GET_MEMPOLICY: usize = nr::__NR_get_mempolicy as usize;
    pub const MOVE_PAGES: usize = nr::__NR_move_pages as usize;
    pub const MIGRATE_PAGES: usize = nr::__NR_migrate_pages as usize;
    pub const SET_MEMPOLICY_HOME_NODE: usize = nr::__NR_set_mempolicy_home_node as usize;
    pub const GETCPU: usize = nr::__NR_getcpu as usize;
    pub const SCHED_SETAFFINITY: usize = nr::__NR_sched_setaffinity as usize;
    pub const SCHED_GETAFFINITY: usize = nr::__NR_sched_getaffinity as usize;
    pub const PTRACE: usize = nr::__NR_ptrace as usize;
    pub const RT_SIGACTION: usize = nr::__NR_rt_sigaction as usize;
    pub const RT_SIGPROCMASK: usize = nr::__NR_rt_sigprocmask as usize;
    pub const WAITID: usize = nr::__NR_waitid as usize;
}

/// A raw return value as a result: `-4095..=-1` is `-errno`.
pub(crate) fn check(ret: usize) -> Result<usize, Errno> {
    let signed = ret as isize;
    if (-4095..0).contains(&signed) {
        Err(Errno::from_raw_os_error(-signed as i32))
    } else {
        Ok(ret)
    }
}
