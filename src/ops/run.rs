//! Running a session's container to completion over the socket: plan it on this host, create
//! it, attach before start (so no output is lost), start, stream output while waiting. A job
//! that could not start is removed, as is one podlab is told to stop (Ctrl-C, `SIGTERM`,
//! `SIGHUP`, `SIGQUIT`); a job that runs is never removed because the socket went away: podlab
//! follows it again through a socket that answers, or leaves it running and says how to
//! follow it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::capabilities::Capabilities;
use crate::emit::podman::create_body;
use crate::engine::frames::demultiplex;
use crate::engine::{ConnectOptions, Engine, Stdio, http};
use crate::host::signals::{Interrupt, StopSignals};
pub use crate::plan::Mode;
use crate::plan::{self, ContainerPlan, UserNs};
use crate::session::{ImageSource, Session};
use crate::{Error, Result};

/// Makes the host decisions for `session`: image user, GPUs, SELinux, name. GPU discovery
/// (file reads and ELF headers, a few milliseconds) runs on a blocking thread while Podman
/// answers the image questions, so a GPU session waits for the slower of the two, not both.
pub async fn plan_container<E: Engine>(
    engine: &E,
    caps: &Capabilities,
    session: &Session,
    mode: Mode,
) -> Result<ContainerPlan> {
    let gpus = {
        let (request, roots) = (session.gpus.clone(), session.driver_roots.clone());
        let spec_dirs = crate::cdi::store::podman_spec_dirs(caps);
        tokio::task::spawn_blocking(move || plan::plan_gpus(&request, &roots, &spec_dirs))
    };
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
    let mut gpus = gpus
        .await
        .map_err(|err| Error::env(format!("GPU discovery did not finish: {err}")))??;
    if !gpus.names.is_empty() {
        // One probe container, its answers remembered per image ID.
        let probes = plan::image_probes(matches!(gpus.mode, plan::GpuMode::Inline(_)), &facts.env);
        let answers =
            crate::engine::image_cache::image_paths_or_unknown(engine, &facts, image, &probes)
                .await;
        plan::fit_to_image(&mut gpus, &session.env, &facts.env, |path| {
            probes
                .iter()
                .position(|probe| *probe == path)
                .and_then(|index| answers.get(index).cloned().flatten())
        })?;
    }
    for notice in &gpus.notices {
        tracing::warn!("{}", notice.message);
    }
    match &gpus.mode {
        plan::GpuMode::None => tracing::info!("GPUs: none"),
        plan::GpuMode::Cdi(names) => tracing::info!("GPUs: by CDI name, {}", names.join(" ")),
        plan::GpuMode::Inline(edits) => tracing::info!(
            "GPUs: inline edits, {} device nodes and {} mounts for driver capabilities {} (no CDI spec Podman reads is fresh)",
            edits.device_nodes.len(),
            edits.mounts.len(),
            gpus.capabilities.unwrap_or_default()
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

/// How long podlab tries to reach Podman again after the socket died under a running job
/// (a socket-activated service comes back at the next connection; podlab's own is restarted
/// at once) before it leaves the job running and says how to follow it.
const RECONNECT_WINDOW: Duration = Duration::from_secs(30);

/// How long an interrupted job gets between its stop signal and SIGKILL. Its init (when it
/// has one) passes SIGTERM on to the command; a plain shell as PID 1 ignores it, so this is
/// at most what that costs before the removal.
const STOP_TIMEOUT_SECS: u32 = 5;

/// Runs the container with its output on our stdout/stderr; returns its exit code, or 128 +
/// the signal's number when podlab was told to stop (`SIGINT`, `SIGTERM`, `SIGHUP`,
/// `SIGQUIT`: the job is stopped and removed first).
///
/// A failure before the job runs (a failed start, a port in use) removes the container. Once
/// it runs, a lost connection never removes it: `reconnect` reaches Podman again (the user's
/// socket when it is back, else podlab's own service) and the run follows the same container
/// to its exit code; when no Podman answers within [`RECONNECT_WINDOW`], the job is left
/// running and the error says how to follow it.
pub async fn run_attached<E, R, F>(
    engine: &E,
    session: &Session,
    plan: &ContainerPlan,
    reconnect: impl Fn() -> F,
) -> Result<i32>
where
    E: Engine,
    R: Engine,
    F: Future<Output = Result<R>>,
{
    let mut signals = StopSignals::install()?;
    let body = create_body(session, plan);
    tracing::debug!(body = %body, "creating the container");
    let id = engine.create_container(&body).await?;
    let started = async {
        let stream = engine.attach(&id, false).await?;
        engine.start_container(&id).await?;
        Ok::<_, Error>(stream)
    };
    let stream = tokio::select! {
        started = started => match started {
            Ok(stream) => stream,
            Err(err) => {
                // A failed start (a port in use, a missing command): leave no container behind.
                let _ = engine.stop_and_remove(&id, 0).await;
                return Err(err);
            }
        },
        interrupt = signals.next() => return stop(engine, &id, &plan.name, interrupt).await,
    };
    let lost = tokio::select! {
        outcome = follow(engine, &id, stream) => match outcome {
            Ok(exited) => return exited.outcome(&session.command),
            Err(err) => err,
        },
        interrupt = signals.next() => return stop(engine, &id, &plan.name, interrupt).await,
    };
    let job = (plan.name.as_str(), session.command.as_slice());
    follow_after_loss(job, lost, &mut signals, reconnect, RECONNECT_WINDOW).await
}

/// Streams the running job's output until it exits. An `Err` is a lost connection, never
/// the job's own failure.
async fn follow<E: Engine>(engine: &E, id: &str, mut stream: Stdio) -> Result<Exited> {
    let mut stderr = Head::new(tokio::io::stderr());
    let pump = async {
        let mut stdout = tokio::io::stdout();
        let result = demultiplex(&mut stream, &mut stdout, &mut stderr).await;
        let _ = stdout.flush().await;
        result
    };
    let (pumped, code) = tokio::join!(pump, engine.wait_container(id));
    let code = code?;
    if let Err(err) = pumped {
        tracing::debug!("after the exit: {err}");
    }
    Ok(Exited {
        code,
        stderr_head: stderr.head,
    })
}

/// A job that ran to its exit.
struct Exited {
    code: i32,
    /// The first bytes it wrote to stderr.
    stderr_head: Vec<u8>,
}

impl Exited {
    /// Its exit code; a `command` the init could not exec is the same 127 or 126 error as
    /// without an init ([`http::init_exec_failure`]).
    fn outcome(self, command: &[String]) -> Result<i32> {
        if self.code == 1 {
            let what = format!("cannot run {}", command.join(" "));
            if let Some(err) = http::init_exec_failure(&what, &self.stderr_head) {
                return Err(err);
            }
        }
        Ok(self.code)
    }
}

/// How much of the job's stderr [`Head`] keeps: the init's one-line report fits.
const HEAD_BYTES: usize = 256;

/// A writer that passes everything through and keeps the first [`HEAD_BYTES`] written.
struct Head<W> {
    inner: W,
    head: Vec<u8>,
}

impl<W> Head<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            head: Vec::new(),
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Head<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(written)) = polled {
            let keep = written.min(HEAD_BYTES.saturating_sub(this.head.len()));
            this.head
                .extend_from_slice(buf.get(..keep).unwrap_or_default());
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Stops and removes the job podlab was told to stop; the exit code that reports the signal.
async fn stop<E: Engine>(engine: &E, id: &str, name: &str, interrupt: Interrupt) -> Result<i32> {
    tracing::warn!("{}: stopping and removing {name}", interrupt.signal);
    // A hangup comes from a closed terminal, whose `runuser` or `su` kills podlab 2 s later:
    // the removal must be done by then.
    let timeout = if interrupt == Interrupt::HUP {
        0
    } else {
        STOP_TIMEOUT_SECS
    };
    engine.stop_and_remove(id, timeout).await?;
    Ok(interrupt.code)
}

/// The connection to the running job (its name and command) was lost (`lost`): reaches Podman again (trying for
/// `window`) and follows the job to its exit, as often as the connection is lost, never
/// removing a job that runs.
async fn follow_after_loss<R, F>(
    (name, command): (&str, &[String]),
    mut lost: Error,
    signals: &mut StopSignals,
    reconnect: impl Fn() -> F,
    window: Duration,
) -> Result<i32>
where
    R: Engine,
    F: Future<Output = Result<R>>,
{
    loop {
        tracing::warn!(
            "{}: {name} keeps running; reaching podman again to follow it",
            lost.message()
        );
        let engine = tokio::select! {
            engine = reach(&reconnect, window) => engine,
            interrupt = signals.next() => {
                tracing::warn!("{}: {name} may still run: stop it with podlab stop {name}", interrupt.signal);
                return Ok(interrupt.code);
            }
        };
        let Some(engine) = engine else {
            return Err(Error::env(format!(
                "lost the podman socket under the job {name}, and no podman service answered within {} s; the job keeps running",
                window.as_secs()
            ))
            .hint(format!(
                "follow it with podlab logs -f {name} once a podman socket answers (podlab stop {name} stops it)"
            )));
        };
        let Some(facts) = engine.inspect_container(name).await? else {
            return Err(Error::env(format!(
                "the job {name} ended while the podman socket was down, and podman removed it: its exit code is lost"
            ))
            .hint("run it with --keep to keep an ended job for podlab logs"));
        };
        if !facts.running {
            tracing::warn!("{name} exited while the socket was down");
            let _ = engine.remove_container(&facts.id, false).await;
            return Ok(facts.exit_code);
        }
        let attached = async {
            let stream = engine.attach(&facts.id, false).await?;
            tracing::warn!("reattached to {name}");
            follow(&engine, &facts.id, stream).await
        };
        lost = tokio::select! {
            outcome = attached => match outcome {
                Ok(exited) => return exited.outcome(command),
                Err(err) => err,
            },
            interrupt = signals.next() => return stop(&engine, &facts.id, name, interrupt).await,
        };
    }
}

/// An engine that answers, tried once a second for `window`; `None` when none did.
async fn reach<R, F>(reconnect: &impl Fn() -> F, window: Duration) -> Option<R>
where
    R: Engine,
    F: Future<Output = Result<R>>,
{
    let deadline = tokio::time::Instant::now() + window;
    loop {
        match reconnect().await {
            Ok(engine) => return Some(engine),
            Err(err) => tracing::debug!("reconnecting: {err}"),
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// After the socket died under an interactive session (whose terminal cannot be given back),
/// reaches Podman again (a restarted socket, or podlab's own service) and removes the
/// container, so none is left behind; then returns `err`.
pub async fn remove_after_lost_socket(err: Error, connect: &ConnectOptions, name: &str) -> Error {
    if !err.message().starts_with("lost the") {
        return err;
    }
    if let Ok(connected) = crate::engine::connect(connect).await {
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
    use crate::engine::fake::FakeEngine;
    use crate::engine::{ImageFacts, ImagePath};

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

    /// A reconnect that never reaches Podman.
    async fn unreachable() -> Result<FakeEngine> {
        Err(Error::env("no podman answers"))
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
        assert_eq!(
            run_attached(&engine, &session(), &plan, unreachable)
                .await
                .unwrap(),
            3
        );
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
        engine.image_paths = BTreeMap::from([(
            format!("localhost/img:{}", plan::COMPAT_LIBCUDA),
            ImagePath {
                link_target: Some("/usr/local/cuda-12.9/compat/libcuda.so.575.57.08".to_owned()),
            },
        )]);
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let without_probe = plan_container(&engine, &caps, &session, MODE)
            .await
            .unwrap();
        assert!(without_probe.gpus.env.is_empty(), "not a CUDA image");
        let loader_only = format!("stat localhost/img:{}", plan::loader_path());
        assert_eq!(stats(&engine), std::slice::from_ref(&loader_only));
        if let Some(facts) = engine.images.get_mut("localhost/img") {
            facts.env = vec!["CUDA_VERSION=12.9.0".to_owned()];
        }
        let probed = plan_container(&engine, &caps, &session, MODE)
            .await
            .unwrap();
        // Both questions in one probe container.
        assert_eq!(
            stats(&engine),
            [
                loader_only,
                format!(
                    "stat localhost/img:{},{}",
                    plan::loader_path(),
                    plan::COMPAT_LIBCUDA
                )
            ]
        );
        run_attached(&engine, &session, &probed, unreachable)
            .await
            .unwrap();
        let body = engine.bodies.lock().unwrap()[0].clone();
        assert_eq!(body["env"]["LD_LIBRARY_PATH"], plan::COMPAT_DIR);
        assert_eq!(body["env"]["A"], "1");
    }

    fn stats(engine: &FakeEngine) -> Vec<String> {
        engine
            .calls()
            .into_iter()
            .filter(|call| call.starts_with("stat "))
            .collect()
    }

    /// A GPU session of the Debian fixture with `env`, in an image whose loader lives at
    /// `loader` (`None`: no glibc loader) and whose environment is `image_env`.
    async fn gpu_plan(
        env: &[(&str, &str)],
        loader: Option<&str>,
        image_env: &[&str],
    ) -> Result<(ContainerPlan, FakeEngine)> {
        let fixture = crate::gpu::fixtures::debian_like();
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let session = Session {
            gpus: crate::session::GpuRequest::All,
            driver_roots: fixture.roots.clone(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..session()
        };
        let mut engine = engine();
        for facts in engine.images.values_mut() {
            facts.env = image_env.iter().map(|entry| (*entry).to_owned()).collect();
        }
        if let Some(target) = loader {
            engine.image_paths = BTreeMap::from([(
                format!("localhost/img:{}", plan::loader_path()),
                ImagePath {
                    link_target: Some(target.to_owned()),
                },
            )]);
        }
        let plan = plan_container(&engine, &caps, &session, MODE).await?;
        Ok((plan, engine))
    }

    fn inline_edits(plan: &ContainerPlan) -> &crate::cdi::spec::ContainerEdits {
        let plan::GpuMode::Inline(edits) = &plan.gpus.mode else {
            panic!("expected inline edits, got {:?}", plan.gpus.mode)
        };
        edits
    }

    /// The file names mounted in `dir`, sorted.
    fn names_in(plan: &ContainerPlan, dir: &str) -> Vec<String> {
        let mut names: Vec<String> = inline_edits(plan)
            .mounts
            .iter()
            .filter_map(|m| m.container_path.strip_prefix(&format!("{dir}/")))
            .map(str::to_owned)
            .collect();
        names.sort();
        names
    }

    fn env_value(plan: &ContainerPlan, key: &str) -> Option<String> {
        let prefix = format!("{key}=");
        inline_edits(plan)
            .env
            .iter()
            .find_map(|entry| entry.strip_prefix(&prefix).map(str::to_owned))
    }

    const DEBIAN_LOADER: &str = "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
    const FEDORA_LOADER: &str = "/usr/lib64/ld-linux-x86-64.so.2";

    /// Issue 12: `podlab run --gpus all` started 1.14x slower than `--gpus none`; most of it
    /// was Podman bind-mounting every library three times (the multiarch directory,
    /// /usr/lib64, /usr/local/nvidia/lib64). With the image's loader known (one probe per
    /// image ID), libraries go only in the directory it searches, and Triton is pointed there.
    #[tokio::test]
    async fn gpu_session_start_mounts_only_the_library_dirs_the_loader_searches() {
        let [multiarch, lib64, nvidia] = crate::cdi::generate::container_library_dirs();
        let triton = crate::cdi::generate::TRITON_LIBCUDA_PATH;
        let cuda = "LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64";
        for image_env in [&[][..], &[cuda][..]] {
            let (debian, _) = gpu_plan(&[], Some(DEBIAN_LOADER), image_env).await.unwrap();
            let in_multiarch = names_in(&debian, &multiarch);
            assert!(
                in_multiarch.contains(&"libcuda.so".to_owned()),
                "{in_multiarch:?}"
            );
            assert!(in_multiarch.contains(&"libcuda.so.1".to_owned()));
            assert!(names_in(&debian, &lib64).is_empty() && names_in(&debian, &nvidia).is_empty());
            assert_eq!(
                env_value(&debian, triton).as_deref(),
                Some(multiarch.as_str())
            );

            let (fedora, _) = gpu_plan(&[], Some(FEDORA_LOADER), image_env).await.unwrap();
            assert_eq!(names_in(&fedora, &lib64), in_multiarch);
            assert!(
                names_in(&fedora, &multiarch).is_empty() && names_in(&fedora, &nvidia).is_empty()
            );
            assert_eq!(env_value(&fedora, triton).as_deref(), Some(lib64.as_str()));
        }
        // The session's own TRITON_LIBCUDA_PATH wins, and gets the libcuda names it needs.
        let (own, _) = gpu_plan(&[(triton, nvidia.as_str())], Some(DEBIAN_LOADER), &[])
            .await
            .unwrap();
        assert_eq!(names_in(&own, &nvidia), ["libcuda.so", "libcuda.so.1"]);

        // An image without glibc's loader: both default directories, and the copies in
        // /usr/local/nvidia/lib64 only where LD_LIBRARY_PATH leads there.
        let (unknown, _) = gpu_plan(&[], None, &[]).await.unwrap();
        assert_eq!(names_in(&unknown, &multiarch), names_in(&unknown, &lib64));
        assert_eq!(names_in(&unknown, &nvidia), ["libcuda.so", "libcuda.so.1"]);
        assert_eq!(
            env_value(&unknown, triton).as_deref(),
            Some(nvidia.as_str())
        );
        let (unknown_cuda, _) = gpu_plan(&[], None, &[cuda]).await.unwrap();
        assert_eq!(
            names_in(&unknown_cuda, &nvidia),
            names_in(&unknown_cuda, &multiarch)
        );
        let session = [("LD_LIBRARY_PATH", "/opt/lib"), (triton, "/opt/lib")];
        let (opt, _) = gpu_plan(&session, None, &[cuda]).await.unwrap();
        assert!(names_in(&opt, &nvidia).is_empty());
    }

    /// Issue 12: a CUDA session got the video, graphics and display libraries too, each one
    /// more bind mount at every start. As under NVIDIA's runtime, the container gets what its
    /// `NVIDIA_DRIVER_CAPABILITIES` names (the session's, else the image's), `compute,utility`
    /// when unset.
    #[tokio::test]
    async fn gpu_session_start_mounts_only_the_driver_capabilities_asked_for() {
        let [multiarch, ..] = crate::cdi::generate::container_library_dirs();
        let has = |plan: &ContainerPlan, name: &str| {
            names_in(plan, &multiarch).contains(&name.to_owned())
        };
        let (default, _) = gpu_plan(&[], Some(DEBIAN_LOADER), &[]).await.unwrap();
        assert!(has(&default, "libcuda.so.1") && has(&default, "libnvidia-ml.so.1"));
        assert!(has(&default, "libnvidia-ptxjitcompiler.so.1"));
        assert!(!has(&default, "libnvidia-encode.so.1") && !has(&default, "libnvcuvid.so.1"));
        let binaries = |plan: &ContainerPlan| names_in(plan, "/usr/bin");
        assert!(binaries(&default).contains(&"nvidia-smi".to_owned()));
        let full = {
            let fixture = crate::gpu::fixtures::debian_like();
            let inventory = crate::gpu::discover(&fixture.roots).unwrap();
            inventory.libraries.len()
        };

        let image_all = ["NVIDIA_DRIVER_CAPABILITIES=all"];
        let (everything, _) = gpu_plan(&[], Some(DEBIAN_LOADER), &image_all)
            .await
            .unwrap();
        assert!(has(&everything, "libnvidia-encode.so.1"));
        assert!(names_in(&everything, &multiarch).len() >= full);
        // The session's value wins over the image's.
        let video = [("NVIDIA_DRIVER_CAPABILITIES", "video")];
        let (only_video, _) = gpu_plan(&video, Some(DEBIAN_LOADER), &image_all)
            .await
            .unwrap();
        assert!(has(&only_video, "libnvcuvid.so.1") && !has(&only_video, "libcuda.so.1"));
        assert!(!binaries(&only_video).contains(&"nvidia-smi".to_owned()));

        // A name NVIDIA does not know: the session's is an error that says which names are,
        // the image's is ignored (with a warning).
        let bogus = [("NVIDIA_DRIVER_CAPABILITIES", "compute,gpu")];
        let err = gpu_plan(&bogus, Some(DEBIAN_LOADER), &[])
            .await
            .err()
            .unwrap();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.to_string()
                .contains("unknown driver capability \"gpu\""),
            "{err}"
        );
        assert!(
            err.hint_text().unwrap_or_default().contains("graphics"),
            "{err:?}"
        );
        let image_bogus = ["NVIDIA_DRIVER_CAPABILITIES=gpu,video"];
        let (ignored, _) = gpu_plan(&[], Some(DEBIAN_LOADER), &image_bogus)
            .await
            .unwrap();
        assert!(has(&ignored, "libnvcuvid.so.1") && !has(&ignored, "libcuda.so.1"));
    }

    /// The image probe is an optimization: when Podman refuses its container, the session
    /// still runs, with the GPU edits in every library directory.
    #[tokio::test]
    async fn a_refused_image_probe_leaves_the_gpu_edits_unfitted_and_the_run_going() {
        let fixture = crate::gpu::fixtures::debian_like();
        let session = Session {
            gpus: crate::session::GpuRequest::All,
            driver_roots: fixture.roots.clone(),
            ..session()
        };
        let engine = FakeEngine {
            probe_failure: Some("no space left on device".into()),
            ..engine()
        };
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let plan = plan_container(&engine, &caps, &session, MODE)
            .await
            .unwrap();
        let [multiarch, lib64, _] = crate::cdi::generate::container_library_dirs();
        assert!(!names_in(&plan, &multiarch).is_empty());
        assert_eq!(names_in(&plan, &multiarch), names_in(&plan, &lib64));
        run_attached(&engine, &session, &plan, unreachable)
            .await
            .unwrap();
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
        assert!(
            run_attached(&engine, &session(), &plan, unreachable)
                .await
                .is_err()
        );
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

    #[tokio::test]
    async fn l3_a_socket_lost_under_a_running_job_reattaches_and_never_removes_it() {
        let lost = FakeEngine {
            wait_failure: Some("lost the podman socket /run/x.sock: connection reset".into()),
            ..engine()
        };
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let plan = plan_container(&lost, &caps, &session(), MODE)
            .await
            .unwrap();
        let running = crate::engine::ContainerFacts {
            name: "demo-run-1".into(),
            id: "c0ffee".into(),
            state: "running".into(),
            running: true,
            exit_code: 0,
            tty: false,
            labels: BTreeMap::new(),
            health: None,
        };
        let again = FakeEngine {
            exit_code: 7,
            containers: BTreeMap::from([("demo-run-1".to_owned(), running)]),
            ..FakeEngine::default()
        };
        let reconnect = || {
            let again = again.clone();
            async move { Ok(again) }
        };
        let code = run_attached(&lost, &session(), &plan, reconnect)
            .await
            .unwrap();
        assert_eq!(
            code, 7,
            "the job's own exit code, through the new connection"
        );
        assert!(
            !lost.calls().iter().any(|call| call.starts_with("remove")),
            "{:?}",
            lost.calls()
        );
        assert_eq!(
            again.calls(),
            [
                "inspect-container demo-run-1",
                "attach c0ffee stdin=false",
                "wait c0ffee"
            ]
        );
    }

    #[tokio::test]
    async fn l3_a_job_that_ended_while_the_socket_was_down_reports_its_exit_code() {
        let lost = FakeEngine {
            wait_failure: Some("lost the podman socket /run/x.sock: connection reset".into()),
            ..engine()
        };
        let caps = Capabilities::for_version(crate::capabilities::PodmanVersion::new(5, 4, 2));
        let plan = plan_container(&lost, &caps, &session(), MODE)
            .await
            .unwrap();
        let exited = crate::engine::ContainerFacts {
            name: "demo-run-1".into(),
            id: "c0ffee".into(),
            state: "exited".into(),
            running: false,
            exit_code: 4,
            tty: false,
            labels: BTreeMap::new(),
            health: None,
        };
        let again = FakeEngine {
            containers: BTreeMap::from([("demo-run-1".to_owned(), exited)]),
            ..FakeEngine::default()
        };
        let reconnect = || {
            let again = again.clone();
            async move { Ok(again) }
        };
        assert_eq!(
            run_attached(&lost, &session(), &plan, reconnect)
                .await
                .unwrap(),
            4
        );
        assert_eq!(
            again.calls(),
            ["inspect-container demo-run-1", "rm c0ffee force=false"]
        );
    }

    #[tokio::test]
    async fn l3_when_no_podman_answers_the_job_is_left_running_with_the_way_to_follow_it() {
        let mut signals = StopSignals::install().unwrap();
        let lost = Error::env("lost the podman socket /run/x.sock: connection reset");
        let err = follow_after_loss(
            ("demo-run-1", &[]),
            lost,
            &mut signals,
            unreachable,
            Duration::from_millis(10),
        )
        .await
        .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("the job keeps running"), "{err}");
        assert!(
            err.hint_text()
                .is_some_and(|hint| hint.contains("podlab logs -f demo-run-1")),
            "{err}"
        );
    }
}
