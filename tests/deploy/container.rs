//! The image's runtime contract, without a Docker engine: the static musl binary (what the Dockerfile builds) run
//! as distroless/static:nonroot would run it: in an empty root filesystem holding only the binary at the
//! ENTRYPOINT path, `/etc/passwd` with `nonroot:65532` and a CA bundle, as uid 65532 (`chroot --userspec`, as root).
//! It must answer `/health` and `/invoke` (against the test database), give both exit codes of `healthcheck`,
//! and stop cleanly on SIGTERM.
//!
//! `JTC_MUSL_BIN` names the binary (`scripts/test` builds it when the musl target is installed). Without it, or
//! without root, the test says so and does nothing, unless `JTC_REQUIRE_CONTAINER_TEST=1` (CI sets it), when
//! that is a failure.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use jtc_test_support::{free_port, stop, wait_healthy, TempDir, TestDb};
use mongodb::bson::{doc, DateTime};

const ENTRYPOINT: &str = "usr/local/bin/jwt-token-cleaner";

fn skip_or_fail(why: &str) {
    assert!(std::env::var("JTC_REQUIRE_CONTAINER_TEST").is_err(), "the container test is required here: {why}");
    eprintln!("container test not run: {why}");
}

/// The root filesystem of distroless/static:nonroot, with the binary at the ENTRYPOINT path.
fn root_filesystem(binary: &Path) -> TempDir {
    let root = TempDir::new("jtc-rootfs");
    for dir in ["usr/local/bin", "etc/ssl/certs", "tmp", "home/nonroot"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(binary, root.join(ENTRYPOINT)).unwrap();
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnonroot:x:65532:\n").unwrap();
    let bundle = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if bundle.exists() {
        std::fs::copy(bundle, root.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    }
    root
}

/// `chroot --userspec=65532:65532 ROOT /usr/local/bin/jwt-token-cleaner ARGS` with only `env`.
fn in_container(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    // Found here: the child's environment is cleared, PATH with it.
    let chroot = ["/usr/sbin/chroot", "/usr/bin/chroot", "/sbin/chroot"].into_iter().find(|p| Path::new(p).exists());
    let mut command = Command::new(chroot.unwrap_or("chroot"));
    command
        .arg("--userspec=65532:65532")
        .arg(root)
        .arg(format!("/{ENTRYPOINT}"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied());
    command
}

#[tokio::test]
async fn the_static_binary_serves_as_nonroot_in_an_empty_root_filesystem() {
    let Ok(binary) = std::env::var("JTC_MUSL_BIN") else {
        return skip_or_fail("JTC_MUSL_BIN is not set (rustup target add x86_64-unknown-linux-musl; scripts/test)");
    };
    if unsafe { libc::geteuid() } != 0 {
        return skip_or_fail("chroot needs root");
    }
    // Static: no interpreter, nothing to load from the (empty) root filesystem.
    let file = Command::new("file").arg(&binary).output().map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    if let Ok(file) = file {
        assert!(file.contains("statically linked") || file.contains("static-pie"), "{file}");
    }
    let root = root_filesystem(Path::new(&binary));
    let db = TestDb::new().await;
    db.insert(vec![
        doc! { "jti": "e1", "expires_at": DateTime::from_millis(0) },
        doc! { "jti": "v1", "expires_at": DateTime::from_millis(chrono::Utc::now().timestamp_millis() + 3_600_000) },
    ])
    .await;
    let port = free_port().to_string();
    let env =
        [("DB_URI", db.uri.as_str()), ("DB_NAME", db.name.as_str()), ("PORT", port.as_str()), ("LOG_FORMAT", "json")];
    let mut server =
        in_container(&root, &["serve"], &env).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    wait_healthy(port.parse().unwrap()).await;

    let invoked = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/invoke"))
        .header("x-fc-request-id", "container-1")
        .send()
        .await
        .unwrap();
    assert_eq!(invoked.status(), 200);
    assert_eq!(invoked.headers()["x-fc-status"], "200");
    let report: serde_json::Value = invoked.json().await.unwrap();
    assert_eq!(report["data"]["cleaned_count"], 1, "{report}");

    // The HEALTHCHECK: exit 0 while it serves, 1 where nothing listens.
    let healthy = in_container(&root, &["healthcheck"], &[("PORT", port.as_str())]).status().unwrap();
    assert_eq!(healthy.code(), Some(0));
    let nothing = free_port().to_string();
    let unhealthy = in_container(&root, &["healthcheck"], &[("PORT", nothing.as_str())]).status().unwrap();
    assert_eq!(unhealthy.code(), Some(1));

    // It ran as uid 65532, not root.
    // (`chroot` execs the program: the child's PID is the server's.)
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap_or_default();
    if let Some(uid) = status.lines().find(|l| l.starts_with("Uid:")) {
        assert!(uid.split_whitespace().nth(1) == Some("65532"), "{uid}");
    }

    let exit = stop(&mut server, Duration::from_secs(10)).expect("it stops on SIGTERM");
    assert_eq!(exit.code(), Some(0), "a clean SIGTERM");
    let mut logs = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut logs).unwrap();
    assert!(logs.contains("FC Invoke Start RequestId: container-1"), "{logs}");
}
