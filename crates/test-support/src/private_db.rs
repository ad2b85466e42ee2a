//! A private SecantusDB server for the tests that stop, restart or lock down their database. It is started from
//! `SECANTUS_BIN` (exported by `scripts/test`) on a free port with a temporary directory, and stopped by PID when
//! dropped, also when the test fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mongodb::bson::doc;

use crate::{free_port, stop};

pub struct PrivateDb {
    pub port: u16,
    dir: PathBuf,
    auth: bool,
    standalone: bool,
    child: Option<Child>,
}

fn bin() -> String {
    std::env::var("SECANTUS_BIN")
        .unwrap_or_else(|_| panic!("SECANTUS_BIN is not set: run the suite with scripts/test (it installs SecantusDB)"))
}

impl PrivateDb {
    /// Starts a server; with `user`, one user (root role) is created first and the server restarted with `--auth`.
    pub async fn start(user: Option<(&str, &str)>) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("jtc-private-db-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut db = Self { port, dir, auth: false, standalone: false, child: None };
        db.start_again().await;
        if let Some((name, password)) = user {
            let client = mongodb::Client::with_uri_str(db.uri()).await.unwrap();
            client
                .database("admin")
                .run_command(doc! { "createUser": name, "pwd": password, "roles": [{ "role": "root", "db": "admin" }] })
                .await
                .expect("createUser");
            db.stop();
            db.auth = true;
            db.start_again().await;
        }
        db
    }

    /// Starts a server that announces itself as a standalone server (`--standalone`): no change streams.
    pub async fn start_standalone() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("jtc-private-db-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut db = Self { port, dir, auth: false, standalone: true, child: None };
        db.start_again().await;
        db
    }

    /// A URI without credentials.
    pub fn uri(&self) -> String {
        format!("mongodb://127.0.0.1:{}/?directConnection=true", self.port)
    }

    /// Starts the server again on the same port and directory; waits until it accepts connections.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(bin());
        command
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--storage-path"])
            .arg(self.dir.join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.auth {
            command.arg("--auth");
        }
        if self.standalone {
            command.arg("--standalone");
        }
        self.child = Some(command.spawn().expect("start SecantusDB"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "SecantusDB did not open its port");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (SIGTERM, then SIGKILL after 15 s) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop(&mut child, Duration::from_secs(15));
        }
    }
}

impl Drop for PrivateDb {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
