//! At most one `signUp`, `logIn` or `acceptInvitation` per request. Aliases
//! let one document call a mutation many times (`a: signUp(…) b: signUp(…)`),
//! so a single unauthenticated request could create fifty organisations or
//! try fifty passwords. These mutations create accounts or check secrets;
//! no client needs two in one request, so a document that holds more is
//! refused with `VALIDATION` as soon as it is parsed, before anything runs.
//!
//! The count is per operation, over its root fields, through fragment
//! spreads and inline fragments; a field under `@skip`/`@include` counts
//! too (the check runs before variables decide them). Other rate-limited
//! mutations may be aliased: each alias runs its resolver, which counts
//! against the limit on its own.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Name, Pos, ServerResult, Variables};

use crate::error::ApiError;

/// The mutations a request may call once.
pub const ONCE_PER_REQUEST: [&str; 3] = ["signUp", "logIn", "acceptInvitation"];

/// The schema extension that enforces [`ONCE_PER_REQUEST`].
pub struct OncePerRequest;

impl ExtensionFactory for OncePerRequest {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OncePerRequest)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for OncePerRequest {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        match second_call(&document) {
            None => Ok(document),
            Some(pos) => {
                let error = ApiError::invalid(
                    "mutation",
                    format!(
                        "a request may call at most one of {}; send each in a request of its own",
                        ONCE_PER_REQUEST.join(", ")
                    ),
                );
                Err(async_graphql::Error::from(error).into_server_error(pos))
            }
        }
    }
}

/// The position of the first operation in `document` that calls
/// [`ONCE_PER_REQUEST`] mutations more than once.
fn second_call(document: &ExecutableDocument) -> Option<Pos> {
    let mut memo = HashMap::new();
    document
        .operations
        .iter()
        .find(|(_, op)| calls(document, &op.node.selection_set.node, &mut memo) > 1)
        .map(|(_, op)| op.pos)
}

/// How many [`ONCE_PER_REQUEST`] fields a root selection set calls,
/// counting 2 for "more than one". Each fragment is counted once and its
/// count reused wherever it is spread, so the walk stays linear in the
/// document however fragments spread each other; a fragment within its own
/// spread counts nothing there (validation refuses the cycle anyway).
fn calls<'d>(
    document: &'d ExecutableDocument,
    set: &'d SelectionSet,
    memo: &mut HashMap<&'d Name, usize>,
) -> usize {
    let mut total = 0usize;
    for item in &set.items {
        total += match &item.node {
            Selection::Field(field) => {
                usize::from(ONCE_PER_REQUEST.contains(&field.node.name.node.as_str()))
            }
            Selection::InlineFragment(inline) => {
                calls(document, &inline.node.selection_set.node, memo)
            }
            Selection::FragmentSpread(spread) => {
                let name = &spread.node.fragment_name.node;
                match (memo.get(name), document.fragments.get(name)) {
                    (Some(&known), _) => known,
                    (None, Some(fragment)) => {
                        memo.insert(name, 0); // in progress: a cycle counts 0
                        let n = calls(document, &fragment.node.selection_set.node, memo);
                        memo.insert(name, n);
                        n
                    }
                    // Unknown fragments are validation's to report.
                    (None, None) => 0,
                }
            }
        };
        total = total.min(2);
    }
    total
}

#[cfg(test)]
mod tests {
    use async_graphql::parser::parse_query;

    use super::*;

    fn refused(query: &str) -> bool {
        second_call(&parse_query(query).expect("parses")).is_some()
    }

    #[test]
    fn one_call_per_operation_passes() {
        for query in [
            "mutation { signUp(input: {}) { accessToken } }",
            "mutation { logIn(input: {}) { accessToken } requestPasswordReset(email: \"a\") }",
            "mutation A { logIn(input: {}) { accessToken } } mutation B { logIn(input: {}) { accessToken } }",
            "mutation { a: refreshSession(refreshToken: \"x\") { accessToken } b: refreshSession(refreshToken: \"y\") { accessToken } }",
            "query { me { actor } }",
            // A field of the same name below the root is no call.
            "mutation { acceptInvitation(input: {}) { user { logIn: id } } }",
        ] {
            assert!(!refused(query), "{query}");
        }
    }

    #[test]
    fn aliases_and_mixes_are_refused() {
        let fifty: String = (0..50)
            .map(|i| format!("s{i}: signUp(input: {{}}) {{ accessToken }} "))
            .collect();
        assert!(refused(&format!("mutation {{ {fifty} }}")));
        assert!(refused(
            "mutation { signUp(input: {}) { accessToken } logIn(input: {}) { accessToken } }"
        ));
        assert!(refused(
            "mutation { a: acceptInvitation(input: {}) { accessToken } b: acceptInvitation(input: {}) { accessToken } }"
        ));
        let second = "mutation A { me: logOut } mutation B { a: logIn(input: {}) { accessToken } b: logIn(input: {}) { accessToken } }";
        assert!(refused(second), "any operation of the document");
    }

    #[test]
    fn fragments_and_directives_do_not_hide_a_second_call() {
        for query in [
            "mutation { logIn(input: {}) { accessToken } ...F } fragment F on Mutation { logIn(input: {}) { accessToken } }",
            "mutation { ... on Mutation { a: logIn(input: {}) { accessToken } } ... { b: logIn(input: {}) { accessToken } } }",
            "mutation { ...F ...F } fragment F on Mutation { logIn(input: {}) { accessToken } }",
            "mutation($no: Boolean!) { a: logIn(input: {}) @skip(if: $no) { accessToken } b: logIn(input: {}) { accessToken } }",
        ] {
            assert!(refused(query), "{query}");
        }
    }

    #[test]
    fn cyclic_and_exponential_fragments_end_quickly() {
        let cycle = "mutation { ...A } fragment A on Mutation { logIn(input: {}) { accessToken } ...B } fragment B on Mutation { ...A }";
        assert!(!refused(cycle));
        // 2^40 paths through 40 fragments that each spread the next twice.
        let mut query = String::from("mutation { ...F0 }");
        for i in 0..40 {
            query.push_str(&format!(
                " fragment F{i} on Mutation {{ ...F{n} ...F{n} }}",
                n = i + 1
            ));
        }
        query.push_str(" fragment F40 on Mutation { logOut }");
        let started = std::time::Instant::now();
        assert!(!refused(&query));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }
}
