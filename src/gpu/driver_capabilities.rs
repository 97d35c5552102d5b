//! NVIDIA's driver capabilities (`NVIDIA_DRIVER_CAPABILITIES`): which of the driver's files a
//! container needs.
//!
//! A CDI spec carries every file (it does not know the container that will use it). podlab's
//! own sessions know the image, and take only what the container asks for, as NVIDIA's
//! container runtime does: the session's or else the image's `NVIDIA_DRIVER_CAPABILITIES`,
//! and `compute,utility` when neither sets it (what CUDA, PyTorch and `nvidia-smi` need;
//! NVIDIA's CUDA images ask for exactly that). Each file left out is one bind mount less at
//! every start (`benches/run-overhead.sh`). The lists are libnvidia-container's
//! (`src/nvc_info.c`), with the libraries newer drivers added; a file on none of them (the
//! firmware, IPC sockets, a library this table does not know, or one that more than one
//! capability loads, like `libnvidia-gpucomp`) is always mounted.

use std::fmt;
use std::path::Path;

/// The variable that names the capabilities.
pub const VARIABLE: &str = "NVIDIA_DRIVER_CAPABILITIES";

/// One capability, as `NVIDIA_DRIVER_CAPABILITIES` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverCapability {
    /// CUDA and OpenCL.
    Compute,
    /// `nvidia-smi` and NVML.
    Utility,
    /// NVENC, NVDEC, VDPAU, optical flow.
    Video,
    /// OpenGL, EGL, Vulkan, OptiX, frame capture (headless rendering: MuJoCo, simulators).
    Graphics,
    /// An X server's driver modules.
    Display,
}

const ALL: [DriverCapability; 5] = [
    DriverCapability::Compute,
    DriverCapability::Utility,
    DriverCapability::Video,
    DriverCapability::Graphics,
    DriverCapability::Display,
];

impl DriverCapability {
    fn name(self) -> &'static str {
        match self {
            Self::Compute => "compute",
            Self::Utility => "utility",
            Self::Video => "video",
            Self::Graphics => "graphics",
            Self::Display => "display",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriverCapabilities(u8);

impl Default for DriverCapabilities {
    /// `compute,utility`: NVIDIA's default when the variable is unset or empty.
    fn default() -> Self {
        Self(DriverCapability::Compute.bit() | DriverCapability::Utility.bit())
    }
}

impl DriverCapabilities {
    pub fn all() -> Self {
        Self(
            ALL.iter()
                .fold(0, |bits, capability| bits | capability.bit()),
        )
    }

    /// `NVIDIA_DRIVER_CAPABILITIES`'s value: comma-separated names, or `all`; empty means
    /// the default. `compat32` is accepted and adds nothing (podlab mounts no 32-bit
    /// libraries). An unknown name is the error.
    pub fn parse(value: &str) -> std::result::Result<Self, String> {
        let mut bits = 0;
        for word in value
            .split(',')
            .map(str::trim)
            .filter(|word| !word.is_empty())
        {
            if word == "all" {
                return Ok(Self::all());
            }
            if word == "compat32" {
                continue;
            }
            let capability = ALL
                .iter()
                .find(|capability| capability.name() == word)
                .ok_or_else(|| word.to_owned())?;
            bits |= capability.bit();
        }
        Ok(if value.trim().is_empty() {
            Self::default()
        } else {
            Self(bits)
        })
    }

    pub fn contains(self, capability: DriverCapability) -> bool {
        self.0 & capability.bit() != 0
    }

    /// Whether a container with these capabilities gets the driver file mounted at
    /// `container_path` (a library, binary, config file or device node).
    pub fn wants(self, container_path: &Path) -> bool {
        capability_of(container_path).is_none_or(|capability| self.contains(capability))
    }
}

impl fmt::Display for DriverCapabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Self::all() {
            return f.write_str("all");
        }
        let names: Vec<&str> = ALL
            .iter()
            .filter(|capability| self.contains(**capability))
            .map(|capability| capability.name())
            .collect();
        f.write_str(&names.join(","))
    }
}

/// Libraries by the part of their file name before `.so`.
const LIBRARIES: [(&str, DriverCapability); 38] = {
    use DriverCapability::{Compute, Display, Graphics, Utility, Video};
    [
        ("libcuda", Compute),
        ("libcudadebugger", Compute),
        ("libnvidia-opencl", Compute),
        ("libnvidia-ptxjitcompiler", Compute),
        ("libnvidia-fatbinaryloader", Compute),
        ("libnvidia-allocator", Compute),
        ("libnvidia-compiler", Compute),
        ("libnvidia-pkcs11", Compute),
        ("libnvidia-pkcs11-openssl3", Compute),
        ("libnvidia-nvvm", Compute),
        ("libnvidia-ml", Utility),
        ("libnvidia-cfg", Utility),
        ("libnvidia-nscq", Utility),
        ("libnvidia-sandboxutils", Utility),
        ("libvdpau_nvidia", Video),
        ("libnvidia-encode", Video),
        ("libnvidia-opticalflow", Video),
        ("libnvcuvid", Video),
        ("libnvidia-eglcore", Graphics),
        ("libnvidia-glcore", Graphics),
        ("libnvidia-tls", Graphics),
        ("libnvidia-glsi", Graphics),
        ("libnvidia-fbc", Graphics),
        ("libnvidia-ifr", Graphics),
        ("libnvidia-rtcore", Graphics),
        ("libnvoptix", Graphics),
        ("libGLX_nvidia", Graphics),
        ("libEGL_nvidia", Graphics),
        ("libGLESv2_nvidia", Graphics),
        ("libGLESv1_CM_nvidia", Graphics),
        ("libnvidia-glvkspirv", Graphics),
        ("libnvidia-cbl", Graphics),
        ("libnvidia-vksc-core", Graphics),
        ("libnvidia-ngx", Graphics),
        ("libnvidia-api", Graphics),
        ("libglxserver_nvidia", Display),
        ("libnvidia-wfb", Display),
        ("nvidia_drv", Display),
    ]
};

/// The capability a driver file serves, by where it is mounted; `None`: every container
/// gets it.
pub fn capability_of(container_path: &Path) -> Option<DriverCapability> {
    use DriverCapability::{Compute, Graphics, Utility};
    let text = container_path.to_str()?;
    let name = container_path.file_name()?.to_str()?;
    let under = |dirs: &[&str]| dirs.iter().any(|dir| Path::new(text).starts_with(dir));
    if under(&["/dev/dri"]) {
        return Some(Graphics);
    }
    if under(&["/etc/OpenCL"]) {
        return Some(Compute);
    }
    if under(&[
        "/etc/vulkan",
        "/usr/share/vulkan",
        "/usr/share/vulkansc",
        "/usr/share/glvnd",
        "/usr/share/egl",
        "/usr/share/nvidia",
    ]) || container_path
        .parent()
        .is_some_and(|parent| parent.ends_with("gbm"))
        || name.starts_with("libnvidia-egl-")
    {
        return Some(Graphics);
    }
    match name {
        "nvidia-smi" | "nvidia-debugdump" | "nvidia-persistenced" => return Some(Utility),
        "nvidia-cuda-mps-control" | "nvidia-cuda-mps-server" => return Some(Compute),
        _ => {}
    }
    let stem = name.split(".so").next()?;
    LIBRARIES
        .iter()
        .find(|(library, _)| *library == stem)
        .map(|(_, capability)| *capability)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DriverCapability::{Compute, Display, Graphics, Utility, Video};

    #[test]
    fn the_variable_parses_as_nvidias_runtime_reads_it() {
        assert_eq!(
            DriverCapabilities::parse("").unwrap().to_string(),
            "compute,utility"
        );
        assert_eq!(
            DriverCapabilities::parse(" ").unwrap(),
            DriverCapabilities::default()
        );
        assert_eq!(
            DriverCapabilities::parse("all").unwrap(),
            DriverCapabilities::all()
        );
        assert_eq!(
            DriverCapabilities::parse("video,all").unwrap().to_string(),
            "all"
        );
        let parsed = DriverCapabilities::parse("graphics, compute,compat32").unwrap();
        assert!(parsed.contains(Graphics) && parsed.contains(Compute));
        assert!(!parsed.contains(Utility) && !parsed.contains(Video));
        assert_eq!(parsed.to_string(), "compute,graphics");
        assert_eq!(
            DriverCapabilities::parse("compute,gpu"),
            Err("gpu".to_owned())
        );
        assert_eq!(
            DriverCapabilities::parse("Compute"),
            Err("Compute".to_owned())
        );
    }

    #[test]
    fn driver_files_are_classified_as_libnvidia_container_lists_them() {
        let of = |path: &str| capability_of(Path::new(path));
        for (path, capability) in [
            ("/usr/lib/x86_64-linux-gnu/libcuda.so.1", Some(Compute)),
            ("/usr/lib64/libcuda.so", Some(Compute)),
            ("/usr/lib64/libnvidia-nvvm.so.4", Some(Compute)),
            (
                "/usr/lib64/libnvidia-pkcs11-openssl3.so.550.163.01",
                Some(Compute),
            ),
            ("/etc/OpenCL/vendors/nvidia.icd", Some(Compute)),
            ("/usr/bin/nvidia-cuda-mps-server", Some(Compute)),
            ("/usr/lib64/libnvidia-ml.so", Some(Utility)),
            ("/usr/bin/nvidia-smi", Some(Utility)),
            ("/usr/lib64/vdpau/libvdpau_nvidia.so.1", Some(Video)),
            ("/usr/lib64/libnvcuvid.so.1", Some(Video)),
            ("/usr/lib64/libEGL_nvidia.so.0", Some(Graphics)),
            ("/usr/lib64/libnvidia-egl-gbm.so.1", Some(Graphics)),
            ("/usr/lib64/gbm/nvidia-drm_gbm.so", Some(Graphics)),
            (
                "/usr/share/glvnd/egl_vendor.d/10_nvidia.json",
                Some(Graphics),
            ),
            ("/usr/share/vulkan/icd.d/nvidia_icd.json", Some(Graphics)),
            ("/usr/share/nvidia/nvoptix.bin", Some(Graphics)),
            ("/dev/dri/renderD128", Some(Graphics)),
            (
                "/usr/lib64/xorg/modules/drivers/nvidia_drv.so",
                Some(Display),
            ),
            // Every container: firmware, sockets, shared or unknown libraries, device nodes.
            ("/lib/firmware/nvidia/550.163.01/gsp_ga10x.bin", None),
            ("/run/nvidia-persistenced/socket", None),
            ("/usr/lib64/libnvidia-gpucomp.so.550.163.01", None),
            ("/usr/lib64/libnvidia-future.so.1", None),
            ("/dev/nvidia-uvm", None),
            ("/dev/nvidia0", None),
        ] {
            assert_eq!(of(path), capability, "{path}");
        }
        let default = DriverCapabilities::default();
        assert!(default.wants(Path::new("/usr/lib64/libcuda.so.1")));
        assert!(default.wants(Path::new("/lib/firmware/nvidia/550.163.01/gsp_ga10x.bin")));
        assert!(!default.wants(Path::new("/usr/lib64/libnvidia-encode.so.1")));
        assert!(DriverCapabilities::all().wants(Path::new("/usr/lib64/libnvidia-encode.so.1")));
    }
}
