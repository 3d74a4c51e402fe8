/* The queue badge: the hub adds one script tag to the HTML page of a proxied instance (its
 * front end's index), and the script (web/hub/queue-badge.js, served by the hub at
 * /static/queue-badge.js) shows the user's place in the admission queue from the comfyd.queue
 * messages. The page is otherwise passed as it is. */
#ifndef CD_HUB_PAGE_BADGE_H
#define CD_HUB_PAGE_BADGE_H

#include <stdbool.h>
#include <stddef.h>

#define CD_HUB_BADGE_TAG "<script src=\"/static/queue-badge.js\" defer></script>"
#define CD_HUB_BADGE_MAX_PAGE (4u << 20) /* larger pages pass untouched */

/* Whether a proxied request is for the front end's page: GET of "/" or "/index.html" of the
 * project (rest is the target after /comfyui/{user}/{project}, query included). */
bool cd_hub_badge_wanted(const char *method, const char *rest);
/* The page with the tag before </head> (else </body>, else at the end): malloc'd, *out_len set.
 * NULL when out of memory. */
char *cd_hub_badge_inject(const char *html, size_t len, size_t *out_len);

#endif
