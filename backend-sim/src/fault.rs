//! `FaultInjector<B>`: makes calls to any backend fail on purpose, smoltcp-style: the next
//! N calls of a kind with a chosen errno, or one in K at random from a seed that replays.

use std::sync::Mutex;

use numaperf_core::{Errno, FeatureSet, KernelFeature, NumaError};

use crate::calls::CallKind;
use crate::hooked::{CallHook, Hooked};
use crate::XorShift;

/// The failures to inject.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    next: Vec<(CallKind, usize, Errno)>,
    random: Option<(XorShift, u32, Errno)>,
    injected: u64,
    disabled: FeatureSet,
}

/// Any backend, failing on purpose.
pub type FaultInjector<B> = Hooked<B, Faults>;

impl CallHook for Faults {
    fn before(&self, kind: CallKind) -> Result<(), NumaError> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let mut errno = None;
        if let Some(rule) = st.next.iter_mut().find(|r| r.0 == kind && r.1 > 0) {
            rule.1 -= 1;
            errno = Some(rule.2);
        } else if let Some((rng, one_in, e)) = &mut st.random {
            if kind != CallKind::Unmap && rng.next() % u64::from((*one_in).max(1)) == 0 {
                errno = Some(*e);
            }
        }
        match errno {
            Some(e) => {
                st.injected += 1;
                Err(NumaError::from_errno(kind.syscall(), e))
            }
            None => Ok(()),
        }
    }

    fn disabled_features(&self) -> FeatureSet {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .disabled
    }
}

impl<B> Hooked<B, Faults> {
    /// Wraps `inner`, injecting nothing yet.
    pub fn new(inner: B) -> Self {
        Hooked {
            inner,
            hook: Faults::default(),
        }
    }

    /// The next `n` calls of `kind` fail with `errno` (EPERM, ENOMEM, EINVAL, EIO, ...),
    /// as the typed error `NumaError::from_errno` makes of it. `Unmap` is never failed.
    pub fn fail_next(&self, kind: CallKind, n: usize, errno: Errno) {
        self.hook
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next
            .push((kind, n, errno));
    }

    /// About one call in `one_in` fails with `errno`, chosen by a xorshift from `seed`.
    pub fn fail_randomly(&self, seed: u64, one_in: u32, errno: Errno) {
        self.hook
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .random = Some((XorShift::new(seed), one_in, errno));
    }

    /// Makes the wrapped backend seem to lack a kernel feature, as an older kernel would:
    /// its capabilities leave it out, a region that needs it is `Unsupported` (before the
    /// backend sees the call), and without weighted interleave the kernel's weights read
    /// as absent (so numaperf lays the interleave out itself).
    pub fn disable_feature(&self, feature: KernelFeature) {
        self.hook
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .disabled
            .insert(feature);
    }

    /// How many failures were injected so far.
    pub fn injected(&self) -> u64 {
        self.hook
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .injected
    }
}
