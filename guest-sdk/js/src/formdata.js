// FormData as a request or response body, encoded and parsed as multipart/form-data here: the JS
// engine's own encoder and parser write a file's bytes as the text of their numbers ("0128255"
// for [0, 128, 255]). Imported by `http.js` before it wraps `Request` and `Response`.

const CRLF = "\r\n";

/** A header parameter's value, quoted as the HTML standard's multipart encoder does. */
function quoted(text) {
  return String(text).replace(/\n/g, "%0A").replace(/\r/g, "%0D").replace(/"/g, "%22");
}

/** `form` as `{ body, contentType }`: a Blob of its parts and its multipart Content-Type. */
export function multipart(form) {
  const boundary = `----duroFormBoundary${crypto.randomUUID().replace(/-/g, "")}`;
  const parts = [];
  for (const [name, value] of form) {
    let head = `--${boundary}${CRLF}Content-Disposition: form-data; name="${quoted(name)}"`;
    if (typeof value === "string") {
      parts.push(`${head}${CRLF}${CRLF}`, value.replace(/\r?\n|\r/g, CRLF), CRLF);
    } else {
      head += `; filename="${quoted(value.name ?? "blob")}"${CRLF}`;
      head += `Content-Type: ${value.type || "application/octet-stream"}${CRLF}${CRLF}`;
      parts.push(head, value, CRLF);
    }
  }
  parts.push(`--${boundary}--${CRLF}`);
  return { body: new Blob(parts), contentType: `multipart/form-data; boundary=${boundary}` };
}

const decoder = new TextDecoder();

/** Where `needle` starts in `bytes` at or after `from`, or -1. */
function indexOf(bytes, needle, from) {
  const first = needle[0];
  const last = bytes.length - needle.length;
  for (let i = bytes.indexOf(first, from); i !== -1 && i <= last; i = bytes.indexOf(first, i + 1)) {
    let j = 1;
    while (j < needle.length && bytes[i + j] === needle[j]) j++;
    if (j === needle.length) return i;
  }
  return -1;
}

/** A header parameter (`name="x"`) of a part's Content-Disposition, unquoted. */
function parameter(disposition, key) {
  const match = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, "i").exec(disposition) ??
    new RegExp(`;\\s*${key}=([^;\\s]*)`, "i").exec(disposition);
  return match === null ? null : match[1].replace(/%22/g, '"').replace(/%0D/g, "\r").replace(/%0A/g, "\n");
}

/** The FormData a multipart/form-data body holds; a file part keeps its bytes. */
export function parseMultipart(bytes, contentType) {
  const boundary = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? "");
  if (boundary === null) throw new TypeError("multipart/form-data without a boundary");
  const delimiter = new TextEncoder().encode(`--${boundary[1] ?? boundary[2]}`);
  const form = new FormData();
  let at = indexOf(bytes, delimiter, 0);
  if (at === -1) throw new TypeError("the multipart body has no part");
  for (;;) {
    at += delimiter.length;
    if (bytes[at] === 0x2d && bytes[at + 1] === 0x2d) return form; // the closing "--"
    const headersEnd = indexOf(bytes, [13, 10, 13, 10], at);
    const next = indexOf(bytes, delimiter, at);
    if (headersEnd === -1 || next === -1 || headersEnd > next) throw new TypeError("a malformed multipart part");
    const headers = new Map();
    for (const line of decoder.decode(bytes.subarray(at, headersEnd)).split(CRLF)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    const disposition = headers.get("content-disposition") ?? "";
    const name = parameter(disposition, "name");
    // The part's body ends before the CRLF that precedes the next delimiter.
    const body = bytes.subarray(headersEnd + 4, Math.max(headersEnd + 4, next - 2));
    const filename = parameter(disposition, "filename");
    if (name !== null) {
      if (filename === null) form.append(name, decoder.decode(body));
      else form.append(name, new File([body.slice()], filename, { type: headers.get("content-type") ?? "" }));
    }
    at = next;
  }
}

// `request.formData()` and `response.formData()`, for every request and response: a multipart
// body through `parseMultipart` (the engine's parser writes a file's bytes as text too), any
// other through the engine's.
for (const Type of [Request, Response]) {
  const native = Type.prototype.formData;
  Object.defineProperty(Type.prototype, "formData", {
    async value() {
      const type = this.headers.get("content-type") ?? "";
      if (!/^multipart\/form-data/i.test(type)) return native.call(this);
      return parseMultipart(new Uint8Array(await this.arrayBuffer()), type);
    },
    configurable: true,
    writable: true,
  });
}
