//! `/runs/{id}/events`: server-sent events, the run as it is now and then every durable
//! change, until it ends.

use super::AppState;
use super::errors::{ApiResult, PathParams};
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use serde_json::{Value, json};
use std::convert::Infallible;

/// Server-sent events: the run as it is now, then every durable change, until it ends.
pub async fn run_events(
    State(st): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Sse<impl futures::Stream<Item = Result<Event, Infallible>>>> {
    // Subscribe before reading the snapshot, so no change falls between the two.
    let mut feed = st.engine.live.events.subscribe();
    let snapshot = st.engine.load(&id).await?;
    let stream = async_stream_events(move |tx| async move {
        let finished =
            |status: &Value| matches!(status.as_str(), Some("succeeded" | "failed" | "cancelled"));
        let first = json!(snapshot);
        let done = finished(&first["status"]);
        if tx
            .send(Event::default().event("snapshot").data(first.to_string()))
            .await
            .is_err()
            || done
        {
            return;
        }
        loop {
            match feed.recv().await {
                Ok(event) if event.run == id => {
                    let end = event.kind == "run" && finished(&event.data["status"]);
                    if tx
                        .send(
                            Event::default()
                                .event(event.kind)
                                .data(event.data.to_string()),
                        )
                        .await
                        .is_err()
                        || end
                    {
                        return;
                    }
                }
                Ok(_) => {}
                // Too slow a reader: say so; it can fetch the run again.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let _ = tx
                        .send(Event::default().event("lagged").data(n.to_string()))
                        .await;
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
