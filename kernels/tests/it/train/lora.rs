//! `kernels::train::lora`: the LoRA layer's gradients against finite differences (f64), merging into
//! and unmerging from a dense weight, the initialisation, PEFT's export layout, and typed errors.
//!
//! Tolerances: the gradient check uses the autograd tests' `1e-6` on the relative error (see
//! `tests/it/train/autograd.rs`). Merge: `x·(W + s·B·A)ᵀ` and `x·Wᵀ + s·(x·Aᵀ)·Bᵀ` are the same sums
//! in another order; with values of order one and `in ≤ 64` they agree to `1e-5` of the output's
//! scale in f32. Unmerge subtracts the f32 update it added: `W` comes back within a few ulps of the
//! update's size (`1e-6` absolute for updates below 1).

use std::sync::Arc;

use kernels::Error;
use kernels::train::autograd::{DenseLinear, FrozenLinear, GradCheckConfig, Tape, gradcheck};
use kernels::train::lora::{
    ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, LoraAdapters, LoraConfig, LoraMatrix, LoraTarget, dropout_mask,
    lora_linear, peft_name,
};

use super::qlinear::values;

fn f64s(n: usize, seed: u64) -> Vec<f64> {
    values(n, seed, 1.0).into_iter().map(f64::from).collect()
}

/// The LoRA layer `[rows, inf] → [rows, outf]` of rank `r`, with or without a dropout mask, checked
/// against central differences for `x`, `A` and `B`.
fn check_grad(rows: usize, inf: usize, outf: usize, r: usize, dropout: Option<f32>) {
    let w = Arc::new(f64s(outf * inf, 1));
    let base: Arc<dyn FrozenLinear<f64>> = Arc::new(DenseLinear::new(w, outf, inf).unwrap());
    let (x, a, b) = (f64s(rows * inf, 2), f64s(r * inf, 3), f64s(outf * r, 4));
    let c = f64s(rows * outf, 5);
    let mask: Option<Vec<f64>> = dropout.map(|p| dropout_mask(rows * inf, p, 9));
    let inputs: [(&[f64], &[usize]); 3] = [(&x, &[rows, inf]), (&a, &[r, inf]), (&b, &[outf, r])];
    let report = gradcheck(&inputs, GradCheckConfig::default(), |t: &mut Tape<f64>, v| {
        let m = match &mask {
            Some(m) => Some(t.constant(m.clone(), &[rows, inf])?),
            None => None,
        };
        let y = lora_linear(t, v[0], Arc::clone(&base), v[1], v[2], 2.0, m)?;
        let cw = t.constant(c.clone(), &[rows, outf])?;
        let yc = t.mul(y, cw)?;
        t.sum(yc)
    })
    .unwrap();
    assert!(report.max_rel() < 1e-6, "rows {rows} in {inf} out {outf} r {r} dropout {dropout:?}: {report:?}");
}

#[test]
fn lora_layer_gradients_match_finite_differences() {
    check_grad(3, 5, 4, 2, None);
    check_grad(1, 8, 6, 1, None);
    check_grad(4, 6, 3, 3, Some(0.25));
}

fn config(rank: usize, targets: &[LoraTarget]) -> LoraConfig {
    LoraConfig { rank, alpha: 8.0, dropout: 0.0, targets: targets.to_vec(), seed: 3 }
}

#[test]
fn merged_weight_gives_the_adapter_forward_and_unmerge_restores_the_base() {
    let (rows, inf, outf) = (3, 40, 24);
    let mut ad = LoraAdapters::new(config(4, &[LoraTarget::Q, LoraTarget::Down]), 2, |t| match t {
        LoraTarget::Down => (inf, outf),
        _ => (outf, inf),
    })
    .unwrap();
    let i = ad.find(1, LoraTarget::Q).unwrap();
    // B starts at zero (the adapter is the identity); give it values so the merge does something.
    let nb = ad.b(i).len();
    ad.params_mut()[2 * i + 1].value = values(nb, 21, 0.5);
    let w = values(outf * inf, 22, 1.0);
    let x = values(rows * inf, 23, 1.0);

    let mut tape = Tape::<f32>::new();
    let xv = tape.constant(x.clone(), &[rows, inf]).unwrap();
    let base: Arc<dyn FrozenLinear<f32>> = Arc::new(DenseLinear::new(Arc::new(w.clone()), outf, inf).unwrap());
    let leaves = ad.leaves(&mut tape, i).unwrap();
    let y = ad.forward(&mut tape, i, xv, base, leaves, kernels::train::lora::LoraMode::Eval).unwrap();
    let y = tape.value(y).to_vec();

    let mut merged = w.clone();
    ad.merge(i, &mut merged).unwrap();
    let mut ym = vec![0.0f32; rows * outf];
    DenseLinear::new(Arc::new(merged.clone()), outf, inf).unwrap().forward(&x, rows, &mut ym).unwrap();
    let scale = ym.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = y.iter().zip(&ym).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-5 * scale, "merged forward off by {diff} (scale {scale})");
    assert!(merged != w, "the merge changed the weight");

    ad.unmerge(i, &mut merged).unwrap();
    let back = merged.iter().zip(&w).fold(0.0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(back <= 1e-6, "unmerge left {back}");

    assert!(matches!(ad.merge(i, &mut [0.0; 5]), Err(Error::TrainShape { op: "lora_merge", .. })));
    assert!(matches!(ad.merge(99, &mut merged), Err(Error::InvalidParameter(_))));
}

#[test]
fn adapters_start_as_hu_et_al_with_a_seeded_kaiming_a_and_a_zero_b() {
    let make = |seed| {
        let mut c = config(2, &[LoraTarget::V]);
        c.seed = seed;
        LoraAdapters::new(c, 1, |_| (16, 64)).unwrap()
    };
    let (a1, a2, b) = (make(1), make(1), make(2));
    assert_eq!(a1, a2, "the same seed gives the same adapters");
    assert_ne!(a1.a(0).value, b.a(0).value, "another seed, another A");
    assert!(a1.b(0).value.iter().all(|&v| v == 0.0), "B starts at zero");
    let bound = 1.0 / 64f32.sqrt();
    assert!(a1.a(0).value.iter().all(|v| v.abs() <= bound), "A within ±1/√in");
    let spread = a1.a(0).value.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(spread > 0.8 * bound, "A spans its range: {spread} of {bound}");
    assert_eq!(a1.a(0).shape, vec![2, 64]);
    assert_eq!(a1.b(0).shape, vec![16, 2]);
    assert_eq!(a1.trainable_values(), 2 * 64 + 16 * 2);
    assert_eq!(a1.config().scale(), 4.0);
}

#[test]
fn peft_export_has_peft_names_shapes_and_config() {
    let targets = [LoraTarget::Q, LoraTarget::K, LoraTarget::O, LoraTarget::Up, LoraTarget::Down];
    let ad = LoraAdapters::new(config(2, &targets), 2, |t| match t {
        LoraTarget::K => (8, 32),
        LoraTarget::Up => (64, 32),
        LoraTarget::Down => (32, 64),
        _ => (32, 32),
    })
    .unwrap();
    assert_eq!(
        peft_name(1, LoraTarget::Q, LoraMatrix::A),
        "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"
    );
    assert_eq!(
        peft_name(0, LoraTarget::Down, LoraMatrix::B),
        "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"
    );

    let dir = std::env::temp_dir().join(format!("kernels-lora-peft-{}", std::process::id()));
    ad.save_peft(&dir, "HuggingFaceTB/SmolLM2-135M-Instruct").unwrap();
    let st = kernels::formats::safetensors::Safetensors::open(dir.join(ADAPTER_WEIGHTS_FILE)).unwrap();
    assert_eq!(st.tensor_infos().len(), 2 * 2 * targets.len());
    let shape = |name: String| st.tensor(&name).unwrap().shape().to_vec();
    assert_eq!(shape(peft_name(0, LoraTarget::K, LoraMatrix::A)), [2, 32]);
    assert_eq!(shape(peft_name(0, LoraTarget::K, LoraMatrix::B)), [8, 2]);
    assert_eq!(shape(peft_name(1, LoraTarget::Up, LoraMatrix::B)), [64, 2]);
    assert_eq!(shape(peft_name(1, LoraTarget::Down, LoraMatrix::A)), [2, 64]);
    assert_eq!(shape(peft_name(1, LoraTarget::O, LoraMatrix::A)), [2, 32]);
    let a = st.tensor(&peft_name(1, LoraTarget::O, LoraMatrix::A)).unwrap().to_f32().unwrap();
    assert_eq!(a, ad.a(ad.find(1, LoraTarget::O).unwrap()).value);

    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(ADAPTER_CONFIG_FILE)).unwrap()).unwrap();
    assert_eq!(cfg["r"], 2);
    assert_eq!(cfg["lora_alpha"], 8.0);
    assert_eq!(cfg["lora_dropout"], 0.0);
    assert_eq!(cfg["peft_type"], "LORA");
    assert_eq!(cfg["task_type"], "CAUSAL_LM");
    assert_eq!(cfg["base_model_name_or_path"], "HuggingFaceTB/SmolLM2-135M-Instruct");
    assert_eq!(cfg["target_modules"], serde_json::json!(["q_proj", "k_proj", "o_proj", "up_proj", "down_proj"]));

    // The reference reader (Python `safetensors`) sees the same names and shapes.
    let script = "import sys\nfrom safetensors.numpy import load_file\n\
                  t = load_file(sys.argv[1])\n\
                  print(';'.join(f'{k}={list(v.shape)}' for k, v in sorted(t.items())))";
    let out = std::process::Command::new(kernels::cache::venv_python())
        .args(["-c", script])
        .arg(dir.join(ADAPTER_WEIGHTS_FILE))
        .output()
        .unwrap_or_else(|e| panic!("the peers' venv Python ({e}): run `cargo xtask peers`"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seen = String::from_utf8(out.stdout).unwrap();
    let mut want: Vec<String> = ad.params().iter().map(|p| format!("{}={:?}", p.name, p.shape)).collect();
    want.sort();
    assert_eq!(seen.trim(), want.join(";"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_configs_are_typed_errors() {
    let field = |r: kernels::Result<LoraAdapters>| match r {
        Err(Error::LoraConfig { field, .. }) => field,
        other => panic!("expected a LoraConfig error, got {other:?}"),
    };
    let shape = |_| (16, 16);
    assert_eq!(field(LoraAdapters::new(config(0, &[LoraTarget::Q]), 1, shape)), "rank");
    assert_eq!(field(LoraAdapters::new(config(17, &[LoraTarget::Q]), 1, shape)), "rank");
    assert_eq!(field(LoraAdapters::new(config(2, &[]), 1, shape)), "targets");
    assert_eq!(field(LoraAdapters::new(config(2, &[LoraTarget::Q, LoraTarget::Q]), 1, shape)), "targets");
    let mut c = config(2, &[LoraTarget::Q]);
    c.dropout = 1.0;
    assert_eq!(field(LoraAdapters::new(c.clone(), 1, shape)), "dropout");
    c.dropout = 0.0;
    c.alpha = f32::NAN;
    assert_eq!(field(LoraAdapters::new(c, 1, shape)), "alpha");

    for (name, want) in
        [("q", Some(LoraTarget::Q)), ("gate_proj", Some(LoraTarget::Gate)), ("down", Some(LoraTarget::Down))]
    {
        assert_eq!(LoraTarget::parse(name).ok(), want);
    }
    for bad in ["qkv", "lm_head", "Q", ""] {
        assert!(
            matches!(LoraTarget::parse(bad), Err(Error::LoraConfig { field: "targets", .. })),
            "{bad:?} is not a projection"
        );
    }
}
