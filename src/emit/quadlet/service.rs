//! A session's `.container` unit as a plain systemd `.service`, for Podman without quadlet
//! (before 4.4: Debian 12 ships 4.3.1).
//!
//! The service is the one `podman generate systemd --new` writes: `podman run` with the
//! container's flags in `ExecStart=` (`--rm --replace -d`, a cid file under `%t`, conmon
//! outside the unit's cgroup and reporting readiness), `podman stop` and `podman rm` on the
//! cid file to end it. Its flags are the ones quadlet itself would put in `ExecStart=` for
//! the same `[Container]` keys, and every word goes through [`super::escape`]'s exec class,
//! whose quoting is systemd's own (with `%` and `$` doubled), so a value reaches podman as it
//! does through quadlet.

use std::fmt::Write as _;

use super::escape;
use super::unit::{Body, Container, Unit, with_header};
use crate::{Error, Result};

/// Where the service keeps its container's id.
const CIDFILE: &str = "--cidfile=%t/%n.ctr-id";

/// The `.service` file for `unit` (a `.container` unit), with podlab's header.
pub fn plain_service(unit: &Unit) -> Result<String> {
    let Body::Container(container) = &unit.body else {
        return Err(Error::env(
            "internal error: only .container units have a plain service form",
        ));
    };
    let run = run_args(container);
    let escaped = |args: &[String]| -> Result<String> {
        let words: Vec<&str> = args.iter().map(String::as_str).collect();
        escape::exec("ExecStart", &words)
    };
    let global = if container.global_args.is_empty() {
        String::new()
    } else {
        format!("{} ", escaped(&container.global_args)?)
    };
    let mut body = String::new();
    let _ = writeln!(body, "[Unit]");
    let _ = writeln!(
        body,
        "Description={}",
        escape::raw("Description", &unit.description)?
    );
    let _ = writeln!(
        body,
        "Wants=network-online.target\nAfter=network-online.target\nRequiresMountsFor=%t/containers\n"
    );
    let _ = writeln!(body, "[Service]");
    let _ = writeln!(body, "Environment=PODMAN_SYSTEMD_UNIT=%n");
    if let Some(restart) = &unit.service.restart {
        let _ = writeln!(body, "Restart={}", escape::raw("Restart", restart)?);
    }
    let _ = writeln!(body, "TimeoutStartSec={}", unit.service.timeout_start_sec);
    let _ = writeln!(body, "TimeoutStopSec=70");
    if !unit.service.success_exit_status.is_empty() {
        let codes: Vec<String> = unit
            .service
            .success_exit_status
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(body, "SuccessExitStatus={}", codes.join(" "));
    }
    // A cid file left by a container that ended without the service (podman 4.3's `rm
    // --cidfile` keeps the file) would make the next `run --cidfile` refuse to start.
    let _ = writeln!(body, "ExecStartPre=/bin/rm -f %t/%n.ctr-id");
    let _ = writeln!(
        body,
        "ExecStart=podman {global}run {CIDFILE} --cgroups=no-conmon --rm --sdnotify=conmon --replace -d {}",
        escaped(&run)?
    );
    let _ = writeln!(
        body,
        "ExecStop=podman {global}stop --ignore -t 10 {CIDFILE}"
    );
    let _ = writeln!(
        body,
        "ExecStopPost=podman {global}rm -f --ignore -t 10 {CIDFILE}"
    );
    let _ = writeln!(body, "Type=notify\nNotifyAccess=all");
    if !unit.install.wanted_by.is_empty() {
        let _ = writeln!(body, "\n[Install]");
        for target in &unit.install.wanted_by {
            let _ = writeln!(body, "WantedBy={target}");
        }
    }
    Ok(with_header(&body))
}

/// The `podman run` arguments after the fixed ones, from the `[Container]` keys, as quadlet
/// turns them into flags. Every one of them goes through the escaping; the fixed words hold
/// the `%t` and `%n` specifiers that systemd must expand.
fn run_args(container: &Container) -> Vec<String> {
    let mut run: Vec<String> = Vec::new();
    let mut flag = |name: &str, value: &Option<String>| {
        if let Some(value) = value {
            run.push(format!("{name}={value}"));
        }
    };
    flag("--name", &container.container_name);
    flag("--userns", &container.user_ns);
    flag("--shm-size", &container.shm_size);
    flag("--workdir", &container.working_dir);
    flag("--health-cmd", &container.health_cmd);
    flag("--health-interval", &container.health_interval);
    if container.security_label_disable {
        run.push("--security-opt=label=disable".to_owned());
    }
    if container.run_init {
        run.push("--init".to_owned());
    }
    let lists = [
        ("--device", &container.add_device),
        ("--volume", &container.volume),
        ("--publish", &container.publish_port),
        ("--secret", &container.secret),
    ];
    for (name, values) in lists {
        run.extend(values.iter().map(|value| format!("{name}={value}")));
    }
    for (name, map) in [
        ("--env", &container.environment),
        ("--label", &container.label),
    ] {
        run.extend(
            map.iter()
                .map(|(key, value)| format!("{name}={key}={value}")),
        );
    }
    run.extend(container.podman_args.iter().cloned());
    run.push(container.image.clone());
    run.extend(container.exec.iter().cloned());

    run
}
