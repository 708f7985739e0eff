//! The phases that follow the seed's example on the same bed: a headless StatefulSet exported
//! from east, a forged `nauti.io/ip_address`, the hub's API server frozen while east changes,
//! the same Service exported from both members (then with conflicting ports), and invalid
//! exports. Each one leaves the bed as it found it (only east's nginx exported).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::Cluster;
use nauti_testbed::cluster_bed::images::NGINX_IMAGE;
use serde_json::{Value, json};

use crate::cluster::Member;
use crate::mcs::{
    DigAnswer, NGINX_LABEL, curl, deploy_exported_nginx, dig, eventually, ready_nginx, ready_pods,
};

pub const HYPEROS_NAME: &str = "nginx-svc.default.svc.hyperos.local";
pub const CLUSTERSET_NAME: &str = "nginx-svc.default.svc.clusterset.local";
/// Bound of every wait for a change to travel east -> hub -> west -> crossdns -> CoreDNS
/// (CoreDNS's `reload` alone may take 45 s to see a new Corefile).
pub const PROPAGATION: Duration = Duration::from_secs(90);

const HEADLESS: &str = "web-hl";
const HEADLESS_NAME: &str = "web-hl.default.svc.clusterset.local";
const HEADLESS_LABEL: &str = "app=web";
/// Longer than the hub gateway's lease (15 s), as `--test crosscluster`'s outage.
const OUTAGE: Duration = Duration::from_secs(16);

/// What every phase works with: both members, west's client pod and its two nameservers.
pub struct Phases<'s> {
    pub hub: &'s Cluster,
    pub east: &'s Member<'s>,
    pub west: &'s Member<'s>,
    /// West's CoreDNS, as the client's resolv.conf names it.
    pub nameserver: String,
    /// crossdns's Service in west.
    pub crossdns_ip: String,
    pub diagnostics: &'s dyn Fn() -> String,
}

/// Resumes the hub's API server however the outage phase ends.
struct Outage<'a>(&'a Cluster);

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        let _ = self.0.control_plane.resume_apiserver();
    }
}

/// `(status, reason, message)` of a condition of a ServiceExport.
pub fn export_condition(
    cluster: &Cluster,
    name: &str,
    condition: &str,
) -> Option<(String, String, String)> {
    let out = cluster
        .kubectl(&["get", "serviceexport", name, "-o", "json"])
        .ok()?;
    let export: Value = serde_json::from_str(&out).ok()?;
    export["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == condition)
        .map(|c| {
            let field = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (field("status"), field("reason"), field("message"))
        })
}

/// What a ServiceImport says, as `kubectl get` shows it.
#[derive(Debug)]
struct Import {
    kind: String,
    ips: Vec<String>,
    /// The exporting clusters, from its status.
    clusters: Vec<String>,
    ports: Vec<i64>,
}

/// West's ServiceImport of `name`, if any.
fn west_import(west: &Cluster, name: &str) -> Option<Import> {
    let out = west
        .kubectl(&["get", "serviceimports", "-o", "json"])
        .ok()?;
    let list: Value = serde_json::from_str(&out).ok()?;
    let import = list["items"]
        .as_array()?
        .iter()
        .find(|i| i["metadata"]["name"] == name)?;
    let strings = |v: &Value, key: Option<&str>| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| match key {
                Some(key) => x[key].as_str(),
                None => x.as_str(),
            })
            .map(str::to_owned)
            .collect()
    };
    Some(Import {
        kind: import["spec"]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        ips: strings(&import["spec"]["ips"], None),
        clusters: strings(&import["status"]["clusters"], Some("cluster")),
        ports: import["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["port"].as_i64())
            .collect(),
    })
}

/// The ready addresses of west's imported EndpointSlices of `service`, by source cluster.
fn west_slices(west: &Cluster, service: &str) -> BTreeMap<String, BTreeSet<String>> {
    let out = west
        .kubectl(&[
            "get",
            "endpointslices",
            "-l",
            &format!("multicluster.kubernetes.io/service-name={service}"),
            "-o",
            "json",
        ])
        .unwrap_or_default();
    let list: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut by_cluster: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for slice in list["items"].as_array().into_iter().flatten() {
        let Some(cluster) =
            slice["metadata"]["labels"]["multicluster.kubernetes.io/source-cluster"].as_str()
        else {
            continue;
        };
        let addresses = by_cluster.entry(cluster.to_owned()).or_default();
        // Ready endpoints only: a pod that just went may linger as terminating.
        let ready = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"] == true);
        for endpoint in ready {
            addresses.extend(
                endpoint["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_owned),
            );
        }
    }
    by_cluster
}

/// A headless Service `web-hl` over a StatefulSet `web` of `replicas` nginx pods (hostnames
/// `web-0`, ...), exported if `exported`.
pub fn deploy_headless(cluster: &Cluster, replicas: u32, exported: bool) {
    let labels = json!({"app": "web"});
    let mut items = vec![
        json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": HEADLESS, "namespace": "default"},
        "spec": {"clusterIP": "None", "selector": labels, "ports": [
           {"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"},
        ]}}),
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
           "replicas": replicas,
           "serviceName": HEADLESS,
           "podManagementPolicy": "Parallel",
           "selector": {"matchLabels": labels},
           "template": {"metadata": {"labels": labels}, "spec": {
               "terminationGracePeriodSeconds": 2,
               "containers": [{"name": "nginx", "image": NGINX_IMAGE,
                               "imagePullPolicy": "IfNotPresent",
                               "ports": [{"containerPort": 80}]}],
           }},
        }}),
    ];
    if exported {
        items.push(headless_export());
    }
    cluster
        .apply(&json!({"apiVersion": "v1", "kind": "List", "items": items}))
        .unwrap();
}

fn headless_export() -> Value {
    json!({"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
           "metadata": {"name": HEADLESS, "namespace": "default"}})
}

/// Exports that must be refused: an ExternalName Service, and a name with no Service.
pub fn deploy_invalid_exports(cluster: &Cluster) {
    cluster
        .apply(&json!({
            "apiVersion": "v1", "kind": "List",
            "items": [
                {"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "external", "namespace": "default"},
                 "spec": {"type": "ExternalName", "externalName": "example.com"}},
                {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
                 "metadata": {"name": "external", "namespace": "default"}},
                {"apiVersion": "multicluster.x-k8s.io/v1beta1", "kind": "ServiceExport",
                 "metadata": {"name": "ghost", "namespace": "default"}},
            ],
        }))
        .unwrap();
}

impl Phases<'_> {
    /// `dig` from west's client through west's CoreDNS. A query that gets no answer at all
    /// (a lost datagram, `kubectl exec` failing on a loaded machine) is asked again, twice at
    /// most; any answer is returned as it is.
    pub fn ask(&self, name: &str, record_type: &str) -> Result<DigAnswer, String> {
        let mut result = dig(self.west, "client", &self.nameserver, name, record_type);
        for _ in 0..2 {
            if result.is_ok() {
                break;
            }
            result = dig(self.west, "client", &self.nameserver, name, record_type);
        }
        result
    }

    /// Waits until `name` answers NOERROR with exactly `want` as its `record_type` records.
    fn answers_exactly(
        &self,
        what: &str,
        name: &str,
        record_type: &str,
        want: &BTreeSet<String>,
    ) -> Duration {
        let start = Instant::now();
        eventually(what, PROPAGATION, self.diagnostics, || {
            let answer = self.ask(name, record_type)?;
            (answer.status == "NOERROR" && answer.of_type(record_type) == *want)
                .then_some(())
                .ok_or(format!("{answer:?}, want {want:?}"))
        });
        start.elapsed()
    }

    fn nxdomain(&self, what: &str, names: &[&str]) {
        eventually(what, PROPAGATION, self.diagnostics, || {
            for name in names {
                let answer = self.ask(name, "A")?;
                if answer.status != "NXDOMAIN" {
                    return Err(format!("{name}: {answer:?}"));
                }
            }
            Ok(())
        });
    }

    fn scale_east_nginx(&self, replicas: u32) {
        self.east
            .cluster()
            .kubectl(&[
                "scale",
                "deployment/nginx-app",
                &format!("--replicas={replicas}"),
            ])
            .unwrap();
    }

    /// East's ready nginx pods once there are `count` of them (name -> global address).
    fn east_nginx(&self, what: &str, count: usize) -> BTreeMap<String, String> {
        eventually(what, PROPAGATION, self.diagnostics, || {
            let pods = ready_pods(self.east.cluster(), NGINX_LABEL);
            (pods.len() == count)
                .then_some(pods.clone())
                .ok_or(format!("east's ready nginx pods {pods:?}"))
        })
    }

    /// Headless: the StatefulSet's pods by the service name, by `<hostname>.east.<svc>...`
    /// and as SRV targets; then west exports its own (`web-0` in both clusters, told apart by
    /// the cluster ID); then both exports go and their names with them. Returns how long the
    /// answers took once east's pods were ready.
    pub fn headless(&self) -> Duration {
        let pods = eventually(
            "east's StatefulSet has two ready pods with addresses",
            PROPAGATION,
            self.diagnostics,
            || {
                let pods = ready_pods(self.east.cluster(), HEADLESS_LABEL);
                (pods.len() == 2)
                    .then_some(pods.clone())
                    .ok_or(format!("{pods:?}"))
            },
        );
        assert_eq!(
            pods.keys().cloned().collect::<Vec<_>>(),
            ["web-0", "web-1"],
            "a StatefulSet names its pods in order"
        );
        let addresses: BTreeSet<String> = pods.values().cloned().collect();
        let took = self.answers_exactly(
            "the headless clusterset name answers east's pods",
            HEADLESS_NAME,
            "A",
            &addresses,
        );
        for (pod, address) in &pods {
            let host = format!("{pod}.east.{HEADLESS_NAME}");
            let answer = self
                .ask(&host, "A")
                .unwrap_or_else(|e| panic!("{e}\n{}", (self.diagnostics)()));
            assert_eq!(
                (answer.status.as_str(), answer.of_type("A")),
                ("NOERROR", BTreeSet::from([address.clone()])),
                "{host}: {answer:?}"
            );
        }
        let targets: BTreeSet<String> = pods
            .keys()
            .map(|pod| format!("0 100 80 {pod}.east.{HEADLESS_NAME}."))
            .collect();
        for name in [
            format!("_http._tcp.{HEADLESS_NAME}"),
            HEADLESS_NAME.to_owned(),
        ] {
            let srv = self
                .ask(&name, "SRV")
                .unwrap_or_else(|e| panic!("{e}\n{}", (self.diagnostics)()));
            assert_eq!(srv.of_type("SRV"), targets, "{name}: {srv:?}");
        }
        // A name for a hostname east does not have does not exist.
        let missing = self
            .ask(&format!("web-7.east.{HEADLESS_NAME}"), "A")
            .unwrap();
        assert_eq!(missing.status, "NXDOMAIN", "{missing:?}");
        let import = west_import(self.west.cluster(), HEADLESS)
            .unwrap_or_else(|| panic!("no ServiceImport {HEADLESS} in west"));
        assert_eq!(
            (
                import.kind.as_str(),
                import.ips.len(),
                import.clusters.clone()
            ),
            ("Headless", 0, vec!["east".to_owned()]),
            "{import:?}"
        );

        // West exports its own `web` too: the same hostname `web-0` in both clusters, told
        // apart by the cluster ID.
        self.west.cluster().apply(&headless_export()).unwrap();
        let west_pods = eventually(
            "west's StatefulSet has a ready pod with its address",
            PROPAGATION,
            self.diagnostics,
            || {
                let pods = ready_pods(self.west.cluster(), HEADLESS_LABEL);
                (pods.len() == 1)
                    .then_some(pods.clone())
                    .ok_or(format!("{pods:?}"))
            },
        );
        let west_web_0 = west_pods
            .get("web-0")
            .unwrap_or_else(|| panic!("west's pods {west_pods:?}"))
            .clone();
        let mut all = addresses.clone();
        all.insert(west_web_0.clone());
        self.answers_exactly(
            "the headless clusterset name answers the pods of both clusters",
            HEADLESS_NAME,
            "A",
            &all,
        );
        for (cluster, address) in [("east", &pods["web-0"]), ("west", &west_web_0)] {
            let host = format!("web-0.{cluster}.{HEADLESS_NAME}");
            let answer = self.ask(&host, "A").unwrap();
            assert_eq!(
                (answer.status.as_str(), answer.of_type("A")),
                ("NOERROR", BTreeSet::from([address.clone()])),
                "{host}: {answer:?}"
            );
        }
        let mut targets = targets;
        targets.insert(format!("0 100 80 web-0.west.{HEADLESS_NAME}."));
        let srv = self
            .ask(&format!("_http._tcp.{HEADLESS_NAME}"), "SRV")
            .unwrap();
        assert_eq!(srv.of_type("SRV"), targets, "{srv:?}");
        let import = west_import(self.west.cluster(), HEADLESS).unwrap();
        assert_eq!(import.clusters, ["east", "west"], "{import:?}");

        for member in [self.east, self.west] {
            member
                .cluster()
                .kubectl(&["delete", "serviceexport", HEADLESS])
                .unwrap();
        }
        self.nxdomain(
            "the headless names go away after both unexports",
            &[
                HEADLESS_NAME,
                &format!("web-0.east.{HEADLESS_NAME}"),
                &format!("web-0.west.{HEADLESS_NAME}"),
            ],
        );
        for member in [self.east, self.west] {
            member
                .cluster()
                .kubectl(&[
                    "delete",
                    "statefulset/web",
                    &format!("service/{HEADLESS}"),
                    "--wait=false",
                ])
                .unwrap();
        }
        took
    }

    /// A pod of east's export carries a forged `nauti.io/ip_address`; a scale up makes the
    /// export controller read it; west's answers still have only the pods' real global
    /// addresses. Expects east's nginx at one replica; leaves it at two, the forged pod gone.
    pub fn forged_annotation(&self) {
        let before = self.east_nginx("east's single nginx pod", 1);
        let (forged_pod, real) = before.iter().next().unwrap();
        let raw = self
            .east
            .cluster()
            .kubectl(&[
                "get",
                "pod",
                forged_pod,
                "-o",
                "jsonpath={.metadata.annotations.nauti\\.io/ip_address}",
            ])
            .unwrap();
        // Inside east's slice (10.113.0.0/16) but no pod's: the kind of lie a pod could tell.
        let forged_ip = "10.113.250.250";
        let forged = match raw.trim().split_once('/') {
            Some((_, prefix)) => format!("{forged_ip}/{prefix}"),
            None => forged_ip.to_owned(),
        };
        self.east
            .cluster()
            .kubectl(&[
                "annotate",
                "--overwrite",
                "pod",
                forged_pod,
                &format!("nauti.io/ip_address={forged}"),
            ])
            .unwrap();
        self.scale_east_nginx(2);
        // The new pod's address is its own annotation (written by the node's agent).
        let added = eventually(
            "a second nginx pod in east with its address",
            PROPAGATION,
            self.diagnostics,
            || {
                let pods = ready_pods(self.east.cluster(), NGINX_LABEL);
                let others: Vec<String> = pods
                    .iter()
                    .filter(|(name, _)| *name != forged_pod)
                    .map(|(_, ip)| ip.clone())
                    .collect();
                match others.as_slice() {
                    [ip] => Ok(ip.clone()),
                    _ => Err(format!("{pods:?}")),
                }
            },
        );
        let want = BTreeSet::from([real.clone(), added]);
        self.answers_exactly(
            "west answers the real addresses of east's two pods",
            HYPEROS_NAME,
            "A",
            &want,
        );
        // A few more answers, in case a later pass took the forged address in.
        for _ in 0..3 {
            std::thread::sleep(Duration::from_secs(1));
            let answer = self.ask(HYPEROS_NAME, "A").unwrap();
            assert!(
                !answer.of_type("A").contains(forged_ip) && answer.of_type("A") == want,
                "{answer:?}, want {want:?}"
            );
        }
        let still_forged = self
            .east
            .cluster()
            .kubectl(&[
                "get",
                "pod",
                forged_pod,
                "-o",
                "jsonpath={.metadata.annotations.nauti\\.io/ip_address}",
            ])
            .unwrap();
        assert_eq!(
            still_forged.trim(),
            forged,
            "the forged annotation was replaced while west was asked: the check proved nothing"
        );
        // The liar goes; its replacement is an honest pod.
        self.east
            .cluster()
            .kubectl(&["delete", "pod", forged_pod, "--wait=false"])
            .unwrap();
        eventually(
            "west follows the forged pod's replacement",
            PROPAGATION,
            self.diagnostics,
            || {
                let (pods, addresses) = ready_nginx(self.east.cluster());
                if pods.len() != 2 || pods.contains(forged_pod) {
                    return Err(format!("east's ready pods {pods:?}"));
                }
                let answer = self.ask(HYPEROS_NAME, "A")?;
                (answer.status == "NOERROR" && answer.of_type("A") == addresses)
                    .then_some(())
                    .ok_or(format!("{answer:?}, want {addresses:?}"))
            },
        );
    }

    /// The hub's API server frozen: west keeps answering what it last saw (east's two pods and
    /// the clusterset IP) while east scales to three; the third arrives once the hub is back.
    /// Returns the time from the resume to west's answer.
    pub fn hub_outage(&self, clusterset_ip: &str) -> Duration {
        let (_, before) = ready_nginx(self.east.cluster());
        assert_eq!(before.len(), 2, "{before:?}");
        self.hub.control_plane.pause_apiserver().unwrap();
        let outage = Outage(self.hub);
        let paused = Instant::now();
        let hub_answered = self
            .hub
            .kubectl(&["get", "namespaces", "--request-timeout=2s"]);
        assert!(
            hub_answered.is_err(),
            "the hub's API server still answers: {hub_answered:?}"
        );
        self.scale_east_nginx(3);
        let mut east_scaled = false;
        let mut answered = 0;
        while paused.elapsed() < OUTAGE || !east_scaled {
            assert!(
                paused.elapsed() < PROPAGATION,
                "east never had three ready pods during the outage\n{}",
                (self.diagnostics)()
            );
            let by_name = self.ask(HYPEROS_NAME, "A");
            let clusterset = self.ask(CLUSTERSET_NAME, "A");
            match (&by_name, &clusterset) {
                (Ok(by_name), Ok(clusterset))
                    if by_name.status == "NOERROR"
                        && by_name.of_type("A") == before
                        && clusterset.status == "NOERROR"
                        && clusterset.of_type("A")
                            == BTreeSet::from([clusterset_ip.to_owned()]) =>
                {
                    answered += 1;
                }
                _ => panic!(
                    "west stopped answering what it last saw while the hub was down:\n\
                     {by_name:?}\n{clusterset:?}\nwant {before:?} and {clusterset_ip}\n{}",
                    (self.diagnostics)()
                ),
            }
            east_scaled = ready_nginx(self.east.cluster()).0.len() == 3;
            std::thread::sleep(Duration::from_secs(1));
        }
        assert!(answered >= 3, "only {answered} answers during the outage");
        let ready_during = export_condition(self.east.cluster(), "nginx-svc", "Ready");
        drop(outage);
        eprintln!(
            "mcs_clusters: east's ServiceExport at the end of the outage: Ready {ready_during:?}"
        );
        let resumed = Instant::now();
        let (_, after) = ready_nginx(self.east.cluster());
        assert_eq!(after.len(), 3, "{after:?}");
        self.answers_exactly(
            "east's third pod reaches west's answers after the hub is back",
            HYPEROS_NAME,
            "A",
            &after,
        );
        let propagated = resumed.elapsed();
        // And east's export says it is published again.
        eventually(
            "east's ServiceExport is Ready after the outage",
            PROPAGATION,
            self.diagnostics,
            || {
                let valid = export_condition(self.east.cluster(), "nginx-svc", "Valid");
                let ready = export_condition(self.east.cluster(), "nginx-svc", "Ready");
                match (&valid, &ready) {
                    (Some(valid), Some(ready)) if valid.0 == "True" && ready.0 == "True" => Ok(()),
                    _ => Err(format!("Valid {valid:?}, Ready {ready:?}")),
                }
            },
        );
        propagated
    }

    /// nginx exported from both members: west's answers and ServiceImport carry both, and the
    /// clusterset IP reaches pods of both; then west's Service takes another port number under
    /// the same name: `Conflict=True` (PortConflict) on both exports while the import keeps
    /// east's port; then west's Service becomes headless: TypeConflict, the import stays a
    /// clusterset IP. West's export then goes, and with it the conflict.
    pub fn exported_from_both(&self, clusterset_ip: &str) -> usize {
        deploy_exported_nginx(self.west.cluster(), 1);
        let (east_pods, east_addresses) = ready_nginx(self.east.cluster());
        let west_pods = eventually(
            "west's own nginx pod is ready",
            PROPAGATION,
            self.diagnostics,
            || {
                let pods = ready_pods(self.west.cluster(), NGINX_LABEL);
                (pods.len() == 1)
                    .then_some(pods.clone())
                    .ok_or(format!("{pods:?}"))
            },
        );
        let west_addresses: BTreeSet<String> = west_pods.values().cloned().collect();
        let both: BTreeSet<String> = east_addresses.union(&west_addresses).cloned().collect();
        self.answers_exactly("west answers both clusters' pods", HYPEROS_NAME, "A", &both);
        eventually(
            "west's ServiceImport and slices carry both clusters",
            PROPAGATION,
            self.diagnostics,
            || {
                let import = west_import(self.west.cluster(), "nginx-svc");
                let slices = west_slices(self.west.cluster(), "nginx-svc");
                let want_slices = BTreeMap::from([
                    ("east".to_owned(), east_addresses.clone()),
                    ("west".to_owned(), west_addresses.clone()),
                ]);
                match &import {
                    Some(Import {
                        kind,
                        ips,
                        clusters,
                        ports,
                    }) if kind == "ClusterSetIP"
                        && *ips == [clusterset_ip.to_owned()]
                        && *clusters == ["east", "west"]
                        && *ports == [80]
                        && slices == want_slices =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("import {import:?}, slices {slices:?}")),
                }
            },
        );
        // The clusterset IP balances over both clusters: bounded tries until a pod of each
        // has answered, and only their pods.
        let mut served = BTreeSet::new();
        let mut tries = 0;
        let reached_both = |served: &BTreeSet<String>| {
            served.iter().any(|p| east_pods.contains(p))
                && served.iter().any(|p| west_pods.contains_key(p))
        };
        while !reached_both(&served) && tries < 60 {
            tries += 1;
            if let Ok(name) = curl(
                self.west,
                "client",
                &format!("http://{clusterset_ip}/hostname"),
            ) {
                let name = name.trim().to_owned();
                assert!(
                    east_pods.contains(&name) || west_pods.contains_key(&name),
                    "the clusterset IP was served by {name:?}, of neither cluster's pods \
                     (east {east_pods:?}, west {west_pods:?})"
                );
                served.insert(name);
            }
        }
        assert!(
            reached_both(&served),
            "{tries} connections to the clusterset IP reached only {served:?} (east {east_pods:?}, \
             west {west_pods:?})\n{}",
            (self.diagnostics)()
        );

        // Conflicting ports: the name `http` at 8080 in west, 80 in east (older).
        self.west
            .cluster()
            .kubectl(&[
                "patch",
                "service",
                "nginx-svc",
                "--type=json",
                "-p",
                r#"[{"op":"replace","path":"/spec/ports/0/port","value":8080}]"#,
            ])
            .unwrap();
        let (_, reason, message) = eventually(
            "Conflict=True on west's (younger) ServiceExport",
            PROPAGATION,
            self.diagnostics,
            || {
                export_condition(self.west.cluster(), "nginx-svc", "Conflict")
                    .filter(|c| c.0 == "True")
                    .ok_or_else(|| {
                        format!(
                            "{:?}",
                            export_condition(self.west.cluster(), "nginx-svc", "Conflict")
                        )
                    })
            },
        );
        assert_eq!(reason, "PortConflict", "{message}");
        assert!(
            message.contains("\"east\"") && message.contains("80/TCP"),
            "the message names the older export and its port: {message}"
        );
        // The specification puts the condition on every export of the name: east's says so too.
        let (_, reason, message) = eventually(
            "Conflict=True on east's (older) ServiceExport",
            PROPAGATION,
            self.diagnostics,
            || {
                let conflict = export_condition(self.east.cluster(), "nginx-svc", "Conflict");
                conflict
                    .clone()
                    .filter(|c| c.0 == "True")
                    .ok_or(format!("{conflict:?}"))
            },
        );
        assert_eq!(reason, "PortConflict", "{message}");
        let import = west_import(self.west.cluster(), "nginx-svc").unwrap();
        assert_eq!(
            import.ports,
            [80],
            "the oldest export's port is used: {import:?}"
        );
        let answer = self.ask("_http._tcp.nginx-svc.default.svc.clusterset.local", "SRV");
        assert_eq!(
            answer.as_ref().map(|a| a.of_type("SRV")),
            Ok(BTreeSet::from([format!("0 100 80 {CLUSTERSET_NAME}.")])),
            "{answer:?}"
        );

        // Conflicting types: west's Service becomes headless (same port again). The older
        // ClusterSetIP export decides; the import keeps its clusterset IP.
        self.west
            .cluster()
            .kubectl(&["delete", "service", "nginx-svc"])
            .unwrap();
        self.west
            .cluster()
            .apply(&json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "nginx-svc", "namespace": "default"},
                "spec": {"clusterIP": "None", "selector": {"app": "nginx"}, "ports": [
                    {"name": "http", "port": 80, "targetPort": 80, "protocol": "TCP"},
                ]},
            }))
            .unwrap();
        let (_, reason, message) = eventually(
            "TypeConflict on west's ServiceExport",
            PROPAGATION,
            self.diagnostics,
            || {
                let conflict = export_condition(self.west.cluster(), "nginx-svc", "Conflict");
                conflict
                    .clone()
                    .filter(|c| c.0 == "True" && c.1 != "PortConflict")
                    .ok_or(format!("{conflict:?}"))
            },
        );
        assert_eq!(reason, "TypeConflict", "{message}");
        assert!(message.contains("\"east\""), "{message}");
        let import = west_import(self.west.cluster(), "nginx-svc").unwrap();
        assert_eq!(
            (import.kind.as_str(), import.ips.clone()),
            ("ClusterSetIP", vec![clusterset_ip.to_owned()]),
            "the oldest export's type is used: {import:?}"
        );
        let answer = self.ask(CLUSTERSET_NAME, "A");
        assert_eq!(
            answer.as_ref().map(|a| a.of_type("A")),
            Ok(BTreeSet::from([clusterset_ip.to_owned()])),
            "{answer:?}"
        );

        // West stops exporting: the answers, the import and east's condition are east's alone.
        self.west
            .cluster()
            .kubectl(&[
                "delete",
                "serviceexport/nginx-svc",
                "deployment/nginx-app",
                "service/nginx-svc",
                "--wait=false",
            ])
            .unwrap();
        self.answers_exactly(
            "west answers only east's pods after its own unexport",
            HYPEROS_NAME,
            "A",
            &east_addresses,
        );
        eventually(
            "west's ServiceImport is east's alone, without conflict",
            PROPAGATION,
            self.diagnostics,
            || {
                let import = west_import(self.west.cluster(), "nginx-svc");
                let conflict = export_condition(self.east.cluster(), "nginx-svc", "Conflict");
                match (&import, &conflict) {
                    (Some(import), Some((status, _, _)))
                        if import.clusters == ["east"] && status == "False" =>
                    {
                        Ok(())
                    }
                    _ => Err(format!("import {import:?}, east's Conflict {conflict:?}")),
                }
            },
        );
        served.len()
    }

    /// The invalid exports say why (`Valid=False`), nothing of them reaches west, and crossdns
    /// refuses a zone it does not serve. Then they go.
    pub fn invalid_exports(&self) {
        for (name, reason) in [("external", "InvalidServiceType"), ("ghost", "NoService")] {
            let (status, found, message) = eventually(
                &format!("{name}: Valid=False"),
                PROPAGATION,
                self.diagnostics,
                || {
                    export_condition(self.east.cluster(), name, "Valid")
                        .ok_or_else(|| format!("{name}: no Valid condition"))
                },
            );
            assert_eq!(
                (status.as_str(), found.as_str()),
                ("False", reason),
                "{name}: {message}"
            );
            assert!(
                west_import(self.west.cluster(), name).is_none(),
                "{name} was imported into west"
            );
            for zone in ["hyperos.local", "clusterset.local"] {
                let answer = self
                    .ask(&format!("{name}.default.svc.{zone}"), "A")
                    .unwrap();
                assert_eq!(answer.status, "NXDOMAIN", "{name} in {zone}: {answer:?}");
            }
        }
        for name in ["example.org", "nginx-svc.default.svc.cluster.local"] {
            let answer = (0..3)
                .find_map(|_| dig(self.west, "client", &self.crossdns_ip, name, "A").ok())
                .unwrap_or_else(|| panic!("crossdns never answered {name}"));
            assert_eq!(
                (answer.status.as_str(), answer.answers.len()),
                ("REFUSED", 0),
                "crossdns asked for {name}: {answer:?}"
            );
        }
        self.east
            .cluster()
            .kubectl(&[
                "delete",
                "serviceexport/external",
                "serviceexport/ghost",
                "service/external",
            ])
            .unwrap();
    }
}
