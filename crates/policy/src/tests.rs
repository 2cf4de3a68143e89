//! Behaviour of the store as a whole: levels, decisions and refusals. Cases
//! are written as policy texts per level plus a request, checked by
//! `check`, so the API can change without rewriting every case.

use crate::{
    Action, AuthzRequest, Decision, Level, PolicyError, PolicyStore, RequestContext, Resource,
    UserFacts,
};

fn store(levels: &[(&str, &str)]) -> PolicyStore {
    let mut store = PolicyStore::new();
    for (level, text) in levels {
        if let Err(e) = store.set(level.parse().unwrap(), text) {
            panic!("setting {level} failed: {e}");
        }
    }
    store
}

fn user(subject: &str, vo: &str) -> UserFacts {
    UserFacts {
        subject: subject.into(),
        vo: vo.into(),
        groups: vec![format!("/{vo}")],
        roles: vec!["member".into()],
        site: "lab".into(),
    }
}

fn node(name: &str, site: &str) -> Resource {
    Resource::Node {
        name: name.into(),
        site: site.into(),
        tags: vec![],
    }
}

fn job(id: &str, owner: &str, vo: &str) -> Resource {
    Resource::Job {
        id: id.into(),
        owner: owner.into(),
        vo: vo.into(),
        site: "lab".into(),
    }
}

fn req(principal: UserFacts, action: Action, resource: Resource) -> AuthzRequest {
    AuthzRequest {
        principal,
        action,
        resource,
        context: RequestContext {
            time_unix: 1_700_000_000,
            cores: 4,
        },
    }
}

/// Decides `req` and checks the outcome and the deciding policy ids.
#[track_caller]
fn check(store: &PolicyStore, req: &AuthzRequest, allowed: bool, reasons: &[&str]) {
    let _ = checked(store, req, allowed, reasons);
}

/// `check`, returning the decision for further checks.
#[track_caller]
fn checked(store: &PolicyStore, req: &AuthzRequest, allowed: bool, reasons: &[&str]) -> Decision {
    let decision = store.authorize(req);
    assert_eq!(decision.allowed, allowed, "{decision:?}");
    assert_eq!(decision.reasons, reasons, "{decision:?}");
    decision
}

const VO_SUBMIT: &str = r#"
permit(principal, action == Xtreem::Action::"submit_job", resource)
when { principal.vo == "demo" && resource.site == "lab" };
"#;

#[test]
fn vo_permit_allows_its_members() {
    let store = store(&[("vo:demo", VO_SUBMIT)]);
    let d = checked(
        &store,
        &req(user("alice", "demo"), Action::SubmitJob, node("n1", "lab")),
        true,
        &["vo:demo#0"],
    );
    assert!(d.errors.is_empty());
}

#[test]
fn default_deny_when_nothing_matches() {
    let empty = PolicyStore::new();
    let submit = req(user("alice", "demo"), Action::SubmitJob, node("n1", "lab"));
    check(&empty, &submit, false, &[]);

    let store = store(&[("vo:demo", VO_SUBMIT)]);
    // Another action, another site: no permit matches.
    check(
        &store,
        &req(user("alice", "demo"), Action::Login, node("n1", "lab")),
        false,
        &[],
    );
    check(
        &store,
        &req(
            user("alice", "demo"),
            Action::SubmitJob,
            node("n1", "elsewhere"),
        ),
        false,
        &[],
    );
}

#[test]
fn a_repeated_request_follows_a_policy_change_and_removal() {
    let mut store = store(&[("vo:demo", VO_SUBMIT)]);
    let submit = req(user("alice", "demo"), Action::SubmitJob, node("n1", "lab"));
    check(&store, &submit, true, &["vo:demo#0"]);
    check(&store, &submit, true, &["vo:demo#0"]);
    store
        .set(
            "site:lab".parse().unwrap(),
            r#"@id("closed") forbid(principal, action, resource);"#,
        )
        .unwrap();
    check(&store, &submit, false, &["site:lab#closed"]);
    assert!(store.remove(&"site:lab".parse().unwrap()));
    check(&store, &submit, true, &["vo:demo#0"]);
    assert!(store.remove(&"vo:demo".parse().unwrap()));
    check(&store, &submit, false, &[]);
}

#[test]
fn site_forbid_beats_vo_permit() {
    let store = store(&[
        ("vo:demo", VO_SUBMIT),
        (
            "site:lab",
            r#"@id("no-big-jobs")
               forbid(principal, action == Xtreem::Action::"submit_job", resource)
               when { context.cores > 2 };"#,
        ),
    ]);
    let mut r = req(user("alice", "demo"), Action::SubmitJob, node("n1", "lab"));
    check(&store, &r, false, &["site:lab#no-big-jobs"]);
    r.context.cores = 2;
    check(&store, &r, true, &["vo:demo#0"]);
}

/// Multiplying by 2^62 overflows Cedar's 64-bit Long for 4 cores; the
/// validator cannot know that, so it is an evaluation error.
const OVERFLOW_FORBID: &str = r#"
forbid(principal, action, resource) when { context.cores * 4611686018427387904 > 0 };
"#;

#[test]
fn erroring_forbid_denies_even_when_a_permit_matches() {
    let store = store(&[("vo:demo", VO_SUBMIT), ("site:lab", OVERFLOW_FORBID)]);
    let d = checked(
        &store,
        &req(user("alice", "demo"), Action::SubmitJob, node("n1", "lab")),
        false,
        &["site:lab#0"],
    );
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("site:lab#0"), "{d:?}");
    assert!(d.errors[0].contains("overflow"), "{d:?}");
}

#[test]
fn erroring_permit_denies_and_reports() {
    // The entity literal passes validation but is not in the request's
    // entities, so reading its attribute fails at evaluation.
    let store = store(&[(
        "vo:demo",
        r#"permit(principal, action, resource) when { Xtreem::User::"ghost".vo == "demo" };"#,
    )]);
    let d = checked(
        &store,
        &req(
            user("alice", "demo"),
            Action::ReadVo,
            Resource::Vo {
                name: "demo".into(),
            },
        ),
        false,
        &["vo:demo#0"],
    );
    assert_eq!(d.errors.len(), 1, "{d:?}");
    assert!(d.errors[0].contains("ghost"), "{d:?}");
}

#[track_caller]
fn assert_refused(store: &mut PolicyStore, level: &str, text: &str, wanted: &[&str]) -> String {
    let level: Level = level.parse().unwrap();
    let before = store.show(&level).map(str::to_string);
    let err = store.set(level.clone(), text).unwrap_err();
    let message = err.to_string();
    for w in wanted {
        assert!(message.contains(w), "{w:?} not in:\n{message}");
    }
    assert_eq!(
        store.show(&level).map(str::to_string),
        before,
        "policy changed on refusal"
    );
    message
}

#[test]
fn schema_violations_are_refused_and_the_old_policy_stays() {
    let mut store = store(&[("vo:demo", VO_SUBMIT)]);
    let submit = req(user("alice", "demo"), Action::SubmitJob, node("n1", "lab"));

    let unknown_attr = r#"permit(principal, action, resource) when { principal.shoe_size > 3 };"#;
    let msg = assert_refused(
        &mut store,
        "vo:demo",
        unknown_attr,
        &["shoe_size", "line 1, column"],
    );
    assert!(
        matches!(
            store.set("vo:demo".parse().unwrap(), unknown_attr),
            Err(PolicyError::Invalid { .. })
        ),
        "{msg}"
    );

    let wrong_type = "permit(principal, action, resource) when { principal.vo > 3 };";
    assert_refused(&mut store, "vo:demo", wrong_type, &["vo:demo", "Long"]);

    let unknown_action = "\n\npermit(principal, action == Xtreem::Action::\"fly\", resource);";
    assert_refused(&mut store, "vo:demo", unknown_action, &["fly", "line 3"]);

    let missing_context = "permit(principal, action, resource) when { context.gpus > 0 };";
    assert_refused(&mut store, "vo:demo", missing_context, &["gpus"]);

    // The original policy is still the one in force.
    assert_eq!(store.show(&"vo:demo".parse().unwrap()), Some(VO_SUBMIT));
    check(&store, &submit, true, &["vo:demo#0"]);
}

#[test]
fn broken_syntax_is_refused_with_position() {
    let mut store = store(&[("site:lab", OVERFLOW_FORBID)]);
    let msg = assert_refused(
        &mut store,
        "site:lab",
        "permit(principal, action, resource)\nwhen { principal.vo == };",
        &["does not parse", "line 2"],
    );
    assert!(msg.contains("2 | when"), "{msg}");
    assert_refused(
        &mut store,
        "site:lab",
        "permit(principal, action, resource)",
        &["site:lab"],
    );
}

#[test]
fn vo_policy_never_applies_to_other_vos() {
    let everything = "permit(principal, action, resource);";
    let store = store(&[("vo:a", everything)]);
    // A user of VO b gets nothing from VO a's policy, even on nodes.
    check(
        &store,
        &req(user("bob", "b"), Action::UseNode, node("n1", "lab")),
        false,
        &[],
    );
    check(
        &store,
        &req(
            user("bob", "b"),
            Action::ManageVo,
            Resource::Vo { name: "a".into() },
        ),
        false,
        &[],
    );
    check(
        &store,
        &req(
            user("alice", "a"),
            Action::ManageVo,
            Resource::Vo { name: "a".into() },
        ),
        true,
        &["vo:a#0"],
    );
}

#[test]
fn vo_policy_cannot_grant_on_another_vos_resources() {
    let store = store(&[("vo:b", "permit(principal, action, resource);")]);
    let d = checked(
        &store,
        &req(
            user("bob", "b"),
            Action::ManageVo,
            Resource::Vo { name: "a".into() },
        ),
        false,
        &[],
    );
    assert_eq!(d.ignored, ["vo:b#0"]);
    check(
        &store,
        &req(user("bob", "b"), Action::ReadJob, job("7", "alice", "a")),
        false,
        &[],
    );
    check(
        &store,
        &req(user("bob", "b"), Action::ReadJob, job("8", "bob", "b")),
        true,
        &["vo:b#0"],
    );
}

const ALICE_SHARES: &str = r#"
@id("share-with-bob")
permit(principal == Xtreem::User::"bob", action == Xtreem::Action::"read_job", resource)
when { resource.owner == "alice" };
"#;

#[test]
fn user_sharing_works_only_on_own_resources() {
    let store = store(&[
        ("user:alice", ALICE_SHARES),
        // Even an unconditional user policy cannot reach others' jobs.
        ("user:mallory", "permit(principal, action, resource);"),
    ]);
    let bob = user("bob", "other");
    check(
        &store,
        &req(bob.clone(), Action::ReadJob, job("1", "alice", "demo")),
        true,
        &["user:alice#share-with-bob"],
    );
    check(
        &store,
        &req(bob.clone(), Action::SignalJob, job("1", "alice", "demo")),
        false,
        &[],
    );
    check(
        &store,
        &req(bob.clone(), Action::ReadJob, job("2", "carol", "demo")),
        false,
        &[],
    );
    check(
        &store,
        &req(bob.clone(), Action::UseNode, node("n1", "lab")),
        false,
        &[],
    );
    check(
        &store,
        &req(bob, Action::SignalJob, job("3", "mallory", "demo")),
        true,
        &["user:mallory#0"],
    );
}

#[test]
fn site_forbid_beats_user_sharing_and_users_cannot_forbid() {
    let mut store = store(&[
        ("user:alice", ALICE_SHARES),
        (
            "site:lab",
            r#"forbid(principal, action, resource) unless { principal.site == "lab" };"#,
        ),
    ]);
    let mut bob = user("bob", "other");
    bob.site = "far".into();
    check(
        &store,
        &req(bob, Action::ReadJob, job("1", "alice", "demo")),
        false,
        &["site:lab#0"],
    );

    let err = assert_refused(
        &mut store,
        "user:alice",
        "forbid(principal, action, resource);",
        &["user:alice#0", "may only permit"],
    );
    assert!(err.contains("forbid"));
}

#[test]
fn groups_form_a_hierarchy_under_the_vo() {
    let store = store(&[(
        "vo:demo",
        r#"
        permit(principal in Xtreem::Group::"/demo/analysis", action == Xtreem::Action::"use_node", resource)
        when { resource.tags.contains("gpu") };
        permit(principal in Xtreem::Vo::"demo", action == Xtreem::Action::"read_vo", resource == Xtreem::Vo::"demo");
        permit(principal, action == Xtreem::Action::"manage_members", resource)
        when { principal.roles.contains("admin") && principal.groups.contains("/demo") };
        "#,
    )]);
    let mut analyst = user("ann", "demo");
    analyst.groups = vec!["/demo/analysis/gpu-team".into()];
    let gpu = Resource::Node {
        name: "g1".into(),
        site: "lab".into(),
        tags: vec!["gpu".into()],
    };
    check(
        &store,
        &req(analyst.clone(), Action::UseNode, gpu.clone()),
        true,
        &["vo:demo#0"],
    );
    check(
        &store,
        &req(user("bob", "demo"), Action::UseNode, gpu),
        false,
        &[],
    );
    let demo = Resource::Vo {
        name: "demo".into(),
    };
    check(
        &store,
        &req(analyst.clone(), Action::ReadVo, demo.clone()),
        true,
        &["vo:demo#1"],
    );
    check(
        &store,
        &req(analyst, Action::ManageMembers, demo.clone()),
        false,
        &[],
    );
    let mut admin = user("root", "demo");
    admin.roles.push("admin".into());
    check(
        &store,
        &req(admin, Action::ManageMembers, demo),
        true,
        &["vo:demo#2"],
    );
}

#[test]
fn action_lists_admit_exactly_their_actions() {
    let store = store(&[(
        "vo:demo",
        r#"permit(principal, action in [Xtreem::Action::"read_job", Xtreem::Action::"signal_job"], resource);"#,
    )]);
    let alice = user("alice", "demo");
    for action in Action::ALL {
        let resource = match action {
            Action::ReadJob | Action::SignalJob => job("1", "bob", "demo"),
            Action::Login | Action::SubmitJob | Action::UseNode => node("n1", "lab"),
            Action::ManageVo | Action::ManageMembers | Action::ReadVo => Resource::Vo {
                name: "demo".into(),
            },
        };
        let allowed = matches!(action, Action::ReadJob | Action::SignalJob);
        let reasons: &[&str] = if allowed { &["vo:demo#0"] } else { &[] };
        check(
            &store,
            &req(alice.clone(), action, resource),
            allowed,
            reasons,
        );
    }
}

#[test]
fn a_request_that_does_not_fit_the_schema_is_denied() {
    let store = store(&[("vo:demo", "permit(principal, action, resource);")]);
    // read_job applies to jobs, not nodes.
    let d = checked(
        &store,
        &req(user("alice", "demo"), Action::ReadJob, node("n1", "lab")),
        false,
        &[],
    );
    assert_eq!(d.errors.len(), 1, "{d:?}");
}

#[test]
fn ids_summaries_templates_and_removal() {
    let mut store = PolicyStore::new();
    let level: Level = "site:lab".parse().unwrap();
    let summary = store
        .set(
            level.clone(),
            r#"permit(principal, action == Xtreem::Action::"login", resource);
               @id("night") forbid(principal, action, resource) when { context.time_unix < 0 };
               permit(principal, action == Xtreem::Action::"use_node", resource);"#,
        )
        .unwrap();
    assert_eq!(summary.ids, ["site:lab#0", "site:lab#night", "site:lab#2"]);
    assert_eq!((summary.permits, summary.forbids), (2, 1));
    assert_eq!(store.summary(&level), Some(&summary));
    assert_eq!(store.levels(), std::slice::from_ref(&level));

    assert_refused(
        &mut store,
        "site:lab",
        r#"@id("x") permit(principal, action, resource); @id("x") permit(principal, action, resource);"#,
        &["\"x\" twice"],
    );
    assert_refused(
        &mut store,
        "site:lab",
        "permit(principal == ?principal, action, resource);",
        &["template"],
    );

    // check() validates without storing.
    let vo: Level = "vo:demo".parse().unwrap();
    store.check(&vo, VO_SUBMIT).unwrap();
    assert!(store.show(&vo).is_none());

    assert!(store.remove(&level));
    assert!(!store.remove(&level));
    assert!(store.levels().is_empty());
}

#[test]
fn oversized_texts_are_refused() {
    let mut store = PolicyStore::new();
    let many = "permit(principal, action, resource);\n".repeat(crate::POLICIES_PER_LEVEL_MAX + 1);
    assert_refused(&mut store, "vo:demo", &many, &["at most 1024"]);
    let huge = format!("// {}\n", "x".repeat(crate::POLICY_TEXT_MAX_BYTES));
    assert_refused(&mut store, "vo:demo", &huge, &["bytes"]);
}

#[test]
fn impossible_policies_are_accepted_with_a_warning() {
    let mut store = PolicyStore::new();
    let summary = store
        .set(
            "vo:demo".parse().unwrap(),
            r#"permit(principal, action == Xtreem::Action::"read_job", resource is Xtreem::Node);"#,
        )
        .unwrap();
    assert!(!summary.warnings.is_empty(), "{summary:?}");
    assert!(summary.warnings[0].contains("vo:demo#0"), "{summary:?}");
}

#[test]
fn store_is_shareable_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<PolicyStore>();
}
