//! Accepted connections as HTTP/2 should see them: without vectored writes,
//! so that an answer of a few hundred bytes leaves in one write.
//!
//! h2 (hyper's HTTP/2) copies a DATA frame into its write buffer only when
//! the payload is under 256 bytes on a connection that can write vectored
//! (a `TcpStream`, a rustls stream), under 1 KiB on one that cannot. A larger
//! frame is chained: h2 stops buffering and writes it out before it takes the
//! next frame. A GetContacts answer is ~450 bytes, so every answer cost two
//! writes (headers and data, then the trailers), and with many calls in
//! flight on one connection every answer was a write of its own instead of
//! one write for all the answers ready. Reporting no vectored writes moves
//! the bound to 1 KiB: typical answers are copied once into the buffer and
//! go out together; larger ones (a partner with many contacts) are written
//! as before, in two writes instead of one writev.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tonic::transport::server::Connected;

/// A connection whose writes h2 buffers whole (see the module's comment).
#[derive(Debug)]
pub struct WholeWrites<T>(pub T);

impl<T: AsyncRead + Unpin> AsyncRead for WholeWrites<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WholeWrites<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        // Still one writev for whoever asks, though h2 will not.
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The peer's address and certificates reach the handlers as without the
/// wrapper (same `ConnectInfo` type).
impl<T: Connected> Connected for WholeWrites<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.0.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use prost::Message;
    use prost::bytes::Bytes;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_stream::StreamExt;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::body::Body;
    use tonic::codegen::http::uri::PathAndQuery;
    use tonic::codegen::{BoxFuture, Service, http};
    use tonic::server::{Grpc, NamedService, UnaryService};
    use tonic::transport::server::TcpConnectInfo;
    use tonic::{Request, Response, Status};
    use tonic_health::pb::HealthCheckRequest;

    use super::*;
    use crate::wire::{Encoded, EncodedCodec};

    /// A TCP connection that counts the writes made to it.
    struct Counted(TcpStream, Arc<AtomicUsize>);

    impl AsyncRead for Counted {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
        }
    }

    impl Counted {
        /// Counts a write that moved bytes.
        fn count(&self, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
            if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
                self.1.fetch_add(1, Ordering::SeqCst);
            }
            polled
        }
    }

    impl AsyncWrite for Counted {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let polled = Pin::new(&mut this.0).poll_write(cx, buf);
            this.count(polled)
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            bufs: &[io::IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            let polled = Pin::new(&mut this.0).poll_write_vectored(cx, bufs);
            this.count(polled)
        }

        fn is_write_vectored(&self) -> bool {
            self.0.is_write_vectored()
        }

        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_flush(cx)
        }

        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
        }
    }

    impl Connected for Counted {
        type ConnectInfo = TcpConnectInfo;

        fn connect_info(&self) -> TcpConnectInfo {
            self.0.connect_info()
        }
    }

    /// A unary method answering fixed bytes, as the encoded routes do.
    #[derive(Clone)]
    struct Fixed(Bytes);

    impl NamedService for Fixed {
        const NAME: &'static str = "test.Fixed";
    }

    impl UnaryService<HealthCheckRequest> for Fixed {
        type Response = Encoded;
        type Future = std::future::Ready<Result<Response<Encoded>, Status>>;

        fn call(&mut self, _: Request<HealthCheckRequest>) -> Self::Future {
            std::future::ready(Ok(Response::new(Encoded(self.0.clone()))))
        }
    }

    impl Service<http::Request<Body>> for Fixed {
        type Response = http::Response<Body>;
        type Error = Infallible;
        type Future = BoxFuture<Self::Response, Self::Error>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, request: http::Request<Body>) -> Self::Future {
            let method = self.clone();
            Box::pin(async move {
                let mut grpc = Grpc::new(EncodedCodec::<HealthCheckRequest>::default());
                Ok(grpc.unary(method, request).await)
            })
        }
    }

    /// Server writes during the second of two calls answered with a message
    /// of `answer_len` bytes (the first call sets the connection up).
    async fn writes_per_answer(whole: bool, answer_len: usize) -> usize {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let writes = Arc::new(AtomicUsize::new(0));
        let counter = writes.clone();
        let answer = HealthCheckRequest {
            service: "x".repeat(answer_len - 3),
        };
        assert_eq!(answer.encoded_len(), answer_len);
        let router =
            tonic::transport::Server::builder().add_service(Fixed(answer.encode_to_vec().into()));
        let accepted =
            TcpListenerStream::new(listener).map(move |s| s.map(|s| Counted(s, counter.clone())));
        let server = if whole {
            tokio::spawn(router.serve_with_incoming(accepted.map(|s| s.map(WholeWrites))))
        } else {
            tokio::spawn(router.serve_with_incoming(accepted))
        };
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        let mut client = tonic::client::Grpc::new(channel);
        let mut counted = 0;
        for call in 0..2 {
            writes.store(0, Ordering::SeqCst);
            client.ready().await.expect("ready");
            let got = client
                .unary(
                    Request::new(HealthCheckRequest::default()),
                    PathAndQuery::from_static("/test.Fixed/Get"),
                    tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckRequest>::default(),
                )
                .await
                .expect("call");
            assert_eq!(got.into_inner(), answer, "call {call}");
            counted = writes.load(Ordering::SeqCst);
        }
        server.abort();
        counted
    }

    #[tokio::test]
    async fn an_answer_of_a_few_hundred_bytes_leaves_in_one_write() {
        // Headers, data and trailers together; h2 alone writes the data
        // frame, then the trailers.
        assert_eq!(
            writes_per_answer(false, 450).await,
            2,
            "h2 without the wrapper"
        );
        assert_eq!(writes_per_answer(true, 450).await, 1);
        assert_eq!(writes_per_answer(true, 1000).await, 1);
    }
}
