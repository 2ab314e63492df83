//! CLI, config loading and wiring. Nothing else lives here.

use clap::{Parser, Subcommand};
use sipbridge::config::Config;
use sipbridge::{http, logging, sip};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "sipbridge", version, about = "SIP <-> WebRTC gateway")]
struct Cli {
    /// The gateway's TOML config file.
    #[arg(long, short, global = true, default_value = "sipbridge.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (the default).
    Run,
    /// Validate the config and every profile, print a summary, and exit.
    CheckConfig,
    /// Create or update the call-record database schema, and exit.
    Migrate,
    /// Drain the running gateway, as SIGTERM does: it refuses new calls, lets calls in progress
    /// go on for `[calls] drain_secs`, ends the rest and exits. Uses the config's HTTP address
    /// and first API token.
    Drain,
    /// Web console users.
    #[command(subcommand)]
    User(UserCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add (or replace) a console user; the password is read from standard input.
    Add {
        username: String,
        #[arg(long, default_value = "viewer", value_parser = ["admin", "viewer"])]
        role: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.config) {
        Ok(config) => config,
        Err(errors) => {
            eprint!("{errors}");
            eprintln!("{} error(s); the gateway was not started", errors.0.len());
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Run) {
        Command::CheckConfig => {
            print!("{}", config.summary());
            let media = &config.media;
            let candidates = match media.public_address {
                Some(public) => format!("{public} (media.public_address)"),
                None => sipbridge::webrtc_leg::host_candidate_addresses(media.address).iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
            };
            println!("  browser media on {} -> ICE host candidates: {candidates}", media.address);
            ExitCode::SUCCESS
        }
        Command::Migrate => migrate(config),
        Command::Drain => match sipbridge::shutdown::request_drain(&config) {
            Ok(reply) => {
                println!("{reply}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sipbridge drain: {e}");
                ExitCode::FAILURE
            }
        },
        Command::User(UserCommand::Add { username, role }) => {
            let role = if role == "admin" { sipbridge::config::ConsoleRole::Admin } else { sipbridge::config::ConsoleRole::Viewer };
            let mut password = String::new();
            if std::io::stdin().read_line(&mut password).is_err() {
                eprintln!("sipbridge user add: cannot read the password from standard input");
                return ExitCode::FAILURE;
            }
            match sipbridge::http::console::add_user(&config.general.data_dir, &username, password.trim_end_matches(['\r', '\n']), role) {
                Ok(()) => {
                    println!("console user {username} saved in {}", sipbridge::http::console::users_file(&config.general.data_dir).display());
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sipbridge user add: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run => run(config),
    }
}

fn migrate(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let _ = std::fs::create_dir_all(&config.general.data_dir);
    let result = runtime.block_on(async {
        let store = sipbridge::store::SqlStore::connect(&config.records_url()).await?;
        store.migrate().await?;
        Ok::<_, sipbridge::store::StoreError>(store.backend())
    });
    match result {
        Ok(backend) => {
            println!("call-record schema is up to date ({backend:?})");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sipbridge migrate: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The call-record store (PostgreSQL or SQLite) and its writer behind the durable spool.
fn start_records(config: &Config) -> anyhow::Result<(Arc<dyn sipbridge::store::CallStore>, sipbridge::store::RecorderHandle)> {
    let store = sipbridge::store::SqlStore::connect_lazy(&config.records_url())?;
    tracing::info!(backend = ?store.backend(), "call records");
    let store: Arc<dyn sipbridge::store::CallStore> = Arc::new(store);
    let spool = sipbridge::store::Spool::open(&config.general.data_dir.join("spool"))?;
    Ok((store.clone(), sipbridge::store::Recorder::start(spool, store)))
}

fn run(config: Config) -> ExitCode {
    logging::init(config.general.log_format, &config.general.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sipbridge: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.general.data_dir)?;
    tracing::info!(config = %config.file.display(), profiles = config.profiles.len(), "starting sipbridge");
    let mut endpoint = sip::endpoint::start(&config).await?;
    let sip_calls = std::mem::replace(&mut endpoint.calls, tokio::sync::mpsc::channel(1).1);
    let browsers = Arc::new(sipbridge::call::registry::BrowserRegistry::default());
    let media = &config.media;
    let workers = sipbridge::media::engine::WorkerSettings { workers: media.workers, webrtc_port: media.webrtc_port, realtime_priority: media.realtime_priority, fill_percent: media.worker_fill_percent, slice_us: media.worker_slice_us, cpus: media.worker_cpus.clone(), codec_batch: std::time::Duration::from_millis(u64::from(media.codec_batch_ms)) };
    let engine = sipbridge::media::engine::MediaEngine::with_workers(media.address, media.public_address, media.rtp_port_min, media.rtp_port_max, workers)?;
    // At start, not at the first call: the operator sees the WebRTC ports in the log (and a
    // port that cannot be bound stops the gateway here).
    for (index, worker) in engine.workers()?.iter().enumerate() {
        let ports: Vec<String> = worker.webrtc_addresses.iter().map(ToString::to_string).collect();
        tracing::info!(worker = index, webrtc = %ports.join(", "), "media worker started");
    }
    let local = config.profiles.iter().find(|p| p.kind == sipbridge::config::ProfileKind::Local);
    // The gateway's legs offer host candidates (and `public_address` as NAT 1:1): browsers,
    // through TURN if they must, reach them directly. STUN would only rediscover that address
    // and TURN would relay what can flow directly, so `http.ice_servers` is for browsers only.
    let webrtc = sipbridge::call::echo::WebRtcSettings {
        public_ip: media.public_address,
        lite: media.ice_lite,
        failed_timeout: std::time::Duration::from_secs(media.ice_failed_timeout_secs),
    };
    let (record_store, records) = start_records(&config)?;
    let call_layer = Arc::new(sipbridge::call::inbound::CallLayer {
        sip: endpoint.status.clone(),
        engine: engine.clone(),
        browsers: browsers.clone(),
        webrtc: webrtc.clone(),
        opus_complexity: media.opus_complexity,
        media_timeouts: sipbridge::media::session::Timeouts {
            rtp: std::time::Duration::from_secs(media.rtp_timeout_secs),
            rtp_on_hold: std::time::Duration::from_secs(media.rtp_hold_timeout_secs),
        },
        limits: config.calls.clone(),
        profile_caps: config.profiles.iter().filter_map(|p| Some((p.name.clone(), p.max_calls?))).collect(),
        srtp: sipbridge::call::sdes::SrtpPolicies::from_profiles(&config.profiles),
        active: Arc::new(sipbridge::call::limits::CallCounter::default()),
        records: records.clone(),
        stats: Arc::new(sipbridge::call::call_log::CallStats::default()),
        drain: Arc::new(sipbridge::call::drain::Drain::default()),
        user_profiles: local.map(|p| p.users.iter().map(|u| (u.username.clone(), u.profiles.clone())).collect()).unwrap_or_default(),
    });
    let stopping = sipbridge::shutdown::stop_sequence(call_layer.clone(), Duration::from_secs(config.calls.drain_secs), records.clone());

    tokio::spawn(sipbridge::call::inbound::run(call_layer.clone(), sip_calls));
    let signaling = http::SignalingContext {
        jwt_secret: config.http.jwt_secret.as_ref().map(|s| s.0.as_bytes().to_vec()),
        server: config.sip.user_agent.clone(),
        ice_servers: config.http.ice_servers.clone(),
        engine,
        opus_complexity: media.opus_complexity,
        local_users: local.map(|p| p.users.clone()).unwrap_or_default(),
        realm: local.and_then(|p| p.domain.clone()).unwrap_or_default(),
        webrtc,
        login_guard: http::LoginGuard::default(),
        browsers,
        calls: call_layer,
        websockets: Default::default(),
    };
    let signaling = Arc::new(signaling);
    let certificate = match &config.http.tls {
        Some(tls) => {
            let (cert, key) = sipbridge::sip::transport::tls::certificate_files(sipbridge::sip::transport::tls::certificate_source(&config, tls))?;
            Some(Arc::new(http::tls::Certificate::load(cert, key)?))
        }
        None => None,
    };
    let mut state = http::AppState {
        sip: endpoint.status.clone(),
        api_tokens: Arc::new(config.http.api_tokens.clone()),
        signaling: signaling.clone(),
        records: record_store,
        recorder: records,
        console: Arc::new(http::ConsoleContext {
            users: console_users(&config)?,
            sessions: http::console::Sessions::open(&config.general.data_dir)?,
            secure_cookies: certificate.is_some(),
        }),
        sip_websocket: None,
    };
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot bind HTTP {}: {e}", config.http.listen))?;
    let http_address = listener.local_addr()?;
    if config.http.sip_websocket {
        state.sip_websocket = Some(http::sip_ws::SipWebSocket { entry: endpoint.websocket.clone(), local: http_address, secure: certificate.is_some() });
        tracing::info!(address = %http_address, path = "/sip", "SIP over WebSocket listening");
    }
    if config.http.api_tokens.is_empty() {
        tracing::info!("no http.api_tokens configured: /metrics and /api/v1 answer console sessions only");
    }
    let app = http::router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
    let stopped = async move {
        stopping.await;
        // Browsers were told how their calls ended; their sockets close (bounded).
        let _ = tokio::time::timeout(sipbridge::shutdown::WEBSOCKET_CLOSE_GRACE, signaling.websockets.none_open()).await;
    };
    let Some(certificate) = certificate else {
        tracing::info!(address = %http_address, "HTTP listening");
        banner(&config, http_address, "http");
        // Signaling frames are small and latency-bound: without TCP_NODELAY a second frame in a row
        // (a candidate after `incoming`) waits for the browser's delayed ACK, 40 ms on Linux.
        // A fixed send buffer: the kernel would otherwise grow it to megabytes for a client that
        // stops reading, and the back-pressure that bounds a slow browser (its calls wait to push,
        // and count it) would start only once that much was queued.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
            let _ = socket2::SockRef::from(&*tcp).set_send_buffer_size(http::SEND_BUFFER);
        });
        axum::serve(listener, app).with_graceful_shutdown(stopped).await?;
        tracing::info!("stopped");
        return Ok(());
    };
    tracing::info!(address = %http_address, cert = %certificate.file().display(), "HTTPS listening");
    http::tls::reload_on_sighup(certificate.clone())?;
    banner(&config, http_address, "https");
    // tap_io only so axum's ConnectInfo applies to this listener's address type.
    let listener = axum::serve::ListenerExt::tap_io(http::tls::HttpsListener::start(listener, certificate)?, |_| {});
    let server = axum::serve(listener, app).with_graceful_shutdown(stopped);
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

/// The console's users; on a first start, an `admin` whose one-time password is logged here,
/// once (as Grafana and Jenkins do): the first login must replace it.
fn console_users(config: &Config) -> anyhow::Result<http::console::ConsoleUsers> {
    let data_dir = &config.general.data_dir;
    if let Some(password) = http::console::first_admin(&config.http.console_users, data_dir).map_err(|e| anyhow::anyhow!("cannot create the first console user: {e}"))? {
        tracing::warn!(
            "no console user existed: created user `admin` with the one-time password {password} \
             (log in to the console and choose a new one; this password is not shown again)"
        );
    }
    Ok(http::console::ConsoleUsers::new(http::console::load_users(&config.http.console_users, data_dir), data_dir))
}

/// Where to point a browser, once everything listens.
fn banner(config: &Config, http: std::net::SocketAddr, scheme: &str) {
    let host = match http.ip() {
        ip if ip.is_unspecified() => "localhost".to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        ip => ip.to_string(),
    };
    let base = format!("{scheme}://{host}:{}", http.port());
    let local = config.profiles.iter().find(|p| p.kind == sipbridge::config::ProfileKind::Local);
    let first_user = local.and_then(|p| p.users.first()).map(|u| format!(" (e.g. local user {})", u.username)).unwrap_or_default();
    tracing::info!("sipbridge is ready");
    tracing::info!("  softphone:      {base}/  log in{first_user} and call `echo` to hear yourself");
    tracing::info!("  console:        {base}/console");
    tracing::info!("  echo extension: echo (the media engine plays back what it hears)");
}

