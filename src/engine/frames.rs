//! Demultiplexing a non-TTY attach or logs stream: Docker's framing, which Podman also uses.
//! Each frame is an 8-byte header (stream id: 0 stdin, 1 stdout, 2 stderr; three zero bytes;
//! a big-endian u32 payload length) and the payload. With a TTY the stream is raw bytes.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::{Error, Result};

/// Copies frames from `input` to `stdout` / `stderr` until the stream ends.
pub async fn demultiplex<R, O, E>(input: &mut R, stdout: &mut O, stderr: &mut E) -> Result<()>
where
    R: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let mut header = [0u8; 8];
    let mut payload = vec![0u8; 32 * 1024];
    loop {
        match input.read_exact(&mut header).await {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(err) => {
                return Err(Error::env(format!(
                    "lost the container's output stream: {err}"
                )));
            }
        }
        let [stream, _, _, _, a, b, c, d] = header;
        let mut left = u32::from_be_bytes([a, b, c, d]) as usize;
        while left > 0 {
            let chunk = left.min(payload.len());
            let buf = payload.get_mut(..chunk).unwrap_or_default();
            input.read_exact(buf).await.map_err(|err| {
                Error::env(format!("the container's output stream broke off: {err}"))
            })?;
            let written = if stream == 2 {
                stderr.write_all(buf).await
            } else {
                stdout.write_all(buf).await
            };
            // A closed stdout (podlab run ... | head) must not kill the job.
            if let Err(err) = written {
                if err.kind() != std::io::ErrorKind::BrokenPipe {
                    return Err(Error::env(format!(
                        "cannot write the container's output: {err}"
                    )));
                }
            }
            left -= chunk;
        }
        let _ = stdout.flush().await;
        let _ = stderr.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![stream, 0, 0, 0];
        out.extend_from_slice(&u32::try_from(payload.len()).unwrap().to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[tokio::test]
    async fn splits_stdout_and_stderr() {
        let mut bytes = frame(1, b"hello ");
        bytes.extend(frame(2, b"oops\n"));
        bytes.extend(frame(1, b"world\n"));
        bytes.extend(frame(1, &vec![b'x'; 100_000]));
        let (mut out, mut err) = (Vec::new(), Vec::new());
        demultiplex(&mut bytes.as_slice(), &mut out, &mut err)
            .await
            .unwrap();
        assert_eq!(&out[..12], b"hello world\n");
        assert_eq!(out.len(), 12 + 100_000);
        assert_eq!(err, b"oops\n");
    }

    #[tokio::test]
    async fn a_torn_frame_is_an_error() {
        let mut bytes = frame(1, b"hello");
        bytes.truncate(10);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert!(
            demultiplex(&mut bytes.as_slice(), &mut out, &mut err)
                .await
                .is_err()
        );
    }
}
