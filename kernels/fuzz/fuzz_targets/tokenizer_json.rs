//! Fuzzes `kernels::tokenize` loading a Hugging Face `tokenizer.json` from arbitrary bytes, as byte-level BPE
//! (`Bpe::from_tokenizer_json_str`) and as WordPiece (`WordPiece::from_tokenizer_json_str`): loading returns a
//! tokenizer or a typed error (no panic, no allocation beyond libFuzzer's `-malloc_limit_mb`), and a tokenizer
//! that loads encodes a short fixed text to ids inside its vocabulary, which decode without error.
#![no_main]

use kernels::tokenize::{Bpe, WordPiece};
use libfuzzer_sys::fuzz_target;

/// Text to encode: ASCII, digits, accents, CJK, an emoji, and special tokens of both families.
const TEXT: &str = "<|im_start|>Hello, wörld 2024! Café [CLS] 你好 🦀 don't [SEP]<|im_end|>";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(bpe) = Bpe::from_tokenizer_json_str(text) {
        for ids in [bpe.encode(TEXT), bpe.encode_ordinary(TEXT)] {
            for &id in &ids {
                assert!(bpe.token(id).is_some(), "BPE encode gave id {id}, vocabulary {}", bpe.vocab_size());
            }
            bpe.decode(&ids).expect("ids from encode decode");
            bpe.decode_skipping_special(&ids).expect("ids from encode decode");
        }
    }
    if let Ok(wp) = WordPiece::from_tokenizer_json_str(text) {
        let encoding = wp.encode(TEXT);
        assert_eq!(encoding.ids.len(), encoding.attention_mask.len());
        assert_eq!(encoding.ids.len(), encoding.type_ids.len());
        for ids in [encoding.ids, wp.tokenize(TEXT)] {
            for &id in &ids {
                assert!(wp.token(id).is_some(), "WordPiece encode gave id {id}, vocabulary {}", wp.vocab_size());
            }
            wp.decode(&ids).expect("ids from encode decode");
        }
        let _ = wp.normalize(TEXT);
    }
});
