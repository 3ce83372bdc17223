//! The command line: what each subcommand does, and its exit code (0 done, 1 failed, 2 bad
//! configuration or usage). Problems are printed as one line on stderr.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod backup;
mod config;
mod connection;
mod dashboard;
mod meta;
mod systemd;

use crate::app::{shutdown_on_signal, Application, StartOptions};
use crate::auth::TokenVerifier;
use crate::config::{DatabaseUrl, Settings};
use crate::db::{self, Db};
use crate::domain::{parse_day, Level};
use crate::jobs::SyncJobId;
use crate::pipeline::{Pipeline, SyncRequest};
use crate::{demo, providers, telemetry};

#[derive(Debug, Parser)]
#[command(
    name = "ads-stats",
    version = crate::build_info::LONG_VERSION,
    about = "Keeps advertising statistics: scheduled provider syncs into raw, daily and sellpage tables."
)]
pub struct Cli {
    /// A TOML file applied over config/default.toml and config/{ADS_STATS_ENV}.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: HTTP API, job workers and scheduler (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Exit 0 when a running instance's /health answers 200 (for Docker HEALTHCHECK and scripts).
    CheckHealth {
        /// The health URL; defaults to the configured host and port.
        #[arg(long)]
        url: Option<String>,
    },
    /// Sync one seller now, in this process, and print what was written.
    Sync {
        #[arg(long)]
        seller: String,
        /// Day to sync, YYYY-MM-DD (default: today in the time zone of each of the seller's
        /// active connections).
        #[arg(long)]
        date: Option<String>,
        /// CAMPAIGN, ADSET or AD (default: all three).
        #[arg(long)]
        level: Option<String>,
    },
    /// Print a signed API token for a seller (refused in production).
    Token {
        #[arg(long)]
        seller: String,
        /// How long the token is valid, e.g. 30m, 1h, 7d.
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// Print the effective settings after every layer (files, environment) as TOML, each value
    /// with the layer that set it; secrets print as <redacted>.
    Config {
        /// Only check the settings: exit 0 when valid, 2 (with one line naming the key) when not.
        #[arg(long)]
        check: bool,
    },
    /// Copy the SQLite database to FILE while the service runs (a consistent online copy) and
    /// print its size and row counts. On PostgreSQL, use pg_dump.
    Backup {
        /// Where the copy goes.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Replace FILE when it exists.
        #[arg(long)]
        force: bool,
    },
    /// Manage an ad account connection: its sealed access token and its time zone.
    Connection {
        #[command(subcommand)]
        command: connection::ConnectionCommand,
    },
    /// Meta connections: compare a day's numbers with Meta's before trusting them.
    Meta {
        #[command(subcommand)]
        command: meta::MetaCommand,
    },
    /// The operator dashboard's credentials.
    Dashboard {
        #[command(subcommand)]
        command: dashboard::DashboardCommand,
    },
    /// Seed a small demo data set, start the service with the scheduler, tick once at once, and
    /// print a token with ready-to-paste curl commands.
    Demo,
}

/// Exit code for configuration and usage problems.
pub const EXIT_CONFIG: i32 = 2;

/// Runs the parsed command line; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    if let Some(Command::Config { check }) = &cli.command {
        return config::run(cli.config.as_deref(), *check);
    }
    // Needs no settings: it only turns a password into a hash for them.
    if let Some(Command::Dashboard { command }) = &cli.command {
        return dashboard::run(command);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ads-stats: {e}");
            return EXIT_CONFIG;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::CheckHealth { url } = &command {
        return check_health(&settings, url.as_deref());
    }
    if let Command::Token { seller, ttl } = &command {
        return print_token(&settings, seller, ttl);
    }
    if let Command::Backup { to, force } = &command {
        return backup::run(&settings, to, *force);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ads-stats: cannot start the async runtime: {e}");
            return 1;
        }
    };
    // The trace exporter (when `telemetry.otlp_endpoint` is set) sends on this runtime.
    let traces =
        match telemetry::init_with_traces(&settings.log, &settings.telemetry, runtime.handle()) {
            Ok(traces) => traces,
            Err(e) => {
                eprintln!("ads-stats: {e}");
                return 1;
            }
        };
    let outcome = runtime.block_on(async move {
        match command {
            Command::Serve => serve(&settings, StartOptions::default()).await,
            Command::Migrate => migrate(&settings).await,
            Command::Sync {
                seller,
                date,
                level,
            } => sync(&settings, &seller, date.as_deref(), level.as_deref()).await,
            Command::Demo => run_demo(settings).await,
            Command::Connection { command } => connection::run(&settings, command).await,
            Command::Meta { command } => meta::run(&settings, command).await,
            Command::CheckHealth { .. }
            | Command::Token { .. }
            | Command::Config { .. }
            | Command::Dashboard { .. }
            | Command::Backup { .. } => Ok(()),
        }
    });
    // The last spans, exported while the runtime their requests run on is still up.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    match outcome {
        Ok(()) => 0,
        Err(CommandError::Usage(msg)) => {
            eprintln!("ads-stats: {msg}");
            EXIT_CONFIG
        }
        Err(CommandError::Failed(msg)) => {
            eprintln!("ads-stats: {msg}");
            1
        }
    }
}

enum CommandError {
    /// Bad input on the command line.
    Usage(String),
    /// The command could not do its work.
    Failed(String),
}

fn failed(e: impl std::fmt::Display) -> CommandError {
    CommandError::Failed(e.to_string())
}

async fn serve(settings: &Settings, options: StartOptions) -> Result<(), CommandError> {
    let stop = shutdown_on_signal();
    let provider = providers::from_settings(settings).map_err(failed)?;
    let app = Application::start(settings, provider, options)
        .await
        .map_err(failed)?;
    // Application::start returns once migrations ran and the socket listens: ready for systemd.
    systemd::ready();
    stop.cancelled().await;
    systemd::stopping();
    app.shutdown().await;
    Ok(())
}

async fn migrate(settings: &Settings) -> Result<(), CommandError> {
    let db = Db::connect(&settings.database).map_err(failed)?;
    let applied = db
        .run_migrations(&settings.database_url())
        .await
        .map_err(failed)?;
    println!("{applied} migration(s) applied on {}", db.backend_name());
    Ok(())
}

async fn sync(
    settings: &Settings,
    seller: &str,
    date: Option<&str>,
    level: Option<&str>,
) -> Result<(), CommandError> {
    let levels = match level {
        Some(l) => vec![l.parse::<Level>().map_err(CommandError::Usage)?],
        None => Level::ALL.to_vec(),
    };
    let date = match date {
        Some(d) => Some(parse_day(d).map_err(CommandError::Usage)?),
        None => None,
    };
    let db = Db::connect(&settings.database).map_err(failed)?;
    if settings.database.run_migrations {
        db.run_migrations(&settings.database_url())
            .await
            .map_err(failed)?;
    }
    // Without --date: today in each of the seller's connections' zones, as a manual sync does.
    let dates = {
        let mut conn = db.conn().await.map_err(failed)?;
        let facts = db::catalog::seller_for_sync(&mut conn, seller)
            .await
            .map_err(failed)?;
        if facts.status.is_none() {
            return Err(CommandError::Usage(format!("no seller with id {seller}")));
        }
        match date {
            Some(d) => vec![d],
            None => {
                crate::jobs::scheduler::local_todays(chrono::Utc::now(), &facts.timezones, seller)
            }
        }
    };
    let pipeline = Pipeline::new(
        db,
        providers::from_settings(settings).map_err(failed)?,
        settings.stats.aggregation,
    )
    .with_account_refresh(settings.meta.account_refresh);
    for (date, level) in dates
        .iter()
        .flat_map(|d| levels.iter().map(move |l| (*d, *l)))
    {
        let request = SyncRequest::one_day(seller, level, date);
        let s = pipeline.run(&request).await.map_err(failed)?;
        println!(
            "{} {date} {level:<8} entities={} raw_rows={} daily_rows={} sellpage_rows={} duration_ms={}",
            seller, s.entities, s.raw_rows, s.daily_rows, s.sellpage_rows, s.duration_ms
        );
    }
    Ok(())
}

fn print_token(settings: &Settings, seller: &str, ttl: &str) -> i32 {
    if settings.is_production() {
        eprintln!(
            "ads-stats: token is for trying the API and is refused when ADS_STATS_ENV=production"
        );
        return EXIT_CONFIG;
    }
    let ttl = match humantime::parse_duration(ttl) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            eprintln!("ads-stats: --ttl `{ttl}` is not a duration such as 30m, 1h or 7d");
            return EXIT_CONFIG;
        }
    };
    let max = settings.auth.max_token_lifetime;
    if !max.is_zero() && ttl > max {
        eprintln!(
            "ads-stats: --ttl is longer than auth.max_token_lifetime ({}); the service would refuse the token",
            humantime::format_duration(max)
        );
        return EXIT_CONFIG;
    }
    match TokenVerifier::new(&settings.auth).issue(seller, ttl) {
        Ok(token) => {
            println!("{token}");
            0
        }
        Err(e) => {
            eprintln!("ads-stats: {e}");
            1
        }
    }
}

/// A day, or less when `auth.max_token_lifetime` is shorter (the service would refuse more).
fn demo_token_ttl(settings: &Settings) -> Duration {
    let day = Duration::from_secs(24 * 3600);
    match settings.auth.max_token_lifetime {
        max if max.is_zero() => day,
        max => day.min(max),
    }
}

async fn run_demo(mut settings: Settings) -> Result<(), CommandError> {
    if settings.is_production() {
        return Err(CommandError::Usage(
            "demo seeds sample data and is refused when ADS_STATS_ENV=production".into(),
        ));
    }
    settings.scheduler.enabled = true;
    let dashboard_login = demo::dashboard_login(&mut settings).map_err(failed)?;
    let db = Db::connect(&settings.database).map_err(failed)?;
    db.run_migrations(&settings.database_url())
        .await
        .map_err(failed)?;
    let seeded = {
        let mut conn = db.conn().await.map_err(failed)?;
        db::catalog::insert_catalog(&mut conn, &demo::catalog())
            .await
            .map_err(failed)?
    };
    let stop = shutdown_on_signal();
    let app = Application::start(
        &settings,
        providers::from_settings(&settings).map_err(failed)?,
        StartOptions { tick_now: true },
    )
    .await
    .map_err(failed)?;
    let token = TokenVerifier::new(&settings.auth)
        .issue(demo::DEMO_SELLER, demo_token_ttl(&settings))
        .map_err(failed)?;
    let host = match settings.server.host.as_str() {
        "0.0.0.0" | "::" => "127.0.0.1",
        h => h,
    };
    let base = format!("http://{host}:{}", app.port());
    let today = app.scheduler().today(chrono::Utc::now());
    let job = SyncRequest::one_day(demo::DEMO_SELLER, Level::Campaign, today).job_id();
    let where_ = match settings.database_url() {
        DatabaseUrl::Sqlite(path) => path.display().to_string(),
        DatabaseUrl::Postgres(_) => "PostgreSQL".into(),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nads-stats demo is running on {base} (data: {where_}; {seeded} demo rows added).\n\
         A first sync tick has been queued; more follow on `{}`.\n\n\
         TOKEN={token}\n\n\
         curl -s {base}/health\n\
         curl -s -X POST {base}/api/ads-manager/sync -H \"Authorization: Bearer $TOKEN\"\n\
         curl -s -X POST {base}/api/ads-manager/sync -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"date\":\"{}\"}}'\n\
         curl -s {base}/api/ads-manager/sync/{job} -H \"Authorization: Bearer $TOKEN\"\n\
         curl -s '{base}/api/ads-manager/stats?level=CAMPAIGN&from={}&to={today}' -H \"Authorization: Bearer $TOKEN\"\n\
         curl -s '{base}/api/ads-manager/stats/summary?level=CAMPAIGN&from={}&to={today}' -H \"Authorization: Bearer $TOKEN\" -H 'Accept: text/csv'\n\n\
         API document: {base}/api/docs/   Metrics: {base}/metrics",
        settings.scheduler.cron,
        today.pred_opt().unwrap_or(today),
        today.pred_opt().unwrap_or(today),
        today.pred_opt().unwrap_or(today),
    );
    let _ = match dashboard_login {
        Some((user, password)) => writeln!(
            out,
            "Dashboard: {base}/dashboard (user {user}, password {password}; new at every start)"
        ),
        None => writeln!(
            out,
            "Dashboard: {base}/dashboard (log in with the configured dashboard.admin_user)"
        ),
    };
    let _ = writeln!(out, "\nStop with Ctrl-C.");
    drop(out);
    app.run_until(stop).await;
    Ok(())
}

/// A bare HTTP/1.1 GET: enough for a probe, and no HTTP client in the binary.
fn check_health(settings: &Settings, url: Option<&str>) -> i32 {
    let default;
    let url = match url {
        Some(u) => u,
        None => {
            let host = match settings.server.host.as_str() {
                "0.0.0.0" => "127.0.0.1",
                "::" => "[::1]",
                h => h,
            };
            default = format!("http://{host}:{}/health", settings.server.port);
            &default
        }
    };
    match http_get(url, Duration::from_secs(5)) {
        Ok((200, body)) => {
            println!("{body}");
            0
        }
        Ok((status, body)) => {
            eprintln!("ads-stats: {url} answered {status}: {body}");
            1
        }
        Err(e) => {
            eprintln!("ads-stats: {url}: {e}");
            1
        }
    }
}

fn http_get(url: &str, timeout: Duration) -> Result<(u16, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let address = authority
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {authority}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {authority}"))?;
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("cannot connect: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nUser-Agent: ads-stats-check-health\r\n\r\n"
    )
    .map_err(|e| format!("cannot send: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("no answer: {e}"))?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or("not an HTTP answer")?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.trim().to_string())
        .unwrap_or_default();
    Ok((status, body))
}
