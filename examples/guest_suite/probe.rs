//! `placement-probe`: the program the guests' `numaperf run` cases start under a policy;
//! it checks where its own pages land. (A stub until the `run` cases fill it in.)

/// Runs the probe with `args` (its name first); returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    eprintln!(
        "{}: not built yet",
        args.first().map_or("placement-probe", |a| a)
    );
    2
}
