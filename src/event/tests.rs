//! The tests of parsing and normalising every panel's notifications.

use super::*;
use serde_json::json;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
}

fn one(value: Value) -> Result<Event, String> {
    Event::from_value(value, now(), None)
}

#[test]
fn accepts_an_array_or_a_single_object() {
    let batch = parse_batch(br#"[{"action":"user_created","username":"a"}]"#, now(), None).unwrap();
    assert_eq!(batch.events.len(), 1);
    let batch = parse_batch(br#"{"action":"user_created","username":"a"}"#, now(), None).unwrap();
    assert_eq!(batch.events.len(), 1);
}

#[test]
fn refuses_bodies_that_are_not_batches() {
    assert!(matches!(parse_batch(b"hello", now(), None), Err(BodyError::NotJson(_))));
    assert!(matches!(parse_batch(b"[{", now(), None), Err(BodyError::NotJson(_))));
    assert!(matches!(parse_batch(b"42", now(), None), Err(BodyError::NotEventOrBatch("a number"))));
}

#[test]
fn describes_the_first_hundred_bad_elements_and_counts_the_rest() {
    let body = format!("[{}]", vec!["{}"; 1000].join(","));
    let batch = parse_batch(body.as_bytes(), now(), None).unwrap();
    assert_eq!(batch.rejected_total, 1000);
    assert_eq!(batch.rejected.len(), REJECTIONS_SHOWN);
    assert_eq!(batch.rejected.last().unwrap().index, REJECTIONS_SHOWN - 1);
    assert!(matches!(parse_batch(b"[{}] trailing", now(), None), Err(BodyError::NotJson(_))));
    assert!(matches!(parse_batch(b"  []", now(), None), Ok(Batch { rejected_total: 0, .. })));
}

#[test]
fn rejects_bad_elements_and_keeps_good_ones() {
    let body = br#"[{"action":"user_created","username":"a"}, 5, {"username":"b"}, {"action":7},
                    {"action":"x","user":"nope"}, {"action":"user_deleted","username":"c"}]"#;
    let batch = parse_batch(body, now(), None).unwrap();
    assert_eq!(batch.events.iter().map(|e| e.username.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    let indexes: Vec<usize> = batch.rejected.iter().map(|r| r.index).collect();
    assert_eq!(indexes, [1, 2, 3, 4]);
    assert_eq!(batch.rejected[1].error, "missing `action`");
}

#[test]
fn takes_the_username_from_the_user_when_absent() {
    let event = one(json!({"action":"user_deactivated","user":{"username":"kate"}})).unwrap();
    assert_eq!(event.username, "kate");
}

#[test]
fn normalises_expire_from_int_or_iso() {
    for (expire, expected) in [
        (json!(1798393156), Some(1798393156)),
        (json!("2026-01-31T20:30:00Z"), Some(1769891400)),
        (json!("2026-01-31T20:30:00"), Some(1769891400)),
        (json!("2026-01-31T23:30:00+03:00"), Some(1769891400)),
        (json!("2026-01-31T20:30:00.123456"), Some(1769891400)),
        (json!(null), None),
        (json!("soon"), None),
    ] {
        let event = one(json!({"action":"a","user":{"expire": expire}})).unwrap();
        assert_eq!(event.user.unwrap().expire, expected, "{expire}");
    }
}

#[test]
fn removes_every_secret_at_any_depth() {
    let event = one(json!({
        "action": "user_created",
        "by": {"username": "root", "telegram_id": 1, "discord_webhook": "https://discord.com/api/webhooks/1/x"},
        "user": {
            "username": "u", "links": ["vless://x"], "subscription_url": "/sub/x",
            "proxies": {"vless": {"id": "x"}}, "proxy_settings": {}, "key": "k",
            "next_plan": {"nested": {"subscription_url": "/sub/y"}},
            "admin": {"username": "owner", "discord_webhook": "https://discord.com/api/webhooks/2/y"}
        }
    }))
    .unwrap();
    let context = serde_json::to_string(&event).unwrap();
    for secret in
        ["links", "subscription_url", "proxies", "proxy_settings", "\"key\"", "telegram_id", "discord_webhook"]
    {
        assert!(!context.contains(secret), "{secret} in {context}");
    }
    assert_eq!(event.owner_webhook.as_deref(), Some("https://discord.com/api/webhooks/2/y"));
    assert_eq!(event.admin.unwrap().username.as_deref(), Some("owner"));
}

#[test]
fn a_deleted_users_webhook_is_the_acting_admins() {
    let event =
        one(json!({"action":"user_deleted","by":{"discord_webhook":"https://discord.com/api/webhooks/3/z"}})).unwrap();
    assert_eq!(event.owner_webhook.as_deref(), Some("https://discord.com/api/webhooks/3/z"));
}

#[test]
fn derives_a_status_from_marzneshin_flags() {
    let flags = |enabled, expired, limited, activated| {
        let user = json!({"enabled":enabled,"expired":expired,"data_limit_reached":limited,"activated":activated});
        one(json!({"action":"a","user":user})).unwrap().user.unwrap().status.unwrap()
    };
    assert_eq!(flags(false, true, true, true), "disabled");
    assert_eq!(flags(true, true, false, true), "expired");
    assert_eq!(flags(true, false, true, true), "limited");
    assert_eq!(flags(true, false, false, false), "active", "not pushed to the nodes is not on hold");
    assert_eq!(flags(true, false, false, true), "active");
}

#[test]
fn a_marzneshin_cut_off_is_presented_as_limited_or_expired_keeping_its_own_name() {
    let deactivated = |by: Value, expired: bool, limited: bool| {
        let user = json!({"username":"u","enabled":true,"expired":expired,"data_limit_reached":limited});
        one(json!({"created_at":1.0,"action":"user_deactivated","by":by,"user":user})).unwrap()
    };
    let limited = deactivated(json!(null), false, true);
    assert_eq!(
        (limited.action.as_str(), limited.original_action.as_ref().map(Action::as_str)),
        ("user_limited", Some("user_deactivated"))
    );
    assert_eq!(limited.action_names().collect::<Vec<_>>(), ["user_limited", "user_deactivated"]);
    assert_eq!(deactivated(json!(null), true, false).action.as_str(), "user_expired");
    let by_admin = deactivated(json!({"username":"boss"}), true, false);
    assert_eq!((by_admin.action.as_str(), by_admin.original_action), ("user_deactivated", None));
    let context = serde_json::to_value(&limited).unwrap();
    assert_eq!(context["original_action"], "user_deactivated", "templates see the panel's name");
}

#[test]
fn a_pasarguard_reset_without_by_is_a_next_plan() {
    let reset = |by: Option<Value>, user: Value| {
        let mut value = json!({"action":"data_usage_reset","username":"u","enqueued_at":1.0,"tries":0,"user":user});
        if let Some(by) = by {
            value["by"] = by;
        }
        let event = one(value).unwrap();
        (event.action.to_string(), event.original_action.map(|a| a.to_string()))
    };
    let pasarguard = json!({"id": 1, "username": "u"});
    assert_eq!(reset(None, pasarguard.clone()), ("data_reset_by_next".into(), Some("data_usage_reset".into())));
    assert_eq!(reset(Some(json!({"id": 1, "username": "system"})), pasarguard.clone()).0, "data_usage_reset");
    assert_eq!(reset(Some(json!({"id": 1, "username": "owner"})), pasarguard).0, "data_usage_reset");
    assert_eq!(reset(None, json!({"username": "u", "proxies": {}})).0, "data_usage_reset", "only PasarGuard");
}

#[test]
fn a_marzneshin_start_on_first_use_user_is_on_hold_with_marzbans_fields() {
    let user = json!({"enabled": true, "expired": false, "data_limit_reached": false, "activated": true,
                      "expire_strategy": "start_on_first_use", "expire_date": null,
                      "usage_duration": 604800, "activation_deadline": "2026-12-08T01:01:00"});
    let user = one(json!({"action": "user_created", "user": user})).unwrap().user.unwrap();
    assert_eq!(user.status.as_deref(), Some("on_hold"));
    assert_eq!(user.on_hold_expire_duration, Some(604800));
    assert_eq!(user.on_hold_timeout, Some(1_796_691_660), "2026-12-08T01:01:00, UTC");
    assert_eq!(user.expire, None);
}

#[test]
fn computes_days_left_and_remaining_traffic() {
    let in_days = |days: i64| now().unix_timestamp() + days * 86_400 + 3_600;
    let event =
        one(json!({"action":"a","user":{"expire": in_days(3), "data_limit": 1000, "used_traffic": 300}})).unwrap();
    assert_eq!((event.days_left, event.remaining), (Some(3), Some(700)));
    let sent = one(json!({"action":"reached_days_left","days_left":2,"user":{"expire": in_days(3)}})).unwrap();
    assert_eq!(sent.days_left, Some(2), "the panel's own count wins");
    let expired =
        one(json!({"action":"a","user":{"expire": in_days(-5), "data_limit": 10, "used_traffic": 50}})).unwrap();
    assert_eq!((expired.days_left, expired.remaining), (Some(0), Some(0)));
    let unlimited = one(json!({"action":"a","user":{"expire": null, "data_limit": 0}})).unwrap();
    assert_eq!((unlimited.days_left, unlimited.remaining), (None, None));
    let absurd =
        one(json!({"action":"a","user":{"expire": i64::MIN, "data_limit": i64::MAX, "used_traffic": i64::MIN}}))
            .unwrap();
    assert_eq!((absurd.days_left, absurd.remaining), (Some(0), Some(i64::MAX)), "clamped, no overflow");
    let far =
        one(json!({"action":"a","user":{"expire": i64::MAX, "data_limit": 1, "used_traffic": i64::MAX}})).unwrap();
    assert_eq!((far.days_left, far.remaining), (Some((i64::MAX - now().unix_timestamp()) / 86_400), Some(0)));
    let negative = one(json!({"action":"reached_days_left","days_left":-3})).unwrap();
    assert_eq!(negative.days_left, Some(0));
}

#[test]
fn what_a_card_shows_is_what_rules_see() {
    // PasarGuard's real 60 % and 110 % warnings.
    let percent = |p: f64| one(json!({"action":"reached_usage_percent","used_percent":p})).unwrap().used_percent;
    assert_eq!(percent(59.9999999627471), Some(60.0));
    assert_eq!(percent(109.9999999627471), Some(110.0));
    assert_eq!(percent(87.456), Some(87.46));
    // Marzneshin warns 3 days (plus up to 30 s) ahead; a second late or a skewed clock is still 3.
    let days = |seconds: i64| {
        let expire = now().unix_timestamp() + seconds;
        one(json!({"created_at":1.0,"action":"reached_days_left","user":{"expire_date":expire}})).unwrap().days_left
    };
    assert_eq!(days(3 * 86_400 - 1), Some(3));
    assert_eq!(days(3 * 86_400 + 30), Some(3));
    assert_eq!(days(3 * 86_400 - 12 * 3600 - 1), Some(2));
    // A hold end that is no time is left out, not a failed template.
    let hold = |value: Value| {
        let user = json!({"status":"on_hold","on_hold_timeout":value});
        one(json!({"action":"user_created","username":"u","user":user})).unwrap().user.unwrap().on_hold_timeout
    };
    assert_eq!(hold(json!("garbage")), None);
    assert_eq!(hold(json!("2026-12-08T01:01:00Z")), Some(1_796_691_660));
}

#[test]
fn a_pasarguard_event_happened_when_it_was_queued_if_that_is_plausible() {
    let at = |family_key: &str, enqueued_at: Value| {
        let mut value = json!({"action":"user_enabled","username":"u","enqueued_at":enqueued_at,"tries":0});
        value[family_key] = json!({"id": 1});
        let event = one(value).unwrap();
        assert_eq!(event.received_at, now());
        event.event_time.unix_timestamp_nanos()
    };
    let received = now().unix_timestamp_nanos();
    let second = 1_000_000_000;
    assert_eq!(at("user", json!(1_799_999_910.25)), received - 89_750_000_000, "90 s in the queue");
    assert_eq!(at("by", json!(1_800_000_000 - 14 * 60)), received - 14 * 60 * second);
    assert_eq!(at("user", json!(1_800_000_030.0)), received, "a panel clock 30 s ahead: the receive time");
    for implausible in [json!(1_800_000_061.0), json!(1_800_000_000 - 16 * 60), json!(1e300), json!(-1e300), json!("x")]
    {
        assert_eq!(at("user", implausible.clone()), received, "{implausible}: the receive time");
    }
    let marzban = one(json!({"action":"a","username":"u","enqueued_at":1_799_999_990.0,"tries":0})).unwrap();
    assert_eq!(marzban.event_time, now(), "Marzban's enqueued_at is the panel's start time");
}

#[test]
fn days_left_are_counted_from_when_the_event_was_received() {
    // Marzneshin's days-left task fires when the expiry is 3 days and up to 30 s away, and
    // sends no count; a day later the same body would count 2.
    let warning = json!({"created_at":1.0,"action":"reached_days_left","user":{"expire_date":"2027-01-18T08:00:20"}});
    let then = Event::from_value(warning.clone(), now(), None).unwrap();
    assert_eq!(then.days_left, Some(3));
    let a_day_later = Event::from_value(warning, now() + time::Duration::DAY, None).unwrap();
    assert_eq!(a_day_later.days_left, Some(2));
    assert_eq!(serde_json::to_value(&then).unwrap()["days_left"], 3, "kept with the event");
}

#[test]
fn computes_the_usage_percentage_of_a_warning_without_one() {
    let warning = |action: &str, used_percent: Value, used: Value, limit: Value| {
        let user = json!({"used_traffic": used, "data_limit": limit});
        one(json!({"created_at":1.0,"action":action,"used_percent":used_percent,"user":user})).unwrap().used_percent
    };
    assert_eq!(warning("reached_usage_percent", json!(null), json!(805306368), json!(1073741824)), Some(75.0));
    assert_eq!(warning("reached_usage_percent", json!(87.89), json!(1), json!(100)), Some(87.89), "the panel's wins");
    assert_eq!(warning("reached_usage_percent", json!(null), json!(-5), json!(100)), Some(0.0));
    assert_eq!(warning("reached_usage_percent", json!(null), json!(5), json!(null)), None, "unlimited");
    assert_eq!(warning("reached_usage_percent", json!(null), json!(i64::MAX), json!(1)), Some(i64::MAX as f64 * 100.0));
    assert_eq!(warning("user_updated", json!(null), json!(50), json!(100)), None, "only for the warning");
}

#[test]
fn tolerates_wrong_types_in_detail_fields() {
    let event =
        one(json!({"action":"a","used_percent":"x","days_left":[1],"user":{"used_traffic":"lots","note":5}})).unwrap();
    assert_eq!(event.used_percent, None);
    assert_eq!(event.days_left, None);
    let user = event.user.unwrap();
    assert_eq!(user.used_traffic, None);
    assert_eq!(user.note, None);
}

#[test]
fn a_resend_has_the_same_fingerprint() {
    let first =
        one(json!({"action":"a","username":"u","tries":0,"send_at":1.0,"user":{"subscription_url":"/sub/1"}})).unwrap();
    let resent =
        one(json!({"action":"a","username":"u","tries":1,"send_at":2.0,"user":{"subscription_url":"/sub/1"}})).unwrap();
    // The same change made again later: the panel built a new subscription token for it.
    let again =
        one(json!({"action":"a","username":"u","tries":0,"send_at":1.0,"user":{"subscription_url":"/sub/2"}})).unwrap();
    let other = one(json!({"action":"a","username":"v","tries":0})).unwrap();
    assert_eq!(first.fingerprint, resent.fingerprint);
    assert_ne!(first.fingerprint, again.fingerprint);
    assert_ne!(first.fingerprint, other.fingerprint);
    let other_panel = Event::from_value(json!({"action":"a","username":"u"}), now(), Some("eu1")).unwrap();
    let same_panel = Event::from_value(json!({"action":"a","username":"u"}), now(), None).unwrap();
    assert_ne!(other_panel.fingerprint, same_panel.fingerprint);
}

#[test]
fn tells_the_panel_families_apart_by_their_shape() {
    let family = |value: Value| one(value).unwrap().family;
    let envelope = json!({"action":"a","username":"u","enqueued_at":1.0,"send_at":1.0,"tries":0});
    let mut marzban = envelope.clone();
    marzban["user"] = json!({"username":"u","proxies":{},"expire":1});
    marzban["by"] = json!({"username":"root","is_sudo":true});
    assert_eq!(family(marzban), Family::Marzban);
    let mut pasarguard = envelope.clone();
    pasarguard["user"] = json!({"id":3,"username":"u","proxy_settings":{}});
    assert_eq!(family(pasarguard), Family::PasarGuard);
    let mut pasarguard_deleted = envelope.clone();
    pasarguard_deleted["by"] = json!({"id":1,"username":"owner"});
    assert_eq!(family(pasarguard_deleted), Family::PasarGuard);
    let marzneshin = json!({"created_at":1.0,"action":"a","by":null,"user":{"id":1,"owner_username":"boss"}});
    assert_eq!(family(marzneshin), Family::Marzneshin);
    assert_eq!(family(json!({"action":"a","username":"u"})), Family::Marzban, "nothing to tell: Marzban");
}

#[test]
fn only_panels_that_re_send_get_a_fingerprint() {
    let marzneshin = json!({"created_at":1.0,"action":"user_disabled","by":null,"user":{"username":"u","key":"k"}});
    assert_eq!(one(marzneshin).unwrap().fingerprint, None, "Marzneshin never re-sends");
    let pasarguard = |enqueued_at: f64, tries: i64| {
        let value = json!({"action":"user_disabled","username":"u","enqueued_at":enqueued_at,
                           "send_at":enqueued_at + tries as f64 * 180.0,"tries":tries,"user":{"id":1}});
        one(value).unwrap().fingerprint.expect("PasarGuard re-sends")
    };
    assert_eq!(pasarguard(10.0, 0), pasarguard(10.0, 1), "a retry is the same notification");
    assert_ne!(pasarguard(10.0, 0), pasarguard(11.0, 0), "a later enqueue is another event");
}

#[test]
fn a_huge_element_is_rejected_unread() {
    let huge =
        format!("{{\"action\":\"user_created\",\"username\":\"u\",\"note\":[{}]}}", vec!["0"; 600_000].join(","));
    let good = r#"{"action":"user_created","username":"v"}"#;
    let batch = parse_batch(format!("[{huge},{good}]").as_bytes(), now(), None).unwrap();
    assert_eq!(batch.events.len(), 1, "the good element is kept");
    assert_eq!(batch.rejected[0].index, 0);
    assert!(batch.rejected[0].error.contains("larger than 1048576 bytes"), "{:?}", batch.rejected);
    let alone = parse_batch(huge.as_bytes(), now(), None).unwrap();
    assert_eq!((alone.events.len(), alone.rejected_total), (0, 1));
    assert!(matches!(parse_batch(b"\"text\"", now(), None), Err(BodyError::NotEventOrBatch("a string"))));
    assert!(matches!(parse_batch(b" null", now(), None), Err(BodyError::NotEventOrBatch("null"))));
}

#[test]
fn keeps_the_protocol_names_and_nothing_else_of_the_proxy_settings() {
    let marzban = one(json!({"action": "user_created", "username": "a", "user": {
        "proxies": {"vless": {"id": "3182c79c-d828", "flow": ""}, "vmess": {}, "Not A Protocol!": {"id": "x"}},
    }}))
    .unwrap();
    assert_eq!(marzban.user.as_ref().unwrap().protocols, ["vless", "vmess"]);
    let context = serde_json::to_string(&marzban).unwrap();
    assert!(!context.contains("3182c79c") && !context.contains("proxies"), "{context}");

    let pasarguard = one(json!({"action": "user_created", "username": "a", "user": {"id": 1, "proxy_settings": {
        "trojan": {"password": "TROJAN-SECRET"},
        "wireguard": {"private_key": null, "public_key": null, "peer_ips": []},
    }}}))
    .unwrap();
    assert_eq!(pasarguard.user.as_ref().unwrap().protocols, ["trojan"]);

    let inbounds_only =
        one(json!({"action": "user_created", "username": "a", "user": {"inbounds": {"shadowsocks": ["SS"]}}}));
    assert_eq!(inbounds_only.unwrap().user.unwrap().protocols, ["shadowsocks"]);
    let marzneshin = one(json!({"action": "user_created", "created_at": 1, "user": {"username": "a", "key": "k"}}));
    assert!(marzneshin.unwrap().user.unwrap().protocols.is_empty());
}

#[test]
fn tells_a_next_plans_expiry_as_a_length_from_one_as_a_date() {
    let plan = |expire: Value| {
        let user = json!({"next_plan": {"data_limit": 0, "expire": expire, "add_remaining_traffic": true}});
        one(json!({"action": "user_created", "username": "a", "user": user})).unwrap().user.unwrap().next_plan.unwrap()
    };
    let pasarguard = plan(json!(604_800));
    assert_eq!((pasarguard.expire_duration, pasarguard.expire_date), (Some(604_800), None));
    assert_eq!(pasarguard.data_limit, None, "0 is unlimited");
    assert!(pasarguard.add_remaining_traffic);
    let marzban = plan(json!(1_798_393_156));
    assert_eq!((marzban.expire_duration, marzban.expire_date), (None, Some(1_798_393_156)));
    let never = plan(Value::Null);
    assert_eq!((never.expire, never.expire_duration, never.expire_date), (None, None, None));
}

#[test]
fn names_are_cut_to_64_characters_on_a_character_boundary_with_a_marker() {
    let megabyte = "ж".repeat(500_000);
    let event = one(json!({"action": "user_disabled", "username": megabyte,
        "user": {"username": megabyte, "admin": {"username": megabyte}},
        "by": {"username": megabyte, "is_sudo": true}}))
    .unwrap();
    let cut = format!("{}…", "ж".repeat(NAME_MAX_CHARS - 1));
    assert_eq!(event.username, cut);
    let user = event.user.as_ref().unwrap();
    assert_eq!(user.username.as_deref(), Some(cut.as_str()));
    assert_eq!(user.admin.as_ref().unwrap().username.as_deref(), Some(cut.as_str()));
    assert_eq!(event.admin.as_ref().unwrap().username.as_deref(), Some(cut.as_str()));
    assert_eq!(event.by.as_ref().unwrap().username.as_deref(), Some(cut.as_str()));

    let marzneshin = one(json!({"action": "user_deactivated", "created_at": "2026-01-01T00:00:00",
        "user": {"username": "a", "owner_username": megabyte, "enabled": false}}))
    .unwrap();
    assert_eq!(marzneshin.admin.unwrap().username.as_deref(), Some(cut.as_str()));

    let exactly = "x".repeat(NAME_MAX_CHARS);
    assert_eq!(cut_name(exactly.clone()), exactly, "a name of 64 characters is kept whole");
    assert_eq!(cut_name("ali".into()), "ali");
}
