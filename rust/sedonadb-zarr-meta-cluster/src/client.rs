//! A client: plans SQL with this package's functions and codecs, runs it on
//! the cluster and writes the result as an Arrow IPC stream.

use std::io::Write;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::Duration;

use ballista::prelude::SessionContextExt;
use ballista_core::extension::SessionConfigExt;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::common::{DataFusionError, Result};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::optimizer::Optimizer;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::codec::{ZarrMetaLogicalCodec, ZarrMetaPhysicalCodec};
use crate::functions;

/// How long a client waits to reach the scheduler before it gives up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port` of a scheduler URL (`df://host:port`).
pub fn scheduler_address(url: &str) -> Result<(String, u16)> {
    let rest = url.strip_prefix("df://").ok_or_else(|| {
        DataFusionError::Configuration(format!("scheduler URL {url:?}: expected df://host:port"))
    })?;
    host_port(rest.trim_end_matches('/'))
        .map_err(|e| DataFusionError::Configuration(format!("scheduler URL {url:?}: {e}")))
}

/// `HOST:PORT`, split at its last colon.
pub fn host_port(text: &str) -> std::result::Result<(String, u16), String> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("expected HOST:PORT, got {text:?}"))?;
    Ok((host.to_string(), port.parse().map_err(|_| format!("{port:?} is not a port"))?))
}

/// Fail fast, and clearly, when nothing listens at the scheduler's address
/// (Ballista's client would otherwise retry for a long time).
async fn reachable(host: &str, port: u16) -> Result<()> {
    let unreachable = |why: String| {
        DataFusionError::Execution(format!("cannot reach the scheduler at {host}:{port}: {why}"))
    };
    let addrs: Vec<_> = (host, port).to_socket_addrs().map_err(|e| unreachable(e.to_string()))?.collect();
    let addr = addrs.first().ok_or_else(|| unreachable("no address".into()))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(unreachable(e.to_string())),
        Err(_) => Err(unreachable(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))),
    }
}

/// What a query runs against besides the store: Parquet tables and views.
#[derive(Debug, Default)]
pub struct Tables {
    pub parquet: Vec<(String, String)>,
    pub views: Vec<(String, String)>,
}

/// A session connected to the scheduler at `url`, with this package's
/// functions and `tables` registered.
pub async fn connect(url: &str, tables: &Tables) -> Result<SessionContext> {
    let (host, port) = scheduler_address(url)?;
    reachable(&host, port).await?;
    let config = SessionConfig::new_with_ballista()
        .with_ballista_logical_extension_codec(Arc::new(ZarrMetaLogicalCodec::default()))
        .with_ballista_physical_extension_codec(Arc::new(ZarrMetaPhysicalCodec::default()));
    // The scheduler optimizes again. A client that folded constant geometries into literals
    // would send them without their type (see `pinned`), so it skips expression
    // simplification; it still turns subqueries into joins, which plans must be to travel.
    let rules = Optimizer::new().rules.into_iter().filter(|r| r.name() != "simplify_expressions").collect();
    let state = SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_optimizer_rules(rules)
        .build();
    let ctx = SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await?;
    // After connecting: connecting resets a session's functions.
    functions::register(&ctx)?;
    for (name, path) in &tables.parquet {
        ctx.register_parquet(name, path, ParquetReadOptions::default()).await?;
    }
    for (name, sql) in &tables.views {
        let view = ctx.sql(sql).await?.into_view();
        ctx.register_table(name, view)?;
    }
    Ok(ctx)
}

/// Run `sql` on the cluster at `url` and write its result to `out` as an
/// Arrow IPC stream; `timeout` bounds the whole query.
pub async fn run(
    url: &str,
    tables: &Tables,
    sql: &str,
    timeout: Option<Duration>,
    out: impl Write,
) -> Result<()> {
    let work = async {
        let ctx = connect(url, tables).await?;
        let df = ctx.sql(sql).await?;
        let mut stream = df.execute_stream().await?;
        let mut writer = StreamWriter::try_new(out, &stream.schema())?;
        while let Some(batch) = stream.next().await {
            writer.write(&batch?)?;
        }
        writer.finish()?;
        Ok(())
    };
    match timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(DataFusionError::Execution(format!(
                "the query did not finish within {} s on the cluster at {url}",
                limit.as_secs()
            )))
        }),
        None => work.await,
    }
}
