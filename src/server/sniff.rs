//! Which HTTP version a connection speaks, decided from its first bytes (the HTTP/2
//! connection preface, RFC 9113 §3.4), and an IO wrapper that hands those bytes back.
//!
//! hyper-util's auto builder does the same, but replays the sniffed bytes as a read of
//! their own: hyper then finds a partial head in its 8 KiB read buffer, reserves
//! another 8 KiB and the buffer doubles to 16 KiB for the life of the connection.
//! [`Prefixed`] returns the sniffed bytes *and* whatever the socket already holds in
//! the same read, so a head that arrived in one segment is parsed from one read and
//! the buffer stays at its initial size (about 8 KiB less per keep-alive connection).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};

const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The protocol a connection opened with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    H1,
    H2,
}

/// Reads until the bytes either are the whole HTTP/2 preface or stop matching it (or
/// the peer closes), and returns the version with an IO that replays them.
pub async fn version<IO: AsyncRead + Unpin>(mut io: IO) -> io::Result<(Version, Prefixed<IO>)> {
    let mut buf = [0u8; 24];
    let mut filled = 0;
    let mut version = Version::H2;
    while filled < buf.len() {
        let n = io.read(&mut buf[filled..]).await?;
        if n == 0 && filled == 0 {
            // Closed before a byte: no request to serve (logged by the caller).
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        let seen = &buf[filled..filled + n];
        if n == 0 || seen != &H2_PREFACE[filled..filled + n] {
            version = Version::H1;
            filled += n;
            break;
        }
        filled += n;
    }
    Ok((
        version,
        Prefixed {
            inner: io,
            pre: buf,
            start: 0,
            end: filled,
        },
    ))
}

/// `inner`, with the bytes [`version`] consumed put back in front.
#[derive(Debug)]
pub struct Prefixed<IO> {
    inner: IO,
    pre: [u8; 24],
    start: usize,
    end: usize,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Prefixed<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.start == this.end {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let pre = &this.pre[this.start..this.end];
        let n = pre.len().min(buf.remaining());
        buf.put_slice(&pre[..n]);
        this.start += n;
        if this.start == this.end && buf.remaining() > 0 {
            // Top up from the socket in the same read; bytes already delivered must be
            // reported, so a pending or failed read here is left for the next call.
            let _ = Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        Poll::Ready(Ok(()))
    }
}

write_through!(Prefixed);

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    async fn sniff(chunks: &[&[u8]]) -> (Version, Vec<u8>, usize) {
        let mut b = tokio_test_builder();
        for c in chunks {
            b = b.read(c);
        }
        let (v, mut io) = version(b.build()).await.expect("sniff");
        let mut first = vec![0u8; 8192];
        let n = io.read(&mut first).await.expect("first read");
        let mut all = first[..n].to_vec();
        io.read_to_end(&mut all).await.expect("rest");
        (v, all, n)
    }

    fn tokio_test_builder() -> Builder {
        Builder(Vec::new())
    }

    /// A reader that returns the given chunks one read at a time.
    struct Builder(Vec<Vec<u8>>);
    impl Builder {
        fn read(mut self, c: &[u8]) -> Self {
            self.0.push(c.to_vec());
            self
        }
        fn build(self) -> Chunks {
            Chunks(self.0.into_iter().rev().collect())
        }
    }
    struct Chunks(Vec<Vec<u8>>);
    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            if let Some(c) = self.0.pop() {
                let n = c.len().min(buf.remaining());
                buf.put_slice(&c[..n]);
                if n < c.len() {
                    self.0.push(c[n..].to_vec());
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn http1_head_comes_back_whole_in_one_read() {
        let head: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer abc\r\n\r\n";
        let (v, all, first) = sniff(&[head]).await;
        assert_eq!(v, Version::H1);
        assert_eq!(all, head);
        assert_eq!(first, head.len(), "sniffed prefix and the rest in one read");
    }

    #[tokio::test]
    async fn http2_preface_split_over_reads() {
        let (v, all, _) = sniff(&[b"PRI * HT", b"TP/2.0\r\n\r\nSM\r\n\r\n", b"\0\0\0"]).await;
        assert_eq!(v, Version::H2);
        assert_eq!(all, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0");
    }

    #[tokio::test]
    async fn pri_lookalike_is_http1() {
        let (v, all, _) = sniff(&[b"PRI * HTTP/1.1\r\n\r\n"]).await;
        assert_eq!(v, Version::H1);
        assert_eq!(all, b"PRI * HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn early_eof_is_http1_with_what_arrived() {
        let (v, all, _) = sniff(&[b"PR"]).await;
        assert_eq!(v, Version::H1);
        assert_eq!(all, b"PR");
        // Closed before a byte: nothing to serve, an error the caller logs at debug.
        let err = version(tokio_test_builder().build()).await.err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::UnexpectedEof));
    }

    #[tokio::test]
    async fn small_reads_drain_the_prefix_in_order() {
        let (_, mut io) = version(tokio_test_builder().read(b"GET / HTTP/1.1\r\n\r\n").build())
            .await
            .expect("sniff");
        let mut out = Vec::new();
        let mut b = [0u8; 5];
        loop {
            let n = io.read(&mut b).await.expect("read");
            if n == 0 {
                break;
            }
            out.extend_from_slice(&b[..n]);
        }
        assert_eq!(out, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn writes_pass_through() {
        let (client, server) = tokio::io::duplex(64);
        let (mut c_read, mut c_write) = tokio::io::split(client);
        c_write
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("w");
        let (_, mut io) = version(server).await.expect("sniff");
        io.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.expect("w");
        let mut got = [0u8; 19];
        c_read.read_exact(&mut got).await.expect("r");
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
    }
}
