//! The HTTP server against slow and half-open clients: a connection age limit, a body read
//! timeout, and a shutdown that does not wait for them.

use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn server() -> (String, tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<std::io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let router =
        Router::new().route("/", get(|| async { "ok" })).route("/echo", post(|body: String| async move { body }));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(cartback::http::serve(listener, router, async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

/// Read until the server closes the connection; how long that took.
async fn closed_after(mut s: TcpStream, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit.saturating_sub(start.elapsed()), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn half_sent_headers_and_bodies_are_cut_off() {
    let (addr, _stop, _task) = server().await;
    let mut headers = TcpStream::connect(&addr).await.expect("connect");
    headers.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.expect("write");
    let mut body = TcpStream::connect(&addr).await.expect("connect");
    body.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly a part").await.expect("write");
    let limit = cartback::http::IDLE_READ + Duration::from_secs(3);
    let (h, b) = tokio::join!(closed_after(headers, limit), closed_after(body, limit));
    let h = h.expect("a request whose headers never end is closed");
    assert!(h >= cartback::http::IDLE_READ - Duration::from_secs(1), "not before the idle limit: {h:?}");
    assert!(b.is_some(), "a body that never ends is cut off");
    // A well-behaved client is still served.
    let mut ok = TcpStream::connect(&addr).await.expect("connect");
    ok.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.expect("write");
    let mut answer = String::new();
    ok.read_to_string(&mut answer).await.expect("read");
    assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("ok"), "{answer}");
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_waits_for_no_half_sent_request() {
    let (addr, stop, task) = server().await;
    let mut idle = Vec::new();
    let mut half = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(&addr).await.expect("connect");
        if i % 2 == 0 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.expect("half-sent");
            half.push(s);
        } else {
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.expect("idle keep-alive");
            idle.push(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    stop.send(()).expect("stop");
    // Idle keep-alive connections are closed at once …
    for s in idle.drain(..) {
        let closed = closed_after(s, Duration::from_secs(1)).await;
        assert!(closed.is_some(), "an idle connection was kept open at shutdown");
    }
    // … and the half-sent requests hold the shutdown no longer than its grace.
    task.await.expect("join").expect("serve");
    let took = start.elapsed();
    assert!(took <= cartback::http::SHUTDOWN_GRACE + Duration::from_secs(1), "shutdown waited {took:?} for clients");
    assert!(TcpStream::connect(&addr).await.is_err(), "no longer accepting");
    drop(half);
}
