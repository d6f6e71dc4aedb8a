//! The shared PostgreSQL ledger (feature `postgres`): `migrate`, `import`,
//! and the dashboard, export and reset when `--database-url`,
//! `COSTLAYER_DATABASE_URL` or the config file's `storage` names one.

use std::path::PathBuf;

use costlayer::ledger::{ScanItem, Storage};
use costlayer::report::DashboardPass;

use crate::args::ConfigArgs;
use crate::settings::Settings;
use crate::CliError;

/// `cost-tracker migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    #[command(flatten)]
    common: ConfigArgs,
}

/// `cost-tracker import --from DIR`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    /// The JSONL ledger directory to copy (every costs_*.jsonl, the legacy costs.json, the alert history). It is only read.
    #[arg(long, value_name = "DIR")]
    from: PathBuf,

    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,

    #[command(flatten)]
    common: ConfigArgs,
}

#[cfg(not(feature = "postgres"))]
mod imp {
    use super::*;

    fn unsupported() -> CliError {
        CliError::Usage(
            "this cost-tracker was built without PostgreSQL support: rebuild it with \
             `--features postgres`, or unset --database-url / COSTLAYER_DATABASE_URL / storage"
                .into(),
        )
    }

    pub(crate) fn migrate(_: MigrateArgs) -> Result<(), CliError> {
        Err(unsupported())
    }

    pub(crate) fn import(_: ImportArgs) -> Result<(), CliError> {
        Err(unsupported())
    }

    pub(crate) async fn open(s: &Settings) -> Result<Option<Box<dyn Storage>>, CliError> {
        match s.database_url {
            Some(_) => Err(unsupported()),
            None => Ok(None),
        }
    }

    pub(crate) fn fold_blocking(_: &Settings, _: &mut DashboardPass) -> Result<String, CliError> {
        Err(unsupported())
    }

    pub(crate) fn scan_blocking(_: &Settings, _: impl FnMut(ScanItem)) -> Result<(), CliError> {
        Err(unsupported())
    }
}

#[cfg(feature = "postgres")]
mod imp {
    use super::*;
    use costlayer::ledger::{JsonlStorage, PostgresStorage, DEFAULT_SCHEMA};
    use futures_util::StreamExt;

    fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
    }

    async fn connect(
        url: &str,
        schema: Option<&str>,
        user: &str,
    ) -> Result<PostgresStorage, CliError> {
        Ok(PostgresStorage::builder(url)
            .schema(schema.unwrap_or(DEFAULT_SCHEMA))
            .user(user)
            .connect()
            .await?)
    }

    fn required(config: &costlayer::config::Config) -> Result<String, CliError> {
        config
            .database_url
            .as_ref()
            .map(|u| u.expose().to_owned())
            .ok_or_else(|| {
                CliError::Usage(
                    "no PostgreSQL ledger configured: pass --database-url postgres://USER@HOST/DB, \
                     or set COSTLAYER_DATABASE_URL, or `storage = \"postgres://...\"` in costlayer.toml"
                        .into(),
                )
            })
    }

    pub(crate) fn migrate(args: MigrateArgs) -> Result<(), CliError> {
        let config = crate::settings::config(&args.common)?;
        let url = required(&config)?;
        runtime()?.block_on(async {
            let pg = connect(&url, config.database_schema.as_deref(), &config.user).await?;
            let version = pg.schema_version().await?;
            println!(
                "PostgreSQL ledger {} schema {}: up to date at version {version}",
                pg.location(),
                pg.schema()
            );
            Ok(())
        })
    }

    pub(crate) fn import(args: ImportArgs) -> Result<(), CliError> {
        let config = crate::settings::config(&args.common)?;
        let url = required(&config)?;
        if !args.from.is_dir() {
            return Err(CliError::Usage(format!(
                "--from {}: not a directory. Give the JSONL ledger directory (the one holding costs_<user>.jsonl)",
                args.from.display()
            )));
        }
        // The legacy costs.json is attributed to the configured user, as a
        // JSONL scan does.
        let source = JsonlStorage::builder(&args.from)
            .user(&config.user)
            .build()
            .map_err(|e| CliError::Usage(format!("{e} (check --user / COSTLAYER_USER)")))?;
        runtime()?.block_on(async {
            let pg = connect(&url, config.database_schema.as_deref(), &config.user).await?;
            let r = pg.import_jsonl(&source).await?;
            if args.json {
                let v = serde_json::to_string_pretty(&r)
                    .map_err(|e| CliError::Runtime(format!("cannot encode the JSON report: {e}")))?;
                println!("{v}");
                return Ok(());
            }
            println!(
                "Imported {} records into {} schema {} ({} already there, skipped) from {} files; {} alerts",
                r.inserted,
                pg.location(),
                pg.schema(),
                r.duplicates,
                r.files.len(),
                r.alerts
            );
            if r.corrupt > 0 {
                let to: Vec<String> = r.quarantined.iter().map(|p| p.display().to_string()).collect();
                println!(
                    "Skipped {} corrupt lines (copies in: {})",
                    r.corrupt,
                    to.join(", ")
                );
            }
            Ok(())
        })
    }

    pub(crate) async fn open(s: &Settings) -> Result<Option<Box<dyn Storage>>, CliError> {
        match &s.database_url {
            Some(url) => Ok(Some(Box::new(
                connect(url, s.database_schema.as_deref(), &s.user).await?,
            ))),
            None => Ok(None),
        }
    }

    /// Runs `f` on a thread of its own with its own runtime, so the
    /// synchronous report code can read the database from inside the
    /// command's runtime.
    fn on_thread<T: Send>(f: impl FnOnce() -> Result<T, CliError> + Send) -> Result<T, CliError> {
        std::thread::scope(|scope| {
            scope
                .spawn(f)
                .join()
                .unwrap_or_else(|_| Err(CliError::Runtime("the database reader stopped".into())))
        })
    }

    /// Folds the dashboard in the database (pushed-down group-bys); returns
    /// the label of where it was read.
    pub(crate) fn fold_blocking(
        s: &Settings,
        pass: &mut DashboardPass,
    ) -> Result<String, CliError> {
        on_thread(|| {
            runtime()?.block_on(async {
                let Some(pg) = open(s).await? else {
                    return Err(CliError::Runtime("no database configured".into()));
                };
                pass.fold_storage(pg.as_ref()).await?;
                let url = s.database_url.as_deref().unwrap_or_default();
                Ok(label(url, s.database_schema.as_deref()))
            })
        })
    }

    /// Streams the records the settings select to `f`, on this thread.
    pub(crate) fn scan_blocking(s: &Settings, mut f: impl FnMut(ScanItem)) -> Result<(), CliError> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ScanItem>(1024);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                runtime()?.block_on(async {
                    let Some(pg) = open(s).await? else {
                        return Err(CliError::Runtime("no database configured".into()));
                    };
                    let mut stream = pg.scan(&s.filter).await?;
                    while let Some(item) = stream.next().await {
                        if tx.send(item?).is_err() {
                            break;
                        }
                    }
                    Ok(())
                })
            });
            for item in rx {
                f(item);
            }
            reader
                .join()
                .unwrap_or_else(|_| Err(CliError::Runtime("the database reader stopped".into())))
        })
    }
}

pub(crate) use imp::{fold_blocking, import, migrate, open, scan_blocking};

/// Where a PostgreSQL ledger is, for messages: host, database and schema,
/// never the URL itself (it may hold a password).
pub(crate) fn label(url: &str, schema: Option<&str>) -> String {
    let host = url
        .split_once('@')
        .map_or(url, |(_, h)| h)
        .trim_start_matches("postgres://")
        .trim_start_matches("postgresql://");
    let host = host.split('?').next().unwrap_or_default();
    format!("postgres {host} (schema {})", schema.unwrap_or("costlayer"))
}
