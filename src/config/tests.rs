//! The tests of reading the configuration from variables.

use super::*;

const URL: &str = "https://discord.com/api/webhooks/1/tok-en_123";

fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let vars = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    Config::from_vars(&vars)
}

#[test]
fn starts_dry_with_nothing_set() {
    let config = config(&[]).unwrap();
    assert!(config.is_dry_run());
    assert!(config.webhook_secret.is_none());
    assert_eq!(config.listen_addr.to_string(), "0.0.0.0:9000");
    assert_eq!(config.data_dir, PathBuf::from("./data"));
    assert_eq!(config.templates_dir, PathBuf::from("./templates"));
    assert_eq!(config.max_body_bytes, 64 * 1024 * 1024);
}

#[test]
fn refuses_a_webhook_without_a_secret_unless_allowed() {
    assert_eq!(
        config(&[("DISCORD_WEBHOOK_URL", URL)]).unwrap_err(),
        ConfigError::MissingSecret("DISCORD_WEBHOOK_URL is set")
    );
    assert!(config(&[("DISCORD_WEBHOOK_URL", URL), ("ALLOW_NO_SECRET", "true")]).is_ok());
    assert!(config(&[("DISCORD_WEBHOOK_URL", URL), ("WEBHOOK_SECRET", "s")]).is_ok());
}

#[test]
fn names_the_variable_and_hides_the_token() {
    let err = config(&[("DISCORD_WEBHOOK_URL", "https://discord.com/webhooks/1/SECRETTOKEN")]).unwrap_err();
    let message = err.to_string();
    assert!(message.starts_with("DISCORD_WEBHOOK_URL is not a usable webhook URL"), "{message}");
    assert!(!message.contains("SECRETTOKEN"), "{message}");
    let err = config(&[("LISTEN_ADDR", "nine thousand")]).unwrap_err();
    assert!(err.to_string().starts_with("LISTEN_ADDR must be"), "{err}");
    let err = config(&[("MAX_BODY_BYTES", "lots")]).unwrap_err();
    assert!(err.to_string().starts_with("MAX_BODY_BYTES must be"), "{err}");
}

#[test]
fn empty_values_count_as_unset() {
    let config = config(&[("WEBHOOK_SECRET", ""), ("DISCORD_WEBHOOK_URL", " ")]).unwrap();
    assert!(config.is_dry_run() && config.webhook_secret.is_none());
}

#[test]
fn reads_secrets_from_files_but_not_both_forms() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, "from-file\n").unwrap();
    let url = dir.path().join("url");
    std::fs::write(&url, format!("{URL}\n")).unwrap();
    let config = config(&[
        ("WEBHOOK_SECRET_FILE", secret.to_str().unwrap()),
        ("DISCORD_WEBHOOK_URL_FILE", url.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(config.webhook_secret.unwrap().expose(), "from-file");
    assert_eq!(config.discord_webhook_url.unwrap().id(), 1);
    let both = self::config(&[("WEBHOOK_SECRET", "x"), ("WEBHOOK_SECRET_FILE", secret.to_str().unwrap())]);
    assert_eq!(both.unwrap_err().to_string(), "WEBHOOK_SECRET and WEBHOOK_SECRET_FILE are both set; set one");
    let missing = self::config(&[("WEBHOOK_SECRET_FILE", "/nonexistent/secret")]).unwrap_err();
    assert!(missing.to_string().starts_with("WEBHOOK_SECRET cannot be read from WEBHOOK_SECRET_FILE="), "{missing}");
}

#[test]
fn an_unreadable_secret_file_says_which_owner_it_needs() {
    let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
    assert!(unreadable_file_hint(&denied).contains("sudo chown 65532:65532"));
    assert_eq!(unreadable_file_hint(&std::io::Error::from(std::io::ErrorKind::NotFound)), "");
}

#[test]
fn reads_panels_with_their_own_secrets() {
    let config = config(&[("PANELS", "eu1:s1, us-2:a:b"), ("DISCORD_WEBHOOK_URL", URL)]).unwrap();
    let panels: Vec<(&str, &str)> = config.panels.iter().map(|(l, s)| (l.as_str(), s.expose())).collect();
    assert_eq!(panels, [("eu1", "s1"), ("us-2", "a:b")]);
    assert!(self::config(&[("PANELS", "eu1")]).is_err());
    assert!(self::config(&[("PANELS", "e u:s")]).is_err());
    assert!(self::config(&[("PANELS", "a:1,a:2")]).is_err());
}

#[test]
fn warns_about_every_secret_marzban_cannot_send_naming_where_it_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    let file = format!(
        "[panels.asia]\nsecret = \"秘密\"\n[panels.eu2]\nsecret = \"gärten\"\n\
         [destinations.audit]\nurl = \"{URL}\"\n[[rules]]\nto = [\"audit\"]\n"
    );
    std::fs::write(&routes, file).unwrap();
    let config = config(&[
        ("WEBHOOK_SECRET", "пароль"),
        ("PANELS", "eu1:pässwörd,us1:naïve€"),
        ("ROUTES_FILE", routes.to_str().unwrap()),
    ])
    .unwrap();
    let named: Vec<&str> = config.warnings.iter().map(|w| w.split(" has ").next().unwrap()).collect();
    assert_eq!(named, ["WEBHOOK_SECRET", "PANELS (panel us1)", "ROUTES_FILE (panels.asia)"]);
    assert!(config.warnings.iter().all(|w| w.contains("latin-1") && w.contains("Marzban")));
    assert!(!config.warnings.iter().any(|w| w.contains("пароль") || w.contains("秘密")), "no secret values");
    let file = dir.path().join("secret");
    std::fs::write(&file, "пароль\n").unwrap();
    let from_file = self::config(&[("WEBHOOK_SECRET_FILE", file.to_str().unwrap())]).unwrap();
    assert_eq!(from_file.warnings.len(), 1);
    assert!(self::config(&[("WEBHOOK_SECRET", "pässwörd")]).unwrap().warnings.is_empty());
}

#[test]
fn bounds_the_owner_destinations() {
    assert_eq!(config(&[("OWNER_DESTINATIONS_MAX", "5")]).unwrap().owner_destinations_max, 5);
    for bad in ["0", "1001", "-1", "99999999999999999999999", "lots"] {
        let err = config(&[("OWNER_DESTINATIONS_MAX", bad)]).unwrap_err().to_string();
        assert!(err.starts_with("OWNER_DESTINATIONS_MAX must be a whole number from 1 to 1000"), "{err}");
    }
}

#[test]
fn refuses_durations_out_of_range_naming_the_variable_and_the_range() {
    let message = |pairs: &[(&str, &str)]| config(pairs).unwrap_err().to_string();
    assert_eq!(
        message(&[("RETRY_MAX_AGE", "10000000000000000s")]),
        "RETRY_MAX_AGE must be from 1s to 365d, not \"10000000000000000s\""
    );
    assert_eq!(message(&[("RETRY_MAX_AGE", "0")]), "RETRY_MAX_AGE must be from 1s to 365d, not \"0\"");
    assert_eq!(
        message(&[("RETRY_SCHEDULE", "1s,50ms")]),
        "RETRY_SCHEDULE step \"50ms\" must be from 100ms to 1d, not \"50ms\""
    );
    assert!(message(&[("RETRY_SCHEDULE", "1s,2d")]).starts_with("RETRY_SCHEDULE step \"2d\" must be from"));
    assert_eq!(message(&[("DEDUP_WINDOW", "2d")]), "DEDUP_WINDOW must be 0 (off) or from 1s to 1d, not \"2d\"");
    assert_eq!(
        message(&[("DELIVERED_RETENTION", "1e400d")]),
        "DELIVERED_RETENTION must be a duration such as 30s, 10m, 72h or 7d, not \"1e400d\""
    );
    assert_eq!(
        message(&[("DELIVERED_RETENTION", "99999999999999999999999999999999999999999d")]),
        "DELIVERED_RETENTION must be from 0 to 3650d, not \"99999999999999999999999999999999999999999d\""
    );
    // The edges are in range.
    let edges = config(&[
        ("RETRY_MAX_AGE", "365d"),
        ("RETRY_SCHEDULE", "100ms,24h"),
        ("DEDUP_WINDOW", "1s"),
        ("DELIVERED_RETENTION", "0"),
        ("CHANNEL_RATE_LIMIT", "10000/1s"),
    ])
    .unwrap();
    assert_eq!(edges.delivery.retry_max_age, Duration::from_secs(365 * 86_400));
    assert_eq!(edges.delivery.retry_schedule, [Duration::from_millis(100), Duration::from_secs(86_400)]);
    assert_eq!(edges.dedup_window, Some(Duration::from_secs(1)));
    assert_eq!(edges.delivered_retention, Duration::ZERO);
    assert_eq!((edges.delivery.channel_messages, edges.delivery.channel_window), (10_000, Duration::from_secs(1)));
}

#[test]
fn refuses_absurd_rates_without_panicking() {
    let message = |value: &str| config(&[("CHANNEL_RATE_LIMIT", value)]).unwrap_err().to_string();
    let range = "CHANNEL_RATE_LIMIT must be 1 to 10000 messages per a duration from 1s to 1d, not";
    let huge = format!("1/{}s", "9".repeat(400));
    for absurd in ["1/10000000000000000000s", &huge, "99999999999999999999999999/1m", "30/10ms", "10001/1m"] {
        let message = message(absurd);
        assert!(message.starts_with(range), "{absurd}: {message}");
    }
    for malformed in ["-1/1m", "1/1e400s", "1/-1m", "1/m", "/1m", "x/1m", "1/1w", "NaN/1s", "1/NaNs", "1/infs"] {
        let message = message(malformed);
        assert!(message.starts_with("CHANNEL_RATE_LIMIT must be messages per duration"), "{malformed}: {message}");
    }
}

#[test]
fn reads_the_delivery_settings() {
    let config = config(&[
        ("RETRY_SCHEDULE", "2s,1m"),
        ("RETRY_MAX_AGE", "24h"),
        ("DIGEST_THRESHOLD", "0"),
        ("DELIVERED_RETENTION", "1d"),
        ("DEDUP_WINDOW", "0"),
    ])
    .unwrap();
    assert_eq!(config.delivery.retry_schedule, [Duration::from_secs(2), Duration::from_secs(60)]);
    assert_eq!(config.delivery.retry_max_age, Duration::from_secs(86_400));
    assert_eq!(config.delivery.digest_threshold, 0);
    assert_eq!(config.delivered_retention, Duration::from_secs(86_400));
    assert_eq!(config.dedup_window, None);
    let defaults = self::config(&[]).unwrap();
    assert_eq!(defaults.delivery.digest_threshold, 30);
    assert_eq!(defaults.dedup_window, Some(Duration::from_secs(900)));
    assert_eq!(defaults.owner_destinations_max, 100);
    for threshold in ["2000", "-1", "1e3", "99999999999999999999999"] {
        let err = self::config(&[("DIGEST_THRESHOLD", threshold)]).unwrap_err().to_string();
        assert!(err.contains("DIGEST_THRESHOLD") && err.contains("from 0 to 1999"), "{threshold}: {err}");
    }
    assert_eq!(self::config(&[("DIGEST_THRESHOLD", "1999")]).unwrap().delivery.digest_threshold, 1999);
    let err = self::config(&[("RETRY_SCHEDULE", "1s,soon")]).unwrap_err();
    assert!(err.to_string().starts_with("RETRY_SCHEDULE step \"soon\" must be a duration"), "{err}");
}

#[test]
fn refuses_byte_sizes_that_are_surely_typos() {
    let message = |name: &str, value: &str| config(&[(name, value)]).unwrap_err().to_string();
    assert_eq!(message("MAX_BODY_BYTES", "1"), "MAX_BODY_BYTES must be between 1KiB and 1GiB");
    assert_eq!(message("MAX_BODY_BYTES", "2GiB"), "MAX_BODY_BYTES must be between 1KiB and 1GiB");
    assert!(message("OUTBOX_MAX_BYTES", "512").starts_with("OUTBOX_MAX_BYTES must be at least 128KiB"));
    assert_eq!(config(&[("OUTBOX_MAX_BYTES", "512MiB")]).unwrap().outbox_max_bytes, Some(512 << 20));
}

#[test]
fn reads_the_digest_window_within_its_range() {
    assert_eq!(config(&[]).unwrap().delivery.digest_window, Duration::from_secs(5));
    assert_eq!(config(&[("DIGEST_WINDOW", "0")]).unwrap().delivery.digest_window, Duration::ZERO);
    assert_eq!(config(&[("DIGEST_WINDOW", "1m")]).unwrap().delivery.digest_window, Duration::from_secs(60));
    assert_eq!(config(&[("DIGEST_WINDOW", "100ms")]).unwrap().delivery.digest_window, Duration::from_millis(100));
    for out_of_range in ["10ms", "61s", "1h"] {
        let err = config(&[("DIGEST_WINDOW", out_of_range)]).unwrap_err().to_string();
        assert!(err.starts_with("DIGEST_WINDOW must be 0 (off) or from 100ms to 1m"), "{out_of_range}: {err}");
    }
}

#[test]
fn reads_the_readyz_wait_notice_within_its_range() {
    assert_eq!(config(&[]).unwrap().delivery.wait_notice, Duration::from_secs(60));
    assert_eq!(config(&[("READYZ_WAIT_NOTICE", "1s")]).unwrap().delivery.wait_notice, Duration::from_secs(1));
    assert_eq!(config(&[("READYZ_WAIT_NOTICE", "5m")]).unwrap().delivery.wait_notice, Duration::from_secs(300));
    for out_of_range in ["0", "500ms", "301s", "1h", "1e30s", "soon"] {
        let err = config(&[("READYZ_WAIT_NOTICE", out_of_range)]).unwrap_err().to_string();
        assert!(err.starts_with("READYZ_WAIT_NOTICE must be "), "{out_of_range}: {err}");
    }
}

#[test]
fn folds_updates_unless_told_not_to() {
    assert!(config(&[]).unwrap().fold_updates);
    assert!(!config(&[("FOLD_UPDATES", "false")]).unwrap().fold_updates);
    let err = config(&[("FOLD_UPDATES", "sometimes")]).unwrap_err().to_string();
    assert!(err.starts_with("FOLD_UPDATES "), "{err}");
}

#[test]
fn reads_forum_mode_for_the_default_destination_and_says_what_it_needs() {
    let forum = [("DISCORD_WEBHOOK_URL", URL), ("WEBHOOK_SECRET", "s"), ("DISCORD_FORUM", "true")];
    let config = config(&forum).unwrap();
    assert_eq!(config.discord_forum, Some(Forum::default()));
    let mut tagged = forum.to_vec();
    tagged.push(("DISCORD_FORUM_TAGS", "user_expired:123456789012345678"));
    let config = self::config(&tagged).unwrap();
    assert_eq!(config.discord_forum.unwrap().tags_for("user_expired"), [123456789012345678]);

    let error = |pairs: &[(&str, &str)]| self::config(pairs).unwrap_err().to_string();
    assert!(error(&[("DISCORD_FORUM", "true")]).starts_with("DISCORD_FORUM is true but DISCORD_WEBHOOK_URL"));
    let threaded = format!("{URL}?thread_id=123456789012345678");
    let with_thread = [("DISCORD_WEBHOOK_URL", threaded.as_str()), ("WEBHOOK_SECRET", "s"), ("DISCORD_FORUM", "true")];
    assert!(error(&with_thread).contains("has a thread_id"));
    assert!(error(&[("DISCORD_FORUM_TAGS", "user_expired:123456789012345678")]).contains("DISCORD_FORUM is not"));
    tagged[3] = ("DISCORD_FORUM_TAGS", "user_expired:1");
    assert!(error(&tagged).starts_with("DISCORD_FORUM_TAGS \"user_expired:1\": \"1\" is not a Discord id"));
}

#[test]
fn post_titles_name_the_panel_only_when_several_panels_post() {
    let one = config(&[("WEBHOOK_SECRET", "s"), ("PANEL_NAME", "eu")]).unwrap();
    assert!(!one.delivery.several_panels, "POST / alone, even with PANEL_NAME");
    let labelled = config(&[("PANELS", "eu:s1")]).unwrap();
    assert!(!labelled.delivery.several_panels, "one labelled panel and a closed POST /");
    let two = config(&[("PANELS", "eu:s1"), ("WEBHOOK_SECRET", "s")]).unwrap();
    assert!(two.delivery.several_panels);
}

#[test]
fn a_huge_invalid_value_is_not_repeated_whole() {
    let huge = "9".repeat(100_000);
    let message = config(&[("DIGEST_THRESHOLD", huge.as_str())]).unwrap_err().to_string();
    assert!(message.starts_with("DIGEST_THRESHOLD must be a whole number from 0 to 1999"), "{message}");
    assert!(message.len() < 1_000 && message.ends_with("more characters not shown)"), "{} bytes", message.len());
}

#[test]
fn panels_written_secret_first_are_refused_without_showing_the_secret() {
    // An easy slip: `secret:label` instead of `label:secret`; the "label" is then the secret.
    let message = config(&[("PANELS", "eu1:fine, Tr0ub4dor&3:us1")]).unwrap_err().to_string();
    assert!(!message.contains("Tr0ub4dor"), "{message}");
    assert!(message.contains("panel 2"), "says which entry: {message}");
}

#[test]
fn a_routes_destination_on_the_default_webhook_is_refused_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let routes = dir.path().join("routes.toml");
    std::fs::write(&routes, format!("[destinations.audit]\nurl = \"{URL}\"\n[[rules]]\nto = [\"audit\"]\n")).unwrap();
    let err = config(&[("DISCORD_WEBHOOK_URL", URL), ("ROUTES_FILE", routes.to_str().unwrap())]).unwrap_err();
    let said = err.to_string();
    assert!(said.contains("DISCORD_WEBHOOK_URL and destinations.audit post to the same webhook"), "{said}");
    assert!(!said.contains("tok-en_123"), "{said}");
}
