//! The input guard: an extension that holds every argument of a request to
//! the edge rules of `crate::input` (control characters, list maxima,
//! instants) right after the query is parsed, before it is validated or
//! any resolver runs. Inline literals and variables are checked alike: each
//! argument is read with its variables filled in, so the error names the
//! argument's path (`entries.0.text`, `displayIds`, `filter.from`) however
//! the client wrote it. A top-level argument named `input` is left out of
//! the path, as resolvers name its fields (`name`, not `input.name`).
//! Directive arguments are not inputs of Herald and are left alone.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Field, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerResult, Value as ConstValue, Variables};

use crate::input;

/// Installs [`check_document`] on a schema.
pub struct InputGuard;

impl ExtensionFactory for InputGuard {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(InputGuard)
    }
}

#[async_trait::async_trait]
impl Extension for InputGuard {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        check_document(&doc, variables)?;
        Ok(doc)
    }
}

/// Checks every field argument of every operation and fragment of `doc`,
/// with `variables` (or their defaults) in place of variable references.
pub fn check_document(doc: &ExecutableDocument, variables: &Variables) -> ServerResult<()> {
    let mut values: HashMap<&Name, &ConstValue> = HashMap::new();
    for (_, op) in doc.operations.iter() {
        for def in &op.node.variable_definitions {
            if let Some(default) = &def.node.default_value {
                values.insert(&def.node.name.node, &default.node);
            }
        }
    }
    values.extend(variables.iter());
    let sets = doc
        .operations
        .iter()
        .map(|(_, op)| &op.node.selection_set)
        .chain(doc.fragments.values().map(|f| &f.node.selection_set));
    for set in sets {
        check_selections(&set.node, &values)?;
    }
    Ok(())
}

fn check_selections(set: &SelectionSet, values: &HashMap<&Name, &ConstValue>) -> ServerResult<()> {
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                check_arguments(field, values)?;
                check_selections(&field.node.selection_set.node, values)?;
            }
            Selection::InlineFragment(f) => check_selections(&f.node.selection_set.node, values)?,
            // Fragments are checked once, from the document.
            Selection::FragmentSpread(_) => {}
        }
    }
    Ok(())
}

fn check_arguments(
    field: &Positioned<Field>,
    values: &HashMap<&Name, &ConstValue>,
) -> ServerResult<()> {
    for (name, value) in &field.node.arguments {
        let value = value
            .node
            .clone()
            .into_const_with(|var| {
                Ok::<_, Infallible>(values.get(&var).map_or(ConstValue::Null, |v| (*v).clone()))
            })
            .unwrap_or_else(|never| match never {});
        let path = if name.node == "input" {
            ""
        } else {
            name.node.as_str()
        };
        input::check(&value, path, &name.node)
            .map_err(|e| async_graphql::Error::from(e).into_server_error(name.pos))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;
    use serde_json::json;

    use super::*;

    fn refusal(query: &str, variables: serde_json::Value) -> Option<(String, String)> {
        let doc = parse_query(query).unwrap();
        check_document(&doc, &Variables::from_json(variables))
            .err()
            .map(|e| {
                let ext = e.extensions.unwrap();
                let field = ext.get("field").unwrap().to_string();
                (field.trim_matches('"').to_string(), e.message)
            })
    }

    #[test]
    fn literals_variables_defaults_and_fragments_are_all_checked() {
        let field = |q: &str, v| refusal(q, v).map(|(f, _)| f);
        assert_eq!(
            field(
                r#"mutation { renameDisplay(id: "x", name: "a\u0000") { id } }"#,
                json!({})
            ),
            Some("name".into())
        );
        assert_eq!(
            field(
                "mutation($i: In!) { createPost(input: $i) { id } }",
                json!({"i": {"entries": [{"text": "ok"}, {"text": "a\u{0}"}]}})
            ),
            Some("entries.1.text".into())
        );
        assert_eq!(
            field(
                r#"mutation($t: String!) { createPost(input: {entries: [{text: $t}]}) { id } }"#,
                json!({"t": "\u{7}"})
            ),
            Some("entries.0.text".into())
        );
        assert_eq!(
            field(
                r#"mutation($n: String = "\u0001") { createNoticeCategory(name: $n) { id } }"#,
                json!({})
            ),
            Some("name".into())
        );
        assert_eq!(
            field(
                "query { ...F } fragment F on Query { auditLog(filter: {from: \"1970-01-01T00:00:00Z\"}) { edges { cursor } } }",
                json!({})
            ),
            Some("filter.from".into())
        );
        assert_eq!(
            field(
                "query { me { ... on Me { campaigns(after: \"\\u0000\") { edges { cursor } } } } }",
                json!({})
            ),
            Some("after".into())
        );
        assert_eq!(
            field(
                r#"mutation { renameDisplay(id: "x", name: "Hall") { id } }"#,
                json!({})
            ),
            None
        );
    }

    #[test]
    fn the_error_is_validation_and_its_message_names_the_field() {
        let ids = vec![json!("00000000-0000-0000-0000-000000000000"); 20_000];
        let (field, message) = refusal(
            "mutation($i: In!) { createSignageSchedule(input: $i) { id } }",
            json!({"i": {"displayIds": ids}}),
        )
        .unwrap();
        assert_eq!(field, "displayIds");
        assert_eq!(message, "displayIds: at most 500 items, got 20000");
    }
}
