//! A reader for glibc's `/etc/ld.so.cache`, the table the dynamic loader uses to turn a
//! library name such as `libcuda.so.1` into a path. Driver discovery needs that same answer to
//! find the NVIDIA user-space libraries the host really loads, and running `ldconfig -p` for it
//! would cost a process per call; the file is small and its format is stable, so it is parsed
//! here directly, without trusting a single offset in it.
//!
//! Two layouts exist: the old `ld.so-1.7.0` table (written alone by `ldconfig -c old`, or
//! followed by the new table with `-c compat`) and the new `glibc-ld.so.cache1.1` table, which
//! modern glibc writes alone. When both are present the new one wins, as in the loader.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

/// One library the cache knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheEntry {
    /// The key the loader looks up, e.g. `libcuda.so.1`.
    pub name: String,
    /// The path as stored, e.g. `/usr/lib/x86_64-linux-gnu/libcuda.so.1`.
    pub path: PathBuf,
    /// glibc's `FLAG_*` bits: library kind and architecture (e.g. `0x303` for x86-64 libc6).
    pub flags: i32,
}

/// The cache is not in a format this reader understands, or points outside itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LdCacheError(pub String);

impl fmt::Display for LdCacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed ld.so.cache: {}", self.0)
    }
}

impl std::error::Error for LdCacheError {}

const OLD_MAGIC: &[u8] = b"ld.so-1.7.0";
/// `magic[11]`, padding to 4, `u32 nlibs`.
const OLD_HEADER_LEN: usize = 16;
/// `i32 flags, u32 key, u32 value`.
const OLD_ENTRY_LEN: usize = 12;

const NEW_MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// `magic[20]`, `u32 nlibs`, `u32 len_strings`, `u8 flags`, padding, `u32 extension_offset`,
/// `u32 unused[3]`.
const NEW_HEADER_LEN: usize = 48;
/// `i32 flags, u32 key, u32 value, u32 osversion, u64 hwcap`.
const NEW_ENTRY_LEN: usize = 24;
/// `alignof(struct cache_file_new)` on 64-bit hosts; 32-bit ones align to 4, tried second.
const NEW_ALIGN: usize = 8;

/// Parses a whole cache file. Every entry is returned in file order, including duplicates of a
/// name (e.g. for other architectures or `glibc-hwcaps` subdirectories).
pub fn parse(bytes: &[u8]) -> Result<Vec<CacheEntry>, LdCacheError> {
    if bytes.starts_with(NEW_MAGIC) {
        return parse_new(bytes);
    }
    if !bytes.starts_with(OLD_MAGIC) {
        return Err(err("unknown magic"));
    }
    let nlibs = u32_at(bytes, OLD_MAGIC.len() + 1, Endian::Native)
        .ok_or_else(|| err("truncated header"))?;
    let entries_end = usize::try_from(nlibs)
        .ok()
        .and_then(|n| n.checked_mul(OLD_ENTRY_LEN))
        .and_then(|len| len.checked_add(OLD_HEADER_LEN))
        .filter(|&end| end <= bytes.len())
        .ok_or_else(|| err("entry table runs past the end of the file"))?;
    for start in [entries_end.next_multiple_of(NEW_ALIGN), entries_end] {
        if let Some(new) = bytes
            .get(start..)
            .filter(|rest| rest.starts_with(NEW_MAGIC))
        {
            return parse_new(new);
        }
    }
    // Old-format string offsets count from the end of the entry table.
    let strings = bytes.get(entries_end..).unwrap_or_default();
    let table = bytes.get(OLD_HEADER_LEN..entries_end).unwrap_or_default();
    table
        .chunks_exact(OLD_ENTRY_LEN)
        .map(|raw| entry(raw, strings, Endian::Native))
        .collect()
}

/// Parses a new-format table; `bytes` starts at its header, which string offsets count from.
fn parse_new(bytes: &[u8]) -> Result<Vec<CacheEntry>, LdCacheError> {
    let endian = match bytes.get(28).map(|flags| flags & 3) {
        None => return Err(err("truncated header")),
        Some(0) => Endian::Native,
        Some(2) => Endian::Little,
        Some(3) => Endian::Big,
        Some(_) => return Err(err("invalid endianness flag")),
    };
    let nlibs = u32_at(bytes, 20, endian).ok_or_else(|| err("truncated header"))?;
    let table = usize::try_from(nlibs)
        .ok()
        .and_then(|n| n.checked_mul(NEW_ENTRY_LEN))
        .and_then(|len| len.checked_add(NEW_HEADER_LEN))
        .and_then(|end| bytes.get(NEW_HEADER_LEN..end))
        .ok_or_else(|| err("entry table runs past the end of the file"))?;
    table
        .chunks_exact(NEW_ENTRY_LEN)
        .map(|raw| entry(raw, bytes, endian))
        .collect()
}

/// Decodes the `flags, key, value` prefix both entry layouts share.
fn entry(raw: &[u8], strings: &[u8], endian: Endian) -> Result<CacheEntry, LdCacheError> {
    let field = |at| u32_at(raw, at, endian).ok_or_else(|| err("truncated entry"));
    let flags = i32::from_ne_bytes(field(0)?.to_ne_bytes());
    let name = string_at(strings, field(4)?)?;
    let path = string_at(strings, field(8)?)?;
    Ok(CacheEntry {
        name: String::from_utf8_lossy(name).into_owned(),
        path: PathBuf::from(OsStr::from_bytes(path)),
        flags,
    })
}

/// The NUL-terminated string at `offset`, without its terminator.
fn string_at(strings: &[u8], offset: u32) -> Result<&[u8], LdCacheError> {
    let tail = usize::try_from(offset)
        .ok()
        .and_then(|at| strings.get(at..))
        .ok_or_else(|| {
            err(&format!(
                "string offset {offset} is past the end of the file"
            ))
        })?;
    let len = tail
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| err(&format!("string at offset {offset} is not terminated")))?;
    Ok(tail.get(..len).unwrap_or_default())
}

#[derive(Debug, Clone, Copy)]
enum Endian {
    Native,
    Little,
    Big,
}

fn u32_at(bytes: &[u8], at: usize, endian: Endian) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(match endian {
        Endian::Native => u32::from_ne_bytes(raw),
        Endian::Little => u32::from_le_bytes(raw),
        Endian::Big => u32::from_be_bytes(raw),
    })
}

fn err(what: &str) -> LdCacheError {
    LdCacheError(what.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::fs;
    use std::path::Path;
    use std::process::Command;

    /// glibc's ldconfig; `None` (after saying why) on a host without one.
    fn ldconfig() -> Option<PathBuf> {
        let found = ["/usr/sbin/ldconfig", "/sbin/ldconfig"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .or_else(|| which::which("ldconfig").ok());
        if found.is_none() {
            eprintln!("skipping: no ldconfig on this host");
        }
        found
    }

    /// The (name, path) pairs `ldconfig -p` prints, for the default or the given cache.
    fn printed(ldconfig: &Path, cache: Option<&Path>) -> BTreeSet<(String, PathBuf)> {
        let mut cmd = Command::new(ldconfig);
        cmd.arg("-p");
        if let Some(cache) = cache {
            cmd.arg("-C").arg(cache);
        }
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|line| line.strip_prefix('\t'))
            .map(|line| {
                let (name, _) = line.split_once(" (").unwrap();
                let (_, path) = line.rsplit_once(" => ").unwrap();
                (name.to_owned(), PathBuf::from(path))
            })
            .collect()
    }

    fn pairs(entries: &[CacheEntry]) -> BTreeSet<(String, PathBuf)> {
        entries
            .iter()
            .map(|e| (e.name.clone(), e.path.clone()))
            .collect()
    }

    /// A root holding `lib/` with copies of two real libraries and an `etc/ld.so.conf`
    /// naming it, with the cache built by `ldconfig -r ROOT -c FORMAT`.
    fn built_root(ldconfig: &Path, format: &str) -> (tempfile::TempDir, Vec<u8>) {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("etc")).unwrap();
        fs::create_dir_all(root.path().join("lib")).unwrap();
        fs::write(root.path().join("etc/ld.so.conf"), "/lib\n").unwrap();
        for lib in ["libc.so.6", "libm.so.6"] {
            let real = fs::canonicalize(Path::new("/lib/x86_64-linux-gnu").join(lib)).unwrap();
            fs::copy(&real, root.path().join("lib").join(lib)).unwrap();
        }
        let status = Command::new(ldconfig)
            .arg("-c")
            .arg(format)
            .arg("-r")
            .arg(root.path())
            .status()
            .unwrap();
        assert!(status.success());
        let bytes = fs::read(root.path().join("etc/ld.so.cache")).unwrap();
        (root, bytes)
    }

    /// Checks a cache built by `built_root`.
    fn assert_root_entries(entries: &[CacheEntry]) {
        let x86_64_libc6 = 0x0303;
        let mut found: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.path.to_str().unwrap(), e.flags))
            .collect();
        found.sort_unstable();
        found.dedup();
        assert_eq!(
            found,
            [
                ("libc.so.6", "/lib/libc.so.6", x86_64_libc6),
                ("libm.so.6", "/lib/libm.so.6", x86_64_libc6),
            ]
        );
    }

    #[test]
    fn host_cache_matches_ldconfig_print() {
        let Some(ldconfig) = ldconfig() else { return };
        let bytes = fs::read("/etc/ld.so.cache").unwrap();
        let entries = parse(&bytes).unwrap();
        assert!(!entries.is_empty());
        assert_eq!(pairs(&entries), printed(&ldconfig, None));
    }

    #[test]
    fn new_format_from_ldconfig_root() {
        let Some(ldconfig) = ldconfig() else { return };
        let (root, bytes) = built_root(&ldconfig, "new");
        assert!(bytes.starts_with(NEW_MAGIC));
        let entries = parse(&bytes).unwrap();
        assert_root_entries(&entries);
        let cache = root.path().join("etc/ld.so.cache");
        assert_eq!(pairs(&entries), printed(&ldconfig, Some(&cache)));
    }

    #[test]
    fn old_and_compat_formats_from_ldconfig_root() {
        let Some(ldconfig) = ldconfig() else { return };
        for format in ["old", "compat"] {
            let (_root, bytes) = built_root(&ldconfig, format);
            assert!(bytes.starts_with(OLD_MAGIC), "{format}");
            assert_root_entries(&parse(&bytes).unwrap());
        }
    }

    /// An old-format cache: header, entries, then strings counted from the entries' end.
    fn old_cache(entries: &[(i32, &str, &str)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let mut table = Vec::new();
        for &(flags, name, path) in entries {
            table.extend_from_slice(&flags.to_ne_bytes());
            for s in [name, path] {
                table.extend_from_slice(&u32::try_from(strings.len()).unwrap().to_ne_bytes());
                strings.extend_from_slice(s.as_bytes());
                strings.push(0);
            }
        }
        let mut bytes = b"ld.so-1.7.0\0".to_vec();
        bytes.extend_from_slice(&u32::try_from(entries.len()).unwrap().to_ne_bytes());
        bytes.extend(table);
        bytes.extend(strings);
        bytes
    }

    #[test]
    fn old_format_by_hand() {
        let bytes = old_cache(&[
            (
                0x0303,
                "libcuda.so.1",
                "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
            ),
            (0x0003, "libfoo.so", "/opt/lib/libfoo.so"),
        ]);
        assert_eq!(
            parse(&bytes).unwrap(),
            [
                CacheEntry {
                    name: "libcuda.so.1".into(),
                    path: "/usr/lib/x86_64-linux-gnu/libcuda.so.1".into(),
                    flags: 0x0303,
                },
                CacheEntry {
                    name: "libfoo.so".into(),
                    path: "/opt/lib/libfoo.so".into(),
                    flags: 0x0003,
                },
            ]
        );
        assert_eq!(parse(&old_cache(&[])).unwrap(), []);
        // A string offset past the end, and a string with no terminator.
        let mut bad = old_cache(&[(1, "a", "b")]);
        bad[20..24].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(parse(&bad).is_err());
        let mut unterminated = old_cache(&[(1, "a", "b")]);
        unterminated.pop();
        assert!(parse(&unterminated).is_err());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        assert_eq!(
            parse(b"").unwrap_err().to_string(),
            "malformed ld.so.cache: unknown magic"
        );
        assert_eq!(
            parse(b"glibc-ld.so.cache1.1").unwrap_err().to_string(),
            "malformed ld.so.cache: truncated header"
        );
    }

    /// xorshift64: reproducible garbage with no extra dependency.
    fn noise(seed: &mut u64) -> u64 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed
    }

    #[test]
    fn truncated_and_garbage_never_panic() {
        let host = fs::read("/etc/ld.so.cache").unwrap_or_default();
        let mut samples = vec![
            host,
            old_cache(&[(0x0303, "libc.so.6", "/lib/libc.so.6"); 3]),
        ];
        if let Some(ldconfig) = ldconfig() {
            samples.push(built_root(&ldconfig, "compat").1);
        }
        for full in &samples {
            let whole = parse(full).map_or(0, |e| e.len());
            for len in 0..full.len() {
                if let Ok(entries) = parse(&full[..len]) {
                    assert!(entries.len() <= whole, "length {len}");
                }
            }
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for full in &samples {
            for _ in 0..2000 {
                let mut bytes = full.clone();
                for _ in 0..=(noise(&mut seed) % 8) {
                    let at = usize::try_from(noise(&mut seed)).unwrap() % bytes.len().max(1);
                    if let Some(b) = bytes.get_mut(at) {
                        *b = noise(&mut seed).to_le_bytes()[0];
                    }
                }
                let _ = parse(&bytes);
            }
        }
        for magic in [&b""[..], OLD_MAGIC, NEW_MAGIC] {
            for len in 0..512 {
                let mut bytes = magic.to_vec();
                bytes.extend((0..len).map(|_| noise(&mut seed).to_le_bytes()[0]));
                let _ = parse(&bytes);
            }
        }
    }
}
