//! `use numaperf::*;` must not shadow the language's `core` crate: the core crate is
//! re-exported as `numaperf::numa_core` (as `numaperf::core` it broke `core::mem::...`
//! with E0433 for every glob importer).

use numaperf::*;

#[test]
fn a_glob_import_keeps_the_core_crate_reachable() {
    assert_eq!(core::mem::size_of::<u64>(), 8);
    assert!(numa_core::parse::parse_list::<NodeId, 16>("0-1").is_ok());
}
