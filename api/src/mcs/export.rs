//! `ServiceExport`: a user's request to export the Service of the same name and namespace.
//!
//! Written by hand rather than with `#[derive(CustomResource)]` because upstream makes `spec`
//! optional and nearly every ServiceExport in the wild has none: the derived type would
//! require `spec` in both the schema and deserialization, and reject those manifests.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta};
use kube::CustomResourceExt;
use kube::core::dynamic::ApiResource;
use kube::core::object::{HasSpec, HasStatus};
use kube::core::{NamespaceResourceScope, Resource};
use schemars::JsonSchema;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

use super::{GROUP, VERSION};

const KIND: &str = "ServiceExport";
const PLURAL: &str = "serviceexports";
const CRD_NAME: &str = "serviceexports.multicluster.x-k8s.io";
const SHORT_NAMES: &[&str] = &["svcex", "svcexport"];

/// Condition types and reasons on `ServiceExport.status.conditions`, as defined upstream.
pub mod export_condition {
    /// The export is valid (the Service exists and has an exportable type).
    pub const VALID: &str = "Valid";
    /// The service has been exported (or is ready to be pulled).
    pub const READY: &str = "Ready";
    /// Some property conflicts between the clusters exporting this service.
    pub const CONFLICT: &str = "Conflict";

    /// `Valid=True`.
    pub const REASON_VALID: &str = "Valid";
    /// `Valid=False`: no Service of that name.
    pub const REASON_NO_SERVICE: &str = "NoService";
    /// `Valid=False`: e.g. an ExternalName Service.
    pub const REASON_INVALID_SERVICE_TYPE: &str = "InvalidServiceType";
    /// `Ready=True`, push model.
    pub const REASON_EXPORTED: &str = "Exported";
    /// `Ready=True`, pull model.
    pub const REASON_READY: &str = "Ready";
    /// `Ready=False`/`Unknown` while exporting.
    pub const REASON_PENDING: &str = "Pending";
    /// `Ready=False`: the export failed; the message says why.
    pub const REASON_FAILED: &str = "Failed";
    /// `Conflict=True`: ports differ between clusters.
    pub const REASON_PORT_CONFLICT: &str = "PortConflict";
    /// `Conflict=True`: headless in one cluster, not in another.
    pub const REASON_TYPE_CONFLICT: &str = "TypeConflict";
    /// `Conflict=True`: session affinity differs.
    pub const REASON_SESSION_AFFINITY_CONFLICT: &str = "SessionAffinityConflict";
    /// `Conflict=True`: session affinity config differs.
    pub const REASON_SESSION_AFFINITY_CONFIG_CONFLICT: &str = "SessionAffinityConfigConflict";
    /// `Conflict=True`: exported labels differ.
    pub const REASON_LABELS_CONFLICT: &str = "LabelsConflict";
    /// `Conflict=True`: exported annotations differ.
    pub const REASON_ANNOTATIONS_CONFLICT: &str = "AnnotationsConflict";
    /// `Conflict=True`: internal traffic policy differs.
    pub const REASON_INTERNAL_TRAFFIC_POLICY_CONFLICT: &str = "InternalTrafficPolicyConflict";
    /// `Conflict=True`: traffic distribution differs.
    pub const REASON_TRAFFIC_DISTRIBUTION_CONFLICT: &str = "TrafficDistributionConflict";
    /// `Conflict=False`.
    pub const REASON_NO_CONFLICTS: &str = "NoConflicts";
}

/// Optional extras of an export.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExportSpec {
    /// Labels to put on the resulting ServiceImports. Optional for implementations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exported_labels: BTreeMap<String, String>,
    /// Annotations to put on the resulting ServiceImports. Optional for implementations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exported_annotations: BTreeMap<String, String>,
}

impl ServiceExportSpec {
    /// True when nothing is set, so the object serializes without a `spec`, as users write it.
    pub fn is_empty(&self) -> bool {
        self.exported_labels.is_empty() && self.exported_annotations.is_empty()
    }
}

/// The current state of an export, written by Nauti.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExportStatus {
    /// The `Valid`, `Ready` and `Conflict` conditions of the export.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}

/// Declares that the Service with the same name and namespace should be consumable from other
/// clusters of the cluster set.
#[derive(Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceExport {
    /// Standard object metadata; the name is the exported Service's.
    pub metadata: ObjectMeta,
    /// Optional extras; empty for most exports.
    #[serde(default)]
    pub spec: ServiceExportSpec,
    /// Written by Nauti.
    #[serde(default)]
    pub status: Option<ServiceExportStatus>,
}

/// Shape of the stored object for the CRD schema (metadata, apiVersion and kind are validated
/// by the apiserver itself and are left out, as kube's derive does).
#[derive(JsonSchema)]
#[schemars(rename = "ServiceExport")]
#[schemars(
    description = "ServiceExport declares that the Service with the same name and namespace as this export should be consumable from other clusters."
)]
#[allow(dead_code, reason = "only its schema is used")]
struct ServiceExportSchema {
    /// spec defines the behavior of a ServiceExport.
    spec: Option<ServiceExportSpec>,
    /// status describes the current state of an exported service. Populated by the multi-cluster service implementation's controller.
    status: Option<ServiceExportStatus>,
}

impl ServiceExport {
    /// An export of the Service `name` with an empty spec and no status.
    pub fn new(name: &str) -> Self {
        Self {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..ObjectMeta::default()
            },
            ..Self::default()
        }
    }
}

impl Serialize for ServiceExport {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let fields = 3 + usize::from(!self.spec.is_empty()) + usize::from(self.status.is_some());
        let mut obj = ser.serialize_struct(KIND, fields)?;
        obj.serialize_field("apiVersion", &Self::api_version(&()))?;
        obj.serialize_field("kind", KIND)?;
        obj.serialize_field("metadata", &self.metadata)?;
        if !self.spec.is_empty() {
            obj.serialize_field("spec", &self.spec)?;
        }
        if let Some(status) = &self.status {
            obj.serialize_field("status", status)?;
        }
        obj.end()
    }
}

impl Resource for ServiceExport {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        PLURAL.into()
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl HasSpec for ServiceExport {
    type Spec = ServiceExportSpec;

    fn spec(&self) -> &ServiceExportSpec {
        &self.spec
    }

    fn spec_mut(&mut self) -> &mut ServiceExportSpec {
        &mut self.spec
    }
}

impl HasStatus for ServiceExport {
    type Status = ServiceExportStatus;

    fn status(&self) -> Option<&ServiceExportStatus> {
        self.status.as_ref()
    }

    fn status_mut(&mut self) -> &mut Option<ServiceExportStatus> {
        &mut self.status
    }
}

fn condition_column(type_: &str) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: type_.to_owned(),
        type_: "string".to_owned(),
        json_path: format!(r#".status.conditions[?(@.type=="{type_}")].status"#),
        ..CustomResourceColumnDefinition::default()
    }
}

impl CustomResourceExt for ServiceExport {
    fn crd() -> CustomResourceDefinition {
        CustomResourceDefinition {
            metadata: ObjectMeta {
                name: Some(CRD_NAME.to_owned()),
                ..ObjectMeta::default()
            },
            spec: CustomResourceDefinitionSpec {
                group: GROUP.to_owned(),
                names: CustomResourceDefinitionNames {
                    kind: KIND.to_owned(),
                    plural: PLURAL.to_owned(),
                    singular: Some(KIND.to_ascii_lowercase()),
                    short_names: Some(SHORT_NAMES.iter().map(|s| (*s).to_owned()).collect()),
                    ..CustomResourceDefinitionNames::default()
                },
                scope: "Namespaced".to_owned(),
                versions: vec![CustomResourceDefinitionVersion {
                    name: VERSION.to_owned(),
                    served: true,
                    storage: true,
                    schema: Some(CustomResourceValidation {
                        open_api_v3_schema: Some(crate::crd::structural_schema::<
                            ServiceExportSchema,
                        >()),
                    }),
                    subresources: Some(CustomResourceSubresources {
                        status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                        scale: None,
                    }),
                    additional_printer_columns: Some(vec![
                        condition_column(export_condition::VALID),
                        condition_column(export_condition::READY),
                        condition_column(export_condition::CONFLICT),
                        CustomResourceColumnDefinition {
                            name: "Age".to_owned(),
                            type_: "date".to_owned(),
                            json_path: ".metadata.creationTimestamp".to_owned(),
                            ..CustomResourceColumnDefinition::default()
                        },
                    ]),
                    ..CustomResourceDefinitionVersion::default()
                }],
                ..CustomResourceDefinitionSpec::default()
            },
            status: None,
        }
    }

    fn crd_name() -> &'static str {
        CRD_NAME
    }

    fn api_resource() -> ApiResource {
        ApiResource::erase::<Self>(&())
    }

    fn shortnames() -> &'static [&'static str] {
        SHORT_NAMES
    }
}
