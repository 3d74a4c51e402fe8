/* GET /metrics: the hub in Prometheus' text format (admins, e.g. a scraper with an API token):
 * the admission queue (waiting, running, per-user waiting, how long prompts waited for a slot and
 * how long they ran), instances by status, and proxied answers by status class. */
#ifndef CD_HUB_METRICS_H
#define CD_HUB_METRICS_H

#include "hub/hub.h"

typedef struct cd_hub_metrics cd_hub_metrics;

cd_hub_metrics *cd_hub_metrics_new(void);
void cd_hub_metrics_free(cd_hub_metrics *m);
/* A prompt got its slot after waiting this long; a prompt ran this long. */
void cd_hub_metrics_dispatch_wait(cd_hub_metrics *m, double seconds);
void cd_hub_metrics_prompt_duration(cd_hub_metrics *m, double seconds);
/* A proxied answer with this status. */
void cd_hub_metrics_proxy_status(cd_hub_metrics *m, int status);
void cd_hub_metrics_register(cd_hub *hub);

#endif
