//! The real `gophermart` binary as a child process, for what only a process can show:
//! `kill -9` and a restart on the same database.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{bearer, eventually, order_number, with_flag, TestAccrual, TestUser};

/// A running `gophermart` process; killed (SIGKILL) when dropped.
pub struct ServiceProcess {
    /// `http://127.0.0.1:port`.
    pub address: String,
    child: Child,
    client: reqwest::Client,
    /// Every line the process wrote to stderr so far.
    log: Arc<Mutex<Vec<String>>>,
}

impl ServiceProcess {
    /// Starts the binary with `args` (as from `base_args`, program name first) on a port
    /// the process picks itself (read back from its log, so that parallel tests cannot
    /// race for a port), and waits until `GET /health` answers `200`.
    pub async fn start(args: Vec<String>) -> Self {
        Self::start_with_env(args, &[("RUST_LOG", "warn,gophermart::startup=info")]).await
    }

    /// [`Self::start`] with environment variables of the test's choosing.
    pub async fn start_with_env(args: Vec<String>, env: &[(&str, &str)]) -> Self {
        let args = with_flag(args, "-a", "127.0.0.1:0");
        let mut child = Command::new(env!("CARGO_BIN_EXE_gophermart"))
            .args(&args[1..])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the gophermart binary");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (port_tx, port_rx) = tokio::sync::oneshot::channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        // Reads the port from the log, then keeps draining it so the child never blocks.
        let lines = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut port_tx = Some(port_tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(port) = listening_port(&line) {
                    if let Some(tx) = port_tx.take() {
                        let _ = tx.send(port);
                    }
                }
                lines.lock().expect("log lines").push(line);
            }
        });
        let port = tokio::time::timeout(Duration::from_secs(20), port_rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| {
                let exited = child.try_wait().ok().flatten();
                panic!("gophermart did not report its port (exit: {exited:?})")
            });
        let process = Self {
            address: format!("http://127.0.0.1:{port}"),
            child,
            client: reqwest::Client::new(),
            log,
        };
        let healthy = eventually(Duration::from_secs(20), || async {
            let response = process
                .client
                .get(format!("{}/health", process.address))
                .send()
                .await
                .ok()?;
            (response.status() == StatusCode::OK).then_some(())
        })
        .await;
        assert!(
            healthy.is_some(),
            "gophermart did not become healthy on port {port}"
        );
        process
    }

    /// Sends `signal` (`TERM`, `INT`, …), then waits up to `within` for the process to
    /// exit; its exit status, or `None` when it was still running (it is then killed).
    pub async fn stop_with(
        mut self,
        signal: &str,
        within: Duration,
    ) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "send SIG{signal}");
        let child = &mut self.child;
        eventually(within, || {
            let status = child.try_wait().ok().flatten();
            async move { status }
        })
        .await
    }

    /// Sends `signal` (`STOP`, `CONT`, …) and returns at once.
    pub fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status();
        assert!(sent.is_ok_and(|s| s.success()), "send SIG{signal}");
    }

    /// Every line written to stderr so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().expect("log lines").clone()
    }

    /// `kill -9`: SIGKILL, no chance to finish anything.
    pub fn kill(mut self) {
        self.kill_now();
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Registers a fresh user.
    pub async fn register_user(&self) -> TestUser {
        let login = format!("user-{}", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple".to_owned();
        let response = self
            .client
            .post(format!("{}/api/user/register", self.address))
            .json(&json!({"login": login, "password": password}))
            .send()
            .await
            .expect("register reaches the process");
        assert_eq!(response.status(), StatusCode::OK);
        TestUser {
            token: bearer(&response).expect("a bearer token"),
            login,
            password,
        }
    }

    /// `count` fresh users, each credited `points` for one order through `accrual`.
    pub async fn funded_users(
        &self,
        accrual: &TestAccrual,
        count: usize,
        points: Value,
    ) -> Vec<TestUser> {
        let mut users = Vec::with_capacity(count);
        for _ in 0..count {
            let user = self.register_user().await;
            let order = order_number();
            accrual.add_order_worth(&order, points.clone()).await;
            assert_eq!(self.post_order(&user, &order).await, StatusCode::ACCEPTED);
            users.push(user);
        }
        for user in &users {
            eventually(Duration::from_secs(15), || async {
                (self.orders(user).await.first()?["status"] == "PROCESSED").then_some(())
            })
            .await
            .expect("funded");
        }
        users
    }

    /// `POST /api/user/orders`; the status.
    pub async fn post_order(&self, user: &TestUser, number: &str) -> StatusCode {
        self.client
            .post(format!("{}/api/user/orders", self.address))
            .bearer_auth(&user.token)
            .header("Content-Type", "text/plain")
            .body(number.to_owned())
            .send()
            .await
            .expect("upload reaches the process")
            .status()
    }

    /// `GET /api/user/orders` as a list (empty on `204`).
    pub async fn orders(&self, user: &TestUser) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}/api/user/orders", self.address))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("list reaches the process");
        if response.status() == StatusCode::NO_CONTENT {
            return Vec::new();
        }
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON list")
    }

    /// The whole event feed, in `seq` order.
    pub async fn admin_events(&self) -> Vec<Value> {
        let response = self
            .client
            .get(format!("{}/api/admin/events?limit=1000", self.address))
            .bearer_auth(crate::helpers::ADMIN_TOKEN)
            .send()
            .await
            .expect("the feed reaches the process");
        if response.status() == StatusCode::NO_CONTENT {
            return Vec::new();
        }
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.expect("a JSON list")
    }

    /// `GET /api/user/balance`, the raw body.
    pub async fn balance_text(&self, user: &TestUser) -> String {
        let response = self
            .client
            .get(format!("{}/api/user/balance", self.address))
            .bearer_auth(&user.token)
            .send()
            .await
            .expect("balance reaches the process");
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.expect("a body")
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// The port in the service's `listening port=N` log line, colours or not.
fn listening_port(line: &str) -> Option<u16> {
    let plain: String = {
        let mut out = String::with_capacity(line.len());
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                // Skip an ANSI escape: ESC [ … letter.
                for next in chars.by_ref() {
                    if next.is_ascii_alphabetic() {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    if !plain.contains("listening") {
        return None;
    }
    // `port=8080` in text, `"port":8080` in JSON.
    let at = plain
        .find("port=")
        .map(|at| at + "port=".len())
        .or_else(|| plain.find("\"port\":").map(|at| at + "\"port\":".len()))?;
    let rest = &plain[at..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}
