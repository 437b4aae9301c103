//! `herald audit verify` as an operator runs it: the real binary, its output
//! and its exit codes, on an export file and on a SQLite database.

use std::path::PathBuf;
use std::process::{Command, Output};

use api::audit::export::ExportRow;
use domain::audit::{AuditRow, Entry, Head};
use serde_json::json;

const TENANT: &str = "0191f3a0-0000-7000-8000-000000000001";

fn chain(n: i64) -> Vec<AuditRow> {
    let mut head = Head::genesis();
    (1..=n)
        .map(|i| {
            head.append(
                TENANT,
                Entry {
                    recorded_at: 1_764_000_000_000_000 + i,
                    actor: "system".into(),
                    action: "Tested".into(),
                    target: format!("Test:{i}"),
                    summary: format!("n={i}"),
                },
            )
        })
        .collect()
}

fn ndjson(rows: &[AuditRow], head: &AuditRow) -> String {
    let mut out = String::new();
    for row in rows {
        out.push_str(&serde_json::to_string(&ExportRow::from(row.clone())).unwrap());
        out.push('\n');
    }
    out.push_str(
        &json!({"head": head.hash, "seq": head.seq, "first_seq": 1, "rows": head.seq}).to_string(),
    );
    out.push('\n');
    out
}

fn temp(ext: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "herald-verify-{}-{}.{ext}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ))
}

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("herald runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn a_file_verifies_or_names_its_first_broken_row() {
    let rows = chain(3);
    let path = temp("ndjson");
    std::fs::write(&path, ndjson(&rows, &rows[2])).unwrap();
    let file = path.to_str().unwrap();
    let out = herald(&["audit", "verify", "--tenant", TENANT, "--file", file]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), format!("ok: 3 rows, head {}", rows[2].hash));

    let mut altered = rows.clone();
    altered[1].summary = "n=20".into();
    std::fs::write(&path, ndjson(&altered, &rows[2])).unwrap();
    let out = herald(&["audit", "verify", "--tenant", TENANT, "--file", file]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        "broken at seq 2: hash does not match the row's content (row altered)"
    );
    std::fs::remove_file(&path).unwrap();

    let out = herald(&["audit", "verify", "--tenant", TENANT, "--file", file]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing file cannot be checked"
    );
}

#[tokio::test]
async fn a_database_verifies_or_names_its_first_broken_row() {
    let path = temp("db");
    let url = format!("sqlite://{}", path.display());
    let db = projections::Database::connect(&url, 2).await.unwrap();
    db.migrate().await.unwrap();
    let rows = chain(4);
    for r in &rows {
        sqlx::query("INSERT INTO rm_audit (tenant_id, seq, recorded_at, actor, action, target, summary, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
            .bind(&r.tenant_id).bind(r.seq).bind(r.recorded_at).bind(&r.actor).bind(&r.action)
            .bind(&r.target).bind(&r.summary).bind(&r.prev_hash).bind(&r.hash)
            .execute(&db.any).await.unwrap();
    }
    sqlx::query("INSERT INTO rm_audit_heads (tenant_id, seq, hash) VALUES ($1, 4, $2)")
        .bind(TENANT)
        .bind(&rows[3].hash)
        .execute(&db.any)
        .await
        .unwrap();
    let verify = || {
        herald(&[
            "audit",
            "verify",
            "--tenant",
            TENANT,
            "--database-url",
            &url,
        ])
    };
    let out = verify();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(stdout(&out), format!("ok: 4 rows, head {}", rows[3].hash));

    sqlx::query("DELETE FROM rm_audit WHERE seq = 3")
        .execute(&db.any)
        .await
        .unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        stdout(&out).starts_with("broken at seq 3: row missing"),
        "{out:?}"
    );
    db.any.close().await;
    let _ = std::fs::remove_file(&path);
}
