//! What the service tells its operators: logs through `tracing` (readable text by default, JSON by
//! `log.format = "json"`), Prometheus metrics ([`metrics`]) and, when `telemetry.otlp_endpoint` is
//! set, traces over OTLP ([`traces`]).

pub mod metrics;
pub mod ops;
pub mod traces;

pub use metrics::Metrics;
pub use ops::{OpsGauges, ProviderOutcome};
pub use traces::Traces;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings, TelemetrySettings};

/// Installs the global subscriber once; later calls (tests) are no-ops. `RUST_LOG` wins over
/// `log.level` when set. Logs only: the trace spans stay off.
pub fn init(settings: &LogSettings) {
    let _ = tracing_subscriber::registry()
        .with(log_layer(settings))
        .try_init();
}

/// [`init`], plus the trace exporter when `telemetry.otlp_endpoint` is set: its requests run on
/// `runtime`. Returns the exporter to shut down at the end ([`Traces::shutdown`]); `Ok(None)`
/// when traces are off (then this is exactly [`init`]).
pub fn init_with_traces(
    log: &LogSettings,
    telemetry: &TelemetrySettings,
    runtime: &tokio::runtime::Handle,
) -> Result<Option<Traces>, String> {
    let Some(url) = telemetry.traces_url() else {
        init(log);
        return Ok(None);
    };
    let (traces, spans) = {
        // reqwest builds its connector on the runtime it will run on.
        let _entered = runtime.enter();
        traces::layer(&url, runtime.clone())?
    };
    let installed = tracing_subscriber::registry()
        .with(log_layer(log))
        .with(spans)
        .try_init();
    if installed.is_err() {
        // A subscriber was there already (tests): nothing would reach this exporter.
        traces.shutdown();
        return Ok(None);
    }
    tracing::info!(endpoint = %url, "exporting traces over OTLP");
    Ok(Some(traces))
}

/// Log lines to stderr, text or JSON, filtered by [`log_filter`]: the one log layer both
/// [`init`] and [`init_with_traces`] install.
fn log_layer<S>(settings: &LogSettings) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let layer = match settings.format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(ansi())
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    layer.with_filter(log_filter(settings)).boxed()
}

/// `log.level` (or `RUST_LOG`), with the trace spans' target off: log lines never show them.
fn log_filter(settings: &LogSettings) -> EnvFilter {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .unwrap_or_else(|| EnvFilter::new(&settings.level));
    match format!("{}=off", traces::TARGET).parse() {
        Ok(directive) => filter.add_directive(directive),
        Err(_) => filter,
    }
}

fn ansi() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}
