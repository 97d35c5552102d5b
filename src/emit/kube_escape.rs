//! The one place for escaping in Kubernetes YAML: `$(VAR)` references.
//!
//! Kubernetes expands `$(VAR)` in a container's `command`, `args` and env values, and reduces
//! `$$` to `$`, before the process sees them; `podman kube play` does the same in `command`
//! and `args` but leaves env values alone (seen on 5.4.2; podman#24181 asks for it). `podlab
//! run` passes every string through untouched. So `sh -c 'echo "arg=$(HOME)"'` (a shell's command
//! substitution) would run `echo "arg=/tmp"` under kube play. [`dollars`] doubles each `$`
//! that the expansion would read as the start of `$(` or `$$`, and the expansion gives the
//! original string back; a `$` before anything else (`$HOME`, a trailing `$`) is left as it
//! is, because the expansion leaves it alone too.
//!
//! YAML quoting is not escaping of this kind: [`crate::host::yaml`] does that for every
//! scalar.

use crate::emit::kube::Target;

/// `value` with every `$` that starts `$(` or `$$` doubled: Kubernetes' expansion of the
/// result is `value`.
pub fn dollars(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        escaped.push(c);
        if c == '$' && matches!(chars.peek(), Some('$' | '(')) {
            escaped.push('$');
        }
    }
    escaped
}

/// An env value for `target`: escaped where that reader expands env values (a cluster), as it
/// is for `podman kube play`, which does not.
pub fn env_value(value: &str, target: Target) -> String {
    match target {
        Target::Kubernetes => dollars(value),
        Target::Podman => value.to_owned(),
    }
}

/// Each string of `values` through [`dollars`].
pub fn all_dollars(values: &[String]) -> Vec<String> {
    values.iter().map(|value| dollars(value)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kubernetes' expansion (`third_party/forked/golang/expansion`, which `kube play` uses
    /// too), with every variable defined: the worst case for a value that is not escaped.
    fn expand(input: &str) -> String {
        let bytes = input.as_bytes();
        let mut out = Vec::new();
        let mut cursor = 0;
        while cursor < bytes.len() {
            if bytes[cursor] == b'$' && cursor + 1 < bytes.len() {
                let rest = &bytes[cursor + 1..];
                match rest[0] {
                    b'$' => {
                        out.push(b'$');
                        cursor += 2;
                    }
                    b'(' => {
                        if let Some(close) = rest.iter().position(|b| *b == b')') {
                            out.extend_from_slice(b"<");
                            out.extend_from_slice(&rest[1..close]);
                            out.extend_from_slice(b">");
                            cursor += close + 2;
                        } else {
                            out.extend_from_slice(b"$(");
                            cursor += 2;
                        }
                    }
                    other => {
                        out.push(b'$');
                        out.push(other);
                        cursor += 2;
                    }
                }
            } else {
                out.push(bytes[cursor]);
                cursor += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    /// splitmix64, as in the quadlet escaping tests: deterministic, a failure reproduces.
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

    const PIECES: &[&str] = &[
        "$", "$$", "$$$", "(", ")", "$(", "$(A)", "$$(A)", "$(HOME)", "${A}", "$A", "A", "a", " ",
        "\"", "'", "\\", "é", "🙂", "\n", "=", ")", "$)", "((",
    ];

    #[test]
    fn w2_kube_escaping_survives_the_expansion_of_any_string() {
        let mut rng = Rng(0x5eed_0000_0000_0002);
        for _ in 0..20_000 {
            let value: String = (0..rng.below(8))
                .map(|_| PIECES[rng.below(PIECES.len())])
                .collect();
            let escaped = dollars(&value);
            assert_eq!(expand(&escaped), value, "escaped as {escaped:?}");
        }
    }

    #[test]
    fn w2_kube_escaping_doubles_only_the_dollars_the_expansion_reads() {
        assert_eq!(dollars(r#"echo "arg=$(HOME)""#), r#"echo "arg=$$(HOME)""#);
        assert_eq!(dollars("$$"), "$$$");
        assert_eq!(dollars("$$("), "$$$$(");
        assert_eq!(dollars("$HOME ${X} cost$"), "$HOME ${X} cost$");
        // A cluster expands env values too; kube play does not (see the module docs).
        assert_eq!(env_value("$(A)", Target::Kubernetes), "$$(A)");
        assert_eq!(env_value("$(A)", Target::Podman), "$(A)");
        // Unescaped, the shell's command substitution would become the variable's value.
        assert_eq!(expand(r#"echo "arg=$(HOME)""#), r#"echo "arg=<HOME>""#);
    }
}
