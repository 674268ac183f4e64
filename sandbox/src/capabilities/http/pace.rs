//! `http_pace`: at most one request to each URL every so long, counted across every call of a
//! plugin in this process, so that two steps (or a step and a notifier run) posting to the
//! same Slack webhook at once are spaced as the webhook's rate limit asks, without the plugin
//! keeping any state of its own.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// The longest pace a manifest may ask for.
pub(super) const MAX_PACE: Duration = Duration::from_secs(3600);

/// Past this many URLs remembered, the ones whose next turn has come are forgotten.
const PRUNE_AT: usize = 10_000;

/// When the next request to each (plugin, URL) may go.
fn next_turns() -> &'static Mutex<HashMap<String, Instant>> {
    static NEXT: OnceLock<Mutex<HashMap<String, Instant>>> = OnceLock::new();
    NEXT.get_or_init(Mutex::default)
}

/// Takes the next turn of `plugin` for `url` (scheme, host, port and path: no query) and waits
/// for it. Turns are handed out in the order asked, `every` apart.
pub(super) async fn wait_turn(plugin: &str, url: &str, every: Duration) {
    let turn = {
        let mut next = next_turns().lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if next.len() >= PRUNE_AT {
            next.retain(|_, at| *at > now);
        }
        let key = format!("{plugin}\n{url}");
        let turn = next
            .get(&key)
            .copied()
            .filter(|at| *at > now)
            .unwrap_or(now);
        next.insert(key, turn + every);
        turn
    };
    tokio::time::sleep_until(turn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn turns_for_one_url_are_spaced_and_other_urls_do_not_wait() {
        let every = Duration::from_secs(1);
        let start = Instant::now();
        wait_turn("p", "https://hooks/a", every).await;
        wait_turn("p", "https://hooks/a", every).await;
        assert_eq!(start.elapsed(), every);
        wait_turn("p", "https://hooks/b", every).await;
        wait_turn("q", "https://hooks/a", every).await;
        assert_eq!(start.elapsed(), every, "another URL or plugin waited");
        let (a, b) = tokio::join!(
            async {
                wait_turn("p", "https://hooks/a", every).await;
                start.elapsed()
            },
            async {
                wait_turn("p", "https://hooks/a", every).await;
                start.elapsed()
            }
        );
        assert_eq!((a.min(b), a.max(b)), (every * 2, every * 3));
    }
}
