//! The behaviour suite's cases that apply to the one-node portable backend (the one macOS
//! and Windows users get): those about errors, capacity and cleanup. Cases that look where
//! pages went cannot run there (the backend observes no placement and says `unknown`); each
//! is listed as ignored with that reason, so the report shows what was not checked.

mod behaviour;

use std::sync::Arc;

use behaviour::{Case, CaseResult, Outcome};
use numaperf::PortableBackend;

/// The cases that need no page-placement query.
const APPLY: [&str; 2] = ["bad_input", "over_capacity_bind"];

fn run(case: &Case<PortableBackend>, b: &PortableBackend) -> CaseResult {
    if APPLY.contains(&case.name) {
        (case.run)(b)
    } else {
        Ok(Outcome::Skip(
            "the portable backend cannot observe where pages are (placement is `unknown`)".into(),
        ))
    }
}

fn main() {
    let args = behaviour::trials::arguments();
    let b = Arc::new(PortableBackend::shared().expect("the portable backend"));
    let trials = behaviour::trials::trials("portable", &b, behaviour::cases(), run, args.nocapture);
    libtest_mimic::run(&args, trials).exit();
}
