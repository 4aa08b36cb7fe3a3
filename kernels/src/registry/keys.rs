//! Ed25519 keys (RFC 8032) for the registry: key generation, key files, the pinned [`Keyring`], and
//! domain-separated signatures over canonical bytes.
//!
//! - A key id is the first 16 hex characters of BLAKE3(public key bytes).
//! - Key files are text: `#` comment lines and one line of 64 hex characters (the 32-byte public key, or
//!   the 32-byte secret seed). A keyring file is any number of public-key lines; a keyring folder is
//!   every `*.pub` file in it. A keyring file may also hold `revoked <16 hex key id>` lines: a revoked key
//!   is refused ([`Error::RegistryRevokedKey`]) whatever it signed, even when its public key is listed
//!   (in any file of the folder). Files without such lines read as before; a reader older than
//!   revocation refuses a file with one (it is not a key line), so revocation never fails open.
//!   Signing-key files are created `0600` with `create_new` and refused when
//!   group- or world-accessible.
//! - Every signature covers `domain || bytes`, with a distinct NUL-terminated domain per kind of signed
//!   thing ([`MANIFEST_DOMAIN`], [`PROMOTION_DOMAIN`]), so a signature can never be reused for another kind.
//! - Verification is `verify_strict` (canonical `S`, no small-order keys) and trusts only keys of the
//!   operator's keyring: a key that travels with a bundle is never trusted by itself.
//! - A stored signature ([`SignatureBlob`]) is 72 bytes: the 8-byte key id, then the 64-byte signature.
//! - A detached file signature ([`sign_file`], for data sets, bundles and reports that live outside a
//!   registry) covers the canonical statement `{"blake3":"<hex>","size":<bytes>}` of the file's contents:
//!   not its name, so a renamed copy still verifies and a changed byte never does.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use super::atomic::{io_err, os_random, sync_dir, write_atomic};
use super::store::{hex, unhex};
use crate::Error;

// ANCHOR: domains
/// Domain-separation prefix of manifest signatures.
pub const MANIFEST_DOMAIN: &[u8] = b"sovereign-registry/manifest/v1\0";
/// Domain-separation prefix of promotion-log entry signatures.
pub const PROMOTION_DOMAIN: &[u8] = b"sovereign-registry/promotion/v1\0";
/// Domain-separation prefix of detached file signatures ([`sign_file`]).
pub const FILE_DOMAIN: &[u8] = b"sovereign-registry/file/v1\0";
// ANCHOR_END: domains

/// A key id: the first 16 lowercase hex characters of BLAKE3 of the 32-byte public key.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

impl KeyId {
    /// The key id of a public key.
    pub fn of(public: &[u8; 32]) -> Self {
        Self(hex(&blake3::hash(public).as_bytes()[..8]))
    }

    /// Parses 16 lowercase hex characters.
    pub fn parse(s: &str) -> Result<Self, Error> {
        if s.len() == 16 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_string()))
        } else {
            Err(Error::RegistryInvalid {
                what: "key id",
                value: s.chars().take(64).collect(),
                reason: "expected 16 lowercase hex characters".into(),
            })
        }
    }

    /// The 16 hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 8 bytes the hex stands for.
    pub fn to_bytes(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        if let Some(b) = unhex(&self.0) {
            out.copy_from_slice(&b);
        }
        out
    }

    /// The key id of 8 raw bytes.
    pub fn from_bytes(b: [u8; 8]) -> Self {
        Self(hex(&b))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({})", self.0)
    }
}

/// A signing key with its key id (the secret is zeroised on drop by `ed25519-dalek`).
pub struct Signer {
    key: SigningKey,
    id: KeyId,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signer({})", self.id)
    }
}

impl Signer {
    /// A new random key from the operating system's random source.
    pub fn generate() -> Result<Self, Error> {
        let mut seed = [0u8; 32];
        os_random(&mut seed)?;
        let s = Self::from_seed(&seed);
        seed.fill(0);
        Ok(s)
    }

    /// The key of a 32-byte RFC 8032 secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let id = KeyId::of(&key.verifying_key().to_bytes());
        Self { key, id }
    }

    /// Loads a signing-key file, refusing one that group or others can access (Unix).
    pub fn load(path: &Path) -> Result<Self, Error> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(path).map_err(io_err(path))?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(Error::RegistryKeyFile {
                    path: path.to_path_buf(),
                    reason: format!("permissions {:o} let others read the signing key; chmod 600 it", mode & 0o777),
                });
            }
        }
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        let keys = key_lines(&text, path)?;
        match keys.as_slice() {
            [seed] => Ok(Self::from_seed(seed)),
            _ => Err(Error::RegistryKeyFile {
                path: path.to_path_buf(),
                reason: format!("expected one key line, found {}", keys.len()),
            }),
        }
    }

    /// This key's id.
    pub fn key_id(&self) -> &KeyId {
        &self.id
    }

    /// The 32-byte public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// Signs `domain || bytes`.
    pub fn sign(&self, domain: &[u8], bytes: &[u8]) -> SignatureBlob {
        let mut msg = Vec::with_capacity(domain.len() + bytes.len());
        msg.extend_from_slice(domain);
        msg.extend_from_slice(bytes);
        SignatureBlob { key_id: self.id.clone(), signature: self.key.sign(&msg).to_bytes() }
    }
}

/// Paths and id of a key pair written by [`keygen`].
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    /// The signing-key file (`<name>.key`, mode 0600).
    pub secret: PathBuf,
    /// The public-key file (`<name>.pub`), to copy into servers' keyrings.
    pub public: PathBuf,
    /// The key id.
    pub key_id: KeyId,
}

/// Generates a key pair into `dir`: `<name>.key` (created 0600, never overwritten) and `<name>.pub`.
pub fn keygen(dir: &Path, name: &str) -> Result<KeyPairFiles, Error> {
    super::manifest::check_name("key name", name)?;
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let signer = Signer::generate()?;
    let secret = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&secret).map_err(io_err(&secret))?;
    let text = format!(
        "# sovereign-registry ed25519 signing key (RFC 8032 seed), key id {}\n{}\n",
        signer.id,
        hex(signer.key.as_bytes())
    );
    file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io_err(&secret))?;
    drop(file);
    write_atomic(&public, public_key_text(&signer.public_key()).as_bytes(), 0o644)?;
    sync_dir(dir)?;
    Ok(KeyPairFiles { secret, public, key_id: signer.id.clone() })
}

/// The text of a public-key file for `public`.
pub fn public_key_text(public: &[u8; 32]) -> String {
    format!("# sovereign-registry ed25519 public key, key id {}\n{}\n", KeyId::of(public), hex(public))
}

/// The 32-byte values of a key file's non-comment lines.
fn key_lines(text: &str, path: &Path) -> Result<Vec<[u8; 32]>, Error> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bytes = unhex(line).filter(|b| b.len() == 32).ok_or_else(|| Error::RegistryKeyFile {
            path: path.to_path_buf(),
            reason: format!("line {}: expected 64 hex characters", i + 1),
        })?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&bytes);
        out.push(k);
    }
    Ok(out)
}

/// A stored signature: the signer's key id and the 64-byte Ed25519 signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureBlob {
    /// The key id of the signer.
    pub key_id: KeyId,
    /// The RFC 8032 signature (`R || S`).
    pub signature: [u8; 64],
}

impl SignatureBlob {
    /// Length of the stored form.
    pub const LEN: usize = 72;

    /// `key id (8 bytes) || signature (64 bytes)`.
    pub fn to_bytes(&self) -> [u8; 72] {
        let mut out = [0u8; 72];
        out[..8].copy_from_slice(&self.key_id.to_bytes());
        out[8..].copy_from_slice(&self.signature);
        out
    }

    /// Parses the 72-byte stored form; `subject` names the signed thing in errors.
    pub fn from_bytes(b: &[u8], subject: &str) -> Result<Self, Error> {
        if b.len() != Self::LEN {
            return Err(Error::RegistrySignatureMalformed {
                subject: subject.to_string(),
                reason: format!("{} bytes, expected {}", b.len(), Self::LEN),
            });
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&b[8..]);
        Ok(Self { key_id: KeyId::from_bytes(id), signature })
    }
}

/// The public keys an operator trusts, by key id, and the key ids it revokes. Only a listed key that
/// is not revoked can make a signature valid.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<KeyId, VerifyingKey>,
    revoked: BTreeSet<KeyId>,
}

/// The line of a keyring file that revokes `id`.
pub fn revocation_line(id: &KeyId) -> String {
    format!("revoked {id}\n")
}

impl Keyring {
    /// An empty keyring (trusts nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads a keyring file (public-key lines) or a folder (every `*.pub` file in it).
    pub fn load(path: &Path) -> Result<Self, Error> {
        let mut ring = Self::new();
        let meta = fs::metadata(path).map_err(io_err(path))?;
        if meta.is_dir() {
            let mut files: Vec<PathBuf> = fs::read_dir(path)
                .map_err(io_err(path))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "pub") && p.is_file())
                .collect();
            files.sort();
            for f in files {
                ring.add_file(&f)?;
            }
        } else {
            ring.add_file(path)?;
        }
        Ok(ring)
    }

    /// Adds every public key of a key file and records its `revoked <key id>` lines.
    pub fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        let text = fs::read_to_string(path).map_err(io_err(path))?;
        // Revocation lines are taken out (left blank, so key-line errors keep their line numbers).
        let mut keys_only = String::with_capacity(text.len());
        for (i, line) in text.lines().enumerate() {
            match line.trim().strip_prefix("revoked") {
                Some(rest) if rest.starts_with(char::is_whitespace) => {
                    let id = KeyId::parse(rest.trim()).map_err(|_| Error::RegistryKeyFile {
                        path: path.to_path_buf(),
                        reason: format!("line {}: expected `revoked <16 hex key id>`", i + 1),
                    })?;
                    self.revoke(id);
                }
                _ => keys_only.push_str(line),
            }
            keys_only.push('\n');
        }
        for k in key_lines(&keys_only, path)? {
            self.add(&k).map_err(|_| Error::RegistryKeyFile {
                path: path.to_path_buf(),
                reason: "not a valid Ed25519 public key".into(),
            })?;
        }
        Ok(())
    }

    /// Trusts a 32-byte public key; returns its key id.
    pub fn add(&mut self, public: &[u8; 32]) -> Result<KeyId, Error> {
        let vk = VerifyingKey::from_bytes(public).map_err(|_| Error::RegistryInvalid {
            what: "public key",
            value: hex(public),
            reason: "not a valid Ed25519 point".into(),
        })?;
        let id = KeyId::of(public);
        self.keys.insert(id.clone(), vk);
        Ok(id)
    }

    /// Revokes `id`: signatures by it are refused from now on, whether or not its key is listed.
    pub fn revoke(&mut self, id: KeyId) {
        self.revoked.insert(id);
    }

    /// True when `id` is revoked.
    pub fn is_revoked(&self, id: &KeyId) -> bool {
        self.revoked.contains(id)
    }

    /// The revoked key ids.
    pub fn revoked(&self) -> impl Iterator<Item = &KeyId> {
        self.revoked.iter()
    }

    /// The trusted key ids (listed and not revoked).
    pub fn key_ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys().filter(|id| !self.revoked.contains(*id))
    }

    /// The 32-byte public key of a trusted key id.
    pub fn public_key(&self, id: &KeyId) -> Option<[u8; 32]> {
        self.keys.get(id).map(|k| k.to_bytes())
    }

    /// True when `id` is trusted (listed and not revoked).
    pub fn contains(&self, id: &KeyId) -> bool {
        self.keys.contains_key(id) && !self.revoked.contains(id)
    }

    // ANCHOR: keyring_verify
    /// Checks `sig` over `domain || bytes`: the key id must be trusted (listed, not revoked) and the
    /// signature valid (strict).
    pub fn verify(&self, domain: &[u8], bytes: &[u8], sig: &SignatureBlob, subject: &str) -> Result<(), Error> {
        if self.revoked.contains(&sig.key_id) {
            return Err(Error::RegistryRevokedKey { subject: subject.to_string(), key_id: sig.key_id.to_string() });
        }
        let vk = self.keys.get(&sig.key_id).ok_or_else(|| Error::RegistryUntrustedKey {
            subject: subject.to_string(),
            key_id: sig.key_id.to_string(),
        })?;
        let mut msg = Vec::with_capacity(domain.len() + bytes.len());
        msg.extend_from_slice(domain);
        msg.extend_from_slice(bytes);
        vk.verify_strict(&msg, &Signature::from_bytes(&sig.signature))
            .map_err(|_| Error::RegistryBadSignature { subject: subject.to_string(), key_id: sig.key_id.to_string() })
    }
    // ANCHOR_END: keyring_verify
}

// ANCHOR: file_sign
/// The canonical statement a detached file signature covers: the BLAKE3 digest and size of its bytes.
pub fn file_statement(path: &Path) -> Result<Vec<u8>, Error> {
    let (digest, size) = super::store::Digest::of_file(path)?;
    Ok(format!("{{\"blake3\":\"{}\",\"size\":{size}}}", digest.to_hex()).into_bytes())
}

/// Signs `path`'s contents (through [`file_statement`]) under [`FILE_DOMAIN`].
pub fn sign_file(path: &Path, signer: &Signer) -> Result<SignatureBlob, Error> {
    Ok(signer.sign(FILE_DOMAIN, &file_statement(path)?))
}

/// Checks a detached signature (the 72-byte stored form) of `path` against `keyring`; returns the signer.
pub fn verify_file(path: &Path, signature: &[u8], keyring: &Keyring) -> Result<KeyId, Error> {
    let subject = path.display().to_string();
    let sig = SignatureBlob::from_bytes(signature, &subject)?;
    keyring.verify(FILE_DOMAIN, &file_statement(path)?, &sig, &subject)?;
    Ok(sig.key_id)
}
// ANCHOR_END: file_sign
