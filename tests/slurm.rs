//! End-to-end: `podlab slurm generate`'s batch script submitted with `sbatch`, as the
//! unprivileged test user, to a real Slurm (munge, slurmctld and two slurmd, `n1` and `n2`,
//! on this machine, each with four GPUs over the fake /dev/nvidia0-3; see
//! tests/host/slurm.sh, which each test brings up idempotently). Checked from inside the
//! containers the job starts: one per node, each with its rank, the shared master and only
//! the GPUs Slurm gave its task; none left behind, also after `scancel`.

#![allow(
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed setup step must fail the test at once"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use common::{ContainerGuard, Run, TestHost, host};

const SLURM_ENV: &str = "/etc/podlab-test-slurm.env";

/// The jobs share the two nodes' GPUs: one test at a time.
static CLUSTER: Mutex<()> = Mutex::new(());

/// The cluster's facts, after `slurm.sh up`; `None` (printed why) when this host cannot run
/// one and `PODLAB_E2E` is not 1.
fn cluster() -> Option<(
    &'static TestHost,
    &'static HashMap<String, String>,
    MutexGuard<'static, ()>,
)> {
    static FACTS: OnceLock<Result<HashMap<String, String>, String>> = OnceLock::new();
    let host = host()?;
    let facts = FACTS.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/host/slurm.sh");
        let up = Command::new("bash")
            .arg(&script)
            .arg("up")
            .output()
            .map_err(|err| format!("cannot run {}: {err}", script.display()))?;
        if !up.status.success() {
            return Err(format!(
                "{} up failed:\n{}",
                script.display(),
                String::from_utf8_lossy(&up.stderr)
            ));
        }
        let text = fs::read_to_string(SLURM_ENV).map_err(|err| format!("{SLURM_ENV}: {err}"))?;
        Ok(text
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect())
    });
    match facts {
        Ok(facts) => Some((
            host,
            facts,
            CLUSTER.lock().unwrap_or_else(PoisonError::into_inner),
        )),
        Err(reason) if std::env::var("PODLAB_E2E").as_deref() == Ok("1") => {
            panic!("PODLAB_E2E=1 but the Slurm test cluster is not usable: {reason}")
        }
        Err(reason) => {
            eprintln!("skipping Slurm test: {reason}");
            None
        }
    }
}

/// `ARGS` of a Slurm command as the test user.
fn user(host: &TestHost, program: &str, args: &[&str]) -> Run {
    host.command(program, args).output()
}

/// Submits `script` as the user (with `NCCL_DEBUG=WARN` in its environment, which the job
/// must hand to the containers); the job id.
fn submit(host: &TestHost, project: &Path, args: &[&str]) -> String {
    let run = host
        .command("sbatch", args)
        .env("NCCL_DEBUG", "WARN")
        .cwd(project)
        .output();
    run.expect_code(0);
    run.stdout.trim().to_owned()
}

/// `scontrol show job -d ID` as `Key=Value` pairs, the per-node GRES lines as `node -> IDX`.
fn job(host: &TestHost, id: &str) -> (HashMap<String, String>, BTreeMap<String, String>) {
    let run = user(host, "scontrol", &["show", "job", "-d", id]);
    run.expect_code(0);
    let mut fields = HashMap::new();
    let mut gres = BTreeMap::new();
    for line in run.stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let get = |key: &str| {
            words
                .iter()
                .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        };
        if let (Some(node), Some(idx)) = (get("Nodes"), line.split("(IDX:").nth(1)) {
            gres.insert(node.to_owned(), idx.trim_end_matches(')').to_owned());
            continue;
        }
        for word in words {
            if let Some((key, value)) = word.split_once('=') {
                fields.insert(key.to_owned(), value.to_owned());
            }
        }
    }
    (fields, gres)
}

/// Waits until job `id`'s state is one of `states` (60 s at most); the state.
fn wait_state(host: &TestHost, id: &str, states: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let state = job(host, id).0.remove("JobState").unwrap_or_default();
        if states.contains(&state.as_str()) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} is still {state}, not {states:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `0-1` or `1,3` or `0-1,3`: the indices.
fn indices(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for part in text.split(',') {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to): (u32, u32) = (from.parse().expect("idx"), to.parse().expect("idx"));
                out.extend((from..=to).map(|i| i.to_string()));
            }
            None => {
                out.insert(part.to_owned());
            }
        }
    }
    out
}

/// The host names of a node list, in Slurm's order.
fn hostnames(host: &TestHost, list: &str) -> Vec<String> {
    let run = user(host, "scontrol", &["show", "hostnames", list]);
    run.expect_code(0);
    run.stdout.lines().map(str::to_owned).collect()
}

/// The user's containers whose names start with `prefix`.
fn containers(host: &TestHost, prefix: &str) -> Vec<String> {
    let run = user(host, "podman", &["ps", "-a", "--format", "{{.Names}}"]);
    run.expect_code(0);
    run.stdout
        .lines()
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Writes the batch script with `podlab slurm generate -o` in `project`; its path.
fn generate(host: &TestHost, project: &Path, name: &str, gpus: &str, command: &str) -> PathBuf {
    let script = project.join("job.sbatch");
    let script_arg = script.display().to_string();
    let root = host.nvidia_root.display().to_string();
    let run = host
        .podlab(&[
            "slurm",
            "generate",
            "-o",
            &script_arg,
            "--name",
            name,
            "--image",
            &host.glibc_image,
            "--driver-root",
            &root,
            "--shm-size",
            "64m",
            "--nodes",
            "2",
            "--gpus-per-node",
            gpus,
            "--",
            "sh",
            "-c",
            command,
        ])
        .cwd(project)
        .output();
    run.expect_code(0);
    assert_eq!(
        run.stdout.trim(),
        script_arg,
        "stdout names the file written"
    );
    script
}

/// Cancels the jobs when a test ends, failed or not.
struct JobGuard {
    ids: Vec<String>,
}

impl Drop for JobGuard {
    fn drop(&mut self) {
        for id in &self.ids {
            let _ = Command::new("scancel").arg(id).status();
        }
    }
}

#[test]
fn slurm_job_runs_one_container_per_node_with_its_rank_master_and_gpus() {
    let Some((host, facts, _lock)) = cluster() else {
        return;
    };
    let project = host.user_dir("slurm-run");
    let name = format!("slurm-{}", std::process::id());
    // It reports, then lives on a little while the test reads the allocation (Slurm forgets
    // which node had which GPUs once the job ends).
    let report = r#"echo "rank=$PET_NODE_RANK master=$PET_MASTER_ADDR:$PET_MASTER_PORT nnodes=$PET_NNODES nproc=$PET_NPROC_PER_NODE nccl=$NCCL_DEBUG gpus=$(ls /dev | grep -E '^nvidia[0-9]+$' | sort | tr '\n' ' ')"; sleep 3"#;
    let script = generate(host, &project, &name, "2", report);
    let mut jobs = JobGuard { ids: Vec::new() };
    // Take n2's first GPU, so that Slurm gives the job different GPUs on each node.
    let second = facts["PODLAB_TEST_SLURM_NODES"]
        .split(',')
        .nth(1)
        .expect("two nodes")
        .to_owned();
    let blocker = submit(
        host,
        &project,
        &[
            "--parsable",
            "-w",
            &second,
            "--gres=gpu:1",
            "-o",
            "/dev/null",
            "--wrap",
            "sleep 300",
        ],
    );
    jobs.ids.push(blocker.clone());
    wait_state(host, &blocker, &["RUNNING"]);

    let out = project.join("job.out");
    let out_arg = out.display().to_string();
    let script_arg = script.display().to_string();
    let id = submit(host, &project, &["--parsable", "-o", &out_arg, &script_arg]);
    jobs.ids.push(id.clone());
    let _containers = ContainerGuard {
        host,
        names: vec![format!("{name}-{id}-0"), format!("{name}-{id}-1")],
    };
    wait_state(host, &id, &["RUNNING"]);
    let (fields, gres) = job(host, &id);
    let state = wait_state(host, &id, &["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"]);
    let output = fs::read_to_string(&out).unwrap_or_default();
    assert_eq!(state, "COMPLETED", "job output:\n{output}");

    let nodes = hostnames(host, &fields["NodeList"]);
    assert_eq!(nodes.len(), 2, "{fields:?}");
    let lines: BTreeMap<String, String> = output
        .lines()
        .filter_map(|line| line.strip_prefix("rank="))
        .filter_map(|line| line.split_once(' '))
        .map(|(rank, rest)| (rank.to_owned(), rest.to_owned()))
        .collect();
    assert_eq!(
        lines.keys().collect::<Vec<_>>(),
        ["0", "1"],
        "one container per node, ranks 0 and 1:\n{output}"
    );
    let mut seen = Vec::new();
    for (rank, node) in nodes.iter().enumerate() {
        let line = &lines[&rank.to_string()];
        let expected = format!("master={}:29500 nnodes=2 nproc=2 nccl=WARN gpus=", nodes[0]);
        assert!(line.starts_with(&expected), "rank {rank}: {line}");
        let gpus: BTreeSet<String> = line
            .rsplit("gpus=")
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .map(|gpu| gpu.trim_start_matches("nvidia").to_owned())
            .collect();
        let given = indices(
            gres.get(node)
                .unwrap_or_else(|| panic!("no GRES of {node} in {gres:?}")),
        );
        assert_eq!(
            gpus, given,
            "rank {rank} on {node} sees other GPUs than Slurm gave it"
        );
        seen.push(given);
    }
    assert_ne!(
        seen[0], seen[1],
        "the blocker did not shift n2's GPUs: {gres:?}"
    );
    assert_eq!(
        containers(host, &format!("{name}-{id}-")),
        Vec::<String>::new(),
        "containers left behind"
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn scancel_leaves_no_container_behind() {
    let Some((host, facts, _lock)) = cluster() else {
        return;
    };
    let project = host.user_dir("slurm-cancel");
    let name = format!("cancel-{}", std::process::id());
    let script = generate(
        host,
        &project,
        &name,
        "1",
        "trap 'exit 0' TERM; sleep 600 & wait",
    );
    let script_arg = script.display().to_string();
    let out = project.join("job.out").display().to_string();
    let id = submit(host, &project, &["--parsable", "-o", &out, &script_arg]);
    let mut jobs = JobGuard {
        ids: vec![id.clone()],
    };
    let prefix = format!("{name}-{id}-");
    let _containers = ContainerGuard {
        host,
        names: vec![format!("{prefix}0"), format!("{prefix}1")],
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while containers(host, &prefix).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the job did not start two containers: {:?}\n{}",
            containers(host, &prefix),
            fs::read_to_string(&out).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let cancel = Command::new("scancel").arg(&id).status().expect("scancel");
    assert!(cancel.success());
    jobs.ids.clear();
    wait_state(host, &id, &["CANCELLED"]);
    // Slurm sends SIGTERM, then SIGKILL after KillWait: by then podlab run has had its time.
    let kill_wait: u64 = facts["PODLAB_TEST_SLURM_KILL_WAIT"]
        .parse()
        .expect("KillWait");
    let deadline = Instant::now() + Duration::from_secs(kill_wait + 10);
    while !containers(host, &prefix).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        containers(host, &prefix),
        Vec::<String>::new(),
        "scancel left containers behind\n{}",
        fs::read_to_string(&out).unwrap_or_default()
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn slurm_generate_never_overwrites_a_file_podlab_did_not_write() {
    let Some(host) = host() else { return };
    let project = host.user_dir("slurm-own");
    let mine = project.join("train.sh");
    fs::write(&mine, "#!/bin/bash\necho mine\n").expect("write");
    let mine_arg = mine.display().to_string();
    let run = host
        .podlab(&[
            "slurm",
            "generate",
            "-o",
            &mine_arg,
            "--image",
            &host.image,
            "--nodes",
            "2",
            "--gpus-per-node",
            "1",
        ])
        .cwd(&project)
        .output();
    run.expect_code(1);
    assert!(
        run.stderr.contains("was not written by podlab") && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
    assert_eq!(
        fs::read_to_string(&mine).expect("read"),
        "#!/bin/bash\necho mine\n"
    );
    let _ = fs::remove_dir_all(project);
}

#[test]
fn nodes_0_is_refused_with_a_hint() {
    let Some(host) = host() else { return };
    let project = host.user_dir("slurm-nodes-0");
    let run = host
        .podlab(&[
            "slurm",
            "generate",
            "--image",
            &host.image,
            "--nodes",
            "0",
            "--gpus-per-node",
            "1",
        ])
        .cwd(&project)
        .output();
    run.expect_code(1);
    assert!(run.stderr.contains("--nodes 0"), "{}", run.stderr);
    assert!(
        run.stderr.contains("hint: pass --nodes 1"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let _ = fs::remove_dir_all(project);
}

#[test]
fn gpus_per_node_over_what_gpus_names_is_refused() {
    let Some(host) = host() else { return };
    let project = host.user_dir("slurm-gpus");
    let run = host
        .podlab(&[
            "slurm",
            "generate",
            "--image",
            &host.image,
            "--gpus",
            "0,1",
            "--nodes",
            "2",
            "--gpus-per-node",
            "4",
        ])
        .cwd(&project)
        .output();
    run.expect_code(1);
    assert!(
        run.stderr
            .contains("--gpus-per-node 4 is more GPUs than --gpus names (2)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("hint:"), "{}", run.stderr);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    let _ = fs::remove_dir_all(project);
}
