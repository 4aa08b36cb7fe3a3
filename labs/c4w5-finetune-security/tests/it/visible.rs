//! Visible tests of week c4w5 (the grader runs them too): one or two quick checks per task.

use c4w5_finetune_security::gradcheck::{GradCheckConfig, gradcheck};
use c4w5_finetune_security::lora::{LoraConfig, LoraLinear};
use c4w5_finetune_security::optim::{AdamW, AdamWConfig, clip_grad_norm};
use c4w5_finetune_security::tape::{Tape, add_row_backward, matmul_backward};
use c4w5_finetune_security::typestate::{Artifact, SecretKey};
use c4w5_finetune_security::xent::{IGNORE_INDEX, cross_entropy};
use c4w5_finetune_security::{Error, Result};

/// Asserts `got` equals `want` value by value within `tol`.
fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, expected {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= tol, "{what}[{i}] = {g}, expected {w}");
    }
}

graded! {
    /// A 2×3 by 3×2 product: the gradients of sum(A·B + r) worked out by hand.
    fn matmul_backward_by_hand() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0, -1.0, 0.5, 2.0, -2.0, 0.0];
        // dC = ones(2×2): dA[i][p] = Σ_j B[p][j], dB[p][j] = Σ_i A[i][p].
        let (da, db) = matmul_backward(&a, &b, &[1.0; 4], 2, 3, 2);
        close(&da, &[0.0, 2.5, -2.0, 0.0, 2.5, -2.0], 1e-15, "dA");
        close(&db, &[5.0, 5.0, 7.0, 7.0, 9.0, 9.0], 1e-15, "dB");
        let (dx, dr) = add_row_backward(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2);
        close(&dx, &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 0.0, "dX");
        close(&dr, &[9.0, 12.0], 0.0, "dr");
        // Through the tape: L = sum(A·B + r); dL/dr = [2, 2] (two rows).
        let mut tape = Tape::new();
        let (va, vb) = (tape.leaf(a.to_vec(), 2, 3).unwrap(), tape.leaf(b.to_vec(), 3, 2).unwrap());
        let vr = tape.leaf(vec![0.1, 0.2], 1, 2).unwrap();
        let c = tape.matmul(va, vb).unwrap();
        let y = tape.add_row(c, vr).unwrap();
        let loss = tape.sum(y).unwrap();
        let grads = tape.backward(loss).unwrap();
        close(grads.get(vr).unwrap(), &[2.0, 2.0], 0.0, "dr through the tape");
        close(grads.get(va).unwrap(), &da, 1e-15, "dA through the tape");
    }

    /// Two rows, one ignored: the loss is the counted row's alone, the ignored row's gradient zero.
    fn softmax_xent_by_hand() {
        let logits = [0.0, 0.0, 0.0, 0.0, 5.0, -1.0, 2.0, 0.0];
        let x = cross_entropy(&logits, 4, &[2, IGNORE_INDEX], IGNORE_INDEX).unwrap();
        assert_eq!(x.count, 1);
        assert!((x.loss - 4f64.ln()).abs() < 1e-15, "uniform logits over 4 tokens: ln 4, got {}", x.loss);
        close(&x.grad, &[0.25, 0.25, -0.75, 0.25, 0.0, 0.0, 0.0, 0.0], 1e-15, "gradient");
        let none = cross_entropy(&logits, 4, &[IGNORE_INDEX, IGNORE_INDEX], IGNORE_INDEX).unwrap();
        assert_eq!((none.loss, none.count), (0.0, 0));
        assert!(none.grad.iter().all(|&g| g == 0.0));
        assert!(matches!(cross_entropy(&logits, 4, &[4, 0], IGNORE_INDEX), Err(Error::InvalidInput(_))));
        assert!(matches!(cross_entropy(&logits, 3, &[0, 0], IGNORE_INDEX), Err(Error::Shape { .. })));
    }

    /// f(x, y) = x²·y: a right gradient passes, a wrong one is caught at the right place.
    fn gradcheck_by_hand() {
        let f = |v: &[Vec<f64>]| -> Result<f64> { Ok(v[0][0] * v[0][0] * v[1][0] + v[0][1]) };
        let inputs = vec![vec![1.5, -0.5], vec![2.0]];
        let right = vec![vec![2.0 * 1.5 * 2.0, 1.0], vec![1.5 * 1.5]];
        let ok = gradcheck(&inputs, &right, GradCheckConfig::default(), f).unwrap();
        assert!(ok.max_rel < 1e-8, "max_rel {}", ok.max_rel);
        assert!((ok.loss - 4.0).abs() < 1e-15);
        let wrong = vec![vec![2.0 * 1.5 * 2.0, 1.0], vec![1.5]];
        let bad = gradcheck(&inputs, &wrong, GradCheckConfig::default(), f).unwrap();
        assert!(bad.max_rel > 0.3, "max_rel {}", bad.max_rel);
        assert_eq!((bad.worst_input, bad.worst_index), (1, 0));
    }

    /// AdamW's first step moves every value by about lr against its gradient's sign; clipping scales.
    fn adamw_by_hand() {
        let config = AdamWConfig { lr: 0.1, weight_decay: 0.0, ..AdamWConfig::default() };
        let mut opt = AdamW::new(config, &[3]).unwrap();
        let mut params = vec![vec![1.0, 1.0, 1.0]];
        opt.step(&mut params, &[vec![0.5, -2.0, 0.0]]).unwrap();
        close(&params[0], &[0.9, 1.1, 1.0], 1e-7, "after one step");
        assert_eq!(opt.steps(), 1);
        assert!(matches!(opt.step(&mut params, &[vec![1.0]]), Err(Error::Shape { .. })));
        let mut grads = vec![vec![3.0], vec![4.0]];
        assert_eq!(clip_grad_norm(&mut grads, 1.0).unwrap(), 5.0);
        close(&grads.concat(), &[0.6, 0.8], 1e-15, "clipped");
    }

    /// A zero B gives the base layer's output; a merged adapter gives the adapter's.
    fn lora_by_hand() {
        let w = vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0]; // 3 × 2
        let mut layer = LoraLinear::new(w, 3, 2, LoraConfig { rank: 1, alpha: 2.0, seed: 1 }).unwrap();
        let x = [1.0, 2.0];
        close(&layer.forward(&x, 1).unwrap(), &[1.0, 2.0, 3.0], 1e-15, "B = 0: the base output");
        layer.b_mut().copy_from_slice(&[1.0, 0.0, -1.0]);
        let a = layer.a().to_vec();
        let xa = a[0] + 2.0 * a[1];
        let want = [1.0 + 2.0 * xa, 2.0, 3.0 - 2.0 * xa];
        let y = layer.forward(&x, 1).unwrap();
        close(&y, &want, 1e-14, "with the adapter");
        let g = layer.backward(&x, 1, &[1.0, 0.0, 0.0]).unwrap();
        close(&g.b, &[2.0 * xa, 0.0, 0.0], 1e-14, "dB");
        close(&g.a, &[2.0, 4.0], 1e-14, "dA");
        layer.merge().unwrap();
        close(&layer.forward(&x, 1).unwrap(), &want, 1e-14, "merged");
        assert!(matches!(layer.merge(), Err(Error::InvalidInput(_))));
        layer.unmerge().unwrap();
        close(layer.w(), &[1.0, 0.0, 0.0, 1.0, 1.0, 1.0], 1e-15, "unmerged W");
    }

    /// Signed bytes verify and can be read; one changed byte or another key is refused.
    fn typestate_by_hand() {
        let key = SecretKey::from_seed([1; 32]);
        let bytes = b"adapter_model.safetensors".to_vec();
        let signature = key.sign(&bytes);
        let verified = Artifact::new(bytes.clone(), signature).verify(&key.public_key()).unwrap();
        assert_eq!(verified.bytes(), &bytes[..]);
        assert_eq!(verified.signer(), key.public_key());
        let mut tampered = bytes.clone();
        tampered[0] ^= 1;
        assert!(matches!(Artifact::new(tampered, signature).verify(&key.public_key()), Err(Error::BadSignature { .. })));
        let other = SecretKey::from_seed([2; 32]).public_key();
        assert!(matches!(Artifact::new(bytes, signature).verify(&other), Err(Error::BadSignature { .. })));
    }
}
