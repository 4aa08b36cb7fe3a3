//! GPT-2's byte-to-unicode mapping (Radford et al. 2019, `bytes_to_unicode` in OpenAI's `encoder.py`).
//!
//! Byte-level BPE works on bytes, so any text (any language, emoji, even invalid UTF-8) can be encoded without an
//! unknown token. Its vocabulary is stored as strings, though, and a raw byte such as `0x20` (space) or `0x0A`
//! (newline) would be awkward in a merges file. GPT-2 therefore maps each of the 256 byte values to a printable
//! character: the 188 bytes that are already printable and not whitespace (`!`..=`~`, `¡`..=`¬`, `®`..=`ÿ`) map to
//! themselves, and the other 68 map, in byte order, to U+0100, U+0101, …  So the space is `Ġ` (U+0120) and the
//! newline `Ċ` (U+010A), which is why vocabularies are full of `Ġthe`.

/// The character each byte maps to.
pub const BYTE_TO_CHAR: [char; 256] = byte_to_char_table();

const fn is_printable_byte(b: u8) -> bool {
    matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF)
}

const fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    let mut b = 0usize;
    while b < 256 {
        let code = if is_printable_byte(b as u8) {
            b as u32
        } else {
            let c = next;
            next += 1;
            c
        };
        table[b] = match char::from_u32(code) {
            Some(c) => c,
            None => panic!("every mapped code point is below U+0144"),
        };
        b += 1;
    }
    table
}

/// The byte a character stands for, if it is one of the 256 mapped characters.
#[inline]
pub fn char_to_byte(c: char) -> Option<u8> {
    let u = c as u32;
    if u < 256 {
        is_printable_byte(u as u8).then_some(u as u8)
    } else if u < 256 + 68 {
        Some(NON_PRINTABLE[(u - 256) as usize])
    } else {
        None
    }
}

/// The 68 non-printable bytes, in the order they were given U+0100 onwards.
const NON_PRINTABLE: [u8; 68] = non_printable_bytes();

const fn non_printable_bytes() -> [u8; 68] {
    let mut out = [0u8; 68];
    let mut n = 0;
    let mut b = 0usize;
    while b < 256 {
        if !is_printable_byte(b as u8) {
            out[n] = b as u8;
            n += 1;
        }
        b += 1;
    }
    out
}

/// Maps bytes to their characters: the form in which byte-level vocabularies and merges are written.
pub fn bytes_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| BYTE_TO_CHAR[b as usize]).collect()
}

/// Maps a byte-level string back to bytes; `None` when it holds a character outside the 256.
pub fn string_to_bytes(text: &str) -> Option<Vec<u8>> {
    text.chars().map(char_to_byte).collect()
}
