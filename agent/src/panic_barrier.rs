//! The server's panic barrier: a request whose handler panics (while the
//! handler's future is created or polled) gets INTERNAL with the panic message,
//! and the connection and the agent go on serving. Blocking engine work has its
//! own barrier in `jobs`; this one covers the async handlers themselves, unary
//! calls included. Also where `landfall.inject=panic:<Rpc>` fires (see
//! `init::inject`).

/// The tower layer to put around the gRPC routes.
#[derive(Clone, Copy)]
pub struct CatchPanicLayer;

impl<S> tower::Layer<S> for CatchPanicLayer {
    type Service = CatchPanic<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic { inner }
    }
}

/// The service [`CatchPanicLayer`] makes.
#[derive(Clone)]
pub struct CatchPanic<S> {
    inner: S,
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast::<String>()
        .map(|s| *s)
        .or_else(|p| p.downcast::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|_| "unknown panic".into())
}

fn panic_reply(rpc: &str, msg: &str) -> http::Response<tonic::body::Body> {
    tracing::error!("{rpc} hit an internal error (the agent keeps serving): {msg}");
    tonic::Status::internal(format!(
        "{}: {rpc} hit an internal error: {msg}",
        crate::jobs::Reason::Internal
    ))
    .into_http()
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<S, B> tower::Service<http::Request<B>> for CatchPanic<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        use futures::FutureExt as _;
        use std::panic::AssertUnwindSafe;
        let rpc = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let inner = &mut self.inner;
        let fut = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if crate::init::inject::faults().panics(&rpc) {
                panic!(
                    "injected fault: {}=panic:{rpc}",
                    crate::init::inject::CMDLINE_PARAM
                );
            }
            inner.call(req)
        }));
        Box::pin(async move {
            let fut = match fut {
                Ok(f) => f,
                Err(p) => return Ok(panic_reply(&rpc, &panic_message(p))),
            };
            match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(r) => r,
                Err(p) => Ok(panic_reply(&rpc, &panic_message(p))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tests::grpc_status;

    #[tokio::test]
    async fn a_panicking_handler_becomes_internal_and_the_service_goes_on() {
        use tower::{Layer, Service, ServiceExt};
        let inner = tower::service_fn(|req: http::Request<()>| async move {
            if req.uri().path().ends_with("/Boom") {
                panic!("handler exploded");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::empty()))
        });
        let mut svc = CatchPanicLayer.layer(inner);
        let req = |p: &str| http::Request::builder().uri(p).body(()).unwrap();
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(req("/landfall.v1.Agent/Boom"))
            .await
            .unwrap();
        let (code, msg) = grpc_status(&r);
        assert_eq!(code, "13");
        assert!(
            msg.contains("Boom hit an internal error: handler exploded"),
            "{msg}"
        );
        let r = svc
            .ready()
            .await
            .unwrap()
            .call(req("/landfall.v1.Agent/Status"))
            .await
            .unwrap();
        assert_eq!(grpc_status(&r).0, "");
    }
}
