//! The bandwidth kernels: read (sum), write (fill) and copy (one half onto the other) over
//! one thread's slice, repeated for a time budget.

use std::hint::black_box;
use std::time::Duration;

use super::clock::Stopwatch;

/// What a bandwidth figure measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Traffic {
    /// Every word of the slice is loaded and summed; bytes counted: the slice.
    Read,
    /// Every word of the slice is stored (a fill); bytes counted: the slice.
    Write,
    /// The first half of the slice is copied onto the second (memcpy); bytes counted: the
    /// half read plus the half written, as STREAM counts a copy.
    Copy,
}

impl Traffic {
    /// The three, in the order they are measured and printed.
    pub const ALL: [Traffic; 3] = [Traffic::Read, Traffic::Write, Traffic::Copy];

    /// `"read"`, `"write"`, `"copy"` (the keys of the JSON report).
    pub fn name(self) -> &'static str {
        match self {
            Traffic::Read => "read",
            Traffic::Write => "write",
            Traffic::Copy => "copy",
        }
    }
}

/// Runs `traffic` over `slice` pass after pass for at least `budget` (at least one pass);
/// returns the bytes moved and the time taken.
pub(crate) fn stream(traffic: Traffic, slice: &mut [u64], budget: Duration) -> (u64, Duration) {
    let start = Stopwatch::start();
    let mut bytes = 0u64;
    let mut pass = 0u64;
    loop {
        bytes += pass_once(traffic, slice, pass);
        pass += 1;
        let elapsed = start.elapsed();
        if elapsed >= budget {
            return (bytes, elapsed);
        }
    }
}

/// One pass; returns the bytes it moved.
fn pass_once(traffic: Traffic, slice: &mut [u64], pass: u64) -> u64 {
    // `black_box` on the slice before each pass: the compiler may not assume the memory
    // is unchanged (so a read is not hoisted) or unread (so a store is not dropped).
    let slice = black_box(slice);
    match traffic {
        Traffic::Read => {
            let sum = slice.iter().fold(0u64, |a, &x| a.wrapping_add(x));
            black_box(sum);
            (slice.len() * 8) as u64
        }
        Traffic::Write => {
            slice.fill(pass);
            (slice.len() * 8) as u64
        }
        Traffic::Copy => {
            let half = slice.len() / 2;
            let (from, to) = slice.split_at_mut(half);
            to[..half].copy_from_slice(from);
            (half * 2 * 8) as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kernel_does_its_work_and_counts_its_bytes() {
        let mut v: Vec<u64> = (0..1000).collect();
        assert_eq!(pass_once(Traffic::Read, &mut v, 0), 8000);
        assert_eq!(pass_once(Traffic::Copy, &mut v, 0), 8000);
        assert_eq!(&v[500..], &(0..500).collect::<Vec<u64>>()[..]);
        assert_eq!(pass_once(Traffic::Write, &mut v, 9), 8000);
        assert!(v.iter().all(|&x| x == 9));
    }

    #[test]
    fn at_least_one_pass() {
        let mut v = vec![1u64; 64];
        let (bytes, _) = stream(Traffic::Copy, &mut v, Duration::ZERO);
        assert_eq!(bytes, 512);
    }
}
