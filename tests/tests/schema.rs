//! Tests generated from the schema: every query and mutation is called as
//! every kind of principal (the permission matrix), and with another
//! tenant's ids (tenant isolation). New operations are covered as soon as
//! they exist: the expected-action table below must name each of them.

use std::collections::{BTreeMap, BTreeSet};

use domain::access::{Action, Role, Subject, allows};
use serde_json::{Value, json};
use test_support::{TestApp, error_code, spawn_app};
use uuid::Uuid;

/// The action each operation needs (`None`: public). This is the table of
/// docs/api.md; the test fails when an operation is missing here.
fn expected_actions() -> BTreeMap<&'static str, Option<Action>> {
    use Action::*;
    BTreeMap::from([
        // Queries
        ("me", Some(Read)),
        ("sessions", Some(OwnAccount)),
        ("members", Some(Read)),
        ("invitations", Some(ManageMembers)),
        ("apiKeys", Some(ManageApiKeys)),
        ("campaigns", Some(Read)),
        ("campaign", Some(Read)),
        ("posts", Some(Read)),
        ("post", Some(Read)),
        ("failedPosts", Some(Read)),
        ("connections", Some(Read)),
        ("mediaAssets", Some(Read)),
        ("mediaAsset", Some(Read)),
        ("auditLog", Some(ReadAudit)),
        ("postEngagement", Some(Read)),
        ("campaignEngagement", Some(Read)),
        ("displays", Some(Read)),
        ("display", Some(Read)),
        ("displayGroups", Some(Read)),
        ("notices", Some(Read)),
        ("noticeCategories", Some(Read)),
        ("playlists", Some(Read)),
        ("signageSchedules", Some(Read)),
        ("emergencies", Some(Read)),
        ("displayManifest", Some(Read)),
        ("noticePlays", Some(Read)),
        // Mutations
        ("signUp", None),
        ("logIn", None),
        ("refreshSession", None),
        ("acceptInvitation", None),
        ("requestPasswordReset", None),
        ("resetPassword", None),
        ("verifyEmail", None),
        ("logOut", Some(OwnAccount)),
        ("revokeSession", Some(OwnAccount)),
        ("switchTenant", Some(OwnAccount)),
        ("requestEmailVerification", Some(OwnAccount)),
        ("beginTotpEnrollment", Some(OwnAccount)),
        ("confirmTotpEnrollment", Some(OwnAccount)),
        ("disableTotp", Some(OwnAccount)),
        ("eraseUser", Some(OwnAccount)),
        ("inviteMember", Some(ManageMembers)),
        ("revokeInvitation", Some(ManageMembers)),
        ("changeMemberRole", Some(ManageMembers)),
        ("removeMember", Some(ManageMembers)),
        ("requireTwoFactor", Some(ManageSecurity)),
        ("createApiKey", Some(ManageApiKeys)),
        ("revokeApiKey", Some(ManageApiKeys)),
        ("createCampaign", Some(ManageCampaigns)),
        ("updateCampaign", Some(ManageCampaigns)),
        ("activateCampaign", Some(ManageCampaigns)),
        ("pauseCampaign", Some(ManageCampaigns)),
        ("resumeCampaign", Some(ManageCampaigns)),
        ("archiveCampaign", Some(ManageCampaigns)),
        ("createPost", Some(ManagePosts)),
        ("updatePost", Some(ManagePosts)),
        ("deletePost", Some(ManagePosts)),
        ("schedulePost", Some(ManagePosts)),
        ("reschedulePost", Some(ManagePosts)),
        ("cancelPost", Some(ManagePosts)),
        ("retryPost", Some(ManagePosts)),
        ("deletePublishedPost", Some(ManagePosts)),
        ("connectBluesky", Some(ManagePosts)),
        ("disconnectConnection", Some(ManagePosts)),
        ("deleteMedia", Some(ManagePosts)),
        ("uploadMedia", Some(ManagePosts)),
        ("pairDisplay", Some(ManageDisplays)),
        ("unpairDisplay", Some(ManageDisplays)),
        ("renameDisplay", Some(ManageDisplays)),
        ("moveDisplay", Some(ManageDisplays)),
        ("reloadDisplay", Some(ManageDisplays)),
        ("createDisplayGroup", Some(ManageDisplays)),
        ("setGroupDefaultPlaylist", Some(ManageDisplays)),
        ("startEmergency", Some(ManageDisplays)),
        ("clearEmergency", Some(ManageDisplays)),
        ("createNoticeCategory", Some(ManageSignage)),
        ("createNotice", Some(ManageSignage)),
        ("updateNotice", Some(ManageSignage)),
        ("deleteNotice", Some(ManageSignage)),
        ("createPlaylist", Some(ManageSignage)),
        ("updatePlaylist", Some(ManageSignage)),
        ("createSignageSchedule", Some(ManageSignage)),
        ("deleteSignageSchedule", Some(ManageSignage)),
    ])
}

const TYPE_REF: &str =
    "kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } }";

/// An operation of the schema.
#[derive(Debug, Clone)]
struct Operation {
    mutation: bool,
    name: String,
    args: Vec<(String, Value)>,
    returns_object: bool,
}

struct Schema {
    operations: Vec<Operation>,
    /// Input object name → its fields (name, type ref).
    inputs: BTreeMap<String, Vec<(String, Value)>>,
    enums: BTreeMap<String, Vec<String>>,
}

async fn introspect(app: &TestApp) -> Schema {
    let query = format!(
        "{{ __schema {{
            queryType {{ fields {{ name args {{ name type {{ {TYPE_REF} }} }} type {{ {TYPE_REF} }} }} }}
            mutationType {{ fields {{ name args {{ name type {{ {TYPE_REF} }} }} type {{ {TYPE_REF} }} }} }}
            types {{ kind name inputFields {{ name type {{ {TYPE_REF} }} }} enumValues {{ name }} }}
        }} }}"
    );
    let body = app.gql(None, &query, json!({})).await;
    let schema = &body["data"]["__schema"];
    assert!(schema.is_object(), "introspection: {body}");
    let mut operations = Vec::new();
    for (root, mutation) in [("queryType", false), ("mutationType", true)] {
        for field in schema[root]["fields"].as_array().unwrap() {
            let name = field["name"].as_str().unwrap().to_string();
            if name.starts_with("__") {
                continue;
            }
            operations.push(Operation {
                mutation,
                name,
                args: field["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| (a["name"].as_str().unwrap().to_string(), a["type"].clone()))
                    .collect(),
                returns_object: matches!(
                    named(&field["type"]).0.as_str(),
                    "OBJECT" | "INTERFACE" | "UNION"
                ),
            });
        }
    }
    let mut inputs = BTreeMap::new();
    let mut enums = BTreeMap::new();
    for t in schema["types"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap().to_string();
        match t["kind"].as_str().unwrap() {
            "INPUT_OBJECT" => {
                inputs.insert(
                    name,
                    t["inputFields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|f| (f["name"].as_str().unwrap().to_string(), f["type"].clone()))
                        .collect(),
                );
            }
            "ENUM" => {
                enums.insert(
                    name,
                    t["enumValues"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|v| v["name"].as_str().unwrap().to_string())
                        .collect(),
                );
            }
            _ => {}
        }
    }
    Schema {
        operations,
        inputs,
        enums,
    }
}

/// (kind, name) of the named type under NON_NULL / LIST wrappers.
fn named(t: &Value) -> (String, String) {
    let mut t = t;
    while t["name"].is_null() {
        t = &t["ofType"];
    }
    (
        t["kind"].as_str().unwrap_or_default().to_string(),
        t["name"].as_str().unwrap_or_default().to_string(),
    )
}

/// GraphQL type syntax of a type ref, e.g. `[EntryInput!]!`.
fn syntax(t: &Value) -> String {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => format!("{}!", syntax(&t["ofType"])),
        "LIST" => format!("[{}]", syntax(&t["ofType"])),
        _ => t["name"].as_str().unwrap().to_string(),
    }
}

fn is_id_type(name: &str) -> bool {
    matches!(name, "ID" | "UUID")
}

/// A plausible valid value for a field, so that what an operation answers
/// depends on authorization and ids, not on dummy input.
fn value_for(schema: &Schema, field: &str, t: &Value, id: &str) -> Value {
    match t["kind"].as_str().unwrap() {
        "NON_NULL" => value_for(schema, field, &t["ofType"], id),
        "LIST" => json!([value_for(schema, field, &t["ofType"], id)]),
        "INPUT_OBJECT" => {
            let name = t["name"].as_str().unwrap();
            let mut object = serde_json::Map::new();
            for (f, ft) in &schema.inputs[name] {
                if ft["kind"] == "NON_NULL" || is_id_type(&named(ft).1) {
                    object.insert(f.clone(), value_for(schema, f, ft, id));
                }
            }
            Value::Object(object)
        }
        "ENUM" => {
            let name = t["name"].as_str().unwrap();
            json!(schema.enums[name].last().unwrap())
        }
        _ => {
            let scalar = t["name"].as_str().unwrap();
            match (scalar, field) {
                (s, _) if is_id_type(s) => json!(id),
                // Filled in by the multipart request (see `call`).
                ("Upload", _) => Value::Null,
                ("Int", _) => json!(10),
                ("Boolean", _) => json!(false),
                ("DateTime", _) => json!("2031-03-01T09:00:00Z"),
                ("NaiveDate", "endsOn") => json!("2031-12-31"),
                ("NaiveDate", _) => json!("2031-01-01"),
                (_, "email") => json!("someone@example.org"),
                (_, "password") => json!("a long enough passphrase"),
                (_, "timeZone") => json!("Europe/Berlin"),
                (_, "code" | "totp") => json!("123456"),
                (_, "token" | "refreshToken") => json!("hin_AAAA"),
                (_, "text") => json!("Hello"),
                (_, "langs") => json!("en"),
                // A daypart's local times (validated before any look-up).
                (_, "start") => json!("09:00"),
                (_, "end") => json!("17:00"),
                _ => json!("Name"),
            }
        }
    }
}

/// The operation's document and variables, every ID argument set to `id`.
fn document(schema: &Schema, op: &Operation, id: &str) -> (String, Value) {
    let mut declared = Vec::new();
    let mut passed = Vec::new();
    let mut variables = serde_json::Map::new();
    for (name, t) in &op.args {
        let required = t["kind"] == "NON_NULL";
        if !required && !carries_id(schema, t, 0) {
            continue;
        }
        declared.push(format!("${name}: {}", syntax(t)));
        passed.push(format!("{name}: ${name}"));
        variables.insert(name.clone(), value_for(schema, name, t, id));
    }
    let keyword = if op.mutation { "mutation" } else { "query" };
    let vars = if declared.is_empty() {
        String::new()
    } else {
        format!("({})", declared.join(", "))
    };
    let args = if passed.is_empty() {
        String::new()
    } else {
        format!("({})", passed.join(", "))
    };
    let selection = if op.returns_object {
        " { __typename }"
    } else {
        ""
    };
    (
        format!("{keyword}{vars} {{ {}{args}{selection} }}", op.name),
        Value::Object(variables),
    )
}

/// Calls an operation built by [`document`] as the holder of `token`. One
/// that takes files goes as a multipart request (the GraphQL multipart
/// request spec) with a small PNG for each required `Upload` argument.
async fn call(app: &TestApp, token: &str, op: &Operation, query: &str, variables: Value) -> Value {
    let paths: Vec<String> = op
        .args
        .iter()
        .filter(|(_, t)| t["kind"] == "NON_NULL" && named(t).1 == "Upload")
        .map(|(name, _)| format!("variables.{name}"))
        .collect();
    if paths.is_empty() {
        return app.gql(Some(token), query, variables).await;
    }
    let image = test_support::png(2, 2);
    let files: Vec<(&str, &str, &[u8])> = paths
        .iter()
        .map(|path| (path.as_str(), "matrix.png", image.as_slice()))
        .collect();
    app.gql_multipart(Some(token), query, variables, &files)
        .await
        .1
}

/// Whether a type is, or contains, an id.
fn carries_id(schema: &Schema, t: &Value, depth: usize) -> bool {
    let (kind, name) = named(t);
    if is_id_type(&name) {
        return true;
    }
    depth < 4
        && kind == "INPUT_OBJECT"
        && schema.inputs[&name]
            .iter()
            .any(|(_, ft)| carries_id(schema, ft, depth + 1))
}

fn has_id_argument(schema: &Schema, op: &Operation) -> bool {
    op.args.iter().any(|(_, t)| carries_id(schema, t, 0))
}

/// A fresh session (or API key) token acting as `subject` in the tenant of
/// `owner`.
async fn token_for(
    app: &TestApp,
    owner: &str,
    subject: Subject,
    members: &BTreeMap<Role, Uuid>,
    tenant: Uuid,
) -> String {
    match subject {
        Subject::Member(role) => {
            app.state
                .sessions
                .create(members[&role], tenant, role, &Default::default())
                .await
                .unwrap()
                .access_token
        }
        Subject::ApiKey(role) => {
            let body = app
                .gql(
                    Some(owner),
                    "mutation($r: MemberRole!) { createApiKey(input: {name: \"matrix\", role: $r}) { key } }",
                    json!({"r": role.as_str().to_uppercase()}),
                )
                .await;
            body["data"]["createApiKey"]["key"]
                .as_str()
                .unwrap()
                .to_string()
        }
        Subject::Display => {
            // A freshly paired display's device secret.
            let registered: Value = app
                .client
                .post(format!("{}/display/v1/register", app.address))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let paired = app
                .gql(
                    Some(owner),
                    "mutation($c: String!) { pairDisplay(input: {code: $c, name: \"matrix\"}) { id } }",
                    json!({"c": registered["pairingCode"]}),
                )
                .await;
            assert!(paired["errors"].is_null(), "{paired}");
            registered["deviceSecret"].as_str().unwrap().to_string()
        }
    }
}

async fn tenant_with_members(app: &TestApp, name: &str) -> (String, Uuid, BTreeMap<Role, Uuid>) {
    let slug = name.to_lowercase();
    let (owner, tenant) = app
        .sign_up(name, &format!("owner@{slug}.example.org"))
        .await;
    let me = app
        .gql(Some(&owner), "{ me { user { id } } }", json!({}))
        .await;
    let mut members = BTreeMap::from([(
        Role::Owner,
        Uuid::parse_str(me["data"]["me"]["user"]["id"].as_str().unwrap()).unwrap(),
    )]);
    for role in [Role::Admin, Role::Editor, Role::Viewer] {
        let (_, id) = app
            .add_member(
                &owner,
                &format!("{}@{slug}.example.org", role.as_str()),
                &role.as_str().to_uppercase(),
            )
            .await;
        members.insert(role, Uuid::parse_str(&id).unwrap());
    }
    (owner, Uuid::parse_str(&tenant).unwrap(), members)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_authorized_by_the_permission_matrix() {
    // A display is paired per call: lift the per-IP registration limit.
    let mut config = api::Settings::for_database(&test_support::fresh_sqlite());
    config.signage.registrations_per_minute = 1_000_000;
    let app = test_support::spawn_with(config).await;
    let schema = introspect(&app).await;
    let expected = expected_actions();
    let names: BTreeSet<&str> = schema.operations.iter().map(|o| o.name.as_str()).collect();
    let listed: BTreeSet<&str> = expected.keys().copied().collect();
    assert_eq!(
        names, listed,
        "every operation needs a row in the expected-action table"
    );

    let (owner, tenant, members) = tenant_with_members(&app, "Matrix").await;
    let subjects: Vec<Subject> = Subject::ALL.into_iter().collect();
    let mut checked = 0;
    for op in &schema.operations {
        let Some(action) = expected[op.name.as_str()] else {
            continue;
        };
        for subject in &subjects {
            let token = token_for(&app, &owner, *subject, &members, tenant).await;
            let (query, variables) = document(&schema, op, &Uuid::new_v4().to_string());
            let body = call(&app, &token, op, &query, variables).await;
            let forbidden = error_code(&body) == Some("FORBIDDEN");
            assert_eq!(
                forbidden,
                !allows(*subject, action),
                "{} as {subject:?} (needs {action:?}): {body}",
                op.name
            );
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} calls checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_ids_are_not_found_by_any_operation() {
    let app = spawn_app(&test_support::fresh_sqlite()).await;
    let schema = introspect(&app).await;
    let (owner_a, _, _) = tenant_with_members(&app, "Alpha").await;
    let (owner_b, tenant_b, members_b) = tenant_with_members(&app, "Beta").await;

    // Tenant B's ids of every kind.
    let campaign = app.create_campaign(&owner_b, "B campaign").await;
    let post = app.create_post(&owner_b, &campaign, "B post").await;
    let invitation = app
        .gql(
            Some(&owner_b),
            "mutation { inviteMember(input: {email: \"pending@beta.example.org\", role: VIEWER}) { id } }",
            json!({}),
        )
        .await["data"]["inviteMember"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let key = app
        .gql(
            Some(&owner_b),
            "mutation { createApiKey(input: {name: \"b\", role: VIEWER}) { apiKey { id } } }",
            json!({}),
        )
        .await["data"]["createApiKey"]["apiKey"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let session = app
        .state
        .sessions
        .create(
            members_b[&Role::Viewer],
            tenant_b,
            Role::Viewer,
            &Default::default(),
        )
        .await
        .unwrap()
        .session_id
        .to_string();
    let connection = app
        .connect_bluesky(&owner_b, &test_support::peer::peer())
        .await;
    let (status, media) = app
        .upload(Some(&owner_b), "b.png", &test_support::png(2, 2))
        .await;
    assert_eq!(status, 201, "{media}");
    let mut foreign: Vec<String> = vec![
        media["id"].as_str().unwrap().to_string(),
        connection,
        campaign,
        post,
        invitation,
        key,
        session,
        tenant_b.to_string(),
    ];
    foreign.extend(members_b.values().map(Uuid::to_string));

    let mut checked = 0;
    for op in &schema.operations {
        if expected_actions()[op.name.as_str()].is_none() {
            continue; // public: no tenant context
        }
        if has_id_argument(&schema, op) {
            for id in &foreign {
                let (query, variables) = document(&schema, op, id);
                let body = app.gql(Some(&owner_a), &query, variables).await;
                assert_eq!(
                    error_code(&body),
                    Some("NOT_FOUND"),
                    "{} with B's id {id}: {body}",
                    op.name
                );
                checked += 1;
            }
        } else if !op.mutation {
            // Lists: nothing of B's shows up.
            let (query, variables) = document(&schema, op, "");
            let query = query.replace("{ __typename }", "");
            let query = if op.returns_object {
                deep_selection(&query)
            } else {
                query
            };
            let body = app.gql(Some(&owner_a), &query, variables).await;
            let text = body.to_string();
            for id in &foreign {
                assert!(
                    !text.contains(id.as_str()),
                    "{} leaks {id}: {text}",
                    op.name
                );
            }
        }
    }
    assert!(checked > 100, "{checked} calls checked");
    // B's data is intact and visible to B.
    let body = app
        .gql(
            Some(&owner_b),
            "{ campaigns { edges { node { name } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        body["data"]["campaigns"]["edges"][0]["node"]["name"],
        "B campaign"
    );
}

/// The list queries with the fields that carry ids.
fn deep_selection(query: &str) -> String {
    let q = query.trim_end_matches('}').trim_end();
    let selection = if q.contains("auditLog") {
        "{ edges { node { actor target summary } } }"
    } else if q.contains("campaigns") || q.contains("posts") || q.contains("failedPosts") {
        "{ edges { node { __typename ... on Campaign { id } ... on Post { id campaignId } } } }"
    } else if q.contains("members") {
        "{ userId email }"
    } else if q.contains("me") && !q.contains("members") {
        "{ user { id } tenant { id } actor }"
    } else {
        "{ id }"
    };
    format!("{q} {selection} }}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_hides_other_tenants_rows_from_unfiltered_reads() {
    let app = spawn_app(&test_support::fresh_postgres().await).await;
    let (a, tenant_a) = app.sign_up("Alpha", "ada@alpha.example.org").await;
    let (b, _) = app.sign_up("Beta", "bob@beta.example.org").await;
    app.create_campaign(&a, "A").await;
    app.create_campaign(&b, "B").await;
    app.add_member(&b, "eve@beta.example.org", "VIEWER").await;
    app.connect_bluesky(&b, &test_support::peer::peer()).await;
    // Read behind the API: every read model, not only those the answers read.
    app.settled().await;
    let tenant_a = Uuid::parse_str(&tenant_a).unwrap();
    let mut conn = projections::db::scoped(&app.state.db.any, tenant_a)
        .await
        .unwrap();
    // No tenant filter in these queries: the policies do the filtering.
    for (table, expected) in [
        ("rm_campaigns", 1),
        ("rm_tenants", 1),
        ("rm_members", 1),
        ("rm_users", 1),
        ("rm_invitations", 0),
        ("rm_api_keys", 0),
        ("rm_audit_heads", 1),
        ("rm_connections", 0),
        ("rm_engagement", 0),
        ("rm_engagement_posts", 0),
    ] {
        let (n,): (i64,) = sqlx::query_as(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(n, expected, "{table}");
    }
    // The reader role cannot write.
    let write = sqlx::query("DELETE FROM rm_campaigns")
        .execute(&mut *conn)
        .await;
    assert!(write.is_err(), "herald_reader has no write grant");
}
