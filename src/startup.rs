//! Wiring: database, migrations, actors and the HTTP server.

use std::net::TcpListener;
use std::time::Duration;

use actix::{Actor, Addr};
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::{from_fn, Compress};
use actix_web::{web, App, HttpServer};
use anyhow::Context;
use gophermart_actors::account::{AccountRegistry, Accounts};
use gophermart_actors::accrual::schedule::Backoff;
use gophermart_actors::accrual::{
    AccrualClient, AccrualGuardian, AccrualSettings, AccrualSupervisor, Drain,
};
use gophermart_actors::coupons::CampaignRegistry;
use gophermart_actors::events::{EventRelay, RelaySettings};
use gophermart_actors::figures::Figures;
use gophermart_actors::fulfilment::{DispatchSettings, FulfilmentClient, FulfilmentDispatcher};
use gophermart_actors::leadership::{Campaign, Candidate, Leadership};
use gophermart_actors::orders::OrderRegistry;
use gophermart_actors::rewards::Catalogue;
use gophermart_actors::{settings, Db};
use gophermart_migration::{Migrator, MigratorTrait};
use rand::RngCore;

use crate::auth::{PasswordHasher, Tokens};
use crate::body::BodyDeadline;
use crate::config::{listen_address, with_scheme, Settings};
use crate::emulator::{self, EmulatorSettings};
use crate::metrics::{Metrics, Sources};
use crate::observe;
use crate::protect;
use crate::roles::{RoleToken, Roles};
use crate::routes;
use crate::throttle::Throttles;
use crate::warehouse::{self, WarehouseSettings};
use utoipa_actix_web::service_config::ServiceConfig;

/// Seconds the server waits for in-flight requests after a stop signal.
const SHUTDOWN_TIMEOUT_SECS: u64 = 5;

/// How long a stop waits for accrual answers in flight to be persisted.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// How long the request line and headers may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a closing connection may take to receive the rest of its answer.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// File descriptors kept out of the connection budget: database connections, the accrual
/// client's pool, the emulator, logs, the listener.
const RESERVED_FILES: u64 = 256;

/// Raises the open-file limit to what the system allows and gives each worker its share
/// of it as connections, so that the service refuses to accept rather than runs out of
/// descriptors for its own database.
fn connection_budget(workers: usize) -> usize {
    let files = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => files,
        Err(error) => {
            tracing::warn!(%error, "could not read the open-file limit; assuming 1024");
            1024
        }
    };
    let per_worker = files.saturating_sub(RESERVED_FILES).max(64) / workers.max(1) as u64;
    let per_worker = usize::try_from(per_worker)
        .unwrap_or(usize::MAX)
        .min(25_000);
    tracing::info!(
        open_files = files,
        connections_per_worker = per_worker,
        "connection budget"
    );
    per_worker
}

/// How often the event relay looks for committed events to number and publish.
const RELAY_TICK: Duration = Duration::from_millis(50);

/// The operator's and the shop's credentials as configured, or, in demo mode, generated;
/// the generated ones are returned too, to be printed once the port is known.
fn roles_of(settings: &Settings, demo: bool) -> (Roles, Vec<(&'static str, String)>) {
    let mut generated = Vec::new();
    let mut token = |name: &'static str, configured: &Option<String>| match configured {
        Some(token) => Some(RoleToken::new(token)),
        None if demo => {
            let token = generate_secret();
            let role = RoleToken::new(&token);
            generated.push((name, token));
            Some(role)
        }
        None => None,
    };
    let roles = Roles {
        admin: token("ADMIN_TOKEN", &settings.admin_token),
        shop: token("SHOP_TOKEN", &settings.shop_token),
    };
    (roles, generated)
}

/// Prints demo-mode credentials once, with a line a newcomer can copy.
fn announce_demo_tokens(generated: &[(&'static str, String)], port: u16) {
    for (name, token) in generated {
        tracing::warn!("demo mode: generated {name}={token}");
        if *name == "ADMIN_TOKEN" {
            tracing::warn!(
                "try: curl -H 'Authorization: Bearer {token}' http://localhost:{port}/api/admin/stats/summary"
            );
        }
    }
}

/// A built service, bound to its port and ready to run.
pub struct Application {
    port: u16,
    server: Server,
    db: Db,
    supervisor: Addr<AccrualGuardian>,
    /// This instance's place among the instances on a PostgreSQL database.
    campaign: Option<Campaign>,
    /// The demo emulators running in this process, stopped last.
    emulators: Vec<ServerHandle>,
    stop_on_signals: bool,
}

impl Application {
    /// Connects and migrates the database, starts the actors and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let mut db = Db::connect(&settings.database_uri)
            .await
            .context("Failed to connect to the database")?;
        let candidate = if db.is_postgres() {
            db.shared = settings.cluster;
            Some(
                Candidate::join(&settings.database_uri, settings.cluster)
                    .await
                    .context("Failed to join the database's instances")?,
            )
        } else if settings.cluster {
            anyhow::bail!("CLUSTER needs PostgreSQL: SQLite serves one instance per database file");
        } else {
            None
        };
        let leadership = candidate
            .as_ref()
            .map_or_else(Leadership::sole, Candidate::leadership);
        Migrator::up(&db.writer, None)
            .await
            .context("Failed to migrate the database")?;

        let secret = match settings.token_secret.clone() {
            Some(secret) => secret,
            None => settings::get_or_insert(&db, "token_secret", generate_secret)
                .await
                .context("Failed to load the token key")?,
        };
        let password_key = settings::get_or_insert(&db, "password_key", generate_secret)
            .await
            .context("Failed to load the password key")?;
        let tokens = Tokens::new(
            secret.as_bytes(),
            settings.token_ttl,
            settings.cookie_secure,
        );
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let cost = settings.bcrypt_cost;
        let hasher = tokio::task::spawn_blocking(move || {
            PasswordHasher::new(cost, password_key.as_bytes(), cores)
        })
        .await
        .context("Failed to prepare password hashing")?
        .context("Failed to prepare password hashing")?;
        let throttles = Throttles::new(
            settings.auth_rate_per_ip,
            settings.auth_rate_per_login,
            settings.upload_rate_per_user,
            settings.trusted_proxies.clone(),
        );

        let (accrual_url, emulator) = match settings.accrual_base_url() {
            Some(url) => (url, None),
            None => {
                let (url, server) = start_emulator(&settings.emulator_address)?;
                (url, Some(server))
            }
        };
        let client = AccrualClient::new(&accrual_url, settings.accrual_timeout)
            .context("Failed to build the accrual client")?;
        let (roles, generated) = roles_of(&settings, emulator.is_some());

        let metrics = Metrics::new().context("Failed to set up the metrics")?;
        let accounts = Accounts::start(AccountRegistry::new(db.clone(), settings.account_idle));
        let accrual = AccrualSettings {
            workers: settings.accrual_workers,
            backoff: Backoff {
                retry_min: settings.accrual_retry_min,
                retry_max: settings.accrual_retry_max,
                unknown_retry_max: settings.accrual_unknown_retry_max,
            },
            default_pause: settings.accrual_default_pause,
        };
        let supervisor = {
            let (db, accounts, outcomes) = (
                db.clone(),
                accounts.clone(),
                metrics.accrual_outcomes.clone(),
            );
            AccrualGuardian::new(leadership.clone(), move || {
                AccrualSupervisor::new(
                    db.clone(),
                    accounts.clone(),
                    client.clone(),
                    accrual,
                    outcomes.clone(),
                )
            })
            .start()
        };
        let campaign =
            candidate.map(|candidate| candidate.campaign(supervisor.clone().recipient()));
        let orders: Addr<OrderRegistry> =
            OrderRegistry::new(db.clone(), Some(supervisor.clone().recipient())).start();
        let relay = EventRelay::new(
            db.clone(),
            RelaySettings {
                nats_url: settings.nats_url.clone(),
                tick: RELAY_TICK,
            },
            leadership.clone(),
        )
        .start();
        let figures = Figures::new(db.clone()).start();
        let catalogue = web::Data::new(Catalogue::new(db.clone()).start());
        let campaigns = web::Data::new(CampaignRegistry::new(db.clone(), accounts.clone()).start());
        let mut emulators: Vec<ServerHandle> = emulator.into_iter().collect();
        let fulfilment_url = match &settings.fulfilment_address {
            Some(address) => Some(with_scheme(address)),
            None if !emulators.is_empty() => {
                let (url, server) = start_warehouse(&settings.fulfilment_emulator_address)?;
                emulators.push(server);
                Some(url)
            }
            None => {
                tracing::warn!("no fulfilment service configured: redemptions answer 503; set FULFILMENT_ADDRESS");
                None
            }
        };
        let dispatcher = match fulfilment_url {
            Some(url) => {
                let client = FulfilmentClient::new(&url, settings.fulfilment_timeout)
                    .context("Failed to build the fulfilment client")?;
                let dispatch = DispatchSettings {
                    in_flight: settings.fulfilment_in_flight as usize,
                    backoff: Backoff {
                        retry_min: settings.fulfilment_retry_min,
                        retry_max: settings.fulfilment_retry_max,
                        unknown_retry_max: settings.fulfilment_retry_max,
                    },
                    default_pause: settings.accrual_default_pause,
                };
                Some(
                    FulfilmentDispatcher::new(
                        db.clone(),
                        leadership.clone(),
                        accounts.clone(),
                        client,
                        dispatch,
                    )
                    .start(),
                )
            }
            None => None,
        };
        let sources = web::Data::new(Sources {
            accrual: supervisor.clone(),
            accounts: accounts.clone(),
            dispatcher: dispatcher.clone(),
            relay: relay.clone(),
            db: db.clone(),
            leadership: leadership.clone(),
        });
        let dispatcher = web::Data::new(dispatcher);

        let address = listen_address(&settings.address);
        let listener =
            TcpListener::bind(&address).with_context(|| format!("Failed to bind {address}"))?;
        let port = listener.local_addr()?.port();
        announce_demo_tokens(&generated, port);
        let (accounts, orders, hasher, tokens, throttles, deadline) = (
            web::Data::new(accounts),
            web::Data::new(orders),
            web::Data::new(hasher),
            web::Data::new(tokens),
            web::Data::new(throttles),
            web::Data::new(BodyDeadline(settings.body_timeout)),
        );
        let (roles, relay_data, figures, db_data) = (
            web::Data::new(roles),
            web::Data::new(relay),
            web::Data::new(figures),
            web::Data::new(db.clone()),
        );
        let document = web::Data::new(
            routes::Document::render().context("Failed to render the OpenAPI document")?,
        );
        let http_metrics = metrics.http.clone();
        let metrics = web::Data::new(metrics);
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        let max_connections = connection_budget(workers);
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(protect::guard))
                .wrap(Compress::default())
                .wrap(from_fn({
                    let http = http_metrics.clone();
                    move |req, next| observe::observe(http.clone(), req, next)
                }))
                .app_data(accounts.clone())
                .app_data(orders.clone())
                .app_data(hasher.clone())
                .app_data(tokens.clone())
                .app_data(throttles.clone())
                .app_data(deadline.clone())
                .app_data(roles.clone())
                .app_data(relay_data.clone())
                .app_data(figures.clone())
                .app_data(catalogue.clone())
                .app_data(campaigns.clone())
                .app_data(dispatcher.clone())
                .app_data(metrics.clone())
                .app_data(sources.clone())
                .app_data(db_data.clone())
                .app_data(document.clone())
                .configure(|cfg| routes::configure(&mut ServiceConfig::new(cfg)))
                .default_service(web::to(routes::not_found))
        })
        .workers(workers)
        // Connections past this wait in the listen backlog instead of failing with "too
        // many open files" after they are accepted.
        .max_connections(max_connections)
        // Headers must arrive within this; a body has its own deadline (BODY_TIMEOUT).
        .client_request_timeout(HEADER_TIMEOUT)
        // A client gets this long to take the last of an answer before it is dropped.
        .client_disconnect_timeout(DISCONNECT_TIMEOUT)
        .listen(listener)?
        .shutdown_timeout(SHUTDOWN_TIMEOUT_SECS)
        // actix stops at once on SIGINT; both signals must let in-flight requests finish.
        .disable_signals()
        .run();
        tracing::info!(port, "listening");
        Ok(Self {
            port,
            server,
            db,
            supervisor,
            campaign,
            emulators,
            stop_on_signals: true,
        })
    }

    /// The port the server listens on (useful when bound to port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether SIGINT/SIGTERM stop the service (on by default; off for a service embedded
    /// in another program, such as a test, which stops it through [`Self::handle`]).
    pub fn stop_on_signals(mut self, on: bool) -> Self {
        self.stop_on_signals = on;
        self
    }

    /// A handle that stops the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until SIGINT/SIGTERM or [`ServerHandle::stop`], then lets in-flight work
    /// finish and closes the database.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        if self.stop_on_signals {
            let handle = self.server.handle();
            actix_web::rt::spawn(async move {
                stop_signal().await;
                tracing::info!("stop signal received; finishing in-flight requests");
                handle.stop(true).await;
            });
        }
        self.server.await?;
        if let Err(error) = self
            .supervisor
            .send(Drain {
                timeout: DRAIN_TIMEOUT,
            })
            .await
        {
            tracing::warn!(%error, "accrual supervisor already stopped");
        }
        // Another instance leads from here on.
        if let Some(campaign) = self.campaign {
            campaign.resign().await;
        }
        for emulator in self.emulators {
            emulator.stop(true).await;
        }
        self.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn stop_signal() {
    use actix_web::rt::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(mut interrupt), Ok(mut terminate)) => {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }
        _ => {
            tracing::warn!("could not listen for SIGTERM; stopping on Ctrl-C only");
            let _ = actix_web::rt::signal::ctrl_c().await;
        }
    }
}

/// Starts the bundled accrual emulator in this process (demo mode) and returns its URL.
fn start_emulator(address: &str) -> anyhow::Result<(String, ServerHandle)> {
    let address = listen_address(address);
    let listener = TcpListener::bind(&address)
        .with_context(|| format!("Failed to bind the emulator on {address}"))?;
    let url = with_scheme(&listener.local_addr()?.to_string());
    let server = emulator::run(
        listener,
        EmulatorSettings {
            rate_limit: 0,
            processing_delay: Duration::from_secs(1),
            stop_on_signals: false,
        },
    )?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tracing::warn!(
        %url,
        "no accrual system configured: running the bundled emulator in demo mode; set -r / ACCRUAL_SYSTEM_ADDRESS in production"
    );
    Ok((url, handle))
}

/// Starts the bundled fulfilment emulator in this process (demo mode) and returns its URL.
fn start_warehouse(address: &str) -> anyhow::Result<(String, ServerHandle)> {
    let address = listen_address(address);
    let listener = TcpListener::bind(&address)
        .with_context(|| format!("Failed to bind the fulfilment emulator on {address}"))?;
    let url = with_scheme(&listener.local_addr()?.to_string());
    let server = warehouse::run(
        listener,
        WarehouseSettings {
            shipping_delay: Duration::from_secs(2),
            fail_rate: 0.0,
            stop_on_signals: false,
        },
    )?;
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tracing::warn!(%url, "demo mode: running the bundled fulfilment emulator; set FULFILMENT_ADDRESS in production");
    Ok((url, handle))
}

fn generate_secret() -> String {
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    key.iter().map(|byte| format!("{byte:02x}")).collect()
}
