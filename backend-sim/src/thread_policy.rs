//! Simulated thread policies: each OS thread has, per machine, an optional default
//! policy (`set_mempolicy`), which ranges without a policy of their own follow on fault.

use std::cell::RefCell;
use std::collections::HashMap;

use numaperf_core::ThreadPolicy;

thread_local! {
    static POLICIES: RefCell<HashMap<u64, ThreadPolicy>> = RefCell::new(HashMap::new());
}

/// The calling thread's policy on machine `id` (`None`: the default, local allocation).
pub(crate) fn get(id: u64) -> Option<ThreadPolicy> {
    POLICIES.with(|p| p.borrow().get(&id).cloned())
}

/// Sets the calling thread's policy on machine `id` (`None`: back to the default).
pub(crate) fn set(id: u64, policy: Option<ThreadPolicy>) {
    POLICIES.with(|p| {
        let mut p = p.borrow_mut();
        match policy {
            Some(t) => p.insert(id, t),
            None => p.remove(&id),
        };
    });
}
