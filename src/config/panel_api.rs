//! `PANEL_API_*` (the panel's REST API) and `NODE_*` (node watch): node watch runs for each
//! panel with an API: the one of `PANEL_API_URL` (labelled `PANEL_NAME`), and each panel of the
//! routes file with `api_url` (labelled with its label).

use std::time::Duration;

use super::{invalid, parse_bool, parse_duration_in, Bounds, Config, ConfigError, Env};
use crate::nodes::NodeWatchSettings;
use crate::panel::{parse_family, parse_url, Credentials, PanelApiSettings, Redacted, DEFAULT_TIMEOUT};
use crate::routing::{PanelApiSpec, Routes};

/// `NODE_POLL_INTERVAL`: 5 s to 1 h. More often is load on the panel for nothing (it checks its
/// nodes itself every few seconds); less often, an outage is reported that much later.
pub const NODE_POLL: Bounds =
    Bounds { min: Duration::from_secs(5), max: Duration::from_secs(3600), zero_is_off: false };

/// `NODE_DOWN_AFTER`: 0 to 1 day (0: a node is reported at the first poll that finds it down).
pub const NODE_DOWN_AFTER: Bounds =
    Bounds { min: Duration::ZERO, max: Duration::from_secs(86_400), zero_is_off: false };

/// `PANEL_API_TIMEOUT`: 1 s to 2 min, for each call to the panel.
pub const PANEL_API_TIMEOUT: Bounds =
    Bounds { min: Duration::from_secs(1), max: Duration::from_secs(120), zero_is_off: false };

impl Config {
    /// Every panel with a REST API, one node watcher each: `PANEL_API_URL`'s first, then the
    /// routes file's.
    pub fn all_panel_apis(&self) -> impl Iterator<Item = &PanelApiSettings> {
        self.panel_api.iter().chain(&self.panel_apis)
    }
}

/// The panel API's settings, when `PANEL_API_URL` is set.
pub(super) fn panel_api(env: &Env, label: Option<&str>) -> Result<Option<PanelApiSettings>, ConfigError> {
    let username = env.get("PANEL_API_USERNAME");
    let password = env.value_or_file("PANEL_API_PASSWORD")?;
    let key = env.value_or_file("PANEL_API_KEY")?;
    let Some(url) = env.get("PANEL_API_URL") else {
        if username.is_some() || password.is_some() || key.is_some() {
            return Err(invalid("PANEL_API_URL", "is not set, but the panel API's credentials are"));
        }
        return Ok(None);
    };
    let url = parse_url(&url).map_err(|message| invalid("PANEL_API_URL", message))?;
    let credentials = credentials(username, password.map(Redacted::new), key.map(Redacted::new))
        .map_err(|()| invalid("PANEL_API_URL", NO_CREDENTIALS))?;
    Ok(Some(PanelApiSettings {
        url,
        credentials,
        family: env.parse_or("PANEL_API_FAMILY", None, parse_family)?,
        insecure_tls: env.parse_or("PANEL_API_INSECURE_TLS", false, parse_bool)?,
        timeout: env.parse_or("PANEL_API_TIMEOUT", DEFAULT_TIMEOUT, |s| parse_duration_in(s, PANEL_API_TIMEOUT))?,
        label: label.map(str::to_owned),
    }))
}

const NO_CREDENTIALS: &str = "is set without credentials: set PANEL_API_USERNAME and PANEL_API_PASSWORD (a sudo \
                              admin), or PANEL_API_KEY (PasarGuard)";

/// An API key when one is given, else a login; `Err` when neither is complete.
fn credentials(username: Option<String>, password: Option<Redacted>, key: Option<Redacted>) -> Result<Credentials, ()> {
    match (username, password, key) {
        (_, _, Some(key)) if !key.expose().trim().is_empty() => {
            Ok(Credentials::ApiKey(Redacted::new(key.expose().trim())))
        }
        (Some(username), Some(password), None) if !username.trim().is_empty() => {
            Ok(Credentials::Login { username: username.trim().to_owned(), password })
        }
        _ => Err(()),
    }
}

/// The routes file's panels with `api_url`, each checked as `PANEL_API_*` are. An API for the
/// label `PANEL_API_URL` already serves (`PANEL_NAME`) is refused: a label is one panel.
pub(super) fn panel_apis(
    default: Option<&PanelApiSettings>,
    routes: Option<&Routes>,
) -> Result<Vec<PanelApiSettings>, ConfigError> {
    let mut apis = Vec::new();
    for (label, spec) in routes.iter().flat_map(|routes| routes.panel_apis.iter()) {
        if default.is_some_and(|api| api.label.as_deref() == Some(label.as_str())) {
            return Err(invalid(
                "ROUTES_FILE",
                format!("panels.{label}.api_url: PANEL_API_URL already serves panel {label:?} (PANEL_NAME); set one"),
            ));
        }
        let api = from_routes(label, spec)?;
        // One panel under two labels would be watched twice (every node event sent twice), and
        // each label would take the other's stored state over by its URL (`Outbox::adopt_watch`).
        let same = |other: &PanelApiSettings| same_api(&other.url, &api.url);
        if let Some(other) = default.filter(|api| same(api)).map(|_| "PANEL_API_URL".to_owned()).or_else(|| {
            apis.iter()
                .find(|other| same(other))
                .map(|other| format!("panel {:?}", other.label.as_deref().unwrap_or("")))
        }) {
            return Err(invalid(
                "ROUTES_FILE",
                format!("panels.{label}.api_url: {other} already watches this API; one panel has one label"),
            ));
        }
        apis.push(api);
    }
    Ok(apis)
}

/// Whether two API URLs are one panel's, as the client calls it (without the trailing `/`).
fn same_api(a: &url::Url, b: &url::Url) -> bool {
    a.as_str().trim_end_matches('/') == b.as_str().trim_end_matches('/')
}

/// The settings of the routes file's `[panels.<label>]` `api_*` keys.
fn from_routes(label: &str, spec: &PanelApiSpec) -> Result<PanelApiSettings, ConfigError> {
    let problem = |key: &str, message: &str| invalid("ROUTES_FILE", format!("panels.{label}.{key} {message}"));
    let url = parse_url(&spec.url).map_err(|message| problem("api_url", &message))?;
    let credentials = credentials(spec.username.clone(), spec.password.clone(), spec.key.clone()).map_err(|()| {
        problem("api_url", "is set without credentials: set api_username and api_password (a sudo admin), or api_key")
    })?;
    let family = spec.family.as_deref().map(parse_family).transpose().map_err(|m| problem("api_family", &m))?;
    let timeout = spec.timeout.as_deref().map(|s| parse_duration_in(s, PANEL_API_TIMEOUT)).transpose();
    Ok(PanelApiSettings {
        url,
        credentials,
        family: family.flatten(),
        insecure_tls: spec.insecure_tls.unwrap_or(false),
        timeout: timeout.map_err(|m| problem("api_timeout", &m))?.unwrap_or(DEFAULT_TIMEOUT),
        label: Some(label.to_owned()),
    })
}

/// `NODE_POLL_INTERVAL` and `NODE_DOWN_AFTER`.
pub(super) fn node_watch(env: &Env) -> Result<NodeWatchSettings, ConfigError> {
    let defaults = NodeWatchSettings::default();
    Ok(NodeWatchSettings {
        poll_interval: env
            .parse_or("NODE_POLL_INTERVAL", defaults.poll_interval, |s| parse_duration_in(s, NODE_POLL))?,
        down_after: env.parse_or("NODE_DOWN_AFTER", defaults.down_after, |s| parse_duration_in(s, NODE_DOWN_AFTER))?,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::config::Config;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let mut vars: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.insert("DATA_DIR".into(), "/tmp".into());
        Config::from_vars(&vars).map_err(|err| err.to_string())
    }

    #[test]
    fn node_watch_settings_are_range_checked_and_named() {
        let api = [("PANEL_API_URL", "http://127.0.0.1:8000"), ("PANEL_API_USERNAME", "admin")];
        let with = |extra: &[(&str, &str)]| config(&[api.as_slice(), &[("PANEL_API_PASSWORD", "pw")], extra].concat());
        let ok = with(&[]).unwrap();
        assert_eq!(ok.node_watch.poll_interval.as_secs(), 30);
        assert!(with(&[("NODE_POLL_INTERVAL", "1s")]).unwrap_err().starts_with("NODE_POLL_INTERVAL"));
        assert!(with(&[("NODE_DOWN_AFTER", "2d")]).unwrap_err().starts_with("NODE_DOWN_AFTER"));
        assert!(with(&[("PANEL_API_FAMILY", "xui")]).unwrap_err().starts_with("PANEL_API_FAMILY"));
        let no_password = config(&api).unwrap_err();
        assert!(no_password.starts_with("PANEL_API_URL") && no_password.contains("PANEL_API_PASSWORD"));
        let secret = config(&[("PANEL_API_URL", "http://admin:hunter2@panel"), ("PANEL_API_KEY", "k")]).unwrap_err();
        assert!(!secret.contains("hunter2"), "{secret}");
        assert!(config(&[("PANEL_API_KEY", "k")]).unwrap_err().starts_with("PANEL_API_URL"));
    }

    fn with_routes(file: &str, pairs: &[(&str, &str)]) -> Result<Config, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("routes.toml");
        std::fs::write(&path, format!("{file}\n[[rules]]\nto = [\"default\"]\n")).unwrap();
        let hook = ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhooks/123456789012345678/tok");
        let mut vars = vec![("ROUTES_FILE", path.to_str().unwrap()), ("WEBHOOK_SECRET", "s"), hook];
        vars.extend_from_slice(pairs);
        config(&vars)
    }

    #[test]
    fn a_routes_file_panel_has_its_own_api_checked_and_named_where_it_is() {
        let file =
            "[panels.us]\napi_url = \"https://us.example.com\"\napi_username = \"admin\"\napi_password = \"pw-9\"\n\
                    api_timeout = \"30s\"\napi_insecure_tls = true\n[panels.asia]\nsecret = \"x\"\n";
        let ok =
            with_routes(file, &[("PANEL_API_URL", "http://127.0.0.1:1"), ("PANEL_API_KEY", "k"), ("PANEL_NAME", "eu")])
                .unwrap();
        let labels: Vec<Option<&str>> = ok.all_panel_apis().map(|api| api.label.as_deref()).collect();
        assert_eq!(labels, [Some("eu"), Some("us")]);
        let us = &ok.panel_apis[0];
        assert_eq!((us.timeout.as_secs(), us.insecure_tls), (30, true));
        assert!(!format!("{ok:?}").contains("pw-9"), "the password is redacted");
        assert!(ok.panels.iter().all(|(label, _)| label != "us"), "an API-only panel has no webhook path");

        let problem = |file: &str, pairs: &[(&str, &str)]| with_routes(file, pairs).unwrap_err();
        let no_credentials = problem("[panels.us]\napi_url = \"https://us.example.com\"\n", &[]);
        assert!(no_credentials.contains("panels.us.api_url is set without credentials"), "{no_credentials}");
        let timeout =
            problem("[panels.us]\napi_url = \"https://u.example\"\napi_key = \"k\"\napi_timeout = \"1h\"\n", &[]);
        assert!(timeout.starts_with("ROUTES_FILE") && timeout.contains("panels.us.api_timeout"), "{timeout}");
        let stray = problem("[panels.us]\nsecret = \"x\"\napi_key = \"k\"\n", &[]);
        assert!(stray.contains("panels.us: api_* keys without api_url"), "{stray}");
        let twice = [("PANEL_API_URL", "http://127.0.0.1:1"), ("PANEL_API_KEY", "k"), ("PANEL_NAME", "us")];
        let both = problem("[panels.us]\napi_url = \"https://u.example\"\napi_key = \"k\"\n", &twice);
        assert!(both.contains("PANEL_API_URL already serves panel \"us\""), "{both}");
    }

    #[test]
    fn one_panel_api_under_two_labels_is_refused() {
        // Two watchers of one panel would send every node event twice, and each would take the
        // other's stored state over by its URL at start.
        let twice = "[panels.us]\napi_url = \"https://panel.example.com/api-root/\"\napi_key = \"k\"\n\
                     [panels.eu]\napi_url = \"https://PANEL.example.com/api-root\"\napi_key = \"k\"\n";
        let err = with_routes(twice, &[]).unwrap_err();
        assert!(err.starts_with("ROUTES_FILE") && err.contains("panels.us.api_url") && err.contains("eu"), "{err}");
        let env = [("PANEL_API_URL", "https://panel.example.com/api-root"), ("PANEL_API_KEY", "k")];
        let err = with_routes("[panels.us]\napi_url = \"https://panel.example.com/api-root\"\napi_key = \"k\"\n", &env)
            .unwrap_err();
        assert!(err.contains("panels.us.api_url") && err.contains("PANEL_API_URL"), "{err}");
        let apart = "[panels.us]\napi_url = \"https://panel.example.com/a\"\napi_key = \"k\"\n\
                     [panels.eu]\napi_url = \"https://panel.example.com/b\"\napi_key = \"k\"\n";
        assert_eq!(with_routes(apart, &env).unwrap().all_panel_apis().count(), 3);
    }
}
