//! Benchmarks of week c4w1: the learner's BPE encoder and dequantisers against `kernels`.
//!
//! Both sides work on the same input — SmolLM2-135M's vocabulary and merges for encoding, real
//! Q4_1 and Q8_0 tensors of the same file for dequantising — and are timed in alternation (lab,
//! kernels, lab, …, best of several passes), so machine noise hits both alike. Only the ratio
//! of throughputs is graded, never an absolute time, and only after the outputs are checked to
//! be equal. `graded!` holds the graded task (`c4w1.bench`); `run` is the sweep behind
//! `cargo xtask bench c4w1`.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use c4w1_llm_serving as lab;
use kernels::formats::gguf::Gguf;
use kernels::quant::QuantFormat;

const CORPUS: &str = include_str!("fixtures/corpus.txt");

fn smollm2() -> Gguf {
    let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("{e}"));
    Gguf::open(&path).expect("kernels reads SmolLM2")
}

/// The lab's tokenizer over SmolLM2's vocabulary and merges (read by kernels), and kernels' own.
fn tokenizers(gguf: &Gguf) -> (lab::bpe::Tokenizer, kernels::tokenize::Bpe) {
    let reference = kernels::tokenize::Bpe::from_gguf(gguf).expect("kernels' tokenizer");
    let tokens = gguf.get_string_array("tokenizer.ggml.tokens").expect("tokens").to_vec();
    let lines = gguf.get_string_array("tokenizer.ggml.merges").expect("merges");
    let merges = kernels::tokenize::parse_merge_lines(lines).expect("merge lines");
    let tok = lab::bpe::Tokenizer::new(tokens, merges, lab::bpe::PreTokenizer::DigitsThenGpt2).expect("lab tokenizer");
    (tok, reference)
}

/// About `kb` kilobytes of text: the course corpus, then generated documents (a skewed
/// vocabulary, as natural text has) with numbers, cut at a character boundary.
fn bench_text(kb: usize) -> String {
    let mut text = String::with_capacity(kb * 1024 + 1024);
    let mut seed = 1;
    while text.len() < kb * 1024 {
        text.push_str(CORPUS);
        for (i, doc) in datasets::text::documents(200, 60, seed).into_iter().enumerate() {
            text.push_str(&doc);
            text.push_str(if i % 7 == 0 { ".\n" } else { ". " });
            if i % 13 == 0 {
                text.push_str(&format!("{} items cost ${}.{:02}; ", i * 37, i * 3, i % 100));
            }
        }
        seed += 1;
    }
    let mut cut = kb * 1024;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    text.truncate(cut);
    text
}

/// Concatenated blocks of `format` from the file's tensors, about `kb` kilobytes (whole blocks).
fn blocks(gguf: &Gguf, format: QuantFormat, kb: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(kb * 1024);
    for t in gguf.tensors() {
        if t.kind() == kernels::formats::gguf::TensorKind::Quant(format) {
            out.extend_from_slice(&t.bytes[..t.bytes.len().min(kb * 1024 - out.len())]);
            if out.len() >= kb * 1024 {
                break;
            }
        }
    }
    out.truncate(out.len() / format.block_bytes() * format.block_bytes());
    out
}

/// Seconds of one call of `f`.
fn time(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

/// One timed pass: prepares what it needs untimed (a fresh tokenizer, say) and returns the
/// seconds of the work itself.
type Pass<'a> = Box<dyn FnMut() -> f64 + 'a>;

/// Best-of-`rounds` MB/s of each pass over `bytes` of input, the passes run in alternation.
fn interleaved_mb_per_s(bytes: usize, rounds: usize, passes: &mut [Pass]) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; passes.len()];
    for _ in 0..rounds {
        for (b, pass) in best.iter_mut().zip(passes.iter_mut()) {
            *b = b.min(pass());
        }
    }
    best.iter().map(|s| bytes as f64 / 1e6 / s).collect()
}

fn lab_dequantize(format: QuantFormat, blocks: &[u8], out: &mut [f32]) {
    lab::quant::dequantize(format, blocks, out).unwrap_or_else(|e| panic!("dequantising {format}: {e}"));
}

graded! {
    /// The lab's encoder on 256 kB of text with SmolLM2's vocabulary: ids must equal kernels', and
    /// its throughput is compared with `kernels::tokenize::Bpe::encode_ordinary` (score: the ratio).
    fn encode_throughput_vs_kernels() {
        let gguf = smollm2();
        let (tok, reference) = tokenizers(&gguf);
        let text = bench_text(256);
        let want = reference.encode_ordinary(&text);
        let got = tok.encode(&text);
        if got != want {
            let i = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            panic!("the ids differ from kernels' at token {i} (of {}): fix c4w1.bpe-encode first", want.len());
        }
        // Each pass starts from a fresh tokenizer, built untimed: kernels' word cache starts
        // empty, as on a new document, and so does anything the lab's encoder may remember.
        let (tokens, merges) = (tok.tokens().to_vec(), tok.merges().to_vec());
        let fresh_lab =
            || lab::bpe::Tokenizer::new(tokens.clone(), merges.clone(), tok.pre_tokenizer()).expect("lab tokenizer");
        let mut passes: [Pass; 2] = [
            Box::new(|| {
                let t = fresh_lab();
                time(|| drop(std::hint::black_box(t.encode(&text))))
            }),
            Box::new(|| {
                let r = reference.clone();
                time(|| drop(std::hint::black_box(r.encode_ordinary(&text))))
            }),
        ];
        let mbs = interleaved_mb_per_s(text.len(), 5, &mut passes);
        let ratio = mbs[0] / mbs[1];
        println!("encode, 256 kB: lab {:.2} MB/s, kernels {:.2} MB/s, ratio {ratio:.3}", mbs[0], mbs[1]);
        crate::report_metric("encode_ratio", ratio);
    }

    /// The lab's Q4_1 dequantiser on 4 MB of SmolLM2's weight blocks: values must be bit-identical,
    /// and its throughput is compared with `kernels::quant::dequantize` (score: the ratio).
    fn dequantize_throughput_vs_kernels() {
        let gguf = smollm2();
        let data = blocks(&gguf, QuantFormat::Q4_1, 4096);
        let n = data.len() / 20 * 32;
        let (mut got, mut want) = (vec![0.0f32; n], vec![0.0f32; n]);
        lab_dequantize(QuantFormat::Q4_1, &data, &mut got);
        kernels::quant::dequantize(QuantFormat::Q4_1, &data, &mut want).expect("kernels");
        if let Some(i) = (0..n).find(|&i| got[i].to_bits() != want[i].to_bits()) {
            panic!("element {i} is {} where kernels gives {}: fix c4w1.dequant-q4 first", got[i], want[i]);
        }
        let mut passes: [Pass; 2] = [
            Box::new(|| time(|| lab_dequantize(QuantFormat::Q4_1, &data, std::hint::black_box(&mut got)))),
            Box::new(|| {
                time(|| {
                    kernels::quant::dequantize(QuantFormat::Q4_1, &data, std::hint::black_box(&mut want))
                        .expect("kernels")
                })
            }),
        ];
        let mbs = interleaved_mb_per_s(data.len(), 9, &mut passes);
        let ratio = mbs[0] / mbs[1];
        println!(
            "Q4_1, {} blocks: lab {:.0} MB/s, kernels {:.0} MB/s, ratio {ratio:.3}",
            data.len() / 20,
            mbs[0],
            mbs[1]
        );
        crate::report_metric("dequantize_ratio", ratio);
    }
}

/// One contender of an operation: its name and its timed pass.
type Contender<'a> = (&'static str, Pass<'a>);

/// `cargo xtask bench c4w1`: writes the sweep record to `args[0]` (`--quick` for small sizes).
pub fn run(args: &[String]) {
    let out = std::path::PathBuf::from(args.first().expect("usage: bench OUT.json [--quick]"));
    let quick = args.iter().any(|a| a == "--quick");
    let sizes: &[usize] = if quick { &[16, 64, 256] } else { &[16, 64, 256, 1024, 4096] };
    let rounds = if quick { 3 } else { 5 };
    let gguf = smollm2();
    let (tok, reference) = tokenizers(&gguf);
    let mut rows = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    // Whether the lab's code runs (and is right) on a small input; a stub panics.
    let text = bench_text(16);
    let lab_encodes = match catch_unwind(AssertUnwindSafe(|| tok.encode(&text))) {
        Ok(ids) if ids == reference.encode_ordinary(&text) => true,
        Ok(_) => {
            notes.push("lab encode: ids differ from kernels' (not measured)".into());
            false
        }
        Err(_) => {
            notes.push("lab encode: panicked (not measured)".into());
            false
        }
    };
    let mut lab_dequantizes = [true; 2];
    for (ok, format) in lab_dequantizes.iter_mut().zip([QuantFormat::Q4_1, QuantFormat::Q8_0]) {
        let data = blocks(&gguf, format, 16);
        let want = kernels::quant::dequantize_to_vec(format, &data).expect("kernels");
        let mut got = vec![0.0f32; want.len()];
        let same = catch_unwind(AssertUnwindSafe(|| {
            lab::quant::dequantize(format, &data, &mut got).is_ok()
                && got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits())
        }));
        if !matches!(same, Ok(true)) {
            notes.push(format!("lab dequantize {format}: panicked or differs from kernels (not measured)"));
            *ok = false;
        }
    }

    for &kb in sizes {
        eprintln!("{kb} kB…");
        // Encoding.
        let text = bench_text(kb);
        let text = text.as_str();
        let mut contenders: Vec<Contender> = vec![(
            "kernels",
            Box::new(|| {
                let r = reference.clone();
                time(|| drop(std::hint::black_box(r.encode_ordinary(text))))
            }),
        )];
        if lab_encodes {
            contenders.push((
                "lab",
                Box::new(|| {
                    let t = lab::bpe::Tokenizer::new(tok.tokens().to_vec(), tok.merges().to_vec(), tok.pre_tokenizer())
                        .expect("lab tokenizer");
                    time(|| drop(std::hint::black_box(t.encode(text))))
                }),
            ));
        }
        with_reference_solution! {
            let (tokens, merges) = (tok.tokens().to_vec(), tok.merges().to_vec());
            contenders.push(("solution", Box::new(move || {
                let sol = reference_solution::bpe::Tokenizer::new(
                    tokens.clone(), merges.clone(), reference_solution::bpe::PreTokenizer::DigitsThenGpt2,
                ).expect("solution tokenizer");
                time(|| drop(std::hint::black_box(sol.encode(text))))
            })));
        }
        push_rows(&mut rows, "encode", kb, text.len(), rounds, contenders);

        // Dequantisation.
        for (format, lab_ok) in [(QuantFormat::Q4_1, lab_dequantizes[0]), (QuantFormat::Q8_0, lab_dequantizes[1])] {
            let data = blocks(&gguf, format, kb);
            let n = data.len() / format.block_bytes() * format.block_len();
            let (mut a, mut b) = (vec![0.0f32; n], vec![0.0f32; n]);
            let mut contenders: Vec<Contender> = vec![(
                "kernels",
                Box::new(|| {
                    time(|| kernels::quant::dequantize(format, &data, std::hint::black_box(&mut a)).expect("kernels"))
                }),
            )];
            if lab_ok {
                contenders
                    .push(("lab", Box::new(|| time(|| lab_dequantize(format, &data, std::hint::black_box(&mut b))))));
            }
            with_reference_solution! {
                let mut c = vec![0.0f32; n];
                let data = &data;
                contenders.push(("solution", Box::new(move || time(|| {
                    reference_solution::quant::dequantize(format, data, std::hint::black_box(&mut c)).expect("solution");
                }))));
            }
            push_rows(&mut rows, &format!("dequantize {format}"), kb, data.len(), rounds, contenders);
        }
    }

    let record = serde_json::json!({
        "week": "c4w1",
        "title": "SmolLM2-135M: BPE encoding and block dequantisation throughput (1 thread)",
        "x": "input_kb",
        "y": "MB/s",
        "group": "op",
        "reference": "kernels",
        "targets": [256],
        "columns": ["op", "impl", "input_kb", "MB/s"],
        "rows": rows,
        "notes": notes,
        "peers": [],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&record).expect("json")).expect("writing the record");
}

fn push_rows(
    rows: &mut Vec<serde_json::Value>,
    op: &str,
    kb: usize,
    bytes: usize,
    rounds: usize,
    contenders: Vec<Contender>,
) {
    let (names, mut passes): (Vec<&str>, Vec<Pass>) = contenders.into_iter().unzip();
    let mbs = interleaved_mb_per_s(bytes, rounds, &mut passes);
    for (name, v) in names.into_iter().zip(mbs) {
        rows.push(serde_json::json!({ "op": op, "impl": name, "input_kb": kb, "MB/s": v }));
    }
}
