//! What the benchmarks share: an SMTP sink that keeps message bodies, and helpers to follow
//! the emailed links and codes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A minimal SMTP server that keeps message bodies, so the benchmark can follow emailed links.
pub async fn smtp_sink(mail: Arc<Mutex<Vec<String>>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind SMTP sink");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let mail = Arc::clone(&mail);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 sink\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = if line.to_ascii_uppercase().starts_with("DATA") {
                        let _ = write.write_all(b"354 go\r\n").await;
                        let mut data = String::new();
                        while let Ok(Some(l)) = lines.next_line().await {
                            if l == "." {
                                break;
                            }
                            data.push_str(&l);
                            data.push('\n');
                        }
                        // Undo quoted-printable soft breaks and escapes (long lines are encoded so).
                        let data = data.replace("=\n", "").replace("=3D", "=");
                        mail.lock().expect("lock").push(data);
                        b"250 ok\r\n"
                    } else if line.to_ascii_uppercase().starts_with("QUIT") {
                        b"221 bye\r\n"
                    } else if line.to_ascii_uppercase().starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    port
}

pub async fn wait_for_mail(mail: &Mutex<Vec<String>>, to: &str, needle: &str) -> String {
    for _ in 0..400 {
        if let Some(m) = mail
            .lock()
            .expect("lock")
            .iter()
            .rev()
            .find(|m| m.contains(to) && m.contains(needle))
        {
            return m.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no email to {to} containing {needle:?}");
}

pub fn after<'a>(text: &'a str, marker: &str, len: Option<usize>) -> &'a str {
    let start = text.find(marker).expect("marker") + marker.len();
    let rest = &text[start..];
    match len {
        Some(n) => &rest[..n],
        None => rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .next()
            .unwrap_or(""),
    }
}
