//! The benchmark's stopwatch: the calling thread's CPU time on Linux
//! (`CLOCK_THREAD_CPUTIME_ID`), so time the thread spends descheduled on a busy machine
//! does not count as time its loads took; wall-clock time elsewhere.

use std::time::Duration;

/// A started stopwatch; read it on the thread that started it.
pub(crate) struct Stopwatch {
    #[cfg(target_os = "linux")]
    start: Duration,
    #[cfg(not(target_os = "linux"))]
    start: std::time::Instant,
}

impl Stopwatch {
    /// Starts now.
    pub(crate) fn start() -> Self {
        #[cfg(target_os = "linux")]
        {
            Stopwatch {
                start: thread_cpu_time(),
            }
        }
        #[cfg(not(target_os = "linux"))]
        {
            Stopwatch {
                start: std::time::Instant::now(),
            }
        }
    }

    /// Time since the start (this thread's CPU time on Linux).
    pub(crate) fn elapsed(&self) -> Duration {
        #[cfg(target_os = "linux")]
        {
            thread_cpu_time().saturating_sub(self.start)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.start.elapsed()
        }
    }
}

#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_work_not_sleep() {
        let w = Stopwatch::start();
        std::thread::sleep(Duration::from_millis(30));
        let slept = w.elapsed();
        let mut x = 0u64;
        while w.elapsed() < slept + Duration::from_millis(5) {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        assert!(w.elapsed() >= Duration::from_millis(5));
        if cfg!(target_os = "linux") {
            assert!(
                slept < Duration::from_millis(20),
                "sleep counted: {slept:?}"
            );
        }
    }
}
