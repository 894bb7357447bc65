//! A real SMTP server on loopback that keeps every message it receives.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub data: String,
}

#[derive(Clone, Default)]
pub struct SmtpSink {
    pub messages: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Listens on `port` (0 = any) and returns the sink and its port.
    pub async fn start_on(port: u16) -> (Self, u16) {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind SMTP sink");
        let port = listener.local_addr().unwrap().port();
        let sink = SmtpSink::default();
        let messages = Arc::clone(&sink.messages);
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let messages = Arc::clone(&messages);
                tokio::spawn(async move {
                    let _ = serve(socket, messages).await;
                });
            }
        });
        (sink, port)
    }

    pub fn all(&self) -> Vec<Mail> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits for the `nth` (0-based) message to `to`.
    pub async fn wait_for_nth(&self, to: &str, nth: usize) -> Mail {
        for _ in 0..300 {
            let found: Vec<Mail> = self
                .all()
                .into_iter()
                .filter(|m| m.to.eq_ignore_ascii_case(to))
                .collect();
            if let Some(m) = found.get(nth) {
                return m.clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no email #{nth} to {to} arrived; got {:?}", self.all());
    }

    /// Waits for a message to `to`, at or after position `from`, whose text contains `needle`.
    pub async fn wait_for_containing(&self, to: &str, from: usize, needle: &str) -> Mail {
        for _ in 0..300 {
            let found = self
                .all()
                .into_iter()
                .filter(|m| m.to.eq_ignore_ascii_case(to))
                .skip(from)
                .find(|m| m.data.contains(needle));
            if let Some(m) = found {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "no email to {to} containing {needle:?} arrived; got {:?}",
            self.all()
        );
    }

    pub fn count_to(&self, to: &str) -> usize {
        self.all()
            .iter()
            .filter(|m| m.to.eq_ignore_ascii_case(to))
            .count()
    }
}

async fn serve(
    socket: tokio::net::TcpStream,
    messages: Arc<Mutex<Vec<Mail>>>,
) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut to = String::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            write.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            to = line[8..]
                .trim()
                .trim_matches(|c| c == '<' || c == '>')
                .to_owned();
            write.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            messages.lock().unwrap().push(Mail {
                to: to.clone(),
                data: decode_quoted_printable(&data),
            });
            write.write_all(b"250 OK queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            write.write_all(b"250 OK\r\n").await?;
        }
    }
    Ok(())
}

/// Undoes quoted-printable soft breaks and escapes, in case a body was encoded so.
fn decode_quoted_printable(s: &str) -> String {
    if !s.contains("Content-Transfer-Encoding: quoted-printable") {
        return s.to_owned();
    }
    let joined = s.replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `token=` value of the first link in a message.
pub fn link_token(mail: &Mail) -> String {
    let start = mail.data.find("token=").expect("a link with token=") + "token=".len();
    mail.data[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// The 6-digit code in a message.
pub fn otp_code(mail: &Mail) -> String {
    let start = mail
        .data
        .find("verification code: ")
        .expect("a verification code")
        + "verification code: ".len();
    mail.data[start..start + 6].to_owned()
}
