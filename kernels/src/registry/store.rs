//! The content-addressed object store: every blob lives at `objects/<2 hex>/<62 hex>` of its BLAKE3 digest
//! (O'Connor, Aumasson, Neves, Wilcox-O'Hearn, "BLAKE3: one function, fast everywhere", 2020).
//!
//! Writes stream the source through the hasher into a temp file in `objects/`, then rename it to its
//! address ([`super::atomic`]); reads re-hash and refuse bytes that do not match their address, so a
//! corrupt or partial object is an error, never data.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::atomic::{TempGuard, commit_temp, create_temp, io_err};
use crate::Error;

/// Bytes read per step when streaming a file through the hasher.
const CHUNK: usize = 1 << 20;

/// A BLAKE3-256 digest, shown and stored as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(pub [u8; 32]);

impl Digest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// The digest of a reader's whole content and its length in bytes (streaming).
    pub fn of_reader(reader: impl Read) -> std::io::Result<(Self, u64)> {
        copy_hashing(reader, std::io::sink()).map_err(|e| match e {
            CopyError::Read(e) | CopyError::Write(e) => e,
        })
    }

    /// The digest and size of a file, read in a stream.
    pub fn of_file(path: &Path) -> Result<(Self, u64), Error> {
        let file = File::open(path).map_err(io_err(path))?;
        Self::of_reader(file).map_err(io_err(path))
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Parses 64 hex characters (either case).
    pub fn from_hex(s: &str) -> Result<Self, Error> {
        let bytes = unhex(s).filter(|b| b.len() == 32).ok_or_else(|| Error::RegistryInvalid {
            what: "digest",
            value: s.chars().take(80).collect(),
            reason: "expected 64 hex characters".into(),
        })?;
        let mut d = [0u8; 32];
        d.copy_from_slice(&bytes);
        Ok(Self(d))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.to_hex())
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 15) as usize] as char);
    }
    s
}

/// Bytes of a hex string (either case), or `None` when it is not hex of whole bytes.
pub(crate) fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.chunks(2).map(|p| Some(nib(p[0])? << 4 | nib(p[1])?)).collect()
}

/// The object store under a registry root (`<root>/objects`).
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// The store in `dir` (created if missing).
    pub fn open(dir: &Path) -> Result<Self, Error> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        Ok(Self { dir: dir.to_path_buf() })
    }

    // ANCHOR: path_of
    /// Where the object with digest `d` lives (whether or not it exists).
    pub fn path_of(&self, d: &Digest) -> PathBuf {
        let h = d.to_hex();
        self.dir.join(&h[..2]).join(&h[2..])
    }

    /// True when an object with this digest is present (its content is checked when read).
    pub fn contains(&self, d: &Digest) -> bool {
        self.path_of(d).is_file()
    }

    /// Stores `bytes`, returning their digest (a no-op when a valid copy is already stored).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let d = Digest::of(bytes);
        if self.is_valid(&d, bytes.len() as u64)? {
            return Ok(d);
        }
        let (temp, mut file) = create_temp(&self.dir, 0o644)?;
        let mut guard = TempGuard(Some(temp.clone()));
        file.write_all(bytes).and_then(|()| file.sync_all()).map_err(io_err(&temp))?;
        drop(file);
        self.install(&temp, &d)?;
        guard.keep();
        Ok(d)
    }
    // ANCHOR_END: path_of

    /// Streams the file at `src` into the store (one pass: copy and hash), returning its digest and size.
    pub fn put_file(&self, src: &Path) -> Result<(Digest, u64), Error> {
        self.put_file_checked(src, None)
    }

    /// Like [`Store::put_file`], but installs the object only when its digest and size are `expected`;
    /// otherwise nothing is added and the result is [`Error::RegistryObjectCorrupt`]. Used by import,
    /// where the signed manifest says what the bytes must be.
    pub(crate) fn put_file_checked(&self, src: &Path, expected: Option<(Digest, u64)>) -> Result<(Digest, u64), Error> {
        let mut input = File::open(src).map_err(io_err(src))?;
        let (temp, mut out) = create_temp(&self.dir, 0o644)?;
        let mut guard = TempGuard(Some(temp.clone()));
        let (d, len) = copy_hashing(&mut input, &mut out).map_err(|e| e.at(src, &temp))?;
        if let Some((ed, el)) = expected
            && (ed != d || el != len)
        {
            return Err(Error::RegistryObjectCorrupt { expected: ed.to_hex(), found: d.to_hex() });
        }
        if self.is_valid(&d, len)? {
            return Ok((d, len));
        }
        out.sync_all().map_err(io_err(&temp))?;
        drop(out);
        self.install(&temp, &d)?;
        guard.keep();
        Ok((d, len))
    }

    /// Reads the object `d` whole, refusing it when its bytes do not hash to `d`.
    pub fn get(&self, d: &Digest) -> Result<Vec<u8>, Error> {
        let path = self.path_of(d);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::RegistryNotFound { what: format!("object {d}") });
            }
            Err(e) => return Err(Error::RegistryIo { path, source: e }),
        };
        let found = Digest::of(&bytes);
        if found != *d {
            return Err(Error::RegistryObjectCorrupt { expected: d.to_hex(), found: found.to_hex() });
        }
        Ok(bytes)
    }

    /// Re-hashes the stored object `d` (streaming) and returns its (digest found, size).
    pub fn rehash(&self, d: &Digest) -> Result<(Digest, u64), Error> {
        let path = self.path_of(d);
        match File::open(&path) {
            Ok(f) => Digest::of_reader(f).map_err(io_err(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::RegistryNotFound { what: format!("object {d}") })
            }
            Err(e) => Err(Error::RegistryIo { path, source: e }),
        }
    }

    /// Copies object `d` to `dest` (streaming, temp file + rename): `dest` appears only when every byte
    /// hashed to `d`; returns the size.
    pub fn get_to_file(&self, d: &Digest, dest: &Path) -> Result<u64, Error> {
        let path = self.path_of(d);
        let mut input = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::RegistryNotFound { what: format!("object {d}") });
            }
            Err(e) => return Err(Error::RegistryIo { path, source: e }),
        };
        let dir = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let (temp, mut out) = create_temp(dir, 0o644)?;
        let mut guard = TempGuard(Some(temp.clone()));
        let (found, len) = copy_hashing(&mut input, &mut out).map_err(|e| e.at(&path, &temp))?;
        if found != *d {
            return Err(Error::RegistryObjectCorrupt { expected: d.to_hex(), found: found.to_hex() });
        }
        out.sync_all().map_err(io_err(&temp))?;
        drop(out);
        commit_temp(&temp, dest)?;
        guard.keep();
        Ok(len)
    }

    /// True when object `d` exists with size `len` and hashes to `d` (a corrupt copy is replaced by put).
    fn is_valid(&self, d: &Digest, len: u64) -> Result<bool, Error> {
        let path = self.path_of(d);
        match fs::metadata(&path) {
            Ok(m) if m.len() == len => Ok(matches!(self.rehash(d), Ok((found, _)) if found == *d)),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::RegistryIo { path, source: e }),
        }
    }

    /// Renames a complete temp file to the address of `d`.
    fn install(&self, temp: &Path, d: &Digest) -> Result<(), Error> {
        let dest = self.path_of(d);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        commit_temp(temp, &dest)
    }
}

/// A failed [`copy_hashing`]: which side of the copy failed.
enum CopyError {
    Read(std::io::Error),
    Write(std::io::Error),
}

impl CopyError {
    /// The registry error naming the file that failed: `from` for a read, `to` for a write.
    fn at(self, from: &Path, to: &Path) -> Error {
        match self {
            CopyError::Read(source) => Error::RegistryIo { path: from.to_path_buf(), source },
            CopyError::Write(source) => Error::RegistryIo { path: to.to_path_buf(), source },
        }
    }
}

/// Streams `input` into `out` in `CHUNK`-sized reads, hashing with BLAKE3 on the way
/// (one pass for copy and digest); returns the digest and the byte count.
fn copy_hashing(mut input: impl Read, mut out: impl Write) -> Result<(Digest, u64), CopyError> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    let mut len = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(CopyError::Write)?;
        len += n as u64;
    }
    Ok((Digest(*hasher.finalize().as_bytes()), len))
}
