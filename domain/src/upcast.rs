//! Upcasters: how old stored event shapes are read as the current ones. The
//! event store and the global log reader apply the same list, so aggregates and
//! projectors never see an old shape.

use cqrs_es::persist::{EventUpcaster, SerializedEvent};
use serde_json::{Value, json};

/// Rewrites one event type from one version to the next.
struct Step {
    event_type: &'static str,
    from: &'static str,
    to: &'static str,
    rewrite: fn(Value) -> Value,
}

impl EventUpcaster for Step {
    fn can_upcast(&self, event_type: &str, event_version: &str) -> bool {
        event_type == self.event_type && event_version == self.from
    }

    fn upcast(&self, mut event: SerializedEvent) -> SerializedEvent {
        event.payload = (self.rewrite)(event.payload);
        event.event_version = self.to.to_string();
        event
    }
}

/// `PostCreated` version 1 stored each entry as `{text, lang}` with an optional
/// single language and no facets. Version 2 has `langs: [..]` and `facets`.
fn post_created_v1_to_v2(mut payload: Value) -> Value {
    if let Some(entries) = payload
        .get_mut("PostCreated")
        .and_then(|p| p.get_mut("entries"))
        .and_then(Value::as_array_mut)
    {
        for entry in entries {
            let text = entry
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let facets = crate::text::detect_facets(text);
            let langs = match entry.get("lang").and_then(Value::as_str) {
                Some(lang) => vec![lang.to_string()],
                None => vec![],
            };
            *entry = json!({ "text": text, "langs": langs, "facets": facets });
        }
    }
    payload
}

/// `UserRegistered` version 1 held the e-mail address and password hash in
/// plaintext, and the first membership (now on the tenant, whose
/// `TenantCreated` names its owner). Version 2 holds sealed values; old
/// plaintext is marked as legacy, since the log itself cannot be rewritten.
fn user_registered_v1_to_v2(payload: Value) -> Value {
    let field = |name: &str| {
        payload
            .get("UserRegistered")
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    json!({"UserRegistered": {
        "email": crate::sealed::Sealed::legacy(&field("email")),
        "password_hash": crate::sealed::Sealed::legacy(&field("password_hash")),
        "email_verified": false,
    }})
}

/// `PostCreated` version 2 had no target connection and no images. Version 3
/// names the connection (none for old drafts) and each entry's `media`.
fn post_created_v2_to_v3(mut payload: Value) -> Value {
    if let Some(created) = payload
        .get_mut("PostCreated")
        .and_then(Value::as_object_mut)
    {
        created.entry("connection_id").or_insert(Value::Null);
        if let Some(entries) = created.get_mut("entries").and_then(Value::as_array_mut) {
            for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
                entry.entry("media").or_insert(json!([]));
            }
        }
    }
    payload
}

/// Every upcaster, in the order they apply.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![
        Box::new(Step {
            event_type: "PostCreated",
            from: "1",
            to: "2",
            rewrite: post_created_v1_to_v2,
        }),
        Box::new(Step {
            event_type: "PostCreated",
            from: "2",
            to: "3",
            rewrite: post_created_v2_to_v3,
        }),
        Box::new(Step {
            event_type: "UserRegistered",
            from: "1",
            to: "2",
            rewrite: user_registered_v1_to_v2,
        }),
    ]
}

/// Applies every matching upcaster to `event`.
pub fn upcast(mut event: SerializedEvent) -> SerializedEvent {
    for upcaster in upcasters() {
        if upcaster.can_upcast(&event.event_type, &event.event_version) {
            event = upcaster.upcast(event);
        }
    }
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::post::PostEvent;

    #[test]
    fn user_registered_v1_loads_as_the_current_shape() {
        let old = SerializedEvent::new(
            "u1".into(),
            1,
            "User".into(),
            "UserRegistered".into(),
            "1".into(),
            json!({"UserRegistered": {
                "email": "ada@example.org",
                "password_hash": "$argon2id$v=19$...",
                "tenant_id": "00000000-0000-0000-0000-000000000001",
                "role": "Owner"
            }}),
            json!({}),
        );
        let new = upcast(old);
        assert_eq!(new.event_version, "2");
        let event: crate::user::UserEvent = serde_json::from_value(new.payload).unwrap();
        let crate::user::UserEvent::UserRegistered { email, .. } = event else {
            panic!("wrong variant")
        };
        assert_eq!(email.as_str(), "plain:ada@example.org");
    }

    #[test]
    fn post_created_v1_loads_as_the_current_shape() {
        let old = SerializedEvent::new(
            "p1".into(),
            1,
            "Post".into(),
            "PostCreated".into(),
            "1".into(),
            json!({"PostCreated": {
                "tenant_id": "00000000-0000-0000-0000-000000000001",
                "campaign_id": "00000000-0000-0000-0000-000000000002",
                "entries": [{"text": "hi #there", "lang": "en"}, {"text": "second"}]
            }}),
            json!({}),
        );
        let new = upcast(old);
        assert_eq!(new.event_version, "3");
        assert_eq!(new.payload["PostCreated"]["connection_id"], Value::Null);
        assert_eq!(new.payload["PostCreated"]["entries"][1]["media"], json!([]));
        let event: PostEvent = serde_json::from_value(new.payload).unwrap();
        let PostEvent::PostCreated {
            entries,
            connection_id,
            ..
        } = event
        else {
            panic!("wrong variant")
        };
        assert_eq!(connection_id, None);
        assert_eq!(entries[0].langs, vec!["en".to_string()]);
        assert_eq!(entries[0].facets.len(), 1);
        assert!(entries[1].langs.is_empty());
    }
}
