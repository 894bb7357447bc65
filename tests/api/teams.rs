//! Teams and RBAC: membership first, then the permission; roles, members, invites, audit.

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::both_modes;
use crate::helpers::app::{Browser, expect};
use crate::helpers::smtp::link_token;
use crate::helpers::{Mode, TestApp, TestUser};

pub(crate) async fn role_id(b: &Browser, team: i64, name: &str) -> i64 {
    let roles = expect(
        b.get(&format!("/api/v1/teams/{team}/roles")).await,
        StatusCode::OK,
    )
    .await;
    roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("role {name}"))["id"]
        .as_i64()
        .unwrap()
}

async fn switch(b: &Browser, team: i64) {
    expect(
        b.send(
            reqwest::Method::POST,
            "/api/v1/auth/switch-team",
            Some(json!({ "team_id": team })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
}

/// Invites a new user into `team` with the role named `role`, signed in and switched to it.
async fn join(app: &TestApp, owner: &Browser, team: i64, role: &str) -> (TestUser, Browser) {
    let role = role_id(owner, team, role).await;
    app.join_team(owner, team, role).await
}

async fn owner_has_everything_and_viewer_reads_only(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner_user = app.verified_user().await;
    let owner = app.signed_in(&owner_user).await;
    let team = owner.team_id().await;
    let catalogue = expect(owner.get("/api/v1/permissions").await, StatusCode::OK).await;
    let slugs: Vec<String> = catalogue["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["slug"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(slugs.len(), 9);
    assert!(
        catalogue["permissions"][0]["description"]
            .as_str()
            .unwrap()
            .len()
            > 5
    );
    let mut mine: Vec<String> = serde_json::from_value(
        expect(owner.me().await, StatusCode::OK).await["permissions"].clone(),
    )
    .unwrap();
    mine.sort();
    let mut all = slugs.clone();
    all.sort();
    assert_eq!(mine, all, "Owner has the whole catalogue");

    let (_, viewer) = join(&app, &owner, team, "Viewer").await;
    let me = expect(viewer.me().await, StatusCode::OK).await;
    assert_eq!(me["role"]["name"], "Viewer");
    let perms: Vec<String> = serde_json::from_value(me["permissions"].clone()).unwrap();
    assert!(perms.iter().all(|p| p.ends_with(".read")), "{perms:?}");
    let members = expect(
        viewer.get(&format!("/api/v1/teams/{team}/members")).await,
        StatusCode::OK,
    )
    .await;
    let list = members["members"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(
        list.iter()
            .any(|m| m["role"]["name"] == "Owner" && m["email"] == owner_user.email)
    );
    let r = viewer
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": "x@example.com", "role_id": 4 })),
        )
        .await;
    let e = expect(r, StatusCode::FORBIDDEN).await;
    assert_eq!(e["detail"], "Missing permission: team.members.invite");
    assert_eq!(e["permission"], "team.members.invite");
    let teams = expect(viewer.get("/api/v1/teams").await, StatusCode::OK).await;
    assert_eq!(teams["teams"].as_array().unwrap().len(), 2);
}

async fn non_members_are_refused_everywhere(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let stranger = app.signed_in(&app.verified_user().await).await;
    use reqwest::Method as M;
    let routes: Vec<(M, String, Option<Value>)> = vec![
        (M::GET, format!("/api/v1/teams/{team}/members"), None),
        (
            M::PATCH,
            format!("/api/v1/teams/{team}/members/1"),
            Some(json!({ "role_id": 1 })),
        ),
        (M::DELETE, format!("/api/v1/teams/{team}/members/1"), None),
        (M::GET, format!("/api/v1/teams/{team}/roles"), None),
        (
            M::POST,
            format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "x", "permissions": [] })),
        ),
        (
            M::PUT,
            format!("/api/v1/teams/{team}/roles/1/permissions"),
            Some(json!({ "permissions": [] })),
        ),
        (
            M::POST,
            format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": "a@example.com", "role_id": 4 })),
        ),
        (M::GET, format!("/api/v1/teams/{team}/invites"), None),
        (M::DELETE, format!("/api/v1/teams/{team}/invites/1"), None),
        (M::GET, format!("/api/v1/teams/{team}/audit"), None),
        (
            M::POST,
            "/api/v1/auth/switch-team".to_owned(),
            Some(json!({ "team_id": team })),
        ),
    ];
    for (method, path, body) in routes {
        let r = stranger.send(method.clone(), &path, body).await;
        let e = expect(r, StatusCode::FORBIDDEN).await;
        assert_eq!(e["detail"], "Not a member of team", "{method} {path}");
    }
    // Unauthenticated comes first: 401.
    expect(
        app.browser()
            .get(&format!("/api/v1/teams/{team}/members"))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

async fn permission_changes_bite_on_the_next_request(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let r = owner
        .send(
            reqwest::Method::POST,
            &format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "Auditor", "permissions": ["team.members.read"] })),
        )
        .await;
    let auditor = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let (_, member) = join(&app, &owner, team, "Auditor").await;
    let audit_path = format!("/api/v1/teams/{team}/audit");
    expect(member.get(&audit_path).await, StatusCode::FORBIDDEN).await;

    // A second instance on the same stores (production) sees the same answers.
    let other = if mode == Mode::Production {
        let (sink, port) = crate::helpers::smtp::SmtpSink::start_on(0).await;
        Some(TestApp::spawn_on(Arc::clone(&app.storage), sink, port, &[]).await)
    } else {
        None
    };
    let other_get = |path: String| {
        let access = member.access();
        let url = other.as_ref().map(|o| o.url(&path));
        async move {
            match url {
                Some(url) => Some(
                    reqwest::Client::new()
                        .get(url)
                        .bearer_auth(access)
                        .send()
                        .await
                        .unwrap()
                        .status(),
                ),
                None => None,
            }
        }
    };
    if let Some(status) = other_get(audit_path.clone()).await {
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    let path = format!("/api/v1/teams/{team}/roles/{auditor}/permissions");
    expect(
        owner
            .send(
                reqwest::Method::PUT,
                &path,
                Some(json!({ "permissions": ["team.members.read", "audit.read"] })),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    expect(member.get(&audit_path).await, StatusCode::OK).await;
    if let Some(status) = other_get(audit_path.clone()).await {
        assert_eq!(status, StatusCode::OK, "granted on the other instance too");
    }
    expect(
        owner
            .send(
                reqwest::Method::PUT,
                &path,
                Some(json!({ "permissions": ["team.members.read"] })),
            )
            .await,
        StatusCode::OK,
    )
    .await;
    let e = expect(member.get(&audit_path).await, StatusCode::FORBIDDEN).await;
    assert_eq!(e["detail"], "Missing permission: audit.read");
    if let Some(status) = other_get(audit_path.clone()).await {
        assert_eq!(
            status,
            StatusCode::FORBIDDEN,
            "revoked on the other instance at once"
        );
    }
    // The same session, no new login: /me follows too.
    let me = expect(member.me().await, StatusCode::OK).await;
    assert_eq!(me["permissions"], json!(["team.members.read"]));
}

async fn nobody_grants_what_they_lack(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let (admin_user, admin) = join(&app, &owner, team, "Admin").await;
    let owner_role = role_id(&owner, team, "Owner").await;
    use reqwest::Method as M;

    let r = admin
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "Super", "permissions": ["virtuozzo.credentials.manage"] })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "privilege_escalation"
    );
    let admin_id = expect(admin.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let r = admin
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team}/members/{admin_id}"),
            Some(json!({ "role_id": owner_role })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "privilege_escalation"
    );
    let r = admin
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": "boss@example.com", "role_id": owner_role })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "privilege_escalation"
    );
    // An Admin cannot demote or remove the Owner either.
    let owner_id = expect(owner.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let viewer = role_id(&owner, team, "Viewer").await;
    let r = admin
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team}/members/{owner_id}"),
            Some(json!({ "role_id": viewer })),
        )
        .await;
    expect(r, StatusCode::FORBIDDEN).await;
    let r = admin
        .send(
            M::DELETE,
            &format!("/api/v1/teams/{team}/members/{owner_id}"),
            None,
        )
        .await;
    expect(r, StatusCode::FORBIDDEN).await;
    // Within their own permissions they can act.
    let r = admin
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "Reader", "permissions": ["environments.read"] })),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    let me = expect(admin.me().await, StatusCode::OK).await;
    assert_eq!(me["role"]["name"], "Admin", "{}", admin_user.email);
}

async fn the_last_owner_stays_and_builtins_are_immutable(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let owner_id = expect(owner.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let viewer = role_id(&owner, team, "Viewer").await;
    let owner_role = role_id(&owner, team, "Owner").await;
    use reqwest::Method as M;
    let r = owner
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team}/members/{owner_id}"),
            Some(json!({ "role_id": viewer })),
        )
        .await;
    assert_eq!(expect(r, StatusCode::CONFLICT).await["code"], "last_owner");
    let r = owner
        .send(
            M::DELETE,
            &format!("/api/v1/teams/{team}/members/{owner_id}"),
            None,
        )
        .await;
    assert_eq!(expect(r, StatusCode::CONFLICT).await["code"], "last_owner");
    for builtin in ["Owner", "Admin", "Member", "Viewer"] {
        let id = role_id(&owner, team, builtin).await;
        let r = owner
            .send(
                M::PUT,
                &format!("/api/v1/teams/{team}/roles/{id}/permissions"),
                Some(json!({ "permissions": [] })),
            )
            .await;
        assert_eq!(
            expect(r, StatusCode::CONFLICT).await["code"],
            "builtin_role_immutable"
        );
    }
    let r = owner
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "owner", "permissions": [] })),
        )
        .await;
    // A built-in name in any case (or any lookalike) is refused as a name, not as taken.
    assert_eq!(
        expect(r, StatusCode::UNPROCESSABLE_ENTITY).await["field"],
        "name"
    );
    let r = owner
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/roles"),
            Some(json!({ "name": "X", "permissions": ["no.such.permission"] })),
        )
        .await;
    expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;

    // With a second Owner, the first may step down; the guide's Owner query follows.
    let (_, second) = join(&app, &owner, team, "Owner").await;
    let r = owner
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team}/members/{owner_id}"),
            Some(json!({ "role_id": viewer })),
        )
        .await;
    expect(r, StatusCode::OK).await;
    let second_id = expect(second.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT * FROM teams WHERE id = {team} AND owner_user_id = {second_id};"
        ))
        .await;
    assert_eq!(rows.len(), 1);
    let r = second
        .send(
            M::DELETE,
            &format!("/api/v1/teams/{team}/members/{second_id}"),
            None,
        )
        .await;
    assert_eq!(expect(r, StatusCode::CONFLICT).await["code"], "last_owner");
    let _ = owner_role;
}

async fn invites_are_for_the_invited_email_and_single_use(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let member = role_id(&owner, team, "Member").await;
    let invited = TestUser::random();
    use reqwest::Method as M;
    let r = owner
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": invited.email.to_uppercase(), "role_id": member })),
        )
        .await;
    expect(r, StatusCode::CREATED).await;
    let token = link_token(
        &app.mail
            .wait_for_containing(&invited.email, 0, "invited to join")
            .await,
    );
    let rows = app
        .storage
        .sql_rows(&format!(
            "SELECT COUNT(*) FROM team_invites WHERE token_hash = '{token}'"
        ))
        .await;
    assert_eq!(rows[0][0], "0", "stored hashed");

    // Someone else, signed in, cannot use it.
    let other = app.signed_in(&app.verified_user().await).await;
    let r = other
        .send(
            M::POST,
            "/api/v1/invites/accept",
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::FORBIDDEN).await["code"],
        "invite_email_mismatch"
    );
    // Not signed in: 401. The invited person registers first, then accepts.
    expect(
        app.browser()
            .post("/api/v1/invites/accept", json!({ "token": token }))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    app.register_and_verify(&invited).await;
    let b = app.signed_in(&invited).await;
    let accepted = expect(
        b.send(
            M::POST,
            "/api/v1/invites/accept",
            Some(json!({ "token": token })),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(accepted["team_id"], team);
    assert_eq!(
        accepted["role_id"], member,
        "the role comes from the invite row"
    );
    let r = b
        .send(
            M::POST,
            "/api/v1/invites/accept",
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    // A revoked invite cannot be used.
    let late = TestUser::random();
    let r = owner
        .send(
            M::POST,
            &format!("/api/v1/teams/{team}/invites"),
            Some(json!({ "email": late.email, "role_id": member })),
        )
        .await;
    let id = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let late_token = link_token(
        &app.mail
            .wait_for_containing(&late.email, 0, "invited to join")
            .await,
    );
    let r = owner
        .send(
            M::DELETE,
            &format!("/api/v1/teams/{team}/invites/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    app.register_and_verify(&late).await;
    let lb = app.signed_in(&late).await;
    let r = lb
        .send(
            M::POST,
            "/api/v1/invites/accept",
            Some(json!({ "token": late_token })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::BAD_REQUEST).await["detail"],
        "Token expired or invalid"
    );
    let invites = expect(
        owner.get(&format!("/api/v1/teams/{team}/invites")).await,
        StatusCode::OK,
    )
    .await;
    let statuses: Vec<&str> = invites["invites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["revoked", "accepted"]);
}

async fn cross_team_ids_never_leak(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let a = app.signed_in(&app.verified_user().await).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let (team_a, team_b) = (a.team_id().await, b.team_id().await);
    use reqwest::Method as M;
    let r = a
        .send(
            M::POST,
            &format!("/api/v1/teams/{team_a}/roles"),
            Some(json!({ "name": "A-only", "permissions": [] })),
        )
        .await;
    let a_role = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let r = a
        .send(
            M::POST,
            &format!("/api/v1/teams/{team_a}/invites"),
            Some(json!({ "email": "someone@example.com", "role_id": a_role })),
        )
        .await;
    let a_invite = expect(r, StatusCode::CREATED).await["id"].as_i64().unwrap();
    let a_user = expect(a.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();

    // B's owner uses team A's ids inside team B's routes.
    let r = b
        .send(
            M::PUT,
            &format!("/api/v1/teams/{team_b}/roles/{a_role}/permissions"),
            Some(json!({ "permissions": [] })),
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    let b_user = expect(b.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let r = b
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team_b}/members/{b_user}"),
            Some(json!({ "role_id": a_role })),
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    let r = b
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team_b}/members/{a_user}"),
            Some(json!({ "role_id": 4 })),
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    let r = b
        .send(
            M::DELETE,
            &format!("/api/v1/teams/{team_b}/invites/{a_invite}"),
            None,
        )
        .await;
    expect(r, StatusCode::NOT_FOUND).await;
    let roles = expect(
        b.get(&format!("/api/v1/teams/{team_b}/roles")).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        roles["roles"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "A-only")
    );
    let invites = expect(
        b.get(&format!("/api/v1/teams/{team_b}/invites")).await,
        StatusCode::OK,
    )
    .await;
    assert!(invites["invites"].as_array().unwrap().is_empty());
    let r = b
        .send(
            M::PATCH,
            &format!("/api/v1/teams/{team_b}/members/abc"),
            Some(json!({ "role_id": 4 })),
        )
        .await;
    expect(r, StatusCode::BAD_REQUEST).await;
}

async fn audit_shows_failed_logins_and_role_changes(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner_user = app.verified_user().await;
    let owner = app.signed_in(&owner_user).await;
    let team = owner.team_id().await;
    let (member_user, _member) = join(&app, &owner, team, "Member").await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/login",
            json!({ "email": member_user.email, "password": "wrong password" }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let member_id = expect(_member.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let viewer = role_id(&owner, team, "Viewer").await;
    let r = owner
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/teams/{team}/members/{member_id}"),
            Some(json!({ "role_id": viewer })),
        )
        .await;
    expect(r, StatusCode::OK).await;

    let audit = expect(
        owner.get(&format!("/api/v1/teams/{team}/audit")).await,
        StatusCode::OK,
    )
    .await;
    let entries = audit["entries"].as_array().unwrap();
    assert_eq!(entries[0]["event"], "member_role_changed", "newest first");
    assert_eq!(entries[0]["actor"]["email"], owner_user.email);
    assert_eq!(entries[0]["user_id"], member_id);
    assert_eq!(entries[0]["details"]["to_role"], "Viewer");
    assert_eq!(entries[0]["ip_address"], "127.0.0.1");
    assert!(
        entries
            .iter()
            .any(|e| e["event"] == "login_failed" && e["user_id"] == member_id)
    );
    // Only security events of members, and only since they joined: not their other activity.
    assert!(
        !entries
            .iter()
            .any(|e| e["event"] == "login_password_verified" || e["event"] == "user_registered")
    );
    assert!(entries.iter().any(|e| e["event"] == "invite_accepted"));
    let ids: Vec<i64> = entries.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]));
    // Pagination.
    let page = expect(
        owner
            .get(&format!("/api/v1/teams/{team}/audit?limit=2"))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["entries"].as_array().unwrap().len(), 2);
    let before = page["next_before"].as_i64().unwrap();
    let next = expect(
        owner
            .get(&format!(
                "/api/v1/teams/{team}/audit?limit=2&before={before}"
            ))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(next["entries"][0]["id"].as_i64().unwrap() < before);
    expect(
        owner
            .get(&format!("/api/v1/teams/{team}/audit?limit=abc"))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // Append-only at the database level.
    let db_url = app.storage.database_url();
    let _ = db_url;
}

async fn switching_team_reissues_the_access_token(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let b = app.signed_in(&app.verified_user().await).await;
    let personal = b.team_id().await;
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/teams",
            Some(json!({ "name": "Second team" })),
        )
        .await;
    let created = expect(r, StatusCode::CREATED).await;
    let second = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Second team");
    let old_access = b.access();
    switch(&b, second).await;
    assert_ne!(b.access(), old_access);
    let me = expect(b.me().await, StatusCode::OK).await;
    assert_eq!(me["team"]["id"], second);
    assert_eq!(me["role"]["name"], "Owner");
    // A refresh stays in the new team.
    expect(b.post_csrf("/api/v1/auth/refresh").await, StatusCode::OK).await;
    assert_eq!(b.team_id().await, second);
    switch(&b, personal).await;
    assert_eq!(b.team_id().await, personal);
    let r = b
        .send(
            reqwest::Method::POST,
            "/api/v1/teams",
            Some(json!({ "name": "" })),
        )
        .await;
    expect(r, StatusCode::UNPROCESSABLE_ENTITY).await;
}

async fn deleted_users_cannot_log_in_and_are_not_found(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let owner = app.signed_in(&app.verified_user().await).await;
    let team = owner.team_id().await;
    let (user, member) = join(&app, &owner, team, "Member").await;
    let member_id = expect(member.me().await, StatusCode::OK).await["user"]["id"]
        .as_i64()
        .unwrap();
    let access = member.access();

    let cli = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_mbpanel-auth"));
        cmd.args(args)
            .env_clear()
            .envs(&app.settings)
            .env("LOG_LEVEL", "off");
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let said = cli(&["user", "delete", &user.email]);
    assert!(said.contains("deleted"), "{said}");

    // The CLI is another process: the server picks its revocations up within a second or two.
    let mut status = StatusCode::OK;
    for _ in 0..40 {
        status = reqwest::Client::new()
            .get(app.url("/api/v1/auth/me"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let r = app
        .browser()
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": user.password }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let viewer = role_id(&owner, team, "Viewer").await;
    let r = owner
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/teams/{team}/members/{member_id}"),
            Some(json!({ "role_id": viewer })),
        )
        .await;
    assert_eq!(
        expect(r, StatusCode::NOT_FOUND).await["detail"],
        "User not found"
    );
    let members = expect(
        owner.get(&format!("/api/v1/teams/{team}/members")).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(members["members"].as_array().unwrap().len(), 1);

    cli(&["user", "restore", &user.email]);
    app.login(&app.browser(), &user).await;
}

async fn users_see_their_own_security_events(mode: Mode) {
    let app = TestApp::spawn(mode).await;
    let user = app.verified_user().await;
    let r = app
        .browser()
        .post(
            "/api/v1/auth/login",
            json!({ "email": user.email, "password": "wrong password" }),
        )
        .await;
    expect(r, StatusCode::UNAUTHORIZED).await;
    let b = app.signed_in(&user).await;
    let mine = expect(b.get("/api/v1/auth/audit").await, StatusCode::OK).await;
    let events: Vec<&str> = mine["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"login_succeeded"), "{events:?}");
    assert!(
        events.contains(&"login_failed") && events.contains(&"email_verified"),
        "{events:?}"
    );
    // Someone else's events are not there.
    let other = app.signed_in(&app.verified_user().await).await;
    let theirs = expect(other.get("/api/v1/auth/audit").await, StatusCode::OK).await;
    assert!(
        !theirs["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "login_failed")
    );
    expect(
        app.browser().get("/api/v1/auth/audit").await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
}

both_modes!(
    users_see_their_own_security_events,
    owner_has_everything_and_viewer_reads_only,
    non_members_are_refused_everywhere,
    permission_changes_bite_on_the_next_request,
    nobody_grants_what_they_lack,
    the_last_owner_stays_and_builtins_are_immutable,
    invites_are_for_the_invited_email_and_single_use,
    cross_team_ids_never_leak,
    audit_shows_failed_logins_and_role_changes,
    switching_team_reissues_the_access_token,
    deleted_users_cannot_log_in_and_are_not_found,
);
