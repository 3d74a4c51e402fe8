/* The text nodes of comfy_extras.nodes_dataset (category dataset/text): TextToLowercase,
 * TextToUppercase, TruncateText, AddTextPrefix, AddTextSuffix, ReplaceText, StripWhitespace and
 * MergeTextLists.
 *
 * In ComfyUI these derive from TextProcessingNode. Read closely, the Python does this:
 *  - MergeTextLists sets is_group_process, so it is INPUT_IS_LIST; the others take one text
 *    per call and ComfyUI maps them over lists as usual.
 *  - None of them sets is_output_list, so OUTPUT_IS_LIST is None (falsy; /object_info shows
 *    null) and execute() wraps its result: `NodeOutput([result])`. Each call's output is
 *    therefore a one-element list, and MergeTextLists' output is the whole list as one value.
 *    Downstream nodes receive those lists (PreviewAny shows '[\n    "text"\n]'); a second
 *    dataset text node receiving one fails as it does in Python ('list' object has no
 *    attribute 'lower'). comfyd reproduces this as it is, so that workflows behave the same.
 *  - execute() unwraps one-element list arguments (`params[k] = v[0]`) before calling
 *    _process, which the per-text nodes do here too. */
#include <stdio.h>
#include <string.h>

#include "comfyd/node.h"
#include "nodes/text_util.h"

#define MODULE "comfy_extras.nodes_dataset"

/* execute()'s argument unwrapping: a one-element list stands for its element. */
static const cd_value *param(const cd_node_call *call, const char *name) {
    const cd_value *v = cd_call_input(call, name);
    if (cd_value_kind_of(v) == CD_VALUE_LIST && cd_value_list_len(v) == 1) v = cd_value_list_at(v, 0);
    return v;
}

/* The node's output: `NodeOutput([result])`. */
static int set_wrapped(cd_node_call *call, cd_value *result) {
    cd_value *list = result ? cd_value_list_new(1) : NULL;
    if (!list || cd_value_list_push(list, result) != CD_OK) {
        cd_value_unref(list);
        return cd_call_fail(call, "MemoryError", "out of memory");
    }
    return cd_call_set_output(call, 0, list);
}

/* The text to process, or a failure worded as Python's when `text.<method>()` meets another
 * type. */
static const char *get_text(cd_node_call *call, const char *method) {
    const cd_value *v = cd_call_input(call, "texts");
    const char *s = cd_value_as_string(v);
    if (!s) {
        if (!v) cd_call_fail(call, "TypeError", "missing required argument: 'texts'");
        else cd_call_fail(call, "AttributeError", "'%s' object has no attribute '%s'", cd_text_py_type(v), method);
    }
    return s;
}

static const char *get_param(cd_node_call *call, const char *name) {
    const cd_value *v = param(call, name);
    const char *s = cd_value_as_string(v);
    if (!s) {
        if (!v) cd_call_fail(call, "TypeError", "missing required argument: '%s'", name);
        else cd_call_fail(call, "TypeError", "%s must be str, not %s", name, cd_text_py_type(v));
    }
    return s;
}

static int lower(cd_node_call *call) {
    const char *s = get_text(call, "lower");
    if (!s) return CD_ERROR;
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_lower(&out, s, strlen(s));
    return set_wrapped(call, cd_text_buf_value(&out));
}

static int upper(cd_node_call *call) {
    const char *s = get_text(call, "upper");
    if (!s) return CD_ERROR;
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_upper(&out, s, strlen(s));
    return set_wrapped(call, cd_text_buf_value(&out));
}

static int strip(cd_node_call *call) {
    const char *s = get_text(call, "strip");
    if (!s) return CD_ERROR;
    size_t from, to;
    cd_text_strip(s, strlen(s), 1, 1, &from, &to);
    return set_wrapped(call, cd_value_stringn(s + from, to - from));
}

static int replace(cd_node_call *call) {
    const char *s = get_text(call, "replace");
    if (!s) return CD_ERROR;
    const char *find = get_param(call, "find");
    const char *repl = find ? get_param(call, "replace") : NULL;
    if (!repl) return CD_ERROR;
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_replace(&out, s, strlen(s), find, strlen(find), repl, strlen(repl));
    return set_wrapped(call, cd_text_buf_value(&out));
}

/* text[:max_length]: a str is cut at a code point, a list (what another dataset text node
 * outputs) is sliced as a list. */
static int truncate(cd_node_call *call) {
    const cd_value *v = cd_call_input(call, "texts");
    const cd_value *lim = param(call, "max_length");
    int64_t max = cd_value_as_int(lim);
    if (!v || !lim) return cd_call_fail(call, "TypeError", "missing required argument: '%s'", v ? "max_length" : "texts");
    const char *s = cd_value_as_string(v);
    if (s) {
        size_t from, to;
        cd_text_slice(s, strlen(s), 0, max, &from, &to);
        return set_wrapped(call, cd_value_stringn(s + from, to - from));
    }
    if (cd_value_kind_of(v) != CD_VALUE_LIST)
        return cd_call_fail(call, "TypeError", "'%s' object is not subscriptable", cd_text_py_type(v));
    int64_t n = (int64_t)cd_value_list_len(v);
    int64_t stop = max < 0 ? (max < -n ? 0 : max + n) : (max > n ? n : max);
    cd_value *part = cd_value_list_new((size_t)stop);
    for (int64_t k = 0; part && k < stop; k++)
        if (cd_value_list_push(part, cd_value_ref(cd_value_list_at(v, (size_t)k))) != CD_OK) {
            cd_value_unref(part);
            part = NULL;
        }
    return set_wrapped(call, part);
}

/* prefix + text */
static int add_prefix(cd_node_call *call) {
    const char *prefix = get_param(call, "prefix");
    if (!prefix) return CD_ERROR;
    const cd_value *v = cd_call_input(call, "texts");
    const char *s = cd_value_as_string(v);
    if (!s) {
        if (!v) return cd_call_fail(call, "TypeError", "missing required argument: 'texts'");
        return cd_call_fail(call, "TypeError", "can only concatenate str (not \"%s\") to str", cd_text_py_type(v));
    }
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_puts(&out, prefix);
    cd_text_puts(&out, s);
    return set_wrapped(call, cd_text_buf_value(&out));
}

/* text + suffix */
static int add_suffix(cd_node_call *call) {
    const char *suffix = get_param(call, "suffix");
    if (!suffix) return CD_ERROR;
    const cd_value *v = cd_call_input(call, "texts");
    const char *s = cd_value_as_string(v);
    if (!s) {
        if (!v) return cd_call_fail(call, "TypeError", "missing required argument: 'texts'");
        if (cd_value_kind_of(v) == CD_VALUE_LIST)
            return cd_call_fail(call, "TypeError", "can only concatenate list (not \"str\") to list");
        return cd_call_fail(call, "TypeError", "unsupported operand type(s) for +: '%s' and 'str'", cd_text_py_type(v));
    }
    cd_text_buf out;
    cd_text_buf_init(&out);
    cd_text_puts(&out, s);
    cd_text_puts(&out, suffix);
    return set_wrapped(call, cd_text_buf_value(&out));
}

/* INPUT_IS_LIST: texts is the whole list, passed on as one value. */
static int merge(cd_node_call *call) {
    const cd_value *texts = cd_call_input(call, "texts");
    if (!texts) return cd_call_fail(call, "TypeError", "missing required argument: 'texts'");
    return cd_call_set_output(call, 0, cd_value_ref(texts));
}

/* OUTPUT_IS_LIST is None in ComfyUI, which /object_info shows as null; cd_output_def can only
 * say true or false, so comfyd shows false (a known difference, listed in the unit test). */
static const cd_output_def out_texts[] = {{"STRING", "texts", -1, "Processed texts", NULL}};

#define TEXT_ARG(TIP) "\"texts\": [\"STRING\", {\"tooltip\": \"" TIP "\", \"multiline\": false}]"
#define STR_ARG(NAME, TIP)                                                                                           \
    "\"" NAME "\": [\"STRING\", {\"tooltip\": \"" TIP "\", \"default\": \"\", \"multiline\": false}]"

#define TEXT_NODE(NAME, DISPLAY, INPUTS, FN, FLAGS)                                                                  \
    {.abi_version = CD_NODE_ABI_VERSION, .name = NAME, .display_name = DISPLAY, .category = "dataset/text",          \
     .python_module = MODULE, .inputs = INPUTS, .outputs = out_texts, .n_outputs = 1,                                \
     .flags = CD_NODE_V3_INFO | CD_NODE_EXPERIMENTAL | (FLAGS), .execute = FN}

static const cd_node_def defs[] = {
    TEXT_NODE("TextToLowercase", "Text to Lowercase", "{\"required\": {" TEXT_ARG("Text to process.") "}}", lower, 0),
    TEXT_NODE("TextToUppercase", "Text to Uppercase", "{\"required\": {" TEXT_ARG("Text to process.") "}}", upper, 0),
    TEXT_NODE("TruncateText", "Truncate Text",
              "{\"required\": {" TEXT_ARG("Text to process.") ", \"max_length\": [\"INT\", {\"tooltip\": \"Maximum "
              "text length.\", \"default\": 77, \"min\": 1, \"max\": 10000}]}}",
              truncate, 0),
    TEXT_NODE("AddTextPrefix", "Add Text Prefix",
              "{\"required\": {" TEXT_ARG("Text to process.") ", " STR_ARG("prefix", "Prefix to add.") "}}",
              add_prefix, 0),
    TEXT_NODE("AddTextSuffix", "Add Text Suffix",
              "{\"required\": {" TEXT_ARG("Text to process.") ", " STR_ARG("suffix", "Suffix to add.") "}}",
              add_suffix, 0),
    TEXT_NODE("ReplaceText", "Replace Text",
              "{\"required\": {" TEXT_ARG("Text to process.") ", " STR_ARG("find", "Text to find.") ", " STR_ARG(
                  "replace", "Text to replace with.") "}}",
              replace, 0),
    TEXT_NODE("StripWhitespace", "Strip Whitespace", "{\"required\": {" TEXT_ARG("Text to process.") "}}", strip, 0),
    TEXT_NODE("MergeTextLists", "Merge Text Lists", "{\"required\": {" TEXT_ARG("List of texts to process.") "}}",
              merge, CD_NODE_INPUT_IS_LIST),
};

int cd_nodes_dataset_text_init(cd_pack *pack) {
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) cd_pack_register(pack, &defs[i]);
    return CD_OK;
}
