/* Records where each fsync of a process ended, for bench/chaos/fsync_records.py.
 *
 * Loaded into Redis with LD_PRELOAD. After each successful fsync or fdatasync of a
 * regular file it writes, to $CHATROOM_FSYNC_RECORDS/<pid>-fd-<fd>, one fixed-size record:
 * the file's size when the call began (every byte up to there is on disk) and its path.
 * A record is rewritten in place (pwrite at 0), so the files stay small however often
 * Redis fsyncs. Reads happen while Redis is stopped (SIGSTOP), never mid-write.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORD_BYTES 4352

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

static void record(int fd, off_t size) {
    const char *folder = getenv("CHATROOM_FSYNC_RECORDS");
    if (folder == NULL) return;
    char link[64], target[4096], name[4200], line[RECORD_BYTES];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return;
    target[n] = '\0';
    snprintf(name, sizeof name, "%s/%d-fd-%d", folder, (int)getpid(), fd);
    memset(line, ' ', sizeof line);
    int len = snprintf(line, sizeof line, "%lld %s\n", (long long)size, target);
    if (len <= 0 || len >= (int)sizeof line) return;
    line[len] = ' '; /* the rest stays padding; the reader splits at the newline */
    line[sizeof line - 1] = '\n';
    int out = open(name, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (out < 0) return;
    ssize_t written = pwrite(out, line, sizeof line, 0);
    (void)written;
    close(out);
}

static int synced(int fd, int (*call)(int)) {
    struct stat before;
    int regular = fstat(fd, &before) == 0 && S_ISREG(before.st_mode);
    int result = call(fd);
    if (result == 0 && regular) record(fd, before.st_size);
    return result;
}

int fsync(int fd) {
    if (real_fsync == NULL) real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return synced(fd, real_fsync);
}

int fdatasync(int fd) {
    if (real_fdatasync == NULL) real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return synced(fd, real_fdatasync);
}
