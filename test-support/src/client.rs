//! A client of a running Herald, as a user's program would be: GraphQL over
//! HTTP (JSON or multipart) and the media upload endpoint, plus the steps
//! most tests start with (sign up, create a campaign, connect the Bluesky
//! peer's account, create a post). It knows nothing of how Herald was
//! started, so it serves an app spawned in the test process and a `herald
//! api` process alike.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::peer::Peer;

/// A client of the Herald at `address`.
#[derive(Debug, Clone)]
pub struct ApiClient {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub address: String,
    /// The HTTP client it sends with, for requests of a test's own.
    pub client: reqwest::Client,
}

/// A client that sends one user's access token with every request.
#[derive(Debug, Clone)]
pub struct User {
    pub api: ApiClient,
    pub token: String,
    pub tenant: String,
}

impl ApiClient {
    /// A client of the Herald at `address` (`http://host:port`).
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            client: reqwest::Client::new(),
        }
    }

    /// Posts a GraphQL operation, with a bearer token if given.
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = self
            .client
            .post(format!("{}/graphql", self.address))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
            .send()
            .await
            .expect("request succeeds")
            .json()
            .await
            .expect("JSON response")
    }

    /// Signs up an organisation; returns (access token, tenant id).
    pub async fn sign_up(&self, organization: &str, email: &str) -> (String, String) {
        let body = self
            .gql(
                None,
                "mutation($i: SignUpInput!) { signUp(input: $i) { accessToken tenant { id } } }",
                json!({"i": {"organization": organization, "email": email, "password": "correct horse battery"}}),
            )
            .await;
        let payload = &body["data"]["signUp"];
        assert!(payload.is_object(), "sign-up failed: {body}");
        (
            payload["accessToken"].as_str().unwrap().to_string(),
            payload["tenant"]["id"].as_str().unwrap().to_string(),
        )
    }

    /// Runs `query` (a mutation, usually) and returns `data.<field>`;
    /// panics when it answers with errors or without the field.
    pub async fn mutate(
        &self,
        token: Option<&str>,
        field: &str,
        query: &str,
        variables: Value,
    ) -> Value {
        let body = self.gql(token, query, variables).await;
        let data = &body["data"][field];
        assert!(
            body["errors"].is_null() && !data.is_null(),
            "{field} failed: {body}"
        );
        data.clone()
    }

    /// Signs up an organisation and keeps its first user's token.
    pub async fn sign_up_user(&self, organization: &str, email: &str) -> User {
        let (token, tenant) = self.sign_up(organization, email).await;
        User {
            api: self.clone(),
            token,
            tenant,
        }
    }

    /// Creates a campaign; returns its id.
    pub async fn create_campaign(&self, token: &str, name: &str) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($i: CampaignInput!) { createCampaign(input: $i) { id } }",
                json!({"i": {"name": name, "timeZone": "Europe/Berlin", "startsOn": "2026-01-01", "endsOn": "2030-12-31"}}),
            )
            .await;
        body["data"]["createCampaign"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createCampaign failed: {body}"))
            .to_string()
    }

    /// Connects the Bluesky peer's account `alice` for the holder of
    /// `token`; returns the connection id.
    pub async fn connect_bluesky(&self, token: &str, peer: &Peer) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($i: ConnectBlueskyInput!) { connectBluesky(input: $i) { id } }",
                json!({"i": {"handle": peer.alice.handle, "appPassword": peer.alice.app_password, "serviceUrl": peer.pds}}),
            )
            .await;
        body["data"]["connectBluesky"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("connectBluesky failed: {body}"))
            .to_string()
    }

    /// Creates a single-entry post; returns its id.
    pub async fn create_post(&self, token: &str, campaign: &str, text: &str) -> String {
        let body = self
            .gql(
                Some(token),
                "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
                json!({"i": {"campaignId": campaign, "entries": [{"text": text, "langs": ["en"]}]}}),
            )
            .await;
        body["data"]["createPost"]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("createPost failed: {body}"))
            .to_string()
    }

    /// POSTs `parts` as `multipart/form-data` to `path`; returns the status
    /// and the JSON body (null when there is none).
    pub async fn post_form(
        &self,
        path: &str,
        token: Option<&str>,
        parts: &[FormPart<'_>],
    ) -> (u16, Value) {
        let (boundary, body) = form_body(parts);
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `POST /api/v1/media` with `bytes` as the multipart field `file`;
    /// returns the status and the JSON body.
    pub async fn upload(&self, token: Option<&str>, filename: &str, bytes: &[u8]) -> (u16, Value) {
        let file = FormPart {
            name: "file",
            filename: Some(filename),
            bytes,
        };
        self.post_form("/api/v1/media", token, &[file]).await
    }

    /// A GraphQL operation as a multipart request (the GraphQL multipart
    /// request spec): each of `files` is (variable path such as
    /// `variables.file`, filename, bytes); returns the status and the body.
    pub async fn gql_multipart(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
        files: &[(&str, &str, &[u8])],
    ) -> (u16, Value) {
        let operations = json!({"query": query, "variables": variables}).to_string();
        let names: Vec<String> = (0..files.len()).map(|i| i.to_string()).collect();
        let map: serde_json::Map<String, Value> = files
            .iter()
            .zip(&names)
            .map(|((path, _, _), name)| (name.clone(), json!([path])))
            .collect();
        let map = Value::Object(map).to_string();
        let mut parts = vec![
            FormPart {
                name: "operations",
                filename: None,
                bytes: operations.as_bytes(),
            },
            FormPart {
                name: "map",
                filename: None,
                bytes: map.as_bytes(),
            },
        ];
        parts.extend(
            files
                .iter()
                .zip(&names)
                .map(|((_, filename, bytes), name)| FormPart {
                    name,
                    filename: Some(filename),
                    bytes,
                }),
        );
        self.post_form("/graphql", token, &parts).await
    }

    /// `uploadMedia` with `bytes` as the file; returns the status and the
    /// GraphQL response.
    pub async fn upload_graphql(
        &self,
        token: Option<&str>,
        filename: &str,
        bytes: &[u8],
    ) -> (u16, Value) {
        self.gql_multipart(
            token,
            UPLOAD_MEDIA,
            json!({"file": null}),
            &[("variables.file", filename, bytes)],
        )
        .await
    }
}

impl User {
    /// Posts a GraphQL operation with this user's token.
    pub async fn gql(&self, query: &str, variables: Value) -> Value {
        self.api.gql(Some(&self.token), query, variables).await
    }

    /// [`ApiClient::mutate`] as this user.
    pub async fn mutate(&self, field: &str, query: &str, variables: Value) -> Value {
        self.api
            .mutate(Some(&self.token), field, query, variables)
            .await
    }
}

/// The `extensions.code` of the first error, if any.
pub fn error_code(body: &Value) -> Option<&str> {
    body["errors"][0]["extensions"]["code"].as_str()
}

/// One part of a `multipart/form-data` body.
pub struct FormPart<'a> {
    pub name: &'a str,
    /// Makes the part a file.
    pub filename: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// A `multipart/form-data` body of `parts`, with its boundary.
pub fn form_body(parts: &[FormPart<'_>]) -> (String, Vec<u8>) {
    let boundary = format!("herald-test-{}", Uuid::new_v4().simple());
    let mut body = Vec::new();
    for part in parts {
        let disposition = match part.filename {
            Some(filename) => format!(
                "form-data; name=\"{}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream",
                part.name
            ),
            None => format!("form-data; name=\"{}\"", part.name),
        };
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(part.bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}

/// The fields `uploadMedia` answers in the tests.
pub const UPLOAD_MEDIA: &str = "mutation($file: Upload!) { uploadMedia(file: $file) { id mime size width height filename createdAt } }";
