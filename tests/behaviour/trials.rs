//! The behaviour suite as libtest-mimic trials: one test per (machine, case), named
//! `machine::case`, so one case runs alone and a skip shows as `ignored (why)`.

use std::sync::Arc;

use libtest_mimic::{Arguments, Completion, Failed, Trial};

use super::{Case, CaseResult, Outcome};

/// The command line, with one test thread: the cases of a machine share its memory
/// (capacity and fill cases) and its per-machine checks run after them, in list order.
pub fn arguments() -> Arguments {
    let mut args = Arguments::from_args();
    args.test_threads = Some(1);
    args
}

/// One trial per case on `b`; `run` runs a case (a backend's harness may check more
/// around it). A Skip is reported as ignored with its reason; with `--nocapture` a
/// pass prints what was seen.
pub fn trials<B: Send + Sync + 'static>(
    machine: &str,
    b: &Arc<B>,
    cases: Vec<Case<B>>,
    run: fn(&Case<B>, &B) -> CaseResult,
    verbose: bool,
) -> Vec<Trial> {
    cases
        .into_iter()
        .map(|case| {
            let b = Arc::clone(b);
            let name = format!("{machine}::{}", case.name);
            Trial::ignorable_test(name, move || match run(&case, &b) {
                Ok(Outcome::Pass(seen)) => {
                    if verbose {
                        println!("{seen}");
                    }
                    Ok(Completion::Completed)
                }
                Ok(Outcome::Skip(why)) => Ok(Completion::ignored_with(why)),
                Err(e) => Err(Failed::from(e)),
            })
        })
        .collect()
}
