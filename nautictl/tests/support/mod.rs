//! Running the built `nautictl` and reading its outcome, shared by the test binaries.

use std::path::Path;
use std::process::{Command, Output};

/// `nautictl --kubeconfig <kubeconfig> <args>`, with nothing of the caller's environment that
/// would change what it reads.
pub fn nautictl(kubeconfig: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nautictl"))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .env_remove("KUBECONFIG")
        .env_remove("NAUTI_COREDNS_KEY")
        .output()
        .unwrap()
}

/// The standard output of a run that must have succeeded.
pub fn stdout_of(out: &Output) -> String {
    assert!(
        out.status.success(),
        "nautictl failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Exit code 1 (not a panic's 101, not clap's 2) and `cause` in the message.
pub fn assert_fails_naming(out: &Output, cause: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains(cause), "{cause:?} not in: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
