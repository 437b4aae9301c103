//! SQL helpers the runner and the read models share: placeholder lists
//! written once for both backends, and how many rows go into one multi-row
//! statement.

use sqlx::AnyConnection;

/// Rows per multi-row statement: well under SQLite's 32,766 bound values.
pub(crate) const CHUNK: usize = 500;

/// Placeholders for `rows` rows of `columns` values: `($1, $2), ($3, $4)`.
/// The `Any` driver passes SQL through as written; PostgreSQL needs numbered
/// parameters, and SQLite binds plain `?` without looking each name up (a
/// linear scan per parameter, quadratic for a large batch).
pub(crate) fn placeholders(conn: &AnyConnection, rows: usize, columns: usize) -> String {
    let numbered = conn.backend_name() != "SQLite";
    (0..rows)
        .map(|r| {
            let row: Vec<String> = (1..=columns)
                .map(|c| {
                    if numbered {
                        format!("${}", r * columns + c)
                    } else {
                        "?".into()
                    }
                })
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders for an `IN (…)` list of `n` values.
pub(crate) fn in_list(conn: &AnyConnection, n: usize) -> String {
    let list = placeholders(conn, n, 1);
    list.replace(['(', ')'], "")
}
