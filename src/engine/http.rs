//! Plain libpod HTTP calls over the Unix socket, with hyper 1.
//!
//! Container lifecycle calls go here instead of through `podman-api` because podlab builds
//! the complete libpod create body itself (see [`crate::emit::podman`]: an emitter that only
//! serializes the session), and `podman-api`'s builder can neither send a prepared body nor
//! carry every field podlab sets. Attach needs a hijacked (upgraded) connection, which
//! `podman-api` offers only without a TTY. Each call opens its own connection: on a local
//! socket that costs microseconds and keeps calls independent.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::UnixStream;

use crate::{Error, Result};

/// The libpod API prefix podlab speaks; Podman 4.x and 5.x route it.
pub const PREFIX: &str = "/v4.0.0/libpod";

/// A hijacked connection: the container's stdio after an attach or exec start.
pub type Upgraded = TokioIo<hyper::upgrade::Upgraded>;

#[derive(Debug, Clone)]
pub struct Libpod {
    socket: PathBuf,
}

/// A non-2xx answer: the status and Podman's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
}

impl Libpod {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    async fn sender<B>(&self) -> Result<hyper::client::conn::http1::SendRequest<B>>
    where
        B: hyper::body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|err| self.lost(&err))?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| self.lost(&err))?;
        tokio::spawn(connection.with_upgrades());
        Ok(sender)
    }

    fn lost(&self, err: &dyn std::fmt::Display) -> Error {
        Error::env(format!(
            "lost the podman socket {}: {err}",
            self.socket.display()
        ))
        .hint("check the service (podlab doctor) and run again")
    }

    fn request(
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Request<Full<Bytes>>> {
        let bytes = body
            .map(serde_json::to_vec)
            .transpose()
            .map_err(|err| Error::env(format!("cannot encode request: {err}")))?;
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{PREFIX}{path}"))
            .header(hyper::header::HOST, "d");
        if bytes.is_some() {
            builder = builder.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        builder
            .body(Full::new(Bytes::from(bytes.unwrap_or_default())))
            .map_err(|err| Error::env(format!("cannot build request {path}: {err}")))
    }

    /// Sends a request and reads the whole answer; `Err(Ok(failure))` is Podman saying no.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<std::result::Result<Bytes, ApiFailure>> {
        self.send(Self::request(method, path, body)?).await
    }

    /// Sends `request` on a connection of its own and reads the whole answer.
    async fn send(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<std::result::Result<Bytes, ApiFailure>> {
        let mut sender = self.sender().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| self.lost(&err))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|err| self.lost(&err))?
            .to_bytes();
        if status.is_success() {
            return Ok(Ok(bytes));
        }
        Ok(Err(ApiFailure {
            status,
            message: failure_message(&bytes),
        }))
    }

    /// `HEAD path`: the answer's `header`, `Ok(None)` when it has none, `Err(Ok(failure))`
    /// when Podman says no.
    pub async fn head(
        &self,
        path: &str,
        header: &str,
    ) -> Result<std::result::Result<Option<String>, ApiFailure>> {
        let mut sender = self.sender().await?;
        let response = sender
            .send_request(Self::request(Method::HEAD, path, None)?)
            .await
            .map_err(|err| self.lost(&err))?;
        let status = response.status();
        if !status.is_success() {
            return Ok(Err(ApiFailure {
                status,
                message: status.canonical_reason().unwrap_or("refused").to_owned(),
            }));
        }
        Ok(Ok(response
            .headers()
            .get(header)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)))
    }

    /// Like [`Self::call`], with any refusal turned into an error naming the call.
    pub async fn expect(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Bytes> {
        self.call(method, path, body).await?.map_err(|failure| {
            Error::env(format!("podman refused {path}: {}", failure.message))
                .hint("run with -v for details, or check podman's own view: podman ps -a")
        })
    }

    /// Sends a request whose answer is a long stream (`logs?follow=true`): the body is read
    /// as it arrives instead of collected. `Err(Ok(failure))` is Podman saying no.
    pub async fn stream(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<std::result::Result<BodyReader, ApiFailure>> {
        let mut sender = self.sender().await?;
        let response = sender
            .send_request(Self::request(method, path, body)?)
            .await
            .map_err(|err| self.lost(&err))?;
        self.streamed(response).await
    }

    /// The body of a successful `response`, to read as it arrives; a failure read whole.
    async fn streamed(
        &self,
        response: hyper::Response<Incoming>,
    ) -> Result<std::result::Result<BodyReader, ApiFailure>> {
        let status = response.status();
        if status.is_success() {
            return Ok(Ok(BodyReader {
                body: response.into_body(),
                pending: Bytes::new(),
            }));
        }
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|err| self.lost(&err))?
            .to_bytes();
        Ok(Err(ApiFailure {
            status,
            message: failure_message(&bytes),
        }))
    }

    /// `POST path` with `Upgrade: tcp`, returning the raw duplex stream.
    pub async fn upgrade(&self, path: &str, body: Option<&serde_json::Value>) -> Result<Upgraded> {
        let mut sender = self.sender().await?;
        let mut request = Self::request(Method::POST, path, body)?;
        request.headers_mut().insert(
            hyper::header::CONNECTION,
            hyper::header::HeaderValue::from_static("Upgrade"),
        );
        request.headers_mut().insert(
            hyper::header::UPGRADE,
            hyper::header::HeaderValue::from_static("tcp"),
        );
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| self.lost(&err))?;
        let status = response.status();
        if status != StatusCode::SWITCHING_PROTOCOLS && !status.is_success() {
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|err| self.lost(&err))?
                .to_bytes();
            return Err(start_failure(
                "cannot attach to the container",
                &failure_message(&bytes),
            ));
        }
        let upgraded = hyper::upgrade::on(response)
            .await
            .map_err(|err| self.lost(&err))?;
        Ok(TokioIo::new(upgraded))
    }
}

fn command_not_found(what: &str, message: &str) -> Error {
    Error::command(127, format!("{what}: its command was not found: {message}"))
        .hint("check the command's path and spelling: it must exist in the image (podlab run -- ls -l /usr/bin shows what is there)")
}

fn command_not_executable(what: &str, message: &str) -> Error {
    Error::command(126, format!("{what}: its command is not executable: {message}"))
        .hint("name an executable file (chmod +x it in the image), or run it through its interpreter: -- sh SCRIPT")
}

/// The init that runs as PID 1 (`"init": true`: Podman's catatonit) starts, then fails to exec
/// the command, says so as the first line on the container's stderr and exits 1:
/// `ERROR (catatonit:6): failed to exec pid1: No such file or directory`. Read from that line,
/// the same 127 and 126 as a start that failed without an init.
pub fn init_exec_failure(what: &str, first_stderr: &[u8]) -> Option<Error> {
    let text = String::from_utf8_lossy(first_stderr);
    let line = text.lines().next()?;
    let (_, reason) = line
        .strip_prefix("ERROR (catatonit:")?
        .split_once("): failed to exec pid1: ")?;
    match reason.trim() {
        "No such file or directory" => Some(command_not_found(what, reason)),
        "Permission denied" => Some(command_not_executable(what, reason)),
        _ => None,
    }
}

/// A container that failed to start (or to attach, which Podman may start it for): a command
/// that is not there exits 127 and one that cannot be executed 126, as `podman run` and a shell
/// report them; a port in use says so; anything else is the environment's failure.
pub fn start_failure(what: &str, message: &str) -> Error {
    let lower = message.to_lowercase();
    if lower.contains("attempted to invoke a command that was not found")
        || lower.contains("executable file not found")
    {
        return command_not_found(what, message);
    }
    if lower.contains("oci permission denied") {
        return command_not_executable(what, message);
    }
    let hint = super::port_failure_hint(message)
        .unwrap_or("see the message above; podlab doctor checks the host's setup");
    Error::env(format!("{what}: {message}")).hint(hint)
}

#[cfg(test)]
#[test]
fn init_exec_failure_maps_catatonits_missing_and_non_executable_command_to_127_and_126() {
    let missing = init_exec_failure(
        "x",
        b"ERROR (catatonit:6): failed to exec pid1: No such file or directory\n",
    )
    .unwrap();
    assert_eq!(missing.exit_code(), 127);
    assert!(missing.message().contains("was not found"), "{missing}");
    let denied = init_exec_failure(
        "x",
        b"ERROR (catatonit:7): failed to exec pid1: Permission denied\n",
    )
    .unwrap();
    assert_eq!(denied.exit_code(), 126);
    // The job's own output, or another failure of the init, is the job's business.
    assert!(init_exec_failure("x", b"Traceback (most recent call last):\n").is_none());
    assert!(
        init_exec_failure(
            "x",
            b"ERROR (catatonit:6): failed to exec pid1: Exec format error\n"
        )
        .is_none()
    );
    assert!(init_exec_failure("x", b"").is_none());
}

#[test]
fn start_failure_maps_a_missing_command_to_127_and_a_non_executable_one_to_126() {
    let missing = "runc: runc create failed: unable to start container process: exec: \"/nonexistent\": stat /nonexistent: no such file or directory: OCI runtime attempted to invoke a command that was not found";
    let err = start_failure("cannot start the container", missing);
    assert_eq!(err.exit_code(), 127);
    assert!(err.message().contains("was not found"), "{err}");
    let denied = "runc: runc create failed: unable to start container process: exec: \"/etc/passwd\": permission denied: OCI permission denied";
    assert_eq!(start_failure("cannot start", denied).exit_code(), 126);
    assert_eq!(
        start_failure(
            "cannot start",
            "listen tcp 127.0.0.1:80: address already in use"
        )
        .exit_code(),
        2
    );
}

/// Podman's error text: the `message` of its JSON error body, else the body itself.
fn failure_message(bytes: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()
        .and_then(|value| {
            value
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(bytes).trim().to_owned())
}

/// A streamed response body as an [`AsyncRead`]: data frames in order, trailers skipped.
#[derive(Debug)]
pub struct BodyReader {
    body: Incoming,
    pending: Bytes,
}

impl AsyncRead for BodyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            if !self.pending.is_empty() {
                let n = self.pending.len().min(buf.remaining());
                let chunk = self.pending.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                // The end of the body: a read of zero bytes.
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Err(err))) => {
                    return Poll::Ready(Err(std::io::Error::other(err)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        self.pending = data;
                    }
                }
            }
        }
    }
}

/// Percent-encodes a query value (label filters carry `{`, `"`, `=`).
pub fn query_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

// --- Non-JSON request bodies (podlab kube play / down) --------------------------------------

/// `kube play` and `kube down` take the YAML itself as the body (`application/x-yaml`; Podman
/// answers "Content-Type ... is not supported" to anything else), which [`Libpod::call`],
/// built for JSON bodies, cannot send.
impl Libpod {
    /// Sends `body` as `content_type` and reads the whole answer; `Err(Ok(failure))` is
    /// Podman saying no.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<std::result::Result<Bytes, ApiFailure>> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{PREFIX}{path}"))
            .header(hyper::header::HOST, "d")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| Error::env(format!("cannot build request {path}: {err}")))?;
        self.send(request).await
    }
}

// --- A request body streamed from a file (podlab build) -------------------------------------

/// `podlab build` sends the build context, which can be gigabytes, as the body of one
/// request: [`FileBody`] reads it from disk as hyper asks for more, so it never sits in memory.
impl Libpod {
    /// Sends `body` as `content_type` and returns the answer to read as it arrives, like
    /// [`Self::stream`]; `Err(Ok(failure))` is Podman saying no.
    pub async fn upload(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: FileBody,
    ) -> Result<std::result::Result<BodyReader, ApiFailure>> {
        let request = Request::builder()
            .method(method)
            .uri(format!("{PREFIX}{path}"))
            .header(hyper::header::HOST, "d")
            .header(hyper::header::CONTENT_TYPE, content_type)
            .body(body)
            .map_err(|err| Error::env(format!("cannot build request {path}: {err}")))?;
        let mut sender = self.sender().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| self.lost(&err))?;
        self.streamed(response).await
    }
}

/// A file's contents from its current position, `len` bytes, as a request body of known
/// length (hyper sends it with a `Content-Length`).
#[derive(Debug)]
pub struct FileBody {
    file: tokio::fs::File,
    left: u64,
    buf: Box<[u8]>,
}

impl FileBody {
    pub fn new(file: std::fs::File, len: u64) -> Self {
        Self {
            file: tokio::fs::File::from_std(file),
            left: len,
            buf: vec![0; 256 * 1024].into_boxed_slice(),
        }
    }
}

impl hyper::body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        let want =
            usize::try_from(this.left).map_or(this.buf.len(), |left| left.min(this.buf.len()));
        let Some(buf) = this.buf.get_mut(..want) else {
            return Poll::Ready(None);
        };
        if buf.is_empty() {
            return Poll::Ready(None);
        }
        let mut read = ReadBuf::new(buf);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(err)) => Poll::Ready(Some(Err(err))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Some(Err(
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the file ended early"),
            ))),
            Poll::Ready(Ok(())) => {
                let data = Bytes::copy_from_slice(read.filled());
                this.left -= data.len() as u64;
                Poll::Ready(Some(Ok(hyper::body::Frame::data(data))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        hyper::body::SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_filters() {
        assert_eq!(
            query_escape(r#"{"label":["a=b"]}"#),
            "%7B%22label%22%3A%5B%22a%3Db%22%5D%7D"
        );
    }

    #[tokio::test]
    async fn uploads_a_file_with_its_length_and_streams_the_answer() {
        use std::io::{Seek as _, Write as _};
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        // 600 KiB: more than one read of the body's buffer.
        let sent: Vec<u8> = (0..600 * 1024_u32)
            .map(|i| u8::try_from(i % 251).unwrap())
            .collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"skipped").unwrap();
        file.write_all(&sent).unwrap();
        file.seek(std::io::SeekFrom::Start(7)).unwrap();
        let server = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut received = Vec::new();
            let mut chunk = vec![0u8; 65536];
            let head_end = loop {
                let n = conn.read(&mut chunk).await.unwrap();
                assert_ne!(n, 0, "the request ended early");
                received.extend_from_slice(&chunk[..n]);
                if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
            };
            let head = String::from_utf8(received[..head_end].to_vec()).unwrap();
            let mut body = received[head_end..].to_vec();
            while body.len() < 600 * 1024 {
                let n = conn.read(&mut chunk).await.unwrap();
                assert_ne!(n, 0, "the body ended early");
                body.extend_from_slice(&chunk[..n]);
            }
            let answer = "{\"stream\":\"one\"}\n{\"stream\":\"two\"}\n";
            conn.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{answer}",
                    answer.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
            (head, body)
        });
        let libpod = Libpod::new(&socket);
        let body = FileBody::new(file, sent.len() as u64);
        let mut reader = libpod
            .upload(Method::POST, "/build?t=x", "application/x-tar", body)
            .await
            .unwrap()
            .unwrap();
        let mut answer = String::new();
        reader.read_to_string(&mut answer).await.unwrap();
        assert_eq!(answer, "{\"stream\":\"one\"}\n{\"stream\":\"two\"}\n");
        let (head, body) = server.await.unwrap();
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /v4.0.0/libpod/build?t=x "), "{head}");
        assert!(
            head.contains("content-type: application/x-tar\r\n"),
            "{head}"
        );
        assert!(head.contains("content-length: 614400\r\n"), "{head}");
        assert!(body == sent, "the body differs from the file");
    }
}
