//! The layering, the lenient reading of text values, and that secrets are
//! never shown.

use std::collections::HashMap;
use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::*;

fn sources() -> Sources {
    Sources::default()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn without_any_source_the_defaults_need_no_setup() {
    let s = sources().settings().unwrap();
    assert_eq!(s.database.url.expose_secret(), "sqlite://herald.db");
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(s.publishing.max_attempts, 5);
    assert!(!s.http.trust_proxy);
}

#[test]
fn each_layer_overrides_the_one_below() {
    let dir = tempdir();
    let file = dir.join("herald.toml");
    std::fs::write(
        &file,
        "[publishing]\nmax_attempts = 2\nlease_seconds = 7\nper_connection = 3\n[mail]\nfrom = \"file <f@x>\"\n",
    )
    .unwrap();
    let s = Sources {
        file: Some((file, true)),
        dotenv: map(&[
            ("HERALD_PUBLISH_LEASE_SECONDS", "8"),
            ("HERALD_PUBLISH_PER_CONNECTION", "4"),
        ]),
        env: map(&[
            ("HERALD_PUBLISH_PER_CONNECTION", "5"),
            ("HERALD_LISTEN", "0.0.0.0:9"),
        ]),
        flags: map(&[("listen", "127.0.0.1:7")]),
    }
    .settings()
    .unwrap();
    assert_eq!(s.publishing.max_attempts, 2, "file over default");
    assert_eq!(s.publishing.lease_seconds, 8, ".env over file");
    assert_eq!(s.publishing.per_connection, 5, "environment over .env");
    assert_eq!(
        s.http.listen.to_string(),
        "127.0.0.1:7",
        "flag over environment"
    );
    assert_eq!(s.mail.from, "file <f@x>");
    assert_eq!(
        s.publishing.retry_base_ms, 2000,
        "untouched keys keep their default"
    );
}

#[test]
fn switches_and_lists_read_the_way_people_write_them() {
    for (raw, expected) in [
        ("true", true),
        ("yes", true),
        ("1", true),
        ("no", false),
        ("0", false),
        ("false", false),
    ] {
        let s = Sources {
            env: map(&[("HERALD_TRUST_PROXY", raw)]),
            ..sources()
        };
        assert_eq!(s.settings().unwrap().http.trust_proxy, expected, "{raw}");
    }
    let s = Sources {
        env: map(&[(
            "HERALD_CORS_ORIGINS",
            "https://a.example, https://b.example",
        )]),
        ..sources()
    };
    assert_eq!(
        s.settings().unwrap().http.cors_origins,
        ["https://a.example", "https://b.example"]
    );
}

#[test]
fn a_bad_value_names_the_setting_but_not_a_secret() {
    let err = Sources {
        env: map(&[
            ("HERALD_DB_POOL", "many"),
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
        ]),
        ..sources()
    }
    .settings()
    .unwrap_err()
    .to_string();
    assert!(err.contains("pool"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn an_unknown_key_in_the_file_is_refused() {
    let dir = tempdir();
    let file = dir.join("herald.toml");
    std::fs::write(&file, "[publishing]\nmax_atempts = 2\n").unwrap();
    let err = Sources {
        file: Some((file, true)),
        ..sources()
    }
    .settings()
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_atempts"), "{err}");
}

#[test]
fn a_named_file_must_exist_the_default_one_may_not() {
    let missing = tempdir().join("nope.toml");
    let named = Sources {
        file: Some((missing.clone(), true)),
        ..sources()
    };
    assert!(named.settings().is_err());
    let default = Sources {
        file: Some((missing, false)),
        ..sources()
    };
    assert!(default.settings().is_ok());
}

#[test]
fn printed_settings_hide_secrets_and_read_back() {
    let s = Sources {
        env: map(&[
            ("DATABASE_URL", "postgres://u:hunter2@h/db"),
            ("HERALD_MASTER_KEY", "c2VjcmV0"),
            ("HERALD_SMTP_URL", "smtp://u:pw@mail:25"),
        ]),
        ..sources()
    }
    .settings()
    .unwrap();
    let shown = s.to_toml();
    for secret in ["hunter2", "c2VjcmV0", "pw@mail"] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(shown.contains(REDACTED));
    assert!(!format!("{s:?}").contains("hunter2"));
    // The printed form is a valid settings file.
    let dir = tempdir();
    let file = dir.join("herald.toml");
    std::fs::write(&file, &shown).unwrap();
    let again = Sources {
        file: Some((file, true)),
        ..sources()
    }
    .settings()
    .unwrap();
    assert_eq!(again.publishing.max_attempts, s.publishing.max_attempts);
}

#[test]
fn every_flag_and_variable_is_unique_and_every_key_exists() {
    let mut flags = std::collections::HashSet::new();
    let mut envs = std::collections::HashSet::new();
    for setting in SETTINGS {
        assert!(flags.insert(setting.flag), "{}", setting.flag);
        assert!(envs.insert(setting.env), "{}", setting.env);
        // A value for the key must land in the struct: an unknown key
        // would be refused by `deny_unknown_fields`.
        let raw = match setting.key {
            "http.listen" => "127.0.0.1:1",
            "http.trust_proxy" => "true",
            k if k.ends_with("pool")
                || k.ends_with("seconds")
                || k.ends_with("bytes")
                || k.ends_with("attempts")
                || k.ends_with("_ms")
                || k.ends_with("per_connection")
                || k.ends_with("per_minute")
                || k.ends_with("per_ip")
                || k.ends_with("per_hour") =>
            {
                "3"
            }
            _ => "x",
        };
        let s = Sources {
            flags: map(&[(setting.flag, raw)]),
            ..sources()
        };
        assert!(
            s.settings().is_ok(),
            "{}: {:?}",
            setting.key,
            s.settings().err()
        );
    }
}

#[test]
fn flags_parse_from_the_command_line() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: SettingsArgs,
    }
    let cli = Cli::try_parse_from(["herald", "--listen", "127.0.0.1:9", "--trust-proxy", "true"])
        .unwrap();
    let s = Sources {
        flags: cli.settings.flags,
        ..sources()
    }
    .settings()
    .unwrap();
    assert_eq!(s.http.listen.to_string(), "127.0.0.1:9");
    assert!(s.http.trust_proxy);
    assert!(!Settings::for_database("sqlite://x.db").http.trust_proxy);
}

fn tempdir() -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("herald-settings-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
