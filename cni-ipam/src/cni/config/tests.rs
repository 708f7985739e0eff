use super::*;

fn conf(ipam: &str) -> Result<NetConf, CniError> {
    parse(
        format!(r#"{{"cniVersion":"1.0.0","name":"net1","type":"bridge","ipam":{ipam}}}"#)
            .as_bytes(),
    )
}

fn field_of(e: &CniError) -> String {
    match e {
        CniError::InvalidConfig { field, .. } => field.clone(),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn host_local_ranges_config_is_accepted() {
    let c = conf(
        r#"{"type":"host-local","ranges":[[{"subnet":"10.112.1.0/24","rangeStart":"10.112.1.10","rangeEnd":"10.112.1.20","gateway":"10.112.1.1"}],[{"subnet":"fd00:112::/64"}]],"routes":[{"dst":"0.0.0.0/0"}],"dataDir":"/tmp/x"}"#,
    )
    .unwrap();
    assert_eq!(c.ipam.range_sets.len(), 2);
    assert_eq!(c.ipam.range_sets[0][0].start().to_string(), "10.112.1.10");
    assert_eq!(c.ipam.routes.len(), 1);
    assert_eq!(c.ipam.data_dir, PathBuf::from("/tmp/x"));
    assert_eq!(
        c.ipam.range_sets[1][0].gateway().unwrap().to_string(),
        "fd00:112::1"
    );
}

#[test]
fn legacy_single_subnet_comes_first() {
    let c = conf(r#"{"subnet":"10.0.0.0/24","ranges":[[{"subnet":"10.0.1.0/24"}]]}"#).unwrap();
    assert_eq!(c.ipam.range_sets[0][0].subnet().to_string(), "10.0.0.0/24");
    assert_eq!(c.ipam.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    assert_eq!(
        c.ipam.range_sets[0][0].gateway().unwrap().to_string(),
        "10.0.0.1"
    );
}

#[test]
fn runtime_ip_ranges_are_prepended_and_requested_ips_collected() {
    let c = parse(
        br#"{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},
            "runtimeConfig":{"ipRanges":[[{"subnet":"10.9.0.0/24"}]],"ips":["10.9.0.5/24"]},
            "args":{"cni":{"ips":["10.0.0.7"]}}}"#,
    )
    .unwrap();
    assert_eq!(c.ipam.range_sets[0][0].subnet().to_string(), "10.9.0.0/24");
    assert_eq!(
        c.requested_ips,
        [
            "10.0.0.7".parse::<IpAddr>().unwrap(),
            "10.9.0.5".parse().unwrap()
        ]
    );
}

#[test]
fn not_json_is_a_decode_error() {
    assert_eq!(parse(b"this is not json").unwrap_err().code(), 6);
    assert_eq!(parse(b"[1,2]").unwrap_err().code(), 6);
    assert_eq!(parse(b"").unwrap_err().code(), 6);
}

#[test]
fn missing_ipam_is_named() {
    let e = parse(br#"{"cniVersion":"1.0.0","name":"n"}"#).unwrap_err();
    assert_eq!(e.code(), 7);
    assert_eq!(field_of(&e), "ipam");
}

#[test]
fn missing_or_bad_name_is_named() {
    let e = parse(br#"{"cniVersion":"1.0.0","ipam":{"subnet":"10.0.0.0/24"}}"#).unwrap_err();
    assert_eq!(field_of(&e), "name");
    let e = parse(br#"{"cniVersion":"1.0.0","name":"../etc","ipam":{"subnet":"10.0.0.0/24"}}"#)
        .unwrap_err();
    assert_eq!(field_of(&e), "name");
}

#[test]
fn unknown_cni_version_is_incompatible() {
    let e =
        parse(br#"{"cniVersion":"7.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24"}}"#).unwrap_err();
    assert_eq!(e.code(), 1);
    assert!(e.to_string().contains("7.0.0"));
}

#[test]
fn missing_cni_version_means_0_1_0() {
    let c = parse(br#"{"name":"n","ipam":{"subnet":"10.0.0.0/24"}}"#).unwrap();
    assert_eq!(c.cni_version, CniVersion::V0_1_0);
}

#[test]
fn prefix_33_is_named() {
    let e = conf(r#"{"ranges":[[{"subnet":"10.0.0.0/33"}]]}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.ranges[0][0].subnet");
}

#[test]
fn range_start_outside_subnet_is_named() {
    let e = conf(r#"{"subnet":"10.0.0.0/24","rangeStart":"10.0.1.5"}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.rangeStart");
}

#[test]
fn range_end_before_start_is_named() {
    let e = conf(r#"{"ranges":[[{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.50","rangeEnd":"10.0.0.10"}]]}"#)
        .unwrap_err();
    assert_eq!(field_of(&e), "ipam.ranges[0][0].rangeEnd");
}

#[test]
fn gateway_outside_subnet_or_on_broadcast_is_named() {
    let e = conf(r#"{"subnet":"10.0.0.0/24","gateway":"10.0.1.1"}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.gateway");
    let e = conf(r#"{"subnet":"10.0.0.0/24","gateway":"10.0.0.255"}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.gateway");
}

#[test]
fn gateway_inside_the_range_is_accepted_and_reserved() {
    let c = conf(r#"{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.20","gateway":"10.0.0.15"}"#)
        .unwrap();
    let r = &c.ipam.range_sets[0][0];
    assert!(r.contains("10.0.0.15".parse().unwrap()));
    assert!(r.is_reserved("10.0.0.15".parse().unwrap()));
}

#[test]
fn bad_addresses_and_types_are_named() {
    let e = conf(r#"{"subnet":"10.0.0.0/24","rangeStart":"10.0.0.300"}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.rangeStart");
    let e = conf(r#"{"subnet":"10.0.0.0/24","rangeEnd":42}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.rangeEnd");
    let e = conf(r#"{"ranges":{"subnet":"10.0.0.0/24"}}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.ranges");
    let e = conf(r#"{"ranges":[[]]}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.ranges[0]");
    let e = conf(r#"{"ranges":[[{"rangeStart":"10.0.0.1"}]]}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.ranges[0][0].subnet");
    let e = conf(r#"{"subnet":"10.0.0.0/24","routes":[{"gw":"10.0.0.1"}]}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.routes[0].dst");
    let e = conf(r#"{"subnet":"10.0.0.0/24","exclude":["nope"]}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.exclude[0]");
    let e = conf(r#"{"subnet":"10.0.0.0/24","dataDir":5}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.dataDir");
}

#[test]
fn no_ranges_is_an_error() {
    let e = conf(r#"{"type":"nauti-ipam"}"#).unwrap_err();
    assert_eq!(field_of(&e), "ipam.ranges");
}

#[test]
fn overlapping_range_sets_are_rejected() {
    let e =
        conf(r#"{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.0/25"}]]}"#).unwrap_err();
    assert!(field_of(&e).starts_with("range set 1"), "{e}");
}

#[test]
fn legacy_versions_allow_one_address_per_family() {
    let e = parse(
        br#"{"cniVersion":"0.2.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.1.0/24"}]]}}"#,
    )
    .unwrap_err();
    assert_eq!(e.code(), 1);
}

#[test]
fn exclusions_apply_to_their_family_only() {
    let c = conf(r#"{"ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/120"}]],"exclude":["10.0.0.2","10.0.0.16/28","fd00::9"]}"#)
        .unwrap();
    assert_eq!(c.ipam.range_sets[0][0].exclusions().len(), 2);
    assert_eq!(c.ipam.range_sets[1][0].exclusions().len(), 1);
}

#[test]
fn gc_attachments_and_prev_result_are_read() {
    let c = parse(
        br#"{"cniVersion":"1.1.0","name":"n","ipam":{"subnet":"10.0.0.0/24"},
            "cni.dev/valid-attachments":[{"containerID":"a","ifname":"eth0"}],
            "prevResult":{"ips":[{"address":"10.0.0.2/24"}]}}"#,
    )
    .unwrap();
    assert_eq!(
        c.valid_attachments.unwrap(),
        [("a".to_owned(), "eth0".to_owned())]
    );
    assert_eq!(
        c.prev_result_ips.unwrap(),
        ["10.0.0.2".parse::<IpAddr>().unwrap()]
    );
}

/// `fsync` was a field of earlier versions; configurations that still carry it keep working.
#[test]
fn a_leftover_fsync_field_is_ignored_like_any_unknown_field() {
    for v in ["true", "false", r#""not a bool""#] {
        let c = conf(&format!(r#"{{"subnet":"10.0.0.0/24","fsync":{v}}}"#)).unwrap();
        assert_eq!(c.ipam.range_sets.len(), 1, "fsync: {v}");
    }
}

#[test]
fn single_address_subnets_at_the_top_of_the_space_are_named_not_overflowed() {
    for subnet in [
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
        "255.255.255.255/32",
    ] {
        let e = conf(&format!(r#"{{"ranges":[[{{"subnet":"{subnet}"}}]]}}"#)).unwrap_err();
        assert_eq!(field_of(&e), "ipam.ranges[0][0].subnet", "{subnet}");
        assert!(
            e.to_string().contains("too small") || e.to_string().contains(subnet),
            "{e}"
        );
    }
    let c = conf(r#"{"ranges":[[{"subnet":"::/0"}]]}"#).unwrap();
    assert_eq!(
        c.ipam.range_sets[0][0].gateway().unwrap().to_string(),
        "::1"
    );
}
