//! The local Bluesky network (`../shared/peers/bluesky`: PLC directory, PDS
//! and, with `APPVIEW=1`, an AppView): its accounts, and raw XRPC reads and
//! writes to check what Herald or the adapter published. Tests look at the
//! PDS itself, not at Herald's idea of it.

use serde_json::{Value, json};

/// An account of the peer.
#[derive(Debug, Clone)]
pub struct Account {
    pub handle: String,
    pub did: String,
    pub password: String,
    pub app_password: String,
}

/// The running network.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The PDS's URL, without a trailing slash.
    pub pds: String,
    pub alice: Account,
    pub bob: Account,
    plc: Option<String>,
    appview: Option<String>,
    appview_did: Option<String>,
    http: reqwest::Client,
}

/// What to do when the peer is missing; the one message every test gives.
const HOW: &str = "the Bluesky peer is not running: start it with \
    `APPVIEW=1 ../shared/peers/bluesky/peer.sh start` and \
    `eval \"$(../shared/peers/bluesky/peer.sh env)\"` (from the repository root) \
    before `cargo test`, as CI does; these tests fail rather than skip without it";

/// The peer named by `BLUESKY_PDS_URL` / `BLUESKY_PEER_JSON`. Panics when it
/// is not configured: these tests are never skipped silently.
pub fn peer() -> Peer {
    let pds = std::env::var("BLUESKY_PDS_URL").unwrap_or_else(|_| panic!("{HOW}"));
    let path = std::env::var("BLUESKY_PEER_JSON").unwrap_or_else(|_| panic!("{HOW}"));
    let network: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}; {HOW}")),
    )
    .unwrap_or_else(|e| panic!("{path} is not JSON ({e}); {HOW}"));
    let account = |name: &str| {
        let a = &network["accounts"][name];
        let field = |f: &str| {
            a[f].as_str()
                .unwrap_or_else(|| panic!("{path}: account {name} has no {f}; {HOW}"))
                .to_string()
        };
        Account {
            handle: field("handle"),
            did: field("did"),
            password: field("password"),
            app_password: field("appPassword"),
        }
    };
    let optional = |f: &str| network[f].as_str().map(str::to_string);
    Peer {
        pds: pds.trim_end_matches('/').to_string(),
        alice: account("alice"),
        bob: account("bob"),
        plc: optional("plc"),
        appview: optional("appview"),
        appview_did: optional("appviewDid"),
        http: reqwest::Client::new(),
    }
}

/// `value`, or a panic that says the peer was started without it.
fn started_with<'a>(value: &'a Option<String>, what: &str) -> &'a str {
    value.as_deref().unwrap_or_else(|| {
        panic!("the Bluesky peer has no {what} (started without APPVIEW=1?); {HOW}")
    })
}

impl Peer {
    /// The PLC directory's URL.
    pub fn plc(&self) -> &str {
        started_with(&self.plc, "PLC directory")
    }

    /// The AppView's URL; panics when the peer runs without one.
    pub fn appview(&self) -> &str {
        started_with(&self.appview, "AppView")
    }

    /// The AppView's DID (for `atproto-proxy`); panics when there is none.
    pub fn appview_did(&self) -> &str {
        started_with(&self.appview_did, "AppView DID")
    }

    /// Every post record in `did`'s repository: (uri, cid, record value).
    pub async fn post_records(&self, did: &str) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query = vec![
                ("repo", did.to_string()),
                ("collection", "app.bsky.feed.post".to_string()),
                ("limit", "100".to_string()),
            ];
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let page: Value = self
                .http
                .get(format!("{}/xrpc/com.atproto.repo.listRecords", self.pds))
                .query(&query)
                .send()
                .await
                .expect("listRecords")
                .json()
                .await
                .expect("listRecords JSON");
            let records = page["records"].as_array().cloned().unwrap_or_default();
            for r in &records {
                out.push((
                    r["uri"].as_str().unwrap_or_default().to_string(),
                    r["cid"].as_str().unwrap_or_default().to_string(),
                    r["value"].clone(),
                ));
            }
            cursor = page["cursor"].as_str().map(str::to_string);
            if records.is_empty() || cursor.is_none() {
                return out;
            }
        }
    }

    /// Every post record in `did`'s repository: (rkey, record value).
    pub async fn posts(&self, did: &str) -> Vec<(String, Value)> {
        self.post_records(did)
            .await
            .into_iter()
            .map(|(uri, _, value)| {
                let rkey = uri.rsplit('/').next().unwrap_or_default().to_string();
                (rkey, value)
            })
            .collect()
    }

    /// The record at the `at://` URI `uri` as the PDS answers
    /// `getRecord` (`uri`, `cid`, `value`); panics when it is not there.
    pub async fn record(&self, uri: &str) -> Value {
        let rest = uri.strip_prefix("at://").expect("at URI");
        let mut parts = rest.splitn(3, '/');
        let (repo, collection, rkey) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        self.http
            .get(format!("{}/xrpc/com.atproto.repo.getRecord", self.pds))
            .query(&[("repo", repo), ("collection", collection), ("rkey", rkey)])
            .send()
            .await
            .expect("getRecord")
            .error_for_status()
            .unwrap_or_else(|e| panic!("getRecord {uri}: {e}"))
            .json()
            .await
            .expect("getRecord JSON")
    }

    /// One post record: (uri, cid, value), or None.
    pub async fn post(&self, did: &str, rkey: &str) -> Option<(String, String, Value)> {
        let response = self
            .http
            .get(format!("{}/xrpc/com.atproto.repo.getRecord", self.pds))
            .query(&[
                ("repo", did),
                ("collection", "app.bsky.feed.post"),
                ("rkey", rkey),
            ])
            .send()
            .await
            .expect("getRecord");
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.expect("getRecord JSON");
        Some((
            body["uri"].as_str()?.to_string(),
            body["cid"].as_str()?.to_string(),
            body["value"].clone(),
        ))
    }

    async fn session(&self, account: &Account) -> String {
        let body: Value = self
            .http
            .post(format!(
                "{}/xrpc/com.atproto.server.createSession",
                self.pds
            ))
            .json(&json!({"identifier": account.handle, "password": account.password}))
            .send()
            .await
            .expect("createSession")
            .json()
            .await
            .expect("createSession JSON");
        body["accessJwt"]
            .as_str()
            .unwrap_or_else(|| panic!("createSession: {body}"))
            .to_string()
    }

    /// Creates an app password called `name` for `account`.
    pub async fn create_app_password(&self, account: &Account, name: &str) -> String {
        let token = self.session(account).await;
        let body: Value = self
            .http
            .post(format!(
                "{}/xrpc/com.atproto.server.createAppPassword",
                self.pds
            ))
            .bearer_auth(token)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("createAppPassword")
            .json()
            .await
            .expect("createAppPassword JSON");
        body["password"]
            .as_str()
            .unwrap_or_else(|| panic!("createAppPassword: {body}"))
            .to_string()
    }

    /// Revokes `account`'s app password `name` (and the sessions made with it).
    pub async fn revoke_app_password(&self, account: &Account, name: &str) {
        let token = self.session(account).await;
        let response = self
            .http
            .post(format!(
                "{}/xrpc/com.atproto.server.revokeAppPassword",
                self.pds
            ))
            .bearer_auth(token)
            .json(&json!({"name": name}))
            .send()
            .await
            .expect("revokeAppPassword");
        assert!(response.status().is_success(), "revokeAppPassword");
    }

    /// Creates a record in `account`'s repository as `account` (raw XRPC:
    /// `createSession` with the account password, then `createRecord`);
    /// returns its (uri, cid).
    pub async fn create_record(
        &self,
        account: &Account,
        collection: &str,
        record: Value,
    ) -> (String, String) {
        let token = self.session(account).await;
        let body: Value = self
            .http
            .post(format!("{}/xrpc/com.atproto.repo.createRecord", self.pds))
            .bearer_auth(token)
            .json(&json!({"repo": account.did, "collection": collection, "record": record}))
            .send()
            .await
            .expect("createRecord")
            .json()
            .await
            .expect("createRecord JSON");
        let field = |f: &str| {
            body[f]
                .as_str()
                .unwrap_or_else(|| panic!("createRecord: {body}"))
                .to_string()
        };
        (field("uri"), field("cid"))
    }

    /// `account` likes the post at (uri, cid).
    pub async fn like(&self, account: &Account, uri: &str, cid: &str) -> (String, String) {
        self.create_record(
            account,
            "app.bsky.feed.like",
            json!({
                "$type": "app.bsky.feed.like",
                "subject": {"uri": uri, "cid": cid},
                "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
        )
        .await
    }

    /// `account` replies `text` to the post at (uri, cid) (a thread root).
    pub async fn reply(
        &self,
        account: &Account,
        uri: &str,
        cid: &str,
        text: &str,
    ) -> (String, String) {
        let parent = json!({"uri": uri, "cid": cid});
        self.create_record(
            account,
            "app.bsky.feed.post",
            json!({
                "$type": "app.bsky.feed.post",
                "text": text,
                "reply": {"root": parent, "parent": parent},
                "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            }),
        )
        .await
    }
}
