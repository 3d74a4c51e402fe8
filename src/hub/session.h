/* Sessions (the cookie a login sets) and API tokens (Bearer, for SDKs and scripts) are the same
 * thing to the store: a random secret of which only the SHA-256 is kept, a user and an expiry. */
#ifndef CD_HUB_SESSION_H
#define CD_HUB_SESSION_H

#include "hub/hub.h"

#define CD_HUB_SESSION_COOKIE "comfyd_session"

/* Creates a session or token for user_id that expires at expires_at (0: never). The secret is
 * written to out (64 bytes) and nowhere else. Returns 0 or a store error. */
int cd_hub_session_create(cd_hub *hub, int64_t user_id, cd_token_kind kind, const char *name, int64_t expires_at,
                          char *out, size_t outlen);
/* The enabled user behind a secret. Returns 0, or -1 when the secret is unknown, expired or its
 * user is disabled. */
int cd_hub_session_user(cd_hub *hub, const char *secret, cd_hub_caller *out);

#endif
