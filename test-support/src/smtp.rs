//! A real SMTP server for tests: Python's `aiosmtpd` (`pip install aiosmtpd`,
//! done by `.ci/run`) with its `Mailbox` handler, which stores every accepted
//! message in a Maildir. Each server gets its own port and directory and is
//! killed when dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use uuid::Uuid;

use crate::free_port;

/// A running `aiosmtpd`.
pub struct SmtpServer {
    /// `smtp://127.0.0.1:PORT`, for `HERALD_SMTP_URL`.
    pub url: String,
    /// The Maildir the server writes accepted messages to.
    pub dir: PathBuf,
    child: Child,
}

/// A received message, with the headers tests look at.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The message as stored (headers and body, with the server's
    /// `X-Peer`/`X-MailFrom`/`X-RcptTo` headers added).
    pub raw: String,
    pub to: String,
    pub from: String,
    pub subject: String,
    pub message_id: String,
    /// The body, decoded when it was sent quoted-printable (long lines).
    pub body: String,
}

impl ReceivedMail {
    /// Parses a stored message (RFC 5322 headers with folding).
    pub fn parse(raw: &str) -> Self {
        let raw_norm = raw.replace("\r\n", "\n");
        let (head, body) = raw_norm.split_once("\n\n").unwrap_or((&raw_norm, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        let body = if get("content-transfer-encoding").eq_ignore_ascii_case("quoted-printable") {
            decode_quoted_printable(body)
        } else {
            body.to_string()
        };
        Self {
            to: get("to"),
            from: get("from"),
            subject: get("subject"),
            message_id: get("message-id"),
            body: body.trim_end().to_string(),
            raw: raw.to_string(),
        }
    }
}

/// Decodes RFC 2045 quoted-printable text (soft line breaks and `=XX`).
fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\n", "");
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

impl SmtpServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_on(free_port())
    }

    /// Starts a server on `port` (for tests where the server comes up late).
    pub fn start_on(port: u16) -> Self {
        let dir = std::env::temp_dir().join(format!("herald-smtp-{}", Uuid::new_v4().simple()));
        let mut child = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (tests need it, with `pip install aiosmtpd`)");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("aiosmtpd exited with {status}: is it installed (`pip install aiosmtpd`)?");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on port {port} within 20 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            url: format!("smtp://127.0.0.1:{port}"),
            dir,
            child,
        }
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        read_maildir(&self.dir)
            .iter()
            .map(|raw| ReceivedMail::parse(raw))
            .collect()
    }

    /// Waits until at least `n` messages arrived (or `timeout` passed) and
    /// returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if messages.len() >= n || Instant::now() >= deadline {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Messages of a Maildir (`new/` and `cur/`), in delivery order (Maildir
/// names start with the delivery time).
fn read_maildir(dir: &Path) -> Vec<String> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = ["new", "cur"]
        .iter()
        .filter_map(|sub| std::fs::read_dir(dir.join(sub)).ok())
        .flatten()
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            let modified = entry.metadata().ok()?.modified().ok()?;
            Some((modified, entry.path()))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .filter_map(|(_, path)| std::fs::read(path).ok())
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .collect()
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
