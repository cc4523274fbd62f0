//! Small filesystem helpers shared by the log, topics and broker state.

use std::fs::File;
use std::io;
use std::path::Path;

/// Fsyncs a directory, making the creation, rename or removal of its entries
/// durable. Needed after every such change: fsyncing a file does not persist
/// its directory entry.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
