//! Running helm and kubectl against the checkout's charts, with helm's own folders inside the
//! test's folder (nothing written to `~/.cache/helm` or `~/.config/helm`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nauti_testbed::{TestDir, peers, repo_root};
use serde_json::Value;

pub const HUB_CHART: &str = "deploy/charts/nauti";
pub const AGENT_CHART: &str = "deploy/charts/nauti-agent";
/// The namespace of the seed's commands (and of `deploy/rbac`).
pub const NAMESPACE: &str = "nauti-system";

pub struct Helm {
    bin: PathBuf,
    home: PathBuf,
}

impl Helm {
    pub fn new(dir: &TestDir) -> Self {
        Self {
            bin: peers::bin("helm").unwrap(),
            home: dir.sub("helm").unwrap(),
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .current_dir(repo_root())
            .env("HELM_CACHE_HOME", self.home.join("cache"))
            .env("HELM_CONFIG_HOME", self.home.join("config"))
            .env("HELM_DATA_HOME", self.home.join("data"))
            // No kubeconfig unless a test passes one: renders never reach a cluster by accident.
            .env("KUBECONFIG", self.home.join("no-kubeconfig"));
        cmd
    }

    pub fn output(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run helm")
    }

    /// stdout of a helm command that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.output(args);
        assert!(
            out.status.success(),
            "helm {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// stdout and stderr of a helm command that must fail.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.output(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.status.success(), "helm {args:?} succeeded:\n{text}");
        text
    }

    /// `helm template` of `chart` into the seed's namespace, CRDs included, parsed.
    pub fn template(&self, chart: &str, values: &[String]) -> Vec<Value> {
        let mut args = vec![
            "template",
            "nauti-test",
            chart,
            "--namespace",
            NAMESPACE,
            "--include-crds",
        ];
        args.extend(values.iter().map(String::as_str));
        parse_documents(&self.ok(&args))
    }
}

/// The objects of a multi-document YAML stream (empty documents left out).
pub fn parse_documents(text: &str) -> Vec<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("parse YAML");
    docs.into_iter().filter(|d| !d.is_null()).collect()
}

/// kubectl with `kubeconfig`; returns the output, asserting success.
pub fn kubectl(kubeconfig: &Path, args: &[&str]) -> String {
    let out = Command::new(peers::bin("kubectl").unwrap())
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("run kubectl");
    assert!(
        out.status.success(),
        "kubectl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kind/namespace/name` of an object, for messages and lookups.
pub fn key(obj: &Value) -> String {
    format!(
        "{}/{}/{}",
        obj["kind"].as_str().unwrap_or("?"),
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or("?")
    )
}
