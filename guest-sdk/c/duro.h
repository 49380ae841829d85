/* duro.h — write a duro Durable Object class in C: a header-only helper over the wit-bindgen
 * bindings of the `object-core` world (gen/object_core.h). It gives strings from C literals,
 * the request's path and method, storage of JSON integers, SQL statements with typed values,
 * and responses built from C strings.
 * Implement `exports_object_core_fetch` (see examples/c/counter/counter.c):
 *
 *     void exports_object_core_fetch(duro_request *req, duro_response *res) {
 *         if (duro_path_is(req, "/hello")) duro_respond(res, 200, "text/plain", "hi");
 *         else duro_respond(res, 404, "text/plain", "Not found");
 *         duro_request_free(req);
 *     }
 *
 * Values are stored as JSON text, as the Rust and JavaScript SDKs store them: a C counter reads
 * what a Rust or JS counter wrote. Everything a response holds is malloc'd; the runtime frees it.
 */
#ifndef DURO_H
#define DURO_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "object_core.h"

typedef object_core_request_t duro_request;
typedef object_core_response_t duro_response;
typedef object_core_string_t duro_string;
typedef duro_object_storage_storage_error_t duro_storage_error;
typedef duro_object_sql_value_t duro_sql_value;
typedef duro_object_sql_cursor_t duro_sql_cursor;

/* A string that borrows a C string (no copy): for arguments. */
static inline duro_string duro_str(const char *s) {
    duro_string out = {(uint8_t *)s, strlen(s)};
    return out;
}

/* The request's path: its url without `http://host` and without the query. */
static inline duro_string duro_path(const duro_request *req) {
    const uint8_t *p = req->url.ptr, *end = req->url.ptr + req->url.len;
    const uint8_t *scheme = p;
    while (scheme + 2 < end && !(scheme[0] == ':' && scheme[1] == '/' && scheme[2] == '/')) scheme++;
    if (scheme + 2 < end) {
        p = scheme + 3;
        while (p < end && *p != '/') p++; /* the host */
    }
    const uint8_t *q = p;
    while (q < end && *q != '?') q++;
    duro_string out = {(uint8_t *)p, (size_t)(q - p)};
    return out;
}

static inline bool duro_string_is(duro_string s, const char *text) {
    size_t n = strlen(text);
    return s.len == n && memcmp(s.ptr, text, n) == 0;
}

static inline bool duro_path_is(const duro_request *req, const char *path) {
    return duro_string_is(duro_path(req), path);
}

static inline bool duro_method_is(const duro_request *req, const char *method) {
    return duro_string_is(req->method, method);
}

static inline void duro_request_free(duro_request *req) {
    duro_object_types_request_free(req);
}

/* A readable sentence for a storage error, into `buf`. */
static inline const char *duro_storage_error_text(const duro_storage_error *e, char *buf, size_t n) {
    switch (e->tag) {
    case DURO_OBJECT_STORAGE_STORAGE_ERROR_KEY_TOO_LARGE:
        snprintf(buf, n, "key is %llu bytes, the limit is %llu",
                 (unsigned long long)e->val.key_too_large.actual, (unsigned long long)e->val.key_too_large.limit);
        break;
    case DURO_OBJECT_STORAGE_STORAGE_ERROR_VALUE_TOO_LARGE:
        snprintf(buf, n, "value is %llu bytes, the limit is %llu",
                 (unsigned long long)e->val.value_too_large.actual, (unsigned long long)e->val.value_too_large.limit);
        break;
    case DURO_OBJECT_STORAGE_STORAGE_ERROR_INVALID_ARGUMENT:
        snprintf(buf, n, "invalid argument: %.*s", (int)e->val.invalid_argument.len, e->val.invalid_argument.ptr);
        break;
    case DURO_OBJECT_STORAGE_STORAGE_ERROR_INTERNAL:
        snprintf(buf, n, "internal: %.*s", (int)e->val.internal.len, e->val.internal.ptr);
        break;
    default:
        snprintf(buf, n, "storage error %d", e->tag);
    }
    return buf;
}

/* Reads the JSON integer stored at `key` into *value (left alone if the key is absent). False
 * on a storage error (in *err) or a value that is not an integer (err->tag set to
 * INVALID_ARGUMENT with an empty text). */
static inline bool duro_get_i64(const char *key, int64_t *value, duro_storage_error *err) {
    duro_string k = duro_str(key);
    object_core_option_list_u8_t got;
    if (!duro_object_storage_get(&k, &got, err)) return false;
    if (!got.is_some) return true;
    char text[32];
    size_t len = got.val.len < sizeof text - 1 ? got.val.len : sizeof text - 1;
    memcpy(text, got.val.ptr, len);
    text[len] = 0;
    object_core_list_u8_free(&got.val);
    char *end;
    long long parsed = strtoll(text, &end, 10);
    if (end == text || *end != 0) {
        err->tag = DURO_OBJECT_STORAGE_STORAGE_ERROR_INVALID_ARGUMENT;
        err->val.invalid_argument = duro_str("");
        return false;
    }
    *value = parsed;
    return true;
}

/* Stores `value` at `key` as a JSON integer. */
static inline bool duro_put_i64(const char *key, int64_t value, duro_storage_error *err) {
    char text[32];
    int len = snprintf(text, sizeof text, "%lld", (long long)value);
    duro_string k = duro_str(key);
    object_core_list_u8_t v = {(uint8_t *)text, (size_t)len};
    return duro_object_storage_put(&k, &v, err);
}

static inline bool duro_delete(const char *key, duro_storage_error *err) {
    duro_string k = duro_str(key);
    bool existed;
    return duro_object_storage_delete(&k, &existed, err);
}

/* Answers `status` with `body` (copied) and a content-type header. */
/* SQL storage (the object's SQLite database, committed with its other writes). Values to bind;
 * a text value borrows its C string for the call. */
static inline duro_sql_value duro_sql_null(void) {
    duro_sql_value v = {.tag = DURO_OBJECT_SQL_VALUE_NULL};
    return v;
}

static inline duro_sql_value duro_sql_int(int64_t n) {
    duro_sql_value v = {.tag = DURO_OBJECT_SQL_VALUE_INTEGER, .val.integer = n};
    return v;
}

static inline duro_sql_value duro_sql_text(const char *s) {
    duro_sql_value v = {.tag = DURO_OBJECT_SQL_VALUE_TEXT, .val.text = duro_str(s)};
    return v;
}

/* Runs `query` (several statements separated by `;` run in order; the `n` bindings go to the
 * last). On success fills *cursor (free it with duro_sql_cursor_free); on failure *err holds
 * SQLite's message (free it with object_core_string_free) and nothing changed. */
static inline bool duro_sql_exec(const char *query, duro_sql_value *bindings, size_t n,
                                 duro_sql_cursor *cursor, duro_string *err) {
    duro_string q = duro_str(query);
    duro_object_sql_list_value_t b = {bindings, n};
    return duro_object_sql_exec(&q, &b, cursor, err);
}

/* The integer in row `row`, column `col` of a cursor; false if there is none there. */
static inline bool duro_sql_get_i64(const duro_sql_cursor *c, size_t row, size_t col, int64_t *out) {
    if (row >= c->rows.len || col >= c->rows.ptr[row].len) return false;
    const duro_sql_value *v = &c->rows.ptr[row].ptr[col];
    if (v->tag != DURO_OBJECT_SQL_VALUE_INTEGER) return false;
    *out = v->val.integer;
    return true;
}

static inline void duro_sql_cursor_free(duro_sql_cursor *c) {
    duro_object_sql_cursor_free(c);
}

static inline void duro_respond(duro_response *res, uint16_t status, const char *content_type, const char *body) {
    res->status = status;
    res->headers.len = 1;
    res->headers.ptr = malloc(sizeof(object_core_tuple2_string_string_t));
    object_core_string_dup(&res->headers.ptr[0].f0, "content-type");
    object_core_string_dup(&res->headers.ptr[0].f1, content_type);
    size_t n = strlen(body);
    res->body.len = n;
    res->body.ptr = malloc(n ? n : 1);
    memcpy(res->body.ptr, body, n);
}

/* Answers 200 with the JSON object `{"<field>": value}`. */
static inline void duro_respond_json_i64(duro_response *res, const char *field, int64_t value) {
    char body[128];
    snprintf(body, sizeof body, "{\"%s\":%lld}", field, (long long)value);
    duro_respond(res, 200, "application/json", body);
}

/* Answers 500 with `{"error": "<the storage error>"}`, as the other SDKs answer a failed handler. */
static inline void duro_respond_storage_error(duro_response *res, const duro_storage_error *err) {
    char text[256], body[300];
    duro_storage_error_text(err, text, sizeof text);
    snprintf(body, sizeof body, "{\"error\":\"storage: %s\"}", text);
    duro_respond(res, 500, "application/json", body);
}

#endif
