//! Answers about an image that cost a probe container (create, stat, remove: three more
//! requests, tens of milliseconds, on every GPU run of a CUDA image), remembered by image ID.
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

use super::{Engine, ImageFacts};
use crate::Result;
use crate::host::private_cache;

/// Bumped when an entry's meaning changes; an entry of another format is ignored.
const FORMAT: u32 = 1;

/// What is known of one image.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Entry {
    format: u32,
    /// [`Engine::image_link`] answers by path: the link's target, or `None` (not a link, or
    /// absent).
    links: BTreeMap<String, Option<String>>,
}

/// [`Engine::image_link`] of the image `facts` describe (named `image`), remembered.
pub async fn image_link<E: Engine>(
    engine: &E,
    facts: &ImageFacts,
    image: &str,
    path: &str,
) -> Result<Option<String>> {
    let cache =
        content_id(&facts.id).and_then(|id| private_cache::path(&format!("images/{id}.json")));
    image_link_in(engine, cache.as_deref(), facts, image, path).await
}

async fn image_link_in<E: Engine>(
    engine: &E,
    cache: Option<&Path>,
    facts: &ImageFacts,
    image: &str,
    path: &str,
) -> Result<Option<String>> {
    let Some(cache) = cache else {
        return engine.image_link(image, path).await;
    };
    let mut entry = private_cache::read(cache)
        .and_then(|text| serde_json::from_str::<Entry>(&text).ok())
        .filter(|entry| entry.format == FORMAT)
        .unwrap_or_default();
    if let Some(answer) = entry.links.get(path) {
        return Ok(answer.clone());
    }
    let answer = engine.image_link(&facts.id, path).await?;
    entry.format = FORMAT;
    entry.links.insert(path.to_owned(), answer.clone());
    if let Ok(text) = serde_json::to_string(&entry) {
        private_cache::write(cache, &text, "what the image holds");
    }
    Ok(answer)
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

    fn engine() -> FakeEngine {
        FakeEngine {
            links: BTreeMap::from([(
                format!("{ID}:{LINK}"),
                "/usr/local/cuda-12.9/compat/libcuda.so.575.57.08".to_owned(),
            )]),
            ..FakeEngine::default()
        }
    }

    fn facts(id: &str) -> ImageFacts {
        ImageFacts {
            id: id.to_owned(),
            ..ImageFacts::default()
        }
    }

    fn probes(engine: &FakeEngine) -> usize {
        engine
            .calls()
            .iter()
            .filter(|call| call.starts_with("link "))
            .count()
    }

    #[tokio::test]
    async fn an_image_is_probed_once_per_path_and_its_answer_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let cache = entry_path(dir.path(), ID);
        let engine = engine();
        let ask = |path: &'static str| {
            let (engine, cache) = (&engine, &cache);
            async move {
                image_link_in(engine, Some(cache), &facts(ID), "img", path)
                    .await
                    .unwrap()
            }
        };
        let target = Some("/usr/local/cuda-12.9/compat/libcuda.so.575.57.08".to_owned());
        assert_eq!(ask(LINK).await, target);
        assert_eq!(ask(LINK).await, target);
        assert_eq!(probes(&engine), 1);
        // "Not there" is an answer too.
        assert_eq!(ask("/absent").await, None);
        assert_eq!(ask("/absent").await, None);
        assert_eq!(probes(&engine), 2);
        // The probe ran on the ID the answer is kept under, not on the name.
        assert!(engine.calls().contains(&format!("link {ID}:{LINK}")));
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
        image_link_in(&engine, Some(&cache), &facts(ID), "img", LINK)
            .await
            .unwrap();
        for text in ["{", "{\"format\":9,\"links\":{}}", "[]"] {
            std::fs::write(&cache, text).unwrap();
            let answer = image_link_in(&engine, Some(&cache), &facts(ID), "img", LINK).await;
            assert!(answer.unwrap().is_some(), "{text}");
        }
        assert_eq!(probes(&engine), 4);
        image_link_in(&engine, Some(&cache), &facts(ID), "img", LINK)
            .await
            .unwrap();
        assert_eq!(probes(&engine), 4);
    }

    #[tokio::test]
    async fn only_content_ids_are_remembered() {
        assert_eq!(content_id(ID), Some(ID));
        assert_eq!(content_id(&format!("sha256:{ID}")), Some(ID));
        for id in ["sha", "", "../../etc", &ID.to_uppercase(), &ID[1..]] {
            assert_eq!(content_id(id), None, "{id}");
        }
        // Without a cache the name is probed, every time.
        let engine = FakeEngine::default();
        for _ in 0..2 {
            image_link_in(&engine, None, &facts("sha"), "img", LINK)
                .await
                .unwrap();
        }
        assert_eq!(
            engine.calls(),
            [format!("link img:{LINK}"), format!("link img:{LINK}")]
        );
    }
}
