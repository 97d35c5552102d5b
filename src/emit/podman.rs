//! The libpod `POST /containers/create` body (Podman's SpecGenerator) for a session.
//!
//! Only serialization happens here: every decision was made while resolving the session and
//! planning it on this host, so the same inputs always give the same body, and tests can
//! check it field by field.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::plan::{ContainerPlan, GpuMode, UserNs};
use crate::session::{Port, Protocol, Session};

/// Labels podlab puts on its containers; `podlab ps` finds them by these.
pub mod labels {
    pub const PROJECT: &str = "io.podlab.project";
    pub const KIND: &str = "io.podlab.kind";
    pub const GPUS: &str = "io.podlab.gpus";
    pub const PORTS: &str = "io.podlab.ports";
    pub const PRESET: &str = "io.podlab.preset";
}

/// `127.0.0.1:8888->8888/tcp`, as `podlab ps` shows it.
pub fn port_text(port: &Port) -> String {
    let protocol = protocol(port);
    let ip = if port.host_ip.is_ipv6() {
        format!("[{}]", port.host_ip)
    } else {
        port.host_ip.to_string()
    };
    format!(
        "{ip}:{}->{}/{protocol}",
        port.host_port, port.container_port
    )
}

/// The create body for `session` as planned.
pub fn create_body(session: &Session, plan: &ContainerPlan) -> Value {
    let mut mounts: Vec<Value> = session
        .mounts
        .iter()
        .map(|mount| {
            bind(
                &mount.host.display().to_string(),
                &mount.container,
                &[if mount.read_only { "ro" } else { "rw" }],
            )
        })
        .collect();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut devices: Vec<Value> = Vec::new();
    match &plan.gpus.mode {
        GpuMode::None => {}
        GpuMode::Cdi(names) => devices.extend(names.iter().map(|name| json!({ "path": name }))),
        GpuMode::Inline(edits) => {
            devices.extend(edits.device_nodes.iter().map(|node| {
                let path = match &node.host_path {
                    Some(host) if host != &node.path => format!("{host}:{}", node.path),
                    _ => node.path.clone(),
                };
                json!({ "path": path })
            }));
            mounts.extend(edits.mounts.iter().map(|mount| {
                let options: Vec<&str> = mount.options.iter().map(String::as_str).collect();
                bind(&mount.host_path, &mount.container_path, &options)
            }));
            env.extend(edits.env.iter().filter_map(|entry| {
                entry
                    .split_once('=')
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
            }));
        }
    }
    env.extend(plan.gpus.env.iter().cloned());
    if let Some(home) = &plan.home {
        env.insert("HOME".to_owned(), home.clone());
    }
    env.extend(
        session
            .env
            .iter()
            .map(|(key, value)| (key.clone(), value.clone())),
    );

    let mut body = json!({
        "name": plan.name,
        "image": session.image.reference(),
        "work_dir": session.workdir,
        "terminal": plan.mode.tty,
        "stdin": plan.mode.stdin,
        "remove": plan.mode.remove,
        "init": plan.init,
        "userns": userns(plan.userns),
        "shm_size": session.shm_size.0,
        "mounts": mounts,
        "env": env,
        "labels": container_labels(session, plan),
    });
    if let Some(object) = body.as_object_mut() {
        if !session.command.is_empty() {
            object.insert("command".to_owned(), json!(session.command));
        }
        if !devices.is_empty() {
            object.insert("devices".to_owned(), Value::Array(devices));
        }
        if !session.ports.is_empty() {
            object.insert(
                "portmappings".to_owned(),
                session.ports.iter().map(port_mapping).collect(),
            );
        }
        if plan.label_disable {
            object.insert("selinux_opts".to_owned(), json!(["disable"]));
        }
    }
    body
}

fn bind(source: &str, destination: &str, options: &[&str]) -> Value {
    let mut all = vec!["rbind"];
    all.extend(options.iter().filter(|option| **option != "rbind"));
    json!({ "destination": destination, "source": source, "type": "bind", "options": all })
}

fn userns(userns: UserNs) -> Value {
    match userns {
        UserNs::KeepId => json!({ "nsmode": "keep-id" }),
        UserNs::KeepIdTo { uid, gid } => {
            json!({ "nsmode": "keep-id", "value": format!("uid={uid},gid={gid}") })
        }
    }
}

fn protocol(port: &Port) -> &'static str {
    match port.protocol {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

fn port_mapping(port: &Port) -> Value {
    json!({
        "host_ip": port.host_ip.to_string(),
        "host_port": port.host_port,
        "container_port": port.container_port,
        "protocol": protocol(port),
    })
}

/// The labels `podlab ps` finds a session by (shared with the quadlet units).
pub fn container_labels(session: &Session, plan: &ContainerPlan) -> BTreeMap<String, String> {
    let gpus = if plan.gpus.names.is_empty() {
        "none".to_owned()
    } else {
        plan.gpus.names.join(",")
    };
    let mut labels = BTreeMap::from([
        (labels::PROJECT.to_owned(), session.project.clone()),
        (labels::KIND.to_owned(), plan.mode.kind.to_owned()),
        (labels::GPUS.to_owned(), gpus),
        (
            labels::PORTS.to_owned(),
            session
                .ports
                .iter()
                .map(port_text)
                .collect::<Vec<_>>()
                .join(","),
        ),
    ]);
    if let Some(preset) = &session.preset {
        labels.insert(labels::PRESET.to_owned(), preset.clone());
    }
    labels
}
