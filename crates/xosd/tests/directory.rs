//! The directory as its users meet it: real daemons gossiping over UDP,
//! queries through the CLI's client, failures, partitions, two sites.

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tonic::Code;
use xtreem_client::{ClientError, DirectoryClient, Profile, VoClient};
use xtreem_proto::directory as dpb;
use xtreem_proto::vo as pb;
use xtreem_testkit::{Grid, NodeSpec};

const PASSWORD: &str = "correct horse battery";

fn profile(grid: &Grid) -> Profile {
    Profile::load(&grid.admin_dir()).unwrap()
}

fn admin_directory(grid: &Grid, i: usize) -> DirectoryClient {
    DirectoryClient::connect(&profile(grid), &grid.node(i).rpc, true, None).unwrap()
}

fn user_directory(grid: &Grid, i: usize, token: &str) -> DirectoryClient {
    DirectoryClient::connect(&profile(grid), &grid.node(i).rpc, false, Some(token.into())).unwrap()
}

/// Liveness of every other member as node `i`'s gossip sees it; a member
/// counts as alive once its descriptor has arrived too.
async fn view(grid: &Grid, i: usize) -> BTreeMap<String, bool> {
    match admin_directory(grid, i).members().await {
        Ok(m) => m
            .members
            .into_iter()
            .map(|m| (m.node, m.alive && m.descriptor_version > 0))
            .collect(),
        Err(_) => BTreeMap::new(),
    }
}

async fn counters(grid: &Grid, i: usize) -> BTreeMap<String, u64> {
    admin_directory(grid, i)
        .members()
        .await
        .unwrap()
        .counters
        .into_iter()
        .collect()
}

/// Polls `probe` every 100 ms until it returns `Some` or `timeout` passes.
async fn eventually<T>(timeout: Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn query(text: &str) -> dpb::QueryRequest {
    dpb::QueryRequest {
        query: text.into(),
        ..Default::default()
    }
}

/// Waits until every node in `nodes` sees exactly `expect` (name -> alive)
/// for the others; returns how long it took.
async fn until_views(
    grid: &Grid,
    nodes: &[usize],
    expect: impl Fn(usize, &str) -> Option<bool>,
    timeout: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let mut all = true;
        let mut last = BTreeMap::new();
        for &i in nodes {
            let seen = view(grid, i).await;
            let me = grid.node(i).spec.name.clone();
            for j in 0..grid.len() {
                let name = grid.node(j).spec.name.clone();
                if name == me {
                    continue;
                }
                if let Some(alive) = expect(j, &name)
                    && seen.get(&name) != Some(&alive)
                {
                    all = false;
                }
            }
            last.insert(me, seen);
        }
        if all {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "views did not converge within {timeout:?}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn five_nodes_gossip_detect_a_killed_node_and_take_it_back_fresh() {
    let mut grid = site(5).await;
    let all: Vec<usize> = (0..5).collect();
    until_views(&grid, &all, |_, _| Some(true), Duration::from_secs(10)).await;

    // Every node answers a query with all five, alive.
    let answer = admin_directory(&grid, 3)
        .query(query("cores>=1"))
        .await
        .unwrap();
    assert_eq!(answer.nodes.len(), 5, "{answer:?}");
    let before = answer
        .nodes
        .iter()
        .find(|r| r.descriptor.node == "node-5")
        .unwrap()
        .descriptor
        .version;

    grid.kill9(4).unwrap();
    let killed = Instant::now();
    let others: Vec<usize> = (0..4).collect();
    until_views(&grid, &others, |j, _| Some(j != 4), Duration::from_secs(8)).await;
    eprintln!("node-5 marked dead everywhere after {:?}", killed.elapsed());
    let dead = admin_directory(&grid, 0)
        .query(query("state==dead"))
        .await
        .unwrap();
    let names: Vec<&str> = dead
        .nodes
        .iter()
        .map(|r| r.descriptor.node.as_str())
        .collect();
    assert_eq!(names, ["node-5"]);

    grid.restart(4).await.unwrap();
    until_views(&grid, &others, |_, _| Some(true), Duration::from_secs(10)).await;
    let back = eventually(Duration::from_secs(10), async || {
        let a = admin_directory(&grid, 1)
            .query(query("name==node-5"))
            .await
            .ok()?;
        let r = a.nodes.first()?.clone();
        (r.alive && r.descriptor.version > before && r.dynamic.is_some()).then_some(r)
    })
    .await
    .expect("node-5 back with a new descriptor");
    assert!(back.dynamic.is_some(), "fresh dynamic attributes: {back:?}");
}

#[tokio::test]
async fn queries_are_parsed_with_positions_and_sorted_and_limited() {
    let grid = site(3).await;
    let all: Vec<usize> = (0..3).collect();
    until_views(&grid, &all, |_, _| Some(true), Duration::from_secs(10)).await;
    let mut client = admin_directory(&grid, 0);
    match client.query(query("cores>=4 && mem>==8GiB")).await {
        Err(ClientError::Refused { code, message, .. }) => {
            assert_eq!(code, Code::InvalidArgument);
            assert!(
                message.contains("`>==`") && message.contains("at 15"),
                "{message}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    match client.query(query("warp>=9")).await {
        Err(ClientError::Refused { message, .. }) => {
            assert!(message.contains("unknown attribute"), "{message}")
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    let answer = client
        .query(dpb::QueryRequest {
            query: "cores>=1 && arch==".to_owned() + std::env::consts::ARCH,
            sort: vec!["-name".into()],
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = answer
        .nodes
        .iter()
        .map(|r| r.descriptor.node.as_str())
        .collect();
    assert_eq!(names, ["node-3", "node-2"]);
    let none = client.query(query("cores>=100000")).await.unwrap();
    assert!(none.nodes.is_empty());
}

#[tokio::test]
async fn garbage_and_foreign_gossip_is_dropped_and_counted() {
    let grid = site(2).await;
    until_views(&grid, &[0, 1], |_, _| Some(true), Duration::from_secs(10)).await;
    let target = grid.node(1).gossip.clone();
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    // Garbage, a packet that looks like ours but is sealed with another
    // key, and an oversized datagram.
    for n in 0..50u8 {
        socket
            .send_to(&vec![n; 10 + n as usize * 20], &target)
            .unwrap();
    }
    let foreign = xtreem_gossip::Keyring::new(xtreem_gossip::SiteKey::new(1, [9; 32]), None);
    for _ in 0..20 {
        let packet = foreign.seal(xtreem_gossip::envelope::Kind::Swim, b"forged", [1; 12]);
        socket.send_to(&packet, &target).unwrap();
    }
    socket.send_to(&vec![0x58; 9000], &target).unwrap();
    let seen = eventually(Duration::from_secs(5), async || {
        let c = counters(&grid, 1).await;
        (c["dropped_unauthenticated"] >= 20 && c["dropped_malformed"] >= 50).then_some(c)
    })
    .await
    .expect("refusals counted");
    assert_eq!(seen["rejected_forged"], 0);
    // Still a member in good standing.
    until_views(&grid, &[0, 1], |_, _| Some(true), Duration::from_secs(5)).await;
    let answer = admin_directory(&grid, 1).query(query("")).await.unwrap();
    assert_eq!(answer.nodes.len(), 2);
}

#[tokio::test]
async fn absurd_directory_config_is_refused_with_the_key() {
    let mut g = grid();
    let mut spec = NodeSpec::new("node-1", &["core", "resource", "client"], g.next_ip());
    let tags: Vec<String> = (0..65).map(|i| format!("\"t{i}\"")).collect();
    spec.extra_config = format!("\n[directory]\ntags = [{}]\n", tags.join(","));
    let i = g.add_node(spec).unwrap();
    let node = g.node_mut(i);
    node.write_config(None).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xosd"))
        .args(["--check-config", "--config"])
        .arg(node.config_path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("directory.tags") && stderr.contains("at most 64"),
        "{stderr}"
    );
}

/// Drops all traffic between two groups of loopback addresses while alive
/// (nodes connect from their own address, so TCP is cut as well as gossip).
struct Partition {
    rules: Vec<Vec<String>>,
}

impl Partition {
    fn new(a: &[Ipv4Addr], b: &[Ipv4Addr]) -> Partition {
        let mut rules = Vec::new();
        for x in a {
            for y in b {
                for (s, d) in [(x, y), (y, x)] {
                    let rule = [
                        "INPUT",
                        "-s",
                        &s.to_string(),
                        "-d",
                        &d.to_string(),
                        "-j",
                        "DROP",
                    ];
                    rules.push(rule.map(String::from).to_vec());
                }
            }
        }
        for rule in &rules {
            iptables("-A", rule);
        }
        Partition { rules }
    }
}

fn iptables(op: &str, rule: &[String]) {
    let ok = Command::new("iptables")
        .arg(op)
        .args(rule)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok || op == "-D", "iptables {op} {rule:?} failed");
}

impl Drop for Partition {
    fn drop(&mut self) {
        for rule in &self.rules {
            iptables("-D", rule);
        }
    }
}

fn can_partition() -> bool {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("SKIP: partitions need root (iptables)");
        return false;
    }
    if Command::new("iptables").arg("-V").output().is_err() {
        eprintln!("SKIP: iptables is not installed (apt-get install iptables)");
        return false;
    }
    true
}

#[tokio::test]
async fn a_partitioned_site_keeps_answering_on_both_sides_and_heals() {
    if !can_partition() {
        return;
    }
    let mut g = grid();
    // Addresses no other test uses, so the rules touch only this grid.
    let ips: Vec<Ipv4Addr> = (0..5).map(|k| Ipv4Addr::new(127, 0, 77, 10 + k)).collect();
    let specs = ips
        .iter()
        .enumerate()
        .map(|(k, ip)| {
            let roles: &[&'static str] = if k == 0 {
                &["core", "resource", "client"]
            } else {
                &["resource", "client"]
            };
            NodeSpec::new(&format!("node-{}", k + 1), roles, *ip)
        })
        .collect();
    g.start_site_with("lab", specs).await.unwrap();
    let all: Vec<usize> = (0..5).collect();
    until_views(&g, &all, |_, _| Some(true), Duration::from_secs(10)).await;

    let side_a = [0usize, 1];
    let side_b = [2usize, 3, 4];
    {
        let _cut = Partition::new(&ips[..2], &ips[2..]);
        let in_a = |j: usize| side_a.contains(&j);
        until_views(&g, &side_a, |j, _| Some(in_a(j)), Duration::from_secs(10)).await;
        until_views(&g, &side_b, |j, _| Some(!in_a(j)), Duration::from_secs(10)).await;
        // Side A (with the core node) answers with fresh values.
        let a = admin_directory(&g, 1)
            .query(query("state==alive"))
            .await
            .unwrap();
        let names: Vec<&str> = a.nodes.iter().map(|r| r.descriptor.node.as_str()).collect();
        assert_eq!(names, ["node-1", "node-2"], "{a:?}");
        // Side B cannot reach the core node and answers from its own view.
        let b = admin_directory(&g, 3)
            .query(query("state==alive"))
            .await
            .unwrap();
        let names: Vec<&str> = b.nodes.iter().map(|r| r.descriptor.node.as_str()).collect();
        assert_eq!(names, ["node-3", "node-4", "node-5"], "{b:?}");
        assert!(b.notes.iter().any(|n| n.contains("own view")), "{b:?}");
    }
    until_views(&g, &all, |_, _| Some(true), Duration::from_secs(15)).await;
    let healed = admin_directory(&g, 3)
        .query(query("state==alive"))
        .await
        .unwrap();
    assert_eq!(healed.nodes.len(), 5, "{healed:?}");
}

async fn add_user_vo(grid: &Grid, vo: &str, users: &[&str]) {
    let mut admin = VoClient::connect(&profile(grid), &grid.node(0).rpc, true, None).unwrap();
    for user in users {
        admin
            .add_user(pb::AddUserRequest {
                name: (*user).into(),
                password: PASSWORD.into(),
            })
            .await
            .unwrap();
    }
    admin
        .create_vo(pb::CreateVoRequest {
            name: vo.into(),
            first_admin: users[0].into(),
        })
        .await
        .unwrap();
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

async fn trust(from: &Grid, to: &Grid) {
    let bundle = VoClient::connect(&profile(from), &from.node(0).rpc, true, None)
        .unwrap()
        .site_bundle(pb::Empty {})
        .await
        .unwrap()
        .bundle;
    VoClient::connect(&profile(to), &to.node(0).rpc, true, None)
        .unwrap()
        .trust_site(pb::TrustSiteRequest { bundle })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_query_at_one_site_finds_matching_nodes_of_a_trusting_site_that_serve_the_vo() {
    let mut a = grid();
    a.start_site("lab-a", 2).await.unwrap();
    add_user_vo(&a, "demo", &["alice"]).await;
    VoClient::connect(&profile(&a), &a.node(0).rpc, true, None)
        .unwrap()
        .serve_vo(pb::ServeVoRequest {
            vo: "demo".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    let mut b = grid();
    let ips: Vec<Ipv4Addr> = (0..3).map(|k| Ipv4Addr::new(127, 0, 78, 10 + k)).collect();
    let specs = ips
        .iter()
        .enumerate()
        .map(|(k, ip)| {
            let roles: &[&'static str] = if k == 0 {
                &["core", "resource", "client"]
            } else {
                &["resource", "client"]
            };
            let mut spec = NodeSpec::new(&format!("node-{}", k + 1), roles, *ip);
            if k > 0 {
                spec.extra_config = "\n[directory]\ntags = [\"gpu\"]\n".into();
            }
            spec
        })
        .collect();
    b.start_site_with("lab-b", specs).await.unwrap();
    trust(&a, &b).await;
    trust(&b, &a).await;
    // Site B lends only node-2 to VO demo; node-3 has a GPU too but serves no VO.
    VoClient::connect(&profile(&b), &b.node(0).rpc, true, None)
        .unwrap()
        .serve_vo(pb::ServeVoRequest {
            vo: "demo".into(),
            nodes: vec!["node-2".into()],
            ..Default::default()
        })
        .await
        .unwrap();

    let alice = login(&a, "alice", "demo").await;
    let found = eventually(Duration::from_secs(20), async || {
        let answer = user_directory(&a, 1, &alice)
            .query(query("tag:gpu"))
            .await
            .ok()?;
        (!answer.nodes.is_empty()).then_some(answer)
    })
    .await
    .expect("site B's GPU node found from site A");
    let names: Vec<(String, String)> = found
        .nodes
        .iter()
        .map(|r| (r.descriptor.site.clone(), r.descriptor.node.clone()))
        .collect();
    assert_eq!(
        names,
        [("lab-b".to_string(), "node-2".to_string())],
        "{found:?}"
    );
    assert!(found.sites.contains(&"lab-b".to_string()));

    // Naming the other site searches it even when site A has matches; node-3
    // of site B never shows, whatever the query.
    let named = user_directory(&a, 0, &alice)
        .query(query("site in [lab-a, lab-b]"))
        .await
        .unwrap();
    let names: Vec<(String, String)> = named
        .nodes
        .iter()
        .map(|r| (r.descriptor.site.clone(), r.descriptor.node.clone()))
        .collect();
    assert!(
        names.contains(&("lab-b".into(), "node-2".into())),
        "{names:?}"
    );
    assert!(
        !names.contains(&("lab-b".into(), "node-3".into())),
        "{names:?}"
    );
    assert!(
        names.contains(&("lab-a".into(), "node-1".into())),
        "{names:?}"
    );
}
