//! Talks to systemd when the service runs under a `Type=notify` unit: READY=1 once migrations
//! ran and the server listens, STOPPING=1 when a stop begins, and watchdog pings when the unit
//! sets `WatchdogSec`. Outside systemd (`NOTIFY_SOCKET` unset) every call does nothing.

use std::time::Duration;

use sd_notify::NotifyState;

/// Start-up is complete: the port accepts connections and `/health` answers.
pub fn ready() {
    send(&[NotifyState::Ready]);
    if let Some(every) = sd_notify::watchdog_enabled() {
        // Half the deadline, as sd_watchdog_enabled(3) advises, so one late tick is no restart.
        let every = (every / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                send(&[NotifyState::Watchdog]);
            }
        });
    }
}

/// Shutdown has begun; systemd shows "deactivating" instead of waiting blind.
pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

fn send(state: &[NotifyState]) {
    // systemd not listening is not worth stopping the service for; say it once in the log.
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
