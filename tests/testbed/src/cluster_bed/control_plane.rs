//! A cluster's control plane in a namespace of its own on the cluster's LAN: etcd,
//! kube-apiserver (service-account tokens, `Node,RBAC` authorization, NodeRestriction and
//! OwnerReferencesPermissionEnforcement admission, a client certificate towards kubelets), kube-controller-manager and kube-scheduler. The machine's
//! `kubectl` reaches it through a [`Relay`] on 127.0.0.1.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::Result;
use crate::netns::Netns;
use crate::peers;
use crate::process::{Daemon, run};

use super::credentials::{ADMIN_USER, Credentials};
use super::plan::{APISERVER_PORT, CLUSTER_DOMAIN, ClusterPlan};
use super::relay::Relay;
use super::underlay::{Router, nsenter};

const READY: Duration = Duration::from_secs(120);

/// etcd, kube-apiserver, kube-controller-manager and kube-scheduler of one cluster.
#[derive(Debug)]
pub struct ControlPlane {
    // Fields drop in order: the relay and the controllers before the API, the API before etcd.
    relay: Relay,
    _scheduler: Daemon,
    _controller_manager: Daemon,
    apiserver: Daemon,
    _etcd: Daemon,
    pub netns: Netns,
    pub creds: Credentials,
    admin_kubeconfig: PathBuf,
}

impl ControlPlane {
    /// Starts the control plane of `cluster` in a new namespace plugged into `router`'s LAN.
    pub fn start(
        bed: &str,
        cluster: &str,
        plan: ClusterPlan,
        router: &Router,
        dir: &Path,
    ) -> Result<Self> {
        let netns = Netns::new(&format!("{}{cluster}-cp-", super::plan::netns_prefix(bed)))?;
        router.attach(&netns, "p-cp", "eth0")?;
        netns.add_addr("eth0", &format!("{}/24", plan.control_plane_ip()))?;
        netns.ip(&["route", "add", "default", "via", &plan.router_lan_ip()])?;

        let cp_ip = plan.control_plane_ip();
        let wan_ip = plan.router_wan_ip();
        let service_ip = plan.kubernetes_service_ip();
        let svc_fqdn = format!("kubernetes.default.svc.{CLUSTER_DOMAIN}");
        let creds = Credentials::new(
            &dir.join("pki"),
            cluster,
            &[
                "localhost",
                "127.0.0.1",
                &cp_ip,
                &wan_ip,
                &service_ip,
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                &svc_fqdn,
            ],
        )?;
        let p = |name: &str| creds.path(name).display().to_string();

        let mut etcd_cmd = nsenter(&netns, &peers::bin("etcd")?, bed);
        etcd_cmd
            .arg(format!("--name={cluster}"))
            .arg(format!("--data-dir={}", dir.join("etcd").display()))
            .arg("--listen-client-urls=http://127.0.0.1:2379")
            .arg("--advertise-client-urls=http://127.0.0.1:2379")
            .arg("--listen-peer-urls=http://127.0.0.1:2380")
            .arg("--initial-advertise-peer-urls=http://127.0.0.1:2380")
            .arg(format!("--initial-cluster={cluster}=http://127.0.0.1:2380"))
            .arg("--snapshot-count=5000")
            .arg("--log-level=warn");
        let mut etcd = Daemon::spawn("etcd", etcd_cmd, &dir.join("etcd.log"))?;
        etcd.wait_ready(Duration::from_secs(30), || {
            curl_in(&netns, &["http://127.0.0.1:2379/health"]).is_ok_and(|b| b.contains("true"))
        })?;

        let mut api_cmd = nsenter(&netns, &peers::bin("kube-apiserver")?, bed);
        api_cmd
            .arg("--etcd-servers=http://127.0.0.1:2379")
            .arg("--bind-address=0.0.0.0")
            .arg(format!("--advertise-address={cp_ip}"))
            .arg(format!("--secure-port={APISERVER_PORT}"))
            .arg(format!(
                "--cert-dir={}",
                dir.join("apiserver-certs").display()
            ))
            .arg(format!("--tls-cert-file={}", p("apiserver.crt")))
            .arg(format!("--tls-private-key-file={}", p("apiserver.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg(format!("--service-account-issuer=https://{svc_fqdn}"))
            .arg(format!(
                "--service-cluster-ip-range={}",
                plan.service_cidr()
            ))
            .arg("--authorization-mode=Node,RBAC")
            // OwnerReferencesPermissionEnforcement as in OpenShift: a daemon may set an owner
            // reference only on what it may delete, which the charts' RBAC must grant.
            .arg("--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement")
            .arg("--allow-privileged=true")
            // As in kubeadm clusters: members join a hub with a bootstrap token.
            .arg("--enable-bootstrap-token-auth")
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg(format!(
                "--kubelet-client-certificate={}",
                p("apiserver-kubelet-client.crt")
            ))
            .arg(format!(
                "--kubelet-client-key={}",
                p("apiserver-kubelet-client.key")
            ))
            .arg("--profiling=false")
            .arg("--enable-priority-and-fairness=false")
            .arg("--v=0");
        let mut apiserver =
            Daemon::spawn("kube-apiserver", api_cmd, &dir.join("kube-apiserver.log"))?;

        let local = format!("https://127.0.0.1:{APISERVER_PORT}");
        creds.kubeconfig("admin-inside", &local, ADMIN_USER, &["system:masters"])?;
        let (admin_crt, admin_key) = (
            creds.path("admin-inside.crt"),
            creds.path("admin-inside.key"),
        );
        let readyz = format!("{local}/readyz");
        let ca = p("ca.crt");
        let (crt, key) = (
            admin_crt.display().to_string(),
            admin_key.display().to_string(),
        );
        apiserver.wait_ready(READY, || {
            curl_in(
                &netns,
                &["--cacert", &ca, "--cert", &crt, "--key", &key, &readyz],
            )
            .is_ok_and(|b| b.trim() == "ok")
        })?;

        let cm_kubeconfig = creds.kubeconfig(
            "controller-manager",
            &local,
            "system:kube-controller-manager",
            &[],
        )?;
        let mut cm_cmd = nsenter(&netns, &peers::bin("kube-controller-manager")?, bed);
        cm_cmd
            .arg(format!("--kubeconfig={}", cm_kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                cm_kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                cm_kubeconfig.display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--cluster-name={cluster}"))
            .arg(format!(
                "--service-account-private-key-file={}",
                p("sa.key")
            ))
            .arg(format!("--root-ca-file={}", p("ca.crt")))
            // Signs approved client certificate requests (members' credentials on a hub).
            .arg(format!("--cluster-signing-cert-file={}", p("ca.crt")))
            .arg(format!("--cluster-signing-key-file={}", p("ca.key")))
            .arg(format!(
                "--service-cluster-ip-range={}",
                plan.service_cidr()
            ))
            .arg("--use-service-account-credentials=true")
            .arg("--allocate-node-cidrs=false")
            .arg("--leader-elect=false")
            .arg("--profiling=false")
            .arg("--v=0");
        let controller_manager = Daemon::spawn(
            "kube-controller-manager",
            cm_cmd,
            &dir.join("kube-controller-manager.log"),
        )?;

        let sched_kubeconfig =
            creds.kubeconfig("scheduler", &local, "system:kube-scheduler", &[])?;
        let mut sched_cmd = nsenter(&netns, &peers::bin("kube-scheduler")?, bed);
        sched_cmd
            .arg(format!("--kubeconfig={}", sched_kubeconfig.display()))
            .arg(format!(
                "--authentication-kubeconfig={}",
                sched_kubeconfig.display()
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                sched_kubeconfig.display()
            ))
            .arg("--bind-address=127.0.0.1")
            .arg("--leader-elect=false")
            .arg("--profiling=false")
            .arg("--v=0");
        let scheduler =
            Daemon::spawn("kube-scheduler", sched_cmd, &dir.join("kube-scheduler.log"))?;

        let target = SocketAddr::from(([127, 0, 0, 1], APISERVER_PORT));
        let relay = Relay::start(&netns.path(), target)?;
        let admin_kubeconfig = creds.kubeconfig(
            "admin",
            &format!("https://127.0.0.1:{}", relay.port()),
            ADMIN_USER,
            &["system:masters"],
        )?;
        Ok(Self {
            relay,
            _scheduler: scheduler,
            _controller_manager: controller_manager,
            apiserver,
            _etcd: etcd,
            netns,
            creds,
            admin_kubeconfig,
        })
    }

    /// The administrator's kubeconfig for the machine's namespace (through the relay).
    pub fn admin_kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// Freezes kube-apiserver (SIGSTOP): an outage in which it neither answers nor refuses,
    /// as a hung or partitioned control plane; [`resume_apiserver`](Self::resume_apiserver)
    /// ends it.
    pub fn pause_apiserver(&self) -> Result<()> {
        self.signal_apiserver("-STOP")
    }

    /// Ends [`pause_apiserver`](Self::pause_apiserver)'s outage (SIGCONT).
    pub fn resume_apiserver(&self) -> Result<()> {
        self.signal_apiserver("-CONT")
    }

    fn signal_apiserver(&self, signal: &str) -> Result<()> {
        crate::process::run(
            std::process::Command::new("kill")
                .arg(signal)
                .arg(self.apiserver.pid().to_string()),
        )
        .map(|_| ())
    }

    /// The relay's port on the machine's 127.0.0.1.
    pub fn relay_port(&self) -> u16 {
        self.relay.port()
    }
}

/// `curl -sf -m 3 <args>` inside `netns`.
pub fn curl_in(netns: &Netns, args: &[&str]) -> Result<String> {
    run(Command::new("nsenter")
        .arg(format!("--net={}", netns.path().display()))
        .args(["curl", "-sf", "-m", "3"])
        .args(args))
}
