#include "manager/policy.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

int cd_policy_level_parse(const char *s, cd_sec_level *out) {
    static const struct {
        const char *name;
        cd_sec_level level;
    } names[] = {{"strong", CD_SEC_STRONG}, {"normal", CD_SEC_NORMAL}, {"normal-", CD_SEC_NORMAL_MINUS},
                 {"weak", CD_SEC_WEAK}};
    if (!s) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strcasecmp(s, names[i].name)) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *cd_policy_level_name(cd_sec_level level) {
    switch (level) {
    case CD_SEC_STRONG: return "strong";
    case CD_SEC_NORMAL: return "normal";
    case CD_SEC_NORMAL_MINUS: return "normal-";
    case CD_SEC_WEAK: return "weak";
    }
    return "normal";
}

bool cd_policy_allowed(cd_sec_level level, bool loopback, cd_risk risk) {
    switch (risk) {
    case CD_RISK_BLOCK: return false;
    case CD_RISK_HIGH:
        if (loopback) return level == CD_SEC_WEAK || level == CD_SEC_NORMAL_MINUS;
        return level == CD_SEC_WEAK;
    case CD_RISK_MIDDLE: return level != CD_SEC_STRONG;
    case CD_RISK_LOW: return true;
    }
    return false;
}

bool cd_policy_addr_is_loopback(const char *addr) {
    if (!addr) return false;
    if (!strcasecmp(addr, "localhost")) return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, addr, &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
        /* ::ffff:127.x.y.z */
        if (IN6_IS_ADDR_V4MAPPED(&a6)) return a6.s6_addr[12] == 127;
        return false;
    }
    return false;
}

bool cd_policy_listen_is_loopback(char *const *addrs, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!cd_policy_addr_is_loopback(addrs[i])) return false;
    return true;
}
