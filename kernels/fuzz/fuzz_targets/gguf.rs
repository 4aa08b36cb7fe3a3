//! Fuzzes `kernels::formats::Gguf::parse` on arbitrary bytes: it returns a value or a typed error (no panic,
//! no allocation beyond libFuzzer's `-malloc_limit_mb`); a parsed file's tensor views lie inside the buffer,
//! aligned and disjoint, every metadata value reads through every accessor, every tensor converts or refuses
//! with an error, and the BPE tokenizer built from the metadata (when there is one) encodes and decodes.
#![no_main]

use kernels::formats::Gguf;
use kernels::formats::gguf::TensorKind;
use kernels::tokenize::Bpe;
use libfuzzer_sys::fuzz_target;

/// Text for the tokenizer: ASCII, digits, non-ASCII letters, an emoji, a ChatML special token.
const TEXT: &str = "<|im_start|>user\nHello, wörld 2024! 你好 🦀 don't<|im_end|>";

fuzz_target!(|data: &[u8]| {
    let Ok(gguf) = Gguf::parse(data) else { return };
    assert!(gguf.version() == 2 || gguf.version() == 3);
    assert!(gguf.alignment().is_power_of_two());
    let buf = gguf.as_bytes();
    assert_eq!(buf, data);

    check_metadata(&gguf);
    check_tensors(&gguf);

    if let Ok(bpe) = Bpe::from_gguf(&gguf) {
        check_bpe(&bpe);
    }
});

fn check_metadata(gguf: &Gguf) {
    for (key, value) in gguf.metadata_entries() {
        // Keys are unique, so the lookup finds this very entry.
        assert!(gguf.metadata(key).is_some_and(|v| std::ptr::eq(v, value)));
        let _ = value.value_type().name();
        let _ = value.type_description();
        let _ = (value.as_str(), value.as_u32(), value.as_u64(), value.as_i64());
        let _ = (value.as_f32(), value.as_f64(), value.as_bool());
        let _ = (value.as_string_array(), value.as_i32_array(), value.as_u32_array(), value.as_f32_array());
        if let Some(array) = value.as_array() {
            let _ = array.element_type().name();
            assert_eq!(array.is_empty(), array.len() == 0);
        }
        let _ = format!("{value:?}");
        // The typed getters agree with the accessors.
        assert_eq!(gguf.get_str(key).ok(), value.as_str());
        assert_eq!(gguf.get_u32(key).ok(), value.as_u32());
        assert_eq!(gguf.get_u64(key).ok(), value.as_u64());
        assert_eq!(gguf.get_bool(key).ok(), value.as_bool());
        assert_eq!(gguf.get_string_array(key).ok(), value.as_string_array());
        assert_eq!(gguf.get_i32_array(key).ok(), value.as_i32_array());
        assert_eq!(gguf.get_u32_array(key).ok(), value.as_u32_array());
        assert_eq!(gguf.get_f32(key).is_ok(), value.as_f32().is_some());
        assert_eq!(gguf.get_f32_array(key).is_ok(), value.as_f32_array().is_some());
    }
    let _ = gguf.architecture();
}

fn check_tensors(gguf: &Gguf) {
    let buf = gguf.as_bytes();
    let whole = buf.as_ptr_range();
    let mut ranges = Vec::new();
    for view in gguf.tensors() {
        let info = view.info;
        assert_eq!(view.bytes.len() as u64, info.n_bytes, "tensor {:?}", info.name);
        assert_eq!(info.offset % gguf.alignment(), 0);
        assert_eq!(info.dims.iter().product::<u64>(), info.n_elements);
        assert_eq!(view.row_len() as u64 * view.rows() as u64, info.n_elements);
        if !view.bytes.is_empty() {
            // Inside the buffer, exactly where the table says.
            let range = view.bytes.as_ptr_range();
            assert!(whole.start <= range.start && range.end <= whole.end, "tensor {:?} outside the buffer", info.name);
            let start = range.start as usize - whole.start as usize;
            assert_eq!(start as u64, gguf.data_offset() as u64 + info.offset);
            ranges.push((start, start + view.bytes.len()));
        }
        let same = gguf.tensor(&info.name).expect("a listed tensor is found by name");
        assert!(std::ptr::eq(same.info, info));
        assert_eq!(same.bytes.as_ptr_range(), view.bytes.as_ptr_range());

        match view.to_f32() {
            Ok(values) => assert_eq!(values.len() as u64, info.n_elements),
            Err(_) => assert!(matches!(view.kind(), TensorKind::Other(_))),
        }
        if let Some(floats) = view.as_f32_slice() {
            assert_eq!(floats.len() as u64, info.n_elements);
        }
    }
    // No two tensors share a byte.
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "tensor data {:?} and {:?} overlap", pair[0], pair[1]);
    }
}

fn check_bpe(bpe: &Bpe) {
    for ids in [bpe.encode(TEXT), bpe.encode_ordinary(TEXT)] {
        for &id in &ids {
            assert!(bpe.token(id).is_some(), "encode gave id {id} outside a vocabulary of {}", bpe.vocab_size());
        }
        bpe.decode(&ids).expect("ids from encode decode");
        bpe.decode_skipping_special(&ids).expect("ids from encode decode");
    }
}
