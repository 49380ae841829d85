//! `duro export`, `duro import` and `duro fork`: one object as JSON lines (the admin API's
//! `.../export` and `.../import`), to and from a file or a pipe, with progress on stderr for
//! transfers that take more than a moment.

use std::io::Write;

use anyhow::{Context, bail};

use super::client::AdminClient;
use super::progress::{Progress, chunked};

impl AdminClient {
    /// Streams `GET {object}/export` into `out`; returns the bytes written.
    pub(super) async fn export(&self, object: &str, out: &mut dyn Write) -> anyhow::Result<u64> {
        let mut response = self.get_streaming(&format!("{object}/export")).await?;
        let mut progress = Progress::new("exporting");
        while let Some(chunk) = response.chunk().await.context("receiving the export")? {
            out.write_all(&chunk).context("writing the export")?;
            progress.add(chunk.len());
        }
        out.flush().context("writing the export")?;
        progress.done();
        Ok(progress.bytes)
    }

    /// Sends `lines` (an export) to `POST {object}/import`, in chunks that report progress;
    /// returns the server's answer.
    pub(super) async fn import(
        &self,
        object: &str,
        lines: Vec<u8>,
        replace: bool,
    ) -> anyhow::Result<serde_json::Value> {
        const CHUNK: usize = 256 * 1024;
        let total = lines.len();
        let mut progress = Progress::new("importing");
        let body = chunked(lines.into(), CHUNK, move |n, last| {
            progress.add(n);
            if last {
                progress.done();
            }
        });
        let path = format!(
            "{object}/import{}",
            if replace { "?replace=true" } else { "" }
        );
        let (_, text) = self
            .send_body(
                reqwest::Method::POST,
                &path,
                body,
                Some("application/x-ndjson"),
                Some(total),
            )
            .await?;
        serde_json::from_str(&text).context("the server's answer to the import")
    }
}

/// `duro export`: to `output`, or stdout.
pub(super) async fn export(
    client: &AdminClient,
    object: &str,
    output: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    match output {
        Some(path) => {
            let partial = path.with_extension("partial");
            let mut file = std::io::BufWriter::new(
                std::fs::File::create(&partial)
                    .with_context(|| format!("creating {}", partial.display()))?,
            );
            let bytes = client.export(object, &mut file).await?;
            file.into_inner()
                .map_err(|e| e.into_error())
                .and_then(|f| f.sync_all())
                .context("writing the export")?;
            std::fs::rename(&partial, path).context("renaming the export")?;
            eprintln!("exported {bytes} bytes to {}", path.display());
        }
        None => {
            client.export(object, &mut std::io::stdout().lock()).await?;
        }
    }
    Ok(())
}

/// `duro import`: from `input`, or stdin.
pub(super) async fn import(
    client: &AdminClient,
    object: &str,
    input: Option<&std::path::Path>,
    replace: bool,
) -> anyhow::Result<serde_json::Value> {
    let lines = match input {
        Some(path) => std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
        None => {
            let mut lines = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin(), &mut lines)
                .context("reading the export from stdin")?;
            lines
        }
    };
    if lines.is_empty() {
        bail!("nothing to import: the export is empty");
    }
    client.import(object, lines, replace).await
}

/// `duro fork`: the object `from` exported and imported as `to` (same server).
pub(super) async fn fork(
    client: &AdminClient,
    from: &str,
    to: &str,
    replace: bool,
) -> anyhow::Result<serde_json::Value> {
    let mut lines = Vec::new();
    client.export(from, &mut lines).await?;
    client.import(to, lines, replace).await
}
