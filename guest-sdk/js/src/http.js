// Requests and responses across the component boundary: the WIT records
// ({ method, url, headers, body }) to the standard Request/Response globals and back. Two fixes to
// the platform's classes, installed as the globals: `Request` keeps every header (the platform
// drops "forbidden" ones such as Upgrade, which a server must see to accept a WebSocket), and
// `Response` takes status 101 with a `webSocket` (what a Durable Object answers to an upgrade).

import { base64, unbase64 } from "./clone.js";
import { logged } from "./errors.js";
import { multipart } from "./formdata.js";
import { encodeThrown, thrown } from "./rpc.js";

const NativeRequest = globalThis.Request;
/** The header of an error answer that carries what the handler threw (the runtime's `abi::rpc`). */
const THROWN_HEADER = "duro-thrown";
/** A thrown value larger than this crosses as its message only (the body's). */
const MAX_THROWN_BYTES = 8 * 1024;
const NativeResponse = globalThis.Response;
const encoder = new TextEncoder();
const NULL_BODY = new Set([101, 204, 205, 304]);

/** `Request`, whose `headers` are all the headers it was given. */
export class Request extends NativeRequest {
  #headers;
  constructor(input, init) {
    const form = init && init.body instanceof FormData ? multipart(init.body) : null;
    if (form !== null) init = { ...init, body: form.body };
    super(input, init);
    const given = init && init.headers !== undefined ? init.headers : input instanceof NativeRequest ? input.headers : undefined;
    this.#headers = new Headers(given);
    if (form !== null && !this.#headers.has("content-type")) this.#headers.set("content-type", form.contentType);
  }
  get headers() {
    return this.#headers;
  }
  /** Any request is a `Request` (the platform's too, from `fetch` machinery). */
  static [Symbol.hasInstance](value) {
    return this === Request ? value instanceof NativeRequest : Function.prototype[Symbol.hasInstance].call(this, value);
  }
  /** A copy that keeps every header too (the platform's clone would drop "forbidden" ones). */
  clone() {
    const copy = new this.constructor(super.clone(), { headers: this.#headers });
    copy.cf = this.cf;
    return copy;
  }
}

/**
 * Thrown by `request.json()` on a body that is not JSON: the client's mistake, answered 400 with
 * `{"error": ...}` (by the SDK, or by Hono through `getResponse`) instead of 500.
 */
export class BadRequest extends Error {
  constructor(message) {
    super(message);
    this.name = "BadRequest";
    this.status = 400;
  }
  getResponse() {
    return Response.json({ error: this.message }, { status: 400 });
  }
}

/** The header the runtime adds last to a request from outside: where the client is, as JSON
 * (Cloudflare's visitor location headers of a trusted proxy), or `placeholder` (`duro dev`). */
const CF_HEADER = "duro-cf";

/** The place `wrangler dev` gives every request when it cannot ask Cloudflare (miniflare's
 * fallback `cf`), which `duro dev` gives too: maps and the like have somewhere to point. */
const PLACEHOLDER = {
  asn: 395747,
  colo: "DFW",
  city: "Austin",
  region: "Texas",
  regionCode: "TX",
  metroCode: "635",
  postalCode: "78701",
  country: "US",
  continent: "NA",
  timezone: "America/Chicago",
  latitude: "30.27130",
  longitude: "-97.74260",
  requestPriority: "weight=192;exclusive=0",
  tlsCipher: "AEAD-AES128-GCM-SHA256",
  tlsVersion: "TLSv1.3",
  clientTrustScore: 99,
  edgeRequestKeepAliveStatus: 0,
};

/**
 * What duro knows of a request, as Cloudflare's `request.cf`: the protocol and what the client
 * accepts; where the client is only when the runtime was told (`location`: see `CF_HEADER`). No
 * TLS details (the runtime terminates no TLS).
 */
function cfOf(headers, location) {
  const known = {
    colo: "duro",
    httpProtocol: "HTTP/1.1",
    clientAcceptEncoding: headers.get("accept-encoding") ?? "",
    clientTcpRtt: 0,
    asn: 0,
    asOrganization: "",
    tlsVersion: "",
    tlsCipher: "",
    requestPriority: "",
  };
  if (location === undefined) return known;
  if (location === "placeholder") return { ...known, ...PLACEHOLDER };
  try {
    return { ...known, ...JSON.parse(location) };
  } catch {
    return known;
  }
}

/**
 * The request a handler receives: `json()` throws `BadRequest` on a body that is not JSON, and
 * `cf` says what duro knows of it.
 */
class IncomingRequest extends Request {
  #cf;
  /** The runtime's `duro-cf` header, taken off the headers. */
  #location;
  constructor(url, init, location) {
    super(url, init);
    this.#location = location;
  }
  get cf() {
    return (this.#cf ??= cfOf(this.headers, this.#location));
  }
  set cf(value) {
    this.#cf = value;
  }
  async json() {
    const text = await this.text();
    try {
      return JSON.parse(text);
    } catch (error) {
      throw new BadRequest(`the request body is not valid JSON: ${error.message}`);
    }
  }
}

/** `Response`, plus `new Response(null, { status: 101, webSocket })`. */
export class Response extends NativeResponse {
  #upgrade = false;
  /** The body as bytes when it was given as a string or bytes: answered without reading the
   * stream (the interpreter makes a stream read cost more than the rest of a small event). */
  #bytes = null;
  constructor(body, init) {
    if (init && init.status === 101) {
      super(null, { ...plainInit(init), status: 200 });
      this.#upgrade = true;
    } else if (body instanceof FormData) {
      const form = multipart(body);
      const headers = new Headers(init && init.headers);
      if (!headers.has("content-type")) headers.set("content-type", form.contentType);
      super(form.body, { ...(init ? plainInit(init) : {}), headers });
    } else {
      super(body, init && plainInit(init));
      this.#bytes = asBytes(body);
    }
    this.webSocket = (init && init.webSocket) || null;
  }
  static _bytes(response) {
    return #bytes in response ? response.#bytes : null;
  }
  /** Any response is a `Response`: the platform's too (what `fetch` answers). */
  static [Symbol.hasInstance](value) {
    return this === Response ? value instanceof NativeResponse : Function.prototype[Symbol.hasInstance].call(this, value);
  }
  /** A redirect to `url`; as the Fetch standard says, only 301, 302, 303, 307 or 308. */
  static redirect(url, status = 302) {
    if (![301, 302, 303, 307, 308].includes(status)) {
      throw new RangeError(`Invalid status code ${status}: a redirect is 301, 302, 303, 307 or 308`);
    }
    return new Response(null, { status, headers: { location: String(new URL(url)) } });
  }
  get status() {
    return this.#upgrade ? 101 : super.status;
  }
  get ok() {
    return !this.#upgrade && super.ok;
  }
  static json(data, init) {
    const headers = new Headers(init && init.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(JSON.stringify(data), { ...plainInit(init || {}), headers });
  }
}

function asBytes(body) {
  if (body === null || body === undefined) return new Uint8Array(0);
  if (typeof body === "string") return encoder.encode(body);
  if (body instanceof Uint8Array) return body.slice();
  if (body instanceof ArrayBuffer) return new Uint8Array(body.slice(0));
  return null;
}

// A Response passed as init (`new Response(res.body, res)`) is read through its getters.
function plainInit(init) {
  return { status: init.status, statusText: init.statusText, headers: init.headers };
}

globalThis.Request = Request;
globalThis.Response = Response;

/** The WIT request as a `Request`. */
export function toRequest({ method, url, headers, body }) {
  const last = headers[headers.length - 1];
  const location = last?.[0] === CF_HEADER ? last[1] : undefined;
  if (location !== undefined) headers = headers.slice(0, -1);
  const init = { method, headers };
  if (method !== "GET" && method !== "HEAD" && body.length > 0) init.body = body;
  return new IncomingRequest(url, init, location);
}

/** A `Request` (or what `new Request` takes) as the WIT request. */
export async function fromRequest(input, init) {
  const request = input instanceof NativeRequest && init === undefined ? input : new Request(input, init);
  const body = new Uint8Array(await request.arrayBuffer());
  return { method: request.method, url: request.url, headers: headerList(request.headers), body };
}

/** The WIT response as a `Response`. */
export function toResponse({ status, headers, body }) {
  return new Response(NULL_BODY.has(status) ? null : body, { status, headers });
}

/** What a handler returned as the WIT response. */
export async function fromResponse(response) {
  if (!(response instanceof NativeResponse)) {
    throw new TypeError(`fetch must return a Response, got ${describe(response)}`);
  }
  const body =
    response.status === 101
      ? new Uint8Array(0)
      : (Response._bytes(response) ?? new Uint8Array(await response.arrayBuffer()));
  return { status: response.status, headers: headerList(response.headers), body };
}

/**
 * The answer to a handler that threw: a 500 with `{"error": message}` (as the Rust SDK answers an
 * `Err`), and the thrown value itself in the `duro-thrown` header (base64 of its encoding), which
 * a caller's `stub.fetch()` rejects with, as on Cloudflare; the ingress drops the header before
 * a client sees the answer. The error's message and stack go to stderr, the runtime's log. A
 * `BadRequest` is a 400, not logged.
 */
export function errorResponse(what, error) {
  if (error instanceof BadRequest) {
    const body = encoder.encode(JSON.stringify({ error: error.message }));
    return { status: 400, headers: [["content-type", "application/json"]], body };
  }
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  console.error(`${what} failed: ${logged(error)}`);
  const body = encoder.encode(JSON.stringify({ error: message }));
  const headers = [["content-type", "application/json"]];
  const encoded = encodeThrown(error);
  if (encoded.byteLength <= MAX_THROWN_BYTES) headers.push([THROWN_HEADER, base64(encoded)]);
  return { status: 500, headers, body };
}

/** The error a stub's `fetch` rejects with for an answer its object's handler threw, or undefined. */
export function thrownBy(response) {
  if (response.status !== 500) return undefined;
  const header = response.headers.find(([name]) => name.toLowerCase() === THROWN_HEADER);
  return header === undefined ? undefined : thrown(unbase64(header[1]));
}

function headerList(headers) {
  const list = [];
  for (const [name, value] of headers) list.push([name, value]);
  return list;
}

function describe(value) {
  if (value === null) return "null";
  if (typeof value === "object") return (value.constructor && value.constructor.name) || "an object";
  return typeof value;
}
