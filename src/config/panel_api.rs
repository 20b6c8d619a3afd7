//! `PANEL_API_*` (the panel's REST API) and `NODE_*` (node watch): node watch runs when
//! `PANEL_API_URL` is set, for the panel of `PANEL_NAME`.

use std::time::Duration;

use super::{invalid, parse_bool, parse_duration_in, Bounds, ConfigError, Env};
use crate::nodes::NodeWatchSettings;
use crate::panel::{parse_family, parse_url, Credentials, PanelApiSettings, Redacted, DEFAULT_TIMEOUT};

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
    let credentials = match (username, password, key) {
        (_, _, Some(key)) if !key.trim().is_empty() => Credentials::ApiKey(Redacted::new(key.trim())),
        (Some(username), Some(password), None) => {
            Credentials::Login { username: username.trim().to_owned(), password: Redacted::new(password) }
        }
        _ => {
            return Err(invalid(
                "PANEL_API_URL",
                "is set without credentials: set PANEL_API_USERNAME and PANEL_API_PASSWORD (a sudo admin), or \
                 PANEL_API_KEY (PasarGuard)",
            ))
        }
    };
    Ok(Some(PanelApiSettings {
        url,
        credentials,
        family: env.parse_or("PANEL_API_FAMILY", None, parse_family)?,
        insecure_tls: env.parse_or("PANEL_API_INSECURE_TLS", false, parse_bool)?,
        timeout: env.parse_or("PANEL_API_TIMEOUT", DEFAULT_TIMEOUT, |s| parse_duration_in(s, PANEL_API_TIMEOUT))?,
        label: label.map(str::to_owned),
    }))
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
}
