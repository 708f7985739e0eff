//! The CustomResourceDefinitions of every type in this crate, rendered the way they are
//! checked in under `deploy/crds/` (one file per CRD, named after the CRD).
//!
//! The YAML is generated, never edited: the Helm charts install these files, and a test fails
//! when they drift from the types.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;
use schemars::JsonSchema;

use crate::mcs::{ServiceExport, ServiceImport};
use crate::peer::Peer;

/// Header of every generated file, so nobody edits one by hand.
pub const GENERATED_HEADER: &str =
    "# Generated from the nauti-api types by `make crds`. Do not edit.\n";

/// Every CRD Nauti installs.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![Peer::crd(), ServiceExport::crd(), ServiceImport::crd()]
}

/// File name of a CRD: `<plural>.<group>.yaml`, its metadata name.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    let name = crd.metadata.name.as_deref().unwrap_or("unnamed");
    format!("{name}.yaml")
}

/// A CRD as the YAML document checked in.
pub fn render(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    Ok(format!(
        "{GENERATED_HEADER}{}",
        serde_saphyr::to_string(crd)?
    ))
}

/// Every CRD with its file name and rendered text.
pub fn rendered() -> Result<Vec<(String, String)>, serde_saphyr::SerializeError> {
    all()
        .iter()
        .map(|crd| Ok((file_name(crd), render(crd)?)))
        .collect()
}

/// A failure writing the CRD files.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Rendering to YAML failed.
    #[error("rendering CRD YAML: {0}")]
    Render(#[from] serde_saphyr::SerializeError),
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Writes every CRD into `dir` (created if missing) and returns the paths written.
pub fn write_all(dir: &Path) -> Result<Vec<PathBuf>, WriteError> {
    fs::create_dir_all(dir).map_err(|source| WriteError::Io {
        path: dir.to_owned(),
        source,
    })?;
    rendered()?
        .into_iter()
        .map(|(name, text)| {
            let path = dir.join(name);
            fs::write(&path, text).map_err(|source| WriteError::Io {
                path: path.clone(),
                source,
            })?;
            Ok(path)
        })
        .collect()
}

/// The OpenAPI v3 schema of `T` in the structural form the apiserver requires, generated with
/// the same settings kube's `CustomResource` derive uses, so hand-written resources
/// (`ServiceExport`) look like derived ones.
pub(crate) fn structural_schema<T: JsonSchema>() -> JSONSchemaProps {
    let generator = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    #[allow(
        clippy::expect_used,
        reason = "the schema of a fixed Rust type either always converts or never does; the crd tests exercise it"
    )]
    serde_json::to_value(generator.into_root_schema_for::<T>())
        .and_then(serde_json::from_value)
        .expect("schemars output is a valid JSONSchemaProps")
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn crds_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/crds")
    }

    #[test]
    fn checked_in_crds_match_the_types() {
        let dir = crds_dir();
        for (name, want) in rendered().unwrap() {
            let path = dir.join(&name);
            let have = fs::read_to_string(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is out of date with the nauti-api types; run `make crds` and commit the result",
                path.display()
            );
        }
    }

    #[test]
    fn every_crd_has_its_own_file_named_after_it() {
        let names: Vec<String> = all().iter().map(file_name).collect();
        assert_eq!(
            names,
            [
                "peers.nauti.io.yaml",
                "serviceexports.multicluster.x-k8s.io.yaml",
                "serviceimports.multicluster.x-k8s.io.yaml"
            ]
        );
    }

    #[test]
    fn write_all_creates_the_directory_and_the_files() {
        let dir = std::env::temp_dir().join(format!("nauti-crdgen-{}", std::process::id()));
        let written = write_all(&dir.join("crds")).unwrap();
        assert_eq!(written.len(), 3);
        for path in &written {
            assert!(
                fs::read_to_string(path)
                    .unwrap()
                    .starts_with(GENERATED_HEADER)
            );
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The apiserver refuses non-structural schemas: every node needs a type (or one of the
    /// escape hatches) and there must be no references.
    fn assert_structural(path: &str, schema: &Value) {
        let obj = schema
            .as_object()
            .unwrap_or_else(|| panic!("{path} is not an object"));
        for banned in ["$ref", "definitions", "$defs", "oneOf", "allOf"] {
            assert!(!obj.contains_key(banned), "{path} has {banned}");
        }
        let typed = obj.contains_key("type")
            || obj.contains_key("x-kubernetes-int-or-string")
            || obj.contains_key("x-kubernetes-preserve-unknown-fields");
        assert!(typed, "{path} has no type: {schema}");
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (k, v) in props {
                assert_structural(&format!("{path}.{k}"), v);
            }
        }
        if let Some(items) = obj.get("items") {
            assert_structural(&format!("{path}[]"), items);
        }
        if let Some(Value::Object(_)) = obj.get("additionalProperties") {
            assert_structural(&format!("{path}{{}}"), &obj["additionalProperties"]);
        }
    }

    fn schema_of(crd: &CustomResourceDefinition) -> Value {
        let version = &crd.spec.versions[0];
        serde_json::to_value(
            version
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref()
                .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn every_schema_is_structural() {
        for crd in all() {
            assert_structural(crd.metadata.name.as_deref().unwrap(), &schema_of(&crd));
        }
    }

    #[test]
    fn peer_schema_carries_the_validation_rules() {
        let crd = Peer::crd();
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.versions[0].name, "v1alpha1");
        let schema = schema_of(&crd);
        let spec = &schema["properties"]["spec"];
        let p = &spec["properties"];
        assert_eq!(p["clusterID"]["maxLength"], 63);
        assert_eq!(
            p["clusterID"]["pattern"],
            crate::core::names::DNS1123_LABEL_PATTERN
        );
        assert_eq!(
            p["publicKey"]["pattern"],
            crate::core::wgkey::WG_KEY_PATTERN
        );
        assert_eq!(p["port"]["default"], 51820);
        assert_eq!(p["clusterCIDRs"]["x-kubernetes-list-type"], "set");
        assert!(
            spec["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .unwrap()
                .contains("has(self.endpoint)")
        );
        let required: Vec<&str> = spec["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(required, ["clusterCIDRs", "clusterID", "publicKey"]);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-map-keys"][0], "type");
        assert_eq!(
            conditions["items"]["properties"]["observedGeneration"]["type"],
            "integer"
        );
    }

    /// The schema patterns and the Rust validators must agree on what they accept; the
    /// `regex` crate has RE2's syntax and semantics, which is what the apiserver uses.
    #[test]
    fn schema_patterns_agree_with_the_rust_validators() {
        use crate::core::names::{DNS1123_LABEL_PATTERN, validate_dns1123_label};
        use crate::core::net::parse_canonical_cidr;
        use crate::core::wgkey::{WG_KEY_PATTERN, encode_wireguard_key, parse_wireguard_key};

        let cidr = regex::Regex::new(crate::schema::CIDR_PATTERN).unwrap();
        for ok in [
            "10.112.0.0/12",
            "0.0.0.0/0",
            "255.255.255.255/32",
            "fd00:112::/48",
            "::/0",
            "::ffff:10.0.0.0/104",
        ] {
            assert!(
                cidr.is_match(ok) && parse_canonical_cidr(ok).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "10.112.0.0/33",
            "256.0.0.0/8",
            "10.0.0.0",
            "fd00::/129",
            "example.com/8",
            "10.0.0.0/8 ",
        ] {
            assert!(
                !cidr.is_match(bad) && parse_canonical_cidr(bad).is_err(),
                "{bad}"
            );
        }

        // The endpoint pattern is a coarse pre-filter: whatever Rust accepts must match it.
        let endpoint = regex::Regex::new(crate::schema::ENDPOINT_PATTERN).unwrap();
        for ok in ["hub.example.com", "203.0.113.1", "FD00::1", "fd00::1"] {
            assert!(endpoint.is_match(ok), "{ok}");
        }
        for bad in [
            "[fd00::1]",
            "hub.example.com:51820",
            "Hub.example.com",
            "a b",
        ] {
            assert!(!endpoint.is_match(bad), "{bad}");
        }

        let label = regex::Regex::new(DNS1123_LABEL_PATTERN).unwrap();
        for s in ["a", "member-1", "0x", "-a", "a-", "A", "a.b", "a_b", ""] {
            assert_eq!(
                label.is_match(s),
                validate_dns1123_label(s).is_ok(),
                "{s:?}"
            );
        }

        let key = regex::Regex::new(WG_KEY_PATTERN).unwrap();
        let mut seed = 1u8;
        for _ in 0..200 {
            let bytes: [u8; 32] = std::array::from_fn(|i| {
                seed = seed.wrapping_mul(31).wrapping_add(i as u8 ^ 0x5a);
                seed
            });
            let text = encode_wireguard_key(&bytes);
            assert!(
                key.is_match(&text) && parse_wireguard_key(&text).is_ok(),
                "{text}"
            );
        }
        for bad in [
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==",
            "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQF=",
        ] {
            assert_eq!(key.is_match(bad), parse_wireguard_key(bad).is_ok(), "{bad}");
        }
    }

    #[test]
    fn service_export_schema_does_not_require_a_spec() {
        let schema = schema_of(&ServiceExport::crd());
        assert!(schema.get("required").is_none(), "{schema}");
        assert_eq!(
            schema["properties"]["status"]["properties"]["conditions"]["x-kubernetes-list-type"],
            "map"
        );
    }
}
