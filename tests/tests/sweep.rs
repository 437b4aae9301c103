//! The outside sweep, kept: every mutation of the introspected schema gets
//! poisoned input — NUL and other control characters in each string, a
//! 1 MB string, a 10,000-element list, values of the wrong type, a forged
//! token — on both databases. Each answer must be a typed refusal (no
//! INTERNAL, no 5xx) and nothing may be stored.

use serde_json::{Map, Value, json};
use test_support::{Backend, TestApp, on_both_databases, spawn_app};

const INTROSPECT: &str = r#"{ __schema { mutationType { fields {
  name
  args { name type { ...T } }
  type { ...T }
} }
types { name kind inputFields { name type { ...T } } enumValues { name } } } }
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name } } } }"#;

/// Codes a refusal may carry (at the GraphQL or the HTTP level).
const TYPED: &[&str] = &[
    "VALIDATION",
    "NOT_FOUND",
    "FORBIDDEN",
    "UNAUTHENTICATED",
    "CONFLICT",
    "RATE_LIMITED",
    "BAD_REQUEST",
    "PAYLOAD_TOO_LARGE",
];

struct Schema {
    types: Map<String, Value>,
}

impl Schema {
    /// `[ID!]!` from an introspected type reference.
    fn render(ty: &Value) -> String {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => format!("{}!", Self::render(&ty["ofType"])),
            "LIST" => format!("[{}]", Self::render(&ty["ofType"])),
            _ => ty["name"].as_str().unwrap().to_string(),
        }
    }

    fn named(ty: &Value) -> &Value {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" | "LIST" => Self::named(&ty["ofType"]),
            _ => ty,
        }
    }

    /// A plausible value of `ty`: every input field filled in.
    fn sample(&self, ty: &Value, depth: usize) -> Value {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.sample(&ty["ofType"], depth),
            "LIST" => json!([self.sample(&ty["ofType"], depth)]),
            "ENUM" => {
                let name = ty["name"].as_str().unwrap();
                self.types[name]["enumValues"][0]["name"].clone()
            }
            "INPUT_OBJECT" => {
                let name = ty["name"].as_str().unwrap();
                let mut object = Map::new();
                if depth < 4 {
                    for field in self.types[name]["inputFields"].as_array().unwrap() {
                        object.insert(
                            field["name"].as_str().unwrap().to_string(),
                            self.sample(&field["type"], depth + 1),
                        );
                    }
                }
                Value::Object(object)
            }
            _ => match ty["name"].as_str().unwrap() {
                "Int" => json!(1),
                "Float" => json!(1.5),
                "Boolean" => json!(true),
                "ID" => json!("0192a0e0-0000-7000-8000-000000000001"),
                "DateTime" => json!("2027-01-01T09:00:00Z"),
                "Date" | "NaiveDate" => json!("2027-01-01"),
                "Upload" => Value::Null,
                _ => json!("sample"),
            },
        }
    }

    /// Paths (into the variables) of every string and list leaf of `value`
    /// as sampled from `ty`.
    fn leaves(&self, ty: &Value, value: &Value, path: Vec<String>, out: &mut Vec<Leaf>) {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" => self.leaves(&ty["ofType"], value, path, out),
            "LIST" => {
                out.push(Leaf::List(path.clone(), value[0].clone()));
                let mut inner = path;
                inner.push("0".into());
                self.leaves(&ty["ofType"], &value[0], inner, out);
            }
            "INPUT_OBJECT" => {
                let name = ty["name"].as_str().unwrap();
                for field in self.types[name]["inputFields"].as_array().unwrap() {
                    let key = field["name"].as_str().unwrap();
                    if let Some(v) = value.get(key) {
                        let mut inner = path.clone();
                        inner.push(key.to_string());
                        self.leaves(&field["type"], v, inner, out);
                    }
                }
            }
            "SCALAR" if value.is_string() => out.push(Leaf::Text(path)),
            _ => {}
        }
    }
}

enum Leaf {
    Text(Vec<String>),
    List(Vec<String>, Value),
}

fn set(root: &mut Value, path: &[String], to: Value) {
    let mut at = root;
    for step in path {
        at = match step.parse::<usize>() {
            Ok(i) if at.is_array() => &mut at[i],
            _ => &mut at[step.as_str()],
        };
    }
    *at = to;
}

async fn send(app: &TestApp, token: &str, query: &str, variables: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(format!("{}/graphql", app.address))
        .bearer_auth(token)
        .json(&json!({"query": query, "variables": variables}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn codes(body: &Value) -> Vec<String> {
    let mut codes: Vec<String> = body["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["extensions"]["code"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default();
    if let Some(code) = body["error"]["code"].as_str() {
        codes.push(code.to_string());
    }
    codes
}

async fn every_mutation_refuses_poisoned_input_without_a_trace(backend: Backend) {
    let app = spawn_app(&backend.fresh().await).await;
    let (token, _) = app.sign_up("Sweep", "owner@sweep.example.org").await;
    let introspected = app.gql(Some(&token), INTROSPECT, json!({})).await;
    let schema = &introspected["data"]["__schema"];
    assert!(schema.is_object(), "introspection works: {introspected}");
    let schema_types = Schema {
        types: schema["types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["name"].as_str().unwrap().to_string(), t.clone()))
            .collect(),
    };
    let forged = format!("{token}x");
    let mut tried = 0;
    let mut failures = Vec::new();
    for field in schema["mutationType"]["fields"].as_array().unwrap() {
        let name = field["name"].as_str().unwrap();
        let args = field["args"].as_array().unwrap();
        if args.is_empty() {
            continue;
        }
        let declared: Vec<String> = args
            .iter()
            .map(|a| {
                format!(
                    "${}: {}",
                    a["name"].as_str().unwrap(),
                    Schema::render(&a["type"])
                )
            })
            .collect();
        let passed: Vec<String> = args
            .iter()
            .map(|a| format!("{0}: ${0}", a["name"].as_str().unwrap()))
            .collect();
        let selection = match Schema::named(&field["type"])["kind"].as_str().unwrap() {
            "OBJECT" | "INTERFACE" | "UNION" => " { __typename }",
            _ => "",
        };
        let query = format!(
            "mutation({}) {{ {name}({}){selection} }}",
            declared.join(", "),
            passed.join(", ")
        );
        let mut base = Map::new();
        let mut leaves = Vec::new();
        for arg in args {
            let key = arg["name"].as_str().unwrap().to_string();
            let value = schema_types.sample(&arg["type"], 0);
            schema_types.leaves(&arg["type"], &value, vec![key.clone()], &mut leaves);
            base.insert(key, value);
        }
        let base = Value::Object(base);
        let mut poisoned: Vec<(String, Value)> = Vec::new();
        for leaf in &leaves {
            match leaf {
                Leaf::Text(path) => {
                    for (what, text) in [
                        ("NUL", "before\u{0}after".to_string()),
                        ("control", "bell\u{7}escape\u{1b}".to_string()),
                        ("1 MB", "x".repeat(1 << 20)),
                    ] {
                        let mut v = base.clone();
                        set(&mut v, path, json!(text));
                        poisoned.push((format!("{what} in {}", path.join(".")), v));
                    }
                    let mut v = base.clone();
                    set(&mut v, path, json!({"not": "a string"}));
                    poisoned.push((format!("object for {}", path.join(".")), v));
                }
                Leaf::List(path, item) => {
                    let mut v = base.clone();
                    set(&mut v, path, Value::Array(vec![item.clone(); 10_000]));
                    poisoned.push((format!("10,000 items in {}", path.join(".")), v));
                }
            }
        }
        for (what, variables) in poisoned {
            let before = app.event_count().await;
            let (status, body) = send(&app, &token, &query, &variables).await;
            tried += 1;
            let codes = codes(&body);
            let typed = !codes.is_empty() && codes.iter().all(|c| TYPED.contains(&c.as_str()));
            let stored = app.event_count().await != before;
            if status >= 500 || !typed || stored {
                let mut shown = body.to_string();
                shown.truncate(400);
                failures.push(format!(
                    "{name}, {what}: status {status}, codes {codes:?}, stored {stored}: {shown}"
                ));
            }
        }
        // A forged token: refused before anything runs.
        let before = app.event_count().await;
        let (status, body) = send(&app, &forged, &query, &base).await;
        tried += 1;
        if status >= 500
            || app.event_count().await != before
            || codes(&body).iter().any(|c| c == "INTERNAL")
        {
            failures.push(format!("{name}, forged token: status {status}: {body}"));
        }
    }
    assert!(tried > 200, "the sweep sent only {tried} requests");
    assert!(
        failures.is_empty(),
        "{} of {tried} poisoned requests were not refused cleanly:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

on_both_databases!(every_mutation_refuses_poisoned_input_without_a_trace);
