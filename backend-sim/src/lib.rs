//! `numaperf-sim`: a simulated multi-node machine behind `PlacementBackend` (in progress).
