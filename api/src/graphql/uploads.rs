//! Guards async-graphql's `Upload` against file references a client writes
//! itself. The multipart parser puts a marker naming the file into the
//! variables, and `Upload` trusts it: a marker that names no file of the
//! request panics (an index out of bounds, or an `unwrap` on a number that
//! is none). A JSON body can carry the marker in its variables and any body
//! in a literal, so every request is checked before it executes.

use async_graphql::Positioned;
use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};

/// The marker, followed by the file's index among the request's uploads
/// (async-graphql's `Request::set_upload` and `Upload::parse`).
const UPLOAD_MARKER: &str = "#__graphql_file__:";

/// Whether `request` names a file it does not carry: the marker written by a
/// client (in the variables or the query) rather than by the multipart
/// parser for a file it received.
pub fn forges_upload(request: &mut async_graphql::Request) -> bool {
    fn forged(value: &async_graphql::Value, files: usize) -> bool {
        use async_graphql::Value;
        match value {
            Value::String(s) => s
                .strip_prefix(UPLOAD_MARKER)
                .is_some_and(|i| i.parse::<usize>().map_or(true, |i| i >= files)),
            Value::List(items) => items.iter().any(|v| forged(v, files)),
            Value::Object(fields) => fields.values().any(|v| forged(v, files)),
            _ => false,
        }
    }
    let files = request.uploads.len();
    if request.variables.values().any(|v| forged(v, files)) {
        return true;
    }
    // A syntax error is reported when the request executes.
    request.parsed_query().is_ok_and(marked_literal)
}

/// Whether a literal anywhere in `doc` (argument, directive argument or
/// variable default) holds the upload marker. No client has a reason to
/// write it, so any literal holding it is refused.
fn marked_literal(doc: &ExecutableDocument) -> bool {
    fn marked(value: &impl std::fmt::Display) -> bool {
        value.to_string().contains(UPLOAD_MARKER)
    }
    fn directives(list: &[Positioned<Directive>]) -> bool {
        list.iter()
            .any(|d| d.node.arguments.iter().any(|(_, v)| marked(&v.node)))
    }
    fn selections(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(f) => {
                f.node.arguments.iter().any(|(_, v)| marked(&v.node))
                    || directives(&f.node.directives)
                    || selections(&f.node.selection_set.node)
            }
            Selection::FragmentSpread(s) => directives(&s.node.directives),
            Selection::InlineFragment(i) => {
                directives(&i.node.directives) || selections(&i.node.selection_set.node)
            }
        })
    }
    doc.operations.iter().any(|(_, op)| {
        let op = &op.node;
        op.variable_definitions.iter().any(|v| {
            v.node
                .default_value
                .as_ref()
                .is_some_and(|d| marked(&d.node))
                || directives(&v.node.directives)
        }) || directives(&op.directives)
            || selections(&op.selection_set.node)
    }) || doc
        .fragments
        .values()
        .any(|f| directives(&f.node.directives) || selections(&f.node.selection_set.node))
}

#[cfg(test)]
mod tests {
    use async_graphql::{Request, UploadValue, Variables};
    use serde_json::json;

    use super::*;

    const UPLOAD: &str = "mutation($f: Upload!) { uploadMedia(file: $f) { id } }";

    fn request(query: &str, variables: serde_json::Value) -> Request {
        Request::new(query).variables(Variables::from_json(variables))
    }

    #[test]
    fn a_file_the_multipart_parser_received_is_no_forgery() {
        let mut r = request(UPLOAD, json!({"f": null}));
        assert!(!forges_upload(&mut r));
        r.set_upload(
            "variables.f",
            UploadValue {
                filename: "a.png".into(),
                content_type: None,
                content: Default::default(),
            },
        );
        assert!(!forges_upload(&mut r));
    }

    #[test]
    fn markers_in_variables_that_name_no_file_are_forgeries() {
        for f in [
            json!("#__graphql_file__:0"),
            json!("#__graphql_file__:x"),
            json!(["#__graphql_file__:"]),
            json!({"nested": "#__graphql_file__:7"}),
        ] {
            assert!(
                forges_upload(&mut request(UPLOAD, json!({ "f": f }))),
                "{f}"
            );
        }
    }

    #[test]
    fn markers_in_literals_are_forgeries_wherever_they_are() {
        for query in [
            r##"mutation { uploadMedia(file: "#__graphql_file__:0") { id } }"##,
            // An escape hides it from a plain text search.
            r##"mutation { uploadMedia(file: "\u0023__graphql_file__:0") { id } }"##,
            r##"mutation($f: Upload! = "#__graphql_file__:0") { uploadMedia(file: $f) { id } }"##,
            r##"query { ...F } fragment F on Query { mediaAsset(id: "#__graphql_file__:1") { id } }"##,
            r##"query { mediaAssets { id filename @deprecated(reason: "#__graphql_file__:1") } }"##,
            r##"query A { me { actor } } query B { ... on Query { post(id: ["#__graphql_file__:1"]) { id } } }"##,
        ] {
            assert!(forges_upload(&mut request(query, json!({}))), "{query}");
        }
        let plain = r#"mutation { createPost(input: {entries: [{text: "Hello #file"}]}) { id } }"#;
        assert!(!forges_upload(&mut request(plain, json!({}))));
        // A syntax error is left to execution to report.
        assert!(!forges_upload(&mut request("mutation {", json!({}))));
    }
}
