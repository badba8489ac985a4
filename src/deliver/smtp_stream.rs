//! The byte stream under a pooled SMTP connection.
//!
//! lettre speaks SMTP on a stream Cartback gives it. Cartback keeps a second handle on the
//! same stream so that it can write a message's body and its final `.` itself, with the
//! hand-over recorded between the two (docs/delivery.md); for that the stream must be the
//! plaintext one, so STARTTLS's handshake happens here too, under lettre.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lettre::transport::smtp::client::AsyncTokioStream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// The socket under one connection, plain or TLS.
pub(super) enum Socket {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
    /// Between the two during the STARTTLS handshake (or after it failed).
    Gone,
}

/// The plaintext stream of one connection, shared between lettre (which speaks the
/// conversation's commands on it and reads every reply) and `Conn::send` (smtp_pool.rs) (which writes a
/// message's body and final `.` on it directly, so that it can stop between the two).
/// Only one of them uses it at a time: lettre between its awaited calls, `send` while
/// lettre waits. The lock is held within one poll, never across an await.
#[derive(Clone)]
pub(super) struct Shared(Arc<std::sync::Mutex<Stream>>);

struct Stream {
    inner: Socket,
    /// Bytes read before the socket's own: the greeting lettre expects when a connection
    /// is handed to it again after STARTTLS.
    preface: Vec<u8>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared(..)")
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the connection's TLS handshake failed")
}

impl Shared {
    pub(super) fn new(inner: Socket) -> Self {
        Self(Arc::new(std::sync::Mutex::new(Stream { inner, preface: Vec::new() })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Stream> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Bytes the next reads return before the socket's.
    pub(super) fn preface(&self, bytes: &[u8]) {
        self.lock().preface = bytes.to_vec();
    }

    /// STARTTLS's handshake, after the relay's `220`.
    pub(super) async fn upgrade(&self, tls: &tokio_rustls::TlsConnector, host: &str) -> io::Result<()> {
        let Socket::Plain(tcp) = std::mem::replace(&mut self.lock().inner, Socket::Gone) else {
            return Err(gone());
        };
        let stream = tls_handshake(tls, host, tcp).await?;
        self.lock().inner = Socket::Tls(Box::new(stream));
        Ok(())
    }
}

impl AsyncRead for Shared {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let mut s = self.lock();
        if !s.preface.is_empty() {
            let n = s.preface.len().min(buf.remaining());
            buf.put_slice(&s.preface[..n]);
            s.preface.drain(..n);
            return Poll::Ready(Ok(()));
        }
        match &mut s.inner {
            Socket::Plain(t) => Pin::new(t).poll_read(cx, buf),
            Socket::Tls(t) => Pin::new(t.as_mut()).poll_read(cx, buf),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Shared {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match &mut self.lock().inner {
            Socket::Plain(t) => Pin::new(t).poll_write(cx, buf),
            Socket::Tls(t) => Pin::new(t.as_mut()).poll_write(cx, buf),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.lock().inner {
            Socket::Plain(t) => Pin::new(t).poll_flush(cx),
            Socket::Tls(t) => Pin::new(t.as_mut()).poll_flush(cx),
            Socket::Gone => Poll::Ready(Err(gone())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.lock().inner {
            Socket::Plain(t) => Pin::new(t).poll_shutdown(cx),
            Socket::Tls(t) => Pin::new(t.as_mut()).poll_shutdown(cx),
            Socket::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncTokioStream for Shared {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        match &self.lock().inner {
            Socket::Plain(t) => t.peer_addr(),
            Socket::Tls(t) => t.get_ref().0.peer_addr(),
            Socket::Gone => Err(gone()),
        }
    }
}

/// SMTP's transparency (RFC 5321 4.5.2): a line of the body that starts with `.` gets
/// another, so that only the terminator is a lone `.`. Then the terminator, on a line of
/// its own.
pub(super) fn dot_stuffed(body: &[u8]) -> (Vec<u8>, &'static [u8]) {
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut line_start = true;
    for &b in body {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        line_start = b == b'\n';
    }
    let end: &'static [u8] = if out.ends_with(b"\r\n") { b".\r\n" } else { b"\r\n.\r\n" };
    (out, end)
}

/// The TLS handshake on `tcp` for `host`.
pub(super) async fn tls_handshake(
    tls: &tokio_rustls::TlsConnector,
    host: &str,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    tls.connect(name, tcp).await
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_stuffing_leaves_only_the_terminator_alone_on_its_line() {
        let body = b".hidden\r\nline\r\n..two\r\n.\r\nend";
        let (stuffed, end) = super::dot_stuffed(body);
        assert_eq!(stuffed, b"..hidden\r\nline\r\n...two\r\n..\r\nend".to_vec());
        assert_eq!(end, b"\r\n.\r\n", "a body without a final line break gets one before the dot");
        let (stuffed, end) = super::dot_stuffed(b"Subject: hi\r\n\r\nbye\r\n");
        assert_eq!((stuffed.as_slice(), end), (&b"Subject: hi\r\n\r\nbye\r\n"[..], &b".\r\n"[..]));
        // Reading it back as a relay does gives the body.
        let mut wire = super::dot_stuffed(body).0;
        wire.extend_from_slice(b"\r\n");
        let read: Vec<&[u8]> = wire.split(|&b| b == b'\n').map(|l| l.strip_prefix(b".").unwrap_or(l)).collect();
        assert_eq!(read.join(&b'\n'), [body.as_slice(), b"\r\n"].concat());
    }
}
