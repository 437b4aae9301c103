//! The rules every input is held to at the edge, before it is parsed into
//! types and before any database work: the GraphQL guard
//! (`graphql::guard`) applies them to each argument of a request, and
//! [`json_body`] to each REST JSON body. They are the cheapest checks, so
//! they run first; what a value means (a name's length, an id's existence)
//! is checked later, by the newtypes and the aggregates.
//!
//! - Every string: no stray control character (`domain::text::check_controls`).
//! - Every list: at most its maximum ([`max_items`]), so a list of 20,000
//!   ids is refused before anyone looks one up.
//! - Every timestamp: within `domain::bounds` (the years 2000 to 2099).
//!
//! Lists and timestamps are recognised by their field or argument name;
//! a test over the schema keeps the names and the types in step.

use async_graphql::Value as ConstValue;
use chrono::{DateTime, Utc};
use domain::signage::{
    MAX_DAYPARTS, MAX_PLAYLIST_ITEMS, MAX_PLAYS_PER_REPORT, MAX_TAGS, MAX_TARGETS,
};
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};

/// The most items a list input may hold, by its field or argument name.
pub const LIST_MAXIMA: &[(&str, usize)] = &[
    ("entries", domain::post::MAX_ENTRIES),
    ("media", domain::post::MAX_IMAGES),
    ("langs", domain::post::MAX_LANGS),
    ("tags", MAX_TAGS),
    ("items", MAX_PLAYLIST_ITEMS),
    ("dayparts", MAX_DAYPARTS),
    ("days", 7),
    ("displayIds", MAX_TARGETS),
    ("groupIds", MAX_TARGETS),
    ("plays", MAX_PLAYS_PER_REPORT),
];

/// The most items of a list [`LIST_MAXIMA`] does not name.
pub const DEFAULT_MAX_ITEMS: usize = 100;

/// The field and argument names that hold an instant.
pub const INSTANT_FIELDS: &[&str] = &[
    "at",
    "from",
    "to",
    "asOf",
    "validFrom",
    "validTo",
    "expiresAt",
    "playedAt",
];

/// The most items the list input `name` may hold.
pub fn max_items(name: &str) -> usize {
    LIST_MAXIMA
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(DEFAULT_MAX_ITEMS, |(_, max)| *max)
}

/// Checks `value`, the input `name` at `path` (`entries.0.text`), and all it
/// holds. Lists are measured before their items are looked at.
pub fn check(value: &ConstValue, path: &str, name: &str) -> ApiResult<()> {
    match value {
        ConstValue::String(s) => {
            domain::text::check_controls(s, path)?;
            if INSTANT_FIELDS.contains(&name)
                && let Ok(at) = s.parse::<DateTime<Utc>>()
            {
                // What does not parse is the GraphQL engine's (or serde's)
                // to report, as for any malformed scalar.
                domain::bounds::check_instant(at, path)?;
            }
            Ok(())
        }
        ConstValue::Enum(e) => Ok(domain::text::check_controls(e, path)?),
        ConstValue::List(items) => {
            let max = max_items(name);
            if items.len() > max {
                return Err(ApiError::invalid(
                    path,
                    format!("at most {max} items, got {}", items.len()),
                ));
            }
            items
                .iter()
                .enumerate()
                .try_for_each(|(i, item)| check(item, &format!("{path}.{i}"), name))
        }
        // Keys are names: the engine (or serde) refuses the unknown ones.
        ConstValue::Object(fields) => fields
            .iter()
            .try_for_each(|(key, item)| check(item, &join(path, key), key)),
        _ => Ok(()),
    }
}

/// `path.key`, or `key` at the top.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A REST JSON body, checked by [`check`] and then read as a `T`: `what`
/// says what it should have been ("a play report") when it is not JSON or
/// not a `T`.
pub fn json_body<T: DeserializeOwned>(bytes: &[u8], what: &str) -> ApiResult<T> {
    let not = |e: serde_json::Error| ApiError::invalid("body", format!("not {what}: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(not)?;
    check_json(&value)?;
    serde_json::from_value(value).map_err(not)
}

/// Checks a parsed JSON value by [`check`].
pub fn check_json(value: &serde_json::Value) -> ApiResult<()> {
    // Numbers that do not fit a GraphQL value are the deserializer's to
    // refuse; nothing else fails to convert.
    match ConstValue::from_json(value.clone()) {
        Ok(value) => check(&value, "", ""),
        Err(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field_of(value: serde_json::Value) -> Option<String> {
        match check_json(&value) {
            Ok(()) => None,
            Err(ApiError::Validation { field, .. }) => Some(field),
            Err(e) => panic!("{e:?}"),
        }
    }

    /// Every input of the schema (argument or input field), with its name
    /// and the named type under any list and non-null wrappers, and
    /// whether it is a list.
    fn schema_inputs() -> Vec<(String, String, bool)> {
        use async_graphql::parser::types::{BaseType, TypeKind, TypeSystemDefinition};
        use async_graphql::{EmptySubscription, Schema};

        use crate::schema::{Mutation, Query};

        let sdl = Schema::build(Query::default(), Mutation::default(), EmptySubscription)
            .finish()
            .sdl();
        let doc = async_graphql::parser::parse_schema(sdl).unwrap();
        let mut inputs = Vec::new();
        let mut add = |v: &async_graphql::parser::types::InputValueDefinition| {
            let (mut ty, mut list) = (&v.ty.node, false);
            while let BaseType::List(inner) = &ty.base {
                (ty, list) = (inner, true);
            }
            inputs.push((v.name.node.to_string(), ty.base.to_string(), list));
        };
        for def in &doc.definitions {
            if let TypeSystemDefinition::Type(t) = def {
                match &t.node.kind {
                    TypeKind::Object(o) => o
                        .fields
                        .iter()
                        .flat_map(|f| &f.node.arguments)
                        .for_each(|a| add(&a.node)),
                    TypeKind::InputObject(i) => i.fields.iter().for_each(|f| add(&f.node)),
                    _ => {}
                }
            }
        }
        inputs
    }

    #[test]
    fn the_names_of_lists_and_instants_match_the_schema_types() {
        let inputs = schema_inputs();
        assert!(inputs.len() > 50, "{inputs:?}");
        for (name, ty, list) in &inputs {
            // Every list has its own documented maximum.
            if *list {
                assert!(
                    LIST_MAXIMA.iter().any(|(n, _)| n == name),
                    "the list input {name} needs an entry in LIST_MAXIMA (and docs/api.md)"
                );
            }
            // A name means an instant exactly where the type is one.
            assert_eq!(
                ty == "DateTime",
                INSTANT_FIELDS.contains(&name.as_str()),
                "{name}: {ty}"
            );
        }
    }

    #[test]
    fn control_characters_are_refused_anywhere_naming_the_path() {
        assert_eq!(field_of(json!({"name": "a\u{0}"})), Some("name".into()));
        assert_eq!(
            field_of(json!({"entries": [{"text": "ok"}, {"text": "\u{85}"}]})),
            Some("entries.1.text".into())
        );
        assert_eq!(
            field_of(json!({"tags": ["a", "\u{7f}"]})),
            Some("tags.1".into())
        );
        assert_eq!(field_of(json!({"body": "one\r\n\ttwo \u{202e}"})), None);
    }

    #[test]
    fn lists_are_bounded_by_name_before_their_items_are_read() {
        let ids = |n: usize| vec![json!("\u{0}"); n];
        assert_eq!(
            field_of(json!({"displayIds": ids(501)})),
            Some("displayIds".into())
        );
        assert_eq!(
            field_of(json!({"x": {"groupIds": ids(501)}})),
            Some("x.groupIds".into())
        );
        assert_eq!(
            field_of(json!({"unnamed": ids(101)})),
            Some("unnamed".into())
        );
        assert_eq!(
            field_of(json!({"entries": ids(26)})),
            Some("entries".into())
        );
        assert_eq!(field_of(json!({"displayIds": vec!["a"; 500]})), None);
    }

    #[test]
    fn instants_are_bounded_where_a_name_says_they_are_instants() {
        assert_eq!(
            field_of(json!({"plays": [{"playedAt": "-9999-01-01T00:00:00Z"}]})),
            Some("plays.0.playedAt".into())
        );
        assert_eq!(
            field_of(json!({"asOf": "2100-01-01T00:00:00Z"})),
            Some("asOf".into())
        );
        assert_eq!(field_of(json!({"at": "2030-01-01T00:00:00+01:00"})), None);
        // Text that is no instant, and instants in other fields, pass.
        assert_eq!(field_of(json!({"at": "soon"})), None);
        assert_eq!(field_of(json!({"body": "1970-01-01T00:00:00Z"})), None);
    }
}
