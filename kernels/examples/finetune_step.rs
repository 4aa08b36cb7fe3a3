//! QLoRA step time on SmolLM2-135M-Instruct (Q4_1): forward + backward + AdamW of LoRA adapters over
//! the quantised base, per token, for a few sequence lengths; and the trainable state's memory against
//! the base model's f32 size.
//!
//! `cargo run --release -p kernels --features finetune --example finetune_step`

use std::time::Instant;

use kernels::train::autograd::Tape;
use kernels::train::decoder::LoraDecoder;
use kernels::train::lora::{LoraConfig, LoraMode, LoraTarget};
use kernels::train::optim::{AdamWConfig, Optimizer};

fn main() -> kernels::Result<()> {
    let path = datasets::models::file_path("smollm2-135m-instruct", "SmolLM2-135M-Instruct.Q4_1.gguf")
        .unwrap_or_else(|e| panic!("{e}"));
    let config = LoraConfig { rank: 8, alpha: 16.0, dropout: 0.05, targets: LoraTarget::ALL.to_vec(), seed: 0 };
    let mut dec = LoraDecoder::load(&path, config)?;
    let vocab = dec.config().vocab_size as u32;
    let mut opt = Optimizer::new(AdamWConfig { lr: 1e-3, ..AdamWConfig::default() }, dec.params())?;
    let trainable: usize = dec.params().iter().map(|p| p.len()).sum();
    println!(
        "trainable {trainable} values: {:.2} MB as parameter + AdamW m, v + gradient (f32); base model in f32 {:.1} MB ({} threads)",
        (16 * trainable) as f64 / 1e6,
        dec.base_f32_bytes() as f64 / 1e6,
        rayon::current_num_threads()
    );
    let mut tape = Tape::new();
    let mut step = 0u64;
    for len in [8usize, 32, 128] {
        let tokens: Vec<u32> = (0..len as u32).map(|i| (i * 7919 + 11) % vocab).collect();
        let targets = LoraDecoder::next_token_targets(&tokens);
        let reps = 3;
        let (mut fwd, mut bwd) = (0.0f64, 0.0f64);
        let mut loss = 0.0;
        for _ in 0..reps {
            tape.clear();
            let t0 = Instant::now();
            let pass = dec.loss(&mut tape, &tokens, &targets, LoraMode::Train { seed: step })?;
            let l = pass.loss.expect("loss() sets the loss");
            let t1 = Instant::now();
            let mut grads = tape.backward(l)?;
            let g = pass.param_grads(&tape, &mut grads);
            opt.step(dec.params_mut(), &g)?;
            let t2 = Instant::now();
            fwd += (t1 - t0).as_secs_f64();
            bwd += (t2 - t1).as_secs_f64();
            loss = tape.value(l)[0];
            step += 1;
        }
        let per = |s: f64| s / (reps * len) as f64 * 1e3;
        println!(
            "{len:4} tokens: forward {:.1} ms/token, backward+step {:.1} ms/token, total {:.1} ms/token (loss {loss:.3})",
            per(fwd),
            per(bwd),
            per(fwd + bwd)
        );
    }
    Ok(())
}
