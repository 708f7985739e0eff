use super::*;
use crate::join::csr::build_request;

fn groups(gs: &[&str]) -> Vec<String> {
    gs.iter().map(|g| (*g).to_owned()).collect()
}

fn verdict(pem: &str, username: &str, gs: &[&str], joined: &[&str]) -> CsrVerdict {
    let usages = groups(&USAGES);
    let gs = groups(gs);
    let facts = CsrFacts {
        signer: SIGNER,
        username,
        groups: &gs,
        usages: &usages,
        request_pem: pem.as_bytes(),
    };
    review_csr(&facts, |id| joined.contains(&id))
}

#[test]
fn bootstrap_join_is_approved_once() {
    let pem = build_request("cluster1").unwrap().csr_pem;
    let boot = ["system:bootstrappers", BOOTSTRAP_GROUP];
    assert_eq!(
        verdict(&pem, "system:bootstrap:abcdef", &boot, &[]),
        CsrVerdict::Approve {
            cluster_id: "cluster1".into(),
            renewal: false
        }
    );
    let held = verdict(&pem, "system:bootstrap:abcdef", &boot, &["cluster1"]);
    assert!(matches!(held, CsrVerdict::Deny(r) if r.contains("held by a joined member")));
}

#[test]
fn the_member_itself_renews_but_not_another_member() {
    let pem = build_request("cluster1").unwrap().csr_pem;
    assert_eq!(
        verdict(
            &pem,
            "nauti:member:cluster1",
            &[MEMBERS_GROUP],
            &["cluster1"]
        ),
        CsrVerdict::Approve {
            cluster_id: "cluster1".into(),
            renewal: true
        }
    );
    let other = verdict(
        &pem,
        "nauti:member:cluster2",
        &[MEMBERS_GROUP],
        &["cluster1"],
    );
    assert!(matches!(other, CsrVerdict::Deny(r) if r.contains("neither")));
    let kubeadm_token = verdict(
        &pem,
        "system:bootstrap:abcdef",
        &["system:bootstrappers"],
        &[],
    );
    assert!(matches!(kubeadm_token, CsrVerdict::Deny(_)));
}

#[test]
fn other_signers_and_subjects_are_not_ours() {
    let pem = build_request("cluster1").unwrap().csr_pem;
    let usages = groups(&USAGES);
    let facts = CsrFacts {
        signer: "kubernetes.io/kubelet-serving",
        username: "x",
        groups: &[],
        usages: &usages,
        request_pem: pem.as_bytes(),
    };
    assert_eq!(review_csr(&facts, |_| false), CsrVerdict::NotOurs);
    assert_eq!(verdict("garbage", "x", &[], &[]), CsrVerdict::NotOurs);
}

#[test]
fn a_bad_cluster_id_is_denied_with_the_cause() {
    let pem = build_request("Not_A_Label").unwrap().csr_pem;
    let v = verdict(&pem, "system:bootstrap:abcdef", &[BOOTSTRAP_GROUP], &[]);
    assert!(matches!(v, CsrVerdict::Deny(r) if r.contains("DNS-1123")));
}

#[test]
fn a_join_under_the_hubs_own_id_is_denied_but_others_pass() {
    let reserved = ["hub".to_owned()];
    let join = |id: &str| CsrVerdict::Approve {
        cluster_id: id.to_owned(),
        renewal: false,
    };
    match refuse_reserved(join("hub"), &reserved) {
        CsrVerdict::Deny(reason) => assert!(reason.contains("hub's own"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        refuse_reserved(join("cluster-a"), &reserved),
        join("cluster-a")
    );
    assert_eq!(
        refuse_reserved(CsrVerdict::NotOurs, &reserved),
        CsrVerdict::NotOurs
    );
}
