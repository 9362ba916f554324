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
//! 3. `GET {response_url}`, decoded into `FluxLoraOutput`.
//!
//! Two criterion groups: `lifecycle_wall` (wall time per job) and `lifecycle_cpu` (CPU time
//! per job of the whole client process, `getrusage(RUSAGE_SELF)`, returned through
//! `iter_custom`). A summary with the crate/bare ratios is printed at the end.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use support::fmt_dur;
use support::jobs::{Setup, Variant};

const CONCURRENCY: [usize; 2] = [1, 64];

/// Every batch run in this process: (variant, concurrency) → (jobs, wall, cpu).
type Totals = Mutex<Vec<((Variant, usize), (u64, Duration, Duration))>>;

fn record(totals: &Totals, key: (Variant, usize), n: u64, wall: Duration, cpu: Duration) {
    let mut t = totals.lock().expect("totals");
    match t.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => {
            v.0 += n;
            v.1 += wall;
            v.2 += cpu;
        }
        None => t.push((key, (n, wall, cpu))),
    }
}

fn benches(c: &mut Criterion, setup: &Setup, totals: &Totals) {
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
                                record(totals, (variant, conc), iters, wall, cpu_t);
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

fn summary(totals: &Totals) {
    let t = totals.lock().expect("totals");
    let get = |v: Variant, c: usize| {
        t.iter()
            .find(|(k, _)| *k == (v, c))
            .map(|(_, (n, w, cpu))| (*w / (*n as u32).max(1), *cpu / (*n as u32).max(1), *n))
    };
    println!();
    println!("summary (every batch of the lifecycle_cpu group, warm-up included; per job):");
    println!(
        "{:<6} {:>14} {:>14} {:>10} {:>14} {:>14} {:>10}",
        "conc", "bare CPU", "crate CPU", "CPU ratio", "bare wall", "crate wall", "wall ratio"
    );
    for conc in CONCURRENCY {
        if let (Some(b), Some(k)) = (get(Variant::Bare, conc), get(Variant::Crate, conc)) {
            println!(
                "{:<6} {:>14} {:>14} {:>9.3}x {:>14} {:>14} {:>9.3}x   ({} + {} jobs)",
                conc,
                fmt_dur(b.1),
                fmt_dur(k.1),
                k.1.as_secs_f64() / b.1.as_secs_f64(),
                fmt_dur(b.0),
                fmt_dur(k.0),
                k.0.as_secs_f64() / b.0.as_secs_f64(),
                b.2,
                k.2,
            );
        }
    }
}

fn main() {
    support::serve_if_requested();
    let setup = Setup::new();
    let totals = Totals::default();
    let mut c = Criterion::default().configure_from_args();
    benches(&mut c, &setup, &totals);
    c.final_summary();
    summary(&totals);
}
