//! `/runs/{id}/events`: server-sent events, the run as it is now and then every durable
//! change, until it ends.

use super::AppState;
use super::errors::{ApiError, ApiResult, PathParams};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::{Value, json};
use std::convert::Infallible;

/// How many event streams may be open at once; one more is refused with 503.
const MAX_STREAMS: usize = 1_000;
static STREAMS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_STREAMS);

/// How many event streams are open (for `/metrics`).
pub fn open_streams() -> usize {
    MAX_STREAMS - STREAMS.available_permits()
}

/// Server-sent events: the run as it is now, then every durable change, until it ends.
pub async fn run_events(
    State(st): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    let permit = STREAMS.try_acquire().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many event streams",
            format!("{MAX_STREAMS} event streams are open; try again later"),
        )
    })?;
    // Subscribe before reading the snapshot, so no change falls between the two.
    let mut feed = st.engine.live.events.subscribe();
    let snapshot = st.engine.load(&id).await?;
    let engine = st.engine.clone();
    let stream = async_stream_events(move |tx| async move {
        let _permit = permit;
        let finished =
            |status: &Value| matches!(status.as_str(), Some("succeeded" | "failed" | "cancelled"));
        let snapshot_event = |run: &crate::records::Run| {
            let value = json!(run);
            let done = finished(&value["status"]);
            (
                Event::default().event("snapshot").data(value.to_string()),
                done,
            )
        };
        let (first, done) = snapshot_event(&snapshot);
        if tx.send(first).await.is_err() || done {
            return;
        }
        loop {
            let received = tokio::select! {
                received = feed.recv() => received,
                // The client went away: end now, not at the run's next change (which may never
                // come for a waiting run).
                () = tx.closed() => return,
            };
            match received {
                Ok(event) if event.run == id => {
                    let end = event.kind == "run" && finished(&event.data["status"]);
                    let event = Event::default()
                        .event(event.kind)
                        .data(event.data.to_string());
                    if tx.send(event).await.is_err() || end {
                        return;
                    }
                }
                Ok(_) => {}
                // Too slow a reader missed changes: say so, then send the run as it is now, so
                // the reader is whole again (and ends if the run did).
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let lagged = Event::default().event("lagged").data(n.to_string());
                    if tx.send(lagged).await.is_err() {
                        return;
                    }
                    let Ok(run) = engine.load(&id).await else {
                        return;
                    };
                    let (now, done) = snapshot_event(&run);
                    if tx.send(now).await.is_err() || done {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// A stream fed by a task through a channel, so the producer can be plain async code.
fn async_stream_events<F, Fut>(produce: F) -> impl futures::Stream<Item = Result<Event, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Event>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(produce(tx));
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) },
    )
}
