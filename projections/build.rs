//! Rebuild when a migration is added: `sqlx::migrate!` embeds the files at
//! compile time and does not watch the directories itself.
fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
