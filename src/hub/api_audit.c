/* GET /api/audit?limit=N&before=ID: the audit log for admins, newest first; `before` pages back
 * (the id of the oldest entry seen). */
#include <stdlib.h>

#include "base/str.h"
#include "hub/hub.h"

static void handle_audit(cd_http_req *req, void *ctx) {
    cd_hub *hub = ctx;
    cd_hub_caller c;
    if (cd_hub_require_role(hub, req, CD_ROLE_ADMIN, &c) < 0) return;
    long limit = cd_hub_query_long(req, "limit", 100), before = cd_hub_query_long(req, "before", 0);
    if (limit < 1 || limit > 1000 || before < 0) {
        cd_hub_error(req, 400, "invalid_request", "limit is 1 to 1000; before is an audit entry id");
        return;
    }
    cd_store_audit *list = NULL;
    size_t n = 0;
    if (hub->store->ops->audit_list(hub->store, before, (size_t)limit, &list, &n) < 0) {
        cd_hub_error(req, 500, "store_error", "%s", cd_store_error(hub->store));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        cd_store_audit *a = &list[i];
        json_array_append_new(arr, json_pack("{s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "id", (json_int_t)a->id, "at",
                                             (json_int_t)a->at, "user_id", (json_int_t)a->user_id, "username",
                                             a->username, "action", a->action, "target", a->target, "detail",
                                             a->detail, "ip", a->ip));
    }
    free(list);
    cd_hub_json(req, 200, arr);
}

void cd_hub_api_audit_register(cd_hub *hub) { cd_router_add(hub->router, "GET", "/api/audit", handle_audit, hub); }
