//! Job lifecycle cost: submit → wait → typed result through the crate, against the same three
//! HTTP calls made with bare `reqwest` (the limit), at concurrency 1 and 64.
//!
//! ```text
//! cargo bench --bench lifecycle
//! ```
//!
//! The mock runs in a child process (queue time 0, processing time 0, no log lines), so the CPU
//! figures are the client's alone. Per job, both variants make exactly these calls:
//!
//! 1. `POST {queue}/fal-ai/flux-lora` with the JSON-encoded `FluxLoraInput`;
//! 2. `GET {status_url}/stream?logs=1` (`Accept: text/event-stream`), the SSE status stream;
//! 3. `GET {response_url}`, decoded into `GenerationOutput`.
//!
//! Two criterion groups: `lifecycle_wall` (wall time per job) and `lifecycle_cpu` (CPU time
//! per job of the whole client process, `getrusage(RUSAGE_SELF)`, returned through
//! `iter_custom`). Then a summary with the crate/bare ratios, from alternating batches of the
//! two variants (skipped when a filter is given).

mod support;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use support::fmt_dur;
use support::jobs::{Setup, Variant};

const CONCURRENCY: [usize; 2] = [1, 64];

fn benches(c: &mut Criterion, setup: &Setup) {
    for (group_name, cpu) in [("lifecycle_wall", false), ("lifecycle_cpu", true)] {
        let mut g = c.benchmark_group(group_name);
        g.sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(3));
        for conc in CONCURRENCY {
            for variant in [Variant::Bare, Variant::Crate] {
                g.bench_with_input(
                    BenchmarkId::new(variant.name(), format!("c{conc}")),
                    &conc,
                    |b, &conc| {
                        b.iter_custom(|iters| {
                            let (wall, cpu_t) = setup.run(variant, iters, conc);
                            if cpu {
                                cpu_t
                            } else {
                                wall
                            }
                        })
                    },
                );
            }
        }
        g.finish();
    }
}

/// The crate/bare ratios, from batches of the two variants run alternately (so that drift
/// of the machine, which is large on a shared 2-core VM, hits both alike).
fn summary(setup: &Setup) {
    const ROUNDS: u32 = 8;
    println!();
    println!(
        "summary: {ROUNDS} alternating rounds per concurrency (bare batch, crate batch); per job:"
    );
    println!(
        "{:<5} {:>7} {:>12} {:>12} {:>10} {:>12} {:>12} {:>10}",
        "conc",
        "jobs",
        "bare CPU",
        "crate CPU",
        "CPU ratio",
        "bare wall",
        "crate wall",
        "wall ratio"
    );
    for conc in CONCURRENCY {
        let n: u64 = if conc == 1 { 1000 } else { 3000 };
        let mut t = [(Duration::ZERO, Duration::ZERO); 2];
        for _ in 0..ROUNDS {
            for (i, v) in [Variant::Bare, Variant::Crate].into_iter().enumerate() {
                let (wall, cpu) = setup.run(v, n, conc);
                t[i].0 += wall;
                t[i].1 += cpu;
            }
        }
        let jobs = n as u32 * ROUNDS;
        let [(bw, bc), (kw, kc)] = t;
        println!(
            "{:<5} {:>7} {:>12} {:>12} {:>9.3}x {:>12} {:>12} {:>9.3}x",
            conc,
            jobs,
            fmt_dur(bc / jobs),
            fmt_dur(kc / jobs),
            kc.as_secs_f64() / bc.as_secs_f64(),
            fmt_dur(bw / jobs),
            fmt_dur(kw / jobs),
            kw.as_secs_f64() / bw.as_secs_f64(),
        );
    }
}

fn main() {
    support::serve_if_requested();
    let setup = Setup::new();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &setup);
    c.final_summary();
    // `cargo bench -- <filter>` or `--list`: criterion's part only.
    if std::env::args().skip(1).all(|a| a == "--bench") {
        summary(&setup);
    }
}
