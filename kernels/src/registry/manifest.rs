//! Model-version manifests: what a version is made of, serialised as canonical JSON ([`super::canonical`]),
//! stored content-addressed by its BLAKE3 digest and signed with Ed25519 (RFC 8032) by [`super::keys`].
//!
//! The canonical document (keys sorted, no whitespace) is:
//! `{"artefacts":[{"digest":HEX64,"name":STR,"size":U64},…],"created_unix_ms":U64,"metrics":{STR:F64,…},`
//! `"name":STR,"parents":["name@version",…],"schema":1,"signer_key_id":HEX16,"training_data":HEX64|null,"version":U64}`
//! with artefacts sorted by name (names unique) and parents in the order given.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use super::canonical::CValue;
use super::keys::KeyId;
use super::store::Digest;
use crate::Error;

/// The manifest schema this code writes and reads.
pub const MANIFEST_SCHEMA: u64 = 1;

/// Checks a model or artefact name: 1 to 128 characters of `A-Z a-z 0-9 . _ -`, not starting with `.` or `-`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    let bad =
        |reason: &str| Error::RegistryInvalid { what, value: name.chars().take(200).collect(), reason: reason.into() };
    if name.is_empty() || name.len() > 128 {
        return Err(bad("must be 1 to 128 characters"));
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err(bad("must not start with '.' or '-'"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) {
        return Err(bad("only A-Z, a-z, 0-9, '.', '_' and '-' are allowed"));
    }
    Ok(())
}

/// A model version reference, written `name@version`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelRef {
    /// The model's name (see [`check_name`]).
    pub name: String,
    /// The version number.
    pub version: u64,
}

impl ModelRef {
    /// A checked reference.
    pub fn new(name: &str, version: u64) -> Result<Self, Error> {
        check_name("model name", name)?;
        Ok(Self { name: name.to_string(), version })
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

impl FromStr for ModelRef {
    type Err = Error;

    /// Parses `name@version` (version in plain decimal).
    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |reason: &str| Error::RegistryInvalid {
            what: "reference",
            value: s.chars().take(200).collect(),
            reason: reason.into(),
        };
        let (name, version) = s.rsplit_once('@').ok_or_else(|| bad("expected name@version"))?;
        if version.is_empty()
            || !version.bytes().all(|b| b.is_ascii_digit())
            || (version.len() > 1 && version.starts_with('0'))
        {
            return Err(bad("the version must be a decimal integer without leading zeros"));
        }
        let version = version.parse::<u64>().map_err(|_| bad("the version does not fit in 64 bits"))?;
        Self::new(name, version)
    }
}

/// One file of a model version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtefactEntry {
    /// The file's name inside the version (see [`check_name`]).
    pub name: String,
    /// BLAKE3 digest of its (plaintext) bytes.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
}

/// A model version: its artefacts, metrics, lineage and signer.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The model's name.
    pub name: String,
    /// The version number (a version is immutable once registered).
    pub version: u64,
    /// The files, sorted by name.
    pub artefacts: Vec<ArtefactEntry>,
    /// Evaluation metrics (finite values).
    pub metrics: BTreeMap<String, f64>,
    /// The versions this one was derived from (fine-tuned from, distilled from, …).
    pub parents: Vec<ModelRef>,
    /// BLAKE3 digest of the training data (a file or a data manifest), when recorded.
    pub training_data: Option<Digest>,
    /// Creation time, milliseconds since the Unix epoch.
    pub created_unix_ms: u64,
    /// The key id of the key that signs this manifest.
    pub signer_key_id: KeyId,
}

impl Manifest {
    /// `name@version` of this manifest.
    pub fn reference(&self) -> ModelRef {
        ModelRef { name: self.name.clone(), version: self.version }
    }

    /// Checks names, artefact order and uniqueness, finiteness of metrics.
    pub fn validate(&self) -> Result<(), Error> {
        check_name("model name", &self.name)?;
        for a in &self.artefacts {
            check_name("artefact name", &a.name)?;
        }
        for w in self.artefacts.windows(2) {
            if w[0].name >= w[1].name {
                return Err(Error::RegistryInvalid {
                    what: "artefact name",
                    value: w[1].name.clone(),
                    reason: "artefacts must be unique and sorted by name".into(),
                });
            }
        }
        for (k, v) in &self.metrics {
            if !v.is_finite() {
                return Err(Error::RegistryInvalid {
                    what: "metric",
                    value: k.clone(),
                    reason: format!("value {v} is not finite"),
                });
            }
        }
        for p in &self.parents {
            check_name("model name", &p.name)?;
        }
        Ok(())
    }

    /// The canonical JSON bytes (what is hashed and signed).
    pub fn to_canonical_bytes(&self) -> Result<Vec<u8>, Error> {
        self.validate()?;
        let s = |x: &str| CValue::Str(x.to_string());
        let artefacts = self
            .artefacts
            .iter()
            .map(|a| {
                CValue::Obj(BTreeMap::from([
                    ("digest".to_string(), s(&a.digest.to_hex())),
                    ("name".to_string(), s(&a.name)),
                    ("size".to_string(), CValue::UInt(a.size)),
                ]))
            })
            .collect();
        let obj = BTreeMap::from([
            ("artefacts".to_string(), CValue::Arr(artefacts)),
            ("created_unix_ms".to_string(), CValue::UInt(self.created_unix_ms)),
            (
                "metrics".to_string(),
                CValue::Obj(self.metrics.iter().map(|(k, v)| (k.clone(), CValue::Float(*v))).collect()),
            ),
            ("name".to_string(), s(&self.name)),
            ("parents".to_string(), CValue::Arr(self.parents.iter().map(|p| s(&p.to_string())).collect())),
            ("schema".to_string(), CValue::UInt(MANIFEST_SCHEMA)),
            ("signer_key_id".to_string(), s(self.signer_key_id.as_str())),
            ("training_data".to_string(), self.training_data.map_or(CValue::Null, |d| s(&d.to_hex()))),
            ("version".to_string(), CValue::UInt(self.version)),
        ]);
        CValue::Obj(obj).to_bytes().ok_or_else(|| Error::RegistryInvalid {
            what: "metric",
            value: self.name.clone(),
            reason: "a metric is not finite".into(),
        })
    }

    /// BLAKE3 of the canonical bytes: the manifest's address in the store.
    pub fn digest(&self) -> Result<Digest, Error> {
        Ok(Digest::of(&self.to_canonical_bytes()?))
    }

    /// Parses canonical manifest bytes; `context` names the manifest in errors. Refuses anything that
    /// is not exactly the canonical form of a valid manifest.
    pub fn from_canonical_bytes(bytes: &[u8], context: &str) -> Result<Self, Error> {
        let bad = |reason: String| Error::RegistryManifestMalformed { reference: context.to_string(), reason };
        let v = CValue::parse(bytes).map_err(bad)?;
        let obj = v.as_obj().ok_or_else(|| bad("not a JSON object".into()))?;
        const KEYS: [&str; 9] = [
            "artefacts",
            "created_unix_ms",
            "metrics",
            "name",
            "parents",
            "schema",
            "signer_key_id",
            "training_data",
            "version",
        ];
        if obj.len() != KEYS.len() || !KEYS.iter().all(|k| obj.contains_key(*k)) {
            return Err(bad(format!("expected exactly the keys {KEYS:?}")));
        }
        let uint = |k: &str| match obj.get(k) {
            Some(CValue::UInt(u)) => Ok(*u),
            _ => Err(bad(format!("{k:?} must be an unsigned integer"))),
        };
        let string = |k: &str, v: Option<&CValue>| match v {
            Some(CValue::Str(s)) => Ok(s.clone()),
            _ => Err(bad(format!("{k:?} must be a string"))),
        };
        let digest = |k: &str, v: Option<&CValue>| {
            let s = string(k, v)?;
            if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
                return Err(bad(format!("{k:?} must be 64 lowercase hex characters")));
            }
            Digest::from_hex(&s).map_err(|e| bad(e.to_string()))
        };
        if uint("schema")? != MANIFEST_SCHEMA {
            return Err(bad(format!(
                "schema {} is not supported (this reader knows {MANIFEST_SCHEMA})",
                uint("schema")?
            )));
        }
        let artefacts = match obj.get("artefacts") {
            Some(CValue::Arr(a)) => a
                .iter()
                .map(|e| {
                    let e = e
                        .as_obj()
                        .filter(|m| m.len() == 3)
                        .ok_or_else(|| bad("an artefact must be {digest,name,size}".into()))?;
                    Ok(ArtefactEntry {
                        name: string("artefacts[].name", e.get("name"))?,
                        digest: digest("artefacts[].digest", e.get("digest"))?,
                        size: match e.get("size") {
                            Some(CValue::UInt(u)) => *u,
                            _ => return Err(bad("artefacts[].size must be an unsigned integer".into())),
                        },
                    })
                })
                .collect::<Result<Vec<_>, Error>>()?,
            _ => return Err(bad("\"artefacts\" must be an array".into())),
        };
        let metrics = match obj.get("metrics") {
            Some(CValue::Obj(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    CValue::Float(f) => Ok((k.clone(), *f)),
                    _ => Err(bad(format!("metric {k:?} must be a float"))),
                })
                .collect::<Result<BTreeMap<_, _>, Error>>()?,
            _ => return Err(bad("\"metrics\" must be an object".into())),
        };
        let parents = match obj.get("parents") {
            Some(CValue::Arr(a)) => a
                .iter()
                .map(|p| match p {
                    CValue::Str(s) => s.parse::<ModelRef>().map_err(|e| bad(e.to_string())),
                    _ => Err(bad("parents must be name@version strings".into())),
                })
                .collect::<Result<Vec<_>, Error>>()?,
            _ => return Err(bad("\"parents\" must be an array".into())),
        };
        let training_data = match obj.get("training_data") {
            Some(CValue::Null) => None,
            v => Some(digest("training_data", v)?),
        };
        let key_id = string("signer_key_id", obj.get("signer_key_id"))?;
        let m = Manifest {
            name: string("name", obj.get("name"))?,
            version: uint("version")?,
            artefacts,
            metrics,
            parents,
            training_data,
            created_unix_ms: uint("created_unix_ms")?,
            signer_key_id: KeyId::parse(&key_id).map_err(|e| bad(e.to_string()))?,
        };
        m.validate().map_err(|e| bad(e.to_string()))?;
        // Every field was read back; the bytes are canonical only if writing them again reproduces them.
        if m.to_canonical_bytes()? != bytes {
            return Err(bad("not in canonical form".into()));
        }
        Ok(m)
    }
}
