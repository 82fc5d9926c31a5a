//! `Tracer<B>`: counts every call to any backend by kind, so tests can check that maps
//! and unmaps balance and benchmarks can report syscalls per region.

use numaperf_core::NumaError;

use crate::calls::{CallCounts, CallKind};
use crate::hooked::{CallHook, Hooked};

/// Any backend, with its calls counted.
pub type Tracer<B> = Hooked<B, CallCounts>;

impl CallHook for CallCounts {
    fn before(&self, kind: CallKind) -> Result<(), NumaError> {
        self.record(kind);
        Ok(())
    }
}

impl<B> Hooked<B, CallCounts> {
    /// Wraps `inner`, counting from zero.
    pub fn new(inner: B) -> Self {
        Hooked {
            inner,
            hook: CallCounts::default(),
        }
    }

    /// The counts so far.
    pub fn calls(&self) -> &CallCounts {
        &self.hook
    }
}
