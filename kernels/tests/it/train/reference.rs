//! `kernels::train` against an independent reference: the loss and every weight's gradient of a
//! one-block SmolLM2-shaped decoder (tied embedding, RMSNorm, RoPE, causal GQA attention, SwiGLU,
//! cross-entropy with an ignored target) built on the f64 tape, against `jax.value_and_grad` of the
//! same model in float64 (`tests/fixtures/train/make_block_grads.py`, committed with its output).
//!
//! Tolerance: both sides compute in f64 with different operation orders (fused attention here,
//! einsum there), so they agree to rounding: a relative error of about 1e-14 per op, grown by the
//! depth of the graph. [`REF_TOL`] = 1e-9 leaves five orders of magnitude of room above that and is
//! still far below what a wrong backward rule gives (a missing term is ≥ 1e-3 of a gradient).

use std::collections::BTreeMap;
use std::path::PathBuf;

use kernels::train::autograd::{IGNORE_INDEX, Tape, Var};
use serde_json::Value;

/// The largest relative difference from JAX a loss or gradient may show (see the module docs).
const REF_TOL: f64 = 1e-9;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/train")
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array().expect("an array").iter().map(|x| x.as_f64().expect("a number")).collect()
}

fn integers(v: &Value) -> Vec<i64> {
    v.as_array().expect("an array").iter().map(|x| x.as_i64().expect("an integer")).collect()
}

/// `|a − b| / max(|b|, 1e-12)`, the worst over the elements.
fn max_rel(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / y.abs().max(1e-12)).fold(0.0, f64::max)
}

/// The decoder of `make_block_grads.py`'s `loss`, on the tape: returns the loss and each weight's leaf.
fn decoder(fixture: &Value, tape: &mut Tape<f64>) -> (Var, BTreeMap<String, Var>) {
    let config = &fixture["config"];
    let get = |k: &str| config[k].as_f64().expect("a number");
    let (n_heads, n_kv_heads) = (get("n_heads") as usize, get("n_kv_heads") as usize);
    let head_dim = get("d_model") as usize / n_heads;
    let (eps, base) = (get("eps"), get("rope_base"));
    let mut w = BTreeMap::new();
    for (name, shape) in fixture["shapes"].as_object().expect("shapes") {
        let shape: Vec<usize> = integers(shape).into_iter().map(|d| d as usize).collect();
        let leaf = tape.leaf(numbers(&fixture["weights"][name]), &shape).expect("a weight");
        w.insert(name.clone(), leaf);
    }
    let tokens: Vec<u32> = integers(&fixture["tokens"]).into_iter().map(|t| t as u32).collect();
    let positions: Vec<usize> = integers(&fixture["positions"]).into_iter().map(|p| p as usize).collect();
    let targets = integers(&fixture["targets"]);
    assert!(targets.contains(&IGNORE_INDEX), "the fixture ignores a target");

    let t = &mut *tape;
    let x = t.embedding(w["token_embd"], &tokens).unwrap();
    let h = t.rms_norm(x, w["attn_norm"], eps).unwrap();
    let q = t.matmul_nt(h, w["attn_q"]).unwrap();
    let q = t.rope(q, &positions, head_dim, base).unwrap();
    let k = t.matmul_nt(h, w["attn_k"]).unwrap();
    let k = t.rope(k, &positions, head_dim, base).unwrap();
    let v = t.matmul_nt(h, w["attn_v"]).unwrap();
    let a = t.causal_attention(q, k, v, n_heads, n_kv_heads).unwrap();
    let a = t.matmul_nt(a, w["attn_output"]).unwrap();
    let x = t.add(x, a).unwrap();
    let h = t.rms_norm(x, w["ffn_norm"], eps).unwrap();
    let gate = t.matmul_nt(h, w["ffn_gate"]).unwrap();
    let up = t.matmul_nt(h, w["ffn_up"]).unwrap();
    let f = t.swiglu(gate, up).unwrap();
    let f = t.matmul_nt(f, w["ffn_down"]).unwrap();
    let x = t.add(x, f).unwrap();
    let h = t.rms_norm(x, w["output_norm"], eps).unwrap();
    let logits = t.matmul_nt(h, w["token_embd"]).unwrap();
    let loss = t.cross_entropy(logits, &targets, IGNORE_INDEX).unwrap();
    (loss, w)
}

#[test]
fn a_smollm2_block_s_loss_and_every_weight_s_gradient_match_jax_in_f64() {
    let fixture: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("block_grads.json")).unwrap()).unwrap();
    let mut tape = Tape::<f64>::new();
    let (loss, weights) = decoder(&fixture, &mut tape);
    let expected_loss = fixture["loss"].as_f64().unwrap();
    let loss_err = max_rel(tape.value(loss), &[expected_loss]);
    assert!(loss_err < REF_TOL, "loss {} vs JAX {expected_loss}: relative {loss_err:e}", tape.value(loss)[0]);

    let grads = tape.backward(loss).unwrap();
    let mut worst = (String::new(), 0.0);
    for (name, var) in &weights {
        let expected = numbers(&fixture["grads"][name]);
        let got = grads.get(*var).unwrap_or_else(|| panic!("no gradient for {name}"));
        let err = max_rel(got, &expected);
        assert!(err < REF_TOL, "{name}: relative difference {err:e} from JAX");
        // The tied embedding collects from the lookup and the output head: neither alone matches.
        assert!(expected.iter().any(|g| *g != 0.0), "{name}: the fixture's gradient is all zeros");
        if err > worst.1 {
            worst = (name.clone(), err);
        }
    }
    eprintln!("worst relative difference from JAX: {:e} ({})", worst.1, worst.0);
    crate::fixture_check::fixtures_still_match(&fixtures().join("make_block_grads.py"));
}
