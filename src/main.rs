//! The `gatehouse` command line (SPEC §1): parses arguments and calls into the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

mod allocator;

/// mimalloc: faster than glibc's allocator for the many small, short-lived allocations of
/// request handling, and it returns memory to the system when idle.
#[global_allocator]
static GLOBAL: allocator::MiMalloc = allocator::MiMalloc;
use gatehouse::app::Gatehouse;
use gatehouse::commands::{demo, hash_key, token};
use gatehouse::config;

/// Gatehouse, an API gateway.
#[derive(Parser)]
#[command(name = "gatehouse", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Run {
        /// The config file (default: $GATEHOUSE_CONFIG, else ./gatehouse.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Validate a config file without starting anything.
    Check {
        /// The config file (default: $GATEHOUSE_CONFIG, else ./gatehouse.yaml).
        #[arg(short, long)]
        config: Option<PathBuf>,
    },
    /// Start three sample services and a gateway in front of them.
    Demo,
    /// Print a signed JWT, for testing.
    Token {
        /// The HMAC secret.
        #[arg(long)]
        secret: String,
        /// The `sub` claim.
        #[arg(long)]
        sub: Option<String>,
        /// The `scope` claim, space-separated.
        #[arg(long)]
        scope: Option<String>,
        /// An extra claim, key=value (repeatable).
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime of the token.
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        /// Signing algorithm: HS256, HS384 or HS512.
        #[arg(long, default_value = "HS256")]
        alg: String,
    },
    /// Print the sha256: form of an API key, for the config file.
    HashKey {
        /// The API key.
        key: String,
    },
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    text.parse::<config::Duration>()
        .map(|d| d.0)
        .map_err(|e| e.to_string())
}

fn config_path(given: Option<PathBuf>) -> PathBuf {
    given
        .or_else(|| std::env::var_os("GATEHOUSE_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("gatehouse.yaml"))
}

fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::HashKey { key } => {
            println!("{}", hash_key::hash_key(&key));
            ExitCode::SUCCESS
        }
        Command::Token {
            secret,
            sub,
            scope,
            claims,
            ttl,
            alg,
        } => {
            let request = token::TokenRequest {
                secret,
                sub,
                scope,
                claims,
                ttl,
                alg,
            };
            match token::sign(&request) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(message) => {
                    eprintln!("error: {message}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Check { config } => {
            let path = config_path(config);
            match gatehouse::check(&path) {
                Ok(summary) => {
                    println!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(errors) => {
                    eprintln!("{errors}");
                    ExitCode::from(1)
                }
            }
        }
        Command::Run { config } => {
            init_logs();
            let path = config_path(config);
            let result = runtime().map_err(|e| e.to_string()).and_then(|rt| {
                rt.block_on(async {
                    let gateway = Gatehouse::start_file(&path)
                        .await
                        .map_err(|e| e.to_string())?;
                    gateway
                        .run_until_signalled()
                        .await
                        .map_err(|e| e.to_string())
                })
            });
            finish(result)
        }
        Command::Demo => {
            init_logs();
            let result = runtime()
                .map_err(|e| e.to_string())
                .and_then(|rt| rt.block_on(demo::run()).map_err(|e| e.to_string()));
            finish(result)
        }
    }
}

fn finish(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(1)
        }
    }
}
