//! The cleaner suite's support: its environment on a test database, and the app on port 0. What every suite needs
//! (the database per test, ports, health, stopping by signal) is in `jtc-test-support`.

use std::collections::HashMap;

use jwt_token_cleaner::config::Settings;
use jwt_token_cleaner::server::Application;

pub use jtc_test_support::{
    bson_size, dead_db_uri, expired_and_valid, free_port, stop, wait_healthy, FcApp, TempDir, TestDb,
};

/// The cleaner's environment on a test database.
pub trait CleanerEnv {
    /// `DB_URI`, `DB_NAME` and `PORT=0`, with `extra` on top.
    fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String>;

    /// [`CleanerEnv::env`], parsed.
    fn settings(&self, extra: &[(&str, &str)]) -> Settings {
        settings_from(self.env(extra))
    }
}

impl CleanerEnv for TestDb {
    fn env(&self, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [("DB_URI", self.uri.as_str()), ("DB_NAME", self.name.as_str())]
            .into_iter()
            .chain(extra.iter().copied())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.entry("PORT".into()).or_insert_with(|| "0".into());
        env
    }
}

pub fn settings_from(env: HashMap<String, String>) -> Settings {
    Settings::from_lookup(|k| env.get(k).cloned()).expect("test settings")
}

/// A running app on a free port.
/// The cleaner in-process on port 0 (`jtc_test_support::FcApp` does the calling).
pub struct TestApp(FcApp);

impl TestApp {
    pub async fn spawn(settings: &Settings) -> Self {
        let app = Application::build(settings).await.expect("bind");
        Self(FcApp::serve(app.port(), app.run_until_stopped(std::future::pending())))
    }
}

impl std::ops::Deref for TestApp {
    type Target = FcApp;

    fn deref(&self) -> &FcApp {
        &self.0
    }
}

/// Runs the binary with `env` and `args` in a fresh directory, off the test's runtime (which serves the test's own
/// servers meanwhile).
pub async fn cli(env: &HashMap<String, String>, args: &[&str]) -> std::process::Output {
    let env = env.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = TempDir::new("jtc-cli");
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_jwt-token-cleaner"));
        command.env_clear().current_dir(&*dir).envs(&env).args(&args).stdin(std::process::Stdio::null());
        if let Ok(path) = std::env::var("PATH") {
            command.env("PATH", path);
        }
        command.output().expect("run the binary")
    })
    .await
    .expect("join")
}

/// Runs the binary with `env` and `args`; returns its stdout and its own peak resident set, in bytes.
///
/// Measured by a small Python parent (`RUSAGE_CHILDREN` of a process that has no other child), not by wait4 from
/// here: Linux records the high-water mark of the memory a process had before `exec` into its `ru_maxrss`, and a
/// child spawned from this test process starts with the whole test process's memory (it is spawned with vfork).
/// Under a full suite that is 150-200 MB whatever the binary does: the reason the 64 MB test failed on a busy run
/// and passed alone. Python's own ~10 MB is the floor of the reading.
pub fn run_with_peak_rss(env: &HashMap<String, String>, args: &[&str]) -> (String, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        p = subprocess.run(sys.argv[1:], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)\n\
        sys.stdout.buffer.write(p.stdout)\n\
        sys.stderr.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n";
    let dir = TempDir::new("jtc-rss");
    let mut command = std::process::Command::new("python3");
    command.args(["-c", MEASURE, env!("CARGO_BIN_EXE_jwt-token-cleaner")]).args(args);
    command.env_clear().envs(env).current_dir(&*dir).stdin(std::process::Stdio::null());
    if let Ok(path) = std::env::var("PATH") {
        command.env("PATH", path);
    }
    let out = command.output().expect("run python3 and the binary");
    let kib: u64 = String::from_utf8_lossy(&out.stderr).trim().parse().expect("the peak, in KiB");
    (String::from_utf8_lossy(&out.stdout).into_owned(), kib * 1024)
}
