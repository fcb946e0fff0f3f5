//! Handler cost without network: parse + auth + policy + encode, through
//! `ControlApi::handle` with a dispatcher that does nothing.
//!
//! A benchmark, not a timed test: nothing here asserts a speed. Run with
//! `cargo bench -p control-api --bench handler` (scripts/bench does, and reads the numbers).
//!
//! Two passes:
//! 1. criterion (mean with its confidence interval) for each case, with and without a
//!    tracing subscriber;
//! 2. a percentile pass: every call timed on its own (`Instant` around one `handle`),
//!    many thousands of times, for p50/p99/p99.9. Its numbers are printed and written to
//!    `target/bench-results/handler.json` (or `$BENCH_RESULTS_DIR/handler.json`).
//!
//! `handle` writes one `tracing` audit line per request. With no subscriber installed
//! that is a disabled callsite (one relaxed atomic load), so the "no subscriber" numbers
//! are the handler alone. The "json-sink" variants install the Lambda's JSON formatter
//! (flattened events, no spans, `info` filter, as `telemetry::init` sets it) writing to
//! `io::sink()`: the cost of formatting the audit line, without the I/O.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use control_api::domain::auth::{Authenticator, Credentials};
use control_api::domain::registry::Registry;
use control_api::domain::service::{ControlApi, Ports};
use control_api::inbound::http::{Handler, HttpCall, Method};
use control_api::test_support::fakes::{FakeBootstrap, FakeFleet, NoState, NoopWorkflow};
use criterion::{criterion_group, Criterion};
use tracing_subscriber::EnvFilter;

const TOKEN: &str = "bench-control-token-0123456789abcdef";
const BEARER: &str = "Bearer bench-control-token-0123456789abcdef";
const WRONG: &str = "Bearer not-the-token-0123456789abcdef00";

fn no_sleep(_: Duration) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> {
    unreachable!("nothing waits on this path")
}

type Api = ControlApi<NoopWorkflow, FakeFleet, FakeBootstrap, NoState>;

fn api() -> Api {
    ControlApi::new(
        Registry::embedded().expect("embedded registry"),
        Ok(Authenticator::shared(TOKEN)),
        Ports {
            workflow: NoopWorkflow::default(),
            fleet: FakeFleet::default(),
            bootstrap: None,
            state: None,
            sleep: no_sleep,
        },
    )
    // Millions of accepted deploys in a row: the per-principal limit would turn them
    // into 429s and measure the wrong path.
    .with_rate_limit(control_api::domain::rate_limit::RateLimiter::new(
        usize::MAX,
        std::time::Duration::from_secs(1),
    ))
}

/// Drives a future that never waits on I/O (every port here answers at once) to its end.
fn run<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

struct Case {
    name: &'static str,
    authorization: &'static str,
    body: &'static [u8],
    status: u16,
}

const CASES: [Case; 3] = [
    Case {
        name: "deploy_accepted",
        authorization: BEARER,
        body: br#"{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-1","ami_override":""}"#,
        status: 200,
    },
    Case {
        name: "refused_wrong_token",
        authorization: WRONG,
        body: br#"{"action":"deploy","target":"clawdinator-2","caller":"clawdinator-1","ami_override":""}"#,
        status: 401,
    },
    Case {
        name: "refused_policy_self_deploy",
        authorization: BEARER,
        body: br#"{"action":"deploy","target":"clawdinator-1","caller":"clawdinator-1","ami_override":""}"#,
        status: 403,
    },
];

fn call(case: &Case) -> HttpCall<'static> {
    HttpCall {
        method: Method::Post,
        credentials: Credentials {
            authorization: Some(case.authorization),
            clawdinator_token: None,
            iam_arn: None,
        },
        content_type: Some("application/json"),
        idempotency_key: None,
        body: case.body,
        body_too_large: false,
        source_ip: None,
    }
}

/// One request through the handler, the reply's body length returned so nothing is elided.
fn once(api: &Api, case: &Case) -> usize {
    let reply = run(api.handle(black_box(call(case))));
    debug_assert_eq!(reply.status, case.status);
    black_box(reply.body.len())
}

/// The Lambda's subscriber (`telemetry::init(LogFormat::Json)`), writing to a sink.
fn json_sink_subscriber() -> impl tracing::Subscriber + Send + Sync {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("info"))
        .with_writer(std::io::sink)
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .finish()
}

fn check_statuses(api: &Api) {
    for case in &CASES {
        let reply = run(api.handle(call(case)));
        assert_eq!(
            reply.status, case.status,
            "{}: unexpected answer {}",
            case.name, reply.body
        );
    }
}

fn criterion_benches(c: &mut Criterion) {
    let api = api();
    check_statuses(&api);
    let mut group = c.benchmark_group("handle");
    for case in &CASES {
        group.bench_function(format!("{}/no-subscriber", case.name), |b| {
            b.iter(|| once(&api, case))
        });
    }
    let _guard = tracing::subscriber::set_default(json_sink_subscriber());
    for case in &CASES {
        group.bench_function(format!("{}/json-sink", case.name), |b| {
            b.iter(|| once(&api, case))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(50);
    targets = criterion_benches
}

struct Percentiles {
    n: usize,
    mean_ns: f64,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
}

fn percentiles(api: &Api, case: &Case, n: usize) -> Percentiles {
    for _ in 0..n / 10 {
        once(api, case);
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        once(api, case);
        samples.push(t.elapsed().as_nanos() as u64);
    }
    let mean_ns = samples.iter().sum::<u64>() as f64 / n as f64;
    samples.sort_unstable();
    let at = |q: f64| samples[((n as f64 * q) as usize).min(n - 1)];
    Percentiles {
        n,
        mean_ns,
        p50_ns: at(0.50),
        p99_ns: at(0.99),
        p999_ns: at(0.999),
        max_ns: samples[n - 1],
    }
}

/// The percentile pass; skipped when criterion is only listing or testing the benches.
fn percentile_pass() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let n: usize = std::env::var("BENCH_HANDLER_SAMPLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let api = api();
    check_statuses(&api);
    let mut rows = Vec::new();
    for subscriber in ["no-subscriber", "json-sink"] {
        let _guard = (subscriber == "json-sink")
            .then(|| tracing::subscriber::set_default(json_sink_subscriber()));
        for case in &CASES {
            let p = percentiles(&api, case, n);
            println!(
                "percentiles handle/{}/{subscriber}: n={} mean={:.2} µs p50={:.2} µs p99={:.2} µs p99.9={:.2} µs max={:.2} µs",
                case.name,
                p.n,
                p.mean_ns / 1e3,
                p.p50_ns as f64 / 1e3,
                p.p99_ns as f64 / 1e3,
                p.p999_ns as f64 / 1e3,
                p.max_ns as f64 / 1e3,
            );
            rows.push(serde_json::json!({
                "case": case.name,
                "subscriber": subscriber,
                "n": p.n,
                "mean_ns": p.mean_ns,
                "p50_ns": p.p50_ns,
                "p99_ns": p.p99_ns,
                "p999_ns": p.p999_ns,
                "max_ns": p.max_ns,
            }));
        }
    }
    let dir = std::env::var("BENCH_RESULTS_DIR").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench-results").to_owned()
    });
    if std::fs::create_dir_all(&dir).is_ok() {
        let path = format!("{dir}/handler.json");
        let text = serde_json::to_string_pretty(&serde_json::json!({ "percentiles": rows }))
            .expect("json");
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("handler bench: cannot write {path}: {e}");
        }
    }
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    percentile_pass();
}
