//! Benchmarks of week c4w6: the learner's Prometheus text encoder against
//! `kernels::observe::prom::encode_families` on the same metrics.
//!
//! Like for like: the lab encodes plain values (families of series, label values escaped on every
//! call), and so does `encode_families` (the families kernels' parser reads back from the
//! registry's exposition, built before timing). kernels' registry, which keeps each series' label
//! text escaped once at registration, is timed beside them in the sweep, not graded against.
//!
//! The metrics are seeded (every run sees the same): a counter family of `route × model × code`
//! series, a gauge per queue, and a latency histogram family of `route × model` series over
//! `kernels::observe::prom::LATENCY_BUCKETS`, registered in a kernels `Registry` and built as the
//! lab's plain `Family` values with the same observations. First kernels' parser must read the
//! lab's exposition exactly as it reads kernels' own (`le` compared as numbers); then both encoders
//! are timed in alternation (lab, kernels, lab, …, best of several passes, each into a cleared
//! string) so machine noise hits both alike. The figure is a ratio of series per second, never an
//! absolute time. `graded!` holds the graded task (`c4w6.encode-bench`); `run` is the sweep behind
//! `cargo xtask bench c4w6`.

use std::time::Instant;

use c4w6_deployment as lab;
use kernels::observe::prom as kprom;
use lab::prom::{Family, Kind, Series, Value};

/// Deterministic pseudo-random numbers (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// `counters` counter series and `histograms` histogram series (plus 8 gauges), in kernels'
/// registry and as the lab's families; returns them with the number of exposition series lines.
/// Without `with_lab`, the lab's histograms are not built (their series are left out).
fn metrics(
    counters: usize,
    histograms: usize,
    seed: u64,
    with_lab: bool,
) -> (kprom::Registry, Vec<Family>, usize, Vec<Vec<f64>>) {
    let mut rng = Rng(seed);
    let registry = kprom::Registry::new();
    let names = ["route", "model", "code"];
    let requests = registry.counter(
        kernels::observe::HTTP_REQUESTS,
        "Requests answered, by route, model and HTTP status.",
        &names,
    );
    let mut series = Vec::new();
    for i in 0..counters {
        let values =
            [format!("/v1/route_{}", i % 25), format!("model-\"{}\"", (i / 25) % 8), format!("{}", 200 + i / 200)];
        let v = (rng.unit() * 1e6).floor();
        requests.with(&[&values[0], &values[1], &values[2]]).inc_by(v);
        series.push(Series { label_values: values.to_vec(), value: Value::Number(v) });
    }
    let mut families = vec![Family {
        name: kernels::observe::HTTP_REQUESTS.into(),
        help: "Requests answered, by route, model and HTTP status.".into(),
        kind: Kind::Counter,
        label_names: names.map(String::from).to_vec(),
        series,
    }];
    let queue = registry.gauge(kernels::observe::QUEUE_DEPTH, "Work admitted but not started.", &["queue"]);
    let mut series = Vec::new();
    for q in 0..8 {
        let name = format!("queue\\{q}");
        let v = (rng.unit() * 100.0).floor() - 3.0;
        queue.with(&[&name]).set(v);
        series.push(Series { label_values: vec![name], value: Value::Number(v) });
    }
    families.push(Family {
        name: kernels::observe::QUEUE_DEPTH.into(),
        help: "Work admitted but not started.".into(),
        kind: Kind::Gauge,
        label_names: vec!["queue".into()],
        series,
    });
    let latency = registry.histogram(
        kernels::observe::HTTP_DURATION,
        "Arrival to the answer's head.\nSeconds.",
        &["route", "model"],
        &kprom::LATENCY_BUCKETS,
    );
    let mut series = Vec::new();
    let mut observations = Vec::new();
    for i in 0..histograms {
        let values = [format!("/v1/route_{}", i % 25), format!("model-{}", i / 25)];
        let k = latency.with(&[&values[0], &values[1]]);
        let mut seen = Vec::new();
        for _ in 0..50 {
            let v = (rng.unit() * 3.0).powi(4) * 0.05;
            k.observe(v);
            seen.push(v);
        }
        if with_lab {
            let mut h =
                lab::histogram::Histogram::new(&kprom::LATENCY_BUCKETS).expect("the lab refused LATENCY_BUCKETS");
            for &v in &seen {
                h.observe(v);
            }
            series.push(Series { label_values: values.to_vec(), value: Value::Histogram(h) });
        }
        observations.push(seen);
    }
    families.push(Family {
        name: kernels::observe::HTTP_DURATION.into(),
        help: "Arrival to the answer's head.\nSeconds.".into(),
        kind: Kind::Histogram,
        label_names: vec!["route".into(), "model".into()],
        series,
    });
    let lines = counters + 8 + histograms * (kprom::LATENCY_BUCKETS.len() + 3);
    (registry, families, lines, observations)
}

/// kernels' parse with `le` compared as a number.
fn canonical(text: &str) -> Result<Vec<kprom::Family>, String> {
    let mut families = kprom::parse(text).map_err(|e| e.to_string())?;
    for f in &mut families {
        for s in &mut f.samples {
            for (k, v) in &mut s.labels {
                if k == "le" {
                    let x: f64 = if v == "+Inf" {
                        f64::INFINITY
                    } else {
                        v.parse().map_err(|_| format!("le=\"{v}\" is not a number"))?
                    };
                    *v = format!("{x:?}");
                }
            }
        }
    }
    Ok(families)
}

/// Whether the lab's exposition of `families` reads back as kernels' own: `Err` says what differs.
fn gate(registry: &kprom::Registry, families: &[Family]) -> Result<(), String> {
    let text = lab::prom::encode(families).map_err(|e| format!("encode refused the benchmark's families: {e}"))?;
    let mine = canonical(&text).map_err(|e| format!("kernels cannot parse your exposition: {e}"))?;
    let theirs = canonical(&registry.encode()).expect("kernels parses its own exposition");
    if mine.len() != theirs.len() {
        return Err(format!("{} families, kernels has {}", mine.len(), theirs.len()));
    }
    for (a, b) in mine.iter().zip(&theirs) {
        if a != b {
            let first = a.samples.iter().zip(&b.samples).find(|(x, y)| x != y);
            return Err(format!("family {} differs from kernels' (first difference: {first:?})", b.name));
        }
    }
    Ok(())
}

type Encoder<'a> = Box<dyn Fn(&mut String) + 'a>;

/// Series lines per second of each encoder, best of `rounds` passes taken in alternation.
fn interleaved(encoders: &[&Encoder], lines: usize, rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; encoders.len()];
    let mut out = String::new();
    for _ in 0..rounds {
        for (i, e) in encoders.iter().enumerate() {
            out.clear();
            let start = Instant::now();
            e(std::hint::black_box(&mut out));
            best[i] = best[i].min(start.elapsed().as_secs_f64());
            std::hint::black_box(&out);
        }
    }
    best.iter().map(|s| lines as f64 / s).collect()
}

graded! {
    /// The lab's exposition of 1,000 counter series, 8 gauges and 100 histograms reads back as
    /// kernels' own; then its series per second are compared with kernels' (score: the ratio).
    fn encode_throughput_vs_kernels() {
        let (registry, families, lines, _) = metrics(1_000, 100, 2026, true);
        if let Err(problem) = gate(&registry, &families) {
            panic!("on the benchmark's metrics, {problem}: fix the encoder before timing it");
        }
        let plain = kprom::parse(&registry.encode()).expect("kernels parses its own exposition");
        let mine: Encoder = Box::new(|out: &mut String| lab::prom::encode_into(&families, out).expect("encode_into"));
        let theirs: Encoder = Box::new(|out: &mut String| kprom::encode_families(&plain, out));
        let rates = interleaved(&[&mine, &theirs], lines, 30);
        let ratio = rates[0] / rates[1];
        println!("lab {:.3e} series/s, kernels {:.3e} series/s; ratio {ratio:.3}", rates[0], rates[1]);
        crate::report_metric("series_per_s_ratio", ratio);
    }
}

/// `cargo xtask bench c4w6`: series per second of the exposition by number of counter series,
/// written to `args[0]` (`--quick` for fewer sizes).
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[100, 1_000] } else { &[100, 1_000, 10_000, 100_000] };
    let rounds = if quick { 10 } else { 30 };
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "per pass: the text exposition of N counter series (route × model × code), 8 gauges and N/10 histograms of {} buckets each, into a cleared String; 1 thread",
        kprom::LATENCY_BUCKETS.len()
    ), "kernels: encode_families over plain families (the graded reference); kernels registry: Registry::encode_into, label text escaped once at registration".to_string()];
    for &n in sizes {
        eprintln!("{n} counter series…");
        // A lab whose histogram is still a todo!() is not timed (kernels and the solution are).
        let lab_histogram = std::panic::catch_unwind(|| {
            let mut h = lab::histogram::Histogram::new(&kprom::LATENCY_BUCKETS).ok()?;
            h.observe(0.1);
            Some(h.cumulative())
        });
        let with_lab = matches!(lab_histogram, Ok(Some(_)));
        let (registry, families, lines, observations) = metrics(n, n / 10, 7 + n as u64, with_lab);
        let _ = &observations;
        let plain = kprom::parse(&registry.encode()).expect("kernels parses its own exposition");
        let mut names = vec!["kernels", "kernels registry"];
        let mut encoders: Vec<Encoder> = vec![
            Box::new(|out: &mut String| kprom::encode_families(&plain, out)),
            Box::new(|out: &mut String| registry.encode_into(out)),
        ];
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gate(&registry, &families))) {
            _ if !with_lab => notes
                .push(format!("lab: its histogram panicked or refused the buckets at {n} counter series; not timed")),
            Ok(Ok(())) => {
                names.push("lab");
                encoders
                    .push(Box::new(|out: &mut String| lab::prom::encode_into(&families, out).expect("encode_into")));
            }
            Ok(Err(problem)) => notes.push(format!("lab: {problem} at {n} counter series; not timed")),
            Err(_) => notes.push(format!("lab: panicked at {n} counter series (see above); not timed")),
        }
        with_reference_solution! {
            let solution_families: Vec<reference_solution::prom::Family> = families.iter().map(|f| reference_solution::prom::Family {
                name: f.name.clone(),
                help: f.help.clone(),
                kind: match f.kind { Kind::Counter => reference_solution::prom::Kind::Counter, Kind::Gauge => reference_solution::prom::Kind::Gauge, Kind::Histogram => reference_solution::prom::Kind::Histogram },
                label_names: f.label_names.clone(),
                series: if f.kind == Kind::Histogram {
                    // From the observations: the lab's histogram series may be missing.
                    observations.iter().enumerate().map(|(i, seen)| {
                        let mut h = reference_solution::histogram::Histogram::new(&kprom::LATENCY_BUCKETS).expect("solution histogram");
                        for &v in seen {
                            h.observe(v);
                        }
                        reference_solution::prom::Series {
                            label_values: vec![format!("/v1/route_{}", i % 25), format!("model-{}", i / 25)],
                            value: reference_solution::prom::Value::Histogram(h),
                        }
                    }).collect()
                } else {
                    f.series.iter().map(|s| reference_solution::prom::Series {
                        label_values: s.label_values.clone(),
                        value: match &s.value {
                            Value::Number(v) => reference_solution::prom::Value::Number(*v),
                            Value::Histogram(_) => unreachable!("histograms are built above"),
                        },
                    }).collect()
                },
            }).collect();
            names.push("solution");
            encoders.push(Box::new(move |out: &mut String| reference_solution::prom::encode_into(&solution_families, out).expect("solution encode_into")));
        }
        let refs: Vec<&Encoder> = encoders.iter().collect();
        let rates = interleaved(&refs, lines, rounds);
        for (name, rate) in names.iter().zip(rates) {
            rows.push(serde_json::json!({
                "impl": name, "series": lines, "series/s": rate, "ms": 1e3 * lines as f64 / rate,
            }));
        }
    }
    let record = serde_json::json!({
        "week": "c4w6",
        "title": "Prometheus text exposition: series per second by number of series (1 thread)",
        "x": "series",
        "y": "series/s",
        "reference": "kernels",
        "targets": [1_000 + 8 + 100 * (kprom::LATENCY_BUCKETS.len() + 3)],
        "columns": ["impl", "series", "series/s", "ms"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}
