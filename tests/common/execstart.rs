//! systemd's reading of an `ExecStart=` line, for the quadlet tests: the arguments a service
//! really passes to its program, as bytes.
//!
//! The tests cannot ask systemd (none runs on the test host), so this follows its source:
//! `config_parse_exec` splits the line with `extract_first_word(EXTRACT_UNQUOTE |
//! EXTRACT_CUNESCAPE)` (quotes group, C escapes are decoded, `\x80` is one raw byte, a bare `;`
//! separates commands), expands `%` specifiers in each word (`%%` is `%`; an unknown specifier
//! is an error), and at start-up `replace_env_argv` substitutes variables (`$$` is `$`,
//! `${NAME}` inside a word, a whole-word `$NAME` split into words). Shared by the unit tests
//! of the escaping (through `#[path]`) and the end-to-end tests.

const WHITESPACE: &[u8] = b" \t\n\r";

/// What the service's environment provides.
pub struct Expansions<'a> {
    /// `%X` specifiers, by letter.
    pub specifiers: &'a [(u8, &'a str)],
    /// Environment variables.
    pub env: &'a [(&'a str, &'a str)],
}

impl Expansions<'_> {
    fn specifier(&self, letter: u8) -> Option<&str> {
        self.specifiers
            .iter()
            .find(|(known, _)| *known == letter)
            .map(|(_, value)| *value)
    }

    fn var(&self, name: &[u8]) -> Option<&str> {
        self.env
            .iter()
            .find(|(known, _)| known.as_bytes() == name)
            .map(|(_, value)| *value)
    }
}

/// The argument vector of the one command in `line` (the value of `ExecStart=`), with the
/// program first and its `-@+!:|` prefixes dropped.
pub fn parse(line: &str, expansions: &Expansions<'_>) -> Result<Vec<Vec<u8>>, String> {
    let words = split(line.as_bytes())?;
    let mut argv = Vec::new();
    for (index, word) in words.into_iter().enumerate() {
        let word = if index == 0 {
            let start = word
                .iter()
                .position(|b| !b"-@+!:|".contains(b))
                .unwrap_or(word.len());
            word.get(start..).unwrap_or_default().to_vec()
        } else {
            word
        };
        let word = specifiers(&word, expansions)?;
        argv.extend(substitute(&word, expansions));
    }
    Ok(argv)
}

/// The words of the line; an error for a second command or a malformed word.
fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut at = 0;
    loop {
        while line.get(at).is_some_and(|b| WHITESPACE.contains(b)) {
            at += 1;
        }
        let Some(&first) = line.get(at) else {
            return Ok(words);
        };
        let ends_word = |offset: usize| {
            line.get(at + offset)
                .is_none_or(|next| WHITESPACE.contains(next))
        };
        if first == b';' && ends_word(1) {
            return Err("a bare ';' starts a second command".to_owned());
        }
        if line.get(at..at + 2) == Some(b"\\;") && ends_word(2) {
            words.push(b";".to_vec());
            at += 2;
            continue;
        }
        let (word, next) = extract_word(line, at)?;
        words.push(word);
        at = next;
    }
}

/// One word from `at` (a non-separator), and where the scan stopped.
fn extract_word(line: &[u8], mut at: usize) -> Result<(Vec<u8>, usize), String> {
    let mut word = Vec::new();
    let mut quote: Option<u8> = None;
    while let Some(&c) = line.get(at) {
        at += 1;
        match (quote, c) {
            (_, b'\\') => {
                let rest = line.get(at..).unwrap_or_default();
                if rest.is_empty() {
                    return Err("unbalanced escape at the end".to_owned());
                }
                let (consumed, bytes) = cunescape_one(rest)?;
                word.extend(bytes);
                at += consumed;
            }
            (Some(open), c) if c == open => quote = None,
            (None, b'\'' | b'"') => quote = Some(c),
            (None, c) if WHITESPACE.contains(&c) => return Ok((word, at)),
            (_, c) => word.push(c),
        }
    }
    if quote.is_some() {
        return Err("unbalanced quotes".to_owned());
    }
    Ok((word, at))
}

fn hex(b: u8) -> Option<u32> {
    char::from(b).to_digit(16)
}

/// systemd's `cunescape_one`: the bytes after a backslash that it consumes, and what they
/// stand for (`\xHH` and octal are raw bytes, `\u` and `\U` characters).
fn cunescape_one(rest: &[u8]) -> Result<(usize, Vec<u8>), String> {
    let bad = || format!("bad escape \\{}", String::from_utf8_lossy(rest));
    let simple = |b: u8| Ok((1, vec![b]));
    let first = *rest.first().ok_or_else(bad)?;
    match first {
        b'a' => simple(0x07),
        b'b' => simple(0x08),
        b'f' => simple(0x0c),
        b'n' => simple(b'\n'),
        b'r' => simple(b'\r'),
        b't' => simple(b'\t'),
        b'v' => simple(0x0b),
        b's' => simple(b' '),
        b'\\' | b'"' | b'\'' => simple(first),
        b'x' => {
            let digits = rest.get(1..3).ok_or_else(bad)?;
            let value = digits
                .iter()
                .try_fold(0, |acc, b| hex(*b).map(|d| acc * 16 + d))
                .ok_or_else(bad)?;
            let byte = u8::try_from(value).map_err(|_| bad())?;
            if byte == 0 {
                return Err(bad());
            }
            Ok((3, vec![byte]))
        }
        b'u' | b'U' => {
            let count = if first == b'u' { 4 } else { 8 };
            let digits = rest.get(1..=count).ok_or_else(bad)?;
            let value = digits
                .iter()
                .try_fold(0u32, |acc, b| {
                    hex(*b).and_then(|d| acc.checked_mul(16).map(|acc| acc + d))
                })
                .ok_or_else(bad)?;
            let c = char::from_u32(value)
                .filter(|c| *c != '\0')
                .ok_or_else(bad)?;
            Ok((count + 1, c.to_string().into_bytes()))
        }
        b'0'..=b'7' => {
            let digits = rest.get(0..3).ok_or_else(bad)?;
            let value = digits
                .iter()
                .try_fold(0u32, |acc, b| {
                    char::from(*b).to_digit(8).map(|d| acc * 8 + d)
                })
                .ok_or_else(bad)?;
            let byte = u8::try_from(value).map_err(|_| bad())?;
            if byte == 0 {
                return Err(bad());
            }
            Ok((3, vec![byte]))
        }
        _ => Err(bad()),
    }
}

/// `%%` → `%`, `%X` → the specifier's value; an unknown specifier is an error, as in systemd.
fn specifiers(word: &[u8], expansions: &Expansions<'_>) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(word.len());
    let mut bytes = word.iter();
    while let Some(&b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        match bytes.next() {
            None | Some(b'%') => out.push(b'%'),
            Some(&letter) => {
                let value = expansions
                    .specifier(letter)
                    .ok_or_else(|| format!("unknown specifier %{}", char::from(letter)))?;
                out.extend_from_slice(value.as_bytes());
            }
        }
    }
    Ok(out)
}

/// `replace_env_argv` for one word: zero or more words.
fn substitute(word: &[u8], expansions: &Expansions<'_>) -> Vec<Vec<u8>> {
    if let [b'$', rest @ ..] = word {
        if !matches!(rest.first(), Some(b'{' | b'$')) {
            return expansions
                .var(rest)
                .map(|value| {
                    value
                        .split(|c: char| c.is_ascii_whitespace())
                        .filter(|part| !part.is_empty())
                        .map(|part| part.as_bytes().to_vec())
                        .collect()
                })
                .unwrap_or_default();
        }
    }
    let mut out = Vec::with_capacity(word.len());
    let mut at = 0;
    while let Some(&b) = word.get(at) {
        at += 1;
        if b != b'$' {
            out.push(b);
            continue;
        }
        match word.get(at) {
            Some(b'$') => {
                out.push(b'$');
                at += 1;
            }
            Some(b'{') => {
                let name_start = at + 1;
                let close = word
                    .get(name_start..)
                    .and_then(|tail| tail.iter().position(|b| *b == b'}'));
                if let Some(len) = close {
                    let name = word.get(name_start..name_start + len).unwrap_or_default();
                    if let Some(value) = expansions.var(name) {
                        out.extend_from_slice(value.as_bytes());
                    }
                    at = name_start + len + 1;
                } else {
                    out.push(b'$');
                }
            }
            _ => out.push(b'$'),
        }
    }
    vec![out]
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONE: Expansions<'static> = Expansions {
        specifiers: &[(b'N', "unit")],
        env: &[("HOME", "/h"), ("TWO", "a b")],
    };

    fn args(line: &str) -> Vec<String> {
        parse(line, &NONE)
            .unwrap_or_else(|err| vec![format!("ERR {err}").into_bytes()])
            .into_iter()
            .map(|arg| String::from_utf8_lossy(&arg).into_owned())
            .collect()
    }

    #[test]
    fn follows_systemd() {
        assert_eq!(
            args(r#"-/bin/p "a b" 'c\x41' x"y z"w %% %N 50%"#),
            ["/bin/p", "a b", "cA", "xy zw", "%", "unit", "50%"]
        );
        assert_eq!(
            args("/p $$HOME ${HOME}x $HOME $TWO $NOPE"),
            ["/p", "$HOME", "/hx", "/h", "a", "b"]
        );
        assert_eq!(args("/p \\; x"), ["/p", ";", "x"]);
        assert!(args("/p ; /q")[0].starts_with("ERR"));
        assert!(args("/p %Q")[0].starts_with("ERR"));
        assert!(args("/p \"a")[0].starts_with("ERR"));
        assert_eq!(parse("/p \"\\x80\"", &NONE).unwrap()[1], [0x80]);
    }
}
