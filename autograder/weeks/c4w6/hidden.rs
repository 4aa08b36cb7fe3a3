//! Hidden tests of week c4w6 (production deployment and observability): the exposition parsed by
//! Python's `prometheus_client` (the official client's text parser) and by
//! `kernels::observe::prom::parse`, compared with `kernels::observe::prom::Registry`'s own exposition
//! of the same metrics; `histogram_quantile` against a port of Prometheus' `BucketQuantile`;
//! `traceparent` on the W3C spec's cases and mutated headers; the shedder, the budget, the tiers, the
//! SLO alerts and the canary against independent references written here on random inputs.

use c4w6_deployment as lab;
use kernels::observe::prom as kprom;
use lab::Error;
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
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

const PIECES: &[&str] =
    &["a", "b", "/v1/chat", "\\", "\"", "\n", "}", ",", "=", "é", "模型", " ", "{x=\"y\"}", "\t", "0", "#"];

/// A label value or help text made of awkward pieces (never starting or ending with whitespace:
/// Python's parser strips lines).
fn text(rng: &mut Rng, n: usize) -> String {
    let mut s: String = (0..n).map(|_| PIECES[rng.below(PIECES.len())]).collect();
    while s.ends_with([' ', '\n', '\t']) || s.starts_with([' ', '\n', '\t']) {
        s = s.trim_matches([' ', '\n', '\t']).to_string();
    }
    s
}

/// Random counter and gauge families (counters named `*_total`), with kernels' registry holding the same.
fn random_families(rng: &mut Rng, registry: &kprom::Registry) -> Vec<Family> {
    let mut families = Vec::new();
    for f in 0..1 + rng.below(6) {
        let counter = rng.chance(0.5);
        let name = if counter { format!("app:req_{f}_total") } else { format!("app_gauge_{f}") };
        let help_len = rng.below(5);
        let help = text(rng, help_len);
        // At least one label: kernels' parser (as of this week's writing) reads no label-less sample;
        // Python's parser checks those below.
        let label_names: Vec<String> = (0..1 + rng.below(3)).map(|i| format!("l{i}")).collect();
        let refs: Vec<&str> = label_names.iter().map(String::as_str).collect();
        let mut series: Vec<Series> = Vec::new();
        let count = if label_names.is_empty() { 1 } else { 1 + rng.below(8) };
        for _ in 0..count {
            let values: Vec<String> = (0..label_names.len())
                .map(|_| {
                    let n = rng.below(4);
                    text(rng, n)
                })
                .collect();
            if series.iter().any(|s| s.label_values == values) {
                continue;
            }
            let v = if counter {
                rng.below(1_000_000) as f64
            } else {
                (rng.unit() - 0.5) * 10f64.powi(rng.below(12) as i32 - 4)
            };
            let vr: Vec<&str> = values.iter().map(String::as_str).collect();
            if counter {
                registry.counter(&name, &help, &refs).with(&vr).inc_by(v);
            } else {
                registry.gauge(&name, &help, &refs).with(&vr).set(v);
            }
            series.push(Series { label_values: values, value: Value::Number(v) });
        }
        let kind = if counter { Kind::Counter } else { Kind::Gauge };
        families.push(Family { name, help, kind, label_names, series });
    }
    families
}

const PY_PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "help": f.documentation,
                "samples": [[s.name, list(s.labels.items()), repr(float(s.value))] for s in f.samples]})
print(json.dumps(out))
"#;

/// Python's `prometheus_client` parse of `text`.
fn python_parse(text: &str) -> serde_json::Value {
    use std::io::Write;
    let python = kernels::cache::venv_python();
    let mut child = std::process::Command::new(&python)
        .arg("-c")
        .arg(PY_PARSE)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {}: {e} (run `cargo xtask peers`)", python.display()));
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("writing to python");
    let output = child.wait_with_output().expect("python");
    assert!(
        output.status.success(),
        "prometheus_client could not parse the exposition:\n{}\n--- text ---\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python prints JSON")
}

fn py_float(s: &str) -> f64 {
    match s {
        "inf" => f64::INFINITY,
        "-inf" => f64::NEG_INFINITY,
        "nan" => f64::NAN,
        other => other.parse().expect("a float repr"),
    }
}

/// `kernels::observe::prom::parse` of `text`, with `le` values canonicalised as numbers.
fn kernels_parse(text: &str) -> Vec<kprom::Family> {
    let mut families =
        kprom::parse(text).unwrap_or_else(|e| panic!("kernels cannot parse the exposition: {e}\n{text}"));
    for f in &mut families {
        for s in &mut f.samples {
            for (k, v) in &mut s.labels {
                if k == "le" {
                    let x: f64 = if v == "+Inf" { f64::INFINITY } else { v.parse().expect("le is a number") };
                    *v = format!("{x:?}");
                }
            }
        }
    }
    families
}

/// The samples the lab's families should produce, in exposition order: (name, labels, value).
fn expected_samples(f: &Family) -> Vec<(String, Vec<(String, String)>, f64)> {
    let mut series: Vec<&Series> = f.series.iter().collect();
    series.sort_by(|a, b| a.label_values.cmp(&b.label_values));
    let mut out = Vec::new();
    for s in series {
        let labels: Vec<(String, String)> = f.label_names.iter().cloned().zip(s.label_values.iter().cloned()).collect();
        match &s.value {
            Value::Number(v) => out.push((f.name.clone(), labels, *v)),
            Value::Histogram(h) => {
                let cum = h.cumulative();
                for (i, c) in cum.iter().enumerate() {
                    let le = h.bounds().get(i).map_or("+Inf".to_string(), |b| lab::prom::format_value(*b));
                    let mut l = labels.clone();
                    l.push(("le".into(), le));
                    out.push((format!("{}_bucket", f.name), l, *c as f64));
                }
                out.push((format!("{}_sum", f.name), labels.clone(), h.sum()));
                out.push((format!("{}_count", f.name), labels, h.count() as f64));
            }
        }
    }
    out
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// Compares Python's parse with the families, field by field.
fn check_python(families: &[Family], text: &str) {
    let parsed = python_parse(text);
    let parsed = parsed.as_array().expect("a list");
    assert_eq!(
        parsed.len(),
        families.len(),
        "Python found {} families, expected {}:\n{text}",
        parsed.len(),
        families.len()
    );
    for (p, f) in parsed.iter().zip(families) {
        let name = if f.kind == Kind::Counter { f.name.trim_end_matches("_total") } else { &f.name };
        assert_eq!(p["name"], name, "family name");
        assert_eq!(p["type"], f.kind.name(), "family {} type", f.name);
        assert_eq!(p["help"], f.help.as_str(), "family {} help as Python reads it", f.name);
        let samples = p["samples"].as_array().expect("samples");
        let want = expected_samples(f);
        assert_eq!(samples.len(), want.len(), "family {}: Python read {} samples:\n{text}", f.name, samples.len());
        for (s, (wname, wlabels, wv)) in samples.iter().zip(&want) {
            assert_eq!(s[0], wname.as_str(), "sample name");
            let labels: Vec<(String, String)> = s[1]
                .as_array()
                .expect("labels")
                .iter()
                .map(|kv| (kv[0].as_str().expect("k").to_string(), kv[1].as_str().expect("v").to_string()))
                .filter(|(k, _)| k != "le")
                .collect();
            let wl: Vec<(String, String)> = wlabels.iter().filter(|(k, _)| k != "le").cloned().collect();
            assert_eq!(labels, wl, "labels of {wname} as Python reads them (series order: sorted by label values)");
            let v = py_float(s[2].as_str().expect("value"));
            assert!(same(v, *wv), "{wname}: Python reads {v}, expected {wv}");
        }
    }
}

// ------------------------------------------------------------------ histogram_quantile reference

/// Prometheus `promql/quantile.go` `BucketQuantile`, ported.
fn promql_quantile(q: f64, buckets: &[(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    if buckets.is_empty() {
        return f64::NAN;
    }
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.partial_cmp(&y.0).expect("no NaN bounds"));
    if b[b.len() - 1].0 != f64::INFINITY {
        return f64::NAN;
    }
    // coalesceBuckets
    let mut c: Vec<(f64, f64)> = vec![b[0]];
    for &x in &b[1..] {
        let last = c.len() - 1;
        if x.0 == c[last].0 { c[last].1 += x.1 } else { c.push(x) }
    }
    // ensureMonotonic
    let mut prev = f64::NEG_INFINITY;
    for x in &mut c {
        if x.1 < prev { x.1 = prev } else { prev = x.1 }
    }
    if c.len() < 2 {
        return f64::NAN;
    }
    let observations = c[c.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    // sort.Search(len-1, count >= rank): binary search on the monotone counts.
    let (mut lo, mut hi) = (0usize, c.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if c[mid].1 >= rank { hi = mid } else { lo = mid + 1 }
    }
    let i = lo;
    if i == c.len() - 1 {
        return c[c.len() - 2].0;
    }
    if i == 0 && c[0].0 <= 0.0 {
        return c[0].0;
    }
    let (mut start, end, mut count) = (0.0, c[i].0, c[i].1);
    if i > 0 {
        start = c[i - 1].0;
        count -= c[i - 1].1;
        rank -= c[i - 1].1;
    }
    start + (end - start) * (rank / count)
}

// ------------------------------------------------------------------ traceparent reference

fn ref_traceparent(h: &str) -> Option<(u8, [u8; 16], [u8; 8], u8)> {
    let b = h.as_bytes();
    let hexd = |c: u8| {
        (c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
            .then(|| if c.is_ascii_digit() { c - b'0' } else { c - b'a' + 10 })
    };
    let byte = |i: usize| Some(hexd(b[i])? * 16 + hexd(b[i + 1])?);
    if b.len() < 55 {
        return None;
    }
    let version = byte(0)?;
    if version == 255 || (version == 0 && b.len() != 55) || (b.len() > 55 && b[55] != b'-') {
        return None;
    }
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return None;
    }
    let mut t = [0u8; 16];
    for (k, x) in t.iter_mut().enumerate() {
        *x = byte(3 + 2 * k)?;
    }
    let mut p = [0u8; 8];
    for (k, x) in p.iter_mut().enumerate() {
        *x = byte(36 + 2 * k)?;
    }
    let flags = byte(53)?;
    (t != [0; 16] && p != [0; 8]).then_some((version, t, p, flags))
}

// ------------------------------------------------------------------ shedder reference

struct RefShed {
    cap: u128,
    rate: u128,
    reserves: Vec<u128>,
    level: u128,
    last: u64,
}

impl RefShed {
    fn refill(&mut self, now: u64) -> u128 {
        if now > self.last {
            self.level = (self.level + u128::from(now - self.last) * self.rate).min(self.cap * 1000);
            self.last = now;
        }
        self.level
    }
    fn admit(&mut self, p: usize, now: u64) -> lab::shed::Decision {
        let level = self.refill(now);
        let need = (self.reserves[p] + 1) * 1000;
        if level >= need {
            self.level -= 1000;
            lab::shed::Decision::Admit
        } else {
            let retry = (self.rate > 0).then(|| ((need - level).div_ceil(self.rate)) as u64);
            lab::shed::Decision::Shed { retry_after_ms: retry }
        }
    }
}

// ------------------------------------------------------------------ routing references

const DAY: u64 = 86_400_000;

fn ref_cost(b: &lab::tier::Backend, p: u64, c: u64) -> u64 {
    let m = u128::from(p) * u128::from(b.micro_usd_per_1k_prompt)
        + u128::from(c) * u128::from(b.micro_usd_per_1k_completion);
    u64::try_from(m.div_ceil(1000)).unwrap_or(u64::MAX)
}

struct RefBudget {
    daily: u64,
    spill: u8,
    day: u64,
    spent: u64,
}

impl RefBudget {
    fn roll(&mut self, now: u64) {
        if now / DAY > self.day {
            self.day = now / DAY;
            self.spent = 0;
        }
    }
    fn choose(
        &mut self,
        bs: &[lab::tier::Backend],
        cands: &[usize],
        p: u64,
        c: u64,
        now: u64,
    ) -> lab::Result<lab::budget::Choice> {
        self.roll(now);
        let remaining = self.daily.saturating_sub(self.spent);
        let spilling = u128::from(self.spent) * 100 >= u128::from(self.spill) * u128::from(self.daily);
        let first = cands[0];
        let costs: Vec<u64> = cands.iter().map(|&i| ref_cost(&bs[i], p, c)).collect();
        if !spilling && costs[0] <= remaining {
            return Ok(lab::budget::Choice { backend: first, cost_micro_usd: costs[0], spilled: false });
        }
        let best = (0..cands.len()).filter(|&k| costs[k] <= remaining).min_by_key(|&k| (costs[k], k));
        match best {
            Some(k) => {
                Ok(lab::budget::Choice { backend: cands[k], cost_micro_usd: costs[k], spilled: cands[k] != first })
            }
            None => Err(Error::BudgetExceeded { retry_after_ms: DAY - now % DAY }),
        }
    }
}

fn random_backends(rng: &mut Rng) -> Vec<lab::tier::Backend> {
    use lab::tier::Tier;
    let tiers = [Tier::Sovereign, Tier::Private, Tier::Standard];
    (0..1 + rng.below(6))
        .map(|i| lab::tier::Backend {
            name: format!("b{i}"),
            tier: tiers[rng.below(3)],
            models: ["m1", "m2", "m3"].iter().filter(|_| rng.chance(0.6)).map(|s| s.to_string()).collect(),
            micro_usd_per_1k_prompt: if rng.chance(0.3) { 0 } else { rng.below(20_000) as u64 },
            micro_usd_per_1k_completion: if rng.chance(0.3) { 0 } else { rng.below(60_000) as u64 },
        })
        .collect()
}

fn ref_eligible(bs: &[lab::tier::Backend], model: &str, tier: lab::tier::Tier) -> lab::Result<Vec<usize>> {
    let serving: Vec<usize> = (0..bs.len()).filter(|&i| bs[i].models.iter().any(|m| m == model)).collect();
    if serving.is_empty() {
        return Err(Error::UnknownModel(model.into()));
    }
    let within: Vec<usize> = serving.into_iter().filter(|&i| bs[i].tier <= tier).collect();
    if within.is_empty() {
        Err(Error::OutsideTier { model: model.into(), tier: tier.name().into() })
    } else {
        Ok(within)
    }
}

// ------------------------------------------------------------------ SLO reference

fn ref_alerts(objective: f64, minutes: &[(u64, u64)], windows: &[lab::slo::BurnWindow]) -> Vec<(usize, f64, f64)> {
    let sum = |w: usize| {
        let from = minutes.len().saturating_sub(w);
        minutes[from..].iter().fold((0u64, 0u64), |(t, b), &(x, y)| (t + x, b + y))
    };
    let ratio = |(t, b): (u64, u64)| if t == 0 { 0.0 } else { b as f64 / t as f64 };
    let burn = |(t, b): (u64, u64)| if t == 0 { 0.0 } else { (b as f64 / t as f64) / (1.0 - objective) };
    let mut out = Vec::new();
    for (i, w) in windows.iter().enumerate() {
        let (l, s) = (sum(w.long_minutes), sum(w.short_minutes));
        let th = w.factor * (1.0 - objective);
        if ratio(l) > th && ratio(s) > th {
            out.push((i, burn(l), burn(s)));
        }
    }
    out
}

fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= 1e-12 * b.abs()
}

graded! {
    /// Random counter and gauge families with awkward label values and help texts: Python's
    /// `prometheus_client` reads back every family, type, help, sample, label and value.
    fn prom_text_parses_in_pythons_prometheus_client() {
        let mut rng = Rng(61);
        let mut families = Vec::new();
        for round in 0..4 {
            let registry = kprom::Registry::new();
            let mut fs = random_families(&mut rng, &registry);
            for f in &mut fs {
                f.name = format!("r{round}_{}", f.name);
            }
            families.extend(fs);
        }
        families.push(Family { name: "up".into(), help: "No labels.".into(), kind: Kind::Gauge, label_names: vec![], series: vec![Series { label_values: vec![], value: Value::Number(1.0) }] });
        let text = lab::prom::encode(&families).expect("the lab refused valid families");
        check_python(&families, &text);
        // Special values.
        let special = vec![Family {
            name: "g".into(), help: "h".into(), kind: Kind::Gauge, label_names: vec!["k".into()],
            series: [f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 0.1, 1e-7, 1e21, -0.0].iter().enumerate()
                .map(|(i, &v)| Series { label_values: vec![format!("{i}")], value: Value::Number(v) }).collect(),
        }];
        check_python(&special, &lab::prom::encode(&special).expect("special values"));
    }

    /// The same metrics in kernels' registry and in the lab's families: kernels' parser reads the
    /// lab's exposition exactly as it reads kernels' own (families, order, labels, values).
    fn prom_text_equals_kernels_registry_after_parsing() {
        let mut rng = Rng(62);
        for _ in 0..60 {
            let registry = kprom::Registry::new();
            let families = random_families(&mut rng, &registry);
            let text = lab::prom::encode(&families).expect("the lab refused valid families");
            assert_eq!(kernels_parse(&text), kernels_parse(&registry.encode()), "lab's exposition:\n{text}\nkernels':\n{}", registry.encode());
            let mut appended = String::from("# keep\n");
            lab::prom::encode_into(&families, &mut appended).expect("encode_into");
            assert_eq!(appended, format!("# keep\n{text}"), "encode_into appends what encode returns");
        }
    }

    /// Every rule of the format refused with InvalidInput, and nothing appended on a refusal.
    fn prom_text_refuses_bad_families_and_appends_nothing() {
        let good = || Family { name: "ok_total".into(), help: "h".into(), kind: Kind::Counter, label_names: vec!["a".into(), "b".into()],
            series: vec![Series { label_values: vec!["1".into(), "2".into()], value: Value::Number(1.0) }] };
        let histogram = lab::histogram::Histogram::new(&[1.0]).expect("a histogram");
        let mutations: Vec<(&str, Box<dyn Fn(&mut Vec<Family>)>)> = vec![
            ("a metric name with a dash", Box::new(|f| f[0].name = "ok-total".into())),
            ("a metric name starting with a digit", Box::new(|f| f[0].name = "1ok".into())),
            ("an empty metric name", Box::new(|f| f[0].name = String::new())),
            ("a label name with a colon", Box::new(|f| f[0].label_names[0] = "a:b".into())),
            ("a reserved label name", Box::new(|f| f[0].label_names[0] = "__a".into())),
            ("a repeated label name", Box::new(|f| f[0].label_names[1] = "a".into())),
            ("too few label values", Box::new(|f| f[0].series[0].label_values.pop().map(|_| ()).unwrap_or(()))),
            ("a duplicate series", Box::new(|f| { let s = f[0].series[0].clone(); f[0].series.push(s) })),
            ("a negative counter", Box::new(|f| f[0].series[0].value = Value::Number(-1.0))),
            ("a duplicate family", Box::new(|f| { let g = f[0].clone(); f.push(g) })),
            ("a histogram in a counter family", Box::new(move |f| f[0].series[0].value = Value::Histogram(histogram.clone()))),
            ("a number in a histogram family", Box::new(|f| f[0].kind = Kind::Histogram)),
            ("`le` in a histogram family", Box::new(|f| { f[0].kind = Kind::Histogram; f[0].label_names[0] = "le".into(); f[0].series.clear() })),
            ("a bad family after a good one", Box::new(|f| { let mut g = f[0].clone(); g.name = "x y".into(); f.push(g) })),
        ];
        for (what, mutate) in &mutations {
            let mut families = vec![good()];
            mutate(&mut families);
            let mut out = String::from("before\n");
            let got = lab::prom::encode_into(&families, &mut out);
            assert!(matches!(got, Err(Error::InvalidInput(_))), "{what}: expected InvalidInput, got {got:?}");
            assert_eq!(out, "before\n", "{what}: nothing may be appended on an error");
        }
        assert_eq!(lab::prom::encode(&[]).expect("no families"), "");
        let empty = Family { name: "e".into(), help: "a\\b\nc".into(), kind: Kind::Gauge, label_names: vec!["x".into()], series: vec![] };
        assert_eq!(lab::prom::encode(&[empty]).expect("no series"), "# HELP e a\\\\b\\nc\n# TYPE e gauge\n");
    }

    /// Cumulative counts, count and sum against a direct count, `le` inclusive, NaN in +Inf; bad bounds refused.
    fn histogram_counts_match_a_reference_on_random_observations() {
        let mut rng = Rng(63);
        for _ in 0..200 {
            let mut bounds: Vec<f64> = (0..rng.below(10)).map(|_| ((rng.unit() - 0.3) * 20.0).round() / 4.0).collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            let mut h = lab::histogram::Histogram::new(&bounds).expect("ascending finite bounds");
            let mut values = Vec::new();
            let mut sum = 0.0;
            for _ in 0..rng.below(300) {
                let v = match rng.below(10) {
                    0 if !bounds.is_empty() => bounds[rng.below(bounds.len())],
                    1 => [f64::NAN, f64::INFINITY, f64::NEG_INFINITY][rng.below(3)],
                    _ => ((rng.unit() - 0.3) * 20.0 * 8.0).round() / 8.0,
                };
                h.observe(v);
                sum += v;
                values.push(v);
            }
            let want: Vec<u64> = bounds.iter().map(|&b| values.iter().filter(|&&v| v <= b).count() as u64).chain([values.len() as u64]).collect();
            assert_eq!(h.cumulative(), want, "bounds {bounds:?}, values {values:?}");
            assert_eq!(h.count(), values.len() as u64);
            assert!(same(h.sum(), sum), "sum {} vs {sum}", h.sum());
            assert_eq!(h.bounds(), &bounds[..]);
        }
        for bad in [vec![1.0, 1.0], vec![2.0, 1.0], vec![f64::NAN], vec![1.0, f64::INFINITY], vec![f64::NEG_INFINITY, 0.0]] {
            assert!(matches!(lab::histogram::Histogram::new(&bad), Err(Error::InvalidConfig(_))), "bounds {bad:?} accepted");
        }
    }

    /// histogram_quantile against a port of Prometheus' BucketQuantile on random, unsorted,
    /// duplicated, non-monotonic bucket sets and every q edge.
    fn histogram_quantile_matches_promql_on_random_buckets() {
        let mut rng = Rng(64);
        for case in 0..3000 {
            let n = rng.below(7);
            let mut buckets: Vec<(f64, f64)> = (0..n)
                .map(|_| (((rng.unit() - 0.3) * 10.0).round() / 2.0, rng.below(50) as f64))
                .collect();
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut running = 0.0;
            for b in &mut buckets {
                running += b.1;
                b.1 = if rng.chance(0.1) { b.1 } else { running };
            }
            if rng.chance(0.85) {
                buckets.push((f64::INFINITY, running + rng.below(5) as f64));
            }
            if rng.chance(0.3) {
                let k = rng.below(buckets.len() + 1);
                let j = rng.below(buckets.len().max(1));
                if !buckets.is_empty() {
                    let b = buckets[j];
                    buckets.insert(k, b);
                }
            }
            for i in (1..buckets.len()).rev() {
                if rng.chance(0.3) {
                    buckets.swap(i, rng.below(i + 1));
                }
            }
            let q = match case % 9 {
                0 => 0.0,
                1 => 1.0,
                2 => -0.5,
                3 => 1.5,
                4 => f64::NAN,
                _ => rng.unit(),
            };
            let got = lab::histogram::histogram_quantile(q, &buckets);
            let want = promql_quantile(q, &buckets);
            assert!(same(got, want) || (got - want).abs() <= 1e-12 * want.abs().max(1.0), "histogram_quantile({q}, {buckets:?}) = {got}, PromQL gives {want}");
        }
    }

    /// Histogram families through the lab's encoder: kernels' parser reads them as it reads
    /// kernels' registry with the same observations, and Python's parser reads every sample.
    fn histogram_exposition_equals_kernels_and_python() {
        let mut rng = Rng(65);
        let mut all = Vec::new();
        for round in 0..20 {
            let registry = kprom::Registry::new();
            let name = format!("lat_{round}_seconds");
            let labels = ["route", "model"];
            let family = registry.histogram(&name, "Latency \\ of \"requests\"", &labels, &kprom::LATENCY_BUCKETS);
            let mut series = Vec::new();
            for s in 0..1 + rng.below(4) {
                let values = [format!("/r{s}"), text(&mut rng, 2)];
                if series.iter().any(|x: &Series| x.label_values == values) {
                    continue;
                }
                let mut h = lab::histogram::Histogram::new(&kprom::LATENCY_BUCKETS).expect("latency buckets");
                let k = family.with(&[&values[0], &values[1]]);
                for _ in 0..rng.below(200) {
                    let v = (rng.unit() * 4.0).powi(3) * 0.5;
                    h.observe(v);
                    k.observe(v);
                }
                series.push(Series { label_values: values.to_vec(), value: Value::Histogram(h) });
            }
            let families = vec![Family { name, help: "Latency \\ of \"requests\"".into(), kind: Kind::Histogram, label_names: labels.map(String::from).to_vec(), series }];
            let text = lab::prom::encode(&families).expect("histogram families");
            assert_eq!(kernels_parse(&text), kernels_parse(&registry.encode()), "lab's exposition:\n{text}\nkernels':\n{}", registry.encode());
            all.extend(families);
        }
        let text = lab::prom::encode(&all).expect("all families");
        check_python(&all, &text);
    }

    /// The W3C spec's rules, case by case.
    fn traceparent_follows_the_spec_cases() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        let p = "00f067aa0ba902b7";
        let valid = [
            format!("00-{t}-{p}-01"),
            format!("00-{t}-{p}-00"),
            format!("00-{t}-{p}-ff"),
            format!("01-{t}-{p}-01"),
            format!("cc-{t}-{p}-01-what-the-future-will-be-like"),
            format!("fe-{t}-{p}-09-"),
            format!("00-{t}-0000000000000001-01"),
        ];
        for h in &valid {
            let got = lab::trace::TraceParent::parse(h).unwrap_or_else(|e| panic!("{h} refused: {e}"));
            let (v, tid, pid, f) = ref_traceparent(h).expect("reference accepts");
            assert_eq!((got.version, got.trace_id, got.parent_id, got.flags), (v, tid, pid, f), "{h}");
            assert_eq!(got.format(), h[..55], "format of {h}");
            assert_eq!(got.sampled(), f & 1 == 1);
            let child = got.child([9; 8]).expect("child");
            assert_eq!(child.format(), format!("00-{}-0909090909090909-{}", &h[3..35], &h[53..55]), "child of {h}");
        }
        let invalid = [
            String::new(),
            format!("00-{t}-{p}"),
            format!("00-{t}-{p}-0"),
            format!("00-{t}-{p}-01-"),
            format!("00-{t}-{p}-01-extra"),
            format!("01-{t}-{p}-01x"),
            format!("ff-{t}-{p}-01"),
            format!("0G-{t}-{p}-01"),
            format!("0A-{t}-{p}-01"),
            format!("00-{}-{p}-01", t.to_uppercase()),
            format!("00-{t}-{}-01", p.to_uppercase()),
            format!("00-{t}-{p}-0A"),
            format!("00-00000000000000000000000000000000-{p}-01"),
            format!("00-{t}-0000000000000000-01"),
            format!("00_{t}-{p}-01"),
            format!("00-{t}_{p}-01"),
            format!("00-{t}-{p}_01"),
            format!(" 00-{t}-{p}-01"),
            format!("00-{t}-{p}-01 "),
            format!("00-{}é-{p}-01", &t[..31]),
            format!("00-+bf92f3577b34da6a3ce929d0e0e4736-{p}-01"),
            format!("00-{t}-{p}-+1"),
        ];
        for h in &invalid {
            assert!(ref_traceparent(h).is_none(), "the reference accepts {h}");
            assert!(matches!(lab::trace::TraceParent::parse(h), Err(Error::InvalidInput(_))), "{h:?} must be refused");
        }
        let tp = lab::trace::TraceParent::parse(&valid[0]).expect("valid");
        assert!(matches!(tp.child([0; 8]), Err(Error::InvalidInput(_))), "an all-zero span id");
    }

    /// Random single and double mutations of valid headers: accepted and refused exactly as the
    /// reference, with the same fields.
    fn traceparent_matches_a_reference_on_mutated_headers() {
        let mut rng = Rng(66);
        let alphabet: Vec<char> = "0123456789abcdefABCDEF-xz_ é".chars().collect();
        let hex = |rng: &mut Rng, n: usize| -> String { (0..n).map(|_| "0123456789abcdef".as_bytes()[rng.below(16)] as char).collect() };
        for _ in 0..20_000 {
            let version = if rng.chance(0.7) { "00".to_string() } else { hex(&mut rng, 2) };
            let mut h: Vec<char> = format!("{version}-{}-{}-{}", hex(&mut rng, 32), hex(&mut rng, 16), hex(&mut rng, 2)).chars().collect();
            if rng.chance(0.2) {
                h.extend("-future".chars());
            }
            for _ in 0..rng.below(3) {
                let i = rng.below(h.len());
                match rng.below(4) {
                    0 => { h.remove(i); }
                    1 => h.insert(i, alphabet[rng.below(alphabet.len())]),
                    _ => h[i] = alphabet[rng.below(alphabet.len())],
                }
            }
            if rng.chance(0.05) {
                for c in h.iter_mut().skip(3).take(32) { *c = '0'; }
            }
            let s: String = h.into_iter().collect();
            let got = lab::trace::TraceParent::parse(&s).ok().map(|t| (t.version, t.trace_id, t.parent_id, t.flags));
            assert_eq!(got, ref_traceparent(&s), "traceparent {s:?}");
        }
    }

    /// Random traffic (priorities, time steps, a clock going backwards) against a reference bucket.
    fn shed_matches_a_reference_on_random_traffic() {
        let mut rng = Rng(67);
        for _ in 0..300 {
            let capacity = 1 + rng.below(20) as u64;
            let mut reserves = vec![0u64];
            for _ in 0..rng.below(4) {
                let last = *reserves.last().expect("one");
                reserves.push((last + rng.below(4) as u64).min(capacity - 1));
            }
            let refill = if rng.chance(0.1) { 0 } else { rng.below(50) as u64 };
            let start = rng.below(1_000_000) as u64;
            let config = lab::shed::ShedConfig { capacity, refill_per_s: refill, reserves: reserves.clone() };
            let mut s = lab::shed::Shedder::new(config, start).expect("a valid config");
            let mut r = RefShed { cap: capacity.into(), rate: refill.into(), reserves: reserves.iter().map(|&x| x.into()).collect(), level: u128::from(capacity) * 1000, last: start };
            let mut now = start;
            for _ in 0..200 {
                now = match rng.below(10) {
                    0 => now.saturating_sub(rng.below(500) as u64),
                    1..=4 => now,
                    _ => now + rng.below(300) as u64,
                };
                let p = rng.below(reserves.len());
                assert_eq!(s.admit(p, now).expect("a known priority"), r.admit(p, now), "priority {p} at {now}, reserves {reserves:?}, capacity {capacity}, refill {refill}");
                if rng.chance(0.1) {
                    assert_eq!(u128::from(s.level_milli(now)), r.refill(now), "level at {now}");
                }
            }
        }
    }

    /// Without refill, priority p gets exactly capacity − reserves[p] tokens and the higher ones
    /// still get in afterwards; waiting Retry-After admits, one ms less does not; bad configs refused.
    fn shed_keeps_reserves_and_refuses_bad_configs() {
        use lab::shed::{Decision, ShedConfig, Shedder};
        let config = ShedConfig { capacity: 10, refill_per_s: 0, reserves: vec![0, 3, 7] };
        let mut s = Shedder::new(config.clone(), 5).expect("valid");
        let mut admitted = [0; 3];
        for p in [2, 1, 0] {
            while s.admit(p, 5).expect("known") == Decision::Admit {
                admitted[p] += 1;
            }
        }
        assert_eq!(admitted, [3, 4, 3], "priority 2 stops at 7 left, 1 at 3, 0 at 0");
        assert_eq!(s.admit(0, 1_000_000).expect("known"), Decision::Shed { retry_after_ms: None }, "no refill: no Retry-After");
        let mut s = Shedder::new(ShedConfig { refill_per_s: 3, ..config }, 0).expect("valid");
        for _ in 0..3 {
            assert_eq!(s.admit(2, 0).expect("known"), Decision::Admit);
        }
        let Decision::Shed { retry_after_ms: Some(wait) } = s.admit(2, 0).expect("known") else { panic!("must be shed with a Retry-After") };
        assert_eq!(wait, 334, "1000 milli-tokens at 3 per ms, rounded up");
        assert!(matches!(s.admit(2, wait - 1).expect("known"), Decision::Shed { .. }));
        assert_eq!(s.admit(2, wait).expect("known"), Decision::Admit);
        assert!(matches!(s.admit(3, wait), Err(Error::InvalidInput(_))));
        for (capacity, reserves) in [(0, vec![0]), (5, vec![]), (5, vec![1]), (5, vec![0, 3, 2]), (5, vec![0, 5])] {
            let got = Shedder::new(ShedConfig { capacity, refill_per_s: 1, reserves: reserves.clone() }, 0);
            assert!(matches!(got, Err(Error::InvalidConfig(_))), "capacity {capacity}, reserves {reserves:?} accepted");
        }
    }

    /// Random requests and charges over several UTC days against a reference budget.
    fn budget_matches_a_reference_over_random_days() {
        let mut rng = Rng(68);
        for _ in 0..300 {
            let backends = random_backends(&mut rng);
            let daily = rng.below(2_000_000) as u64;
            let spill = rng.below(101) as u8;
            let mut now = rng.below(5) as u64 * DAY + rng.below(DAY as usize) as u64;
            let mut b = lab::budget::DailyBudget::new(lab::budget::BudgetConfig { daily_micro_usd: daily, spill_at_percent: spill }, now).expect("valid");
            let mut r = RefBudget { daily, spill, day: now / DAY, spent: 0 };
            for _ in 0..100 {
                now = if rng.chance(0.1) { now.saturating_sub(rng.below(3_600_000) as u64) } else { now + rng.below(7_200_000) as u64 };
                let mut cands: Vec<usize> = (0..backends.len()).filter(|_| rng.chance(0.7)).collect();
                if cands.is_empty() { cands.push(0); }
                if rng.chance(0.5) { cands.reverse(); }
                let (p, c) = (rng.below(4000) as u64, rng.below(2000) as u64);
                let want = r.choose(&backends, &cands, p, c, now);
                assert_eq!(b.choose(&backends, &cands, p, c, now), want, "choose({cands:?}, {p}, {c}) at {now}, daily {daily}, spill {spill}%, spent {}", r.spent);
                if let Ok(choice) = want {
                    let actual = choice.cost_micro_usd + rng.below(1000) as u64;
                    b.charge(actual, now);
                    r.roll(now);
                    r.spent = r.spent.saturating_add(actual);
                }
                assert_eq!(b.spent(now), { r.roll(now); r.spent }, "spent at {now}");
            }
        }
    }

    /// Costs round up and saturate; the day rolls only forward; bad configs and candidates refused.
    fn budget_costs_round_up_without_overflow_and_days_roll() {
        use lab::budget::{BudgetConfig, DailyBudget, cost_micro_usd};
        use lab::tier::{Backend, Tier};
        let b = |p: u64, c: u64| Backend { name: "b".into(), tier: Tier::Standard, models: vec![], micro_usd_per_1k_prompt: p, micro_usd_per_1k_completion: c };
        for (backend, p, c, want) in [
            (b(1, 0), 1, 0, 1),
            (b(1, 1), 999, 1, 1),
            (b(1, 1), 1000, 1, 2),
            (b(3, 7), 0, 0, 0),
            (b(u64::MAX, u64::MAX), u64::MAX, u64::MAX, u64::MAX),
            (b(u64::MAX, 0), 1000, 5, u64::MAX),
            (b(u64::MAX, 0), 1, 5, u64::MAX.div_ceil(1000)),
            (b(2_500, 10_000), 1_234, 567, 8_755),
        ] {
            assert_eq!(cost_micro_usd(&backend, p, c), want, "cost of {p} + {c} tokens at {} / {}", backend.micro_usd_per_1k_prompt, backend.micro_usd_per_1k_completion);
        }
        assert!(matches!(DailyBudget::new(BudgetConfig { daily_micro_usd: 1, spill_at_percent: 101 }, 0), Err(Error::InvalidConfig(_))));
        let mut d = DailyBudget::new(BudgetConfig { daily_micro_usd: 100, spill_at_percent: 100 }, 3 * DAY + 5).expect("valid");
        d.charge(70, 3 * DAY + 6);
        d.charge(u64::MAX, 3 * DAY + 7);
        assert_eq!(d.spent(3 * DAY + 8), u64::MAX, "charges saturate");
        assert_eq!(d.spent(2 * DAY), u64::MAX, "an earlier day changes nothing");
        assert_eq!(d.spent(4 * DAY), 0, "a new day starts at 0");
        let backends = [b(1000, 0), b(0, 0)];
        assert!(matches!(d.choose(&backends, &[], 1, 1, 4 * DAY), Err(Error::InvalidInput(_))));
        assert!(matches!(d.choose(&backends, &[0, 2], 1, 1, 4 * DAY), Err(Error::InvalidInput(_))));
        d.charge(100, 4 * DAY + 1);
        assert_eq!(d.choose(&backends, &[0, 1], 10, 0, 4 * DAY + 2).expect("the free one fits").backend, 1);
        assert_eq!(d.choose(&backends, &[0], 10, 0, 5 * DAY - 1), Err(Error::BudgetExceeded { retry_after_ms: 1 }));
    }

    /// eligible against a reference on random configurations, and Tier's names and order.
    fn tier_filters_match_a_reference_on_random_configs() {
        use lab::tier::Tier;
        let mut rng = Rng(69);
        for _ in 0..2000 {
            let backends = random_backends(&mut rng);
            let tier = [Tier::Sovereign, Tier::Private, Tier::Standard][rng.below(3)];
            let model = ["m1", "m2", "m3", "m4"][rng.below(4)];
            assert_eq!(lab::tier::eligible(&backends, model, tier), ref_eligible(&backends, model, tier), "{model} at {tier:?} over {backends:?}");
        }
        for (name, tier) in [("sovereign", Tier::Sovereign), ("private", Tier::Private), ("standard", Tier::Standard)] {
            assert_eq!(Tier::parse(name).expect("a tier"), tier);
        }
        for bad in ["", "Sovereign", "STANDARD", "public", " private"] {
            assert!(matches!(Tier::parse(bad), Err(Error::InvalidInput(_))), "{bad:?} accepted");
        }
        let all = [Tier::Sovereign, Tier::Private, Tier::Standard];
        for (i, a) in all.iter().enumerate() {
            for (j, b) in all.iter().enumerate() {
                assert_eq!(a.admits(*b), j <= i, "{a:?} admits {b:?}");
            }
        }
    }

    /// route on random configurations, always spilling: the choice equals the reference's, and a
    /// cheaper backend outside the tier is never taken.
    fn tier_routes_never_leave_the_tier() {
        use lab::tier::Tier;
        let mut rng = Rng(70);
        for _ in 0..1000 {
            let backends = random_backends(&mut rng);
            let tier = [Tier::Sovereign, Tier::Private, Tier::Standard][rng.below(3)];
            let model = ["m1", "m2", "m3"][rng.below(3)];
            let (daily, spill) = (rng.below(3_000) as u64 * 10, rng.below(2) as u8 * 100);
            let mut budget = lab::budget::DailyBudget::new(lab::budget::BudgetConfig { daily_micro_usd: daily, spill_at_percent: spill }, 7).expect("valid");
            let mut r = RefBudget { daily, spill, day: 0, spent: 0 };
            let (p, c) = (rng.below(3000) as u64, rng.below(1000) as u64);
            let want = ref_eligible(&backends, model, tier).and_then(|cands| r.choose(&backends, &cands, p, c, 7));
            let got = lab::tier::route(&backends, model, tier, &mut budget, p, c, 7);
            assert_eq!(got, want, "route {model} at {tier:?}, daily {daily}, spill {spill}, over {backends:?}");
            if let Ok(choice) = got {
                assert!(tier.admits(backends[choice.backend].tier), "a {tier:?} request reached {:?}", backends[choice.backend]);
            }
        }
    }

    /// Random incidents over three days of minutes under the Workbook's windows and random ones.
    fn slo_alerts_match_a_reference_on_random_incidents() {
        use lab::slo::{BurnWindow, Severity, evaluate, workbook_windows};
        let mut rng = Rng(71);
        for case in 0..150 {
            let objective = [0.99, 0.999, 0.9995, 0.95][rng.below(4)];
            let n = rng.below(3 * 24 * 60 + 200);
            let base = rng.unit() * 0.002;
            let mut minutes = Vec::with_capacity(n);
            let (from, len) = (rng.below(n + 1), rng.below(400));
            let bad_rate = rng.unit() * 0.1;
            for m in 0..n {
                let total = if rng.chance(0.05) { 0 } else { rng.below(2000) as u64 };
                let rate = if m >= from && m < from + len { bad_rate } else { base };
                let bad = ((total as f64) * rate * 2.0 * rng.unit()).round().min(total as f64) as u64;
                minutes.push((total, bad));
            }
            let windows = if case % 2 == 0 {
                workbook_windows()
            } else {
                (0..1 + rng.below(4)).map(|_| {
                    let long = 1 + rng.below(600);
                    BurnWindow { long_minutes: long, short_minutes: 1 + rng.below(long), factor: 0.5 + rng.unit() * 20.0, severity: if rng.chance(0.5) { Severity::Page } else { Severity::Ticket } }
                }).collect()
            };
            let got = evaluate(objective, &minutes, &windows).expect("valid input");
            let want = ref_alerts(objective, &minutes, &windows);
            assert_eq!(got.len(), want.len(), "case {case}: alerts {got:?}, expected windows {want:?}");
            for (a, (i, l, s)) in got.iter().zip(&want) {
                assert_eq!((a.window, a.severity), (*i, windows[*i].severity), "case {case}");
                assert!(close(a.long_burn, *l) && close(a.short_burn, *s), "case {case}: burns {} {} expected {l} {s}", a.long_burn, a.short_burn);
            }
        }
    }

    /// Error budgets by the formula, burn rates, and every invalid input refused.
    fn slo_budgets_windows_and_bad_input() {
        use lab::slo::{BurnWindow, Severity, burn_rate, error_budget, evaluate, workbook_windows};
        for (o, t, b) in [(0.999, 1_000_000u64, 1500u64), (0.99, 100, 0), (0.9, 0, 0), (0.5, 7, 7), (0.999, 3, 1)] {
            let got = error_budget(o, t, b).expect("valid");
            let allowed = (1.0 - o) * t as f64;
            let consumed = if b == 0 { 0.0 } else { b as f64 / allowed };
            assert!(close(got.allowed_bad, allowed) && close(got.consumed, consumed) && close(got.remaining, 1.0 - consumed), "error_budget({o}, {t}, {b}) = {got:?}");
        }
        assert_eq!(burn_rate(0.999, 0, 0), 0.0);
        assert!(close(burn_rate(0.99, 200, 4), 2.0));
        for o in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            assert!(matches!(error_budget(o, 10, 1), Err(Error::InvalidConfig(_))), "objective {o}");
            assert!(matches!(evaluate(o, &[(10, 1)], &workbook_windows()), Err(Error::InvalidConfig(_))), "objective {o}");
        }
        assert!(matches!(error_budget(0.9, 1, 2), Err(Error::InvalidInput(_))));
        assert!(matches!(evaluate(0.9, &[(10, 1), (1, 2)], &workbook_windows()), Err(Error::InvalidInput(_))));
        let w = |l: usize, s: usize, f: f64| vec![BurnWindow { long_minutes: l, short_minutes: s, factor: f, severity: Severity::Page }];
        for bad in [w(0, 0, 1.0), w(5, 0, 1.0), w(5, 6, 1.0), w(5, 5, 0.0), w(5, 5, f64::NAN), w(5, 5, f64::INFINITY)] {
            assert!(matches!(evaluate(0.9, &[(10, 1)], &bad), Err(Error::InvalidConfig(_))), "windows {bad:?}");
        }
        assert_eq!(evaluate(0.9, &[], &workbook_windows()).expect("no minutes"), vec![]);
    }

    /// Random rollouts (configs and windows) against a reference controller.
    fn canary_matches_a_reference_on_random_rollouts() {
        use lab::canary::{Action, Breach, Canary, CanaryConfig, WindowStats};
        let mut rng = Rng(72);
        for _ in 0..500 {
            let mut steps: Vec<u8> = (0..rng.below(5)).map(|_| 1 + rng.below(99) as u8).collect();
            steps.push(100);
            steps.sort_unstable();
            steps.dedup();
            let config = CanaryConfig { steps: steps.clone(), min_requests: rng.below(200) as u64, max_error_rate: rng.unit() * 0.05, max_p99_s: 0.1 + rng.unit() };
            let mut c = Canary::new(config.clone()).expect("valid");
            let (mut step, mut ended, mut percent) = (0usize, false, steps[0]);
            for _ in 0..12 {
                let requests = rng.below(400) as u64;
                let errors = ((requests as f64) * rng.unit() * 0.06) as u64 + u64::from(rng.chance(0.02)) * (requests + 1);
                let p99_s = if rng.chance(0.03) { f64::NAN } else { rng.unit() * 1.2 };
                let w = WindowStats { requests, errors, p99_s };
                let want = if ended {
                    Action::Done
                } else if requests < config.min_requests {
                    Action::Hold
                } else if errors as f64 / requests as f64 > config.max_error_rate || errors > requests {
                    ended = true;
                    percent = 0;
                    Action::Rollback(Breach::ErrorRate)
                } else if p99_s.is_nan() || p99_s > config.max_p99_s {
                    ended = true;
                    percent = 0;
                    Action::Rollback(Breach::Latency)
                } else if step + 1 == steps.len() {
                    ended = true;
                    percent = 100;
                    Action::Promote
                } else {
                    step += 1;
                    percent = steps[step];
                    Action::Advance { percent }
                };
                assert_eq!(c.evaluate(&w), want, "window {w:?} under {config:?}");
                assert_eq!(c.percent(), percent);
            }
        }
    }

    /// Sticky FNV-1a routing at each step, about the right share of keys, and bad configs refused.
    fn canary_is_sticky_and_refuses_bad_configs() {
        use lab::canary::{Action, Canary, CanaryConfig, WindowStats, fnv1a64};
        let config = CanaryConfig { steps: vec![1, 10, 50, 100], min_requests: 1, max_error_rate: 0.5, max_p99_s: 1.0 };
        let mut c = Canary::new(config.clone()).expect("valid");
        let keys: Vec<String> = (0..10_000).map(|i| format!("user-{i}")).collect();
        let mut before = vec![false; keys.len()];
        for percent in [1u8, 10, 50, 100] {
            assert_eq!(c.percent(), percent);
            let mut n = 0;
            for (k, was) in keys.iter().zip(before.iter_mut()) {
                let now = c.routes_to_canary(k);
                assert_eq!(now, fnv1a64(k.as_bytes()) % 100 < u64::from(percent), "key {k} at {percent}%");
                assert!(now || !*was, "key {k} left the canary when it grew to {percent}%");
                *was = now;
                n += usize::from(now);
            }
            assert!((n as f64 / 100.0 - f64::from(percent)).abs() < 2.0, "{n} of 10,000 keys at {percent}%");
            let action = c.evaluate(&WindowStats { requests: 10, errors: 0, p99_s: 0.1 });
            assert!(matches!(action, Action::Advance { .. } | Action::Promote));
        }
        assert_eq!(c.percent(), 100);
        assert!(keys.iter().all(|k| c.routes_to_canary(k)));
        let mut c = Canary::new(config.clone()).expect("valid");
        c.evaluate(&WindowStats { requests: 10, errors: 9, p99_s: 0.1 });
        assert!(keys.iter().all(|k| !c.routes_to_canary(k)), "nothing after a rollback");
        let bad = |steps: Vec<u8>, e: f64, p: f64| CanaryConfig { steps, min_requests: 1, max_error_rate: e, max_p99_s: p };
        for cfg in [bad(vec![], 0.1, 1.0), bad(vec![50], 0.1, 1.0), bad(vec![0, 100], 0.1, 1.0), bad(vec![5, 5, 100], 0.1, 1.0), bad(vec![100, 101], 0.1, 1.0),
                    bad(vec![100], -0.1, 1.0), bad(vec![100], 1.1, 1.0), bad(vec![100], f64::NAN, 1.0), bad(vec![100], 0.1, 0.0), bad(vec![100], 0.1, f64::INFINITY)] {
            assert!(matches!(Canary::new(cfg.clone()), Err(Error::InvalidConfig(_))), "{cfg:?} accepted");
        }
    }
}
