#!/usr/bin/env python3
"""Mutation proof for the durability syncs: removes one sync at a time from
the broker's source, runs the power-loss tests, records which tests fail, and
restores the file. Every sync on an acknowledging path must make at least
one test fail. Run from the workspace root:

    python3 broker/tests/sync_mutations.py            # all sites
    python3 broker/tests/sync_mutations.py topic.json  # sites matching a word

Prints one line per site: the site, then the failing tests (or CAUGHT BY
NOTHING). The source is restored even if the script is interrupted.
"""

import re
import signal
import subprocess
import sys

# (site, file, exact text, replacement, occurrences to replace); text and
# replacement may be tuples of several edits made together.
SITES = [
    ("segment fdatasync before an ack (commit group)",
     "broker/src/log/partition.rs",
     "                .and_then(|()| crate::fsio::sync_data(&active.file, &active.log_path))\n",
     "", 1),
    # Skips the sync only of groups written inside the file's old length
    # (the runway synced with an earlier group): a model that trusted every
    # byte inside a synced length would miss this one.
    ("segment fdatasync of a group written over the runway",
     "broker/src/log/partition.rs",
     ("        w.file_len = w.file_len.max(end_pos);\n",
      "            Durability::Always => true,\n"),
     ("        let inside = end_pos <= w.file_len;\n        w.file_len = w.file_len.max(end_pos);\n",
      "            Durability::Always => !inside,\n"), 1),
    ("old segment fdatasync at a roll",
     "broker/src/log/partition.rs",
     "crate::fsio::sync_data(&old.file, &old.log_path)\n",
     "Ok::<(), std::io::Error>(())\n", 1),
    ("partition dir fsync after a roll creates a segment",
     "broker/src/log/partition.rs",
     "if let Err(e) = sync_dir(&self.dir) {",
     "if let Err(e) = Ok::<(), LogError>(()) {", 1),
    ("interval timer fdatasync (PartitionLog::flush)",
     "broker/src/log/partition.rs",
     "if let Err(e) = crate::fsio::sync_data(&w.active.file, &w.active.log_path) {",
     "if let Err(e) = Ok::<(), std::io::Error>(()) {", 1),
    ("partition dir fsync when recovery creates the first segment",
     "broker/src/log/recovery.rs",
     "        let seg = Segment::create(dir, 0, index_capacity(config))?;\n        sync_dir(dir)?;",
     "        let seg = Segment::create(dir, 0, index_capacity(config))?;", 1),
    ("parent fsync in fsio::create_dir_all (topics/, groups/)",
     "broker/src/fsio/mod.rs",
     "        Some(parent) => sync_dir(parent),",
     "        Some(_) => Ok(()),", 1),
    ("offset store fdatasync per commit batch",
     "broker/src/groups/offsets.rs",
     "fsio::sync_data(&self.file, &self.path)\n",
     "Ok::<(), std::io::Error>(())\n", 1),
    ("state-log dir fsync at open (offsets.log and queue state.log entries)",
     "broker/src/fsio/frame.rs",
     '    super::sync_dir(dir).map_err(|e| log_err("fsync directory", dir, e))?;\n',
     "", 1),
    ("topic.json fsync before rename",
     "broker/src/topics/metadata.rs",
     '        fsio::sync_all(&f, &tmp).map_err(io("sync topic metadata", &tmp))?;',
     "", 1),
    ("topic dir fsync after topic.json rename",
     "broker/src/topics/metadata.rs",
     '        fsio::sync_dir(dir).map_err(io("sync topic directory", dir))?;',
     "", 1),
    ("new partition dir fsync at topic create",
     "broker/src/topics/mod.rs",
     """            fsio::sync_dir(&dir).map_err(|source| TopicError::Io {
                op: "sync partition directory",""",
     """            Ok::<(), std::io::Error>(()).map_err(|source| TopicError::Io {
                op: "sync partition directory",""", 1),
    ("staging topic dir fsync at topic create",
     "broker/src/topics/mod.rs",
     """        fsio::sync_dir(&staging).map_err(|source| TopicError::Io {""",
     """        Ok::<(), std::io::Error>(()).map_err(|source| TopicError::Io {""", 1),
    ("topics dir fsync after publishing a topic (rename)",
     "broker/src/topics/mod.rs",
     """            source,
        })?;
        self.sync_root()?;
        let topic = match open_topic""",
     """            source,
        })?;
        let topic = match open_topic""", 1),
    ("topics dir fsyncs at topic delete (both)",
     "broker/src/topics/mod.rs",
     """        self.sync_root()?;
        remove_dir(&tombstone)?;
        self.sync_root()
""",
     """        remove_dir(&tombstone)?;
        Ok(())
""", 1),
    ("security.json fsync before rename",
     "broker/src/auth/store.rs",
     '    fsio::sync_all(&f, &tmp).map_err(io("sync", &tmp))?;',
     "", 1),
    ("data dir fsync after security.json rename",
     "broker/src/auth/store.rs",
     "    fsio::sync_dir(data_dir).map_err(|source| StoreError::NotDurable {",
     "    Ok::<(), std::io::Error>(()).map_err(|source| StoreError::NotDurable {", 1),
    ("producer_ids fsync before rename",
     "broker/src/producer_ids.rs",
     "            crate::fsio::sync_all(&f, &tmp)?;\n",
     "", 1),
    ("data dir fsync after producer_ids rename",
     "broker/src/producer_ids.rs",
     "            sync_dir(&self.dir)\n        };",
     "            Ok(())\n        };", 1),
]

TESTS = ["--test", "power_loss", "--test", "power_torture"]


def run_tests():
    out = subprocess.run(
        ["cargo", "test", "-p", "skiff-broker", *TESTS, "--", "--test-threads=2"],
        capture_output=True, text=True)
    text = out.stdout + out.stderr
    if "error[" in text or "could not compile" in text:
        return None, text
    failed = sorted(set(re.findall(r"^test (\S+) \.\.\. FAILED", text, re.M)))
    return failed, text


def main():
    # SIGTERM too must run the `finally` that restores the source.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    only = sys.argv[1] if len(sys.argv) > 1 else None
    for site, path, old, new, count in SITES:
        if only and only not in site:
            continue
        src = open(path).read()
        edits = list(zip(old, new)) if isinstance(old, tuple) else [(old, new)]
        counts = [src.count(o) for o, _ in edits]
        if any(n != count for n in counts):
            print(f"{site}: text found {counts} times, expected {count}; skipped", flush=True)
            continue
        mutated = src
        for o, n in edits:
            mutated = mutated.replace(o, n)
        try:
            open(path, "w").write(mutated)
            failed, text = run_tests()
        finally:
            open(path, "w").write(src)
        if failed is None:
            print(f"{site}: DOES NOT COMPILE\n{text[-2000:]}", flush=True)
        else:
            print(f"{site}: {', '.join(failed) or 'CAUGHT BY NOTHING'}", flush=True)


if __name__ == "__main__":
    main()
