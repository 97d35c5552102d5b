//! The CDI specification as data: what `podlab cdi generate` writes and `podlab cdi validate`
//! reads. The schema is small, so podlab keeps its own serde types (the CNCF crate keeps its
//! fields private and pulls in a large dependency tree); unknown fields are rejected, as
//! Podman's own CDI loader does.
//!
//! [`Spec::required_version`] computes the lowest `cdiVersion` the content needs, which the
//! generator checks against what the target Podman loads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::capabilities::CdiVersion;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Spec {
    pub cdi_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "ContainerEdits::is_empty")]
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Device {
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    pub container_edits: ContainerEdits,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerEdits {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_nodes: Vec<DeviceNode>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hooks: Vec<Hook>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mounts: Vec<Mount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intel_rdt: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub additional_gids: Vec<u32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub net_devices: Vec<serde_json::Value>,
}

impl ContainerEdits {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceNode {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub major: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_mode: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Mount {
    pub host_path: String,
    pub container_path: String,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Hook {
    pub hook_name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
}

/// Why a spec needs a given version: the field and the version it was introduced in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionNeed {
    pub version: CdiVersion,
    pub reason: &'static str,
}

impl Spec {
    /// Every set of edits in the spec: the top-level one, then each device's.
    pub fn all_edits(&self) -> impl Iterator<Item = &ContainerEdits> {
        std::iter::once(&self.container_edits)
            .chain(self.devices.iter().map(|device| &device.container_edits))
    }

    /// The lowest `cdiVersion` that can express this spec, with the field that forces it.
    pub fn required_version(&self) -> VersionNeed {
        let mut need = VersionNeed {
            version: CdiVersion::V0_3_0,
            reason: "the base schema",
        };
        let mut raise = |version: CdiVersion, reason: &'static str| {
            if version > need.version {
                need = VersionNeed { version, reason };
            }
        };
        for edits in self.all_edits() {
            if edits.mounts.iter().any(|mount| mount.kind.is_some()) {
                raise(CdiVersion::V0_4_0, "mounts[].type");
            }
            if edits
                .device_nodes
                .iter()
                .any(|node| node.host_path.is_some())
            {
                raise(CdiVersion::V0_5_0, "deviceNodes[].hostPath");
            }
            if edits.intel_rdt.is_some() {
                raise(CdiVersion::V0_7_0, "intelRdt");
            }
            if !edits.additional_gids.is_empty() {
                raise(CdiVersion::V0_7_0, "additionalGids");
            }
            if !edits.net_devices.is_empty() {
                raise(CdiVersion::V1_1_0, "netDevices");
            }
        }
        if self
            .devices
            .iter()
            .any(|device| device.name.starts_with(|c: char| c.is_ascii_digit()))
        {
            raise(CdiVersion::V0_5_0, "device names starting with a digit");
        }
        if !self.annotations.is_empty()
            || self
                .devices
                .iter()
                .any(|device| !device.annotations.is_empty())
        {
            raise(CdiVersion::V0_6_0, "annotations");
        }
        need
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(devices: &[&str]) -> Spec {
        Spec {
            cdi_version: "0.3.0".into(),
            kind: "nvidia.com/gpu".into(),
            annotations: BTreeMap::new(),
            devices: devices
                .iter()
                .map(|name| Device {
                    name: (*name).into(),
                    annotations: BTreeMap::new(),
                    container_edits: ContainerEdits {
                        device_nodes: vec![DeviceNode {
                            path: "/dev/nvidia0".into(),
                            ..DeviceNode::default()
                        }],
                        ..ContainerEdits::default()
                    },
                })
                .collect(),
            container_edits: ContainerEdits::default(),
        }
    }

    #[test]
    fn version_follows_the_newest_field() {
        let mut s = spec(&["all"]);
        assert_eq!(s.required_version().version, CdiVersion::V0_3_0);
        s.devices.push(spec(&["0"]).devices.remove(0));
        assert_eq!(s.required_version().version, CdiVersion::V0_5_0);
        s.container_edits.additional_gids = vec![44];
        let need = s.required_version();
        assert_eq!(
            (need.version, need.reason),
            (CdiVersion::V0_7_0, "additionalGids")
        );
        s.container_edits.net_devices =
            vec![serde_json::json!({"hostInterfaceName": "eth1", "name": "eth1"})];
        assert_eq!(s.required_version().version, CdiVersion::V1_1_0);
    }

    #[test]
    fn host_path_and_mount_type_raise_the_version() {
        let mut s = spec(&["all"]);
        s.container_edits.mounts.push(Mount {
            host_path: "/a".into(),
            container_path: "/a".into(),
            kind: Some("bind".into()),
            options: vec![],
        });
        assert_eq!(s.required_version().version, CdiVersion::V0_4_0);
        s.devices[0].container_edits.device_nodes[0].host_path =
            Some("/run/nvidia/driver/dev/nvidia0".into());
        assert_eq!(s.required_version().version, CdiVersion::V0_5_0);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let text = r#"{"cdiVersion":"0.5.0","kind":"nvidia.com/gpu","devices":[],"containerEdits":{"envs":[]}}"#;
        let err = serde_json::from_str::<Spec>(text)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("unknown field `envs`"), "{err}");
    }
}
