#include "hub/auth.h"

#include <ctype.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uv_work_t work;
    char *password; /* wiped before it is freed */
    char hash[crypto_pwhash_STRBYTES];
    int rc;
    bool ok;
    cd_auth_hash_cb hash_cb;
    cd_auth_verify_cb verify_cb;
    void *user;
} pw_job;

static void job_free(pw_job *j) {
    if (j->password) {
        sodium_memzero(j->password, strlen(j->password));
        free(j->password);
    }
    free(j);
}

int cd_auth_hash_password_now(const char *password, char *out, size_t outlen) {
    if (outlen < crypto_pwhash_STRBYTES) return -1;
    return crypto_pwhash_str(out, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                             crypto_pwhash_MEMLIMIT_INTERACTIVE);
}

static void hash_work(uv_work_t *w) {
    pw_job *j = w->data;
    j->rc = cd_auth_hash_password_now(j->password, j->hash, sizeof j->hash);
}

static void hash_done(uv_work_t *w, int status) {
    pw_job *j = w->data;
    j->hash_cb(status < 0 ? -1 : j->rc, j->hash, j->user);
    job_free(j);
}

static void verify_work(uv_work_t *w) {
    pw_job *j = w->data;
    j->ok = crypto_pwhash_str_verify(j->hash, j->password, strlen(j->password)) == 0;
}

static void verify_done(uv_work_t *w, int status) {
    pw_job *j = w->data;
    j->verify_cb(status == 0 && j->ok, j->user);
    job_free(j);
}

static pw_job *job_new(const char *password, void *user) {
    pw_job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->password = strdup(password);
    if (!j->password) {
        free(j);
        return NULL;
    }
    j->user = user;
    j->work.data = j;
    return j;
}

int cd_auth_hash_password(uv_loop_t *loop, const char *password, cd_auth_hash_cb cb, void *user) {
    pw_job *j = job_new(password, user);
    if (!j) return -1;
    j->hash_cb = cb;
    if (uv_queue_work(loop, &j->work, hash_work, hash_done) < 0) {
        job_free(j);
        return -1;
    }
    return 0;
}

int cd_auth_verify_password(uv_loop_t *loop, const char *hash, const char *password, cd_auth_verify_cb cb, void *user) {
    pw_job *j = job_new(password, user);
    if (!j) return -1;
    j->verify_cb = cb;
    snprintf(j->hash, sizeof j->hash, "%s", hash);
    if (uv_queue_work(loop, &j->work, verify_work, verify_done) < 0) {
        job_free(j);
        return -1;
    }
    return 0;
}

void cd_auth_new_secret(const char *prefix, char *out, size_t outlen) {
    unsigned char raw[32];
    char b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(out, outlen, "%s%s", prefix, b64);
}

void cd_auth_secret_hash(const char *secret, char out[65]) {
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)secret, strlen(secret));
    sodium_bin2hex(out, 65, digest, sizeof digest);
}

unsigned cd_auth_login_delay_ms(int failures) {
    if (failures < 3) return 0;
    int doublings = failures - 3;
    if (doublings > 5) return 30000;
    unsigned ms = 1000u << doublings;
    return ms > 30000 ? 30000 : ms;
}

const char *cd_auth_password_problem(const char *password) {
    size_t n = password ? strlen(password) : 0;
    if (n < 8) return "a password needs at least 8 characters";
    if (n > 256) return "a password may have at most 256 bytes";
    return NULL;
}

const char *cd_auth_username_problem(const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > 64) return "a user name has 1 to 64 characters";
    if (name[0] == '.') return "a user name may not start with '.'";
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return "a user name may only hold letters, digits, '_', '-' and '.'";
    return NULL;
}
