//! `zarr-meta-cluster`: a scheduler, an executor, or a client running one
//! query (its result on stdout as an Arrow IPC stream).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sedonadb_zarr_meta_cluster::client::{self, host_port, Tables};
use sedonadb_zarr_meta_cluster::roles::{self, ExecutorOptions, EXECUTOR_TIMEOUT_SECONDS};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "zarr-meta-cluster", about = "sd_read_zarr_meta SQL on a Ballista cluster")]
struct Cli {
    #[command(subcommand)]
    role: Role,
}

/// `name=value`, split at the first `=`.
fn pair(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))
}

#[derive(Subcommand)]
enum Role {
    /// Run a scheduler (gRPC and the REST API on one port).
    Scheduler {
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        #[arg(long, default_value_t = 50050)]
        port: u16,
        /// Seconds without a heartbeat after which an executor is taken for dead.
        #[arg(long, default_value_t = EXECUTOR_TIMEOUT_SECONDS)]
        executor_timeout: u64,
    },
    /// Run an executor serving the scheduler at HOST:PORT.
    Executor {
        #[arg(long)]
        scheduler: String,
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// The Arrow Flight port, for shuffle data.
        #[arg(long, default_value_t = 50051)]
        port: u16,
        /// The gRPC port (default: PORT + 1).
        #[arg(long)]
        grpc_port: Option<u16>,
        /// Tasks run at once (default: the number of cores).
        #[arg(long)]
        slots: Option<usize>,
        /// Where shuffle files go (default: a temporary directory).
        #[arg(long)]
        work_dir: Option<String>,
    },
    /// Run one query on the cluster; its result goes to stdout as an Arrow IPC stream.
    Sql {
        /// The scheduler, as df://HOST:PORT.
        #[arg(long)]
        scheduler: String,
        /// A Parquet table, NAME=PATH (repeatable).
        #[arg(long = "parquet", value_parser = pair)]
        parquet: Vec<(String, String)>,
        /// A view, NAME=SQL (repeatable; after the Parquet tables).
        #[arg(long = "view", value_parser = pair)]
        views: Vec<(String, String)>,
        /// Seconds the whole query may take.
        #[arg(long)]
        timeout: Option<f64>,
        /// The query.
        query: String,
    },
}

fn logging(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt().with_ansi(false).with_writer(std::io::stderr).with_env_filter(filter).init();
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.role {
        Role::Scheduler { host, port, executor_timeout } => {
            logging("info");
            roles::scheduler(&host, port, executor_timeout).await.map_err(|e| e.to_string())
        }
        Role::Executor { scheduler, host, port, grpc_port, slots, work_dir } => {
            logging("info");
            let (scheduler_host, scheduler_port) = host_port(&scheduler)?;
            let slots = slots.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let options = ExecutorOptions {
                scheduler_host,
                scheduler_port,
                host,
                port,
                grpc_port: grpc_port.unwrap_or(port.saturating_add(1)),
                slots,
                work_dir,
            };
            roles::executor(options).await.map_err(|e| e.to_string())
        }
        Role::Sql { scheduler, parquet, views, timeout, query } => {
            logging("warn");
            let timeout = match timeout {
                Some(t) if t.is_finite() && t > 0.0 => Some(Duration::from_secs_f64(t)),
                Some(t) => return Err(format!("--timeout must be a positive number of seconds, got {t}")),
                None => None,
            };
            let tables = Tables { parquet, views };
            let stdout = std::io::stdout().lock();
            client::run(&scheduler, &tables, &query, timeout, stdout).await.map_err(|e| e.to_string())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zarr-meta-cluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zarr-meta-cluster: {e}");
            ExitCode::FAILURE
        }
    }
}
