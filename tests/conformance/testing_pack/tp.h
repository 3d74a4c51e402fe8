/* The testing pack: ComfyUI's tests/execution/testing_nodes/testing-pack written against
 * comfyd/node.h, so ComfyUI's own execution test suite can run against comfyd (see
 * tests/conformance/README.md). Same class names, INPUT_TYPES, outputs and behaviour; tensor
 * arithmetic in float32, one operation at a time, as torch does on the CPU.
 *
 * Bounds of +-0xffffffffffffffff are written as 1.8446744073709552e+19: comfyd reads
 * INPUT_TYPES with 64-bit integers.
 *
 * This header holds what the pack's files share: the tensor helpers, ComfyUI's VariantSupport
 * ("SmartType") validation, and each file's registration function. */
#ifndef TP_H
#define TP_H

#include <comfyd/node.h>
#include <stdbool.h>

#define TP_MODULE "custom_nodes.testing-pack"
#define TP_FLOW_SOCKETS 5  /* NUM_FLOW_SOCKETS */
#define TP_LIST_SOCKETS 10 /* NUM_LIST_SOCKETS */

/* A [b,h,w,3] IMAGE with every element = value (torch.ones(...) * value). */
cd_value *tp_image_fill(int64_t b, int64_t h, int64_t w, float value);
/* A float32 copy of a tensor with a new type/shape (same numel), writable until shared. */
cd_value *tp_tensor_copy(const cd_value *t);
/* tensor * scalar, elementwise in float32 (torch's tensor * python float). */
cd_value *tp_tensor_scale(const cd_value *t, double s);
/* a * b for the "IMAGE,FLOAT" nodes: float*float gives ones[1,512,512,3]*a*b, a tensor with a
 * float or two tensors multiply elementwise with broadcasting. NULL + cd_call_fail on error. */
cd_value *tp_mul_values(cd_node_call *call, const cd_value *a, const cd_value *b);
/* Elementwise with numpy/torch broadcasting over the trailing dimensions. op: '+', '-', '*'.
 * NULL after cd_call_fail with torch's message when the shapes do not broadcast. */
cd_value *tp_broadcast(cd_node_call *call, const cd_value *a, const cd_value *b, char op);
/* min and max of a tensor's elements (0,0 for an empty one). */
void tp_minmax(const cd_value *t, float *mn, float *mx);

/* A link to output `slot` of node `id`; NULL when id is (a failed graph add). */
static inline cd_value *tp_link(const char *id, int slot) { return id ? cd_value_link(id, slot) : NULL; }

/* VariantSupport's injected VALIDATE_INPUTS(input_types): a linked type must be a subset of
 * the declared comma-set, "*" on either side matching anything. */
int tp_variant_validate(cd_node_call *call);
#define TP_VARIANT .validate_inputs = tp_variant_validate, .validate_inputs_args = "input_types"

/* Python's repr() of a float: "1.0", "0.1", "1e+20". */
void tp_pyfloat(double d, char *buf, size_t len);
/* Sleeps `seconds`, reporting progress (elapsed of seconds) every 10 ms as ProgressBar does.
 * Returns CD_OK or CD_INTERRUPTED. report=false: no progress. */
int tp_sleep(cd_node_call *call, double seconds, bool report);
double tp_now(void);
/* The pack's async nodes (ComfyUI's `async def` FUNCTIONs), as node.h's execute_async: runs
 * work(call) on a thread of its own and ends the call with work's result through
 * cd_call_finish. Returns CD_PENDING, or work's result when no thread can be made (then it ran
 * here). */
int tp_spawn(cd_node_call *call, int (*work)(cd_node_call *call));
/* An execute_async for `work`: static int name(cd_node_call *c) { return tp_spawn(c, work); } */
#define TP_ASYNC(name, work) \
    static int name(cd_node_call *call) { return tp_spawn(call, work); }

void tp_register_stubs(cd_pack *pack);
void tp_register_specific(cd_pack *pack);
void tp_register_flow(cd_pack *pack);
void tp_register_conditions(cd_pack *pack);
void tp_register_util(cd_pack *pack);
void tp_register_async(cd_pack *pack);
void tp_register_api(cd_pack *pack);

#endif
