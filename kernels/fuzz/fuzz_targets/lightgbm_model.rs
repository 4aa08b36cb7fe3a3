//! Fuzzes `kernels::ml::lightgbm::parse` (a LightGBM text model is untrusted input) and, for every model
//! it accepts, the machine code `kernels::ml::compiled` makes from it: no crash anywhere, and the
//! compiled model scores every probe row bit for bit as the node-array walk does, with branches only and
//! with branch-free subtrees. Probe rows: special values (±0, ±inf, NaN, the smallest normal, huge) in
//! every column, and rows made of the model's own thresholds (ties decided by equality).
#![no_main]

use kernels::ml::compiled::{CompileConfig, compile};
use kernels::ml::lightgbm;
use libfuzzer_sys::fuzz_target;

/// Rows wider than this are not probed (their allocation, not the parser, would be what is tested).
const MAX_PROBED_FEATURES: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(flat) = lightgbm::parse(text) else { return };
    let d = flat.n_features();
    if d > MAX_PROBED_FEATURES {
        return;
    }
    let specials =
        [0.0, -0.0, 1.0, -1.0, 0.5, f32::MIN_POSITIVE, 1e30, -1e30, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
    let mut rows: Vec<Vec<f32>> = specials.iter().map(|&v| vec![v; d]).collect();
    for (i, n) in flat.nodes().iter().take(32).enumerate() {
        rows.push((0..d).map(|j| if (i + j) % 3 == 0 { f32::NAN } else { n.threshold }).collect());
    }
    for select_leaves in [1, 2, CompileConfig::default().select_leaves] {
        let compiled = compile(&flat, &CompileConfig { select_leaves }).expect("a parsed model compiles");
        for row in &rows {
            let (want, got) = (flat.predict_row(row).expect("walk"), compiled.predict_row(row).expect("compiled"));
            assert_eq!(got.to_bits(), want.to_bits(), "select_leaves {select_leaves}: compiled {got} vs walked {want}");
        }
    }
});
