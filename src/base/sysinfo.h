/* What /system_stats reports about the machine. */
#ifndef CD_BASE_SYSINFO_H
#define CD_BASE_SYSINFO_H

#include <stdint.h>

/* Total and available RAM in bytes, from /proc/meminfo (MemTotal, MemAvailable). Returns 0, or
 * -1 when it cannot be read (both set to 0). */
int cd_sysinfo_ram(uint64_t *total, uint64_t *available);

#endif
