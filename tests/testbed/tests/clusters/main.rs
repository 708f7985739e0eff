//! Real clusters on one machine (`ClusterBed`), checked the way an operator would: nodes Ready,
//! a Deployment spread and Running, `kubectl exec`, a ClusterIP Service through kube-proxy across
//! nodes, CoreDNS names; a third cluster joining a running bed; the NAT between clusters.
//!
//! One bed serves every check of this binary (a bed costs tens of seconds and a gigabyte): the
//! checks run in order in one test, each with its own message.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod nat;
mod workload;

use nauti_testbed::cluster_bed::{ClusterBed, ClusterSpec};
use nauti_testbed::require_root;

#[test]
fn clusters_run_workloads_join_and_sit_behind_nat() {
    require_root!();
    let started = std::time::Instant::now();
    let mut bed = ClusterBed::start(
        "clusters",
        &[ClusterSpec::hub("hub", 2), ClusterSpec::member("east", 2)],
    )
    .expect("a hub and a member of two nodes each start");
    eprintln!("bed {} ready in {:?}", bed.id(), started.elapsed());

    for name in ["hub", "east"] {
        let cluster = bed.cluster(name).unwrap();
        workload::every_node_is_ready(cluster, 2);
        workload::deployment_spreads_and_serves(cluster);
    }

    workload::nauti_image_runs(bed.cluster("hub").unwrap());

    let joined = std::time::Instant::now();
    let west = bed
        .add_cluster(&ClusterSpec::member("west", 1))
        .expect("a third cluster joins the running bed");
    workload::every_node_is_ready(west, 1);
    eprintln!("west joined in {:?}", joined.elapsed());

    nat::member_reaches_the_hub_and_the_hub_reaches_no_member(&bed);
    nat::members_meet_only_once_one_is_public(&mut bed);
    eprintln!("all checks done {:?} after the start", started.elapsed());
}
