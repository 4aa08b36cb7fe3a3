//! The model registry (pacha's role in the course): versions of models stored content-addressed with
//! BLAKE3 (the BLAKE3 paper, 2020), described by canonical-JSON manifests signed with Ed25519
//! (RFC 8032), sealed for transport or rest with ChaCha20-Poly1305 (RFC 8439) under a raw key or an
//! Argon2id passphrase key (RFC 9106), promoted through stages by a signed hash-chained log.
//!
//! A registry is a folder:
//!
//! ```text
//! <root>/objects/<2 hex>/<62 hex>   blobs (artefacts and manifests) by BLAKE3 digest      (store)
//! <root>/refs/<name>/<version>      the manifest digest of name@version (the commit point)
//! <root>/sigs/<manifest hex>        the manifest's signature: key id (8 B) || Ed25519 (64 B) (keys)
//! <root>/sealed/<manifest hex>      a sealed version's ciphertext objects, by artefact name   (secure)
//! <root>/promotions.log             the signed, hash-chained promotion log                    (stage)
//! <root>/lock                       the writers' lock                                         (lock)
//! ```
//!
//! Trust comes only from a [`Keyring`] the operator pins: [`Registry::verify`] checks the manifest's
//! digest against its ref, the signature (by a keyring key, strict RFC 8032), that the manifest names
//! that signer and that version, and every artefact's size and digest. [`Registry::pull`] and
//! [`Registry::export`] verify first, [`Registry::import`] verifies a bundle completely before adding
//! anything. Every file is written atomically ([`atomic`]): a crash leaves the previous state intact
//! and at worst a stray `.tmp-*` file, which readers ignore.
//!
//! Encryption: the store keeps plaintext objects (their digests are the addresses); sealing applies to
//! exported bundles ([`ExportConfig::seal`]) and to single files ([`seal`]), with the associated data
//! binding each ciphertext to its manifest digest and artefact name ([`seal::artefact_aad`]), and to
//! versions pushed sealed ([`Registry::push_sealed`]): the store then holds only their ciphertext, and the
//! type-state handle of [`secure`] (`Model<Sealed>` → `Model<Unverified>` → `Model<Verified>`) is the
//! way to read them.
//!
//! ```no_run
//! # fn main() -> Result<(), kernels::Error> {
//! use kernels::registry::{keygen, ArtefactSource, Keyring, PushSpec, Registry, Signer, Stage};
//! let keys = keygen("keys".as_ref(), "release")?;
//! let signer = Signer::load(&keys.secret)?;
//! let keyring = Keyring::load(&keys.public)?;
//! let reg = Registry::open("registry".as_ref())?;
//! let spec = PushSpec::new("fraud", 1).artefact(ArtefactSource::path("model.safetensors", "out/model.safetensors"));
//! let pushed = reg.push(&spec, &signer)?;
//! reg.verify(&pushed.reference, &keyring)?;
//! reg.promote(&pushed.reference, Stage::Production, &signer, &keyring)?;
//! # Ok(()) }
//! ```

pub mod atomic;
mod bundle;
pub mod canonical;
pub mod keys;
pub mod lock;
pub mod manifest;
pub mod seal;
pub mod secure;
pub mod stage;
pub mod store;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

pub use bundle::{ExportConfig, ImportConfig};
pub use keys::{KeyId, KeyPairFiles, Keyring, SignatureBlob, Signer, keygen, sign_file, verify_file};
pub use manifest::{ArtefactEntry, Manifest, ModelRef};
pub use seal::{KdfParams, SealKey};
pub use stage::{LogCheck, LogEntry, LogHead, Stage};
pub use store::{Digest, Store};

use atomic::{io_err, is_temp_name, write_atomic};
use keys::MANIFEST_DOMAIN;
use lock::WriteLock;

use crate::Error;

/// Where an artefact's bytes come from when pushing.
#[derive(Debug, Clone)]
pub enum ArtefactSource {
    /// A file, streamed into the store.
    Path {
        /// The artefact's name in the version.
        name: String,
        /// The file.
        path: PathBuf,
    },
    /// Bytes in memory.
    Bytes {
        /// The artefact's name in the version.
        name: String,
        /// The content.
        bytes: Vec<u8>,
    },
}

impl ArtefactSource {
    /// An artefact read from a file.
    pub fn path(name: &str, path: impl Into<PathBuf>) -> Self {
        Self::Path { name: name.to_string(), path: path.into() }
    }

    /// An artefact from bytes.
    pub fn bytes(name: &str, bytes: impl Into<Vec<u8>>) -> Self {
        Self::Bytes { name: name.to_string(), bytes: bytes.into() }
    }

    /// The artefact's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Path { name, .. } | Self::Bytes { name, .. } => name,
        }
    }
}

/// What to register as a new model version ([`Registry::push`]); built with the chained setters.
#[derive(Debug, Clone)]
pub struct PushSpec {
    /// The model's name.
    pub name: String,
    /// The new version number.
    pub version: u64,
    /// Its files.
    pub artefacts: Vec<ArtefactSource>,
    /// Evaluation metrics (finite).
    pub metrics: BTreeMap<String, f64>,
    /// The versions it derives from.
    pub parents: Vec<ModelRef>,
    /// BLAKE3 digest of its training data.
    pub training_data: Option<Digest>,
    /// Creation time (ms since the epoch); `None` = now.
    pub created_unix_ms: Option<u64>,
}

impl PushSpec {
    /// An empty spec for `name@version`.
    pub fn new(name: &str, version: u64) -> Self {
        Self {
            name: name.to_string(),
            version,
            artefacts: Vec::new(),
            metrics: BTreeMap::new(),
            parents: Vec::new(),
            training_data: None,
            created_unix_ms: None,
        }
    }

    /// Adds an artefact.
    pub fn artefact(mut self, a: ArtefactSource) -> Self {
        self.artefacts.push(a);
        self
    }

    /// Records a metric.
    pub fn metric(mut self, name: &str, value: f64) -> Self {
        self.metrics.insert(name.to_string(), value);
        self
    }

    /// Adds a parent version.
    pub fn parent(mut self, r: ModelRef) -> Self {
        self.parents.push(r);
        self
    }

    /// Records the training data's digest.
    pub fn training_data(mut self, d: Digest) -> Self {
        self.training_data = Some(d);
        self
    }

    /// Fixes the creation time.
    pub fn created_unix_ms(mut self, ms: u64) -> Self {
        self.created_unix_ms = Some(ms);
        self
    }
}

/// A version registered by [`Registry::push`] or [`Registry::import`].
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `name@version`.
    pub reference: ModelRef,
    /// Its manifest.
    pub manifest: Manifest,
    /// The manifest's digest (its address).
    pub digest: Digest,
}

/// A version that passed [`Registry::verify`].
#[derive(Debug, Clone)]
pub struct Verified {
    /// The manifest (signature, signer, version checked).
    pub manifest: Manifest,
    /// Its digest.
    pub digest: Digest,
    /// The signer's key id.
    pub key_id: KeyId,
}

/// One version in a lineage walk ([`Registry::lineage`]).
#[derive(Debug, Clone, PartialEq)]
pub struct LineageNode {
    /// The version.
    pub reference: ModelRef,
    /// Distance from the version asked for (0 = itself).
    pub depth: usize,
    /// Its manifest digest.
    pub manifest: Digest,
    /// Its parents.
    pub parents: Vec<ModelRef>,
    /// Its training data's digest.
    pub training_data: Option<Digest>,
}

/// A registry folder (see the module docs for the layout).
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    store: Store,
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

impl Registry {
    /// Opens (creating if needed) the registry in `root`.
    pub fn open(root: &Path) -> Result<Self, Error> {
        for sub in ["objects", "refs", "sigs"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(io_err(&d))?;
        }
        Ok(Self { root: root.to_path_buf(), store: Store::open(&root.join("objects"))? })
    }

    /// The registry's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The object store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The path of the ref file of `r`.
    pub fn ref_path(&self, r: &ModelRef) -> PathBuf {
        self.root.join("refs").join(&r.name).join(r.version.to_string())
    }

    /// The path of the signature of the manifest `d`.
    pub fn signature_path(&self, d: &Digest) -> PathBuf {
        self.root.join("sigs").join(d.to_hex())
    }

    /// The path of the promotion log.
    pub fn log_path(&self) -> PathBuf {
        self.root.join("promotions.log")
    }

    fn lock(&self) -> Result<WriteLock, Error> {
        WriteLock::acquire(&self.root.join("lock"))
    }

    /// Stores the artefacts, writes and signs the manifest of `spec`, then commits the ref `name@version`
    /// under the lock. Fails with [`Error::RegistryVersionExists`] if the version exists.
    pub fn push(&self, spec: &PushSpec, signer: &Signer) -> Result<Pushed, Error> {
        let reference = self.check_new(spec)?;
        let mut artefacts = Vec::with_capacity(spec.artefacts.len());
        for a in &spec.artefacts {
            let (digest, size) = match a {
                ArtefactSource::Path { path, .. } => self.store.put_file(path)?,
                ArtefactSource::Bytes { bytes, .. } => (self.store.put_bytes(bytes)?, bytes.len() as u64),
            };
            artefacts.push(ArtefactEntry { name: a.name().to_string(), digest, size });
        }
        let (manifest, bytes, sig) = Self::sign_manifest(spec, artefacts, signer)?;
        let digest = self.commit(&reference, &bytes, &sig)?;
        Ok(Pushed { reference, manifest, digest })
    }

    /// The reference of `spec`, checked: artefact names valid and unique, the version not registered yet.
    fn check_new(&self, spec: &PushSpec) -> Result<ModelRef, Error> {
        let reference = ModelRef::new(&spec.name, spec.version)?;
        let mut names = BTreeSet::new();
        for a in &spec.artefacts {
            manifest::check_name("artefact name", a.name())?;
            if !names.insert(a.name()) {
                return Err(Error::RegistryInvalid {
                    what: "artefact name",
                    value: a.name().to_string(),
                    reason: "given twice".into(),
                });
            }
        }
        if let Some(existing) = self.try_resolve(&reference)? {
            return Err(Error::RegistryVersionExists { reference: reference.to_string(), existing: existing.to_hex() });
        }
        Ok(reference)
    }

    /// The manifest of `spec` over `artefacts` (sorted here), its canonical bytes and `signer`'s signature.
    fn sign_manifest(
        spec: &PushSpec,
        mut artefacts: Vec<ArtefactEntry>,
        signer: &Signer,
    ) -> Result<(Manifest, Vec<u8>, SignatureBlob), Error> {
        artefacts.sort_by(|a, b| a.name.cmp(&b.name));
        let manifest = Manifest {
            name: spec.name.clone(),
            version: spec.version,
            artefacts,
            metrics: spec.metrics.clone(),
            parents: spec.parents.clone(),
            training_data: spec.training_data,
            created_unix_ms: spec.created_unix_ms.unwrap_or_else(now_ms),
            signer_key_id: signer.key_id().clone(),
        };
        let bytes = manifest.to_canonical_bytes()?;
        let sig = signer.sign(MANIFEST_DOMAIN, &bytes);
        Ok((manifest, bytes, sig))
    }

    /// Stores manifest bytes and signature, then writes the ref under the lock (refusing an existing
    /// ref with another digest; the same digest is accepted, for idempotent imports).
    fn commit(&self, reference: &ModelRef, manifest: &[u8], sig: &SignatureBlob) -> Result<Digest, Error> {
        let digest = self.store.put_bytes(manifest)?;
        write_atomic(&self.signature_path(&digest), &sig.to_bytes(), 0o644)?;
        let _lock = self.lock()?;
        match self.try_resolve(reference)? {
            Some(existing) if existing == digest => return Ok(digest),
            Some(existing) => {
                return Err(Error::RegistryVersionExists {
                    reference: reference.to_string(),
                    existing: existing.to_hex(),
                });
            }
            None => {}
        }
        let path = self.ref_path(reference);
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        write_atomic(&path, format!("{digest}\n").as_bytes(), 0o644)?;
        Ok(digest)
    }

    /// The manifest digest the ref of `r` names, or `None` without such a ref.
    pub fn try_resolve(&self, r: &ModelRef) -> Result<Option<Digest>, Error> {
        let path = self.ref_path(r);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::RegistryIo { path, source: e }),
        };
        let hex = text.strip_suffix('\n').unwrap_or(&text);
        Digest::from_hex(hex).map(Some).map_err(|_| Error::RegistryManifestMalformed {
            reference: r.to_string(),
            reason: format!("ref file {} does not hold a digest", path.display()),
        })
    }

    /// The manifest digest of `r` ([`Error::RegistryNotFound`] if unknown).
    pub fn resolve(&self, r: &ModelRef) -> Result<Digest, Error> {
        self.try_resolve(r)?.ok_or_else(|| Error::RegistryNotFound { what: r.to_string() })
    }

    /// The registered model names, sorted.
    pub fn models(&self) -> Result<Vec<String>, Error> {
        let dir = self.root.join("refs");
        let mut out: Vec<String> = fs::read_dir(&dir)
            .map_err(io_err(&dir))?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| manifest::check_name("model name", n).is_ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// The registered versions of `name`, ascending (temp files are ignored).
    pub fn versions(&self, name: &str) -> Result<Vec<u64>, Error> {
        manifest::check_name("model name", name)?;
        let dir = self.root.join("refs").join(name);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::RegistryIo { path: dir, source: e }),
        };
        let mut out: Vec<u64> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| !is_temp_name(n))
            .filter_map(|n| format!("{name}@{n}").parse::<ModelRef>().ok().map(|r| r.version))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    /// Checks manifest bytes and their signature: signature by a keyring key over the exact bytes,
    /// then the parsed manifest must name that signer and be `expected` (when given).
    pub(crate) fn check_signed_manifest(
        bytes: &[u8],
        sig_bytes: Option<&[u8]>,
        keyring: &Keyring,
        subject: &str,
        expected: Option<&ModelRef>,
    ) -> Result<(Manifest, KeyId), Error> {
        let sig_bytes = sig_bytes.ok_or_else(|| Error::RegistrySignatureMalformed {
            subject: subject.to_string(),
            reason: "no signature".into(),
        })?;
        let sig = SignatureBlob::from_bytes(sig_bytes, subject)?;
        keyring.verify(MANIFEST_DOMAIN, bytes, &sig, subject)?;
        let manifest = Manifest::from_canonical_bytes(bytes, subject)?;
        if manifest.signer_key_id != sig.key_id {
            return Err(Error::RegistrySignerMismatch {
                reference: manifest.reference().to_string(),
                manifest_key_id: manifest.signer_key_id.to_string(),
                signature_key_id: sig.key_id.to_string(),
            });
        }
        if let Some(r) = expected
            && manifest.reference() != *r
        {
            return Err(Error::RegistryRefMismatch {
                reference: r.to_string(),
                manifest: manifest.reference().to_string(),
            });
        }
        Ok((manifest, sig.key_id))
    }

    /// Verifies `r`'s manifest only (digest against the ref, signature, signer, version), not its artefacts.
    pub fn verify_manifest(&self, r: &ModelRef, keyring: &Keyring) -> Result<Verified, Error> {
        let digest = self.resolve(r)?;
        let path = self.store.path_of(&digest);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::RegistryNotFound { what: format!("manifest {digest} of {r}") });
            }
            Err(e) => return Err(Error::RegistryIo { path, source: e }),
        };
        let found = Digest::of(&bytes);
        if found != digest {
            return Err(Error::RegistryManifestDigest {
                reference: r.to_string(),
                expected: digest.to_hex(),
                found: found.to_hex(),
            });
        }
        let sig_path = self.signature_path(&digest);
        let sig = match fs::read(&sig_path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::RegistryIo { path: sig_path, source: e }),
        };
        let (manifest, key_id) =
            Self::check_signed_manifest(&bytes, sig.as_deref(), keyring, &format!("manifest {r}"), Some(r))?;
        Ok(Verified { manifest, digest, key_id })
    }

    /// Verifies `r` completely: the manifest ([`Registry::verify_manifest`]) and every artefact's size
    /// and BLAKE3 digest (re-hashed from the store).
    pub fn verify(&self, r: &ModelRef, keyring: &Keyring) -> Result<Verified, Error> {
        let v = self.verify_manifest(r, keyring)?;
        for a in &v.manifest.artefacts {
            let (found, size) = match self.store.rehash(&a.digest) {
                Ok(x) => x,
                Err(Error::RegistryNotFound { .. }) if self.sealed_index_path(&v.digest).is_file() => {
                    // A sealed version ([`secure`]) keeps only ciphertext: it is checked after decryption.
                    return Err(Error::RegistryKeyRequired { artefact: a.name.clone() });
                }
                Err(Error::RegistryNotFound { .. }) => {
                    return Err(Error::RegistryArtefactMissing { reference: r.to_string(), artefact: a.name.clone() });
                }
                Err(e) => return Err(e),
            };
            if size != a.size {
                return Err(Error::RegistryArtefactSize {
                    reference: r.to_string(),
                    artefact: a.name.clone(),
                    expected: a.size,
                    found: size,
                });
            }
            if found != a.digest {
                return Err(Error::RegistryArtefactDigest {
                    reference: r.to_string(),
                    artefact: a.name.clone(),
                    expected: a.digest.to_hex(),
                    found: found.to_hex(),
                });
            }
        }
        Ok(v)
    }

    /// Verifies `r`, then copies its artefacts into `out_dir/<artefact name>` (each re-checked while
    /// copied and renamed into place whole). Returns the files written.
    pub fn pull(&self, r: &ModelRef, keyring: &Keyring, out_dir: &Path) -> Result<Vec<PathBuf>, Error> {
        let v = self.verify(r, keyring)?;
        fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
        let mut out = Vec::new();
        for a in &v.manifest.artefacts {
            let dest = out_dir.join(&a.name);
            self.store.get_to_file(&a.digest, &dest).map_err(|e| match e {
                Error::RegistryObjectCorrupt { expected, found } => Error::RegistryArtefactDigest {
                    reference: r.to_string(),
                    artefact: a.name.clone(),
                    expected,
                    found,
                },
                e => e,
            })?;
            out.push(dest);
        }
        Ok(out)
    }

    /// Records that `r` entered `stage`: verifies `r` (with artefacts; a sealed version as far as it can
    /// be without its key, [`Registry::verify_sealed`]) and the log, then appends a signed entry under the
    /// lock. The signer must be in `keyring`. Returns the new log head.
    pub fn promote(&self, r: &ModelRef, stage: Stage, signer: &Signer, keyring: &Keyring) -> Result<LogHead, Error> {
        if keyring.is_revoked(signer.key_id()) {
            return Err(Error::RegistryRevokedKey {
                subject: format!("promotion of {r}"),
                key_id: signer.key_id().to_string(),
            });
        }
        if !keyring.contains(signer.key_id()) {
            return Err(Error::RegistryUntrustedKey {
                subject: format!("promotion of {r}"),
                key_id: signer.key_id().to_string(),
            });
        }
        let v = if self.sealed_index_path(&self.resolve(r)?).is_file() {
            self.verify_sealed(r, keyring)?
        } else {
            self.verify(r, keyring)?
        };
        let _lock = self.lock()?;
        stage::append(&self.log_path(), keyring, signer, r, &v.digest, stage, now_ms())
    }

    /// Replays and verifies the whole promotion log (see [`stage`]); `pinned` is a head remembered
    /// earlier, which the log must still contain. Each entry's manifest must be its version's.
    pub fn promotion_log(&self, keyring: &Keyring, pinned: Option<&LogHead>) -> Result<Vec<LogEntry>, Error> {
        let entries = stage::replay(&self.log_path(), keyring, pinned)?;
        for (i, e) in entries.iter().enumerate() {
            let expected = self.resolve(&e.model)?;
            if expected != e.manifest {
                return Err(Error::RegistryLog {
                    entry: i,
                    check: LogCheck::ManifestMismatch { expected: expected.to_hex(), found: e.manifest.to_hex() },
                });
            }
        }
        Ok(entries)
    }

    /// The head of the verified promotion log (remember it to detect a later truncation).
    pub fn log_head(&self, keyring: &Keyring) -> Result<LogHead, Error> {
        Ok(stage::head(&self.promotion_log(keyring, None)?))
    }

    /// The current stage of every promoted version (the last entry for it wins), from a verified replay.
    pub fn stages(&self, keyring: &Keyring, pinned: Option<&LogHead>) -> Result<BTreeMap<ModelRef, Stage>, Error> {
        Ok(self.promotion_log(keyring, pinned)?.into_iter().map(|e| (e.model, e.stage)).collect())
    }

    /// The current stage of `r` (`None` if never promoted), from a verified replay.
    pub fn stage_of(&self, r: &ModelRef, keyring: &Keyring, pinned: Option<&LogHead>) -> Result<Option<Stage>, Error> {
        Ok(self.stages(keyring, pinned)?.remove(r))
    }

    /// The versions of `name` currently in `stage`, ascending.
    pub fn in_stage(
        &self,
        name: &str,
        stage: Stage,
        keyring: &Keyring,
        pinned: Option<&LogHead>,
    ) -> Result<Vec<u64>, Error> {
        Ok(self
            .stages(keyring, pinned)?
            .into_iter()
            .filter(|(r, s)| r.name == name && *s == stage)
            .map(|(r, _)| r.version)
            .collect())
    }

    // ANCHOR: lineage
    /// Walks `r`'s ancestry breadth-first through `parents` (each manifest verified), returning every
    /// version once with its training-data digest. A parent that is not registered is an error.
    pub fn lineage(&self, r: &ModelRef, keyring: &Keyring) -> Result<Vec<LineageNode>, Error> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut queue = VecDeque::from([(r.clone(), 0usize)]);
        seen.insert(r.clone());
        while let Some((cur, depth)) = queue.pop_front() {
            let v = self.verify_manifest(&cur, keyring)?;
            for p in &v.manifest.parents {
                if seen.insert(p.clone()) {
                    queue.push_back((p.clone(), depth + 1));
                }
            }
            out.push(LineageNode {
                reference: cur,
                depth,
                manifest: v.digest,
                parents: v.manifest.parents,
                training_data: v.manifest.training_data,
            });
        }
        Ok(out)
    }
    // ANCHOR_END: lineage
}
