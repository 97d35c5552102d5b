//! All unit-file escaping, in one place.
//!
//! A quadlet value is read twice before it reaches podman. Quadlet (Podman's generator) reads
//! the `.container` file with one of four parsers, depending on the key, and writes the
//! result into the `ExecStart=` of a generated service, quoted its own way; systemd then reads
//! that line, expanding `%` specifiers and `$VAR`s. Each key belongs to one parser class:
//!
//! - [`Class::Raw`] (`Volume`, `PublishPort`): the line as written, trimmed;
//! - [`Class::Unquoted`] (`Image`, `UserNS`, `ShmSize`, `WorkingDir`, `ContainerName`, the
//!   `.kube` unit's `Yaml`): trimmed, then every leading and trailing `"` removed (Podman
//!   5.4; later releases remove one matched pair);
//! - [`Class::Words`] (`AddDevice`): split at whitespace, quotes honoured, backslashes kept;
//! - [`Class::Exec`] (`Exec`, `PodmanArgs`, `GlobalArgs`, and as `K=V` words `Environment`,
//!   `Label`, `Annotation`): split like a command line, quotes and C escapes honoured.
//!
//! Every class gets `%` → `%%` and `$` → `$$`, because systemd expands both in `ExecStart=`.
//! A value that a class cannot carry faithfully is refused with an error naming the key,
//! never written mangled. What cannot be carried, and why (each reason is checked against the
//! real generator by the property test in `escape_tests.rs`):
//!
//! - a NUL byte, anywhere: neither a file line nor an argument can hold one;
//! - U+0080, anywhere: quadlet writes it as `\x80`, which systemd reads back as a lone byte;
//! - an argument that is exactly `;`: quadlet writes it bare, and a bare `;` ends the command
//!   in `ExecStart=`;
//! - a line break (`\n`, or `\r`, which systemd's reader also ends lines at) outside
//!   [`Class::Exec`], the only class with escapes;
//! - an empty value: an empty `Volume=` clears the list, an empty `WorkingDir=` means unset,
//!   and quadlet drops an empty word (in [`Class::Exec`], with every word after it);
//! - in [`Class::Raw`], leading or trailing whitespace (trimmed) or a trailing backslash (a
//!   line continuation): the class has no quoting to protect them;
//! - in [`Class::Unquoted`], a leading or trailing `"`: Podman 5.4 strips them all;
//! - in [`Class::Words`], a leading `-`: quadlet takes it to mean "skip the device if the path
//!   does not exist".

use crate::{Error, Result};

/// How quadlet parses a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Taken as written (after trimming the line).
    Raw,
    /// Trimmed, then surrounding double quotes removed.
    Unquoted,
    /// Whitespace-separated words; quotes group, backslashes are literal.
    Words,
    /// A command line: quotes group, C escapes are decoded.
    Exec,
}

/// A [`Class::Raw`] value: written as is, with `%` and `$` doubled.
pub fn raw(key: &str, value: &str) -> Result<String> {
    refuse(key, value, Class::Raw)?;
    Ok(double_specials(value))
}

/// A [`Class::Unquoted`] value: in double quotes when its ends need protecting.
pub fn unquoted(key: &str, value: &str) -> Result<String> {
    refuse(key, value, Class::Unquoted)?;
    Ok(unquoted_unchecked(value))
}

/// A [`Class::Words`] value, as one word.
pub fn word(key: &str, value: &str) -> Result<String> {
    refuse(key, value, Class::Words)?;
    Ok(word_unchecked(value))
}

/// [`Class::Exec`] words, space-separated, each quoted when needed.
pub fn exec(key: &str, words: &[&str]) -> Result<String> {
    if words.is_empty() {
        return Err(Error::env(format!("internal error: {key}= with no words")));
    }
    for word in words {
        refuse(key, word, Class::Exec)?;
    }
    Ok(exec_unchecked(words))
}

/// An `Environment=`, `Label=` or `Annotation=` entry: the exec-class word `name=value`.
pub fn assignment(key: &str, name: &str, value: &str) -> Result<String> {
    if name.is_empty() || name.contains('=') {
        return Err(Error::user(format!(
            "{key}={name}={value:?} cannot be written to a quadlet unit: quadlet splits the entry at its first '=', so the name must be non-empty and hold no '='"
        ))
        .hint("rename it"));
    }
    exec(key, &[&format!("{name}={value}")])
}

/// Why `class` cannot carry `value` faithfully, if it cannot.
fn unrepresentable(value: &str, class: Class) -> Option<&'static str> {
    let line_break = class != Class::Exec && value.contains(['\n', '\r']);
    let reason = if value.contains('\0') {
        "it holds a NUL byte"
    } else if value.contains('\u{80}') {
        "it holds U+0080, which quadlet writes as \\x80 and systemd reads back as a lone byte"
    } else if value == ";" {
        "quadlet writes it bare, and systemd takes a bare ';' in ExecStart= as a command separator"
    } else if line_break {
        "it holds a line break and this key has no escapes"
    } else if value.is_empty() {
        "quadlet takes an empty value as unset"
    } else {
        match class {
            // Quadlet trims the start of a value byte by byte (ASCII whitespace only), and its
            // end with Unicode's whitespace.
            Class::Raw if value.starts_with([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']) => {
                "quadlet trims leading whitespace and this key has no quoting"
            }
            Class::Raw if value.ends_with(char::is_whitespace) => {
                "quadlet trims trailing whitespace and this key has no quoting"
            }
            Class::Raw if value.ends_with('\\') => {
                "a trailing backslash continues the line and this key has no quoting"
            }
            Class::Unquoted if value.starts_with('"') || value.ends_with('"') => {
                "quadlet strips leading and trailing double quotes from this key"
            }
            Class::Words if value.starts_with('-') => {
                "quadlet reads a leading '-' as \"skip it if the path does not exist\""
            }
            _ => return None,
        }
    };
    Some(reason)
}

fn refuse(key: &str, value: &str, class: Class) -> Result<()> {
    match unrepresentable(value, class) {
        None => Ok(()),
        Some(reason) => Err(Error::user(format!(
            "{key}={value:?} cannot be written to a quadlet unit: {reason}"
        ))
        .hint("change the value (rename the path, drop the character), or run it with podlab run instead of a unit")),
    }
}

/// `%` → `%%` and `$` → `$$`: systemd expands specifiers and variables in `ExecStart=`.
fn double_specials(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '%' | '$') {
            out.push(c);
        }
        out.push(c);
    }
    out
}

/// The [`Class::Unquoted`] spelling, without the refusal checks (the property test feeds
/// refused values through it to show that quadlet really mangles them).
pub(crate) fn unquoted_unchecked(value: &str) -> String {
    let doubled = double_specials(value);
    let exposed = value.starts_with(char::is_whitespace)
        || value.ends_with(char::is_whitespace)
        || value.ends_with('\\');
    if exposed || value.starts_with('"') || value.ends_with('"') {
        format!("\"{doubled}\"")
    } else {
        doubled
    }
}

/// The [`Class::Words`] spelling, without the refusal checks. Backslashes are literal in this
/// class, so quoting is the only tool: runs without `'` go in single quotes, each `'` in
/// double quotes, all in one word (`a'b` → `'a'"'"'b'`).
pub(crate) fn word_unchecked(value: &str) -> String {
    let doubled = double_specials(value);
    let plain = !value.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        && !value.ends_with('\\');
    if plain {
        return doubled;
    }
    let mut out = String::with_capacity(doubled.len() + 4);
    for (index, run) in doubled.split('\'').enumerate() {
        if index > 0 {
            out.push_str("\"'\"");
        }
        if !run.is_empty() {
            out.push('\'');
            out.push_str(run);
            out.push('\'');
        }
    }
    out
}

/// The [`Class::Exec`] spelling, without the refusal checks: a word without whitespace,
/// quotes, backslashes or control characters stays bare, any other goes in double quotes
/// with C escapes.
pub(crate) fn exec_unchecked(words: &[&str]) -> String {
    let mut out = String::new();
    for (index, word) in words.iter().enumerate() {
        if index > 0 {
            out.push(' ');
        }
        let plain = !word.is_empty()
            && !word.contains(|c: char| {
                c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\')
            });
        if plain {
            out.push_str(&double_specials(word));
            continue;
        }
        out.push('"');
        for c in word.chars() {
            match c {
                '%' => out.push_str("%%"),
                '$' => out.push_str("$$"),
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                c if c.is_ascii_control() => {
                    use std::fmt::Write as _;
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specials_are_doubled_in_every_class() {
        assert_eq!(raw("Volume", "/a%b$c:/d").unwrap(), "/a%%b$$c:/d");
        assert_eq!(unquoted("WorkingDir", "/100%").unwrap(), "/100%%");
        assert_eq!(word("AddDevice", "/dev/$x").unwrap(), "/dev/$$x");
        assert_eq!(
            exec("Exec", &["echo", "$HOME", "50%"]).unwrap(),
            "echo $$HOME 50%%"
        );
    }

    #[test]
    fn each_class_quotes_its_own_way() {
        assert_eq!(unquoted("WorkingDir", " /x ").unwrap(), "\" /x \"");
        assert_eq!(unquoted("WorkingDir", "/x\\").unwrap(), "\"/x\\\"");
        assert_eq!(unquoted("Image", "localhost/a:b").unwrap(), "localhost/a:b");
        assert_eq!(word("AddDevice", "a b").unwrap(), "'a b'");
        assert_eq!(word("AddDevice", "a'b\"c").unwrap(), "'a'\"'\"'b\"c'");
        assert_eq!(word("AddDevice", "'").unwrap(), "\"'\"");
        assert_eq!(word("AddDevice", "x\\y").unwrap(), "x\\y");
        assert_eq!(
            exec("Exec", &["sh", "-c", "echo \"a b\"\n\t\u{1}"]).unwrap(),
            "sh -c \"echo \\\"a b\\\"\\n\\t\\x01\""
        );
        assert_eq!(
            assignment("Environment", "K", "it's").unwrap(),
            "\"K=it's\""
        );
    }

    #[test]
    fn refusals_name_the_key_and_the_reason() {
        let err = raw("Volume", "/a\nb:/c").unwrap_err().to_string();
        assert!(
            err.starts_with("error: Volume=\"/a\\nb:/c\" cannot be written to a quadlet unit: it holds a line break"),
            "{err}"
        );
        assert!(raw("PublishPort", "").is_err());
        assert!(raw("Volume", "/a:/b ").is_err());
        assert!(raw("Volume", "/a:/b\\").is_err());
        assert!(unquoted("WorkingDir", "\"x").is_err());
        assert!(unquoted("WorkingDir", "a\rb").is_err());
        assert!(word("AddDevice", "-/dev/x").is_err());
        assert!(exec("Exec", &["a", ""]).is_err());
        assert!(exec("Exec", &[";"]).is_err());
        assert!(exec("Exec", &["\u{80}"]).is_err());
        assert!(exec("Exec", &["a\0"]).is_err());
        assert!(
            exec("Exec", &["a\nb\r"]).is_ok(),
            "exec escapes line breaks"
        );
        let err = assignment("Label", "a=b", "c").unwrap_err().to_string();
        assert!(err.contains("Label=a=b="), "{err}");
    }
}
