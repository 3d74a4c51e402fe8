/* The differential check of cd_json_parse against cd_json_loadb_bigint (its reference), shared
 * by the unit test and the fuzz target. json_equal alone would miss a change of key order and
 * of a real's sign of zero, which clients can see in what is echoed back. */
#ifndef CD_TEST_JSON_SAME_H
#define CD_TEST_JSON_SAME_H

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

#include "base/json.h"

/* Same types, integers, reals bit for bit, string bytes (big-integer marks included), array
 * elements, and object keys in the same order. */
static inline bool json_same_tree(const json_t *a, const json_t *b) {
    if (!a || !b) return a == b;
    if (json_typeof(a) != json_typeof(b)) return false;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b)) return false;
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia), ib = json_object_iter_next((json_t *)b, ib)) {
            size_t n = json_object_iter_key_len(ia);
            if (n != json_object_iter_key_len(ib) || memcmp(json_object_iter_key(ia), json_object_iter_key(ib), n))
                return false;
            if (!json_same_tree(json_object_iter_value(ia), json_object_iter_value(ib))) return false;
        }
        return !ia && !ib;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b)) return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_same_tree(json_array_get(a, i), json_array_get(b, i))) return false;
        return true;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return !memcmp(&x, &y, sizeof x);
    }
    default:
        return true; /* true, false, null */
    }
}

/* Does cd_json_parse agree with its reference on text for flags? The reference is
 * cd_json_loadb_bigint, or json_loadb itself under CD_JSON_REJECT_BIGINT. */
static inline bool json_parse_agrees(const char *text, size_t len, size_t flags) {
    json_t *ours = cd_json_parse(text, len, flags, NULL);
    size_t jflags = flags & ~CD_JSON_REJECT_BIGINT;
    json_t *ref = flags & CD_JSON_REJECT_BIGINT ? json_loadb(text, len, jflags, NULL)
                                                : cd_json_loadb_bigint(text, len, jflags, NULL);
    bool same = json_same_tree(ours, ref);
    json_decref(ours);
    json_decref(ref);
    return same;
}

#endif
