/* Cloudflare's example Counter in C: `/increment`, `/get`, `/reset`, anything else 404
 * "Not found". The count is stored as JSON under "count", as the Rust and JavaScript Counters
 * store it. Build: scripts/build-c (zig cc for wasm32-wasi, then wasm-tools). */
#include "duro.h"

void exports_object_core_fetch(duro_request *req, duro_response *res) {
    duro_storage_error err;
    int64_t count = 0;
    if (duro_path_is(req, "/increment")) {
        if (!duro_get_i64("count", &count, &err) || !duro_put_i64("count", count + 1, &err))
            duro_respond_storage_error(res, &err);
        else
            duro_respond_json_i64(res, "count", count + 1);
    } else if (duro_path_is(req, "/get")) {
        if (!duro_get_i64("count", &count, &err))
            duro_respond_storage_error(res, &err);
        else
            duro_respond_json_i64(res, "count", count);
    } else if (duro_path_is(req, "/reset")) {
        if (!duro_delete("count", &err))
            duro_respond_storage_error(res, &err);
        else
            duro_respond_json_i64(res, "count", 0);
    } else {
        duro_respond(res, 404, "text/plain", "Not found");
    }
    duro_request_free(req);
}
