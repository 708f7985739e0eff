//! Root-only tests: skipped where one cannot be root, never silently skipped in CI.

/// True when the process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// True when root-only tests must run (`NAUTI_REQUIRE_ROOT=1`, set by `make test`).
pub fn root_required() -> bool {
    std::env::var("NAUTI_REQUIRE_ROOT").is_ok_and(|v| v == "1")
}

/// Returns from the test when not root, unless `NAUTI_REQUIRE_ROOT=1`, where it fails instead.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::root::is_root() {
            if $crate::root::root_required() {
                panic!("this test needs root and NAUTI_REQUIRE_ROOT=1 forbids skipping it");
            }
            eprintln!("skipped: needs root (set NAUTI_REQUIRE_ROOT=1 to make this a failure)");
            return;
        }
    };
}
