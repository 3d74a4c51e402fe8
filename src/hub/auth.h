/* Credentials: argon2id password hashes (libsodium), random secrets for sessions and API
 * tokens, and the delay that grows with failed logins. Only a secret's SHA-256 is stored, so a
 * copy of the store does not let anyone in. */
#ifndef CD_HUB_AUTH_H
#define CD_HUB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

/* argon2id with libsodium's "interactive" limits. Hashing takes tens of milliseconds and 64 MiB,
 * so the loop never does it itself: these run in libuv's thread pool and call back on the loop. */
typedef void (*cd_auth_hash_cb)(int rc, const char *hash, void *user); /* rc 0, or -1 (out of memory) */
typedef void (*cd_auth_verify_cb)(bool ok, void *user);
int cd_auth_hash_password(uv_loop_t *loop, const char *password, cd_auth_hash_cb cb, void *user);
int cd_auth_verify_password(uv_loop_t *loop, const char *hash, const char *password, cd_auth_verify_cb cb, void *user);
/* The same on the calling thread (first start, tests). Returns 0 or -1. */
int cd_auth_hash_password_now(const char *password, char *out, size_t outlen);

/* A new secret: prefix + 43 characters of base64url (256 random bits). out needs 64 bytes. */
void cd_auth_new_secret(const char *prefix, char *out, size_t outlen);
/* Lowercase hex of SHA-256(secret). out needs 65 bytes. */
void cd_auth_secret_hash(const char *secret, char out[65]);

/* How long to hold the answer to a login after `failures` failed attempts in a row: nothing
 * for the first two, then 1 s doubling up to 30 s. */
unsigned cd_auth_login_delay_ms(int failures);

/* Minimal rules: a password of 8 to 256 bytes; a user name of 1 to 64 letters, digits, '_', '-'
 * and '.', not starting with '.' (it is a path segment of /comfyui/{user}/). NULL when fine,
 * else the reason. */
const char *cd_auth_password_problem(const char *password);
const char *cd_auth_username_problem(const char *name);

#endif
