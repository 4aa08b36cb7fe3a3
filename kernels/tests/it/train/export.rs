//! `kernels::formats::gguf::serialize` and `kernels::train::export`: the GGUF writer against the file
//! llama.cpp's converter wrote, its typed refusals, and a merged fine-tune that `kernels::llm` loads
//! and that gives the adapter's logits (and that llama.cpp's `gguf` package reads).

use std::borrow::Cow;

use kernels::Error;
use kernels::formats::gguf::{GgmlType, Gguf, GgufTensor, MetadataValue, serialize};
use kernels::llm::{LlamaModel, argmax};
use kernels::train::autograd::Tape;
use kernels::train::decoder::LoraDecoder;
use kernels::train::export::{MergeConfig, MergedFormat, merged_gguf};
use kernels::train::lora::{LoraConfig, LoraMode, LoraTarget};

use super::qlinear::{gguf, model_path, values};

/// The size of the test adapter's `B` entries: large, so the adapter moves the logits by far more
/// than the model's own noise. Any change of rounding anywhere in the 30 blocks (here: matrices in
/// F16 with f32 activations instead of Q4_1 with Q8_1 activations) moves the logits by 40–60 in L2
/// norm, measured with a zero adapter; this adapter moves them by about 2000.
const AMP: f32 = 1.0;

fn metadata(g: &Gguf) -> Vec<(String, MetadataValue)> {
    g.metadata_entries().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

#[test]
fn rewriting_smollm2_s_metadata_and_tensors_gives_the_converter_s_bytes() {
    let g = gguf();
    let tensors: Vec<GgufTensor<'_>> = g.tensors().map(GgufTensor::of).collect();
    let bytes = serialize(&metadata(&g), &tensors).unwrap();
    let original = std::fs::read(model_path()).unwrap();
    assert_eq!(bytes.len(), original.len());
    assert!(bytes == original, "same length, different bytes");
}

#[test]
fn the_writer_refuses_what_a_reader_would_refuse() {
    let tensor = |name: &str, dims: Vec<u64>, ggml_type: GgmlType, n: usize| GgufTensor {
        name: name.into(),
        dims,
        ggml_type,
        bytes: Cow::Owned(vec![0; n]),
    };
    let q8 = GgmlType::from_id(8).unwrap();
    type Case<'a> = (Vec<(String, MetadataValue)>, Vec<GgufTensor<'a>>, &'static str);
    let cases: Vec<Case<'_>> = vec![
        (vec![], vec![tensor("a", vec![4], GgmlType::F32, 16), tensor("a", vec![4], GgmlType::F32, 16)], "given twice"),
        (vec![], vec![tensor("a", vec![4, 2], GgmlType::F32, 16)], "bytes for dims"),
        (vec![], vec![tensor("a", vec![1, 1, 1, 1, 1], GgmlType::F32, 4)], "dimensions"),
        (vec![], vec![tensor("a", vec![16], q8, 34)], "block of 32"),
        (vec![("general.alignment".into(), MetadataValue::U32(24))], vec![], "power of two"),
        (vec![("k".into(), MetadataValue::U8(1)), ("k".into(), MetadataValue::U8(2))], vec![], "given twice"),
    ];
    for (meta, tensors, expected) in cases {
        match serialize(&meta, &tensors) {
            Err(Error::InvalidParameter(reason)) => assert!(reason.contains(expected), "{reason}"),
            other => panic!("expected a refusal containing {expected:?}, got {:?}", other.map(|b| b.len())),
        }
    }
    // What it accepts, the reader reads back: a 2-D Q8_0 tensor and a string array.
    let meta = vec![
        ("general.alignment".to_string(), MetadataValue::U32(64)),
        ("names".to_string(), MetadataValue::Array(kernels::formats::gguf::MetadataArray::String(vec!["x".into()]))),
    ];
    let bytes =
        serialize(&meta, &[tensor("w", vec![32, 3], q8, 3 * 34), tensor("b", vec![3], GgmlType::F32, 12)]).unwrap();
    let back = Gguf::from_vec(bytes).unwrap();
    assert_eq!(back.alignment(), 64);
    assert_eq!(back.get_string_array("names").unwrap(), ["x"]);
    assert_eq!(back.tensor("w").unwrap().info.dims, [32, 3]);
    assert_eq!(back.tensor("b").unwrap().info.offset % 64, 0);
}

#[test]
fn a_merged_fine_tune_is_w_plus_sba_loads_in_kernels_llm_and_answers_as_the_adapter() {
    let config = LoraConfig {
        rank: 4,
        alpha: 8.0,
        targets: vec![LoraTarget::Q, LoraTarget::V, LoraTarget::Down],
        ..Default::default()
    };
    let mut dec = LoraDecoder::from_gguf(gguf(), config).unwrap();
    // A trained-looking adapter: B non-zero (it starts at zero), large enough to move the logits.
    for (i, p) in dec.params_mut().iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
        p.value = values(p.value.len(), 7 + i as u64, AMP);
    }
    let prompt = [504u32, 3575, 282];
    let mut tape = Tape::new();
    let pass = dec.forward(&mut tape, &prompt, LoraMode::Eval).unwrap();
    let vocab = dec.config().vocab_size;
    let adapted = tape.value(pass.logits)[(prompt.len() - 1) * vocab..].to_vec();

    let last_logits = |bytes: Vec<u8>| {
        let model = LlamaModel::from_gguf(Gguf::from_vec(bytes).unwrap()).unwrap();
        model.forward(&prompt, &mut model.new_cache(16)).unwrap()
    };
    let base = last_logits(std::fs::read(model_path()).unwrap());
    let merged_bytes = merged_gguf(&gguf(), dec.adapters(), MergeConfig::default()).unwrap();
    let merged = last_logits(merged_bytes.clone());
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum::<f64>().sqrt();
    // The merged matrices are W + (α/r)·B·A up to F16's rounding (2⁻¹¹ of the largest weight).
    let back = Gguf::from_vec(merged_bytes.clone()).unwrap();
    let scale = dec.adapters().config().scale();
    for (i, ad) in dec.adapters().adapters().iter().enumerate().step_by(29) {
        let name = ad.target.gguf_tensor(ad.layer);
        let mut want = gguf().tensor(&name).unwrap().to_f32().unwrap();
        let (a, b, r) = (&dec.adapters().a(i).value, &dec.adapters().b(i).value, dec.adapters().config().rank);
        for (o, row) in want.chunks_exact_mut(ad.in_features).enumerate() {
            for (c, w) in row.iter_mut().enumerate() {
                *w += scale * (0..r).map(|k| b[o * r + k] * a[k * ad.in_features + c]).sum::<f32>();
            }
        }
        let got = back.tensor(&name).unwrap().to_f32().unwrap();
        let bound = want.iter().fold(0.0f32, |m, w| m.max(w.abs())) / 2048.0;
        let err = got.iter().zip(&want).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(err <= bound, "{name}: merged differs from W + sBA by {err} (F16 allows {bound})");
    }
    let (moved, residual) = (dist(&base, &adapted), dist(&merged, &adapted));
    eprintln!("the adapter moved the logits by {moved:.1} (L2); the merged F16 model is {residual:.1} from it");
    assert!(moved > 1000.0, "the adapter should change the model a lot: {moved}");
    assert!(residual < 0.1 * moved, "merged {residual} vs the adapter's change {moved}");
    assert_eq!(argmax(&merged), argmax(&adapted));

    // Kept in the base's 4-bit format, most of the update rounds away (reported, not asserted;
    // measured: 1507 of 1981 from the adapter).
    let q4 = last_logits(merged_gguf(&gguf(), dec.adapters(), MergeConfig { format: MergedFormat::Base }).unwrap());
    eprintln!("re-quantised to Q4_1 instead: {:.2} from the adapter", dist(&q4, &adapted));

    // llama.cpp's own reader sees the merged matrices as F16 and the rest unchanged.
    let dir = crate::tmp::Tmp::new("merged-gguf");
    let path = dir.join("merged.gguf");
    std::fs::write(&path, &merged_bytes).unwrap();
    let python = kernels::cache::venv_python();
    if !python.exists() {
        eprintln!("{} is missing (run `cargo xtask peers`): the gguf package's read is skipped", python.display());
        return;
    }
    let script = "import sys, gguf\n\
                  r = gguf.GGUFReader(sys.argv[1])\n\
                  t = {x.name: x.tensor_type.name for x in r.tensors}\n\
                  print(len(t), t['blk.0.attn_q.weight'], t['blk.0.attn_k.weight'], t['blk.29.ffn_down.weight'])";
    let out = std::process::Command::new(&python).args(["-c", script]).arg(&path).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = gguf().tensor_infos().len();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{n} F16 Q4_1 F16"));
}

/// The registry path of the pipeline: SmolLM2 pushed sealed, pulled, decrypted and verified, and the
/// fine-tune merged from the `Model<Verified>` gives the same bytes as the merge of the file itself.
#[cfg(feature = "registry")]
#[test]
fn a_verified_registry_model_exports_the_same_merged_file() {
    use kernels::registry::seal::SealKey;
    use kernels::registry::secure::Pulled;
    use kernels::registry::{ArtefactSource, PushSpec, Registry};
    use kernels::train::export::merged_gguf_of_verified;

    let config = LoraConfig { rank: 2, targets: vec![LoraTarget::V], ..Default::default() };
    let mut dec = LoraDecoder::from_gguf(gguf(), config).unwrap();
    for (i, p) in dec.params_mut().iter_mut().enumerate().filter(|(i, _)| i % 2 == 1) {
        p.value = values(p.value.len(), 3 + i as u64, 0.01);
    }
    let dir = crate::tmp::Tmp::new("export-verified");
    let reg = Registry::open(&dir.join("reg")).unwrap();
    let signer = crate::registry::signer(3);
    let key = SealKey::Raw([9; 32]);
    let gguf_bytes = std::fs::read(model_path()).unwrap();
    reg.push_sealed(
        &PushSpec::new("smollm2", 1).artefact(ArtefactSource::bytes("model.gguf", gguf_bytes)),
        &signer,
        &key,
    )
    .unwrap();
    let Pulled::Sealed(sealed) = reg.pull_model(&crate::registry::r("smollm2@1")).unwrap() else {
        panic!("a sealed push pulls sealed")
    };
    let verified = sealed.decrypt(&key).unwrap().verify(&crate::registry::keyring(&[&signer])).unwrap();

    let from_registry =
        merged_gguf_of_verified(&verified, "model.gguf", dec.adapters(), MergeConfig::default()).unwrap();
    let from_file = merged_gguf(&gguf(), dec.adapters(), MergeConfig::default()).unwrap();
    assert!(from_registry == from_file, "the merges differ ({} vs {} bytes)", from_registry.len(), from_file.len());
    match merged_gguf_of_verified(&verified, "weights.gguf", dec.adapters(), MergeConfig::default()) {
        Err(Error::InvalidParameter(m)) => assert!(m.contains("weights.gguf"), "{m}"),
        other => panic!("expected InvalidParameter, got {:?}", other.map(|b| b.len())),
    }
}
