//! Operator CLI for Nauti: the pure parts of `nautictl`. Reading the hub's objects into rows and
//! rendering them live here as plain functions; the binary only talks to the API server.

pub mod benchmark;
pub mod clean;
pub mod diagnose;
pub mod rotate;
pub mod show;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use nauti_api::ServiceImport;
use nauti_api::peer::{Peer, condition};
use nauti_octopus::core::mcs::hub::hub_object_key;
use nauti_octopus::join::token::{ISSUER_LABEL, SECRET_TYPE};
use serde::Serialize;

/// The chart the printed `helm install` line names, as the hub chart's NOTES do by default.
pub const DEFAULT_AGENT_CHART: &str = "deploy/charts/nauti-agent";

/// Why an object of the hub could not be read or a result not rendered.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("Secret {0} is not a Nauti bootstrap token")]
    NotAToken(String),
    #[error("Secret {name} has no valid {field}")]
    TokenField { name: String, field: &'static str },
    #[error("cannot render as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot render as YAML: {0}")]
    Yaml(String),
}

/// One issued token as `join-token list` shows it: never its secret half.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenRow {
    pub id: String,
    pub expiration: Option<jiff::Timestamp>,
    pub description: String,
}

/// Reads a bootstrap-token Secret Nauti issued; other Secrets are refused.
pub fn token_row(secret: &Secret) -> Result<TokenRow, CtlError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let ours = secret.type_.as_deref() == Some(SECRET_TYPE)
        && secret
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ISSUER_LABEL))
            .is_some_and(|v| v == "true");
    if !ours {
        return Err(CtlError::NotAToken(name));
    }
    let field = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    let id = field("token-id").ok_or_else(|| CtlError::TokenField {
        name: name.clone(),
        field: "token-id",
    })?;
    let expiration = match field("expiration") {
        None => None,
        Some(text) => Some(text.parse().map_err(|_| CtlError::TokenField {
            name: name.clone(),
            field: "expiration",
        })?),
    };
    Ok(TokenRow {
        id,
        expiration,
        description: field("description").unwrap_or_default(),
    })
}

/// The `join-token list` table. The hub deletes a token once a member joined with it, so every
/// listed token is unused; an expired one only waits for kube-controller-manager's cleaner.
pub fn render_tokens(rows: &[TokenRow], now: jiff::Timestamp) -> String {
    let mut table = vec![vec![
        "ID".to_owned(),
        "EXPIRES".to_owned(),
        "STATE".to_owned(),
        "DESCRIPTION".to_owned(),
    ]];
    for row in rows {
        let (expires, state) = match row.expiration {
            None => ("never".to_owned(), "unused"),
            Some(at) if at <= now => (at.to_string(), "expired"),
            Some(at) => (format!("{at} (in {})", age(now, at)), "unused"),
        };
        table.push(vec![
            row.id.clone(),
            expires,
            state.to_owned(),
            row.description.clone(),
        ]);
    }
    render_table(&table)
}

/// What `join-token create` prints: the token, its expiry and how to join a member with it,
/// laid out as the hub chart's NOTES print it.
pub fn render_join_instructions(
    token: &str,
    expiration: Option<jiff::Timestamp>,
    hub_url: &str,
    hub_namespace: &str,
    agent_chart: &str,
) -> String {
    let valid = expiration
        .map(|at| format!(" (valid until {at})"))
        .unwrap_or_default();
    let namespace_flag = if hub_namespace == nauti_api::peer::DEFAULT_PEER_NAMESPACE {
        String::new()
    } else {
        format!(" --set hub.namespace={hub_namespace}")
    };
    format!(
        "Bootstrap token: {token}{valid}\n\
         Save the hub's CA, which members trust the hub API with (run this against the hub):\n\
         kubectl get configmap kube-root-ca.crt --namespace {hub_namespace} -o jsonpath='{{.data.ca\\.crt}}' > nauti-hub-ca.crt\n\
         And install nauti-agent in the member cluster by:\n\
         helm install nauti-agent {agent_chart} --namespace nauti-system --create-namespace \\\n\
         --set hub.hubURL={hub_url} --set cluster.clusterID=cluster1 \\\n\
         --set hub.bootstrapToken={token} --set-file hub.caCert=nauti-hub-ca.crt{namespace_flag}\n\
         The token is good for one member: the hub deletes it once that member has joined.\n"
    )
}

/// The state of one condition as `show` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionState {
    pub status: String,
    pub reason: String,
    pub message: String,
}

fn condition_state(c: Option<&Condition>) -> Option<ConditionState> {
    c.map(|c| ConditionState {
        status: c.status.clone(),
        reason: c.reason.clone(),
        message: c.message.clone(),
    })
}

/// One cluster of the set, from its Peer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRow {
    pub cluster_id: String,
    pub slices: Vec<String>,
    pub endpoint: Option<String>,
    pub is_hub: bool,
    pub is_public: bool,
    pub valid: Option<ConditionState>,
    pub ready: Option<ConditionState>,
    pub last_handshake: Option<jiff::Timestamp>,
    pub latency_ms: Option<u64>,
    /// Bytes the hub's gateway received from the cluster through the tunnel.
    pub rx_bytes: Option<u64>,
    /// Bytes the hub's gateway sent to the cluster through the tunnel.
    pub tx_bytes: Option<u64>,
}

/// The row of `peer`.
pub fn cluster_row(peer: &Peer) -> ClusterRow {
    let status = peer.status.as_ref();
    ClusterRow {
        cluster_id: peer.spec.cluster_id.clone(),
        slices: peer
            .spec
            .cluster_cidrs
            .iter()
            .map(ToString::to_string)
            .collect(),
        endpoint: peer
            .spec
            .endpoint
            .as_ref()
            .map(|e| format!("{e}:{}", peer.spec.port)),
        is_hub: peer.spec.is_hub,
        is_public: peer.spec.is_public,
        valid: condition_state(status.and_then(|s| s.condition(condition::VALID))),
        ready: condition_state(status.and_then(|s| s.condition(condition::READY))),
        last_handshake: status.and_then(|s| s.last_handshake.as_ref()).map(|t| t.0),
        latency_ms: status.and_then(|s| s.latency_ms),
        rx_bytes: status.and_then(|s| s.rx_bytes),
        tx_bytes: status.and_then(|s| s.tx_bytes),
    }
}

/// One exported service of the set and the clusters that serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceRow {
    pub namespace: String,
    pub name: String,
    pub clusters: Vec<String>,
}

/// The exported services, from the members' ServiceImports on the hub (one per member and
/// export, in the member's namespace). Objects outside a member namespace, or whose labels
/// name another cluster than their namespace's, are skipped as octopus skips them.
pub fn service_rows(imports: &[ServiceImport]) -> Vec<ServiceRow> {
    let mut services: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for import in imports {
        if let Some((key, cluster)) = hub_object_key(&import.metadata) {
            services
                .entry((key.namespace, key.name))
                .or_default()
                .push(cluster);
        }
    }
    services
        .into_iter()
        .map(|((namespace, name), mut clusters)| {
            clusters.sort();
            clusters.dedup();
            ServiceRow {
                namespace,
                name,
                clusters,
            }
        })
        .collect()
}

/// Everything `show` prints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShowReport {
    pub clusters: Vec<ClusterRow>,
    pub services: Vec<ServiceRow>,
    /// The member clusters given by context, as their own API servers show them.
    pub members: Vec<show::MemberView>,
    /// The clusters that could not be read.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<show::ClusterError>,
}

/// `show`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Yaml,
}

/// Renders `report` in `format`; `now` dates the handshake ages of the table.
pub fn render_show(
    report: &ShowReport,
    format: OutputFormat,
    now: jiff::Timestamp,
) -> Result<String, CtlError> {
    match format {
        OutputFormat::Json => Ok(serde_json::to_string_pretty(report)? + "\n"),
        OutputFormat::Yaml => {
            serde_saphyr::to_string(report).map_err(|e| CtlError::Yaml(e.to_string()))
        }
        OutputFormat::Table => Ok(render_show_table(report, now)),
    }
}

fn condition_cell(c: &Option<ConditionState>) -> String {
    match c {
        None => "-".to_owned(),
        Some(c) if c.reason.is_empty() => c.status.clone(),
        Some(c) => format!("{} ({})", c.status, c.reason),
    }
}

fn render_show_table(report: &ShowReport, now: jiff::Timestamp) -> String {
    let mut clusters = vec![
        [
            "CLUSTER",
            "SLICES",
            "ENDPOINT",
            "ROLE",
            "VALID",
            "READY",
            "HANDSHAKE",
            "LATENCY",
            "RX",
            "TX",
        ]
        .map(str::to_owned)
        .to_vec(),
    ];
    for c in &report.clusters {
        let role = match (c.is_hub, c.is_public) {
            (true, _) => "hub",
            (false, true) => "public",
            (false, false) => "member",
        };
        clusters.push(vec![
            c.cluster_id.clone(),
            c.slices.join(","),
            c.endpoint.clone().unwrap_or_else(|| "-".to_owned()),
            role.to_owned(),
            condition_cell(&c.valid),
            condition_cell(&c.ready),
            c.last_handshake
                .map(|t| format!("{} ago", age(t, now)))
                .unwrap_or_else(|| "never".to_owned()),
            c.latency_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{ms}ms")),
            c.rx_bytes.map_or_else(|| "-".to_owned(), bytes),
            c.tx_bytes.map_or_else(|| "-".to_owned(), bytes),
        ]);
    }
    let mut out = render_table(&clusters);
    out.push('\n');
    if !report.members.is_empty() {
        out.push_str(&render_gateways(&report.members));
        out.push('\n');
    }
    if report.services.is_empty() {
        out.push_str("No exported services.\n");
    } else {
        let mut services = vec![["SERVICE", "CLUSTERS"].map(str::to_owned).to_vec()];
        for s in &report.services {
            services.push(vec![
                format!("{}/{}", s.namespace, s.name),
                s.clusters.join(","),
            ]);
        }
        out.push_str(&render_table(&services));
    }
    let imports: Vec<_> = report
        .members
        .iter()
        .flat_map(|m| m.imports.iter().map(move |i| (m, i)))
        .collect();
    if !imports.is_empty() {
        out.push('\n');
        let mut rows = vec![
            ["IMPORTED IN", "SERVICE", "SERVED BY", "ENDPOINTS"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for (member, import) in imports {
            rows.push(vec![
                member_name(member),
                format!("{}/{}", import.namespace, import.name),
                import.clusters.join(","),
                import.endpoints.to_string(),
            ]);
        }
        out.push_str(&render_table(&rows));
    }
    out
}

/// The member's cluster ID, with the context it was read through when that differs.
fn member_name(member: &show::MemberView) -> String {
    match &member.cluster_id {
        Some(id) if *id == member.context => id.clone(),
        Some(id) => format!("{id} ({})", member.context),
        None => member.context.clone(),
    }
}

/// One line per gateway pod of each member: the Lease's holder active, the others standby.
fn render_gateways(members: &[show::MemberView]) -> String {
    let mut rows = vec![
        ["MEMBER", "GATEWAY POD", "NODE", "ROLE", "STATUS"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for member in members {
        let name = member_name(member);
        if member.gateways.is_empty() {
            let holder = member
                .lease_holder
                .as_ref()
                .map_or_else(String::new, |h| format!(" (Lease held by {h})"));
            rows.push(vec![
                name.clone(),
                "-".to_owned(),
                "-".to_owned(),
                "-".to_owned(),
                format!("no gateway pod{holder}"),
            ]);
        }
        for gateway in &member.gateways {
            let readiness = if gateway.ready { "Ready" } else { "NotReady" };
            rows.push(vec![
                name.clone(),
                gateway.name.clone(),
                gateway.node.clone().unwrap_or_else(|| "-".to_owned()),
                gateway.role.clone(),
                format!("{} {readiness}", gateway.phase),
            ]);
        }
    }
    render_table(&rows)
}

/// A byte count in binary units, as `ls -h` prints sizes.
pub fn bytes(count: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = count as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{count}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// A coarse span from `from` to `to` as kubectl prints ages (`45s`, `3m`, `2h`, `4d`); `0s`
/// when `to` is not after `from`.
pub fn age(from: jiff::Timestamp, to: jiff::Timestamp) -> String {
    let secs = to.as_second().saturating_sub(from.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 2 * 3600 => format!("{}m", s / 60),
        s if s < 2 * 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

/// Left-aligned columns separated by three spaces, the first row being the header.
fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths[i].saturating_sub(cell.chars().count()) + 3;
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use nauti_api::peer::PeerStatus;
    use nauti_api::testutil::mk_peer;
    use nauti_octopus::join::token::BootstrapToken;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn cond(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message: format!("{type_} says {reason}"),
            last_transition_time: Time(ts("2026-12-01T00:00:00Z")),
            observed_generation: None,
        }
    }

    #[test]
    fn token_rows_come_from_octopus_secrets_and_hide_the_secret() {
        let token: BootstrapToken = "re51os.131tn13kek2iaqoz".parse().unwrap();
        let secret = token.to_secret(ts("2026-12-05T00:00:00Z"), "Nauti member join token");
        let row = token_row(&secret).unwrap();
        assert_eq!(row.id, "re51os");
        assert_eq!(row.expiration, Some(ts("2026-12-05T00:00:00Z")));
        let table = render_tokens(std::slice::from_ref(&row), ts("2026-12-04T00:00:00Z"));
        assert!(table.contains("re51os"), "{table}");
        assert!(table.contains("unused"), "{table}");
        assert!(table.contains("(in 24h)"), "{table}");
        assert!(!table.contains("131tn13kek2iaqoz"), "{table}");
        let expired = render_tokens(&[row], ts("2026-12-06T00:00:00Z"));
        assert!(expired.contains("expired"), "{expired}");
    }

    #[test]
    fn foreign_secrets_are_not_tokens() {
        let token: BootstrapToken = "re51os.131tn13kek2iaqoz".parse().unwrap();
        let mut secret = token.to_secret(ts("2026-12-05T00:00:00Z"), "x");
        secret.metadata.labels = None;
        assert!(matches!(token_row(&secret), Err(CtlError::NotAToken(_))));
        let mut secret = token.to_secret(ts("2026-12-05T00:00:00Z"), "x");
        secret.type_ = Some("Opaque".to_owned());
        assert!(matches!(token_row(&secret), Err(CtlError::NotAToken(_))));
    }

    #[test]
    fn join_instructions_name_hub_and_token() {
        let text = render_join_instructions(
            "re51os.131tn13kek2iaqoz",
            Some(ts("2026-12-05T00:00:00Z")),
            "https://198.18.0.10:6443",
            "nauti-system",
            DEFAULT_AGENT_CHART,
        );
        assert!(text.contains(
            "helm install nauti-agent deploy/charts/nauti-agent --namespace nauti-system --create-namespace"
        ));
        assert!(text.contains("--set hub.hubURL=https://198.18.0.10:6443"));
        assert!(text.contains("--set hub.bootstrapToken=re51os.131tn13kek2iaqoz"));
        assert!(text.contains("valid until 2026-12-05T00:00:00Z"));
        assert!(!text.contains("hub.namespace"));
        let other = render_join_instructions("t", None, "u", "hubns", "c");
        assert!(other.contains("--set hub.namespace=hubns"), "{other}");
        assert!(other.contains("--namespace hubns -o jsonpath"), "{other}");
    }

    #[test]
    fn cluster_rows_carry_conditions_and_handshake() {
        let mut peer = mk_peer("east", ["10.113.0.0/16".parse().unwrap()]);
        peer.spec.endpoint = Some("198.18.0.11".to_owned());
        peer.spec.is_public = true;
        peer.status = Some(PeerStatus {
            conditions: vec![
                cond(condition::VALID, "True", condition::REASON_VALID),
                cond(condition::READY, "False", condition::REASON_NOT_ANSWERING),
            ],
            last_handshake: Some(Time(ts("2026-12-04T00:00:00Z"))),
            latency_ms: Some(3),
            rx_bytes: Some(1536),
            tx_bytes: Some(3 * 1024 * 1024),
        });
        let row = cluster_row(&peer);
        assert_eq!(row.endpoint.as_deref(), Some("198.18.0.11:51820"));
        assert_eq!(row.slices, ["10.113.0.0/16"]);
        assert_eq!(row.ready.as_ref().unwrap().reason, "NotAnswering");
        let west = cluster_row(&mk_peer("west", ["10.114.0.0/16".parse().unwrap()]));
        let report = ShowReport {
            clusters: vec![row, west],
            services: vec![],
            members: vec![],
            errors: vec![],
        };
        let table = render_show(&report, OutputFormat::Table, ts("2026-12-04T00:03:00Z")).unwrap();
        let east_line = table.lines().find(|l| l.starts_with("east")).unwrap();
        for want in [
            "public",
            "True (Valid)",
            "False (NotAnswering)",
            "3m ago",
            "3ms",
            "1.5KiB",
            "3.0MiB",
        ] {
            assert!(east_line.contains(want), "{want} in {table}");
        }
        let west_line = table.lines().find(|l| l.starts_with("west")).unwrap();
        assert!(west_line.contains("never"), "{table}");
        assert!(table.contains("No exported services."));
        let json: serde_json::Value = serde_json::from_str(
            &render_show(&report, OutputFormat::Json, ts("2026-12-04T00:03:00Z")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["clusters"][0]["ready"]["reason"], "NotAnswering");
        assert_eq!(json["clusters"][0]["lastHandshake"], "2026-12-04T00:00:00Z");
        assert_eq!(json["clusters"][0]["rxBytes"], 1536);
        assert!(json.get("errors").is_none(), "{json}");
        let yaml = render_show(&report, OutputFormat::Yaml, ts("2026-12-04T00:03:00Z")).unwrap();
        assert!(yaml.contains("clusterId: east"), "{yaml}");
    }

    fn hub_import(member_ns: &str, cluster_label: &str, ns: &str, name: &str) -> ServiceImport {
        let mut import: ServiceImport = serde_json::from_value(
            serde_json::json!({"metadata": {}, "spec": {"type": "ClusterSetIP", "ports": []}}),
        )
        .unwrap();
        import.metadata = ObjectMeta {
            name: Some(format!("{ns}.{name}")),
            namespace: Some(member_ns.to_owned()),
            labels: Some(nauti_octopus::core::mcs::hub::hub_labels(
                &nauti_octopus::core::mcs::ServiceKey::new(ns, name),
                cluster_label,
            )),
            ..ObjectMeta::default()
        };
        import
    }

    #[test]
    fn services_list_the_clusters_that_serve_them() {
        let imports = [
            hub_import("nauti-member-west", "west", "shop", "cart"),
            hub_import("nauti-member-east", "east", "shop", "cart"),
            hub_import("nauti-member-east", "east", "web", "front"),
            // A label that lies about the cluster, and an object outside member namespaces.
            hub_import("nauti-member-east", "west", "web", "forged"),
            hub_import("default", "east", "web", "stray"),
        ];
        let rows = service_rows(&imports);
        assert_eq!(
            rows,
            [
                ServiceRow {
                    namespace: "shop".into(),
                    name: "cart".into(),
                    clusters: vec!["east".into(), "west".into()],
                },
                ServiceRow {
                    namespace: "web".into(),
                    name: "front".into(),
                    clusters: vec!["east".into()],
                },
            ]
        );
        let table = render_show(
            &ShowReport {
                clusters: vec![],
                services: rows,
                members: vec![],
                errors: vec![],
            },
            OutputFormat::Table,
            ts("2026-12-04T00:00:00Z"),
        )
        .unwrap();
        assert!(table.contains("shop/cart   east,west"), "{table}");
    }

    #[test]
    fn members_show_their_gateways_and_imports() {
        let gateway = |name: &str, role: &str| show::GatewayPod {
            name: name.to_owned(),
            node: Some("east-n0".to_owned()),
            phase: "Running".to_owned(),
            ready: role == "active",
            role: role.to_owned(),
        };
        let report = ShowReport {
            clusters: vec![],
            services: vec![],
            members: vec![
                show::MemberView {
                    context: "east".to_owned(),
                    cluster_id: Some("east".to_owned()),
                    gateways: vec![gateway("cnf-a", "active"), gateway("cnf-b", "standby")],
                    lease_holder: None,
                    imports: vec![],
                },
                show::MemberView {
                    context: "ctx-west".to_owned(),
                    cluster_id: Some("west".to_owned()),
                    gateways: vec![],
                    lease_holder: Some("cnf-gone".to_owned()),
                    imports: vec![show::ImportRow {
                        namespace: "default".to_owned(),
                        name: "nginx-svc".to_owned(),
                        clusters: vec!["east".to_owned()],
                        endpoints: 2,
                    }],
                },
            ],
            errors: vec![show::ClusterError {
                context: "south".to_owned(),
                error: "down".to_owned(),
            }],
        };
        let table = render_show(&report, OutputFormat::Table, ts("2026-12-04T00:00:00Z")).unwrap();
        let line = |start: &str| {
            table
                .lines()
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .find(|l| l.starts_with(start))
                .unwrap_or_else(|| panic!("{start:?} in {table}"))
        };
        let active = line("east cnf-a");
        assert!(
            active.contains("east-n0") && active.contains("active"),
            "{table}"
        );
        assert!(active.contains("Running Ready"), "{table}");
        assert!(
            line("east cnf-b").contains("standby Running NotReady"),
            "{table}"
        );
        assert!(
            line("west (ctx-west)").contains("no gateway pod (Lease held by cnf-gone)"),
            "{table}"
        );
        assert!(
            line("west (ctx-west) default/nginx-svc").contains("east 2"),
            "{table}"
        );
        let json: serde_json::Value = serde_json::from_str(
            &render_show(&report, OutputFormat::Json, ts("2026-12-04T00:00:00Z")).unwrap(),
        )
        .unwrap();
        assert_eq!(json["members"][0]["gateways"][0]["role"], "active");
        assert_eq!(json["members"][1]["imports"][0]["clusters"][0], "east");
        assert_eq!(json["errors"][0]["context"], "south");
    }

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(bytes(0), "0B");
        assert_eq!(bytes(1023), "1023B");
        assert_eq!(bytes(1024), "1.0KiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0GiB");
    }

    #[test]
    fn ages_read_like_kubectl() {
        let t0 = ts("2026-12-04T00:00:00Z");
        let at = |s: i64| t0.checked_add(jiff::SignedDuration::from_secs(s)).unwrap();
        assert_eq!(age(t0, at(5)), "5s");
        assert_eq!(age(t0, at(600)), "10m");
        assert_eq!(age(t0, at(3 * 3600)), "3h");
        assert_eq!(age(t0, at(3 * 86400)), "3d");
        assert_eq!(age(at(10), t0), "0s");
    }
}
