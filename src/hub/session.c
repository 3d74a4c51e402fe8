#include "hub/session.h"

#include <stdio.h>
#include <string.h>

#include "hub/auth.h"
#include "hub/lookup_cache.h"

int cd_hub_session_create(cd_hub *hub, int64_t user_id, cd_token_kind kind, const char *name, int64_t expires_at,
                          char *out, size_t outlen) {
    cd_auth_new_secret(kind == CD_TOKEN_API ? "cdt_" : "", out, outlen);
    cd_store_token t = {0};
    cd_auth_secret_hash(out, t.hash);
    t.user_id = user_id;
    t.kind = kind;
    snprintf(t.name, sizeof t.name, "%s", name ? name : "");
    t.created_at = cd_hub_now_ms();
    t.expires_at = expires_at;
    return hub->store->ops->token_create(hub->store, &t);
}

int cd_hub_session_user(cd_hub *hub, const char *secret, cd_hub_caller *out) {
    cd_store_token t;
    cd_auth_secret_hash(secret, out->token_hash);
    int64_t now = cd_hub_now_ms();
    if (cd_lookup_cache_get(hub->credentials, out->token_hash, now, &out->user)) return 0;
    if (hub->store->ops->token_get(hub->store, out->token_hash, now, &t) != 0) return -1;
    if (hub->store->ops->user_get(hub->store, t.user_id, &out->user) != 0 || out->user.disabled) return -1;
    cd_lookup_cache_put(hub->credentials, out->token_hash, now, &out->user);
    return 0;
}
