//! The one place that knows what each Podman version can do.
//!
//! Every emitter (CDI specs, kube YAML, quadlet units) and every command that needs a feature
//! asks this table instead of comparing version numbers itself, so a fact learned about Podman
//! is fixed in one line. The figures come from Podman's source and release notes (see
//! `../shared/notes/field.md` in the project's shared notes).

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::{Error, Result};

/// A Podman release, as `major.minor.patch`; pre-release suffixes (`-dev`, `-rc1`) are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PodmanVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl PodmanVersion {
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }
}

impl fmt::Display for PodmanVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

impl Serialize for PodmanVersion {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for PodmanVersion {
    type Err = Error;

    /// Accepts `5`, `5.4`, `5.4.2`, `5.4.2-dev`, `v5.4.2` and `podman version 5.4.2`.
    fn from_str(text: &str) -> Result<Self> {
        let invalid = || {
            Error::user(format!("invalid podman version {text:?}"))
                .hint("give a version such as 5.4 or 5.4.2")
        };
        let word = text.trim().rsplit(' ').next().unwrap_or_default();
        let word = word.strip_prefix('v').unwrap_or(word);
        let core = word.split(['-', '+', '~']).next().unwrap_or_default();
        let mut numbers = core.split('.').map(str::parse::<u32>);
        let major = numbers.next().and_then(Result::ok).ok_or_else(invalid)?;
        let minor = numbers
            .next()
            .transpose()
            .map_err(|_| invalid())?
            .unwrap_or(0);
        let patch = numbers
            .next()
            .transpose()
            .map_err(|_| invalid())?
            .unwrap_or(0);
        if numbers.next().is_some() {
            return Err(invalid());
        }
        Ok(Self {
            major,
            minor,
            patch,
        })
    }
}

const fn v(major: u32, minor: u32) -> PodmanVersion {
    PodmanVersion::new(major, minor, 0)
}

/// A CDI specification version (`cdiVersion`), ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CdiVersion {
    #[serde(rename = "0.3.0")]
    V0_3_0,
    #[serde(rename = "0.4.0")]
    V0_4_0,
    #[serde(rename = "0.5.0")]
    V0_5_0,
    #[serde(rename = "0.6.0")]
    V0_6_0,
    #[serde(rename = "0.7.0")]
    V0_7_0,
    #[serde(rename = "0.8.0")]
    V0_8_0,
    #[serde(rename = "1.0.0")]
    V1_0_0,
    #[serde(rename = "1.1.0")]
    V1_1_0,
}

impl CdiVersion {
    pub const ALL: [Self; 8] = [
        Self::V0_3_0,
        Self::V0_4_0,
        Self::V0_5_0,
        Self::V0_6_0,
        Self::V0_7_0,
        Self::V0_8_0,
        Self::V1_0_0,
        Self::V1_1_0,
    ];
}

impl FromStr for CdiVersion {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let text = text.trim();
        Self::ALL
            .into_iter()
            .find(|version| version.to_string() == text)
            .ok_or_else(|| {
                Error::user(format!("unknown cdiVersion {text:?}"))
                    .hint("use one of 0.3.0, 0.4.0, 0.5.0, 0.6.0, 0.7.0, 0.8.0, 1.0.0, 1.1.0")
            })
    }
}

impl fmt::Display for CdiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V0_3_0 => "0.3.0",
            Self::V0_4_0 => "0.4.0",
            Self::V0_5_0 => "0.5.0",
            Self::V0_6_0 => "0.6.0",
            Self::V0_7_0 => "0.7.0",
            Self::V0_8_0 => "0.8.0",
            Self::V1_0_0 => "1.0.0",
            Self::V1_1_0 => "1.1.0",
        })
    }
}

/// Quadlet unit file types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnitType {
    Container,
    Volume,
    Network,
    Kube,
    Image,
    Pod,
    Build,
}

impl UnitType {
    pub const ALL: [Self; 7] = [
        Self::Container,
        Self::Volume,
        Self::Network,
        Self::Kube,
        Self::Image,
        Self::Pod,
        Self::Build,
    ];

    /// The file extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::Volume => "volume",
            Self::Network => "network",
            Self::Kube => "kube",
            Self::Image => "image",
            Self::Pod => "pod",
            Self::Build => "build",
        }
    }

    /// The first Podman release whose quadlet generator reads this unit type.
    pub fn since(self) -> PodmanVersion {
        match self {
            Self::Container | Self::Volume | Self::Network | Self::Kube => v(4, 4),
            Self::Image => v(4, 8),
            Self::Pod => v(5, 0),
            Self::Build => v(5, 2),
        }
    }
}

/// The first Podman release that accepts a quadlet key (`section`, `key`) added after quadlet
/// itself (4.4). Keys not listed are taken as present since 4.4. Quadlet rejects a whole file
/// over one unknown key, so emitters must gate every key listed here.
pub fn quadlet_key_since(unit: UnitType, key: &str) -> PodmanVersion {
    match (unit, key) {
        (_, "UserNS") => v(4, 5),
        (_, "WorkingDir" | "AutoUpdate") => v(4, 6),
        (UnitType::Container, "ShmSize") => v(4, 7),
        (UnitType::Pod, "ShmSize") => v(5, 4),
        (_, "GlobalArgs") => v(4, 8),
        (_, "Notify" | "Pod" | "Entrypoint") => v(5, 0),
        (_, "GroupAdd") => v(5, 1),
        _ => v(4, 4),
    }
}

/// A feature some podlab command needs from the target Podman.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feature {
    /// Quadlet, the systemd generator for `.container` and friends.
    Quadlet,
    /// `--device vendor/class=name` resolves CDI devices.
    CdiDevices,
    /// `--userns keep-id:uid=U,gid=G`.
    KeepIdWithIds,
    /// `podman run --gpus`.
    GpusFlag,
    /// `io.podman.annotations.userns` in `kube play`.
    KubeUsernsAnnotation,
    /// CDI names as `resources.limits` keys in `kube play`.
    KubeCdiLimits,
    /// `cdi_spec_dirs` in containers.conf is honoured.
    CdiSpecDirs,
    /// The global `--cdi-spec-dir` flag.
    CdiSpecDirFlag,
    /// `podman quadlet install`.
    QuadletInstall,
    /// Quadlet's `Notify=healthy`: the service is up once the health check first passes.
    NotifyHealthy,
}

impl Feature {
    /// The first Podman release with this feature.
    pub fn since(self) -> PodmanVersion {
        match self {
            Self::Quadlet => v(4, 4),
            Self::CdiDevices => v(4, 1),
            Self::KeepIdWithIds => v(4, 3),
            Self::GpusFlag | Self::KubeUsernsAnnotation | Self::NotifyHealthy => v(5, 0),
            Self::KubeCdiLimits => v(5, 4),
            Self::CdiSpecDirs | Self::CdiSpecDirFlag => v(5, 5),
            Self::QuadletInstall => v(5, 6),
        }
    }

    /// What the feature is, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Quadlet => "quadlet units",
            Self::CdiDevices => "CDI devices",
            Self::KeepIdWithIds => "--userns keep-id:uid=,gid=",
            Self::GpusFlag => "--gpus",
            Self::KubeUsernsAnnotation => "the kube play userns annotation",
            Self::KubeCdiLimits => "CDI device names in kube play resource limits",
            Self::CdiSpecDirs => "cdi_spec_dirs in containers.conf",
            Self::CdiSpecDirFlag => "--cdi-spec-dir",
            Self::QuadletInstall => "podman quadlet install",
            Self::NotifyHealthy => "Notify=healthy in quadlet units",
        }
    }
}

/// What one Podman version can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    version: PodmanVersion,
}

impl Capabilities {
    pub fn for_version(version: PodmanVersion) -> Self {
        Self { version }
    }

    pub fn version(&self) -> PodmanVersion {
        self.version
    }

    pub fn has(&self, feature: Feature) -> bool {
        self.version >= feature.since()
    }

    /// Fails with a message naming the version the feature needs.
    pub fn require(&self, feature: Feature) -> Result<()> {
        if self.has(feature) {
            return Ok(());
        }
        Err(Error::env(format!(
            "podman {} is too old for {}: it needs podman {} or newer",
            self.version,
            feature.describe(),
            feature.since()
        ))
        .hint("upgrade podman (on Debian 12, install it from the trixie suite)"))
    }

    /// The highest `cdiVersion` this Podman loads; `None` before CDI support (4.1).
    pub fn max_cdi_version(&self) -> Option<CdiVersion> {
        let version = self.version;
        let max = if version >= v(5, 5) {
            CdiVersion::V1_0_0
        } else if version >= v(5, 2) {
            CdiVersion::V0_8_0
        } else if version >= v(5, 1) {
            CdiVersion::V0_7_0
        } else if version >= v(4, 7) {
            CdiVersion::V0_6_0
        } else if version >= v(4, 3) {
            CdiVersion::V0_5_0
        } else if version >= v(4, 1) {
            CdiVersion::V0_4_0
        } else {
            return None;
        };
        Some(max)
    }

    /// Whether Podman still scans `/run/cdi` (`/var/run/cdi`); 5.5.1 stopped.
    pub fn scans_run_cdi(&self) -> bool {
        self.version < PodmanVersion::new(5, 5, 1)
    }

    /// Whether quadlet reads this unit type.
    pub fn has_unit_type(&self, unit: UnitType) -> bool {
        self.version >= unit.since()
    }

    /// The unit types quadlet reads, in a fixed order.
    pub fn unit_types(&self) -> Vec<UnitType> {
        UnitType::ALL
            .into_iter()
            .filter(|unit| self.has_unit_type(*unit))
            .collect()
    }

    /// Whether quadlet accepts `key` in a unit of this type.
    pub fn has_quadlet_key(&self, unit: UnitType, key: &str) -> bool {
        self.has_unit_type(unit) && self.version >= quadlet_key_since(unit, key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(text: &str) -> Capabilities {
        Capabilities::for_version(text.parse().unwrap())
    }

    #[test]
    fn parses_the_forms_podman_prints() {
        let expect = PodmanVersion::new(5, 4, 2);
        for text in [
            "5.4.2",
            "v5.4.2",
            "podman version 5.4.2",
            "5.4.2-dev",
            "5.4.2~rc1",
        ] {
            assert_eq!(text.parse::<PodmanVersion>(), Ok(expect), "{text}");
        }
        assert_eq!(
            "5.4".parse::<PodmanVersion>(),
            Ok(PodmanVersion::new(5, 4, 0))
        );
        assert_eq!(
            "5".parse::<PodmanVersion>(),
            Ok(PodmanVersion::new(5, 0, 0))
        );
    }

    #[test]
    fn rejects_garbage_versions() {
        for text in ["", "five", "5.x", "5.4.2.1", "-1"] {
            let err = text.parse::<PodmanVersion>().err();
            assert!(err.is_some(), "{text} parsed");
        }
    }

    #[test]
    fn cdi_version_ceiling_follows_podman() {
        let table = [
            ("4.0.3", None),
            ("4.1.0", Some(CdiVersion::V0_4_0)),
            ("4.2.1", Some(CdiVersion::V0_4_0)),
            ("4.3.1", Some(CdiVersion::V0_5_0)),
            ("4.6.2", Some(CdiVersion::V0_5_0)),
            ("4.7.0", Some(CdiVersion::V0_6_0)),
            ("4.9.3", Some(CdiVersion::V0_6_0)),
            ("5.0.3", Some(CdiVersion::V0_6_0)),
            ("5.1.2", Some(CdiVersion::V0_7_0)),
            ("5.2.0", Some(CdiVersion::V0_8_0)),
            ("5.4.2", Some(CdiVersion::V0_8_0)),
            ("5.5.0", Some(CdiVersion::V1_0_0)),
            ("5.8.6", Some(CdiVersion::V1_0_0)),
        ];
        for (version, expected) in table {
            assert_eq!(
                caps(version).max_cdi_version(),
                expected,
                "podman {version}"
            );
        }
    }

    #[test]
    fn cdi_locations_and_kube_play_gpu_keys() {
        assert!(!caps("5.4.2").has(Feature::CdiSpecDirs));
        assert!(!caps("5.4.2").has(Feature::CdiSpecDirFlag));
        assert!(caps("5.5.0").has(Feature::CdiSpecDirs));
        assert!(caps("5.5.0").scans_run_cdi());
        assert!(!caps("5.5.1").scans_run_cdi());
        assert!(!caps("5.3.2").has(Feature::KubeCdiLimits));
        assert!(caps("5.4.0").has(Feature::KubeCdiLimits));
        assert!(!caps("4.9.3").has(Feature::KubeUsernsAnnotation));
        assert!(caps("5.0.0").has(Feature::KubeUsernsAnnotation));
    }

    #[test]
    fn quadlet_unit_types_by_version() {
        assert!(caps("4.3.1").unit_types().is_empty());
        assert_eq!(
            caps("4.4.0").unit_types(),
            [
                UnitType::Container,
                UnitType::Volume,
                UnitType::Network,
                UnitType::Kube
            ]
        );
        assert!(caps("4.8.0").has_unit_type(UnitType::Image));
        assert!(!caps("4.9.3").has_unit_type(UnitType::Pod));
        assert!(caps("5.0.0").has_unit_type(UnitType::Pod));
        assert!(!caps("5.1.0").has_unit_type(UnitType::Build));
        assert_eq!(caps("5.2.0").unit_types(), UnitType::ALL);
    }

    #[test]
    fn quadlet_keys_by_version() {
        let container = UnitType::Container;
        let cases = [
            ("UserNS", "4.4.0", "4.5.0"),
            ("WorkingDir", "4.5.0", "4.6.0"),
            ("AutoUpdate", "4.5.0", "4.6.0"),
            ("ShmSize", "4.6.0", "4.7.0"),
            ("GlobalArgs", "4.7.0", "4.8.0"),
            ("Notify", "4.9.3", "5.0.0"),
            ("Pod", "4.9.3", "5.0.0"),
            ("Entrypoint", "4.9.3", "5.0.0"),
            ("GroupAdd", "5.0.0", "5.1.0"),
        ];
        for (key, without, with) in cases {
            assert!(
                !caps(without).has_quadlet_key(container, key),
                "{key} in {without}"
            );
            assert!(
                caps(with).has_quadlet_key(container, key),
                "{key} in {with}"
            );
        }
        assert!(!caps("5.3.0").has_quadlet_key(UnitType::Pod, "ShmSize"));
        assert!(caps("5.4.0").has_quadlet_key(UnitType::Pod, "ShmSize"));
        assert!(caps("4.4.0").has_quadlet_key(container, "Image"));
        assert!(!caps("4.3.1").has_quadlet_key(container, "Image"));
    }

    #[test]
    fn quadlet_keys_of_the_first_release() {
        // What podlab's .container and .kube units write unconditionally (podlet, which
        // targets 4.4 too, falls back to PodmanArgs= the same way).
        let first = caps("4.4.0");
        for key in [
            "Image",
            "ContainerName",
            "SecurityLabelDisable",
            "AddDevice",
            "Volume",
            "PublishPort",
            "Environment",
            "Label",
            "PodmanArgs",
            "Exec",
            "RunInit",
        ] {
            assert!(first.has_quadlet_key(UnitType::Container, key), "{key}");
        }
        assert!(first.has_quadlet_key(UnitType::Kube, "Yaml"));
        assert!(!first.has_quadlet_key(UnitType::Kube, "GlobalArgs"));
        assert!(caps("4.8.0").has_quadlet_key(UnitType::Kube, "GlobalArgs"));
    }

    #[test]
    fn require_names_the_needed_version() {
        let err = caps("4.3.1")
            .require(Feature::Quadlet)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some(
                "error: podman 4.3.1 is too old for quadlet units: it needs podman 4.4.0 or newer\n\
                 hint: upgrade podman (on Debian 12, install it from the trixie suite)"
            )
        );
        assert!(caps("4.4.0").require(Feature::Quadlet).is_ok());
    }
}
