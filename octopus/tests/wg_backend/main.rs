//! The WireGuard backend choice on this machine: its kernel has no WireGuard module, so `auto`
//! must pick the userspace device and `--wireguard-backend kernel` must stop with an error that
//! names the missing module. Run in network namespaces of their own (the probe creates and
//! deletes a throwaway `wireguard` link where the module exists).
//!
//! On a node that has the module, `the_kernel_has_no_wireguard_module_here_so_auto_is_userspace`
//! fails by design: it pins down this machine's kernel, which is why the kernel backend is
//! documented as untested here (see `octopus::wg::kernel`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nauti_octopus::wg::kernel::{
    BackendError, ChosenBackend, WIREGUARD_MODULE_SYSFS, WireGuardBackend, choose_backend,
    kernel_available, probe_kernel,
};
use nauti_testbed::{Netns, TestDir, require_root};

/// What the error of the kernel backend must say.
const MISSING_MODULE: &str = "the kernel has no WireGuard module (`wireguard`)";
/// Longest an `octopus hub` that fails at its flags may take.
const EXIT_WITHIN: Duration = Duration::from_secs(30);

#[test]
fn the_kernel_has_no_wireguard_module_here_so_auto_is_userspace() {
    require_root!();
    // This machine's kernel has no WireGuard module: the sysfs entry is absent and creating
    // a `wireguard` link is refused. Where the module exists this assertion fails on purpose.
    assert!(
        !std::path::Path::new(WIREGUARD_MODULE_SYSFS).exists(),
        "{WIREGUARD_MODULE_SYSFS} exists: this node has the module; the kernel backend is \
         untested here and this test describes a node without it"
    );
    let ns = Netns::new("wgbe").unwrap();
    let (available, probe, auto, kernel) = ns
        .run_in(|| {
            let probe = probe_kernel().map_err(|e| chain(&e));
            let auto = choose_backend(WireGuardBackend::Auto, probe_kernel, true).unwrap();
            let kernel = choose_backend(WireGuardBackend::Kernel, probe_kernel, true)
                .map_err(|e| (matches!(e, BackendError::ModuleMissing(_)), chain(&e)));
            (kernel_available(), probe, auto, kernel)
        })
        .unwrap();
    assert!(
        !available,
        "kernel_available() on a kernel without the module"
    );
    let reason = probe.unwrap_err();
    assert!(reason.contains(MISSING_MODULE), "{reason}");
    // The kernel's answer to the throwaway link: no such link kind.
    assert!(
        reason.ends_with("Operation not supported (os error 95)"),
        "{reason}"
    );
    assert_eq!(auto, ChosenBackend::Userspace);
    let (module_missing, text) = kernel.unwrap_err();
    assert!(module_missing, "{text}");
    assert!(text.contains(MISSING_MODULE), "{text}");
    // The refused probe left no link behind.
    let links = ns.ip(&["-o", "link", "show"]).unwrap();
    assert!(!links.contains("wgprobe"), "{links}");
}

/// The error and its sources, as the command line prints them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Runs `octopus hub` in `ns` with the gateway on and `backend`, until it exits (at most
/// [`EXIT_WITHIN`]); its exit status and everything it printed.
fn hub_with_backend(ns: &Netns, dir: &TestDir, backend: Option<&str>) -> (bool, String) {
    let log = dir
        .path()
        .join(format!("hub-{}.log", backend.unwrap_or("env")));
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_octopus"));
    cmd.args(["hub", "--cluster-id", "hub", "--endpoint", "198.18.0.1"])
        .args(["--wireguard-interface", "wg-backend"])
        // No API server: the run must end at its flags or at the kubeconfig, never reach one.
        .arg("--kubeconfig")
        .arg(dir.path().join("absent-kubeconfig"));
    match backend {
        Some(backend) => {
            cmd.args(["--wireguard-backend", backend]);
        }
        None => {
            cmd.env("OCTOPUS_WIREGUARD_BACKEND", "kernel");
        }
    }
    let file = std::fs::File::create(&log).unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .spawn()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > EXIT_WITHIN {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "octopus hub still running after {EXIT_WITHIN:?}:\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn the_kernel_backend_fails_naming_the_missing_module() {
    require_root!();
    let ns = Netns::new("wgbe").unwrap();
    let dir = TestDir::new("wg-backend").unwrap();

    for backend in [Some("kernel"), None] {
        let (ok, output) = hub_with_backend(&ns, &dir, backend);
        assert!(
            !ok,
            "octopus hub with the kernel backend succeeded:\n{output}"
        );
        assert!(output.contains("--wireguard-backend"), "{output}");
        assert!(output.contains(MISSING_MODULE), "{output}");
        assert!(output.contains(WIREGUARD_MODULE_SYSFS), "{output}");
    }

    // `auto` gets past the backend (to the absent kubeconfig) with the userspace device.
    let (ok, output) = hub_with_backend(&ns, &dir, Some("auto"));
    assert!(!ok, "{output}");
    assert!(output.contains("backend=Userspace"), "{output}");
    assert!(!output.contains(MISSING_MODULE), "{output}");

    // A backend that does not exist is refused by the flag parser, naming the choices.
    let out = Command::new(env!("CARGO_BIN_EXE_octopus"))
        .args(["hub", "--cluster-id", "hub", "--endpoint", "198.18.0.1"])
        .args(["--wireguard-backend", "ebpf"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("auto") && stderr.contains("kernel") && stderr.contains("userspace"),
        "{stderr}"
    );
}
