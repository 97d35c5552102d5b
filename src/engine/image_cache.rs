//! Answers about an image that cost a probe container (create, stat, remove: three more
//! requests, tens of milliseconds, on every GPU run), remembered by image ID.
//!
//! An image's ID is the digest of its configuration, which names its layers: the same ID is
//! the same files, so an entry never goes stale, and a rebuilt or re-pulled image has a new
//! ID and is probed afresh. Only content IDs (64 hex digits) are remembered, and the probe
//! runs on the ID itself, so the answer is the one for the key it is stored under. Entries
//! live in `~/.cache/podlab/images/<id>.json`, trusted and written as
//! [`crate::host::private_cache`] says; one that does not parse is ignored and rewritten.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Engine, ImageFacts, ImagePath};
use crate::Result;
use crate::host::private_cache;

/// Bumped when an entry's meaning changes; an entry of another format is ignored.
const FORMAT: u32 = 2;

/// What is known of one image.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    format: u32,
    /// [`Engine::image_paths`] answers by path (`None`: missing).
    paths: BTreeMap<String, Option<ImagePath>>,
}

/// [`Engine::image_paths`] of the image `facts` describe (named `image`), remembered: the paths
/// not known yet are probed together, in one container.
pub async fn image_paths<E: Engine>(
    engine: &E,
    facts: &ImageFacts,
    image: &str,
    paths: &[&str],
) -> Result<Vec<Option<ImagePath>>> {
    let cache =
        content_id(&facts.id).and_then(|id| private_cache::path(&format!("images/{id}.json")));
    image_paths_in(engine, cache.as_deref(), facts, image, paths).await
}

/// [`image_paths`], for answers that only make a container start faster: when the probe
/// container fails, a warning, and no answers (every path unknown) rather than an error.
pub async fn image_paths_or_unknown<E: Engine>(
    engine: &E,
    facts: &ImageFacts,
    image: &str,
    paths: &[&str],
) -> Vec<Option<ImagePath>> {
    image_paths(engine, facts, image, paths)
        .await
        .unwrap_or_else(|err| {
            tracing::warn!(
                "could not look into image {image} ({}): its GPU edits stay unfitted",
                err.message()
            );
            vec![None; paths.len()]
        })
}

async fn image_paths_in<E: Engine>(
    engine: &E,
    cache: Option<&Path>,
    facts: &ImageFacts,
    image: &str,
    paths: &[&str],
) -> Result<Vec<Option<ImagePath>>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let Some(cache) = cache else {
        return engine.image_paths(image, paths).await;
    };
    let mut entry = private_cache::read(cache)
        .and_then(|text| serde_json::from_str::<Entry>(&text).ok())
        .filter(|entry| entry.format == FORMAT)
        .unwrap_or_default();
    let unknown: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|path| !entry.paths.contains_key(*path))
        .collect();
    if !unknown.is_empty() {
        let answers = engine.image_paths(&facts.id, &unknown).await?;
        entry.format = FORMAT;
        entry
            .paths
            .extend(unknown.iter().map(|path| (*path).to_owned()).zip(answers));
        if let Ok(text) = serde_json::to_string(&entry) {
            private_cache::write(cache, &text, "what the image holds");
        }
    }
    Ok(paths
        .iter()
        .map(|path| entry.paths.get(*path).cloned().flatten())
        .collect())
}

/// The ID when it is a content digest (64 lowercase hex digits, `sha256:` allowed).
fn content_id(id: &str) -> Option<&str> {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    (hex.len() == 64
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    .then_some(hex)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;
    use std::path::PathBuf;

    fn entry_path(dir: &Path, id: &str) -> PathBuf {
        dir.join("images").join(format!("{id}.json"))
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const LINK: &str = "/usr/local/cuda/compat/libcuda.so.1";
    const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

    fn target(path: &str) -> ImagePath {
        ImagePath {
            link_target: Some(path.to_owned()),
        }
    }

    fn engine() -> FakeEngine {
        FakeEngine {
            image_paths: BTreeMap::from([
                (
                    format!("{ID}:{LINK}"),
                    target("/usr/local/cuda-12.9/compat/libcuda.so.575.57.08"),
                ),
                (
                    format!("{ID}:{LOADER}"),
                    target("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"),
                ),
            ]),
            ..FakeEngine::default()
        }
    }

    fn facts(id: &str) -> ImageFacts {
        ImageFacts {
            id: id.to_owned(),
            ..ImageFacts::default()
        }
    }

    fn probes(engine: &FakeEngine) -> Vec<String> {
        engine
            .calls()
            .into_iter()
            .filter(|call| call.starts_with("stat "))
            .collect()
    }

    #[tokio::test]
    async fn an_image_is_probed_once_per_path_and_its_answer_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = entry_path(dir.path(), ID);
        let engine = engine();
        let ask = |paths: &'static [&'static str]| {
            let (engine, cache) = (&engine, &cache);
            async move {
                image_paths_in(engine, Some(cache), &facts(ID), "img", paths)
                    .await
                    .unwrap()
            }
        };
        let compat = Some(target("/usr/local/cuda-12.9/compat/libcuda.so.575.57.08"));
        assert_eq!(ask(&[LINK]).await, std::slice::from_ref(&compat));
        assert_eq!(ask(&[LINK]).await, std::slice::from_ref(&compat));
        assert_eq!(probes(&engine).len(), 1);
        // Only the paths not known yet are probed, together, in one container; "missing" is
        // an answer too.
        let loader = Some(target("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
        let expected = [loader, compat, None];
        assert_eq!(ask(&[LOADER, LINK, "/absent"]).await, expected);
        assert_eq!(ask(&[LOADER, LINK, "/absent"]).await, expected);
        assert_eq!(
            probes(&engine),
            [
                format!("stat {ID}:{LINK}"),
                format!("stat {ID}:{LOADER},/absent")
            ]
        );
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&cache).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_corrupt_or_foreign_entry_is_ignored_and_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let cache = entry_path(dir.path(), ID);
        let engine = engine();
        image_paths_in(&engine, Some(&cache), &facts(ID), "img", &[LINK])
            .await
            .unwrap();
        let old_format = r#"{"format":1,"links":{"/usr/local/cuda/compat/libcuda.so.1":null}}"#;
        for text in ["{", "{\"format\":9,\"paths\":{}}", "[]", old_format] {
            std::fs::write(&cache, text).unwrap();
            let answer = image_paths_in(&engine, Some(&cache), &facts(ID), "img", &[LINK]).await;
            assert!(answer.unwrap()[0].is_some(), "{text}");
        }
        assert_eq!(probes(&engine).len(), 5);
        image_paths_in(&engine, Some(&cache), &facts(ID), "img", &[LINK])
            .await
            .unwrap();
        assert_eq!(probes(&engine).len(), 5);
    }

    #[tokio::test]
    async fn only_content_ids_are_remembered() {
        assert_eq!(content_id(ID), Some(ID));
        assert_eq!(content_id(&format!("sha256:{ID}")), Some(ID));
        for id in ["sha", "", "../../etc", &ID.to_uppercase(), &ID[1..]] {
            assert_eq!(content_id(id), None, "{id}");
        }
        // Without a cache the name is probed, every time; nothing asked, nothing probed.
        let engine = FakeEngine::default();
        for _ in 0..2 {
            image_paths_in(&engine, None, &facts("sha"), "img", &[LINK])
                .await
                .unwrap();
        }
        image_paths_in(&engine, None, &facts("sha"), "img", &[])
            .await
            .unwrap();
        assert_eq!(
            engine.calls(),
            [format!("stat img:{LINK}"), format!("stat img:{LINK}")]
        );
    }
}
