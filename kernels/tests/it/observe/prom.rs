//! `kernels::observe::prom`: the exposition read back by our parser and by Python's official
//! `prometheus_client` parser, exact totals under concurrent updates, and malformed inputs refused
//! with the right line.

use std::process::Command;

use kernels::Error;
use kernels::observe::prom::{self, Family, Registry};

/// A registry exercising every kind, escaped label values and special values.
fn sample_registry() -> Registry {
    let r = Registry::new();
    r.build_info("test");
    let c = r.counter(
        "t_requests_total",
        "Requests, by route and code.\nSecond line with a \\ backslash.",
        &["route", "code"],
    );
    c.with(&["/b", "200"]).inc_by(3.0);
    c.with(&["/a", "200"]).inc();
    c.with(&["quote \" back \\ newline \n end", "500"]).inc_by(0.5);
    c.with(&["ünïcödé ✓", "404"]).inc_by(1e20);
    let g = r.gauge("t_values", "Special values.", &["which"]);
    for (which, v) in [
        ("int", 42.0),
        ("neg", -3.0),
        ("frac", 0.25),
        ("tiny", 1e-7),
        ("huge", 1.5e300),
        ("pinf", f64::INFINITY),
        ("ninf", f64::NEG_INFINITY),
        ("nan", f64::NAN),
        ("big_int", 9_007_199_254_740_993.0),
    ] {
        g.with(&[which]).set(v);
    }
    let h = r.histogram("t_latency_seconds", "Latency.", &["model"], &prom::LATENCY_BUCKETS);
    for v in [0.0005, 0.001, 0.003, 0.2, 0.2, 7.0, 100.0] {
        h.with(&["m\"1"]).observe(v);
    }
    h.with(&["empty"]);
    r.histogram("t_plain", "No labels.", &[], &[1.0, 2.0]).with(&[]).observe(1.5);
    r.gauge("t_unlabelled", "A gauge without labels, shown at 0.", &[]);
    r
}

/// Whether two sample values are the same (NaN equals NaN).
fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

#[test]
fn the_exposition_has_the_documented_shape() {
    let r = Registry::new();
    let c = r.counter("a_total", "Help with \\ and\nnewline.", &["x"]);
    c.with(&["z"]).inc();
    c.with(&["a\"b"]).inc_by(2.5);
    let h = r.histogram("lat", "L.", &[], &[0.5, 1.0]);
    h.with(&[]).observe(0.5);
    h.with(&[]).observe(3.0);
    r.gauge("g", "G.", &[]).with(&[]).set(f64::NEG_INFINITY);
    let want = "# HELP a_total Help with \\\\ and\\nnewline.\n# TYPE a_total counter\na_total{x=\"a\\\"b\"} 2.5\n\
                a_total{x=\"z\"} 1\n# HELP lat L.\n# TYPE lat histogram\nlat_bucket{le=\"0.5\"} 1\n\
                lat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3.5\nlat_count 2\n# HELP g G.\n\
                # TYPE g gauge\ng -Inf\n";
    assert_eq!(r.encode(), want);
    let mut appended = String::from("# before\n");
    r.encode_into(&mut appended);
    assert_eq!(appended, format!("# before\n{want}"));
}

#[test]
fn values_are_written_in_a_form_every_reader_parses() {
    fn check(v: f64, want: &str) {
        let r = Registry::new();
        r.gauge("v", "v", &[]).with(&[]).set(v);
        assert_eq!(r.encode().lines().last().unwrap(), format!("v {want}"), "{v:?}");
    }
    check(0.0, "0");
    check(42.0, "42");
    check(-3.0, "-3");
    check(0.25, "0.25");
    check(1e-7, "1e-7");
    check(1e20, "1e20");
    check(9_007_199_254_740_991.0, "9007199254740991");
    check(1.5e300, "1.5e300");
    check(f64::INFINITY, "+Inf");
    check(f64::NEG_INFINITY, "-Inf");
    check(f64::NAN, "NaN");
    check(0.1 + 0.2, "0.30000000000000004");
}

#[test]
fn families_keep_registration_order_and_series_sort_by_label_values() {
    let r = Registry::new();
    let b = r.counter("b_total", "b", &["k"]);
    let a = r.gauge("a", "a", &[]);
    b.with(&["y"]).inc();
    b.with(&["x"]).inc();
    a.with(&[]).set(1.0);
    // Registering again returns the same family.
    r.counter("b_total", "b", &["k"]).with(&["x"]).inc();
    let families = prom::parse(&r.encode()).unwrap();
    let names: Vec<&str> = families.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["b_total", "a"]);
    let series: Vec<(&str, f64)> = families[0].samples.iter().map(|s| (s.labels[0].1.as_str(), s.value)).collect();
    assert_eq!(series, [("x", 2.0), ("y", 1.0)]);
}

#[test]
fn encode_then_parse_gives_back_every_value() {
    let r = sample_registry();
    let families = prom::parse(&r.encode()).unwrap();
    let find = |name: &str| families.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("no {name}"));
    let info = find("sovereign_build_info");
    assert_eq!(info.kind, "gauge");
    assert_eq!(
        info.samples[0].labels,
        [("component".to_owned(), "test".to_owned()), ("version".to_owned(), env!("CARGO_PKG_VERSION").to_owned())]
    );
    let c = find("t_requests_total");
    assert_eq!(
        (c.kind.as_str(), c.help.as_str()),
        ("counter", "Requests, by route and code.\nSecond line with a \\ backslash.")
    );
    let value_of = |f: &Family, label: &str| {
        f.samples.iter().find(|s| s.labels[0].1 == label).unwrap_or_else(|| panic!("no {label}")).value
    };
    assert_eq!(value_of(c, "quote \" back \\ newline \n end"), 0.5);
    assert_eq!(value_of(c, "ünïcödé ✓"), 1e20);
    assert_eq!(value_of(c, "/a"), 1.0);
    let g = find("t_values");
    for (which, v) in [
        ("int", 42.0),
        ("neg", -3.0),
        ("frac", 0.25),
        ("tiny", 1e-7),
        ("huge", 1.5e300),
        ("pinf", f64::INFINITY),
        ("ninf", f64::NEG_INFINITY),
        ("nan", f64::NAN),
        ("big_int", 9_007_199_254_740_993.0),
    ] {
        assert!(same(value_of(g, which), v), "{which}: {} != {v}", value_of(g, which));
    }
    let h = find("t_latency_seconds");
    assert_eq!(h.kind, "histogram");
    let m1: Vec<_> = h.samples.iter().filter(|s| s.labels[0].1 == "m\"1").collect();
    assert_eq!(m1.len(), prom::LATENCY_BUCKETS.len() + 3);
    let bucket = |le: &str| m1.iter().find(|s| s.labels.iter().any(|(k, v)| k == "le" && v == le)).unwrap().value;
    assert_eq!(
        (bucket("0.001"), bucket("0.005"), bucket("0.25"), bucket("10"), bucket("60"), bucket("+Inf")),
        (2.0, 3.0, 5.0, 6.0, 6.0, 7.0)
    );
    let sum = m1.iter().find(|s| s.name == "t_latency_seconds_sum").unwrap().value;
    assert!((sum - 107.4045).abs() < 1e-9, "{sum}");
    assert_eq!(m1.iter().find(|s| s.name == "t_latency_seconds_count").unwrap().value, 7.0);
    let hist = r.histogram("t_latency_seconds", "Latency.", &["model"], &prom::LATENCY_BUCKETS).with(&["m\"1"]);
    assert_eq!(hist.count(), 7);
    assert_eq!(*hist.cumulative().last().unwrap(), 7);
    assert_eq!(find("t_unlabelled").samples[0].value, 0.0);
    assert_eq!(find("t_plain").samples.len(), 5);
}

/// A sample as Python reads it: name, sorted labels, value.
type PySample = (String, Vec<(String, String)>, f64);
/// A family as Python reads it: name, type, help, samples.
type PyFamily = (String, String, String, Vec<PySample>);

/// What Python's `prometheus_client.parser.text_string_to_metric_families` reads from `text`:
/// (family, type, help, [(sample, sorted labels, value)]).
fn python_parse(text: &str) -> Vec<PyFamily> {
    let dir = std::env::temp_dir().join(format!("prom-py-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let input = dir.join("exposition.txt");
    std::fs::write(&input, text).unwrap();
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(open(sys.argv[1], encoding="utf-8").read()):
    out.append([f.name, f.type, f.documentation,
                [[s.name, sorted(s.labels.items()), repr(float(s.value))] for s in f.samples]])
print(json.dumps(out))
"#;
    let python = std::path::PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/sovereign-ml/venv/bin/python");
    let output = Command::new(python).arg("-c").arg(script).arg(&input).output().expect("the venv's python");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let _ = std::fs::remove_dir_all(&dir);
    let v: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let samples = f[3]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| {
                    let labels = s[1]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].as_str().unwrap().to_owned()))
                        .collect();
                    let value = match s[2].as_str().unwrap() {
                        "nan" => f64::NAN,
                        "inf" => f64::INFINITY,
                        "-inf" => f64::NEG_INFINITY,
                        x => x.parse().unwrap(),
                    };
                    (s[0].as_str().unwrap().to_owned(), labels, value)
                })
                .collect();
            let text = |i: usize| f[i].as_str().unwrap().to_owned();
            (text(0), text(1), text(2), samples)
        })
        .collect()
}

#[test]
fn python_prometheus_client_reads_the_same_families_samples_and_values() {
    let text = sample_registry().encode();
    let ours = prom::parse(&text).unwrap();
    let theirs = python_parse(&text);
    assert_eq!(ours.len(), theirs.len());
    for (o, (name, kind, help, samples)) in ours.iter().zip(&theirs) {
        // prometheus_client names a counter family without its `_total`.
        let base = if o.kind == "counter" { o.name.strip_suffix("_total").unwrap_or(&o.name) } else { &o.name };
        assert!(name == &o.name || name == base, "{name} for {}", o.name);
        assert_eq!((o.kind.as_str(), o.help.as_str()), (kind.as_str(), help.as_str()));
        assert_eq!(o.samples.len(), samples.len(), "{name}");
        for (s, (sname, slabels, svalue)) in o.samples.iter().zip(samples) {
            let mut labels = s.labels.clone();
            labels.sort();
            assert_eq!((&s.name, &labels), (sname, slabels));
            assert!(same(s.value, *svalue), "{}{:?}: {} != {svalue}", s.name, s.labels, s.value);
        }
    }
}

#[test]
fn concurrent_updates_give_exact_totals() {
    let r = Registry::new();
    let c = r.counter("c_total", "c", &["t"]);
    let g = r.gauge("g", "g", &[]);
    let h = r.histogram("h", "h", &["t"], &[0.25, 1.0]);
    const THREADS: usize = 8;
    const N: usize = 20_000;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (c, g, h, r) = (c.clone(), g.clone(), h.clone(), r.clone());
            s.spawn(move || {
                let shared = c.with(&["shared"]);
                let mine = format!("t{t}");
                for i in 0..N {
                    shared.inc();
                    c.with(&[&mine]).inc_by(0.5);
                    g.with(&[]).add(if i % 2 == 0 { 1.0 } else { -1.0 });
                    h.with(&["all"]).observe(if i % 2 == 0 { 0.5 } else { 2.0 });
                    if i % 5000 == 0 {
                        // Encoding while others update must not block them or tear a line.
                        prom::parse(&r.encode()).unwrap();
                    }
                }
            });
        }
    });
    assert_eq!(c.with(&["shared"]).get(), (THREADS * N) as f64);
    for t in 0..THREADS {
        assert_eq!(c.with(&[&format!("t{t}")]).get(), N as f64 * 0.5);
    }
    assert_eq!(g.with(&[]).get(), 0.0);
    let all = h.with(&["all"]);
    assert_eq!(all.count(), (THREADS * N) as u64);
    assert_eq!(all.sum(), (THREADS * N / 2) as f64 * 2.5);
    assert_eq!(all.cumulative(), [0, (THREADS * N / 2) as u64, (THREADS * N) as u64]);
}

#[test]
fn plain_families_encode_to_the_registrys_exact_text_and_parse_back() {
    // Registry → text → families → text: the same bytes (escapes, special values, histograms).
    let text = sample_registry().encode();
    let mut again = String::new();
    prom::encode_families(&prom::parse(&text).unwrap(), &mut again);
    assert_eq!(again, text);
    // Another exporter's text (comments, timestamps, untyped, summary) parses back to the same families.
    let foreign = "# TYPE up gauge\nup{job=\"a\",path=\"C:\\\\x\"} 1 1712345678000\n# TYPE rpc summary\n\
                   rpc{quantile=\"0.5\"} 0.01\nrpc_sum 1.5\nrpc_count 3\nno_type 7\n";
    let first = prom::parse(foreign).unwrap();
    let mut text = String::new();
    prom::encode_families(&first, &mut text);
    assert_eq!(prom::parse(&text).unwrap(), first, "{text}");
    assert!(text.contains("# TYPE no_type untyped\n"), "{text}");
}

#[test]
fn parse_reads_what_other_exporters_write() {
    let text = "# A free comment\n\n# HELP up Whether the target is up.\n# TYPE up gauge\nup{job=\"a\" , instance=\"b\",} 1 1712345678000\n\
                up{job=\"c\"}\t0\n# TYPE rpc summary\nrpc{quantile=\"0.5\"} 0.01\nrpc_sum 1.5\nrpc_count 3\nno_type_here 7 -5\n  \n\
                # TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1e3\nh_count 2\n";
    let families = prom::parse(text).unwrap();
    let summary: Vec<(&str, &str, usize)> =
        families.iter().map(|f| (f.name.as_str(), f.kind.as_str(), f.samples.len())).collect();
    assert_eq!(
        summary,
        [("up", "gauge", 2), ("rpc", "summary", 3), ("no_type_here", "untyped", 1), ("h", "histogram", 3)]
    );
    assert_eq!(families[0].help, "Whether the target is up.");
    assert_eq!(
        families[0].samples[0].labels,
        [("job".to_owned(), "a".to_owned()), ("instance".to_owned(), "b".to_owned())]
    );
    assert_eq!(families[3].samples[1].value, 1000.0);
}

#[test]
fn malformed_expositions_name_the_line() {
    fn check(input: &str, line: usize, reason: &str) {
        match prom::parse(input) {
            Err(Error::PromParse { line: l, reason: r }) => {
                assert_eq!(l, line, "{input:?}: {r}");
                assert!(r.contains(reason), "{input:?}: {r:?} does not say {reason:?}");
            }
            other => panic!("{input:?}: {other:?}"),
        }
    }
    check("a 1\nb{x=\"1\" 2\n", 2, "expected `,` or `}`");
    check("a{x=\"1\"} 2\nb{x=\"1} 2\n", 2, "unterminated value");
    check("a{x=\"\\t\"} 1\n", 1, "invalid escape");
    check("a{x=\"1\",x=\"2\"} 1\n", 1, "given twice");
    check("a{1x=\"1\"} 1\n", 1, "invalid label name");
    check("a{x\"1\"} 1\n", 1, "expected `=`");
    check("a{x=1} 1\n", 1, "quoted value");
    check("ok 1\n\n1abc 2\n", 3, "invalid metric name");
    check("a\n", 1, "no value");
    check("a one\n", 1, "invalid value");
    check("a 0x10\n", 1, "invalid value");
    check("a 1 1.5\n", 1, "invalid timestamp");
    check("a 1 2 3\n", 1, "after the timestamp");
    check("# TYPE a counter\n# TYPE a gauge\n", 2, "second TYPE");
    check("# HELP a x\n# HELP a y\n", 2, "second HELP");
    check("# TYPE a counter\na 1\n# TYPE a counter\n", 3, "second TYPE");
    check("a 1\n# TYPE a counter\n", 2, "after its samples");
    check("# TYPE a countr\n", 1, "unknown type");
    check("# TYPE a\n", 1, "unknown type");
    check("# HELP\n", 1, "without a metric name");
    check("# TYPE h histogram\nh_bucket 1\n", 2, "without an `le`");
    check("# TYPE h histogram\nh_bucket{le=\"x\"} 1\n", 2, "invalid `le`");
    check("# TYPE s summary\ns 1\n", 2, "without a `quantile`");
    check("a 1\nb 2\na 3\n", 3, "appears twice");
    check("a{x=\"1\"\n", 1, "unterminated label set");
}

#[test]
fn label_values_escape_backslash_quote_and_newline() {
    fn check(input: &str, want: &str) {
        assert_eq!(prom::escape_label_value(input), want);
    }
    check("plain", "plain");
    check("a\\b", "a\\\\b");
    check("say \"hi\"", "say \\\"hi\\\"");
    check("two\nlines", "two\\nlines");
    check("tab\tstays", "tab\tstays");
}
