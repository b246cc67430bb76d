// A test-only SQLite VFS that models a power cut (issue #15). Not shipped to users: only the power-cut child and
// tests link it. See PowerCutVFS.c for what it models and docs/reliability.md for how the test uses it.
#ifndef CPOWERCUTVFS_H
#define CPOWERCUTVFS_H

#include <stdint.h>

/// The exit status of a process that lost power (the VFS `_exit`s with it).
#define POWERCUT_EXIT_STATUS 86

/// When and how the power goes out. Zero means "not this way" for every trigger.
typedef struct powercut_plan {
    /// Seeds every random choice of the VFS (which sectors of a torn flush or a writeback reach the file).
    uint64_t seed;
    /// Lose power at the n-th xSync of a database, WAL or journal file, before that sync completes.
    int64_t cut_after_syncs;
    /// Lose power at the n-th xWrite/xTruncate, before it is applied.
    int64_t cut_after_writes;
    /// With a sync trigger: the cut falls inside that sync's flush, and only a random part of its 512-byte sectors
    /// reach the file (a torn write).
    int32_t torn;
    /// At the cut, a random half of every file's unsynced sectors reach the file (the OS wrote them back in any
    /// order) instead of none.
    int32_t writeback_at_cut;
    /// Every n-th write, the whole volatile layer is written to the files without an fsync (an OS writeback); 0: never.
    int64_t writeback_every;
    /// Control runs: every connection is opened with `PRAGMA synchronous = OFF`, and later assignments of
    /// `synchronous` (GRDB's NORMAL, the store's FULL) are ignored.
    int32_t synchronous_off;
    /// When > 0, every connection is opened with `PRAGMA wal_autocheckpoint = n` (SQLite's default is 1000 pages), so
    /// that checkpoints, and cuts inside them, happen within a short run.
    int32_t wal_autocheckpoint;
} powercut_plan;

/// What the VFS saw so far.
typedef struct powercut_counters {
    int64_t writes;
    int64_t syncs;
    /// Syncs of a main database file: checkpoints (in WAL mode nothing else syncs it).
    int64_t database_syncs;
    int64_t writebacks;
    int64_t ignored_synchronous_pragmas;
} powercut_counters;

/// Registers the VFS as the process default (wrapping the default VFS, normally "unix"), with `plan`.
/// Call before any database is opened. Returns 0 (SQLITE_OK) on success.
int powercut_install(const powercut_plan *plan);

/// Loses power now: drops (or, with `writeback_at_cut`, partly writes) every unsynced write and `_exit`s with
/// POWERCUT_EXIT_STATUS after printing one `cut ...` line on stdout.
void powercut_cut_now(const char *reason) __attribute__((noreturn));

/// The counters so far.
powercut_counters powercut_counters_get(void);

/// Runs `PRAGMA integrity_check` on `path` through SQLite's real "unix" VFS (what is on disk), writing the verdict
/// (rows joined with "; ") into `out`. Returns an SQLite result code; `out` holds the error message when not 0.
int powercut_integrity_check(const char *path, char *out, int32_t capacity);

#endif
