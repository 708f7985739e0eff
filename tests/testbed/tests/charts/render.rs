//! What the charts render: the same RBAC as `deploy/rbac`, the same CRDs as `deploy/crds`, and
//! objects a real kube-apiserver accepts.

use std::collections::BTreeMap;
use std::path::Path;

use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::{KubeApi, TestDir, repo_root, require_root};
use serde_json::Value;

use crate::helm::{AGENT_CHART, HUB_CHART, Helm, NAMESPACE, key, kubectl, parse_documents};
use crate::values::{agent_good, agent_seed, hub_good, write_ca};

/// Kinds that carry rights or identities: each one a chart renders must come from deploy/rbac.
const RBAC_KINDS: &[&str] = &[
    "ServiceAccount",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
];

/// An object without what the chart adds for bookkeeping (labels, annotations).
fn without_bookkeeping(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        meta.remove("labels");
        meta.remove("annotations");
    }
    obj
}

/// The objects of deploy/rbac/<file> but the Namespace (Helm's `--create-namespace` makes it).
fn deploy_rbac(file: &str) -> Vec<Value> {
    let path = repo_root().join("deploy/rbac").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    parse_documents(&text)
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .collect()
}

/// Every object of `files` is in `rendered`, equal but for labels and annotations, and
/// `rendered` holds no other RBAC object than `extra` (identities with no rights).
fn assert_same_rbac(chart: &str, rendered: &[Value], files: &[&str], extra: &[&str]) {
    let by_key: BTreeMap<String, &Value> = rendered.iter().map(|o| (key(o), o)).collect();
    let mut expected = Vec::new();
    for file in files {
        for want in deploy_rbac(file) {
            let k = key(&want);
            let got = by_key
                .get(&k)
                .unwrap_or_else(|| panic!("{chart} lacks {k} of deploy/rbac/{file}"));
            assert_eq!(
                without_bookkeeping(got),
                without_bookkeeping(&want),
                "{chart}: {k} differs from deploy/rbac/{file}; run deploy/charts/copy-rbac.sh"
            );
            expected.push(k);
        }
    }
    assert!(expected.len() >= 5, "{chart}: {expected:?}");
    for obj in rendered {
        let kind = obj["kind"].as_str().unwrap_or("");
        let k = key(obj);
        if RBAC_KINDS.contains(&kind) && !expected.contains(&k) && !extra.contains(&k.as_str()) {
            panic!("{chart} renders {k}, which is in no file of deploy/rbac");
        }
    }
}

#[test]
fn chart_rbac_equals_deploy_rbac() {
    let dir = TestDir::new("charts-rbac").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let hub = helm.template(HUB_CHART, &hub_good()[0].1);
    assert_same_rbac(HUB_CHART, &hub, &["octopus-hub.yaml"], &[]);
    let agent = helm.template(AGENT_CHART, &agent_seed(Path::new(&ca), "cluster1"));
    assert_same_rbac(
        AGENT_CHART,
        &agent,
        &[
            "nri.yaml",
            "ovnmaster.yaml",
            "crossdns.yaml",
            "octopus-member.yaml",
            "nautictl-clean.yaml",
        ],
        // OVN's pods: an identity with no token and no rights.
        &["ServiceAccount/nauti-system/ovn"],
    );
    // The comparison sees a change: a rule dropped from the chart's copy is a difference.
    let mut tampered = agent.clone();
    let role = tampered
        .iter_mut()
        .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == "nauti-nri")
        .unwrap();
    role["rules"].as_array_mut().unwrap().pop();
    let caught = std::panic::catch_unwind(|| {
        assert_same_rbac(AGENT_CHART, &tampered, &["nri.yaml"], &[]);
    });
    assert!(caught.is_err(), "a changed rule went unnoticed");
}

#[test]
fn chart_crds_equal_deploy_crds() {
    let source = repo_crds();
    for (chart, files) in [
        (
            HUB_CHART,
            &[
                "peers.nauti.io.yaml",
                "serviceexports.multicluster.x-k8s.io.yaml",
                "serviceimports.multicluster.x-k8s.io.yaml",
            ][..],
        ),
        (
            AGENT_CHART,
            &[
                "serviceexports.multicluster.x-k8s.io.yaml",
                "serviceimports.multicluster.x-k8s.io.yaml",
            ][..],
        ),
    ] {
        let folder = repo_root().join(chart).join("crds");
        let mut present: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        present.sort();
        assert_eq!(present, files, "{}", folder.display());
        for file in files {
            assert_eq!(
                std::fs::read_to_string(folder.join(file)).unwrap(),
                std::fs::read_to_string(source.join(file)).unwrap(),
                "{chart}/crds/{file} differs from deploy/crds (`make crds` regenerated it? copy it)"
            );
        }
    }
}

#[tokio::test]
async fn every_render_is_accepted_by_the_api_server() {
    require_root!();
    let dir = TestDir::new("charts-dry-run").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let kube = KubeApi::start(&dir).await.unwrap();
    kube.install_crds(&repo_crds()).await.unwrap();
    kube.create_namespace(NAMESPACE).await.unwrap();
    let renders = hub_good()
        .into_iter()
        .map(|(name, values)| (HUB_CHART, name, values))
        .chain(
            agent_good(Path::new(&ca))
                .into_iter()
                .map(|(name, values)| (AGENT_CHART, name, values)),
        );
    let mut checked = 0;
    for (n, (chart, name, values)) in renders.enumerate() {
        let objects = helm.template(chart, &values);
        let file = dir.path().join(format!("render-{n}.yaml"));
        let text: Vec<String> = objects
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        std::fs::write(&file, text.join("\n---\n")).unwrap();
        let out = kubectl(
            kube.kubeconfig(),
            &[
                "apply",
                "--dry-run=server",
                "--server-side",
                "--field-manager=charts-test",
                "-f",
                &file.display().to_string(),
            ],
        );
        // One line per object, each accepted by the API server (admission and validation ran).
        let accepted = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted,
            objects.len(),
            "{chart} ({name}): {accepted} of {} objects accepted:\n{out}",
            objects.len()
        );
        assert!(objects.len() >= 8, "{chart} ({name}): {}", objects.len());
        checked += 1;
    }
    assert_eq!(checked, 8);
}

/// `env = "NAME"` of every flag declared under `dirs` (clap's environment twins).
fn declared_env(dirs: &[&str]) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split("env = \"").skip(1) {
                    out.push(part.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    let mut out = Vec::new();
    for dir in dirs {
        walk(&repo_root().join(dir), &mut out);
    }
    out
}

/// Every `NAUTI_*`/`OCTOPUS_*` variable a chart gives a Nauti daemon is one of its flags'
/// environment twins: a renamed flag cannot leave a chart setting nothing.
#[test]
fn every_variable_the_charts_set_is_a_flag_of_its_daemon() {
    let dir = TestDir::new("charts-env").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    // The shared daemon flags (logging, metrics) are declared in nauti-api.
    let sources: BTreeMap<&str, Vec<String>> = [
        ("octopus", declared_env(&["octopus/src", "api/src"])),
        ("crossdns", declared_env(&["crossdns/src", "api/src"])),
        ("nauti-nri", declared_env(&["nri-plugin/src", "api/src"])),
        ("nauti-ovnmaster", declared_env(&["ovn/src", "api/src"])),
    ]
    .into_iter()
    .collect();
    let mut renders = Vec::new();
    for (_, values) in hub_good() {
        renders.extend(helm.template(HUB_CHART, &values));
    }
    for (_, values) in agent_good(Path::new(&ca)) {
        renders.extend(helm.template(AGENT_CHART, &values));
    }
    let mut checked = 0;
    for obj in &renders {
        let spec = &obj["spec"]["template"]["spec"];
        let containers = spec["containers"]
            .as_array()
            .into_iter()
            .chain(spec["initContainers"].as_array())
            .flatten();
        for container in containers {
            let image = container["image"].as_str().unwrap_or("");
            let daemon = image.rsplit('/').next().unwrap().split(':').next().unwrap();
            let Some(declared) = sources.get(daemon) else {
                continue;
            };
            for env in container["env"].as_array().into_iter().flatten() {
                let name = env["name"].as_str().unwrap();
                if name.starts_with("NAUTI_") || name.starts_with("OCTOPUS_") {
                    assert!(
                        declared.iter().any(|d| d == name),
                        "{} sets {name} for {daemon}, which has no such flag",
                        key(obj)
                    );
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 50, "only {checked} variables checked");
}

#[test]
fn the_gateway_is_reachable_on_the_hub_and_on_public_members_only() {
    let dir = TestDir::new("charts-gateway").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let find = |objs: &[Value], kind: &str, name: &str| {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .cloned()
    };
    let env_of = |deployment: &Value, name: &str| {
        deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .map(|e| e["value"].as_str().unwrap().to_owned())
    };

    let hub = helm.template(HUB_CHART, &hub_good()[0].1);
    let service = find(&hub, "Service", "octopus-gateway").expect("no hub gateway Service");
    assert_eq!(service["spec"]["ports"][0]["protocol"], "UDP");
    assert_eq!(service["spec"]["ports"][0]["port"], 51820);
    let octopus = find(&hub, "Deployment", "octopus-hub").unwrap();
    assert_eq!(
        env_of(&octopus, "OCTOPUS_WIREGUARD_INTERFACE").as_deref(),
        Some("nauti-wg")
    );
    assert_eq!(
        env_of(&octopus, "OCTOPUS_ENDPOINT").as_deref(),
        Some("10.115.217.212")
    );

    let off = helm.template(HUB_CHART, &hub_good()[1].1);
    assert!(find(&off, "Service", "octopus-gateway").is_none());
    let octopus = find(&off, "Deployment", "octopus-hub").unwrap();
    assert_eq!(env_of(&octopus, "OCTOPUS_WIREGUARD_INTERFACE"), None);
    assert_eq!(
        octopus["spec"]["template"]["spec"]["containers"][0]["securityContext"]["privileged"],
        Value::Null,
        "octopus without a gateway needs no privilege"
    );

    // A member behind NAT dials out: a tunnel, no Service. A public one gets its node port.
    let sets = agent_good(Path::new(&ca));
    let nat = helm.template(AGENT_CHART, &sets[0].1);
    assert!(find(&nat, "Service", "octopus-gateway").is_none());
    let member = find(&nat, "Deployment", "octopus-member").unwrap();
    assert_eq!(
        env_of(&member, "OCTOPUS_WIREGUARD_INTERFACE").as_deref(),
        Some("nauti-wg")
    );
    assert_eq!(env_of(&member, "OCTOPUS_ENDPOINT"), None);
    let public = helm.template(AGENT_CHART, &sets[2].1);
    let service = find(&public, "Service", "octopus-gateway").expect("no public gateway");
    assert_eq!(service["spec"]["ports"][0]["nodePort"], 31820);
    let member = find(&public, "Deployment", "octopus-member").unwrap();
    assert_eq!(env_of(&member, "OCTOPUS_PUBLIC").as_deref(), Some("true"));
}

/// The shell scripts of the OVN containers parse (`sh -n`, dash as in Debian's image).
#[test]
fn every_container_script_parses() {
    let dir = TestDir::new("charts-scripts").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    let objects = helm.template(AGENT_CHART, &agent_seed(Path::new(&ca), "cluster1"));
    let mut scripts = 0;
    for obj in &objects {
        let containers = obj["spec"]["template"]["spec"]["containers"].as_array();
        for container in containers.into_iter().flatten() {
            let Some(command) = container["command"].as_array() else {
                continue;
            };
            assert_eq!(command[0], "/bin/sh", "{}", key(obj));
            let script = command.last().unwrap().as_str().unwrap();
            let out = std::process::Command::new("/bin/sh")
                .args(["-n", "-c", script])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{} {}: {}",
                key(obj),
                container["name"],
                String::from_utf8_lossy(&out.stderr)
            );
            scripts += 1;
        }
    }
    // ovsdb-server NB and SB, northd, openvswitch, ovn-controller.
    assert_eq!(scripts, 5);
}

/// Installed into another namespace, a chart puts its objects there (or cluster-wide, or the
/// bootstrap token and CoreDNS rights in kube-system) and names nauti-system nowhere but in the
/// member's pointer to the hub's Peer namespace, which is the hub's to choose.
#[test]
fn a_release_in_another_namespace_stays_in_it() {
    let dir = TestDir::new("charts-namespace").unwrap();
    let helm = Helm::new(&dir);
    let ca = write_ca(&dir);
    for (chart, values) in [
        (HUB_CHART, hub_good()[0].1.clone()),
        (AGENT_CHART, agent_seed(Path::new(&ca), "cluster1")),
    ] {
        let mut args = vec![
            "template",
            "nauti-test",
            chart,
            "--namespace",
            "nauti-other",
        ];
        args.extend(values.iter().map(String::as_str));
        let objects = parse_documents(&helm.ok(&args));
        assert!(objects.len() > 5);
        for obj in &objects {
            let namespace = obj["metadata"]["namespace"].as_str();
            assert!(
                matches!(namespace, None | Some("nauti-other" | "kube-system")),
                "{chart}: {}",
                key(obj)
            );
            let mut text = serde_json::to_string(obj).unwrap();
            text = text.replace(
                r#"{"name":"OCTOPUS_HUB_NAMESPACE","value":"nauti-system"}"#,
                "",
            );
            assert!(
                !text.contains("nauti-system"),
                "{chart}: {} names nauti-system:\n{text}",
                key(obj)
            );
        }
    }
}
