//! POSIX shell quoting: the one place where podlab writes a value into shell text (the
//! Slurm batch script and the commands inside it).
//!
//! A value is left bare only when it is made of characters no shell treats specially;
//! anything else is wrapped in single quotes, inside which a POSIX shell (and bash) reads
//! every byte literally, with each `'` written as `'\''`. NUL cannot be passed through a
//! shell or an argv at all, so it is refused rather than dropped.

use crate::{Error, Result};

/// `value` as one shell word that reads back as exactly `value`.
pub fn quote(value: &str) -> Result<String> {
    if value.contains('\0') {
        return Err(Error::user(format!(
            "{value:?} holds a NUL byte, which no shell command can carry"
        ))
        .hint("remove the NUL from the value"));
    }
    let plain = !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if plain {
        return Ok(value.to_owned());
    }
    Ok(format!("'{}'", value.replace('\'', r"'\''")))
}

/// The words quoted and joined by spaces: one shell command line.
pub fn join<S: AsRef<str>>(words: &[S]) -> Result<String> {
    let quoted: Vec<String> = words
        .iter()
        .map(|word| quote(word.as_ref()))
        .collect::<Result<_>>()?;
    Ok(quoted.join(" "))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    #[test]
    fn plain_words_stay_bare_and_others_are_single_quoted() {
        assert_eq!(quote("torchrun").unwrap(), "torchrun");
        assert_eq!(quote("/data/x.pt").unwrap(), "/data/x.pt");
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("a b").unwrap(), "'a b'");
        assert_eq!(quote("it's").unwrap(), r"'it'\''s'");
        assert_eq!(quote("$HOME").unwrap(), "'$HOME'");
        assert!(quote("a\0b").is_err());
        assert_eq!(join(&["echo", "a b", "~"]).unwrap(), "echo 'a b' '~'");
    }

    /// Deterministic pseudo-random strings over the characters shells treat specially (and
    /// some that they do not, and non-ASCII text).
    fn samples() -> Vec<String> {
        const ALPHABET: &[&str] = &[
            "a", "Z", "0", " ", "\t", "\n", "'", "\"", "\\", "$", "`", "!", "*", "?", "[", "]",
            "{", "}", "(", ")", "<", ">", "|", "&", ";", "#", "~", "=", "%", "-", "é", "日", ".",
            "/", ":", ",", "@", "+", "^",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64*: reproducible without a crate.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        (0..300)
            .map(|_| {
                let len = usize::try_from(next() % 12).unwrap_or(0);
                (0..len)
                    .map(|_| {
                        let at = usize::try_from(next() % ALPHABET.len() as u64).unwrap_or(0);
                        ALPHABET[at]
                    })
                    .collect()
            })
            .collect()
    }

    /// `printf '%s\0' WORDS...` through a real shell: what it prints, split at NUL.
    fn through(shell: &str, script: &str) -> Vec<String> {
        let output = Command::new(shell)
            .args(["-c", script])
            .output()
            .expect("run the shell");
        assert!(output.status.success(), "{shell} -c {script:?} failed");
        let text = String::from_utf8(output.stdout).expect("utf-8");
        let mut words: Vec<String> = text.split('\0').map(str::to_owned).collect();
        words.pop();
        words
    }

    #[test]
    fn every_quoted_value_reads_back_exactly_in_sh_and_bash() {
        let samples = samples();
        let script = format!("printf '%s\\0' {}", join(&samples).unwrap());
        for shell in ["sh", "bash"] {
            assert_eq!(through(shell, &script), samples, "{shell}");
        }
    }

    #[test]
    fn quoting_nests_a_quoted_command_inside_bash_c() {
        // As the batch script does: a command line, quoted again as one `bash -c` argument.
        let samples = samples();
        let inner = format!("printf '%s\\0' {}", join(&samples).unwrap());
        let outer = format!("bash -c {}", quote(&inner).unwrap());
        assert_eq!(through("sh", &outer), samples);
    }
}
