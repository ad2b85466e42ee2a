//! `healthcheck`: Docker's HEALTHCHECK without curl or a shell in the image.

use std::process::ExitCode;
use std::time::Duration;

use jwt_token_cleaner::config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A minimal HTTP/1.1 GET of `/health` on 127.0.0.1, so the runtime image needs no curl or shell.
pub(crate) async fn run() -> ExitCode {
    // The port the server would listen on, read as `serve` reads it; 9000 when unreadable.
    let port = config::listen_port(&|name: &str| std::env::var(name).ok()).unwrap_or(9000);
    let probe = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        Ok::<bool, std::io::Error>(head.starts_with(b"HTTP/1.1 200"))
    };
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => {
            eprintln!("healthcheck: /health on port {port} did not answer 200");
            ExitCode::FAILURE
        }
        Ok(Err(e)) => {
            eprintln!("healthcheck: port {port}: {e}");
            ExitCode::FAILURE
        }
        Err(_) => {
            eprintln!("healthcheck: port {port}: no answer within 2 s");
            ExitCode::FAILURE
        }
    }
}
