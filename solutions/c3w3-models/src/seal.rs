//! Sealing artefacts with ChaCha20-Poly1305 (RFC 8439), an AEAD: one pass
//! encrypts and authenticates, and opening either returns the whole plaintext
//! or an error, never some of it.
//!
//! # The blob
//! `nonce (12 bytes) ‖ ciphertext (as long as the plaintext) ‖ tag (16 bytes)`.
//! The 96-bit nonce is **fresh and random for every seal**: a (key, nonce) pair
//! used twice leaks the XOR of the two plaintexts and lets an attacker forge
//! tags. Random 96-bit nonces are safe for far more messages than one key will
//! ever seal. (This is exactly the tail of the registry's sealed-file format,
//! `kernels::registry::seal`, after its 9-byte header for a raw key.)
//!
//! # Associated data
//! The tag also covers bytes that are not encrypted: here [`artefact_aad`], the
//! 32-byte manifest digest followed by the artefact's name. A ciphertext moved to
//! another artefact or another model version then fails to open, although its
//! key is right.
//!
//! # Opening
//! Too short to hold a nonce and a tag: [`Error::Truncated`]. Any failure of the
//! tag (a flipped byte anywhere, a wrong key, wrong associated data, a cut-off
//! tail): [`Error::Decrypt`]. The AEAD cannot tell these apart, and must not: the
//! error says nothing about which byte was wrong, and no plaintext is returned.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;

use crate::{Error, Result};

/// Nonce length (96 bits).
pub const NONCE_LEN: usize = 12;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;

// ANCHOR: aad
/// The associated data of an artefact: `manifest_digest (32 bytes) ‖ name (UTF-8)`
/// (task c3w3.seal-open).
pub fn artefact_aad(manifest_digest: &[u8; 32], name: &str) -> Vec<u8> {
    // BEGIN SOLUTION c3w3.seal-open
    let mut aad = manifest_digest.to_vec();
    aad.extend_from_slice(name.as_bytes());
    aad
    // END SOLUTION
}
// ANCHOR_END: aad

// ANCHOR: seal
/// Seals with a given nonce: `nonce ‖ ciphertext ‖ tag` (task c3w3.seal-open). Only
/// for tests against known vectors: real code calls [`seal`], which never reuses a nonce.
///
/// # Errors
/// [`Error::InvalidInput`] if the cipher refuses the input (longer than 256 GiB).
pub fn seal_with_nonce(key: &[u8; 32], nonce: &[u8; NONCE_LEN], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    // BEGIN SOLUTION c3w3.seal-open
    let cipher = ChaCha20Poly1305::new(Key::from_slice(key));
    let ct = cipher
        .encrypt(Nonce::from_slice(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| Error::InvalidInput("plaintext too long for one ChaCha20-Poly1305 message".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&ct);
    Ok(out)
    // END SOLUTION
}

/// Seals `plaintext` under `key`, binding `aad`, with a fresh random nonce from the
/// thread's cryptographically secure generator (`rand::rng()`) (task c3w3.seal-open,
/// 10 points with [`artefact_aad`], [`seal_with_nonce`] and [`open`]).
///
/// # Errors
/// As [`seal_with_nonce`].
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    // BEGIN SOLUTION c3w3.seal-open
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    seal_with_nonce(key, &nonce, plaintext, aad)
    // END SOLUTION
}
// ANCHOR_END: seal

// ANCHOR: open
/// Opens a sealed blob (task c3w3.seal-open): the plaintext, only if the tag verifies
/// under `key` and `aad`.
///
/// # Errors
/// [`Error::Truncated`] when `sealed` is shorter than `NONCE_LEN + TAG_LEN`;
/// [`Error::Decrypt`] for every other failure.
pub fn open(key: &[u8; 32], sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>> {
    // BEGIN SOLUTION c3w3.seal-open
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return Err(Error::Truncated { len: sealed.len(), min: NONCE_LEN + TAG_LEN });
    }
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    ChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad })
        .map_err(|_| Error::Decrypt)
    // END SOLUTION
}
// ANCHOR_END: open
