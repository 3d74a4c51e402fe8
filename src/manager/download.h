/* Downloads for the manager (libcurl): catalog files into memory, archives and model files to
 * disk with resume of a partial file (HTTP Range), byte progress, and a SHA-256 check
 * (libsodium). Blocking: the manager's worker thread and the command line call these. */
#ifndef CD_MANAGER_DOWNLOAD_H
#define CD_MANAGER_DOWNLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Called now and then with bytes so far and the total (0 when unknown); a non-zero return
 * cancels the transfer. */
typedef int (*cd_dl_progress_fn)(void *ctx, uint64_t done, uint64_t total);

/* GET url into memory (caller frees *out, NUL-terminated). Follows redirects; any status but
 * 2xx fails. Returns 0 or -1 with a message. */
int cd_dl_fetch(const char *url, char **out, size_t *len, char *err, size_t errlen);

/* Downloads url to final_path through final_path + ".partial": when the partial file exists,
 * asks for the rest with a Range header (a 206 appends; a 200 starts over). With sha256_hex
 * (64 hex digits, may be NULL) the whole file must match, else the partial file is deleted
 * and the call fails with "checksum mismatch". On success the file is renamed into place and
 * its hash written to sha256_out (65 bytes, may be NULL). Returns 0 or -1 with a message;
 * *resumed_from (may be NULL) tells how many bytes were already there. */
int cd_dl_file(const char *url, const char *final_path, const char *sha256_hex, cd_dl_progress_fn progress,
               void *ctx, uint64_t *resumed_from, char sha256_out[65], char *err, size_t errlen);

/* SHA-256 of a file as 64 lowercase hex digits. Returns 0 or -1. */
int cd_dl_sha256_file(const char *path, char out[65]);

#endif
