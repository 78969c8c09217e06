//! The scheduler and the executor: Ballista's processes with this package's
//! codecs and functions.

use std::net::SocketAddr;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::error::{BallistaError, Result};
use ballista_executor::executor_process::{start_executor_process, ExecutorProcessConfig};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;

use crate::codec::{ZarrMetaLogicalCodec, ZarrMetaPhysicalCodec};
use crate::functions::{executor_registry, scheduler_session};

/// How a cluster notices a dead executor: executors beat every
/// `HEARTBEAT_SECONDS`, and one silent for `EXECUTOR_TIMEOUT_SECONDS` is
/// taken for dead and its tasks run elsewhere (Ballista's defaults, 60 s and
/// 180 s, leave a query waiting three minutes for an executor that died).
pub const HEARTBEAT_SECONDS: u64 = 5;
pub const EXECUTOR_TIMEOUT_SECONDS: u64 = 20;

/// Executors ask the scheduler for tasks. With Ballista's default (the
/// scheduler pushes tasks when something changes), the tasks of an executor
/// found dead are put back but offered to no one until another event comes,
/// so a query on an otherwise idle cluster waits forever.
const SCHEDULING: TaskSchedulingPolicy = TaskSchedulingPolicy::PullStaged;

/// Run a scheduler on `host:port` until the process is stopped. Its gRPC
/// service and REST API (`/api/executors`, `/api/jobs`) share the port.
pub async fn scheduler(host: &str, port: u16, executor_timeout: u64) -> Result<()> {
    let addr: SocketAddr = format!("{host}:{port}")
        .parse()
        .map_err(|e| BallistaError::Configuration(format!("scheduler address {host}:{port}: {e}")))?;
    let config = SchedulerConfig {
        bind_host: host.to_string(),
        external_host: host.to_string(),
        bind_port: port,
        executor_timeout_seconds: executor_timeout,
        expire_dead_executor_interval_seconds: HEARTBEAT_SECONDS,
        scheduling_policy: SCHEDULING,
        override_session_builder: Some(Arc::new(scheduler_session)),
        override_logical_codec: Some(Arc::new(ZarrMetaLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(ZarrMetaPhysicalCodec::default())),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, addr, Arc::new(config)).await
}

/// Where an executor runs and which scheduler it serves.
pub struct ExecutorOptions {
    pub scheduler_host: String,
    pub scheduler_port: u16,
    pub host: String,
    /// The Arrow Flight port (shuffle data); the gRPC port is `grpc_port`.
    pub port: u16,
    pub grpc_port: u16,
    /// Tasks run at once.
    pub slots: usize,
    pub work_dir: Option<String>,
}

/// Run an executor until the process is stopped.
pub async fn executor(options: ExecutorOptions) -> Result<()> {
    let registry = executor_registry().map_err(|e| BallistaError::General(e.to_string()))?;
    let config = ExecutorProcessConfig {
        bind_host: options.host.clone(),
        external_host: Some(options.host),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler_host,
        scheduler_port: options.scheduler_port,
        // Wait this long for a scheduler that is starting; then fail.
        scheduler_connect_timeout_seconds: 30,
        concurrent_tasks: options.slots.max(1),
        task_scheduling_policy: SCHEDULING,
        work_dir: options.work_dir,
        executor_heartbeat_interval_seconds: HEARTBEAT_SECONDS,
        print_thread_info: false,
        override_function_registry: Some(Arc::new(registry)),
        override_logical_codec: Some(Arc::new(ZarrMetaLogicalCodec::default())),
        override_physical_codec: Some(Arc::new(ZarrMetaPhysicalCodec::default())),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config)).await
}
