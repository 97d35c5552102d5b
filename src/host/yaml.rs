//! The one YAML writer for every emitter (CDI specs now, kube YAML later).
//!
//! `serde-saphyr` quotes scalars that YAML 1.1 readers would retype (`2024-01-01`, `on`,
//! `no`); podlab also turns off its folded block style, so a long host path stays one plain
//! line that grep, diff and humans can follow.

use serde::Serialize;

use crate::{Error, Result};

pub fn to_string<T: Serialize>(value: &T) -> Result<String> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options)
        .map_err(|err| Error::env(format!("cannot serialize YAML: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_strings_stay_on_one_line_and_ambiguous_scalars_are_quoted() {
        let long = format!("/var/cache/{}/libcuda.so.550.163.01", "x".repeat(100));
        let text = to_string(
            &serde_json::json!({"path": long, "date": "2024-01-01", "flag": "on", "n": "0"}),
        )
        .unwrap();
        assert!(text.contains(&format!("path: {long}\n")), "{text}");
        assert!(
            text.contains("date: \"2024-01-01\"") || text.contains("date: '2024-01-01'"),
            "{text}"
        );
        assert!(
            text.contains("flag: \"on\"") || text.contains("flag: 'on'"),
            "{text}"
        );
    }
}
