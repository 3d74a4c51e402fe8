/* Logging: one line per event on stderr (or stdout with --log-stdout), with a timestamp and
 * level, so that test harnesses and operators can grep it. The level is process-wide state set
 * once at start; it is the one global the conventions allow besides the process context, because
 * every layer logs and threading a logger through every call would obscure the code. */
#ifndef CD_BASE_LOG_H
#define CD_BASE_LOG_H

#include <stdbool.h>

typedef enum { CD_LOG_DEBUG = 10, CD_LOG_INFO = 20, CD_LOG_WARNING = 30, CD_LOG_ERROR = 40 } cd_log_level;

/* Sets the minimum level printed and the stream (false = stderr, true = stdout). */
void cd_log_setup(cd_log_level level, bool to_stdout);
/* Parses DEBUG/INFO/WARNING/ERROR/CRITICAL (ComfyUI's --verbose names), case-insensitive.
 * Returns 0 and fills *out, or -1 for an unknown name. */
int cd_log_level_parse(const char *name, cd_log_level *out);
bool cd_log_enabled(cd_log_level level);
void cd_log(cd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define cd_debug(...) cd_log(CD_LOG_DEBUG, __VA_ARGS__)
#define cd_info(...) cd_log(CD_LOG_INFO, __VA_ARGS__)
#define cd_warn(...) cd_log(CD_LOG_WARNING, __VA_ARGS__)
#define cd_error(...) cd_log(CD_LOG_ERROR, __VA_ARGS__)

#endif
