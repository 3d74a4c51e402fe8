/* Engine-side helpers around the public values: conversion from and to JSON (prompts, UI
 * outputs, history) and cache signatures. */
#ifndef CD_ENGINE_VALUE_H
#define CD_ENGINE_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "comfyd/node.h"

/* A JSON constant as a value: scalars become scalar kinds, objects and arrays JSON. */
cd_value *cd_value_from_json(const json_t *j);
/* The value as JSON (new reference). Lists become arrays; opaque values a "<TYPE>" string. */
json_t *cd_value_to_json_t(const cd_value *v);

/* A cache signature: a 128-bit hash over a canonical, type-tagged serialisation, plus a flag
 * for what makes a key never match (NaN, opaque objects). */
typedef struct {
    uint64_t h1, h2;
    bool uncacheable;
} cd_sig;

void cd_sig_init(cd_sig *sig);
void cd_sig_bytes(cd_sig *sig, char tag, const void *data, size_t len);
void cd_sig_str(cd_sig *sig, const char *s);
void cd_sig_u64(cd_sig *sig, uint64_t x);
void cd_sig_value(cd_sig *sig, const cd_value *v);

#endif
