use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn claim(id: &str, cidrs: &[&str]) -> SliceClaim {
    SliceClaim {
        cluster_id: id.into(),
        cidrs: cidrs.iter().map(|c| net(c)).collect(),
    }
}

#[test]
fn default_policy_hands_out_16s_and_keeps_the_top_16_for_clusterset_ips() {
    let policy = SlicePolicy::default();
    assert_eq!(policy.global(), net("10.112.0.0/12"));
    assert_eq!(policy.clusterset(), net("10.127.0.0/16"));
    assert_eq!(policy.assign("a", None, &[]), Ok(net("10.112.0.0/16")));
}

#[test]
fn lowest_free_slice_skips_taken_ones_and_is_the_same_every_time() {
    let policy = SlicePolicy::default();
    let claims = [
        claim("a", &["10.112.0.0/16"]),
        claim("b", &["10.113.0.0/17"]),
    ];
    assert_eq!(policy.assign("c", None, &claims), Ok(net("10.114.0.0/16")));
    assert_eq!(policy.assign("c", None, &claims), Ok(net("10.114.0.0/16")));
    // A larger claim is jumped over whole.
    let claims = [claim("a", &["10.112.0.0/14"])];
    assert_eq!(policy.assign("c", None, &claims), Ok(net("10.116.0.0/16")));
}

#[test]
fn a_cluster_keeps_its_slice_across_restarts() {
    let policy = SlicePolicy::default();
    let claims = [
        claim("a", &["10.112.0.0/16"]),
        claim("b", &["10.120.0.0/16"]),
    ];
    assert_eq!(policy.assign("b", None, &claims), Ok(net("10.120.0.0/16")));
}

#[test]
fn a_held_slice_that_became_invalid_is_replaced_by_a_free_one() {
    let policy = SlicePolicy::default();
    let claims = [claim("b", &["10.127.0.0/16"])];
    assert_eq!(policy.assign("b", None, &claims), Ok(net("10.112.0.0/16")));
}

#[test]
fn a_free_requested_slice_is_granted() {
    let policy = SlicePolicy::default();
    let claims = [claim("a", &["10.112.0.0/16"])];
    assert_eq!(
        policy.assign("b", Some(net("10.125.128.0/17")), &claims),
        Ok(net("10.125.128.0/17"))
    );
}

#[test]
fn requests_that_cannot_be_granted_say_why() {
    let policy = SlicePolicy::default();
    let claims = [claim("a", &["10.112.0.0/16"])];
    let cases = [
        (
            "10.112.128.0/17",
            SliceError::Conflict {
                cidr: net("10.112.128.0/17"),
                other_cluster: "a".into(),
                other_cidr: net("10.112.0.0/16"),
            },
        ),
        (
            "10.127.5.0/24",
            SliceError::ClustersetRange {
                cidr: net("10.127.5.0/24"),
                clusterset: net("10.127.0.0/16"),
            },
        ),
        (
            "10.200.0.0/16",
            SliceError::OutsideGlobal {
                cidr: net("10.200.0.0/16"),
                global: net("10.112.0.0/12"),
            },
        ),
        (
            "10.96.0.0/11",
            SliceError::OutsideGlobal {
                cidr: net("10.96.0.0/11"),
                global: net("10.112.0.0/12"),
            },
        ),
        (
            "10.112.0.0/12",
            SliceError::WholeGlobal {
                cidr: net("10.112.0.0/12"),
            },
        ),
        (
            "fd00::/64",
            SliceError::FamilyMismatch {
                cidr: net("fd00::/64"),
                global: net("10.112.0.0/12"),
            },
        ),
    ];
    for (req, want) in cases {
        assert_eq!(
            policy.assign("b", Some(net(req)), &claims),
            Err(want),
            "{req}"
        );
    }
    let host_bits = policy
        .assign("b", Some(net("10.114.0.1/16")), &claims)
        .unwrap_err();
    assert!(
        matches!(host_bits, SliceError::NotCanonical { .. }),
        "{host_bits}"
    );
    assert!(
        host_bits.to_string().contains("10.114.0.0/16"),
        "{host_bits}"
    );
}

#[test]
fn conflicts_carry_the_cidr_conflict_reason_and_bad_shapes_the_invalid_spec_one() {
    let conflict = SliceError::Conflict {
        cidr: net("10.112.0.0/16"),
        other_cluster: "a".into(),
        other_cidr: net("10.112.0.0/16"),
    };
    assert_eq!(conflict.condition_reason(), condition::REASON_CIDR_CONFLICT);
    let outside = SliceError::OutsideGlobal {
        cidr: net("10.0.0.0/16"),
        global: net("10.112.0.0/12"),
    };
    assert_eq!(outside.condition_reason(), condition::REASON_INVALID_SPEC);
    assert_eq!(
        outside.to_string(),
        "slice 10.0.0.0/16 lies outside the global CIDR 10.112.0.0/12"
    );
}

#[test]
fn a_full_global_cidr_is_exhausted() {
    let policy = SlicePolicy::new(net("10.112.0.0/14"), 16, None).unwrap();
    assert_eq!(policy.clusterset(), net("10.115.0.0/16"));
    let claims = [
        claim("a", &["10.112.0.0/16"]),
        claim("b", &["10.113.0.0/16", "10.114.0.0/16"]),
    ];
    assert_eq!(
        policy.assign("c", None, &claims),
        Err(SliceError::Exhausted {
            global: net("10.112.0.0/14"),
            prefix_len: 16
        })
    );
}

#[test]
fn review_accepts_the_oldest_claim_and_refuses_the_later_overlap() {
    let policy = SlicePolicy::default();
    let claims = [
        claim("a", &["10.112.0.0/16"]),
        claim("b", &["10.112.0.0/17"]),
        claim("c", &["10.113.0.0/16"]),
    ];
    let verdicts = policy.review(&claims);
    assert_eq!(verdicts[0], Ok(()));
    assert!(
        matches!(&verdicts[1], Err(SliceError::Conflict { other_cluster, .. }) if other_cluster == "a")
    );
    assert_eq!(verdicts[2], Ok(()));
}

#[test]
fn a_refused_claim_does_not_block_later_ones() {
    let policy = SlicePolicy::default();
    let claims = [
        claim("a", &["10.127.0.0/16", "10.112.0.0/16"]),
        claim("b", &["10.112.0.0/16"]),
    ];
    let verdicts = policy.review(&claims);
    assert!(verdicts[0].is_err());
    assert_eq!(verdicts[1], Ok(()));
}

#[test]
fn ipv6_policies_allocate_without_walking_every_block() {
    let policy = SlicePolicy::new(net("fd00:112::/32"), 64, None).unwrap();
    assert_eq!(policy.clusterset(), net("fd00:112:ffff:ffff::/64"));
    let claims = [claim("a", &["fd00:112::/33"])];
    assert_eq!(
        policy.assign("b", None, &claims),
        Ok(net("fd00:112:8000::/64"))
    );
}

#[test]
fn policies_that_cannot_work_are_refused() {
    assert!(matches!(
        SlicePolicy::new(net("10.112.0.0/12"), 12, None),
        Err(SliceError::PolicyPrefixLen { .. })
    ));
    assert!(matches!(
        SlicePolicy::new(net("10.112.0.0/12"), 33, None),
        Err(SliceError::PolicyPrefixLen { .. })
    ));
    assert!(matches!(
        SlicePolicy::new(net("10.112.0.0/12"), 16, Some(net("192.168.0.0/16"))),
        Err(SliceError::OutsideGlobal { .. })
    ));
    assert!(matches!(
        SlicePolicy::new(net("10.112.0.1/12"), 16, None),
        Err(SliceError::NotCanonical { .. })
    ));
}
