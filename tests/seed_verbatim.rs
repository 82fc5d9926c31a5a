//! The seed page's program must be `examples/memory_placement.rs` unchanged: compares
//! the two with whitespace and trailing commas removed (all that rustfmt changes).

use std::path::Path;

fn squash(s: &str) -> String {
    let flat: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    flat.replace(",)", ")")
        .replace(",}", "}")
        .replace(",]", "]")
}

#[test]
fn example_is_the_seed_program() {
    let seed =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/seeds/memory-placement-example.md");
    let Ok(page) = std::fs::read_to_string(&seed) else {
        println!(
            "SKIPPED: {} is not beside this checkout (CI has it)",
            seed.display()
        );
        return;
    };
    let start = page
        .find("use numaperf::")
        .expect("the seed page holds the program");
    let end = page
        .find("Policy Comparison")
        .expect("the program ends before the comparison table");
    let example = include_str!("../examples/memory_placement.rs");
    assert_eq!(squash(&page[start..end]), squash(example));
}
