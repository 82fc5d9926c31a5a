//! The behaviour suite on this host's kernel through `LinuxBackend`. Cases that need more
//! nodes than the host has print SKIP and why; the sim and the multi-node guests run them.

mod behaviour;

#[test]
fn behaviour_suite_on_this_host() {
    let b = numaperf::LinuxBackend::shared().unwrap();
    let failures = behaviour::run_all(&b, "host");
    assert!(failures.is_empty(), "{failures:#?}");
}
