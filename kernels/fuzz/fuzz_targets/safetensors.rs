//! Fuzzes `kernels::formats::Safetensors` parsing arbitrary bytes: it returns a value or a typed error (no
//! panic, no allocation beyond libFuzzer's `-malloc_limit_mb`); a parsed file's tensor views lie inside the
//! buffer and tile its data section exactly, every `__metadata__` entry reads, and every tensor converts to f32
//! or refuses with an error.
#![no_main]

use kernels::formats::{Dtype, Safetensors};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `from_vec` keeps this buffer (moving a Vec does not move its heap allocation), so the views can be
    // checked against its address range.
    let owned = data.to_vec();
    let whole = owned.as_ptr_range();
    let Ok(st) = Safetensors::from_vec(owned) else { return };
    // An 8-byte length, then that many bytes of JSON header.
    let header_len = u64::from_le_bytes(data[..8].try_into().expect("a parsed file has a length prefix"));
    assert_eq!(st.data_offset() as u64, 8 + header_len);

    for (key, value) in st.metadata() {
        let _ = (key.len(), value.len());
    }

    // The views, in data order, cover the data section without a gap or an overlap.
    let mut next = st.data_offset();
    for view in st.tensors() {
        let info = view.info;
        let (begin, end) = info.data_offsets;
        assert_eq!(view.bytes.len() as u64, end - begin, "tensor {:?}", info.name);
        assert_eq!(info.n_elements() * view.dtype().size() as u64, end - begin);
        let range = view.bytes.as_ptr_range();
        assert!(whole.start <= range.start && range.end <= whole.end, "tensor {:?} outside the buffer", info.name);
        let start = range.start as usize - whole.start as usize;
        assert_eq!(start, st.data_offset() + begin as usize);
        assert_eq!(start, next, "tensor {:?} does not start where the previous one ends", info.name);
        next = start + view.bytes.len();

        let same = st.tensor(&info.name).expect("a listed tensor is found by name");
        assert!(std::ptr::eq(same.info, info));
        match view.to_f32() {
            Ok(values) => assert_eq!(values.len() as u64, info.n_elements()),
            Err(_) => assert!(!matches!(view.dtype(), Dtype::F32 | Dtype::F16 | Dtype::BF16)),
        }
        if let Some(floats) = view.as_f32_slice() {
            assert_eq!(floats.len() as u64, info.n_elements());
        }
        let _ = (view.name(), view.shape(), view.dtype().name());
    }
    assert_eq!(next, data.len(), "the tensors do not cover the data section");
});
