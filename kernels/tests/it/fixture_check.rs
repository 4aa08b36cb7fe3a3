//! `fixtures_still_match`: reruns a committed fixture script with `--check` in the peers' venv, so a
//! fixture file cannot drift from what its reference library computes now.

use std::path::Path;

/// Runs `script --check` with the venv's Python and fails with its output when the fixtures differ;
/// without the venv (`cargo xtask peers` not run) it says so on stderr and checks nothing.
pub fn fixtures_still_match(script: &Path) {
    let venv = kernels::cache::venv_python();
    if !venv.exists() {
        eprintln!("{} is missing (run `cargo xtask peers`): the fixtures are not rechecked", venv.display());
        return;
    }
    let out = std::process::Command::new(&venv)
        .arg(script)
        .arg("--check")
        .output()
        .unwrap_or_else(|e| panic!("running {} failed ({e})", venv.display()));
    assert!(
        out.status.success(),
        "{} --check failed:\n{}{}",
        script.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
