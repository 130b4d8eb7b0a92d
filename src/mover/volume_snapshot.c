#include "volume_snapshot.h"
#include "log.h"
#include "repo_lock.h"
#include "snapshot_store.h"
#include "strbuf.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Entries in flight between the walk and the tree writer; bounds memory with the queues. */
#define WINDOW 64
/* A reader reads this much of a file at once into one of its two buffers; the chunks cut from
 * one are hashed and stored by whichever threads are free (the reader included) while it reads
 * the next, so one large file keeps every thread busy. */
#define BATCH (8u * 1024 * 1024)
#define BATCH_TASKS (BATCH / CHUNK_MIN + 1)
#define PUT_QUEUE (16 * 2 * BATCH_TASKS)	/* threads (at most 16) x batches x tasks */
/* How long a backup waits for a running prune before it gives up (exit 4). */
#define PRUNE_WAIT_SECONDS 600

/* ---- shared helpers ---- */

static void set_err_path(char *err, size_t errlen, const char *verb, const char *path, const char *why)
{
	char *esc = path_escape(path);

	snprintf(err, errlen, "%s %s: %s", verb, esc, why);
	free(esc);
}

static int64_t ts_sec(const struct timespec *t)
{
	return (int64_t)t->tv_sec;
}

/* ---- backup ---- */

struct batch;

/* One chunk to hash and store: the bytes stay in their batch's buffer until it is done. */
struct put_task {
	struct batch *batch;
	const uint8_t *data;
	size_t len;
	uint8_t id[CHUNK_ID_LEN];
	int rc;
	char err[256];
};

struct batch {
	uint8_t *buf;
	struct put_task tasks[BATCH_TASKS];
	size_t ntasks, pending;		/* pending under the backup's mu */
};

/* A reader's two buffers. */
struct reader {
	struct batch bt[2];
};

struct backup_slot {
	struct manifest_entry e;
	int done;
	int vanished;		/* removed between the walk and the read: left out */
};

struct backup {
	struct chunk_store *cs;
	const struct volume_backup_options *opt;
	struct volume_backup_result *res;
	int root_fd;
	struct repo_lock *lock;

	/* Two conditions, so an entry that needs no reading wakes nobody: "work" wakes the
	 * readers (a job queued, stop, failure), "cond" the main thread (a read finished). */
	pthread_mutex_t mu;
	pthread_cond_t cond, work;
	struct backup_slot slots[WINDOW];
	uint64_t head, tail;		/* slots [head, tail) are in use */
	uint64_t jobs[WINDOW];
	uint64_t jobs_head, jobs_tail;
	struct put_task *puts[PUT_QUEUE];	/* chunks waiting for a thread; they wake "work" */
	uint64_t puts_head, puts_tail;
	pthread_cond_t put_done;		/* a chunk stored */
	int stop, failed, fail_rc;
	char err[1024];

	struct tree_writer *tw;
	struct manifest_header parent_h;
	struct tree_reader *parent;
	struct manifest_entry pe;
	int pe_valid;

	struct volume_progress prog;	/* under mu */
	int scanned;			/* the totals in prog are complete; under mu */
	time_t last_progress;
};

/* Records the first failure; the others are consequences. Caller holds mu. */
static void backup_fail_locked(struct backup *b, int rc, const char *msg)
{
	if (!b->failed) {
		b->failed = 1;
		b->fail_rc = rc;
		snprintf(b->err, sizeof b->err, "%s", msg);
	}
	pthread_cond_broadcast(&b->cond);
	pthread_cond_broadcast(&b->work);
}

static void backup_fail(struct backup *b, int rc, const char *msg)
{
	pthread_mutex_lock(&b->mu);
	backup_fail_locked(b, rc, msg);
	pthread_mutex_unlock(&b->mu);
}

static void add_chunk(struct manifest_entry *e, size_t *cap, const uint8_t id[CHUNK_ID_LEN], size_t len)
{
	if (e->nchunks == *cap) {
		*cap = *cap ? *cap * 2 : 8;
		e->chunks = xrealloc(e->chunks, *cap * sizeof *e->chunks);
	}
	memcpy(e->chunks[e->nchunks].id, id, CHUNK_ID_LEN);
	e->chunks[e->nchunks++].len = (uint32_t)len;
}

static void add_hole(struct manifest_entry *e, size_t *cap, uint64_t offset, uint64_t len)
{
	if (len == 0)
		return;
	if (e->nholes && e->holes[e->nholes - 1].offset + e->holes[e->nholes - 1].len == offset) {
		e->holes[e->nholes - 1].len += len;
		return;
	}
	if (e->nholes == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		e->holes = xrealloc(e->holes, *cap * sizeof *e->holes);
	}
	e->holes[e->nholes].offset = offset;
	e->holes[e->nholes++].len = len;
}

/* Caller holds mu; mu is released while the chunk is stored. */
static void put_run_locked(struct backup *b, struct put_task *t)
{
	int rc;

	pthread_mutex_unlock(&b->mu);
	rc = chunk_store_put(b->cs, CHUNK_DATA, t->data, t->len, t->id, t->err, sizeof t->err);
	pthread_mutex_lock(&b->mu);
	t->rc = rc;
	t->batch->pending--;
	pthread_cond_broadcast(&b->put_done);
}

/* Waits until every chunk of bt is stored, storing queued ones (anyone's) meanwhile, then
 * appends their ids to e in order. Even after a failure: other threads may be reading bt. */
static int batch_finish(struct backup *b, struct batch *bt, struct manifest_entry *e, size_t *chunk_cap,
			char *err, size_t errlen)
{
	int rc = 0;

	pthread_mutex_lock(&b->mu);
	while (bt->pending) {
		if (b->puts_head != b->puts_tail)
			put_run_locked(b, b->puts[b->puts_head++ % PUT_QUEUE]);
		else
			pthread_cond_wait(&b->put_done, &b->mu);
	}
	pthread_mutex_unlock(&b->mu);
	for (size_t i = 0; i < bt->ntasks; i++) {
		if (bt->tasks[i].rc < 0 && rc == 0) {
			set_err_path(err, errlen, "backup", e->path, bt->tasks[i].err);
			rc = -1;
		}
		if (rc == 0)
			add_chunk(e, chunk_cap, bt->tasks[i].id, bt->tasks[i].len);
	}
	bt->ntasks = 0;
	return rc;
}

/* Hands the chunks cut from bt to the threads; a single last chunk (a small file) is stored
 * right here, without waking anyone. */
static void batch_submit(struct backup *b, struct batch *bt, int alone)
{
	if (alone && bt->ntasks == 1) {
		struct put_task *t = &bt->tasks[0];
		t->rc = chunk_store_put(b->cs, CHUNK_DATA, t->data, t->len, t->id, t->err, sizeof t->err);
		return;
	}
	pthread_mutex_lock(&b->mu);
	for (size_t i = 0; i < bt->ntasks; i++)
		b->puts[b->puts_tail++ % PUT_QUEUE] = &bt->tasks[i];
	bt->pending = bt->ntasks;
	if (bt->ntasks)
		pthread_cond_broadcast(&b->work);
	pthread_mutex_unlock(&b->mu);
}

/* Chunks [start, end) of fd; returns the offset reached (short when the file shrank) or -1. */
static int64_t backup_region(struct backup *b, int fd, struct manifest_entry *e, size_t *chunk_cap,
			     uint64_t start, uint64_t end, struct reader *rd, char *err, size_t errlen)
{
	uint64_t pos = start, cut = start;	/* read up to pos; chunks cut up to cut */
	size_t have = 0;			/* bytes in the current buffer */
	int cur = 0, eof = 0, rc = 0;

	while (rc == 0) {
		struct batch *bt = &rd->bt[cur], *older = &rd->bt[!cur];
		size_t off = 0;
		int last;

		while (!eof && have < BATCH && pos < end) {
			size_t want = BATCH - have;
			ssize_t r;

			if (want > end - pos)
				want = (size_t)(end - pos);
			r = pread(fd, bt->buf + have, want, (off_t)pos);
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				set_err_path(err, errlen, "backup", e->path, strerror(errno));
				rc = -1;
				break;
			}
			if (r == 0)
				eof = 1;
			have += (size_t)r;
			pos += (uint64_t)r;
		}
		if (rc < 0 || have == 0)
			break;
		last = eof || pos == end;
		while (have - off >= CHUNK_MAX || (last && off < have)) {
			size_t n = chunker_cut(chunk_store_chunker(b->cs), bt->buf + off, have - off);

			bt->tasks[bt->ntasks++] = (struct put_task){ .batch = bt, .data = bt->buf + off, .len = n };
			off += n;
		}
		cut += off;
		pthread_mutex_lock(&b->mu);
		b->prog.bytes_done += off;
		pthread_mutex_unlock(&b->mu);
		batch_submit(b, bt, last && older->ntasks == 0);
		rc = batch_finish(b, older, e, chunk_cap, err, errlen);
		memcpy(older->buf, bt->buf + off, have - off);	/* the start of the next chunk */
		have -= off;
		cur = !cur;
		if (last && have == 0)
			break;
	}
	if (batch_finish(b, &rd->bt[!cur], e, chunk_cap, err, errlen) < 0 || rc < 0)
		return -1;
	return (int64_t)cut;
}

/* Opens path beneath the volume without following any symlink on the way: the walk saw a
 * directory, but a process in the volume may have swapped it for a link since. */
static int open_for_reading(int root_fd, const char *path)
{
	struct open_how how = { .flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	int fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);

	if (fd < 0 && errno == EPERM) {	/* O_NOATIME needs ownership */
		how.flags &= ~(uint64_t)O_NOATIME;
		fd = (int)syscall(SYS_openat2, root_fd, path, &how, sizeof how);
	}
	return fd;
}

/* Reads a regular file into chunks, skipping the holes SEEK_DATA/SEEK_HOLE report. Returns 1
 * when the file is gone: a live volume loses temporary files all the time. */
static int backup_file(struct backup *b, struct manifest_entry *e, struct reader *rd, char *err, size_t errlen)
{
	size_t chunk_cap = 0, hole_cap = 0;
	struct stat st;
	uint64_t off = 0, size;
	int fd = open_for_reading(b->root_fd, e->path);

	if (fd < 0 && errno == ENOENT) {
		char *esc = path_escape(e->path);
		log_warn("backup %s: removed while the backup ran; left out", esc);
		free(esc);
		return 1;
	}
	if (fd < 0) {
		set_err_path(err, errlen, "backup", e->path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_err_path(err, errlen, "backup", e->path, "changed into something other than a file while read");
		close(fd);
		return -1;
	}
	size = (uint64_t)st.st_size;
	e->size = size;
	e->mtime_sec = ts_sec(&st.st_mtim);
	e->mtime_nsec = (uint32_t)st.st_mtim.tv_nsec;
	e->ctime_sec = ts_sec(&st.st_ctim);
	e->ctime_nsec = (uint32_t)st.st_ctim.tv_nsec;
	e->ino = st.st_ino;
	while (off < size) {
		off_t data = lseek(fd, (off_t)off, SEEK_DATA), hole;
		int64_t reached;

		if (data < 0 && errno == ENXIO)
			data = (off_t)size;		/* the rest is a hole */
		else if (data < 0)
			data = (off_t)off;		/* no hole support: all data */
		if ((uint64_t)data > size)
			data = (off_t)size;
		add_hole(e, &hole_cap, off, (uint64_t)data - off);
		if ((uint64_t)data >= size)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > size)
			hole = (off_t)size;
		reached = backup_region(b, fd, e, &chunk_cap, (uint64_t)data, (uint64_t)hole, rd, err, errlen);
		if (reached < 0) {
			close(fd);
			return -1;
		}
		if ((uint64_t)reached < (uint64_t)hole) {
			char *esc = path_escape(e->path);
			log_warn("backup %s: file shrank while it was read; keeping the %lld bytes read", esc, (long long)reached);
			free(esc);
			e->size = (uint64_t)reached;
			break;
		}
		off = (uint64_t)hole;
	}
	close(fd);
	for (size_t i = 0; i < e->nchunks; i++)
		off = i ? off + e->chunks[i].len : e->chunks[i].len;
	if (!e->nchunks)
		off = 0;
	pthread_mutex_lock(&b->mu);
	b->res->bytes_read += off;
	b->prog.bytes_done += e->size - off;	/* the holes */
	pthread_mutex_unlock(&b->mu);
	return 0;
}

static void *backup_worker(void *arg)
{
	struct backup *b = arg;
	struct reader *rd = xcalloc(1, sizeof *rd);
	char err[1024];

	rd->bt[0].buf = xmalloc(BATCH);
	rd->bt[1].buf = xmalloc(BATCH);
	pthread_mutex_lock(&b->mu);
	for (;;) {
		struct backup_slot *s;
		int rc;

		while (b->jobs_head == b->jobs_tail && b->puts_head == b->puts_tail && !b->stop && !b->failed)
			pthread_cond_wait(&b->work, &b->mu);
		if (b->puts_head != b->puts_tail) {	/* first: a reader waits for them */
			put_run_locked(b, b->puts[b->puts_head++ % PUT_QUEUE]);
			continue;
		}
		if (b->failed || b->jobs_head == b->jobs_tail)
			break;
		s = &b->slots[b->jobs[b->jobs_head++ % WINDOW] % WINDOW];
		pthread_mutex_unlock(&b->mu);
		rc = backup_file(b, &s->e, rd, err, sizeof err);
		pthread_mutex_lock(&b->mu);
		s->done = 1;
		s->vanished = rc == 1;
		if (rc < 0)
			backup_fail_locked(b, rc, err);
		pthread_cond_signal(&b->cond);
	}
	pthread_mutex_unlock(&b->mu);
	free(rd->bt[0].buf);
	free(rd->bt[1].buf);
	free(rd);
	return NULL;
}

/* Main thread only: a progress line at most once a second, and the lock kept fresh. */
static void backup_tick(struct backup *b, int final)
{
	time_t now = time(NULL);
	struct volume_progress p;
	char err[512];

	if (repo_lock_refresh(b->lock, err, sizeof err) < 0)
		log_warn("refreshing the repository lock: %s", err);
	if (!b->opt->progress || (!final && now == b->last_progress))
		return;
	b->last_progress = now;
	pthread_mutex_lock(&b->mu);
	p = b->prog;
	if (!b->scanned) {	/* the totals are still being counted: never below what is done */
		p.files_total = p.files_total > p.files_done ? p.files_total : p.files_done;
		p.bytes_total = p.bytes_total > p.bytes_done ? p.bytes_total : p.bytes_done;
	}
	pthread_mutex_unlock(&b->mu);
	b->opt->progress(&p, b->opt->progress_arg);
}

/* Caller holds mu. Waits for the entry at the head of the window, ticking every second so a
 * long file neither silences progress nor lets the lock go stale. */
static void backup_wait_head(struct backup *b)
{
	while (!b->slots[b->head % WINDOW].done && !b->failed) {
		struct timespec until;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 1;
		if (pthread_cond_timedwait(&b->cond, &b->mu, &until) != 0) {
			pthread_mutex_unlock(&b->mu);
			backup_tick(b, 0);
			pthread_mutex_lock(&b->mu);
		}
	}
}

/* Moves finished entries at the head of the window to the tree, in walk order. */
static int backup_emit_ready(struct backup *b)
{
	for (;;) {
		struct manifest_entry e;
		char err[1024];
		int rc, vanished;

		pthread_mutex_lock(&b->mu);
		if (b->failed || b->head == b->tail || !b->slots[b->head % WINDOW].done) {
			rc = b->failed ? -1 : 0;
			pthread_mutex_unlock(&b->mu);
			return rc;
		}
		e = b->slots[b->head % WINDOW].e;
		vanished = b->slots[b->head % WINDOW].vanished;
		memset(&b->slots[b->head % WINDOW], 0, sizeof b->slots[0]);
		b->head++;
		if (e.type == ENTRY_FILE)
			b->prog.files_done++;
		pthread_mutex_unlock(&b->mu);

		if (vanished) {
			manifest_entry_free(&e);
			continue;
		}
		rc = tree_writer_add(b->tw, &e, err, sizeof err);
		if (e.type == ENTRY_FILE) {
			b->res->files++;
			b->res->bytes += e.size;
			b->res->chunks += e.nchunks;
		} else if (e.type == ENTRY_DIR) {
			b->res->dirs++;
		} else {
			b->res->symlinks++;
		}
		manifest_entry_free(&e);
		if (rc < 0) {
			backup_fail(b, rc, err);
			return -1;
		}
		backup_tick(b, 0);
	}
}

/* Hands an entry (taken over) to the window; files that need reading go to the workers. */
static int backup_push(struct backup *b, struct manifest_entry *e, int needs_read)
{
	struct backup_slot *s;

	for (;;) {
		if (backup_emit_ready(b) < 0) {
			manifest_entry_free(e);
			return -1;
		}
		pthread_mutex_lock(&b->mu);
		if (b->tail - b->head < WINDOW)
			break;
		backup_wait_head(b);
		pthread_mutex_unlock(&b->mu);
	}
	s = &b->slots[b->tail % WINDOW];
	s->e = *e;
	s->done = !needs_read;
	if (e->type == ENTRY_FILE && !needs_read)
		b->prog.bytes_done += e->size;
	if (needs_read) {
		b->jobs[b->jobs_tail++ % WINDOW] = b->tail;
		pthread_cond_signal(&b->work);
	}
	b->tail++;
	pthread_mutex_unlock(&b->mu);
	memset(e, 0, sizeof *e);
	return 0;
}

static int backup_drain(struct backup *b)
{
	for (;;) {
		if (backup_emit_ready(b) < 0)
			return -1;
		pthread_mutex_lock(&b->mu);
		if (b->head == b->tail) {
			pthread_mutex_unlock(&b->mu);
			return 0;
		}
		backup_wait_head(b);
		pthread_mutex_unlock(&b->mu);
	}
}

/* The parent's entry for path, when the parent has one. Paths are asked in walk order, so
 * one pass over the parent's tree serves the whole backup. */
static const struct manifest_entry *parent_find(struct backup *b, const char *path)
{
	char err[512];

	while (b->parent) {
		int c;

		if (!b->pe_valid) {
			int rc = tree_reader_next(b->parent, &b->pe, err, sizeof err);
			if (rc <= 0) {
				if (rc < 0)
					log_warn("parent snapshot unreadable, reading every file: %s", err);
				tree_reader_free(b->parent);
				b->parent = NULL;
				return NULL;
			}
			b->pe_valid = 1;
		}
		c = manifest_path_cmp(b->pe.path, path);
		if (c > 0)
			return NULL;
		if (c == 0)
			return &b->pe;
		manifest_entry_free(&b->pe);
		b->pe_valid = 0;
	}
	return NULL;
}

/* Takes the parent's chunk list when the file is unchanged and all its chunks still exist. */
static int reuse_from_parent(struct backup *b, struct manifest_entry *e)
{
	const struct manifest_entry *p = parent_find(b, e->path);

	if (!p || p->type != ENTRY_FILE || p->size != e->size || p->ino != e->ino ||
	    p->mtime_sec != e->mtime_sec || p->mtime_nsec != e->mtime_nsec ||
	    p->ctime_sec != e->ctime_sec || p->ctime_nsec != e->ctime_nsec)
		return 0;
	for (size_t i = 0; i < p->nchunks; i++)
		if (!chunk_store_has(b->cs, p->chunks[i].id))
			return 0;
	e->chunks = xmalloc((p->nchunks + 1) * sizeof *e->chunks);
	memcpy(e->chunks, p->chunks, p->nchunks * sizeof *e->chunks);
	e->nchunks = p->nchunks;
	e->holes = xmalloc((p->nholes + 1) * sizeof *e->holes);
	memcpy(e->holes, p->holes, p->nholes * sizeof *e->holes);
	e->nholes = p->nholes;
	b->res->files_unchanged++;
	return 1;
}

static void entry_from_stat(struct manifest_entry *e, const char *path, const struct stat *st)
{
	memset(e, 0, sizeof *e);
	e->path = xstrdup(path);
	e->mode = st->st_mode & 07777;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->mtime_sec = ts_sec(&st->st_mtim);
	e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	if (S_ISDIR(st->st_mode))
		e->type = ENTRY_DIR;
	else if (S_ISLNK(st->st_mode))
		e->type = ENTRY_SYMLINK;
	else
		e->type = ENTRY_FILE;
	if (e->type == ENTRY_FILE) {
		e->size = (uint64_t)st->st_size;
		e->ino = st->st_ino;
		e->ctime_sec = ts_sec(&st->st_ctim);
		e->ctime_nsec = (uint32_t)st->st_ctim.tv_nsec;
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in a directory, sorted bytewise so every walk has the same order. */
static char **read_names(int dirfd, size_t *n)
{
	int fd = dup(dirfd);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **names = NULL;
	size_t cap = 0;

	*n = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	rewinddir(d);	/* the duplicate shares its offset with dirfd, read before */
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 32;
			names = xrealloc(names, cap * sizeof *names);
		}
		names[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	if (!names)
		names = xmalloc(sizeof *names);
	qsort(names, *n, sizeof *names, name_cmp);
	return names;
}

static void free_names(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* scan_only counts files and bytes for the progress totals and stores nothing. */
static int backup_walk(struct backup *b, int dirfd, struct strbuf *path, int scan_only)
{
	size_t n, base = path->len;
	char **names = read_names(dirfd, &n);
	char msg[1024];
	int rc = 0;

	if (!names) {
		char why[256];
		snprintf(why, sizeof why, "reading directory: %s", strerror(errno));
		set_err_path(msg, sizeof msg, "backup", path->len ? path->buf : ".", why);
		backup_fail(b, -1, msg);
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct manifest_entry e;
		struct stat st;

		path->len = base;
		if (base)
			strbuf_addch(path, '/');
		strbuf_addstr(path, names[i]);
		if (path->len > MANIFEST_PATH_MAX) {
			set_err_path(msg, sizeof msg, "backup", path->buf, "path longer than 4095 bytes");
			backup_fail(b, -1, msg);
			rc = -1;
			break;
		}
		if (fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;	/* removed since the directory was read */
		if (scan_only) {
			if (S_ISREG(st.st_mode)) {
				pthread_mutex_lock(&b->mu);
				b->prog.files_total++;
				b->prog.bytes_total += (uint64_t)st.st_size;
				pthread_mutex_unlock(&b->mu);
			}
		} else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode) || S_ISLNK(st.st_mode)) {
			entry_from_stat(&e, path->buf, &st);
			if (e.type == ENTRY_SYMLINK) {
				char target[MANIFEST_PATH_MAX + 1];
				ssize_t len = readlinkat(dirfd, names[i], target, sizeof target);
				if (len <= 0 || len > MANIFEST_PATH_MAX) {
					manifest_entry_free(&e);
					continue;	/* replaced meanwhile, or a target we cannot store */
				}
				e.target = xstrndup(target, (size_t)len);
			}
			rc = backup_push(b, &e, e.type == ENTRY_FILE && !reuse_from_parent(b, &e));
		} else {
			char *esc = path_escape(path->buf);
			log_warn("backup %s: skipped, not a regular file, directory or symlink", esc);
			free(esc);
		}
		if (rc == 0 && S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				set_err_path(msg, sizeof msg, "backup", path->buf, strerror(errno));
				backup_fail(b, -1, msg);
				rc = -1;
				break;
			}
			rc = backup_walk(b, sub, path, scan_only);
			close(sub);
		}
	}
	path->len = base;
	if (path->buf)
		path->buf[base] = '\0';
	free_names(names, n);
	return rc;
}

/* Counts the totals for progress beside the backup's own walk, on a core the walk leaves idle
 * when little changed, instead of a second full walk before it. */
static void *backup_scan(void *arg)
{
	struct backup *b = arg;
	struct strbuf path = STRBUF_INIT;
	/* its own open directory: read_names' duplicate shares the offset with the one it copies */
	int fd = openat(b->root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		backup_walk(b, fd, &path, 1);
		close(fd);
	}
	strbuf_release(&path);
	pthread_mutex_lock(&b->mu);
	b->scanned = 1;
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static int tags_equal(const struct manifest_tag *a, size_t na, const struct manifest_tag *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++) {
		size_t j = 0;
		while (j < nb && strcmp(a[i].key, b[j].key) != 0)
			j++;
		if (j == nb || strcmp(a[i].value, b[j].value) != 0)
			return 0;
	}
	return 1;
}

struct parent_pick {
	struct backup *b;
	char best[SNAPSHOT_ID_LEN + 1];
};

static int parent_pick_one(const char *id, const struct object_info *info, void *arg)
{
	struct parent_pick *pp = arg;
	struct manifest_header h;
	char err[512];

	(void)info;
	if (pp->best[0] && strcmp(id, pp->best) <= 0)
		return 0;
	if (snapshot_read(pp->b->cs, id, &h, err, sizeof err) < 0) {
		log_warn("looking for a parent snapshot: %s", err);
		return 0;
	}
	if (tags_equal(h.tags, h.ntags, pp->b->opt->tags, pp->b->opt->ntags))
		strcpy(pp->best, id);
	manifest_header_free(&h);
	return 0;
}

/* The latest snapshot with the same tags: its tree is the metadata cache of this backup. */
static void backup_open_parent(struct backup *b)
{
	struct parent_pick pp = { b, "" };
	char err[512];

	if (snapshot_list(b->cs, parent_pick_one, &pp, err, sizeof err) < 0 || !pp.best[0])
		return;
	if (snapshot_read(b->cs, pp.best, &b->parent_h, err, sizeof err) < 0)
		return;
	strcpy(b->res->parent, pp.best);
	b->parent = tree_reader_new(b->cs, &b->parent_h);
}

static int backup_run(struct backup *b, char *err, size_t errlen)
{
	struct manifest_header h;
	struct strbuf path = STRBUF_INIT;
	struct manifest_entry root;
	struct stat st;
	pthread_t threads[16], scan;
	unsigned nthreads = b->opt->threads ? b->opt->threads : 2, started = 0;
	int rc, scanning;

	if (nthreads > 16)
		nthreads = 16;
	backup_open_parent(b);
	scanning = pthread_create(&scan, NULL, backup_scan, b) == 0;
	if (!scanning)
		backup_scan(b);
	b->tw = tree_writer_new(b->cs);
	for (; started < nthreads; started++)
		if (pthread_create(&threads[started], NULL, backup_worker, b) != 0) {
			backup_fail(b, -1, "starting reader threads failed");
			break;
		}
	if (fstat(b->root_fd, &st) == 0) {
		entry_from_stat(&root, ".", &st);
		if (backup_push(b, &root, 0) == 0 && backup_walk(b, b->root_fd, &path, 0) == 0)
			backup_drain(b);
	}
	pthread_mutex_lock(&b->mu);
	b->stop = 1;
	pthread_cond_broadcast(&b->work);
	pthread_mutex_unlock(&b->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	if (scanning)
		pthread_join(scan, NULL);
	strbuf_release(&path);
	if (b->failed) {
		tree_writer_free(b->tw);
		goto fail;
	}
	backup_tick(b, 1);

	memset(&h, 0, sizeof h);
	if ((rc = tree_writer_finish(b->tw, &h.tree, &h.ntree, err, errlen)) < 0 ||
	    (rc = chunk_store_flush(b->cs, err, errlen)) < 0 ||
	    (rc = repo_lock_check(b->lock, err, errlen)) < 0)
		goto out;
	if (snapshot_id_new(h.id) < 0) {
		snprintf(err, errlen, "making a snapshot id failed");
		rc = -1;
		goto out;
	}
	strcpy(h.parent, b->res->parent);
	h.time_sec = time(NULL);
	h.source = realpath(b->opt->source, NULL);	/* as it was, for people reading the list */
	if (!h.source)
		h.source = xstrdup(b->opt->source);
	h.tags = (struct manifest_tag *)b->opt->tags;
	h.ntags = b->opt->ntags;
	h.files = b->res->files;
	h.dirs = b->res->dirs;
	h.symlinks = b->res->symlinks;
	h.bytes = b->res->bytes;
	rc = snapshot_write(b->cs, &h, err, errlen);
	if (rc == 0)
		strcpy(b->res->id, h.id);
out:
	free(h.tree);
	free(h.source);
	return rc;
fail:
	snprintf(err, errlen, "%s", b->err);
	return b->fail_rc ? b->fail_rc : -1;
}

int volume_backup(struct chunk_store *cs, const struct volume_backup_options *opt,
		  struct volume_backup_result *res, char *err, size_t errlen)
{
	struct backup *b;
	int rc;

	memset(res, 0, sizeof *res);
	for (size_t i = 0; i < opt->ntags; i++)
		if (manifest_tag_valid(opt->tags[i].key, opt->tags[i].value, err, errlen) < 0)
			return -1;
	b = xcalloc(1, sizeof *b);
	b->cs = cs;
	b->opt = opt;
	b->res = res;
	b->root_fd = open(opt->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->root_fd < 0) {
		set_err_path(err, errlen, "backup source", opt->source, strerror(errno));
		free(b);
		return -1;
	}
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cond, NULL);
	pthread_cond_init(&b->work, NULL);
	pthread_cond_init(&b->put_done, NULL);
	rc = repo_lock_acquire(cs, REPO_LOCK_BACKUP, opt->lock_stale ? opt->lock_stale : REPO_LOCK_STALE_DEFAULT,
			       PRUNE_WAIT_SECONDS, &b->lock, NULL, err, errlen);
	if (rc == 0)
		rc = backup_run(b, err, errlen);
	repo_lock_release(b->lock);
	chunk_store_get_stats(cs, &res->store);
	for (uint64_t i = b->head; i < b->tail; i++)
		manifest_entry_free(&b->slots[i % WINDOW].e);
	if (b->pe_valid)
		manifest_entry_free(&b->pe);
	tree_reader_free(b->parent);
	manifest_header_free(&b->parent_h);
	pthread_mutex_destroy(&b->mu);
	pthread_cond_destroy(&b->cond);
	pthread_cond_destroy(&b->work);
	pthread_cond_destroy(&b->put_done);
	close(b->root_fd);
	free(b);
	return rc;
}

/* ---- restore ---- */

struct restore {
	struct chunk_store *cs;
	struct chunk_reader *reader;	/* shared by the threads: each byte of a pack fetched once */
	const struct volume_restore_options *opt;
	int root_fd, as_root;
	mode_t umask;	/* the process's, read once before the threads start */
	struct volume_progress prog;	/* under mu */
	struct volume_restore_result res;	/* under mu */
	time_t last_progress;

	/* "work" wakes the writers (a file queued, stop, failure); "cond" the main thread (room
	 * in the full queue) */
	pthread_mutex_t mu;
	pthread_cond_t cond, work;
	struct manifest_entry queue[WINDOW];
	uint64_t head, tail;
	int stop, failed, fail_rc;
	char err[1024];
};

/* Counts restored bytes and files; reports at most once a second (or when final). */
static void restore_advance(struct restore *r, uint64_t bytes, uint64_t files, int final)
{
	time_t now = time(NULL);

	pthread_mutex_lock(&r->mu);
	r->prog.bytes_done += bytes;
	r->prog.files_done += files;
	if (r->opt->progress && (final || now != r->last_progress)) {
		r->last_progress = now;
		r->opt->progress(&r->prog, r->opt->progress_arg);
	}
	pthread_mutex_unlock(&r->mu);
}

static void restore_fail(struct restore *r, int rc, const char *msg)
{
	pthread_mutex_lock(&r->mu);
	if (!r->failed) {
		r->failed = 1;
		r->fail_rc = rc;
		snprintf(r->err, sizeof r->err, "%s", msg);
	}
	pthread_cond_broadcast(&r->cond);
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->mu);
}

/* The directory that holds path, opened beneath the target without following any symlink,
 * so a tree cannot make restore write outside the target. *base is the last component. */
static int open_parent(int root_fd, const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
				.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
	char *dir;
	int fd;

	*base = slash ? slash + 1 : path;
	dir = slash ? xstrndup(path, (size_t)(slash - path)) : xstrdup(".");
	fd = (int)syscall(SYS_openat2, root_fd, dir, &how, sizeof how);
	free(dir);
	return fd;
}

static int r_failed(struct restore *r)
{
	int failed;

	pthread_mutex_lock(&r->mu);
	failed = r->failed;
	pthread_mutex_unlock(&r->mu);
	return failed;
}

static int write_all_at(int fd, const char *p, size_t len, uint64_t off)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Where chunk i of a file starts: its offset in the file and the first hole at or after it.
 * Chunks are laid over the data regions in order; holes stay holes. */
struct chunk_place {
	uint64_t pos;
	size_t hole;
};

static struct chunk_place *chunk_places(const struct manifest_entry *e)
{
	struct chunk_place *pl = xcalloc(e->nchunks ? e->nchunks : 1, sizeof *pl);
	uint64_t pos = 0;
	size_t hole = 0;

	for (size_t i = 0; i < e->nchunks; i++) {
		uint64_t left = e->chunks[i].len;

		while (hole < e->nholes && pos == e->holes[hole].offset)
			pos += e->holes[hole++].len;
		pl[i].pos = pos;
		pl[i].hole = hole;
		while (left) {
			uint64_t room;

			if (hole < e->nholes && pos == e->holes[hole].offset) {
				pos += e->holes[hole++].len;
				continue;
			}
			room = hole < e->nholes ? e->holes[hole].offset - pos : UINT64_MAX;
			room = left < room ? left : room;
			left -= room;
			pos += room;
		}
	}
	return pl;
}

/* Reads, checks and writes chunk i at its place. */
static int restore_chunk(struct restore *r, int fd, const struct manifest_entry *e, size_t i,
			 struct chunk_place at, struct strbuf *data, char *err, size_t errlen)
{
	char why[512];
	size_t done = 0;
	int rc;

	strbuf_reset(data);
	rc = chunk_store_read(r->cs, r->reader, e->chunks[i].id, data, why, sizeof why);
	if (rc == 0 && data->len != e->chunks[i].len) {
		snprintf(why, sizeof why, "chunk length differs from the manifest");
		rc = CHUNK_STORE_CORRUPT;
	}
	if (rc < 0) {
		set_err_path(err, errlen, "restore", e->path, why);
		return rc;
	}
	while (done < data->len) {
		uint64_t room;
		size_t n;

		if (at.hole < e->nholes && at.pos == e->holes[at.hole].offset) {
			at.pos += e->holes[at.hole++].len;
			continue;
		}
		room = at.hole < e->nholes ? e->holes[at.hole].offset - at.pos : UINT64_MAX;
		n = data->len - done < room ? data->len - done : (size_t)room;
		if (write_all_at(fd, data->buf + done, n, at.pos) < 0) {
			set_err_path(err, errlen, "restore", e->path, strerror(errno));
			return -1;
		}
		done += n;
		at.pos += n;
	}
	if (e->nchunks > 1)	/* a file of one chunk is counted once done, with one lock */
		restore_advance(r, data->len, 0, 0);
	return 0;
}

/* One file's chunks shared by several threads: a large file is not restored at the speed of
 * one request after another. The chunks go out in runs, one run per window of the reader (the
 * chunks one ranged read fetches: a file's chunks lie side by side in its packs), run b to
 * thread b % nthreads: every window is read by one thread, and no two threads wait for the same
 * bytes. A thread starting a run hints the first chunk of its next one, so that window is read
 * ahead meanwhile. */
struct file_job {
	struct restore *r;
	int fd;
	const struct manifest_entry *e;
	const struct chunk_place *places;
	const size_t *runs;		/* where each run starts; runs[nruns] = nchunks */
	size_t nruns;
	unsigned nthreads;
	pthread_mutex_t mu;
	int rc;
	char err[1024];
};

struct file_part {
	struct file_job *job;
	unsigned k;
};

static void *restore_part(void *arg)
{
	struct file_part *part = arg;
	struct file_job *j = part->job;
	struct strbuf data = STRBUF_INIT;
	char err[1024];
	int rc = 0;

	for (size_t b = part->k; b < j->nruns && rc == 0; b += j->nthreads) {
		if (b + j->nthreads < j->nruns)
			chunk_reader_hint(j->r->reader, j->e->chunks[j->runs[b + j->nthreads]].id);
		for (size_t i = j->runs[b]; i < j->runs[b + 1]; i++) {
			pthread_mutex_lock(&j->mu);
			rc = j->rc;
			pthread_mutex_unlock(&j->mu);
			if (rc < 0 || r_failed(j->r)) {
				rc = -1;
				break;
			}
			rc = restore_chunk(j->r, j->fd, j->e, i, j->places[i], &data, err, sizeof err);
			if (rc < 0) {
				pthread_mutex_lock(&j->mu);
				if (j->rc == 0) {
					j->rc = rc;
					snprintf(j->err, sizeof j->err, "%s", err);
				}
				pthread_mutex_unlock(&j->mu);
				break;
			}
		}
	}
	strbuf_release(&data);
	return NULL;
}

/* Files of at least this many chunks are split over the restore's threads. */
#define RESTORE_SPLIT_CHUNKS 8

static int restore_data(struct restore *r, int fd, const struct manifest_entry *e, char *err, size_t errlen)
{
	unsigned nthreads = r->opt->threads ? r->opt->threads : 2;
	struct chunk_place *places = chunk_places(e);
	struct file_job j = { .r = r, .fd = fd, .e = e, .places = places };
	struct file_part parts[16];
	size_t *runs;
	uint64_t last = 0;
	pthread_t tids[16];
	unsigned started = 0;
	int rc = 0;

	if (nthreads > 16)
		nthreads = 16;
	if (e->nchunks < RESTORE_SPLIT_CHUNKS || nthreads < 2) {
		struct strbuf data = STRBUF_INIT;

		for (size_t i = 0; i < e->nchunks && rc == 0; i++)
			rc = restore_chunk(r, fd, e, i, places[i], &data, err, errlen);
		strbuf_release(&data);
		free(places);
		return rc;
	}
	runs = xmalloc((e->nchunks + 1) * sizeof *runs);
	for (size_t i = 0; i < e->nchunks; i++) {
		uint64_t w = chunk_reader_window(r->reader, e->chunks[i].id);

		if (i == 0 || w != last)
			runs[j.nruns++] = i;
		last = w;
	}
	runs[j.nruns] = e->nchunks;
	j.runs = runs;
	j.nthreads = nthreads;
	pthread_mutex_init(&j.mu, NULL);
	parts[0] = (struct file_part){ &j, 0 };
	for (unsigned k = 1; k < nthreads; k++) {
		parts[k] = (struct file_part){ &j, k };
		if (pthread_create(&tids[k], NULL, restore_part, &parts[k]) != 0) {
			pthread_mutex_lock(&j.mu);
			j.rc = -1;	/* the others stop; nobody covers this stride */
			snprintf(j.err, sizeof j.err, "restore: cannot start a thread");
			pthread_mutex_unlock(&j.mu);
			break;
		}
		started = k;
	}
	restore_part(&parts[0]);
	for (unsigned k = 1; k <= started; k++)
		pthread_join(tids[k], NULL);
	rc = j.rc;
	if (rc < 0)
		snprintf(err, errlen, "%s", j.err);
	pthread_mutex_destroy(&j.mu);
	free(runs);
	free(places);
	return rc;
}

/* mirror: the file already there is the entry's (the quick check of rsync: size and mtime to
 * the nanosecond, and the mode and owner restore would set) */
static int unchanged(const struct restore *r, int pfd, const char *base, const struct manifest_entry *e)
{
	struct stat st;

	if (!r->opt->mirror || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
		return 0;
	return (uint64_t)st.st_size == e->size && st.st_mtim.tv_sec == e->mtime_sec &&
	       st.st_mtim.tv_nsec == (long)e->mtime_nsec && (st.st_mode & 07777) == (e->mode & 07777) &&
	       (!r->as_root || (st.st_uid == e->uid && st.st_gid == e->gid));
}

/* A writer's last directory, open: files come in walk order, so most share it. The
 * descriptor was opened beneath the target without following symlinks and stays that
 * directory whatever happens to its name. */
struct dir_cache {
	char *dir;
	int fd;
};

static void dir_cache_clear(struct dir_cache *dc)
{
	if (dc->dir)
		close(dc->fd);
	free(dc->dir);
	dc->dir = NULL;
}

/* open_parent through the cache; the descriptor belongs to the cache. */
static int open_parent_cached(struct restore *r, struct dir_cache *dc, const char *path, const char **base)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 1;
	const char *dir = slash ? path : ".";
	int fd;

	if (dc->dir && strlen(dc->dir) == n && memcmp(dc->dir, dir, n) == 0) {
		*base = slash ? slash + 1 : path;
		return dc->fd;
	}
	dir_cache_clear(dc);
	fd = open_parent(r->root_fd, path, base);
	if (fd >= 0) {
		dc->dir = xstrndup(dir, n);
		dc->fd = fd;
	}
	return fd;
}

/* 0 written, 1 left as it was (mirror), -1 with err. */
static int restore_file(struct restore *r, struct dir_cache *dc, const struct manifest_entry *e, char *err,
			size_t errlen)
{
	const char *base;
	struct timespec times[2] = { { 0, UTIME_OMIT }, { (time_t)e->mtime_sec, e->mtime_nsec } };
	/* Created with its permission bits, which then need no fchmod of their own unless the
	 * umask takes some away or it has set-id or sticky bits (a write, or a chown, clears
	 * those: they are set last). Its content is the volume's own, readable as it will be. */
	mode_t create_mode = (mode_t)e->mode & 0777;
	int chmod_after = ((mode_t)e->mode & 07777) != (create_mode & ~r->umask);
	int pfd = open_parent_cached(r, dc, e->path, &base), fd, rc;

	if (pfd < 0) {
		set_err_path(err, errlen, "restore", e->path, "its directory is missing or is a symlink");
		return -1;
	}
	if (unchanged(r, pfd, base, e))
		return 1;
	/* Create first, replace only what exists: an unlink of a name that is not there still
	 * locks the directory against the other threads' creates. */
	fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, create_mode);
	if (fd < 0 && errno == EEXIST) {
		if (unlinkat(pfd, base, 0) < 0 && errno != ENOENT && errno != EISDIR) {
			set_err_path(err, errlen, "restore", e->path, strerror(errno));
			return -1;
		}
		fd = openat(pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, create_mode);
	}
	if (fd < 0) {
		set_err_path(err, errlen, "restore", e->path, strerror(errno));
		return -1;
	}
	/* the file is new and empty: the writes give it its size, unless it has holes (one
	 * may end it) */
	rc = e->nholes && ftruncate(fd, (off_t)e->size) < 0 ? -1 : 0;
	if (rc < 0)
		set_err_path(err, errlen, "restore", e->path, strerror(errno));
	else
		rc = restore_data(r, fd, e, err, errlen);
	if (rc == 0 && ((r->as_root && fchown(fd, e->uid, e->gid) < 0) || (chmod_after && fchmod(fd, e->mode) < 0) ||
			futimens(fd, times) < 0)) {
		set_err_path(err, errlen, "restore", e->path, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

static void *restore_worker(void *arg)
{
	struct restore *r = arg;
	struct dir_cache dc = { NULL, -1 };
	char err[1024];

	pthread_mutex_lock(&r->mu);
	for (;;) {
		struct manifest_entry e;
		int rc;

		while (r->head == r->tail && !r->stop && !r->failed)
			pthread_cond_wait(&r->work, &r->mu);
		if (r->failed || r->head == r->tail)
			break;
		if (r->tail - r->head == WINDOW)
			pthread_cond_signal(&r->cond);
		e = r->queue[r->head++ % WINDOW];
		pthread_mutex_unlock(&r->mu);
		rc = restore_file(r, &dc, &e, err, sizeof err);
		if (rc >= 0) {
			uint64_t holes = 0;
			for (size_t i = 0; i < e.nholes; i++)
				holes += e.holes[i].len;
			pthread_mutex_lock(&r->mu);
			if (rc == 1) {
				r->res.files_unchanged++;
			} else {
				r->res.files_written++;
				r->res.bytes_written += e.size - holes;
			}
			pthread_mutex_unlock(&r->mu);
			restore_advance(r, rc == 1 ? e.size : e.nchunks == 1 ? e.size : holes, 1, 0);
		}
		manifest_entry_free(&e);
		if (rc < 0)
			restore_fail(r, rc, err);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	dir_cache_clear(&dc);
	return NULL;
}

/* Directories are created open (0700) so files can go in; their own modes, owners and times
 * are set by restore_dir_meta once everything inside exists. */
static int restore_dir(struct restore *r, const struct manifest_entry *e, char *err, size_t errlen)
{
	const char *base;
	struct stat st;
	int pfd, rc = 0;

	if (strcmp(e->path, ".") == 0)
		return 0;
	pfd = open_parent(r->root_fd, e->path, &base);
	if (pfd < 0) {
		set_err_path(err, errlen, "restore", e->path, "its directory is missing or is a symlink");
		return -1;
	}
	if (mkdirat(pfd, base, 0700) < 0 &&
	    (errno != EEXIST || fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode))) {
		set_err_path(err, errlen, "restore", e->path, errno == EEXIST || errno == 0 ?
			     "exists and is not a directory" : strerror(errno));
		rc = -1;
	}
	close(pfd);
	return rc;
}

static int restore_symlink(struct restore *r, const struct manifest_entry *e, char *err, size_t errlen)
{
	const char *base;
	struct timespec times[2] = { { 0, UTIME_OMIT }, { (time_t)e->mtime_sec, e->mtime_nsec } };
	int pfd = open_parent(r->root_fd, e->path, &base), rc = 0;

	if (pfd < 0) {
		set_err_path(err, errlen, "restore", e->path, "its directory is missing or is a symlink");
		return -1;
	}
	if ((unlinkat(pfd, base, 0) < 0 && errno != ENOENT) || symlinkat(e->target, pfd, base) < 0 ||
	    (r->as_root && fchownat(pfd, base, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0) ||
	    utimensat(pfd, base, times, AT_SYMLINK_NOFOLLOW) < 0) {
		set_err_path(err, errlen, "restore", e->path, strerror(errno));
		rc = -1;
	}
	close(pfd);
	return rc;
}

static int restore_dir_meta(struct restore *r, const struct manifest_entry *e, char *err, size_t errlen)
{
	struct timespec times[2] = { { 0, UTIME_OMIT }, { (time_t)e->mtime_sec, e->mtime_nsec } };
	const char *base = ".";
	int pfd = strcmp(e->path, ".") == 0 ? dup(r->root_fd) : open_parent(r->root_fd, e->path, &base);
	int rc = 0, dfd;

	if (pfd < 0) {
		set_err_path(err, errlen, "restore", e->path, "its directory is missing or is a symlink");
		return -1;
	}
	/* through a descriptor of the directory itself, opened without following a symlink that
	 * may have taken its place since: never by name */
	dfd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	close(pfd);
	if (dfd < 0) {
		set_err_path(err, errlen, "restore", e->path,
			     errno == ELOOP || errno == ENOTDIR ? "it is no longer a directory (a symlink?)" : strerror(errno));
		return -1;
	}
	if ((r->as_root && fchown(dfd, e->uid, e->gid) < 0) || fchmod(dfd, e->mode) < 0 ||
	    futimens(dfd, times) < 0) {
		set_err_path(err, errlen, "restore", e->path, strerror(errno));
		rc = -1;
	}
	close(dfd);
	return rc;
}

static int restore_queue_file(struct restore *r, struct manifest_entry *e)
{
	/* the writers reach it later: its window is read ahead meanwhile (not for --mirror, which
	 * leaves most files as they are and reads only the others) */
	if (e->nchunks && !r->opt->mirror)
		chunk_reader_hint(r->reader, e->chunks[0].id);
	pthread_mutex_lock(&r->mu);
	while (r->tail - r->head == WINDOW && !r->failed)
		pthread_cond_wait(&r->cond, &r->mu);
	if (r->failed) {
		pthread_mutex_unlock(&r->mu);
		manifest_entry_free(e);
		return -1;
	}
	r->queue[r->tail++ % WINDOW] = *e;
	memset(e, 0, sizeof *e);
	pthread_cond_signal(&r->work);
	pthread_mutex_unlock(&r->mu);
	return 0;
}

/* ---- mirror: what the snapshot lacks, removed before the restore ---- */

struct known_entry {
	char *path;
	enum manifest_type type;
};

struct known {
	struct known_entry *e;
	size_t n, cap;
};

static int known_cmp(const void *a, const void *b)
{
	return strcmp(((const struct known_entry *)a)->path, ((const struct known_entry *)b)->path);
}

/* Every path of the snapshot and its type, sorted: one read of the tree stream. */
static int known_read(struct chunk_store *cs, const struct manifest_header *h, struct known *k, char *err, size_t errlen)
{
	struct tree_reader *tr = tree_reader_new(cs, h);
	struct manifest_entry e;
	int rc;

	while ((rc = tree_reader_next(tr, &e, err, errlen)) == 1) {
		if (k->n == k->cap) {
			k->cap = k->cap ? k->cap * 2 : 256;
			k->e = xrealloc(k->e, k->cap * sizeof *k->e);
		}
		k->e[k->n].path = e.path;
		k->e[k->n++].type = e.type;
		e.path = NULL;
		manifest_entry_free(&e);
	}
	tree_reader_free(tr);
	qsort(k->e, k->n, sizeof *k->e, known_cmp);
	return rc < 0 ? rc : 0;
}

static void known_free(struct known *k)
{
	for (size_t i = 0; i < k->n; i++)
		free(k->e[i].path);
	free(k->e);
}

/* Removes name in directory pfd, a directory with everything in it; never follows a symlink. */
static int remove_tree(int pfd, const char *name)
{
	struct stat st;
	int rc = 0;

	if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(pfd, name, 0) < 0 && errno != ENOENT ? -1 : 0;
	int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	size_t n;
	char **names = read_names(dfd, &n);
	for (size_t i = 0; names && i < n && rc == 0; i++)
		rc = remove_tree(dfd, names[i]);
	free_names(names, n);
	close(dfd);
	return rc < 0 || (unlinkat(pfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT) ? -1 : 0;
}

static int type_matches(mode_t mode, enum manifest_type type)
{
	return type == ENTRY_DIR ? S_ISDIR(mode) : type == ENTRY_SYMLINK ? S_ISLNK(mode) : S_ISREG(mode);
}

/* Walks the directory dfd (path, relative to the target) and removes every name the snapshot
 * lacks or holds as another type. */
static int mirror_prune(struct restore *r, const struct known *k, int dfd, struct strbuf *path, char *err, size_t errlen)
{
	size_t n, len = path->len;
	char **names = read_names(dfd, &n);
	int rc = 0;

	if (!names) {
		set_err_path(err, errlen, "restore", len ? path->buf : ".", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct known_entry key, *found;
		struct stat st;

		path->len = len;
		if (len)
			strbuf_addch(path, '/');
		strbuf_addstr(path, names[i]);
		key.path = path->buf;
		found = bsearch(&key, k->e, k->n, sizeof *k->e, known_cmp);
		if (fstatat(dfd, names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;	/* gone meanwhile */
		if (!found || !type_matches(st.st_mode, found->type)) {
			if (remove_tree(dfd, names[i]) < 0) {
				set_err_path(err, errlen, "remove", path->buf, strerror(errno));
				rc = -1;
			}
			r->res.removed++;
		} else if (found->type == ENTRY_DIR) {
			int sub = openat(dfd, names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (sub < 0) {
				set_err_path(err, errlen, "restore", path->buf, strerror(errno));
				rc = -1;
			} else {
				rc = mirror_prune(r, k, sub, path, err, errlen);
				close(sub);
			}
		}
	}
	path->len = len;
	if (path->buf)
		path->buf[len] = '\0';
	free_names(names, n);
	return rc;
}

static int mirror_prepare(struct restore *r, const struct manifest_header *h, char *err, size_t errlen)
{
	struct known k = { 0 };
	struct strbuf path = STRBUF_INIT;
	int rc = known_read(r->cs, h, &k, err, errlen);

	if (rc == 0)
		rc = mirror_prune(r, &k, r->root_fd, &path, err, errlen);
	strbuf_release(&path);
	known_free(&k);
	return rc;
}

/* Pass 1 creates everything (files on the workers); pass 2 sets directory metadata. */
static int restore_pass(struct restore *r, const struct manifest_header *h, int pass)
{
	struct tree_reader *tr = tree_reader_new(r->cs, h);
	struct manifest_entry e;
	char err[1024] = "";
	int rc;

	while ((rc = tree_reader_next(tr, &e, err, sizeof err)) == 1) {
		if (pass == 2)
			rc = e.type == ENTRY_DIR ? restore_dir_meta(r, &e, err, sizeof err) : 0;
		else if (e.type == ENTRY_DIR)
			rc = restore_dir(r, &e, err, sizeof err);
		else if (e.type == ENTRY_SYMLINK)
			rc = restore_symlink(r, &e, err, sizeof err);
		else
			rc = restore_queue_file(r, &e);
		manifest_entry_free(&e);
		if (rc < 0)
			break;
	}
	tree_reader_free(tr);
	if (rc < 0)
		restore_fail(r, rc, err);	/* kept only when it is the first failure */
	return rc < 0 ? -1 : 0;
}

int volume_restore(struct chunk_store *cs, const struct volume_restore_options *opt,
		   struct volume_restore_result *res, char *err, size_t errlen)
{
	const char *target = opt->target;
	unsigned threads = opt->threads;
	struct restore *r;
	struct manifest_header h;
	pthread_t tids[16];
	unsigned started = 0;
	int rc;

	if ((rc = snapshot_read(cs, opt->snapshot_id, &h, err, errlen)) < 0)
		return rc;
	if (mkdir(target, 0700) < 0 && errno != EEXIST) {
		set_err_path(err, errlen, "restore target", target, strerror(errno));
		manifest_header_free(&h);
		return -1;
	}
	r = xcalloc(1, sizeof *r);
	r->cs = cs;
	r->reader = chunk_reader_new(cs);
	r->opt = opt;
	r->prog.files_total = h.files;
	r->prog.bytes_total = h.bytes;
	r->as_root = geteuid() == 0;
	r->umask = umask(0);
	umask(r->umask);
	r->root_fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->root_fd < 0) {
		set_err_path(err, errlen, "restore target", target, strerror(errno));
		manifest_header_free(&h);
		chunk_reader_free(r->reader);
		free(r);
		return -1;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cond, NULL);
	pthread_cond_init(&r->work, NULL);
	if (opt->mirror && (rc = mirror_prepare(r, &h, err, errlen)) < 0) {
		pthread_mutex_destroy(&r->mu);
		pthread_cond_destroy(&r->cond);
		pthread_cond_destroy(&r->work);
		close(r->root_fd);
		chunk_reader_free(r->reader);
		free(r);
		manifest_header_free(&h);
		return rc;
	}
	if (!threads)
		threads = 2;
	for (; started < threads && started < 16; started++)
		if (pthread_create(&tids[started], NULL, restore_worker, r) != 0) {
			restore_fail(r, -1, "starting restore threads failed");
			break;
		}
	restore_pass(r, &h, 1);
	pthread_mutex_lock(&r->mu);
	r->stop = 1;
	pthread_cond_broadcast(&r->work);
	pthread_mutex_unlock(&r->mu);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (!r->failed)
		restore_pass(r, &h, 2);
	if (!r->failed)
		restore_advance(r, 0, 0, 1);
	rc = r->failed ? (r->fail_rc ? r->fail_rc : -1) : 0;
	if (rc)
		snprintf(err, errlen, "%s", r->err);
	if (res)
		*res = r->res;
	while (r->head < r->tail)
		manifest_entry_free(&r->queue[r->head++ % WINDOW]);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cond);
	pthread_cond_destroy(&r->work);
	close(r->root_fd);
	chunk_reader_free(r->reader);
	free(r);
	manifest_header_free(&h);
	return rc;
}
