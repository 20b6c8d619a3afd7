//! One gateway connection: where to connect, HELLO, IDENTIFY or RESUME, heartbeats, and the
//! events until the connection is lost. The session (id, last sequence number, resume URL)
//! outlives the connection, so the next one can resume it.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use serenity::model::application::Interaction;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use super::{Ended, Gateway};

/// The largest gateway message read (a frame too): an interaction is a few kilobytes (a click
/// carries its message: at most about 30 KiB), READY without intents about one.
const MAX_MESSAGE_BYTES: usize = 1 << 20;

/// How long connecting (TCP, TLS, the websocket handshake) and then HELLO may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Discord's heartbeat interval (about 41 s) is taken within these bounds.
const HEARTBEAT_MIN: Duration = Duration::from_secs(1);
const HEARTBEAT_MAX: Duration = Duration::from_secs(300);

/// The longest session id and resume URL kept (Discord's are 32 hex digits and a short URL).
const MAX_SESSION_ID_CHARS: usize = 128;
const MAX_URL_CHARS: usize = 512;

/// The events (op 0) the relay acts on, by name.
const READY: &str = "READY";
const RESUMED: &str = "RESUMED";
const INTERACTION_CREATE: &str = "INTERACTION_CREATE";

/// What a lost connection can resume.
#[derive(Debug)]
pub(super) struct Session {
    id: String,
    seq: u64,
    resume_url: String,
}

/// A gateway message: an opcode, its data, and for a dispatch (op 0) its sequence number and name.
#[derive(Deserialize)]
struct Frame {
    op: u8,
    #[serde(default)]
    d: Option<Box<RawValue>>,
    #[serde(default)]
    s: Option<u64>,
    #[serde(default)]
    t: Option<String>,
}

#[derive(Deserialize)]
struct Ready {
    session_id: String,
    resume_gateway_url: String,
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Gateway {
    /// Connects, IDENTIFYs (or RESUMEs `session`), and reads events until the connection ends.
    pub(super) async fn connect(&self, session: &mut Option<Session>, shutdown: &CancellationToken) -> Ended {
        let url = match session {
            Some(session) => session.resume_url.clone(),
            None => match self.bot.rest.gateway_url().await {
                Ok(url) => url,
                Err(ended) => return ended,
            },
        };
        let address = format!("{}/?v=10&encoding=json", url.trim_end_matches('/'));
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_MESSAGE_BYTES))
            .max_frame_size(Some(MAX_MESSAGE_BYTES));
        let connecting = tokio_tungstenite::connect_async_with_config(address, Some(config), true);
        let mut socket = match timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok((socket, _))) => socket,
            Ok(Err(err)) => return lost(format!("cannot connect: {err}"), false),
            Err(_) => return lost("connecting timed out".to_owned(), false),
        };
        let interval = match timeout(CONNECT_TIMEOUT, hello(&mut socket)).await {
            Ok(Ok(interval)) => interval,
            Ok(Err(ended)) => return ended,
            Err(_) => return lost("no HELLO".to_owned(), false),
        };
        let opening = match session {
            Some(session) => json!({"op": 6, "d": {
                "token": self.token.expose(), "session_id": session.id, "seq": session.seq,
            }}),
            None => json!({"op": 2, "d": {
                "token": self.token.expose(),
                // Interactions come without intents; nothing else is wanted.
                "intents": 0,
                "properties": {"os": std::env::consts::OS, "browser": "marzban-discord-relay", "device": "marzban-discord-relay"},
            }}),
        };
        if let Err(err) = socket.send(Message::text(opening.to_string())).await {
            return lost(format!("cannot send IDENTIFY or RESUME: {err}"), false);
        }
        self.events(&mut socket, session, interval, shutdown).await
    }

    /// Heartbeats and reads events until the connection ends.
    async fn events(
        &self,
        socket: &mut Socket,
        session: &mut Option<Session>,
        interval: Duration,
        shutdown: &CancellationToken,
    ) -> Ended {
        // The first heartbeat at a random point of the first interval, as Discord asks.
        // `interval` is HELLO's, clamped to at most HEARTBEAT_MAX; checked all the same.
        let after = |wait: Duration| Instant::now().checked_add(wait).unwrap_or_else(Instant::now);
        let mut beat = after(interval.mul_f64(fastrand::f64()));
        let (mut acked, mut live) = (true, false);
        loop {
            let message = tokio::select! {
                () = shutdown.cancelled() => {
                    let _ = socket.close(None).await;
                    return Ended::Shutdown;
                }
                () = tokio::time::sleep_until(beat) => {
                    if !acked {
                        return lost("Discord did not acknowledge a heartbeat".to_owned(), live);
                    }
                    if let Err(ended) = heartbeat(socket, session, live).await {
                        return ended;
                    }
                    (acked, beat) = (false, after(interval));
                    continue;
                }
                message = socket.next() => message,
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|frame| u16::from(frame.code));
                    return closed(code, session, live);
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => return lost(format!("the connection failed: {err}"), live),
                None => return lost("the connection closed".to_owned(), live),
            };
            let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else {
                log::warn!("gateway: a message that is not a gateway payload was skipped");
                continue;
            };
            match frame.op {
                0 => self.dispatch(frame, session, &mut live),
                // Discord asks for a heartbeat now.
                1 => {
                    if let Err(ended) = heartbeat(socket, session, live).await {
                        return ended;
                    }
                }
                7 => return lost("Discord asked for a reconnect".to_owned(), live),
                9 => {
                    // `d: true`: the session may be resumed; otherwise it is gone.
                    if frame.d.as_deref().map(RawValue::get) != Some("true") {
                        *session = None;
                    }
                    return lost("Discord invalidated the session".to_owned(), live);
                }
                11 => acked = true,
                _ => {}
            }
        }
    }

    /// An event (op 0): its sequence number is kept for a resume; READY and RESUMED make the
    /// session live, an interaction is answered.
    fn dispatch(&self, frame: Frame, session: &mut Option<Session>, live: &mut bool) {
        let data = frame.d.as_deref().map_or("null", RawValue::get);
        match frame.t.as_deref() {
            Some(READY) => match serde_json::from_str::<Ready>(data).map_err(|err| err.to_string()).and_then(checked) {
                Ok(ready) => {
                    *session = Some(Session { id: ready.session_id, seq: 0, resume_url: ready.resume_gateway_url });
                    *live = true;
                    self.metrics.identifies.inc();
                    self.live();
                    log::info!("gateway: connected, a new session");
                }
                Err(err) => log::warn!("gateway: READY could not be read: {err}"),
            },
            Some(RESUMED) => {
                *live = true;
                self.metrics.resumes.inc();
                self.live();
                log::info!("gateway: connected again, the session resumed");
            }
            Some(INTERACTION_CREATE) => {
                self.metrics.interactions.inc();
                match serde_json::from_str::<Interaction>(data) {
                    Ok(interaction) => self.answer(interaction),
                    Err(err) => {
                        let reason: String = err.to_string().chars().take(200).collect();
                        log::warn!("gateway: an interaction could not be read: {reason}");
                    }
                }
            }
            _ => {}
        }
        if let (Some(session), Some(seq)) = (session.as_mut(), frame.s) {
            session.seq = session.seq.max(seq);
        }
    }
}

/// Waits for HELLO (op 10) and returns its heartbeat interval, within bounds.
async fn hello(socket: &mut Socket) -> Result<Duration, Ended> {
    loop {
        match socket.next().await {
            Some(Ok(Message::Text(text))) => {
                let Ok(frame) = serde_json::from_str::<Frame>(text.as_str()) else { continue };
                if frame.op != 10 {
                    continue;
                }
                let data: Value =
                    frame.d.as_deref().and_then(|d| serde_json::from_str(d.get()).ok()).unwrap_or_default();
                let ms = data["heartbeat_interval"].as_u64().unwrap_or(41_250);
                return Ok(Duration::from_millis(ms).clamp(HEARTBEAT_MIN, HEARTBEAT_MAX));
            }
            Some(Ok(Message::Close(frame))) => {
                let code = frame.map(|frame| u16::from(frame.code));
                return Err(closed(code, &mut None, false));
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(lost(format!("the connection failed: {err}"), false)),
            None => return Err(lost("the connection closed before HELLO".to_owned(), false)),
        }
    }
}

/// Sends a heartbeat with the last sequence number.
async fn heartbeat(socket: &mut Socket, session: &Option<Session>, live: bool) -> Result<(), Ended> {
    let seq = session.as_ref().map(|session| session.seq);
    let beat = json!({"op": 1, "d": seq});
    socket.send(Message::text(beat.to_string())).await.map_err(|err| lost(format!("cannot heartbeat: {err}"), live))
}

/// What Discord's close `code` means: settings to fix (the retries end), a session to forget, or
/// only a connection to make again.
fn closed(code: Option<u16>, session: &mut Option<Session>, live: bool) -> Ended {
    let Some(code) = code else {
        return lost("Discord closed the connection".to_owned(), live);
    };
    match code {
        4004 => Ended::Fatal(
            "Discord refused DISCORD_BOT_TOKEN (gateway close code 4004, authentication failed): set the bot's \
             current token"
                .to_owned(),
        ),
        4013 | 4014 => Ended::Fatal(format!("Discord refused the gateway intents (close code {code})")),
        4010..=4012 => Ended::Fatal(format!("Discord refused the gateway connection (close code {code})")),
        // An invalid sequence number or a timed-out session: it cannot be resumed.
        4007 | 4009 => {
            *session = None;
            lost(format!("Discord closed the session (close code {code})"), live)
        }
        _ => lost(format!("Discord closed the connection (close code {code})"), live),
    }
}

fn lost(reason: String, was_live: bool) -> Ended {
    Ended::Lost { reason, was_live }
}

/// READY's session id and resume URL, bounded; the URL must be a websocket URL.
fn checked(ready: Ready) -> Result<Ready, String> {
    if ready.session_id.is_empty() || ready.session_id.len() > MAX_SESSION_ID_CHARS {
        return Err("the session id is empty or too long".to_owned());
    }
    websocket_url(&ready.resume_gateway_url)?;
    Ok(ready)
}

/// A `ws://` or `wss://` URL with a host and nothing else, at most [`MAX_URL_CHARS`].
pub(super) fn websocket_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|_| "the gateway URL is not a URL".to_owned())?;
    let plain = url.username().is_empty() && url.password().is_none() && url.query().is_none();
    if text.len() > MAX_URL_CHARS || !matches!(url.scheme(), "ws" | "wss") || url.host_str().is_none() || !plain {
        return Err("the gateway URL is not a plain ws(s) URL".to_owned());
    }
    Ok(())
}
