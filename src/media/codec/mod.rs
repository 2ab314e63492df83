pub fn run_benchmarks() {}
