//! Running a session's container to completion over the socket: plan it on this host, create
//! it, attach before start (so no output is lost), start, stream output while waiting, and
//! clean up on every path (a failed start, Ctrl-C, a lost socket) so no container is left
//! behind.

use tokio::io::AsyncWriteExt;

use crate::capabilities::Capabilities;
use crate::emit::podman::create_body;
use crate::engine::frames::demultiplex;
use crate::engine::{ConnectOptions, Engine};
pub use crate::plan::Mode;
use crate::plan::{self, ContainerPlan, UserNs};
use crate::session::{ImageSource, Session};
use crate::{Error, Result};

/// Makes the host decisions for `session`: image user, GPUs, SELinux, name.
pub async fn plan_container<E: Engine>(
    engine: &E,
    caps: &Capabilities,
    session: &Session,
    mode: Mode,
) -> Result<ContainerPlan> {
    let image = session.image.reference();
    let Some(facts) = engine.inspect_image(image).await? else {
        let hint = match &session.image {
            ImageSource::Build { .. } => "build it first: podlab build".to_owned(),
            ImageSource::Name(name) => {
                format!("pull it first: podlab pull {name} (or podman load / podman import it)")
            }
        };
        return Err(Error::user(format!("image {image} is not in the local store")).hint(hint));
    };
    let passwd = if plan::needs_passwd(&facts.user) {
        engine.image_file(image, "/etc/passwd").await?
    } else {
        None
    };
    let userns = plan::plan_user(session.user_map, &facts.user, passwd.as_deref());
    let mut gpus = plan::plan_gpus(
        &session.gpus,
        &session.driver_roots,
        &crate::cdi::store::podman_spec_dirs(caps),
    )?;
    if !gpus.names.is_empty() && plan::is_cuda_image(&facts.env) {
        let compat = engine.image_link(image, plan::COMPAT_LIBCUDA).await?;
        plan::plan_compat(&mut gpus, compat.as_deref(), &facts.env);
    }
    for notice in &gpus.notices {
        tracing::warn!("{}", notice.message);
    }
    match &gpus.mode {
        plan::GpuMode::None => tracing::info!("GPUs: none"),
        plan::GpuMode::Cdi(names) => tracing::info!("GPUs: by CDI name, {}", names.join(" ")),
        plan::GpuMode::Inline(edits) => tracing::info!(
            "GPUs: inline edits, {} device nodes and {} mounts (no CDI spec Podman reads is fresh)",
            edits.device_nodes.len(),
            edits.mounts.len()
        ),
    }
    let home =
        (userns == UserNs::KeepId && !session.env.contains_key("HOME")).then(|| "/tmp".to_owned());
    Ok(ContainerPlan {
        name: session
            .name
            .clone()
            .unwrap_or_else(|| plan::container_name(&session.project, mode.kind)),
        mode,
        userns,
        home,
        label_disable: !gpus.names.is_empty() && plan::selinux_enforcing(),
        gpus,
        init: true,
    })
}

/// Creates and starts the container without attaching; returns its name.
pub async fn start_detached<E: Engine>(
    engine: &E,
    session: &Session,
    plan: &ContainerPlan,
) -> Result<String> {
    let id = engine.create_container(&create_body(session, plan)).await?;
    if let Err(err) = engine.start_container(&id).await {
        let _ = engine.stop_and_remove(&id, 0).await;
        return Err(err);
    }
    Ok(plan.name.clone())
}

/// Runs the container with its output on our stdout/stderr; returns its exit code (130 when
/// interrupted, after stopping and removing it).
pub async fn run_attached<E: Engine>(
    engine: &E,
    session: &Session,
    plan: &ContainerPlan,
) -> Result<i32> {
    let body = create_body(session, plan);
    tracing::debug!(body = %body, "creating the container");
    let id = engine.create_container(&body).await?;
    let job = async {
        let mut stream = engine.attach(&id, false).await?;
        engine.start_container(&id).await?;
        let pump = async {
            let (mut stdout, mut stderr) = (tokio::io::stdout(), tokio::io::stderr());
            let result = demultiplex(&mut stream, &mut stdout, &mut stderr).await;
            let _ = stdout.flush().await;
            result
        };
        let (pumped, code) = tokio::join!(pump, engine.wait_container(&id));
        pumped?;
        code
    };
    let outcome = tokio::select! {
        outcome = job => outcome,
        _ = tokio::signal::ctrl_c() => {
            tracing::warn!("interrupted: stopping {}", plan.name);
            engine.stop_and_remove(&id, 5).await?;
            return Ok(130);
        }
    };
    if outcome.is_err() {
        // A failed start (a port in use) or a lost stream: leave no container behind.
        let _ = engine.stop_and_remove(&id, 0).await;
    }
    outcome
}

/// After the socket died under a running session, reaches Podman again (a restarted socket, or
/// podlab's own service) and removes the container, so none is left behind; then returns `err`.
pub async fn remove_after_lost_socket(err: Error, connect: &ConnectOptions, name: &str) -> Error {
    if !err.message().starts_with("lost the") {
        return err;
    }
    if let Ok(connected) = crate::engine::connect(connect).await {
        use crate::engine::Engine as _;
        match connected.engine.stop_and_remove(name, 0).await {
            Ok(()) => tracing::warn!(
                "removed {name} through {}",
                connected.connection.socket.display()
            ),
            Err(cleanup) => tracing::warn!("could not remove {name}: {}", cleanup.message()),
        }
    } else {
        tracing::warn!("{name} may still exist: remove it with podman rm -f {name}");
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::ImageFacts;
    use crate::engine::fake::FakeEngine;

    use std::collections::BTreeMap;

    fn session() -> Session {
        Session {
            name: Some("demo-run-1".into()),
            env: BTreeMap::from([("A".to_owned(), "1".to_owned())]),
            command: vec!["sh".into(), "-c".into(), "exit 3".into()],
            ..Session::example()
        }
    }

    fn engine() -> FakeEngine {
        FakeEngine {
            images: BTreeMap::from([(
                "localhost/img".to_owned(),
                ImageFacts {
                    id: "sha".into(),
                    user: "1000:1000".into(),
                    env: Vec::new(),
                },
            )]),
            exit_code: 3,
            output: b"hello\n".to_vec(),
            ..FakeEngine::default()
        }
    }

    const MODE: Mode = Mode {
        kind: "run",
        tty: false,
        stdin: false,
        remove: true,
    };

    #[tokio::test]
    async fn runs_to_the_exit_code_with_attach_before_start() {
        let engine = engine();
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let plan = plan_container(&engine, &caps, &session(), MODE)
            .await
            .unwrap();
        assert_eq!(
            plan.userns,
            UserNs::KeepIdTo {
                uid: 1000,
                gid: 1000
            }
        );
        assert_eq!(run_attached(&engine, &session(), &plan).await.unwrap(), 3);
        assert_eq!(
            engine.calls(),
            [
                "inspect localhost/img",
                "create",
                "attach c0ffee stdin=false",
                "start c0ffee",
                "wait c0ffee"
            ]
        );
        let body = engine.bodies.lock().unwrap()[0].clone();
        assert_eq!(
            body["userns"],
            serde_json::json!({"nsmode": "keep-id", "value": "uid=1000,gid=1000"})
        );
        assert_eq!(body["shm_size"], 1 << 30);
        assert_eq!(body["remove"], true);
        assert_eq!(body["labels"]["io.podlab.project"], "demo");
        assert_eq!(
            body["mounts"][0]["options"],
            serde_json::json!(["rbind", "rw"])
        );
    }

    /// Issue 12: a CUDA image whose compat libcuda is newer than the host driver (a T4 with
    /// 570 here) gets it first on `LD_LIBRARY_PATH`; the probe reads only the link, and only
    /// for CUDA images.
    #[tokio::test]
    async fn forward_compat_libs_of_a_cuda_image_reach_the_container() {
        let fixture = crate::gpu::fixtures::usr_local_nvidia();
        let session = Session {
            gpus: crate::session::GpuRequest::All,
            driver_roots: fixture.roots.clone(),
            ..session()
        };
        let mut engine = engine();
        engine.links = BTreeMap::from([(
            format!("localhost/img:{}", plan::COMPAT_LIBCUDA),
            "/usr/local/cuda-12.9/compat/libcuda.so.575.57.08".to_owned(),
        )]);
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let without_probe = plan_container(&engine, &caps, &session, MODE)
            .await
            .unwrap();
        assert!(without_probe.gpus.env.is_empty(), "not a CUDA image");
        assert!(!engine.calls().iter().any(|call| call.starts_with("link ")));
        if let Some(facts) = engine.images.get_mut("localhost/img") {
            facts.env = vec!["CUDA_VERSION=12.9.0".to_owned()];
        }
        let probed = plan_container(&engine, &caps, &session, MODE)
            .await
            .unwrap();
        assert!(
            engine
                .calls()
                .contains(&format!("link localhost/img:{}", plan::COMPAT_LIBCUDA))
        );
        run_attached(&engine, &session, &probed).await.unwrap();
        let body = engine.bodies.lock().unwrap()[0].clone();
        assert_eq!(body["env"]["LD_LIBRARY_PATH"], plan::COMPAT_DIR);
        assert_eq!(body["env"]["A"], "1");
    }

    #[tokio::test]
    async fn a_failed_start_removes_the_container() {
        let engine = FakeEngine {
            start_failure: Some("address already in use".into()),
            ..engine()
        };
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let plan = plan_container(&engine, &caps, &session(), MODE)
            .await
            .unwrap();
        assert!(run_attached(&engine, &session(), &plan).await.is_err());
        assert_eq!(
            engine.calls().last().map(String::as_str),
            Some("remove c0ffee timeout=0")
        );
    }

    #[tokio::test]
    async fn a_missing_image_is_a_user_error_with_a_hint() {
        let engine = FakeEngine::default();
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let err = plan_container(&engine, &caps, &session(), MODE)
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string().contains("podlab pull localhost/img"),
            "{err}"
        );
    }
}
