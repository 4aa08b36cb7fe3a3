//! Seeded, reproducible data generators for tests, grading and benchmarks.
//!
//! Every generator takes a seed and returns the same data on every machine and
//! every run (ChaCha8 is a stable stream; `rand`'s `StdRng` is not promised to be).
//! Size tiers ([`Tier`]) keep tests tiny and benchmarks meaningful.
//!
//! | module | what it makes |
//! |---|---|
//! | [`vectors`] | clustered Gaussian vectors (embedding stand-ins), uniform floats |
//! | [`text`] | documents over a skewed vocabulary |
//! | [`models`] | (not generated) the manifest and cache paths of the real models `cargo xtask models` fetches |
//! | [`transactions`] | card transactions with seasonality, merchants, countries and ~1% fraud labels |

pub mod models;
pub mod text;
pub mod transactions;
pub mod vectors;

/// How much data to make: tiny for unit tests, medium for benchmarks, full for learners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    Tiny,
    Medium,
    Full,
}

impl Tier {
    /// Parses `tiny`, `medium` or `full`.
    pub fn parse(s: &str) -> Option<Tier> {
        match s {
            "tiny" => Some(Tier::Tiny),
            "medium" => Some(Tier::Medium),
            "full" => Some(Tier::Full),
            _ => None,
        }
    }
}

#[cfg(test)]
mod manifest {
    //! The manifest's fingerprints of the generated tiers match what the generators make.

    use sha2::{Digest, Sha256};

    fn manifest_sha(name: &str) -> String {
        let text = include_str!("../MANIFEST.toml");
        let manifest: toml::Table = toml::from_str(text).expect("MANIFEST.toml parses");
        let datasets = manifest["dataset"].as_array().expect("[[dataset]] entries");
        let entry = datasets.iter().find(|d| d["name"].as_str() == Some(name)).expect("dataset listed");
        entry["tiny_sha256"].as_str().expect("tiny_sha256").to_string()
    }

    /// The judged question set still names passages the toolchain's documentation has, with valid grades
    /// (`validate.py`, standard-library Python only).
    #[test]
    fn the_judged_rust_docs_questions_validate() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rust-docs-qa");
        let out = std::process::Command::new("python3")
            .arg(dir.join("validate.py"))
            .current_dir(&dir)
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "validate.py failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn hex(bytes: &[u8]) -> String {
        Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn generated_tiers_match_their_recorded_checksums() {
        let cfg = crate::vectors::ClusteredConfig::tier(crate::Tier::Tiny, 7);
        let bytes: Vec<u8> = crate::vectors::clustered(&cfg).iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(hex(&bytes), manifest_sha("clustered-vectors"));
        let docs = crate::text::documents(200, 20, 7).join("\n");
        assert_eq!(hex(docs.as_bytes()), manifest_sha("skewed-documents"));
        assert_eq!(hex(transactions_csv().as_bytes()), manifest_sha("card-transactions"));
    }

    /// The tiny tier (seed 7) as CSV lines, every column in declaration order.
    fn transactions_csv() -> String {
        let t = crate::transactions::transactions(&crate::transactions::TransactionsConfig::tier(crate::Tier::Tiny, 7));
        (0..t.len())
            .map(|i| {
                format!(
                    "{},{},{},{},{},{},{},{},{}\n",
                    t.transaction_id[i],
                    t.card_id[i],
                    t.merchant_id[i],
                    t.timestamp_micros[i],
                    t.amount[i],
                    t.category[i],
                    t.merchant_country[i],
                    t.card_country[i],
                    t.is_fraud[i]
                )
            })
            .collect()
    }
}
