/* The security policy of ComfyUI-Manager: a configured level (strong, normal, normal-, weak)
 * checked against the risk of each operation (low, middle, high, block), stricter when the
 * server listens beyond loopback. Pure functions, so that the whole table is unit-tested. */
#ifndef CD_MANAGER_POLICY_H
#define CD_MANAGER_POLICY_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { CD_SEC_STRONG, CD_SEC_NORMAL, CD_SEC_NORMAL_MINUS, CD_SEC_WEAK } cd_sec_level;
typedef enum { CD_RISK_LOW, CD_RISK_MIDDLE, CD_RISK_HIGH, CD_RISK_BLOCK } cd_risk;

/* "strong", "normal", "normal-", "weak" (case-insensitive); -1 for anything else (a risk name
 * such as "middle" is a common mistake in config.ini and is refused, not guessed). */
int cd_policy_level_parse(const char *s, cd_sec_level *out);
const char *cd_policy_level_name(cd_sec_level level);

/* ComfyUI-Manager's is_allowed_security_level(): block never; high only with weak or normal-
 * on loopback and only weak beyond it; middle unless strong; low always. */
bool cd_policy_allowed(cd_sec_level level, bool loopback, cd_risk risk);

/* True when one address is loopback: 127.0.0.0/8, ::1, "localhost". */
bool cd_policy_addr_is_loopback(const char *addr);
/* True when every listen address is loopback (an empty list means the default 127.0.0.1).
 * Any address beyond loopback makes the stricter rules apply. */
bool cd_policy_listen_is_loopback(char *const *addrs, size_t n);

#endif
