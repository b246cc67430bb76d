// A test-only SQLite VFS that models a power cut (issue #15).
//
// It wraps the default VFS ("unix"). Every xWrite and xTruncate of a database, WAL or journal file since that
// file's last completed xSync is kept in a volatile in-memory layer, keyed by path and shared by every open handle
// of the path (GRDB's readers see the writer's unsynced writes, as they would through the OS page cache). xRead
// reads through the layer; xFileSize answers the layer's size. xSync applies the layer to the real file (which,
// in this model, is the disk) and then really syncs. Everything else passes through, including locking, the
// shared-memory methods WAL needs (iVersion 2) and file controls.
//
// The power goes out at a seeded moment (the n-th sync or the n-th write, or when the host calls
// powercut_cut_now): the process `_exit`s at once, so the layer vanishes. Optionally the cut falls inside a sync
// and only a random subset of its 512-byte sectors reaches the file (a torn write), or a random subset of every
// file's unsynced sectors reaches it (the OS wrote some dirty pages back, in no particular order).
//
// Not modelled: reordering across files, directory entries (a created or deleted file is so at once), a disk
// that acknowledges an fsync it did not do, bit rot. The shm file is passed through: SQLite rebuilds it from the
// WAL when the first connection opens after the cut.
#include "CPowerCutVFS.h"

#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SECTOR 512

typedef struct sector {
    int64_t index;
    unsigned char data[SECTOR];
} sector;

// The volatile state of one path: what the OS page cache holds that the disk does not.
typedef struct layer {
    char *path;
    int main_db;     // a main database file (its syncs are checkpoints)
    int fd;          // our own descriptor on the real file, never closed (closing would drop SQLite's POSIX locks)
    int64_t size;    // the file's size as readers see it
    int64_t floor;   // -1, or the lowest size truncated to since the last sync: real bytes at or past it are stale
    sector **slots;  // open addressing by sector index
    size_t capacity;
    size_t count;
    struct layer *next;
} layer;

typedef struct pc_file {
    sqlite3_file base;
    sqlite3_file *real;  // the wrapped VFS's file, allocated right after this struct
    layer *layer;        // NULL: passed through untouched (temporary files)
} pc_file;

static sqlite3_vfs *real_vfs;
static sqlite3_vfs pc_vfs;
static powercut_plan plan;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static layer *layers;
static powercut_counters counters;
static uint64_t random_state;
static _Thread_local int in_auto_extension;

// MARK: - Helpers

static uint64_t next_random(void) {
    // SplitMix64, as KeyRelayCore's SeededGenerator.
    random_state += 0x9E3779B97F4A7C15ULL;
    uint64_t z = random_state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }

static size_t slot_of(int64_t index, size_t capacity) {
    return (size_t)(((uint64_t)index * 0x9E3779B97F4A7C15ULL) >> 7) & (capacity - 1);
}

static sector *find_sector(const layer *l, int64_t index) {
    if (l->capacity == 0) return NULL;
    for (size_t i = slot_of(index, l->capacity);; i = (i + 1) & (l->capacity - 1)) {
        sector *s = l->slots[i];
        if (s == NULL) return NULL;
        if (s->index == index) return s;
    }
}

static void put_sector(layer *l, sector *s) {
    if ((l->count + 1) * 2 > l->capacity) {
        size_t capacity = l->capacity ? l->capacity * 2 : 64;
        sector **slots = calloc(capacity, sizeof(sector *));
        if (slots == NULL) abort();
        for (size_t i = 0; i < l->capacity; i++) {
            sector *old = l->slots[i];
            if (old == NULL) continue;
            size_t j = slot_of(old->index, capacity);
            while (slots[j] != NULL) j = (j + 1) & (capacity - 1);
            slots[j] = old;
        }
        free(l->slots);
        l->slots = slots;
        l->capacity = capacity;
    }
    size_t j = slot_of(s->index, l->capacity);
    while (l->slots[j] != NULL) j = (j + 1) & (l->capacity - 1);
    l->slots[j] = s;
    l->count++;
}

// The layer's sectors, in file order (caller frees).
static sector **sorted_sectors(const layer *l) {
    sector **list = malloc((l->count + 1) * sizeof(sector *));
    if (list == NULL) abort();
    size_t n = 0;
    for (size_t i = 0; i < l->capacity; i++) if (l->slots[i]) list[n++] = l->slots[i];
    // Insertion sort would do for small layers; qsort for the rest.
    for (size_t i = 1; i < n; i++) {
        sector *s = list[i];
        size_t j = i;
        while (j > 0 && list[j - 1]->index > s->index) { list[j] = list[j - 1]; j--; }
        list[j] = s;
    }
    return list;
}

static void clear_sectors(layer *l, int64_t keep_below) {
    // Drops every sector at or past byte `keep_below` (all of them with 0), rebuilding the table.
    sector **list = sorted_sectors(l);
    size_t n = l->count;
    memset(l->slots, 0, l->capacity * sizeof(sector *));
    l->count = 0;
    for (size_t i = 0; i < n; i++) {
        if (list[i]->index * SECTOR < keep_below) put_sector(l, list[i]);
        else free(list[i]);
    }
    free(list);
}

static layer *layer_for(const char *path, int create) {
    for (layer *l = layers; l; l = l->next) if (strcmp(l->path, path) == 0) return l;
    if (!create) return NULL;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return NULL;
    layer *l = calloc(1, sizeof(layer));
    if (l == NULL) abort();
    l->path = strdup(path);
    l->fd = fd;
    l->size = lseek(fd, 0, SEEK_END);
    l->floor = -1;
    l->next = layers;
    layers = l;
    return l;
}

// Reads the real file (the disk), zero-filling past its end.
static int disk_read(layer *l, unsigned char *buf, int64_t amount, int64_t offset) {
    int64_t done = 0;
    while (done < amount) {
        ssize_t got = pread(l->fd, buf + done, (size_t)(amount - done), offset + done);
        if (got < 0) return SQLITE_IOERR_READ;
        if (got == 0) { memset(buf + done, 0, (size_t)(amount - done)); break; }
        done += got;
    }
    return SQLITE_OK;
}

static int disk_write(layer *l, const unsigned char *buf, int64_t amount, int64_t offset) {
    int64_t done = 0;
    while (done < amount) {
        ssize_t put = pwrite(l->fd, buf + done, (size_t)(amount - done), offset + done);
        if (put <= 0) return SQLITE_IOERR_WRITE;
        done += put;
    }
    return SQLITE_OK;
}

// What a reader sees in [offset, offset + amount): the layer's sectors over the disk, zeros past a truncation.
static int layer_read(layer *l, unsigned char *buf, int64_t amount, int64_t offset) {
    int64_t pos = offset, end = offset + amount;
    while (pos < end) {
        int64_t index = pos / SECTOR;
        int64_t chunk_end = min64(end, (index + 1) * SECTOR);
        sector *s = find_sector(l, index);
        if (s) {
            memcpy(buf + (pos - offset), s->data + (pos - index * SECTOR), (size_t)(chunk_end - pos));
            pos = chunk_end;
            continue;
        }
        int64_t run_end = chunk_end;
        while (run_end < end && find_sector(l, run_end / SECTOR) == NULL) run_end = min64(end, run_end + SECTOR);
        int64_t disk_end = (l->floor >= 0 && l->floor < run_end) ? max64(pos, l->floor) : run_end;
        if (disk_end > pos) {
            int rc = disk_read(l, buf + (pos - offset), disk_end - pos, pos);
            if (rc != SQLITE_OK) return rc;
        }
        if (run_end > disk_end) memset(buf + (disk_end - offset), 0, (size_t)(run_end - disk_end));
        pos = run_end;
    }
    return SQLITE_OK;
}

static int write_sector_to_disk(layer *l, const sector *s) {
    int64_t start = s->index * SECTOR;
    if (start >= l->size) return SQLITE_OK;
    return disk_write(l, s->data, min64(SECTOR, l->size - start), start);
}

// A completed flush: the disk becomes what readers see, and the layer empties.
static int layer_flush(layer *l) {
    if (l->floor >= 0 && ftruncate(l->fd, l->floor) != 0) return SQLITE_IOERR_TRUNCATE;
    sector **list = sorted_sectors(l);
    int rc = SQLITE_OK;
    for (size_t i = 0; i < l->count && rc == SQLITE_OK; i++) rc = write_sector_to_disk(l, list[i]);
    free(list);
    if (rc != SQLITE_OK) return rc;
    if (lseek(l->fd, 0, SEEK_END) != l->size && ftruncate(l->fd, l->size) != 0) return SQLITE_IOERR_TRUNCATE;
    clear_sectors(l, 0);
    l->floor = -1;
    return SQLITE_OK;
}

// MARK: - The power cut

static int64_t dropped_sectors, persisted_sectors;

// Writes a random part of `l`'s unsynced sectors to the disk: each with probability 1/2 (`prefix` 0), or a random
// number of them in a random order (`prefix` 1: a flush cut short). Returns nothing: the power is going out.
static void partial_flush(layer *l, int prefix) {
    sector **list = sorted_sectors(l);
    size_t n = l->count;
    for (size_t i = n; i > 1; i--) {  // shuffle: the disk may persist them in any order
        size_t j = (size_t)(next_random() % i);
        sector *t = list[i - 1]; list[i - 1] = list[j]; list[j] = t;
    }
    size_t keep = prefix ? (n ? (size_t)(next_random() % n) : 0) : n;
    if (l->floor >= 0 && (next_random() & 1)) (void)ftruncate(l->fd, l->floor);
    for (size_t i = 0; i < n; i++) {
        int reaches = prefix ? i < keep : (int)(next_random() & 1);
        if (reaches) { (void)write_sector_to_disk(l, list[i]); persisted_sectors++; }
        else dropped_sectors++;
    }
    free(list);
}

// Called with `lock` held.
static void power_loss(const char *reason, layer *torn) __attribute__((noreturn));
static void power_loss(const char *reason, layer *torn) {
    for (layer *l = layers; l; l = l->next) {
        if (l == torn) partial_flush(l, 1);
        else if (plan.writeback_at_cut) partial_flush(l, 0);
        else dropped_sectors += (int64_t)l->count;
    }
    char line[256];
    int n = snprintf(line, sizeof line, "cut %s writes=%lld syncs=%lld dbsyncs=%lld writebacks=%lld dropped=%lld persisted=%lld\n",
                     reason, (long long)counters.writes, (long long)counters.syncs, (long long)counters.database_syncs,
                     (long long)counters.writebacks,
                     (long long)dropped_sectors, (long long)persisted_sectors);
    if (n > 0) (void)write(STDOUT_FILENO, line, (size_t)n);
    _exit(POWERCUT_EXIT_STATUS);
}

void powercut_cut_now(const char *reason) {
    pthread_mutex_lock(&lock);
    power_loss(reason, NULL);
}

// Loses power instead of applying the write when it is the planned one.
static void before_write(void) {
    if (plan.cut_after_writes > 0 && counters.writes + 1 == plan.cut_after_writes) power_loss("write", NULL);
}

// Counts an applied write, and writes everything back when an OS flush is due.
static void count_write(void) {
    counters.writes++;
    if (plan.writeback_every > 0 && counters.writes % plan.writeback_every == 0) {
        counters.writebacks++;
        for (layer *l = layers; l; l = l->next) (void)layer_flush(l);
    }
}

// MARK: - io methods

static int pc_close(sqlite3_file *file) {
    pc_file *f = (pc_file *)file;
    // The layer outlives the handle: closing a file does not empty the page cache.
    return f->real->pMethods->xClose(f->real);
}

static int pc_read(sqlite3_file *file, void *buf, int amount, sqlite3_int64 offset) {
    pc_file *f = (pc_file *)file;
    if (f->layer == NULL) return f->real->pMethods->xRead(f->real, buf, amount, offset);
    pthread_mutex_lock(&lock);
    layer *l = f->layer;
    int rc = layer_read(l, buf, amount, offset);
    if (rc == SQLITE_OK && offset + amount > l->size) {
        int64_t from = max64(offset, l->size);
        memset((unsigned char *)buf + (from - offset), 0, (size_t)(offset + amount - from));
        rc = SQLITE_IOERR_SHORT_READ;
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

static int pc_write(sqlite3_file *file, const void *buf, int amount, sqlite3_int64 offset) {
    pc_file *f = (pc_file *)file;
    if (f->layer == NULL) return f->real->pMethods->xWrite(f->real, buf, amount, offset);
    pthread_mutex_lock(&lock);
    layer *l = f->layer;
    int rc = SQLITE_OK;
    before_write();
    const unsigned char *bytes = buf;
    int64_t pos = offset, end = offset + amount;
    while (pos < end && rc == SQLITE_OK) {
        int64_t index = pos / SECTOR, start = index * SECTOR;
        int64_t chunk_end = min64(end, start + SECTOR);
        sector *s = find_sector(l, index);
        if (s == NULL) {
            s = malloc(sizeof(sector));
            if (s == NULL) abort();
            s->index = index;
            rc = layer_read(l, s->data, SECTOR, start);
            if (start + SECTOR > l->size) {
                int64_t valid = max64(0, l->size - start);
                memset(s->data + valid, 0, (size_t)(SECTOR - valid));
            }
            put_sector(l, s);
        }
        memcpy(s->data + (pos - start), bytes + (pos - offset), (size_t)(chunk_end - pos));
        pos = chunk_end;
    }
    if (end > l->size) l->size = end;
    if (rc == SQLITE_OK) count_write();
    pthread_mutex_unlock(&lock);
    return rc;
}

static int pc_truncate(sqlite3_file *file, sqlite3_int64 size) {
    pc_file *f = (pc_file *)file;
    if (f->layer == NULL) return f->real->pMethods->xTruncate(f->real, size);
    pthread_mutex_lock(&lock);
    layer *l = f->layer;
    before_write();
    if (size < l->size) {
        clear_sectors(l, ((size + SECTOR - 1) / SECTOR) * SECTOR);
        sector *tail = find_sector(l, size / SECTOR);
        if (tail && size % SECTOR) memset(tail->data + size % SECTOR, 0, (size_t)(SECTOR - size % SECTOR));
        l->floor = l->floor < 0 ? size : min64(l->floor, size);
    }
    l->size = size;
    count_write();
    pthread_mutex_unlock(&lock);
    return SQLITE_OK;
}

static int pc_sync(sqlite3_file *file, int flags) {
    pc_file *f = (pc_file *)file;
    if (f->layer == NULL) return f->real->pMethods->xSync(f->real, flags);
    pthread_mutex_lock(&lock);
    counters.syncs++;
    if (f->layer->main_db) counters.database_syncs++;
    if (plan.cut_after_syncs > 0 && counters.syncs == plan.cut_after_syncs) {
        power_loss(plan.torn ? "sync-torn" : "sync", plan.torn ? f->layer : NULL);
    }
    int rc = layer_flush(f->layer);
    pthread_mutex_unlock(&lock);
    // In this model the write above reached the disk; the real fsync keeps the claim true for a real power cut.
    if (rc == SQLITE_OK) rc = f->real->pMethods->xSync(f->real, flags);
    return rc;
}

static int pc_file_size(sqlite3_file *file, sqlite3_int64 *size) {
    pc_file *f = (pc_file *)file;
    if (f->layer == NULL) return f->real->pMethods->xFileSize(f->real, size);
    pthread_mutex_lock(&lock);
    *size = f->layer->size;
    pthread_mutex_unlock(&lock);
    return SQLITE_OK;
}

static int pc_lock(sqlite3_file *file, int level) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xLock(f->real, level);
}

static int pc_unlock(sqlite3_file *file, int level) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xUnlock(f->real, level);
}

static int pc_check_reserved_lock(sqlite3_file *file, int *out) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xCheckReservedLock(f->real, out);
}

static int pc_file_control(sqlite3_file *file, int op, void *arg) {
    pc_file *f = (pc_file *)file;
    if (f->layer != NULL && op == SQLITE_FCNTL_SIZE_HINT) return SQLITE_OK;  // a hint; the layer grows on write
    if (plan.synchronous_off && op == SQLITE_FCNTL_PRAGMA && !in_auto_extension) {
        char **words = arg;
        if (words[1] && sqlite3_stricmp(words[1], "synchronous") == 0 && words[2]) {
            pthread_mutex_lock(&lock);
            counters.ignored_synchronous_pragmas++;
            pthread_mutex_unlock(&lock);
            return SQLITE_OK;  // "handled": the connection keeps synchronous = OFF
        }
    }
    return f->real->pMethods->xFileControl(f->real, op, arg);
}

static int pc_sector_size(sqlite3_file *file) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xSectorSize(f->real);
}

static int pc_device_characteristics(sqlite3_file *file) {
    pc_file *f = (pc_file *)file;
    // Batch-atomic writes (F2FS) would bypass the model; powersafe overwrite holds (a sector never damages its
    // neighbours: torn writes here are whole 512-byte sectors).
    return f->real->pMethods->xDeviceCharacteristics(f->real) & ~SQLITE_IOCAP_BATCH_ATOMIC;
}

static int pc_shm_map(sqlite3_file *file, int page, int page_size, int extend, void volatile **out) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xShmMap(f->real, page, page_size, extend, out);
}

static int pc_shm_lock(sqlite3_file *file, int offset, int n, int flags) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xShmLock(f->real, offset, n, flags);
}

static void pc_shm_barrier(sqlite3_file *file) {
    pc_file *f = (pc_file *)file;
    f->real->pMethods->xShmBarrier(f->real);
}

static int pc_shm_unmap(sqlite3_file *file, int delete_flag) {
    pc_file *f = (pc_file *)file;
    return f->real->pMethods->xShmUnmap(f->real, delete_flag);
}

// iVersion 2: the shared-memory methods WAL needs, and no xFetch (memory-mapped reads would bypass the layer).
static const sqlite3_io_methods pc_io_methods = {
    2,
    pc_close, pc_read, pc_write, pc_truncate, pc_sync, pc_file_size, pc_lock, pc_unlock, pc_check_reserved_lock,
    pc_file_control, pc_sector_size, pc_device_characteristics,
    pc_shm_map, pc_shm_lock, pc_shm_barrier, pc_shm_unmap,
    NULL, NULL,
};

// MARK: - VFS methods

static int pc_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file, int flags, int *out_flags) {
    (void)vfs;
    pc_file *f = (pc_file *)file;
    f->real = (sqlite3_file *)(f + 1);
    f->layer = NULL;
    int rc = real_vfs->xOpen(real_vfs, name, f->real, flags, out_flags);
    if (f->real->pMethods == NULL) {
        f->base.pMethods = NULL;
        return rc;
    }
    f->base.pMethods = &pc_io_methods;
    if (rc != SQLITE_OK) return rc;
    int durable = flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL | SQLITE_OPEN_MAIN_JOURNAL | SQLITE_OPEN_SUPER_JOURNAL);
    if (name != NULL && durable && !(flags & SQLITE_OPEN_DELETEONCLOSE)) {
        pthread_mutex_lock(&lock);
        f->layer = layer_for(name, 1);
        if (f->layer && (flags & SQLITE_OPEN_MAIN_DB)) f->layer->main_db = 1;
        pthread_mutex_unlock(&lock);
    }
    return SQLITE_OK;
}

static int pc_delete(sqlite3_vfs *vfs, const char *name, int sync_dir) {
    (void)vfs;
    pthread_mutex_lock(&lock);
    // The file and its unsynced writes are gone. Handles still open on it keep the (unlinked) layer.
    for (layer **p = &layers; *p; p = &(*p)->next) {
        if (strcmp((*p)->path, name) == 0) {
            layer *gone = *p;
            *p = gone->next;
            free(gone->path);
            gone->path = strdup("(deleted)");
            break;
        }
    }
    pthread_mutex_unlock(&lock);
    return real_vfs->xDelete(real_vfs, name, sync_dir);
}

static int pc_access(sqlite3_vfs *vfs, const char *name, int flags, int *out) {
    (void)vfs;
    return real_vfs->xAccess(real_vfs, name, flags, out);
}

static int pc_full_pathname(sqlite3_vfs *vfs, const char *name, int n, char *out) {
    (void)vfs;
    return real_vfs->xFullPathname(real_vfs, name, n, out);
}

static void *pc_dl_open(sqlite3_vfs *vfs, const char *name) { (void)vfs; return real_vfs->xDlOpen(real_vfs, name); }
static void pc_dl_error(sqlite3_vfs *vfs, int n, char *out) { (void)vfs; real_vfs->xDlError(real_vfs, n, out); }
static void (*pc_dl_sym(sqlite3_vfs *vfs, void *handle, const char *symbol))(void) {
    (void)vfs;
    return real_vfs->xDlSym(real_vfs, handle, symbol);
}
static void pc_dl_close(sqlite3_vfs *vfs, void *handle) { (void)vfs; real_vfs->xDlClose(real_vfs, handle); }
static int pc_randomness(sqlite3_vfs *vfs, int n, char *out) { (void)vfs; return real_vfs->xRandomness(real_vfs, n, out); }
static int pc_sleep(sqlite3_vfs *vfs, int micros) { (void)vfs; return real_vfs->xSleep(real_vfs, micros); }
static int pc_current_time(sqlite3_vfs *vfs, double *out) { (void)vfs; return real_vfs->xCurrentTime(real_vfs, out); }
static int pc_get_last_error(sqlite3_vfs *vfs, int n, char *out) {
    (void)vfs;
    return real_vfs->xGetLastError ? real_vfs->xGetLastError(real_vfs, n, out) : 0;
}
static int pc_current_time_int64(sqlite3_vfs *vfs, sqlite3_int64 *out) {
    (void)vfs;
    return real_vfs->xCurrentTimeInt64(real_vfs, out);
}

// Runs as each connection opens: control runs start with synchronous = OFF (later assignments are ignored, see
// file control); a short wal_autocheckpoint brings checkpoints into short runs.
static int pc_auto_extension(sqlite3 *db, const char **error, const void *api) {
    (void)error; (void)api;
    int rc = SQLITE_OK;
    if (plan.synchronous_off) {
        in_auto_extension = 1;
        rc = sqlite3_exec(db, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
        in_auto_extension = 0;
    }
    if (rc == SQLITE_OK && plan.wal_autocheckpoint > 0) rc = sqlite3_wal_autocheckpoint(db, plan.wal_autocheckpoint);
    return rc;
}

int powercut_install(const powercut_plan *p) {
    if (real_vfs != NULL) return SQLITE_MISUSE;
    int rc = sqlite3_initialize();
    if (rc != SQLITE_OK) return rc;
    real_vfs = sqlite3_vfs_find(NULL);
    if (real_vfs == NULL || real_vfs->iVersion < 2) return SQLITE_ERROR;
    plan = *p;
    random_state = p->seed;
    pc_vfs.iVersion = 2;
    pc_vfs.szOsFile = (int)sizeof(pc_file) + real_vfs->szOsFile;
    pc_vfs.mxPathname = real_vfs->mxPathname;
    pc_vfs.zName = "powercut";
    pc_vfs.xOpen = pc_open;
    pc_vfs.xDelete = pc_delete;
    pc_vfs.xAccess = pc_access;
    pc_vfs.xFullPathname = pc_full_pathname;
    pc_vfs.xDlOpen = pc_dl_open;
    pc_vfs.xDlError = pc_dl_error;
    pc_vfs.xDlSym = pc_dl_sym;
    pc_vfs.xDlClose = pc_dl_close;
    pc_vfs.xRandomness = pc_randomness;
    pc_vfs.xSleep = pc_sleep;
    pc_vfs.xCurrentTime = pc_current_time;
    pc_vfs.xGetLastError = pc_get_last_error;
    pc_vfs.xCurrentTimeInt64 = pc_current_time_int64;
    if (plan.synchronous_off || plan.wal_autocheckpoint > 0) {
        rc = sqlite3_auto_extension((void (*)(void))pc_auto_extension);
        if (rc != SQLITE_OK) return rc;
    }
    return sqlite3_vfs_register(&pc_vfs, 1);
}

powercut_counters powercut_counters_get(void) {
    pthread_mutex_lock(&lock);
    powercut_counters copy = counters;
    pthread_mutex_unlock(&lock);
    return copy;
}

int powercut_integrity_check(const char *path, char *out, int32_t capacity) {
    if (capacity <= 0) return SQLITE_MISUSE;
    out[0] = 0;
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "unix");
    sqlite3_stmt *statement = NULL;
    if (rc == SQLITE_OK) rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &statement, NULL);
    size_t used = 0;
    while (rc == SQLITE_OK) {
        int step = sqlite3_step(statement);
        if (step == SQLITE_DONE) break;
        if (step != SQLITE_ROW) { rc = step; break; }
        const char *text = (const char *)sqlite3_column_text(statement, 0);
        int n = snprintf(out + used, (size_t)capacity - used, "%s%s", used ? "; " : "", text ? text : "");
        if (n < 0 || (size_t)n >= (size_t)capacity - used) break;
        used += (size_t)n;
    }
    if (rc != SQLITE_OK) snprintf(out, (size_t)capacity, "%s", db ? sqlite3_errmsg(db) : "cannot open");
    sqlite3_finalize(statement);
    sqlite3_close(db);
    return rc;
}
