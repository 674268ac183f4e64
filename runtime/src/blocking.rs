//! CPU-heavy work on blocking threads, a few at a time: parsing, validating and planning a
//! large workflow takes seconds of CPU, and on the async workers it would keep health checks,
//! refused tokens and event streams waiting behind it.

use tokio::sync::Semaphore;

/// How many such jobs run at once; more wait their turn (the machines this runs on have few
/// cores, and the async workers need some).
const AT_ONCE: usize = 2;

/// Runs `work` on a blocking thread once a turn is free. A panic in it is an error here.
pub async fn run<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    static TURNS: Semaphore = Semaphore::const_new(AT_ONCE);
    let _turn = TURNS
        .acquire()
        .await
        .map_err(|_| "the blocking pool is closed".to_string())?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("the work failed: {e}"))
}
