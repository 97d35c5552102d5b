//! `podlab config [session flags] [--json] [-- CMD...]`: prints the session that `podlab
//! shell` or `run` would start with the same flags, after merging them with `podlab.toml`
//! and the defaults, so that "which setting won?" has an answer without starting anything.

use toml_edit::{Array, ArrayOfTables, DocumentMut, Item, Table, value};

use super::session_args::{SessionArgs, current_dir};
use super::{print_result, to_json};
use crate::Result;
use crate::session::{ImageSource, Session};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    session: SessionArgs,
    /// Print JSON instead of TOML.
    #[arg(long)]
    json: bool,
    /// The command, as `podlab run` would get it.
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

pub fn run(args: Args) -> Result<u8> {
    let session = args.session.resolve(&current_dir()?, args.command)?;
    print_result(&if args.json {
        to_json(&session)?
    } else {
        render(&session)
    })?;
    Ok(0)
}

/// The session as TOML, with the keys of the JSON form; sizes and ports in flag syntax.
fn render(session: &Session) -> String {
    let mut doc = DocumentMut::new();
    let top = doc.as_table_mut();
    let path = |path: &std::path::Path| value(path.display().to_string());
    top.insert("project", value(&session.project));
    top.insert("project_dir", path(&session.project_dir));
    if let Some(file) = &session.config_file {
        top.insert("config_file", path(file));
    }
    if let Some(preset) = &session.preset {
        top.insert("preset", value(preset));
    }
    if let Some(name) = &session.name {
        top.insert("name", value(name));
    }
    top.insert("image", value(session.image.reference()));
    top.insert("gpus", value(session.gpus.to_string()));
    top.insert("shm_size", value(session.shm_size.to_string()));
    top.insert("workdir", value(&session.workdir));
    top.insert("user_map", value(session.user_map.to_string()));
    top.insert("driver_root", path(&session.driver_roots.driver_root));
    top.insert("dev_root", path(&session.driver_roots.dev_root));
    top.insert("command", value(session.command.iter().collect::<Array>()));
    let ports: Array = session.ports.iter().map(ToString::to_string).collect();
    top.insert("ports", value(ports));
    if let ImageSource::Build {
        containerfile,
        context,
        args,
        tag,
    } = &session.image
    {
        let mut build = Table::new();
        build.insert("containerfile", path(containerfile));
        build.insert("context", path(context));
        build.insert("tag", value(tag));
        if !args.is_empty() {
            let args: Table = args.iter().map(|(k, v)| (k, value(v))).collect();
            build.insert("args", Item::Table(args));
        }
        top.insert("build", Item::Table(build));
    }
    let env: Table = session.env.iter().map(|(k, v)| (k, value(v))).collect();
    top.insert("env", Item::Table(env));
    let mut mounts = ArrayOfTables::new();
    for mount in &session.mounts {
        let mut table = Table::new();
        table.insert("host", path(&mount.host));
        table.insert("container", value(&mount.container));
        table.insert("read_only", value(mount.read_only));
        mounts.push(table);
    }
    top.insert("mounts", Item::ArrayOfTables(mounts));
    doc.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Inputs, ProjectFile, Settings, resolve};

    #[test]
    fn renders_readable_toml() {
        let dir = tempfile::tempdir().unwrap();
        let file = ProjectFile::parse(
            "gpus = [0, 1]\nports = [\"[::1]:1:2\"]\n[build]\nargs = { A = \"1\" }\n[env]\nK = \"v \\\"q\\\"\"\n",
            dir.path().join("podlab.toml"),
            "podlab.toml",
        )
        .unwrap();
        std::fs::write(dir.path().join("Containerfile"), "FROM x\n").unwrap();
        let session = resolve(Inputs {
            cwd: dir.path(),
            home: None,
            file: Some(file),
            flags: Settings::default(),
            preset: None,
            name: None,
        })
        .unwrap();
        let text = render(&session);
        let dir_text = dir.path().display();
        for line in [
            "gpus = \"0,1\"\n".to_owned(),
            "shm_size = \"16g\"\n".to_owned(),
            "ports = [\"[::1]:1:2/tcp\"]\n".to_owned(),
            "command = []\n".to_owned(),
            format!("[build]\ncontainerfile = \"{dir_text}/Containerfile\"\n"),
            "[build.args]\nA = \"1\"\n".to_owned(),
            "[env]\nK = 'v \"q\"'\n".to_owned(),
            format!(
                "[[mounts]]\nhost = \"{dir_text}\"\ncontainer = \"/workspace\"\nread_only = false\n"
            ),
        ] {
            assert!(text.contains(&line), "{line:?} in\n{text}");
        }
        assert!(text.parse::<DocumentMut>().is_ok(), "valid TOML");
    }
}
