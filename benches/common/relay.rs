//! What the benches that measure ingest (`ingest`, `states`) share: the relay binary as a child
//! process, and a load generator POSTing bodies to it over loopback.

// Each bench that includes this file uses a part of it.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The panel secret every bench relay is started with.
pub const SECRET: &str = "bench-secret";

/// A relay binary listening on a free port of 127.0.0.1, with [`SECRET`], an empty data folder as
/// its working directory and nothing else from this environment but `env`; killed when dropped.
pub struct Relay {
    child: Child,
    port: u16,
    data: tempfile::TempDir,
}

impl Relay {
    pub fn start(binary: &str, env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new(binary)
            .current_dir(data.path())
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("WEBHOOK_SECRET", SECRET)
            .envs(env.iter().copied())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Self { child, port, data }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The relay's working directory (its outbox is in `data/` below it).
    pub fn dir(&self) -> &Path {
        self.data.path()
    }

    /// Waits until the relay answers `/readyz` with 200.
    pub async fn ready(&self, client: &reqwest::Client) {
        loop {
            let answer = client.get(self.url("/readyz")).send().await;
            if answer.is_ok_and(|answer| answer.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one load achieved: the requests answered, in how long, and each one's latency (sorted).
pub struct Load {
    pub requests: usize,
    pub elapsed: Duration,
    pub latencies: Vec<Duration>,
}

impl Load {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile of the latencies, in milliseconds.
    pub fn percentile_ms(&self, p: f64) -> f64 {
        let index = ((self.latencies.len() as f64 * p).ceil() as usize).clamp(1, self.latencies.len()) - 1;
        self.latencies[index].as_secs_f64() * 1000.0
    }
}

/// The body of the n-th request of a load.
pub type Body = Arc<dyn Fn(usize) -> Vec<u8> + Send + Sync>;

/// `connections` clients POSTing `body(n)` to `POST /` back to back, each answer required to be
/// 200, for `duration` or until `requests` were sent.
pub async fn load(relay: &Relay, body: Body, connections: usize, duration: Duration, requests: usize) -> Load {
    let counter = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().unwrap();
            let (url, body, counter, latencies) = (relay.url("/"), body.clone(), counter.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                while start.elapsed() < duration {
                    let request = counter.fetch_add(1, Ordering::Relaxed);
                    if request >= requests {
                        break;
                    }
                    let body = body(request);
                    let sent = Instant::now();
                    let response =
                        client.post(&url).header("x-webhook-secret", SECRET).body(body).send().await.unwrap();
                    assert_eq!(response.status(), 200);
                    response.bytes().await.unwrap();
                    mine.push(sent.elapsed());
                }
                latencies.lock().unwrap().extend(mine);
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = start.elapsed();
    let mut latencies = Arc::try_unwrap(latencies).unwrap().into_inner().unwrap();
    latencies.sort();
    Load { requests: latencies.len(), elapsed, latencies }
}
