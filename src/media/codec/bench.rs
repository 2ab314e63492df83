//! Benchmarks (placeholder).
pub fn run_benchmarks() {}
