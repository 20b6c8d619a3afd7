//! `PANEL_API_*` (the panel's REST API), for the panel of `PANEL_NAME`: the bot's `/user` asks it.

use std::time::Duration;

use super::{invalid, parse_bool, parse_duration_in, Bounds, ConfigError, Env};
use crate::panel::{parse_family, parse_url, Credentials, PanelApiSettings, Redacted, DEFAULT_TIMEOUT};

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
    fn panel_api_settings_are_checked_and_named() {
        let api = [("PANEL_API_URL", "http://127.0.0.1:8000"), ("PANEL_API_USERNAME", "admin")];
        let with = |extra: &[(&str, &str)]| config(&[api.as_slice(), &[("PANEL_API_PASSWORD", "pw")], extra].concat());
        assert!(with(&[]).unwrap().panel_api.is_some());
        assert!(with(&[("PANEL_API_TIMEOUT", "5m")]).unwrap_err().starts_with("PANEL_API_TIMEOUT"));
        assert!(with(&[("PANEL_API_FAMILY", "xui")]).unwrap_err().starts_with("PANEL_API_FAMILY"));
        let no_password = config(&api).unwrap_err();
        assert!(no_password.starts_with("PANEL_API_URL") && no_password.contains("PANEL_API_PASSWORD"));
        let secret = config(&[("PANEL_API_URL", "http://admin:hunter2@panel"), ("PANEL_API_KEY", "k")]).unwrap_err();
        assert!(!secret.contains("hunter2"), "{secret}");
        assert!(config(&[("PANEL_API_KEY", "k")]).unwrap_err().starts_with("PANEL_API_URL"));
    }
}
