//! Bundles: a model version as a self-contained folder to ship to a server, verified against the
//! server's pinned keyring on import (Ed25519, RFC 8032), artefacts optionally sealed with
//! ChaCha20-Poly1305 (RFC 8439) bound to the manifest digest and artefact name.
//!
//! ```text
//! <bundle>/manifest.json              the canonical manifest bytes
//! <bundle>/manifest.sig               key id (8 B) || Ed25519 signature (64 B)
//! <bundle>/signer.pub                 the signer's public key: information only, never trusted
//! <bundle>/artefacts/<name>           an artefact, or
//! <bundle>/artefacts/<name>.sealed    an artefact sealed with AAD = manifest digest || name
//! ```
//!
//! Export writes into a temp folder beside the destination and renames it whole. Import checks the
//! signature first, then every artefact (decrypting sealed ones in memory), and only then adds objects,
//! signature and ref to the registry.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::atomic::{io_err, sync_dir, temp_path, write_atomic};
use super::keys::public_key_text;
use super::seal::{self, SealKey, artefact_aad};
use super::store::Digest;
use super::{ModelRef, Pushed, Registry, SignatureBlob};
use crate::Error;

/// Options of [`Registry::export`].
#[derive(Debug, Clone, Default)]
pub struct ExportConfig {
    /// Seal every artefact with this key (`None`: artefacts in plaintext).
    pub seal: Option<SealKey>,
}

/// Options of [`Registry::import`].
#[derive(Debug, Clone, Default)]
pub struct ImportConfig {
    /// The key of sealed artefacts (required when the bundle has any).
    pub key: Option<SealKey>,
    /// Refuse the bundle unless it holds this version.
    pub expect: Option<ModelRef>,
}

fn bundle_err(path: &Path, reason: impl Into<String>) -> Error {
    Error::RegistryBundle { path: path.to_path_buf(), reason: reason.into() }
}

impl Registry {
    /// Verifies `r` and writes it as a bundle folder `out` (which must not exist yet).
    pub fn export(&self, r: &ModelRef, keyring: &super::Keyring, out: &Path, cfg: &ExportConfig) -> Result<(), Error> {
        let v = self.verify(r, keyring)?;
        if out.exists() {
            return Err(bundle_err(out, "already exists"));
        }
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        let temp = temp_path(parent)?;
        let result = (|| {
            let arts = temp.join("artefacts");
            fs::create_dir_all(&arts).map_err(io_err(&arts))?;
            let bytes = self.store.get(&v.digest)?;
            write_atomic(&temp.join("manifest.json"), &bytes, 0o644)?;
            let sig = fs::read(self.signature_path(&v.digest)).map_err(io_err(&self.signature_path(&v.digest)))?;
            write_atomic(&temp.join("manifest.sig"), &sig, 0o644)?;
            if let Some(pk) = keyring.public_key(&v.key_id) {
                write_atomic(&temp.join("signer.pub"), public_key_text(&pk).as_bytes(), 0o644)?;
            }
            for a in &v.manifest.artefacts {
                match &cfg.seal {
                    None => {
                        self.store.get_to_file(&a.digest, &arts.join(&a.name))?;
                    }
                    Some(key) => {
                        let plain = self.store.get(&a.digest)?;
                        let sealed = seal::seal_bytes(plain, key, &artefact_aad(&v.digest, &a.name))?;
                        write_atomic(&arts.join(format!("{}.sealed", a.name)), &sealed, 0o644)?;
                    }
                }
            }
            fs::rename(&temp, out).map_err(io_err(out))?;
            sync_dir(parent)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&temp);
        }
        result
    }

    /// Verifies the bundle folder `bundle` against `keyring` (signature, signer, every artefact's size
    /// and digest, decrypting sealed ones with `cfg.key`) and only then adds it to the registry.
    /// Importing a version already registered with the same manifest is a no-op.
    pub fn import(&self, bundle: &Path, keyring: &super::Keyring, cfg: &ImportConfig) -> Result<Pushed, Error> {
        let read = |name: &str| -> Result<Option<Vec<u8>>, Error> {
            let p = bundle.join(name);
            match fs::read(&p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::RegistryIo { path: p, source: e }),
            }
        };
        let bytes = read("manifest.json")?.ok_or_else(|| bundle_err(bundle, "no manifest.json"))?;
        let sig = read("manifest.sig")?;
        let subject = format!("manifest in bundle {}", bundle.display());
        let (manifest, _) =
            Self::check_signed_manifest(&bytes, sig.as_deref(), keyring, &subject, cfg.expect.as_ref())?;
        let digest = Digest::of(&bytes);
        let reference = manifest.reference();
        if let Some(existing) = self.try_resolve(&reference)?
            && existing != digest
        {
            return Err(Error::RegistryVersionExists { reference: reference.to_string(), existing: existing.to_hex() });
        }
        // The artefacts folder must hold exactly the manifest's artefacts, each plain or sealed.
        let arts = bundle.join("artefacts");
        let mut present = BTreeSet::new();
        if arts.is_dir() {
            for e in fs::read_dir(&arts).map_err(io_err(&arts))? {
                let e = e.map_err(io_err(&arts))?;
                present.insert(
                    e.file_name()
                        .into_string()
                        .map_err(|n| bundle_err(bundle, format!("non-UTF-8 file name {n:?}")))?,
                );
            }
        }
        enum Src {
            Plain(PathBuf),
            Decrypted(Vec<u8>),
        }
        let mut sources = Vec::new();
        for a in &manifest.artefacts {
            let sealed_name = format!("{}.sealed", a.name);
            let (plain, sealed) = (present.remove(&a.name), present.remove(&sealed_name));
            let missing =
                || Error::RegistryArtefactMissing { reference: reference.to_string(), artefact: a.name.clone() };
            let check = |found: Digest, size: u64| -> Result<(), Error> {
                if size != a.size {
                    return Err(Error::RegistryArtefactSize {
                        reference: reference.to_string(),
                        artefact: a.name.clone(),
                        expected: a.size,
                        found: size,
                    });
                }
                if found != a.digest {
                    return Err(Error::RegistryArtefactDigest {
                        reference: reference.to_string(),
                        artefact: a.name.clone(),
                        expected: a.digest.to_hex(),
                        found: found.to_hex(),
                    });
                }
                Ok(())
            };
            match (plain, sealed) {
                (true, true) => {
                    return Err(bundle_err(bundle, format!("artefact {:?} is both plain and sealed", a.name)));
                }
                (false, false) => return Err(missing()),
                (true, false) => {
                    let p = arts.join(&a.name);
                    let (found, size) = Digest::of_file(&p)?;
                    check(found, size)?;
                    sources.push(Src::Plain(p));
                }
                (false, true) => {
                    let key =
                        cfg.key.as_ref().ok_or_else(|| Error::RegistryKeyRequired { artefact: a.name.clone() })?;
                    let p = arts.join(&sealed_name);
                    let data = fs::read(&p).map_err(io_err(&p))?;
                    let plain = seal::open_bytes(data, key, &artefact_aad(&digest, &a.name), &p)?;
                    check(Digest::of(&plain), plain.len() as u64)?;
                    sources.push(Src::Decrypted(plain));
                }
            }
        }
        if let Some(extra) = present.into_iter().next() {
            return Err(bundle_err(bundle, format!("unexpected file artefacts/{extra}")));
        }
        // Everything verified: add the objects, then commit manifest, signature and ref.
        for (a, src) in manifest.artefacts.iter().zip(&sources) {
            match src {
                Src::Plain(p) => {
                    self.store.put_file_checked(p, Some((a.digest, a.size))).map_err(|e| match e {
                        Error::RegistryObjectCorrupt { expected, found } => Error::RegistryArtefactDigest {
                            reference: reference.to_string(),
                            artefact: a.name.clone(),
                            expected,
                            found,
                        },
                        e => e,
                    })?;
                }
                Src::Decrypted(b) => {
                    self.store.put_bytes(b)?;
                }
            }
        }
        let sig = SignatureBlob::from_bytes(sig.as_deref().unwrap_or_default(), &subject)?;
        let committed = self.commit(&reference, &bytes, &sig)?;
        Ok(Pushed { reference, manifest, digest: committed })
    }
}
