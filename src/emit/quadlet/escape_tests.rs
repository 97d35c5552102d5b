//! The escaping, checked against the real parsers: adversarial values (newlines, `%`, `$`,
//! quotes, backslashes, whitespace, control characters, unicode, leading dashes, empty) go
//! through every key class into `.container` files; Podman's quadlet generator
//! (`/usr/libexec/podman/quadlet -dryrun -user`) turns them into services; each `ExecStart=`
//! is read the way systemd reads it (`tests/common/execstart.rs`), and the arguments that reach
//! podman must equal the originals.
//!
//! Every value the escaping refuses goes through the same spelling without the refusal, alone
//! in a unit of its own, and must then come out wrong (a mismatch, a rejected unit, an
//! `ExecStart=` systemd cannot parse, or a carriage return that systemd's line reader would
//! split on): so nothing is refused that could have been carried.
//!
//! Values come from a small deterministic generator (splitmix64, fixed seed): no extra crate,
//! and a failure reproduces exactly. Without the quadlet binary the test says why and passes,
//! unless `PODLAB_E2E=1`.

#[path = "../../../tests/common/execstart.rs"]
mod execstart;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use super::escape::{self, Class};

const QUADLET: &str = "/usr/libexec/podman/quadlet";
/// Units per quadlet run.
const BATCH: usize = 2_500;
/// Units per run when each needs a directory of its own: quadlet's time grows with units
/// times directories.
const ISOLATED_BATCH: usize = 40;
/// Main units; each carries one value (or word list) per slot.
const UNITS: usize = 10_000;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// Pieces values are made of. No letter but `a`, `b`, `n`, `N` and `X` occurs, so no value
/// can spell a podman flag or a probe marker.
const PIECES: &[&str] = &[
    "a", "b", "a", "b", "/", "/", " ", "  ", "\t", "%", "%%", "%n", "%N", "$", "$$", "${X}", "$X",
    "\"", "'", "\\", "\\\\", "\\n", "\\x41", "-", "--", ";", "#", "=", ":", ",", "é", "日本", "🙂",
    "\u{85}", "\u{a0}", "\u{2028}", "\u{3000}", "\u{1}", "\u{7f}", "\u{b}", "\u{c}", "\u{9f}", "*",
    "?", "~", "`", "!", "[", "]", "{", "}", "(", ")", "<", ">", "&", "|", "@", "+", "0", "1",
];
/// Rarer pieces: each makes a value unrepresentable in some classes.
const RARE: &[&str] = &["\n", "\r", "\u{80}", "\0", "\r\n"];
/// Values tried first, in every slot.
const EDGES: &[&str] = &[
    "", ";", "-", "--", "\"", "'", "\\", " ", "%", "$", "\"\"", "''", "a b", "\\;", ";a", "-a",
    "a\\", "\"a\"", " a", "a ", "\u{80}", "\n", "\r", "\u{a0}", "$$", "%%", "${X}", "$X",
];

fn value(rng: &mut Rng, serial: usize) -> String {
    if let Some(edge) = EDGES.get(serial) {
        return (*edge).to_owned();
    }
    let pieces = rng.below(9);
    let mut out = String::new();
    for _ in 0..pieces {
        if rng.below(40) == 0 {
            out.push_str(RARE[rng.below(RARE.len())]);
        } else {
            out.push_str(PIECES[rng.below(PIECES.len())]);
        }
    }
    out
}

/// Where a value goes in a `.container` file, and where it shows up on podman's command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Volume,
    PublishPort,
    WorkingDir,
    ShmSize,
    AddDevice,
    Environment,
    Label,
    Annotation,
    PodmanArgs,
    GlobalArgs,
    Exec,
}

const SLOTS: [Slot; 11] = [
    Slot::Volume,
    Slot::PublishPort,
    Slot::WorkingDir,
    Slot::ShmSize,
    Slot::AddDevice,
    Slot::Environment,
    Slot::Label,
    Slot::Annotation,
    Slot::PodmanArgs,
    Slot::GlobalArgs,
    Slot::Exec,
];

impl Slot {
    fn class(self) -> Class {
        match self {
            Self::Volume | Self::PublishPort => Class::Raw,
            Self::WorkingDir | Self::ShmSize => Class::Unquoted,
            Self::AddDevice => Class::Words,
            _ => Class::Exec,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Self::Volume => "Volume",
            Self::PublishPort => "PublishPort",
            Self::WorkingDir => "WorkingDir",
            Self::ShmSize => "ShmSize",
            Self::AddDevice => "AddDevice",
            Self::Environment => "Environment",
            Self::Label => "Label",
            Self::Annotation => "Annotation",
            Self::PodmanArgs => "PodmanArgs",
            Self::GlobalArgs => "GlobalArgs",
            Self::Exec => "Exec",
        }
    }

    /// The flag before the value on podman's command line, for one-value slots.
    fn flag(self) -> Option<&'static str> {
        Some(match self {
            Self::Volume => "-v",
            Self::PublishPort => "--publish",
            Self::WorkingDir => "--workdir",
            Self::ShmSize => "--shm-size",
            Self::AddDevice => "--device",
            Self::Environment => "--env",
            Self::Label => "--label",
            Self::Annotation => "--annotation",
            Self::PodmanArgs | Self::GlobalArgs | Self::Exec => return None,
        })
    }

    fn multi(self) -> bool {
        self.flag().is_none()
    }

    /// The podman arguments `words` must become.
    fn expected(self, words: &[String]) -> Vec<Vec<u8>> {
        words
            .iter()
            .map(|word| match self {
                Self::Volume => format!("/{word}"),
                Self::Environment | Self::Label | Self::Annotation => format!("PROBE={word}"),
                _ => word.clone(),
            })
            .map(String::into_bytes)
            .collect()
    }

    /// The unit-file lines for `words`, escaped (`checked`) or spelled without the refusal.
    fn lines(self, words: &[String], checked: bool) -> Result<String, String> {
        let key = self.key();
        let args = self.expected(words);
        let args: Vec<&str> = args
            .iter()
            .map(|arg| std::str::from_utf8(arg).unwrap())
            .collect();
        let escaped = match (self.class(), checked) {
            (Class::Raw, true) => escape::raw(key, args[0]),
            (Class::Raw, false) => Ok(args[0].replace('%', "%%").replace('$', "$$")),
            (Class::Unquoted, true) => escape::unquoted(key, args[0]),
            (Class::Unquoted, false) => Ok(escape::unquoted_unchecked(args[0])),
            (Class::Words, true) => escape::word(key, args[0]),
            (Class::Words, false) => Ok(escape::word_unchecked(args[0])),
            (Class::Exec, true) => escape::exec(key, &args),
            (Class::Exec, false) => Ok(escape::exec_unchecked(&args)),
        }
        .map_err(|err| err.to_string())?;
        Ok(match self {
            Self::PodmanArgs | Self::GlobalArgs => {
                let marker = self.marker();
                format!("{key}={marker}-begin\n{key}={escaped}\n{key}={marker}-end\n")
            }
            Self::Exec => {
                let marker = self.marker();
                format!("{key}={marker}-begin {escaped} {marker}-end\n")
            }
            _ => format!("{key}={escaped}\n"),
        })
    }

    fn marker(self) -> &'static str {
        match self {
            Self::PodmanArgs => "--probe-p",
            Self::GlobalArgs => "--probe-g",
            _ => "--probe-e",
        }
    }

    /// What podman got for this slot.
    fn found(self, argv: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        let position = |arg: &str| argv.iter().position(|a| a == arg.as_bytes());
        if let Some(flag) = self.flag() {
            let at = position(flag)?;
            return argv.get(at + 1).map(|arg| vec![arg.clone()]);
        }
        let marker = self.marker();
        let begin = position(&format!("{marker}-begin"))?;
        let end = position(&format!("{marker}-end"))?;
        argv.get(begin + 1..end).map(<[Vec<u8>]>::to_vec)
    }
}

/// One value (or word list) in one slot.
#[derive(Debug)]
struct Case {
    slot: Slot,
    words: Vec<String>,
}

/// A unit to generate: its cases, and whether they were refused (a witness unit).
struct Unit {
    name: String,
    text: String,
    cases: Vec<Case>,
    witness: bool,
}

impl Unit {
    /// Whether the file may not parse (a raw line break): quadlet then drops every unit of
    /// its directory, so it needs one of its own.
    fn fragile(&self) -> bool {
        self.witness
            && self.cases.iter().any(|case| {
                case.slot.class() != Class::Exec && case.words.iter().any(|w| w.contains('\n'))
            })
    }
}

fn quadlet_available() -> bool {
    if Path::new(QUADLET).exists() {
        return true;
    }
    assert!(
        std::env::var("PODLAB_E2E").as_deref() != Ok("1"),
        "PODLAB_E2E=1 but {QUADLET} is missing"
    );
    eprintln!(
        "skipping the quadlet escaping property test: {QUADLET} is missing (install podman 4.4 or newer)"
    );
    false
}

/// Generated services by unit name (`u12` for `u12.container`).
fn generate(units: &[&Unit]) -> HashMap<String, String> {
    // Tens of thousands of small files: tmpfs writes them many times faster than a disk.
    let shm = Path::new("/dev/shm");
    let dir = if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .unwrap();
    for unit in units {
        let home = if unit.fragile() {
            dir.path().join(&unit.name)
        } else {
            dir.path().to_path_buf()
        };
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(format!("{}.container", unit.name)), &unit.text).unwrap();
    }
    let output = Command::new(QUADLET)
        .args(["-dryrun", "-user", "-no-kmsg-log"])
        .env("QUADLET_UNIT_DIRS", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut services = HashMap::new();
    let mut current: Option<(String, String)> = None;
    for line in stdout.split_inclusive('\n') {
        let header = line
            .strip_prefix("---")
            .and_then(|rest| rest.trim_end().strip_suffix(".service---"));
        if let Some(name) = header {
            services.extend(current.take());
            current = Some((name.to_owned(), String::new()));
        } else if let Some((_, text)) = &mut current {
            text.push_str(line);
        }
    }
    services.extend(current);
    services
}

/// The podman arguments of a generated service, as systemd would pass them.
fn argv(name: &str, service: &str) -> Result<Vec<Vec<u8>>, String> {
    if service.contains(['\r', '\0']) {
        return Err("systemd would split a line at a carriage return or NUL".to_owned());
    }
    let mut section = "";
    let mut lines = Vec::new();
    for line in service.lines() {
        if line.starts_with('[') {
            section = line;
        } else if section == "[Service]" {
            lines.extend(line.strip_prefix("ExecStart="));
        }
    }
    let [line] = lines[..] else {
        return Err(format!("{} ExecStart= lines", lines.len()));
    };
    let unit = format!("{name}.service");
    execstart::parse(
        line,
        &execstart::Expansions {
            specifiers: &[(b't', "/run/user/0"), (b'N', name), (b'n', &unit)],
            env: &[("PODMAN_SYSTEMD_UNIT", &unit)],
        },
    )
}

fn unit_text(lines: &str) -> String {
    format!("[Container]\nImage=localhost/probe:latest\n{lines}")
}

/// The main units (one value or word list per slot) and a witness unit per refused word.
fn build_units() -> Vec<Unit> {
    let mut rng = Rng(0x5EED_0F0D_D7E5_7000);
    let mut units = Vec::new();
    for index in 0..UNITS {
        let mut lines = String::new();
        let mut cases = Vec::new();
        for slot in SLOTS {
            let count = if slot.multi() { 1 + rng.below(3) } else { 1 };
            let words: Vec<String> = (0..count).map(|_| value(&mut rng, index)).collect();
            match slot.lines(&words, true) {
                Ok(text) => {
                    lines.push_str(&text);
                    cases.push(Case { slot, words });
                }
                Err(err) => {
                    assert!(
                        err.contains(&format!("{}=", slot.key())),
                        "the error names the key: {err}"
                    );
                    // Each refused word alone, spelled without the refusal.
                    for word in words {
                        let words = vec![word];
                        if slot.lines(&words, true).is_ok() {
                            continue;
                        }
                        units.push(Unit {
                            name: format!("w{}", units.len()),
                            text: unit_text(&slot.lines(&words, false).unwrap()),
                            cases: vec![Case { slot, words }],
                            witness: true,
                        });
                    }
                }
            }
        }
        units.push(Unit {
            name: format!("u{index}"),
            text: unit_text(&lines),
            cases,
            witness: false,
        });
    }
    units
}

/// Every unit through quadlet, in batches on a few threads.
fn generate_all(units: &[Unit]) -> HashMap<String, String> {
    let (fragile, sturdy): (Vec<&Unit>, Vec<&Unit>) = units.iter().partition(|u| u.fragile());
    let batches: Vec<&[&Unit]> = sturdy
        .chunks(BATCH)
        .chain(fragile.chunks(ISOLATED_BATCH))
        .collect();
    let queue = std::sync::Mutex::new(batches.into_iter());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let mut found = HashMap::new();
                    while let Some(batch) = queue.lock().unwrap().next() {
                        found.extend(generate(batch));
                    }
                    found
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| worker.join().unwrap())
            .collect()
    })
}

/// Whether podman got exactly what `case` holds, from the parsed `ExecStart=`.
fn check(case: &Case, parsed: &Result<Vec<Vec<u8>>, String>) -> Result<(), String> {
    let argv = parsed.as_ref().map_err(Clone::clone)?;
    let found = case
        .slot
        .found(argv)
        .ok_or_else(|| "not on the command line".to_owned())?;
    if found == case.slot.expected(&case.words) {
        return Ok(());
    }
    let shown: Vec<_> = found
        .iter()
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect();
    Err(format!("podman got {shown:?}"))
}

fn class_name(class: Class) -> &'static str {
    match class {
        Class::Raw => "raw",
        Class::Unquoted => "unquoted",
        Class::Words => "words",
        Class::Exec => "exec",
    }
}

#[test]
fn escaped_values_reach_podman_unchanged_and_refused_ones_cannot() {
    if !quadlet_available() {
        return;
    }
    let started = std::time::Instant::now();
    let units = build_units();
    let services = generate_all(&units);
    let mut carried: HashMap<&str, usize> = HashMap::new();
    let mut refused: HashMap<&str, usize> = HashMap::new();
    let mut failures = String::new();
    for unit in &units {
        let parsed = services
            .get(&unit.name)
            .ok_or_else(|| "quadlet rejected the unit".to_owned())
            .and_then(|service| argv(&unit.name, service));
        for case in &unit.cases {
            let class = class_name(case.slot.class());
            let (key, words, name, text) = (case.slot.key(), &case.words, &unit.name, &unit.text);
            match (unit.witness, check(case, &parsed)) {
                (false, Ok(())) => *carried.entry(class).or_default() += words.len(),
                (true, Err(_)) => *refused.entry(class).or_default() += 1,
                (false, Err(why)) => {
                    let _ = writeln!(
                        failures,
                        "mismatch: {key}={words:?} in {name}: {why}\n{text}"
                    );
                }
                (true, Ok(())) => {
                    let _ = writeln!(
                        failures,
                        "refused but carried: {key}={words:?} in {name}\n{text}"
                    );
                }
            }
        }
    }
    eprintln!(
        "quadlet escaping: {} units in {:.1?}; values carried {carried:?}; refused, and shown uncarriable {refused:?}",
        units.len(),
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{}",
        failures.chars().take(20_000).collect::<String>()
    );
    for class in ["raw", "unquoted", "words", "exec"] {
        let total =
            carried.get(class).copied().unwrap_or(0) + refused.get(class).copied().unwrap_or(0);
        assert!(total >= 10_000, "only {total} {class} values tried");
    }
}
