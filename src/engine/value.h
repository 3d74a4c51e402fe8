/* Engine-side helpers around the public values: conversion from and to JSON (prompts, UI
 * outputs, history) and cache signatures. */
#ifndef CD_ENGINE_VALUE_H
#define CD_ENGINE_VALUE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "comfyd/node.h"

/* A JSON constant as a value: scalars become scalar kinds, objects and arrays JSON. */
cd_value *cd_value_from_json(const json_t *j);
/* The value as JSON (new reference). Lists become arrays; opaque values a "<TYPE>" string. */
json_t *cd_value_to_json_t(const cd_value *v);

/* A cache signature: a 128-bit hash (XXH3) over a canonical, type-tagged serialisation, plus
 * a flag for what makes a key never match (NaN, opaque objects). The cache compares only the
 * hash, so it must be a good one: two different inputs that collided would share results. */
typedef struct {
    uint64_t h1, h2;
    bool uncacheable;
} cd_sig;

/* Gathers the serialisation of one key; cd_sig_end hashes it. The buffer keeps its memory from
 * one key to the next (a prompt signs every node). */
typedef struct {
    cd_buf bytes;
    bool uncacheable;
    bool oom;
} cd_sig_builder;

void cd_sig_begin(cd_sig_builder *b);
void cd_sig_bytes(cd_sig_builder *b, char tag, const void *data, size_t len);
void cd_sig_str(cd_sig_builder *b, const char *s);
void cd_sig_u64(cd_sig_builder *b, uint64_t x);
void cd_sig_value(cd_sig_builder *b, const cd_value *v);
/* The key; uncacheable when something was (or when memory ran out). */
void cd_sig_end(cd_sig_builder *b, cd_sig *out);
void cd_sig_builder_free(cd_sig_builder *b);

#endif
