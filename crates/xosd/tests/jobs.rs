//! Jobs as their users meet them: real daemons, real supervisors, cgroups,
//! namespaces and mapped accounts; submission, placement, control, limits,
//! failures of nodes and of the daemon.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use xtreem_client::{ClientError, JobsClient, Profile, VoClient};
use xtreem_proto::jobs as jpb;
use xtreem_proto::vo as pb;
use xtreem_testkit::{Grid, NodeSpec};

const PASSWORD: &str = "correct horse battery";

fn profile(grid: &Grid) -> Profile {
    Profile::load(&grid.admin_dir()).unwrap()
}

fn jobs(grid: &Grid, i: usize, token: &str) -> JobsClient {
    JobsClient::connect(&profile(grid), &grid.node(i).rpc, false, Some(token.into())).unwrap()
}

fn root_or_skip(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!(
        "skipping {test}: jobs run under mapped uids in cgroups and namespaces, which needs root"
    );
    false
}

/// A site of `n` nodes serving VO `demo` (alice) and VO `other` (bob).
async fn job_site(n: usize) -> (Grid, String, String) {
    job_site_with(n, "").await
}

/// Like [`job_site`], with `extra` appended to every node's config.
async fn job_site_with(n: usize, extra: &str) -> (Grid, String, String) {
    let g = if extra.is_empty() {
        site(n).await
    } else {
        let mut g = grid();
        let specs = (1..=n)
            .map(|k| {
                let roles: &[&str] = if k == 1 {
                    &["core", "resource", "client"]
                } else {
                    &["resource", "client"]
                };
                let mut spec = NodeSpec::new(&format!("node-{k}"), roles, g.next_ip());
                spec.extra_config = extra.to_owned();
                spec
            })
            .collect();
        g.start_site_with("lab", specs).await.expect("site starts");
        g
    };
    let mut admin = VoClient::connect(&profile(&g), &g.node(0).rpc, true, None).unwrap();
    for user in ["alice", "bob"] {
        admin
            .add_user(pb::AddUserRequest {
                name: user.into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
    }
    for (vo, user) in [("demo", "alice"), ("other", "bob")] {
        admin
            .create_vo(pb::CreateVoRequest {
                name: vo.into(),
                first_admin: user.into(),
            })
            .await
            .unwrap();
        admin
            .serve_vo(pb::ServeVoRequest {
                vo: vo.into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let alice = login(&g, "alice", "demo").await;
    let bob = login(&g, "bob", "other").await;
    // Placement needs every resource node in the directory serving the VO.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut dir = xtreem_client::DirectoryClient::connect(
            &profile(&g),
            &g.node(0).rpc,
            false,
            Some(alice.clone()),
        )
        .unwrap();
        let seen = dir
            .query(xtreem_proto::directory::QueryRequest {
                query: "state==alive".into(),
                ..Default::default()
            })
            .await
            .map(|a| a.nodes.len())
            .unwrap_or(0);
        if seen == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "directory shows {seen} of {n} nodes serving demo"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (g, alice, bob)
}

async fn login(grid: &Grid, user: &str, vo: &str) -> String {
    VoClient::connect(&profile(grid), &grid.node(0).rpc, false, None)
        .unwrap()
        .login(pb::LoginRequest {
            user: user.into(),
            password: PASSWORD.into(),
            vo: vo.into(),
            ttl_seconds: 3600,
        })
        .await
        .unwrap()
        .token
}

async fn submit(client: &mut JobsClient, spec: &str) -> String {
    let ids = client
        .submit(spec, None, false)
        .await
        .unwrap_or_else(|e| panic!("submit {spec}: {e}"));
    ids.into_iter().next().unwrap()
}

async fn wait(client: &mut JobsClient, id: &str) -> jpb::JobInfo {
    match tokio::time::timeout(Duration::from_secs(60), client.wait(id)).await {
        Ok(info) => info.unwrap(),
        Err(_) => panic!(
            "job {id} did not end within 60 s: {:#?}",
            client.status(id).await
        ),
    }
}

async fn output(client: &mut JobsClient, unit: &str) -> String {
    let mut out = Vec::new();
    client.logs(unit, false, false, &mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

/// Polls the job's status until `pick` accepts it.
async fn until(
    client: &mut JobsClient,
    id: &str,
    timeout: Duration,
    pick: impl Fn(&jpb::JobInfo) -> bool,
) -> jpb::JobInfo {
    let deadline = Instant::now() + timeout;
    loop {
        let info = client.status(id).await.unwrap();
        if pick(&info) {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "job {id} never reached the expected state: {info:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn refused(e: ClientError) -> (Code, String) {
    match e {
        ClientError::Refused { code, message, .. } => (code, message),
        other => panic!("expected a refusal, got {other}"),
    }
}

fn pool_range(grid: &Grid, i: usize) -> (u32, u32) {
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(grid.node(i).config_path()).unwrap()).unwrap();
    let accounts = &config["accounts"];
    (
        u32::try_from(accounts["uid_min"].as_integer().unwrap()).unwrap(),
        u32::try_from(accounts["uid_max"].as_integer().unwrap()).unwrap(),
    )
}

#[tokio::test]
async fn jobs_run_as_pool_users_with_ranks_arrays_dependencies_and_accounting() {
    if !root_or_skip("jobs_run_as_pool_users_with_ranks_arrays_dependencies_and_accounting") {
        return;
    }
    let (g, alice, bob) = job_site(3).await;
    let mut a = jobs(&g, 0, &alice);

    // Exit code and identity: the job runs as a pool uid, never root.
    let id = submit(
        &mut a,
        "executable = \"/bin/sh\"\nargs = [\"-c\", \"id -u; echo $XOS_NODE; test -s $XOS_TOKEN_FILE && stat -c '%u %a' $XOS_TOKEN_FILE; exit 3\"]\n",
    )
    .await;
    let info = wait(&mut a, &id).await;
    assert_eq!(info.state, "failed", "{info:#?}");
    assert_eq!(info.exit, "exit 3", "{info:#?}");
    assert_eq!(info.exit_code, 3);
    let out = output(&mut a, &id).await;
    let mut lines = out.lines();
    let uid: u32 = lines.next().unwrap().trim().parse().unwrap();
    let node = lines.next().unwrap().trim().to_owned();
    // The owner's credential, for calling the grid: the job's alone.
    assert_eq!(
        lines.next().map(str::trim),
        Some(format!("{uid} 400").as_str()),
        "{out}"
    );
    let i = (0..g.len()).find(|k| g.node(*k).spec.name == node).unwrap();
    let (lo, hi) = pool_range(&g, i);
    assert!(
        uid >= lo && uid <= hi,
        "uid {uid} outside {node}'s pool {lo}..{hi}"
    );

    // The job's credential is a delegated one: alice, with the home acting
    // for her; exchanged in process at the VO authority (node 0) or over
    // mTLS from another home (node 1).
    for home in [0, 1] {
        let mut client = jobs(&g, home, &alice);
        let id = submit(
            &mut client,
            "executable = \"/bin/sh\"\nargs = [\"-c\", \"cat $XOS_TOKEN_FILE\"]\n",
        )
        .await;
        let info = wait(&mut client, &id).await;
        assert_eq!(info.state, "done", "{info:#?}");
        let token = output(&mut client, &id).await.trim().to_owned();
        assert_ne!(token, alice, "the job must not get the login token itself");
        let who = VoClient::connect(&profile(&g), &g.node(0).rpc, false, Some(token))
            .unwrap()
            .whoami(pb::WhoamiRequest {})
            .await
            .unwrap();
        assert_eq!(who.subject, "alice");
        assert_eq!(
            who.actors,
            vec![format!("jobs@{}", g.node(home).spec.name)],
            "{who:#?}"
        );
    }

    // Three units on three nodes see their rank, the size and every host.
    let id = submit(
        &mut a,
        "executable = \"/bin/sh\"\nargs = [\"-c\", \"echo $XOS_RANK $XOS_SIZE $XOS_HOSTS\"]\ncount = 3\nper_node = 1\n",
    )
    .await;
    let info = wait(&mut a, &id).await;
    assert_eq!(info.state, "done", "{info:#?}");
    let mut nodes: Vec<&str> = info.units.iter().map(|u| u.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    assert_eq!(nodes.len(), 3, "one unit per node: {info:#?}");
    for rank in 0..3 {
        let out = output(&mut a, &format!("{id}.{rank}")).await;
        let words: Vec<&str> = out.split_whitespace().collect();
        assert_eq!(words[0], rank.to_string());
        assert_eq!(words[1], "3");
        assert_eq!(words[2].split(',').count(), 3, "{out}");
    }

    // An array: each element knows its index.
    let ids = a
        .submit(
            "executable = \"/bin/sh\"\nargs = [\"-c\", \"echo index=$XOS_ARRAY_INDEX\"]\n",
            Some("1-3"),
            false,
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    for (k, id) in ids.iter().enumerate() {
        assert!(id.ends_with(&format!("_{}", k + 1)), "{id}");
        assert_eq!(wait(&mut a, id).await.state, "done");
        assert_eq!(output(&mut a, id).await.trim(), format!("index={}", k + 1));
    }

    // Dependencies: after_ok waits for success; a failed dependency fails
    // the dependent job with the reason.
    let first = submit(&mut a, "executable = \"/bin/sleep\"\nargs = [\"1\"]\n").await;
    let second = submit(
        &mut a,
        &format!("executable = \"/bin/true\"\nafter_ok = [\"{first}\"]\n"),
    )
    .await;
    let bad = submit(&mut a, "executable = \"/bin/false\"\n").await;
    let never = submit(
        &mut a,
        &format!("executable = \"/bin/true\"\nafter_ok = [\"{bad}\"]\n"),
    )
    .await;
    let anyway = submit(
        &mut a,
        &format!("executable = \"/bin/true\"\nafter_any = [\"{bad}\"]\n"),
    )
    .await;
    let f = wait(&mut a, &first).await;
    let s = wait(&mut a, &second).await;
    assert_eq!(s.state, "done");
    assert!(
        s.started_unix_ms >= f.ended_unix_ms,
        "after_ok started before its dependency ended"
    );
    let n = wait(&mut a, &never).await;
    assert_eq!(n.state, "failed");
    assert!(
        n.reason.contains(&bad) && n.reason.contains("did not succeed"),
        "{}",
        n.reason
    );
    assert_eq!(wait(&mut a, &anyway).await.state, "done");

    // Status has a timeline with the placement decision. A unit this short
    // can end (and close the job) before the home writes its placement
    // down; that event then follows the job's last record through the
    // writer, which may still be syncing (seconds on a disk busy with a
    // fresh build): it appears shortly after, not never.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = a.status(&second).await.unwrap();
        if status
            .events
            .iter()
            .any(|e| e.text.starts_with("placed on"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{:#?}", status.events);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // xps from another node lists alice's jobs; accounting sums them.
    let listed = jobs(&g, 2, &alice)
        .list(jpb::ListRequest::default())
        .await
        .unwrap();
    assert!(listed.jobs.iter().any(|j| j.id == first), "{listed:#?}");
    let acct = a.acct(jpb::AcctRequest::default()).await.unwrap();
    let line = acct
        .lines
        .iter()
        .find(|l| l.user == "alice" && l.vo == "demo")
        .expect("alice's usage");
    assert!(line.jobs >= 9 && line.units >= 11, "{line:?}");

    // bob of another VO sees none of it and cannot signal it, even by id.
    let mut b = jobs(&g, 1, &bob);
    let (code, _) = refused(b.status(&first).await.unwrap_err());
    assert_eq!(code, Code::NotFound);
    let sleeper = submit(&mut a, "executable = \"/bin/sleep\"\nargs = [\"30\"]\n").await;
    let (code, _) = refused(b.signal(&sleeper, "KILL").await.unwrap_err());
    assert_eq!(code, Code::NotFound);
    assert!(
        b.list(jpb::ListRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .jobs
        .is_empty()
    );
    // alice can.
    until(&mut a, &sleeper, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    a.signal(&sleeper, "TERM").await.unwrap();
    let killed = wait(&mut a, &sleeper).await;
    assert_eq!(killed.state, "cancelled", "{killed:#?}");
    assert_eq!(killed.exit, "signal 15");
}

#[tokio::test]
async fn bad_descriptions_are_refused_naming_the_field() {
    if !root_or_skip("bad_descriptions_are_refused_naming_the_field") {
        return;
    }
    let (g, alice, _) = job_site(1).await;
    let mut a = jobs(&g, 0, &alice);
    for (spec, field) in [
        ("executable = \"/bin/true\"\ncolour = \"blue\"\n", "colour"),
        (
            "executable = \"/bin/true\"\n[resources]\ncores = -2\n",
            "resources.cores",
        ),
        ("args = [\"x\"]\n", "executable"),
        (
            "executable = \"/bin/true\"\nconstraints = \"cores >= 4096\"\n",
            "constraints",
        ),
        (
            "executable = \"/bin/true\"\nconstraints = \"cores >=\"\n",
            "constraints",
        ),
        ("executable = \"/bin/true\"\nvo = \"other\"\n", "vo"),
        (
            "executable = \"/bin/true\"\nafter_ok = [\"not an id\"]\n",
            "after_ok",
        ),
    ] {
        let (code, message) = refused(a.submit(spec, None, false).await.unwrap_err());
        assert_eq!(code, Code::InvalidArgument, "{spec}: {message}");
        assert!(
            message.contains(field),
            "{spec}: message {message:?} does not name {field}"
        );
    }
    // A JSDL document (XtreemOS's format) runs as well.
    let jsdl = r#"<?xml version="1.0"?>
<jsdl:JobDefinition xmlns:jsdl="http://schemas.ggf.org/jsdl/2005/11/jsdl"
    xmlns:jsdl-posix="http://schemas.ggf.org/jsdl/2005/11/jsdl-posix">
  <jsdl:JobDescription>
    <jsdl:JobIdentification><jsdl:JobName>from-jsdl</jsdl:JobName></jsdl:JobIdentification>
    <jsdl:Application>
      <jsdl-posix:POSIXApplication>
        <jsdl-posix:Executable>/bin/echo</jsdl-posix:Executable>
        <jsdl-posix:Argument>hello from JSDL</jsdl-posix:Argument>
        <jsdl-posix:WallTimeLimit>60</jsdl-posix:WallTimeLimit>
      </jsdl-posix:POSIXApplication>
    </jsdl:Application>
    <jsdl:Resources>
      <jsdl:TotalCPUCount><jsdl:Exact>1</jsdl:Exact></jsdl:TotalCPUCount>
    </jsdl:Resources>
  </jsdl:JobDescription>
</jsdl:JobDefinition>"#;
    let id = submit(&mut a, jsdl).await;
    let info = wait(&mut a, &id).await;
    assert_eq!(
        (info.state.as_str(), info.name.as_str()),
        ("done", "from-jsdl"),
        "{info:#?}"
    );
    assert_eq!(output(&mut a, &id).await.trim(), "hello from JSDL");
    let unsupported = jsdl.replace(
        "<jsdl:Resources>",
        "<jsdl:DataStaging><jsdl:FileName>x</jsdl:FileName></jsdl:DataStaging><jsdl:Resources>",
    );
    let (code, message) = refused(a.submit(&unsupported, None, false).await.unwrap_err());
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("DataStaging"), "{message}");

    let (code, message) = refused(
        a.submit("executable = \"/bin/true\"\n", Some("5-1"), false)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("array"), "{message}");
}

#[tokio::test]
async fn stop_freezes_cont_resumes_and_limits_end_jobs_with_the_reason() {
    if !root_or_skip("stop_freezes_cont_resumes_and_limits_end_jobs_with_the_reason") {
        return;
    }
    let (g, alice, _) = job_site(1).await;
    let mut a = jobs(&g, 0, &alice);

    let burn = submit(
        &mut a,
        "executable = \"/bin/sh\"\nargs = [\"-c\", \"while :; do :; done\"]\n",
    )
    .await;
    until(&mut a, &burn, Duration::from_secs(10), |j| {
        j.units.first().is_some_and(|u| u.cpu_ns > 200_000_000)
    })
    .await;
    a.signal(&burn, "STOP").await.unwrap();
    let frozen = until(&mut a, &burn, Duration::from_secs(5), |j| {
        j.state == "suspended"
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = a.status(&burn).await.unwrap().units[0].cpu_ns;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = a.status(&burn).await.unwrap().units[0].cpu_ns;
    assert!(
        after - before < 50_000_000,
        "CPU time grew by {} ns while frozen ({frozen:?})",
        after - before
    );
    a.signal(&burn, "CONT").await.unwrap();
    until(&mut a, &burn, Duration::from_secs(10), |j| {
        j.state == "running" && j.units[0].cpu_ns > after + 200_000_000
    })
    .await;
    a.signal(&burn, "KILL").await.unwrap();
    assert_eq!(wait(&mut a, &burn).await.state, "cancelled");

    let slow = submit(
        &mut a,
        "executable = \"/bin/sleep\"\nargs = [\"30\"]\n[resources]\nwalltime = 1\n",
    )
    .await;
    let info = wait(&mut a, &slow).await;
    assert_eq!(info.state, "failed", "{info:#?}");
    assert!(info.reason.contains("walltime"), "{}", info.reason);

    let hog = submit(
        &mut a,
        "executable = \"/usr/bin/perl\"\nargs = [\"-e\", \"my $x = 'x' x (200 * 1024 * 1024); sleep 1\"]\n[resources]\nmemory = \"32MiB\"\n",
    )
    .await;
    let info = wait(&mut a, &hog).await;
    assert_eq!(info.state, "failed", "{info:#?}");
    assert!(info.reason.contains("memory"), "{}", info.reason);
}

#[tokio::test]
async fn jobs_survive_a_daemon_restart_and_node_deaths_are_handled() {
    if !root_or_skip("jobs_survive_a_daemon_restart_and_node_deaths_are_handled") {
        return;
    }
    let (mut g, alice, _) = job_site(4).await;
    let mut a = jobs(&g, 0, &alice);

    // Restart xosd on the resource node: the unit keeps running and its end
    // still reaches the home.
    let kept = submit(&mut a, "executable = \"/bin/sh\"\nargs = [\"-c\", \"sleep 4; echo survived\"]\nconstraints = \"name == node-2\"\n").await;
    until(&mut a, &kept, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    g.stop(1).await.unwrap();
    g.restart(1).await.unwrap();
    let info = wait(&mut a, &kept).await;
    assert_eq!(info.state, "done", "{info:#?}");
    assert_eq!(output(&mut a, &kept).await.trim(), "survived");

    // Stopped again with no unit left, the node takes its cgroups along
    // (above, with a unit running, they stayed for the restart to adopt).
    let (name, data_dir) = (g.node(1).spec.name.clone(), g.node(1).data_dir());
    let units = xtreem_exec::state_dir_for(&name, &data_dir);
    let no_units = || {
        std::fs::read_dir(&units)
            .map(|d| !d.flatten().any(|e| e.path().is_dir()))
            .unwrap_or(true)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !no_units() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(no_units(), "the unit's state is removed once reported");
    g.stop(1).await.unwrap();
    let parent = xtreem_exec::cgroup_parent_for(&name, &data_dir);
    for dir in [
        format!("/sys/fs/cgroup/pids/{parent}"),
        format!("/sys/fs/cgroup/memory/{parent}"),
        format!("/sys/fs/cgroup/{parent}"),
    ] {
        assert!(
            !std::path::Path::new(&dir).exists(),
            "{dir} is left after an orderly stop with no units"
        );
    }

    // kill -9 a resource node mid-job: a job that may restart runs again
    // elsewhere; one that may not fails with the reason.
    let restarts = submit(
        &mut a,
        "executable = \"/bin/sleep\"\nargs = [\"3\"]\nconstraints = \"name in [node-3, node-4]\"\nrestart = \"on-node-failure\"\nmax_restarts = 2\n",
    )
    .await;
    let first = until(&mut a, &restarts, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    let victim = first.units[0].node.clone();
    let fails = submit(
        &mut a,
        &format!(
            "executable = \"/bin/sleep\"\nargs = [\"30\"]\nconstraints = \"name == {victim}\"\n"
        ),
    )
    .await;
    until(&mut a, &fails, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    let victim_index = (0..g.len())
        .find(|k| g.node(*k).spec.name == victim)
        .unwrap();
    g.kill9(victim_index).unwrap();
    let info = wait(&mut a, &fails).await;
    assert_eq!(info.state, "failed", "{info:#?}");
    assert!(info.reason.contains("died"), "{}", info.reason);
    let info = wait(&mut a, &restarts).await;
    assert_eq!(info.restarts, 1, "{info:#?}");
    assert_ne!(info.units[0].node, victim, "{info:#?}");
    assert_eq!(info.state, "done", "{info:#?}");
}

#[tokio::test]
async fn a_unit_whose_record_a_crash_lost_is_adopted_from_its_executor() {
    if !root_or_skip("a_unit_whose_record_a_crash_lost_is_adopted_from_its_executor") {
        return;
    }
    use xtreem_node::jobs::machine::{JobCommand, JobMachine, query};
    let (mut g, alice, _) = job_site(2).await;
    let mut a = jobs(&g, 0, &alice);
    let id = submit(&mut a, "executable = \"/bin/sh\"\nargs = [\"-c\", \"sleep 3; echo adopted\"]\nconstraints = \"name == node-2\"\n").await;
    until(&mut a, &id, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;

    // A resource node keeps a running unit's record in memory (and writes
    // other records without waiting for the disk): kill -9 it, and make
    // sure its store has no record of the unit.
    g.kill9(1).unwrap();
    let store = xtreem_store::Store::open(&g.node(1).data_dir().join("state.redb")).unwrap();
    let units: Vec<String> = store
        .read(query::units)
        .unwrap()
        .into_iter()
        .filter(|u| u.job == id)
        .map(|u| u.unit)
        .collect();
    for unit in units {
        store
            .execute(&JobMachine, JobCommand::ForgetUnit { unit })
            .unwrap();
    }
    drop(store);

    // Back up, the node adopts the unit from its executor, and the end
    // reaches the home with the unit's output.
    g.restart(1).await.unwrap();
    let info = wait(&mut a, &id).await;
    assert_eq!(info.state, "done", "{info:#?}");
    assert_eq!(info.units[0].node, "node-2", "{info:#?}");
    assert_eq!(output(&mut a, &id).await.trim(), "adopted");
}

#[tokio::test]
async fn when_the_home_dies_xps_elsewhere_still_shows_its_running_job() {
    if !root_or_skip("when_the_home_dies_xps_elsewhere_still_shows_its_running_job") {
        return;
    }
    let (mut g, alice, _) = job_site(3).await;
    // Home on node-2 (index 1), running on node-3.
    let mut home = jobs(&g, 1, &alice);
    let queued = home
        .submit(
            "executable = \"/bin/true\"\nconstraints = \"name == node-3\"\n",
            None,
            true,
        )
        .await
        .unwrap()
        .remove(0);
    let id = submit(
        &mut home,
        "executable = \"/bin/sleep\"\nargs = [\"6\"]\nconstraints = \"name == node-3\"\n",
    )
    .await;
    assert!(id.starts_with("node-2."), "{id}");
    until(&mut home, &id, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    g.kill9(1).unwrap();
    let mut elsewhere = jobs(&g, 0, &alice);
    let listed = elsewhere.list(jpb::ListRequest::default()).await.unwrap();
    let job = listed
        .jobs
        .iter()
        .find(|j| j.id == id)
        .unwrap_or_else(|| panic!("{listed:#?}"));
    assert!(job.from_replica, "{job:#?}");
    assert_eq!(job.state, "running");
    assert_eq!(job.units[0].node, "node-3");
    let status = elsewhere.status(&id).await.unwrap();
    assert_eq!(status.state, "running", "{status:#?}");
    // A job queued at the home when it died is not lost either: back, the
    // home places it, and takes the running job's end from its node.
    g.restart(1).await.unwrap();
    let mut home = jobs(&g, 1, &alice);
    let info = wait(&mut home, &id).await;
    assert_eq!(info.state, "done", "{info:#?}");
    assert_eq!(home.status(&queued).await.unwrap().state, "held");
    home.release(&queued).await.unwrap();
    assert_eq!(wait(&mut home, &queued).await.state, "done");
}

#[tokio::test]
async fn a_self_checkpointing_job_migrates_with_its_files_and_resumes() {
    if !root_or_skip("a_self_checkpointing_job_migrates_with_its_files_and_resumes") {
        return;
    }
    let (g, alice, _) = job_site(3).await;
    let mut a = jobs(&g, 0, &alice);
    let script = "if [ -f state ]; then echo resumed from $(cat state) on $XOS_NODE; exit 0; fi; \
                  trap 'echo step-42 > state; exit 85' USR1; echo started on $XOS_NODE; \
                  while :; do sleep 0.1; done";
    let spec = format!(
        "executable = \"/bin/sh\"\nargs = [\"-c\", {script:?}]\nconstraints = \"name == node-2\"\n[checkpoint]\nsignal = \"USR1\"\nexit_code = 85\nfiles = [\"state\"]\n"
    );
    let id = submit(&mut a, &spec).await;
    until(&mut a, &id, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    // Give the shell time to install its trap.
    tokio::time::sleep(Duration::from_millis(500)).await;
    a.migrate(&id, "name == node-3").await.unwrap();
    let info = wait(&mut a, &id).await;
    assert_eq!(info.state, "done", "{info:#?}");
    assert_eq!(info.units[0].node, "node-3", "{info:#?}");
    assert_eq!(
        output(&mut a, &id).await.trim(),
        "resumed from step-42 on node-3"
    );
    let status = a.status(&id).await.unwrap();
    assert!(
        status
            .events
            .iter()
            .any(|e| e.text.starts_with("checkpoint 1 saved (1 file)")),
        "{:#?}",
        status.events
    );

    // A job without a checkpoint signal cannot be asked to checkpoint; the
    // refusal says why, and about CRIU.
    let plain = submit(&mut a, "executable = \"/bin/sleep\"\nargs = [\"20\"]\n").await;
    until(&mut a, &plain, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    let (code, message) = refused(a.checkpoint(&plain).await.unwrap_err());
    assert_eq!(code, Code::FailedPrecondition, "{message}");
    assert!(
        message.contains("checkpoint signal") && message.contains("CRIU"),
        "{message}"
    );
    a.signal(&plain, "KILL").await.unwrap();
}

#[tokio::test]
async fn reservations_hold_nodes_for_their_owner_and_exclusive_ones_keep_others_out() {
    if !root_or_skip("reservations_hold_nodes_for_their_owner_and_exclusive_ones_keep_others_out") {
        return;
    }
    let (g, alice, bob) = job_site(3).await;
    let mut a = jobs(&g, 0, &alice);
    // An exclusive reservation of one node, now, for a minute.
    let r = a
        .reserve(jpb::ReserveRequest {
            nodes: 1,
            cores: 1,
            memory_bytes: 64 << 20,
            duration_ms: 60_000,
            exclusive: true,
            constraints: "name == node-3".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(r.nodes, ["node-3"], "{r:?}");
    assert_eq!(r.state, "active");
    // A job inside it runs on the reserved node.
    let inside = submit(
        &mut a,
        &format!(
            "executable = \"/bin/sh\"\nargs = [\"-c\", \"echo $XOS_NODE\"]\nreservation = \"{}\"\n",
            r.id
        ),
    )
    .await;
    assert_eq!(wait(&mut a, &inside).await.state, "done");
    assert_eq!(output(&mut a, &inside).await.trim(), "node-3");
    // Nobody else's job gets node-3 while the exclusive reservation lasts.
    let mut b = jobs(&g, 0, &bob);
    let outside = submit(
        &mut b,
        "executable = \"/bin/true\"\nconstraints = \"name == node-3\"\n",
    )
    .await;
    let waiting = until(&mut b, &outside, Duration::from_secs(10), |j| {
        j.reason.contains("reserved exclusively")
    })
    .await;
    assert_eq!(waiting.state, "queued", "{waiting:#?}");
    // bob cannot use alice's reservation either.
    let stolen = submit(
        &mut b,
        &format!("executable = \"/bin/true\"\nreservation = \"{}\"\n", r.id),
    )
    .await;
    let info = wait(&mut b, &stolen).await;
    assert_eq!(info.state, "failed");
    assert!(info.reason.contains("belongs to alice"), "{}", info.reason);
    // Cancelled, node-3 is free again and bob's waiting job runs.
    let listed = a.reservations().await.unwrap();
    assert!(listed.iter().any(|x| x.id == r.id));
    assert!(b.reservations().await.unwrap().is_empty());
    assert_eq!(
        a.cancel_reservation(&r.id).await.unwrap().state,
        "cancelled"
    );
    assert_eq!(wait(&mut b, &outside).await.state, "done");
}

#[tokio::test]
async fn ended_jobs_units_and_reservations_are_forgotten_after_the_retention() {
    if !root_or_skip("ended_jobs_units_and_reservations_are_forgotten_after_the_retention") {
        return;
    }
    let (g, alice, _bob) = job_site_with(2, "\n[jobs]\nretention = \"3s\"\n").await;
    let mut a = jobs(&g, 0, &alice);
    // Runs on node-2, so its unit record is kept there, its job at node-1.
    let ended = submit(
        &mut a,
        "executable = \"/bin/sh\"\nargs = [\"-c\", \"echo kept\"]\nconstraints = \"name == node-2\"\n",
    )
    .await;
    assert_eq!(wait(&mut a, &ended).await.state, "done");
    assert_eq!(output(&mut a, &ended).await.trim(), "kept");
    // Long enough to outlast every wait below; killed at the end.
    let running = submit(&mut a, "executable = \"/bin/sleep\"\nargs = [\"300\"]\n").await;
    until(&mut a, &running, Duration::from_secs(20), |j| {
        j.state == "running"
    })
    .await;
    let reservation = a
        .reserve(jpb::ReserveRequest {
            nodes: 1,
            cores: 1,
            memory_bytes: 16 << 20,
            duration_ms: 1_000,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        a.reservations()
            .await
            .unwrap()
            .iter()
            .any(|r| r.id == reservation.id)
    );

    // Gone from its home once the retention has passed, and from xps.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match a.status(&ended).await {
            Err(e) => {
                assert_eq!(refused(e).0, Code::NotFound);
                break;
            }
            Ok(info) => assert!(
                Instant::now() < deadline,
                "job {ended} is still known 30 s after it ended: {info:#?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let listed = a.list(jpb::ListRequest::default()).await.unwrap().jobs;
    assert!(listed.iter().all(|j| j.id != ended), "{listed:#?}");
    // The job still running is kept, whatever its age.
    assert_eq!(a.status(&running).await.unwrap().state, "running");
    // Its usage stays for accounting.
    let acct = a.acct(jpb::AcctRequest::default()).await.unwrap();
    let jobs_counted: u64 = acct.lines.iter().map(|l| l.jobs).sum();
    assert!(jobs_counted >= 1, "{acct:#?}");
    // The ended reservation is no longer listed.
    let deadline = Instant::now() + Duration::from_secs(15);
    while a
        .reservations()
        .await
        .unwrap()
        .iter()
        .any(|r| r.id == reservation.id)
    {
        assert!(
            Instant::now() < deadline,
            "reservation {} still listed",
            reservation.id
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // node-2 forgot the unit's record too (asked as node-1 would).
    let unit = format!("{ended}.0-1");
    let mut exec = jpb::job_exec_client::JobExecClient::new(as_node(&g, 0, &g.node(1).rpc));
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let asked = exec
            .read_log(jpb::ReadLogRequest {
                unit: unit.clone(),
                stderr: false,
                offset: 0,
                max_bytes: 1024,
            })
            .await;
        match asked {
            Err(status) => {
                assert_eq!(status.code(), Code::NotFound, "{status:?}");
                assert!(status.message().contains("kept 3s"), "{}", status.message());
                break;
            }
            Ok(chunk) => assert!(
                Instant::now() < deadline,
                "node-2 still serves {unit}: {:?}",
                chunk.into_inner()
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    a.signal(&running, "KILL").await.unwrap();
    assert_eq!(wait(&mut a, &running).await.state, "cancelled");
}

/// Processes on this host whose command line is exactly `argv`.
fn processes_running(argv: &[&str]) -> usize {
    let wanted: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == wanted))
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_node_back_from_the_dead_kills_the_units_its_home_restarted_elsewhere() {
    if !root_or_skip("a_node_back_from_the_dead_kills_the_units_its_home_restarted_elsewhere") {
        return;
    }
    let (mut g, alice, _) = job_site(3).await;
    let mut a = jobs(&g, 0, &alice);
    // A sleep no other test runs, so the host's process list counts it.
    let argv = ["/bin/sleep", "3217"];
    let id = submit(
        &mut a,
        "executable = \"/bin/sleep\"\nargs = [\"3217\"]\nconstraints = \"name in [node-2, node-3]\"\nrestart = \"on-node-failure\"\nmax_restarts = 2\n",
    )
    .await;
    let first = until(&mut a, &id, Duration::from_secs(10), |j| {
        j.state == "running"
    })
    .await;
    let victim = first.units[0].node.clone();
    let victim_index = (0..g.len())
        .find(|k| g.node(*k).spec.name == victim)
        .unwrap();
    // The daemon stops answering (declared dead) while its supervisor keeps
    // the unit running: the home restarts the job on the other node.
    g.pause(victim_index).unwrap();
    let moved = until(&mut a, &id, Duration::from_secs(30), |j| {
        j.restarts == 1 && j.state == "running"
    })
    .await;
    assert_ne!(moved.units[0].node, victim, "{moved:#?}");
    assert_eq!(
        processes_running(&argv),
        2,
        "the stale unit runs on beside its restart"
    );
    // Back, the node learns from the home that its unit is no longer wanted.
    g.resume(victim_index).unwrap();
    let deadline = Instant::now() + Duration::from_secs(45);
    while processes_running(&argv) > 1 {
        assert!(
            Instant::now() < deadline,
            "the stale unit still runs 45 s after its node came back"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        processes_running(&argv),
        1,
        "the restarted unit must keep running"
    );
    let info = a.status(&id).await.unwrap();
    assert_eq!(info.state, "running", "{info:#?}");
    assert_eq!(info.restarts, 1, "{info:#?}");
    assert_eq!(info.units[0].node, moved.units[0].node, "{info:#?}");
}
