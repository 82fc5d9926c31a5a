//! The program's whole operating-system interface: its entry point and two raw Linux
//! system calls (write, exit_group), x86_64 only; plus a fixed line buffer to format into.

use core::arch::{asm, naked_asm};
use core::fmt;

use linux_raw_sys::general::{__NR_exit_group, __NR_write};
use numaperf_core::Errno;

/// Standard output's file descriptor.
const STDOUT: usize = 1;

/// The process entry point. The kernel jumps here with `rsp` at `argc` and no return
/// address; this clears the frame pointer (the outermost frame), aligns the stack to
/// 16 bytes as the SysV ABI wants at a call, and calls [`crate::main`], which never
/// returns (it ends with `exit_group`).
// SAFETY (of the naked attribute): the body is the whole function; it reads no argument,
// only changes rbp and rsp before the call, and `main` is an `extern "C" fn() -> !`, so
// control never comes back here (the `ud2` is never reached).
#[unsafe(naked)]
#[unsafe(no_mangle)]
pub extern "C" fn _start() -> ! {
    naked_asm!(
        "xor ebp, ebp",
        "and rsp, -16",
        "call {main}",
        "ud2",
        main = sym crate::main,
    )
}

/// Writes all of `bytes` to standard output; gives up silently on an error (there is
/// nowhere else to report it).
pub fn write_all(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let ret: isize;
        // SAFETY: write(2) on fd 1 reads `bytes.len()` bytes at `bytes.as_ptr()`, which a
        // live shared slice covers, and writes no memory of ours. `syscall` clobbers only
        // rcx and r11 (declared) and rax (the result); it does not touch the user stack.
        unsafe {
            asm!(
                "syscall",
                inlateout("rax") __NR_write as isize => ret,
                in("rdi") STDOUT,
                in("rsi") bytes.as_ptr(),
                in("rdx") bytes.len(),
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack, readonly),
            );
        }
        match ret {
            n if n > 0 => bytes = &bytes[n as usize..],
            n if n == -(Errno::EINTR.raw() as isize) => {}
            _ => return,
        }
    }
}

/// Ends the process (every thread) with `code`.
pub fn exit(code: i32) -> ! {
    // SAFETY: exit_group(2) takes an integer, reads and writes no memory of ours, and
    // never returns, as `noreturn` declares.
    unsafe {
        asm!(
            "syscall",
            in("rax") __NR_exit_group as usize,
            in("rdi") code as isize,
            options(noreturn, nostack),
        );
    }
}

/// One line of output, formatted on the stack (no allocator); text past its capacity is
/// cut and marked with `...`.
pub struct Line {
    buf: [u8; 320],
    len: usize,
    cut: bool,
}

impl Line {
    /// An empty line.
    pub const fn new() -> Self {
        Line {
            buf: [0; 320],
            len: 0,
            cut: false,
        }
    }

    /// The text so far.
    pub fn as_str(&self) -> &str {
        // Only whole `&str`s are copied in, so this fails only after a cut inside a
        // multi-byte character; then the valid prefix is shown.
        match core::str::from_utf8(&self.buf[..self.len]) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&self.buf[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// Writes the line and a newline to standard output.
    pub fn print(&self) {
        write_all(self.as_str().as_bytes());
        if self.cut {
            write_all(b"...");
        }
        write_all(b"\n");
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        self.cut |= n < s.len();
        Ok(())
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Formats and prints one line: `say!("x = {}", x)`.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut line = $crate::sys::Line::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
        line.print();
    }};
}
