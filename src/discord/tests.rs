//! The tests of URL parsing, answer classification and redaction.

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;

use super::answer::*;
use super::*;

const TOKEN: &str = "AbC-123_xyzAbC-123_xyzAbC-123_xyzAbC-123_xyzAbC-123_xyzAbC-123_";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        map.insert(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
    }
    map
}

#[test]
fn parses_discord_urls_in_all_their_forms() {
    for host in ["discord.com", "discordapp.com", "canary.discord.com", "ptb.discord.com"] {
        for path in ["api/webhooks", "api/v10/webhooks", "api/v9/webhooks"] {
            let url = WebhookUrl::parse(&format!("https://{host}/{path}/123456/{TOKEN}")).unwrap();
            assert_eq!(url.id(), 123456);
            assert!(url.is_discord_host());
        }
    }
    let url = WebhookUrl::parse(&format!("https://discord.com/api/webhooks/1/{TOKEN}/")).unwrap();
    assert_eq!(url.id(), 1);
}

#[test]
fn accepts_other_origins_with_a_webhook_path() {
    let url = WebhookUrl::parse(&format!("http://127.0.0.1:8080/api/webhooks/7/{TOKEN}")).unwrap();
    assert!(!url.is_discord_host());
    assert_eq!(url.host(), "127.0.0.1");
    assert_eq!(url.execute_url(None).as_str(), format!("http://127.0.0.1:8080/api/webhooks/7/{TOKEN}?wait=true"));
}

#[test]
fn keeps_a_thread_id_from_the_query() {
    let url =
        WebhookUrl::parse(&format!("https://discord.com/api/webhooks/7/{TOKEN}?thread_id=99&wait=false")).unwrap();
    assert_eq!(url.thread_id(), Some(99));
    assert!(url.execute_url(None).as_str().ends_with("?wait=true&thread_id=99"));
    assert!(url.execute_url(Some(5)).as_str().ends_with("?wait=true&thread_id=5"));
}

#[test]
fn refuses_malformed_urls_without_echoing_the_token() {
    let cases = [
        ("not a url", WebhookUrlError::NotAUrl),
        ("ftp://discord.com/api/webhooks/1/abc", WebhookUrlError::Scheme("ftp".into())),
        ("http://discord.com/api/webhooks/1/abc", WebhookUrlError::PlainHttpToDiscord("discord.com".into())),
        ("https://discord.com/webhooks/1/abc", WebhookUrlError::Path),
        ("https://discord.com/api/webhooks/1", WebhookUrlError::Path),
        ("https://discord.com/api/vX/webhooks/1/abc", WebhookUrlError::Path),
        ("https://discord.com/api/webhooks/abc/abc", WebhookUrlError::Id),
        ("https://discord.com/api/webhooks/1/ab%20c", WebhookUrlError::Token),
        ("https://u:p@discord.com/api/webhooks/1/abc", WebhookUrlError::Credentials),
    ];
    for (input, expected) in cases {
        let err = WebhookUrl::parse(input).unwrap_err();
        assert_eq!(err, expected, "{input}");
        assert!(!err.to_string().contains("abc"), "{err}");
    }
}

#[test]
fn payload_urls_must_be_on_discord() {
    let err = WebhookUrl::parse_discord_only(&format!("https://evil.example/api/webhooks/1/{TOKEN}")).unwrap_err();
    assert_eq!(err, WebhookUrlError::NotDiscordHost("evil.example".into()));
    assert!(WebhookUrl::parse_discord_only(&format!("https://discord.com/api/webhooks/1/{TOKEN}")).is_ok());
}

#[test]
fn display_and_debug_redact_the_token() {
    let url = WebhookUrl::parse(&format!("https://discord.com/api/webhooks/42/{TOKEN}")).unwrap();
    for shown in [format!("{url}"), format!("{url:?}")] {
        assert!(!shown.contains(TOKEN), "{shown}");
        assert!(shown.contains("discord.com") && shown.contains("42"), "{shown}");
    }
}

#[test]
fn classifies_every_status_class() {
    let none = HeaderMap::new();
    assert_eq!(classify(StatusCode::OK, &none, b"not json"), Outcome::Delivered);
    assert_eq!(classify(StatusCode::NO_CONTENT, &none, b""), Outcome::Delivered);
    assert!(matches!(
        classify(StatusCode::BAD_REQUEST, &none, br#"{"embeds":["0"]}"#),
        Outcome::Rejected { status: 400, ref detail } if detail.contains("embeds")
    ));
    assert!(matches!(classify(StatusCode::PAYLOAD_TOO_LARGE, &none, b""), Outcome::Rejected { status: 413, .. }));
    for status in [401, 403, 404] {
        let status = StatusCode::from_u16(status).unwrap();
        assert!(matches!(classify(status, &none, b"{}"), Outcome::Gone { .. }));
    }
    for status in [500, 502, 503, 504] {
        let status = StatusCode::from_u16(status).unwrap();
        assert!(matches!(classify(status, &none, b"<html>"), Outcome::Transient { .. }));
    }
}

#[test]
fn reads_retry_after_from_the_body_first_then_the_header() {
    let body = br#"{"message":"You are being rate limited.","retry_after":1.5,"global":false}"#;
    let h = headers(&[("retry-after", "2"), ("x-ratelimit-scope", "user")]);
    assert_eq!(
        classify(StatusCode::TOO_MANY_REQUESTS, &h, body),
        Outcome::RateLimited { retry_after: Wait::from_secs(1.5), scope: Scope::User }
    );
    assert_eq!(
        classify(StatusCode::TOO_MANY_REQUESTS, &h, b""),
        Outcome::RateLimited { retry_after: Wait::from_secs(2.0), scope: Scope::User }
    );
}

#[test]
fn reads_retry_after_given_as_an_http_date() {
    let wait = |value: &str| match classify(StatusCode::TOO_MANY_REQUESTS, &headers(&[("retry-after", value)]), b"") {
        Outcome::RateLimited { retry_after, .. } => retry_after.map(|wait| wait.duration),
        other => panic!("{other:?}"),
    };
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(90);
    let soon = soon.format(&time::format_description::well_known::Rfc2822).unwrap().replace("+0000", "GMT");
    let waited = wait(&soon).expect("a date is a delay, not a ban");
    assert!(waited > Duration::from_secs(60) && waited <= Duration::from_secs(90), "{waited:?} for {soon}");
    assert_eq!(wait("Sun, 06 Nov 1994 08:49:37 GMT"), Some(MIN_RETRY_AFTER));
    assert_eq!(wait("soon, please"), None);
}

#[test]
fn a_429_without_any_delay_is_a_ban() {
    assert_eq!(
        classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), b"<html>Access denied</html>"),
        Outcome::RateLimited { retry_after: None, scope: Scope::User }
    );
}

#[test]
fn reads_the_scope_of_a_429() {
    let shared = headers(&[("x-ratelimit-scope", "shared")]);
    assert!(matches!(
        classify(StatusCode::TOO_MANY_REQUESTS, &shared, br#"{"retry_after":1}"#),
        Outcome::RateLimited { scope: Scope::Shared, .. }
    ));
    assert!(matches!(
        classify(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), br#"{"retry_after":1,"global":true}"#),
        Outcome::RateLimited { scope: Scope::Global, .. }
    ));
}

#[test]
fn reads_the_bucket_headers() {
    let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "0.75")]);
    assert_eq!(RateLimit::from_headers(&h), RateLimit { remaining: Some(0), reset_after: Wait::from_secs(0.75) });
}

fn retry_after(status: StatusCode, headers: &HeaderMap, body: &[u8]) -> Option<Wait> {
    match classify(status, headers, body) {
        Outcome::RateLimited { retry_after, .. } => retry_after,
        other => panic!("not a 429: {other:?}"),
    }
}

#[test]
fn caps_absurd_delays_without_panicking() {
    let capped = Some(Wait { duration: MAX_WAIT, capped: true });
    let too_many = StatusCode::TOO_MANY_REQUESTS;
    assert_eq!(retry_after(too_many, &HeaderMap::new(), br#"{"retry_after": 1e20}"#), capped);
    assert_eq!(retry_after(too_many, &HeaderMap::new(), br#"{"retry_after": 1e308}"#), capped);
    let header = headers(&[("retry-after", "99999999999999999999")]);
    assert_eq!(retry_after(too_many, &header, b""), capped);
    let bucket = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset-after", "1e19")]);
    assert_eq!(RateLimit::from_headers(&bucket).reset_after, capped);
    let exactly = Wait::from_secs(3600.0).unwrap();
    assert_eq!(exactly, Wait { duration: MAX_WAIT, capped: false });
    for nonsense in ["-1", "NaN", "inf", "-inf", "1e999", "", "soon"] {
        let header = headers(&[("retry-after", nonsense)]);
        assert_eq!(retry_after(too_many, &header, b""), None, "{nonsense:?} is no delay");
    }
}

#[test]
fn a_429_asking_for_no_wait_still_waits_a_little() {
    let zero = headers(&[("retry-after", "0")]);
    let wait = retry_after(StatusCode::TOO_MANY_REQUESTS, &zero, br#"{"retry_after": 0}"#).unwrap();
    assert_eq!(wait.duration, MIN_RETRY_AFTER);
    let wait = retry_after(StatusCode::TOO_MANY_REQUESTS, &zero, b"").unwrap();
    assert_eq!(wait.duration, MIN_RETRY_AFTER);
}

#[test]
fn redacts_tokens_from_upstream_text() {
    let echoed = format!("<pre>Cannot POST /api/webhooks/123/{TOKEN}?wait=true</pre>");
    let clean = redact(&echoed, None);
    assert_eq!(clean, "<pre>Cannot POST /api/webhooks/123/[redacted]?wait=true</pre>");
    let short = "Cannot POST /api/v10/Webhooks/9/shorttok";
    assert_eq!(redact(short, None), "Cannot POST /api/v10/Webhooks/9/[redacted]");
    assert_eq!(redact("token shorttok leaked", Some("shorttok")), "token [redacted] leaked");
    assert_eq!(redact(&format!("bare {TOKEN}."), None), "bare [redacted].");
    let harmless = r#"{"message": "Invalid Form Body", "code": 50035, "errors": {"embeds": {"0": 1}}}"#;
    assert_eq!(redact(harmless, None), harmless);
    assert_eq!(redact("webhooks/abc/def and webhooks/12 /x", None), "webhooks/abc/def and webhooks/12 /x");
}

#[test]
fn error_details_never_carry_a_token_even_when_cut() {
    let body = format!("{}/api/webhooks/1/{TOKEN}", "x".repeat(480));
    let Outcome::Gone { detail, .. } = classify(StatusCode::NOT_FOUND, &HeaderMap::new(), body.as_bytes()) else {
        panic!("a 404 means gone")
    };
    assert!(!detail.contains(&TOKEN[..20]), "{detail}");
    assert!(detail.ends_with("not shown)"), "an HTML or text answer is not quoted: {detail}");
}

/// Whether 16 characters in a row of `TOKEN` can be read in `text` once separators are dropped.
fn leaks(text: &str) -> bool {
    let squashed: String = text.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect();
    (0..=TOKEN.len() - 16).any(|i| squashed.contains(&TOKEN[i..i + 16]))
}

fn detail_of(body: &[u8]) -> String {
    match classify(StatusCode::NOT_FOUND, &HeaderMap::new(), body).map_detail(|d| guard(d, TOKEN)) {
        Outcome::Gone { detail, .. } => detail,
        other => panic!("a 404 means gone: {other:?}"),
    }
}

#[test]
fn only_discords_json_is_quoted_and_never_a_disguised_token() {
    // Discord's own answers are quoted, so that a dead letter says what was wrong.
    let unknown = detail_of(br#"{"message": "Unknown Webhook", "code": 10015}"#);
    assert_eq!(unknown, r#"HTTP 404: {"code":10015,"message":"Unknown Webhook"}"#);
    // Anything else is not: an echo in UTF-16, in markup, percent-encoded or split over lines.
    let utf16: Vec<u8> =
        format!("Cannot POST /api/webhooks/123/{TOKEN}").encode_utf16().flat_map(u16::to_le_bytes).collect();
    let wbr: String =
        TOKEN.as_bytes().chunks(20).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("<wbr>");
    let percent: String = TOKEN.bytes().map(|b| format!("%{b:02X}")).collect();
    let pages = [
        utf16,
        format!("<p>token: {wbr}</p>").into_bytes(),
        format!("Cannot POST /api/webhooks/123/{percent}").into_bytes(),
        format!("POST /api/webhooks/123/{}\n{}", &TOKEN[..30], &TOKEN[30..]).into_bytes(),
    ];
    for page in pages {
        let detail = detail_of(&page);
        assert!(!leaks(&detail), "{detail}");
        assert!(detail.starts_with("HTTP 404 (a ") && detail.ends_with("not shown)"), "{detail}");
    }
    // JSON that carries the token in disguise is left out whole.
    let json = serde_json::json!({"message": format!("no route for {percent}"), "split": wbr}).to_string();
    let detail = detail_of(json.as_bytes());
    assert_eq!(detail, "HTTP 404: (the answer quoted the webhook's token; not shown)");
    // Control characters (terminal escapes) never reach a dead letter's reason.
    let escapes = detail_of(b"{\"message\": \"\\u001b]0;owned\\u0007\\u001b[2J\"}");
    assert!(!escapes.chars().any(char::is_control), "{escapes:?}");
}

#[test]
fn a_deleted_or_locked_thread_is_told_apart_from_a_deleted_webhook() {
    let none = HeaderMap::new();
    let unknown_channel = br#"{"message": "Unknown Channel", "code": 10003}"#;
    assert!(matches!(
        classify(StatusCode::NOT_FOUND, &none, unknown_channel),
        Outcome::ThreadUnusable { status: 404, locked: false, .. }
    ));
    for (status, body) in [
        (StatusCode::FORBIDDEN, &br#"{"message": "Thread is locked", "code": 160005}"#[..]),
        (StatusCode::BAD_REQUEST, &br#"{"message": "Thread is archived", "code": 50083}"#[..]),
    ] {
        assert!(matches!(classify(status, &none, body), Outcome::ThreadUnusable { locked: true, .. }), "{status}");
    }
    let unknown_webhook = br#"{"message": "Unknown Webhook", "code": 10015}"#;
    assert!(matches!(classify(StatusCode::NOT_FOUND, &none, unknown_webhook), Outcome::Gone { .. }));
    let forum =
        br#"{"message": "Webhooks posted to forum channels must have a thread_name or thread_id", "code": 220001}"#;
    let Outcome::Gone { status: 400, detail } = classify(StatusCode::BAD_REQUEST, &none, forum) else {
        panic!("a forum webhook without forum mode refuses every message: pause, do not dead-letter")
    };
    assert!(detail.contains("forum = true"), "{detail}");
    assert!(detail.contains("an admin's own webhook"), "owner destinations cannot be forums: {detail}");
    for (code, hint) in [(220002, "thread_id"), (220003, "not a forum"), (40066, "moderators"), (40067, "a tag")] {
        let body = format!(r#"{{"message": "refused", "code": {code}}}"#);
        let Outcome::Gone { status: 400, detail } = classify(StatusCode::BAD_REQUEST, &none, body.as_bytes()) else {
            panic!("{code} refuses every message of the destination alike: pause, do not dead-letter")
        };
        assert!(detail.contains(hint), "{code}: {detail}");
    }
    let other = br#"{"message": "Invalid Form Body", "code": 50035}"#;
    assert!(matches!(classify(StatusCode::BAD_REQUEST, &none, other), Outcome::Rejected { .. }));
}

#[test]
fn a_post_title_automod_blocked_is_told_apart_from_a_refused_message() {
    let none = HeaderMap::new();
    let title = br#"{"message": "Title was blocked by automatic moderation", "code": 200001}"#;
    let Outcome::TitleBlocked { detail } = classify(StatusCode::BAD_REQUEST, &none, title) else {
        panic!("another title may pass: not a dead letter")
    };
    assert!(detail.contains("200001"), "{detail}");
    let message = br#"{"message": "Message was blocked by automatic moderation", "code": 200000}"#;
    assert!(matches!(classify(StatusCode::BAD_REQUEST, &none, message), Outcome::Rejected { status: 400, .. }));
}

#[test]
fn reads_the_created_posts_id_from_the_answer() {
    assert_eq!(created_channel_id(br#"{"id": "1", "channel_id": "1300000000000000000"}"#), Some(1300000000000000000));
    for body in [&br#"{"channel_id": 5}"#[..], b"{}", b"not json", br#"{"channel_id": "-1"}"#, b""] {
        assert_eq!(created_channel_id(body), None);
    }
}
