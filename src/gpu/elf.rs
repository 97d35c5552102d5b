//! Reads a shared library's `DT_SONAME`, the name the dynamic loader and `ldconfig` know it by,
//! and the word size and machine it was built for. Driver discovery checks that each NVIDIA
//! library it found is one podlab's own architecture loads (Fedora ships 32-bit copies under
//! the same names) and really is the one its name claims (e.g. `libcuda.so.1`), for some forty
//! libraries inside a command that must stay fast, and `libcuda.so` alone is about 30 MB. So
//! nothing is mapped or read whole: one open and a few positioned reads fetch the ELF header,
//! the program headers, the `PT_DYNAMIC` segment and the name itself.
//!
//! ELF32 and ELF64, little- and big-endian, are understood; every offset read from the file is
//! checked, so a truncated or hostile file gives an error, never a panic.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The file could not be read, is not ELF, or its dynamic section points nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfError(pub String);

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ElfError {}

const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
const DT_SONAME: u64 = 14;
/// `e_phnum` value meaning "the real count is in section header 0"; never used by libraries.
const PN_XNUM: u16 = 0xffff;
/// The longest `PT_DYNAMIC` read; real libraries use well under 1 KiB.
const MAX_DYNAMIC: u64 = 64 * 1024;
/// The first read: the ELF header and, in practice, the program headers.
const HEAD_LEN: u64 = 1024;
/// The longest soname read.
const MAX_SONAME: u64 = 256;

/// The word size and machine an ELF file is built for, as its header's first 20 bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// `ELFCLASS64`.
    pub wide: bool,
    /// `e_machine`, in the file's byte order.
    pub machine: u16,
}

impl Target {
    /// From the first 20 bytes of a file; `None` when it is shorter or not ELF.
    fn of(header: &[u8]) -> Option<Self> {
        if !header.starts_with(b"\x7fELF") {
            return None;
        }
        let machine = Layout::bytes(header, 18)?;
        Some(Self {
            wide: header.get(4) == Some(&2),
            machine: if header.get(5) == Some(&2) {
                u16::from_be_bytes(machine)
            } else {
                u16::from_le_bytes(machine)
            },
        })
    }

    /// Whether podlab's own processes could load it: the same word size and, on the
    /// architectures podlab knows, the same machine.
    pub fn is_native(self) -> bool {
        let native_machine = match std::env::consts::ARCH {
            "x86_64" => Some(62),
            "aarch64" => Some(183),
            "powerpc64" => Some(21),
            _ => None,
        };
        self.wide == cfg!(target_pointer_width = "64")
            && native_machine.is_none_or(|machine| machine == self.machine)
    }
}

/// What one look at a file tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// `None` when the file cannot be read, is shorter than the 20 bytes needed, or is not ELF.
    pub target: Option<Target>,
    /// As [`read_soname`].
    pub soname: Result<Option<String>, ElfError>,
}

/// The file's [`Target`] and `DT_SONAME`, from one open.
pub fn inspect(path: &Path) -> Inspection {
    let mut target = None;
    let soname = File::open(path)
        .map_err(|e| format!("cannot open: {e}"))
        .and_then(|file| {
            // One read usually covers the ELF header and the program headers that follow it.
            let header = read_up_to(&file, 0, HEAD_LEN)
                .map_err(|e| format!("cannot read the elf header: {e}"))?;
            target = Target::of(&header);
            soname_of(&file, &header)
        })
        .map_err(|what| ElfError(format!("{}: {what}", path.display())));
    Inspection { target, soname }
}

/// The library's `DT_SONAME`, or `None` for an ELF file without one (e.g. an executable).
pub fn read_soname(path: &Path) -> Result<Option<String>, ElfError> {
    inspect(path).soname
}

/// [`read_soname`] on an open file whose first [`HEAD_LEN`] bytes (or all, when shorter) are
/// `header`; the error says what is wrong, without the path.
fn soname_of(file: &File, header: &[u8]) -> Result<Option<String>, String> {
    let (layout, segments) = program_headers(file, header)?;
    let Some(dynamic) = segments.iter().find(|s| s.kind == PT_DYNAMIC) else {
        return Ok(None);
    };
    let dynamic = read_at(file, dynamic.offset, dynamic.filesz.min(MAX_DYNAMIC))
        .map_err(|e| format!("cannot read the dynamic segment: {e}"))?;

    let (mut strtab, mut strsz, mut soname) = (None, None, None);
    for raw in dynamic.chunks_exact(layout.dyn_len()) {
        let (tag, value) = layout.dyn_entry(raw).ok_or("truncated dynamic entry")?;
        match tag {
            DT_NULL => break,
            DT_STRTAB => strtab = Some(value),
            DT_STRSZ => strsz = Some(value),
            DT_SONAME => soname = Some(value),
            _ => {}
        }
    }
    let Some(soname) = soname else {
        return Ok(None);
    };
    let strtab = strtab.ok_or("has DT_SONAME but no DT_STRTAB")?;
    let strtab = segments
        .iter()
        .filter(|s| s.kind == PT_LOAD)
        .find_map(|s| s.file_offset(strtab))
        .ok_or("DT_STRTAB is outside every loaded segment")?;
    let room = match strsz {
        Some(size) if soname >= size => return Err("DT_SONAME is past DT_STRSZ".into()),
        Some(size) => (size - soname).min(MAX_SONAME),
        None => MAX_SONAME,
    };
    let at = strtab
        .checked_add(soname)
        .ok_or("DT_SONAME offset overflows")?;
    let chunk = read_up_to(file, at, room).map_err(|e| format!("cannot read the soname: {e}"))?;
    let len = chunk
        .iter()
        .position(|&b| b == 0)
        .ok_or("soname is not terminated")?;
    let name = chunk.get(..len).unwrap_or_default();
    String::from_utf8(name.to_vec())
        .map(Some)
        .map_err(|_| "soname is not utf-8".into())
}

/// The file's class and byte order, and its program headers; `header` is the file's start.
fn program_headers(file: &File, header: &[u8]) -> Result<(Layout, Vec<Segment>), String> {
    if !header.starts_with(b"\x7fELF") {
        return Err("not an elf file".into());
    }
    let layout = match header.get(4..6) {
        Some([1, 1]) => Layout::ELF32_LE,
        Some([1, 2]) => Layout::ELF32_BE,
        Some([2, 1]) => Layout::ELF64_LE,
        Some([2, 2]) => Layout::ELF64_BE,
        _ => return Err("unknown elf class or byte order".into()),
    };
    let (phoff, phentsize, phnum) = if layout.wide {
        (32, 54, 56)
    } else {
        (28, 42, 44)
    };
    let truncated = "truncated elf header";
    let phoff = layout.word(header, phoff).ok_or(truncated)?;
    let phentsize = layout.half(header, phentsize).ok_or(truncated)?;
    let phnum = layout.half(header, phnum).ok_or(truncated)?;
    if phnum == PN_XNUM {
        return Err("extended program header count is not supported".into());
    }
    if usize::from(phentsize) != layout.phdr_len() {
        return Err("unexpected program header size".into());
    }

    let table_len = u64::from(phentsize) * u64::from(phnum);
    let in_header = usize::try_from(phoff).ok().and_then(|start| {
        let end = start.checked_add(usize::try_from(table_len).ok()?)?;
        header.get(start..end)
    });
    let read_table;
    let table = if let Some(table) = in_header {
        table
    } else {
        read_table = read_at(file, phoff, table_len)
            .map_err(|e| format!("cannot read the program headers: {e}"))?;
        &read_table
    };
    let segments = table
        .chunks_exact(usize::from(phentsize))
        .map(|raw| layout.segment(raw).ok_or("truncated program header"))
        .collect::<Result<_, _>>()?;
    Ok((layout, segments))
}

/// Exactly `len` bytes at `offset`; a short file is an error.
fn read_at(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Up to `len` bytes at `offset`, fewer at the end of the file.
fn read_up_to(file: &File, offset: u64, len: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0; usize::try_from(len).map_err(io::Error::other)?];
    let mut filled = 0;
    while let Some(rest) = buf.get_mut(filled..).filter(|rest| !rest.is_empty()) {
        let at = offset
            .checked_add(filled as u64)
            .ok_or_else(|| io::Error::other("offset overflows"))?;
        match file.read_at(rest, at) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

/// One program header, reduced to what finding the soname needs.
#[derive(Debug)]
struct Segment {
    kind: u32,
    offset: u64,
    vaddr: u64,
    filesz: u64,
}

impl Segment {
    /// Where virtual address `addr` lies in the file, if this segment holds it.
    fn file_offset(&self, addr: u64) -> Option<u64> {
        let delta = addr.checked_sub(self.vaddr)?;
        if delta < self.filesz {
            self.offset.checked_add(delta)
        } else {
            None
        }
    }
}

/// ELF class and byte order: how to decode every structure after `e_ident`.
#[derive(Debug, Clone, Copy)]
struct Layout {
    wide: bool,
    big: bool,
}

impl Layout {
    const ELF32_LE: Self = Self {
        wide: false,
        big: false,
    };
    const ELF32_BE: Self = Self {
        wide: false,
        big: true,
    };
    const ELF64_LE: Self = Self {
        wide: true,
        big: false,
    };
    const ELF64_BE: Self = Self {
        wide: true,
        big: true,
    };

    fn phdr_len(self) -> usize {
        if self.wide { 56 } else { 32 }
    }

    fn dyn_len(self) -> usize {
        if self.wide { 16 } else { 8 }
    }

    fn bytes<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
        bytes.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn half(self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw = Self::bytes(bytes, at)?;
        Some(if self.big {
            u16::from_be_bytes(raw)
        } else {
            u16::from_le_bytes(raw)
        })
    }

    fn u32(self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw = Self::bytes(bytes, at)?;
        Some(if self.big {
            u32::from_be_bytes(raw)
        } else {
            u32::from_le_bytes(raw)
        })
    }

    /// An address, offset or size: 4 bytes in ELF32, 8 in ELF64.
    fn word(self, bytes: &[u8], at: usize) -> Option<u64> {
        if !self.wide {
            return self.u32(bytes, at).map(u64::from);
        }
        let raw = Self::bytes(bytes, at)?;
        Some(if self.big {
            u64::from_be_bytes(raw)
        } else {
            u64::from_le_bytes(raw)
        })
    }

    fn segment(self, raw: &[u8]) -> Option<Segment> {
        let kind = self.u32(raw, 0)?;
        Some(if self.wide {
            Segment {
                kind,
                offset: self.word(raw, 8)?,
                vaddr: self.word(raw, 16)?,
                filesz: self.word(raw, 32)?,
            }
        } else {
            Segment {
                kind,
                offset: self.word(raw, 4)?,
                vaddr: self.word(raw, 8)?,
                filesz: self.word(raw, 16)?,
            }
        })
    }

    /// `(d_tag, d_val)`; tags are signed in the file but the ones read here are small.
    fn dyn_entry(self, raw: &[u8]) -> Option<(u64, u64)> {
        let half = self.dyn_len() / 2;
        Some((self.word(raw, 0)?, self.word(raw, half)?))
    }
}

/// Builders of small ELF files for tests across the crate.
#[cfg(test)]
pub mod test_support {
    pub(crate) const EM_X86_64: u16 = 62;
    pub(crate) const EM_386: u16 = 3;

    /// A minimal x86_64 ELF64 little-endian shared object named `soname`: one `PT_LOAD`
    /// covering the whole file, a `PT_DYNAMIC` with `DT_STRTAB`, `DT_STRSZ`, `DT_SONAME` and
    /// `DT_NULL`, and the string table. `ldconfig` accepts it and caches it under `soname`.
    pub fn shared_object(soname: &str) -> Vec<u8> {
        build(soname, true, false, EM_X86_64)
    }

    /// A little-endian x86_64 (`wide`) or i386 shared object with no `DT_SONAME`, as X and GBM
    /// modules are: [`build`]'s file with that entry turned into a `DT_DEBUG`.
    pub fn without_soname(wide: bool) -> Vec<u8> {
        let mut out = build("", wide, false, if wide { EM_X86_64 } else { EM_386 });
        let (ehdr, phdr, dyn_len) = if wide { (64, 56, 16) } else { (52, 32, 8) };
        // The third dynamic entry is DT_SONAME (14); its tag is the entry's first word.
        let tag = ehdr + 2 * phdr + 2 * dyn_len;
        out[tag] = 21;
        out
    }

    /// The same file in any class and byte order, for `machine`.
    pub(crate) fn build(soname: &str, wide: bool, big: bool, machine: u16) -> Vec<u8> {
        let (ehdr, phdr, dyn_len) = if wide { (64, 56, 16) } else { (52, 32, 8) };
        let dynamic = ehdr + 2 * phdr;
        let strtab = dynamic + 4 * dyn_len;
        let strsz = soname.len() as u64 + 2;
        let total = strtab + strsz;

        let mut out = Vec::new();
        let half = |out: &mut Vec<u8>, v: u16| {
            out.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        };
        let word = |out: &mut Vec<u8>, v: u32| {
            out.extend_from_slice(&if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            });
        };
        let xword = |out: &mut Vec<u8>, v: u64| {
            if wide {
                out.extend_from_slice(&if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
            } else {
                let v = u32::try_from(v).unwrap();
                out.extend_from_slice(&if big {
                    v.to_be_bytes()
                } else {
                    v.to_le_bytes()
                });
            }
        };

        // e_ident: magic, class, data, version 1, System V ABI, padding.
        out.extend_from_slice(b"\x7fELF");
        out.extend_from_slice(&[if wide { 2 } else { 1 }, if big { 2 } else { 1 }, 1]);
        out.resize(16, 0);
        half(&mut out, 3); // e_type: ET_DYN
        half(&mut out, machine);
        word(&mut out, 1); // e_version
        xword(&mut out, 0); // e_entry
        xword(&mut out, ehdr); // e_phoff
        xword(&mut out, 0); // e_shoff: no section headers
        word(&mut out, 0); // e_flags
        half(&mut out, u16::try_from(ehdr).unwrap());
        half(&mut out, u16::try_from(phdr).unwrap());
        half(&mut out, 2); // e_phnum
        half(&mut out, if wide { 64 } else { 40 }); // e_shentsize
        half(&mut out, 0); // e_shnum
        half(&mut out, 0); // e_shstrndx
        assert_eq!(out.len() as u64, ehdr);

        // (p_type, p_flags, offset = vaddr, size, p_align); the file is mapped at address 0.
        for (kind, flags, offset, size, align) in [
            (1, 4, 0, total, 0x1000),
            (2, 6, dynamic, strtab - dynamic, 8),
        ] {
            word(&mut out, kind);
            if wide {
                word(&mut out, flags);
            }
            xword(&mut out, offset); // p_offset
            xword(&mut out, offset); // p_vaddr
            xword(&mut out, offset); // p_paddr
            xword(&mut out, size); // p_filesz
            xword(&mut out, size); // p_memsz
            if !wide {
                word(&mut out, flags);
            }
            xword(&mut out, align);
        }
        assert_eq!(out.len() as u64, dynamic);

        for (tag, value) in [(5, strtab), (10, strsz), (14, 1), (0, 0)] {
            xword(&mut out, tag);
            xword(&mut out, value);
        }
        assert_eq!(out.len() as u64, strtab);

        out.push(0);
        out.extend_from_slice(soname.as_bytes());
        out.push(0);
        assert_eq!(out.len() as u64, total);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{build, shared_object};
    use super::*;
    use std::fs;
    use std::path::PathBuf;
    use std::process::Command;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn host_libraries() {
        for (lib, soname) in [
            ("/lib/x86_64-linux-gnu/libc.so.6", "libc.so.6"),
            ("/lib/x86_64-linux-gnu/libm.so.6", "libm.so.6"),
        ] {
            assert_eq!(
                read_soname(Path::new(lib)).unwrap().as_deref(),
                Some(soname)
            );
        }
        // A versioned file name resolves to the soname, not the file name.
        let libz = fs::canonicalize("/lib/x86_64-linux-gnu/libz.so.1").unwrap();
        assert_eq!(read_soname(&libz).unwrap().as_deref(), Some("libz.so.1"));
        // Executables (PIE or not) have no soname.
        assert_eq!(read_soname(Path::new("/bin/ls")).unwrap(), None);
    }

    #[test]
    fn test_support_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "libfoo.so.1.2.3", &shared_object("libfoo.so.1"));
        assert_eq!(read_soname(&path).unwrap().as_deref(), Some("libfoo.so.1"));
    }

    #[test]
    fn inspect_tells_the_target_from_one_read() {
        let dir = tempfile::tempdir().unwrap();
        let native = inspect(&write(dir.path(), "a.so", &shared_object("liba.so.1")));
        assert_eq!(native.soname, Ok(Some("liba.so.1".to_owned())));
        assert_eq!(
            native.target,
            Some(Target {
                wide: true,
                machine: 62
            })
        );
        // EM_386: Fedora's 32-bit copies.
        let i386 = inspect(&write(
            dir.path(),
            "b.so",
            &build("libb.so.1", false, false, 3),
        ));
        assert_eq!(i386.soname, Ok(Some("libb.so.1".to_owned())));
        let target = i386.target.unwrap();
        assert!(!target.wide && target.machine == 3 && !target.is_native());
        if std::env::consts::ARCH == "x86_64" {
            assert!(native.target.unwrap().is_native());
            let aarch64 = build("libc.so.1", true, false, 183);
            let aarch64 = inspect(&write(dir.path(), "c.so", &aarch64));
            assert!(!aarch64.target.unwrap().is_native());
        }
        // A broken ELF file still has a target; too short or not ELF has none.
        let mut truncated = shared_object("libd.so.1");
        truncated.truncate(40);
        let truncated = inspect(&write(dir.path(), "d.so", &truncated));
        assert!(truncated.soname.is_err() && truncated.target.is_some());
        for bytes in [&b"\x7fELF\x02\x01"[..], b"#!/bin/sh\nexit 0\n"] {
            let inspected = inspect(&write(dir.path(), "e.so", bytes));
            assert!(inspected.soname.is_err() && inspected.target.is_none());
        }
        let missing = inspect(&dir.path().join("missing.so"));
        assert!(missing.soname.is_err() && missing.target.is_none());
        assert_eq!(read_soname(&dir.path().join("missing.so")), missing.soname);
    }

    #[test]
    fn every_class_and_byte_order() {
        let dir = tempfile::tempdir().unwrap();
        for wide in [false, true] {
            for big in [false, true] {
                let bytes = build("libbar.so.7", wide, big, 0);
                let path = write(dir.path(), "libbar.so", &bytes);
                assert_eq!(
                    read_soname(&path).unwrap().as_deref(),
                    Some("libbar.so.7"),
                    "wide {wide} big {big}"
                );
            }
        }
    }

    #[test]
    fn ldconfig_accepts_test_support_objects() {
        let Some(ldconfig) = ["/usr/sbin/ldconfig", "/sbin/ldconfig"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| which::which("ldconfig").ok())
        else {
            eprintln!("skipping: no ldconfig on this host");
            return;
        };
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::create_dir_all(root.path().join("opt/nv")).unwrap();
        fs::write(root.path().join("etc/ld.so.conf"), "/opt/nv\n").unwrap();
        let sonames = ["libcuda.so.1", "libfoo.so.1", "libnvidia-ml.so.1"];
        for soname in sonames {
            let file = format!("{soname}.2.3");
            write(&root.path().join("opt/nv"), &file, &shared_object(soname));
        }
        let status = Command::new(&ldconfig)
            .arg("-r")
            .arg(root.path())
            .status()
            .unwrap();
        assert!(status.success());

        let bytes = fs::read(root.path().join("etc/ld.so.cache")).unwrap();
        let mut found: Vec<_> = crate::gpu::ldcache::parse(&bytes)
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.path.to_str().unwrap().to_owned(), e.flags))
            .collect();
        found.sort_unstable();
        let x86_64_libc6 = 0x0303;
        let expected: Vec<_> = sonames
            .iter()
            .map(|s| (s.to_string(), format!("/opt/nv/{s}"), x86_64_libc6))
            .collect();
        assert_eq!(found, expected);
        // ldconfig also made the soname links, which resolve to the same objects.
        for soname in sonames {
            let link = root.path().join("opt/nv").join(soname);
            assert_eq!(read_soname(&link).unwrap().as_deref(), Some(soname));
        }
    }

    #[test]
    fn not_elf_or_broken_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.so");
        let err = read_soname(&missing).unwrap_err().to_string();
        assert!(err.starts_with(&missing.display().to_string()), "{err}");

        let text = write(dir.path(), "libtext.so", b"INPUT(libc.so.6)\n");
        assert_eq!(
            read_soname(&text).unwrap_err().to_string(),
            format!("{}: not an elf file", text.display())
        );
        let long_text = write(dir.path(), "libtext2.so", &[b'x'; 100]);
        assert_eq!(
            read_soname(&long_text).unwrap_err().to_string(),
            format!("{}: not an elf file", long_text.display())
        );

        let good = shared_object("libtrunc.so.1");
        for len in 0..good.len() {
            let path = write(dir.path(), "libtrunc.so", &good[..len]);
            assert!(read_soname(&path).is_err(), "length {len}");
        }
    }

    #[test]
    fn garbage_never_panics() {
        let dir = tempfile::tempdir().unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut noise = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let originals = [
            build("libx.so.1", true, false, 62),
            build("libx.so.1", false, true, 0),
        ];
        let path = dir.path().join("libgarbage.so");
        for original in &originals {
            for _ in 0..3000 {
                let mut bytes = original.clone();
                for _ in 0..=(noise() % 6) {
                    let at = usize::try_from(noise()).unwrap() % bytes.len();
                    bytes[at] = noise().to_le_bytes()[0];
                }
                fs::write(&path, &bytes).unwrap();
                let _ = read_soname(&path);
            }
        }
        for len in [0, 4, 16, 63, 64, 200, 4096] {
            let mut bytes = b"\x7fELF\x02\x01".to_vec();
            bytes.extend((0..len).map(|_| noise().to_le_bytes()[0]));
            fs::write(&path, &bytes).unwrap();
            let _ = read_soname(&path);
        }
    }
}
