#include "base/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <time.h>

static cd_log_level min_level = CD_LOG_INFO;
static bool log_to_stdout = false;
/* The executor thread logs too; one lock keeps lines whole. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void cd_log_setup(cd_log_level level, bool to_stdout) {
    min_level = level;
    log_to_stdout = to_stdout;
}

int cd_log_level_parse(const char *name, cd_log_level *out) {
    static const struct { const char *name; cd_log_level level; } names[] = {
        {"DEBUG", CD_LOG_DEBUG}, {"INFO", CD_LOG_INFO},   {"WARNING", CD_LOG_WARNING},
        {"ERROR", CD_LOG_ERROR}, {"CRITICAL", CD_LOG_ERROR},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcasecmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

bool cd_log_enabled(cd_log_level level) { return level >= min_level; }

static const char *level_name(cd_log_level level) {
    switch (level) {
    case CD_LOG_DEBUG: return "DEBUG";
    case CD_LOG_INFO: return "INFO";
    case CD_LOG_WARNING: return "WARNING";
    default: return "ERROR";
    }
}

void cd_log(cd_log_level level, const char *fmt, ...) {
    if (level < min_level) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    localtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
    FILE *out = log_to_stdout ? stdout : stderr;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_lock);
    fprintf(out, "%s.%03ld %s ", stamp, ts.tv_nsec / 1000000, level_name(level));
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
    va_end(ap);
}
