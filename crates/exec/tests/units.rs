//! The executor against the real kernel: supervisors, cgroups, namespaces,
//! mapped uids. Every test needs root and says so when skipped.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Fixture, GID, UID, cgroup_dir_exists, eventually, supervisor};
use xtreem_exec::{
    CgroupVersion, ExecError, Executor, LimitExceeded, Limits, SUPERVISOR_LOST, UnitState,
};

/// Whether `pid` is gone (or only a zombie).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            .unwrap_or(true),
    }
}

#[test]
fn exit_code_is_recorded() {
    require_root!();
    let fx = Fixture::new("exit");
    let started = fx
        .exec
        .launch(&fx.spec("u", &["sh", "-c", "exit 3"]))
        .unwrap();
    assert_eq!(started.state, UnitState::Running);
    assert!(started.job_pid.is_some() && started.supervisor_pid.is_some());
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 3 });
    assert_eq!(end.reason, None);
    assert_eq!(end.job_pid, started.job_pid);
    assert!(end.ended_unix_ms.is_some());
    assert!(end.usage.cpu_ns > 0, "{:?}", end.usage);
    assert_eq!(fx.exec.status("u").unwrap(), end, "the status stays");
    assert_eq!(fx.exec.usage("u").unwrap(), end.usage);
}

#[test]
fn runs_as_the_mapped_uid_with_its_files() {
    require_root!();
    let fx = Fixture::new("uid");
    fx.exec
        .launch(&fx.spec("u", &["sh", "-c", "id -u; id -g; id -G; echo oops >&2"]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 0 });
    assert_eq!(fx.stdout("u"), format!("{UID}\n{GID}\n{GID}\n"));
    assert_eq!(fx.stderr("u"), "oops\n");
    let meta = std::fs::metadata(fx.work.join("u.out")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (UID, GID));
    assert_eq!(meta.mode() & 0o777, 0o600);
    // The state directories are root's alone.
    let root_mode = std::fs::metadata(&fx.root).unwrap().mode();
    let unit_mode = std::fs::metadata(fx.root.join("u")).unwrap().mode();
    assert_eq!((root_mode & 0o777, unit_mode & 0o777), (0o700, 0o700));
    assert_eq!(
        fx.exec
            .output_path("u", xtreem_exec::Stream::Stdout)
            .unwrap(),
        fx.work.join("u.out")
    );
}

#[test]
fn output_is_appended() {
    require_root!();
    let fx = Fixture::new("append");
    std::fs::write(fx.work.join("shared.out"), "before\n").unwrap();
    std::os::unix::fs::chown(fx.work.join("shared.out"), Some(UID), Some(GID)).unwrap();
    let mut spec = fx.spec("u", &["echo", "after"]);
    spec.stdout = fx.work.join("shared.out");
    fx.exec.launch(&spec).unwrap();
    fx.wait("u", Duration::from_secs(5));
    assert_eq!(
        std::fs::read_to_string(fx.work.join("shared.out")).unwrap(),
        "before\nafter\n"
    );
}

#[test]
fn the_job_starts_with_no_signal_ignored_or_blocked() {
    require_root!();
    let fx = Fixture::new("signals");
    // The daemon, the fork server and the supervisor ignore SIGPIPE, SIGHUP
    // and SIGCHLD and block the signals they wait for: none of it may reach
    // the job (an ignored signal survives exec).
    fx.exec
        .launch(&fx.spec("u", &["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 0 });
    assert_eq!(
        fx.stdout("u"),
        "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"
    );
}

#[test]
fn job_is_pid_2_of_its_own_namespace() {
    require_root!();
    let fx = Fixture::new("pidns");
    // The job is pid 2 (pid 1 is the unit's supervisor); /proc shows the
    // namespace only: the supervisor, the shell, ls and grep.
    fx.exec
        .launch(&fx.spec("u", &["sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]*$'"]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 0 });
    let out = fx.stdout("u");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "2", "{out}");
    let visible: u32 = lines[1].parse().unwrap();
    assert!(visible <= 4, "the job sees {visible} processes: {out}");
}

#[test]
fn a_spawned_supervisor_makes_the_namespace_itself() {
    require_root!();
    // A supervisor program whose fork server closes its socket at once
    // but stays alive (so it is not restarted): the executor spawns one
    // supervisor per unit, which must make its PID namespace itself.
    let real = common::supervisor()[0].to_string_lossy().into_owned();
    let script = format!(
        "if [ \"$1\" = --fork-server ]; then exec 0<&-; exec sleep 20; fi; exec {real} \"$1\""
    );
    let tmp = tempfile::tempdir().unwrap();
    let parent = format!("xtreem-test-{}-spawned", std::process::id());
    let exec = Executor::open(
        tmp.path().join("units"),
        vec!["/bin/sh".into(), "-c".into(), script.into(), "sh".into()],
        &parent,
    )
    .unwrap();
    // Let the fork server close its socket first.
    std::thread::sleep(Duration::from_millis(300));
    let fx = Fixture::new("spawned");
    let mut spec = fx.spec("u", &["sh", "-c", "echo $$; sleep 1; exit 3"]);
    spec.stdout = fx.work.join("spawned.out");
    let started = exec.launch(&spec).unwrap();
    // Its parent is the spawned process (waiting for it), not a fork server.
    let sup = started.supervisor_pid.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{sup}/status")).unwrap();
    let ppid = status
        .lines()
        .find_map(|l| l.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .to_string();
    let parent_cmd = std::fs::read(format!("/proc/{ppid}/cmdline")).unwrap();
    let parent_cmd = String::from_utf8_lossy(&parent_cmd);
    assert!(
        parent_cmd.contains("units/u") && !parent_cmd.contains("--fork-server"),
        "{parent_cmd}"
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let end = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(5), exec.wait("u")).await })
        .expect("the unit ends")
        .unwrap();
    assert_eq!(end.state, UnitState::Exited { code: 3 }, "{end:?}");
    let out = std::fs::read_to_string(fx.work.join("spawned.out")).unwrap();
    assert_eq!(out.trim(), "2", "the job is pid 2 of its namespace");
    exec.remove("u").unwrap();
    // The stand-in fork server (`sleep`) ignores its closed socket: end it,
    // so the test's cgroups can go.
    for procs in [
        format!("/sys/fs/cgroup/pids/{parent}/_supervisors/cgroup.procs"),
        format!("/sys/fs/cgroup/{parent}/_supervisors/cgroup.procs"),
    ] {
        for pid in std::fs::read_to_string(&procs).unwrap_or_default().lines() {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                // SAFETY: kill(2) has no memory effects.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    assert!(
        common::eventually(Duration::from_secs(5), || exec
            .remove_cgroup_parent()
            .is_ok()),
        "the test's cgroups are removed"
    );
}

#[test]
fn tmp_is_private_and_a_workdir_under_tmp_stays_visible() {
    require_root!();
    let fx = Fixture::new("tmp");
    assert!(
        fx.work.starts_with("/tmp"),
        "the fixture's workdir is under /tmp"
    );
    std::fs::write(fx.work.join("marker"), "here\n").unwrap();
    let name = format!("xtreem-exec-private-{}", std::process::id());
    let script = format!(
        "echo secret > /tmp/{name} && cat /tmp/{name} && pwd && cat marker && cat \"$HOME/marker\" && ls -a /tmp | wc -l"
    );
    fx.exec
        .launch(&fx.spec("u", &["sh", "-c", &script]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Exited { code: 0 },
        "{}",
        fx.stderr("u")
    );
    let out = fx.stdout("u");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "secret");
    assert_eq!(PathBuf::from(lines[1]), fx.work);
    assert_eq!((lines[2], lines[3]), ("here", "here"));
    // ., .., the job's file and the first directory of the workdir's path.
    assert_eq!(lines[4], "4", "{out}");
    assert!(
        !PathBuf::from("/tmp").join(&name).exists(),
        "the job's /tmp file leaked to the host"
    );
}

#[test]
fn the_credential_is_the_jobs_alone_in_its_private_tmp() {
    require_root!();
    let fx = Fixture::new("cred");
    let mut spec = fx.spec(
        "u",
        &[
            "sh",
            "-c",
            "stat -c '%u %a' /tmp/.xos-token && cat /tmp/.xos-token",
        ],
    );
    spec.credential = Some(xtreem_exec::Secret("tok-123".into()));
    assert!(
        !format!("{spec:?}").contains("tok-123"),
        "Debug must not print the credential"
    );
    fx.exec.launch(&spec).unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Exited { code: 0 },
        "{}",
        fx.stderr("u")
    );
    assert_eq!(fx.stdout("u"), format!("{UID} 400\ntok-123"));
    assert!(
        !PathBuf::from(xtreem_exec::CREDENTIAL_PATH).exists(),
        "the credential leaked to the host's /tmp"
    );
}

#[test]
fn environment_is_exactly_the_specs() {
    require_root!();
    let fx = Fixture::new("env");
    let mut spec = fx.spec("u", &["env"]);
    spec.env.push(("XTREEM_JOB".into(), "42".into()));
    fx.exec.launch(&spec).unwrap();
    fx.wait("u", Duration::from_secs(5));
    let mut got: Vec<String> = fx.stdout("u").lines().map(str::to_string).collect();
    got.sort();
    let mut want = vec![
        "PATH=/usr/bin:/bin".to_string(),
        format!("HOME={}", fx.work.display()),
        "XTREEM_JOB=42".to_string(),
    ];
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn walltime_terminates_the_unit() {
    require_root!();
    let fx = Fixture::new("walltime");
    let mut spec = fx.spec("u", &["sleep", "30"]);
    spec.limits.walltime = Some(Duration::from_secs(1));
    let t = Instant::now();
    fx.exec.launch(&spec).unwrap();
    let end = fx.wait("u", Duration::from_secs(8));
    assert!(
        t.elapsed() < Duration::from_secs(7),
        "took {:?}",
        t.elapsed()
    );
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGTERM
        }
    );
    assert_eq!(end.reason.as_deref(), Some("walltime 1s exceeded"));
    assert_eq!(end.limit_exceeded, Some(LimitExceeded::Walltime));
}

#[test]
fn walltime_escalates_to_sigkill() {
    require_root!();
    let fx = Fixture::new("wallkill");
    // Ignores SIGTERM: the grace period ends it with SIGKILL.
    let mut spec = fx.spec(
        "u",
        &["sh", "-c", "trap '' TERM; while :; do sleep 1; done"],
    );
    spec.limits.walltime = Some(Duration::from_millis(500));
    let t = Instant::now();
    fx.exec.launch(&spec).unwrap();
    let end = fx.wait("u", Duration::from_secs(9));
    let took = t.elapsed();
    assert!(
        took >= xtreem_exec::KILL_GRACE && took < Duration::from_secs(8),
        "took {took:?}"
    );
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGKILL
        }
    );
    assert_eq!(end.reason.as_deref(), Some("walltime 500ms exceeded"));
}

#[test]
fn memory_limit_ends_in_an_oom_kill() {
    require_root!();
    if !PathBuf::from("/usr/bin/perl").exists() {
        eprintln!("SKIPPED: needs /usr/bin/perl to allocate memory");
        return;
    }
    let fx = Fixture::new("oom");
    let mut spec = fx.spec(
        "u",
        &[
            "/usr/bin/perl",
            "-e",
            "my $x = 'a' x (200 * 1024 * 1024); print length($x), \"\\n\";",
        ],
    );
    spec.limits.memory_bytes = 32 << 20;
    fx.exec.launch(&spec).unwrap();
    let end = fx.wait("u", Duration::from_secs(8));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGKILL
        },
        "{end:?}"
    );
    assert_eq!(
        end.reason.as_deref(),
        Some("memory limit 32 MiB exceeded (OOM kill)")
    );
    assert_eq!(end.limit_exceeded, Some(LimitExceeded::Memory));
    assert_eq!(fx.stdout("u"), "", "the allocation must not succeed");
}

#[test]
fn limits_are_written_to_the_cgroup() {
    require_root!();
    let fx = Fixture::new("limits");
    if fx.exec.cgroup_version() != CgroupVersion::V1 {
        eprintln!("SKIPPED: checks the v1 files (this host uses v2)");
        return;
    }
    let mut spec = fx.spec("u", &["sleep", "5"]);
    spec.limits = Limits {
        cores: 2,
        memory_bytes: 64 << 20,
        pids: 7,
        walltime: None,
    };
    fx.exec.launch(&spec).unwrap();
    let read = |c: &str, f: &str| {
        std::fs::read_to_string(format!("/sys/fs/cgroup/{c}/{}/u/{f}", fx.parent))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "200000");
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(read("pids", "pids.max"), "7");
    // The supervisor lives in _supervisors, out of the daemon's cgroups.
    let sup = fx.exec.status("u").unwrap().supervisor_pid.unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{sup}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!(":memory:/{}/_supervisors", fx.parent)),
        "{cgroups}"
    );
    // The job is in every hierarchy's unit cgroup.
    let job = fx.exec.status("u").unwrap().job_pid.unwrap().to_string();
    for c in ["cpu", "cpuacct", "memory", "pids", "freezer", "blkio"] {
        assert!(read(c, "cgroup.procs").lines().any(|l| l == job), "{c}");
    }
    assert_eq!(fx.exec.signal("u", libc::SIGKILL).unwrap(), 1);
    fx.wait("u", Duration::from_secs(5));
}

#[test]
fn pids_limit_stops_fork_bombs() {
    require_root!();
    let fx = Fixture::new("pids");
    if fx.exec.cgroup_warnings().iter().any(|w| w.contains("pids")) {
        eprintln!("SKIPPED: no pids controller");
        return;
    }
    let mut spec = fx.spec(
        "u",
        &["sh", "-c", "for i in 1 2 3 4 5 6; do sleep 2 & done; wait"],
    );
    spec.limits.pids = 4;
    fx.exec.launch(&spec).unwrap();
    let end = fx.wait("u", Duration::from_secs(8));
    assert!(matches!(end.state, UnitState::Exited { .. }), "{end:?}");
    assert!(
        fx.stderr("u").contains("fork"),
        "some forks must have failed: {end:?} {}",
        fx.stderr("u")
    );
}

#[test]
fn freeze_stops_cpu_time_and_thaw_resumes_it() {
    require_root!();
    freeze_and_thaw(Fixture::new("freeze"));
}

fn freeze_and_thaw(fx: Fixture) {
    let mut spec = fx.spec("burn", &["sh", "-c", "while :; do :; done"]);
    spec.limits.cores = 1;
    fx.exec.launch(&spec).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    fx.exec.freeze("burn").unwrap();
    assert_eq!(fx.exec.status("burn").unwrap().state, UnitState::Frozen);
    let before = fx.exec.usage("burn").unwrap().cpu_ns;
    std::thread::sleep(Duration::from_secs(1));
    let frozen = fx.exec.usage("burn").unwrap().cpu_ns;
    assert!(
        frozen - before < 50_000_000,
        "{} ms of CPU while frozen",
        (frozen - before) / 1_000_000
    );
    fx.exec.thaw("burn").unwrap();
    assert_eq!(fx.exec.status("burn").unwrap().state, UnitState::Running);
    std::thread::sleep(Duration::from_millis(500));
    let thawed = fx.exec.usage("burn").unwrap().cpu_ns;
    assert!(
        thawed - frozen > 50_000_000,
        "only {} ms of CPU after thaw",
        (thawed - frozen) / 1_000_000
    );
    // A frozen unit still dies of SIGKILL.
    fx.exec.freeze("burn").unwrap();
    assert_eq!(fx.exec.signal("burn", libc::SIGKILL).unwrap(), 1);
    let end = fx.wait("burn", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGKILL
        }
    );
    assert_eq!(end.reason, None);
    assert!(matches!(
        fx.exec.freeze("burn"),
        Err(ExecError::NotRunning(_))
    ));
}

#[test]
fn term_signal_ends_the_unit() {
    require_root!();
    let fx = Fixture::new("term");
    fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    assert_eq!(fx.exec.signal("u", libc::SIGTERM).unwrap(), 1);
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGTERM
        }
    );
    assert_eq!(end.reason, None);
    assert_eq!(end.limit_exceeded, None);
    assert_eq!(
        fx.exec.signal("u", libc::SIGTERM).unwrap(),
        0,
        "nothing left"
    );
}

#[test]
fn sigkill_from_outside_has_no_reason() {
    require_root!();
    let fx = Fixture::new("kill");
    let st = fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    // SAFETY: kill(2) of the job's host pid.
    assert_eq!(unsafe { libc::kill(st.job_pid.unwrap(), libc::SIGKILL) }, 0);
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGKILL
        }
    );
    assert_eq!(end.reason, None);
}

#[test]
fn stop_and_cont_are_refused() {
    require_root!();
    let fx = Fixture::new("stop");
    fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    for sig in [libc::SIGSTOP, libc::SIGCONT] {
        assert!(matches!(
            fx.exec.signal("u", sig),
            Err(ExecError::Refused(_))
        ));
    }
    assert!(fx.exec.signal("u", 1000).is_err());
    assert_eq!(fx.exec.signal("u", 0).unwrap(), 1);
    fx.exec.signal("u", libc::SIGKILL).unwrap();
    fx.wait("u", Duration::from_secs(5));
}

#[test]
fn background_processes_die_with_the_job() {
    require_root!();
    let fx = Fixture::new("orphans");
    fx.exec
        .launch(&fx.spec("u", &["sh", "-c", "sleep 100 & echo $!"]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 0 });
    assert_eq!(
        fx.exec.signal("u", 0).unwrap(),
        0,
        "the background sleep is gone"
    );
    fx.exec.remove("u").unwrap();
}

#[test]
fn an_async_launch_reports_as_the_blocking_one_and_wait_sees_the_end() {
    require_root!();
    let fx = Fixture::new("async-launch");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = fx
            .exec
            .launch_async(&fx.spec("ok", &["sh", "-c", "sleep 0.2; exit 3"]))
            .await
            .unwrap();
        assert_eq!(started.state, UnitState::Running, "{started:?}");
        assert!(started.job_pid.is_some(), "{started:?}");
        // The end comes on the report pipe: a wait after the launch.
        let end = fx.exec.wait("ok").await.unwrap();
        assert_eq!(end.state, UnitState::Exited { code: 3 }, "{end:?}");
        let failed = fx
            .exec
            .launch_async(&fx.spec("bad", &["/nope"]))
            .await
            .unwrap();
        assert_eq!(failed.state, UnitState::Failed);
        assert_eq!(
            failed.reason.as_deref(),
            Some("cannot execute /nope: No such file or directory")
        );
    });
    fx.exec.remove("ok").unwrap();
    fx.exec.remove("bad").unwrap();
}

#[test]
fn a_unit_whose_end_was_read_is_removed_at_once_and_a_running_one_is_not() {
    require_root!();
    let fx = Fixture::new("remove-now");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        fx.exec
            .launch_async(&fx.spec("u", &["sh", "-c", "sleep 0.3"]))
            .await
            .unwrap();
        // Running: removing it could only wait, so the caller is told to
        // use a blocking thread, and the unit is untouched.
        assert!(fx.exec.try_remove_now("u").is_none());
        assert_eq!(fx.exec.status("u").unwrap().state, UnitState::Running);
        let end = fx.exec.wait("u").await.unwrap();
        assert_eq!(end.state, UnitState::Exited { code: 0 }, "{end:?}");
    });
    assert!(matches!(fx.exec.try_remove_now("u"), Some(Ok(()))));
    assert!(matches!(
        fx.exec.status("u"),
        Err(xtreem_exec::ExecError::NoSuchUnit(_))
    ));
    assert!(!fx.exec.units().unwrap().iter().any(|u| u == "u"));
    // Once only: a second removal finds nothing to do here.
    assert!(fx.exec.try_remove_now("u").is_none());
}

#[test]
fn missing_executable_fails_with_the_path() {
    require_root!();
    let fx = Fixture::new("noexec");
    let st = fx.exec.launch(&fx.spec("u", &["/nope"])).unwrap();
    assert_eq!(st.state, UnitState::Failed);
    assert_eq!(
        st.reason.as_deref(),
        Some("cannot execute /nope: No such file or directory")
    );
    assert_eq!(fx.exec.status("u").unwrap().state, UnitState::Failed);
    // Removable at once (the supervisor may still be in its last moments).
    fx.exec.remove("u").unwrap();
    let st = fx
        .exec
        .launch(&fx.spec("v", &["no-such-program-xtreem"]))
        .unwrap();
    assert_eq!(st.state, UnitState::Failed);
    let reason = st.reason.unwrap();
    assert!(
        reason.starts_with("cannot execute no-such-program-xtreem: No such file or directory"),
        "{reason}"
    );
    // Not executable.
    std::fs::write(fx.work.join("script"), "#!/bin/sh\necho hi\n").unwrap();
    let st = fx
        .exec
        .launch(&fx.spec("w", &[fx.work.join("script").to_str().unwrap()]))
        .unwrap();
    assert_eq!(st.state, UnitState::Failed);
    assert!(st.reason.unwrap().ends_with("Permission denied"));
}

#[test]
fn files_are_opened_as_the_user() {
    require_root!();
    let fx = Fixture::new("perm");
    // A directory only root may write: the job's user cannot create its
    // stdout there, even though the supervisor is root.
    let closed = fx.tmp.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut spec = fx.spec("u", &["true"]);
    spec.stdout = closed.join("out");
    let st = fx.exec.launch(&spec).unwrap();
    assert_eq!(st.state, UnitState::Failed);
    let reason = st.reason.unwrap();
    assert!(
        reason.starts_with(&format!(
            "cannot open stdout {}",
            closed.join("out").display()
        )) && reason.ends_with("Permission denied"),
        "{reason}"
    );
    assert!(!closed.join("out").exists());
}

#[test]
fn the_job_cannot_escape() {
    require_root!();
    let fx = Fixture::new("escape");
    // A state root outside /tmp, so the job can see it (under /tmp its
    // private /tmp would hide it).
    let var = tempfile::Builder::new()
        .prefix("xtreem-exec-")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(var.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let parent = format!("{}-var", fx.parent);
    let exec = Executor::open(var.path().join("units"), supervisor(), &parent).unwrap();
    let unit_dir = var.path().join("units/u");
    let script = format!(
        "ls {dir} 2>&1; touch {dir}/x 2>&1; {{ echo 0 > /sys/fs/cgroup/pids/tasks; }} 2>&1; \
         {{ echo 0 > /sys/fs/cgroup/unified/cgroup.procs; }} 2>&1; \
         grep -E '^(Uid|Gid|CapEff)' /proc/self/status",
        dir = unit_dir.display()
    );
    exec.launch(&fx.spec("u", &["sh", "-c", &script])).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let end = rt.block_on(exec.wait("u")).unwrap();
    exec.remove("u").unwrap();
    let _ = exec.remove_cgroup_parent();
    let out = fx.stdout("u");
    assert_eq!(end.state, UnitState::Exited { code: 0 }, "{out}");
    assert!(!unit_dir.join("x").exists(), "{out}");
    assert_eq!(out.matches("Permission denied").count(), 4, "{out}");
    assert!(
        out.contains(&format!("Uid:\t{UID}\t{UID}\t{UID}\t{UID}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Gid:\t{GID}\t{GID}\t{GID}\t{GID}")),
        "{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
}

#[test]
fn root_ids_are_refused() {
    require_root!();
    let fx = Fixture::new("root");
    let mut spec = fx.spec("u", &["true"]);
    spec.uid = 0;
    let err = fx.exec.launch(&spec).unwrap_err();
    assert!(matches!(err, ExecError::InvalidSpec(_)), "{err}");
    assert!(err.to_string().contains("uid 0"), "{err}");
    let mut spec = fx.spec("u", &["true"]);
    spec.gid = 0;
    assert!(
        fx.exec
            .launch(&spec)
            .unwrap_err()
            .to_string()
            .contains("gid 0")
    );
    assert!(fx.exec.units().unwrap().is_empty(), "nothing was created");
    let mut spec = fx.spec("u", &["true"]);
    spec.workdir = fx.work.join("missing");
    assert!(matches!(
        fx.exec.launch(&spec),
        Err(ExecError::InvalidSpec(_))
    ));
}

#[test]
fn remove_deletes_the_cgroup_and_the_directory() {
    require_root!();
    let fx = Fixture::new("remove");
    fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    assert!(matches!(
        fx.exec.remove("u"),
        Err(ExecError::StillRunning(_))
    ));
    assert!(matches!(
        fx.exec.launch(&fx.spec("u", &["true"])),
        Err(ExecError::UnitExists(_))
    ));
    fx.exec.signal("u", libc::SIGTERM).unwrap();
    fx.wait("u", Duration::from_secs(5));
    let v1 = fx.exec.cgroup_version() == CgroupVersion::V1;
    if v1 {
        assert!(cgroup_dir_exists("memory", &fx.parent, "u"));
    }
    assert_eq!(fx.exec.units().unwrap(), vec!["u".to_string()]);
    fx.exec.remove("u").unwrap();
    assert!(fx.exec.units().unwrap().is_empty());
    assert!(!fx.root.join("u").exists());
    for c in ["cpu", "cpuacct", "memory", "pids", "freezer", "blkio"] {
        assert!(!cgroup_dir_exists(c, &fx.parent, "u"), "{c}");
    }
    assert!(matches!(fx.exec.status("u"), Err(ExecError::NoSuchUnit(_))));
    // The name can be used again.
    fx.exec.launch(&fx.spec("u", &["true"])).unwrap();
    assert_eq!(
        fx.wait("u", Duration::from_secs(5)).state,
        UnitState::Exited { code: 0 }
    );
}

#[test]
fn unknown_units_are_reported_as_such() {
    require_root!();
    let fx = Fixture::new("unknown");
    let no_such = |r: Result<(), ExecError>| matches!(r, Err(ExecError::NoSuchUnit(_)));
    assert!(no_such(fx.exec.status("nope").map(drop)));
    assert!(no_such(fx.exec.spec("nope").map(drop)));
    assert!(no_such(fx.exec.remove("nope")));
    assert!(no_such(fx.exec.freeze("nope")));
    assert!(no_such(fx.exec.thaw("nope")));
    assert!(no_such(fx.exec.signal("nope", libc::SIGTERM).map(drop)));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert!(no_such(rt.block_on(fx.exec.wait("nope")).map(drop)));
}

#[test]
fn remove_deletes_files_left_in_the_unit_directory() {
    require_root!();
    let fx = Fixture::new("leftover");
    fx.exec.launch(&fx.spec("u", &["true"])).unwrap();
    fx.wait("u", Duration::from_secs(5));
    std::fs::write(fx.root.join("u").join(".exit.json.tmp"), b"{").unwrap();
    fx.exec.remove("u").unwrap();
    assert!(!fx.root.join("u").exists());
}

#[test]
fn units_run_in_a_cgroup_subtree_made_again_under_a_live_executor() {
    require_root!();
    let fx = Fixture::new("remade");
    fx.exec.launch(&fx.spec("a", &["true"])).unwrap();
    fx.wait("a", Duration::from_secs(5));
    fx.exec.remove("a").unwrap();
    // The descriptors of the subtree the executor holds now name deleted
    // directories; the next supervisor makes the subtree again.
    fx.exec.remove_cgroup_parent().unwrap();
    let st = fx.exec.launch(&fx.spec("b", &["sleep", "30"])).unwrap();
    assert_eq!(st.state, UnitState::Running, "{st:?}");
    // (The CPU time is charged when the job is first descheduled.)
    assert!(
        eventually(Duration::from_secs(2), || fx
            .exec
            .status("b")
            .unwrap()
            .usage
            .cpu_ns
            > 0),
        "the executor does not find the new cgroup"
    );
    assert_eq!(fx.exec.signal("b", libc::SIGKILL).unwrap(), 1);
    let end = fx.wait("b", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGKILL
        },
        "{end:?}"
    );
    fx.exec.remove("b").unwrap();
    for c in ["cpu", "cpuacct", "memory", "pids", "freezer", "blkio"] {
        assert!(!cgroup_dir_exists(c, &fx.parent, "b"), "{c}");
    }
}

#[test]
fn a_lost_supervisor_takes_its_job_along() {
    require_root!();
    let fx = Fixture::new("lost");
    let st = fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    // SAFETY: kill(2) of the supervisor's pid.
    assert_eq!(
        unsafe { libc::kill(st.supervisor_pid.unwrap(), libc::SIGKILL) },
        0
    );
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Failed);
    assert_eq!(end.reason.as_deref(), Some(SUPERVISOR_LOST));
    assert!(
        eventually(Duration::from_secs(5), || dead(st.job_pid.unwrap())),
        "the job outlived its supervisor"
    );
    assert!(eventually(Duration::from_secs(5), || fx
        .exec
        .remove("u")
        .is_ok()));
}

#[test]
fn remove_empties_the_cgroup_a_lost_supervisor_left_frozen() {
    require_root!();
    let fx = Fixture::new("lost-frozen");
    let st = fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    fx.exec.freeze("u").unwrap();
    // SAFETY: kill(2) of the supervisor's pid.
    assert_eq!(
        unsafe { libc::kill(st.supervisor_pid.unwrap(), libc::SIGKILL) },
        0
    );
    // `status` rather than `wait`, which needs up to its pidfd recheck
    // period here (see `wait_ends_when_a_frozen_units_supervisor_is_killed`).
    assert!(eventually(Duration::from_secs(5), || {
        fx.exec.status("u").unwrap().reason.as_deref() == Some(SUPERVISOR_LOST)
    }));
    // v1: the frozen job cannot die of the namespace's end until thawed,
    // so the cgroup is not empty when the removal first tries.
    fx.exec.remove("u").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || dead(st.job_pid.unwrap())),
        "the job outlived its removal"
    );
    for c in ["cpu", "cpuacct", "memory", "pids", "freezer", "blkio"] {
        assert!(!cgroup_dir_exists(c, &fx.parent, "u"), "{c}");
    }
}

#[test]
fn wait_ends_when_a_frozen_units_supervisor_is_killed() {
    require_root!();
    let fx = Fixture::new("lost-frozen-wait");
    let st = fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    fx.exec.freeze("u").unwrap();
    // SAFETY: kill(2) of the supervisor's pid.
    assert_eq!(
        unsafe { libc::kill(st.supervisor_pid.unwrap(), libc::SIGKILL) },
        0
    );
    // The supervisor's pidfd stays silent while the frozen job keeps its
    // namespace from emptying; `wait` must still see the lost supervisor.
    let end = fx.wait("u", Duration::from_secs(15));
    assert_eq!(end.state, UnitState::Failed, "{end:?}");
    assert_eq!(end.reason.as_deref(), Some(SUPERVISOR_LOST));
    fx.exec.remove("u").unwrap();
    assert!(
        eventually(Duration::from_secs(5), || dead(st.job_pid.unwrap())),
        "the job outlived its removal"
    );
}

#[test]
fn a_stopped_supervisor_kills_its_job_and_says_so() {
    require_root!();
    let fx = Fixture::new("stopped");
    let st = fx.exec.launch(&fx.spec("u", &["sleep", "30"])).unwrap();
    // SAFETY: kill(2) of the supervisor's pid.
    assert_eq!(
        unsafe { libc::kill(st.supervisor_pid.unwrap(), libc::SIGTERM) },
        0
    );
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(
        end.state,
        UnitState::Signaled {
            signal: libc::SIGKILL
        }
    );
    assert!(end.reason.unwrap().contains("stopped by signal 15"));
}

/// Env var naming what the helper process launches: `root|parent|workdir`.
const HELPER_ENV: &str = "XTREEM_EXEC_TEST_HELPER";

/// Not a test: the launcher process of `a_unit_survives_its_launcher`.
#[test]
#[ignore = "helper process, run by a_unit_survives_its_launcher"]
fn launcher_helper() {
    let Some(params) = std::env::var(HELPER_ENV).ok() else {
        return;
    };
    let parts: Vec<&str> = params.split('|').collect();
    let exec = Executor::open(PathBuf::from(parts[0]), supervisor(), parts[1]).unwrap();
    let work = PathBuf::from(parts[2]);
    let spec = xtreem_exec::LaunchSpec {
        unit: "survivor".into(),
        argv: vec!["sleep".into(), "2".into()],
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        workdir: work.clone(),
        stdin: None,
        stdout: work.join("survivor.out"),
        stderr: work.join("survivor.err"),
        uid: UID,
        gid: GID,
        limits: Limits::default(),
        credential: None,
        note: None,
    };
    let st = exec.launch(&spec).unwrap();
    println!("launched {}", st.supervisor_pid.unwrap());
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_unit_survives_its_launcher() {
    require_root!();
    let fx = Fixture::new("survive");
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "launcher_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!("{}|{}|{}", fx.root.display(), fx.parent, fx.work.display()),
        )
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = helper.stdout.take().unwrap();
    let mut supervisor_pid = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        // The harness prints "test launcher_helper ... " first, on the same line.
        if let Some((_, pid)) = line.split_once("launched ") {
            supervisor_pid = Some(pid.trim().parse::<i32>().unwrap());
            break;
        }
    }
    let supervisor_pid = supervisor_pid.expect("the helper launched the unit");
    // The daemon dies hard, with its whole process group.
    // SAFETY: killpg(2) of the helper's own group.
    assert_eq!(
        unsafe { libc::killpg(helper.id() as i32, libc::SIGKILL) },
        0
    );
    helper.wait().unwrap();

    // A new daemon on the same root finds the unit running and waits for it.
    let exec = Executor::open(fx.root.clone(), supervisor(), &fx.parent).unwrap();
    assert_eq!(exec.units().unwrap(), vec!["survivor".to_string()]);
    let st = exec.status("survivor").unwrap();
    assert_eq!(st.state, UnitState::Running, "{st:?}");
    assert_eq!(st.supervisor_pid, Some(supervisor_pid));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let t = Instant::now();
    let end = rt
        .block_on(async {
            tokio::time::timeout(Duration::from_secs(6), exec.wait("survivor")).await
        })
        .expect("wait resolves when the unit ends")
        .unwrap();
    assert_eq!(end.state, UnitState::Exited { code: 0 });
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    exec.remove("survivor").unwrap();
}

#[test]
fn cgroup_v2_backend() {
    require_root!();
    let has_v2 = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.contains(" - cgroup2 "));
    if !has_v2 {
        eprintln!("SKIPPED: no cgroup2 mount");
        return;
    }
    let fx = Fixture::with_version("v2", Some(CgroupVersion::V2));
    assert_eq!(fx.exec.cgroup_version(), CgroupVersion::V2);
    fx.exec
        .launch(&fx.spec("u", &["sh", "-c", "cat /proc/self/cgroup; exit 5"]))
        .unwrap();
    let end = fx.wait("u", Duration::from_secs(5));
    assert_eq!(end.state, UnitState::Exited { code: 5 });
    assert!(
        fx.stdout("u")
            .lines()
            .any(|l| l == format!("0::/{}/u", fx.parent)),
        "{}",
        fx.stdout("u")
    );
    let st = fx.exec.launch(&fx.spec("t", &["sleep", "30"])).unwrap();
    let sup = st.supervisor_pid.unwrap();
    let cgroups = std::fs::read_to_string(format!("/proc/{sup}/cgroup")).unwrap();
    assert!(
        cgroups.contains(&format!("0::/{}/_supervisors", fx.parent)),
        "{cgroups}"
    );
    assert_eq!(fx.exec.signal("t", libc::SIGTERM).unwrap(), 1);
    assert_eq!(
        fx.wait("t", Duration::from_secs(5)).state,
        UnitState::Signaled {
            signal: libc::SIGTERM
        }
    );
    freeze_and_thaw(fx);
}

#[test]
fn concurrent_launches() {
    require_root!();
    let fx = Fixture::new("many");
    std::thread::scope(|s| {
        for t in 0..4 {
            let fx = &fx;
            s.spawn(move || {
                for i in 0..10 {
                    let unit = format!("c{t}-{i}");
                    let st = fx.exec.launch(&fx.spec(&unit, &["true"])).unwrap();
                    assert_eq!(st.state, UnitState::Running, "{st:?}");
                }
            });
        }
    });
    let units = fx.exec.units().unwrap();
    assert_eq!(units.len(), 40);
    for unit in &units {
        assert_eq!(
            fx.wait(unit, Duration::from_secs(10)).state,
            UnitState::Exited { code: 0 }
        );
        fx.exec.remove(unit).unwrap();
    }
}
