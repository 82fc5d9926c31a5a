//! The behaviour suite on this host's kernel through `LinuxBackend`, one test per
//! `host::case` (`cargo test --test suite_linux -- host::bad_input`); a case that needs
//! more than the host has is reported ignored with the reason (the sim and the multi-node
//! guests run it). Every case fails if the kernel's weighted-interleave table changed.

mod behaviour;

#[cfg(target_os = "linux")]
fn main() {
    use numaperf::LinuxBackend;
    use std::sync::Arc;

    // The second process of `shared_second_process`: this binary, run again.
    if let Some(code) = behaviour::shared::child_if_asked() {
        std::process::exit(code);
    }
    let args = behaviour::trials::arguments();
    let b = Arc::new(LinuxBackend::shared().expect("the Linux backend"));
    let mut trials = behaviour::trials::trials(
        "host",
        &b,
        behaviour::cases(),
        behaviour::linux::run_checked,
        args.nocapture,
    );
    trials.extend(behaviour::trials::trials(
        "host",
        &b,
        behaviour::linux::cases(),
        behaviour::linux::run_checked,
        args.nocapture,
    ));
    libtest_mimic::run(&args, trials).exit();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("SKIPPED: the host suite runs the Linux backend; this target is not Linux");
}
