//! Encryption at rest: ChaCha20-Poly1305 (RFC 8439) with a fresh random 96-bit nonce per sealed file,
//! the key given raw (32 bytes) or derived from a passphrase with Argon2id (RFC 9106, version 0x13).
//!
//! **Whole-file AEAD, not STREAM.** A sealed file is one AEAD message: sealing and opening hold the
//! file in memory (fine for models up to a few hundred MB), and a file is authenticated as a whole —
//! no chunk can be released before the tag of the whole file verified. Opening writes the plaintext
//! to a temp file and renames it into place only after the tag verified, so a wrong key, a tampered
//! byte or a truncation never leaves decrypted bytes on disk.
//!
//! Sealed file format, version 1 (integers little-endian):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 7 | magic `SOVSEAL` |
//! | 7 | 1 | format version, `1` |
//! | 8 | 1 | KDF: `0` raw key, `1` Argon2id v0x13 |
//! | (KDF 1) 9 | 4+4+4 | `m_cost` (KiB), `t_cost` (passes), `p_cost` (lanes) |
//! | (KDF 1) 21 | 1 + n | salt length `n` (16), salt |
//! | then | 12 | nonce |
//! | then | rest | ciphertext, then the 16-byte Poly1305 tag |
//!
//! The associated data is given by the caller; for registry artefacts it is [`artefact_aad`]:
//! the 32-byte manifest digest followed by the artefact's name, so a ciphertext cannot be moved to
//! another artefact or another version. Header fields are not in the associated data, but each one
//! either selects the key (KDF, parameters, salt) or is the nonce, so changing one fails the tag.
//! KDF parameters read from a file are bounded ([`MAX_M_COST_KIB`], [`MAX_T_COST`], [`MAX_P_COST`])
//! so a hostile header cannot make opening allocate or compute without limit.

use std::fs;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use chacha20poly1305::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};

use super::atomic::{TempGuard, commit_temp, create_temp, io_err, os_random};
use super::store::Digest;
use crate::Error;

/// The magic that opens every sealed file.
pub const SEAL_MAGIC: &[u8; 7] = b"SOVSEAL";
/// The sealed-file format version written and read.
pub const SEAL_VERSION: u8 = 1;
/// Largest Argon2 memory cost accepted from a file header (2 GiB).
pub const MAX_M_COST_KIB: u32 = 2 * 1024 * 1024;
/// Largest Argon2 pass count accepted from a file header.
pub const MAX_T_COST: u32 = 64;
/// Largest Argon2 lane count accepted from a file header.
pub const MAX_P_COST: u32 = 64;
/// Salt length written (bytes).
pub const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

// ANCHOR: kdf
/// Argon2id cost parameters (RFC 9106 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB (at least `8 * p_cost`).
    pub m_cost_kib: u32,
    /// Passes over memory.
    pub t_cost: u32,
    /// Lanes.
    pub p_cost: u32,
}

impl Default for KdfParams {
    /// RFC 9106's second recommended option: 64 MiB, 3 passes (one lane: this build derives serially).
    fn default() -> Self {
        Self { m_cost_kib: 64 * 1024, t_cost: 3, p_cost: 1 }
    }
}
// ANCHOR_END: kdf

/// The key of a sealed file.
#[derive(Clone)]
pub enum SealKey {
    /// A raw 32-byte ChaCha20-Poly1305 key.
    Raw([u8; 32]),
    /// A passphrase; sealing derives the key with Argon2id and `params` and a random salt; opening uses
    /// the parameters and salt in the file's header.
    Passphrase {
        /// The passphrase bytes (UTF-8 or not).
        passphrase: Vec<u8>,
        /// The cost parameters used when sealing.
        params: KdfParams,
    },
}

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Raw(_) => f.write_str("SealKey::Raw(..)"),
            Self::Passphrase { params, .. } => write!(f, "SealKey::Passphrase {{ params: {params:?}, .. }}"),
        }
    }
}

impl SealKey {
    /// A passphrase key with the default (RFC 9106) cost parameters.
    pub fn passphrase(passphrase: impl Into<Vec<u8>>) -> Self {
        Self::Passphrase { passphrase: passphrase.into(), params: KdfParams::default() }
    }
}

/// The associated data binding a sealed artefact to its version and name: manifest digest (32 bytes) || name.
pub fn artefact_aad(manifest: &Digest, artefact: &str) -> Vec<u8> {
    let mut aad = manifest.0.to_vec();
    aad.extend_from_slice(artefact.as_bytes());
    aad
}

/// The parsed header of a sealed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealHeader {
    /// `None` for a raw key; the parameters and salt for Argon2id.
    pub kdf: Option<(KdfParams, Vec<u8>)>,
    /// The 96-bit nonce.
    pub nonce: [u8; 12],
    /// Length of the header (where the ciphertext starts).
    pub len: usize,
}

fn header_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::RegistrySealedHeader { path: path.to_path_buf(), reason: reason.into() }
}

/// Parses and bounds-checks the header of a sealed file's bytes (`path` names it in errors).
pub fn parse_header(b: &[u8], path: &Path) -> Result<SealHeader, Error> {
    if b.len() < 9 {
        return Err(header_err(path, format!("{} bytes is shorter than the 9-byte preamble", b.len())));
    }
    if &b[..7] != SEAL_MAGIC {
        return Err(header_err(path, "bad magic (not a sealed file)"));
    }
    if b[7] != SEAL_VERSION {
        return Err(header_err(
            path,
            format!("format version {} is not supported (this reader knows {SEAL_VERSION})", b[7]),
        ));
    }
    let mut at = 9;
    let kdf = match b[8] {
        0 => None,
        1 => {
            if b.len() < at + 13 {
                return Err(header_err(path, "truncated in the KDF parameters"));
            }
            let u = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            let params = KdfParams { m_cost_kib: u(at), t_cost: u(at + 4), p_cost: u(at + 8) };
            let salt_len = b[at + 12] as usize;
            at += 13;
            check_params(&params).map_err(|r| header_err(path, r))?;
            if !(8..=64).contains(&salt_len) {
                return Err(header_err(path, format!("salt length {salt_len} outside 8..=64")));
            }
            if b.len() < at + salt_len {
                return Err(header_err(path, "truncated in the salt"));
            }
            let salt = b[at..at + salt_len].to_vec();
            at += salt_len;
            Some((params, salt))
        }
        k => return Err(header_err(path, format!("unknown KDF id {k}"))),
    };
    if b.len() < at + NONCE_LEN + TAG_LEN {
        return Err(header_err(path, "truncated: no room for the nonce and the tag"));
    }
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&b[at..at + NONCE_LEN]);
    Ok(SealHeader { kdf, nonce, len: at + NONCE_LEN })
}

fn check_params(p: &KdfParams) -> Result<(), String> {
    if p.p_cost == 0 || p.p_cost > MAX_P_COST {
        return Err(format!("Argon2 p_cost {} outside 1..={MAX_P_COST}", p.p_cost));
    }
    if p.t_cost == 0 || p.t_cost > MAX_T_COST {
        return Err(format!("Argon2 t_cost {} outside 1..={MAX_T_COST}", p.t_cost));
    }
    if p.m_cost_kib < 8 * p.p_cost || p.m_cost_kib > MAX_M_COST_KIB {
        return Err(format!("Argon2 m_cost {} KiB outside {}..={MAX_M_COST_KIB}", p.m_cost_kib, 8 * p.p_cost));
    }
    Ok(())
}

/// Derives a 32-byte key from a passphrase with Argon2id v0x13.
pub fn derive_key(passphrase: &[u8], salt: &[u8], params: &KdfParams) -> Result<[u8; 32], Error> {
    check_params(params).map_err(|reason| Error::RegistryInvalid {
        what: "Argon2 parameters",
        value: format!("{params:?}"),
        reason,
    })?;
    let p = Params::new(params.m_cost_kib, params.t_cost, params.p_cost, Some(32)).map_err(|e| {
        Error::RegistryInvalid { what: "Argon2 parameters", value: format!("{params:?}"), reason: e.to_string() }
    })?;
    let mut out = [0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, p)
        .hash_password_into(passphrase, salt, &mut out)
        .map_err(|e| Error::RegistryInvalid { what: "Argon2 input", value: String::new(), reason: e.to_string() })?;
    Ok(out)
}

/// Seals `plain` (moved in: it is encrypted in place) with `key`, binding `aad`; returns the sealed file's bytes.
pub fn seal_bytes(mut plain: Vec<u8>, key: &SealKey, aad: &[u8]) -> Result<Vec<u8>, Error> {
    let mut header = Vec::with_capacity(64);
    header.extend_from_slice(SEAL_MAGIC);
    header.push(SEAL_VERSION);
    let raw = match key {
        SealKey::Raw(k) => {
            header.push(0);
            *k
        }
        SealKey::Passphrase { passphrase, params } => {
            let mut salt = [0u8; SALT_LEN];
            os_random(&mut salt)?;
            let k = derive_key(passphrase, &salt, params)?;
            header.push(1);
            header.extend_from_slice(&params.m_cost_kib.to_le_bytes());
            header.extend_from_slice(&params.t_cost.to_le_bytes());
            header.extend_from_slice(&params.p_cost.to_le_bytes());
            header.push(SALT_LEN as u8);
            header.extend_from_slice(&salt);
            k
        }
    };
    let mut nonce = [0u8; NONCE_LEN];
    os_random(&mut nonce)?;
    header.extend_from_slice(&nonce);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&raw));
    let tag = cipher.encrypt_in_place_detached(Nonce::from_slice(&nonce), aad, &mut plain).map_err(|_| {
        Error::RegistryInvalid {
            what: "plaintext",
            value: String::new(),
            reason: "too long for one ChaCha20-Poly1305 message".into(),
        }
    })?;
    // The ciphertext moves up in its own buffer to make room for the header: growing a large buffer
    // remaps its pages instead of allocating and faulting in a second one.
    let body = plain.len();
    plain.reserve_exact(header.len() + TAG_LEN);
    plain.resize(body + header.len(), 0);
    plain.copy_within(..body, header.len());
    plain[..header.len()].copy_from_slice(&header);
    plain.extend_from_slice(&tag);
    Ok(plain)
}

/// Opens a sealed file's bytes (moved in: decrypted in place); `path` names it in errors.
/// Returns the plaintext only when the tag verified.
pub fn open_bytes(mut sealed: Vec<u8>, key: &SealKey, aad: &[u8], path: &Path) -> Result<Vec<u8>, Error> {
    let h = parse_header(&sealed, path)?;
    let raw = match (&h.kdf, key) {
        (None, SealKey::Raw(k)) => *k,
        (Some((params, salt)), SealKey::Passphrase { passphrase, .. }) => derive_key(passphrase, salt, params)?,
        (None, SealKey::Passphrase { .. }) => {
            return Err(header_err(path, "sealed with a raw key, a passphrase was given"));
        }
        (Some(_), SealKey::Raw(_)) => return Err(header_err(path, "sealed with a passphrase, a raw key was given")),
    };
    let tag_at = sealed.len() - TAG_LEN;
    let tag = *Tag::from_slice(&sealed[tag_at..]);
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&raw));
    let body = &mut sealed[h.len..tag_at];
    cipher
        .decrypt_in_place_detached(Nonce::from_slice(&h.nonce), aad, body, &tag)
        .map_err(|_| Error::RegistryDecrypt { path: path.to_path_buf() })?;
    sealed.truncate(tag_at);
    sealed.drain(..h.len);
    Ok(sealed)
}

/// Seals the file `src` into `dest` (written atomically).
pub fn seal_file(src: &Path, dest: &Path, key: &SealKey, aad: &[u8]) -> Result<(), Error> {
    let plain = fs::read(src).map_err(io_err(src))?;
    let sealed = seal_bytes(plain, key, aad)?;
    super::atomic::write_atomic(dest, &sealed, 0o644)
}

/// Opens the sealed file `src` into `dest`: decrypts in memory, and only after the tag verified writes
/// a temp file beside `dest` (mode 0600), fsyncs and renames it. Returns the plaintext length.
pub fn open_file(src: &Path, dest: &Path, key: &SealKey, aad: &[u8]) -> Result<u64, Error> {
    let sealed = fs::read(src).map_err(io_err(src))?;
    let plain = open_bytes(sealed, key, aad, src)?;
    write_plain(dest, &plain)?;
    Ok(plain.len() as u64)
}

/// Writes verified plaintext to `dest` through a 0600 temp file and a rename.
pub(crate) fn write_plain(dest: &Path, plain: &[u8]) -> Result<(), Error> {
    use std::io::Write;
    let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let (temp, mut file) = create_temp(dir, 0o600)?;
    let mut guard = TempGuard(Some(temp.clone()));
    file.write_all(plain).and_then(|()| file.sync_all()).map_err(io_err(&temp))?;
    drop(file);
    commit_temp(&temp, dest)?;
    guard.keep();
    Ok(())
}
