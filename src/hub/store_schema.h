/* The hub store's schema, one list for both backends (store_sqlite.c, store_pg.c). Each migration
 * is written once; where SQLite and PostgreSQL spell a thing differently the text says so with a
 * {word} that each dialect expands (an id column, a 64-bit integer, a clustered key table).
 *
 * Append-only: a released comfyd has run these on someone's data, so a schema change is a new
 * entry and never an edit of an old one. Entry i brings a store from version i to i + 1. */
#ifndef CD_HUB_STORE_SCHEMA_H
#define CD_HUB_STORE_SCHEMA_H

typedef enum { CD_DIALECT_SQLITE = 0, CD_DIALECT_POSTGRES = 1 } cd_store_dialect;

/* The number of migrations: the schema version of a store that has run them all. */
int cd_store_schema_version(void);

/* Migration i (0-based) in the dialect: a malloc'd script of one or more statements separated by
 * semicolons (caller frees), or NULL when out of memory or i is out of range. */
char *cd_store_schema_migration(int i, cd_store_dialect dialect);

#endif
