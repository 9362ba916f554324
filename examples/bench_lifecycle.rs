//! Lifecycle harness: N jobs (submit → wait → typed result) through the crate or through bare
//! `reqwest`, against the mock in a child process; prints wall and client CPU time per job.
//! The criterion benchmark (`cargo bench --bench lifecycle`) measures the same jobs; this
//! harness exists for profilers (one variant per process):
//!
//! ```text
//! cargo run --release --example bench_lifecycle -- crate 2000 1
//! valgrind --tool=callgrind --trace-children=no target/release/examples/bench_lifecycle crate 2000 1
//! ```
//!
//! Arguments: `crate|bare` (default `crate`), number of jobs (default 2000), concurrency
//! (default 1).

#[path = "../benches/support/mod.rs"]
mod support;

use clap::Parser;
use support::fmt_dur;
use support::jobs::{Setup, Variant};

/// N jobs (submit, wait, typed result) through the crate or bare reqwest, against the mock in a
/// child process; prints wall and client CPU time per job.
#[derive(Debug, Parser)]
#[command(name = "bench_lifecycle")]
struct Args {
    /// `crate` or `bare` (bare reqwest making the same three calls).
    #[arg(default_value = "crate", value_parser = parse_variant)]
    variant: Variant,
    /// Number of jobs.
    #[arg(default_value_t = 2000)]
    jobs: u64,
    /// Jobs in flight at once.
    #[arg(default_value_t = 1)]
    concurrency: usize,
}

fn parse_variant(s: &str) -> Result<Variant, String> {
    Variant::parse(s).ok_or_else(|| format!("{s:?}: crate|bare"))
}

fn main() {
    support::serve_if_requested();
    let Args {
        variant,
        jobs: n,
        concurrency: conc,
    } = Args::parse();
    let setup = Setup::new();
    // Warm-up: connections, allocator, lazy statics.
    setup.run(variant, 100.min(n), conc);
    let (user0, sys0) = support::cpu_times();
    let (wall, cpu) = setup.run(variant, n, conc);
    let (user1, sys1) = support::cpu_times();
    let per = |d: std::time::Duration| fmt_dur(d / n as u32);
    println!(
        "{}: {n} jobs at concurrency {conc}: wall {} per job, client CPU {} per job \
         (user {}, system {}; CPU/wall {:.2})",
        variant.name(),
        per(wall),
        per(cpu),
        per(user1 - user0),
        per(sys1 - sys0),
        cpu.as_secs_f64() / wall.as_secs_f64()
    );
}
