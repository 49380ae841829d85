/* Cloudflare's example Counter in C: `/increment`, `/get`, `/reset`, anything else 404
 * "Not found". The count is stored as JSON under "count", as the Rust and JavaScript Counters
 * store it. `/sql/increment` keeps a second count in the object's SQL database instead.
 * Build: scripts/build-c (zig cc for wasm32-wasi, then wasm-tools). */
#include "duro.h"

/* The SQL count, `UPDATE ... RETURNING`: a table of one row. */
static void sql_increment(duro_response *res) {
    duro_sql_cursor cursor;
    duro_string err;
    duro_sql_value id = duro_sql_int(1);
    int64_t count = 0;
    if (!duro_sql_exec("CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY, value INTEGER);"
                       "INSERT OR IGNORE INTO counter VALUES (?, 0)",
                       &id, 1, &cursor, &err)) {
        duro_respond(res, 500, "text/plain", "SQL failed");
        object_core_string_free(&err);
        return;
    }
    duro_sql_cursor_free(&cursor);
    if (!duro_sql_exec("UPDATE counter SET value = value + 1 WHERE id = ? RETURNING value",
                       &id, 1, &cursor, &err)) {
        duro_respond(res, 500, "text/plain", "SQL failed");
        object_core_string_free(&err);
        return;
    }
    duro_sql_get_i64(&cursor, 0, 0, &count);
    duro_sql_cursor_free(&cursor);
    duro_respond_json_i64(res, "count", count);
}

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
    } else if (duro_path_is(req, "/sql/increment")) {
        sql_increment(res);
    } else {
        duro_respond(res, 404, "text/plain", "Not found");
    }
    duro_request_free(req);
}
