//! The gateway's own HTTP/1.1 server loop, for the requests most API traffic is made of.
//!
//! hyper's server runs each connection through its dispatcher, a per-request service future
//! and its body channel; in the profile of the bench route that machinery is about 1.5 µs of
//! the gateway's ~6 µs of CPU per request. This loop reads a head, parses it with httparse,
//! runs the pipeline and writes the answer, all in the connection's task, with the head and
//! the first body bytes in one write.
//!
//! It takes only what it can serve exactly as hyper would: HTTP/1.1 requests without a body,
//! without `Upgrade` or `Expect`, other than HEAD and CONNECT, with a well-formed head of up
//! to 64 lines. At the first request it does not take, it hands the connection, with every
//! byte it has read and not served, to hyper (see `connection`), which serves it from there
//! on: streamed request bodies, upgrades, HTTP/2's preface, and the answers to malformed
//! requests stay hyper's.

mod date;
mod head;
mod rewind;

use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use http::HeaderName;
use http_body::Body as _;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::activity::Verdict;
use super::connection::ConnContext;
use crate::http1::{self, ChunkSize, NameMemo};
use crate::pipeline::{Answer, Gateway};
use head::{Framing, Parsed};
pub(super) use rewind::Rewind;

/// The longest partial head read here; past it (a head over 16 KiB) hyper takes over and
/// applies its own limits.
const MAX_HEAD: usize = 16 * 1024;

/// How the own loop left a connection.
pub(super) enum Outcome {
    /// Closed: the client left, idled out, or the gateway is shutting down.
    Closed,
    /// hyper serves the rest; these bytes were read and not served.
    Handoff(Bytes),
}

/// Serves requests from `io` until the connection ends or a request needs hyper.
pub(super) async fn serve<S>(
    io: &mut S,
    gateway: &Arc<Gateway>,
    context: &Arc<ConnContext>,
    shutdown: &CancellationToken,
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let limits = gateway.limits();
    let activity = &context.activity;
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut out = Vec::with_capacity(1024);
    let mut names = NameMemo::default();
    let watchdog =
        tokio::time::sleep_until(activity.first_check(limits.idle_timeout, limits.header_timeout));
    tokio::pin!(watchdog);
    loop {
        let (request, close) = loop {
            if !buf.is_empty() {
                match head::parse(&mut buf, &mut names) {
                    Parsed::Request { request, close } => break (request, close),
                    Parsed::Handoff => return Outcome::Handoff(buf.freeze()),
                    Parsed::Partial if buf.len() >= MAX_HEAD => {
                        return Outcome::Handoff(buf.freeze());
                    }
                    Parsed::Partial => {}
                }
            }
            if buf.capacity() - buf.len() < 1024 {
                buf.reserve(8 * 1024);
            }
            tokio::select! {
                biased;
                read = io.read_buf(&mut buf) => match read {
                    // hyper judges a head cut short, as it would have.
                    Ok(0) if !buf.is_empty() => return Outcome::Handoff(buf.freeze()),
                    Ok(0) | Err(_) => return Outcome::Closed,
                    Ok(_) => {}
                },
                () = &mut watchdog => {
                    match activity.check(limits.idle_timeout, limits.header_timeout) {
                        Verdict::Expired => return Outcome::Closed,
                        Verdict::CheckAt(at) => watchdog.as_mut().reset(at),
                    }
                }
                () = shutdown.cancelled() => return Outcome::Closed,
            }
        };
        let answer = gateway.handle(request, context.clone()).await;
        let closing = close || shutdown.is_cancelled();
        match respond(io, answer, closing, &mut out).await {
            Ok(true) => {}
            Ok(false) | Err(_) => {
                let _ = io.shutdown().await;
                return Outcome::Closed;
            }
        }
    }
}

/// Writes `answer`; true when the connection may serve another request.
async fn respond<S>(
    io: &mut S,
    answer: Answer,
    closing: bool,
    out: &mut Vec<u8>,
) -> io::Result<bool>
where
    S: AsyncWrite + Unpin,
{
    let (parts, mut body) = answer.response.into_parts();
    let (framing, closing) = head::encode(
        parts.status,
        &parts.headers,
        &answer.added,
        body.size_hint().exact(),
        closing,
        out,
    );
    let mut head_sent = false;
    let complete = match framing {
        Framing::None => true,
        Framing::Length(len) => {
            let mut left = len;
            loop {
                let Some(frame) = body.frame().await else {
                    break left == 0;
                };
                let Ok(data) = frame.map_err(io::Error::other)?.into_data() else {
                    continue;
                };
                if data.len() as u64 > left {
                    // More than announced: what was announced goes, then the connection ends.
                    let data = data.slice(..usize::try_from(left).unwrap_or(0));
                    send(io, out, &mut head_sent, &[&data]).await?;
                    break false;
                }
                left -= data.len() as u64;
                send(io, out, &mut head_sent, &[&data]).await?;
            }
        }
        Framing::Chunked => {
            let allowed = head::declared_trailers(&parts.headers);
            let mut trailers = Vec::new();
            loop {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let frame = frame.map_err(io::Error::other)?;
                match frame.into_data() {
                    Ok(data) if data.is_empty() => {}
                    Ok(data) => {
                        let size = ChunkSize::new(data.len());
                        let parts: [&[u8]; 3] = [size.as_bytes(), &data, b"\r\n"];
                        send(io, out, &mut head_sent, &parts).await?;
                    }
                    Err(frame) => {
                        if let Ok(fields) = frame.into_trailers() {
                            for (name, value) in &fields {
                                if allowed.iter().any(|a: &HeaderName| a == name) {
                                    http1::push_field(&mut trailers, name, value);
                                }
                            }
                        }
                    }
                }
            }
            send(io, out, &mut head_sent, &[b"0\r\n", &trailers, b"\r\n"]).await?;
            true
        }
    };
    if !head_sent {
        send(io, out, &mut head_sent, &[]).await?;
    }
    io.flush().await?;
    // The body (and with it the request's finishing work) ends once all is written.
    drop(body);
    Ok(complete && !closing)
}

/// Bodies up to this size go out in the head's buffer, in one `send`: copying them costs
/// less than a vectored write, which takes the kernel longer than a plain one.
const COPY_INTO_HEAD: usize = 4096;

/// Writes `parts` (at most three), after the head (`head`, the start of the buffer) when it
/// has not gone yet.
async fn send<S>(
    io: &mut S,
    head: &mut Vec<u8>,
    head_sent: &mut bool,
    parts: &[&[u8]],
) -> io::Result<()>
where
    S: AsyncWrite + Unpin,
{
    if !*head_sent && parts.iter().map(|p| p.len()).sum::<usize>() <= COPY_INTO_HEAD {
        for part in parts {
            head.extend_from_slice(part);
        }
        *head_sent = true;
        return io.write_all(head).await;
    }
    let mut all = [IoSlice::new(&[]); 4];
    let mut count = 0;
    if !*head_sent {
        all[0] = IoSlice::new(head);
        count = 1;
        *head_sent = true;
    }
    for part in parts.iter().filter(|p| !p.is_empty()) {
        all[count] = IoSlice::new(part);
        count += 1;
    }
    if let [single] = &all[..count] {
        return io.write_all(single).await;
    }
    let mut slices = &mut all[..count];
    while !slices.is_empty() {
        let written = io.write_vectored(slices).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, written);
    }
    Ok(())
}
