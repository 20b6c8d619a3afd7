//! The HTTP client for one panel: every call has the settings' timeout (connection and the whole
//! answer), no redirect is followed (it could carry the JWT to another host), an answer is read up
//! to [`MAX_ANSWER_BYTES`], and the JWT lives in memory only: renewed [`RENEW_BEFORE`] before the
//! expiry it states, and once on a `401` (the panel restarted with a new secret key, or an admin
//! revoked it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

use super::answers::{self, CoreStatus, Node, MAX_NODES};
use super::scrub::scrub;
use super::{Credentials, Family, PanelApiSettings, PanelError, Redacted};

/// The largest answer read from the panel: a thousand nodes are about 400 KiB.
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// A JWT is renewed this long before the expiry it states.
pub const RENEW_BEFORE: Duration = Duration::from_secs(120);

/// A new JWT is used at least this long, whatever expiry it states: one that states a past
/// expiry (the panel's clock behind the relay's, or a lifetime under [`RENEW_BEFORE`]) would
/// otherwise mean a login before every call. A token the panel no longer takes gets a `401`,
/// which logs in again anyway.
pub const MIN_TOKEN_USE: Duration = Duration::from_secs(60);

/// How long an idle connection to the panel is kept: less than uvicorn's keep-alive (5 s).
const POOL_IDLE: Duration = Duration::from_secs(2);

/// Nodes asked for per page (PasarGuard's `limit`, Marzneshin's `size`, whose default maximum is 100).
const PAGE_SIZE: usize = 100;

/// The client of one panel's API. Cheap to share behind an `Arc`; calls may run concurrently.
pub struct PanelClient {
    http: reqwest::Client,
    base: String,
    credentials: Credentials,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    token: Option<Token>,
    /// Set, or learnt from the login path and the node list's shape.
    family: Option<Family>,
}

struct Token {
    value: Redacted,
    /// When to log in again: [`RENEW_BEFORE`] before the token's `exp`; `None` when it states none.
    renew_at: Option<SystemTime>,
}

impl PanelClient {
    /// A client for the panel of `settings`; fails only when no TLS backend can be set up.
    pub fn new(settings: &PanelApiSettings) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("marzban-discord-relay/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.timeout)
            .timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            // Connections are reused within a round (login, nodes, core), not across rounds: the
            // panel's server closes an idle one after 5 s (uvicorn), and a poll that picks it up as
            // it closes fails ("connection closed before message completed").
            .pool_idle_timeout(POOL_IDLE)
            .danger_accept_invalid_certs(settings.insecure_tls)
            .build()
            .map_err(|err| format!("cannot build the panel's HTTP client: {err}"))?;
        Ok(Self {
            http,
            base: settings.url.as_str().trim_end_matches('/').to_owned(),
            credentials: settings.credentials.clone(),
            state: Mutex::new(State { token: None, family: settings.family }),
        })
    }

    /// The panel's family, once set or detected.
    pub async fn family(&self) -> Option<Family> {
        self.state.lock().await.family
    }

    /// Every node of the panel (at most [`MAX_NODES`]), following PasarGuard's and Marzneshin's
    /// pages.
    pub async fn nodes(&self) -> Result<Vec<Node>, PanelError> {
        let mut nodes = Vec::new();
        for page in 0..MAX_NODES.div_ceil(PAGE_SIZE) {
            let path = match self.family().await {
                Some(Family::PasarGuard) => format!("/api/nodes?offset={}&limit={PAGE_SIZE}", page * PAGE_SIZE),
                Some(Family::Marzneshin) => format!("/api/nodes?page={}&size={PAGE_SIZE}", page + 1),
                _ => "/api/nodes".to_owned(),
            };
            let answer = self.get(&path, "/api/nodes").await?;
            let (found, family, total) =
                answers::nodes_page(&answer).map_err(|reason| unreadable("/api/nodes", reason))?;
            self.learn(family).await;
            let last_page = found.len() < PAGE_SIZE || family == Family::Marzban;
            nodes.extend(found);
            let all = total.is_some_and(|total| nodes.len() as u64 >= total);
            if last_page || all || nodes.len() >= MAX_NODES {
                break;
            }
        }
        nodes.truncate(MAX_NODES);
        Ok(nodes)
    }

    /// The panel's core, for the families that have one on the panel (Marzban: `GET /api/core`);
    /// `None` for the others, and while the family is unknown.
    pub async fn core(&self) -> Result<Option<CoreStatus>, PanelError> {
        if self.family().await != Some(Family::Marzban) {
            return Ok(None);
        }
        let answer = self.get("/api/core", "/api/core").await?;
        answers::core_status(&answer).map(Some).map_err(|reason| unreadable("/api/core", reason))
    }

    /// `GET path` with the credentials, logging in again once on a `401`.
    async fn get(&self, path: &str, name: &'static str) -> Result<Value, PanelError> {
        self.call(Method::GET, path, None, name).await
    }

    /// `method path` with the credentials and, when given, a JSON body; logs in again once on a
    /// `401`. `name` stands for the path in errors (a username in the path is not repeated there).
    pub(super) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        name: &'static str,
    ) -> Result<Value, PanelError> {
        self.call_capped(method, path, body, name, MAX_ANSWER_BYTES).await
    }

    /// [`PanelClient::call`], reading at most `max_bytes` of the answer (a user's answer is far
    /// smaller than a list of a thousand nodes).
    pub(super) async fn call_capped(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        name: &'static str,
        max_bytes: usize,
    ) -> Result<Value, PanelError> {
        let mut renewed = false;
        loop {
            let mut request = self.http.request(method.clone(), format!("{}{path}", self.base));
            if let Some(body) = body {
                request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string());
            }
            let request = self.authorize(request).await?;
            let response = request.send().await.map_err(unreachable)?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                if matches!(self.credentials, Credentials::Login { .. }) && !renewed {
                    self.state.lock().await.token = None;
                    renewed = true;
                    continue;
                }
                return Err(PanelError::LoginRefused(status.as_u16()));
            }
            if !status.is_success() {
                return Err(PanelError::Status { status: status.as_u16(), path: name });
            }
            return read_json(response, name, max_bytes).await;
        }
    }

    /// `request` with the API key, or with a JWT (logging in first when none is held or it is due
    /// for renewal).
    async fn authorize(&self, request: RequestBuilder) -> Result<RequestBuilder, PanelError> {
        let (username, password) = match &self.credentials {
            Credentials::ApiKey(key) => return Ok(request.header("X-Api-Key", key.expose())),
            Credentials::Login { username, password } => (username, password),
        };
        let mut state = self.state.lock().await;
        let fresh = state.token.as_ref().is_some_and(|t| t.renew_at.is_none_or(|at| SystemTime::now() < at));
        if !fresh {
            state.token = None;
            let token = self.login(&mut state, username, password).await?;
            state.token = Some(token);
        }
        let token = state.token.as_ref().map(|t| t.value.expose()).unwrap_or_default();
        Ok(request.bearer_auth(token))
    }

    /// Logs in with the password form at the family's path (trying Marzneshin's when the family is
    /// unknown and Marzban's path is not there).
    async fn login(&self, state: &mut State, username: &str, password: &Redacted) -> Result<Token, PanelError> {
        let form = [("grant_type", "password"), ("username", username), ("password", password.expose())];
        let paths: &[(&str, Option<Family>)] = match state.family {
            Some(Family::Marzneshin) => &[("/api/admins/token", None)],
            Some(_) => &[("/api/admin/token", None)],
            None => &[("/api/admin/token", None), ("/api/admins/token", Some(Family::Marzneshin))],
        };
        for (path, learnt) in paths {
            let response =
                self.http.post(format!("{}{path}", self.base)).form(&form).send().await.map_err(unreachable)?;
            let status = response.status();
            if status == StatusCode::NOT_FOUND || status == StatusCode::METHOD_NOT_ALLOWED {
                continue;
            }
            if status.is_client_error() {
                return Err(PanelError::LoginRefused(status.as_u16()));
            }
            if !status.is_success() {
                return Err(PanelError::Status { status: status.as_u16(), path: "the login" });
            }
            let answer = read_json(response, "the login", MAX_ANSWER_BYTES).await?;
            let value = answers::access_token(&answer).ok_or_else(|| unreadable("the login", "no access_token"))?;
            if learnt.is_some() {
                state.family = *learnt;
            }
            let renew_at = renewal(jwt_expiry(&value), SystemTime::now());
            return Ok(Token { value: Redacted::new(value), renew_at });
        }
        Err(PanelError::Status { status: 404, path: "the login" })
    }

    async fn learn(&self, family: Family) {
        let mut state = self.state.lock().await;
        // A login at Marzban's path does not tell Marzban from PasarGuard; the node list does.
        if state.family.is_none() || state.family == Some(Family::Marzban) {
            state.family = Some(family);
        }
    }
}

/// The answer's JSON, read up to `max_bytes`.
async fn read_json(mut response: reqwest::Response, name: &'static str, max_bytes: usize) -> Result<Value, PanelError> {
    if response.content_length().is_some_and(|length| length > max_bytes as u64) {
        return Err(PanelError::TooLarge(name, max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
        if body.len().saturating_add(chunk.len()) > max_bytes {
            return Err(PanelError::TooLarge(name, max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    // A success without a body (PasarGuard's 204 to a DELETE) says only that it was done.
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body).map_err(|err| unreadable(name, err.to_string()))
}

pub(super) fn unreadable(path: &'static str, reason: impl Into<String>) -> PanelError {
    let reason: String = scrub(&reason.into()).chars().take(200).collect();
    PanelError::Unreadable { path, reason }
}

/// What went wrong, without the URL reqwest puts in its message: the kind, and the innermost
/// cause (redacted, cut).
fn unreachable(err: reqwest::Error) -> PanelError {
    let err = err.without_url();
    let kind = if err.is_timeout() {
        return PanelError::Unreachable("timed out".to_owned());
    } else if err.is_connect() {
        "cannot connect"
    } else if err.is_body() || err.is_decode() {
        "the answer broke off"
    } else {
        "the request failed"
    };
    let mut cause: &dyn std::error::Error = &err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let cause: String = scrub(&cause.to_string()).chars().take(200).collect();
    PanelError::Unreachable(format!("{kind} ({cause})"))
}

/// The `exp` a JWT states, without checking its signature (the panel checks it; the relay only
/// wants to know when to log in again).
fn jwt_expiry(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&base64url(payload)?).ok()?;
    let exp = claims.get("exp")?.as_f64().filter(|exp| exp.is_finite() && *exp > 0.0)?;
    UNIX_EPOCH.checked_add(Duration::try_from_secs_f64(exp).ok()?)
}

/// When to log in again for a token that expires at `exp` (`None`: on a `401` only), at `now`.
fn renewal(exp: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    let exp = exp?;
    let due = exp.checked_sub(RENEW_BEFORE).unwrap_or(exp);
    Some(now.checked_add(MIN_TOKEN_USE).map_or(due, |earliest| due.max(earliest)))
}

/// Decodes unpadded base64url; `None` on any other character.
fn base64url(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' | b'+' => Some(62),
        b'_' | b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.trim_end_matches('=').bytes() {
        buffer = (buffer << 6) | u32::from(value(c)?);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_stating_a_past_expiry_is_still_used_for_a_while_not_renewed_before_every_call() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let past = renewal(Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)), now).unwrap();
        assert_eq!(past, now + MIN_TOKEN_USE);
        let day = renewal(Some(now + Duration::from_secs(86_400)), now).unwrap();
        assert_eq!(day, now + Duration::from_secs(86_400) - RENEW_BEFORE);
        assert_eq!(renewal(None, now), None);
    }

    #[test]
    fn reads_the_expiry_of_a_marzban_jwt() {
        // {"sub":"admin","access":"sudo","iat":1700000000,"exp":1800000000}, signature cut.
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
                     eyJzdWIiOiJhZG1pbiIsImFjY2VzcyI6InN1ZG8iLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTgwMDAwMDAwMH0.sig";
        assert_eq!(jwt_expiry(token), UNIX_EPOCH.checked_add(Duration::from_secs(1_800_000_000)));
        assert_eq!(jwt_expiry("not a jwt"), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);
        assert_eq!(jwt_expiry("a.eyJleHAiOjF9OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ.c"), None);
    }
}
